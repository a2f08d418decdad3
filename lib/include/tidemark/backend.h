#pragma once
/*
 * backend: where repository objects live. A handful of calls over object
 * names such as "config", "keys/<hex>", "data/ab/<hex>", "index/<hex>",
 * "snapshots/<hex>", "locks/<hex>". Implementations: a local directory (this
 * file), S3 (later). Names never contain "..", never start with '/'.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/core.h>

typedef struct tm_backend tm_backend;

/**
 * tm_backend_open_local() - a repository in a local directory. With create,
 * the directory (and its parents) is made if missing.
 * Writes are atomic and durable: temp file in the target directory, write,
 * fsync, rename, fsync of the directory. Readers never see a partial object.
 * Returns 0, -ENOENT (no such directory and !create), -ENOTDIR, -errno.
 * Thread-safety: every call may be made from any thread concurrently.
 */
int tm_backend_open_local(const char *path, int create, tm_backend **ret);
void tm_backend_free(tm_backend *b);
/* Human-readable location for messages ("/srv/repo"). Borrowed. */
const char *tm_backend_location(const tm_backend *b);

/* Store an object atomically (replaces an existing one). Returns 0,
 * -ENOSPC (full; nothing is left behind), -EACCES, -EIO, -EINVAL (bad name). */
int tm_backend_put(tm_backend *b, const char *name, const void *p, size_t n);
/* Store only if absent (O_EXCL semantics): -EEXIST if it exists. For locks. */
int tm_backend_put_new(tm_backend *b, const char *name, const void *p, size_t n);
/* Read a whole object (at most limit bytes, else -E2BIG) into ret (replaced). */
int tm_backend_get(tm_backend *b, const char *name, size_t limit, tm_buf *ret);
/* Read exactly len bytes at off into ret (replaced). -EBADMSG if the object is
 * shorter (truncated), -ENOENT if missing. */
int tm_backend_get_range(tm_backend *b, const char *name, uint64_t off, size_t len, tm_buf *ret);
/* Size of an object, or -ENOENT. */
int tm_backend_head(tm_backend *b, const char *name, uint64_t *ret_size);
/* Call fn for every object under a prefix directory ("data/", "index/",
 * "keys/"...), recursing into subdirectories; names are full object names.
 * Temp files of interrupted writes are skipped. A non-zero return from fn
 * stops the listing and is returned. */
typedef int (*tm_backend_list_fn)(const char *name, uint64_t size, void *userdata);
int tm_backend_list(tm_backend *b, const char *prefix, tm_backend_list_fn fn, void *userdata);
/* Delete an object. Returns 0 or -ENOENT, -errno. */
int tm_backend_remove(tm_backend *b, const char *name);
/* Remove temp files left by interrupted writes older than age_s seconds.
 * Returns the number removed or -errno. */
int tm_backend_clean_temp(tm_backend *b, int64_t age_s);
