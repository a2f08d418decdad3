/*
 * The S3 backend: objects under "<prefix>/" of a bucket on any S3-compatible
 * store, through libcurl. Requests are signed by libcurl's AWS Signature V4
 * (CURLOPT_AWS_SIGV4) with three rules that make its output match the spec
 * and a verifying server (see TESTBED.md): we add x-amz-content-sha256 (the
 * hex SHA-256 of the whole body) ourselves, queries are written sorted by
 * key, RFC 3986-encoded and with '=' on every key, and every x-amz-* header
 * we add is signed by curl automatically. Payloads are always signed whole:
 * streaming (aws-chunked) uploads are not used.
 *
 * Connections: a small pool of CURL easy handles; a handle keeps its
 * connection cache across requests, so consecutive requests from one thread
 * reuse a connection. Handles are taken and returned under a mutex; a
 * handle is used by one thread at a time.
 *
 * Retries: 5xx, SlowDown, 408/429, connection resets, empty or truncated
 * answers and stalls are retried with exponential backoff (100 ms doubling,
 * at most 5 s) with jitter (a uniform delay in [d/2, d]) up to max_attempts
 * times. Each retry is logged and counted; the last failure is logged naming
 * the object.
 *
 * Writes are atomic on S3 (an object appears whole or not at all), so there
 * are no temp objects and clean_temp has nothing to do.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include <tidemark/crypto.h>
#include <tidemark/log.h>

#include "backend_internal.h"
#include "s3_internal.h"

#define S3_POOL_MAX         16
#define S3_ERR_BODY_MAX     (64 * 1024)
#define S3_LIST_BODY_MAX    (16 * 1024 * 1024)
#define S3_SMALL_BODY_MAX   (1024 * 1024)
#define S3_BACKOFF_BASE_MS  100
#define S3_BACKOFF_CAP_MS   5000
#define S3_DEF_ATTEMPTS     6
#define S3_DEF_STALL_S      30
#define S3_DEF_MP_THRESHOLD ((size_t)64 << 20)
#define S3_DEF_PART_SIZE    ((size_t)16 << 20)
#define S3_MAX_PARTS        10000
#define S3_MP_PARALLEL      4

struct s3 {
        struct tm_backend base;
        char *endpoint; /* scheme://host[:port] */
        char *bucket, *prefix, *region, *access, *secret, *token, *ca_file, *storage_class;
        char *base_url; /* up to and excluding the key's leading '/' */
        char *location;
        char *sigv4; /* "aws:amz:<region>:s3" */
        int path_style, max_attempts, stall_s, list_page;
        size_t mp_threshold, part_size;
        pthread_mutex_t lock;
        CURL *pool[S3_POOL_MAX];
        int npool;
        atomic_uint_fast64_t requests, retries;
};

static const struct tm_backend_ops s3_ops;

static struct s3 *to_s3(tm_backend *b)
{
        return (struct s3 *)b;
}

/* ---- helpers ---- */

int tm_s3__uri_encode(tm_buf *b, const char *s, int keep_slash)
{
        static const char hex[] = "0123456789ABCDEF";
        int r;

        for (; *s; s++) {
                unsigned char c = (unsigned char)*s;

                if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/')) {
                        r = tm_buf_append(b, &c, 1);
                } else {
                        char e[3] = { '%', hex[c >> 4], hex[c & 15] };

                        r = tm_buf_append(b, e, 3);
                }
                if (r < 0)
                        return r;
        }
        /* keep the buffer a C string */
        r = tm_buf_reserve(b, 1);
        if (r < 0)
                return r;
        b->data[b->len] = 0;
        return 0;
}

int tm_s3__parse_url(const char *url, char **ret_endpoint, char **ret_bucket, char **ret_prefix)
{
        const char *host, *slash, *bucket_end, *prefix;
        char *endpoint = NULL, *bucket = NULL, *pfx = NULL;
        size_t plen;

        if (!url)
                return -EINVAL;
        if (strncmp(url, "https://", 8) == 0)
                host = url + 8;
        else if (strncmp(url, "http://", 7) == 0)
                host = url + 7;
        else
                return -EINVAL;
        slash = strchr(host, '/');
        if (!slash || slash == host)
                return -EINVAL;
        bucket_end = strchr(slash + 1, '/');
        if (!bucket_end)
                bucket_end = slash + strlen(slash);
        if (bucket_end == slash + 1)
                return -EINVAL;
        prefix = *bucket_end ? bucket_end + 1 : bucket_end;
        plen = strlen(prefix);
        while (plen > 0 && prefix[plen - 1] == '/')
                plen--;
        if (memchr(host, '?', (size_t)(bucket_end - host)) ||
            memchr(host, '#', (size_t)(bucket_end - host)) || memchr(prefix, '?', plen) ||
            memchr(prefix, '#', plen))
                return -EINVAL;
        endpoint = strndup(url, (size_t)(slash - url));
        bucket = strndup(slash + 1, (size_t)(bucket_end - slash - 1));
        pfx = strndup(prefix, plen);
        if (!endpoint || !bucket || !pfx) {
                free(endpoint);
                free(bucket);
                free(pfx);
                return -ENOMEM;
        }
        if (*pfx && !tm_backend__name_valid(pfx)) {
                free(endpoint);
                free(bucket);
                free(pfx);
                return -EINVAL;
        }
        *ret_endpoint = endpoint;
        *ret_bucket = bucket;
        *ret_prefix = pfx;
        return 0;
}

/* The key of an object: "<prefix>/<name>" or "<name>". */
static int object_url(struct s3 *s, const char *name, const char *query, tm_buf *url)
{
        int r;

        tm_buf_clear(url);
        r = tm_buf_printf(url, "%s/", s->base_url);
        if (r < 0)
                return r;
        if (*s->prefix) {
                r = tm_s3__uri_encode(url, s->prefix, 1);
                if (r < 0)
                        return r;
                r = tm_buf_append(url, "/", 1);
                if (r < 0)
                        return r;
        }
        if (name) {
                r = tm_s3__uri_encode(url, name, 1);
                if (r < 0)
                        return r;
        }
        if (query)
                return tm_buf_printf(url, "?%s", query);
        return tm_buf_printf(url, "%s", "");
}

static uint32_t rand_u32(void)
{
        uint32_t v = 0;

        if (tm_crypto_random(&v, sizeof(v)) < 0)
                v = (uint32_t)time(NULL) * 2654435761u;
        return v;
}

