/*
 * http: the one dispatcher behind every daemon's route table (STYLE.md 3.6).
 *
 * MHD calls the access handler at least twice per request: the first call
 * creates the request context, matches the route and decides the caller's
 * role from the headers; body fragments are appended (bounded by the route's
 * max_body: past it they are read and dropped, and the answer is 413, so the
 * client always sees the status instead of a reset connection); the final
 * call authorises, parses the JSON, calls the handler and queues the answer.
 * The context is freed in the completion callback, which also runs when the
 * client goes away.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include <tidemark/core.h>
#include <tidemark/crypto.h>
#include <tidemark/http.h>
#include <tidemark/log.h>
#include <tidemark/time.h>

#include "http/http_internal.h"

#define HTTP_MAX_PARAMS   4
#define HTTP_MAX_SEGMENTS 32
#define HTTP_MSG_MAX      512
#define HTTP_DISCARD_MAX  (64u * 1024 * 1024)

struct tm_http_server {
        struct MHD_Daemon *mhd;
        /* the daemon a TLS reload replaced: it stopped accepting but may
         * still be answering; stopped at the next reload or at free */
        struct MHD_Daemon *retired;
        char *retired_cert, *retired_key;
        unsigned threads;
        const struct tm_http_route *routes;
        size_t n_routes;
        struct tm_http_token *tokens;
        size_t n_tokens;
        enum tm_role anonymous_role;
        tm_audit *audit;
        int access_log_fd;
        char *service;
        char *cert, *key;
        void *app;
        int port;
        atomic_uint_fast64_t next_req_id;
        pthread_mutex_t log_lock;
};

struct tm_http_req {
        tm_http_server *srv;
        struct MHD_Connection *conn;
        const struct tm_http_route *route;
        int early_status; /* decided on the first call (404, 405, 400, 401) */
        int early_err;
        char early_msg[HTTP_MSG_MAX];
        enum tm_role role;
        int token_given, token_bad;
        const char *principal;
        size_t n_params;
        char *param_names[HTTP_MAX_PARAMS];
        char *param_values[HTTP_MAX_PARAMS];
        tm_buf body;
        int body_too_big;
        uint64_t seen; /* body bytes received, kept or not */
        char msg[HTTP_MSG_MAX];
        char *text;
        const char *content_type;
        uint64_t id;
        int64_t start_ns;
};

/* ---- small helpers ---- */

/* A private key is wiped before its memory goes back to the allocator. */
static void free_secret_str(char *p)
{
        if (!p)
                return;
        for (volatile char *q = p; *q; q++)
                *q = 0;
        free(p);
}

int tm_http_status_for_errno(int err)
{
        switch (err < 0 ? -err : err) {
        case EINVAL:
        case EPROTO:
                return 400;
        case EACCES:
                return 401;
        case EPERM:
                return 403;
        case ENOENT:
                return 404;
        case EEXIST:
        case EBUSY:
                return 409;
        case E2BIG:
                return 413;
        case EAGAIN:
                return 503;
        default:
                return 500;
        }
}

static const char *role_names[] = { "none", "viewer", "operator", "admin" };

int tm_http_role_parse(const char *s, enum tm_role *ret)
{
        for (size_t i = 0; i < TM_ARRAY_SIZE(role_names); i++)
                if (s && strcmp(s, role_names[i]) == 0) {
                        *ret = (enum tm_role)i;
                        return 0;
                }
        return -EINVAL;
}

const char *tm_http_role_name(enum tm_role role)
{
        return (unsigned)role < TM_ARRAY_SIZE(role_names) ? role_names[role] : "?";
}

void *tm_http_app(const struct tm_http_req *rq)
{
        return rq->srv->app;
}

const char *tm_http_param(const struct tm_http_req *rq, const char *name)
{
        for (size_t i = 0; i < rq->n_params; i++)
                if (strcmp(rq->param_names[i], name) == 0)
                        return rq->param_values[i];
        return NULL;
}

