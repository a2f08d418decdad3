/*
 * watch: recursive inotify watches and the continuous-backup debounce.
 *
 * inotify watches one directory per descriptor, not a tree, so the tree is
 * walked at start and every directory that appears later (created, or moved
 * in) is walked and watched too. A directory moved away loses its watches
 * (their paths would be stale); moved back in, it is walked again. When the
 * kernel's queue overflows, events are lost, so the whole tree is walked
 * again: inotify_add_watch() on a watched inode returns its existing
 * descriptor, which refreshes the path we hold for it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tidemark/core.h>
#include <tidemark/log.h>
#include <tidemark/watch.h>

#define DIR_MASK                                                                       \
        (IN_CREATE | IN_DELETE | IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | \
         IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)
#define FILE_MASK      (IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_DONT_FOLLOW)
#define WATCH_PATH_MAX 4096
#define WATCH_BUF_SIZE (64 * 1024)

struct wentry {
        int wd;
        int is_dir;
        int is_root;
        char *path;
};

struct tm_watch {
        int fd;
        char **roots;
        size_t n_roots;
        char **ignore;
        size_t n_ignore;
        struct wentry *e; /* sorted by wd */
        size_t n, cap;
        uint64_t pending;
        int64_t last_take;
        int taken;
        int warned_limit;
};

static const char *kind_names[] = { "?",      "create",    "modify",  "attrib",
                                    "delete", "move_from", "move_to", "overflow" };

const char *tm_watch_kind_name(enum tm_watch_kind k)
{
        return (unsigned)k < TM_ARRAY_SIZE(kind_names) ? kind_names[k] : "?";
}

static int under(const char *path, const char *prefix)
{
        size_t n = strlen(prefix);

        while (n > 1 && prefix[n - 1] == '/')
                n--;
        return !strncmp(path, prefix, n) && (path[n] == '\0' || path[n] == '/');
}

static int ignored(const tm_watch *w, const char *path)
{
        for (size_t i = 0; i < w->n_ignore; i++)
                if (under(path, w->ignore[i]))
                        return 1;
        return 0;
}

/* Index of wd, or where it would go (*found says which). */
static size_t find(const tm_watch *w, int wd, int *found)
{
        size_t lo = 0, hi = w->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (w->e[mid].wd < wd)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = lo < w->n && w->e[lo].wd == wd;
        return lo;
}

static void remove_at(tm_watch *w, size_t i)
{
        free(w->e[i].path);
        memmove(&w->e[i], &w->e[i + 1], (w->n - i - 1) * sizeof(w->e[0]));
        w->n--;
}

/* Watch one directory or file. 0 also when it vanished or is unreadable
 * (the backup reports those), -ENOSPC at the watch limit, -errno. */
static int add_one(tm_watch *w, const char *path, int is_dir, int is_root)
{
        char *p;
        size_t i;
        int wd, found;

        wd = inotify_add_watch(w->fd, path, is_dir ? DIR_MASK : FILE_MASK);
        if (wd < 0) {
                int r = -errno;

                if (r == -ENOENT || r == -ENOTDIR || r == -ELOOP)
                        return 0;
                if (r == -EACCES || r == -EPERM) {
                        tm_log(TM_LOG_WARN, "watch: cannot watch '%s': %s", path, strerror(-r));
                        return 0;
                }
                if (r == -ENOSPC && !w->warned_limit) {
                        w->warned_limit = 1;
                        tm_log(TM_LOG_ERR,
                               "watch: the inotify watch limit is reached at '%s' "
                               "(raise fs.inotify.max_user_watches)",
                               path);
                }
                return r;
        }
        p = tm_strdup(path);
        if (!p)
                return -ENOMEM;
        i = find(w, wd, &found);
        if (found) { /* already watched: a rename or a rescan; the path is the new one */
                free(w->e[i].path);
                w->e[i].path = p;
                w->e[i].is_root |= is_root;
                return 0;
        }
        if (w->n == w->cap) {
                size_t nc = w->cap ? w->cap * 2 : 64;
                struct wentry *ne = realloc(w->e, nc * sizeof(*ne));

                if (!ne) {
                        free(p);
                        inotify_rm_watch(w->fd, wd);
                        return -ENOMEM;
                }
                w->e = ne;
                w->cap = nc;
        }
        memmove(&w->e[i + 1], &w->e[i], (w->n - i) * sizeof(w->e[0]));
        w->e[i] = (struct wentry){ .wd = wd, .is_dir = is_dir, .is_root = is_root, .path = p };
        w->n++;
        return 0;
}

/* Watch dir and every directory below it. Each level's subdirectory names
 * are collected and the directory closed before descending, so a deep
 * tree holds one descriptor at a time. */