static void sleep_ms(long ms)
{
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* ---- handle pool ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_init_rc;

static void curl_init_once(void)
{
        curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

static CURL *handle_get(struct s3 *s)
{
        CURL *h = NULL;

        pthread_mutex_lock(&s->lock);
        if (s->npool > 0)
                h = s->pool[--s->npool];
        pthread_mutex_unlock(&s->lock);
        return h ? h : curl_easy_init();
}

/* Reset keeps the live connections and caches of the handle: that is the reuse. */
static void handle_put(struct s3 *s, CURL *h)
{
        if (!h)
                return;
        curl_easy_reset(h);
        pthread_mutex_lock(&s->lock);
        if (s->npool < S3_POOL_MAX) {
                s->pool[s->npool++] = h;
                h = NULL;
        }
        pthread_mutex_unlock(&s->lock);
        if (h)
                curl_easy_cleanup(h);
}

/* ---- one request ---- */

struct req {
        const char *method; /* GET HEAD PUT POST DELETE */
        const char *what;   /* the object name (or prefix) for messages */
        const char *url;
        const uint8_t *body;
        size_t body_len;
        const char *hdrs[4]; /* extra headers, NULL-terminated */
        tm_buf *out;         /* 2xx body (may be NULL: discarded) */
        /* results */
        long status;
        uint64_t length; /* Content-Length of a HEAD */
        char etag[128];
        char code[64]; /* S3 error code, "" if none */
};

struct xfer {
        CURL *h;
        struct req *rq;
        tm_buf err;
        int status_known, is_error, werr;
        size_t off; /* read position in the body */
};

static size_t write_cb(char *p, size_t size, size_t nmemb, void *userdata)
{
        struct xfer *x = userdata;
        size_t n = size * nmemb;

        if (!x->status_known) {
                long st = 0;

                curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &st);
                x->is_error = st >= 300;
                x->status_known = 1;
        }
        if (x->is_error) {
                /* only the start of an error document matters */
                if (x->err.len < S3_ERR_BODY_MAX)
                        (void)tm_buf_append(&x->err, p, TM_MIN(n, S3_ERR_BODY_MAX - x->err.len));
                return n;
        }
        if (!x->rq->out)
                return n;
        x->werr = tm_buf_append(x->rq->out, p, n);
        return x->werr < 0 ? 0 : n;
}

static size_t read_cb(char *p, size_t size, size_t nmemb, void *userdata)
{
        struct xfer *x = userdata;
        size_t n = TM_MIN(size * nmemb, x->rq->body_len - x->off);

        if (n)
                memcpy(p, x->rq->body + x->off, n);
        x->off += n;
        return n;
}

static int seek_cb(void *userdata, curl_off_t offset, int origin)
{
        struct xfer *x = userdata;

        if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->rq->body_len)
                return CURL_SEEKFUNC_FAIL;
        x->off = (size_t)offset;
        return CURL_SEEKFUNC_OK;
}

static size_t header_cb(char *p, size_t size, size_t nmemb, void *userdata)
{
        struct xfer *x = userdata;
        size_t n = size * nmemb, vlen;
        const char *v;

        if (n > 5 && strncasecmp(p, "etag:", 5) == 0) {
                v = p + 5;
                vlen = n - 5;
                while (vlen && (*v == ' ' || *v == '\t')) {
                        v++;
                        vlen--;
                }
                while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
                        vlen--;
                if (vlen < sizeof(x->rq->etag)) {
                        memcpy(x->rq->etag, v, vlen);
                        x->rq->etag[vlen] = 0;
                }
        }
        return n;
}

struct code_ctx {
        char *code;
        size_t cap;
};

static int code_fn(const char *path, int depth, const char *text, size_t len, void *userdata)
{
        struct code_ctx *c = userdata;

        if (text && depth == 2 && strcmp(path, "Error/Code") == 0 && len < c->cap) {
                memcpy(c->code, text, len);
                c->code[len] = 0;
        }
        return 0;
}

static void parse_error_code(const tm_buf *body, char *code, size_t cap)
{
        struct code_ctx c = { code, cap };

        code[0] = 0;
        if (body->len)
                (void)tm_s3__xml_walk((const char *)body->data, body->len, code_fn, &c);
}

