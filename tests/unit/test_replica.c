/* Unit tests for the replica module: a directory replica of a real
 * repository, opened afterwards as a repository of its own. */
#include <tidemark/config.h>
#include <tidemark/replica.h>

#include "tm_test_util.h"

static uint64_t seed;

struct fix {
        struct tmt_fix *f;
        char replica[PATH_MAX];
        char rcatalog[PATH_MAX];
        struct tm_replica_conf conf;
        tm_replica *rep;
};

static int setup(void **state)
{
        struct fix *x = calloc(1, sizeof(*x));

        assert_non_null(x);
        x->f = tmt_fix_new();
        tmt_path(x->replica, sizeof(x->replica), x->f->dir, "replica");
        tmt_path(x->rcatalog, sizeof(x->rcatalog), x->f->dir, "replica-catalog.db");
        assert_int_equal(tm_replica_conf_default(x->replica, &x->conf), 0);
        x->conf.parallel = 3;
        assert_int_equal(tm_replica_new(x->f->r, &x->conf, &x->rep), 0);
        *state = x;
        return 0;
}

static int teardown(void **state)
{
        struct fix *x = *state;

        tm_replica_free(x->rep);
        tm_replica_conf_dispose(&x->conf);
        tmt_fix_free(x->f);
        free(x);
        return 0;
}

static void add_files(struct fix *x, const char *sub, size_t n)
{
        struct tmt_tree_counts c = { 0 };
        char dir[PATH_MAX];

        tmt_path(dir, sizeof(dir), x->f->src, sub);
        tmt_mkdir(dir);
        for (size_t i = 0; i < n; i++) {
                char rel[64];

                snprintf(rel, sizeof(rel), "%s/f%zu", sub, i);
                tmt_add_file(x->f->src, rel, &seed, 3 * TMT_CHUNK_MAX + i * 777, 0644, &c);
        }
}

static void backup(struct fix *x, struct tm_snapshot *ret)
{
        struct tm_snapshot s = { 0 };

        assert_int_equal(tmt_backup(x->f->r, x->f->src, "files", "full", &s), 0);
        if (ret)
                *ret = s;
        else
                tm_snapshot_dispose(&s);
}

static tm_repo *open_replica(struct fix *x)
{
        struct tm_repo_opts o = tmt_repo_opts(x->replica, x->rcatalog, TMT_PASS);
        tm_repo *r = NULL;

        assert_int_equal(tm_repo_open(&o, &r), 0);
        return r;
}

static void assert_replica_checks(struct fix *x, size_t want_snapshots)
{
        struct tm_check_opts o = TM_CHECK_OPTS_INIT;
        struct tm_check_stats st = { 0 };
        tm_repo *r = open_replica(x);

        o.read_data = 1;
        assert_int_equal(tm_check_run(r, &o, &st), 0);
        assert_int_equal(st.errors, 0);
        assert_int_equal(st.snapshots, want_snapshots);
        tm_repo_free(r);
}

/* "name size" of every file under dir, sorted, recursively. */
static void files_rec(const char *dir, const char *rel, tm_buf *out)
{
        size_t n = 0;
        char **names = tmt_names(dir, &n);

        for (size_t i = 0; i < n; i++) {
                char p[PATH_MAX], r[PATH_MAX];
                struct stat st;

                tmt_path(p, sizeof(p), dir, names[i]);
                snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", names[i]);
                assert_int_equal(lstat(p, &st), 0);
                if (S_ISDIR(st.st_mode))
                        files_rec(p, r, out);
                else
                        assert_int_equal(tm_buf_printf(out, "%s %lld\n", r, (long long)st.st_size),
                                         0);
        }
        tmt_names_free(names, n);
}

static void files(const char *dir, tm_buf *out)
{
        struct stat st;

        tm_buf_clear(out);
        assert_int_equal(tm_buf_append(out, "", 0), 0);
        if (stat(dir, &st) == 0)
                files_rec(dir, "", out);
        assert_int_equal(tm_buf_append(out, "", 1), 0);
}

