#pragma once
/*
 * repo: a repository on a backend, opened with a passphrase. Owns the
 * backend, the master key, the chunker and the catalog cache, and is the
 * only module that knows the object layout:
 *   config, keys/<id>, data/<2 hex>/<pack id>, index/<id>, snapshots/<id>,
 *   locks/<id>
 * Everything above it (backup, restore, check, prune, the programs) goes
 * through these calls.
 *
 * Thread-safety: a tm_repo may be shared by threads for reads (blob and tree
 * loads, catalog queries); writes of new objects are thread-safe too.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/backend.h>
#include <tidemark/catalog.h>
#include <tidemark/chunker.h>
#include <tidemark/compress.h>
#include <tidemark/core.h>
#include <tidemark/crypto.h>
#include <tidemark/index.h>
#include <tidemark/pack.h>
#include <tidemark/snapshot.h>
#include <tidemark/tree.h>

typedef struct tm_repo tm_repo;
struct tm_config;
struct tm_tier_set;

struct tm_repo_opts {
        const char *location; /* local path (s3: later) */
        const char *password; /* not NUL-terminated necessarily */
        size_t password_len;
        const char *catalog_path;         /* NULL: $TIDEMARK_CATALOG or ~/.cache/tidemark/<repo
                                             id>/catalog.db */
        struct tm_kdf_params kdf;         /* init and key add */
        struct tm_chunker_params chunker; /* init */
        int compression_level;            /* init: stored in config; 0 = none */
        /* The config file's [tier.*] sections (NULL: none): packs may live in
         * warm/cold/archive tiers besides location, see tier.h. Borrowed
         * during init/open only. */
        const struct tm_config *config;
        /* Reading a pack that sits archived (S3 GLACIER/DEEP_ARCHIVE): 0 waits
         * for the thaw it requests, 1 fails with -EAGAIN at once (the
         * filesystem). */
        int thaw_nowait;
};
#define TM_REPO_OPTS_INIT                                                           \
        (struct tm_repo_opts)                                                       \
        {                                                                           \
                .kdf = TM_KDF_PARAMS_DEFAULT, .chunker = TM_CHUNKER_PARAMS_DEFAULT, \
                .compression_level = TM_COMPRESS_LEVEL_DEFAULT                      \
        }

/**
 * tm_repo_init() - create a new repository at opts->location: config (with a
 * fresh repository id and chunker secret), the first key, and the directory
 * layout. Returns 0, -EEXIST (a repository is already there), -errno.
 */
int tm_repo_init(const struct tm_repo_opts *opts, tm_repo **ret);
/**
 * tm_repo_open() - open an existing repository. Returns 0, -ENOENT (no
 * repository there), -EACCES (no key opens with this passphrase; nothing was
 * written), -EPERM (the storage refused our credentials, logged), -EBADMSG
 * (config corrupt), -EINVAL (bad [tier.*] section, logged as FILE:LINE),
 * -errno.
 */
int tm_repo_open(const struct tm_repo_opts *opts, tm_repo **ret);
void tm_repo_free(tm_repo *repo);

const char *tm_repo_id(const tm_repo *repo);       /* hex; borrowed */
const char *tm_repo_location(const tm_repo *repo); /* borrowed */
tm_backend *tm_repo_backend(tm_repo *repo);        /* borrowed */
/* The storage tiers the repository was opened with (borrowed; never NULL,
 * n_configured 0 without tiers). */
const struct tm_tier_set *tm_repo_tiers(const tm_repo *repo);
tm_catalog *tm_repo_catalog(tm_repo *repo);        /* borrowed; refreshed */
const tm_key *tm_repo_key(const tm_repo *repo);    /* borrowed */
const tm_chunker *tm_repo_chunker(const tm_repo *repo);
int tm_repo_compression_level(const tm_repo *repo);
const char *tm_repo_catalog_path(const tm_repo *repo);