/* Map a finished request to 0 or -errno; *retry says whether to try again. */
static int classify(CURLcode cc, struct xfer *x, int *retry, const char **why)
{
        struct req *rq = x->rq;

        *retry = 0;
        *why = NULL;
        if (x->werr < 0) {
                *why = "answer too large";
                return x->werr;
        }
        switch (cc) {
        case CURLE_OK:
                break;
        case CURLE_OPERATION_TIMEDOUT:
                *retry = 1;
                *why = "timed out";
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
        case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR:
        case CURLE_GOT_NOTHING:
        case CURLE_PARTIAL_FILE:
        case CURLE_HTTP2:
        case CURLE_HTTP2_STREAM:
                *retry = 1;
                *why = curl_easy_strerror(cc);
                return -EIO;
        default:
                *why = curl_easy_strerror(cc);
                return -EIO;
        }
        curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &rq->status);
        parse_error_code(&x->err, rq->code, sizeof(rq->code));
        if (rq->status >= 200 && rq->status < 300)
                return 0;
        *why = rq->code[0] ? rq->code : "HTTP error";
        if (rq->status == 503 || strcmp(rq->code, "SlowDown") == 0 || rq->status == 429) {
                *retry = 1;
                return -EAGAIN;
        }
        if (rq->status >= 500 || rq->status == 408 || strcmp(rq->code, "RequestTimeout") == 0) {
                *retry = 1;
                return -EIO;
        }
        /* a GLACIER / DEEP_ARCHIVE object that is not restored: readable only
         * after a thaw (tm_backend_thaw), which is not a permission problem */
        if (strcmp(rq->code, "InvalidObjectState") == 0)
                return -ENODATA;
        switch (rq->status) {
        case 404:
                return -ENOENT;
        case 403:
                return -EACCES;
        case 412:
                return -EEXIST;
        case 416:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

static int perform_once(struct s3 *s, CURL *h, struct req *rq, int *retry, const char **why)
{
        struct curl_slist *hl = NULL, *t;
        struct xfer x = { .h = h, .rq = rq, .err = TM_BUF_INIT(S3_ERR_BODY_MAX + 1) };
        char hash_hdr[128], tok_hdr[8192];
        tm_id sum;
        char hex[TM_ID_HEX_LEN + 1];
        CURLcode cc;
        size_t i;
        int r;

        rq->status = 0;
        rq->etag[0] = 0;
        rq->code[0] = 0;
        if (rq->out)
                tm_buf_clear(rq->out);
        tm_crypto_sha256(rq->body_len ? rq->body : (const uint8_t *)"", rq->body_len, &sum);
        tm_id_hex(&sum, hex);
        snprintf(hash_hdr, sizeof(hash_hdr), "x-amz-content-sha256: %s", hex);
        t = curl_slist_append(hl, hash_hdr);
        if (!t)
                goto nomem;
        hl = t;
        if (s->token) {
                if ((size_t)snprintf(tok_hdr, sizeof(tok_hdr), "x-amz-security-token: %s",
                                     s->token) >= sizeof(tok_hdr)) {
                        r = -EINVAL;
                        goto out;
                }
                t = curl_slist_append(hl, tok_hdr);
                if (!t)
                        goto nomem;
                hl = t;
        }
        for (i = 0; i < TM_ARRAY_SIZE(rq->hdrs) && rq->hdrs[i]; i++) {
                t = curl_slist_append(hl, rq->hdrs[i]);
                if (!t)
                        goto nomem;
                hl = t;
        }

        curl_easy_setopt(h, CURLOPT_URL, rq->url);
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
        curl_easy_setopt(h, CURLOPT_USERNAME, s->access);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->secret);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)TM_MIN(s->stall_s, 30));
        /* a transfer moving less than one byte per second for stall_s is stuck */
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)s->stall_s);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        /* Bodies over 1 MiB go with "Expect: 100-continue" (curl adds it after
         * signing, so it is unsigned, which SigV4 allows). Suppressing it with
         * an empty "Expect:" header does not work: curl would sign the empty
         * header it then does not send. Wait at most a second for the 100. */
        curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 1000L);
        if (s->ca_file)
                curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &x);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &x);
        if (strcmp(rq->method, "HEAD") == 0) {
                curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (strcmp(rq->method, "PUT") == 0 || strcmp(rq->method, "POST") == 0) {
                curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
                curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
                curl_easy_setopt(h, CURLOPT_READDATA, &x);
                curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
                curl_easy_setopt(h, CURLOPT_SEEKDATA, &x);
                if (strcmp(rq->method, "POST") == 0)
                        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
        } else if (strcmp(rq->method, "GET") != 0) {
                curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
        }
        atomic_fetch_add(&s->requests, 1);
        cc = curl_easy_perform(h);
        r = classify(cc, &x, retry, why);
        if (r == 0 && strcmp(rq->method, "HEAD") == 0) {
                curl_off_t cl = -1;

                curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
                if (cl < 0) {
                        *why = "no Content-Length";
                        r = -EIO;
                } else {
                        rq->length = (uint64_t)cl;
                }
        }
        goto out;
nomem:
        r = -ENOMEM;
out:
        curl_slist_free_all(hl);
        tm_buf_dispose(&x.err);
        return r;
}

/* One request with retries. Logs each retry and the final failure (except
 * the answers callers expect: -ENOENT, -EEXIST). */
static int request(struct s3 *s, struct req *rq)
{
        CURL *h = NULL;
        const char *why = NULL;
        int attempt, retry = 0, r;

        r = pthread_once(&curl_once, curl_init_once) ? -EIO : curl_init_rc;
        if (r < 0)
                return r;
        h = handle_get(s);
        if (!h)
                return -ENOMEM;
        for (attempt = 1;; attempt++) {
                long d, ms;

                r = perform_once(s, h, rq, &retry, &why);
                if (r >= 0 || !retry || attempt >= s->max_attempts)
                        break;
                d = TM_MIN((long)S3_BACKOFF_BASE_MS << TM_MIN(attempt - 1, 10),
                           (long)S3_BACKOFF_CAP_MS);
                ms = d / 2 + (long)(rand_u32() % (uint32_t)(d / 2 + 1));
                atomic_fetch_add(&s->retries, 1);
                tm_log(TM_LOG_WARN, "s3: %s '%s' (HTTP %ld): %s; retry %d of %d in %ld ms",
                       rq->method, rq->what, rq->status, why ? why : "failed", attempt,
                       s->max_attempts - 1, ms);
                sleep_ms(ms);
        }
        handle_put(s, h);
        /* -E2BIG (over the caller's limit) is the caller's to report */
        if (r < 0 && r != -ENOENT && r != -EEXIST && r != -E2BIG && r != -ENODATA)
                /* A 403 is logged visibly: the S3 code (SignatureDoesNotMatch,
                 * InvalidAccessKeyId, AccessDenied) is the only hint that the
                 * credentials, not the repository passphrase, are wrong. */
                tm_log_errno(attempt > 1    ? TM_LOG_ERR
                             : r == -EACCES ? TM_LOG_WARN
                                            : tm_log_level_of(r),
                             r, "s3: %s '%s' in %s failed (HTTP %ld%s%s, %d attempt%s)", rq->method,
                             rq->what, s->location, rq->status, why ? ", " : "", why ? why : "",
                             attempt, attempt == 1 ? "" : "s");
        return r;
}

/* ---- the driver ---- */

static int single_put(struct s3 *s, const char *name, const void *p, size_t n, int if_absent)
{
        tm_buf url = TM_BUF_INIT(0);
        char sc[128];
        struct req rq = { .method = "PUT", .what = name, .body = p, .body_len = n };
        int r, nh = 0;

        r = object_url(s, name, NULL, &url);
        if (r < 0)
                goto out;
        rq.url = (const char *)url.data;
        rq.hdrs[nh++] = "Content-Type: application/octet-stream";
        if (s->storage_class) {
                snprintf(sc, sizeof(sc), "x-amz-storage-class: %s", s->storage_class);
                rq.hdrs[nh++] = sc;
        }
        /* conditional write: atomic "create only" where the store supports it */
        if (if_absent)
                rq.hdrs[nh++] = "If-None-Match: *";
        r = request(s, &rq);
out:
        tm_buf_dispose(&url);
        return r;
}

struct upload_id_ctx {
        char id[1024];
        int found, is_error;
};