/* The sorted object listing of a repository directory (locks excluded). */
static void objects(const char *repo, tm_buf *out)
{
        static const char *const dirs[] = { "keys", "data", "index", "snapshots" };
        tm_buf one = TM_BUF_INIT(0);
        char p[PATH_MAX];

        tm_buf_clear(out);
        for (size_t i = 0; i < TM_ARRAY_SIZE(dirs); i++) {
                tmt_path(p, sizeof(p), repo, dirs[i]);
                files(p, &one);
                assert_int_equal(tm_buf_printf(out, "%s:\n%s", dirs[i], (const char *)one.data), 0);
        }
        tmt_path(p, sizeof(p), repo, "config");
        tmt_read(p, &one);
        assert_int_equal(tm_buf_append(out, one.data, one.len), 0);
        tm_buf_dispose(&one);
}

static void assert_same_objects(struct fix *x)
{
        tm_buf a = TM_BUF_INIT(0), b = TM_BUF_INIT(0);

        objects(x->f->repo, &a);
        objects(x->replica, &b);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        tm_buf_dispose(&a);
        tm_buf_dispose(&b);
}

static void test_conf(void **state)
{
        struct tm_replica_conf c = { 0 };
        struct tm_config *cfg = NULL;
        char path[PATH_MAX], err[512];
        struct fix *x = *state;
        static const struct {
                const char *text, *want;
        } bad[] = {
                { "interval = 1h\n", ":4: [replica] needs a location" },
                { "location = /r\ninterval = soon\n", ":5: invalid interval 'soon'" },
                { "location = /r\nparallel = 0\n", ":5: invalid parallel '0'" },
                { "location = /r\nparallel = 65\n", ":5: invalid parallel '65'" },
                { "location = /r\nverify = maybe\n", ":5: invalid verify 'maybe'" },
                { "location = /r\ndelete = perhaps\n", ":5: invalid delete 'perhaps'" },
                { "location = /r\nbandwidth = fast\n", ":5: invalid bandwidth 'fast'" },
                { "location = /r\nname = a b\n", ":5: invalid replica name 'a b'" },
                { "location = /r\nregion = eu\n", ":5: unknown key 'region' in [replica]" },
        };
        FILE *f;

        (void)state;
        tmt_path(path, sizeof(path), x->f->dir, "t.conf");
        tmt_write(path,
                  "[repository]\nlocation = /p\n\n[replica]\nlocation = s3:https://h/b/p\n"
                  "name = eu-west\ninterval = 90s\nbandwidth = 10M\nparallel = 8\n"
                  "verify = size\ndelete = off\n",
                  strlen("[repository]\nlocation = /p\n\n[replica]\nlocation = s3:https://h/b/p\n"
                         "name = eu-west\ninterval = 90s\nbandwidth = 10M\nparallel = 8\n"
                         "verify = size\ndelete = off\n"));
        assert_int_equal(tm_config_load(path, &cfg, err, sizeof(err)), 0);
        assert_int_equal(tm_replica_conf_load(cfg, &c, err, sizeof(err)), 0);
        assert_string_equal(c.location, "s3:https://h/b/p");
        assert_string_equal(c.name, "eu-west");
        assert_int_equal(c.interval_ns, 90LL * TM_NSEC_PER_SEC);
        assert_int_equal(c.bandwidth, 10u << 20);
        assert_int_equal(c.parallel, 8);
        assert_int_equal(c.verify, TM_REPLICA_VERIFY_SIZE);
        assert_int_equal(c.propagate_deletes, 0);
        tm_replica_conf_dispose(&c);
        assert_null(c.name);
        tm_replica_conf_dispose(NULL);
        tm_config_free(cfg);

        /* defaults, and no section at all */
        tmt_write(path, "[replica]\nlocation = /r\n", strlen("[replica]\nlocation = /r\n"));
        assert_int_equal(tm_config_load(path, &cfg, err, sizeof(err)), 0);
        assert_int_equal(tm_replica_conf_load(cfg, &c, err, sizeof(err)), 0);
        assert_string_equal(c.name, "replica");
        assert_int_equal(c.interval_ns, 300LL * TM_NSEC_PER_SEC);
        assert_int_equal(c.parallel, 2);
        assert_int_equal(c.verify, TM_REPLICA_VERIFY_FULL);
        assert_int_equal(c.propagate_deletes, 1);
        assert_int_equal(c.bandwidth, 0);
        tm_replica_conf_dispose(&c);
        tm_config_free(cfg);
        tmt_write(path, "[repository]\nlocation = /r\n", strlen("[repository]\nlocation = /r\n"));
        assert_int_equal(tm_config_load(path, &cfg, err, sizeof(err)), 0);
        assert_int_equal(tm_replica_conf_load(cfg, &c, err, sizeof(err)), -ENOENT);
        assert_null(c.location);
        tm_config_free(cfg);

        for (size_t i = 0; i < TM_ARRAY_SIZE(bad); i++) {
                f = fopen(path, "w");
                assert_non_null(f);
                fprintf(f, "[repository]\nlocation = /p\n[replica]\n%s", bad[i].text);
                fclose(f);
                assert_int_equal(tm_config_load(path, &cfg, err, sizeof(err)), 0);
                err[0] = 0;
                assert_int_equal(tm_replica_conf_load(cfg, &c, err, sizeof(err)), -EINVAL);
                if (!strstr(err, bad[i].want))
                        fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].want);
                assert_true(!strncmp(err, path, strlen(path)));
                assert_null(c.location);
                tm_config_free(cfg);
        }
}