/* ---- keys ---- */
struct tm_key_info {
        tm_id id;
        char host[256];
        char username[64];
        int64_t created;
        char alg[16];
        int current; /* the key this handle was opened with */
};
int tm_repo_key_list(tm_repo *repo, struct tm_key_info **ret, size_t *ret_n);
/* Add a key for another passphrase. */
int tm_repo_key_add(tm_repo *repo, const char *pass, size_t passlen, tm_id *ret_id);
/* Remove a key: -EBUSY for the key in use, -ENOENT. */
int tm_repo_key_remove(tm_repo *repo, const tm_id *key_id);
/* Change the passphrase of the key in use (adds the new key, then removes the old). */
int tm_repo_key_passwd(tm_repo *repo, const char *pass, size_t passlen, tm_id *ret_id);

/* ---- catalog ---- */
/* Bring the catalog up to date with the backend's index/ and snapshots/
 * (new ones ingested, deleted ones dropped). Called by open; call again to
 * see other writers' snapshots. */
int tm_repo_refresh(tm_repo *repo);
/* Drop and rebuild the catalog from the backend. */
int tm_repo_catalog_rebuild(tm_repo *repo);
/* Adopt packs in data/ that no index file lists (left by an interrupted
 * backup): read their trailers and write an index file for them. Returns the
 * number adopted. */
int tm_repo_adopt_orphan_packs(tm_repo *repo);
/* Rebuild every index file from the pack trailers in data/ (under the
 * exclusive lock): write the new index, then delete the old ones, then
 * rebuild the catalog. Returns the number of packs indexed, or -EBADMSG when
 * some pack trailers were unreadable (those packs are left out and named). */
int tm_repo_index_rebuild(tm_repo *repo);

/* ---- objects ---- */
/* Name of a pack object: "data/ab/<hex>" into out (>= 72 bytes). */
void tm_repo_pack_name(const tm_id *pack_id, char *out, size_t n);
/* Store a finished pack file and record it in the catalog (not yet in an
 * index file). */
int tm_repo_pack_save(tm_repo *repo, const tm_id *pack_id, uint8_t type, const tm_buf *file,
                      const struct tm_pack_entry *entries, size_t n);
/* Write an index file for the given packs and record it. */
int tm_repo_index_save(tm_repo *repo, const struct tm_index *idx, tm_id *ret_id);
/* Is a blob stored? 1 yes, 0 no. */
int tm_repo_blob_has(tm_repo *repo, const tm_id *id);
/* Load, verify and decompress a blob. Returns 0, -ENOENT (unknown id),
 * -EBADMSG (integrity failure; logged once with pack and blob id). */
int tm_repo_blob_load(tm_repo *repo, const tm_id *id, tm_buf *ret);
/**
 * tm_repo_blob_foreach_dedup() - the blobs a new backup may reference
 * instead of storing them again: fn once per blob, with its warmest location,
 * skipping blobs that are stored only in cold or archive packs (a backup
 * writes a fresh hot copy of those, so a recent snapshot never waits for a
 * thaw). Without tiers, every location of every blob (as
 * tm_catalog_blob_foreach). ret_archived_only (may be NULL) gets the number
 * skipped. Returns 0, fn's non-zero return, -errno.
 */
int tm_repo_blob_foreach_dedup(tm_repo *repo, tm_catalog_blob_fn fn, void *userdata,
                               uint64_t *ret_archived_only);
/* Load one blob from a known location. */
int tm_repo_blob_load_at(tm_repo *repo, const tm_id *pack_id, const struct tm_pack_entry *e,
                         tm_buf *ret);
/* Where blob id is read from (its warmest copy). Returns 0, -ENOENT. */
int tm_repo_blob_locate(tm_repo *repo, const tm_id *id, tm_id *ret_pack,
                        struct tm_pack_entry *ret);