static int upload_id_fn(const char *path, int depth, const char *text, size_t len, void *userdata)
{
        struct upload_id_ctx *c = userdata;

        if (depth == 1 && strcmp(path, "Error") == 0)
                c->is_error = 1;
        if (text && depth == 2 && strcmp(path, "InitiateMultipartUploadResult/UploadId") == 0 &&
            len > 0 && len < sizeof(c->id)) {
                memcpy(c->id, text, len + 1);
                c->found = 1;
        }
        return 0;
}

/* The parts of one multipart upload, sent by up to S3_MP_PARALLEL threads. */
struct parts {
        struct s3 *s;
        const char *name, *upload_id;
        const uint8_t *p;
        size_t n, part;
        unsigned nparts, next;
        pthread_mutex_t lock;
        int r;
        char (*etags)[128];
};

static int upload_part(struct parts *ps, unsigned i)
{
        tm_buf url = TM_BUF_INIT(0), q = TM_BUF_INIT(0);
        size_t off = (size_t)i * ps->part;
        struct req rq = { .method = "PUT",
                          .what = ps->name,
                          .body = ps->p + off,
                          .body_len = TM_MIN(ps->part, ps->n - off) };
        int r;

        r = tm_buf_printf(&q, "partNumber=%u&uploadId=", i + 1);
        if (r < 0)
                goto out;
        r = tm_s3__uri_encode(&q, ps->upload_id, 0);
        if (r < 0)
                goto out;
        r = object_url(ps->s, ps->name, (const char *)q.data, &url);
        if (r < 0)
                goto out;
        rq.url = (const char *)url.data;
        r = request(ps->s, &rq);
        if (r < 0)
                goto out;
        /* the ETag goes into the completion XML verbatim */
        if (!rq.etag[0] || strpbrk(rq.etag, "<>&")) {
                r = tm_log_errno(TM_LOG_ERR, -EIO, "s3: no ETag for part %u of '%s'", i + 1,
                                 ps->name);
                goto out;
        }
        memcpy(ps->etags[i], rq.etag, sizeof(rq.etag));
out:
        tm_buf_dispose(&url);
        tm_buf_dispose(&q);
        return r;
}

static void *parts_worker(void *arg)
{
        struct parts *ps = arg;

        for (;;) {
                unsigned i;
                int r;

                pthread_mutex_lock(&ps->lock);
                if (ps->r < 0 || ps->next >= ps->nparts) {
                        pthread_mutex_unlock(&ps->lock);
                        return NULL;
                }
                i = ps->next++;
                pthread_mutex_unlock(&ps->lock);
                r = upload_part(ps, i);
                if (r < 0) {
                        pthread_mutex_lock(&ps->lock);
                        if (ps->r == 0)
                                ps->r = r;
                        pthread_mutex_unlock(&ps->lock);
                }
        }
}

/* Upload every part, in parallel: the caller's thread plus up to
 * S3_MP_PARALLEL - 1 helpers (fewer if a thread cannot be made). */
static int upload_parts(struct parts *ps)
{
        pthread_t th[S3_MP_PARALLEL];
        unsigned nth = 0, i;

        pthread_mutex_init(&ps->lock, NULL);
        while (nth + 1 < TM_MIN((unsigned)S3_MP_PARALLEL, ps->nparts) &&
               pthread_create(&th[nth], NULL, parts_worker, ps) == 0)
                nth++;
        parts_worker(ps);
        for (i = 0; i < nth; i++)
                pthread_join(th[i], NULL);
        pthread_mutex_destroy(&ps->lock);
        return ps->r;
}

static int multipart_put(struct s3 *s, const char *name, const uint8_t *p, size_t n)
{
        tm_buf url = TM_BUF_INIT(0), q = TM_BUF_INIT(0), body = TM_BUF_INIT(S3_SMALL_BODY_MAX),
               xml = TM_BUF_INIT(0);
        struct upload_id_ctx c = { .found = 0 };
        struct parts ps = { .r = 0 };
        char sc[128];
        size_t part = s->part_size;
        unsigned nparts, i;
        int r, started = 0;

        /* keep the part count within S3's limit for any object size */
        if ((n + part - 1) / part > S3_MAX_PARTS)
                part = (n + S3_MAX_PARTS - 1) / S3_MAX_PARTS;
        nparts = (unsigned)((n + part - 1) / part);

        r = object_url(s, name, "uploads=", &url);
        if (r < 0)
                goto out;
        {
                struct req rq = {
                        .method = "POST", .what = name, .url = (const char *)url.data, .out = &body
                };
                int nh = 0;

                if (s->storage_class) {
                        snprintf(sc, sizeof(sc), "x-amz-storage-class: %s", s->storage_class);
                        rq.hdrs[nh++] = sc;
                }
                rq.hdrs[nh++] = "Content-Type: application/octet-stream";
                r = request(s, &rq);
                if (r < 0)
                        goto out;
        }
        r = tm_s3__xml_walk((const char *)body.data, body.len, upload_id_fn, &c);
        if (r == 0 && (!c.found || c.is_error))
                r = -EBADMSG;
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, -EIO, "s3: bad answer to the multipart upload of '%s'",
                             name);
                r = -EIO;
                goto out;
        }
        started = 1;
        r = tm_buf_printf(&xml, "<CompleteMultipartUpload>");
        if (r < 0)
                goto out;
        ps.s = s;
        ps.name = name;
        ps.upload_id = c.id;
        ps.p = p;
        ps.n = n;
        ps.part = part;
        ps.nparts = nparts;
        ps.etags = calloc(nparts, sizeof(*ps.etags));
        if (!ps.etags) {
                r = -ENOMEM;
                goto out;
        }
        r = upload_parts(&ps);
        if (r < 0)
                goto out;
        for (i = 0; i < nparts; i++) {
                r = tm_buf_printf(&xml, "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
                                  i + 1, ps.etags[i]);
                if (r < 0)
                        goto out;
        }
        r = tm_buf_printf(&xml, "</CompleteMultipartUpload>");
        if (r < 0)
                goto out;
        tm_buf_clear(&q);
        r = tm_buf_printf(&q, "uploadId=");
        if (r < 0)
                goto out;
        r = tm_s3__uri_encode(&q, c.id, 0);
        if (r < 0)
                goto out;
        r = object_url(s, name, (const char *)q.data, &url);
        if (r < 0)
                goto out;
        {
                struct req rq = { .method = "POST",
                                  .what = name,
                                  .url = (const char *)url.data,
                                  .body = xml.data,
                                  .body_len = xml.len,
                                  .out = &body,
                                  .hdrs = { "Content-Type: application/xml" } };

                r = request(s, &rq);
                if (r < 0)
                        goto out;
        }
        /* S3 may answer 200 with an <Error> document to a complete */
        c.is_error = 0;
        r = tm_s3__xml_walk((const char *)body.data, body.len, upload_id_fn, &c);
        if (r < 0 || c.is_error) {
                r = tm_log_errno(TM_LOG_ERR, -EIO, "s3: completing the upload of '%s' failed",
                                 name);
                goto out;
        }
        started = 0;
        r = 0;
