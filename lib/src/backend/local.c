/*
 * The local directory backend. Object names are relative paths under the
 * root directory ("data/ab/<hex>" is <root>/data/ab/<hex>). Every path is
 * resolved with the *at() calls against one directory fd opened at
 * tm_backend_open_local(), so a concurrent rename of the root path cannot
 * redirect writes.
 *
 * Writes: <dir>/.<basename>.tmp-<16 hex> (O_EXCL, 0600), write, fsync,
 * rename (or link for put_new), fsync of the directory. On failure the temp
 * file is unlinked, so a full disk leaves nothing behind. A crash can leave a
 * temp file; list skips names starting with '.' and clean_temp removes them.
 *
 * Reads open the object for each call. That costs one openat() (a few
 * microseconds, the dentry is cached), far below the decrypt and decompress
 * of the blob being read; an fd cache would also keep serving a replaced or
 * removed object, which a reader must not see.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tidemark/log.h>

#include "backend_internal.h"

/* Deeper trees than this are not ours (and stop symlink loops). */
#define LOCAL_MAX_DEPTH 16
#define TEMP_MARK       ".tmp-"

struct local {
        struct tm_backend base;
        char *root; /* realpath of the root directory */
        int dfd;    /* the root, O_RDONLY | O_DIRECTORY */
};

static struct local *to_local(tm_backend *b)
{
        return (struct local *)b;
}

/* EDQUOT is "full" to our callers, like ENOSPC. */
static int map_errno(int e)
{
        if (e == EDQUOT)
                return -ENOSPC;
        return e > 0 ? -e : -EIO;
}

/* For lookups, a missing parent or a file where a directory should be both
 * mean "no such object". */
static int map_lookup_errno(int e)
{
        if (e == ENOTDIR)
                return -ENOENT;
        return map_errno(e);
}

/* Open the directory part of name (below the root), creating missing
 * directories (0700) when create is set. New directories are fsynced into
 * their parent so an object never outlives the directory entry naming it. */
static int open_parent(struct local *l, const char *dir, int create, int *ret)
{
        char path[PATH_MAX];
        char *c, *slash;
        int fd = -1, next, r;

        fd = openat(l->dfd, *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
                *ret = fd;
                return 0;
        }
        if (errno != ENOENT || !create)
                return create ? map_errno(errno) : map_lookup_errno(errno);
        if ((size_t)snprintf(path, sizeof(path), "%s", dir) >= sizeof(path))
                return -ENAMETOOLONG;
        fd = openat(l->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return tm_log_errno(tm_log_level_of(map_errno(errno)), map_errno(errno),
                                    "unable to open '%s'", l->root);
        for (c = path; c; c = slash ? slash + 1 : NULL) {
                slash = strchr(c, '/');
                if (slash)
                        *slash = 0;
                /* EEXIST: made meanwhile by a concurrent put, fine */
                if (mkdirat(fd, c, 0700) == 0) {
                        if (fsync(fd) < 0) {
                                r = map_errno(errno);
                                goto out;
                        }
                } else if (errno != EEXIST) {
                        r = map_errno(errno);
                        goto out;
                }
                next = openat(fd, c, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (next < 0) {
                        r = map_errno(errno);
                        goto out;
                }
                close(fd);
                fd = next;
        }
        *ret = fd;
        fd = -1;
        r = 0;
out:
        if (fd >= 0)
                close(fd);
        if (r < 0)
                tm_log_errno(tm_log_level_of(r), r, "unable to create directory '%s/%s'", l->root,
                             dir);
        return r;
}

static void random_hex(char out[17])
{
        static atomic_uint_fast64_t counter;
        uint8_t b[8];

        if (getrandom(b, sizeof(b), GRND_NONBLOCK) != (ssize_t)sizeof(b)) {
                /* Only uniqueness matters (O_EXCL retries a collision). */
                struct timespec ts;
                uint64_t v;

                clock_gettime(CLOCK_MONOTONIC, &ts);
                v = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                    ((uint64_t)getpid() << 48) ^ atomic_fetch_add(&counter, 1);
                tm_set_u64le(b, v);
        }
        tm_hex_encode(b, sizeof(b), out);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, p, TM_MIN(n, (size_t)1 << 30));

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return map_errno(errno);
                }
                if (w == 0)
                        return -EIO;
                p += w;
                n -= (size_t)w;
        }
        return 0;
}

