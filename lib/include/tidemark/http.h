#pragma once
/*
 * http: the service layer every tidemark daemon shares. A daemon declares a
 * route table and writes handlers; one dispatcher (libmicrohttpd) does the
 * rest: routing with {params}, bearer-token roles, body limits, strict JSON
 * parsing, errno -> status mapping, a JSON access-log line per request and a
 * tamper-evident audit log of mutating requests (tidemark/audit.h).
 *
 * Errors go out as {"error": "..."} with the status from this table:
 * EINVAL/EPROTO 400, EACCES 401, EPERM 403, ENOENT 404, EEXIST/EBUSY 409,
 * E2BIG 413, EAGAIN 503 (+ Retry-After), anything else 500 with a generic
 * text (the detail goes to the log with the request id).
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <tidemark/audit.h>

enum tm_role { TM_ROLE_NONE = 0, TM_ROLE_VIEWER, TM_ROLE_OPERATOR, TM_ROLE_ADMIN };

/* Route flags. */
#define TM_HTTP_AUDIT 1u /* append every request to this route to the audit log */

struct tm_http_req;

/* A handler returns a 2xx status and sets *ret to a new reference (or
 * leaves it NULL after tm_http_set_text()), or returns a negative errno,
 * optionally after tm_http_fail() to say why. body is borrowed: the parsed
 * JSON request body, or NULL when the request had none. Handlers run on the
 * server's threads concurrently: they must be thread-safe. */
typedef int (*tm_http_fn)(struct tm_http_req *rq, json_t *body, json_t **ret);

struct tm_http_route {
        const char *method;  /* "GET", "POST", ... */
        const char *pattern; /* "/api/v1/backups/{id}": {x} matches one segment */
        tm_http_fn fn;
        enum tm_role min_role; /* TM_ROLE_NONE: no token needed */
        size_t max_body;       /* bytes; 0 = a body is rejected (413) */
        unsigned flags;        /* TM_HTTP_AUDIT */
};

/* A bearer token as the configuration stores it: only its SHA-256. */
struct tm_http_token {
        char name[64];
        enum tm_role role;
        uint8_t sha256[32];
};

struct tm_http_opts {
        const char *listen;       /* "ADDR:PORT" (IPv4); port 0 picks one */
        const char *tls_cert_pem; /* both set: HTTPS (PEM text, not paths) */
        const char *tls_key_pem;
        const struct tm_http_token *tokens; /* copied */
        size_t n_tokens;
        enum tm_role anonymous_role; /* role of a request without a token */
        tm_audit *audit;             /* borrowed; NULL: no audit log */
        int access_log_fd;           /* -1: no access log */
        const char *service;         /* "backupd": in log lines */
        unsigned threads;            /* 0: 4 */
        void *app;                   /* handed to handlers: tm_http_app() */
};
#define TM_HTTP_OPTS_INIT                                                            \
        (struct tm_http_opts)                                                        \
        {                                                                            \
                .listen = "0.0.0.0:8080", .access_log_fd = -1, .service = "tidemark" \
        }

typedef struct tm_http_server tm_http_server;

/**
 * tm_http_serve() - start serving a route table on opts->listen. routes must
 * stay valid until tm_http_free(). Returns 0 and *ret (caller frees),
 * -EINVAL (bad listen address or route pattern), -EADDRINUSE or -EIO (could
 * not bind or start). Thread-safety: the server runs its own threads.
 */
int tm_http_serve(const struct tm_http_route *routes, size_t n, const struct tm_http_opts *opts,
                  tm_http_server **ret);
/* The bound TCP port (useful after binding port 0). */
int tm_http_port(const tm_http_server *s);
/* Stop accepting new connections; requests in flight complete. */
void tm_http_quiesce(tm_http_server *s);
/**
 * tm_http_tls_reload() - serve a new certificate and key (PEM text) from now
 * on, without closing the listening socket: new connections get the new
 * pair, connections already open finish with the old one. Meant for SIGHUP
 * after a certificate renewal. Returns 0; -EINVAL when the server does not
 * serve HTTPS or the pair does not load (the old pair stays in use);
 * -ENOMEM. Ownership: the PEM text is copied. Thread-safety: not
 * concurrently with itself, tm_http_quiesce() or tm_http_free() (call it
 * from the thread that waits for signals); handlers keep running.
 */
int tm_http_tls_reload(tm_http_server *s, const char *cert_pem, const char *key_pem);
/* The same, reading the PEM files (at most 1 MiB each; errors are logged
 * with the path). Returns also -ENOENT, -EACCES... from reading them. */
int tm_http_tls_reload_files(tm_http_server *s, const char *cert_path, const char *key_path);
/* Stop the server (waits for handlers in flight) and free it. NULL-safe. */
void tm_http_free(tm_http_server *s);

/* ---- for handlers (rq is valid for the duration of the handler call) ---- */
/* The app pointer given in the options. */
void *tm_http_app(const struct tm_http_req *rq);
/* A {param} of the route pattern (borrowed), or NULL. */
const char *tm_http_param(const struct tm_http_req *rq, const char *name);
/* A query-string argument (borrowed, already unescaped), or NULL. */
const char *tm_http_query(const struct tm_http_req *rq, const char *name);
/* The name of the token that authenticated the request, or "anonymous". */
const char *tm_http_principal(const struct tm_http_req *rq);
/* Record why a request failed (sent as {"error": msg} unless the status is
 * 500) and return err, so handlers write `return tm_http_fail(rq, -EINVAL, ...)`. */
int tm_http_fail(struct tm_http_req *rq, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Answer with text instead of JSON. Takes ownership of text (malloc'd) even
 * on failure. Returns 0 or -ENOMEM. */
int tm_http_set_text_take(struct tm_http_req *rq, const char *content_type, char *text);

/*
 * A cache of answers for expensive read routes: a few entries, each under a
 * key (the route and its arguments) and a tag the caller derives from what
 * the answer depends on (a directory's mtime, a generation). An entry is
 * served while its tag matches and it is younger than ttl; the oldest entry
 * makes room for a new one. Thread-safe.
 */
typedef struct tm_http_cache tm_http_cache;
/* Returns 0 and *ret, or -ENOMEM. */
int tm_http_cache_new(int64_t ttl_ns, tm_http_cache **ret);
void tm_http_cache_free(tm_http_cache *c);
/* On a hit answer rq with the cached bytes and return 1; 0 on a miss. */
int tm_http_cache_serve(tm_http_cache *c, struct tm_http_req *rq, const char *key,
                        const char *tag);
/* Keep *answer (the JSON the handler would return) under key and tag, and
 * answer rq with the same bytes the dispatcher would send; *answer is
 * consumed (set to NULL). Returns 0, or -ENOMEM with *answer left for the
 * dispatcher. */
int tm_http_cache_store(tm_http_cache *c, struct tm_http_req *rq, const char *key,
                        const char *tag, json_t **answer);

/* ---- helpers shared by daemons and tests ---- */
/* The status an errno maps to (see the table above); err may be negative. */
int tm_http_status_for_errno(int err);
/* "viewer" -> TM_ROLE_VIEWER...; -EINVAL for anything else. */
int tm_http_role_parse(const char *s, enum tm_role *ret);
const char *tm_http_role_name(enum tm_role role);
/* Validate a JSON body against a json_unpack format with JSON_STRICT and
 * name the offending field in a message for tm_http_fail(): unknown fields,
 * missing fields and wrong types are -EINVAL. Returns 0 or -EINVAL. */
int tm_http_unpack(struct tm_http_req *rq, json_t *body, const char *fmt, ...);