out:
        if (started) {
                /* best effort: leaves no billable parts behind on a real S3 */
                struct req rq = { .method = "DELETE", .what = name };

                tm_buf_clear(&q);
                if (tm_buf_printf(&q, "uploadId=") == 0 && tm_s3__uri_encode(&q, c.id, 0) == 0 &&
                    object_url(s, name, (const char *)q.data, &url) == 0) {
                        rq.url = (const char *)url.data;
                        (void)request(s, &rq);
                }
        }
        tm_buf_dispose(&url);
        tm_buf_dispose(&q);
        tm_buf_dispose(&body);
        tm_buf_dispose(&xml);
        free(ps.etags);
        return r;
}

static int s3_put(tm_backend *b, const char *name, const void *p, size_t n)
{
        struct s3 *s = to_s3(b);

        if (n > s->mp_threshold)
                return multipart_put(s, name, p, n);
        return single_put(s, name, p, n, 0);
}

static int s3_head(tm_backend *b, const char *name, uint64_t *ret_size)
{
        struct s3 *s = to_s3(b);
        tm_buf url = TM_BUF_INIT(0);
        struct req rq = { .method = "HEAD", .what = name };
        int r;

        r = object_url(s, name, NULL, &url);
        if (r < 0)
                goto out;
        rq.url = (const char *)url.data;
        r = request(s, &rq);
        if (r < 0)
                goto out;
        if (ret_size)
                *ret_size = rq.length;
out:
        tm_buf_dispose(&url);
        return r;
}

/*
 * put_new: a HEAD, then a PUT with "If-None-Match: *". On AWS S3 (conditional
 * writes, 2024) the PUT itself is atomic and a lost race answers 412 ->
 * -EEXIST. On stores that ignore the condition (s3rver, older MinIO/Ceph)
 * two writers that both pass the HEAD can both succeed, the last one
 * winning: lock holders must re-read their lock after writing it.
 */
static int s3_put_new(tm_backend *b, const char *name, const void *p, size_t n)
{
        struct s3 *s = to_s3(b);
        int r;

        r = s3_head(b, name, NULL);
        if (r == 0)
                return -EEXIST;
        if (r != -ENOENT)
                return r;
        if (n > s->mp_threshold)
                return multipart_put(s, name, p, n);
        return single_put(s, name, p, n, 1);
}

static int finish_buf(tm_buf *tmp, tm_buf *ret)
{
        int r;

        if (!tmp->data) {
                /* empty object: still a valid, empty, NUL-terminated buffer */
                r = tm_buf_reserve(tmp, 0);
                if (r < 0)
                        return r;
                tmp->data[0] = 0;
        }
        tm_buf_move(ret, tmp);
        return 0;
}

static int s3_get(tm_backend *b, const char *name, size_t limit, tm_buf *ret)
{
        struct s3 *s = to_s3(b);
        tm_buf url = TM_BUF_INIT(0), tmp = TM_BUF_INIT(limit);
        struct req rq = { .method = "GET", .what = name, .out = &tmp };
        int r;

        r = object_url(s, name, NULL, &url);
        if (r < 0)
                goto out;
        rq.url = (const char *)url.data;
        r = request(s, &rq);
        if (r < 0)
                goto out;
        r = finish_buf(&tmp, ret);
out:
        tm_buf_dispose(&url);
        tm_buf_dispose(&tmp);
        return r;
}

static int s3_get_range(tm_backend *b, const char *name, uint64_t off, size_t len, tm_buf *ret)
{
        struct s3 *s = to_s3(b);
        tm_buf url = TM_BUF_INIT(0), tmp = TM_BUF_INIT(ret->limit);
        char range[96];
        struct req rq = { .method = "GET", .what = name, .out = &tmp };
        int r;

        if (len == 0) {
                /* no empty Range exists: a HEAD tells whether off is inside */
                uint64_t size;

                r = s3_head(b, name, &size);
                if (r < 0)
                        goto out;
                r = off > size ? -EBADMSG : finish_buf(&tmp, ret);
                goto out;
        }
        if (ret->limit && len > ret->limit) {
                r = -E2BIG;
                goto out;
        }
        r = object_url(s, name, NULL, &url);
        if (r < 0)
                goto out;
        snprintf(range, sizeof(range), "Range: bytes=%" PRIu64 "-%" PRIu64, off,
                 off + (uint64_t)len - 1);
        rq.url = (const char *)url.data;
        rq.hdrs[0] = range;
        r = request(s, &rq);
        if (r < 0)
                goto out;
        /* 206 with exactly len bytes; a 200 (range ignored) is the whole object */
        if (rq.status == 200 && tmp.len > off && tmp.len - off >= len) {
                memmove(tmp.data, tmp.data + off, len);
                tmp.len = len;
        }
        if (tmp.len != len) {
                r = -EBADMSG;
                goto out;
        }
        r = finish_buf(&tmp, ret);
out:
        tm_buf_dispose(&url);
        tm_buf_dispose(&tmp);
        return r;
}

/*
 * Restore an archived object for days days with a Glacier retrieval tier.
 * S3 answers 202 (restore started), 409 RestoreAlreadyInProgress, 200 (a
 * restored copy exists: readable now) or 403 InvalidObjectState (the object
 * is not in an archive class: readable now). 1 = in progress, 0 = readable.
 */
static int s3_thaw(tm_backend *b, const char *name, const char *retrieval, int days)
{
        struct s3 *s = to_s3(b);
        tm_buf url = TM_BUF_INIT(0), body = TM_BUF_INIT(4096);
        struct req rq = { .method = "POST", .what = name };
        int r;

        r = object_url(s, name, "restore=", &url);
        if (r < 0)
                goto out;
        r = tm_buf_printf(&body,
                          "<RestoreRequest xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                          "<Days>%d</Days><GlacierJobParameters><Tier>%s</Tier>"
                          "</GlacierJobParameters></RestoreRequest>",
                          days, retrieval);
        if (r < 0)
                goto out;
        rq.url = (const char *)url.data;
        rq.body = body.data;
        rq.body_len = body.len;
        rq.hdrs[0] = "Content-Type: application/xml";
        r = request(s, &rq);
        if (r == -ENODATA)
                r = 0; /* InvalidObjectState: not archived, nothing to restore */
        else if (r == 0)
                r = rq.status == 200 ? 0 : 1;
        else if (strcmp(rq.code, "RestoreAlreadyInProgress") == 0)
                r = 1;
out:
        tm_buf_dispose(&url);
        tm_buf_dispose(&body);
        return r;
}