static void test_new_rejects(void **state)
{
        struct fix *x = *state;
        struct tm_replica_conf c = { 0 };
        tm_replica *r = NULL;

        assert_int_equal(tm_replica_conf_default(NULL, &c), 0);
        assert_int_equal(tm_replica_new(x->f->r, &c, &r), -EINVAL);
        assert_int_equal(tm_replica_new(NULL, &x->conf, &r), -EINVAL);
        c.location = strdup(x->f->repo);
        assert_int_equal(tm_replica_new(x->f->r, &c, &r), -EINVAL);
        assert_null(r);
        tm_replica_conf_dispose(&c);
        assert_string_equal(tm_replica_location(x->rep), x->replica);
        tm_replica_free(NULL);
}

static void test_copy_check_restore(void **state)
{
        struct fix *x = *state;
        struct tm_replica_stats st = { 0 };
        struct tm_replica_status s = { 0 };
        struct tm_snapshot snap = { 0 }, rs = { 0 };
        char out[PATH_MAX];
        tm_repo *r;

        add_files(x, "a", 6);
        backup(x, &snap);
        tm_replica_last(x->rep, &s);
        assert_int_equal(s.snapshots, 0); /* nothing looked at yet */

        assert_int_equal(tm_replica_status(x->rep, &s), 0);
        assert_true(s.reachable);
        assert_int_equal(s.snapshots, 1);
        assert_int_equal(s.snapshots_behind, 1);
        assert_true(s.objects_behind >= 5); /* key, config, packs, index, snapshot */
        assert_true(s.bytes_behind > 6 * 3 * TMT_CHUNK_MAX);
        assert_true(s.oldest_missing_ns >= snap.time);
        assert_true(s.lag_ns >= 0);

        assert_int_equal(tm_replica_run(x->rep, NULL, &st), 0);
        assert_int_equal(st.errors, 0);
        assert_int_equal(st.objects_copied, s.objects_behind);
        assert_int_equal(st.bytes_copied, s.bytes_behind);
        assert_int_equal(st.status.objects_behind, 0);
        assert_int_equal(st.status.snapshots_behind, 0);
        assert_int_equal(st.status.lag_ns, 0);
        assert_int_equal(st.status.oldest_missing_ns, 0);
        assert_same_objects(x);
        assert_replica_checks(x, 1);

        /* byte-exact restore from the replica alone */
        r = open_replica(x);
        assert_int_equal(tm_repo_snapshot_find(r, "latest", NULL, &rs), 0);
        assert_memory_equal(rs.id.b, snap.id.b, TM_ID_LEN);
        tmt_path(out, sizeof(out), x->f->dir, "out");
        assert_int_equal(tmt_restore(r, &rs, out, NULL), 0);
        assert_true(tmt_trees_equal(x->f->src, out, 0));
        tm_snapshot_dispose(&rs);
        tm_repo_free(r);

        /* a second pass copies nothing */
        assert_int_equal(tm_replica_run(x->rep, NULL, &st), 0);
        assert_int_equal(st.objects_copied, 0);
        assert_int_equal(st.objects_deleted, 0);
        tm_replica_last(x->rep, &s);
        assert_int_equal(s.objects_behind, 0);
        tm_snapshot_dispose(&snap);
}

