/* Unit tests for backup (tm_backup_run): what a snapshot records for a
 * small tree, incremental/full/differential parents and re-reading,
 * excludes, tags, several paths, a stream from a pipe, and bad options. */
#include <pthread.h>
#include <sys/xattr.h>

#include "tm_test_util.h"

/* The stored content of a file node equals the file on disk; returns the
 * number of chunks. */
static size_t assert_content(tm_repo *repo, const struct tm_node *nd, const char *path)
{
        tm_buf want = TM_BUF_INIT(0), got = TM_BUF_INIT(0), blob = TM_BUF_INIT(0);
        uint64_t sum = 0;

        tmt_read(path, &want);
        for (size_t i = 0; i < nd->n_content; i++) {
                assert_int_equal(tm_repo_blob_load(repo, &nd->content[i].id, &blob), 0);
                assert_int_equal(blob.len, nd->content[i].size);
                assert_true(blob.len > 0 && blob.len <= TMT_CHUNK_MAX);
                assert_int_equal(tm_buf_append(&got, blob.data, blob.len), 0);
                sum += nd->content[i].size;
        }
        assert_int_equal(sum, nd->size);
        assert_int_equal(got.len, want.len);
        if (want.len)
                assert_memory_equal(got.data, want.data, want.len);
        tm_buf_dispose(&want);
        tm_buf_dispose(&got);
        tm_buf_dispose(&blob);
        return nd->n_content;
}

static void lookup(tm_repo *repo, const struct tm_snapshot *s, const char *path,
                   struct tm_node *ret)
{
        assert_int_equal(tm_repo_lookup_path(repo, &s->tree, path, ret), 0);
}

