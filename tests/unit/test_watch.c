/* Unit tests for the watch module, on real inotify in a scratch directory:
 * create, modify, attrib, delete, rename (file and directory), a new
 * subdirectory (and files inside it) and a deep tree created at once are
 * all reported with their paths; a directory moved away is no longer
 * watched; ignored prefixes are silent; a single file can be a root; a
 * queue overflow is answered by a rescan; the debounce: due at once
 * after a quiet start, then at most once per interval; and the config keys
 * that turn it on (schedule.continuous, continuous_interval). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/config.h>
#include <tidemark/time.h>
#include <tidemark/watch.h>

#define MAX_SEEN 64

struct seen {
        size_t n;
        int overflow;
        enum tm_watch_kind kind[MAX_SEEN];
        int is_dir[MAX_SEEN];
        char path[MAX_SEEN][512];
};

static char dir[64];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
        (void)st;
        (void)flag;
        (void)f;
        return remove(p);
}

static int setup(void **state)
{
        (void)state;
        snprintf(dir, sizeof(dir), "/tmp/tm-watch-XXXXXX");
        assert_non_null(mkdtemp(dir));
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        return 0;
}

static void on_event(enum tm_watch_kind kind, const char *path, int is_dir, void *userdata)
{
        struct seen *s = userdata;

        if (kind == TM_WATCH_OVERFLOW)
                s->overflow++;
        if (s->n == MAX_SEEN)
                return;
        s->kind[s->n] = kind;
        s->is_dir[s->n] = is_dir;
        snprintf(s->path[s->n], sizeof(s->path[0]), "%s", path);
        s->n++;
}

/* Read events until none arrive for 100 ms. */
static void drain(tm_watch *w, struct seen *s)
{
        int r;

        do {
                r = tm_watch_process(w, 100, on_event, s);
                assert_true(r >= 0);
        } while (r > 0);
}

/* Was (kind, dir/rel) reported? */
static int has(const struct seen *s, enum tm_watch_kind kind, const char *rel)
{
        char p[512];

        snprintf(p, sizeof(p), "%s/%s", dir, rel);
        for (size_t i = 0; i < s->n; i++)
                if (s->kind[i] == kind && !strcmp(s->path[i], p))
                        return 1;
        return 0;
}

static void write_file(const char *rel, const char *data)
{
        char p[512];
        FILE *f;

        snprintf(p, sizeof(p), "%s/%s", dir, rel);
        f = fopen(p, "w");
        assert_non_null(f);
        fputs(data, f);
        assert_int_equal(fclose(f), 0);
}

static void make_dir(const char *rel)
{
        char p[512];

        snprintf(p, sizeof(p), "%s/%s", dir, rel);
        assert_int_equal(mkdir(p, 0700), 0);
}

static void do_rename(const char *from, const char *to)
{
        char a[512], b[512];

        snprintf(a, sizeof(a), "%s/%s", dir, from);
        snprintf(b, sizeof(b), "%s/%s", dir, to);
        assert_int_equal(rename(a, b), 0);
}

static tm_watch *open_watch(const char *ignore)
{
        const char *paths[] = { dir };
        const char *ign[] = { ignore };
        struct tm_watch_opts o = { paths, 1, ignore ? ign : NULL, ignore ? 1 : 0 };
        tm_watch *w = NULL;

        assert_int_equal(tm_watch_new(&o, &w), 0);
        assert_non_null(w);
        assert_true(tm_watch_fd(w) >= 0);
        return w;
}

