/* Unit tests for prune (tm_prune_run) after forgetting snapshots
 * (tm_repo_snapshot_remove): unique data goes, what is left restores and
 * checks clean, partly used packs are repacked, dry runs change nothing,
 * and a running backup (writer lock) keeps a prune out. */
#include "tm_test_util.h"

static uint64_t data_bytes(struct tmt_fix *f)
{
        char p[PATH_MAX];

        tmt_path(p, sizeof(p), f->repo, "data");
        return tmt_du(p);
}

/* What a prune may change: data/, index/, snapshots/ (not locks/, which a
 * prune that backs off still touches). */
static void listing(struct tmt_fix *f, tm_buf *out)
{
        static const char *const dirs[] = { "data", "index", "snapshots" };
        tm_buf one = TM_BUF_INIT(0);

        tm_buf_clear(out);
        for (size_t i = 0; i < TM_ARRAY_SIZE(dirs); i++) {
                char p[PATH_MAX];

                tmt_path(p, sizeof(p), f->repo, dirs[i]);
                tmt_listing(p, &one);
                assert_int_equal(tm_buf_printf(out, "%s:\n%s", dirs[i], (const char *)one.data), 0);
        }
        tm_buf_dispose(&one);
}

static void assert_check_clean(struct tmt_fix *f)
{
        struct tm_check_opts o = TM_CHECK_OPTS_INIT;
        struct tm_check_stats st = { 0 };

        o.read_data = 1;
        assert_int_equal(tm_check_run(f->r, &o, &st), 0);
        assert_int_equal(st.errors, 0);
        assert_int_equal(st.orphan_packs, 0);
}

static void assert_restores(struct tmt_fix *f, const struct tm_snapshot *s, const char *src,
                            const char *name)
{
        char target[PATH_MAX];

        tmt_path(target, sizeof(target), f->dir, name);
        assert_int_equal(tmt_restore(f->r, s, target, NULL), 0);
        assert_true(tmt_trees_equal(src, target, TMT_CMP_ALL));
        tmt_rm_rf(target);
}

static void test_prune_unique_data(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        uint64_t seed = tmt_seed();
        struct tm_prune_opts o = TM_PRUNE_OPTS_INIT;
        struct tm_prune_stats st = { 0 };
        struct tm_snapshot a = { 0 }, b = { 0 };
        char srcb[PATH_MAX];
        uint64_t before, after;

        (void)state;
        tmt_path(srcb, sizeof(srcb), f->dir, "srcb");
        tmt_mkdir(srcb);
        tmt_make_tree(f->src, seed);
        tmt_make_tree(srcb, seed + 1);
        assert_int_equal(tmt_backup(f->r, f->src, "a", "full", &a), 0);
        assert_int_equal(tmt_backup(f->r, srcb, "b", "full", &b), 0);

        /* nothing to do yet */
        assert_int_equal(tm_prune_run(f->r, &o, &st), 0);
        assert_int_equal(st.packs_deleted, 0);
        assert_int_equal(st.packs_repacked, 0);
        assert_int_equal(st.packs_kept, 4);

        before = data_bytes(f);
        assert_int_equal(tm_repo_snapshot_remove(f->r, &a.id), 0);
        assert_int_equal(tm_prune_run(f->r, &o, &st), 0);
        after = data_bytes(f);
        /* a's data pack goes; its tree pack also holds the empty directory's
         * tree, which b shares (deduplicated), so that pack is repacked */
        assert_int_equal(st.packs_deleted, 1);
        assert_int_equal(st.packs_repacked, 1);
        assert_int_equal(st.packs_kept, 2);
        assert_true(st.blobs_removed > 0);
        assert_true(after < before);
        assert_true(st.bytes_freed > 0 && st.bytes_freed <= before - after + 4096);
        assert_int_equal(st.index_files_rewritten, 1);

        assert_restores(f, &b, srcb, "restore-b");
        assert_check_clean(f);
        /* a's data is really gone */
        {
                struct tm_node nd = { 0 };

                assert_true(tm_repo_lookup_path(f->r, &a.tree, "a.txt", &nd) < 0);
        }
        /* and a fresh handle (new catalog) agrees */
        {
                char cat2[PATH_MAX];
                struct tm_repo_opts ro;
                tm_repo *r2 = NULL;

                tmt_path(cat2, sizeof(cat2), f->dir, "catalog2.db");
                ro = tmt_repo_opts(f->repo, cat2, TMT_PASS);
                assert_int_equal(tm_repo_open(&ro, &r2), 0);
                assert_int_equal(tmt_snapshot_count(r2), 1);
                tm_repo_free(r2);
        }
        tm_snapshot_dispose(&a);
        tm_snapshot_dispose(&b);
        tmt_fix_free(f);
}

