/*
 * The S3 driver without an S3: the SigV4 signatures libcurl makes with our
 * settings against AWS's published examples (S3 API reference, "Signature
 * Calculations for the Authorization Header"), the requests the driver sends
 * and its error mapping and retries against a scripted loopback server, the
 * XML reader, and the parsing of "s3:" locations.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include <tidemark/backend.h>
#include <tidemark/crypto.h>

#include "backend/s3_internal.h"

/* ---- a scripted loopback HTTP server: one request per connection ---- */

#define SRV_MAX 8

struct srv {
        int fd, port, n;
        pthread_t th;
        const char *resp[SRV_MAX];
        char *req[SRV_MAX]; /* head + body as received, NUL-terminated */
        size_t req_len[SRV_MAX];
};

static size_t content_length(const char *head)
{
        const char *p = strcasestr(head, "\r\ncontent-length:");

        return p ? strtoul(p + 17, NULL, 10) : 0;
}

static void *srv_main(void *arg)
{
        struct srv *s = arg;
        int i;

        for (i = 0; i < s->n; i++) {
                size_t cap = 1 << 20, len = 0, want = 0;
                char *buf = calloc(1, cap + 1);
                char *end;
                int c = accept(s->fd, NULL, NULL);

                if (c < 0 || !buf) {
                        free(buf);
                        break;
                }
                for (;;) {
                        ssize_t got = recv(c, buf + len, cap - len, 0);

                        if (got <= 0)
                                break;
                        len += (size_t)got;
                        buf[len] = 0;
                        end = strstr(buf, "\r\n\r\n");
                        if (end) {
                                *end = 0;
                                want = (size_t)(end - buf) + 4 + content_length(buf);
                                *end = '\r';
                                if (len >= want || len == cap)
                                        break;
                        }
                }
                s->req[i] = buf;
                s->req_len[i] = len;
                if (write(c, s->resp[i], strlen(s->resp[i])) < 0)
                        fprintf(stderr, "srv: write failed\n");
                close(c);
        }
        return NULL;
}

static void srv_start(struct srv *s)
{
        struct sockaddr_in a = { .sin_family = AF_INET };
        socklen_t al = sizeof(a);

        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(s->fd >= 0);
        assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(s->fd, 8), 0);
        assert_int_equal(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
        s->port = ntohs(a.sin_port);
        assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_join(struct srv *s)
{
        pthread_join(s->th, NULL);
        close(s->fd);
}

static void srv_free(struct srv *s)
{
        int i;

        for (i = 0; i < SRV_MAX; i++)
                free(s->req[i]);
}

/* The value of header name (case-insensitive) in a captured request, or "". */
static void header_of(const char *req, const char *name, char *out, size_t cap)
{
        const char *p = req;
        size_t n = strlen(name);

        out[0] = 0;
        while ((p = strstr(p, "\r\n")) != NULL) {
                p += 2;
                if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
                        const char *v = p + n + 1, *e;

                        while (*v == ' ')
                                v++;
                        e = strstr(v, "\r\n");
                        if (!e || (size_t)(e - v) >= cap)
                                return;
                        memcpy(out, v, (size_t)(e - v));
                        out[e - v] = 0;
                        return;
                }
        }
}

/* ---- AWS's published SigV4 examples for S3 ---- */

#define EX_HOST  "examplebucket.s3.amazonaws.com"
#define EX_CRED  "Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
#define EMPTY256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