static void test_watch_events(void **state)
{
        struct seen s = { 0 };
        char p[512];
        tm_watch *w;

        (void)state;
        make_dir("old");
        make_dir("old/deep");
        w = open_watch(NULL);
        assert_int_equal(tm_watch_count(w), 3); /* dir, old, old/deep */
        assert_int_equal(tm_watch_pending(w), 0);
        assert_int_equal(tm_watch_process(w, 0, on_event, &s), 0); /* nothing yet */

        write_file("a.txt", "one");
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_CREATE, "a.txt"));
        assert_true(has(&s, TM_WATCH_MODIFY, "a.txt"));
        assert_true(tm_watch_pending(w) >= 2);

        /* an existing subdirectory two levels down is watched */
        memset(&s, 0, sizeof(s));
        write_file("old/deep/b.txt", "two");
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_CREATE, "old/deep/b.txt"));

        /* a new subdirectory is reported, and watched: a file in it is seen */
        memset(&s, 0, sizeof(s));
        make_dir("new");
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_CREATE, "new"));
        assert_int_equal(s.is_dir[0], 1);
        write_file("new/c.txt", "three");
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_CREATE, "new/c.txt"));
        assert_int_equal(tm_watch_count(w), 4);

        /* metadata, then rename and delete of a file */
        memset(&s, 0, sizeof(s));
        snprintf(p, sizeof(p), "%s/a.txt", dir);
        assert_int_equal(chmod(p, 0600), 0);
        do_rename("a.txt", "renamed.txt");
        snprintf(p, sizeof(p), "%s/renamed.txt", dir);
        assert_int_equal(unlink(p), 0);
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_ATTRIB, "a.txt"));
        assert_true(has(&s, TM_WATCH_MOVE_FROM, "a.txt"));
        assert_true(has(&s, TM_WATCH_MOVE_TO, "renamed.txt"));
        assert_true(has(&s, TM_WATCH_DELETE, "renamed.txt"));

        /* a renamed directory: its watches follow the new name */
        memset(&s, 0, sizeof(s));
        do_rename("old", "moved");
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_MOVE_FROM, "old"));
        assert_true(has(&s, TM_WATCH_MOVE_TO, "moved"));
        memset(&s, 0, sizeof(s));
        write_file("moved/deep/d.txt", "four");
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_CREATE, "moved/deep/d.txt"));
        assert_false(has(&s, TM_WATCH_CREATE, "old/deep/d.txt"));

        /* a deleted directory is forgotten */
        memset(&s, 0, sizeof(s));
        snprintf(p, sizeof(p), "%s/new/c.txt", dir);
        assert_int_equal(unlink(p), 0);
        snprintf(p, sizeof(p), "%s/new", dir);
        assert_int_equal(rmdir(p), 0);
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_DELETE, "new/c.txt"));
        assert_true(has(&s, TM_WATCH_DELETE, "new"));
        assert_int_equal(tm_watch_count(w), 3); /* dir, moved, moved/deep */
        tm_watch_free(w);
}

static void test_watch_moved_away_and_ignored(void **state)
{
        struct seen s = { 0 };
        char ign[256], outside[256], p[512];
        tm_watch *w;

        (void)state;
        make_dir("repo");
        make_dir("sub");
        snprintf(ign, sizeof(ign), "%s/repo", dir);
        w = open_watch(ign);
        assert_int_equal(tm_watch_count(w), 2); /* dir and sub, not repo */

        write_file("repo/pack", "x");
        drain(w, &s);
        assert_int_equal(s.n, 0);
        assert_int_equal(tm_watch_pending(w), 0);

        /* sub moved out of the tree: reported, then silent */
        snprintf(outside, sizeof(outside), "%s-outside", dir);
        snprintf(p, sizeof(p), "%s/sub", dir);
        assert_int_equal(rename(p, outside), 0);
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_MOVE_FROM, "sub"));
        assert_int_equal(tm_watch_count(w), 1);
        memset(&s, 0, sizeof(s));
        snprintf(p, sizeof(p), "%s/e.txt", outside);
        assert_int_equal(close(open(p, O_CREAT | O_WRONLY, 0600)), 0);
        drain(w, &s);
        assert_int_equal(s.n, 0);
        unlink(p);
        rmdir(outside);
        tm_watch_free(w);
}

