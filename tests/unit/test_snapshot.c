/* Unit tests for snapshot: canonical JSON (pinned by a golden file), strict
 * decoding, copies. TM_UPDATE_GOLDEN=1 rewrites tests/data/snapshot-golden.json
 * and the snapshot fuzz corpus. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <tidemark/core.h>
#include <tidemark/snapshot.h>
#include <tidemark/time.h>

static const char *data_dir(void)
{
        const char *d = getenv("TM_TEST_DATA");

        return d ? d : "tests/data";
}

static int updating_golden(void)
{
        const char *v = getenv("TM_UPDATE_GOLDEN");

        return v && strcmp(v, "1") == 0;
}

static void write_file(const char *path, const void *p, size_t n)
{
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(p, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
}

static void build_fixed(struct tm_snapshot *s)
{
        memset(s, 0, sizeof(*s));
        assert_int_equal(tm_time_parse("2025-01-07T10:00:00.123456789Z", &s->time, NULL), 0);
        s->host = strdup("backup-01");
        s->username = strdup("root");
        s->component = strdup("plugins");
        s->strategy = strdup("incremental");
        s->has_parent = 1;
        memset(s->parent.b, 0xab, TM_ID_LEN);
        for (int i = 0; i < TM_ID_LEN; i++)
                s->tree.b[i] = (uint8_t)i;
        assert_int_equal(tm_snapshot_add_path(s, "/srv/plugins"), 0);
        assert_int_equal(tm_snapshot_add_path(s, "/etc/portal"), 0);
        assert_int_equal(tm_snapshot_add_tag(s, "nightly"), 0);
        assert_int_equal(tm_snapshot_add_tag(s, "caf\xc3\xa9 \"quoted\""), 0);
        s->summary = (struct tm_snapshot_summary){
                .files = 1200,
                .dirs = 80,
                .others = 3,
                .files_new = 10,
                .files_changed = 5,
                .files_unmodified = 1185,
                .files_failed = 0,
                .bytes = 987654321,
                .bytes_read = 12345678,
                .blobs_added = 17,
                .bytes_added = 9000000,
                .bytes_stored = 4500000,
                .duration_ns = 61500000000LL,
        };
        s->extra_json = strdup("{\"wal\":{\"start\":\"0/3000028\",\"timeline\":1},\"a\":[1,2]}");
}

static void assert_snapshot_equal(const struct tm_snapshot *a, const struct tm_snapshot *b)
{
        assert_true(a->time == b->time);
        assert_string_equal(a->host, b->host);
        if (a->username || b->username)
                assert_string_equal(a->username, b->username);
        assert_string_equal(a->component, b->component);
        assert_string_equal(a->strategy, b->strategy);
        assert_int_equal(a->has_parent, b->has_parent);
        if (a->has_parent)
                assert_memory_equal(a->parent.b, b->parent.b, TM_ID_LEN);
        assert_memory_equal(a->tree.b, b->tree.b, TM_ID_LEN);
        assert_int_equal(a->n_paths, b->n_paths);
        for (size_t i = 0; i < a->n_paths; i++)
                assert_string_equal(a->paths[i], b->paths[i]);
        assert_int_equal(a->n_tags, b->n_tags);
        for (size_t i = 0; i < a->n_tags; i++)
                assert_string_equal(a->tags[i], b->tags[i]);
        assert_memory_equal(&a->summary, &b->summary, sizeof(a->summary));
}

static void encode_fixed(tm_buf *out)
{
        struct tm_snapshot s;

        build_fixed(&s);
        assert_int_equal(tm_snapshot_encode(&s, out), 0);
        tm_snapshot_dispose(&s);
}

static void write_corpus(const tm_buf *golden)
{
        char path[4096];
        struct tm_snapshot s = { 0 };
        tm_buf b = TM_BUF_INIT(0);
        static const char minimal[] =
                "{\"version\":1,\"time\":\"2025-01-07T10:00\",\"host\":\"h\",\"component\":\"c\","
                "\"strategy\":\"full\",\"tree\":"
                "\"0000000000000000000000000000000000000000000000000000000000000000\","
                "\"future\":{\"x\":[true,null,1.5]}}";

        snprintf(path, sizeof(path), "%s/../fuzz/corpus/snapshot/valid-golden.json", data_dir());
        write_file(path, golden->data, golden->len);
        s.host = "h";
        s.component = "database";
        s.strategy = "full";
        assert_int_equal(tm_snapshot_encode(&s, &b), 0);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/snapshot/valid-bare.json", data_dir());
        write_file(path, b.data, b.len);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/snapshot/valid-minimal.json", data_dir());
        write_file(path, minimal, strlen(minimal));
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/snapshot/garbage-array.json", data_dir());
        write_file(path, "[1,2,{\"version\":1}]", 19);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/snapshot/garbage-bytes.bin", data_dir());
        write_file(path, "{\"\xff\x00\x01", 5);
        tm_buf_dispose(&b);
}

static void test_golden(void **state)
{
        char path[4096];
        tm_buf enc = TM_BUF_INIT(0), golden = TM_BUF_INIT(1 << 20);

        (void)state;
        encode_fixed(&enc);
        snprintf(path, sizeof(path), "%s/snapshot-golden.json", data_dir());
        if (updating_golden()) {
                write_file(path, enc.data, enc.len);
                write_corpus(&enc);
        }
        assert_int_equal(tm_file_read_all(path, 1 << 20, &golden), 0);
        assert_int_equal(enc.len, golden.len);
        assert_memory_equal(enc.data, golden.data, enc.len);
        /* spot checks of the canonical form: sorted keys, no spaces */
        assert_memory_equal(golden.data, "{\"component\":\"plugins\",\"extra\":{\"a\":[1,2],", 42);
        assert_non_null(strstr((char *)golden.data, "\"time\":\"2025-01-07T10:00:00.123456789Z\""));
        assert_null(strstr((char *)golden.data, "\": "));
        assert_null(strstr((char *)golden.data, ", "));
        tm_buf_dispose(&golden);
        tm_buf_dispose(&enc);
}

