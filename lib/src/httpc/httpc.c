/*
 * libcurl does the protocol work (redirect policy, TLS, SMTP dialogue,
 * STARTTLS, AUTH); this module only sets bounded buffers, timeouts and the
 * errno mapping the callers share.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include <tidemark/httpc.h>
#include <tidemark/time.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
        curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct sink {
        tm_buf *b;
        int too_big;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
        struct sink *s = ud;

        if (tm_buf_append(s->b, p, sz * n) < 0) {
                s->too_big = 1;
                return 0;
        }
        return sz * n;
}

static int map_curl(CURLcode c)
{
        switch (c) {
        case CURLE_OK:
                return 0;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_URL_MALFORMAT:
        case CURLE_UNSUPPORTED_PROTOCOL:
                return -EINVAL;
        case CURLE_LOGIN_DENIED:
                return -EACCES;
        default:
                return -EIO;
        }
}

int tm_httpc_request(const struct tm_httpc_req *rq, struct tm_httpc_resp *resp)
{
        struct curl_slist *hdrs = NULL;
        struct sink sink;
        char ebuf[CURL_ERROR_SIZE] = "", auth[600];
        int64_t t0;
        CURL *c;
        CURLcode cc;
        int r;

        pthread_once(&curl_once, curl_init_once);
        resp->status = 0;
        resp->latency_ns = 0;
        resp->error[0] = '\0';
        resp->body = TM_BUF_INIT(rq->max_response ? rq->max_response : 4u << 20);
        sink.b = &resp->body;
        sink.too_big = 0;
        c = curl_easy_init();
        if (!c)
                return -ENOMEM;
        curl_easy_setopt(c, CURLOPT_URL, rq->url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(rq->timeout_ms ? rq->timeout_ms : 10000));
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
        curl_easy_setopt(c, CURLOPT_USERAGENT, "tidemark/" TM_VERSION);
        if (rq->method && strcmp(rq->method, "GET"))
                curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq->method);
        if (rq->body) {
                char ct[200];

                snprintf(ct, sizeof(ct), "Content-Type: %s",
                         rq->content_type ? rq->content_type : "application/json");
                hdrs = curl_slist_append(hdrs, ct);
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(rq->body));
        } else if (rq->method && !strcmp(rq->method, "POST")) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
        }
        if (rq->bearer) {
                snprintf(auth, sizeof(auth), "Authorization: Bearer %s", rq->bearer);
                hdrs = curl_slist_append(hdrs, auth);
        }
        for (const char *const *h = rq->headers; h && *h; h++)
                hdrs = curl_slist_append(hdrs, *h);
        /* no "Expect: 100-continue" round trip for small JSON bodies */
        hdrs = curl_slist_append(hdrs, "Expect:");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
        t0 = tm_time_mono();
        cc = curl_easy_perform(c);
        resp->latency_ns = tm_time_mono() - t0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
        if (sink.too_big) {
                snprintf(resp->error, sizeof(resp->error), "the answer is longer than %zu bytes",
                         resp->body.limit);
                r = -E2BIG;
        } else {
                r = map_curl(cc);
                if (r < 0)
                        snprintf(resp->error, sizeof(resp->error), "%s",
                                 ebuf[0] ? ebuf : curl_easy_strerror(cc));
        }
        if (r >= 0 && tm_buf_append(&resp->body, "", 1) >= 0)
                resp->body.len--; /* keep it NUL-terminated, len without the NUL */
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(c);
        return r;
}

int tm_httpc_mail_format(const struct tm_httpc_mail *m, int64_t now_ns, tm_buf *out)
{
        char date[64];
        time_t t = (time_t)(now_ns / TM_NSEC_PER_SEC);
        struct tm tmv;
        int r;

        gmtime_r(&t, &tmv);
        strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tmv);
        r = tm_buf_printf(out, "Date: %s\r\nFrom: %s\r\nTo: ", date, m->from);
        for (const char *const *to = m->to; r >= 0 && to && *to; to++)
                r = tm_buf_printf(out, "%s%s", to == m->to ? "" : ", ", *to);
        if (r >= 0)
                r = tm_buf_printf(out,
                                  "\r\nSubject: %s\r\nMIME-Version: 1.0\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Transfer-Encoding: 8bit\r\n\r\n",
                                  m->subject);
        for (const char *p = m->text; r >= 0 && *p; p++) {
                if (*p == '\n' && (p == m->text || p[-1] != '\r'))
                        r = tm_buf_append(out, "\r\n", 2);
                else
                        r = tm_buf_append(out, p, 1);
        }
        if (r >= 0)
                r = tm_buf_append(out, "\r\n", 2);
        return r;
}

struct reader {
        const uint8_t *p;
        size_t left;
};

static size_t on_read(char *buf, size_t sz, size_t n, void *ud)
{
        struct reader *rd = ud;
        size_t k = sz * n < rd->left ? sz * n : rd->left;

        memcpy(buf, rd->p, k);
        rd->p += k;
        rd->left -= k;
        return k;
}

int tm_httpc_mail_send(const struct tm_httpc_mail *m, char *err, size_t errlen)
{
        tm_buf msg = TM_BUF_INIT(1 << 20);
        struct curl_slist *rcpt = NULL;
        struct reader rd;
        char ebuf[CURL_ERROR_SIZE] = "";
        CURL *c = NULL;
        CURLcode cc;
        int r;

        pthread_once(&curl_once, curl_init_once);
        r = tm_httpc_mail_format(m, tm_time_now(), &msg);
        if (r < 0)
                goto out;
        c = curl_easy_init();
        if (!c) {
                r = -ENOMEM;
                goto out;
        }
        for (const char *const *to = m->to; to && *to; to++)
                rcpt = curl_slist_append(rcpt, *to);
        rd.p = msg.data;
        rd.left = msg.len;
        curl_easy_setopt(c, CURLOPT_URL, m->url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(m->timeout_ms ? m->timeout_ms : 10000));
        curl_easy_setopt(c, CURLOPT_MAIL_FROM, m->from);
        curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(c, CURLOPT_READDATA, &rd);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg.len);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
        if (m->starttls)
                curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
        if (m->insecure) {
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
                curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
        }
        if (m->username && m->password) {
                curl_easy_setopt(c, CURLOPT_USERNAME, m->username);
                curl_easy_setopt(c, CURLOPT_PASSWORD, m->password);
        }
        cc = curl_easy_perform(c);
        r = map_curl(cc);
        if (r < 0 && err)
                snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
out:
        curl_slist_free_all(rcpt);
        if (c)
                curl_easy_cleanup(c);
        tm_buf_dispose(&msg);
        return r;
}
