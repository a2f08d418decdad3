#pragma once
/*
 * tidemark-fs: the time-travel filesystem (libfuse3 low-level API).
 *
 *   /latest -> @<newest recovery point>
 *   /@YYYY-MM-DDTHH:MM:SSZ/<component>/...   every recovery point; any other
 *                                            instant resolves on lookup
 *   /.snapshots/<snapshot id>/...            one exact snapshot
 *   /.history/<component>/<path>/@T          every version of one file
 *
 * The logic lives in fs_do_*() functions (fs_lookup.c) that never reply and
 * are unit-tested without a kernel; fs_ops.c holds the fs_op_*() adapters
 * that reply exactly once. Inodes are keys into a node table (fs_nodes.c)
 * with explicit lookup counts; decoded blobs live in a bounded LRU cache
 * with a small read-ahead pool (fs_cache.c); the list of snapshots is a
 * refcounted view (fs_view.c) swapped on refresh.
 *
 * Thread-safety: everything here may be called from any FUSE worker thread
 * unless said otherwise. Lock order: view lock, nodes lock, node lock, cache
 * lock. No lock is held across a reply or across backend I/O.
 */
#define FUSE_USE_VERSION 312
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <fuse_lowlevel.h>

#include <tidemark/core.h>
#include <tidemark/repo.h>
#include <tidemark/tree.h>

/* ---- view: the snapshots the mount currently knows (fs_view.c) ---- */

struct fs_snap {
        tm_id id;
        tm_id tree;
        int64_t time; /* ns */
        char *component;
        int is_pg; /* a PostgreSQL base backup: shown as a PGDATA that recovers (fs_pg.c) */
};

struct fs_view {
        unsigned refs;         /* under fs->view_lock */
        struct fs_snap *snaps; /* oldest first */
        size_t n_snaps;
        int64_t *instants; /* distinct snapshot times floored to the second, ascending (ns) */
        size_t n_instants;
        char **components; /* distinct, sorted */
        size_t n_components;
};

/* Build a view from a snapshot list (copied). Returns 0, -ENOMEM.
 * Ownership: *ret has one reference; fs_view_unref() frees it. */
int fs_view_new(const struct tm_snapshot *a, size_t n, struct fs_view **ret);
/* Free a view that nobody shares (refs == 0 or 1); NULL-safe. */
void fs_view_free(struct fs_view *v);
/* Parse a directory name "@<instant>" into the last nanosecond it covers:
 * "@2025-01-07" is the end of that day, "@2025-01-07T10:17" the end of that
 * minute. Returns 0, -ENOENT (not an instant: no such directory). */
int fs_instant_parse(const char *name, int64_t *ret_bound);
/* "@2025-01-07T10:00:00Z" for an instant (ns) into out (>= 22 bytes). */
void fs_instant_format(int64_t ns, char *out, size_t n);
/* For each component, the index of its latest snapshot at or before bound,
 * in component order. ret_idx must hold v->n_components entries. Returns
 * the number found (0: nothing at or before bound). */
size_t fs_view_resolve(const struct fs_view *v, int64_t bound, size_t *ret_idx);
/* Index of the snapshot with this id, or -ENOENT. */
int fs_view_find_id(const struct fs_view *v, const tm_id *id, size_t *ret);
/* Is the component in the view? */
int fs_view_has_component(const struct fs_view *v, const char *component);

/* ---- history grouping (fs_view.c) ---- */

/* One snapshot's version of a file, oldest first. */
struct fs_hist_in {
        int64_t time;
        const struct tm_node *node; /* a regular file node */
};
/* Choose the versions of a file from its occurrences in a component's
 * snapshots (sorted by time): a new version starts whenever the content list
 * differs from the previous version's; two versions whose first snapshots
 * fall in the same second keep the later one (its name would collide).
 * ret_idx (n entries) gets the indices into in of the first occurrence of
 * each version. Returns the number of versions. */
size_t fs_history_group(const struct fs_hist_in *in, size_t n, size_t *ret_idx);

/* ---- blob cache (fs_cache.c) ---- */

typedef int (*fs_blob_loader)(void *userdata, const tm_id *id, tm_buf *ret);