static void test_roundtrip(void **state)
{
        struct tm_snapshot s, d = { 0 };
        tm_buf enc = TM_BUF_INIT(0), again = TM_BUF_INIT(0);

        (void)state;
        build_fixed(&s);
        assert_int_equal(tm_snapshot_encode(&s, &enc), 0);
        memset(d.id.b, 0x77, TM_ID_LEN);
        assert_int_equal(tm_snapshot_decode(enc.data, enc.len, &d), 0);
        assert_snapshot_equal(&s, &d);
        assert_true(tm_id_is_zero(&d.id)); /* not part of the encoding */
        assert_string_equal(d.extra_json, "{\"a\":[1,2],\"wal\":{\"start\":\"0/3000028\","
                                          "\"timeline\":1}}");
        assert_int_equal(tm_snapshot_encode(&d, &again), 0);
        assert_int_equal(again.len, enc.len);
        assert_memory_equal(again.data, enc.data, enc.len);
        tm_snapshot_dispose(&d);
        tm_snapshot_dispose(&d); /* safe twice */
        tm_snapshot_dispose(NULL);
        tm_snapshot_dispose(&s);
        tm_buf_dispose(&again);
        tm_buf_dispose(&enc);
}

static void test_optional_absent(void **state)
{
        struct tm_snapshot s = { 0 }, d = { 0 };
        tm_buf enc = TM_BUF_INIT(0);

        (void)state;
        s.host = "h";
        s.component = "c";
        s.strategy = "full";
        s.time = 0;
        assert_int_equal(tm_snapshot_encode(&s, &enc), 0);
        assert_null(strstr((char *)enc.data, "parent"));
        assert_null(strstr((char *)enc.data, "extra"));
        assert_null(strstr((char *)enc.data, "username"));
        assert_non_null(strstr((char *)enc.data, "\"paths\":[]"));
        assert_non_null(strstr((char *)enc.data, "\"time\":\"1970-01-01T00:00:00.000000000Z\""));
        assert_int_equal(tm_snapshot_decode(enc.data, enc.len, &d), 0);
        assert_int_equal(d.has_parent, 0);
        assert_null(d.extra_json);
        assert_null(d.username);
        assert_int_equal(d.n_paths, 0);
        assert_int_equal(d.n_tags, 0);
        tm_snapshot_dispose(&d);
        tm_buf_dispose(&enc);
}

