/* Unit tests for the backend module (local directory driver). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/backend.h>
#include <tidemark/log.h>

#include "backend/backend_internal.h"

static uint64_t rng_state;

static uint64_t rng_next(void)
{
        /* xorshift64*: deterministic from the printed seed */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 0x2545F4914F6CDD1DULL;
}

static void fill_random(uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                p[i] = (uint8_t)(rng_next() >> 56);
}

struct fixture {
        char dir[256]; /* scratch (mkdtemp) */
        char root[512];
        tm_backend *b;
        int mounted;
};

static int run_cmd(char *const argv[])
{
        pid_t pid = fork();
        int status;

        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int fd = open("/dev/null", O_WRONLY);

                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                execvp(argv[0], argv);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

static int rm_rf(const char *path)
{
        char *argv[] = { "rm", "-rf", "--one-file-system", (char *)path, NULL };

        return run_cmd(argv);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/tm-test-backend-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->root, sizeof(f->root), "%s/repo/nested", f->dir);
        assert_int_equal(tm_backend_open_local(f->root, 1, &f->b), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        tm_backend_free(f->b);
        if (f->mounted) {
                char *argv[] = { "umount", f->root, NULL };

                run_cmd(argv);
        }
        rm_rf(f->dir);
        free(f);
        return 0;
}

/* Count files whose name starts with '.' anywhere under path. */
static int count_dot_files(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        int n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char sub[PATH_MAX];
                struct stat st;

                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
                if (lstat(sub, &st) < 0)
                        continue;
                if (de->d_name[0] == '.')
                        n++;
                if (S_ISDIR(st.st_mode))
                        n += count_dot_files(sub);
        }
        closedir(d);
        return n;
}

static void expect_object(tm_backend *b, const char *name, const void *p, size_t n)
{
        tm_buf buf = TM_BUF_INIT(0);
        uint64_t size = 0;

        assert_int_equal(tm_backend_get(b, name, 1 << 24, &buf), 0);
        assert_int_equal(buf.len, n);
        if (n)
                assert_memory_equal(buf.data, p, n);
        assert_int_equal(tm_backend_head(b, name, &size), 0);
        assert_int_equal(size, n);
        tm_buf_dispose(&buf);
}

static void test_open(void **state)
{
        struct fixture *f = *state;
        char path[PATH_MAX], real[PATH_MAX];
        tm_backend *b = NULL;
        int fd;

        /* location is the resolved root */
        assert_non_null(realpath(f->root, real));
        assert_string_equal(tm_backend_location(f->b), real);

        snprintf(path, sizeof(path), "%s/missing", f->dir);
        assert_int_equal(tm_backend_open_local(path, 0, &b), -ENOENT);
        assert_null(b);

        snprintf(path, sizeof(path), "%s/afile", f->dir);
        fd = open(path, O_CREAT | O_WRONLY, 0600);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(tm_backend_open_local(path, 0, &b), -ENOTDIR);
        assert_int_equal(tm_backend_open_local(path, 1, &b), -ENOTDIR);
        assert_null(b);

        /* a relative path with "." and ".." resolves to the same root */
        snprintf(path, sizeof(path), "%s/repo/../repo/./nested/", f->dir);
        assert_int_equal(tm_backend_open_local(path, 0, &b), 0);
        assert_string_equal(tm_backend_location(b), real);
        tm_backend_free(b);

        assert_int_equal(tm_backend_open_local(NULL, 1, &b), -EINVAL);
        assert_int_equal(tm_backend_open_local("", 1, &b), -EINVAL);
        tm_backend_free(NULL);
}