/* The shared body of put and put_new. */
static int put_common(struct local *l, const char *name, const void *p, size_t n, int excl)
{
        char dir[PATH_MAX], tmp[NAME_MAX + 1], hex[17];
        const char *base, *slash = strrchr(name, '/');
        int dfd = -1, fd = -1, have_tmp = 0, r;

        if (slash) {
                if ((size_t)(slash - name) >= sizeof(dir))
                        return -ENAMETOOLONG;
                memcpy(dir, name, (size_t)(slash - name));
                dir[slash - name] = 0;
                base = slash + 1;
        } else {
                dir[0] = 0;
                base = name;
        }
        r = open_parent(l, dir, 1, &dfd);
        if (r < 0)
                goto out;
        for (int attempt = 0;; attempt++) {
                random_hex(hex);
                if ((size_t)snprintf(tmp, sizeof(tmp), ".%s" TEMP_MARK "%s", base, hex) >=
                    sizeof(tmp)) {
                        r = -ENAMETOOLONG;
                        goto out;
                }
                fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || attempt >= 8) {
                        r = map_errno(errno);
                        tm_log_errno(tm_log_level_of(r), r, "unable to create '%s/%s'", l->root,
                                     name);
                        goto out;
                }
        }
        have_tmp = 1;
        r = write_all(fd, p, n);
        if (r < 0) {
                tm_log_errno(tm_log_level_of(r), r, "unable to write '%s/%s'", l->root, name);
                goto out;
        }
        if (fsync(fd) < 0) {
                r = tm_log_errno(tm_log_level_of(map_errno(errno)), map_errno(errno),
                                 "unable to fsync '%s/%s'", l->root, name);
                goto out;
        }
        /* close() can report a delayed write error (NFS): it counts. */
        r = close(fd);
        fd = -1;
        if (r < 0) {
                r = tm_log_errno(tm_log_level_of(map_errno(errno)), map_errno(errno),
                                 "unable to close '%s/%s'", l->root, name);
                goto out;
        }
        if (excl) {
                /* link() fails with EEXIST instead of replacing: O_EXCL for a
                 * complete file. The temp name is removed either way. */
                if (linkat(dfd, tmp, dfd, base, 0) < 0) {
                        r = map_errno(errno);
                        if (r != -EEXIST)
                                tm_log_errno(tm_log_level_of(r), r, "unable to link '%s/%s'",
                                             l->root, name);
                        goto out;
                }
                if (unlinkat(dfd, tmp, 0) == 0)
                        have_tmp = 0;
        } else {
                if (renameat(dfd, tmp, dfd, base) < 0) {
                        r = tm_log_errno(tm_log_level_of(map_errno(errno)), map_errno(errno),
                                         "unable to rename to '%s/%s'", l->root, name);
                        goto out;
                }
                have_tmp = 0;
        }
        if (fsync(dfd) < 0) {
                r = tm_log_errno(tm_log_level_of(map_errno(errno)), map_errno(errno),
                                 "unable to fsync directory of '%s/%s'", l->root, name);
                goto out;
        }
        r = 0;
out:
        if (fd >= 0)
                close(fd);
        if (have_tmp)
                unlinkat(dfd, tmp, 0);
        if (dfd >= 0)
                close(dfd);
        return r;
}

static int local_put(tm_backend *b, const char *name, const void *p, size_t n)
{
        return put_common(to_local(b), name, p, n, 0);
}

static int local_put_new(tm_backend *b, const char *name, const void *p, size_t n)
{
        return put_common(to_local(b), name, p, n, 1);
}

/* Open an object for reading; -ENOENT for anything that is not a regular
 * file (a directory is not an object). */