struct fs_blob {
        tm_id id;
        tm_buf data;
        /* private to fs_cache.c */
        int state, err;
        unsigned refs;
        int in_hash;
        struct fs_blob *hnext, *prev, *next;
};

struct fs_cache;

/* A cache of at most limit bytes of decoded blobs, loading through loader,
 * with n_threads read-ahead workers (0: no read-ahead). Returns 0, -ENOMEM,
 * -errno (threads). */
int fs_cache_new(fs_blob_loader loader, void *userdata, size_t limit, int n_threads,
                 struct fs_cache **ret);
/* Stop the workers and free everything; no blob may still be held. NULL-safe. */
void fs_cache_free(struct fs_cache *c);
/* Get a blob, loading it once even if several threads ask together. A blob
 * that failed verification (-EBADMSG) stays failed: later calls return
 * -EBADMSG at once, and it is logged once. Other errors are not cached.
 * Ownership: *ret is held until fs_cache_put(). */
int fs_cache_get(struct fs_cache *c, const tm_id *id, struct fs_blob **ret);
void fs_cache_put(struct fs_cache *c, struct fs_blob *b);
/* Queue a background load (dropped when the queue is full or the blob is
 * already cached). */
void fs_cache_prefetch(struct fs_cache *c, const tm_id *id);
/* Bytes held and entries, for tests and statistics. */
void fs_cache_stats(struct fs_cache *c, size_t *ret_bytes, size_t *ret_entries,
                    uint64_t *ret_loads);

/* ---- the node table (fs_nodes.c) ---- */

enum fs_kind {
        FS_ROOT = 1,  /* / */
        FS_LATEST,    /* /latest */
        FS_SNAPDIR,   /* /.snapshots */
        FS_HISTDIR,   /* /.history */
        FS_INSTANT,   /* /@T */
        FS_TREE,      /* a node inside a snapshot (or a snapshot root, or a version) */
        FS_HIST_PATH, /* /.history/<component>/<dir path> */
        FS_HIST_FILE, /* /.history/<component>/<file path>: one entry per version */
};

#define FS_INO_ROOT    1
#define FS_INO_LATEST  2
#define FS_INO_SNAPDIR 3
#define FS_INO_HISTDIR 4
#define FS_INO_FIRST   16

struct fs_version {
        char name[24]; /* @T */
        struct tm_node node;
};

struct fs_node {
        fuse_ino_t ino;
        enum fs_kind kind;
        int permanent; /* root and the fixed entries: never freed by forget */
        /* under the nodes lock */
        uint64_t nlookup;
        unsigned refs;
        fuse_ino_t parent;
        char *name;
        int in_names;
        struct fs_node *ino_next, *name_next;
        /* immutable after creation */
        struct tm_node meta;   /* FS_TREE: the entry; others: synthetic */
        tm_id root;            /* FS_TREE: root tree of its snapshot (zero: none) */
        struct fs_snap *snaps; /* FS_INSTANT: resolved; FS_HIST_*: the component's */
        size_t n_snaps;
        char *path;                  /* FS_HIST_*: path inside the component */
        struct fs_version *versions; /* FS_HIST_FILE */
        size_t n_versions;
        int64_t bound; /* FS_INSTANT: the last nanosecond its name covers */
        /* FS_TREE: the root of a PostgreSQL base backup under @T, whose
         * listing gets the recovery settings for this instant (0: none) */
        int64_t pg_target;
        /* FS_TREE directories: children, loaded once on demand */
        pthread_mutex_t lock;
        struct tm_tree *children;
};

struct fs_nodes;

/* An empty table holding the permanent nodes. Returns 0, -ENOMEM. */
int fs_nodes_new(struct fs_nodes **ret);
void fs_nodes_free(struct fs_nodes *t);
/* A new unlinked node of this kind (no ino yet). Returns NULL on ENOMEM. */
struct fs_node *fs_node_new(enum fs_kind kind);
/* Free a node that is not in a table. NULL-safe. */
void fs_node_free(struct fs_node *n);
/* Take a reference on the node with this ino. Returns 0, -ESTALE (unknown
 * ino: logged as a bug). */
