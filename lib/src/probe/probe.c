/*
 * Health checks. Each check is a blocking function of the configuration and
 * the clock, so the daemon can run many in parallel and a test can run one
 * by hand.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/httpc.h>
#include <tidemark/probe.h>
#include <tidemark/time.h>

void tm_probe_strv_free(char **v)
{
        for (char **p = v; p && *p; p++)
                free(*p);
        free(v);
}

int tm_probe_strv_split(const char *s, char ***ret)
{
        char **v = calloc(strlen(s) / 2 + 2, sizeof(*v));
        size_t n = 0;

        if (!v)
                return -ENOMEM;
        while (*s) {
                size_t k;

                while (*s == ' ' || *s == ',' || *s == '\t')
                        s++;
                k = strcspn(s, " ,\t");
                if (!k)
                        break;
                v[n] = strndup(s, k);
                if (!v[n++]) {
                        tm_probe_strv_free(v);
                        return -ENOMEM;
                }
                s += k;
        }
        *ret = v;
        return 0;
}

const char *tm_probe_status_name(enum tm_probe_status s)
{
        return s == TM_PROBE_OK ? "ok" : s == TM_PROBE_FAILING ? "failing" : "unknown";
}

const char *tm_probe_type_name(enum tm_probe_type t)
{
        static const char *names[] = { "http", "metric", "freshness", "jobs" };

        return names[t];
}

static const char *op_names[] = { ">", ">=", "<", "<=", "==", "!=" };

int tm_probe_op_parse(const char *s, enum tm_probe_op *ret)
{
        for (size_t i = 0; i < TM_ARRAY_SIZE(op_names); i++)
                if (!strcmp(s, op_names[i])) {
                        *ret = (enum tm_probe_op)i;
                        return 0;
                }
        return -EINVAL;
}

const char *tm_probe_op_name(enum tm_probe_op op)
{
        return op_names[op];
}

int tm_probe_compare(double v, enum tm_probe_op op, double t)
{
        switch (op) {
        case TM_PROBE_GT:
                return v > t;
        case TM_PROBE_GE:
                return v >= t;
        case TM_PROBE_LT:
                return v < t;
        case TM_PROBE_LE:
                return v <= t;
        case TM_PROBE_EQ:
                return v == t;
        case TM_PROBE_NE:
                return v != t;
        }
        return 0;
}

static void service_dispose(struct tm_probe_service *s)
{
        free(s->name);
        free(s->url);
        free(s->health_path);
        free(s->token);
}

static void check_dispose(struct tm_probe_check *c)
{
        free(c->name);
        free(c->url);
        free(c->metric);
        tm_probe_strv_free(c->matchers);
        tm_probe_strv_free(c->components);
        tm_probe_strv_free(c->kinds);
}

void tm_probe_config_free(struct tm_probe_config *pc)
{
        if (!pc)
                return;
        for (size_t i = 0; i < pc->n_services; i++)
                service_dispose(&pc->services[i]);
        for (size_t i = 0; i < pc->n_checks; i++)
                check_dispose(&pc->checks[i]);
        free(pc->services);
        free(pc->checks);
        free(pc);
}

const struct tm_probe_check *tm_probe_check_find(const struct tm_probe_config *pc, const char *name)
{
        for (size_t i = 0; i < pc->n_checks; i++)
                if (!strcmp(pc->checks[i].name, name))
                        return &pc->checks[i];
        return NULL;
}

const struct tm_probe_service *tm_probe_service_find(const struct tm_probe_config *pc,
                                                     const char *name)
{
        for (size_t i = 0; i < pc->n_services; i++)
                if (!strcmp(pc->services[i].name, name))
                        return &pc->services[i];
        return NULL;
}

static int parse_tier(const char *v, enum tm_tier *ret)
{
        for (int t = TM_TIER_CRITICAL; t <= TM_TIER_DEVELOPMENT; t++)
                if (!strcmp(v, tm_tier_name((enum tm_tier)t))) {
                        *ret = (enum tm_tier)t;
                        return 0;
                }
        return -EINVAL;
}

static int dup_or_null(const char *v, char **ret)
{
        *ret = NULL;
        if (!v)
                return 0;
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

static int load_service(const struct tm_config *cfg, const struct tm_config_section *s,
                        struct tm_probe_service *sv, char *err, size_t errlen)
{
        static const char *keys[] = {
                "url", "health_path", "tier", "token", "token_file", "scrape"
        };
        const char *url = NULL, *v;
        size_t n;

        if (tm_config_section_check_keys(cfg, s, keys, TM_ARRAY_SIZE(keys), err, errlen) < 0)
                return -EINVAL;
        sv->name = strdup(s->name + strlen("service."));
        if (!sv->name)
                return -ENOMEM;
        url = tm_config_section_get(s, "url");
        if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
                return tm_config_section_error(cfg, s, "url", err, errlen,
                                               "[%s] needs url = http(s)://HOST:PORT", s->name);
        sv->url = strdup(url);
        if (!sv->url)
                return -ENOMEM;
        n = strlen(sv->url);
        while (n > 8 && sv->url[n - 1] == '/')
                sv->url[--n] = '\0';
        v = tm_config_section_get(s, "health_path");
        if (dup_or_null(v ? v : "/health", &sv->health_path) < 0)
                return -ENOMEM;
        sv->tier = TM_TIER_STANDARD;
        v = tm_config_section_get(s, "tier");
        if (v && parse_tier(v, &sv->tier) < 0)
                return tm_config_section_error(
                        cfg, s, "tier", err, errlen,
                        "tier must be critical, high, standard or development, not '%s'", v);
        sv->scrape = 1;
        v = tm_config_section_get(s, "scrape");
        if (v && tm_config_parse_bool(v, &sv->scrape) < 0)
                return tm_config_section_error(cfg, s, "scrape", err, errlen,
                                               "scrape must be on or off");
        if (dup_or_null(tm_config_section_get(s, "token"), &sv->token) < 0)
                return -ENOMEM;
        v = tm_config_section_get(s, "token_file");
        if (v && !sv->token) {
                tm_buf b = TM_BUF_INIT(4096);

                if (tm_file_read_all(v, 4096, &b) < 0 || tm_buf_append(&b, "", 1) < 0) {
                        tm_buf_dispose_secret(&b);
                        return tm_config_section_error(cfg, s, "token_file", err, errlen,
                                                       "cannot read the token file '%s'", v);
                }
                sv->token = (char *)b.data;
                sv->token[strcspn(sv->token, "\r\n")] = '\0';
        }
        return 0;
}

static int get_duration(const struct tm_config *cfg, const struct tm_config_section *s,
                        const char *key, int64_t def, int64_t *ret, char *err, size_t errlen)
{
        const char *v = tm_config_section_get(s, key);

        *ret = def;
        if (!v)
                return 0;
        if (tm_config_parse_duration(v, ret) < 0 || *ret <= 0)
                return tm_config_section_error(cfg, s, key, err, errlen,
                                               "%s must be a duration such as 30s, not '%s'", key,
                                               v);
        return 0;
}

static int load_check(const struct tm_config *cfg, const struct tm_probe_config *pc,
                      const struct tm_config_section *s, struct tm_probe_check *c, char *err,
                      size_t errlen)
{
        static const char *keys[] = { "type",   "service",    "url",       "interval", "timeout",
                                      "metric", "labels",     "aggregate", "op",       "threshold",
                                      "absent", "components", "max_age",   "kinds",    "window" };
        const char *type = tm_config_section_get(s, "type"), *v;
        int r;

        if (tm_config_section_check_keys(cfg, s, keys, TM_ARRAY_SIZE(keys), err, errlen) < 0)
                return -EINVAL;
        c->name = strdup(s->name + strlen("check."));
        if (!c->name)
                return -ENOMEM;
        if (!type)
                return tm_config_section_error(cfg, s, NULL, err, errlen,
                                               "[%s] needs type = http, metric, freshness or jobs",
                                               s->name);
        if (!strcmp(type, "http"))
                c->type = TM_PROBE_HTTP;
        else if (!strcmp(type, "metric"))
                c->type = TM_PROBE_METRIC;
        else if (!strcmp(type, "freshness"))
                c->type = TM_PROBE_FRESHNESS;
        else if (!strcmp(type, "jobs"))
                c->type = TM_PROBE_JOBS;
        else
                return tm_config_section_error(cfg, s, "type", err, errlen,
                                               "type must be http, metric, freshness or jobs, "
                                               "not '%s'",
                                               type);
        v = tm_config_section_get(s, "service");
        if (v) {
                c->service = tm_probe_service_find(pc, v);
                if (!c->service)
                        return tm_config_section_error(cfg, s, "service", err, errlen,
                                                       "no [service.%s] for this check", v);
        }
        if (dup_or_null(tm_config_section_get(s, "url"), &c->url) < 0)
                return -ENOMEM;
        if (!c->service && !(c->type == TM_PROBE_HTTP && c->url))
                return tm_config_section_error(cfg, s, "service", err, errlen,
                                               "[%s] needs service = NAME%s", s->name,
                                               c->type == TM_PROBE_HTTP ? " (or url =)" : "");
        r = get_duration(cfg, s, "interval", 30 * TM_NSEC_PER_SEC, &c->interval_ns, err, errlen);
        if (r >= 0)
                r = get_duration(cfg, s, "timeout", 5 * TM_NSEC_PER_SEC, &c->timeout_ns, err,
                                 errlen);
        if (r >= 0)
                r = get_duration(cfg, s, "max_age", 0, &c->max_age_ns, err, errlen);
        if (r >= 0)
                r = get_duration(cfg, s, "window", 86400 * TM_NSEC_PER_SEC, &c->window_ns, err,
                                 errlen);
        if (r < 0)
                return r;
        if (c->type == TM_PROBE_METRIC) {
                char *e;

                v = tm_config_section_get(s, "metric");
                if (!v)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "[%s] needs metric = NAME", s->name);
                c->metric = strdup(v);
                if (!c->metric)
                        return -ENOMEM;
                v = tm_config_section_get(s, "op");
                if (v && tm_probe_op_parse(v, &c->op) < 0)
                        return tm_config_section_error(cfg, s, "op", err, errlen,
                                                       "op must be > >= < <= == or !=, not '%s'",
                                                       v);
                v = tm_config_section_get(s, "threshold");
                if (!v)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "[%s] needs threshold = NUMBER", s->name);
                c->threshold = strtod(v, &e);
                if (*e || e == v)
                        return tm_config_section_error(cfg, s, "threshold", err, errlen,
                                                       "threshold must be a number, not '%s'", v);
                v = tm_config_section_get(s, "aggregate");
                if (v && tm_promtext_agg_parse(v, &c->agg) < 0)
                        return tm_config_section_error(
                                cfg, s, "aggregate", err, errlen,
                                "aggregate must be max, min, sum or count, not '%s'", v);
                v = tm_config_section_get(s, "absent");
                if (v && strcmp(v, "ok") && strcmp(v, "fail"))
                        return tm_config_section_error(cfg, s, "absent", err, errlen,
                                                       "absent must be ok or fail, not '%s'", v);
                c->absent_fails = v && !strcmp(v, "fail");
        }
        v = tm_config_section_get(s, "labels");
        if (v) {
                if (tm_probe_strv_split(v, &c->matchers) < 0)
                        return -ENOMEM;
                for (char **m = c->matchers; *m; m++)
                        if (!strchr(*m, '=') || **m == '=')
                                return tm_config_section_error(
                                        cfg, s, "labels", err, errlen,
                                        "labels must be NAME=VALUE ..., not '%s'", *m);
        }
        v = tm_config_section_get(s, "kinds");
        if (v && tm_probe_strv_split(v, &c->kinds) < 0)
                return -ENOMEM;
        v = tm_config_section_get(s, "components");
        if (v) {
                if (tm_probe_strv_split(v, &c->components) < 0)
                        return -ENOMEM;
        }
        return 0;
}

int tm_probe_config_load(const struct tm_config *cfg, struct tm_probe_config **ret, char *err,
                         size_t errlen)
{
        struct tm_probe_config *pc = calloc(1, sizeof(*pc));
        int r = 0;

        if (!pc)
                return -ENOMEM;
        pc->services = calloc(cfg->n_sections + 1, sizeof(*pc->services));
        pc->checks = calloc(cfg->n_sections + 1, sizeof(*pc->checks));
        if (!pc->services || !pc->checks) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < cfg->n_sections; i++) {
                const struct tm_config_section *s = &cfg->sections[i];

                if (strncmp(s->name, "service.", 8))
                        continue;
                r = load_service(cfg, s, &pc->services[pc->n_services++], err, errlen);
                if (r < 0)
                        goto out;
        }
        /* checks after services: they point at them */
        for (size_t i = 0; i < cfg->n_sections; i++) {
                const struct tm_config_section *s = &cfg->sections[i];

                if (strncmp(s->name, "check.", 6))
                        continue;
                r = load_check(cfg, pc, s, &pc->checks[pc->n_checks++], err, errlen);
                if (r < 0)
                        goto out;
        }