const char *tm_http_query(const struct tm_http_req *rq, const char *name)
{
        return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *tm_http_principal(const struct tm_http_req *rq)
{
        return rq->principal;
}

int tm_http_fail(struct tm_http_req *rq, int err, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(rq->msg, sizeof(rq->msg), fmt, ap);
        va_end(ap);
        return err;
}

int tm_http_set_text_take(struct tm_http_req *rq, const char *content_type, char *text)
{
        free(rq->text);
        rq->text = text;
        rq->content_type = content_type;
        return text ? 0 : -ENOMEM;
}

/* Before jansson's own check: the top-level fields of an object format
 * ("{s:s, s?:i, s?:o}", simple value types only) are checked one by one, so
 * a wrong type is reported with the field's name, which jansson's message
 * leaves out. Formats this walk does not understand are left to jansson. */
static int check_types(struct tm_http_req *rq, json_t *body, const char *fmt, va_list ap)
{
        const char *p = fmt;

        while (*p == ' ')
                p++;
        if (*p++ != '{')
                return 0;
        for (;;) {
                const char *key, *want = NULL;
                json_t *v;
                int ok = 1;

                while (*p == ' ' || *p == ',')
                        p++;
                if (*p == '}' || *p == '!' || *p == '*' || *p != 's')
                        return 0;
                key = va_arg(ap, const char *);
                p++;
                if (*p == '?')
                        p++;
                if (*p++ != ':')
                        return 0;
                while (*p == ' ')
                        p++;
                v = json_object_get(body, key);
                switch (*p) {
                case 's':
                        ok = !v || json_is_string(v);
                        want = "a string";
                        break;
                case 'i':
                case 'I':
                        ok = !v || json_is_integer(v);
                        want = "an integer";
                        break;
                case 'b':
                        ok = !v || json_is_boolean(v);
                        want = "a boolean";
                        break;
                case 'F':
                        ok = !v || json_is_number(v);
                        want = "a number";
                        break;
                case 'o':
                case 'O':
                        break;
                default:
                        return 0;
                }
                if (!ok)
                        return tm_http_fail(rq, -EINVAL, "invalid request: field '%s' must be %s",
                                            key, want);
                (void)va_arg(ap, void *);
                p++;
        }
}

int tm_http_unpack(struct tm_http_req *rq, json_t *body, const char *fmt, ...)
{
        json_error_t jerr;
        va_list ap;
        int r;

        if (!body)
                return tm_http_fail(rq, -EINVAL, "a JSON object body is required");
        if (!json_is_object(body))
                return tm_http_fail(rq, -EINVAL, "invalid request: expected a JSON object");
        va_start(ap, fmt);
        r = check_types(rq, body, fmt, ap);
        va_end(ap);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        r = json_vunpack_ex(body, &jerr, JSON_STRICT, fmt, ap);
        va_end(ap);
        if (r < 0) {
                /* jansson names unknown and missing fields: "1 object
                 * item(s) left unpacked: colour", "Object item not found:
                 * strategy" */
                if (json_error_code(&jerr) == json_error_end_of_input_expected &&
                    strstr(jerr.text, "left unpacked"))
                        return tm_http_fail(rq, -EINVAL, "invalid request: unknown field(s): %s",
                                            strchr(jerr.text, ':') ? strchr(jerr.text, ':') + 2
                                                                   : jerr.text);
                return tm_http_fail(rq, -EINVAL, "invalid request: %s", jerr.text);
        }
        return 0;
}

/* ---- routing ---- */

/* Split a path into segments in place ("/a/b" -> "a","b"). Returns the
 * count or -EINVAL (too many). */
static int split_path(char *p, char **seg, size_t max)
{
        size_t n = 0;

        while (*p == '/')
                p++;
        while (*p) {
                if (n == max)
                        return -EINVAL;
                seg[n++] = p;
                p = strchr(p, '/');
                if (!p)
                        break;
                *p++ = '\0';
        }
        return (int)n;
}

/* Does url (already split) match pattern? Fills the params on success. */
static int route_match(const char *pattern, char **seg, int n, struct tm_http_req *rq)
{
        char buf[256], *pseg[HTTP_MAX_SEGMENTS];
        size_t np = 0;
        int pn;

        snprintf(buf, sizeof(buf), "%s", pattern);
        pn = split_path(buf, pseg, HTTP_MAX_SEGMENTS);
        if (pn != n)
                return 0;
        for (int i = 0; i < n; i++) {
                size_t l = strlen(pseg[i]);

                if (l > 2 && pseg[i][0] == '{' && pseg[i][l - 1] == '}') {
                        if (np == HTTP_MAX_PARAMS)
                                return 0;
                        np++;
                        continue;
                }
                if (strcmp(pseg[i], seg[i]) != 0)
                        return 0;
        }
        if (!rq)
                return 1;
        np = 0;
        for (int i = 0; i < n; i++) {
                size_t l = strlen(pseg[i]);

                if (l > 2 && pseg[i][0] == '{' && pseg[i][l - 1] == '}') {
                        rq->param_names[np] = strndup(pseg[i] + 1, l - 2);
                        rq->param_values[np] = tm_strdup(seg[i]);
                        rq->n_params = ++np;
                        if (!rq->param_names[np - 1] || !rq->param_values[np - 1])
                                return -ENOMEM;
                }
        }
        return 1;
}

static void early(struct tm_http_req *rq, int err, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void early(struct tm_http_req *rq, int err, const char *fmt, ...)
{
        va_list ap;

        if (rq->early_err)
                return;
        rq->early_err = err;
        va_start(ap, fmt);
        vsnprintf(rq->early_msg, sizeof(rq->early_msg), fmt, ap);
        va_end(ap);
}

static void find_route(struct tm_http_req *rq, const char *url, const char *method)
{
        char path[2048], *seg[HTTP_MAX_SEGMENTS];
        int n, method_mismatch = 0;

        if (strlen(url) >= sizeof(path)) {
                early(rq, -EINVAL, "path too long");
                return;
        }
        snprintf(path, sizeof(path), "%s", url);
        n = split_path(path, seg, HTTP_MAX_SEGMENTS);
        if (n < 0) {
                early(rq, -EINVAL, "path has too many segments");
                return;
        }
        /* MHD hands over the unescaped path, so %2e%2e arrives as ".." too */
        for (int i = 0; i < n; i++)
                if (strcmp(seg[i], "..") == 0 || strcmp(seg[i], ".") == 0 || !seg[i][0]) {
                        early(rq, -EINVAL,
                              "invalid path: '.', '..' and empty segments are "
                              "not allowed");
                        return;
                }
        for (size_t i = 0; i < rq->srv->n_routes; i++) {
                const struct tm_http_route *rt = &rq->srv->routes[i];

                if (!route_match(rt->pattern, seg, n, NULL))
                        continue;
                if (strcmp(rt->method, method) != 0) {
                        method_mismatch = 1;
                        continue;
                }
                if (route_match(rt->pattern, seg, n, rq) < 0) {
                        early(rq, -ENOMEM, "out of memory");
                        return;
                }
                rq->route = rt;
                return;
        }
        if (method_mismatch) {
                rq->early_status = 405;
                snprintf(rq->early_msg, sizeof(rq->early_msg), "method %s not allowed on %s",
                         method, url);
                rq->early_err = -EINVAL;
                return;
        }
        early(rq, -ENOENT, "no such endpoint: %s %s", method, url);
}

/* Constant-time comparison: a token check must not leak how much matched. */
static int ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
        uint8_t d = 0;

        for (size_t i = 0; i < n; i++)
                d |= a[i] ^ b[i];
        return d == 0;
}

static void authenticate(struct tm_http_req *rq)
{
        const char *h = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
                                                    MHD_HTTP_HEADER_AUTHORIZATION);
        tm_id digest;

        rq->role = rq->srv->anonymous_role;
        rq->principal = "anonymous";
        if (!h)
                return;
        rq->token_given = 1;
        if (strncasecmp(h, "Bearer ", 7) != 0) {
                rq->token_bad = 1;
                return;
        }
        h += 7;
        while (*h == ' ')
                h++;
        tm_crypto_sha256(h, strlen(h), &digest);
        for (size_t i = 0; i < rq->srv->n_tokens; i++)
                if (ct_equal(digest.b, rq->srv->tokens[i].sha256, 32)) {
                        rq->role = rq->srv->tokens[i].role;
                        rq->principal = rq->srv->tokens[i].name;
                        return;
                }
        rq->token_bad = 1;
        rq->role = TM_ROLE_NONE;
}