int fs_nodes_get(struct fs_nodes *t, fuse_ino_t ino, struct fs_node **ret);
void fs_nodes_put(struct fs_nodes *t, struct fs_node *n);
/*
 * The lookup step of an entry reply: if (parent, name) maps to a node that
 * still_valid() accepts (NULL: always), bump its nlookup and return it (the
 * candidate is freed). Otherwise insert candidate under (parent, name) with
 * nlookup 1 and a fresh ino, replacing any previous mapping. In both cases
 * *ret is borrowed and stays valid until the matching forget. candidate may
 * be NULL to only look for an existing mapping (-ENOENT if none).
 */
int fs_nodes_link(struct fs_nodes *t, fuse_ino_t parent, const char *name,
                  struct fs_node *candidate,
                  int (*still_valid)(const struct fs_node *existing, const struct fs_node *cand),
                  struct fs_node **ret);
/* Bump the lookup count of a node already held (permanent nodes ignore it). */
void fs_nodes_ref_lookup(struct fs_nodes *t, struct fs_node *n);
/* Drop n lookups; the node is freed at 0 (once no thread holds it).
 * Returns the number of nodes left in the table. */
size_t fs_nodes_forget(struct fs_nodes *t, fuse_ino_t ino, uint64_t n);
/* Number of nodes in the table (permanent ones included). */
size_t fs_nodes_count(struct fs_nodes *t);

/* ---- the filesystem (fs_lookup.c) ---- */

struct fs {
        tm_repo *repo; /* thread-safe */
        struct fs_nodes *nodes;
        struct fs_cache *cache;
        double ttl_snapshot; /* inside a snapshot nothing changes */
        double ttl_root;     /* root, latest, .snapshots, .history, @T */
        int64_t refresh_ns;  /* re-list snapshots at most this often */
        int readahead;       /* blobs to read ahead on sequential reads */
        int64_t mount_time;
        uint64_t repo_bytes; /* for statfs */
        /* the current view */
        pthread_mutex_t view_lock;
        struct fs_view *view;
        int64_t view_time; /* monotonic ns of the last refresh */
        pthread_mutex_t refresh_lock;
        /* PostgreSQL components: the restore_command of @T/<component>/
         * runs pg_exe (the tidemark program) -r pg_repo [--password-file
         * pg_password_file]; pg_exe NULL shows base backups as they are */
        char *pg_exe, *pg_repo, *pg_password_file;
        /* blobs made up here (recovery settings), served by fs_load_blob() */
        pthread_mutex_t synth_lock;
        struct fs_synth *synth;
        size_t n_synth;
        /* the node count at the last heap trim, or its high-water mark
         * since (fs_do_forget; atomic) */
        size_t trim_mark;
};

struct fs_synth {
        tm_id id;
        tm_buf data;
};

/* Set up a filesystem over an open repository (borrowed) and a cache
 * (borrowed; may be NULL until the loop starts). Lists the snapshots.
 * Returns 0, -errno. */
int fs_init(struct fs *fs, tm_repo *repo, struct fs_cache *cache);
void fs_dispose(struct fs *fs);
/* The loader for fs_cache_new(): tm_repo_blob_load() on userdata (a tm_repo). */
int fs_repo_blob_loader(void *userdata, const tm_id *id, tm_buf *ret);
/* The same with the blobs this filesystem made up first; userdata: the fs. */
int fs_load_blob(void *userdata, const tm_id *id, tm_buf *ret);

/* ---- PostgreSQL base backups as PGDATAs that recover (fs_pg.c) ---- */

/* Register made-up content (copied); ret gets its id (a hash of it, in a
 * space no repository blob uses). Returns 0, -ENOMEM. */
int fs_synth_add(struct fs *fs, const void *p, size_t n, tm_id *ret);
/* Copy a made-up blob into ret, or -ENOENT. */
int fs_synth_get(struct fs *fs, const tm_id *id, tm_buf *ret);
void fs_synth_dispose(struct fs *fs);
/* The listing t of the root of base backup `component` shown under an
 * instant: postgresql.auto.conf gets restore_command and, unless nothing
 * was committed after it, recovery_target_time = target and
 * recovery_target_action = promote (tm_pg_plan_pitr), and recovery.signal
 * appears (empty, the owner of postgresql.auto.conf). An instant outside
 * the recoverable window leaves t as it is (logged). Returns 0, -ENOMEM,
 * -EIO (postgresql.auto.conf unreadable). */
