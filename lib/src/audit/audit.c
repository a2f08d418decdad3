/*
 * audit: the hash-chained audit log (see tidemark/audit.h for the format).
 * Appends are serialised by a mutex within a process and by flock() across
 * processes (backupd, failoverd and the CLI may share one log): under the
 * lock, a file that grew since our last append has its new last line read
 * so the chain continues from it. Each line goes out in one write() on an
 * O_APPEND descriptor and is fsynced before the head moves, so a crash
 * leaves at worst a line the head does not cover yet (verify reports it).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tidemark/audit.h>
#include <tidemark/core.h>
#include <tidemark/crypto.h>
#include <tidemark/log.h>

#define AUDIT_MAX_FILE (1024u * 1024 * 1024)
#define AUDIT_MAX_HEAD 4096
/* an entry is a few hundred bytes plus a request body of at most 4 KiB */
#define AUDIT_MAX_LINE (256u * 1024)

struct tm_audit {
        pthread_mutex_t lock;
        int fd;
        char *path;
        char *head_path;
        uint64_t seq;
        char prev[TM_ID_HEX_LEN + 1];
        off_t end; /* the file's size when seq/prev were last known */
};

static void line_hash(const char *p, size_t n, char out[TM_ID_HEX_LEN + 1])
{
        tm_id h;

        tm_crypto_sha256(p, n, &h);
        tm_id_hex(&h, out);
}

static const char zero_hash[TM_ID_HEX_LEN + 1] =
        "0000000000000000000000000000000000000000000000000000000000000000";

/* Write the head atomically: a temporary file, fsync, rename. */
static int head_write(const tm_audit *a)
{
        char tmp[4096], buf[256];
        int fd = -1, r = 0, n;

        snprintf(tmp, sizeof(tmp), "%s.tmp", a->head_path);
        n = snprintf(buf, sizeof(buf), "{\"seq\":%llu,\"hash\":\"%s\"}\n",
                     (unsigned long long)a->seq, a->prev);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        if (write(fd, buf, (size_t)n) != n || fsync(fd) < 0) {
                r = errno ? -errno : -EIO;
                goto out;
        }
        if (rename(tmp, a->head_path) < 0)
                r = -errno;
out:
        close(fd);
        if (r < 0)
                unlink(tmp);
        return r;
}

/*
 * Continue the chain from the file's last line: read the tail, take its
 * seq and hash. A partial last line (a crash mid-write) is refused: an
 * operator decides what to do with it.
 */
static int tail_load(tm_audit *a)
{
        struct stat st;
        char *buf = NULL;
        const char *start, *stop;
        json_t *last = NULL;
        json_int_t seq;
        size_t n;
        off_t off;
        int r;

        if (fstat(a->fd, &st) < 0)
                return tm_log_errno(TM_LOG_ERR, -errno, "cannot stat audit log '%s'", a->path);
        if (st.st_size == 0) {
                a->seq = 0;
                memcpy(a->prev, zero_hash, sizeof(a->prev));
                a->end = 0;
                return 0;
        }
        n = st.st_size < (off_t)AUDIT_MAX_LINE ? (size_t)st.st_size : AUDIT_MAX_LINE;
        off = st.st_size - (off_t)n;
        buf = malloc(n);
        if (!buf)
                return -ENOMEM;
        for (size_t got = 0; got < n;) {
                ssize_t k = pread(a->fd, buf + got, n - got, off + (off_t)got);

                if (k <= 0) {
                        r = tm_log_errno(TM_LOG_ERR, k < 0 ? -errno : -EIO,
                                         "cannot read audit log '%s'", a->path);
                        goto out;
                }
                got += (size_t)k;
        }
        if (buf[n - 1] != '\n') {
                r = tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                 "audit log '%s' ends with an incomplete line", a->path);
                goto out;
        }
        stop = buf + n - 1;
        start = stop;
        while (start > buf && start[-1] != '\n')
                start--;
        if (start == buf && off > 0) {
                r = tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                 "audit log '%s': the last line is longer than %u bytes", a->path,
                                 AUDIT_MAX_LINE);
                goto out;
        }
        last = json_loadb(start, (size_t)(stop - start), 0, NULL);
        if (!last || json_unpack(last, "{s:I}", "seq", &seq) < 0 || seq < 1) {
                r = tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                 "audit log '%s': the last line is not an entry", a->path);
                goto out;
        }
        a->seq = (uint64_t)seq;
        line_hash(start, (size_t)(stop - start), a->prev);
        a->end = st.st_size;
        r = 0;
out:
        json_decref(last);
        free(buf);
        return r;
}

int tm_audit_open(const char *path, tm_audit **ret)
{
        tm_audit *a = NULL;
        size_t head_len;
        int r;

        a = calloc(1, sizeof(*a));
        if (!a)
                return -ENOMEM;
        pthread_mutex_init(&a->lock, NULL);
        a->fd = -1;
        memcpy(a->prev, zero_hash, sizeof(a->prev));
        head_len = strlen(path) + 6;
        a->path = tm_strdup(path);
        a->head_path = malloc(head_len);
        if (!a->path || !a->head_path) {
                r = -ENOMEM;
                goto out;
        }
        snprintf(a->head_path, head_len, "%s.head", path);
        a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (a->fd < 0) {
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot open audit log '%s'", path);
                goto out;
        }
        if (flock(a->fd, LOCK_SH) < 0) {
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot lock audit log '%s'", path);
                goto out;
        }
        r = tail_load(a);
        flock(a->fd, LOCK_UN);
        if (r < 0)
                goto out;
        *ret = a;
        a = NULL;
out:
        tm_audit_close(a);
        return r;
}

