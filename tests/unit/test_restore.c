/* Unit tests for restore (tm_restore_run): a restore equals its source
 * (bytes, modes, mtimes, symlinks, hard links, user xattrs), includes, a
 * damaged blob loses only its file, and hostile snapshots or targets never
 * make it write outside the target. */
#include "tm_test_util.h"

static int has_temp_files(const char *dir)
{
        size_t n = 0;
        char **names = tmt_names(dir, &n);
        int found = 0;

        for (size_t i = 0; i < n; i++) {
                char p[PATH_MAX];
                struct stat st;

                if (strncmp(names[i], ".tidemark-restore-", 18) == 0)
                        found = 1;
                tmt_path(p, sizeof(p), dir, names[i]);
                if (!found && lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                        found = has_temp_files(p);
        }
        tmt_names_free(names, n);
        return found;
}

static void test_restore_roundtrip(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tmt_tree_counts c = tmt_make_tree(f->src, tmt_seed());
        struct tm_restore_stats st = { 0 };
        struct tm_snapshot s = { 0 };
        char target[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
        struct stat s1, s2;

        (void)state;
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", &s), 0);
        tmt_path(target, sizeof(target), f->dir, "target/nested"); /* created with parents */
        assert_int_equal(tmt_restore(f->r, &s, target, &st), 0);
        assert_true(tmt_trees_equal(f->src, target, TMT_CMP_ALL));
        assert_int_equal(st.files, c.files);
        assert_int_equal(st.dirs, c.dirs);
        assert_int_equal(st.others, c.others);
        assert_int_equal(st.bytes, c.bytes - 3000); /* the hard link is linked, not written */
        assert_int_equal(st.files_failed, 0);
        tmt_path(p, sizeof(p), target, "sub/hard1");
        tmt_path(q, sizeof(q), target, "hard2");
        assert_int_equal(stat(p, &s1), 0);
        assert_int_equal(stat(q, &s2), 0);
        assert_int_equal(s1.st_ino, s2.st_ino);
        assert_int_equal(s1.st_nlink, 2);
        if (c.xattrs) {
                char v[16];

                tmt_path(p, sizeof(p), target, "a.txt");
                assert_int_equal(getxattr(p, "user.tidemark", v, sizeof(v)), 2);
                assert_memory_equal(v, "v1", 2);
        }
        assert_false(has_temp_files(target));

        /* again over the restored tree (files replaced, links re-made) */
        tmt_path(p, sizeof(p), target, "a.txt");
        tmt_write(p, "scribbled over", 14);
        assert_int_equal(tmt_restore(f->r, &s, target, &st), 0);
        assert_true(tmt_trees_equal(f->src, target, TMT_CMP_ALL));
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_restore_includes(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_restore_opts o = TM_RESTORE_OPTS_INIT;
        struct tm_restore_stats st = { 0 };
        struct tm_snapshot s = { 0 };
        const char *inc[2] = { "sub/deeper/leaf", "/a.txt" };
        char target[PATH_MAX], p[PATH_MAX], q[PATH_MAX];
        tm_buf a = TM_BUF_INIT(0), b = TM_BUF_INIT(0);
        size_t n = 0;
        char **names;

        (void)state;
        tmt_make_tree(f->src, tmt_seed());
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", &s), 0);
        tmt_path(target, sizeof(target), f->dir, "target");
        o.target = target;
        o.includes = inc;
        o.n_includes = 2;
        assert_int_equal(tm_restore_run(f->r, &s, &o, &st), 0);
        assert_int_equal(st.files, 2);
        names = tmt_names(target, &n);
        assert_int_equal(n, 2);
        assert_string_equal(names[0], "a.txt");
        assert_string_equal(names[1], "sub");
        tmt_names_free(names, n);
        tmt_path(p, sizeof(p), target, "sub");
        names = tmt_names(p, &n);
        assert_int_equal(n, 1);
        assert_string_equal(names[0], "deeper");
        tmt_names_free(names, n);
        for (int i = 0; i < 2; i++) {
                const char *rel = i ? "a.txt" : "sub/deeper/leaf";

                tmt_path(p, sizeof(p), f->src, rel);
                tmt_path(q, sizeof(q), target, rel);
                tmt_read(p, &a);
                tmt_read(q, &b);
                assert_int_equal(a.len, b.len);
                assert_memory_equal(a.data, b.data, a.len);
        }
        /* parents get their snapshot metadata */
        {
                struct stat s1, s2;

                tmt_path(p, sizeof(p), f->src, "sub/deeper");
                tmt_path(q, sizeof(q), target, "sub/deeper");
                assert_int_equal(stat(p, &s1), 0);
                assert_int_equal(stat(q, &s2), 0);
                assert_int_equal(s1.st_mode, s2.st_mode);
                assert_int_equal(s1.st_mtim.tv_sec, s2.st_mtim.tv_sec);
        }
        tmt_rm_rf(target);

        /* a directory include brings its subtree */
        inc[0] = "sub";
        o.n_includes = 1;
        assert_int_equal(tm_restore_run(f->r, &s, &o, &st), 0);
        tmt_path(p, sizeof(p), f->src, "sub");
        tmt_path(q, sizeof(q), target, "sub");
        /* hard2 is outside sub/: hard1 comes back with one link */
        assert_true(tmt_trees_equal(p, q, TMT_CMP_DIR_TIMES));
        tmt_rm_rf(target);

        /* "/" is everything */
        inc[0] = "/";
        assert_int_equal(tm_restore_run(f->r, &s, &o, &st), 0);
        assert_true(tmt_trees_equal(f->src, target, TMT_CMP_ALL));
        tmt_rm_rf(target);

        /* not in the snapshot */
        inc[0] = "nope";
        assert_int_equal(tm_restore_run(f->r, &s, &o, &st), -ENOENT);
        inc[0] = "sub/../a.txt";
        assert_int_equal(tm_restore_run(f->r, &s, &o, &st), -ENOENT);
        inc[0] = "a.txt/x";
        assert_int_equal(tm_restore_run(f->r, &s, &o, &st), -ENOENT);
        assert_int_equal(tmt_count_files(target), 0);

        tm_buf_dispose(&a);
        tm_buf_dispose(&b);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_restore_corrupt_blob(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_restore_stats st = { 0 };
        struct tm_snapshot s = { 0 };
        char target[PATH_MAX], p[PATH_MAX], q[PATH_MAX];

        (void)state;
        tmt_make_tree(f->src, tmt_seed());
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", &s), 0);
        tmt_damage_first_blob(f, &s.tree, "a.txt");

        tmt_path(target, sizeof(target), f->dir, "target");
        assert_int_equal(tmt_restore(f->r, &s, target, &st), -EBADMSG);
        assert_int_equal(st.files_failed, 1);
        tmt_path(p, sizeof(p), target, "a.txt");
        assert_int_equal(access(p, F_OK), -1);
        assert_false(has_temp_files(target));
        /* everything else is there and right */
        tmt_path(p, sizeof(p), f->src, "sub");
        tmt_path(q, sizeof(q), target, "sub");
        assert_true(tmt_trees_equal(p, q, TMT_CMP_ALL));
        tmt_path(p, sizeof(p), f->src, "big.bin");
        tmt_path(q, sizeof(q), target, "big.bin");
        tmt_assert_same_bytes(p, q);
        tmt_path(q, sizeof(q), target, "empty");
        assert_int_equal(access(q, F_OK), 0);

        /* an include of the damaged file alone fails the same way */
        tmt_rm_rf(target);
        {
                struct tm_restore_opts o = TM_RESTORE_OPTS_INIT;
                const char *inc[1] = { "a.txt" };

                o.target = target;
                o.includes = inc;
                o.n_includes = 1;
                assert_int_equal(tm_restore_run(f->r, &s, &o, &st), -EBADMSG);
                assert_int_equal(tmt_count_files(target), 0);
                assert_false(has_temp_files(target));
        }
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

/* Many small files are restored in batches, each mostly one read of a run
 * of blobs back to back in a pack: every file right, with one, two or many
 * workers; a damaged blob in the middle of a run fails its file only. */
static void test_restore_batches(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        uint64_t seed = tmt_seed();
        struct tm_restore_stats st = { 0 };
        struct tm_snapshot s = { 0 };
        char target[PATH_MAX], p[PATH_MAX];
        static const int threads[] = { 1, 2, 8 };
        int nfiles = 0;

        (void)state;
        for (int d = 0; d < 3; d++) {
                char dir[PATH_MAX], name[32];

                snprintf(name, sizeof(name), "d%d", d);
                tmt_path(dir, sizeof(dir), f->src, name);
                tmt_mkdir(dir);
                for (int i = 0; i < 40; i++, nfiles++) {
                        snprintf(name, sizeof(name), "f%03d", i);
                        tmt_path(p, sizeof(p), dir, name);
                        tmt_write_rand(p, &seed, (size_t)(tmt_rand(&seed) % 40000) * (i % 7 != 0));
                }
        }
        {
                /* one blob in several files of a batch: read once, written to each */
                static uint8_t same[30000];

                tmt_fill(&seed, same, sizeof(same));
                for (int i = 0; i < 4; i++, nfiles++) {
                        char rel[32];

                        snprintf(rel, sizeof(rel), "d2/same%d", i);
                        tmt_path(p, sizeof(p), f->src, rel);
                        tmt_write(p, same, sizeof(same));
                }
        }
        tmt_path(p, sizeof(p), f->src, "big.bin"); /* more than one part is not batched */
        tmt_write_rand(p, &seed, 3u << 20);
        nfiles++;
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", &s), 0);
        for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++) {
                struct tm_restore_opts o = TM_RESTORE_OPTS_INIT;

                snprintf(p, sizeof(p), "target-%d", threads[t]);
                tmt_path(target, sizeof(target), f->dir, p);
                o.target = target;
                o.threads = threads[t];
                assert_int_equal(tm_restore_run(f->r, &s, &o, &st), 0);
                assert_int_equal(st.files, nfiles);
                assert_int_equal(st.files_failed, 0);
                assert_true(tmt_trees_equal(f->src, target, TMT_CMP_ALL));
                tmt_rm_rf(target);
        }

        /* damage d1/f020: it alone fails, its neighbours in the run are
         * right; damage the blob of the four same*: the four fail */
        tmt_damage_first_blob(f, &s.tree, "d1/f020");
        tmt_damage_first_blob(f, &s.tree, "d2/same0");
        tmt_path(target, sizeof(target), f->dir, "target");
        assert_int_equal(tmt_restore(f->r, &s, target, &st), -EBADMSG);
        assert_int_equal(st.files_failed, 5);
        assert_int_equal(st.files, nfiles - 5);
        tmt_path(p, sizeof(p), target, "d1/f020");
        assert_int_equal(access(p, F_OK), -1);
        tmt_path(p, sizeof(p), target, "d2/same3");
        assert_int_equal(access(p, F_OK), -1);
        assert_false(has_temp_files(target));
        for (int i = 0; i < 40; i++) {
                char rel[32], src[PATH_MAX];

                if (i == 20)
                        continue;
                snprintf(rel, sizeof(rel), "d1/f%03d", i);
                tmt_path(src, sizeof(src), f->src, rel);
                tmt_path(p, sizeof(p), target, rel);
                tmt_assert_same_bytes(src, p);
        }
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void put_str(tm_buf *b, const char *s)
{
        assert_int_equal(tm_put_varint(b, strlen(s)), 0);
        assert_int_equal(tm_buf_append(b, s, strlen(s)), 0);
}

/* A tree with one file node, encoded by hand (so that names the encoder
 * refuses can be written). Mirrors tmt_tree_add's defaults. */
static void raw_tree_one_file(const char *name, const tm_id *blob, uint64_t size, tm_buf *out)
{
        tm_buf_clear(out);
        assert_int_equal(tm_buf_append(out, "TMTR", 4), 0);
        assert_int_equal(tm_put_u8(out, 1), 0);
        assert_int_equal(tm_put_varint(out, 1), 0);
        put_str(out, name);
        assert_int_equal(tm_put_u8(out, TM_NODE_FILE), 0);
        assert_int_equal(tm_put_varint(out, 0644), 0);
        assert_int_equal(tm_put_varint(out, 0), 0); /* uid */
        assert_int_equal(tm_put_varint(out, 0), 0); /* gid */
        put_str(out, "");
        put_str(out, "");
        assert_int_equal(tm_put_varint(out, (uint64_t)(1700000000LL * TM_NSEC_PER_SEC) << 1), 0);
        assert_int_equal(tm_put_varint(out, 0), 0); /* ctime */
        assert_int_equal(tm_put_varint(out, size), 0);
        assert_int_equal(tm_put_varint(out, 0), 0); /* dev */
        assert_int_equal(tm_put_varint(out, 0), 0); /* inode */
        assert_int_equal(tm_put_varint(out, 1), 0); /* nlink */
        assert_int_equal(tm_put_varint(out, 0), 0); /* rdev */
        assert_int_equal(tm_put_varint(out, 0), 0); /* xattrs */
        assert_int_equal(tm_put_varint(out, 1), 0); /* content */
        assert_int_equal(tm_buf_append(out, blob->b, TM_ID_LEN), 0);
        assert_int_equal(tm_put_varint(out, size), 0);
}

static void test_restore_hostile_names(void **state)
{
        static const char *const bad[] = { "..", "../escaped", "/tmp/escaped", "a/b" };
        struct tmt_fix *f = tmt_fix_new();
        const char *payload = "pwned";
        const void *blobs[1] = { payload };
        size_t lens[1] = { strlen(payload) };
        tm_buf raw = TM_BUF_INIT(0), enc = TM_BUF_INIT(0);
        struct tm_restore_stats st = { 0 };
        char target[PATH_MAX], escaped[PATH_MAX];
        tm_id blob;

        (void)state;
        tmt_store_blobs(f->r, TM_BLOB_DATA, blobs, lens, 1, 1, &blob);
        /* the hand encoder agrees with the real one on a valid name */
        {
                struct tm_tree t = TM_TREE_INIT;
                struct tm_content c = { blob, lens[0] };

                tmt_tree_add(&t, "fine", TM_NODE_FILE, NULL, NULL, &c, 1);
                assert_int_equal(tm_tree_encode(&t, &enc), 0);
                tm_tree_dispose(&t);
                raw_tree_one_file("fine", &blob, lens[0], &raw);
                assert_int_equal(raw.len, enc.len);
                assert_memory_equal(raw.data, enc.data, raw.len);
        }
        tmt_path(target, sizeof(target), f->dir, "t/target");
        tmt_path(escaped, sizeof(escaped), f->dir, "t/escaped");
        for (size_t i = 0; i < TM_ARRAY_SIZE(bad); i++) {
                const void *tb[1];
                size_t tl[1];
                struct tm_snapshot s;
                tm_id tree;

                raw_tree_one_file(bad[i], &blob, lens[0], &raw);
                tb[0] = raw.data;
                tl[0] = raw.len;
                tmt_store_blobs(f->r, TM_BLOB_TREE, tb, tl, 1, 1, &tree);
                tmt_snapshot_make(f->r, "evil", tmt_time("2025-01-01T00:00:00Z") + (int64_t)i,
                                  &tree, &s);
                assert_int_equal(tmt_restore(f->r, &s, target, &st), -EBADMSG);
                assert_int_equal(access(escaped, F_OK), -1);
                assert_int_equal(access("/tmp/escaped", F_OK), -1);
                assert_int_equal(tmt_count_files(target), 0);
                tm_snapshot_dispose(&s);
        }
        tm_buf_dispose(&raw);
        tm_buf_dispose(&enc);
        tmt_fix_free(f);
}

static void test_restore_hostile_links(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        const char *hello = "hello", *data = "plain data";
        const void *blobs[2] = { hello, data };
        size_t lens[2] = { strlen(hello), strlen(data) };
        struct tm_tree t = TM_TREE_INIT;
        struct tm_restore_stats st = { 0 };
        struct tm_snapshot s;
        char target[PATH_MAX], outside[PATH_MAX], abs_target[PATH_MAX + 8], p[PATH_MAX],
                buf[PATH_MAX + 16];
        tm_id ids[2], dtree, root;
        int r;

        (void)state;
        tmt_path(target, sizeof(target), f->dir, "target");
        tmt_path(outside, sizeof(outside), f->dir, "outside");
        tmt_mkdir(target);
        tmt_mkdir(outside);
        snprintf(abs_target, sizeof(abs_target), "%s/x", outside);

        tmt_store_blobs(f->r, TM_BLOB_DATA, blobs, lens, 2, 1, ids);
        {
                struct tm_content c = { ids[0], lens[0] };

                tmt_tree_add(&t, "f", TM_NODE_FILE, NULL, NULL, &c, 1);
                dtree = tmt_store_tree(f->r, &t);
                tm_tree_dispose(&t);
                t = TM_TREE_INIT;
        }
        {
                struct tm_content c = { ids[1], lens[1] };

                tmt_tree_add(&t, "abs", TM_NODE_SYMLINK, NULL, abs_target, NULL, 0);
                tmt_tree_add(&t, "rel", TM_NODE_SYMLINK, NULL, "../outside/y", NULL, 0);
                tmt_tree_add(&t, "d", TM_NODE_DIR, &dtree, NULL, NULL, 0);
                tmt_tree_add(&t, "plain", TM_NODE_FILE, NULL, NULL, &c, 1);
                root = tmt_store_tree(f->r, &t);
                tm_tree_dispose(&t);
        }
        tmt_snapshot_make(f->r, "evil", tmt_time("2025-01-01T00:00:00Z"), &root, &s);

        /* the target already has symlinks into outside/ where the snapshot
         * has a directory and a file */
        tmt_path(p, sizeof(p), target, "d");
        assert_int_equal(symlink(outside, p), 0);
        tmt_path(p, sizeof(p), target, "plain");
        snprintf(buf, sizeof(buf), "%s/plainfile", outside);
        assert_int_equal(symlink(buf, p), 0);

        r = tmt_restore(f->r, &s, target, &st);
        /* failing the subtree or replacing the link are both fine ... */
        assert_true(r == 0 || r == -EBADMSG);
        /* ... writing through it is not */
        assert_int_equal(tmt_count_files(outside), 0);
        {
                size_t n = 0;
                char **names = tmt_names(outside, &n);

                tmt_names_free(names, n);
                assert_int_equal(n, 0);
        }
        /* symlinks pointing outside are created as links, never followed */
        tmt_path(p, sizeof(p), target, "abs");
        memset(buf, 0, sizeof(buf));
        assert_true(readlink(p, buf, sizeof(buf) - 1) > 0);
        assert_string_equal(buf, abs_target);
        tmt_path(p, sizeof(p), target, "rel");
        memset(buf, 0, sizeof(buf));
        assert_true(readlink(p, buf, sizeof(buf) - 1) > 0);
        assert_string_equal(buf, "../outside/y");
        /* the file replaced the symlink that stood in its place */
        {
                struct stat sb;
                tm_buf b = TM_BUF_INIT(0);

                tmt_path(p, sizeof(p), target, "plain");
                assert_int_equal(lstat(p, &sb), 0);
                assert_true(S_ISREG(sb.st_mode));
                tmt_read(p, &b);
                assert_int_equal(b.len, lens[1]);
                assert_memory_equal(b.data, data, lens[1]);
                tm_buf_dispose(&b);
                tmt_path(p, sizeof(p), target, "d");
                assert_int_equal(lstat(p, &sb), 0);
                if (S_ISDIR(sb.st_mode)) { /* replaced: then the subtree is complete */
                        tmt_path(p, sizeof(p), target, "d/f");
                        assert_int_equal(access(p, F_OK), 0);
                }
        }
        assert_false(has_temp_files(target));
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
        assert_string_equal(p->phase, "restore");
}

static void test_restore_options(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tmt_tree_counts c = tmt_make_tree(f->src, tmt_seed());
        struct tm_restore_opts o = TM_RESTORE_OPTS_INIT;
        struct tm_restore_stats st = { 0 };
        struct progress_log log = { 0 };
        struct tm_snapshot s = { 0 };
        char target[PATH_MAX];

        (void)state;
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", &s), 0);
        assert_int_equal(tm_restore_run(f->r, &s, &o, &st), -EINVAL);
        o.target = "";
        assert_int_equal(tm_restore_run(f->r, &s, &o, &st), -EINVAL);
        tmt_path(target, sizeof(target), f->dir, "target");
        o.target = target;
        o.progress = on_progress;
        o.userdata = &log;
        o.no_owner = 1;
        assert_int_equal(tm_restore_run(f->r, &s, &o, NULL), 0); /* stats are optional */
        assert_true(log.calls >= 1);
        assert_int_equal(log.last.files_done, c.files);
        assert_true(tmt_trees_equal(f->src, target, TMT_CMP_ALL));
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_restore_roundtrip),
                cmocka_unit_test(test_restore_includes),
                cmocka_unit_test(test_restore_corrupt_blob),
                cmocka_unit_test(test_restore_batches),
                cmocka_unit_test(test_restore_hostile_names),
                cmocka_unit_test(test_restore_hostile_links),
                cmocka_unit_test(test_restore_options),
        };

        tm_log_set_level(TM_LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