static void test_put_get_head(void **state)
{
        struct fixture *f = *state;
        uint8_t data[10000], other[77];
        tm_buf buf = TM_BUF_INIT(0);
        uint64_t size = 1;
        char path[PATH_MAX];
        struct stat st;

        fill_random(data, sizeof(data));
        fill_random(other, sizeof(other));
        assert_int_equal(tm_backend_put(f->b, "config", data, 100), 0);
        assert_int_equal(tm_backend_put(f->b, "data/ab/abcdef", data, sizeof(data)), 0);
        assert_int_equal(tm_backend_put(f->b, "empty", NULL, 0), 0);
        expect_object(f->b, "config", data, 100);
        expect_object(f->b, "data/ab/abcdef", data, sizeof(data));
        expect_object(f->b, "empty", NULL, 0);

        /* on disk: a plain file at the relative path, private modes */
        snprintf(path, sizeof(path), "%s/data/ab/abcdef", f->root);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, sizeof(data));
        assert_int_equal(st.st_mode & 0777, 0600);
        snprintf(path, sizeof(path), "%s/data/ab", f->root);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);

        /* put replaces */
        assert_int_equal(tm_backend_put(f->b, "config", other, sizeof(other)), 0);
        expect_object(f->b, "config", other, sizeof(other));

        /* bounded read */
        assert_int_equal(tm_backend_get(f->b, "data/ab/abcdef", sizeof(data) - 1, &buf), -E2BIG);
        assert_int_equal(tm_backend_get(f->b, "data/ab/abcdef", sizeof(data), &buf), 0);
        assert_int_equal(buf.len, sizeof(data));
        /* the previous contents of ret are replaced, not appended to */
        assert_int_equal(tm_backend_get(f->b, "config", 1000, &buf), 0);
        assert_int_equal(buf.len, sizeof(other));
        assert_memory_equal(buf.data, other, sizeof(other));

        /* missing objects, and directories, are not objects */
        assert_int_equal(tm_backend_get(f->b, "nope", 100, &buf), -ENOENT);
        assert_int_equal(tm_backend_get(f->b, "data/ab", 100, &buf), -ENOENT);
        assert_int_equal(tm_backend_get(f->b, "config/below", 100, &buf), -ENOENT);
        assert_int_equal(tm_backend_head(f->b, "nope", &size), -ENOENT);
        assert_int_equal(tm_backend_head(f->b, "data", &size), -ENOENT);
        assert_int_equal(tm_backend_head(f->b, "data/zz/x", &size), -ENOENT);
        assert_int_equal(size, 1); /* untouched on failure */
        /* the buffer still holds the last good read */
        assert_int_equal(buf.len, sizeof(other));

        /* a file where a directory is needed fails cleanly */
        assert_int_equal(tm_backend_put(f->b, "config/below", data, 10), -ENOTDIR);
        assert_int_equal(tm_backend_put(f->b, "config/deeper/x", data, 10), -ENOTDIR);
        expect_object(f->b, "config", other, sizeof(other));

        assert_int_equal(count_dot_files(f->root), 0);
        tm_buf_dispose(&buf);
}

static void test_get_range(void **state)
{
        struct fixture *f = *state;
        uint8_t data[4096];
        tm_buf buf = TM_BUF_INIT(0);

        fill_random(data, sizeof(data));
        assert_int_equal(tm_backend_put(f->b, "data/00/pack", data, sizeof(data)), 0);
        assert_int_equal(tm_backend_get_range(f->b, "data/00/pack", 0, 10, &buf), 0);
        assert_int_equal(buf.len, 10);
        assert_memory_equal(buf.data, data, 10);
        assert_int_equal(tm_backend_get_range(f->b, "data/00/pack", 1000, 3096, &buf), 0);
        assert_int_equal(buf.len, 3096);
        assert_memory_equal(buf.data, data + 1000, 3096);
        assert_int_equal(tm_backend_get_range(f->b, "data/00/pack", 4096, 0, &buf), 0);
        assert_int_equal(buf.len, 0);

        /* past the end: truncated object */
        assert_int_equal(tm_backend_get_range(f->b, "data/00/pack", 4000, 97, &buf), -EBADMSG);
        assert_int_equal(tm_backend_get_range(f->b, "data/00/pack", 5000, 1, &buf), -EBADMSG);
        assert_int_equal(tm_backend_get_range(f->b, "data/00/pack", UINT64_MAX, 1, &buf), -EINVAL);
        assert_int_equal(tm_backend_get_range(f->b, "data/00/nope", 0, 1, &buf), -ENOENT);

        /* the caller's buffer limit applies */
        tm_buf_dispose(&buf);
        buf = TM_BUF_INIT(100);
        assert_int_equal(tm_backend_get_range(f->b, "data/00/pack", 0, 101, &buf), -E2BIG);
        assert_int_equal(tm_backend_get_range(f->b, "data/00/pack", 0, 100, &buf), 0);
        assert_memory_equal(buf.data, data, 100);
        tm_buf_dispose(&buf);
}