static int add_tree(tm_watch *w, const char *dir, int is_root)
{
        DIR *d = NULL;
        struct dirent *de;
        char **subs = NULL;
        size_t n = 0, cap = 0;
        int r;

        if (ignored(w, dir))
                return 0;
        r = add_one(w, dir, 1, is_root);
        if (r < 0)
                return r;
        d = opendir(dir);
        if (!d)
                return 0; /* vanished or unreadable: nothing below to watch */
        while ((de = readdir(d))) {
                char path[WATCH_PATH_MAX];
                int is_dir = de->d_type == DT_DIR;

                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
                        continue;
                if (snprintf(path, sizeof(path), "%s/%s", strcmp(dir, "/") ? dir : "",
                             de->d_name) >= (int)sizeof(path))
                        continue;
                if (de->d_type == DT_UNKNOWN) {
                        struct stat st;

                        is_dir = lstat(path, &st) == 0 && S_ISDIR(st.st_mode);
                }
                if (!is_dir)
                        continue;
                if (n == cap) {
                        size_t nc = cap ? cap * 2 : 16;
                        char **ns = realloc(subs, nc * sizeof(*ns));

                        if (!ns) {
                                r = -ENOMEM;
                                goto out;
                        }
                        subs = ns;
                        cap = nc;
                }
                subs[n] = tm_strdup(path);
                if (!subs[n]) {
                        r = -ENOMEM;
                        goto out;
                }
                n++;
        }
        closedir(d);
        d = NULL;
        r = 0;
        for (size_t i = 0; i < n && r >= 0; i++)
                r = add_tree(w, subs[i], 0);
out:
        if (d)
                closedir(d);
        for (size_t i = 0; i < n; i++)
                free(subs[i]);
        free(subs);
        return r;
}

static int add_root(tm_watch *w, const char *path)
{
        struct stat st;

        if (lstat(path, &st) < 0) {
                if (errno == ENOENT) {
                        tm_log(TM_LOG_WARN, "watch: '%s' does not exist: not watched", path);
                        return 0;
                }
                return -errno;
        }
        if (S_ISDIR(st.st_mode))
                return add_tree(w, path, 1);
        if (ignored(w, path))
                return 0;
        return add_one(w, path, 0, 1);
}

/* Forget the watches of a directory moved away, and of everything below. */
static void remove_tree(tm_watch *w, const char *dir)
{
        for (size_t i = w->n; i-- > 0;)
                if (under(w->e[i].path, dir) && !w->e[i].is_root) {
                        inotify_rm_watch(w->fd, w->e[i].wd);
                        remove_at(w, i);
                }
}

static int strv_copy(const char *const *v, size_t n, char ***ret)
{
        char **c = calloc(n ? n : 1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        *ret = c;
        for (size_t i = 0; i < n; i++) {
                c[i] = tm_strdup(v[i]);
                if (!c[i])
                        return -ENOMEM;
        }
        return 0;
}

int tm_watch_new(const struct tm_watch_opts *opts, tm_watch **ret)
{
        tm_watch *w = NULL;
        int r;

        if (!opts || !opts->n_paths || !opts->paths || (opts->n_ignore && !opts->ignore))
                return -EINVAL;
        for (size_t i = 0; i < opts->n_paths; i++)
                if (!opts->paths[i] || opts->paths[i][0] != '/' ||
                    strlen(opts->paths[i]) >= WATCH_PATH_MAX)
                        return -EINVAL;
        for (size_t i = 0; i < opts->n_ignore; i++)
                if (!opts->ignore[i] || opts->ignore[i][0] != '/')
                        return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (w->fd < 0) {
                r = -errno;
                goto out;
        }
        w->n_roots = opts->n_paths;
        r = strv_copy(opts->paths, opts->n_paths, &w->roots);
        if (r < 0)
                goto out;
        w->n_ignore = opts->n_ignore;
        r = strv_copy(opts->ignore, opts->n_ignore, &w->ignore);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < w->n_roots && r >= 0; i++)
                r = add_root(w, w->roots[i]);
        if (r < 0)
                goto out;
        *ret = w;
        w = NULL;
        r = 0;
out:
        tm_watch_free(w);
        return r;
}

void tm_watch_free(tm_watch *w)
{
        if (!w)
                return;
        if (w->fd >= 0)
                close(w->fd); /* drops every watch */
        for (size_t i = 0; i < w->n; i++)
                free(w->e[i].path);
        free(w->e);
        for (size_t i = 0; w->roots && i < w->n_roots; i++)
                free(w->roots[i]);
        free(w->roots);
        for (size_t i = 0; w->ignore && i < w->n_ignore; i++)
                free(w->ignore[i]);
        free(w->ignore);
        free(w);
}

int tm_watch_fd(const tm_watch *w)
{
        return w ? w->fd : -1;
}

size_t tm_watch_count(const tm_watch *w)
{
        return w ? w->n : 0;
}

static int rescan(tm_watch *w)
{
        int r = 0;

        for (size_t i = 0; i < w->n_roots && r >= 0; i++)
                r = add_root(w, w->roots[i]);
        return r;
}

