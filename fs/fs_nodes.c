/*
 * The node table: fuse_ino_t is a key here, never a cast pointer, so a
 * stale or forged ino from the kernel is caught (ESTALE) instead of being
 * dereferenced. Two chained hashes: by ino, and by (parent ino, name) so a
 * repeated lookup returns the same inode. Inos are never reused (64-bit
 * counter), so the generation stays 0.
 *
 * A node lives while the kernel holds lookups on it (nlookup) or a thread
 * holds it (refs); the last of the two frees it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/log.h>

#include "fs.h"

struct fs_nodes {
        pthread_mutex_t lock;
        struct fs_node **by_ino, **by_name;
        size_t n_buckets, n;
        fuse_ino_t next_ino;
};

static size_t ino_hash(fuse_ino_t ino, size_t nb)
{
        uint64_t x = ino * 0x9e3779b97f4a7c15ull;

        return (size_t)(x >> 17) % nb;
}

static size_t name_hash(fuse_ino_t parent, const char *name, size_t nb)
{
        uint64_t h = 1469598103934665603ull ^ parent;

        for (const unsigned char *p = (const unsigned char *)name; *p; p++)
                h = (h ^ *p) * 1099511628211ull;
        return (size_t)(h ^ (h >> 29)) % nb;
}

struct fs_node *fs_node_new(enum fs_kind kind)
{
        struct fs_node *n = calloc(1, sizeof(*n));

        if (!n)
                return NULL;
        n->kind = kind;
        pthread_mutex_init(&n->lock, NULL);
        return n;
}

void fs_node_free(struct fs_node *n)
{
        if (!n)
                return;
        free(n->name);
        tm_node_dispose(&n->meta);
        for (size_t i = 0; i < n->n_snaps; i++)
                free(n->snaps[i].component);
        free(n->snaps);
        free(n->path);
        for (size_t i = 0; i < n->n_versions; i++)
                tm_node_dispose(&n->versions[i].node);
        free(n->versions);
        if (n->children) {
                tm_tree_dispose(n->children);
                free(n->children);
        }
        pthread_mutex_destroy(&n->lock);
        free(n);
}

static void ino_insert(struct fs_nodes *t, struct fs_node *n)
{
        size_t b = ino_hash(n->ino, t->n_buckets);

        n->ino_next = t->by_ino[b];
        t->by_ino[b] = n;
        t->n++;
}

static void ino_remove(struct fs_nodes *t, struct fs_node *n)
{
        struct fs_node **pp = &t->by_ino[ino_hash(n->ino, t->n_buckets)];

        for (; *pp; pp = &(*pp)->ino_next)
                if (*pp == n) {
                        *pp = n->ino_next;
                        t->n--;
                        return;
                }
}

static void name_insert(struct fs_nodes *t, struct fs_node *n)
{
        size_t b = name_hash(n->parent, n->name, t->n_buckets);

        n->name_next = t->by_name[b];
        t->by_name[b] = n;
        n->in_names = 1;
}

static void name_remove(struct fs_nodes *t, struct fs_node *n)
{
        struct fs_node **pp;

        if (!n->in_names)
                return;
        pp = &t->by_name[name_hash(n->parent, n->name, t->n_buckets)];
        for (; *pp; pp = &(*pp)->name_next)
                if (*pp == n) {
                        *pp = n->name_next;
                        break;
                }
        n->in_names = 0;
}

static struct fs_node *ino_find(struct fs_nodes *t, fuse_ino_t ino)
{
        struct fs_node *n = t->by_ino[ino_hash(ino, t->n_buckets)];

        while (n && n->ino != ino)
                n = n->ino_next;
        return n;
}

static struct fs_node *name_find(struct fs_nodes *t, fuse_ino_t parent, const char *name)
{
        struct fs_node *n = t->by_name[name_hash(parent, name, t->n_buckets)];

        while (n && (n->parent != parent || strcmp(n->name, name) != 0))
                n = n->name_next;
        return n;
}

/* Double the buckets when the table gets dense (under the lock). */
static void maybe_grow(struct fs_nodes *t)
{
        size_t nb = t->n_buckets * 2, old = t->n_buckets;
        struct fs_node **bi, **bn;

        if (t->n < old * 2)
                return;
        bi = calloc(nb, sizeof(*bi));
        bn = calloc(nb, sizeof(*bn));
        if (!bi || !bn) {
                /* keep the dense table: slower, still correct */
                free(bi);
                free(bn);
                return;
        }
        for (size_t i = 0; i < old; i++) {
                struct fs_node *n = t->by_ino[i], *next;

                for (; n; n = next) {
                        size_t b = ino_hash(n->ino, nb);

                        next = n->ino_next;
                        n->ino_next = bi[b];
                        bi[b] = n;
                }
                for (n = t->by_name[i]; n; n = next) {
                        size_t b = name_hash(n->parent, n->name, nb);

                        next = n->name_next;
                        n->name_next = bn[b];
                        bn[b] = n;
                }
        }
        free(t->by_ino);
        free(t->by_name);
        t->by_ino = bi;
        t->by_name = bn;
        t->n_buckets = nb;
}

static int add_permanent(struct fs_nodes *t, fuse_ino_t ino, enum fs_kind kind)
{
        struct fs_node *n = fs_node_new(kind);

        if (!n)
                return -ENOMEM;
        n->ino = ino;
        n->permanent = 1;
        n->nlookup = 1;
        ino_insert(t, n);
        return 0;
}