static int s3_remove(tm_backend *b, const char *name)
{
        struct s3 *s = to_s3(b);
        tm_buf url = TM_BUF_INIT(0);
        struct req rq = { .method = "DELETE", .what = name };
        int r;

        /* S3 answers 204 for a missing key too; the contract wants -ENOENT */
        r = s3_head(b, name, NULL);
        if (r < 0)
                goto out;
        r = object_url(s, name, NULL, &url);
        if (r < 0)
                goto out;
        rq.url = (const char *)url.data;
        r = request(s, &rq);
out:
        tm_buf_dispose(&url);
        return r;
}

struct list_ctx {
        struct s3 *s;
        tm_backend_list_fn fn;
        void *userdata;
        size_t strip; /* length of "<prefix>/" */
        tm_buf key;
        uint64_t size;
        int have_key, have_size, truncated, fn_r, bad;
        char token[2048];
};

static int list_fn(const char *path, int depth, const char *text, size_t len, void *userdata)
{
        struct list_ctx *c = userdata;
        char *end;

        if (depth == 1 && strcmp(path, "ListBucketResult") != 0) {
                c->bad = 1;
                return 1;
        }
        if (!text) {
                if (depth == 2 && strcmp(path, "ListBucketResult/Contents") == 0) {
                        const char *name;
                        int r;

                        if (!c->have_key || !c->have_size) {
                                c->bad = 1;
                                return 1;
                        }
                        c->have_key = c->have_size = 0;
                        if (c->key.len <= c->strip)
                                return 0;
                        name = (const char *)c->key.data + c->strip;
                        if (!tm_backend__name_valid(name)) {
                                tm_log(TM_LOG_DEBUG, "s3: skipping foreign key '%s'",
                                       (const char *)c->key.data);
                                return 0;
                        }
                        r = c->fn(name, c->size, c->userdata);
                        if (r != 0) {
                                c->fn_r = r;
                                return 1;
                        }
                }
                return 0;
        }
        if (depth == 3 && strcmp(path, "ListBucketResult/Contents/Key") == 0) {
                tm_buf_clear(&c->key);
                if (tm_buf_append(&c->key, text, len + 1) < 0) {
                        c->bad = 1;
                        return 1;
                }
                c->key.len = len;
                c->have_key = 1;
        } else if (depth == 3 && strcmp(path, "ListBucketResult/Contents/Size") == 0) {
                errno = 0;
                c->size = strtoull(text, &end, 10);
                if (errno || end == text || *end || text[0] == '-') {
                        c->bad = 1;
                        return 1;
                }
                c->have_size = 1;
        } else if (depth == 2 && strcmp(path, "ListBucketResult/IsTruncated") == 0) {
                c->truncated = strcmp(text, "true") == 0;
        } else if (depth == 2 && strcmp(path, "ListBucketResult/NextContinuationToken") == 0) {
                if (len >= sizeof(c->token)) {
                        c->bad = 1;
                        return 1;
                }
                memcpy(c->token, text, len + 1);
        }
        return 0;
}

static int s3_list(tm_backend *b, const char *prefix, tm_backend_list_fn fn, void *userdata)
{
        struct s3 *s = to_s3(b);
        tm_buf url = TM_BUF_INIT(0), q = TM_BUF_INIT(0), full = TM_BUF_INIT(0),
               body = TM_BUF_INIT(S3_LIST_BODY_MAX);
        struct list_ctx c = { .s = s, .fn = fn, .userdata = userdata, .key = TM_BUF_INIT(0) };
        int r, page = 0;

        /* "<prefix>/" strips into names; "<prefix>/<dir>/" bounds the listing */
        r = tm_buf_printf(&full, "%s%s", s->prefix, *s->prefix ? "/" : "");
        if (r < 0)
                goto out;
        c.strip = full.len;
        if (*prefix) {
                r = tm_buf_printf(&full, "%s/", prefix);
                if (r < 0)
                        goto out;
        }
        for (;;) {
                struct req rq = { .method = "GET",
                                  .what = *prefix ? prefix : "(all)",
                                  .out = &body };

                /* the query sorted by key, every value encoded: curl signs it as is */
                tm_buf_clear(&q);
                if (c.token[0]) {
                        r = tm_buf_printf(&q, "continuation-token=");
                        if (r < 0)
                                goto out;
                        r = tm_s3__uri_encode(&q, c.token, 0);
                        if (r < 0)
                                goto out;
                        r = tm_buf_printf(&q, "&");
                        if (r < 0)
                                goto out;
                }
                r = tm_buf_printf(&q, "list-type=2&max-keys=%d&prefix=", s->list_page);
                if (r < 0)
                        goto out;
                r = tm_s3__uri_encode(&q, (const char *)full.data, 0);
                if (r < 0)
                        goto out;
                tm_buf_clear(&url);
                r = tm_buf_printf(&url, "%s%s?%s", s->base_url, s->path_style ? "" : "/",
                                  (const char *)q.data);
                if (r < 0)
                        goto out;
                rq.url = (const char *)url.data;
                r = request(s, &rq);
                if (r < 0)
                        goto out;
                c.truncated = 0;
                c.token[0] = 0;
                c.have_key = c.have_size = 0;
                r = tm_s3__xml_walk((const char *)body.data, body.len, list_fn, &c);
                if (c.fn_r) {
                        r = c.fn_r;
                        goto out;
                }
                if (r < 0 || c.bad) {
                        r = tm_log_errno(TM_LOG_ERR, -EIO,
                                         "s3: malformed listing of '%s' in %s (page %d)",
                                         (const char *)full.data, s->location, page);
                        goto out;
                }
                page++;
                if (!c.truncated)
                        break;
                if (!c.token[0]) {
                        r = tm_log_errno(TM_LOG_ERR, -EIO,
                                         "s3: truncated listing of %s without a token",
                                         s->location);
                        goto out;
                }
        }
        r = 0;
out:
        tm_buf_dispose(&url);
        tm_buf_dispose(&q);
        tm_buf_dispose(&full);
        tm_buf_dispose(&body);
        tm_buf_dispose(&c.key);
        return r;
}