static void test_put_new(void **state)
{
        struct fixture *f = *state;
        const char a[] = "first", b[] = "second";

        assert_int_equal(tm_backend_put_new(f->b, "locks/l1", a, sizeof(a)), 0);
        assert_int_equal(tm_backend_put_new(f->b, "locks/l1", b, sizeof(b)), -EEXIST);
        expect_object(f->b, "locks/l1", a, sizeof(a));
        assert_int_equal(tm_backend_put_new(f->b, "top", b, sizeof(b)), 0);
        assert_int_equal(tm_backend_put_new(f->b, "top", b, sizeof(b)), -EEXIST);
        expect_object(f->b, "top", b, sizeof(b));
        /* put (not _new) still replaces it */
        assert_int_equal(tm_backend_put(f->b, "locks/l1", b, sizeof(b)), 0);
        expect_object(f->b, "locks/l1", b, sizeof(b));
        assert_int_equal(tm_backend_remove(f->b, "locks/l1"), 0);
        assert_int_equal(tm_backend_put_new(f->b, "locks/l1", a, sizeof(a)), 0);
        expect_object(f->b, "locks/l1", a, sizeof(a));
        assert_int_equal(count_dot_files(f->root), 0);
}

static int never_called(const char *name, uint64_t size, void *userdata)
{
        (void)name;
        (void)size;
        (void)userdata;
        fail_msg("list callback called");
        return 0;
}

static void test_names(void **state)
{
        static const char *const bad[] = { "",      "/abs",    "../x",           "a/../b",
                                           "a/..",  "..",      "a//b",           "a/",
                                           "/",     ".hidden", "a/.b",           "./a",
                                           "a/./b", "a/b/",    "data/.x.tmp-00", NULL };
        struct fixture *f = *state;
        tm_buf buf = TM_BUF_INIT(0);
        char longname[PATH_MAX + 10];
        uint64_t size;

        for (size_t i = 0; i < TM_ARRAY_SIZE(bad); i++) {
                const char *n = bad[i];

                assert_int_equal(tm_backend_put(f->b, n, "x", 1), -EINVAL);
                assert_int_equal(tm_backend_put_new(f->b, n, "x", 1), -EINVAL);
                assert_int_equal(tm_backend_get(f->b, n, 10, &buf), -EINVAL);
                assert_int_equal(tm_backend_get_range(f->b, n, 0, 1, &buf), -EINVAL);
                assert_int_equal(tm_backend_head(f->b, n, &size), -EINVAL);
                assert_int_equal(tm_backend_remove(f->b, n), -EINVAL);
        }
        /* nothing escaped the root */
        assert_int_equal(access("/x", F_OK), -1);
        assert_int_equal(tm_backend_list(f->b, "../", never_called, NULL), -EINVAL);
        assert_int_equal(tm_backend_list(f->b, "/data", never_called, NULL), -EINVAL);
        assert_int_equal(tm_backend_list(f->b, "a//b/", never_called, NULL), -EINVAL);
        assert_int_equal(tm_backend_list(f->b, "data", NULL, NULL), -EINVAL);

        memset(longname, 'a', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = 0;
        assert_int_equal(tm_backend_put(f->b, longname, "x", 1), -EINVAL);
        /* a component too long for the temp name: an error, nothing created */
        memset(longname, 'b', 250);
        longname[250] = 0;
        assert_true(tm_backend_put(f->b, longname, "x", 1) < 0);
        assert_int_equal(tm_backend_put(f->b, "ok", NULL, 1), -EINVAL);

        assert_true(tm_backend__name_valid("data/ab/cd"));
        assert_true(tm_backend__name_valid("config"));
        assert_true(tm_backend__name_valid("a\\b"));
        assert_false(tm_backend__name_valid(NULL));
        assert_int_equal(count_dot_files(f->root), 0);
        tm_buf_dispose(&buf);
}

struct listing {
        char names[64][64];
        uint64_t sizes[64];
        int n;
        int stop_after; /* 0: never */
};

static int collect(const char *name, uint64_t size, void *userdata)
{
        struct listing *l = userdata;

        assert_true(l->n < 64);
        snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
        l->sizes[l->n] = size;
        l->n++;
        if (l->stop_after && l->n == l->stop_after)
                return 42;
        return 0;
}

static void touch(const char *root, const char *rel, time_t age)
{
        char path[PATH_MAX];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", root, rel);
        fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "partial", 7), 7);
        close(fd);
        if (age) {
                struct timespec ts[2];

                clock_gettime(CLOCK_REALTIME, &ts[0]);
                ts[0].tv_sec -= age;
                ts[1] = ts[0];
                assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
        }
}

