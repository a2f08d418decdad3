/*
 * The logic of every operation: fs_do_*() return 0 or -errno and never
 * reply, so they run in unit tests without a kernel. The tree below a
 * snapshot is immutable, so once a directory's children are loaded they are
 * read without locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <tidemark/catalog.h>
#include <tidemark/log.h>
#include <tidemark/pg.h>
#include <tidemark/time.h>

#include "fs.h"

/* ---- view and refresh ---- */

int fs_repo_blob_loader(void *userdata, const tm_id *id, tm_buf *ret)
{
        return tm_repo_blob_load(userdata, id, ret);
}

int fs_load_blob(void *userdata, const tm_id *id, tm_buf *ret)
{
        struct fs *fs = userdata;
        int r = fs_synth_get(fs, id, ret);

        return r == -ENOENT ? tm_repo_blob_load(fs->repo, id, ret) : r;
}

static int pack_size_cb(const tm_id *pack_id, uint8_t type, uint64_t size, void *userdata)
{
        *(uint64_t *)userdata += size;
        return 0;
}

int fs_refresh(struct fs *fs)
{
        struct tm_snapshot *a = NULL;
        struct fs_view *v = NULL, *old;
        uint64_t bytes = 0;
        size_t n = 0;
        int r;

        r = tm_repo_refresh(fs->repo);
        if (r < 0) /* a backup may hold the catalog: list what we have */
                tm_log_errno(TM_LOG_DEBUG, r, "cannot refresh the catalog");
        r = tm_repo_snapshot_list(fs->repo, NULL, &a, &n);
        if (r < 0) {
                tm_log_errno(TM_LOG_WARN, r, "cannot list the snapshots");
                goto out;
        }
        r = fs_view_new(a, n, &v);
        if (r < 0)
                goto out;
        if (tm_catalog_pack_foreach(tm_repo_catalog(fs->repo), pack_size_cb, &bytes) < 0)
                bytes = 0;
        pthread_mutex_lock(&fs->view_lock);
        old = fs->view;
        fs->view = v;
        fs->repo_bytes = bytes;
        pthread_mutex_unlock(&fs->view_lock);
        fs_view_unref(fs, old);
out:
        pthread_mutex_lock(&fs->view_lock);
        fs->view_time = tm_time_mono();
        pthread_mutex_unlock(&fs->view_lock);
        tm_snapshot_array_free(a, n);
        return r;
}

/* Called when the root or a listing of snapshots is looked at. */
static void maybe_refresh(struct fs *fs)
{
        int due;

        pthread_mutex_lock(&fs->view_lock);
        due = tm_time_mono() - fs->view_time >= fs->refresh_ns;
        pthread_mutex_unlock(&fs->view_lock);
        /* one thread refreshes; the others go on with the current view */
        if (due && pthread_mutex_trylock(&fs->refresh_lock) == 0) {
                fs_refresh(fs);
                pthread_mutex_unlock(&fs->refresh_lock);
        }
}

struct fs_view *fs_view_ref(struct fs *fs)
{
        struct fs_view *v;

        pthread_mutex_lock(&fs->view_lock);
        v = fs->view;
        v->refs++;
        pthread_mutex_unlock(&fs->view_lock);
        return v;
}

void fs_view_unref(struct fs *fs, struct fs_view *v)
{
        int last;

        if (!v)
                return;
        pthread_mutex_lock(&fs->view_lock);
        last = --v->refs == 0;
        pthread_mutex_unlock(&fs->view_lock);
        if (last)
                fs_view_free(v);
}

int fs_init(struct fs *fs, tm_repo *repo, struct fs_cache *cache)
{
        int r;

        *fs = (struct fs){ 0 };
        fs->repo = repo;
        fs->cache = cache;
        fs->ttl_snapshot = 3600;
        fs->ttl_root = 1;
        fs->refresh_ns = 2 * TM_NSEC_PER_SEC;
        fs->readahead = 8;
        fs->mount_time = tm_time_now();
        pthread_mutex_init(&fs->view_lock, NULL);
        pthread_mutex_init(&fs->refresh_lock, NULL);
        pthread_mutex_init(&fs->synth_lock, NULL);
        r = fs_nodes_new(&fs->nodes);
        if (r < 0)
                goto out;
        r = fs_view_new(NULL, 0, &fs->view);
        if (r < 0)
                goto out;
        r = fs_refresh(fs);
out:
        if (r < 0)
                fs_dispose(fs);
        return r;
}

void fs_dispose(struct fs *fs)
{
        fs_nodes_free(fs->nodes);
        fs->nodes = NULL;
        fs_view_free(fs->view);
        fs->view = NULL;
        pthread_mutex_destroy(&fs->view_lock);
        pthread_mutex_destroy(&fs->refresh_lock);
        fs_synth_dispose(fs);
        pthread_mutex_destroy(&fs->synth_lock);
        free(fs->pg_exe);
        free(fs->pg_repo);
        free(fs->pg_password_file);
        fs->pg_exe = fs->pg_repo = fs->pg_password_file = NULL;
}

/* ---- trees ---- */

static int load_tree(struct fs *fs, const tm_id *id, struct tm_tree *ret)
{
        struct fs_blob *b = NULL;
        int r;

        if (!fs->cache)
                return tm_repo_tree_load(fs->repo, id, ret);
        r = fs_cache_get(fs->cache, id, &b);
        if (r < 0)
                return r;
        r = tm_tree_decode(b->data.data, b->data.len, ret);
        fs_cache_put(fs->cache, b);
        return r;
}