static int open_object(struct local *l, const char *name, int *ret_fd, struct stat *ret_st)
{
        int fd;

        fd = openat(l->dfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                int r = map_lookup_errno(errno);

                if (r == -ENOENT)
                        return r;
                return tm_log_errno(tm_log_level_of(r), r, "unable to open '%s/%s'", l->root, name);
        }
        if (fstat(fd, ret_st) < 0) {
                int r = map_errno(errno);

                close(fd);
                return tm_log_errno(tm_log_level_of(r), r, "unable to stat '%s/%s'", l->root, name);
        }
        if (!S_ISREG(ret_st->st_mode)) {
                close(fd);
                return -ENOENT;
        }
        *ret_fd = fd;
        return 0;
}

/* pread exactly len bytes at off into b (appending). -EBADMSG if the file
 * ends first. */
static int pread_exact(int fd, uint64_t off, size_t len, tm_buf *b)
{
        int r = tm_buf_reserve(b, len);

        if (r < 0)
                return r;
        while (len > 0) {
                ssize_t n = pread(fd, b->data + b->len, TM_MIN(len, (size_t)1 << 30), (off_t)off);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return map_errno(errno);
                }
                if (n == 0)
                        return -EBADMSG;
                b->len += (size_t)n;
                off += (uint64_t)n;
                len -= (size_t)n;
        }
        b->data[b->len] = 0;
        return 0;
}

static int local_get(tm_backend *b, const char *name, size_t limit, tm_buf *ret)
{
        struct local *l = to_local(b);
        tm_buf tmp = TM_BUF_INIT(limit);
        struct stat st;
        int fd = -1, r;

        r = open_object(l, name, &fd, &st);
        if (r < 0)
                goto out;
        if (limit && (uint64_t)st.st_size > limit) {
                r = -E2BIG;
                goto out;
        }
        /* The fd pins the inode: a concurrent put replaces the name, not
         * these bytes, so st_size stays right. Shorter means truncated. */
        r = pread_exact(fd, 0, (size_t)st.st_size, &tmp);
        if (r < 0) {
                if (r != -EBADMSG && r != -E2BIG && r != -ENOMEM)
                        tm_log_errno(tm_log_level_of(r), r, "unable to read '%s/%s'", l->root,
                                     name);
                goto out;
        }
        tm_buf_move(ret, &tmp);
out:
        tm_buf_dispose(&tmp);
        if (fd >= 0)
                close(fd);
        return r;
}

static int local_get_range(tm_backend *b, const char *name, uint64_t off, size_t len, tm_buf *ret)
{
        struct local *l = to_local(b);
        tm_buf tmp = TM_BUF_INIT(ret->limit);
        struct stat st;
        int fd = -1, r;

        r = open_object(l, name, &fd, &st);
        if (r < 0)
                goto out;
        if (off > (uint64_t)st.st_size || len > (uint64_t)st.st_size - off) {
                r = -EBADMSG;
                goto out;
        }
        r = pread_exact(fd, off, len, &tmp);
        if (r < 0) {
                if (r != -EBADMSG && r != -E2BIG && r != -ENOMEM)
                        tm_log_errno(tm_log_level_of(r), r, "unable to read '%s/%s'", l->root,
                                     name);
                goto out;
        }
        if (!tmp.data) {
                /* len 0: still hand back a valid, empty, NUL-terminated buffer */
                r = tm_buf_reserve(&tmp, 0);
                if (r < 0)
                        goto out;
                tmp.data[0] = 0;
        }
        tm_buf_move(ret, &tmp);
out:
        tm_buf_dispose(&tmp);
        if (fd >= 0)
                close(fd);
        return r;
}