static const char OK_EMPTY[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

static size_t body_off;

static size_t body_read(char *p, size_t size, size_t nmemb, void *userdata)
{
        const char *body = userdata;
        size_t n = TM_MIN(size * nmemb, strlen(body) - body_off);

        memcpy(p, body + body_off, n);
        body_off += n;
        return n;
}

struct example {
        const char *method, *path, *body;
        const char *hdrs[4];
        const char *signed_headers, *signature;
};

/* Send the example through libcurl exactly as the driver configures it (AWS
 * SigV4 "aws:amz:<region>:s3", our own x-amz-content-sha256 and x-amz-date)
 * and return the Authorization header the server saw. */
static void sign_example(const struct example *ex, char *auth, size_t cap)
{
        struct srv s = { .n = 1, .resp = { OK_EMPTY } };
        struct curl_slist *hl = NULL;
        char url[256], connect_to[128];
        CURL *h;
        size_t i;

        srv_start(&s);
        h = curl_easy_init();
        assert_non_null(h);
        snprintf(url, sizeof(url), "http://" EX_HOST "%s", ex->path);
        /* keep the Host header the example signs; connect to the loopback */
        snprintf(connect_to, sizeof(connect_to), EX_HOST ":80:127.0.0.1:%d", s.port);
        struct curl_slist *ct = curl_slist_append(NULL, connect_to);
        hl = curl_slist_append(hl, "x-amz-date: 20130524T000000Z");
        for (i = 0; i < TM_ARRAY_SIZE(ex->hdrs) && ex->hdrs[i]; i++)
                hl = curl_slist_append(hl, ex->hdrs[i]);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, ct);
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
        curl_easy_setopt(h, CURLOPT_USERNAME, "AKIAIOSFODNN7EXAMPLE");
        curl_easy_setopt(h, CURLOPT_PASSWORD, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        if (ex->body) {
                /* as the driver uploads: UPLOAD with a read callback */
                body_off = 0;
                curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)strlen(ex->body));
                curl_easy_setopt(h, CURLOPT_READFUNCTION, body_read);
                curl_easy_setopt(h, CURLOPT_READDATA, (void *)ex->body);
        }
        assert_int_equal(curl_easy_perform(h), CURLE_OK);
        curl_easy_cleanup(h);
        curl_slist_free_all(hl);
        curl_slist_free_all(ct);
        srv_join(&s);
        assert_non_null(s.req[0]);
        assert_true(strncmp(s.req[0], ex->method, strlen(ex->method)) == 0);
        header_of(s.req[0], "Authorization", auth, cap);
        srv_free(&s);
}

static void check_example(const struct example *ex)
{
        char auth[1024], want[512];

        sign_example(ex, auth, sizeof(auth));
        printf("  %s %s -> %s\n", ex->method, ex->path, auth);
        assert_true(strncmp(auth, "AWS4-HMAC-SHA256 ", 17) == 0);
        assert_non_null(strstr(auth, EX_CRED));
        snprintf(want, sizeof(want), "SignedHeaders=%s", ex->signed_headers);
        assert_non_null(strstr(auth, want));
        snprintf(want, sizeof(want), "Signature=%s", ex->signature);
        assert_non_null(strstr(auth, want));
}

