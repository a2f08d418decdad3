#pragma once
/*
 * httpc: outbound requests over libcurl for the daemons that talk to other
 * services: health probes, metric scrapes, API calls made by runbooks, and
 * alert deliveries (webhooks over HTTP(S), email over SMTP with optional
 * STARTTLS and authentication). Every call has a timeout and a bound on the
 * answer it keeps.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/core.h>

struct tm_httpc_req {
        const char *method; /* "GET" (default), "POST", ... */
        const char *url;
        const char *body;           /* NUL-terminated, or NULL */
        const char *content_type;   /* default application/json when body is set */
        const char *bearer;         /* Authorization: Bearer ..., or NULL */
        const char *const *headers; /* NULL-terminated extra "Name: value" lines */
        int timeout_ms;             /* 0: 10 s */
        size_t max_response;        /* 0: 4 MiB */
};

struct tm_httpc_resp {
        long status;        /* 0 when no answer came */
        tm_buf body;        /* NUL-terminated; caller disposes */
        int64_t latency_ns; /* until the last byte */
        char error[256];    /* curl's reason when the call failed */
};

/**
 * tm_httpc_request() - make one request. Returns 0 when an answer came (any
 * status; resp->status says which), -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH,
 * -E2BIG (answer too long), -EINVAL (bad URL), -EIO (anything else;
 * resp->error says what). resp is filled either way; dispose resp->body.
 * Thread-safe (one curl handle per call).
 */
int tm_httpc_request(const struct tm_httpc_req *rq, struct tm_httpc_resp *resp);

struct tm_httpc_mail {
        const char *url; /* smtp://host:port or smtps://host:port */
        const char *from;
        const char *const *to;           /* NULL-terminated */
        const char *username, *password; /* both NULL: no AUTH */
        int starttls;                    /* 1: require STARTTLS */
        int insecure;                    /* 1: do not verify the server's certificate */
        const char *subject;
        const char *text; /* plain-text body */
        int timeout_ms;   /* 0: 10 s */
};

/**
 * tm_httpc_mail_format() - the RFC 5322 message for m (headers, a blank
 * line, the body with CRLF line ends and leading dots kept as they are; the
 * SMTP layer dot-stuffs). Returns 0 or -ENOMEM / -E2BIG.
 */
int tm_httpc_mail_format(const struct tm_httpc_mail *m, int64_t now_ns, tm_buf *out);
/**
 * tm_httpc_mail_send() - send m over SMTP. Returns 0, -ETIMEDOUT,
 * -ECONNREFUSED, -EACCES (authentication refused), -EIO (err says why).
 */
int tm_httpc_mail_send(const struct tm_httpc_mail *m, char *err, size_t errlen);