/* The children of a directory node, loaded once. Borrowed for the node's life. */
static int node_children(struct fs *fs, struct fs_node *n, const struct tm_tree **ret)
{
        struct tm_tree *t;
        int r;

        if (n->kind != FS_TREE || n->meta.type != TM_NODE_DIR)
                return -ENOTDIR;
        pthread_mutex_lock(&n->lock);
        t = n->children;
        pthread_mutex_unlock(&n->lock);
        if (t) {
                *ret = t;
                return 0;
        }
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        r = load_tree(fs, &n->meta.subtree, t);
        if (r == 0 && n->pg_target) {
                r = fs_pg_decorate(fs, n->meta.name, n->pg_target, t);
                if (r < 0)
                        tm_tree_dispose(t);
        }
        if (r < 0) {
                free(t);
                return r == -EBADMSG ? -EIO : r;
        }
        pthread_mutex_lock(&n->lock);
        if (!n->children) {
                n->children = t;
                t = NULL;
        }
        *ret = n->children;
        pthread_mutex_unlock(&n->lock);
        if (t) {
                tm_tree_dispose(t);
                free(t);
        }
        return 0;
}

/* Resolve a slash-separated path below a tree (no "." or ".."). */
static int lookup_path(struct fs *fs, const tm_id *root, const char *path, struct tm_node *ret)
{
        struct tm_node cur = { 0 };
        const char *p = path;
        char name[4096];
        int r = 0;

        cur.type = TM_NODE_DIR;
        cur.subtree = *root;
        while (*p) {
                struct tm_tree t = TM_TREE_INIT;
                const struct tm_node *nd;
                size_t len = strcspn(p, "/");

                if (len >= sizeof(name) || cur.type != TM_NODE_DIR) {
                        r = -ENOENT;
                        goto out;
                }
                memcpy(name, p, len);
                name[len] = '\0';
                p += len;
                if (*p == '/')
                        p++;
                r = load_tree(fs, &cur.subtree, &t);
                if (r < 0)
                        goto out;
                nd = tm_tree_find(&t, name);
                tm_node_dispose(&cur);
                r = nd ? tm_node_copy(nd, &cur) : -ENOENT;
                tm_tree_dispose(&t);
                if (r < 0)
                        goto out;
        }
        *ret = cur;
        cur = (struct tm_node){ 0 };
out:
        tm_node_dispose(&cur);
        return r;
}

/* ---- attributes ---- */

static mode_t type_bits(uint8_t type)
{
        switch (type) {
        case TM_NODE_DIR:
                return S_IFDIR;
        case TM_NODE_SYMLINK:
                return S_IFLNK;
        case TM_NODE_FIFO:
                return S_IFIFO;
        case TM_NODE_CHARDEV:
                return S_IFCHR;
        case TM_NODE_BLOCKDEV:
                return S_IFBLK;
        case TM_NODE_SOCKET:
                return S_IFSOCK;
        default:
                return S_IFREG;
        }
}

static void set_time(struct timespec *ts, int64_t ns)
{
        ts->tv_sec = (time_t)(ns / TM_NSEC_PER_SEC);
        ts->tv_nsec = (long)(ns % TM_NSEC_PER_SEC);
        if (ts->tv_nsec < 0) {
                ts->tv_nsec += TM_NSEC_PER_SEC;
                ts->tv_sec--;
        }
}

static int latest_target(struct fs *fs, char *out, size_t n)
{
        struct fs_view *v = fs_view_ref(fs);
        int r = -ENOENT;

        if (v->n_instants) {
                fs_instant_format(v->instants[v->n_instants - 1], out, n);
                r = 0;
        }
        fs_view_unref(fs, v);
        return r;
}

static void node_stat(struct fs *fs, const struct fs_node *n, struct stat *st)
{
        char target[64];

        memset(st, 0, sizeof(*st));
        st->st_ino = n->ino;
        st->st_blksize = 65536;
        if (n->kind == FS_TREE) {
                const struct tm_node *m = &n->meta;

                st->st_mode = type_bits(m->type) | (m->mode & 07777);
                st->st_nlink = m->nlink ? (nlink_t)m->nlink : (m->type == TM_NODE_DIR ? 2 : 1);
                st->st_uid = m->uid;
                st->st_gid = m->gid;
                st->st_size = m->type == TM_NODE_SYMLINK && m->target ? (off_t)strlen(m->target)
                              : m->type == TM_NODE_DIR                ? 0
                                                                      : (off_t)m->size;
                st->st_rdev = (dev_t)m->rdev;
                set_time(&st->st_mtim, m->mtime_ns);
                set_time(&st->st_atim, m->mtime_ns);
                set_time(&st->st_ctim, m->ctime_ns ? m->ctime_ns : m->mtime_ns);
                st->st_blocks = (blkcnt_t)((st->st_size + 511) / 512);
                return;
        }
        if (n->kind == FS_LATEST) {
                st->st_mode = S_IFLNK | 0777;
                st->st_nlink = 1;
                if (latest_target(fs, target, sizeof(target)) == 0)
                        st->st_size = (off_t)strlen(target);
                set_time(&st->st_mtim, fs->mount_time);
        } else {
                st->st_mode = S_IFDIR | 0555;
                st->st_nlink = 2;
                set_time(&st->st_mtim, n->meta.mtime_ns ? n->meta.mtime_ns : fs->mount_time);
        }
        st->st_atim = st->st_mtim;
        st->st_ctim = st->st_mtim;
}