out:
        if (r < 0) {
                if (r == -ENOMEM)
                        snprintf(err, errlen, "out of memory");
                tm_probe_config_free(pc);
                return r;
        }
        *ret = pc;
        return 0;
}

int tm_probe_scrape(const struct tm_probe_service *s, int timeout_ms, tm_promtext **ret, char *err,
                    size_t errlen)
{
        struct tm_httpc_req rq = { .url = NULL,
                                   .timeout_ms = timeout_ms,
                                   .max_response = 16u << 20 };
        struct tm_httpc_resp resp;
        char url[2048], msg[200] = "";
        int r;

        snprintf(url, sizeof(url), "%s/metrics", s->url);
        rq.url = url;
        rq.bearer = s->token;
        r = tm_httpc_request(&rq, &resp);
        if (r < 0) {
                snprintf(err, errlen, "%.250s: %.250s", url, resp.error);
                goto out;
        }
        if (resp.status != 200) {
                snprintf(err, errlen, "%.400s answered HTTP %ld", url, resp.status);
                r = -EIO;
                goto out;
        }
        r = tm_promtext_parse((const char *)resp.body.data, resp.body.len, ret, msg, sizeof(msg));
        if (r < 0)
                snprintf(err, errlen, "%.300s: not the Prometheus text format (%s)", url,
                         msg[0] ? msg : "too large");
out:
        tm_buf_dispose(&resp.body);
        return r;
}

