/* Unit tests for the service layer: the dispatcher (routing, {params},
 * methods, body limits, JSON parsing and strict validation, bearer-token
 * roles, errno -> status mapping, text answers), the access log, the audit
 * chain and its verifier, and the Prometheus registry. Requests go over a
 * real socket to a server bound on 127.0.0.1:0. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include <tidemark/audit.h>
#include <tidemark/config.h>
#include <tidemark/http.h>
#include <tidemark/metrics.h>
#include <tidemark/time.h>

#include "http/http_internal.h"

#define TOK_VIEW "viewer-secret"
#define TOK_OP   "operator-secret"

struct resp {
        int status;
        char head[4096];
        char *body;
};

static void resp_dispose(struct resp *r)
{
        free(r->body);
        r->body = NULL;
}

/* One HTTP/1.1 request with Connection: close; reads until EOF. */
static void http_do(int port, const char *method, const char *path, const char *token,
                    const char *body, size_t body_len, struct resp *ret)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        char hdr[1024], *buf = NULL, *sep;
        size_t len = 0, cap = 0;
        int fd, n;

        memset(ret, 0, sizeof(*ret));
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        n = snprintf(hdr, sizeof(hdr),
                     "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n%s%s%s"
                     "Content-Length: %zu\r\n\r\n",
                     method, path, token ? "Authorization: Bearer " : "", token ? token : "",
                     token ? "\r\n" : "", body ? body_len : 0);
        assert_int_equal(write(fd, hdr, (size_t)n), n);
        for (size_t off = 0; body && off < body_len;) {
                ssize_t w = write(fd, body + off, body_len - off);

                if (w <= 0)
                        break; /* the server may answer early */
                off += (size_t)w;
        }
        for (;;) {
                ssize_t rd;

                if (len + 4096 + 1 > cap) {
                        cap = cap ? cap * 2 : 8192;
                        buf = realloc(buf, cap);
                        assert_non_null(buf);
                }
                rd = read(fd, buf + len, cap - len - 1);
                if (rd <= 0)
                        break;
                len += (size_t)rd;
        }
        close(fd);
        assert_non_null(buf);
        buf[len] = '\0';
        assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &ret->status), 1);
        sep = strstr(buf, "\r\n\r\n");
        assert_non_null(sep);
        snprintf(ret->head, sizeof(ret->head), "%.*s", (int)(sep - buf), buf);
        ret->body = strdup(sep + 4);
        free(buf);
}

/* ---- handlers ---- */

static int h_echo(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        const char *name = NULL;
        int count = 1;

        if (tm_http_unpack(rq, body, "{s:s, s?:i}", "name", &name, "count", &count) < 0)
                return -EINVAL;
        *ret = json_pack("{s:s, s:i, s:s}", "name", name, "count", count, "who",
                         tm_http_principal(rq));
        return 202;
}

static int h_item(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        const char *id = tm_http_param(rq, "id"), *q = tm_http_query(rq, "q");

        if (!strcmp(id, "missing"))
                return tm_http_fail(rq, -ENOENT, "no item '%s'", id);
        if (!strcmp(id, "busy"))
                return -EBUSY;
        if (!strcmp(id, "later"))
                return -EAGAIN;
        if (!strcmp(id, "boom"))
                return tm_http_fail(rq, -EIO, "secret detail");
        *ret = json_pack("{s:s, s:s}", "id", id, "q", q ? q : "");
        return 200;
}

static int h_text(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        return tm_http_set_text_take(rq, "text/plain", strdup("hello\n")) < 0 ? -ENOMEM : 200;
}

/* clang-format off */
static const struct tm_http_route routes[] = {
        { "GET",  "/health",          h_text, TM_ROLE_NONE,     0,    0 },
        { "POST", "/api/echo",        h_echo, TM_ROLE_OPERATOR, 1024, TM_HTTP_AUDIT },
        { "GET",  "/api/items/{id}",  h_item, TM_ROLE_VIEWER,   0,    0 },
};
/* clang-format on */

struct fx {
        char dir[64];
        char audit_path[128], log_path[128];
        tm_audit *audit;
        tm_http_server *srv;
        int port, log_fd;
};

