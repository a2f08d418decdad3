#pragma once
/*
 * catalog: the SQLite cache of what programs ask often (snapshots by
 * component and time, blob -> pack location, packs, index files seen, job
 * history). It is only a cache: deleting it loses nothing; the repo module
 * rebuilds it from the backend. sqlite3 is used here and nowhere else.
 *
 * Thread-safety: one tm_catalog may be used from several threads; calls are
 * serialized by an internal mutex.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/core.h>
#include <tidemark/pack.h>
#include <tidemark/snapshot.h>

typedef struct tm_catalog tm_catalog;

/**
 * tm_catalog_open() - open or create the catalog at path (WAL mode, schema
 * created or checked). Returns 0, -EBADMSG when the file is not a usable
 * catalog (corrupt, wrong schema version): the caller deletes and rebuilds;
 * -EIO, -ENOMEM.
 */
int tm_catalog_open(const char *path, tm_catalog **ret);
void tm_catalog_free(tm_catalog *cat);
/* Delete the catalog file and its -wal/-shm companions. */
int tm_catalog_destroy(const char *path);

int tm_catalog_begin(tm_catalog *cat);
int tm_catalog_commit(tm_catalog *cat);
int tm_catalog_rollback(tm_catalog *cat);

/* Small key/value table (repository id, sync markers). get: -ENOENT if absent;
 * *ret is malloc'd. */
int tm_catalog_meta_get(tm_catalog *cat, const char *key, char **ret);
int tm_catalog_meta_set(tm_catalog *cat, const char *key, const char *value);

/* Index files already ingested. */
int tm_catalog_index_has(tm_catalog *cat, const tm_id *index_id);
int tm_catalog_index_add(tm_catalog *cat, const tm_id *index_id);
int tm_catalog_index_remove(tm_catalog *cat, const tm_id *index_id);
typedef int (*tm_catalog_id_fn)(const tm_id *id, void *userdata);
int tm_catalog_index_foreach(tm_catalog *cat, tm_catalog_id_fn fn, void *userdata);

/* Packs: id, blob type, size. Adding an existing pack is not an error. */
int tm_catalog_pack_add(tm_catalog *cat, const tm_id *pack_id, uint8_t type, uint64_t size);
int tm_catalog_pack_has(tm_catalog *cat, const tm_id *pack_id);
/* Remove a pack and every blob location in it. */
int tm_catalog_pack_remove(tm_catalog *cat, const tm_id *pack_id);
typedef int (*tm_catalog_pack_fn)(const tm_id *pack_id, uint8_t type, uint64_t size,
                                  void *userdata);
int tm_catalog_pack_foreach(tm_catalog *cat, tm_catalog_pack_fn fn, void *userdata);

/* Blob locations. A blob may be in several packs; find returns one. */
int tm_catalog_blob_add(tm_catalog *cat, const tm_id *pack_id, const struct tm_pack_entry *e);
/* Returns 0 and fills *ret_pack and *ret, or -ENOENT. */
int tm_catalog_blob_find(tm_catalog *cat, const tm_id *blob_id, tm_id *ret_pack,
                         struct tm_pack_entry *ret);
/* Every location of a blob (at most max, in pack id order): ret_packs[i]
 * and ret[i] for i < *ret_n. Storage tiers pick the warmest copy.
 * Returns 0, -ENOENT, -EINVAL, -errno. */
int tm_catalog_blob_find_all(tm_catalog *cat, const tm_id *blob_id, tm_id *ret_packs,
                             struct tm_pack_entry *ret, size_t max, size_t *ret_n);
typedef int (*tm_catalog_blob_fn)(const tm_id *blob_id, const tm_id *pack_id,
                                  const struct tm_pack_entry *e, void *userdata);
int tm_catalog_blob_foreach(tm_catalog *cat, tm_catalog_blob_fn fn, void *userdata);
/* Entries of one pack, in offset order. */
int tm_catalog_blob_foreach_in_pack(tm_catalog *cat, const tm_id *pack_id, tm_catalog_blob_fn fn,
                                    void *userdata);
int tm_catalog_blob_count(tm_catalog *cat, uint64_t *ret);

/* Snapshots (the decoded manifest is stored, so listing needs no backend I/O). */
int tm_catalog_snapshot_add(tm_catalog *cat, const struct tm_snapshot *s);
int tm_catalog_snapshot_remove(tm_catalog *cat, const tm_id *snap_id);
int tm_catalog_snapshot_has(tm_catalog *cat, const tm_id *snap_id);
/* Load one by id; -ENOENT. */
int tm_catalog_snapshot_get(tm_catalog *cat, const tm_id *snap_id, struct tm_snapshot *ret);
/* All snapshots (component NULL) or one component's, oldest first. fn gets a
 * borrowed snapshot valid during the call. */
typedef int (*tm_catalog_snapshot_fn)(const struct tm_snapshot *s, void *userdata);
int tm_catalog_snapshot_foreach(tm_catalog *cat, const char *component, tm_catalog_snapshot_fn fn,
                                void *userdata);

/* Drop every row (before a rebuild). */
int tm_catalog_clear(tm_catalog *cat);