static void test_list(void **state)
{
        struct fixture *f = *state;
        struct listing l = { 0 };
        uint8_t data[300];

        fill_random(data, sizeof(data));
        assert_int_equal(tm_backend_put(f->b, "data/bb/two", data, 2), 0);
        assert_int_equal(tm_backend_put(f->b, "data/aa/one", data, 1), 0);
        assert_int_equal(tm_backend_put(f->b, "data/aa/three", data, 3), 0);
        assert_int_equal(tm_backend_put(f->b, "index/i1", data, 300), 0);
        assert_int_equal(tm_backend_put(f->b, "config", data, 5), 0);
        /* leftovers of interrupted writes are not objects */
        touch(f->root, "data/aa/.one.tmp-0123456789abcdef", 0);
        touch(f->root, ".config.tmp-00", 0);

        assert_int_equal(tm_backend_list(f->b, "data/", collect, &l), 0);
        assert_int_equal(l.n, 3);
        /* sorted, full names, sizes */
        assert_string_equal(l.names[0], "data/aa/one");
        assert_int_equal(l.sizes[0], 1);
        assert_string_equal(l.names[1], "data/aa/three");
        assert_int_equal(l.sizes[1], 3);
        assert_string_equal(l.names[2], "data/bb/two");
        assert_int_equal(l.sizes[2], 2);

        memset(&l, 0, sizeof(l));
        assert_int_equal(tm_backend_list(f->b, "data", collect, &l), 0);
        assert_int_equal(l.n, 3);

        memset(&l, 0, sizeof(l));
        assert_int_equal(tm_backend_list(f->b, "data/aa", collect, &l), 0);
        assert_int_equal(l.n, 2);

        memset(&l, 0, sizeof(l));
        assert_int_equal(tm_backend_list(f->b, "", collect, &l), 0);
        assert_int_equal(l.n, 5);
        assert_string_equal(l.names[0], "config");
        assert_string_equal(l.names[4], "index/i1");
        assert_int_equal(l.sizes[4], 300);

        /* missing prefix: empty, not an error; a file as prefix: empty */
        memset(&l, 0, sizeof(l));
        assert_int_equal(tm_backend_list(f->b, "snapshots/", collect, &l), 0);
        assert_int_equal(tm_backend_list(f->b, "config/", collect, &l), 0);
        assert_int_equal(l.n, 0);

        /* a non-zero return stops the listing and is returned */
        memset(&l, 0, sizeof(l));
        l.stop_after = 2;
        assert_int_equal(tm_backend_list(f->b, "", collect, &l), 42);
        assert_int_equal(l.n, 2);
}

static int remove_each(const char *name, uint64_t size, void *userdata)
{
        (void)size;
        /* removing while listing is how prune works */
        assert_int_equal(tm_backend_remove(userdata, name), 0);
        return 0;
}

static void test_remove(void **state)
{
        struct fixture *f = *state;
        struct listing l = { 0 };
        char path[PATH_MAX];

        assert_int_equal(tm_backend_put(f->b, "snapshots/s1", "abc", 3), 0);
        assert_int_equal(tm_backend_put(f->b, "snapshots/s2", "abc", 3), 0);
        assert_int_equal(tm_backend_remove(f->b, "snapshots/s1"), 0);
        assert_int_equal(tm_backend_remove(f->b, "snapshots/s1"), -ENOENT);
        assert_int_equal(tm_backend_remove(f->b, "nodir/s1"), -ENOENT);
        assert_int_equal(tm_backend_head(f->b, "snapshots/s1", NULL), -ENOENT);
        expect_object(f->b, "snapshots/s2", "abc", 3);

        assert_int_equal(tm_backend_list(f->b, "snapshots", remove_each, f->b), 0);
        assert_int_equal(tm_backend_list(f->b, "snapshots", collect, &l), 0);
        assert_int_equal(l.n, 0);
        /* directories are left in place */
        snprintf(path, sizeof(path), "%s/snapshots", f->root);
        assert_int_equal(access(path, F_OK), 0);
        /* a directory is not an object */
        assert_int_equal(tm_backend_remove(f->b, "snapshots"), -EISDIR);
        assert_int_equal(access(path, F_OK), 0);
}

