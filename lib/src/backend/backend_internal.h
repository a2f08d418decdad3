#pragma once
/*
 * Internals of the backend module: the driver vtable behind tm_backend.
 *
 * backend.c owns the public tm_backend_* functions: it validates object names
 * once (so drivers may assume a clean relative name) and dispatches to the
 * driver. A driver (local.c; s3.c later) fills a struct tm_backend_ops and
 * allocates a struct that begins with struct tm_backend.
 *
 * Every op returns 0 (or a documented count) or a negative errno with the
 * same meaning as the public call; every op may be called from any thread
 * concurrently.
 */
#include <tidemark/backend.h>

struct tm_backend_ops {
        const char *kind; /* "local", "s3": for messages */
        int (*put)(tm_backend *b, const char *name, const void *p, size_t n);
        int (*put_new)(tm_backend *b, const char *name, const void *p, size_t n);
        int (*get)(tm_backend *b, const char *name, size_t limit, tm_buf *ret);
        int (*get_range)(tm_backend *b, const char *name, uint64_t off, size_t len, tm_buf *ret);
        int (*head)(tm_backend *b, const char *name, uint64_t *ret_size);
        /* prefix is "" (everything) or a validated name without trailing '/' */
        int (*list)(tm_backend *b, const char *prefix, tm_backend_list_fn fn, void *userdata);
        int (*remove)(tm_backend *b, const char *name);
        int (*clean_temp)(tm_backend *b, int64_t age_s);
        /* Make an archived object readable (NULL: every object always is).
         * 0 readable now, 1 restore in progress. */
        int (*thaw)(tm_backend *b, const char *name, const char *retrieval, int days);
        /* Free the driver's struct (b is never NULL here). */
        void (*free)(tm_backend *b);
        /* Borrowed, valid until free. */
        const char *(*location)(const tm_backend *b);
};

/* The common head of every driver's struct. */
struct tm_backend {
        const struct tm_backend_ops *ops;
};

/*
 * tm_backend__name_valid() - whether name is an acceptable object name:
 * non-empty, relative, components separated by single '/', no empty, "." or
 * ".." component, no component starting with '.' (reserved for temp files),
 * no trailing '/', shorter than PATH_MAX. Returns 1 or 0.
 */
int tm_backend__name_valid(const char *name);