/* ---- logging ---- */

static void write_line(tm_http_server *srv, int fd, json_t *o)
{
        char *s = json_dumps(o, JSON_COMPACT);
        size_t n;

        if (!s)
                return;
        n = strlen(s);
        s[n] = '\n'; /* json_dumps left room for the NUL: reuse it */
        pthread_mutex_lock(&srv->log_lock);
        if (write(fd, s, n + 1) < 0) {
                /* nothing sensible to do: the log itself is what failed */
        }
        pthread_mutex_unlock(&srv->log_lock);
        free(s);
}

static void log_request(struct tm_http_req *rq, const char *method, const char *url, int status,
                        const char *msg)
{
        tm_http_server *srv = rq->srv;
        char ts[40];
        json_t *o;

        tm_time_format_ns(tm_time_now(), ts, sizeof(ts));
        if (srv->access_log_fd >= 0) {
                o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:f, s:s}", "ts", ts,
                              "level", "info", "msg", "request", "service", srv->service, "req_id",
                              (json_int_t)rq->id, "method", method, "path", url, "status", status,
                              "duration_ms", (double)(tm_time_mono() - rq->start_ns) / 1e6,
                              "principal", rq->principal ? rq->principal : "anonymous");
                if (o && msg && msg[0])
                        json_object_set_new(o, "error", json_string(msg));
                if (o)
                        write_line(srv, srv->access_log_fd, o);
                json_decref(o);
        }
        if (srv->audit && rq->route && (rq->route->flags & TM_HTTP_AUDIT)) {
                tm_id h;
                char hex[TM_ID_HEX_LEN + 1];

                tm_crypto_sha256(rq->body.data ? rq->body.data : (const uint8_t *)"", rq->body.len,
                                 &h);
                tm_id_hex(&h, hex);
                o = json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:i, s:s}", "ts", ts, "service",
                              srv->service, "req_id", (json_int_t)rq->id, "principal",
                              rq->principal ? rq->principal : "anonymous", "role",
                              tm_http_role_name(rq->role), "method", method, "path", url, "status",
                              status, "body_sha256", hex);
                if (o && rq->body.len && rq->body.len <= 4096 && status < 500) {
                        json_t *b = json_loadb((const char *)rq->body.data, rq->body.len, 0, NULL);

                        if (b)
                                json_object_set_new(o, "body", b);
                }
                if (!o || tm_audit_append(srv->audit, o) < 0)
                        tm_log(TM_LOG_ERR, "cannot write the audit entry of request %llu",
                               (unsigned long long)rq->id);
                json_decref(o);
        }
}