static double node_ttl(struct fs *fs, const struct fs_node *n)
{
        return n->kind == FS_TREE ? fs->ttl_snapshot : fs->ttl_root;
}

static void fill_entry(struct fs *fs, const struct fs_node *n, struct fuse_entry_param *e)
{
        memset(e, 0, sizeof(*e));
        e->ino = n->ino;
        node_stat(fs, n, &e->attr);
        e->attr_timeout = node_ttl(fs, n);
        e->entry_timeout = node_ttl(fs, n);
}

int fs_do_getattr(struct fs *fs, fuse_ino_t ino, struct stat *ret, double *ret_ttl)
{
        struct fs_node *n;
        int r = fs_nodes_get(fs->nodes, ino, &n);

        if (r < 0)
                return r;
        node_stat(fs, n, ret);
        *ret_ttl = node_ttl(fs, n);
        fs_nodes_put(fs->nodes, n);
        return 0;
}

/* ---- lookup ---- */

static int same_snaps(const struct fs_node *a, const struct fs_node *b)
{
        if (a->n_snaps != b->n_snaps)
                return 0;
        for (size_t i = 0; i < a->n_snaps; i++)
                if (tm_id_cmp(&a->snaps[i].id, &b->snaps[i].id) != 0)
                        return 0;
        return 1;
}

static int node_add_snap(struct fs_node *n, const struct fs_snap *s)
{
        struct fs_snap *a = realloc(n->snaps, (n->n_snaps + 1) * sizeof(*a));

        if (!a)
                return -ENOMEM;
        n->snaps = a;
        a[n->n_snaps] = *s;
        a[n->n_snaps].component = strdup(s->component);
        if (!a[n->n_snaps].component)
                return -ENOMEM;
        n->n_snaps++;
        return 0;
}

/* A snapshot's root directory as a node. */
static struct fs_node *snap_root_new(const struct fs_snap *s, const char *name)
{
        struct fs_node *n = fs_node_new(FS_TREE);

        if (!n)
                return NULL;
        n->meta.type = TM_NODE_DIR;
        n->meta.mode = 0755;
        n->meta.nlink = 2;
        n->meta.mtime_ns = s->time;
        n->meta.ctime_ns = s->time;
        n->meta.subtree = s->tree;
        n->root = s->tree;
        n->meta.name = strdup(name);
        if (!n->meta.name) {
                fs_node_free(n);
                return NULL;
        }
        return n;
}

/* A base backup under @T is a PGDATA: private (0700), owned like its
 * global/ directory (PostgreSQL refuses a data directory that is not), its
 * listing decorated for recovery to the instant. */
static int pg_root(struct fs *fs, const struct fs_snap *s, int64_t bound, struct fs_node *n)
{
        struct tm_tree t = TM_TREE_INIT;
        const struct tm_node *g;
        int r;

        r = load_tree(fs, &s->tree, &t);
        if (r < 0)
                return r == -EBADMSG ? -EIO : r;
        g = tm_tree_find(&t, "global");
        if (g && g->type == TM_NODE_DIR) {
                n->meta.uid = g->uid;
                n->meta.gid = g->gid;
                n->meta.user = g->user ? strdup(g->user) : NULL;
                n->meta.group = g->group ? strdup(g->group) : NULL;
                if ((g->user && !n->meta.user) || (g->group && !n->meta.group))
                        r = -ENOMEM;
        }
        n->meta.mode = 0700;
        n->pg_target = bound;
        tm_tree_dispose(&t);
        return r;
}

static int lookup_root(struct fs *fs, const char *name, struct fs_node **ret_cand,
                       struct fs_node **ret_fixed,
                       int (**ret_valid)(const struct fs_node *, const struct fs_node *))
{
        struct fs_view *v;
        struct fs_node *n = NULL;
        size_t *idx = NULL, found;
        int64_t bound;
        int r;

        maybe_refresh(fs);
        if (strcmp(name, "latest") == 0) {
                char target[64];

                r = latest_target(fs, target, sizeof(target));
                if (r < 0)
                        return r;
                return fs_nodes_get(fs->nodes, FS_INO_LATEST, ret_fixed);
        }
        if (strcmp(name, ".snapshots") == 0)
                return fs_nodes_get(fs->nodes, FS_INO_SNAPDIR, ret_fixed);
        if (strcmp(name, ".history") == 0)
                return fs_nodes_get(fs->nodes, FS_INO_HISTDIR, ret_fixed);
        r = fs_instant_parse(name, &bound);
        if (r < 0)
                return r;
        v = fs_view_ref(fs);
        idx = calloc(v->n_components + 1, sizeof(*idx));
        if (!idx) {
                r = -ENOMEM;
                goto out;
        }
        found = fs_view_resolve(v, bound, idx);
        if (found == 0) {
                r = -ENOENT;
                goto out;
        }
        n = fs_node_new(FS_INSTANT);
        if (!n) {
                r = -ENOMEM;
                goto out;
        }
        n->bound = bound;
        for (size_t i = 0; i < found; i++) {
                r = node_add_snap(n, &v->snaps[idx[i]]);
                if (r < 0)
                        goto out;
                if (v->snaps[idx[i]].time > n->meta.mtime_ns)
                        n->meta.mtime_ns = v->snaps[idx[i]].time;
        }
        *ret_cand = n;
        *ret_valid = same_snaps;
        n = NULL;
        r = 0;
out:
        fs_node_free(n);
        free(idx);
        fs_view_unref(fs, v);
        return r;
}