int fs_nodes_new(struct fs_nodes **ret)
{
        struct fs_nodes *t = calloc(1, sizeof(*t));
        int r = -ENOMEM;

        if (!t)
                return -ENOMEM;
        pthread_mutex_init(&t->lock, NULL);
        t->n_buckets = 1024;
        t->next_ino = FS_INO_FIRST;
        t->by_ino = calloc(t->n_buckets, sizeof(*t->by_ino));
        t->by_name = calloc(t->n_buckets, sizeof(*t->by_name));
        if (!t->by_ino || !t->by_name)
                goto out;
        if ((r = add_permanent(t, FS_INO_ROOT, FS_ROOT)) < 0 ||
            (r = add_permanent(t, FS_INO_LATEST, FS_LATEST)) < 0 ||
            (r = add_permanent(t, FS_INO_SNAPDIR, FS_SNAPDIR)) < 0 ||
            (r = add_permanent(t, FS_INO_HISTDIR, FS_HISTDIR)) < 0)
                goto out;
        *ret = t;
        t = NULL;
        r = 0;
out:
        fs_nodes_free(t);
        return r;
}

void fs_nodes_free(struct fs_nodes *t)
{
        if (!t)
                return;
        for (size_t i = 0; t->by_ino && i < t->n_buckets; i++) {
                struct fs_node *n = t->by_ino[i], *next;

                for (; n; n = next) {
                        next = n->ino_next;
                        fs_node_free(n);
                }
        }
        free(t->by_ino);
        free(t->by_name);
        pthread_mutex_destroy(&t->lock);
        free(t);
}

int fs_nodes_get(struct fs_nodes *t, fuse_ino_t ino, struct fs_node **ret)
{
        struct fs_node *n;

        pthread_mutex_lock(&t->lock);
        n = ino_find(t, ino);
        if (n)
                n->refs++;
        pthread_mutex_unlock(&t->lock);
        if (!n) {
                tm_log(TM_LOG_ERR, "bug: unknown inode %llu from the kernel",
                       (unsigned long long)ino);
                return -ESTALE;
        }
        *ret = n;
        return 0;
}

/* Free a node that nothing references any more (under the lock). */
static void maybe_release(struct fs_nodes *t, struct fs_node *n)
{
        if (n->permanent || n->nlookup > 0 || n->refs > 0)
                return;
        name_remove(t, n);
        ino_remove(t, n);
        fs_node_free(n);
}

void fs_nodes_put(struct fs_nodes *t, struct fs_node *n)
{
        if (!n)
                return;
        pthread_mutex_lock(&t->lock);
        TM_ASSERT(n->refs > 0);
        n->refs--;
        maybe_release(t, n);
        pthread_mutex_unlock(&t->lock);
}

int fs_nodes_link(struct fs_nodes *t, fuse_ino_t parent, const char *name,
                  struct fs_node *candidate,
                  int (*still_valid)(const struct fs_node *existing, const struct fs_node *cand),
                  struct fs_node **ret)
{
        struct fs_node *old;
        char *copy = NULL;
        int r = 0;

        if (candidate) {
                copy = strdup(name);
                if (!copy) {
                        fs_node_free(candidate);
                        return -ENOMEM;
                }
        }
        pthread_mutex_lock(&t->lock);
        old = name_find(t, parent, name);
        if (old && (!candidate || !still_valid || still_valid(old, candidate))) {
                old->nlookup++;
                *ret = old;
                goto out;
        }
        if (!candidate) {
                r = -ENOENT;
                goto out;
        }
        if (old)
                name_remove(t, old); /* stays reachable by ino until forgotten */
        candidate->ino = t->next_ino++;
        candidate->parent = parent;
        candidate->name = copy;
        copy = NULL;
        candidate->nlookup = 1;
        ino_insert(t, candidate);
        name_insert(t, candidate);
        maybe_grow(t);
        *ret = candidate;
        candidate = NULL;
out:
        pthread_mutex_unlock(&t->lock);
        free(copy);
        fs_node_free(candidate);
        return r;
}

void fs_nodes_ref_lookup(struct fs_nodes *t, struct fs_node *n)
{
        pthread_mutex_lock(&t->lock);
        if (!n->permanent)
                n->nlookup++;
        pthread_mutex_unlock(&t->lock);
}

size_t fs_nodes_forget(struct fs_nodes *t, fuse_ino_t ino, uint64_t count)
{
        struct fs_node *n;
        size_t left;

        pthread_mutex_lock(&t->lock);
        n = ino_find(t, ino);
        if (!n) {
                tm_log(TM_LOG_ERR, "bug: forget of unknown inode %llu", (unsigned long long)ino);
        } else if (!n->permanent) {
                if (count > n->nlookup) {
                        tm_log(TM_LOG_ERR, "bug: forget %llu of inode %llu with %llu lookups",
                               (unsigned long long)count, (unsigned long long)ino,
                               (unsigned long long)n->nlookup);
                        count = n->nlookup;
                }
                n->nlookup -= count;
                maybe_release(t, n);
        }
        left = t->n;
        pthread_mutex_unlock(&t->lock);
        return left;
}

size_t fs_nodes_count(struct fs_nodes *t)
{
        size_t n;

        pthread_mutex_lock(&t->lock);
        n = t->n;
        pthread_mutex_unlock(&t->lock);
        return n;
}