/* ---- responses ---- */

static enum MHD_Result send_text(struct tm_http_req *rq, int status, const char *ctype, char *s,
                                 size_t len)
{
        struct MHD_Response *resp;
        enum MHD_Result ret;

        resp = MHD_create_response_from_buffer(len, s, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(s);
                return MHD_NO;
        }
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
        if (status == 503)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "5");
        if (status == 401)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
        ret = MHD_queue_response(rq->conn, (unsigned)status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* every JSON answer, cached or not, is these bytes plus a newline */
#define JSON_ANSWER_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(10))

static enum MHD_Result send_json(struct tm_http_req *rq, int status, json_t *o)
{
        char *s = json_dumps(o, JSON_ANSWER_FLAGS);
        size_t n;

        if (!s)
                return MHD_NO;
        n = strlen(s);
        s[n] = '\n';
        return send_text(rq, status, "application/json", s, n + 1);
}

static enum MHD_Result send_error(struct tm_http_req *rq, const char *method, const char *url,
                                  int status, int err, const char *msg)
{
        char generic[64];
        json_t *o;
        enum MHD_Result ret;

        if (status >= 500 && status != 503) {
                tm_log(TM_LOG_ERR, "request %llu %s %s failed: %s (%s)", (unsigned long long)rq->id,
                       method, url, msg[0] ? msg : "no detail", strerror(err < 0 ? -err : err));
                snprintf(generic, sizeof(generic), "internal error (request %llu)",
                         (unsigned long long)rq->id);
                msg = generic;
        } else if (!msg[0]) {
                msg = strerror(err < 0 ? -err : err);
        }
        log_request(rq, method, url, status, msg);
        o = json_pack("{s:s}", "error", msg);
        if (!o)
                return MHD_NO;
        ret = send_json(rq, status, o);
        json_decref(o);
        return ret;
}

static void req_free(struct tm_http_req *rq)
{
        if (!rq)
                return;
        for (size_t i = 0; i < rq->n_params; i++) {
                free(rq->param_names[i]);
                free(rq->param_values[i]);
        }
        tm_buf_dispose(&rq->body);
        free(rq->text);
        free(rq);
}

int tm_http__body_parse(const void *p, size_t n, json_t **ret, char *msg, size_t msglen)
{
        json_error_t jerr;

        *ret = NULL;
        if (!n)
                return 0;
        *ret = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
        if (!*ret) {
                snprintf(msg, msglen, "malformed JSON: %s (line %d, column %d)", jerr.text,
                         jerr.line, jerr.column);
                return -EINVAL;
        }
        return 0;
}

struct tm_http_req *tm_http__req_new(void)
{
        struct tm_http_req *rq = calloc(1, sizeof(*rq));

        if (rq)
                rq->principal = "anonymous";
        return rq;
}

void tm_http__req_free(struct tm_http_req *rq)
{
        req_free(rq);
}

const char *tm_http__req_msg(const struct tm_http_req *rq)
{
        return rq->msg;
}

const char *tm_http__req_text(const struct tm_http_req *rq)
{
        return rq->text;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
        req_free(*con_cls);
        *con_cls = NULL;
}

static enum MHD_Result finish(struct tm_http_req *rq, const char *method, const char *url)
{
        json_t *body = NULL, *ret = NULL;
        int r, status;
        enum MHD_Result mr;

        if (rq->early_err) {
                status = rq->early_status ? rq->early_status
                                          : tm_http_status_for_errno(rq->early_err);
                return send_error(rq, method, url, status, rq->early_err, rq->early_msg);
        }
        if (rq->token_bad)
                return send_error(rq, method, url, 401, -EACCES, "invalid bearer token");
        if (rq->role < rq->route->min_role) {
                if (!rq->token_given)
                        return send_error(rq, method, url, 401, -EACCES,
                                          "a bearer token is required");
                snprintf(rq->msg, sizeof(rq->msg), "role '%s' may not do this (needs '%s')",
                         tm_http_role_name(rq->role), tm_http_role_name(rq->route->min_role));
                return send_error(rq, method, url, 403, -EPERM, rq->msg);
        }
        if (rq->body_too_big) {
                snprintf(rq->msg, sizeof(rq->msg), "request body too large (limit %zu bytes)",
                         rq->route->max_body);
                return send_error(rq, method, url, 413, -E2BIG, rq->msg);
        }
        if (tm_http__body_parse(rq->body.data, rq->body.len, &body, rq->msg, sizeof(rq->msg)) < 0)
                return send_error(rq, method, url, 400, -EINVAL, rq->msg);
        rq->msg[0] = '\0';
        r = rq->route->fn(rq, body, &ret);
        json_decref(body);
        if (r < 0) {
                json_decref(ret);
                return send_error(rq, method, url, tm_http_status_for_errno(r), r, rq->msg);
        }
        status = r ? r : 200;
        log_request(rq, method, url, status, NULL);
        if (rq->text) {
                char *t = rq->text;

                rq->text = NULL;
                json_decref(ret);
                return send_text(rq, status, rq->content_type, t, strlen(t));
        }
        if (!ret)
                ret = json_object();
        mr = send_json(rq, status, ret);
        json_decref(ret);
        return mr;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
        tm_http_server *srv = cls;
        struct tm_http_req *rq = *con_cls;

        if (!rq) {
                rq = calloc(1, sizeof(*rq));
                if (!rq)
                        return MHD_NO;
                rq->srv = srv;
                rq->conn = conn;
                rq->id = atomic_fetch_add(&srv->next_req_id, 1) + 1;
                rq->start_ns = tm_time_mono();
                rq->principal = "anonymous";
                *con_cls = rq;
                find_route(rq, url, method);
                rq->body = TM_BUF_INIT(rq->route ? rq->route->max_body : 0);
                authenticate(rq);
                return MHD_YES;
        }
        rq->conn = conn;
        if (*upload_data_size) {
                /* unmatched routes and oversized bodies: read and drop,
                 * so the client gets its 413 or 404; past a hard cap the
                 * connection is simply closed */
                rq->seen += *upload_data_size;
                if (rq->seen > HTTP_DISCARD_MAX)
                        return MHD_NO;
                if (rq->route && !rq->body_too_big && !rq->early_err) {
                        if (rq->route->max_body == 0 ||
                            tm_buf_append(&rq->body, upload_data, *upload_data_size) < 0) {
                                rq->body_too_big = 1;
                                tm_buf_dispose(&rq->body);
                        }
                }
                *upload_data_size = 0;
                return MHD_YES;
        }
        return finish(rq, method, url);
}

/* ---- server ---- */

static int parse_listen(const char *listen, struct sockaddr_in *sa)
{
        char host[64];
        const char *colon = strrchr(listen, ':');
        unsigned long port;
        char *end = NULL;

        if (!colon || (size_t)(colon - listen) >= sizeof(host))
                return -EINVAL;
        memcpy(host, listen, (size_t)(colon - listen));
        host[colon - listen] = '\0';
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno || !end || *end || end == colon + 1 || port > 65535)
                return -EINVAL;
        memset(sa, 0, sizeof(*sa));
        sa->sin_family = AF_INET;
        sa->sin_port = htons((uint16_t)port);
        if (strcmp(host, "localhost") == 0)
                snprintf(host, sizeof(host), "127.0.0.1");
        if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1)
                return -EINVAL;
        return 0;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        char msg[512];
        size_t n;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        n = strlen(msg);
        while (n && msg[n - 1] == '\n')
                msg[--n] = '\0';
        tm_log(TM_LOG_DEBUG, "http: %s", msg);
}