static int lookup_snapdir(struct fs *fs, const char *name, struct fs_node **ret)
{
        struct fs_view *v;
        size_t i;
        tm_id id;
        int r;

        maybe_refresh(fs);
        if (strlen(name) != TM_ID_HEX_LEN || tm_id_parse(name, &id) < 0)
                return -ENOENT;
        v = fs_view_ref(fs);
        r = fs_view_find_id(v, &id, &i);
        if (r == 0) {
                *ret = snap_root_new(&v->snaps[i], name);
                if (!*ret)
                        r = -ENOMEM;
        }
        fs_view_unref(fs, v);
        return r;
}

static int lookup_histdir(struct fs *fs, const char *name, struct fs_node **ret)
{
        struct fs_view *v;
        struct fs_node *n = NULL;
        int r = 0;

        maybe_refresh(fs);
        v = fs_view_ref(fs);
        if (!fs_view_has_component(v, name)) {
                r = -ENOENT;
                goto out;
        }
        n = fs_node_new(FS_HIST_PATH);
        if (!n || !(n->path = strdup(""))) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < v->n_snaps; i++)
                if (strcmp(v->snaps[i].component, name) == 0) {
                        r = node_add_snap(n, &v->snaps[i]);
                        if (r < 0)
                                goto out;
                        n->meta.mtime_ns = v->snaps[i].time;
                }
        *ret = n;
        n = NULL;
out:
        fs_node_free(n);
        fs_view_unref(fs, v);
        return r;
}

static char *path_join(const char *dir, const char *name)
{
        size_t a = strlen(dir), b = strlen(name);
        char *p = malloc(a + b + 2);

        if (!p)
                return NULL;
        if (a) {
                memcpy(p, dir, a);
                p[a++] = '/';
        }
        memcpy(p + a, name, b + 1);
        return p;
}

/* A path below .history/<component>/: the versions of a file if it is a
 * regular file in any snapshot, else a directory if it is one in any. */
static int lookup_hist_path(struct fs *fs, struct fs_node *parent, const char *name,
                            struct fs_node **ret)
{
        struct tm_node *nodes = NULL;
        struct fs_hist_in *in = NULL;
        size_t *idx = NULL, n_in = 0, n_ver, n = parent->n_snaps;
        struct fs_node *res = NULL;
        char *path = NULL;
        int any_dir = 0, r = -ENOMEM;

        path = path_join(parent->path, name);
        nodes = calloc(n + 1, sizeof(*nodes));
        in = calloc(n + 1, sizeof(*in));
        idx = calloc(n + 1, sizeof(*idx));
        if (!path || !nodes || !in || !idx)
                goto out;
        for (size_t i = 0; i < n; i++) {
                r = lookup_path(fs, &parent->snaps[i].tree, path, &nodes[i]);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        goto out;
                if (nodes[i].type == TM_NODE_FILE)
                        in[n_in++] = (struct fs_hist_in){ parent->snaps[i].time, &nodes[i] };
                else if (nodes[i].type == TM_NODE_DIR)
                        any_dir = 1;
        }
        r = -ENOMEM;
        if (n_in > 0) {
                n_ver = fs_history_group(in, n_in, idx);
                res = fs_node_new(FS_HIST_FILE);
                if (!res || !(res->versions = calloc(n_ver, sizeof(*res->versions))))
                        goto out;
                for (size_t k = 0; k < n_ver; k++) {
                        struct fs_version *ver = &res->versions[k];
                        const struct fs_hist_in *h = &in[idx[k]];

                        fs_instant_format(h->time - h->time % TM_NSEC_PER_SEC, ver->name,
                                          sizeof(ver->name));
                        r = tm_node_copy(h->node, &ver->node);
                        if (r < 0)
                                goto out;
                        free(ver->node.name);
                        ver->node.name = strdup(ver->name);
                        res->n_versions++;
                        if (!ver->node.name) {
                                r = -ENOMEM;
                                goto out;
                        }
                        res->meta.mtime_ns = h->node->mtime_ns;
                }
        } else if (any_dir) {
                res = fs_node_new(FS_HIST_PATH);
                if (!res)
                        goto out;
        } else {
                r = -ENOENT;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                r = node_add_snap(res, &parent->snaps[i]);
                if (r < 0)
                        goto out;
        }
        if (res->kind == FS_HIST_PATH)
                res->meta.mtime_ns = parent->meta.mtime_ns;
        res->path = path;
        path = NULL;
        *ret = res;
        res = NULL;
        r = 0;
out:
        for (size_t i = 0; nodes && i < n; i++)
                tm_node_dispose(&nodes[i]);
        free(nodes);
        free(in);
        free(idx);
        free(path);
        fs_node_free(res);
        return r;
}