static int s3_clean_temp(tm_backend *b, int64_t age_s)
{
        /* S3 writes are atomic: there are no temp objects to remove */
        return 0;
}

static const char *s3_location(const tm_backend *b)
{
        return ((const struct s3 *)b)->location;
}

static void s3_free(tm_backend *b)
{
        struct s3 *s = to_s3(b);
        int i;

        for (i = 0; i < s->npool; i++)
                curl_easy_cleanup(s->pool[i]);
        pthread_mutex_destroy(&s->lock);
        free(s->endpoint);
        free(s->bucket);
        free(s->prefix);
        free(s->region);
        free(s->access);
        if (s->secret)
                explicit_bzero(s->secret, strlen(s->secret));
        free(s->secret);
        if (s->token)
                explicit_bzero(s->token, strlen(s->token));
        free(s->token);
        free(s->ca_file);
        free(s->storage_class);
        free(s->base_url);
        free(s->location);
        free(s->sigv4);
        free(s);
}

static const struct tm_backend_ops s3_ops = {
        .kind = "s3",
        .put = s3_put,
        .put_new = s3_put_new,
        .get = s3_get,
        .get_range = s3_get_range,
        .head = s3_head,
        .list = s3_list,
        .remove = s3_remove,
        .clean_temp = s3_clean_temp,
        .thaw = s3_thaw,
        .free = s3_free,
        .location = s3_location,
};

