/*
 * Shared by the daemons' main.c files, so each program keeps only what is
 * its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <tidemark/core.h>
#include <tidemark/daemon.h>
#include <tidemark/time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void tm_daemon_log_sink(enum tm_log_level level, int err, const char *msg, void *userdata)
{
        static const char *names[] = { "error", "warning", "info", "debug", "trace" };
        char ts[40], *s;
        json_t *o;

        tm_time_format_ns(tm_time_now(), ts, sizeof(ts));
        o = json_pack("{s:s, s:s, s:s, s:s}", "ts", ts, "level", names[level], "msg", msg,
                      "service", userdata ? (const char *)userdata : "tidemark");
        if (!o)
                return;
        if (err)
                json_object_set_new(o, "errno", json_integer(err < 0 ? -err : err));
        s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (!s)
                return;
        pthread_mutex_lock(&log_lock);
        fprintf(stderr, "%s\n", s);
        pthread_mutex_unlock(&log_lock);
        free(s);
}

int tm_daemon_mkdir_p(const char *path)
{
        char buf[4400];

        if (strlen(path) >= sizeof(buf))
                return -ENAMETOOLONG;
        snprintf(buf, sizeof(buf), "%s", path);
        for (char *p = buf + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                                return -errno;
                        *p = '/';
                }
        if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int tm_daemon_open_log(const char *spec, int *ret_fd)
{
        int fd;

        if (!strcmp(spec, "none"))
                fd = -1;
        else if (!strcmp(spec, "stderr"))
                fd = 2;
        else if (!strcmp(spec, "stdout"))
                fd = 1;
        else if ((fd = open(spec, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

int tm_daemon_write_port_file(const char *path, int port)
{
        char tmp[4400];
        FILE *f;
        int r = 0;

        if (strlen(path) + 5 >= sizeof(tmp))
                return -ENAMETOOLONG;
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        f = fopen(tmp, "w");
        if (!f)
                return -errno;
        if (fprintf(f, "%d\n", port) < 0)
                r = -EIO;
        if (fclose(f) != 0 && r >= 0)
                r = -errno;
        if (r >= 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

static int read_pem(const char *path, char **ret)
{
        tm_buf b = TM_BUF_INIT(1 << 20);
        int r = tm_file_read_all(path, 1 << 20, &b);

        if (r >= 0)
                r = tm_buf_append(&b, "", 1);
        if (r < 0) {
                tm_buf_dispose_secret(&b);
                return r;
        }
        *ret = (char *)b.data;
        return 0;
}

int tm_daemon_read_tls(const char *cert_path, const char *key_path, char **ret_cert,
                       char **ret_key)
{
        int r;

        *ret_cert = *ret_key = NULL;
        if (!cert_path && !key_path)
                return 0;
        if (!cert_path || !key_path) {
                tm_log(TM_LOG_ERR, "TLS needs both tls_cert and tls_key");
                return -EINVAL;
        }
        r = read_pem(cert_path, ret_cert);
        if (r < 0)
                return tm_log_errno(TM_LOG_ERR, r, "cannot read the TLS certificate '%s'",
                                    cert_path);
        r = read_pem(key_path, ret_key);
        if (r < 0) {
                free(*ret_cert);
                *ret_cert = NULL;
                return tm_log_errno(TM_LOG_ERR, r, "cannot read the TLS key '%s'", key_path);
        }
        return 0;
}

int tm_daemon_load_password(const char *file, char **ret, size_t *ret_len)
{
        tm_buf b = TM_BUF_INIT(4096);
        const char *env;
        int r;

        if (!file)
                file = getenv("TIDEMARK_PASSWORD_FILE");
        if (file) {
                r = tm_file_read_all(file, 4096, &b);
                while (r >= 0 && b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
                        b.len--;
                if (r >= 0)
                        r = tm_buf_append(&b, "", 1);
                if (r < 0) {
                        tm_buf_dispose_secret(&b);
                        return tm_log_errno(TM_LOG_ERR, r, "cannot read the password file '%s'",
                                            file);
                }
                *ret = (char *)b.data;
                *ret_len = strlen(*ret);
                return 0;
        }
        env = getenv("TIDEMARK_PASSWORD");
        if (!env) {
                tm_log(TM_LOG_ERR, "no repository password: set [repository] password_file, "
                                   "TIDEMARK_PASSWORD_FILE or TIDEMARK_PASSWORD");
                return -EINVAL;
        }
        *ret = tm_strdup(env);
        if (!*ret)
                return -ENOMEM;
        *ret_len = strlen(env);
        return 0;
}

void tm_daemon_secret_free(char *s)
{
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}