int fs_do_lookup(struct fs *fs, fuse_ino_t parent, const char *name, struct fuse_entry_param *ret)
{
        int (*valid)(const struct fs_node *, const struct fs_node *) = NULL;
        struct fs_node *p = NULL, *cand = NULL, *fixed = NULL, *res;
        const struct tm_tree *t;
        const struct tm_node *nd;
        char hex[TM_ID_HEX_LEN + 1], hkey[128];
        fuse_ino_t key_parent = parent;
        const char *key = name;
        int r;

        memset(ret, 0, sizeof(*ret));
        r = fs_nodes_get(fs->nodes, parent, &p);
        if (r < 0)
                return r;
        switch (p->kind) {
        case FS_ROOT:
                r = lookup_root(fs, name, &cand, &fixed, &valid);
                break;
        case FS_SNAPDIR:
                r = lookup_snapdir(fs, name, &cand);
                break;
        case FS_HISTDIR:
                r = lookup_histdir(fs, name, &cand);
                valid = same_snaps;
                break;
        case FS_INSTANT:
                r = -ENOENT;
                for (size_t i = 0; i < p->n_snaps; i++)
                        if (strcmp(p->snaps[i].component, name) == 0) {
                                cand = snap_root_new(&p->snaps[i], name);
                                r = cand ? 0 : -ENOMEM;
                                if (r == 0 && p->snaps[i].is_pg && fs->pg_exe)
                                        r = pg_root(fs, &p->snaps[i], p->bound, cand);
                        }
                break;
        case FS_TREE:
                r = node_children(fs, p, &t);
                if (r < 0)
                        break;
                nd = tm_tree_find(t, name);
                if (!nd) {
                        /* immutable: let the kernel remember the miss */
                        ret->entry_timeout = fs->ttl_snapshot;
                        r = -ENOENT;
                        break;
                }
                cand = fs_node_new(FS_TREE);
                r = cand ? tm_node_copy(nd, &cand->meta) : -ENOMEM;
                if (r < 0)
                        break;
                cand->root = p->root;
                if (nd->type != TM_NODE_DIR && nd->nlink > 1 && !tm_id_is_zero(&p->root)) {
                        /* hard links of one snapshot share one inode: keyed by
                         * (snapshot tree, device, inode) under parent 0, which
                         * no directory has */
                        tm_id_hex(&p->root, hex);
                        snprintf(hkey, sizeof(hkey), "%s:%llu:%llu", hex,
                                 (unsigned long long)nd->dev, (unsigned long long)nd->inode);
                        key_parent = 0;
                        key = hkey;
                }
                break;
        case FS_HIST_PATH:
                r = lookup_hist_path(fs, p, name, &cand);
                valid = same_snaps;
                break;
        case FS_HIST_FILE:
                r = -ENOENT;
                for (size_t i = 0; i < p->n_versions; i++)
                        if (strcmp(p->versions[i].name, name) == 0) {
                                cand = fs_node_new(FS_TREE);
                                r = cand ? tm_node_copy(&p->versions[i].node, &cand->meta)
                                         : -ENOMEM;
                        }
                break;
        default:
                r = -ENOTDIR;
                break;
        }
        if (r < 0)
                goto out;
        if (fixed) {
                fs_nodes_ref_lookup(fs->nodes, fixed);
                fill_entry(fs, fixed, ret);
                goto out;
        }
        r = fs_nodes_link(fs->nodes, key_parent, key, cand, valid, &res);
        cand = NULL;
        if (r < 0)
                goto out;
        /* res holds a lookup: the kernel cannot forget it before this reply */
        fill_entry(fs, res, ret);
out:
        fs_node_free(cand);
        fs_nodes_put(fs->nodes, fixed);
        fs_nodes_put(fs->nodes, p);
        return r;
}

/* Nodes freed in bulk (the kernel forgetting a walked instant) stay in
 * glibc's heap: after a find over a 1M-entry instant RSS stayed at 1.2 GB
 * with the table nearly empty (docs/reliability.md, Load). Hand the pages
 * back once this many nodes have gone since the high-water mark. */
#define FS_TRIM_NODES 65536

void fs_do_forget(struct fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
        size_t n, mark;

        /* the count comes from the same lock hold: forgets arrive by the
         * thousand when the kernel evicts */
        n = fs_nodes_forget(fs->nodes, ino, nlookup);
        mark = __atomic_load_n(&fs->trim_mark, __ATOMIC_RELAXED);
        if (n > mark) {
                __atomic_store_n(&fs->trim_mark, n, __ATOMIC_RELAXED);
        } else if (mark - n >= FS_TRIM_NODES &&
                   __atomic_compare_exchange_n(&fs->trim_mark, &mark, n, 0, __ATOMIC_RELAXED,
                                               __ATOMIC_RELAXED)) {
                tm_log(TM_LOG_DEBUG, "%zu nodes forgotten: returning freed memory", mark - n);
                malloc_trim(0);
        }
}

int fs_do_readlink(struct fs *fs, fuse_ino_t ino, char **ret)
{
        struct fs_node *n;
        char target[64];
        int r = fs_nodes_get(fs->nodes, ino, &n);

        if (r < 0)
                return r;
        if (n->kind == FS_LATEST) {
                r = latest_target(fs, target, sizeof(target));
                if (r == 0)
                        *ret = strdup(target);
        } else if (n->kind == FS_TREE && n->meta.type == TM_NODE_SYMLINK) {
                *ret = strdup(n->meta.target ? n->meta.target : "");
        } else {
                r = -EINVAL;
        }
        if (r == 0 && !*ret)
                r = -ENOMEM;
        fs_nodes_put(fs->nodes, n);
        return r;
}

/* ---- directories ---- */

void fs_dir_free(struct fs_dir *d)
{
        if (!d)
                return;
        for (size_t i = 0; i < d->n; i++)
                free(d->ents[i].name);
        free(d->ents);
        free(d);
}