static int dup_opt(const char *v, char **ret)
{
        *ret = NULL;
        if (!v || !*v)
                return 0;
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

static int valid_token(const char *v)
{
        /* values that go into a header line: printable, no CR/LF */
        for (; v && *v; v++)
                if ((unsigned char)*v < 0x20 || *v == 0x7f)
                        return 0;
        return 1;
}

int tm_backend_open_s3(const struct tm_s3_opts *opts, tm_backend **ret)
{
        struct s3 *s = NULL;
        const char *host;
        tm_buf tmp = TM_BUF_INIT(0);
        int r;

        if (!opts || !ret || !opts->endpoint || !opts->bucket || !*opts->bucket ||
            !opts->access_key || !*opts->access_key || !opts->secret_key || !*opts->secret_key)
                return -EINVAL;
        if (strncmp(opts->endpoint, "http://", 7) == 0)
                host = opts->endpoint + 7;
        else if (strncmp(opts->endpoint, "https://", 8) == 0)
                host = opts->endpoint + 8;
        else
                return -EINVAL;
        if (!*host || strchr(host, '/') || strchr(opts->bucket, '/') ||
            strchr(opts->access_key, ':') || !valid_token(opts->session_token) ||
            !valid_token(opts->storage_class) || !valid_token(opts->region) ||
            (opts->prefix && *opts->prefix && !tm_backend__name_valid(opts->prefix)))
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        s->base.ops = &s3_ops;
        pthread_mutex_init(&s->lock, NULL);
        r = dup_opt(opts->endpoint, &s->endpoint);
        if (r == 0)
                r = dup_opt(opts->bucket, &s->bucket);
        if (r == 0)
                r = dup_opt(opts->prefix ? opts->prefix : "", &s->prefix);
        if (r == 0 && !s->prefix)
                s->prefix = strdup("");
        if (r == 0)
                r = dup_opt(opts->region ? opts->region : "us-east-1", &s->region);
        if (r == 0)
                r = dup_opt(opts->access_key, &s->access);
        if (r == 0)
                r = dup_opt(opts->secret_key, &s->secret);
        if (r == 0)
                r = dup_opt(opts->session_token, &s->token);
        if (r == 0)
                r = dup_opt(opts->ca_file, &s->ca_file);
        if (r == 0)
                r = dup_opt(opts->storage_class, &s->storage_class);
        if (r < 0 || !s->prefix || !s->region) {
                r = -ENOMEM;
                goto out;
        }
        s->path_style = opts->path_style;
        s->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : S3_DEF_ATTEMPTS;
        s->stall_s = opts->stall_timeout_s > 0 ? opts->stall_timeout_s : S3_DEF_STALL_S;
        s->mp_threshold =
                opts->multipart_threshold ? opts->multipart_threshold : S3_DEF_MP_THRESHOLD;
        s->part_size = opts->part_size ? opts->part_size : S3_DEF_PART_SIZE;
        s->list_page = opts->list_page > 0 ? TM_MIN(opts->list_page, 1000) : 1000;
        if (s->path_style)
                r = tm_buf_printf(&tmp, "%s/%s", s->endpoint, s->bucket);
        else
                r = tm_buf_printf(&tmp, "%.*s%s.%s", (int)(host - opts->endpoint), s->endpoint,
                                  s->bucket, host);
        if (r < 0)
                goto out;
        s->base_url = strdup((const char *)tmp.data);
        tm_buf_clear(&tmp);
        r = tm_buf_printf(&tmp, "s3:%s/%s%s%s", s->endpoint, s->bucket, *s->prefix ? "/" : "",
                          s->prefix);
        if (r < 0)
                goto out;
        s->location = strdup((const char *)tmp.data);
        tm_buf_clear(&tmp);
        r = tm_buf_printf(&tmp, "aws:amz:%s:s3", s->region);
        if (r < 0)
                goto out;
        s->sigv4 = strdup((const char *)tmp.data);
        if (!s->base_url || !s->location || !s->sigv4) {
                r = -ENOMEM;
                goto out;
        }
        *ret = &s->base;
        s = NULL;
        r = 0;
out:
        tm_buf_dispose(&tmp);
        if (s)
                s3_free(&s->base);
        return r;
}

/* Trim spaces, tabs and CRs at both ends of [*b, *e). */
static void trim(const char **b, const char **e)
{
        while (*b < *e && (**b == ' ' || **b == '\t' || **b == '\r'))
                (*b)++;
        while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r'))
                (*e)--;
}

static int key_is(const char *b, const char *e, const char *key)
{
        return (size_t)(e - b) == strlen(key) && memcmp(b, key, (size_t)(e - b)) == 0;
}

/*
 * Credentials from the AWS shared credentials file (AWS_SHARED_CREDENTIALS_FILE,
 * else ~/.aws/credentials), profile AWS_PROFILE or "default": an INI file of
 * "[profile]" sections with aws_access_key_id, aws_secret_access_key and
 * aws_session_token. A missing file or profile is 0 with nothing set.
 */
static int read_credentials_file(char **ret_access, char **ret_secret, char **ret_token)
{
        const char *path = getenv("AWS_SHARED_CREDENTIALS_FILE"), *profile = getenv("AWS_PROFILE");
        const char *home = getenv("HOME"), *line, *end, *eof;
        char fallback[4096];
        tm_buf f = TM_BUF_INIT(1 << 20);
        int in_profile = 0, r = 0;

        if (!profile || !*profile)
                profile = "default";
        if (!path || !*path) {
                if (!home || !*home ||
                    (size_t)snprintf(fallback, sizeof(fallback), "%s/.aws/credentials", home) >=
                            sizeof(fallback))
                        return 0;
                path = fallback;
        }
        r = tm_file_read_all(path, 1 << 20, &f);
        if (r < 0) {
                tm_buf_dispose_secret(&f);
                return r == -ENOENT ? 0 : r;
        }
        eof = (const char *)f.data + f.len;
        for (line = (const char *)f.data; line && line < eof; line = end < eof ? end + 1 : NULL) {
                const char *b = line, *e, *eq, *kb, *ke, *vb, *ve;
                char **dst = NULL;

                end = memchr(line, '\n', (size_t)(eof - line));
                if (!end)
                        end = eof;
                e = end;
                trim(&b, &e);
                if (b == e || *b == '#' || *b == ';')
                        continue;
                if (*b == '[') {
                        kb = b + 1;
                        ke = e[-1] == ']' ? e - 1 : e;
                        trim(&kb, &ke);
                        in_profile = key_is(kb, ke, profile);
                        continue;
                }
                eq = memchr(b, '=', (size_t)(e - b));
                if (!in_profile || !eq)
                        continue;
                kb = b;
                ke = eq;
                vb = eq + 1;
                ve = e;
                trim(&kb, &ke);
                trim(&vb, &ve);
                if (key_is(kb, ke, "aws_access_key_id"))
                        dst = ret_access;
                else if (key_is(kb, ke, "aws_secret_access_key"))
                        dst = ret_secret;
                else if (key_is(kb, ke, "aws_session_token"))
                        dst = ret_token;
                if (dst && !*dst) {
                        *dst = strndup(vb, (size_t)(ve - vb));
                        if (!*dst) {
                                r = -ENOMEM;
                                break;
                        }
                }
        }
        tm_buf_dispose_secret(&f);
        return r;
}

static void free_secret(char *s)
{
        if (s)
                explicit_bzero(s, strlen(s));
        free(s);
}

int tm_backend_open_url(const char *location, int create, tm_backend **ret)
{
        return tm_backend_open_url_class(location, create, getenv("TIDEMARK_S3_STORAGE_CLASS"),
                                         ret);
}

int tm_backend_open_url_class(const char *location, int create, const char *storage_class,
                              tm_backend **ret)
{
        struct tm_s3_opts o = { 0 };
        char *endpoint = NULL, *bucket = NULL, *prefix = NULL;
        char *f_access = NULL, *f_secret = NULL, *f_token = NULL;
        const char *addressing;
        int r;

        if (!location || !ret)
                return -EINVAL;
        if (strncmp(location, "s3:", 3) != 0)
                return tm_backend_open_local(location, create, ret);
        r = tm_s3__parse_url(location + 3, &endpoint, &bucket, &prefix);
        if (r < 0) {
                if (r == -EINVAL)
                        tm_log(TM_LOG_ERR,
                               "bad S3 location '%s': expected "
                               "s3:http(s)://host[:port]/bucket[/prefix]",
                               location);
                goto out;
        }
        o.endpoint = endpoint;
        o.bucket = bucket;
        o.prefix = prefix;
        o.access_key = getenv("AWS_ACCESS_KEY_ID");
        o.secret_key = getenv("AWS_SECRET_ACCESS_KEY");
        o.session_token = getenv("AWS_SESSION_TOKEN");
        o.region = getenv("AWS_REGION");
        if (!o.region || !*o.region)
                o.region = getenv("AWS_DEFAULT_REGION");
        o.ca_file = getenv("AWS_CA_BUNDLE");
        o.storage_class = storage_class && *storage_class ? storage_class : NULL;
        addressing = getenv("TIDEMARK_S3_ADDRESSING");
        o.path_style = !(addressing && strcmp(addressing, "virtual") == 0);
        if (!o.access_key || !*o.access_key || !o.secret_key || !*o.secret_key) {
                /* the environment wins as a whole; else the shared credentials file */
                r = read_credentials_file(&f_access, &f_secret, &f_token);
                if (r < 0) {
                        tm_log_errno(TM_LOG_ERR, r, "unable to read the AWS credentials file");
                        goto out;
                }
                o.access_key = f_access;
                o.secret_key = f_secret;
                o.session_token = f_token;
        }
        if (!o.access_key || !*o.access_key || !o.secret_key || !*o.secret_key) {
                r = -EINVAL;
                tm_log(TM_LOG_ERR,
                       "S3 location '%s': no credentials: set AWS_ACCESS_KEY_ID and "
                       "AWS_SECRET_ACCESS_KEY, or write them to ~/.aws/credentials",
                       location);
                goto out;
        }
        r = tm_backend_open_s3(&o, ret);
out:
        free_secret(f_access);
        free_secret(f_secret);
        free_secret(f_token);
        free(endpoint);
        free(bucket);
        free(prefix);
        return r;
}

int tm_backend_get_stats(const tm_backend *b, struct tm_backend_stats *ret)
{
        if (!b || !ret)
                return -EINVAL;
        memset(ret, 0, sizeof(*ret));
        if (tm_backend_is_tiered(b)) {
                for (unsigned i = 0; i < TM_BACKEND_TIERS; i++) {
                        struct tm_backend_stats one = { 0 };

                        tm_backend_get_stats(tm_backend_tier((tm_backend *)b, i), &one);
                        ret->requests += one.requests;
                        ret->retries += one.retries;
                }
                return 0;
        }
        if (b->ops == &s3_ops) {
                const struct s3 *s = (const struct s3 *)b;

                ret->requests = atomic_load(&((struct s3 *)s)->requests);
                ret->retries = atomic_load(&((struct s3 *)s)->retries);
        }
        return 0;
}