/* Start a daemon on sa, or on an already listening socket (listen_fd, for
 * a TLS reload); HTTPS when cert and key are set. They must outlive it. The
 * options go in an array, as MHD documents it, so each value has the type
 * MHD reads (a varargs list cannot switch between them). */
static struct MHD_Daemon *start_mhd(tm_http_server *srv, const struct sockaddr_in *sa,
                                    MHD_socket listen_fd, const char *cert, const char *key)
{
        unsigned flags =
                MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
        struct MHD_OptionItem o[8];
        size_t n = 0;

        if (listen_fd == MHD_INVALID_SOCKET)
                o[n++] = (struct MHD_OptionItem){ MHD_OPTION_SOCK_ADDR, 0, (void *)sa };
        else
                o[n++] = (struct MHD_OptionItem){ MHD_OPTION_LISTEN_SOCKET, listen_fd, NULL };
        o[n++] = (struct MHD_OptionItem){ MHD_OPTION_THREAD_POOL_SIZE, srv->threads, NULL };
        o[n++] =
                (struct MHD_OptionItem){ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, srv };
        o[n++] = (struct MHD_OptionItem){ MHD_OPTION_CONNECTION_TIMEOUT, 60, NULL };
        o[n++] = (struct MHD_OptionItem){ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, srv };
        if (cert && key) {
                flags |= MHD_USE_TLS;
                o[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert };
                o[n++] = (struct MHD_OptionItem){ MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key };
        }
        o[n++] = (struct MHD_OptionItem){ MHD_OPTION_END, 0, NULL };
        return MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_ARRAY, o,
                                MHD_OPTION_END);
}