static void test_sigv4_get_object_range(void **state)
{
        static const struct example ex = {
                "GET",
                "/test.txt",
                NULL,
                { "Range: bytes=0-9", "x-amz-content-sha256: " EMPTY256 },
                "host;range;x-amz-content-sha256;x-amz-date",
                "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        };
        check_example(&ex);
}

static void test_sigv4_put_object(void **state)
{
        /* "test$file.text": the key is URI-encoded in the URL; curl signs the
         * path as sent */
        static const struct example ex = {
                "PUT",
                "/test%24file.text",
                "Welcome to Amazon S3.",
                { "Date: Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class: REDUCED_REDUNDANCY",
                  "x-amz-content-sha256: "
                  "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072" },
                "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
                "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        };
        check_example(&ex);
}

static void test_sigv4_get_lifecycle(void **state)
{
        /* "?lifecycle" must be written "?lifecycle=": curl signs the query as given */
        static const struct example ex = {
                "GET",
                "/?lifecycle=",
                NULL,
                { "x-amz-content-sha256: " EMPTY256 },
                "host;x-amz-content-sha256;x-amz-date",
                "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        };
        check_example(&ex);
}

static void test_sigv4_list_objects(void **state)
{
        static const struct example ex = {
                "GET",
                "/?max-keys=2&prefix=J",
                NULL,
                { "x-amz-content-sha256: " EMPTY256 },
                "host;x-amz-content-sha256;x-amz-date",
                "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        };
        check_example(&ex);
}

/* ---- the driver against a scripted server ---- */

static tm_backend *open_at(int port, int max_attempts, const char *token)
{
        char ep[64];
        struct tm_s3_opts o = { .bucket = "bkt",
                                .prefix = "repo",
                                .region = "eu-west-3",
                                .access_key = "AKTEST",
                                .secret_key = "secret/key+1",
                                .session_token = token,
                                .path_style = 1,
                                .max_attempts = max_attempts,
                                .stall_timeout_s = 5,
                                .list_page = 2 };
        tm_backend *b = NULL;

        snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", port);
        o.endpoint = ep;
        assert_int_equal(tm_backend_open_s3(&o, &b), 0);
        return b;
}

static void test_driver_put_request(void **state)
{
        struct srv s = { .n = 1, .resp = { OK_EMPTY } };
        tm_backend *b;
        tm_id sum;
        char hex[TM_ID_HEX_LEN + 1], v[512];
        const char *body;

        srv_start(&s);
        b = open_at(s.port, 1, "tok123");
        assert_int_equal(tm_backend_put(b, "data/ab/obj", "hello", 5), 0);
        srv_join(&s);
        assert_true(strncmp(s.req[0], "PUT /bkt/repo/data/ab/obj HTTP/1.1\r\n", 36) == 0);
        tm_crypto_sha256("hello", 5, &sum);
        tm_id_hex(&sum, hex);
        header_of(s.req[0], "x-amz-content-sha256", v, sizeof(v));
        assert_string_equal(v, hex);
        header_of(s.req[0], "x-amz-security-token", v, sizeof(v));
        assert_string_equal(v, "tok123");
        header_of(s.req[0], "Authorization", v, sizeof(v));
        /* every header we add is signed: an empty "Expect:" would be too */
        assert_null(strstr(v, "expect"));
        assert_non_null(strstr(v, "Credential=AKTEST/"));
        assert_non_null(strstr(v, "/eu-west-3/s3/aws4_request"));
        assert_non_null(strstr(v, "x-amz-content-sha256"));
        assert_non_null(strstr(v, "x-amz-security-token"));
        body = strstr(s.req[0], "\r\n\r\n");
        assert_non_null(body);
        assert_string_equal(body + 4, "hello");
        snprintf(v, sizeof(v), "s3:http://127.0.0.1:%d/bkt/repo", s.port);
        assert_string_equal(tm_backend_location(b), v);
        tm_backend_free(b);
        srv_free(&s);
}

#define R404 "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
#define R403                                                                                \
        "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 68\r\n" \
        "Connection: close\r\n\r\n"                                                         \
        "<Error><Code>SignatureDoesNotMatch</Code><Message>x</Message></Error>"
#define R503                                                                        \
        "HTTP/1.1 503 Slow Down\r\nContent-Length: 46\r\nConnection: close\r\n\r\n" \
        "<Error><Code>SlowDown</Code><Message/></Error>"
#define R500 "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

static void test_driver_error_mapping(void **state)
{
        struct srv s = { .n = 3, .resp = { R404, R403, R404 } };
        tm_backend *b;
        tm_buf buf = TM_BUF_INIT(0);
        uint64_t size = 7;

        srv_start(&s);
        b = open_at(s.port, 3, NULL);
        assert_int_equal(tm_backend_head(b, "config", &size), -ENOENT);
        assert_int_equal(size, 7);
        /* 403 is final: no retry, no fourth request */
        assert_int_equal(tm_backend_get(b, "config", 0, &buf), -EACCES);
        assert_int_equal(tm_backend_remove(b, "keys/x"), -ENOENT);
        srv_join(&s);
        assert_true(strncmp(s.req[0], "HEAD /bkt/repo/config ", 22) == 0);
        assert_true(strncmp(s.req[1], "GET /bkt/repo/config ", 21) == 0);
        assert_true(strncmp(s.req[2], "HEAD /bkt/repo/keys/x ", 22) == 0);
        tm_backend_free(b);
        tm_buf_dispose(&buf);
        srv_free(&s);
}

static void test_driver_retries(void **state)
{
        /* 503 SlowDown, 500, a body cut short (Content-Length 10, 3 bytes), then 200 */
        struct srv s = { .n = 4,
                         .resp = { R503, R500,
                                   "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: "
                                   "close\r\n\r\nabc",
                                   "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: "
                                   "close\r\n\r\nxyz" } };
        struct tm_backend_stats st;
        tm_backend *b;
        tm_buf buf = TM_BUF_INIT(0);

        srv_start(&s);
        b = open_at(s.port, 4, NULL);
        assert_int_equal(tm_backend_get(b, "index/i1", 0, &buf), 0);
        assert_int_equal(buf.len, 3);
        assert_memory_equal(buf.data, "xyz", 3);
        assert_int_equal(tm_backend_get_stats(b, &st), 0);
        assert_int_equal(st.requests, 4);
        assert_int_equal(st.retries, 3);
        srv_join(&s);
        tm_backend_free(b);
        tm_buf_dispose(&buf);
        srv_free(&s);
}

static void test_driver_retries_exhausted(void **state)
{
        struct srv s = { .n = 2, .resp = { R503, R503 } };
        tm_backend *b;

        srv_start(&s);
        b = open_at(s.port, 2, NULL);
        assert_int_equal(tm_backend_put(b, "locks/l1", "x", 1), -EAGAIN);
        srv_join(&s);
        tm_backend_free(b);
        srv_free(&s);
}

static void test_driver_range(void **state)
{
        struct srv s = { .n = 2,
                         .resp = { "HTTP/1.1 206 Partial Content\r\nContent-Length: 4\r\n"
                                   "Connection: close\r\n\r\ndefg",
                                   "HTTP/1.1 206 Partial Content\r\nContent-Length: 2\r\n"
                                   "Connection: close\r\n\r\nde" } };
        tm_backend *b;
        tm_buf buf = TM_BUF_INIT(0);
        char v[128];

        srv_start(&s);
        b = open_at(s.port, 1, NULL);
        assert_int_equal(tm_backend_get_range(b, "data/00/p", 3, 4, &buf), 0);
        assert_int_equal(buf.len, 4);
        assert_memory_equal(buf.data, "defg", 4);
        /* an object shorter than asked is a truncation */
        assert_int_equal(tm_backend_get_range(b, "data/00/p", 3, 4, &buf), -EBADMSG);
        srv_join(&s);
        header_of(s.req[0], "Range", v, sizeof(v));
        assert_string_equal(v, "bytes=3-6");
        tm_backend_free(b);
        tm_buf_dispose(&buf);
        srv_free(&s);
}

struct names {
        char all[512];
        int n;
};

static int collect(const char *name, uint64_t size, void *userdata)
{
        struct names *c = userdata;
        size_t l = strlen(c->all);

        snprintf(c->all + l, sizeof(c->all) - l, "%s=%llu;", name, (unsigned long long)size);
        c->n++;
        return 0;
}

#define PAGE1                                                                                      \
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"                                             \
        "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"                     \
        "<Name>bkt</Name><IsTruncated>true</IsTruncated>"                                          \
        "<NextContinuationToken>tok/1+=</NextContinuationToken>"                                   \
        "<Contents><Key>repo/data/aa/x1</Key><Size>10</Size><StorageClass>STANDARD</StorageClass>" \
        "</Contents><Contents><Key>repo/data/.tmp</Key><Size>1</Size></Contents>"                  \
        "</ListBucketResult>"
#define PAGE2                                                                 \
        "<ListBucketResult><IsTruncated>false</IsTruncated>"                  \
        "<Contents><Key>repo/data/bb/x&amp;2</Key><Size>20</Size></Contents>" \
        "</ListBucketResult>"

static void test_driver_list_pages(void **state)
{
        static char r1[1024], r2[1024];
        struct srv s = { .n = 2, .resp = { r1, r2 } };
        struct names c = { .n = 0 };
        tm_backend *b;

        snprintf(r1, sizeof(r1),
                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(PAGE1), PAGE1);
        snprintf(r2, sizeof(r2),
                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(PAGE2), PAGE2);
        srv_start(&s);
        b = open_at(s.port, 1, NULL);
        assert_int_equal(tm_backend_list(b, "data/", collect, &c), 0);
        srv_join(&s);
        /* the temp-looking key is skipped, the entity decoded */
        assert_string_equal(c.all, "data/aa/x1=10;data/bb/x&2=20;");
        assert_true(strncmp(s.req[0], "GET /bkt?list-type=2&max-keys=2&prefix=repo%2Fdata%2F ",
                            54) == 0);
        assert_true(strncmp(s.req[1],
                            "GET /bkt?continuation-token=tok%2F1%2B%3D&list-type=2&max-keys=2&"
                            "prefix=repo%2Fdata%2F ",
                            86) == 0);
        tm_backend_free(b);
        srv_free(&s);
}

/* ---- XML reader ---- */

static int xml_dump(const char *path, int depth, const char *text, size_t len, void *userdata)
{
        tm_buf *out = userdata;

        return tm_buf_printf(out, "%d:%s=%s|", depth, path, text ? text : "(children)");
}

static int xml_run(const char *doc, tm_buf *out)
{
        tm_buf_clear(out);
        return tm_s3__xml_walk(doc, strlen(doc), xml_dump, out);
}

static void test_xml(void **state)
{
        tm_buf out = TM_BUF_INIT(0);
        static const char *bad[] = {
                "",
                "text",
                "<a>",
                "<a></b>",
                "<a><b></a></b>",
                "<a/><b/>",
                "<a><!-- c --></a>",
                "<a><![CDATA[x]]></a>",
                "<!DOCTYPE a><a/>",
                "<a>&bogus;</a>",
                "<a>&#0;</a>",
                "<a>&#xD800;</a>",
                "<a x=1/>",
                "<a x=\"1/>",
                "<a>x > y</a>",
                "<?xml version=\"1.0\"",
                "<a></a>trailing",
                "<1/>",
                "</a>", /* a close tag with nothing open (fuzz_s3xml) */
        };
        char deep[4096] = "";
        size_t i;
        int d;

        assert_int_equal(
                xml_run("<?xml version=\"1.0\"?>\n<R a='1' b=\"2\"><K>x&lt;&amp;&#65;&#x42;"
                        "&quot;&apos;&gt;</K><E/><C><D>1</D></C></R>",
                        &out),
                0);
        assert_string_equal((const char *)out.data,
                            "2:R/K=x<&AB\"'>|2:R/E=|3:R/C/D=1|2:R/C=(children)|1:R=(children)|");
        assert_int_equal(xml_run("<a>&#x20AC;</a>", &out), 0);
        assert_string_equal((const char *)out.data, "1:a=\xe2\x82\xac|");
        for (i = 0; i < TM_ARRAY_SIZE(bad); i++) {
                int r = xml_run(bad[i], &out);

                if (r != -EBADMSG)
                        fail_msg("accepted bad XML #%zu '%s' (r=%d)", i, bad[i], r);
        }
        /* depth is bounded */
        for (d = 0, i = 0; d < TM_S3_XML_MAX_DEPTH + 1; d++)
                i += (size_t)snprintf(deep + i, sizeof(deep) - i, "<a>");
        for (d = 0; d < TM_S3_XML_MAX_DEPTH + 1; d++)
                i += (size_t)snprintf(deep + i, sizeof(deep) - i, "</a>");
        assert_int_equal(xml_run(deep, &out), -EBADMSG);
        tm_buf_dispose(&out);
}

/* ---- locations ---- */

static void test_parse_url(void **state)
{
        char *e = NULL, *b = NULL, *p = NULL;
        static const char *bad[] = { "ftp://h/b",       "http://",         "http://h",
                                     "http://h/",       "http:///b",       "http://h//p",
                                     "http://h/b/../x", "http://h/b/p?x=1" };
        size_t i;

        assert_int_equal(
                tm_s3__parse_url("https://s3.example.com:9000/backups/a/repo/", &e, &b, &p), 0);
        assert_string_equal(e, "https://s3.example.com:9000");
        assert_string_equal(b, "backups");
        assert_string_equal(p, "a/repo");
        free(e);
        free(b);
        free(p);
        assert_int_equal(tm_s3__parse_url("http://127.0.0.1:1/bkt", &e, &b, &p), 0);
        assert_string_equal(p, "");
        free(e);
        free(b);
        free(p);
        for (i = 0; i < TM_ARRAY_SIZE(bad); i++)
                if (tm_s3__parse_url(bad[i], &e, &b, &p) != -EINVAL)
                        fail_msg("accepted '%s'", bad[i]);
}

static void test_uri_encode(void **state)
{
        tm_buf out = TM_BUF_INIT(0);

        assert_int_equal(tm_s3__uri_encode(&out, "a/b c$~_.-+=\xc3\xa9", 1), 0);
        assert_string_equal((const char *)out.data, "a/b%20c%24~_.-%2B%3D%C3%A9");
        tm_buf_clear(&out);
        assert_int_equal(tm_s3__uri_encode(&out, "a/b", 0), 0);
        assert_string_equal((const char *)out.data, "a%2Fb");
        tm_buf_dispose(&out);
}

static void test_open(void **state)
{
        char dir[] = "/tmp/tm-s3sign-XXXXXX";
        tm_backend *b = NULL;
        struct tm_backend_stats st;
        struct tm_s3_opts o = {
                .endpoint = "http://h:1", .bucket = "b", .access_key = "a", .secret_key = "s"
        };

        /* bad options */
        o.endpoint = "h:1";
        assert_int_equal(tm_backend_open_s3(&o, &b), -EINVAL);
        o.endpoint = "http://h:1/path";
        assert_int_equal(tm_backend_open_s3(&o, &b), -EINVAL);
        o.endpoint = "http://h:1";
        o.secret_key = NULL;
        assert_int_equal(tm_backend_open_s3(&o, &b), -EINVAL);
        o.secret_key = "s";
        o.session_token = "bad\r\ninjected: 1";
        assert_int_equal(tm_backend_open_s3(&o, &b), -EINVAL);
        o.session_token = NULL;
        /* virtual-host addressing */
        o.prefix = "p/q";
        assert_int_equal(tm_backend_open_s3(&o, &b), 0);
        assert_string_equal(tm_backend_location(b), "s3:http://h:1/b/p/q");
        assert_int_equal(tm_backend_clean_temp(b, 0), 0);
        tm_backend_free(b);
        b = NULL;

        /* open_url: local paths go to the local driver */
        assert_non_null(mkdtemp(dir));
        assert_int_equal(tm_backend_open_url(dir, 0, &b), 0);
        assert_int_equal(tm_backend_get_stats(b, &st), 0);
        assert_int_equal(st.requests, 0);
        tm_backend_free(b);
        b = NULL;
        assert_int_equal(rmdir(dir), 0);
        /* s3: needs credentials (environment, else the credentials file) */
        setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        assert_int_equal(tm_backend_open_url("s3:http://127.0.0.1:1/bkt/r", 0, &b), -EINVAL);
        setenv("AWS_ACCESS_KEY_ID", "k", 1);
        setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
        assert_int_equal(tm_backend_open_url("s3:http://127.0.0.1:1/bkt", 0, &b), 0);
        assert_string_equal(tm_backend_location(b), "s3:http://127.0.0.1:1/bkt");
        tm_backend_free(b);
        b = NULL;
        assert_int_equal(tm_backend_open_url("s3:http://127.0.0.1:1", 0, &b), -EINVAL);
        assert_null(b);
        unsetenv("AWS_SHARED_CREDENTIALS_FILE");
}

static void test_virtual_host(void **state)
{
        /* through an HTTP proxy (the scripted server) no DNS is needed for
         * bkt.s3.example.test, and the request line shows the full URL */
        struct srv s = { .n = 1, .resp = { OK_EMPTY } };
        struct tm_s3_opts o = { .endpoint = "http://s3.example.test",
                                .bucket = "bkt",
                                .prefix = "p",
                                .access_key = "AK",
                                .secret_key = "SK",
                                .path_style = 0,
                                .max_attempts = 1 };
        tm_backend *b = NULL;
        char proxy[64], v[512];

        srv_start(&s);
        snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%d", s.port);
        setenv("http_proxy", proxy, 1);
        unsetenv("no_proxy");
        unsetenv("NO_PROXY");
        assert_int_equal(tm_backend_open_s3(&o, &b), 0);
        assert_int_equal(tm_backend_put(b, "keys/k", "x", 1), 0);
        unsetenv("http_proxy");
        srv_join(&s);
        assert_true(strncmp(s.req[0], "PUT http://bkt.s3.example.test/p/keys/k HTTP/1.1\r\n", 50) ==
                    0);
        header_of(s.req[0], "Host", v, sizeof(v));
        assert_string_equal(v, "bkt.s3.example.test");
        assert_string_equal(tm_backend_location(b), "s3:http://s3.example.test/bkt/p");
        tm_backend_free(b);
        srv_free(&s);
}

static void test_credentials_file(void **state)
{
        char dir[] = "/tmp/tm-s3cred-XXXXXX", path[128], url[128], v[512];
        struct srv s = { .n = 1, .resp = { OK_EMPTY } };
        tm_backend *b = NULL;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/credentials", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs("# test\n[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n"
              "\n[ other ]\r\naws_access_key_id=AKOTHER\r\n  aws_secret_access_key = s2 \n"
              "aws_session_token = tok-from-file\n[third]\naws_access_key_id = AKTHIRD\n",
              f);
        assert_int_equal(fclose(f), 0);
        unsetenv("AWS_ACCESS_KEY_ID");
        unsetenv("AWS_SECRET_ACCESS_KEY");
        unsetenv("AWS_SESSION_TOKEN");
        setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
        setenv("AWS_PROFILE", "other", 1);
        srv_start(&s);
        snprintf(url, sizeof(url), "s3:http://127.0.0.1:%d/bkt/r", s.port);
        assert_int_equal(tm_backend_open_url(url, 0, &b), 0);
        assert_int_equal(tm_backend_put(b, "keys/k", "x", 1), 0);
        srv_join(&s);
        header_of(s.req[0], "Authorization", v, sizeof(v));
        assert_non_null(strstr(v, "Credential=AKOTHER/"));
        header_of(s.req[0], "x-amz-security-token", v, sizeof(v));
        assert_string_equal(v, "tok-from-file");
        tm_backend_free(b);
        b = NULL;
        /* a profile without a secret, or a missing one: no credentials */
        setenv("AWS_PROFILE", "third", 1);
        assert_int_equal(tm_backend_open_url(url, 0, &b), -EINVAL);
        setenv("AWS_PROFILE", "nope", 1);
        assert_int_equal(tm_backend_open_url(url, 0, &b), -EINVAL);
        unsetenv("AWS_PROFILE");
        unsetenv("AWS_SHARED_CREDENTIALS_FILE");
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
        srv_free(&s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sigv4_get_object_range),
                cmocka_unit_test(test_sigv4_put_object),
                cmocka_unit_test(test_sigv4_get_lifecycle),
                cmocka_unit_test(test_sigv4_list_objects),
                cmocka_unit_test(test_driver_put_request),
                cmocka_unit_test(test_driver_error_mapping),
                cmocka_unit_test(test_driver_retries),
                cmocka_unit_test(test_driver_retries_exhausted),
                cmocka_unit_test(test_driver_range),
                cmocka_unit_test(test_driver_list_pages),
                cmocka_unit_test(test_xml),
                cmocka_unit_test(test_parse_url),
                cmocka_unit_test(test_uri_encode),
                cmocka_unit_test(test_open),
                cmocka_unit_test(test_virtual_host),
                cmocka_unit_test(test_credentials_file),
        };

        curl_global_init(CURL_GLOBAL_DEFAULT);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