static int dir_add(struct fs_dir *d, const char *name, mode_t type, fuse_ino_t ino)
{
        if (d->n == d->cap) {
                size_t cap = d->cap ? d->cap * 2 : 16;
                struct fs_dirent *e = realloc(d->ents, cap * sizeof(*e));

                if (!e)
                        return -ENOMEM;
                d->ents = e;
                d->cap = cap;
        }
        d->ents[d->n].name = strdup(name);
        if (!d->ents[d->n].name)
                return -ENOMEM;
        d->ents[d->n].type = type;
        d->ents[d->n].ino_hint = ino;
        d->n++;
        return 0;
}

static int cmp_dirent(const void *a, const void *b)
{
        return strcmp(((const struct fs_dirent *)a)->name, ((const struct fs_dirent *)b)->name);
}

/* The union of the names below a path across the component's snapshots:
 * files and directories only (history has nothing else to show). */
static int list_hist_path(struct fs *fs, struct fs_node *n, struct fs_dir *d)
{
        tm_id *seen = calloc(n->n_snaps + 1, sizeof(*seen));
        size_t n_seen = 0, first = d->n, k;
        int r = 0;

        if (!seen)
                return -ENOMEM;
        for (size_t i = 0; i < n->n_snaps; i++) {
                struct tm_node dir = { 0 };
                struct tm_tree t = TM_TREE_INIT;
                int dup = 0;

                r = lookup_path(fs, &n->snaps[i].tree, n->path, &dir);
                if (r == -ENOENT || (r == 0 && dir.type != TM_NODE_DIR)) {
                        tm_node_dispose(&dir);
                        r = 0;
                        continue;
                }
                if (r < 0)
                        break;
                for (size_t j = 0; j < n_seen; j++)
                        dup |= tm_id_cmp(&seen[j], &dir.subtree) == 0;
                if (!dup) {
                        seen[n_seen++] = dir.subtree;
                        r = load_tree(fs, &dir.subtree, &t);
                        for (size_t j = 0; r == 0 && j < t.n; j++)
                                if (t.nodes[j].type == TM_NODE_FILE ||
                                    t.nodes[j].type == TM_NODE_DIR)
                                        r = dir_add(d, t.nodes[j].name, S_IFDIR, 0);
                        tm_tree_dispose(&t);
                }
                tm_node_dispose(&dir);
                if (r < 0)
                        break;
        }
        free(seen);
        if (r < 0)
                return r;
        qsort(d->ents + first, d->n - first, sizeof(*d->ents), cmp_dirent);
        k = first;
        for (size_t i = first; i < d->n; i++) {
                if (k > first && strcmp(d->ents[k - 1].name, d->ents[i].name) == 0) {
                        free(d->ents[i].name);
                        continue;
                }
                d->ents[k++] = d->ents[i];
        }
        d->n = k;
        return 0;
}

int fs_do_opendir(struct fs *fs, fuse_ino_t ino, struct fs_dir **ret)
{
        struct fs_dir *d = calloc(1, sizeof(*d));
        struct fs_view *v = NULL;
        const struct tm_tree *t;
        struct fs_node *n = NULL;
        char name[TM_ID_HEX_LEN + 1];
        int r;

        if (!d)
                return -ENOMEM;
        r = fs_nodes_get(fs->nodes, ino, &n);
        if (r < 0)
                goto out;
        if (n->kind == FS_ROOT || n->kind == FS_SNAPDIR || n->kind == FS_HISTDIR) {
                maybe_refresh(fs);
                v = fs_view_ref(fs);
        }
        d->ino = ino;
        /* a lookup below .history walks every snapshot: not for each entry */
        d->plus = n->kind != FS_HIST_PATH;
        if ((r = dir_add(d, ".", S_IFDIR, ino)) < 0 || (r = dir_add(d, "..", S_IFDIR, 0)) < 0)
                goto out;
        switch (n->kind) {
        case FS_ROOT:
                if (v->n_instants)
                        r = dir_add(d, "latest", S_IFLNK, FS_INO_LATEST);
                if (r == 0)
                        r = dir_add(d, ".snapshots", S_IFDIR, FS_INO_SNAPDIR);
                if (r == 0)
                        r = dir_add(d, ".history", S_IFDIR, FS_INO_HISTDIR);
                for (size_t i = 0; r == 0 && i < v->n_instants; i++) {
                        fs_instant_format(v->instants[i], name, sizeof(name));
                        r = dir_add(d, name, S_IFDIR, 0);
                }
                break;
        case FS_SNAPDIR:
                for (size_t i = 0; r == 0 && i < v->n_snaps; i++) {
                        tm_id_hex(&v->snaps[i].id, name);
                        r = dir_add(d, name, S_IFDIR, 0);
                }
                break;
        case FS_HISTDIR:
                for (size_t i = 0; r == 0 && i < v->n_components; i++)
                        r = dir_add(d, v->components[i], S_IFDIR, 0);
                break;
        case FS_INSTANT:
                for (size_t i = 0; r == 0 && i < n->n_snaps; i++)
                        r = dir_add(d, n->snaps[i].component, S_IFDIR, 0);
                break;
        case FS_TREE:
                r = node_children(fs, n, &t);
                for (size_t i = 0; r == 0 && i < t->n; i++)
                        r = dir_add(d, t->nodes[i].name, type_bits(t->nodes[i].type), 0);
                break;
        case FS_HIST_PATH:
                r = list_hist_path(fs, n, d);
                break;
        case FS_HIST_FILE:
                for (size_t i = 0; r == 0 && i < n->n_versions; i++)
                        r = dir_add(d, n->versions[i].name, S_IFREG, 0);
                break;
        default:
                r = -ENOTDIR;
                break;
        }
        if (r < 0)
                goto out;
        *ret = d;
        d = NULL;
out:
        fs_view_unref(fs, v);
        fs_nodes_put(fs->nodes, n);
        fs_dir_free(d);
        return r;
}