static void test_watch_file_root_and_args(void **state)
{
        struct seen s = { 0 };
        char f[256];
        const char *paths[] = { f };
        const char *rel[] = { "relative" };
        const char *missing[] = { "/nonexistent/tm-watch" };
        struct tm_watch_opts o = { paths, 1, NULL, 0 };
        tm_watch *w = NULL;

        (void)state;
        write_file("single", "1");
        snprintf(f, sizeof(f), "%s/single", dir);
        assert_int_equal(tm_watch_new(&o, &w), 0);
        assert_int_equal(tm_watch_count(w), 1);
        write_file("single", "22");
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_MODIFY, "single"));
        tm_watch_free(w);

        w = NULL;
        o.n_paths = 0;
        assert_int_equal(tm_watch_new(&o, &w), -EINVAL);
        o.paths = rel;
        o.n_paths = 1;
        assert_int_equal(tm_watch_new(&o, &w), -EINVAL);
        assert_int_equal(tm_watch_new(NULL, &w), -EINVAL);
        assert_null(w);
        /* a path that does not exist (yet) is skipped, not an error */
        o.paths = missing;
        assert_int_equal(tm_watch_new(&o, &w), 0);
        assert_int_equal(tm_watch_count(w), 0);
        tm_watch_free(w);
        tm_watch_free(NULL);
        assert_int_equal(tm_watch_process(NULL, 0, NULL, NULL), -EINVAL);
        assert_string_equal(tm_watch_kind_name(TM_WATCH_MOVE_TO), "move_to");
        assert_string_equal(tm_watch_kind_name(TM_WATCH_OVERFLOW), "overflow");
}

/* More events than the kernel queues (fs.inotify.max_queued_events): the
 * overflow is reported, counts as a change, and the rescan watches a
 * directory created while events were being lost. */
static void test_watch_overflow(void **state)
{
        struct seen s = { 0 };
        unsigned long max = 16384;
        char p[512];
        FILE *f;
        tm_watch *w;

        (void)state;
        f = fopen("/proc/sys/fs/inotify/max_queued_events", "r");
        if (f) {
                if (fscanf(f, "%lu", &max) != 1)
                        max = 16384;
                fclose(f);
        }
        if (max > 200000) {
                skip();
                return;
        }
        w = open_watch(NULL);
        /* distinct names: the kernel merges identical consecutive events */
        for (unsigned long i = 0; i < max / 2 + 100; i++) {
                int fd;

                snprintf(p, sizeof(p), "%s/f%lu", dir, i);
                fd = open(p, O_CREAT | O_WRONLY, 0600);
                assert_true(fd >= 0);
                assert_int_equal(write(fd, "x", 1), 1);
                close(fd);
        }
        /* the queue is full: only the rescan can find these */
        make_dir("during");
        make_dir("during/inner");
        drain(w, &s);
        assert_true(s.overflow >= 1);
        assert_true(tm_watch_pending(w) > 0);
        assert_int_equal(tm_watch_count(w), 3); /* dir, during, during/inner */
        memset(&s, 0, sizeof(s));
        write_file("during/inner/g.txt", "g");
        drain(w, &s);
        assert_true(has(&s, TM_WATCH_CREATE, "during/inner/g.txt"));
        tm_watch_free(w);
}

static void test_watch_debounce(void **state)
{
        const int64_t sec = TM_NSEC_PER_SEC, iv = 2 * TM_NSEC_PER_SEC;
        tm_watch *w;

        (void)state;
        w = open_watch(NULL);
        /* nothing changed: never due */
        assert_int_equal(tm_watch_due_at(w, iv), -1);
        assert_false(tm_watch_due(w, 1000 * sec, iv));

        /* the first change after a quiet start is due at once */
        write_file("a", "1");
        drain(w, &(struct seen){ 0 });
        assert_int_equal(tm_watch_due_at(w, iv), 0);
        assert_true(tm_watch_due(w, 100 * sec, iv));
        tm_watch_take(w, 100 * sec);
        assert_int_equal(tm_watch_pending(w), 0);
        assert_false(tm_watch_due(w, 100 * sec, iv));

        /* changes within the interval wait for it */
        write_file("a", "2");
        drain(w, &(struct seen){ 0 });
        assert_true(tm_watch_pending(w) > 0);
        assert_int_equal(tm_watch_due_at(w, iv), 102 * sec);
        assert_false(tm_watch_due(w, 101 * sec, iv));
        assert_true(tm_watch_due(w, 102 * sec, iv));
        tm_watch_take(w, 102 * sec);

        /* a quiet period: no change, not due however long it lasts */
        assert_false(tm_watch_due(w, 500 * sec, iv));
        /* then a change long after the last cut: due at once */
        write_file("b", "3");
        drain(w, &(struct seen){ 0 });
        assert_true(tm_watch_due(w, 500 * sec, iv));
        /* no overflow of the due time */
        assert_int_equal(tm_watch_due_at(w, INT64_MAX), INT64_MAX);
        tm_watch_free(w);
        assert_int_equal(tm_watch_due_at(NULL, iv), -1);
        assert_int_equal(tm_watch_pending(NULL), 0);
        tm_watch_take(NULL, 0);
}