static void test_clean_temp(void **state)
{
        struct fixture *f = *state;
        char path[PATH_MAX];

        assert_int_equal(tm_backend_put(f->b, "data/aa/obj", "x", 1), 0);
        assert_int_equal(tm_backend_put(f->b, "keep", "y", 1), 0);
        touch(f->root, ".keep.tmp-1111111111111111", 7200);
        touch(f->root, "data/aa/.obj.tmp-2222222222222222", 7200);
        touch(f->root, "data/aa/.obj.tmp-3333333333333333", 0);
        /* a dot file that is not a temp file is left alone */
        touch(f->root, "data/.other", 7200);

        assert_int_equal(tm_backend_clean_temp(f->b, 3600), 2);
        snprintf(path, sizeof(path), "%s/data/aa/.obj.tmp-3333333333333333", f->root);
        assert_int_equal(access(path, F_OK), 0);
        snprintf(path, sizeof(path), "%s/.keep.tmp-1111111111111111", f->root);
        assert_int_equal(access(path, F_OK), -1);
        assert_int_equal(tm_backend_clean_temp(f->b, 3600), 0);
        assert_int_equal(tm_backend_clean_temp(f->b, 0), 1);
        assert_int_equal(count_dot_files(f->root), 1); /* data/.other */
        expect_object(f->b, "data/aa/obj", "x", 1);
        expect_object(f->b, "keep", "y", 1);
        assert_int_equal(tm_backend_clean_temp(f->b, -1), -EINVAL);
}

static void test_readonly_dir(void **state)
{
        struct fixture *f = *state;
        char path[PATH_MAX];

        if (geteuid() == 0) {
                /* root ignores modes: test_full_disk covers the failure path */
                skip();
        }
        assert_int_equal(tm_backend_put(f->b, "ro/a", "a", 1), 0);
        snprintf(path, sizeof(path), "%s/ro", f->root);
        assert_int_equal(chmod(path, 0500), 0);
        assert_int_equal(tm_backend_put(f->b, "ro/b", "b", 1), -EACCES);
        assert_int_equal(tm_backend_put(f->b, "ro/a", "c", 1), -EACCES);
        expect_object(f->b, "ro/a", "a", 1);
        assert_int_equal(chmod(path, 0700), 0);
        assert_int_equal(count_dot_files(f->root), 0);
}

struct racer {
        tm_backend *b;
        int id;
        int bad;
};

#define RACE_SIZE   65536
#define RACE_ROUNDS 200

/* Writers replace one object with a uniform pattern; readers must only ever
 * see a whole pattern (atomic replace), never a mix or a short object. */
static void *race_writer(void *arg)
{
        struct racer *r = arg;
        uint8_t *buf = malloc(RACE_SIZE);

        memset(buf, 'A' + r->id, RACE_SIZE);
        for (int i = 0; i < RACE_ROUNDS; i++)
                if (tm_backend_put(r->b, "race/obj", buf, RACE_SIZE) < 0)
                        r->bad++;
        free(buf);
        return NULL;
}

static void *race_reader(void *arg)
{
        struct racer *r = arg;
        tm_buf buf = TM_BUF_INIT(RACE_SIZE);

        for (int i = 0; i < RACE_ROUNDS; i++) {
                if (tm_backend_get(r->b, "race/obj", RACE_SIZE, &buf) < 0 || buf.len != RACE_SIZE) {
                        r->bad++;
                        continue;
                }
                for (size_t k = 1; k < RACE_SIZE; k++)
                        if (buf.data[k] != buf.data[0]) {
                                r->bad++;
                                break;
                        }
        }
        tm_buf_dispose(&buf);
        return NULL;
}