void tm_probe_eval_metric(const struct tm_probe_check *c, const tm_promtext *pt,
                          struct tm_probe_result *ret)
{
        double v;
        int r = tm_promtext_select(pt, c->metric, (const char *const *)c->matchers, c->agg, &v);

        if (r < 0) {
                ret->status = c->absent_fails ? TM_PROBE_FAILING : TM_PROBE_OK;
                ret->value = NAN;
                snprintf(ret->message, sizeof(ret->message), "%s: no such series", c->metric);
                return;
        }
        ret->value = v;
        if (tm_probe_compare(v, c->op, c->threshold)) {
                ret->status = TM_PROBE_FAILING;
                snprintf(ret->message, sizeof(ret->message), "%s = %g (%s %g)", c->metric, v,
                         tm_probe_op_name(c->op), c->threshold);
        } else {
                ret->status = TM_PROBE_OK;
                snprintf(ret->message, sizeof(ret->message), "%s = %g", c->metric, v);
        }
}

void tm_probe_eval_freshness(const struct tm_config *cfg, const struct tm_probe_check *c,
                             const tm_promtext *pt, int64_t now, struct tm_probe_result *ret)
{
        char stale[400] = "";
        size_t n_stale = 0, n = 0, len = 0;
        double oldest = 0;

        ret->n_items = 0;

        for (size_t i = 0;; i++) {
                const char *name;
                const struct tm_component_conf *cc;
                char m[300];
                const char *mv[] = { m, NULL };
                int64_t rpo;
                double last, age;

                if (c->components)
                        name = c->components[i];
                else
                        name = i < cfg->n_components ? cfg->components[i].name : NULL;
                if (!name)
                        break;
                n++;
                cc = tm_config_component(cfg, name);
                rpo = c->max_age_ns ? c->max_age_ns
                                    : tm_tier_rpo(cc ? cc->tier : TM_TIER_STANDARD);
                snprintf(m, sizeof(m), "component=%s", name);
                if (tm_promtext_select(pt, "backup_last_success_timestamp_seconds", mv,
                                       TM_PROMTEXT_MAX, &last) < 0) {
                        age = INFINITY;
                } else {
                        age = (double)now / 1e9 - last;
                }
                if (age > oldest)
                        oldest = age;
                if (ret->n_items < TM_PROBE_MAX_ITEMS) {
                        struct tm_probe_item *it = &ret->items[ret->n_items++];

                        snprintf(it->label, sizeof(it->label), "component");
                        snprintf(it->value, sizeof(it->value), "%s", name);
                        it->failing = age * 1e9 > (double)rpo;
                        it->metric = age;
                        if (isinf(age))
                                snprintf(it->message, sizeof(it->message),
                                         "%s: no successful backup", name);
                        else
                                snprintf(it->message, sizeof(it->message),
                                         "%s: last backup %.0f s ago, RPO %lld s", name, age,
                                         (long long)(rpo / TM_NSEC_PER_SEC));
                }
                if (age * 1e9 > (double)rpo) {
                        n_stale++;
                        if (len < sizeof(stale) - 1) {
                                int k;

                                if (isinf(age))
                                        k = snprintf(stale + len, sizeof(stale) - len,
                                                     "%s%s (no successful backup)", len ? ", " : "",
                                                     name);
                                else
                                        k = snprintf(stale + len, sizeof(stale) - len,
                                                     "%s%s (last %.0f s ago, RPO %lld s)",
                                                     len ? ", " : "", name, age,
                                                     (long long)(rpo / TM_NSEC_PER_SEC));
                                len += k > 0 ? (size_t)k : 0;
                        }
                }
        }
        ret->value = oldest;
        if (n_stale) {
                ret->status = TM_PROBE_FAILING;
                snprintf(ret->message, sizeof(ret->message), "%zu of %zu components stale: %s",
                         n_stale, n, stale);
        } else {
                ret->status = TM_PROBE_OK;
                snprintf(ret->message, sizeof(ret->message),
                         "%zu components backed up within their RPO", n);
        }
}