static void test_encode_rejects(void **state)
{
        struct tm_snapshot s;
        tm_buf enc = TM_BUF_INIT(0);
        char *saved;

        (void)state;
        build_fixed(&s);
        saved = s.host;
        s.host = NULL;
        assert_int_equal(tm_snapshot_encode(&s, &enc), -EINVAL);
        s.host = "";
        assert_int_equal(tm_snapshot_encode(&s, &enc), -EINVAL);
        s.host = saved;
        saved = s.component;
        s.component = NULL;
        assert_int_equal(tm_snapshot_encode(&s, &enc), -EINVAL);
        s.component = saved;
        saved = s.strategy;
        s.strategy = NULL;
        assert_int_equal(tm_snapshot_encode(&s, &enc), -EINVAL);
        s.strategy = saved;
        s.time = -1;
        assert_int_equal(tm_snapshot_encode(&s, &enc), -EINVAL);
        s.time = 0;
        saved = s.extra_json;
        s.extra_json = "[1]";
        assert_int_equal(tm_snapshot_encode(&s, &enc), -EINVAL);
        s.extra_json = "{not json";
        assert_int_equal(tm_snapshot_encode(&s, &enc), -EINVAL);
        s.extra_json = saved;
        s.summary.bytes = UINT64_MAX;
        assert_int_equal(tm_snapshot_encode(&s, &enc), -EINVAL);
        s.summary.bytes = 0;
        saved = s.tags[0];
        s.tags[0] = "\xff\xfe"; /* not UTF-8 */
        assert_int_equal(tm_snapshot_encode(&s, &enc), -EINVAL);
        s.tags[0] = saved;
        assert_int_equal(enc.len, 0);
        assert_int_equal(tm_snapshot_encode(&s, &enc), 0);
        tm_snapshot_dispose(&s);
        tm_buf_dispose(&enc);
}

/* Decode the golden manifest after replacing (or, with value NULL, deleting)
 * one top-level or summary key. */
static int decode_modified(const char *key, const char *value_json, int in_summary)
{
        tm_buf enc = TM_BUF_INIT(0);
        struct tm_snapshot d = { 0 };
        json_t *root, *obj;
        char *text;
        int r;

        encode_fixed(&enc);
        root = json_loadb((const char *)enc.data, enc.len, 0, NULL);
        assert_non_null(root);
        obj = in_summary ? json_object_get(root, "summary") : root;
        if (value_json) {
                json_t *v = json_loads(value_json, JSON_DECODE_ANY, NULL);

                assert_non_null(v);
                assert_int_equal(json_object_set_new(obj, key, v), 0);
        } else {
                assert_int_equal(json_object_del(obj, key), 0);
        }
        text = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
        assert_non_null(text);
        r = tm_snapshot_decode(text, strlen(text), &d);
        if (r < 0)
                assert_null(d.host);
        tm_snapshot_dispose(&d);
        free(text);
        json_decref(root);
        tm_buf_dispose(&enc);
        return r;
}

static void test_decode_rejects(void **state)
{
        static const char *required[] = {
                "version", "time", "host", "component", "strategy", "tree"
        };
        static const struct {
                const char *key, *value;
        } bad[] = {
                { "version", "\"1\"" },
                { "version", "2" },
                { "version", "1.0" },
                { "time", "5" },
                { "time", "\"yesterday\"" },
                { "time", "\"1969-12-31T23:59:59Z\"" },
                { "time", "\"1970-01-01T00:30:00+01:00\"" },
                { "time", "\"9999-12-31T23:59:59Z\"" },
                { "time", "\"2262-01-01T00:00:00Z\"" },
                { "host", "7" },
                { "host", "\"\"" },
                { "username", "null" },
                { "component", "[]" },
                { "strategy", "\"\"" },
                { "tree", "\"00\"" },
                { "tree", "\"zz00000000000000000000000000000000000000000000000000000000000000\"" },
                { "parent", "5" },
                { "parent", "\"\"" },
                { "paths", "\"/srv\"" },
                { "paths", "[1]" },
                { "tags", "{}" },
                { "tags", "[\"a\",null]" },
                { "summary", "[]" },
                { "extra", "[]" },
                { "extra", "\"{}\"" },
        };
        static const struct {
                const char *key, *value;
        } bad_summary[] = {
                { "files", "\"1\"" },
                { "files", "-1" },
                { "bytes", "1.5" },
                { "duration_ns", "true" },
        };

        (void)state;
        assert_int_equal(decode_modified("unknown_future_key", "{\"x\":1}", 0), 0);
        assert_int_equal(decode_modified("unknown_summary_key", "\"x\"", 1), 0);
        assert_int_equal(decode_modified("duration_ns", "-5", 1), 0);
        assert_int_equal(decode_modified("time", "\"2025-01-07T10:00:00+02:00\"", 0), 0);
        for (size_t i = 0; i < TM_ARRAY_SIZE(required); i++)
                if (decode_modified(required[i], NULL, 0) != -EBADMSG)
                        fail_msg("missing '%s' accepted", required[i]);
        for (size_t i = 0; i < TM_ARRAY_SIZE(bad); i++)
                if (decode_modified(bad[i].key, bad[i].value, 0) != -EBADMSG)
                        fail_msg("'%s': %s accepted", bad[i].key, bad[i].value);
        for (size_t i = 0; i < TM_ARRAY_SIZE(bad_summary); i++)
                if (decode_modified(bad_summary[i].key, bad_summary[i].value, 1) != -EBADMSG)
                        fail_msg("summary '%s': %s accepted", bad_summary[i].key,
                                 bad_summary[i].value);
        /* optional members may be absent */
        assert_int_equal(decode_modified("parent", NULL, 0), 0);
        assert_int_equal(decode_modified("summary", NULL, 0), 0);
        assert_int_equal(decode_modified("extra", NULL, 0), 0);
        assert_int_equal(decode_modified("paths", NULL, 0), 0);
}

