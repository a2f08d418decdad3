/* Unit tests for repo (repo.c, adopt.c, locks.c): init/open and keys, the
 * catalog cache (refresh, rebuild, recovery from a garbage file), blobs,
 * trees and walking, snapshots and their lookup, adoption of orphan packs,
 * and the writer/exclusive locks. */
#include <pthread.h>
#include <sys/wait.h>

#include "tm_test_util.h"

/* ---- init / open ---- */

static void test_init_twice(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_repo_opts o = tmt_repo_opts(f->repo, f->catalog, TMT_PASS);
        const struct tm_chunker_params *cp;
        tm_repo *again = NULL;
        char p[PATH_MAX];
        struct stat st;

        (void)state;
        assert_int_equal(strlen(tm_repo_id(f->r)), TM_ID_HEX_LEN);
        assert_string_equal(tm_repo_location(f->r), f->repo);
        assert_string_equal(tm_repo_catalog_path(f->r), f->catalog);
        assert_non_null(tm_repo_backend(f->r));
        assert_non_null(tm_repo_catalog(f->r));
        assert_non_null(tm_repo_key(f->r));
        assert_int_equal(tm_repo_compression_level(f->r), 3);
        cp = tm_chunker_params(tm_repo_chunker(f->r));
        assert_int_equal(cp->min, TMT_CHUNK_MIN);
        assert_int_equal(cp->avg, TMT_CHUNK_AVG);
        assert_int_equal(cp->max, TMT_CHUNK_MAX);
        tmt_path(p, sizeof(p), f->repo, "config");
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(stat(f->catalog, &st), 0);

        assert_int_equal(tm_repo_init(&o, &again), -EEXIST);
        assert_null(again);
        /* bad parameters are refused before anything is created */
        o.chunker.avg = 10000; /* not a power of two */
        tmt_path(p, sizeof(p), f->dir, "other");
        o.location = p;
        assert_int_equal(tm_repo_init(&o, &again), -EINVAL);
        o = tmt_repo_opts(p, f->catalog, TMT_PASS);
        o.compression_level = 20;
        assert_int_equal(tm_repo_init(&o, &again), -EINVAL);
        o.compression_level = 3;
        o.location = "";
        assert_int_equal(tm_repo_init(&o, &again), -EINVAL);
        tmt_fix_free(f);
}

static void test_open_password(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_repo_opts o = tmt_repo_opts(f->repo, f->catalog, TMT_PASS);
        tm_buf before = TM_BUF_INIT(0), after = TM_BUF_INIT(0);
        char id[TM_ID_HEX_LEN + 1], missing[PATH_MAX];
        tm_repo *r = NULL;

        (void)state;
        snprintf(id, sizeof(id), "%s", tm_repo_id(f->r));
        tm_repo_free(f->r);
        f->r = NULL;

        assert_int_equal(tm_repo_open(&o, &r), 0);
        assert_string_equal(tm_repo_id(r), id);
        tm_repo_free(r);
        r = NULL;

        tmt_listing(f->repo, &before);
        o = tmt_repo_opts(f->repo, f->catalog, "wrong password");
        assert_int_equal(tm_repo_open(&o, &r), -EACCES);
        assert_null(r);
        /* a passphrase that is a prefix of the right one is still wrong */
        o = tmt_repo_opts(f->repo, f->catalog, TMT_PASS);
        o.password_len--;
        assert_int_equal(tm_repo_open(&o, &r), -EACCES);
        tmt_listing(f->repo, &after);
        assert_string_equal((const char *)before.data, (const char *)after.data);

        tmt_path(missing, sizeof(missing), f->dir, "nothing-here");
        o = tmt_repo_opts(missing, f->catalog, TMT_PASS);
        assert_int_equal(tm_repo_open(&o, &r), -ENOENT);
        assert_null(r);

        tm_repo_free(NULL); /* NULL-safe */
        tm_buf_dispose(&before);
        tm_buf_dispose(&after);
        tmt_fix_free(f);
}

static void test_open_config_corrupt(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_repo_opts o = tmt_repo_opts(f->repo, f->catalog, TMT_PASS);
        tm_repo *r = NULL;
        char p[PATH_MAX];
        struct stat st;

        (void)state;
        tm_repo_free(f->r);
        f->r = NULL;
        tmt_path(p, sizeof(p), f->repo, "config");
        assert_int_equal(stat(p, &st), 0);
        tmt_flip_byte(p, (uint64_t)st.st_size / 2);
        assert_int_equal(tm_repo_open(&o, &r), -EBADMSG);
        assert_null(r);
        tmt_fix_free(f);
}

/* ---- keys ---- */

static int open_with(struct tmt_fix *f, const char *pass)
{
        struct tm_repo_opts o = tmt_repo_opts(f->repo, f->catalog, pass);
        tm_repo *r = NULL;
        int rc = tm_repo_open(&o, &r);

        tm_repo_free(r);
        return rc;
}