/* forget + prune on the primary reach the replica; snapshots before packs. */
static void test_deletions(void **state)
{
        struct fix *x = *state;
        struct tm_prune_opts po = TM_PRUNE_OPTS_INIT;
        struct tm_replica_stats st = { 0 };
        struct tm_replica_status s = { 0 };
        struct tm_snapshot a = { 0 };
        char dir[PATH_MAX];

        add_files(x, "old", 4);
        backup(x, &a);
        tmt_path(dir, sizeof(dir), x->f->src, "old");
        tmt_rm_rf(dir);
        add_files(x, "new", 3);
        backup(x, NULL);
        assert_int_equal(tm_replica_run(x->rep, NULL, &st), 0);
        assert_replica_checks(x, 2);

        assert_int_equal(tm_repo_snapshot_remove(x->f->r, &a.id), 0);
        po.max_unused = 0;
        assert_int_equal(tm_prune_run(x->f->r, &po, NULL), 0);
        assert_int_equal(tm_replica_status(x->rep, &s), 0);
        assert_true(s.objects_extra > 0);
        assert_int_equal(s.snapshots, 1);
        assert_int_equal(s.snapshots_behind, 0);

        /* with deletions off, the replica keeps everything */
        x->conf.propagate_deletes = 0;
        assert_int_equal(tm_replica_run(x->rep, NULL, &st), 0);
        assert_int_equal(st.objects_deleted, 0);
        assert_true(st.status.objects_extra > 0);
        assert_replica_checks(x, 2);

        x->conf.propagate_deletes = 1;
        assert_int_equal(tm_replica_run(x->rep, NULL, &st), 0);
        assert_int_equal(st.objects_deleted, s.objects_extra);
        assert_int_equal(st.status.objects_extra, 0);
        assert_same_objects(x);
        assert_replica_checks(x, 1);
        tm_snapshot_dispose(&a);
}

/* A cancelled pass leaves a consistent replica; the next one finishes
 * without copying again what landed. */
static void test_cancel_resume(void **state)
{
        struct fix *x = *state;
        struct tm_replica_stats st = { 0 }, st2 = { 0 };
        struct tm_replica_status s = { 0 };
        volatile int cancel = 1;

        add_files(x, "c", 5);
        backup(x, NULL);
        assert_int_equal(tm_replica_run(x->rep, &cancel, &st), -ECANCELED);
        assert_int_equal(st.objects_copied, 0);

        /* copy only the keys, config and packs, as a kill after them would */
        assert_int_equal(tm_replica_status(x->rep, &s), 0);
        {
                char p[PATH_MAX], q[PATH_MAX];

                x->conf.propagate_deletes = 0;
                tmt_path(p, sizeof(p), x->f->repo, "snapshots");
                tmt_path(q, sizeof(q), x->f->dir, "snapshots.away");
                assert_int_equal(rename(p, q), 0);
                tmt_mkdir(p);
                tmt_path(p, sizeof(p), x->f->repo, "index");
                tmt_path(q, sizeof(q), x->f->dir, "index.away");
                assert_int_equal(rename(p, q), 0);
                tmt_mkdir(p);
                assert_int_equal(tm_replica_run(x->rep, NULL, &st), 0);
                assert_true(st.objects_copied > 0);
                assert_replica_checks(x, 0);
                tmt_rm_rf(p);
                assert_int_equal(rename(q, p), 0);
                tmt_path(p, sizeof(p), x->f->repo, "snapshots");
                tmt_path(q, sizeof(q), x->f->dir, "snapshots.away");
                tmt_rm_rf(p);
                assert_int_equal(rename(q, p), 0);
                x->conf.propagate_deletes = 1;
        }
        assert_int_equal(tm_replica_run(x->rep, NULL, &st2), 0);
        assert_int_equal(st.objects_copied + st2.objects_copied, s.objects_behind);
        assert_int_equal(st.bytes_copied + st2.bytes_copied, s.bytes_behind);
        assert_same_objects(x);
        assert_replica_checks(x, 1);
}