static void report(tm_watch_fn fn, void *userdata, enum tm_watch_kind k, const char *path,
                   int is_dir)
{
        if (fn)
                fn(k, path, is_dir, userdata);
}

/* One event. Returns 1 when it counts as a change, 0 when not, -errno. */
static int handle(tm_watch *w, const struct inotify_event *ev, tm_watch_fn fn, void *userdata)
{
        char path[WATCH_PATH_MAX];
        const struct wentry *e;
        int is_dir = !!(ev->mask & IN_ISDIR), found, r = 0;
        size_t i;

        if (ev->mask & IN_Q_OVERFLOW) {
                tm_log(TM_LOG_WARN, "watch: the event queue overflowed: rescanning");
                r = rescan(w);
                report(fn, userdata, TM_WATCH_OVERFLOW, w->roots[0], 1);
                return r < 0 && r != -ENOSPC ? r : 1;
        }
        i = find(w, ev->wd, &found);
        if (!found) /* a watch already forgotten (moved away, or removed) */
                return 0;
        if (ev->mask & IN_IGNORED) { /* the kernel dropped it: deleted or unmounted */
                remove_at(w, i);
                return 0;
        }
        e = &w->e[i];
        if (ev->len && ev->name[0]) {
                if (snprintf(path, sizeof(path), "%s/%s", strcmp(e->path, "/") ? e->path : "",
                             ev->name) >= (int)sizeof(path))
                        return 1; /* too long to name, still a change */
        } else {
                snprintf(path, sizeof(path), "%s", e->path);
                is_dir = e->is_dir;
        }
        if (ignored(w, path))
                return 0;
        if (ev->mask & IN_CREATE) {
                report(fn, userdata, TM_WATCH_CREATE, path, is_dir);
                if (is_dir)
                        r = add_tree(w, path, 0);
        } else if (ev->mask & IN_MOVED_TO) {
                report(fn, userdata, TM_WATCH_MOVE_TO, path, is_dir);
                if (is_dir)
                        r = add_tree(w, path, 0);
        } else if (ev->mask & IN_MOVED_FROM) {
                report(fn, userdata, TM_WATCH_MOVE_FROM, path, is_dir);
                if (is_dir)
                        remove_tree(w, path);
        } else if (ev->mask & IN_DELETE) {
                report(fn, userdata, TM_WATCH_DELETE, path, is_dir);
        } else if (ev->mask & IN_MODIFY) {
                report(fn, userdata, TM_WATCH_MODIFY, path, is_dir);
        } else if (ev->mask & IN_ATTRIB) {
                report(fn, userdata, TM_WATCH_ATTRIB, path, is_dir);
        } else if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
                /* below a root, the parent's event said it already */
                if (!e->is_root)
                        return 0;
                report(fn, userdata,
                       ev->mask & IN_DELETE_SELF ? TM_WATCH_DELETE : TM_WATCH_MOVE_FROM, path,
                       is_dir);
        } else {
                return 0;
        }
        /* -ENOSPC: this directory is not watched, the others still are */
        return r < 0 && r != -ENOSPC ? r : 1;
}

int tm_watch_process(tm_watch *w, int timeout_ms, tm_watch_fn fn, void *userdata)
{
        char buf[WATCH_BUF_SIZE] __attribute__((aligned(__alignof__(struct inotify_event))));
        struct pollfd pfd;
        int handled = 0, r;

        if (!w)
                return -EINVAL;
        pfd.fd = w->fd;
        pfd.events = POLLIN;
        r = poll(&pfd, 1, timeout_ms);
        if (r < 0)
                return -errno;
        if (r == 0)
                return 0;
        for (;;) {
                ssize_t len = read(w->fd, buf, sizeof(buf));

                if (len < 0) {
                        if (errno == EAGAIN)
                                break;
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (char *p = buf; p < buf + len;) {
                        const struct inotify_event *ev = (const struct inotify_event *)p;

                        r = handle(w, ev, fn, userdata);
                        if (r < 0)
                                return r;
                        w->pending += (uint64_t)r;
                        handled++;
                        p += sizeof(*ev) + ev->len;
                }
        }
        return handled;
}

uint64_t tm_watch_pending(const tm_watch *w)
{
        return w ? w->pending : 0;
}

int64_t tm_watch_due_at(const tm_watch *w, int64_t interval_ns)
{
        if (!w || !w->pending)
                return -1;
        if (!w->taken)
                return 0;
        if (w->last_take > INT64_MAX - interval_ns)
                return INT64_MAX;
        return w->last_take + interval_ns;
}

int tm_watch_due(const tm_watch *w, int64_t now, int64_t interval_ns)
{
        int64_t at = tm_watch_due_at(w, interval_ns);

        return at >= 0 && at <= now;
}

void tm_watch_take(tm_watch *w, int64_t now)
{
        if (!w)
                return;
        w->pending = 0;
        w->last_take = now;
        w->taken = 1;
}