static int local_head(tm_backend *b, const char *name, uint64_t *ret_size)
{
        struct local *l = to_local(b);
        struct stat st;

        if (fstatat(l->dfd, name, &st, 0) < 0) {
                int r = map_lookup_errno(errno);

                if (r == -ENOENT)
                        return r;
                return tm_log_errno(tm_log_level_of(r), r, "unable to stat '%s/%s'", l->root, name);
        }
        if (!S_ISREG(st.st_mode))
                return -ENOENT;
        if (ret_size)
                *ret_size = (uint64_t)st.st_size;
        return 0;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

/* Read the entries of one directory (dot entries included or not), sorted so
 * listings are deterministic and match an object store's key order. Takes
 * no ownership of fd. */
static int read_names(int fd, int with_dots, char ***ret, size_t *ret_n)
{
        DIR *d = NULL;
        char **names = NULL;
        size_t n = 0, cap = 0;
        int dup_fd, r = 0;

        /* A fresh open file description: a dup() would share the readdir
         * position with any other thread listing the same directory. */
        dup_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dup_fd < 0)
                return map_errno(errno);
        d = fdopendir(dup_fd);
        if (!d) {
                r = map_errno(errno);
                close(dup_fd);
                return r;
        }
        for (;;) {
                struct dirent *de;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno) {
                                r = map_errno(errno);
                                goto out;
                        }
                        break;
                }
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (de->d_name[0] == '.' && !with_dots)
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 64;
                        char **nn = realloc(names, ncap * sizeof(*names));

                        if (!nn) {
                                r = -ENOMEM;
                                goto out;
                        }
                        names = nn;
                        cap = ncap;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        r = -ENOMEM;
                        goto out;
                }
                n++;
        }
        if (n > 1)
                qsort(names, n, sizeof(*names), cmp_str);
        *ret = names;
        *ret_n = n;
        names = NULL;
        n = 0;
out:
        free_names(names, n);
        closedir(d);
        return r;
}

/* List the directory fd (whose object-name prefix is path, "" at the root).
 * Names are collected before fn runs, so fn may add or remove objects. */
static int list_dir(struct local *l, int fd, const char *path, int depth, tm_backend_list_fn fn,
                    void *userdata)
{
        char **names = NULL;
        size_t n = 0;
        int r;

        if (depth > LOCAL_MAX_DEPTH)
                return 0;
        r = read_names(fd, 0, &names, &n);
        if (r < 0) {
                tm_log_errno(tm_log_level_of(r), r, "unable to list '%s/%s'", l->root, path);
                goto out;
        }
        for (size_t i = 0; i < n && r == 0; i++) {
                char full[PATH_MAX];
                struct stat st;

                if ((size_t)snprintf(full, sizeof(full), "%s%s%s", path, *path ? "/" : "",
                                     names[i]) >= sizeof(full))
                        continue;
                if (fstatat(fd, names[i], &st, 0) < 0)
                        continue; /* removed meanwhile, or a dangling symlink */
                if (S_ISREG(st.st_mode)) {
                        r = fn(full, (uint64_t)st.st_size, userdata);
                } else if (S_ISDIR(st.st_mode)) {
                        int sub = openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                        if (sub < 0)
                                continue;
                        r = list_dir(l, sub, full, depth + 1, fn, userdata);
                        close(sub);
                }
        }
out:
        free_names(names, n);
        return r;
}

static int local_list(tm_backend *b, const char *prefix, tm_backend_list_fn fn, void *userdata)
{
        struct local *l = to_local(b);
        int fd, r;

        fd = openat(l->dfd, *prefix ? prefix : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
                r = map_lookup_errno(errno);
                if (r == -ENOENT)
                        return 0; /* nothing stored under this prefix yet */
                return tm_log_errno(tm_log_level_of(r), r, "unable to open '%s/%s'", l->root,
                                    prefix);
        }
        r = list_dir(l, fd, prefix, 0, fn, userdata);
        close(fd);
        return r;
}

static int local_remove(tm_backend *b, const char *name)
{
        struct local *l = to_local(b);

        if (unlinkat(l->dfd, name, 0) < 0) {
                int r = map_lookup_errno(errno);

                if (r == -ENOENT || r == -EISDIR)
                        return r; /* the caller's mistake, not a failure here */
                return tm_log_errno(tm_log_level_of(r), r, "unable to remove '%s/%s'", l->root,
                                    name);
        }
        return 0;
}

static int is_temp_name(const char *s)
{
        return s[0] == '.' && strstr(s + 1, TEMP_MARK) != NULL;
}