static void test_backup_tree(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tmt_tree_counts c = tmt_make_tree(f->src, tmt_seed());
        struct tm_snapshot s = { 0 }, loaded = { 0 };
        struct tm_node nd = { 0 };
        char p[PATH_MAX], *real;
        struct stat st;

        (void)state;
        assert_int_equal(tmt_backup(f->r, f->src, "files", "incremental", &s), 0);
        assert_false(tm_id_is_zero(&s.id));
        assert_string_equal(s.component, "files");
        assert_string_equal(s.strategy, "incremental");
        assert_int_equal(s.has_parent, 0);
        real = realpath(f->src, NULL);
        assert_int_equal(s.n_paths, 1);
        assert_string_equal(s.paths[0], real);
        free(real);
        assert_true(s.time > 0);
        assert_non_null(s.host);
        assert_int_equal(s.summary.files, c.files);
        assert_int_equal(s.summary.dirs, c.dirs);
        assert_int_equal(s.summary.others, c.others);
        assert_int_equal(s.summary.bytes, c.bytes);
        assert_int_equal(s.summary.bytes_read, c.bytes);
        assert_int_equal(s.summary.files_new, c.files);
        assert_int_equal(s.summary.files_changed, 0);
        assert_int_equal(s.summary.files_unmodified, 0);
        assert_int_equal(s.summary.files_failed, 0);
        assert_true(s.summary.blobs_added > 0);
        assert_true(s.summary.bytes_added >= c.bytes - 3000); /* hard link stored once */
        assert_true(s.summary.bytes_stored > 0);

        /* committed: in the repository, not only returned */
        assert_int_equal(tm_repo_snapshot_load(f->r, &s.id, &loaded), 0);
        assert_memory_equal(loaded.tree.b, s.tree.b, TM_ID_LEN);
        assert_int_equal(loaded.summary.files, c.files);
        tm_snapshot_dispose(&loaded);

        /* what the tree records */
        lookup(f->r, &s, "big.bin", &nd);
        tmt_path(p, sizeof(p), f->src, "big.bin");
        assert_int_equal(nd.type, TM_NODE_FILE);
        assert_int_equal(nd.size, TMT_BIG_SIZE);
        assert_true(assert_content(f->r, &nd, p) >= TMT_BIG_SIZE / TMT_CHUNK_MAX + 1);
        assert_int_equal(lstat(p, &st), 0);
        assert_true(nd.mtime_ns ==
                    (int64_t)st.st_mtim.tv_sec * TM_NSEC_PER_SEC + st.st_mtim.tv_nsec);
        assert_int_equal(nd.inode, st.st_ino);
        tm_node_dispose(&nd);
        lookup(f->r, &s, "a.txt", &nd);
        tmt_path(p, sizeof(p), f->src, "a.txt");
        assert_content(f->r, &nd, p);
        if (c.xattrs) {
                int found = 0;

                for (size_t i = 0; i < nd.n_xattrs; i++)
                        if (strcmp(nd.xattrs[i].name, "user.tidemark") == 0 &&
                            nd.xattrs[i].len == 2 && memcmp(nd.xattrs[i].value, "v1", 2) == 0)
                                found = 1;
                assert_true(found);
        }
        tm_node_dispose(&nd);
        lookup(f->r, &s, "empty", &nd);
        assert_int_equal(nd.size, 0);
        assert_int_equal(nd.n_content, 0);
        tm_node_dispose(&nd);
        lookup(f->r, &s, "exec.sh", &nd);
        assert_int_equal(nd.mode, 0755);
        tm_node_dispose(&nd);
        lookup(f->r, &s, "secret", &nd);
        assert_int_equal(nd.mode, 0600);
        tm_node_dispose(&nd);
        lookup(f->r, &s, "link", &nd);
        assert_int_equal(nd.type, TM_NODE_SYMLINK);
        assert_string_equal(nd.target, "a.txt");
        tm_node_dispose(&nd);
        lookup(f->r, &s, "dangling", &nd);
        assert_string_equal(nd.target, "../nowhere");
        tm_node_dispose(&nd);
        lookup(f->r, &s, "fifo", &nd);
        assert_int_equal(nd.type, TM_NODE_FIFO);
        tm_node_dispose(&nd);
        lookup(f->r, &s, "emptydir", &nd);
        assert_int_equal(nd.type, TM_NODE_DIR);
        tm_node_dispose(&nd);
        lookup(f->r, &s, "sub/deeper/leaf", &nd);
        tmt_path(p, sizeof(p), f->src, "sub/deeper/leaf");
        assert_content(f->r, &nd, p);
        tm_node_dispose(&nd);
        {
                struct tm_node h1 = { 0 }, h2 = { 0 };

                lookup(f->r, &s, "sub/hard1", &h1);
                lookup(f->r, &s, "hard2", &h2);
                assert_int_equal(h1.nlink, 2);
                assert_int_equal(h1.inode, h2.inode);
                assert_int_equal(h1.dev, h2.dev);
                assert_int_equal(h1.n_content, h2.n_content);
                assert_memory_equal(h1.content[0].id.b, h2.content[0].id.b, TM_ID_LEN);
                tm_node_dispose(&h1);
                tm_node_dispose(&h2);
        }
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_backup_strategies(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tmt_tree_counts c = tmt_make_tree(f->src, tmt_seed());
        struct tm_snapshot first = { 0 }, incr = { 0 }, full = { 0 }, changed = { 0 }, diff = { 0 };
        char p[PATH_MAX];

        (void)state;
        /* a differential with no full yet has no parent */
        assert_int_equal(tmt_backup(f->r, f->src, "files", "differential", &first), 0);
        assert_int_equal(first.has_parent, 0);
        assert_int_equal(first.summary.bytes_read, c.bytes);

        /* unchanged incremental: nothing read, nothing stored, same tree */
        assert_int_equal(tmt_backup(f->r, f->src, "files", "incremental", &incr), 0);
        assert_int_equal(incr.has_parent, 1);
        assert_memory_equal(incr.parent.b, first.id.b, TM_ID_LEN);
        assert_int_equal(incr.summary.bytes_read, 0);
        assert_int_equal(incr.summary.files_unmodified, incr.summary.files);
        assert_int_equal(incr.summary.files, c.files);
        assert_int_equal(incr.summary.files_new, 0);
        assert_int_equal(incr.summary.blobs_added, 0);
        assert_int_equal(incr.summary.bytes, c.bytes);
        assert_memory_equal(incr.tree.b, first.tree.b, TM_ID_LEN);

        /* full: re-reads everything, no parent, still dedups */
        assert_int_equal(tmt_backup(f->r, f->src, "files", "full", &full), 0);
        assert_int_equal(full.has_parent, 0);
        assert_int_equal(full.summary.bytes_read, c.bytes);
        assert_int_equal(full.summary.files_unmodified, 0);
        assert_int_equal(full.summary.blobs_added, 0);
        assert_memory_equal(full.tree.b, first.tree.b, TM_ID_LEN);

        /* one file changes: only it is read */
        tmt_path(p, sizeof(p), f->src, "sub/deeper/leaf");
        tmt_write(p, "changed contents", 16);
        assert_int_equal(tmt_backup(f->r, f->src, "files", "incremental", &changed), 0);
        assert_memory_equal(changed.parent.b, full.id.b, TM_ID_LEN);
        assert_int_equal(changed.summary.files_changed, 1);
        assert_int_equal(changed.summary.bytes_read, 16);
        assert_int_equal(changed.summary.files_unmodified, c.files - 1);
        assert_true(changed.summary.blobs_added >= 1);
        assert_memory_not_equal(changed.tree.b, full.tree.b, TM_ID_LEN);

        /* differential: against the last full, not the last backup */
        assert_int_equal(tmt_backup(f->r, f->src, "files", "differential", &diff), 0);
        assert_int_equal(diff.has_parent, 1);
        assert_memory_equal(diff.parent.b, full.id.b, TM_ID_LEN);
        assert_int_equal(diff.summary.files_changed, 1);
        assert_int_equal(diff.summary.bytes_read, 16);
        assert_memory_equal(diff.tree.b, changed.tree.b, TM_ID_LEN);

        /* parents are per component */
        {
                struct tm_snapshot other = { 0 };

                assert_int_equal(tmt_backup(f->r, f->src, "other", "incremental", &other), 0);
                assert_int_equal(other.has_parent, 0);
                assert_int_equal(other.summary.bytes_read, other.summary.bytes);
                tm_snapshot_dispose(&other);
        }
        assert_int_equal(tmt_snapshot_count(f->r), 6);
        tm_snapshot_dispose(&first);
        tm_snapshot_dispose(&incr);
        tm_snapshot_dispose(&full);
        tm_snapshot_dispose(&changed);
        tm_snapshot_dispose(&diff);
        tmt_fix_free(f);
}

static void test_backup_missing_path(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_snapshot s = { 0 };
        char missing[PATH_MAX];

        (void)state;
        tmt_path(missing, sizeof(missing), f->dir, "does-not-exist");
        assert_int_equal(tmt_backup(f->r, missing, "files", "incremental", &s), -ENOENT);
        {
                struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
                const char *paths[2] = { f->src, missing };

                o.component = "files";
                o.paths = paths;
                o.n_paths = 2;
                assert_true(tm_backup_run(f->r, &o, &s) < 0);
        }
        assert_int_equal(tmt_snapshot_count(f->r), 0);
        tmt_fix_free(f);
}

static void test_backup_partial(void **state)
{
        struct tmt_fix *f;
        struct tmt_tree_counts c;
        struct tm_snapshot s = { 0 };
        struct tm_node nd = { 0 };
        char p[PATH_MAX];

        (void)state;
        if (geteuid() == 0) {
                /* root reads mode-000 files; integration.unreadable covers this */
                skip();
        }
        f = tmt_fix_new();
        c = tmt_make_tree(f->src, tmt_seed());
        tmt_path(p, sizeof(p), f->src, "secret");
        assert_int_equal(chmod(p, 0), 0);
        assert_int_equal(tmt_backup(f->r, f->src, "files", "incremental", &s), TM_BACKUP_PARTIAL);
        assert_int_equal(s.summary.files_failed, 1);
        assert_int_equal(s.summary.files, c.files - 1);
        assert_int_equal(tm_repo_lookup_path(f->r, &s.tree, "secret", &nd), -ENOENT);
        assert_int_equal(tmt_snapshot_count(f->r), 1);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_backup_excludes_tags(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tmt_tree_counts c = tmt_make_tree(f->src, tmt_seed());
        const char *paths[1] = { f->src };
        const char *excludes[2] = { "*.sh", "*/sub/deeper" };
        const char *tags[2] = { "nightly", "before-upgrade" };
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        struct tm_snapshot s = { 0 }, loaded = { 0 };
        struct tm_node nd = { 0 };
        struct stat st1, st2;
        char p[PATH_MAX];

        (void)state;
        tmt_path(p, sizeof(p), f->src, "exec.sh");
        assert_int_equal(stat(p, &st1), 0);
        tmt_path(p, sizeof(p), f->src, "sub/deeper/leaf");
        assert_int_equal(stat(p, &st2), 0);
        o.component = "files";
        o.strategy = "full";
        o.paths = paths;
        o.n_paths = 1;
        o.excludes = excludes;
        o.n_excludes = 2;
        o.tags = tags;
        o.n_tags = 2;
        o.host = "backup-host";
        o.time = tmt_time("2025-01-07T10:00:00.5Z");
        assert_int_equal(tm_backup_run(f->r, &o, &s), 0);
        assert_int_equal(s.summary.files, c.files - 2);
        assert_int_equal(s.summary.dirs, c.dirs - 1);
        assert_int_equal(s.summary.bytes, c.bytes - (uint64_t)st1.st_size - (uint64_t)st2.st_size);
        assert_int_equal(tm_repo_lookup_path(f->r, &s.tree, "exec.sh", &nd), -ENOENT);
        assert_int_equal(tm_repo_lookup_path(f->r, &s.tree, "sub/deeper", &nd), -ENOENT);
        assert_int_equal(tm_repo_lookup_path(f->r, &s.tree, "sub/hard1", &nd), 0);
        tm_node_dispose(&nd);

        assert_int_equal(tm_repo_snapshot_load(f->r, &s.id, &loaded), 0);
        assert_int_equal(loaded.n_tags, 2);
        assert_string_equal(loaded.tags[0], "nightly");
        assert_string_equal(loaded.tags[1], "before-upgrade");
        assert_string_equal(loaded.host, "backup-host");
        assert_true(loaded.time == o.time);
        assert_string_equal(loaded.strategy, "full");
        tm_snapshot_dispose(&loaded);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

static void test_backup_several_paths(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        struct tm_snapshot s = { 0 };
        struct tm_tree t = TM_TREE_INIT;
        char sub[PATH_MAX], a[PATH_MAX], other[PATH_MAX];
        const char *paths[2] = { sub, a };

        (void)state;
        tmt_make_tree(f->src, tmt_seed());
        tmt_path(sub, sizeof(sub), f->src, "sub/");
        tmt_path(a, sizeof(a), f->src, "a.txt");
        o.component = "files";
        o.paths = paths;
        o.n_paths = 2;
        assert_int_equal(tm_backup_run(f->r, &o, &s), 0);
        assert_int_equal(s.n_paths, 2);
        assert_int_equal(tm_repo_tree_load(f->r, &s.tree, &t), 0);
        assert_int_equal(t.n, 2);
        assert_string_equal(t.nodes[0].name, "a.txt");
        assert_int_equal(t.nodes[0].type, TM_NODE_FILE);
        assert_string_equal(t.nodes[1].name, "sub");
        assert_int_equal(t.nodes[1].type, TM_NODE_DIR);
        tm_tree_dispose(&t);
        tm_snapshot_dispose(&s);

        /* two paths with the same basename cannot share the root */
        tmt_path(other, sizeof(other), f->dir, "sub");
        tmt_mkdir(other);
        paths[1] = other;
        assert_int_equal(tm_backup_run(f->r, &o, &s), -EINVAL);
        assert_int_equal(tmt_snapshot_count(f->r), 1);
        tmt_fix_free(f);
}

struct feeder {
        int fd;
        const uint8_t *p;
        size_t n;
};

static void *feed(void *arg)
{
        struct feeder *fd = arg;

        for (size_t off = 0; off < fd->n;) {
                ssize_t k = write(fd->fd, fd->p + off, fd->n - off);

                if (k <= 0)
                        break;
                off += (size_t)k;
        }
        close(fd->fd);
        return NULL;
}

static void test_backup_stdin(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        uint64_t seed = tmt_seed();
        size_t n = 3 * TMT_CHUNK_MAX + 999; /* more than a pipe buffer */
        uint8_t *data = malloc(n);
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        struct tm_snapshot s = { 0 };
        struct tm_node nd = { 0 };
        struct feeder fe;
        tm_buf got = TM_BUF_INIT(0), blob = TM_BUF_INIT(0);
        pthread_t th;
        int fds[2];

        (void)state;
        assert_non_null(data);
        tmt_fill(&seed, data, n);
        assert_int_equal(pipe(fds), 0);
        fe = (struct feeder){ fds[1], data, n };
        assert_int_equal(pthread_create(&th, NULL, feed, &fe), 0);
        o.component = "db";
        o.strategy = "full";
        o.stdin_fd = fds[0];
        o.stdin_filename = "dump.sql";
        assert_int_equal(tm_backup_run(f->r, &o, &s), 0);
        pthread_join(th, NULL);
        close(fds[0]);
        assert_int_equal(s.n_paths, 1);
        assert_string_equal(s.paths[0], "-");
        assert_int_equal(s.summary.files, 1);
        assert_int_equal(s.summary.bytes, n);
        assert_int_equal(s.summary.bytes_read, n);
        assert_int_equal(tm_repo_lookup_path(f->r, &s.tree, "dump.sql", &nd), 0);
        assert_int_equal(nd.type, TM_NODE_FILE);
        assert_int_equal(nd.size, n);
        assert_true(nd.n_content >= 4);
        for (size_t i = 0; i < nd.n_content; i++) {
                assert_int_equal(tm_repo_blob_load(f->r, &nd.content[i].id, &blob), 0);
                assert_int_equal(tm_buf_append(&got, blob.data, blob.len), 0);
        }
        assert_int_equal(got.len, n);
        assert_memory_equal(got.data, data, n);
        tm_node_dispose(&nd);
        tm_snapshot_dispose(&s);

        /* the stream needs a valid name */
        assert_int_equal(pipe(fds), 0);
        close(fds[1]);
        o.stdin_fd = fds[0];
        o.stdin_filename = NULL;
        assert_int_equal(tm_backup_run(f->r, &o, &s), -EINVAL);
        o.stdin_filename = "a/b";
        assert_int_equal(tm_backup_run(f->r, &o, &s), -EINVAL);
        o.stdin_filename = "..";
        assert_int_equal(tm_backup_run(f->r, &o, &s), -EINVAL);
        close(fds[0]);
        assert_int_equal(tmt_snapshot_count(f->r), 1);

        tm_buf_dispose(&got);
        tm_buf_dispose(&blob);
        free(data);
        tmt_fix_free(f);
}

static void test_backup_bad_options(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        const char *paths[1] = { f->src };
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        struct tm_snapshot s = { 0 };

        (void)state;
        o.paths = paths;
        o.n_paths = 1;
        o.component = NULL;
        assert_int_equal(tm_backup_run(f->r, &o, &s), -EINVAL);
        o.component = "";
        assert_int_equal(tm_backup_run(f->r, &o, &s), -EINVAL);
        o.component = "files";
        o.strategy = "weekly";
        assert_int_equal(tm_backup_run(f->r, &o, &s), -EINVAL);
        o.strategy = NULL;
        assert_int_equal(tm_backup_run(f->r, &o, &s), -EINVAL);
        o.strategy = "full";
        o.n_paths = 0;
        assert_int_equal(tm_backup_run(f->r, &o, &s), -EINVAL);
        assert_int_equal(tmt_snapshot_count(f->r), 0);
        /* the same options with a path are fine (and continuous is a strategy) */
        o.n_paths = 1;
        o.strategy = "continuous";
        assert_int_equal(tm_backup_run(f->r, &o, &s), 0);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

struct progress_log {
        int calls;
        struct tm_progress last;
        int bad_phase;
};

static void on_progress(const struct tm_progress *p, void *ud)
{
        struct progress_log *l = ud;

        l->calls++;
        l->last = *p;
        if (!p->phase || strcmp(p->phase, "backup") != 0)
                l->bad_phase = 1;
}

static void test_backup_progress(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tmt_tree_counts c = tmt_make_tree(f->src, tmt_seed());
        const char *paths[1] = { f->src };
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        struct progress_log log = { 0 };
        struct tm_snapshot s = { 0 };

        (void)state;
        o.component = "files";
        o.paths = paths;
        o.n_paths = 1;
        o.progress = on_progress;
        o.userdata = &log;
        assert_int_equal(tm_backup_run(f->r, &o, &s), 0);
        assert_true(log.calls >= 1);
        assert_false(log.bad_phase);
        assert_int_equal(log.last.files_done, c.files);
        assert_int_equal(log.last.bytes_done, c.bytes);
        assert_int_equal(log.last.files_total, c.files);
        assert_int_equal(log.last.totals_final, 1);
        tm_snapshot_dispose(&s);
        tmt_fix_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_backup_tree),
                cmocka_unit_test(test_backup_strategies),
                cmocka_unit_test(test_backup_missing_path),
                cmocka_unit_test(test_backup_partial),
                cmocka_unit_test(test_backup_excludes_tags),
                cmocka_unit_test(test_backup_several_paths),
                cmocka_unit_test(test_backup_stdin),
                cmocka_unit_test(test_backup_bad_options),
                cmocka_unit_test(test_backup_progress),
        };

        tm_log_set_level(TM_LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