static void test_keys(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_key_info *keys = NULL;
        size_t n = 0;
        tm_id first, second, third, bogus;

        (void)state;
        assert_int_equal(tm_repo_key_list(f->r, &keys, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(keys[0].current, 1);
        assert_string_equal(keys[0].alg, "argon2id");
        assert_true(keys[0].created > 0);
        assert_true(keys[0].host[0] != 0);
        first = keys[0].id;
        free(keys);

        assert_int_equal(tm_repo_key_add(f->r, "second", 6, &second), 0);
        assert_int_equal(tm_repo_key_list(f->r, &keys, &n), 0);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++) {
                int is_first = tm_id_cmp(&keys[i].id, &first) == 0;

                assert_true(is_first || tm_id_cmp(&keys[i].id, &second) == 0);
                assert_int_equal(keys[i].current, is_first);
        }
        free(keys);
        assert_int_equal(open_with(f, "second"), 0);
        assert_int_equal(open_with(f, TMT_PASS), 0);

        /* the key in use cannot go */
        assert_int_equal(tm_repo_key_remove(f->r, &first), -EBUSY);
        assert_int_equal(tm_repo_key_remove(f->r, &second), 0);
        assert_int_equal(tm_repo_key_remove(f->r, &second), -ENOENT);
        memset(&bogus, 0x5a, sizeof(bogus));
        assert_int_equal(tm_repo_key_remove(f->r, &bogus), -ENOENT);
        assert_int_equal(open_with(f, "second"), -EACCES);

        /* passwd: a new key replaces the one in use */
        assert_int_equal(tm_repo_key_passwd(f->r, "third", 5, &third), 0);
        assert_int_equal(tm_repo_key_list(f->r, &keys, &n), 0);
        assert_int_equal(n, 1);
        assert_memory_equal(keys[0].id.b, third.b, TM_ID_LEN);
        assert_int_equal(keys[0].current, 1);
        free(keys);
        assert_int_equal(tm_repo_key_remove(f->r, &third), -EBUSY);
        assert_int_equal(open_with(f, TMT_PASS), -EACCES);
        assert_int_equal(open_with(f, "third"), 0);
        tmt_fix_free(f);
}

/* ---- snapshots ---- */

static void test_snapshot_save_load_list_remove(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_snapshot a, b, c, got = { 0 }, *list = NULL;
        size_t n = 0;
        tm_id tree;

        (void)state;
        memset(&tree, 0x11, sizeof(tree));
        /* saved out of time order: list is oldest first */
        tmt_snapshot_make(f->r, "db", tmt_time("2025-01-07T10:00:00Z"), &tree, &b);
        tmt_snapshot_make(f->r, "db", tmt_time("2025-01-06T10:00:00Z"), &tree, &a);
        tmt_snapshot_make(f->r, "files", tmt_time("2025-01-08T10:00:00Z"), &tree, &c);
        assert_false(tm_id_is_zero(&a.id));
        assert_int_not_equal(tm_id_cmp(&a.id, &b.id), 0);

        assert_int_equal(tm_repo_snapshot_load(f->r, &b.id, &got), 0);
        assert_memory_equal(got.id.b, b.id.b, TM_ID_LEN);
        assert_true(got.time == b.time);
        assert_string_equal(got.component, "db");
        assert_string_equal(got.host, "testhost");
        assert_memory_equal(got.tree.b, tree.b, TM_ID_LEN);
        assert_int_equal(got.n_paths, 1);
        assert_string_equal(got.paths[0], "/src");
        tm_snapshot_dispose(&got);

        assert_int_equal(tm_repo_snapshot_list(f->r, NULL, &list, &n), 0);
        assert_int_equal(n, 3);
        assert_memory_equal(list[0].id.b, a.id.b, TM_ID_LEN);
        assert_memory_equal(list[1].id.b, b.id.b, TM_ID_LEN);
        assert_memory_equal(list[2].id.b, c.id.b, TM_ID_LEN);
        tm_snapshot_array_free(list, n);
        assert_int_equal(tm_repo_snapshot_list(f->r, "db", &list, &n), 0);
        assert_int_equal(n, 2);
        assert_string_equal(list[0].component, "db");
        assert_string_equal(list[1].component, "db");
        tm_snapshot_array_free(list, n);
        assert_int_equal(tm_repo_snapshot_list(f->r, "none", &list, &n), 0);
        assert_int_equal(n, 0);
        tm_snapshot_array_free(list, n);
        tm_snapshot_array_free(NULL, 0);

        assert_int_equal(tm_repo_snapshot_remove(f->r, &a.id), 0);
        assert_int_equal(tm_repo_snapshot_load(f->r, &a.id, &got), -ENOENT);
        assert_int_equal(tmt_snapshot_count(f->r), 2);
        /* the removal is in the repository, not only in the catalog */
        tmt_fix_reopen(f);
        assert_int_equal(tmt_snapshot_count(f->r), 2);
        assert_int_equal(tm_repo_snapshot_remove(f->r, &a.id), 0); /* already gone: fine */

        tm_snapshot_dispose(&a);
        tm_snapshot_dispose(&b);
        tm_snapshot_dispose(&c);
        tmt_fix_free(f);
}

static void test_snapshot_find(void **state)
{
        static const char *const times[] = {
                "2025-01-06T12:00:00Z", "2025-01-07T10:00:00Z", "2025-01-07T10:00:30Z",
                "2025-01-07T23:59:30Z", "2025-01-08T00:00:00Z",
        };
        struct tmt_fix *f = tmt_fix_new();
        struct tm_snapshot s[17], got = { 0 };
        char hex[TM_ID_HEX_LEN + 1], prefix[2] = { 0 };
        int count[16] = { 0 };
        tm_id tree;

        (void)state;
        memset(&tree, 0x22, sizeof(tree));
        for (size_t i = 0; i < TM_ARRAY_SIZE(times); i++)
                tmt_snapshot_make(f->r, "db", tmt_time(times[i]), &tree, &s[i]);
        /* more snapshots (of another component, earlier) so that two ids share
         * a first hex digit: 17 ids, 16 digits */
        for (size_t i = TM_ARRAY_SIZE(times); i < 17; i++)
                tmt_snapshot_make(f->r, "other",
                                  tmt_time("2024-06-01T00:00:00Z") + (int64_t)i * TM_NSEC_PER_SEC,
                                  &tree, &s[i]);

        assert_int_equal(tm_repo_snapshot_find(f->r, "latest", "db", &got), 0);
        assert_memory_equal(got.id.b, s[4].id.b, TM_ID_LEN);
        tm_snapshot_dispose(&got);
        assert_int_equal(tm_repo_snapshot_find(f->r, "latest", NULL, &got), 0);
        assert_memory_equal(got.id.b, s[4].id.b, TM_ID_LEN);
        tm_snapshot_dispose(&got);
        assert_int_equal(tm_repo_snapshot_find(f->r, "latest", "nope", &got), -ENOENT);

        /* a date means at or before the end of that day */
        assert_int_equal(tm_repo_snapshot_find(f->r, "@2025-01-07", "db", &got), 0);
        assert_memory_equal(got.id.b, s[3].id.b, TM_ID_LEN);
        tm_snapshot_dispose(&got);
        /* minute precision: 10:00:30 is within 10:00 */
        assert_int_equal(tm_repo_snapshot_find(f->r, "@2025-01-07T10:00", "db", &got), 0);
        assert_memory_equal(got.id.b, s[2].id.b, TM_ID_LEN);
        tm_snapshot_dispose(&got);
        /* second precision: exactly 10:00:00 */
        assert_int_equal(tm_repo_snapshot_find(f->r, "@2025-01-07T10:00:00Z", "db", &got), 0);
        assert_memory_equal(got.id.b, s[1].id.b, TM_ID_LEN);
        tm_snapshot_dispose(&got);
        assert_int_equal(tm_repo_snapshot_find(f->r, "@2025-01-08", "db", &got), 0);
        assert_memory_equal(got.id.b, s[4].id.b, TM_ID_LEN);
        tm_snapshot_dispose(&got);
        assert_int_equal(tm_repo_snapshot_find(f->r, "@2025-01-01", "db", &got), -ENOENT);
        assert_int_equal(tm_repo_snapshot_find(f->r, "@garbage", "db", &got), -EINVAL);
        assert_int_equal(tm_repo_snapshot_find(f->r, "@2025-02-30", "db", &got), -EINVAL);
        assert_int_equal(tm_repo_snapshot_find(f->r, "", NULL, &got), -EINVAL);
        assert_int_equal(tm_repo_snapshot_find(f->r, "not-hex!", NULL, &got), -EINVAL);

        /* id prefixes */
        tm_id_hex(&s[2].id, hex);
        assert_int_equal(tm_repo_snapshot_find(f->r, hex, NULL, &got), 0);
        assert_memory_equal(got.id.b, s[2].id.b, TM_ID_LEN);
        tm_snapshot_dispose(&got);
        hex[12] = 0;
        assert_int_equal(tm_repo_snapshot_find(f->r, hex, NULL, &got), 0);
        assert_memory_equal(got.id.b, s[2].id.b, TM_ID_LEN);
        assert_string_equal(got.component, "db");
        tm_snapshot_dispose(&got);
        /* the component filter applies to prefixes too */
        assert_int_equal(tm_repo_snapshot_find(f->r, hex, "other", &got), -ENOENT);
        for (size_t i = 0; i < 17; i++) {
                tm_id_hex(&s[i].id, hex);
                count[hex[0] >= 'a' ? hex[0] - 'a' + 10 : hex[0] - '0']++;
        }
        for (int d = 0; d < 16; d++) {
                if (count[d] < 2)
                        continue;
                prefix[0] = "0123456789abcdef"[d];
                assert_int_equal(tm_repo_snapshot_find(f->r, prefix, NULL, &got), -EEXIST);
                break;
        }
        assert_true(prefix[0] != 0);

        for (size_t i = 0; i < 17; i++)
                tm_snapshot_dispose(&s[i]);
        tmt_fix_free(f);
}

/* ---- catalog ---- */

static void test_refresh_second_handle(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        char cat2[PATH_MAX];
        struct tm_repo_opts o;
        tm_repo *r2 = NULL;
        struct tm_snapshot s;
        tm_id tree;

        (void)state;
        tmt_path(cat2, sizeof(cat2), f->dir, "cache2/catalog.db");
        o = tmt_repo_opts(f->repo, cat2, TMT_PASS);
        assert_int_equal(tm_repo_open(&o, &r2), 0);
        assert_string_equal(tm_repo_id(r2), tm_repo_id(f->r));
        assert_int_equal(tmt_snapshot_count(r2), 0);

        memset(&tree, 0x33, sizeof(tree));
        tmt_snapshot_make(f->r, "db", tmt_time("2025-03-01T00:00:00Z"), &tree, &s);
        assert_int_equal(tmt_snapshot_count(r2), 0); /* a cache: stale until refreshed */
        assert_int_equal(tm_repo_refresh(r2), 0);
        assert_int_equal(tmt_snapshot_count(r2), 1);
        {
                struct tm_snapshot got = { 0 };

                assert_int_equal(tm_repo_snapshot_find(r2, "latest", NULL, &got), 0);
                assert_memory_equal(got.id.b, s.id.b, TM_ID_LEN);
                tm_snapshot_dispose(&got);
        }
        /* a removal by the other handle is seen too */
        assert_int_equal(tm_repo_snapshot_remove(f->r, &s.id), 0);
        assert_int_equal(tm_repo_refresh(r2), 0);
        assert_int_equal(tmt_snapshot_count(r2), 0);

        tm_snapshot_dispose(&s);
        tm_repo_free(r2);
        tmt_fix_free(f);
}

struct refresher {
        tm_repo *repo;
        volatile int stop;
        int r, rounds;
};

static void *refresh_loop(void *arg)
{
        struct refresher *x = arg;

        while (!x->stop && x->r == 0) {
                x->r = tm_repo_refresh(x->repo);
                x->rounds++;
        }
        return NULL;
}

/* backupd holds two handles on one catalog (the WAL stream and a backup
 * job): one's refresh may adopt an index file the other has put but not
 * yet recorded. Neither may fail for it. The window is narrow, so many
 * rounds; before the fix this failed with -EEXIST within a few dozen. */
static void test_shared_catalog_race(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct refresher x = { 0 };
        struct tm_repo_opts o;
        pthread_t th;
        uint8_t blob[64];

        (void)state;
        o = tmt_repo_opts(f->repo, f->catalog, TMT_PASS);
        assert_int_equal(tm_repo_open(&o, &x.repo), 0);
        assert_int_equal(pthread_create(&th, NULL, refresh_loop, &x), 0);
        for (int i = 0; i < 300 && x.r == 0; i++) {
                const void *blobs[1] = { blob };
                size_t lens[1] = { sizeof(blob) };
                tm_id id;

                memset(blob, 0, sizeof(blob));
                memcpy(blob, &i, sizeof(i));
                tmt_store_blobs(f->r, TM_BLOB_DATA, blobs, lens, 1, 1, &id);
                assert_int_equal(tm_repo_blob_has(f->r, &id), 1);
        }
        x.stop = 1;
        pthread_join(th, NULL);
        assert_int_equal(x.r, 0);
        assert_true(x.rounds > 0);
        assert_int_equal(tm_repo_refresh(f->r), 0);
        tm_repo_free(x.repo);
        tmt_fix_free(f);
}

static void test_catalog_rebuild(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        const char *blob = "catalog rebuild blob";
        const void *blobs[1] = { blob };
        size_t lens[1] = { strlen(blob) };
        struct tm_snapshot s1, s2;
        tm_id tree, id;

        (void)state;
        memset(&tree, 0x44, sizeof(tree));
        tmt_store_blobs(f->r, TM_BLOB_DATA, blobs, lens, 1, 1, &id);
        tmt_snapshot_make(f->r, "db", tmt_time("2025-03-01T00:00:00Z"), &tree, &s1);
        tmt_snapshot_make(f->r, "db", tmt_time("2025-03-02T00:00:00Z"), &tree, &s2);

        assert_int_equal(tm_repo_catalog_rebuild(f->r), 0);
        assert_int_equal(tmt_snapshot_count(f->r), 2);
        assert_int_equal(tm_repo_blob_has(f->r, &id), 1);

        /* garbage where the catalog was: open notices and rebuilds */
        tm_repo_free(f->r);
        f->r = NULL;
        {
                uint64_t seed = tmt_seed();
                char p[PATH_MAX + 16];

                tmt_write_rand(f->catalog, &seed, 8192);
                snprintf(p, sizeof(p), "%s-wal", f->catalog);
                unlink(p);
                snprintf(p, sizeof(p), "%s-shm", f->catalog);
                unlink(p);
        }
        tmt_fix_reopen(f);
        assert_int_equal(tmt_snapshot_count(f->r), 2);
        assert_int_equal(tm_repo_blob_has(f->r, &id), 1);
        {
                tm_buf b = TM_BUF_INIT(0);

                assert_int_equal(tm_repo_blob_load(f->r, &id, &b), 0);
                assert_int_equal(b.len, lens[0]);
                assert_memory_equal(b.data, blob, lens[0]);
                tm_buf_dispose(&b);
        }
        /* a catalog of another repository is not trusted either */
        {
                struct tmt_fix *g = tmt_fix_new();
                struct tm_repo_opts o = tmt_repo_opts(g->repo, f->catalog, TMT_PASS);

                tm_repo_free(f->r);
                f->r = NULL;
                tm_repo_free(g->r);
                g->r = NULL;
                assert_int_equal(tm_repo_open(&o, &g->r), 0);
                assert_int_equal(tmt_snapshot_count(g->r), 0);
                assert_int_equal(tm_repo_blob_has(g->r, &id), 0);
                tmt_fix_free(g);
                tmt_fix_reopen(f);
                assert_int_equal(tmt_snapshot_count(f->r), 2);
        }
        tm_snapshot_dispose(&s1);
        tm_snapshot_dispose(&s2);
        tmt_fix_free(f);
}

/* ---- blobs ---- */

static void test_blobs(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        uint64_t seed = tmt_seed();
        uint8_t big[50000], small[] = "hello blob";
        const void *blobs[2] = { big, small };
        size_t lens[2] = { sizeof(big), sizeof(small) };
        tm_buf b = TM_BUF_INIT(0);
        struct tm_pack_entry e;
        char pack_path[PATH_MAX], name[128];
        tm_id ids[2], unknown, pack_id;

        (void)state;
        tmt_fill(&seed, big, sizeof(big));
        pack_id = tmt_store_blobs(f->r, TM_BLOB_DATA, blobs, lens, 2, 1, ids);
        tm_repo_pack_name(&pack_id, name, sizeof(name));
        {
                char hex[TM_ID_HEX_LEN + 1], want[128];

                tm_id_hex(&pack_id, hex);
                snprintf(want, sizeof(want), "data/%.2s/%s", hex, hex);
                assert_string_equal(name, want);
        }
        for (int i = 0; i < 2; i++) {
                assert_int_equal(tm_repo_blob_has(f->r, &ids[i]), 1);
                assert_int_equal(tm_repo_blob_load(f->r, &ids[i], &b), 0);
                assert_int_equal(b.len, lens[i]);
                assert_memory_equal(b.data, blobs[i], lens[i]);
        }
        memset(&unknown, 0x77, sizeof(unknown));
        assert_int_equal(tm_repo_blob_has(f->r, &unknown), 0);
        assert_int_equal(tm_repo_blob_load(f->r, &unknown, &b), -ENOENT);

        /* load_at with the entry from the catalog */
        tmt_blob_pack_path(f, &ids[1], pack_path, sizeof(pack_path), &e);
        tm_buf_clear(&b);
        assert_int_equal(tm_repo_blob_load_at(f->r, &pack_id, &e, &b), 0);
        assert_int_equal(b.len, lens[1]);
        assert_memory_equal(b.data, small, lens[1]);

        /* one flipped byte inside the big blob: -EBADMSG, no bytes */
        tmt_blob_pack_path(f, &ids[0], pack_path, sizeof(pack_path), &e);
        tmt_flip_byte(pack_path, e.offset + e.length / 2);
        tm_buf_dispose(&b);
        assert_int_equal(tm_repo_blob_load(f->r, &ids[0], &b), -EBADMSG);
        assert_int_equal(b.len, 0);
        /* the other blob of the pack is unaffected */
        assert_int_equal(tm_repo_blob_load(f->r, &ids[1], &b), 0);
        assert_memory_equal(b.data, small, lens[1]);
        /* a truncated pack is an integrity failure too */
        assert_int_equal(truncate(pack_path, (off_t)e.offset + 1), 0);
        assert_int_equal(tm_repo_blob_load(f->r, &ids[1], &b), -EBADMSG);
        tm_buf_dispose(&b);
        tmt_fix_free(f);
}

struct run_seen {
        const void *const *blobs;
        const size_t *lens;
        size_t n, fail_at; /* fail_at: fn answers -EIO at that index */
};

static int run_cb(size_t i, const tm_buf *plain, void *ud)
{
        struct run_seen *rs = ud;

        assert_int_equal(i, rs->n);
        if (i == rs->fail_at)
                return -EIO;
        assert_int_equal(plain->len, rs->lens[i]);
        assert_memory_equal(plain->data, rs->blobs[i], rs->lens[i]);
        rs->n++;
        return 0;
}

/* Blobs stored back to back in one pack come back with one read each run. */
static void test_blob_runs(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        uint64_t seed = tmt_seed();
        static uint8_t data[5][30000];
        const void *blobs[5];
        size_t lens[5];
        struct tm_pack_entry es[5], gap[2];
        tm_id ids[5], pack_id, packs[5], unknown;
        char pack_path[PATH_MAX];
        struct run_seen rs = { .fail_at = SIZE_MAX };

        (void)state;
        for (int i = 0; i < 5; i++) {
                tmt_fill(&seed, data[i], sizeof(data[i]));
                blobs[i] = data[i];
                lens[i] = sizeof(data[i]) - (size_t)i * 1000;
        }
        pack_id = tmt_store_blobs(f->r, TM_BLOB_DATA, blobs, lens, 5, 1, ids);
        for (int i = 0; i < 5; i++) {
                assert_int_equal(tm_repo_blob_locate(f->r, &ids[i], &packs[i], &es[i]), 0);
                assert_int_equal(tm_id_cmp(&packs[i], &pack_id), 0);
                assert_memory_equal(&es[i].id, &ids[i], sizeof(tm_id));
        }
        memset(&unknown, 0x55, sizeof(unknown));
        assert_int_equal(tm_repo_blob_locate(f->r, &unknown, &packs[0], &es[0]), -ENOENT);
        assert_int_equal(tm_repo_blob_locate(f->r, &ids[0], &packs[0], &es[0]), 0);

        /* run lengths: order, gaps and the span bound (one blob always) */
        assert_int_equal(tm_repo_blob_run_len(es, 0, 1 << 20, 0), 0);
        assert_int_equal(tm_repo_blob_run_len(es, 5, 1 << 20, 0), 5);
        assert_int_equal(tm_repo_blob_run_len(es, 5, es[0].length + es[1].length, 0), 2);
        assert_int_equal(tm_repo_blob_run_len(es, 5, 1, 1 << 20), 1);
        gap[0] = es[0];
        gap[1] = es[2];
        assert_int_equal(tm_repo_blob_run_len(gap, 2, 1 << 20, 0), 1);
        assert_int_equal(tm_repo_blob_run_len(gap, 2, 1 << 20, es[1].length - 1), 1);
        assert_int_equal(tm_repo_blob_run_len(gap, 2, 1 << 20, es[1].length), 2);
        gap[0] = es[2];
        gap[1] = es[0];
        assert_int_equal(tm_repo_blob_run_len(gap, 2, 1 << 20, 1 << 20), 1); /* backwards */
        gap[1] = es[2];
        assert_int_equal(tm_repo_blob_run_len(gap, 2, 1 << 20, 1 << 20), 1); /* twice */

        /* the whole pack in one read, in order */
        rs.blobs = blobs;
        rs.lens = lens;
        assert_int_equal(tm_repo_blob_load_run(f->r, &pack_id, es, 5, run_cb, &rs), 0);
        assert_int_equal(rs.n, 5);
        /* a run from the middle */
        rs = (struct run_seen){ .blobs = blobs + 2, .lens = lens + 2, .fail_at = SIZE_MAX };
        assert_int_equal(tm_repo_blob_load_run(f->r, &pack_id, es + 2, 3, run_cb, &rs), 0);
        assert_int_equal(rs.n, 3);
        /* out of order or overlapping: refused before any read */
        assert_int_equal(tm_repo_blob_load_run(f->r, &pack_id, gap, 2, run_cb, &rs), -EINVAL);
        gap[0] = es[1];
        gap[1] = es[0];
        assert_int_equal(tm_repo_blob_load_run(f->r, &pack_id, gap, 2, run_cb, &rs), -EINVAL);
        /* across a gap: the blob between is read, not handed out */
        {
                const void *b2[2] = { blobs[0], blobs[3] };
                size_t l2[2] = { lens[0], lens[3] };

                gap[0] = es[0];
                gap[1] = es[3];
                rs = (struct run_seen){ .blobs = b2, .lens = l2, .fail_at = SIZE_MAX };
                assert_int_equal(tm_repo_blob_load_run(f->r, &pack_id, gap, 2, run_cb, &rs), 0);
                assert_int_equal(rs.n, 2);
        }
        assert_int_equal(tm_repo_blob_load_run(f->r, &pack_id, es, 0, run_cb, &rs), 0);
        /* fn's error stops the run */
        rs = (struct run_seen){ .blobs = blobs, .lens = lens, .fail_at = 1 };
        assert_int_equal(tm_repo_blob_load_run(f->r, &pack_id, es, 5, run_cb, &rs), -EIO);
        assert_int_equal(rs.n, 1);

        /* a damaged third blob: the two before it are handed out, then -EBADMSG */
        tmt_blob_pack_path(f, &ids[2], pack_path, sizeof(pack_path), &es[2]);
        tmt_flip_byte(pack_path, es[2].offset + es[2].length / 2);
        rs = (struct run_seen){ .blobs = blobs, .lens = lens, .fail_at = SIZE_MAX };
        assert_int_equal(tm_repo_blob_load_run(f->r, &pack_id, es, 5, run_cb, &rs), -EBADMSG);
        assert_int_equal(rs.n, 2);
        /* a truncated pack: nothing handed out */
        assert_int_equal(truncate(pack_path, (off_t)es[4].offset + 1), 0);
        rs = (struct run_seen){ .blobs = blobs, .lens = lens, .fail_at = SIZE_MAX };
        assert_int_equal(tm_repo_blob_load_run(f->r, &pack_id, es, 5, run_cb, &rs), -EBADMSG);
        assert_int_equal(rs.n, 0);
        tmt_fix_free(f);
}

/* ---- trees, walk, lookup ---- */

/* root { a/ { x (file), y -> x }, b (file), c/ { d/ { e (file) } } } */
static tm_id build_tree(tm_repo *repo, tm_id *ret_x_blob)
{
        const char *x = "content of x", *bdata = "content of b", *edata = "content of e";
        const void *blobs[3] = { x, bdata, edata };
        size_t lens[3] = { strlen(x), strlen(bdata), strlen(edata) };
        tm_id ids[3], ta, tc, td, root;
        struct tm_content cx, cb, ce;
        struct tm_tree t = TM_TREE_INIT;

        tmt_store_blobs(repo, TM_BLOB_DATA, blobs, lens, 3, 1, ids);
        cx = (struct tm_content){ ids[0], lens[0] };
        cb = (struct tm_content){ ids[1], lens[1] };
        ce = (struct tm_content){ ids[2], lens[2] };
        /* added out of order: encode sorts */
        tmt_tree_add(&t, "y", TM_NODE_SYMLINK, NULL, "x", NULL, 0);
        tmt_tree_add(&t, "x", TM_NODE_FILE, NULL, NULL, &cx, 1);
        ta = tmt_store_tree(repo, &t);
        tm_tree_dispose(&t);
        t = TM_TREE_INIT;
        tmt_tree_add(&t, "e", TM_NODE_FILE, NULL, NULL, &ce, 1);
        td = tmt_store_tree(repo, &t);
        tm_tree_dispose(&t);
        t = TM_TREE_INIT;
        tmt_tree_add(&t, "d", TM_NODE_DIR, &td, NULL, NULL, 0);
        tc = tmt_store_tree(repo, &t);
        tm_tree_dispose(&t);
        t = TM_TREE_INIT;
        tmt_tree_add(&t, "c", TM_NODE_DIR, &tc, NULL, NULL, 0);
        tmt_tree_add(&t, "b", TM_NODE_FILE, NULL, NULL, &cb, 1);
        tmt_tree_add(&t, "a", TM_NODE_DIR, &ta, NULL, NULL, 0);
        root = tmt_store_tree(repo, &t);
        tm_tree_dispose(&t);
        if (ret_x_blob)
                *ret_x_blob = ids[0];
        return root;
}

struct walk_log {
        char paths[16][64];
        int n;
        const char *skip; /* return 1 for this directory */
        const char *stop; /* return 7 here */
};

static int walk_cb(const char *path, const struct tm_node *nd, void *ud)
{
        struct walk_log *w = ud;
        const char *slash = strrchr(path, '/');

        assert_true(w->n < 16);
        /* the node is the one the path names */
        assert_string_equal(nd->name, slash ? slash + 1 : path);
        snprintf(w->paths[w->n++], sizeof(w->paths[0]), "%s", path);
        if (w->skip && strcmp(path, w->skip) == 0)
                return 1;
        if (w->stop && strcmp(path, w->stop) == 0)
                return 7;
        return 0;
}

static void test_tree_walk_lookup(void **state)
{
        static const char *const all[] = { "a", "a/x", "a/y", "b", "c", "c/d", "c/d/e" };
        struct tmt_fix *f = tmt_fix_new();
        struct walk_log w = { 0 };
        struct tm_tree t = TM_TREE_INIT;
        struct tm_node nd = { 0 };
        tm_id root, xblob;

        (void)state;
        root = build_tree(f->r, &xblob);

        assert_int_equal(tm_repo_tree_load(f->r, &root, &t), 0);
        assert_int_equal(t.n, 3);
        assert_string_equal(t.nodes[0].name, "a");
        assert_string_equal(t.nodes[1].name, "b");
        assert_string_equal(t.nodes[2].name, "c");
        assert_int_equal(t.nodes[0].type, TM_NODE_DIR);
        tm_tree_dispose(&t);
        /* a data blob is not a tree; an unknown id is not found */
        assert_int_equal(tm_repo_tree_load(f->r, &xblob, &t), -EBADMSG);
        {
                tm_id unknown;

                memset(&unknown, 0x99, sizeof(unknown));
                assert_int_equal(tm_repo_tree_load(f->r, &unknown, &t), -ENOENT);
        }

        assert_int_equal(tm_repo_walk(f->r, &root, walk_cb, &w), 0);
        assert_int_equal(w.n, (int)TM_ARRAY_SIZE(all));
        for (size_t i = 0; i < TM_ARRAY_SIZE(all); i++)
                assert_string_equal(w.paths[i], all[i]);

        memset(&w, 0, sizeof(w));
        w.skip = "a";
        assert_int_equal(tm_repo_walk(f->r, &root, walk_cb, &w), 0);
        assert_int_equal(w.n, 5);
        assert_string_equal(w.paths[1], "b");

        memset(&w, 0, sizeof(w));
        w.stop = "b";
        assert_int_equal(tm_repo_walk(f->r, &root, walk_cb, &w), 7);
        assert_int_equal(w.n, 4);

        assert_int_equal(tm_repo_lookup_path(f->r, &root, "", &nd), 0);
        assert_int_equal(nd.type, TM_NODE_DIR);
        assert_memory_equal(nd.subtree.b, root.b, TM_ID_LEN);
        tm_node_dispose(&nd);
        assert_int_equal(tm_repo_lookup_path(f->r, &root, "/", &nd), 0);
        assert_memory_equal(nd.subtree.b, root.b, TM_ID_LEN);
        tm_node_dispose(&nd);
        assert_int_equal(tm_repo_lookup_path(f->r, &root, "a/x", &nd), 0);
        assert_string_equal(nd.name, "x");
        assert_int_equal(nd.type, TM_NODE_FILE);
        assert_int_equal(nd.n_content, 1);
        assert_memory_equal(nd.content[0].id.b, xblob.b, TM_ID_LEN);
        tm_node_dispose(&nd);
        assert_int_equal(tm_repo_lookup_path(f->r, &root, "/c/d/e", &nd), 0);
        assert_string_equal(nd.name, "e");
        tm_node_dispose(&nd);
        assert_int_equal(tm_repo_lookup_path(f->r, &root, "a/./y", &nd), 0);
        assert_int_equal(nd.type, TM_NODE_SYMLINK);
        assert_string_equal(nd.target, "x");
        tm_node_dispose(&nd);
        assert_int_equal(tm_repo_lookup_path(f->r, &root, "c/d/", &nd), 0);
        assert_int_equal(nd.type, TM_NODE_DIR);
        tm_node_dispose(&nd);
        assert_int_equal(tm_repo_lookup_path(f->r, &root, "a/../b", &nd), -ENOENT);
        assert_int_equal(tm_repo_lookup_path(f->r, &root, "b/x", &nd), -ENOENT);
        assert_int_equal(tm_repo_lookup_path(f->r, &root, "zzz", &nd), -ENOENT);
        assert_int_equal(tm_repo_lookup_path(f->r, &root, "a/y/x", &nd), -ENOENT);
        tmt_fix_free(f);
}

/* ---- adoption ---- */

static void test_adopt_orphan_packs(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        const char *x = "orphan one", *y = "orphan two";
        const void *blobs[2] = { x, y };
        size_t lens[2] = { strlen(x), strlen(y) };
        tm_buf b = TM_BUF_INIT(0);
        char cat2[PATH_MAX];
        tm_id ids[2];

        (void)state;
        assert_int_equal(tm_repo_adopt_orphan_packs(f->r), 0);
        tmt_store_blobs(f->r, TM_BLOB_DATA, blobs, lens, 2, 0, ids);
        assert_int_equal(tm_repo_blob_has(f->r, &ids[0]), 0);
        assert_int_equal(tm_repo_blob_load(f->r, &ids[0], &b), -ENOENT);
        /* junk in data/ is ignored, not adopted and not an error */
        {
                char p[PATH_MAX];

                tmt_path(p, sizeof(p), f->repo, "data/00");
                mkdir(p, 0755);
                tmt_path(
                        p, sizeof(p), f->repo,
                        "data/00/00000000000000000000000000000000000000000000000000000000000000ff");
                tmt_write(p, "TMP1", 4);
        }

        assert_int_equal(tm_repo_adopt_orphan_packs(f->r), 1);
        for (int i = 0; i < 2; i++) {
                assert_int_equal(tm_repo_blob_has(f->r, &ids[i]), 1);
                assert_int_equal(tm_repo_blob_load(f->r, &ids[i], &b), 0);
                assert_int_equal(b.len, lens[i]);
                assert_memory_equal(b.data, blobs[i], lens[i]);
        }
        assert_int_equal(tm_repo_adopt_orphan_packs(f->r), 0);

        /* adoption wrote an index file: a fresh catalog sees the blobs */
        tmt_path(cat2, sizeof(cat2), f->dir, "catalog2.db");
        {
                struct tm_repo_opts o = tmt_repo_opts(f->repo, cat2, TMT_PASS);
                tm_repo *r2 = NULL;

                assert_int_equal(tm_repo_open(&o, &r2), 0);
                assert_int_equal(tm_repo_blob_has(r2, &ids[1]), 1);
                tm_repo_free(r2);
        }
        tm_buf_dispose(&b);
        tmt_fix_free(f);
}

/* ---- locks ---- */

static size_t lock_count(struct tmt_fix *f)
{
        char p[PATH_MAX];
        size_t n = 0;
        char **names;

        tmt_path(p, sizeof(p), f->repo, "locks");
        if (access(p, F_OK) < 0)
                return 0;
        names = tmt_names(p, &n);
        tmt_names_free(names, n);
        return n;
}

struct release_later {
        tm_lock *lock;
        useconds_t delay;
};

static void *release_thread(void *arg)
{
        struct release_later *rl = arg;

        usleep(rl->delay);
        tm_lock_release(rl->lock);
        return NULL;
}

static void test_locks(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        tm_lock *w1 = NULL, *w2 = NULL, *x1 = NULL, *x2 = NULL;

        (void)state;
        tm_lock_release(NULL);
        assert_int_equal(tm_repo_lock_writer(f->r, 0, &w1), 0);
        assert_int_equal(lock_count(f), 1);
        /* writers do not exclude each other */
        assert_int_equal(tm_repo_lock_writer(f->r, 0, &w2), 0);
        assert_int_equal(lock_count(f), 2);
        /* an exclusive lock waits for writers: -EBUSY with no wait, and it
         * leaves nothing behind */
        assert_int_equal(tm_repo_lock_exclusive(f->r, 0, &x1), -EBUSY);
        assert_null(x1);
        assert_int_equal(lock_count(f), 2);
        tm_lock_release(w1);
        tm_lock_release(w2);
        w1 = w2 = NULL;
        assert_int_equal(lock_count(f), 0);

        assert_int_equal(tm_repo_lock_exclusive(f->r, 0, &x1), 0);
        assert_int_equal(tm_repo_lock_writer(f->r, 0, &w1), -EBUSY);
        assert_null(w1);
        assert_int_equal(tm_repo_lock_exclusive(f->r, 0, &x2), -EBUSY);
        assert_int_equal(lock_count(f), 1);
        /* a writer with a wait gets in once the exclusive lock goes */
        {
                struct release_later rl = { x1, 300000 };
                pthread_t th;

                assert_int_equal(pthread_create(&th, NULL, release_thread, &rl), 0);
                assert_int_equal(tm_repo_lock_writer(f->r, 20, &w1), 0);
                pthread_join(th, NULL);
        }
        assert_int_equal(lock_count(f), 1);
        tm_lock_release(w1);
        assert_int_equal(lock_count(f), 0);
        tmt_fix_free(f);
}

/* A child takes a lock and dies without releasing it. */
static void die_holding(struct tmt_fix *f, int exclusive)
{
        pid_t pid = fork();
        int status = 0;

        assert_true(pid >= 0);
        if (pid == 0) {
                tm_lock *l = NULL;
                int r = exclusive ? tm_repo_lock_exclusive(f->r, 0, &l)
                                  : tm_repo_lock_writer(f->r, 0, &l);

                _exit(r == 0 ? 0 : 1);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_locks_stale(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        tm_lock *l = NULL;

        (void)state;
        die_holding(f, 0);
        assert_int_equal(lock_count(f), 1);
        /* the dead writer does not hold a prune back; its lock is cleaned */
        assert_int_equal(tm_repo_lock_exclusive(f->r, 0, &l), 0);
        assert_int_equal(lock_count(f), 1);
        tm_lock_release(l);
        l = NULL;

        die_holding(f, 1);
        assert_int_equal(lock_count(f), 1);
        assert_int_equal(tm_repo_lock_writer(f->r, 0, &l), 0);
        assert_int_equal(lock_count(f), 1);
        tm_lock_release(l);
        assert_int_equal(lock_count(f), 0);
        tmt_fix_free(f);
}

static size_t dir_count(struct tmt_fix *f, const char *sub)
{
        char p[PATH_MAX];
        size_t n = 0;
        char **names;

        tmt_path(p, sizeof(p), f->repo, sub);
        names = tmt_names(p, &n);
        tmt_names_free(names, n);
        return n;
}

static void remove_all_in(struct tmt_fix *f, const char *sub)
{
        char p[PATH_MAX];
        size_t n = 0;
        char **names;

        tmt_path(p, sizeof(p), f->repo, sub);
        names = tmt_names(p, &n);
        for (size_t i = 0; i < n; i++) {
                char q[PATH_MAX];

                tmt_path(q, sizeof(q), p, names[i]);
                assert_int_equal(unlink(q), 0);
        }
        tmt_names_free(names, n);
}

static void test_index_rebuild(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        const char *x = "indexed one", *y = "indexed two", *z = "never indexed";
        const void *b1[1] = { x }, *b2[1] = { y }, *b3[1] = { z };
        size_t l1[1] = { strlen(x) }, l2[1] = { strlen(y) }, l3[1] = { strlen(z) };
        tm_buf b = TM_BUF_INIT(0);
        tm_id ids[3], pack2;

        (void)state;
        tmt_store_blobs(f->r, TM_BLOB_DATA, b1, l1, 1, 1, &ids[0]);
        pack2 = tmt_store_blobs(f->r, TM_BLOB_DATA, b2, l2, 1, 1, &ids[1]);
        tmt_store_blobs(f->r, TM_BLOB_DATA, b3, l3, 1, 0, &ids[2]);
        assert_int_equal(dir_count(f, "index"), 2);

        /* lose every index file: the rebuild finds all three packs again */
        remove_all_in(f, "index");
        assert_int_equal(tm_repo_index_rebuild(f->r), 3);
        assert_int_equal(dir_count(f, "index"), 1);
        for (int i = 0; i < 3; i++) {
                const char *want = i == 0 ? x : i == 1 ? y : z;

                assert_int_equal(tm_repo_blob_has(f->r, &ids[i]), 1);
                assert_int_equal(tm_repo_blob_load(f->r, &ids[i], &b), 0);
                assert_int_equal(b.len, strlen(want));
                assert_memory_equal(b.data, want, b.len);
        }
        assert_int_equal(lock_count(f), 0); /* the exclusive lock was released */

        /* a pack with a damaged trailer is left out and reported */
        {
                char name[128], p[PATH_MAX];
                struct stat st;

                tm_repo_pack_name(&pack2, name, sizeof(name));
                tmt_path(p, sizeof(p), f->repo, name);
                assert_int_equal(stat(p, &st), 0);
                tmt_flip_byte(p, (uint64_t)st.st_size - TM_PACK_TAIL_LEN - 2);
        }
        assert_int_equal(tm_repo_index_rebuild(f->r), -EBADMSG);
        assert_int_equal(dir_count(f, "index"), 1);
        assert_int_equal(tm_repo_blob_has(f->r, &ids[0]), 1);
        assert_int_equal(tm_repo_blob_has(f->r, &ids[1]), 0);
        assert_int_equal(tm_repo_blob_has(f->r, &ids[2]), 1);
        tm_buf_dispose(&b);
        tmt_fix_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_init_twice),
                cmocka_unit_test(test_open_password),
                cmocka_unit_test(test_open_config_corrupt),
                cmocka_unit_test(test_keys),
                cmocka_unit_test(test_snapshot_save_load_list_remove),
                cmocka_unit_test(test_snapshot_find),
                cmocka_unit_test(test_refresh_second_handle),
                cmocka_unit_test(test_catalog_rebuild),
                cmocka_unit_test(test_blobs),
                cmocka_unit_test(test_blob_runs),
                cmocka_unit_test(test_tree_walk_lookup),
                cmocka_unit_test(test_adopt_orphan_packs),
                cmocka_unit_test(test_locks),
                cmocka_unit_test(test_locks_stale),
                cmocka_unit_test(test_index_rebuild),
                cmocka_unit_test(test_shared_catalog_race),
        };

        tm_log_set_level(TM_LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
