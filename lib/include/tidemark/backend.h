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

/* Counters of an S3 backend (zero for other backends). */
struct tm_backend_stats {
        uint64_t requests; /* HTTP requests sent, retries included */
        uint64_t retries;  /* requests that were retried */
};
/* Fill ret with b's counters. Returns 0 or -EINVAL. */
int tm_backend_get_stats(const tm_backend *b, struct tm_backend_stats *ret);

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