static int setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        struct tm_http_opts o = TM_HTTP_OPTS_INIT;
        struct tm_http_token toks[2] = { { .name = "ops", .role = TM_ROLE_OPERATOR },
                                         { .name = "view", .role = TM_ROLE_VIEWER } };
        char hex[65];

        snprintf(f->dir, sizeof(f->dir), "/tmp/tm-http-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->audit_path, sizeof(f->audit_path), "%s/audit.log", f->dir);
        snprintf(f->log_path, sizeof(f->log_path), "%s/access.log", f->dir);
        assert_int_equal(tm_audit_open(f->audit_path, &f->audit), 0);
        f->log_fd = open(f->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        assert_true(f->log_fd >= 0);
        tm_config_token_hash(TOK_OP, hex);
        assert_int_equal(tm_hex_decode(hex, toks[0].sha256, 32), 0);
        tm_config_token_hash(TOK_VIEW, hex);
        assert_int_equal(tm_hex_decode(hex, toks[1].sha256, 32), 0);
        o.listen = "127.0.0.1:0";
        o.tokens = toks;
        o.n_tokens = 2;
        o.audit = f->audit;
        o.access_log_fd = f->log_fd;
        o.service = "test";
        assert_int_equal(tm_http_serve(routes, TM_ARRAY_SIZE(routes), &o, &f->srv), 0);
        f->port = tm_http_port(f->srv);
        assert_true(f->port > 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fx *f = *state;
        char cmd[256];

        tm_http_free(f->srv);
        tm_audit_close(f->audit);
        close(f->log_fd);
        unlink(f->audit_path);
        snprintf(cmd, sizeof(cmd), "%s.head", f->audit_path);
        unlink(cmd);
        unlink(f->log_path);
        rmdir(f->dir);
        free(f);
        return 0;
}

static void expect(struct fx *f, const char *method, const char *path, const char *tok,
                   const char *body, int status, const char *needle)
{
        struct resp r;

        http_do(f->port, method, path, tok, body, body ? strlen(body) : 0, &r);
        if (r.status != status || (needle && !strstr(r.body, needle)))
                fail_msg("%s %s: got %d '%s', expected %d with '%s'", method, path, r.status,
                         r.body, status, needle ? needle : "");
        resp_dispose(&r);
}

static void test_routing_and_params(void **state)
{
        struct fx *f = *state;

        expect(f, "GET", "/health", NULL, NULL, 200, "hello");
        expect(f, "GET", "/api/items/abc?q=x%20y", TOK_VIEW, NULL, 200,
               "{\"id\":\"abc\",\"q\":\"x y\"}");
        expect(f, "GET", "/nope", NULL, NULL, 404, "{\"error\":\"no such endpoint");
        expect(f, "DELETE", "/api/items/abc", TOK_VIEW, NULL, 405, "not allowed");
        expect(f, "GET", "/api/items/../items/x", TOK_VIEW, NULL, 400, "'..'");
        expect(f, "GET", "/api/items/%2e%2e", TOK_VIEW, NULL, 400, "'..'");
        expect(f, "GET", "/api/items/a/b", TOK_VIEW, NULL, 404, "error");
}

static void test_error_mapping(void **state)
{
        struct fx *f = *state;
        struct resp r;

        assert_int_equal(tm_http_status_for_errno(-EINVAL), 400);
        assert_int_equal(tm_http_status_for_errno(EPROTO), 400);
        assert_int_equal(tm_http_status_for_errno(-EACCES), 401);
        assert_int_equal(tm_http_status_for_errno(-EPERM), 403);
        assert_int_equal(tm_http_status_for_errno(-ENOENT), 404);
        assert_int_equal(tm_http_status_for_errno(-EEXIST), 409);
        assert_int_equal(tm_http_status_for_errno(-EBUSY), 409);
        assert_int_equal(tm_http_status_for_errno(-E2BIG), 413);
        assert_int_equal(tm_http_status_for_errno(-EAGAIN), 503);
        assert_int_equal(tm_http_status_for_errno(-EIO), 500);
        expect(f, "GET", "/api/items/missing", TOK_VIEW, NULL, 404,
               "{\"error\":\"no item 'missing'\"}");
        expect(f, "GET", "/api/items/busy", TOK_VIEW, NULL, 409, "error");
        http_do(f->port, "GET", "/api/items/later", TOK_VIEW, NULL, 0, &r);
        assert_int_equal(r.status, 503);
        assert_non_null(strstr(r.head, "Retry-After"));
        resp_dispose(&r);
        /* a 500 never leaks the detail */
        http_do(f->port, "GET", "/api/items/boom", TOK_VIEW, NULL, 0, &r);
        assert_int_equal(r.status, 500);
        assert_null(strstr(r.body, "secret detail"));
        assert_non_null(strstr(r.body, "internal error"));
        resp_dispose(&r);
}

static void test_auth_roles(void **state)
{
        struct fx *f = *state;
        const char *ok = "{\"name\":\"n\"}";

        expect(f, "GET", "/api/items/x", NULL, NULL, 401, "token is required");
        expect(f, "GET", "/api/items/x", "wrong", NULL, 401, "invalid bearer token");
        expect(f, "GET", "/api/items/x", TOK_OP, NULL, 200, "\"id\":\"x\"");
        expect(f, "POST", "/api/echo", TOK_VIEW, ok, 403, "role 'viewer'");
        expect(f, "POST", "/api/echo", NULL, ok, 401, "error");
        expect(f, "POST", "/api/echo", TOK_OP, ok, 202, "\"who\":\"ops\"");
        assert_int_equal(tm_http_role_parse("admin", &(enum tm_role){ 0 }), 0);
        assert_int_equal(tm_http_role_parse("root", &(enum tm_role){ 0 }), -EINVAL);
        assert_string_equal(tm_http_role_name(TM_ROLE_OPERATOR), "operator");
}

static void test_bodies(void **state)
{
        struct fx *f = *state;
        struct resp r;
        char *big;

        expect(f, "POST", "/api/echo", TOK_OP, "{\"name\":", 400, "malformed JSON");
        expect(f, "POST", "/api/echo", TOK_OP, "{\"name\":\"a\",\"name\":\"b\"}", 400, "duplicate");
        expect(f, "POST", "/api/echo", TOK_OP, "{\"name\":\"a\",\"colour\":1}", 400, "colour");
        expect(f, "POST", "/api/echo", TOK_OP, "{\"name\":5}", 400, "name");
        expect(f, "POST", "/api/echo", TOK_OP, "{}", 400, "name");
        expect(f, "POST", "/api/echo", TOK_OP, NULL, 400, "body is required");
        expect(f, "POST", "/api/echo", TOK_OP, "{\"name\":\"a\",\"count\":3}", 202, "\"count\":3");
        /* a body on a route that takes none, and one past the limit */
        expect(f, "GET", "/api/items/x", TOK_VIEW, "{}", 413, "too large");
        big = malloc(1 << 20);
        memset(big, ' ', 1 << 20);
        http_do(f->port, "POST", "/api/echo", TOK_OP, big, 1 << 20, &r);
        assert_int_equal(r.status, 413);
        assert_non_null(strstr(r.body, "limit 1024 bytes"));
        resp_dispose(&r);
        free(big);
        /* and the server still serves */
        expect(f, "GET", "/health", NULL, NULL, 200, "hello");
}

/* A client that keeps sending past the discard cap (64 MiB) is cut off. */
static void test_endless_body_cut_off(void **state)
{
        struct fx *f = *state;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)f->port) };
        static char chunk[1 << 20];
        char hdr[256], buf[256];
        size_t sent = 0;
        ssize_t n;
        int fd;

        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(fd >= 0);
        assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        n = snprintf(hdr, sizeof(hdr),
                     "POST /api/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                     "Content-Length: 1073741824\r\n\r\n",
                     TOK_OP);
        assert_int_equal(send(fd, hdr, (size_t)n, MSG_NOSIGNAL), n);
        memset(chunk, ' ', sizeof(chunk));
        while (sent < (200u << 20)) {
                n = send(fd, chunk, sizeof(chunk), MSG_NOSIGNAL);
                if (n <= 0)
                        break;
                sent += (size_t)n;
        }
        assert_true(sent < (200u << 20)); /* the server stopped reading */
        n = recv(fd, buf, sizeof(buf), 0);
        assert_true(n <= 0); /* closed, no answer */
        close(fd);
        expect(f, "GET", "/health", NULL, NULL, 200, "hello");
}