static void test_concurrent(void **state)
{
        struct fixture *f = *state;
        struct racer rs[4];
        pthread_t th[4];
        uint8_t init[RACE_SIZE];

        memset(init, 'Z', sizeof(init));
        assert_int_equal(tm_backend_put(f->b, "race/obj", init, sizeof(init)), 0);
        for (int i = 0; i < 4; i++) {
                rs[i] = (struct racer){ .b = f->b, .id = i };
                assert_int_equal(
                        pthread_create(&th[i], NULL, i < 2 ? race_writer : race_reader, &rs[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(rs[i].bad, 0);
        }
        assert_int_equal(count_dot_files(f->root), 0);
}

static void test_full_disk(void **state)
{
        struct fixture *f = *state;
        char *mount_argv[] = { "mount", "-t",    "tmpfs", "-o", "size=1m,mode=0700",
                               "tmpfs", f->root, NULL };
        enum { OBJ = 48 * 1024, MAX_OBJS = 64 };
        uint8_t(*objs)[OBJ] = NULL;
        tm_buf buf = TM_BUF_INIT(0);
        char name[64];
        int n = 0, r = 0;

        if (geteuid() != 0)
                skip();
        /* mount over the (empty) root: our open dir fd still points at the
         * old directory, so reopen the backend after mounting */
        if (run_cmd(mount_argv) < 0)
                skip();
        f->mounted = 1;
        tm_backend_free(f->b);
        f->b = NULL;
        assert_int_equal(tm_backend_open_local(f->root, 0, &f->b), 0);

        objs = malloc(MAX_OBJS * sizeof(*objs));
        assert_non_null(objs);
        fill_random((uint8_t *)objs, MAX_OBJS * sizeof(*objs));
        for (n = 0; n < MAX_OBJS; n++) {
                snprintf(name, sizeof(name), "data/%02x/obj%d", n % 4, n);
                r = tm_backend_put(f->b, name, objs[n], OBJ);
                if (r < 0)
                        break;
        }
        assert_int_equal(r, -ENOSPC);
        assert_true(n > 4); /* the disk held something before filling up */
        assert_int_equal(count_dot_files(f->root), 0);
        /* the failed object does not exist, even partially */
        assert_int_equal(tm_backend_head(f->b, name, NULL), -ENOENT);
        /* put_new on a full disk fails the same way */
        assert_int_equal(tm_backend_put_new(f->b, "locks/full", objs[0], OBJ), -ENOSPC);
        assert_int_equal(count_dot_files(f->root), 0);
        /* everything stored before still reads back intact */
        for (int i = 0; i < n; i++) {
                snprintf(name, sizeof(name), "data/%02x/obj%d", i % 4, i);
                assert_int_equal(tm_backend_get(f->b, name, OBJ, &buf), 0);
                assert_int_equal(buf.len, OBJ);
                assert_memory_equal(buf.data, objs[i], OBJ);
        }
        /* freeing space makes writes work again */
        assert_int_equal(tm_backend_remove(f->b, "data/00/obj0"), 0);
        assert_int_equal(tm_backend_remove(f->b, "data/01/obj1"), 0);
        assert_int_equal(tm_backend_put(f->b, "data/00/obj0", objs[0], OBJ), 0);
        tm_buf_dispose(&buf);
        free(objs);
}

int main(void)
{
        const char *seed_env = getenv("TM_TEST_SEED");
        uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_open, setup, teardown),
                cmocka_unit_test_setup_teardown(test_put_get_head, setup, teardown),
                cmocka_unit_test_setup_teardown(test_get_range, setup, teardown),
                cmocka_unit_test_setup_teardown(test_put_new, setup, teardown),
                cmocka_unit_test_setup_teardown(test_names, setup, teardown),
                cmocka_unit_test_setup_teardown(test_list, setup, teardown),
                cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
                cmocka_unit_test_setup_teardown(test_clean_temp, setup, teardown),
                cmocka_unit_test_setup_teardown(test_readonly_dir, setup, teardown),
                cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
                cmocka_unit_test_setup_teardown(test_full_disk, setup, teardown),
        };

        if (!seed)
                seed = 1;
        printf("test_backend: seed %" PRIu64 " (set TM_TEST_SEED to repeat)\n", seed);
        rng_state = seed;
        tm_log_set_level(TM_LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
