/* Unit tests for check (tm_check_run): a clean repository, a damaged pack
 * (found only when reading data), a missing pack (found by structure
 * alone), a missing tree, and orphan packs (counted, not errors). */
#include "tm_test_util.h"

static struct tmt_fix *fix_with_backup(struct tm_snapshot *s)
{
        struct tmt_fix *f = tmt_fix_new();

        tmt_make_tree(f->src, tmt_seed());
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", s), 0);
        return f;
}

static int run_check(struct tmt_fix *f, int read_data, struct tm_check_stats *st)
{
        struct tm_check_opts o = TM_CHECK_OPTS_INIT;

        o.read_data = read_data;
        o.threads = 2;
        memset(st, 0xee, sizeof(*st)); /* every field must be written */
        return tm_check_run(f->r, &o, st);
}

static void test_check_clean(void **state)
{
        struct tm_snapshot s = { 0 };
        struct tmt_fix *f = fix_with_backup(&s);
        struct tm_check_stats st;
        uint64_t nblobs = 0;

        (void)state;
        assert_int_equal(tm_catalog_blob_count(tm_repo_catalog(f->r), &nblobs), 0);
        assert_int_equal(run_check(f, 0, &st), 0);
        assert_int_equal(st.snapshots, 1);
        assert_int_equal(st.packs, 2); /* one data pack, one tree pack */
        assert_int_equal(st.packs_read, 0);
        assert_int_equal(st.errors, 0);
        assert_int_equal(st.orphan_packs, 0);
        assert_int_equal(st.blobs, nblobs);
        assert_int_equal(st.trees, 4); /* root, sub, sub/deeper, emptydir */

        assert_int_equal(run_check(f, 1, &st), 0);
        assert_int_equal(st.packs_read, 2);
        assert_int_equal(st.errors, 0);
        /* stats are optional */
        {
                struct tm_check_opts o = TM_CHECK_OPTS_INIT;

                assert_int_equal(tm_check_run(f->r, &o, NULL), 0);
        }
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_check_flipped_byte(void **state)
{
        struct tm_snapshot s = { 0 };
        struct tmt_fix *f = fix_with_backup(&s);
        struct tm_check_stats st;
        struct tm_node nd = { 0 };
        struct tm_pack_entry e;
        char pack[PATH_MAX];

        (void)state;
        assert_int_equal(tm_repo_lookup_path(f->r, &s.tree, "big.bin", &nd), 0);
        tmt_blob_pack_path(f, &nd.content[1].id, pack, sizeof(pack), &e);
        tm_node_dispose(&nd);
        tmt_flip_byte(pack, e.offset + 7);

        /* the size is unchanged: structure alone cannot see it */
        assert_int_equal(run_check(f, 0, &st), 0);
        assert_int_equal(st.errors, 0);
        assert_int_equal(run_check(f, 1, &st), -EBADMSG);
        assert_true(st.errors >= 1);
        assert_int_equal(st.packs_read, 2);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_check_damaged_trailer(void **state)
{
        struct tm_snapshot s = { 0 };
        struct tmt_fix *f = fix_with_backup(&s);
        struct tm_check_stats st;
        struct tm_node nd = { 0 };
        struct tm_pack_entry e;
        char pack[PATH_MAX];
        struct stat sb;

        (void)state;
        assert_int_equal(tm_repo_lookup_path(f->r, &s.tree, "a.txt", &nd), 0);
        tmt_blob_pack_path(f, &nd.content[0].id, pack, sizeof(pack), &e);
        tm_node_dispose(&nd);
        assert_int_equal(stat(pack, &sb), 0);
        tmt_flip_byte(pack, (uint64_t)sb.st_size - TM_PACK_TAIL_LEN - 3); /* in the trailer */
        assert_int_equal(run_check(f, 1, &st), -EBADMSG);
        assert_int_equal(st.errors, 1);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_check_missing_pack(void **state)
{
        struct tm_snapshot s = { 0 };
        struct tmt_fix *f = fix_with_backup(&s);
        struct tm_check_stats st;
        struct tm_node nd = { 0 };
        struct tm_pack_entry e;
        char pack[PATH_MAX];

        (void)state;
        assert_int_equal(tm_repo_lookup_path(f->r, &s.tree, "a.txt", &nd), 0);
        tmt_blob_pack_path(f, &nd.content[0].id, pack, sizeof(pack), &e);
        tm_node_dispose(&nd);
        assert_int_equal(unlink(pack), 0);
        assert_int_equal(run_check(f, 0, &st), -EBADMSG);
        assert_true(st.errors >= 1);
        assert_int_equal(st.packs, 1);
        assert_int_equal(run_check(f, 1, &st), -EBADMSG);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_check_truncated_pack(void **state)
{
        struct tm_snapshot s = { 0 };
        struct tmt_fix *f = fix_with_backup(&s);
        struct tm_check_stats st;
        struct tm_node nd = { 0 };
        struct tm_pack_entry e;
        char pack[PATH_MAX];
        struct stat sb;

        (void)state;
        assert_int_equal(tm_repo_lookup_path(f->r, &s.tree, "a.txt", &nd), 0);
        tmt_blob_pack_path(f, &nd.content[0].id, pack, sizeof(pack), &e);
        tm_node_dispose(&nd);
        assert_int_equal(stat(pack, &sb), 0);
        assert_int_equal(truncate(pack, sb.st_size - 1), 0);
        /* a size that differs from the index is found without reading */
        assert_int_equal(run_check(f, 0, &st), -EBADMSG);
        assert_int_equal(st.errors, 1);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_check_missing_tree(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_check_stats st;
        struct tm_snapshot s;
        tm_id tree;

        (void)state;
        memset(&tree, 0x42, sizeof(tree)); /* no such tree blob */
        tmt_snapshot_make(f->r, "files", tmt_time("2025-01-01T00:00:00Z"), &tree, &s);
        assert_int_equal(run_check(f, 0, &st), -EBADMSG);
        assert_int_equal(st.errors, 1);
        assert_int_equal(st.snapshots, 1);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_check_orphans(void **state)
{
        struct tm_snapshot s = { 0 };
        struct tmt_fix *f = fix_with_backup(&s);
        const char *x = "left by an interrupted backup";
        const void *blobs[1] = { x };
        size_t lens[1] = { strlen(x) };
        struct tm_check_stats st;
        tm_id id;

        (void)state;
        tmt_store_blobs(f->r, TM_BLOB_DATA, blobs, lens, 1, 0, &id);
        assert_int_equal(run_check(f, 0, &st), 0);
        assert_int_equal(st.orphan_packs, 1);
        assert_int_equal(st.packs, 3);
        assert_int_equal(st.errors, 0);
        assert_int_equal(run_check(f, 1, &st), 0);
        assert_int_equal(st.orphan_packs, 1);
        assert_int_equal(st.packs_read, 3);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

struct progress_log {
        int calls;
        struct tm_progress last;
};

static void on_progress(const struct tm_progress *p, void *ud)
{
        struct progress_log *l = ud;

        l->calls++;
        l->last = *p;
}

static void test_check_progress(void **state)
{
        struct tm_snapshot s = { 0 };
        struct tmt_fix *f = fix_with_backup(&s);
        struct tm_check_opts o = TM_CHECK_OPTS_INIT;
        struct progress_log log = { 0 };
        struct tm_check_stats st;

        (void)state;
        o.read_data = 1;
        o.threads = 1; /* one reader: calls are not concurrent */
        o.progress = on_progress;
        o.userdata = &log;
        assert_int_equal(tm_check_run(f->r, &o, &st), 0);
        assert_int_equal(log.calls, 2);
        assert_string_equal(log.last.phase, "check");
        assert_int_equal(log.last.files_done, 2);
        assert_int_equal(log.last.files_total, 2);
        assert_int_equal(log.last.bytes_done, log.last.bytes_total);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_check_clean),
                cmocka_unit_test(test_check_flipped_byte),
                cmocka_unit_test(test_check_damaged_trailer),
                cmocka_unit_test(test_check_missing_pack),
                cmocka_unit_test(test_check_truncated_pack),
                cmocka_unit_test(test_check_missing_tree),
                cmocka_unit_test(test_check_orphans),
                cmocka_unit_test(test_check_progress),
        };

        tm_log_set_level(TM_LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