/* How many of es[0..n) (entries of one pack) can be read with one ranged
 * read: in ascending order without overlap, each at most max_gap bytes past
 * the end of the one before, all within max_span bytes from the first's
 * offset. At least 1 when n > 0 (a single blob may exceed max_span). */
size_t tm_repo_blob_run_len(const struct tm_pack_entry *es, size_t n, size_t max_span,
                            size_t max_gap);
/**
 * tm_repo_blob_load_run() - load the n blobs es of pack_id (in ascending
 * order, not overlapping) with one ranged read of the bytes from the first
 * to the end of the last, gaps included (one request on S3 instead of n),
 * and call fn with each verified plaintext in order (i: its index in es;
 * plain is reused for the next blob). An archived pack is thawed as for
 * tm_repo_blob_load_at. Returns 0, -EINVAL (es out of order or
 * overlapping), -EBADMSG (a blob fails verification: fn has seen the ones
 * before it; or the pack is truncated), fn's negative return, -errno.
 */
typedef int (*tm_repo_blob_fn)(size_t i, const tm_buf *plain, void *userdata);
int tm_repo_blob_load_run(tm_repo *repo, const tm_id *pack_id, const struct tm_pack_entry *es,
                          size_t n, tm_repo_blob_fn fn, void *userdata);
/* Load and decode a tree blob. */
int tm_repo_tree_load(tm_repo *repo, const tm_id *tree_id, struct tm_tree *ret);

/* ---- snapshots ---- */
/* Seal and store a manifest; sets s->id; records it in the catalog. */
int tm_repo_snapshot_save(tm_repo *repo, struct tm_snapshot *s);
/* Read one manifest from the backend. */
int tm_repo_snapshot_load(tm_repo *repo, const tm_id *id, struct tm_snapshot *ret);
/* Delete a snapshot manifest (forget). */
int tm_repo_snapshot_remove(tm_repo *repo, const tm_id *id);
/* All snapshots, or one component's (NULL: all), oldest first. ret is an
 * array of n snapshots; free with tm_snapshot_array_free(). */
int tm_repo_snapshot_list(tm_repo *repo, const char *component, struct tm_snapshot **ret,
                          size_t *ret_n);
void tm_snapshot_array_free(struct tm_snapshot *a, size_t n);
/**
 * tm_repo_snapshot_find() - resolve what a user typed: a hex id prefix,
 * "latest", or "@TIME" (latest snapshot at or before TIME). component may be
 * NULL (any). Returns 0, -ENOENT (none matches), -EINVAL (bad time or
 * text), -EEXIST (ambiguous id prefix).
 */
int tm_repo_snapshot_find(tm_repo *repo, const char *spec, const char *component,
                          struct tm_snapshot *ret);

/* ---- walking ---- */
/* Visit every node under a tree, depth-first in name order; path is the
 * slash-joined path relative to the root ("a/b/c"). fn returns non-zero to
 * stop; 1 from a directory means "do not descend". */
typedef int (*tm_repo_walk_fn)(const char *path, const struct tm_node *node, void *userdata);
int tm_repo_walk(tm_repo *repo, const tm_id *tree_id, tm_repo_walk_fn fn, void *userdata);
/* Resolve a path inside a snapshot's tree. ret gets a copy of the node; for
 * "" or "/" a synthetic directory node with subtree = root. -ENOENT. */
int tm_repo_lookup_path(tm_repo *repo, const tm_id *root, const char *path, struct tm_node *ret);

/* ---- locks ---- */
/* Prune takes the exclusive lock; backups register as writers so that a
 * prune waits for them. See docs/format.md "Locks". */
typedef struct tm_lock tm_lock;
int tm_repo_lock_exclusive(tm_repo *repo, int64_t wait_s, tm_lock **ret);
int tm_repo_lock_writer(tm_repo *repo, int64_t wait_s, tm_lock **ret);
void tm_lock_release(tm_lock *lock);