static int decode_text(const char *text)
{
        struct tm_snapshot d = { 0 };
        int r = tm_snapshot_decode(text, strlen(text), &d);

        tm_snapshot_dispose(&d);
        return r;
}

static void test_decode_malformed(void **state)
{
        tm_buf enc = TM_BUF_INIT(0);
        struct tm_snapshot d = { 0 };

        (void)state;
        encode_fixed(&enc);
        for (size_t len = 0; len < enc.len; len++)
                if (tm_snapshot_decode(enc.data, len, &d) != -EBADMSG)
                        fail_msg("truncated at %zu accepted", len);
        assert_null(d.host);
        assert_int_equal(decode_text("[]"), -EBADMSG);
        assert_int_equal(decode_text("null"), -EBADMSG);
        assert_int_equal(decode_text(""), -EBADMSG);
        assert_int_equal(decode_text("{\"version\":1,\"version\":1}"), -EBADMSG);
        /* a duplicated key in an otherwise valid manifest */
        {
                tm_buf b = TM_BUF_INIT(0);

                assert_int_equal(tm_buf_append(&b, "{\"host\":\"x\",", 12), 0);
                assert_int_equal(tm_buf_append(&b, enc.data + 1, enc.len - 1), 0);
                assert_int_equal(tm_snapshot_decode(b.data, b.len, &d), -EBADMSG);
                tm_buf_dispose(&b);
        }
        /* an embedded NUL in a string */
        assert_int_equal(decode_text("{\"version\":1,\"time\":\"2025-01-07T10:00:00Z\","
                                     "\"host\":\"a\\u0000b\",\"component\":\"c\","
                                     "\"strategy\":\"full\",\"tree\":\"00000000000000000000000000"
                                     "00000000000000000000000000000000000000\"}"),
                         -EBADMSG);
        assert_int_equal(decode_text("{\"version\":1,\"time\":\"2025-01-07T10:00:00Z\","
                                     "\"host\":\"ab\",\"component\":\"c\","
                                     "\"strategy\":\"full\",\"tree\":\"00000000000000000000000000"
                                     "00000000000000000000000000000000000000\"}"),
                         0);
        tm_buf_dispose(&enc);
}

static void test_copy_and_lists(void **state)
{
        struct tm_snapshot s, c;

        (void)state;
        build_fixed(&s);
        assert_int_equal(tm_snapshot_copy(&s, &c), 0);
        assert_snapshot_equal(&s, &c);
        assert_string_equal(c.extra_json, s.extra_json);
        assert_ptr_not_equal(c.host, s.host);
        assert_ptr_not_equal(c.paths, s.paths);
        assert_ptr_not_equal(c.paths[0], s.paths[0]);
        assert_int_equal(tm_snapshot_add_tag(&c, "more"), 0);
        assert_int_equal(c.n_tags, 3);
        assert_int_equal(s.n_tags, 2);
        assert_string_equal(c.tags[2], "more");
        assert_int_equal(tm_snapshot_add_tag(&c, NULL), -EINVAL);
        assert_int_equal(tm_snapshot_add_path(&c, NULL), -EINVAL);
        tm_snapshot_dispose(&c);
        tm_snapshot_dispose(&s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_golden),          cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_optional_absent), cmocka_unit_test(test_encode_rejects),
                cmocka_unit_test(test_decode_rejects),  cmocka_unit_test(test_decode_malformed),
                cmocka_unit_test(test_copy_and_lists),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