int tm_http_serve(const struct tm_http_route *routes, size_t n, const struct tm_http_opts *opts,
                  tm_http_server **ret)
{
        tm_http_server *srv = NULL;
        struct sockaddr_in sa;
        const union MHD_DaemonInfo *info;
        int r;

        if (!opts->listen || parse_listen(opts->listen, &sa) < 0)
                return tm_log_errno(TM_LOG_ERR, -EINVAL, "invalid listen address '%s'",
                                    opts->listen ? opts->listen : "");
        for (size_t i = 0; i < n; i++)
                if (!routes[i].pattern || routes[i].pattern[0] != '/' || !routes[i].fn ||
                    !routes[i].method)
                        return -EINVAL;
        srv = calloc(1, sizeof(*srv));
        if (!srv)
                return -ENOMEM;
        pthread_mutex_init(&srv->log_lock, NULL);
        srv->routes = routes;
        srv->n_routes = n;
        srv->anonymous_role = opts->anonymous_role;
        srv->audit = opts->audit;
        srv->access_log_fd = opts->access_log_fd;
        srv->app = opts->app;
        srv->service = tm_strdup(opts->service ? opts->service : "tidemark");
        if (!srv->service) {
                r = -ENOMEM;
                goto out;
        }
        if (opts->n_tokens) {
                srv->tokens = calloc(opts->n_tokens, sizeof(*srv->tokens));
                if (!srv->tokens) {
                        r = -ENOMEM;
                        goto out;
                }
                memcpy(srv->tokens, opts->tokens, opts->n_tokens * sizeof(*srv->tokens));
                srv->n_tokens = opts->n_tokens;
        }
        srv->threads = opts->threads ? opts->threads : 4;
        if (opts->tls_cert_pem && opts->tls_key_pem) {
                srv->cert = tm_strdup(opts->tls_cert_pem);
                srv->key = tm_strdup(opts->tls_key_pem);
                if (!srv->cert || !srv->key) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        srv->mhd = start_mhd(srv, &sa, MHD_INVALID_SOCKET, srv->cert, srv->key);
        if (!srv->mhd) {
                r = tm_log_errno(TM_LOG_ERR, -EADDRINUSE, "cannot listen on '%s'", opts->listen);
                goto out;
        }
        info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
        srv->port = info ? info->port : 0;
        *ret = srv;
        srv = NULL;
        r = 0;
out:
        tm_http_free(srv);
        return r;
}

int tm_http_port(const tm_http_server *s)
{
        return s->port;
}

void tm_http_quiesce(tm_http_server *s)
{
        MHD_socket fd;

        if (!s || !s->mhd)
                return;
        fd = MHD_quiesce_daemon(s->mhd);
        if (fd != MHD_INVALID_SOCKET)
                close(fd);
}

void tm_http_free(tm_http_server *s)
{
        if (!s)
                return;
        if (s->mhd)
                MHD_stop_daemon(s->mhd);
        if (s->retired)
                MHD_stop_daemon(s->retired);
        free(s->retired_cert);
        free_secret_str(s->retired_key);
        pthread_mutex_destroy(&s->log_lock);
        free(s->tokens);
        free(s->service);
        free(s->cert);
        free_secret_str(s->key);
        free(s);
}

/* The order keeps the service answering whatever happens: the new daemon
 * starts on the listening socket the old one uses, through a duplicate
 * descriptor (so a certificate that does not load fails here, and the old
 * daemon simply carries on), both accept for an instant (the kernel hands
 * each connection to one of them), then the old one is quiesced: it stops
 * accepting but finishes the connections it has (keep-alive ones included)
 * until the next reload or tm_http_free(). No connection waiting in the
 * listen backlog is lost: the socket is never closed. */
int tm_http_tls_reload(tm_http_server *s, const char *cert_pem, const char *key_pem)
{
        const union MHD_DaemonInfo *info;
        struct MHD_Daemon *fresh;
        char *cert = NULL, *key = NULL;
        MHD_socket fd;
        int r;

        if (!s || !s->mhd || !s->cert || !cert_pem || !key_pem)
                return -EINVAL;
        info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_LISTEN_FD);
        if (!info || info->listen_fd == MHD_INVALID_SOCKET)
                return -EINVAL;
        cert = tm_strdup(cert_pem);
        key = tm_strdup(key_pem);
        if (!cert || !key) {
                r = -ENOMEM;
                goto out;
        }
        /* MHD closes the socket it was given when it fails to start: give
         * it a duplicate, so a failure cannot close the one in service */
        fd = fcntl(info->listen_fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0) {
                r = -errno;
                goto out;
        }
        fresh = start_mhd(s, NULL, fd, cert, key);
        if (!fresh) {
                r = tm_log_errno(TM_LOG_ERR, -EINVAL,
                                 "TLS reload: the new certificate and key do not load; "
                                 "still serving the old ones");
                goto out;
        }
        /* the fresh daemon accepts on its duplicate; the old descriptor of
         * the same socket goes */
        fd = MHD_quiesce_daemon(s->mhd);
        if (fd != MHD_INVALID_SOCKET)
                close(fd);
        if (s->retired)
                MHD_stop_daemon(s->retired);
        free(s->retired_cert);
        free_secret_str(s->retired_key);
        s->retired = s->mhd;
        s->retired_cert = s->cert;
        s->retired_key = s->key;
        s->mhd = fresh;
        s->cert = cert;
        s->key = key;
        cert = key = NULL;
        tm_log(TM_LOG_INFO, "TLS certificate reloaded");
        r = 0;
out:
        free(cert);
        free_secret_str(key);
        return r;
}