void tm_audit_close(tm_audit *a)
{
        if (!a)
                return;
        if (a->fd >= 0)
                close(a->fd);
        pthread_mutex_destroy(&a->lock);
        free(a->path);
        free(a->head_path);
        free(a);
}

int tm_audit_append(tm_audit *a, json_t *entry)
{
        json_t *o = NULL;
        char *line = NULL;
        size_t n;
        int r;

        if (!json_is_object(entry))
                return -EINVAL;
        pthread_mutex_lock(&a->lock);
        if (flock(a->fd, LOCK_EX) < 0) {
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot lock '%s'", a->path);
                pthread_mutex_unlock(&a->lock);
                return r;
        }
        {
                struct stat st;

                /* another process appended since: continue after its line */
                if (fstat(a->fd, &st) < 0) {
                        r = -errno;
                        goto out;
                }
                if (st.st_size != a->end) {
                        r = tail_load(a);
                        if (r < 0)
                                goto out;
                }
        }
        o = json_deep_copy(entry);
        if (!o || json_object_set_new(o, "seq", json_integer((json_int_t)(a->seq + 1))) < 0 ||
            json_object_set_new(o, "prev", json_string(a->prev)) < 0) {
                r = -ENOMEM;
                goto out;
        }
        line = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        if (!line) {
                r = -ENOMEM;
                goto out;
        }
        n = strlen(line);
        /* the hash covers the line without '\n'; write both in one call */
        line[n] = '\n';
        if (write(a->fd, line, n + 1) != (ssize_t)(n + 1) || fsync(a->fd) < 0) {
                r = tm_log_errno(TM_LOG_ERR, errno ? -errno : -EIO, "cannot append to '%s'",
                                 a->path);
                goto out;
        }
        a->seq++;
        line_hash(line, n, a->prev);
        a->end += (off_t)(n + 1);
        r = head_write(a);
        if (r < 0)
                tm_log_errno(TM_LOG_ERR, r, "cannot write '%s'", a->head_path);
out:
        flock(a->fd, LOCK_UN);
        pthread_mutex_unlock(&a->lock);
        free(line);
        json_decref(o);
        return r;
}

int tm_audit_verify(const char *path, uint64_t *ret_lines, char *why, size_t why_len)
{
        tm_buf content = TM_BUF_INIT(AUDIT_MAX_FILE), head = TM_BUF_INIT(AUDIT_MAX_HEAD);
        char prev[TM_ID_HEX_LEN + 1], head_path[4096];
        json_t *o = NULL;
        uint64_t lineno = 0;
        const char *p, *end;
        int r;

        memcpy(prev, zero_hash, sizeof(prev));
        if (why_len)
                why[0] = '\0';
        r = tm_file_read_all(path, AUDIT_MAX_FILE, &content);
        if (r < 0)
                goto out;
        p = (const char *)content.data;
        end = p ? p + content.len : p;
        while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *line_prev = NULL;
                json_int_t seq = 0;

                lineno++;
                if (!nl) {
                        snprintf(why, why_len, "line %llu: incomplete (no newline)",
                                 (unsigned long long)lineno);
                        r = -EBADMSG;
                        goto out;
                }
                json_decref(o);
                o = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES, NULL);
                if (!o || json_unpack(o, "{s:I, s:s}", "seq", &seq, "prev", &line_prev) < 0) {
                        snprintf(why, why_len, "line %llu: not an audit entry",
                                 (unsigned long long)lineno);
                        r = -EBADMSG;
                        goto out;
                }
                if ((uint64_t)seq != lineno) {
                        snprintf(why, why_len,
                                 "line %llu: sequence number %lld, expected %llu (a line was "
                                 "removed or moved)",
                                 (unsigned long long)lineno, (long long)seq,
                                 (unsigned long long)lineno);
                        r = -EBADMSG;
                        goto out;
                }
                if (strcmp(line_prev, prev) != 0) {
                        snprintf(why, why_len,
                                 "line %llu: hash chain broken (line %llu was edited, removed or "
                                 "reordered)",
                                 (unsigned long long)lineno, (unsigned long long)lineno - 1);
                        r = -EBADMSG;
                        goto out;
                }
                line_hash(p, (size_t)(nl - p), prev);
                p = nl + 1;
        }
        snprintf(head_path, sizeof(head_path), "%s.head", path);
        r = tm_file_read_all(head_path, AUDIT_MAX_HEAD, &head);
        if (r == -ENOENT && lineno == 0) {
                r = 0;
        } else if (r < 0) {
                snprintf(why, why_len, "head file '%s': %s", head_path, strerror(-r));
                r = -EBADMSG;
        } else {
                json_int_t seq = 0;
                const char *hash = NULL;

                json_decref(o);
                o = json_loadb((const char *)head.data, head.len, 0, NULL);
                if (!o || json_unpack(o, "{s:I, s:s}", "seq", &seq, "hash", &hash) < 0) {
                        snprintf(why, why_len, "head file '%s' is not valid", head_path);
                        r = -EBADMSG;
                } else if ((uint64_t)seq != lineno || strcmp(hash, prev) != 0) {
                        snprintf(why, why_len,
                                 "line %llu: the log does not end where its head says (seq %lld): "
                                 "the last line was edited or lines were removed",
                                 (unsigned long long)lineno, (long long)seq);
                        r = -EBADMSG;
                }
        }
        if (r == 0 && ret_lines)
                *ret_lines = lineno;
out:
        json_decref(o);
        tm_buf_dispose(&head);
        tm_buf_dispose(&content);
        return r;
}
