#pragma once
/*
 * backend: where repository objects live. A handful of calls over object
 * names such as "config", "keys/<hex>", "data/ab/<hex>", "index/<hex>",
 * "snapshots/<hex>", "locks/<hex>". Implementations: a local directory and S3
 * (any S3-compatible store). Names never contain "..", never start with '/'.
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

/**
 * struct tm_s3_opts - where and how to reach an S3-compatible bucket.
 * Strings are copied by tm_backend_open_s3(); NULL means the default.
 */
struct tm_s3_opts {
        const char *endpoint;      /* "https://host[:port]" (no path); required */
        const char *bucket;        /* required */
        const char *prefix;        /* key prefix of the repository ("" = bucket root) */
        const char *region;        /* signing region; default "us-east-1" */
        const char *access_key;    /* required */
        const char *secret_key;    /* required */
        const char *session_token; /* sent as x-amz-security-token when set */
        int path_style;            /* 1: host/bucket/key, 0: bucket.host/key */
        const char *ca_file;       /* PEM bundle to trust instead of the system's */
        const char *storage_class; /* x-amz-storage-class on writes (NULL: bucket default) */
        /* Tuning, 0 = default: attempts per request (6), stall timeout in seconds
         * before a transfer that moves no byte is abandoned (30), objects larger
         * than multipart_threshold (64 MiB) are uploaded in parts of part_size
         * (16 MiB; at least 5 MiB on AWS), list page size (1000). */
        int max_attempts;
        int stall_timeout_s;
        size_t multipart_threshold;
        size_t part_size;
        int list_page;
};

/**
 * tm_backend_open_s3() - a repository under a prefix of an S3 bucket.
 * Requests are signed with AWS Signature V4 (libcurl), connections are
 * reused, and 5xx, SlowDown, resets and timeouts are retried with
 * exponential backoff and jitter (each retry is logged). Errors: 404 ->
 * -ENOENT, 403 -> -EACCES, 503/SlowDown after the last attempt -> -EAGAIN,
 * timeouts -> -ETIMEDOUT, anything else -> -EIO. Opening does not contact
 * the server. Returns 0, -EINVAL (missing endpoint, bucket or credentials),
 * -ENOMEM. Thread-safety: every call may be made from any thread.
 */
int tm_backend_open_s3(const struct tm_s3_opts *opts, tm_backend **ret);

/**
 * tm_backend_open_url() - open a location given by the user.
 * "s3:http(s)://host[:port]/bucket[/prefix]" opens S3 (path-style) with the
 * credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
 * AWS_SESSION_TOKEN, region from AWS_REGION or AWS_DEFAULT_REGION, CA file
 * from AWS_CA_BUNDLE; create is ignored there (a bucket is not made).
 * Anything else is a local path, as tm_backend_open_local().
 * Returns 0 or the negative errno of the driver (-EINVAL for a bad URL or
 * missing credentials).
 */
int tm_backend_open_url(const char *location, int create, tm_backend **ret);

/* As tm_backend_open_url(), writing S3 objects with storage_class (NULL or
 * "": the bucket's default) instead of $TIDEMARK_S3_STORAGE_CLASS. */
int tm_backend_open_url_class(const char *location, int create, const char *storage_class,
                              tm_backend **ret);

/* ---- tiered storage ---- */
#define TM_BACKEND_TIERS 4 /* hot, warm, cold, archive */

/* What a tiered backend needs to know of each tier. */
struct tm_backend_tier {
        tm_backend *backend;   /* taken by tm_backend_open_tiered(); NULL: no such tier */
        const char *retrieval; /* thaw tier: "Expedited", "Standard" or "Bulk" (copied) */
        int thaw_days;         /* how long a restored copy stays readable */
};

/**
 * tm_backend_open_tiered() - one backend over the tiers of a repository.
 * Tier 0 (hot, required) holds every object; the others hold only packs
 * ("data/..."), which the tier module moves there. A pack's tier is found
 * by listing the tiers (the first time a pack is asked for) and kept in
 * memory: the object store itself is the record of where a pack lives.
 * Reads go to the warmest tier that holds the pack (a pack is in two tiers
 * only for the moment of a move); writes go to hot; remove deletes the pack
 * from every tier; list("data/") lists each pack once. tm_backend_thaw()
 * restores a pack from its tier. Ownership: the tiers' backends are taken
 * (freed on error too). Returns 0, -EINVAL (no hot tier), -ENOMEM.
 * Thread-safety: as every backend.
 */
int tm_backend_open_tiered(struct tm_backend_tier tiers[TM_BACKEND_TIERS], tm_backend **ret);
/* Whether b is a tiered backend: 1 or 0. */
int tm_backend_is_tiered(const tm_backend *b);
/* The backend of tier i of a tiered backend (borrowed), NULL if absent; for
 * any other backend, b itself for tier 0. */
tm_backend *tm_backend_tier(tm_backend *b, unsigned i);
/* Bit i set: tier i holds the object (looked up by listing or HEAD when not
 * known yet). For an untiered backend: 1 if it exists. Returns 0, -ENOENT
 * (in no tier), -errno. */
int tm_backend_tier_where(tm_backend *b, const char *name, unsigned *ret_mask);
/* Record that the object is now in exactly the tiers of mask (after a move). */
int tm_backend_tier_note(tm_backend *b, const char *name, unsigned mask);
/* Forget what is known of where packs are: the next lookup lists again. */
void tm_backend_tier_forget(tm_backend *b);

/**
 * tm_backend_thaw() - make an archived object (S3 GLACIER / DEEP_ARCHIVE)
 * readable: issue the restore request with retrieval tier retrieval
 * ("Expedited", "Standard", "Bulk"; NULL = Standard) for days days. Reading
 * an archived object that is not restored fails with -ENODATA.
 * Returns 0 (readable now), 1 (restore in progress: poll again), -EINVAL
 * (bad retrieval), -ENOENT, -errno.
 */
int tm_backend_thaw(tm_backend *b, const char *name, const char *retrieval, int days);

/* Counters of an S3 backend (zero for other backends). */
struct tm_backend_stats {
        uint64_t requests; /* HTTP requests sent, retries included */
        uint64_t retries;  /* requests that were retried */
};
/* Fill ret with b's counters. Returns 0 or -EINVAL. */
int tm_backend_get_stats(const tm_backend *b, struct tm_backend_stats *ret);

void tm_backend_free(tm_backend *b);
/* Whether reads of b (or of any tier of a tiered b) cross a network, where
 * latency, not the disk, bounds a reader: 1 or 0. */
int tm_backend_is_remote(tm_backend *b);
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
 * shorter (truncated), -ENOENT if missing. Reads of an archived object that
 * is not thawed (tm_backend_thaw) fail with -ENODATA. */
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