int tm_http_tls_reload_files(tm_http_server *s, const char *cert_path, const char *key_path)
{
        tm_buf c = TM_BUF_INIT(1 << 20), k = TM_BUF_INIT(1 << 20);
        int r;

        if (!cert_path || !key_path)
                return -EINVAL;
        r = tm_file_read_all(cert_path, 1 << 20, &c);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "TLS reload: cannot read '%s'", cert_path);
                goto out;
        }
        r = tm_file_read_all(key_path, 1 << 20, &k);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "TLS reload: cannot read '%s'", key_path);
                goto out;
        }
        r = tm_buf_append(&c, "", 1);
        if (r >= 0)
                r = tm_buf_append(&k, "", 1);
        if (r >= 0)
                r = tm_http_tls_reload(s, (const char *)c.data, (const char *)k.data);
out:
        tm_buf_dispose(&c);
        tm_buf_dispose_secret(&k);
        return r;
}

/* ---- the answer cache ---- */

#define CACHE_ENTRIES 8

struct cache_entry {
        char *key, *tag, *text;
        int64_t at; /* monotonic ns; 0 = empty */
};

struct tm_http_cache {
        pthread_mutex_t lock;
        int64_t ttl_ns;
        struct cache_entry e[CACHE_ENTRIES];
};

