#pragma once
/*
 * Helpers for the unit tests of the monitoring modules: a configuration
 * from text, and a real HTTP server on 127.0.0.1 (the shared http layer)
 * that records what it is sent. Header-only, static inline.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tidemark/config.h>
#include <tidemark/http.h>

/* Load a configuration from text (written to a temp file). Returns 0 or
 * the loader's error, with err set. */
static inline int mt_config(const char *text, struct tm_config **ret, char *err, size_t errlen)
{
        char path[] = "/tmp/tm-mon-conf-XXXXXX";
        int fd = mkstemp(path), r;
        FILE *f;

        if (fd < 0)
                return -errno;
        f = fdopen(fd, "w");
        fputs(text, f);
        fclose(f);
        r = tm_config_load(path, ret, err, errlen);
        unlink(path);
        return r;
}

/* The last request body the server got, and how many. */
static pthread_mutex_t mt_lock = PTHREAD_MUTEX_INITIALIZER;
static char *mt_last_body;
static int mt_requests;
static const char *mt_metrics_text = "# TYPE x gauge\nx 1\n";

static inline int mt_echo(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        pthread_mutex_lock(&mt_lock);
        if (body) { /* GET /health keeps the last body for the test to read */
                free(mt_last_body);
                mt_last_body = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
        }
        mt_requests++;
        pthread_mutex_unlock(&mt_lock);
        *ret = json_pack("{s:s, s:i}", "principal", tm_http_principal(rq), "job_id", 7);
        return 200;
}

static inline int mt_fail(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        pthread_mutex_lock(&mt_lock);
        mt_requests++;
        pthread_mutex_unlock(&mt_lock);
        return tm_http_fail(rq, -EINVAL, "refused");
}

static inline int mt_slow(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        usleep(1500 * 1000);
        *ret = json_object();
        return 200;
}

static inline int mt_metrics(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        int r = tm_http_set_text_take(rq, "text/plain; version=0.0.4", strdup(mt_metrics_text));

        return r < 0 ? r : 200;
}

static inline int mt_job(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        *ret = json_pack("{s:i, s:s}", "job_id", (int)strtol(tm_http_param(rq, "id"), NULL, 10),
                         "state", "succeeded");
        return 200;
}

static const struct tm_http_route mt_routes[] = {
        { "GET", "/health", mt_echo, TM_ROLE_NONE, 0, 0 },
        { "POST", "/echo", mt_echo, TM_ROLE_NONE, 1 << 16, 0 },
        { "POST", "/fail", mt_fail, TM_ROLE_NONE, 1 << 16, 0 },
        { "GET", "/slow", mt_slow, TM_ROLE_NONE, 0, 0 },
        { "GET", "/metrics", mt_metrics, TM_ROLE_NONE, 0, 0 },
        { "GET", "/api/v1/jobs/{id}", mt_job, TM_ROLE_NONE, 0, 0 },
};

/* Start the recording server; *url gets http://127.0.0.1:PORT. */
static inline int mt_server(tm_http_server **ret, char *url, size_t n)
{
        struct tm_http_opts o = TM_HTTP_OPTS_INIT;
        int r;

        o.listen = "127.0.0.1:0";
        o.anonymous_role = TM_ROLE_ADMIN;
        r = tm_http_serve(mt_routes, sizeof(mt_routes) / sizeof(mt_routes[0]), &o, ret);
        if (r >= 0)
                snprintf(url, n, "http://127.0.0.1:%d", tm_http_port(*ret));
        return r;
}

/* A loopback port nothing listens on (bound, then closed). */
static inline int mt_dead_port(void)
{
        tm_http_server *s;
        int port;

        if (mt_server(&s, (char[64]){ 0 }, 64) < 0)
                return 1;
        port = tm_http_port(s);
        tm_http_free(s);
        return port;
}
