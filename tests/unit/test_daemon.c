/* Unit tests for the daemons' start-up chores: nested state directories,
 * the access-log specs, the atomic port file, and the JSON log line. */
#include <errno.h>
#include <fcntl.h>
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
#include <jansson.h>

#include <tidemark/daemon.h>

static void test_chores(void **state)
{
        char dir[] = "/tmp/tm-daemon-XXXXXX", path[128], buf[160];
        struct stat st;
        int fd = 99;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/a/b/c", dir);
        assert_int_equal(tm_daemon_mkdir_p(path), 0);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
        assert_int_equal(tm_daemon_mkdir_p(path), 0); /* exists: fine */
        /* a file where a directory should be */
        snprintf(path, sizeof(path), "%s/file", dir);
        f = fopen(path, "w");
        fclose(f);
        snprintf(path, sizeof(path), "%s/file/x", dir);
        assert_int_equal(tm_daemon_mkdir_p(path), -ENOTDIR);

        assert_int_equal(tm_daemon_open_log("none", &fd), 0);
        assert_int_equal(fd, -1);
        assert_int_equal(tm_daemon_open_log("stderr", &fd), 0);
        assert_int_equal(fd, 2);
        assert_int_equal(tm_daemon_open_log("stdout", &fd), 0);
        assert_int_equal(fd, 1);
        snprintf(path, sizeof(path), "%s/access.log", dir);
        assert_int_equal(tm_daemon_open_log(path, &fd), 0);
        assert_true(fd > 2);
        close(fd);
        snprintf(path, sizeof(path), "%s/file/log", dir);
        assert_int_equal(tm_daemon_open_log(path, &fd), -ENOTDIR);

        snprintf(path, sizeof(path), "%s/port", dir);
        assert_int_equal(tm_daemon_write_port_file(path, 8123), 0);
        f = fopen(path, "r");
        assert_non_null(fgets(buf, sizeof(buf), f));
        fclose(f);
        assert_string_equal(buf, "8123\n");
        snprintf(buf, sizeof(buf), "%s.tmp", path);
        assert_int_not_equal(access(buf, F_OK), 0);
        snprintf(path, sizeof(path), "%s/file/port", dir);
        assert_int_equal(tm_daemon_write_port_file(path, 1), -ENOTDIR);

        snprintf(path, sizeof(path), "%s/a/b/c", dir);
        rmdir(path);
        snprintf(path, sizeof(path), "%s/a/b", dir);
        rmdir(path);
        snprintf(path, sizeof(path), "%s/a", dir);
        rmdir(path);
        snprintf(path, sizeof(path), "%s/access.log", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/port", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/file", dir);
        unlink(path);
        rmdir(dir);
}

static void test_read_tls(void **state)
{
        char dir[] = "/tmp/tm-daemon-tls-XXXXXX", c[128], k[128];
        char *cert = (char *)1, *key = (char *)1;
        FILE *f;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(c, sizeof(c), "%s/c.pem", dir);
        snprintf(k, sizeof(k), "%s/k.pem", dir);
        assert_int_equal(tm_daemon_read_tls(NULL, NULL, &cert, &key), 0);
        assert_null(cert);
        assert_null(key);
        assert_int_equal(tm_daemon_read_tls(c, NULL, &cert, &key), -EINVAL);
        assert_int_equal(tm_daemon_read_tls(c, k, &cert, &key), -ENOENT);
        f = fopen(c, "w");
        assert_non_null(f);
        fputs("CERT", f);
        fclose(f);
        /* the key is missing: nothing is returned, nothing leaks */
        assert_int_equal(tm_daemon_read_tls(c, k, &cert, &key), -ENOENT);
        assert_null(cert);
        f = fopen(k, "w");
        assert_non_null(f);
        fputs("KEY", f);
        fclose(f);
        assert_int_equal(tm_daemon_read_tls(c, k, &cert, &key), 0);
        assert_string_equal(cert, "CERT");
        assert_string_equal(key, "KEY");
        free(cert);
        free(key);
        unlink(c);
        unlink(k);
        rmdir(dir);
}

static void test_load_password(void **state)
{
        char dir[] = "/tmp/tm-daemon-pw-XXXXXX", path[128];
        char *pw = NULL;
        size_t n = 0;
        FILE *f;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/pw", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs("correct horse\r\n\n", f);
        fclose(f);
        unsetenv("TIDEMARK_PASSWORD_FILE");
        /* a file wins over the environment; its line endings are dropped */
        setenv("TIDEMARK_PASSWORD", "from env", 1);
        assert_int_equal(tm_daemon_load_password(path, &pw, &n), 0);
        assert_string_equal(pw, "correct horse");
        assert_int_equal(n, 13);
        tm_daemon_secret_free(pw);
        /* TIDEMARK_PASSWORD_FILE, then TIDEMARK_PASSWORD */
        setenv("TIDEMARK_PASSWORD_FILE", path, 1);
        assert_int_equal(tm_daemon_load_password(NULL, &pw, &n), 0);
        assert_string_equal(pw, "correct horse");
        tm_daemon_secret_free(pw);
        unsetenv("TIDEMARK_PASSWORD_FILE");
        assert_int_equal(tm_daemon_load_password(NULL, &pw, &n), 0);
        assert_string_equal(pw, "from env");
        assert_int_equal(n, 8);
        tm_daemon_secret_free(pw);
        unsetenv("TIDEMARK_PASSWORD");
        assert_int_equal(tm_daemon_load_password(NULL, &pw, &n), -EINVAL);
        unlink(path);
        assert_int_equal(tm_daemon_load_password(path, &pw, &n), -ENOENT);
        tm_daemon_secret_free(NULL);
        rmdir(dir);
}

static void test_log_line(void **state)
{
        char tmpl[] = "/tmp/tm-daemon-log-XXXXXX", line[512];
        int fd = mkstemp(tmpl), saved = dup(2);
        json_t *j;
        FILE *f;

        assert_true(fd >= 0 && saved >= 0);
        dup2(fd, 2);
        tm_daemon_log_sink(TM_LOG_WARN, -ENOSPC, "disk \"full\"", "monitord");
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
        f = fdopen(fd, "r");
        rewind(f);
        assert_non_null(fgets(line, sizeof(line), f));
        fclose(f);
        unlink(tmpl);
        j = json_loads(line, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "level")), "warning");
        assert_string_equal(json_string_value(json_object_get(j, "msg")), "disk \"full\"");
        assert_string_equal(json_string_value(json_object_get(j, "service")), "monitord");
        assert_int_equal(json_integer_value(json_object_get(j, "errno")), ENOSPC);
        assert_non_null(json_object_get(j, "ts"));
        json_decref(j);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_chores),
                cmocka_unit_test(test_log_line),
                cmocka_unit_test(test_read_tls),
                cmocka_unit_test(test_load_password),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