int fs_do_readdir(struct fs *fs, fuse_req_t req, struct fs_dir *d, off_t off, char *buf,
                  size_t size, size_t *ret_len)
{
        size_t len = 0;

        for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n; i++) {
                struct stat st = { 0 };
                size_t need;

                /* a readdir entry needs some inode number; 0 is skipped by
                 * some programs, and the real one comes with lookup */
                st.st_ino = d->ents[i].ino_hint ? d->ents[i].ino_hint : (ino_t)(1ull << 62) + i;
                st.st_mode = d->ents[i].type;
                need = fuse_add_direntry(req, buf + len, size - len, d->ents[i].name, &st,
                                         (off_t)(i + 1));
                if (need > size - len)
                        break;
                len += need;
        }
        *ret_len = len;
        return 0;
}

int fs_do_readdirplus(struct fs *fs, fuse_req_t req, struct fs_dir *d, off_t off, char *buf,
                      size_t size, size_t *ret_len)
{
        size_t len = 0;

        for (size_t i = off < 0 ? 0 : (size_t)off; i < d->n; i++) {
                const char *name = d->ents[i].name;
                struct fuse_entry_param e;
                size_t need;

                if (!d->plus || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
                    fs_do_lookup(fs, d->ino, name, &e) < 0 || e.ino == 0) {
                        /* ino 0: the kernel takes no reference and looks up later */
                        memset(&e, 0, sizeof(e));
                        e.attr.st_ino =
                                d->ents[i].ino_hint ? d->ents[i].ino_hint : (ino_t)(1ull << 62) + i;
                        e.attr.st_mode = d->ents[i].type;
                }
                need = fuse_add_direntry_plus(req, buf + len, size - len, name, &e, (off_t)(i + 1));
                if (need > size - len) {
                        if (e.ino)
                                fs_do_forget(fs, e.ino, 1); /* the lookup it did not use */
                        break;
                }
                len += need;
        }
        *ret_len = len;
        return 0;
}

/* ---- files ---- */

int fs_do_open(struct fs *fs, fuse_ino_t ino, int flags, struct fs_file **ret)
{
        struct fs_node *n = NULL;
        struct fs_file *f = NULL;
        uint64_t end = 0;
        int r;

        if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_APPEND | O_CREAT)))
                return -EROFS;
        r = fs_nodes_get(fs->nodes, ino, &n);
        if (r < 0)
                return r;
        if (n->kind != FS_TREE || n->meta.type != TM_NODE_FILE) {
                r = n->kind == FS_TREE && n->meta.type == TM_NODE_DIR ? -EISDIR : -EINVAL;
                goto out;
        }
        r = -ENOMEM;
        f = calloc(1, sizeof(*f));
        if (!f)
                goto out;
        pthread_mutex_init(&f->lock, NULL);
        if (n->meta.n_content) {
                f->ends = calloc(n->meta.n_content, sizeof(*f->ends));
                if (!f->ends)
                        goto out;
        }
        for (size_t i = 0; i < n->meta.n_content; i++) {
                end += n->meta.content[i].size;
                f->ends[i] = end;
        }
        f->n = n->meta.n_content;
        f->node = n;
        n = NULL;
        *ret = f;
        f = NULL;
        r = 0;
out:
        if (f) {
                pthread_mutex_destroy(&f->lock);
                free(f->ends);
                free(f);
        }
        fs_nodes_put(fs->nodes, n);
        return r;
}

void fs_do_release(struct fs *fs, struct fs_file *f)
{
        if (!f)
                return;
        fs_nodes_put(fs->nodes, f->node);
        pthread_mutex_destroy(&f->lock);
        free(f->ends);
        free(f);
}

#define SEQ_WINDOW (1024 * 1024)