static void test_prune_repack(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_prune_opts o = TM_PRUNE_OPTS_INIT;
        struct tm_prune_stats st = { 0 };
        struct tm_snapshot one = { 0 }, two = { 0 };
        uint64_t before;
        char p[PATH_MAX];

        (void)state;
        tmt_make_tree(f->src, tmt_seed());
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", &one), 0);
        /* the second snapshot drops one file and shares the rest: the first
         * data pack becomes partly unused */
        tmt_path(p, sizeof(p), f->src, "big.bin");
        assert_int_equal(unlink(p), 0);
        assert_int_equal(tmt_backup(f->r, f->src, "files", "incremental", &two), 0);
        assert_int_equal(two.summary.blobs_added, 1); /* only the root tree changed */
        assert_int_equal(tm_repo_snapshot_remove(f->r, &one.id), 0);

        before = data_bytes(f);
        o.max_unused = 0;
        assert_int_equal(tm_prune_run(f->r, &o, &st), 0);
        assert_int_equal(st.packs_repacked, 2); /* data pack (big.bin) and tree pack (old root) */
        assert_true(st.blobs_removed >= TMT_BIG_SIZE / TMT_CHUNK_MAX + 1);
        assert_true(data_bytes(f) < before - TMT_BIG_SIZE / 2);
        assert_restores(f, &two, f->src, "restore-two");
        assert_check_clean(f);

        /* a second prune finds nothing */
        assert_int_equal(tm_prune_run(f->r, &o, &st), 0);
        assert_int_equal(st.packs_deleted + st.packs_repacked, 0);
        tm_snapshot_dispose(&one);
        tm_snapshot_dispose(&two);
        tmt_fix_free(f);
}

static void test_prune_dry_run(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_prune_opts o = TM_PRUNE_OPTS_INIT;
        struct tm_prune_stats st = { 0 }, st2 = { 0 };
        struct tm_snapshot s = { 0 };
        tm_buf before = TM_BUF_INIT(0), after = TM_BUF_INIT(0);

        (void)state;
        tmt_make_tree(f->src, tmt_seed());
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", &s), 0);
        assert_int_equal(tm_repo_snapshot_remove(f->r, &s.id), 0);
        listing(f, &before);
        o.dry_run = 1;
        assert_int_equal(tm_prune_run(f->r, &o, &st), 0);
        assert_int_equal(st.packs_deleted, 2); /* what it would do */
        assert_true(st.bytes_freed > 0);
        listing(f, &after);
        assert_string_equal((const char *)before.data, (const char *)after.data);

        /* the real run does what the dry run said */
        o.dry_run = 0;
        assert_int_equal(tm_prune_run(f->r, &o, &st2), 0);
        assert_int_equal(st2.packs_deleted, st.packs_deleted);
        assert_int_equal(st2.bytes_freed, st.bytes_freed);
        assert_int_equal(data_bytes(f), 0);
        tm_buf_dispose(&before);
        tm_buf_dispose(&after);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_prune_orphans(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_prune_opts o = TM_PRUNE_OPTS_INIT;
        struct tm_prune_stats st = { 0 };
        struct tm_snapshot s = { 0 };
        const char *x = "orphaned data";
        const void *blobs[1] = { x };
        size_t lens[1] = { strlen(x) };
        tm_id id;

        (void)state;
        tmt_make_tree(f->src, tmt_seed());
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", &s), 0);
        tmt_store_blobs(f->r, TM_BLOB_DATA, blobs, lens, 1, 0, &id);
        assert_int_equal(tm_prune_run(f->r, &o, &st), 0);
        assert_int_equal(st.packs_deleted, 1);
        assert_int_equal(st.packs_kept, 2);
        assert_check_clean(f); /* no orphan left */
        assert_restores(f, &s, f->src, "restore");
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_prune_busy(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_prune_opts o = TM_PRUNE_OPTS_INIT;
        struct tm_prune_stats st = { 0 };
        struct tm_snapshot s = { 0 };
        tm_buf before = TM_BUF_INIT(0), after = TM_BUF_INIT(0);
        tm_lock *writer = NULL;

        (void)state;
        tmt_make_tree(f->src, tmt_seed());
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", &s), 0);
        assert_int_equal(tm_repo_snapshot_remove(f->r, &s.id), 0);
        assert_int_equal(tm_repo_lock_writer(f->r, 0, &writer), 0);
        listing(f, &before);
        o.lock_wait_s = 0;
        assert_int_equal(tm_prune_run(f->r, &o, &st), -EBUSY);
        listing(f, &after);
        assert_string_equal((const char *)before.data, (const char *)after.data);
        tm_lock_release(writer);
        assert_int_equal(tm_prune_run(f->r, &o, &st), 0);
        assert_int_equal(st.packs_deleted, 2);
        tm_buf_dispose(&before);
        tm_buf_dispose(&after);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_prune_unique_data), cmocka_unit_test(test_prune_repack),
                cmocka_unit_test(test_prune_dry_run),     cmocka_unit_test(test_prune_orphans),
                cmocka_unit_test(test_prune_busy),
        };

        tm_log_set_level(TM_LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