void tm_probe_eval_jobs(const struct tm_probe_check *c, const json_t *jobs, int64_t now,
                        struct tm_probe_result *ret)
{
        char failed[400] = "";
        size_t len = 0, n_failed = 0, n_seen = 0, i;
        json_t *j;

        json_array_foreach((json_t *)jobs, i, j)
        {
                const char *kind = json_string_value(json_object_get(j, "kind"));
                const char *state = json_string_value(json_object_get(j, "state"));
                const char *when = json_string_value(json_object_get(j, "finished"));
                int64_t t;
                int want = !c->kinds;

                for (char **k = c->kinds; kind && k && *k; k++)
                        want |= !strcmp(*k, kind);
                if (!want || !state || !kind)
                        continue;
                if (!when)
                        when = json_string_value(json_object_get(j, "created"));
                if (!when || tm_time_parse(when, &t, NULL) < 0 || now - t > c->window_ns)
                        continue;
                n_seen++;
                /* an interrupted job that was retried is judged by its retry */
                if (json_object_get(j, "retried_by"))
                        continue;
                if (strcmp(state, "failed") && strcmp(state, "partial") &&
                    strcmp(state, "interrupted"))
                        continue;
                n_failed++;
                if (len < sizeof(failed) - 1) {
                        const char *comp = json_string_value(json_object_get(j, "component"));
                        const char *e = json_string_value(json_object_get(j, "error"));
                        int k = snprintf(failed + len, sizeof(failed) - len, "%s%s %s %s%s%s",
                                         len ? "; " : "", kind, comp ? comp : "", state,
                                         e ? ": " : "", e ? e : "");

                        len += k > 0 ? (size_t)k : 0;
                }
        }
        ret->value = (double)n_failed;
        if (n_failed) {
                ret->status = TM_PROBE_FAILING;
                snprintf(ret->message, sizeof(ret->message), "%zu of %zu recent jobs failed: %s",
                         n_failed, n_seen, failed);
        } else {
                ret->status = TM_PROBE_OK;
                snprintf(ret->message, sizeof(ret->message), "%zu recent jobs, none failed",
                         n_seen);
        }
}