static int clean_dir(struct local *l, int fd, const char *path, int depth, time_t cutoff,
                     int *count)
{
        char **names = NULL;
        size_t n = 0;
        int r;

        if (depth > LOCAL_MAX_DEPTH)
                return 0;
        r = read_names(fd, 1, &names, &n);
        if (r < 0) {
                tm_log_errno(tm_log_level_of(r), r, "unable to list '%s/%s'", l->root, path);
                goto out;
        }
        for (size_t i = 0; i < n && r == 0; i++) {
                struct stat st;

                if (fstatat(fd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (S_ISREG(st.st_mode) && is_temp_name(names[i])) {
                        if (st.st_mtime > cutoff)
                                continue; /* maybe a write in progress */
                        if (unlinkat(fd, names[i], 0) == 0)
                                (*count)++;
                        else if (errno != ENOENT)
                                tm_log_errno(TM_LOG_WARN, map_errno(errno),
                                             "unable to remove '%s/%s/%s'", l->root, path,
                                             names[i]);
                } else if (S_ISDIR(st.st_mode) && names[i][0] != '.') {
                        char sub_path[PATH_MAX];
                        int sub;

                        if ((size_t)snprintf(sub_path, sizeof(sub_path), "%s%s%s", path,
                                             *path ? "/" : "", names[i]) >= sizeof(sub_path))
                                continue;
                        sub = openat(fd, names[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
                        if (sub < 0)
                                continue;
                        r = clean_dir(l, sub, sub_path, depth + 1, cutoff, count);
                        close(sub);
                }
        }
out:
        free_names(names, n);
        return r;
}

static int local_clean_temp(tm_backend *b, int64_t age_s)
{
        struct local *l = to_local(b);
        time_t now = time(NULL);
        int count = 0, r;

        r = clean_dir(l, l->dfd, "", 0, now - (time_t)age_s, &count);
        if (r < 0)
                return r;
        return count;
}

static void local_free(tm_backend *b)
{
        struct local *l = to_local(b);

        if (l->dfd >= 0)
                close(l->dfd);
        free(l->root);
        free(l);
}

static const char *local_location(const tm_backend *b)
{
        return ((const struct local *)b)->root;
}

static const struct tm_backend_ops local_ops = {
        .kind = "local",
        .put = local_put,
        .put_new = local_put_new,
        .get = local_get,
        .get_range = local_get_range,
        .head = local_head,
        .list = local_list,
        .remove = local_remove,
        .clean_temp = local_clean_temp,
        .free = local_free,
        .location = local_location,
};

/* mkdir -p for the root itself (absolute or relative path). */
static int mkdir_p(const char *path)
{
        char buf[PATH_MAX];
        size_t len = strlen(path);

        if (len >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, len + 1);
        for (size_t i = 1; i <= len; i++) {
                if (buf[i] != '/' && buf[i] != 0)
                        continue;
                if (buf[i - 1] == '/')
                        continue;
                buf[i] = 0;
                if (mkdir(buf, 0700) < 0 && errno != EEXIST)
                        return map_errno(errno);
                if (i < len)
                        buf[i] = '/';
        }
        return 0;
}

int tm_backend_open_local(const char *path, int create, tm_backend **ret)
{
        struct local *l = NULL;
        int r;

        if (!path || !*path || !ret)
                return -EINVAL;
        if (create) {
                r = mkdir_p(path);
                if (r < 0) /* the caller says it could not create the repository */
                        return tm_log_errno(TM_LOG_DEBUG, r, "unable to create '%s'", path);
        }
        l = calloc(1, sizeof(*l));
        if (!l)
                return -ENOMEM;
        l->base.ops = &local_ops;
        l->dfd = -1;
        l->root = realpath(path, NULL);
        if (!l->root) {
                r = map_errno(errno);
                if (r != -ENOENT && r != -ENOTDIR)
                        tm_log_errno(tm_log_level_of(r), r, "unable to resolve '%s'", path);
                goto out;
        }
        l->dfd = open(l->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (l->dfd < 0) {
                r = map_errno(errno);
                if (r != -ENOENT && r != -ENOTDIR)
                        tm_log_errno(tm_log_level_of(r), r, "unable to open '%s'", l->root);
                goto out;
        }
        *ret = &l->base;
        l = NULL;
        r = 0;
out:
        if (l)
                local_free(&l->base);
        return r;
}