static void test_access_and_audit_log(void **state)
{
        struct fx *f = *state;
        tm_buf b = TM_BUF_INIT(1 << 20);
        char why[256], cmd[512];
        uint64_t lines = 0;
        FILE *fp;
        char *content;
        long len;

        expect(f, "POST", "/api/echo", TOK_OP, "{\"name\":\"one\"}", 202, NULL);
        expect(f, "POST", "/api/echo", TOK_VIEW, "{\"name\":\"two\"}", 403, NULL);
        expect(f, "POST", "/api/echo", TOK_OP, "{\"name\":\"three\"}", 202, NULL);
        expect(f, "GET", "/api/items/x", TOK_VIEW, NULL, 200, NULL); /* not audited */
        assert_int_equal(tm_file_read_all(f->log_path, 1 << 20, &b), 0);
        assert_int_equal(tm_buf_append(&b, "", 1), 0);
        assert_non_null(strstr((char *)b.data, "\"method\":\"POST\",\"path\":\"/api/echo\""));
        assert_non_null(strstr((char *)b.data, "\"status\":403"));
        tm_buf_dispose(&b);
        assert_int_equal(tm_audit_verify(f->audit_path, &lines, why, sizeof(why)), 0);
        assert_int_equal(lines, 3);

        /* edit the middle line: detected at the next one */
        fp = fopen(f->audit_path, "r");
        assert_non_null(fp);
        fseek(fp, 0, SEEK_END);
        len = ftell(fp);
        rewind(fp);
        content = calloc(1, (size_t)len + 1);
        assert_int_equal(fread(content, 1, (size_t)len, fp), (size_t)len);
        fclose(fp);
        {
                char *p = strstr(content, "\"status\":403");

                assert_non_null(p);
                p[9] = '2'; /* 403 -> 203 */
                fp = fopen(f->audit_path, "w");
                fwrite(content, 1, (size_t)len, fp);
                fclose(fp);
                assert_int_equal(tm_audit_verify(f->audit_path, NULL, why, sizeof(why)), -EBADMSG);
                assert_non_null(strstr(why, "line 3"));
                p[9] = '4';
        }
        /* swap lines 1 and 2 */
        {
                char *l2 = strchr(content, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
                size_t n1 = (size_t)(l2 - content), n2 = (size_t)(l3 - l2);

                fp = fopen(f->audit_path, "w");
                fwrite(l2, 1, n2, fp);
                fwrite(content, 1, n1, fp);
                fwrite(l3, 1, strlen(l3), fp);
                fclose(fp);
                assert_int_equal(tm_audit_verify(f->audit_path, NULL, why, sizeof(why)), -EBADMSG);
                assert_non_null(strstr(why, "line 1"));
                /* remove the last line: the head notices */
                fp = fopen(f->audit_path, "w");
                fwrite(content, 1, (size_t)(l3 - content), fp);
                fclose(fp);
                assert_int_equal(tm_audit_verify(f->audit_path, NULL, why, sizeof(why)), -EBADMSG);
                assert_non_null(strstr(why, "head"));
        }
        /* restore, then the chain continues across a reopen */
        fp = fopen(f->audit_path, "w");
        fwrite(content, 1, (size_t)len, fp);
        fclose(fp);
        free(content);
        assert_int_equal(tm_audit_verify(f->audit_path, &lines, why, sizeof(why)), 0);
        tm_audit_close(f->audit);
        assert_int_equal(tm_audit_open(f->audit_path, &f->audit), 0);
        {
                json_t *e = json_pack("{s:s}", "x", "y"), *i = json_integer(1);

                assert_int_equal(tm_audit_append(f->audit, e), 0);
                assert_int_equal(tm_audit_append(f->audit, i), -EINVAL);
                json_decref(e);
                json_decref(i);
        }
        assert_int_equal(tm_audit_verify(f->audit_path, &lines, why, sizeof(why)), 0);
        assert_int_equal(lines, 4);
        snprintf(cmd, sizeof(cmd), "%s/none.log", f->dir);
        assert_int_equal(tm_audit_verify(cmd, NULL, why, sizeof(why)), -ENOENT);
}

struct appender {
        const char *path;
        int id, r;
};

static void *append_loop(void *arg)
{
        struct appender *x = arg;
        tm_audit *a = NULL;

        x->r = tm_audit_open(x->path, &a);
        for (int i = 0; x->r == 0 && i < 50; i++) {
                json_t *e = json_pack("{s:i, s:i}", "writer", x->id, "n", i);

                x->r = e ? tm_audit_append(a, e) : -ENOMEM;
                json_decref(e);
        }
        tm_audit_close(a);
        return NULL;
}

/* Several handles on one log (backupd, failoverd and the CLI sharing an
 * audit_log): their entries interleave and the chain stays intact. */
static void test_audit_shared(void **state)
{
        struct fx *f = *state;
        struct appender x[3];
        pthread_t th[3];
        char path[600], why[256];
        uint64_t lines = 0;

        snprintf(path, sizeof(path), "%s/shared-audit.log", f->dir);
        for (int i = 0; i < 3; i++) {
                x[i] = (struct appender){ path, i, 0 };
                assert_int_equal(pthread_create(&th[i], NULL, append_loop, &x[i]), 0);
        }
        for (int i = 0; i < 3; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(x[i].r, 0);
        }
        assert_int_equal(tm_audit_verify(path, &lines, why, sizeof(why)), 0);
        assert_int_equal(lines, 150);
}

/* The answer cache: a miss, then the same bytes the dispatcher sends; a new
 * tag or an aged entry misses; the oldest of more than 8 keys goes. */
static void test_cache(void **state)
{
        tm_http_cache *c = NULL, *aged = NULL;
        struct tm_http_req *rq = tm_http__req_new();
        json_t *a;
        char key[16];

        (void)state;
        assert_non_null(rq);
        assert_int_equal(tm_http_cache_new(60 * TM_NSEC_PER_SEC, &c), 0);
        assert_int_equal(tm_http_cache_serve(c, rq, "k", "t1"), 0);
        a = json_pack("{s:i, s:f}", "n", 3, "x", 0.5);
        assert_int_equal(tm_http_cache_store(c, rq, "k", "t1", &a), 0);
        assert_null(a);
        assert_string_equal(tm_http__req_text(rq), "{\"n\":3,\"x\":0.5}\n");
        tm_http__req_free(rq);
        rq = tm_http__req_new();
        assert_int_equal(tm_http_cache_serve(c, rq, "k", "t1"), 1);
        assert_string_equal(tm_http__req_text(rq), "{\"n\":3,\"x\":0.5}\n");
        assert_int_equal(tm_http_cache_serve(c, rq, "other", "t1"), 0);
        assert_int_equal(tm_http_cache_serve(c, rq, "k", "t2"), 0); /* inputs changed */
        assert_int_equal(tm_http_cache_serve(c, rq, "k", "t1"), 0); /* and it was dropped */
        for (int i = 0; i < 9; i++) {
                snprintf(key, sizeof(key), "k%d", i);
                a = json_pack("{s:i}", "i", i);
                assert_int_equal(tm_http_cache_store(c, rq, key, "t", &a), 0);
        }
        assert_int_equal(tm_http_cache_serve(c, rq, "k0", "t"), 0); /* the oldest went */
        assert_int_equal(tm_http_cache_serve(c, rq, "k8", "t"), 1);
        assert_string_equal(tm_http__req_text(rq), "{\"i\":8}\n");
        assert_int_equal(tm_http_cache_serve(c, rq, "k1", "t"), 1);
        /* an entry older than the ttl is not served */
        assert_int_equal(tm_http_cache_new(1, &aged), 0);
        a = json_pack("{s:i}", "i", 1);
        assert_int_equal(tm_http_cache_store(aged, rq, "k", "t", &a), 0);
        usleep(1000);
        assert_int_equal(tm_http_cache_serve(aged, rq, "k", "t"), 0);
        tm_http_cache_free(aged);
        tm_http_cache_free(c);
        tm_http_cache_free(NULL);
        tm_http__req_free(rq);
}

static int h_app(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        *ret = json_pack("{s:s}", "app", (const char *)tm_http_app(rq));
        return 200;
}

/* The app pointer reaches handlers; an open server (anonymous operator)
 * needs no token; after quiesce no new connection is accepted. */
static void test_app_and_quiesce(void **state)
{
        static const struct tm_http_route r[] = {
                { "POST", "/app", h_app, TM_ROLE_OPERATOR, 0, 0 },
        };
        struct tm_http_opts o = TM_HTTP_OPTS_INIT;
        struct sockaddr_in sa = { .sin_family = AF_INET };
        tm_http_server *s = NULL;
        struct resp rs;
        int fd, port;

        o.listen = "127.0.0.1:0";
        o.app = "my-app";
        o.anonymous_role = TM_ROLE_OPERATOR;
        assert_int_equal(tm_http_serve(r, 1, &o, &s), 0);
        port = tm_http_port(s);
        http_do(port, "POST", "/app", NULL, NULL, 0, &rs);
        assert_int_equal(rs.status, 200);
        assert_non_null(strstr(rs.body, "\"app\":\"my-app\""));
        resp_dispose(&rs);
        tm_http_quiesce(s);
        sa.sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        fd = socket(AF_INET, SOCK_STREAM, 0);
        assert_true(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0);
        close(fd);
        tm_http_free(s);
}

static void test_serve_bad_listen(void **state)
{
        struct tm_http_opts o = TM_HTTP_OPTS_INIT;
        tm_http_server *s = NULL;

        o.listen = "nonsense";
        assert_int_equal(tm_http_serve(routes, TM_ARRAY_SIZE(routes), &o, &s), -EINVAL);
        o.listen = "127.0.0.1:99999";
        assert_int_equal(tm_http_serve(routes, TM_ARRAY_SIZE(routes), &o, &s), -EINVAL);
        assert_null(s);
        tm_http_free(NULL);
        tm_http_quiesce(NULL);
}

static void test_metrics(void **state)
{
        tm_metrics *m = NULL;
        tm_buf out = TM_BUF_INIT(1 << 20);
        const char *lab[] = { "component", "db \"x\"\n", "tier", "critical", NULL };
        const double buckets[] = { 1, 10 };

        assert_int_equal(tm_metrics_new(&m), 0);
        assert_int_equal(tm_metrics_define(m, "jobs", TM_METRIC_COUNTER, "h", NULL, 0), -EINVAL);
        assert_int_equal(tm_metrics_define(m, "jobs_total", TM_METRIC_COUNTER, "Jobs run", NULL, 0),
                         0);
        assert_int_equal(tm_metrics_define(m, "jobs_total", TM_METRIC_GAUGE, "x", NULL, 0),
                         -EEXIST);
        assert_int_equal(tm_metrics_define(m, "bad-name", TM_METRIC_GAUGE, "x", NULL, 0), -EINVAL);
        assert_int_equal(tm_metrics_define(m, "size_bytes", TM_METRIC_GAUGE, "Size\\", NULL, 0), 0);
        assert_int_equal(tm_metrics_define(m, "dur_seconds", TM_METRIC_HISTOGRAM, "Duration",
                                           (const double[]){ 2, 1 }, 2),
                         -EINVAL);
        assert_int_equal(
                tm_metrics_define(m, "dur_seconds", TM_METRIC_HISTOGRAM, "Duration", buckets, 2),
                0);
        assert_int_equal(tm_metrics_add(m, "jobs_total", lab, 1), 0);
        assert_int_equal(tm_metrics_add(m, "jobs_total", lab, 2), 0);
        assert_int_equal(tm_metrics_add(m, "jobs_total", lab, -1), -EINVAL);
        assert_int_equal(tm_metrics_set(m, "jobs_total", lab, 1), -EINVAL);
        assert_int_equal(tm_metrics_set(m, "nope", lab, 1), -ENOENT);
        assert_int_equal(tm_metrics_set(m, "size_bytes", NULL, 42), 0);
        assert_int_equal(tm_metrics_observe(m, "dur_seconds", lab, 0.5), 0);
        assert_int_equal(tm_metrics_observe(m, "dur_seconds", lab, 5), 0);
        assert_int_equal(tm_metrics_observe(m, "dur_seconds", lab, 50), 0);
        assert_int_equal(tm_metrics_observe(m, "size_bytes", lab, 50), -EINVAL);
        assert_int_equal(tm_metrics_render(m, &out), 0);
        assert_int_equal(tm_buf_append(&out, "", 1), 0);
        assert_string_equal(
                (char *)out.data,
                "# HELP jobs_total Jobs run\n"
                "# TYPE jobs_total counter\n"
                "jobs_total{component=\"db \\\"x\\\"\\n\",tier=\"critical\"} 3\n"
                "# HELP size_bytes Size\\\\\n"
                "# TYPE size_bytes gauge\n"
                "size_bytes 42\n"
                "# HELP dur_seconds Duration\n"
                "# TYPE dur_seconds histogram\n"
                "dur_seconds_bucket{component=\"db \\\"x\\\"\\n\",tier=\"critical\",le=\"1\"} 1\n"
                "dur_seconds_bucket{component=\"db \\\"x\\\"\\n\",tier=\"critical\",le=\"10\"} 2\n"
                "dur_seconds_bucket{component=\"db \\\"x\\\"\\n\",tier=\"critical\",le=\"+Inf\"} "
                "3\n"
                "dur_seconds_sum{component=\"db \\\"x\\\"\\n\",tier=\"critical\"} 55.5\n"
                "dur_seconds_count{component=\"db \\\"x\\\"\\n\",tier=\"critical\"} 3\n");
        assert_int_equal(tm_metrics_reset(m, "jobs_total"), 0);
        assert_int_equal(tm_metrics_reset(m, "nope"), -ENOENT);
        out.len = 0;
        assert_int_equal(tm_metrics_render(m, &out), 0);
        assert_int_equal(tm_buf_append(&out, "", 1), 0);
        assert_null(strstr((char *)out.data, "jobs_total{"));
        tm_buf_dispose(&out);
        tm_metrics_free(m);
        tm_metrics_free(NULL);
}

/* ---- TLS certificate reload ---- */

/* Run argv (a program on PATH) and wait; its stderr is dropped. */
static int run_argv(char *const argv[])
{
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int st, r;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return -r;
        if (waitpid(pid, &st, 0) != pid)
                return -errno;
        return WIFEXITED(st) ? WEXITSTATUS(st) : -EINTR;
}

/* A self-signed EC certificate for CN=cn in dir/cn.{crt,key}. */
static void make_cert(const char *dir, const char *cn)
{
        char subj[64], key[128], crt[128];
        char *argv[] = { "openssl",
                         "req",
                         "-x509",
                         "-newkey",
                         "ec",
                         "-pkeyopt",
                         "ec_paramgen_curve:prime256v1",
                         "-nodes",
                         "-subj",
                         subj,
                         "-days",
                         "2",
                         "-keyout",
                         key,
                         "-out",
                         crt,
                         NULL };

        snprintf(subj, sizeof(subj), "/CN=%s", cn);
        snprintf(key, sizeof(key), "%s/%s.key", dir, cn);
        snprintf(crt, sizeof(crt), "%s/%s.crt", dir, cn);
        assert_int_equal(run_argv(argv), 0);
}

static char *slurp(const char *dir, const char *name)
{
        char path[256];
        tm_buf b = TM_BUF_INIT(1 << 20);

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        assert_int_equal(tm_file_read_all(path, 1 << 20, &b), 0);
        assert_int_equal(tm_buf_append(&b, "", 1), 0);
        return (char *)b.data;
}

static size_t sink(char *p, size_t size, size_t n, void *ud)
{
        return size * n;
}

/* GET /health over HTTPS with the easy handle h (so a second call may reuse
 * its connection); returns the server certificate's subject CN, or "" when
 * the request failed. */
static const char *tls_get(CURL *h, int port, char *cn, size_t cn_size)
{
        struct curl_certinfo *ci = NULL;
        char url[64];
        long status = 0;
        CURLcode rc;

        cn[0] = '\0';
        snprintf(url, sizeof(url), "https://127.0.0.1:%d/health", port);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
        rc = curl_easy_perform(h);
        if (rc != CURLE_OK) {
                print_message("https://127.0.0.1:%d: %s\n", port, curl_easy_strerror(rc));
                return cn;
        }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        assert_int_equal(status, 200);
        /* a reused connection reports no certificate: say so */
        if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci ||
            ci->num_of_certs < 1) {
                snprintf(cn, cn_size, "(reused)");
                return cn;
        }
        /* "Subject:CN = alpha" (OpenSSL's one-line form) or "Subject:CN=alpha" */
        for (struct curl_slist *l = ci->certinfo[0]; l; l = l->next) {
                const char *p = strstr(l->data, "CN");

                if (strncmp(l->data, "Subject:", 8) != 0 || !p)
                        continue;
                p += 2 + strspn(p + 2, " =");
                snprintf(cn, cn_size, "%.*s", (int)strcspn(p, ",/ \n"), p);
                break;
        }
        return cn;
}