static int run_jobs(const struct tm_probe_check *c, int timeout_ms, struct tm_probe_result *ret)
{
        struct tm_httpc_req rq = { .timeout_ms = timeout_ms, .max_response = 16u << 20 };
        struct tm_httpc_resp resp;
        char url[2048];
        json_t *doc = NULL;
        int r;

        snprintf(url, sizeof(url), "%s/api/v1/backups/status", c->service->url);
        rq.url = url;
        rq.bearer = c->service->token;
        r = tm_httpc_request(&rq, &resp);
        ret->latency_ns = resp.latency_ns;
        if (r >= 0 && resp.status == 200)
                doc = json_loads((const char *)resp.body.data, 0, NULL);
        if (r < 0)
                snprintf(ret->message, sizeof(ret->message), "%.250s: %.250s", url, resp.error);
        else if (resp.status != 200)
                snprintf(ret->message, sizeof(ret->message), "%.400s answered HTTP %ld", url,
                         resp.status);
        else if (!json_is_array(json_object_get(doc, "recent")))
                snprintf(ret->message, sizeof(ret->message), "%.400s: no \"recent\" job list", url);
        tm_buf_dispose(&resp.body);
        if (!json_is_array(json_object_get(doc, "recent"))) {
                ret->status = TM_PROBE_FAILING;
                ret->reached = r >= 0;
                json_decref(doc);
                return 0;
        }
        ret->reached = 1;
        tm_probe_eval_jobs(c, json_object_get(doc, "recent"), tm_time_now(), ret);
        json_decref(doc);
        return 0;
}