/* Load text as a config file; returns tm_config_load's result. */
static int load_conf(const char *text, struct tm_config **c, char *err, size_t errlen)
{
        char p[256];
        FILE *f;
        int r;

        snprintf(p, sizeof(p), "%s/t.conf", dir);
        f = fopen(p, "w");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
        r = tm_config_load(p, c, err, errlen);
        unlink(p);
        return r;
}

static void test_watch_config(void **state)
{
        struct tm_config *c = NULL;
        const struct tm_component_conf *cc;
        char err[512];
        static const struct {
                const char *text, *msg;
        } bad[] = {
                { "[component.a]\ntype = files\npaths = /x\nschedule.continuous = maybe\n",
                  "t.conf:4: invalid schedule.continuous 'maybe'" },
                { "[component.a]\ntype = files\npaths = /x\ncontinuous_interval = 0s\n",
                  "t.conf:4: invalid continuous_interval '0s'" },
                { "[component.a]\ntype = files\npaths = /x\ncontinuous_interval = 2d\n",
                  "t.conf:4: invalid continuous_interval '2d'" },
                { "[component.a]\ntype = files\npaths = /x\ncontinuous_interval = soon\n",
                  "invalid continuous_interval 'soon'" },
                { "[component.a]\ntype = command\ncommand = true\nschedule.continuous = on\n",
                  "t.conf:2: component 'a': schedule.continuous needs type files" },
                { "[component.a]\ntype = files\npaths = /x\nschedule.often = on\n",
                  "schedule.continuous)" },
        };

        (void)state;
        assert_int_equal(load_conf("[component.on]\ntype = files\npaths = /srv\n"
                                   "schedule.continuous = on\ncontinuous_interval = 30s\n"
                                   "[component.m]\ntype = files\npaths = /srv\n"
                                   "schedule.continuous = yes\ncontinuous_interval = 5m\n"
                                   "[component.off]\ntype = files\npaths = /srv\n"
                                   "schedule.continuous = none\n"
                                   "[component.default]\ntype = files\npaths = /srv\n",
                                   &c, err, sizeof(err)),
                         0);
        cc = tm_config_component(c, "on");
        assert_non_null(cc);
        assert_int_equal(cc->continuous, 1);
        assert_int_equal(cc->continuous_interval_ns, 30 * TM_NSEC_PER_SEC);
        /* the other strategies keep their defaults */
        assert_int_equal(cc->has_schedule[TM_STRATEGY_INCREMENTAL], 1);
        cc = tm_config_component(c, "m");
        assert_int_equal(cc->continuous, 1);
        assert_int_equal(cc->continuous_interval_ns, 300 * TM_NSEC_PER_SEC);
        cc = tm_config_component(c, "off");
        assert_int_equal(cc->continuous, 0);
        cc = tm_config_component(c, "default");
        assert_int_equal(cc->continuous, 0);
        assert_int_equal(cc->continuous_interval_ns, 60 * TM_NSEC_PER_SEC);
        tm_config_free(c);

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                c = NULL;
                err[0] = 0;
                assert_int_equal(load_conf(bad[i].text, &c, err, sizeof(err)), -EINVAL);
                assert_null(c);
                if (!strstr(err, bad[i].msg))
                        fail_msg("case %zu: '%s' does not contain '%s'", i, err, bad[i].msg);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_watch_events, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_moved_away_and_ignored, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_file_root_and_args, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_overflow, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_debounce, setup, teardown),
                cmocka_unit_test_setup_teardown(test_watch_config, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