/* The first blob whose end is past off. */
static size_t blob_at(const struct fs_file *f, uint64_t off)
{
        size_t lo = 0, hi = f->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (f->ends[mid] <= off)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

/* Where a read of [off, off + size) lies: blobs first..last, its end; and
 * the read-ahead it triggers. Returns 0 when there is nothing to read. */
static int read_plan(struct fs *fs, struct fs_file *f, uint64_t off, size_t size, size_t *ret_first,
                     size_t *ret_last, uint64_t *ret_end)
{
        const struct tm_content *content = f->node->meta.content;
        uint64_t total = f->n ? f->ends[f->n - 1] : 0, end;
        size_t last, from = 0, to = 0;
        int seq;

        if (off >= total || size == 0)
                return 0;
        end = size > total - off ? total : off + size;
        last = blob_at(f, end - 1);
        pthread_mutex_lock(&f->lock);
        /* the kernel sends read-ahead requests concurrently and they may
         * arrive a little out of order: near the last end is sequential */
        seq = off <= f->next_off + SEQ_WINDOW && off + SEQ_WINDOW >= f->next_off;
        if (!seq || end > f->next_off)
                f->next_off = end;
        if (seq && fs->readahead > 0) {
                /* queue the next blobs before waiting for this one, so they
                 * load in parallel with it */
                from = TM_MAX(f->prefetched, last + 1);
                to = TM_MIN(f->n, last + 1 + (size_t)fs->readahead);
                if (to > from)
                        f->prefetched = to;
        }
        pthread_mutex_unlock(&f->lock);
        for (size_t j = from; j < to; j++)
                fs_cache_prefetch(fs->cache, &content[j].id);
        *ret_first = blob_at(f, off);
        *ret_last = last;
        *ret_end = end;
        return 1;
}

void fs_read_segs_free(struct fs *fs, struct fs_read_seg *segs, size_t n)
{
        for (size_t i = 0; segs && i < n; i++)
                fs_cache_put(fs->cache, segs[i].blob);
        free(segs);
}

int fs_do_read_segs(struct fs *fs, struct fs_file *f, uint64_t off, size_t size,
                    struct fs_read_seg **ret, size_t *ret_n)
{
        const struct tm_content *content = f->node->meta.content;
        struct fs_read_seg *segs = NULL;
        size_t i, last, n = 0;
        uint64_t end;
        int r = 0;

        *ret = NULL;
        *ret_n = 0;
        if (!fs->cache)
                return -EINVAL;
        if (!read_plan(fs, f, off, size, &i, &last, &end))
                return 0;
        segs = calloc(last - i + 1, sizeof(*segs));
        if (!segs)
                return -ENOMEM;
        for (; off < end; i++) {
                uint64_t start = i ? f->ends[i - 1] : 0, stop = TM_MIN(end, f->ends[i]);
                struct fs_blob *b = NULL;

                r = fs_cache_get(fs->cache, &content[i].id, &b);
                if (r < 0)
                        goto out;
                segs[n++].blob = b;
                if (b->data.len != content[i].size) {
                        char hex[TM_ID_HEX_LEN + 1];

                        tm_id_hex(&content[i].id, hex);
                        tm_log(TM_LOG_ERR, "blob %s has %zu bytes, the tree says %llu", hex,
                               b->data.len, (unsigned long long)content[i].size);
                        r = -EBADMSG;
                        goto out;
                }
                segs[n - 1].p = b->data.data + (off - start);
                segs[n - 1].len = (size_t)(stop - off);
                off = stop;
        }
        *ret = segs;
        *ret_n = n;
        segs = NULL;
out:
        fs_read_segs_free(fs, segs, n);
        /* never a short read of good bytes then garbage: the whole read fails;
         * EAGAIN (an archived pack, thaw requested) tells the reader to retry */
        return r < 0 && r != -ENOMEM && r != -EAGAIN ? -EIO : r;
}

int fs_do_read(struct fs *fs, struct fs_file *f, uint64_t off, size_t size, tm_buf *out)
{
        struct fs_read_seg *segs = NULL;
        size_t n = 0;
        int r;

        r = fs_do_read_segs(fs, f, off, size, &segs, &n);
        for (size_t i = 0; r == 0 && i < n; i++)
                r = tm_buf_append(out, segs[i].p, segs[i].len);
        fs_read_segs_free(fs, segs, n);
        return r;
}

/* ---- extended attributes, statfs ---- */

int fs_do_getxattr(struct fs *fs, fuse_ino_t ino, const char *name, char *buf, size_t size,
                   size_t *ret_len)
{
        struct fs_node *n;
        int r = fs_nodes_get(fs->nodes, ino, &n);

        if (r < 0)
                return r;
        r = -ENODATA;
        for (size_t i = 0; n->kind == FS_TREE && i < n->meta.n_xattrs; i++) {
                const struct tm_xattr *x = &n->meta.xattrs[i];

                if (strcmp(x->name, name) != 0)
                        continue;
                *ret_len = x->len;
                if (size == 0)
                        r = 0;
                else if (size < x->len)
                        r = -ERANGE;
                else {
                        if (x->len)
                                memcpy(buf, x->value, x->len);
                        r = 0;
                }
                break;
        }
        fs_nodes_put(fs->nodes, n);
        return r;
}

int fs_do_listxattr(struct fs *fs, fuse_ino_t ino, char *buf, size_t size, size_t *ret_len)
{
        struct fs_node *n;
        size_t need = 0, k = 0;
        int r = fs_nodes_get(fs->nodes, ino, &n);

        if (r < 0)
                return r;
        for (size_t i = 0; n->kind == FS_TREE && i < n->meta.n_xattrs; i++)
                need += strlen(n->meta.xattrs[i].name) + 1;
        *ret_len = need;
        if (size > 0 && size < need) {
                r = -ERANGE;
        } else if (size > 0) {
                for (size_t i = 0; n->kind == FS_TREE && i < n->meta.n_xattrs; i++) {
                        size_t len = strlen(n->meta.xattrs[i].name) + 1;

                        memcpy(buf + k, n->meta.xattrs[i].name, len);
                        k += len;
                }
        }
        fs_nodes_put(fs->nodes, n);
        return r;
}

int fs_do_statfs(struct fs *fs, struct statvfs *ret)
{
        struct fs_view *v = fs_view_ref(fs);

        memset(ret, 0, sizeof(*ret));
        ret->f_bsize = 4096;
        ret->f_frsize = 4096;
        pthread_mutex_lock(&fs->view_lock);
        ret->f_blocks = (fsblkcnt_t)((fs->repo_bytes + 4095) / 4096);
        pthread_mutex_unlock(&fs->view_lock);
        ret->f_files = (fsfilcnt_t)v->n_snaps;
        ret->f_namemax = 255;
        ret->f_flag = ST_RDONLY;
        fs_view_unref(fs, v);
        return 0;
}