int tm_probe_run(const struct tm_config *cfg, const struct tm_probe_check *c,
                 struct tm_probe_result *ret)
{
        int timeout_ms = (int)(c->timeout_ns / 1000000);
        tm_promtext *pt = NULL;
        int64_t t0;
        int r;

        memset(ret, 0, sizeof(*ret));
        ret->at = tm_time_now();
        ret->value = NAN;
        if (c->type == TM_PROBE_HTTP) {
                struct tm_httpc_req rq = { .timeout_ms = timeout_ms, .max_response = 1u << 20 };
                struct tm_httpc_resp resp;
                char url[2048];

                if (c->url)
                        snprintf(url, sizeof(url), "%s", c->url);
                else
                        snprintf(url, sizeof(url), "%s%s", c->service->url,
                                 c->service->health_path);
                rq.url = url;
                rq.bearer = c->service ? c->service->token : NULL;
                r = tm_httpc_request(&rq, &resp);
                ret->latency_ns = resp.latency_ns;
                if (r < 0) {
                        ret->status = TM_PROBE_FAILING;
                        snprintf(ret->message, sizeof(ret->message), "%.250s: %.250s", url,
                                 resp.error);
                } else {
                        ret->reached = 1;
                        ret->value = (double)resp.status;
                        ret->status = resp.status >= 200 && resp.status < 300 ? TM_PROBE_OK
                                                                              : TM_PROBE_FAILING;
                        snprintf(ret->message, sizeof(ret->message), "%.400s answered HTTP %ld",
                                 url, resp.status);
                }
                tm_buf_dispose(&resp.body);
                return 0;
        }
        if (c->type == TM_PROBE_JOBS)
                return run_jobs(c, timeout_ms, ret);
        t0 = tm_time_mono();
        r = tm_probe_scrape(c->service, timeout_ms, &pt, ret->message, sizeof(ret->message));
        ret->latency_ns = tm_time_mono() - t0;
        if (r == -ENOMEM)
                return r;
        if (r < 0) {
                ret->status = TM_PROBE_FAILING;
                return 0;
        }
        ret->reached = 1;
        if (c->type == TM_PROBE_METRIC)
                tm_probe_eval_metric(c, pt, ret);
        else
                tm_probe_eval_freshness(cfg, c, pt, tm_time_now(), ret);
        tm_promtext_free(pt);
        return 0;
}