static void test_tls_reload(void **state)
{
        struct tm_http_opts o = TM_HTTP_OPTS_INIT;
        tm_http_server *s = NULL, *plain = NULL;
        char dir[] = "/tmp/tm-http-tls-XXXXXX", path[128], path2[128], cn[64];
        char *c1, *k1, *c2, *k2;
        CURL *kept, *h;
        int port;

        assert_non_null(mkdtemp(dir));
        make_cert(dir, "alpha");
        make_cert(dir, "beta");
        c1 = slurp(dir, "alpha.crt");
        k1 = slurp(dir, "alpha.key");
        c2 = slurp(dir, "beta.crt");
        k2 = slurp(dir, "beta.key");
        o.listen = "127.0.0.1:0";
        o.tls_cert_pem = c1;
        o.tls_key_pem = k1;
        assert_int_equal(tm_http_serve(routes, TM_ARRAY_SIZE(routes), &o, &s), 0);
        port = tm_http_port(s);
        kept = curl_easy_init();
        h = curl_easy_init();
        assert_non_null(kept);
        assert_non_null(h);
        assert_string_equal(tls_get(kept, port, cn, sizeof(cn)), "alpha");

        /* new connections get the new pair on the same port; the kept-alive
         * connection opened before the reload still answers */
        assert_int_equal(tm_http_tls_reload(s, c2, k2), 0);
        assert_int_equal(tm_http_port(s), port);
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        assert_string_equal(tls_get(h, port, cn, sizeof(cn)), "beta");
        assert_string_equal(tls_get(kept, port, cn, sizeof(cn)), "(reused)");

        /* a pair that does not load is refused and the served one stays */
        assert_int_equal(tm_http_tls_reload(s, c1, "not a key"), -EINVAL);
        assert_int_equal(tm_http_tls_reload(s, "garbage", k1), -EINVAL);
        assert_string_equal(tls_get(h, port, cn, sizeof(cn)), "beta");

        /* from files, twice (the first retired daemon is stopped then) */
        snprintf(path, sizeof(path), "%s/alpha.crt", dir);
        snprintf(path2, sizeof(path2), "%s/alpha.key", dir);
        assert_int_equal(tm_http_tls_reload_files(s, path, path2), 0);
        assert_string_equal(tls_get(h, port, cn, sizeof(cn)), "alpha");
        assert_int_equal(tm_http_tls_reload_files(s, path, "/nonexistent/key.pem"), -ENOENT);
        snprintf(path, sizeof(path), "%s/beta.crt", dir);
        snprintf(path2, sizeof(path2), "%s/beta.key", dir);
        assert_int_equal(tm_http_tls_reload_files(s, path, path2), 0);
        assert_string_equal(tls_get(h, port, cn, sizeof(cn)), "beta");
        assert_int_equal(tm_http_tls_reload_files(s, NULL, path2), -EINVAL);

        /* a plain HTTP server has no certificate to swap */
        o.tls_cert_pem = o.tls_key_pem = NULL;
        assert_int_equal(tm_http_serve(routes, TM_ARRAY_SIZE(routes), &o, &plain), 0);
        assert_int_equal(tm_http_tls_reload(plain, c2, k2), -EINVAL);
        assert_int_equal(tm_http_tls_reload(NULL, c2, k2), -EINVAL);

        curl_easy_cleanup(kept);
        curl_easy_cleanup(h);
        tm_http_free(plain);
        tm_http_free(s);
        free(c1);
        free(k1);
        free(c2);
        free(k2);
        for (size_t i = 0; i < 4; i++) {
                static const char *const names[] = { "alpha.crt", "alpha.key", "beta.crt",
                                                     "beta.key" };

                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                assert_int_equal(unlink(path), 0);
        }
        assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_routing_and_params, setup, teardown),
                cmocka_unit_test_setup_teardown(test_error_mapping, setup, teardown),
                cmocka_unit_test_setup_teardown(test_auth_roles, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bodies, setup, teardown),
                cmocka_unit_test_setup_teardown(test_endless_body_cut_off, setup, teardown),
                cmocka_unit_test_setup_teardown(test_access_and_audit_log, setup, teardown),
                cmocka_unit_test_setup_teardown(test_audit_shared, setup, teardown),
                cmocka_unit_test(test_cache),
                cmocka_unit_test(test_app_and_quiesce),
                cmocka_unit_test(test_serve_bad_listen),
                cmocka_unit_test(test_metrics),
                cmocka_unit_test(test_tls_reload),
        };

        int r;

        curl_global_init(CURL_GLOBAL_DEFAULT);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        curl_global_cleanup();
        return r;
}