int tm_http_cache_new(int64_t ttl_ns, tm_http_cache **ret)
{
        tm_http_cache *c = calloc(1, sizeof(*c));

        if (!c)
                return -ENOMEM;
        pthread_mutex_init(&c->lock, NULL);
        c->ttl_ns = ttl_ns;
        *ret = c;
        return 0;
}

static void entry_clear(struct cache_entry *e)
{
        free(e->key);
        free(e->tag);
        free(e->text);
        *e = (struct cache_entry){ 0 };
}

void tm_http_cache_free(tm_http_cache *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < CACHE_ENTRIES; i++)
                entry_clear(&c->e[i]);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

int tm_http_cache_serve(tm_http_cache *c, struct tm_http_req *rq, const char *key,
                        const char *tag)
{
        char *copy = NULL;
        int64_t now = tm_time_mono();

        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < CACHE_ENTRIES; i++) {
                struct cache_entry *e = &c->e[i];

                if (!e->at || strcmp(e->key, key) != 0)
                        continue;
                if (strcmp(e->tag, tag) == 0 && now - e->at < c->ttl_ns)
                        copy = strdup(e->text);
                else
                        entry_clear(e); /* stale: its inputs changed or it aged */
                break;
        }
        pthread_mutex_unlock(&c->lock);
        if (!copy)
                return 0;
        return tm_http_set_text_take(rq, "application/json", copy) == 0;
}

int tm_http_cache_store(tm_http_cache *c, struct tm_http_req *rq, const char *key,
                        const char *tag, json_t **answer)
{
        struct cache_entry n = { 0 }, *slot = NULL;
        char *text = json_dumps(*answer, JSON_ANSWER_FLAGS), *grown, *copy;
        size_t len;

        if (!text)
                return -ENOMEM;
        len = strlen(text);
        grown = realloc(text, len + 2);
        if (!grown) {
                free(text);
                return -ENOMEM;
        }
        text = grown;
        memcpy(text + len, "\n", 2);
        copy = strdup(text);
        n.key = strdup(key);
        n.tag = strdup(tag);
        n.text = text;
        if (!copy || !n.key || !n.tag) {
                free(copy);
                entry_clear(&n);
                return -ENOMEM;
        }
        n.at = tm_time_mono();
        pthread_mutex_lock(&c->lock);
        for (size_t i = 0; i < CACHE_ENTRIES; i++) {
                struct cache_entry *e = &c->e[i];

                if (e->at && !strcmp(e->key, key)) {
                        slot = e;
                        break;
                }
                if (!slot || !e->at || (slot->at && e->at < slot->at))
                        slot = e;
        }
        entry_clear(slot);
        *slot = n;
        pthread_mutex_unlock(&c->lock);
        json_decref(*answer);
        *answer = NULL;
        return tm_http_set_text_take(rq, "application/json", copy);
}