int fs_pg_decorate(struct fs *fs, const char *component, int64_t target, struct tm_tree *t);
/* Re-list the snapshots now (tm_repo_refresh + list). Returns 0, -errno
 * (the old view stays). */
int fs_refresh(struct fs *fs);
/* The current view, referenced; release with fs_view_unref(). */
struct fs_view *fs_view_ref(struct fs *fs);
void fs_view_unref(struct fs *fs, struct fs_view *v);

/* A directory listing made at opendir. */
struct fs_dirent {
        char *name;
        mode_t type; /* S_IFDIR, ... */
        fuse_ino_t ino_hint;
};
struct fs_dir {
        fuse_ino_t ino; /* the directory */
        int plus;       /* readdirplus may look entries up (cheap here) */
        struct fs_dirent *ents;
        size_t n, cap;
};
void fs_dir_free(struct fs_dir *d);

/* An open file. */
struct fs_file {
        struct fs_node *node; /* held (fs_nodes_get) */
        uint64_t *ends;       /* ends[i] = end offset of content blob i */
        size_t n;
        pthread_mutex_t lock;
        uint64_t next_off; /* where a sequential read continues */
        size_t prefetched; /* blobs below this index were queued for read-ahead */
};

/* Each returns 0 or -errno and never replies. */
int fs_do_lookup(struct fs *fs, fuse_ino_t parent, const char *name, struct fuse_entry_param *ret);
void fs_do_forget(struct fs *fs, fuse_ino_t ino, uint64_t nlookup);
int fs_do_getattr(struct fs *fs, fuse_ino_t ino, struct stat *ret, double *ret_ttl);
/* *ret is a malloc'd target. */
int fs_do_readlink(struct fs *fs, fuse_ino_t ino, char **ret);
int fs_do_opendir(struct fs *fs, fuse_ino_t ino, struct fs_dir **ret);
/* Fill buf with entries from off on; *ret_len bytes used. */
int fs_do_readdir(struct fs *fs, fuse_req_t req, struct fs_dir *d, off_t off, char *buf,
                  size_t size, size_t *ret_len);
/* readdirplus: each entry but "." and ".." is looked up (+1 nlookup, given
 * back when it does not fit). An entry whose lookup fails, and every entry
 * of a directory whose lookups are expensive (d->plus == 0), goes out
 * without attributes (ino 0) so the kernel looks it up itself: an error is
 * never reported after the first entry. */
int fs_do_readdirplus(struct fs *fs, fuse_req_t req, struct fs_dir *d, off_t off, char *buf,
                      size_t size, size_t *ret_len);
int fs_do_open(struct fs *fs, fuse_ino_t ino, int flags, struct fs_file **ret);
void fs_do_release(struct fs *fs, struct fs_file *f);
/* One piece of a read: len bytes at p inside a cached blob (held). */
struct fs_read_seg {
        struct fs_blob *blob;
        const uint8_t *p;
        size_t len;
};
/* A read of up to size bytes at off as pieces of cached blobs, replied
 * without a copy (*ret_n == 0 at the end of the file). -EIO when a blob
 * fails verification or does not have its recorded size: never a part of
 * the read. Needs fs->cache. Release with fs_read_segs_free(). */
int fs_do_read_segs(struct fs *fs, struct fs_file *f, uint64_t off, size_t size,
                    struct fs_read_seg **ret, size_t *ret_n);
void fs_read_segs_free(struct fs *fs, struct fs_read_seg *segs, size_t n);
/* The same, copied: appended to out. */
int fs_do_read(struct fs *fs, struct fs_file *f, uint64_t off, size_t size, tm_buf *out);
/* getxattr: size 0 asks for the length (*ret_len); otherwise the value is
 * copied into buf. -ENODATA, -ERANGE. */
int fs_do_getxattr(struct fs *fs, fuse_ino_t ino, const char *name, char *buf, size_t size,
                   size_t *ret_len);
int fs_do_listxattr(struct fs *fs, fuse_ino_t ino, char *buf, size_t size, size_t *ret_len);
int fs_do_statfs(struct fs *fs, struct statvfs *ret);

/* fs_ops.c: the low-level operations table. */
extern const struct fuse_lowlevel_ops fs_ops;