/* A damaged pack on the primary is never copied; the pass says so. */
static void test_damaged_source(void **state)
{
        struct fix *x = *state;
        struct tm_replica_stats st = { 0 };
        tm_buf names = TM_BUF_INIT(0);
        char p[PATH_MAX + 64], *line, *save = NULL;
        struct stat sb;

        add_files(x, "d", 2);
        backup(x, NULL);
        tmt_path(p, sizeof(p), x->f->repo, "data");
        files(p, &names);
        line = strtok_r((char *)names.data, "\n", &save);
        assert_non_null(line);
        /* a line is "ab/<pack id> size"; flip a byte of that pack */
        *strchr(line, ' ') = 0;
        snprintf(p, sizeof(p), "%s/data/%s", x->f->repo, line);
        tmt_flip_byte(p, 10);
        assert_int_equal(tm_replica_run(x->rep, NULL, &st), -EBADMSG);
        assert_int_equal(st.errors, 1);
        snprintf(p, sizeof(p), "%s/data/%s", x->replica, line);
        assert_int_equal(stat(p, &sb), -1);
        /* nothing after the packs went: the replica has no snapshot yet */
        assert_int_equal(st.status.snapshots_behind, 1);
        assert_replica_checks(x, 0);
        tm_buf_dispose(&names);
}

/* Another repository at the location is never written to. */
static void test_other_repository(void **state)
{
        struct fix *x = *state;
        struct tmt_fix *other = tmt_fix_new();
        struct tm_replica_conf c = { 0 };
        struct tm_replica_stats st = { 0 };
        tm_replica *r = NULL;
        tm_buf before = TM_BUF_INIT(0), after = TM_BUF_INIT(0);

        backup(x, NULL);
        assert_int_equal(tm_replica_conf_default(other->repo, &c), 0);
        assert_int_equal(tm_replica_new(x->f->r, &c, &r), 0);
        objects(other->repo, &before);
        assert_int_equal(tm_replica_run(r, NULL, &st), -EEXIST);
        objects(other->repo, &after);
        assert_int_equal(before.len, after.len);
        assert_memory_equal(before.data, after.data, before.len);
        tm_replica_free(r);
        tm_replica_conf_dispose(&c);
        tm_buf_dispose(&before);
        tm_buf_dispose(&after);
        tmt_fix_free(other);
}

/* An unreachable replica: the status falls back on the last listing and
 * the lag grows with the primary's new snapshots. */
static void test_unreachable(void **state)
{
        struct fix *x = *state;
        struct tm_replica_stats st = { 0 };
        struct tm_replica_status s = { 0 };
        char away[PATH_MAX], data[PATH_MAX];

        backup(x, NULL);
        assert_int_equal(tm_replica_run(x->rep, NULL, &st), 0);
        /* a file where the replica's data/ was: writes fail (the local
         * backend holds the directory itself open, so moving the whole
         * replica away would not do) */
        tmt_path(data, sizeof(data), x->replica, "data");
        tmt_path(away, sizeof(away), x->f->dir, "data.away");
        assert_int_equal(rename(data, away), 0);
        tmt_write(data, "x", 1);
        add_files(x, "u", 2);
        backup(x, NULL);
        assert_true(tm_replica_run(x->rep, NULL, &st) < 0);
        assert_true(st.errors > 0);
        assert_int_equal(st.status.snapshots, 2);
        assert_int_equal(st.status.snapshots_behind, 1);
        assert_true(st.status.oldest_missing_ns > 0);
        assert_true(st.status.bytes_behind > 2 * 3 * TMT_CHUNK_MAX);
        assert_int_equal(tm_replica_status(x->rep, &s), 0);
        assert_int_equal(s.snapshots_behind, 1);
        usleep(20000);
        tm_replica_last(x->rep, &s);
        assert_int_equal(s.snapshots_behind, 1);
        assert_true(s.lag_ns >= 20000000); /* it grows between passes */
        assert_int_equal(unlink(data), 0);
        assert_int_equal(rename(away, data), 0);
        assert_int_equal(tm_replica_run(x->rep, NULL, &st), 0);
        assert_true(st.status.reachable);
        assert_int_equal(st.status.lag_ns, 0);
        assert_replica_checks(x, 2);
        tm_replica_last(x->rep, &s);
        assert_int_equal(s.lag_ns, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_conf, setup, teardown),
                cmocka_unit_test_setup_teardown(test_new_rejects, setup, teardown),
                cmocka_unit_test_setup_teardown(test_copy_check_restore, setup, teardown),
                cmocka_unit_test_setup_teardown(test_deletions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_cancel_resume, setup, teardown),
                cmocka_unit_test_setup_teardown(test_damaged_source, setup, teardown),
                cmocka_unit_test_setup_teardown(test_other_repository, setup, teardown),
                cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
        };

        seed = tmt_seed();
        tm_log_set_level(TM_LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
