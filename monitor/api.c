/*
 * The REST API of tidemark-monitord: the spec's monitoring endpoints
 * (health, alerts, metrics, test alert) and its business-continuity ones
 * (incidents, SLA, runbooks, compliance report), on the shared HTTP layer.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/compliance.h>
#include <tidemark/log.h>
#include <tidemark/time.h>

#include "mon.h"

static const char openapi_json[] =
#include "openapi.inc"
        ;
static const char docs_html[] =
#include "docs_html.inc"
        ;

static int api_openapi(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        *ret = json_loads(openapi_json, 0, NULL);
        return *ret ? 200 : -EIO;
}

static int api_docs(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        int r = tm_http_set_text_take(rq, "text/html; charset=utf-8", strdup(docs_html));

        return r < 0 ? r : 200;
}

static int api_health(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        int64_t age;
        int sched_ok, stopping;

        pthread_mutex_lock(&m->lock);
        age = tm_time_mono() - m->sched_tick;
        stopping = m->stopping;
        pthread_mutex_unlock(&m->lock);
        sched_ok = age < 30 * TM_NSEC_PER_SEC;
        *ret = json_pack("{s:s, s:s, s:{s:s, s:s}}", "status",
                         sched_ok && !stopping ? "healthy" : "unhealthy", "version", TM_VERSION,
                         "checks", "scheduler", sched_ok ? "ok" : "stalled", "api",
                         stopping ? "shutting down" : "ok");
        if (!*ret)
                return -ENOMEM;
        return sched_ok && !stopping ? 200 : 503;
}

static int api_metrics(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        tm_buf out = TM_BUF_INIT(32u << 20);
        int r;

        mon_metrics_refresh(m);
        r = tm_metrics_render(m->metrics, &out);
        if (r >= 0 && m->reexport)
                r = mon_reexport(m, &out);
        if (r >= 0)
                r = tm_buf_append(&out, "", 1);
        if (r < 0) {
                tm_buf_dispose(&out);
                return r;
        }
        r = tm_http_set_text_take(rq, "text/plain; version=0.0.4; charset=utf-8", (char *)out.data);
        return r < 0 ? r : 200;
}

static json_t *result_json(const struct mon_check *mc)
{
        const struct tm_probe_result *res = &mc->last;
        json_t *o = json_pack("{s:s, s:s, s:s}", "status", tm_probe_status_name(res->status),
                              "type", tm_probe_type_name(mc->c->type), "message", res->message);

        if (!o)
                return NULL;
        if (mc->c->service)
                json_object_set_new(o, "service", json_string(mc->c->service->name));
        if (res->at) {
                char t[40];

                tm_time_format(res->at, t, sizeof(t));
                json_object_set_new(o, "last_run", json_string(t));
                json_object_set_new(o, "latency_ms", json_real((double)res->latency_ns / 1e6));
        }
        if (!isnan(res->value) && !isinf(res->value))
                json_object_set_new(o, "value", json_real(res->value));
        json_object_set_new(o, "interval_seconds", json_real((double)mc->c->interval_ns / 1e9));
        json_object_set_new(o, "runs", json_integer((json_int_t)mc->runs));
        json_object_set_new(o, "failures", json_integer((json_int_t)mc->failures));
        return o;
}

static int api_health_all(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        json_t *checks = json_object(), *services = json_object();
        unsigned failing = 0, unknown = 0, alerts[4];
        const char *status;

        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->n_checks; i++) {
                json_object_set_new(checks, m->checks[i].c->name, result_json(&m->checks[i]));
                failing += m->checks[i].last.status == TM_PROBE_FAILING;
                unknown += m->checks[i].last.status == TM_PROBE_UNKNOWN;
        }
        for (size_t i = 0; i < m->pc->n_services; i++) {
                const struct tm_probe_service *s = &m->pc->services[i];
                const char *st = "unknown";

                for (size_t k = 0; k < m->n_checks; k++)
                        if (m->checks[k].c->service == s && m->checks[k].c->type == TM_PROBE_HTTP &&
                            m->checks[k].last.status != TM_PROBE_UNKNOWN)
                                st = m->checks[k].last.status == TM_PROBE_OK ? "up" : "down";
                json_object_set_new(services, s->name,
                                    json_pack("{s:s, s:s, s:s}", "url", s->url, "tier",
                                              tm_tier_name(s->tier), "status", st));
        }
        pthread_mutex_unlock(&m->lock);
        tm_alerts_firing_counts(m->alerts, alerts);
        status = failing ? (alerts[0] ? "unhealthy" : "degraded") : unknown ? "unknown" : "healthy";
        *ret = json_pack("{s:s, s:I, s:I, s:I, s:o, s:o, s:I}", "status", status, "checks_total",
                         (json_int_t)m->n_checks, "checks_failing", (json_int_t)failing,
                         "checks_unknown", (json_int_t)unknown, "checks", checks, "services",
                         services, "alerts_firing",
                         (json_int_t)(alerts[0] + alerts[1] + alerts[2] + alerts[3]));
        return *ret ? 200 : -ENOMEM;
}

static int api_health_check(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *name = tm_http_param(rq, "name");
        struct tm_probe_result res;
        struct mon_check copy;

        for (size_t i = 0; i < m->n_checks; i++) {
                if (strcmp(m->checks[i].c->name, name))
                        continue;
                mon_check_run(m, i, &res);
                pthread_mutex_lock(&m->lock);
                copy = m->checks[i];
                pthread_mutex_unlock(&m->lock);
                copy.last = res;
                *ret = result_json(&copy);
                if (*ret)
                        json_object_set_new(*ret, "name", json_string(name));
                return *ret ? 200 : -ENOMEM;
        }
        return tm_http_fail(rq, -ENOENT, "no check '%s' (see GET /api/v1/health)", name);
}

static int api_alerts_active(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *pending = tm_http_query(rq, "pending");
        int p = 0;
        json_t *a;

        if (pending && tm_config_parse_bool(pending, &p) < 0)
                return tm_http_fail(rq, -EINVAL, "pending must be true or false");
        a = tm_alerts_active_json(m->alerts, tm_time_now(), p);
        if (!a)
                return -ENOMEM;
        *ret = json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(a), "alerts", a);
        return *ret ? 200 : -ENOMEM;
}

static int api_silence_add(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *alert, *duration, *comment = "";
        int64_t d, now = tm_time_now();
        uint64_t id;
        int r;

        r = tm_http_unpack(rq, body, "{s:s, s:s, s?:s}", "alert", &alert, "duration", &duration,
                           "comment", &comment);
        if (r < 0)
                return r;
        if (tm_config_parse_duration(duration, &d) < 0 || d <= 0)
                return tm_http_fail(rq, -EINVAL, "duration must be like 30m or 2h, not '%s'",
                                    duration);
        r = tm_alerts_silence(m->alerts, alert, now + d, comment, tm_http_principal(rq), now, &id);
        if (r == -ENOENT)
                return tm_http_fail(rq, -ENOENT, "no alert rule '%s'", alert);
        if (r == -ENOSPC)
                return tm_http_fail(rq, -EBUSY, "too many silences");
        if (r < 0)
                return r;
        *ret = json_pack("{s:I, s:s}", "id", (json_int_t)id, "alert", alert);
        return 201;
}

static int api_silences(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);

        *ret = json_pack("{s:o}", "silences", tm_alerts_silences_json(m->alerts, tm_time_now()));
        return *ret ? 200 : -ENOMEM;
}

static int api_silence_del(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *s = tm_http_param(rq, "id");
        char *e;
        unsigned long long id = strtoull(s, &e, 10);

        if (*e || !*s)
                return tm_http_fail(rq, -EINVAL, "a silence id is a number, not '%s'", s);
        if (tm_alerts_unsilence(m->alerts, id) < 0)
                return tm_http_fail(rq, -ENOENT, "no silence %llu", id);
        *ret = json_pack("{s:I, s:b}", "id", (json_int_t)id, "removed", 1);
        return 200;
}

static int api_metrics_json(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *only = tm_http_query(rq, "name");
        json_t *services = json_object();

        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->n_scrapes; i++) {
                struct mon_scrape *sc = &m->scrapes[i];
                json_t *metrics = json_object(), *o;
                char t[40] = "";

                if (sc->last) {
                        size_t n;
                        const struct tm_promtext_sample *s = tm_promtext_samples(sc->last, &n);

                        for (size_t k = 0; k < n; k++) {
                                json_t *labels = json_object(), *arr;

                                if (only && strcmp(only, s[k].name)) {
                                        json_decref(labels);
                                        continue;
                                }
                                for (size_t l = 0; l < s[k].n_labels; l++)
                                        json_object_set_new(labels, s[k].labels[l].name,
                                                            json_string(s[k].labels[l].value));
                                arr = json_object_get(metrics, s[k].name);
                                if (!arr) {
                                        arr = json_array();
                                        json_object_set_new(metrics, s[k].name, arr);
                                }
                                json_array_append_new(
                                        arr, json_pack("{s:o, s:f}", "labels", labels, "value",
                                                       isfinite(s[k].value) ? s[k].value : 0.0));
                        }
                        tm_time_format(sc->at, t, sizeof(t));
                }
                o = json_pack("{s:b, s:s, s:o}", "up", sc->last && !sc->error[0], "url", sc->s->url,
                              "metrics", metrics);
                if (t[0])
                        json_object_set_new(o, "scraped_at", json_string(t));
                if (sc->error[0])
                        json_object_set_new(o, "error", json_string(sc->error));
                json_object_set_new(services, sc->s->name, o);
        }
        pthread_mutex_unlock(&m->lock);
        {
                unsigned a[4], inc[4];

                tm_alerts_firing_counts(m->alerts, a);
                tm_incidents_active_counts(m->incidents, inc);
                *ret = json_pack("{s:o, s:{s:I, s:I}}", "services", services, "monitord",
                                 "alerts_firing", (json_int_t)(a[0] + a[1] + a[2] + a[3]),
                                 "active_incidents_count",
                                 (json_int_t)(inc[0] + inc[1] + inc[2] + inc[3]));
        }
        return *ret ? 200 : -ENOMEM;
}

static int api_test_alert(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *message = "test alert from tidemark-monitord", *severity = "info";
        const char *const *names = tm_notify_names(m->notify);
        struct tm_notify_msg msg = { 0 };
        json_t *results;
        char key[64];
        int ok = 0, r;

        if (body) {
                r = tm_http_unpack(rq, body, "{s?:s, s?:s}", "message", &message, "severity",
                                   &severity);
                if (r < 0)
                        return r;
        }
        if (!tm_notify_count(m->notify))
                return tm_http_fail(rq, -ENOENT, "no [channel.*] is configured");
        results = json_array();
        if (!results)
                return -ENOMEM;
        snprintf(key, sizeof(key), "tidemark/test/%lld", (long long)tm_time_now());
        msg.kind = "test";
        msg.status = "firing";
        msg.name = "test";
        msg.severity = severity;
        msg.title = message;
        msg.text = message;
        msg.dedup_key = key;
        msg.at = tm_time_now();
        for (const char *const *n = names; *n; n++) {
                char err[256] = "";
                const char *one[] = { *n, NULL };

                r = tm_notify_deliver_now(m->notify, *n, &msg, err, sizeof(err));
                if (r >= 0) {
                        ok++;
                        json_array_append_new(
                                results, json_pack("{s:s, s:b}", "channel", *n, "delivered", 1));
                } else {
                        /* a channel that is down gets the message with retries */
                        tm_notify_send(m->notify, &msg, one);
                        json_array_append_new(results, json_pack("{s:s, s:b, s:s, s:b}", "channel",
                                                                 *n, "delivered", 0, "error", err,
                                                                 "queued_for_retry", 1));
                }
        }
        *ret = json_pack("{s:I, s:I, s:o}", "delivered", (json_int_t)ok, "channels",
                         (json_int_t)tm_notify_count(m->notify), "results", results);
        return *ret ? 200 : -ENOMEM;
}

static int api_channels(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);

        *ret = json_pack("{s:o}", "channels", tm_notify_stats_json(m->notify));
        return *ret ? 200 : -ENOMEM;
}

/* ---- incidents ---- */

static int api_incident_create(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *title, *severity, *description = NULL;
        json_t *services = NULL, *v;
        char id[32];
        size_t i;
        int r;

        r = tm_http_unpack(rq, body, "{s:s, s:s, s?:o, s?:s}", "title", &title, "severity",
                           &severity, "affected_services", &services, "description", &description);
        if (r < 0)
                return r;
        if (!*title || strlen(title) > 500)
                return tm_http_fail(rq, -EINVAL, "title must be 1 to 500 characters");
        if (tm_incident_severity_valid(severity) < 0)
                return tm_http_fail(rq, -EINVAL,
                                    "severity must be critical, high, medium or low, not '%s'",
                                    severity);
        if (services && !json_is_array(services))
                return tm_http_fail(rq, -EINVAL, "affected_services must be an array of names");
        json_array_foreach(
                services, i,
                v) if (!json_is_string(v) ||
                       !*json_string_value(v)) return tm_http_fail(rq, -EINVAL,
                                                                   "affected_services[%zu] must be "
                                                                   "a non-empty string",
                                                                   i);
        r = tm_incidents_create(m->incidents, title, severity, services, "api",
                                tm_http_principal(rq), tm_time_now(), id, sizeof(id));
        if (r < 0)
                return r;
        if (description)
                tm_incidents_note(m->incidents, id, "description", tm_http_principal(rq),
                                  description, NULL, tm_time_now());
        mon_incident_notify(m, id, "opened", description ? description : title);
        *ret = tm_incidents_get(m->incidents, id);
        return *ret ? 201 : -ENOMEM;
}

static int api_incidents(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *status = tm_http_query(rq, "status");
        json_t *a;

        if (status && strcmp(status, "active") && strcmp(status, "open") &&
            strcmp(status, "acknowledged") && strcmp(status, "investigating") &&
            strcmp(status, "identified") && strcmp(status, "monitoring") &&
            strcmp(status, "resolved"))
                return tm_http_fail(rq, -EINVAL,
                                    "status must be active, open, acknowledged, investigating, "
                                    "identified, monitoring or resolved");
        a = tm_incidents_list(m->incidents, status, 0, 0);
        *ret = json_pack("{s:I, s:o}", "count", (json_int_t)json_array_size(a), "incidents", a);
        return *ret ? 200 : -ENOMEM;
}

static int api_incident_get(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *id = tm_http_param(rq, "id");

        *ret = tm_incidents_get(m->incidents, id);
        if (!*ret)
                return tm_http_fail(rq, -ENOENT, "no incident '%s'", id);
        return 200;
}

static int incident_error(struct tm_http_req *rq, int r, const char *id)
{
        if (r == -ENOENT)
                return tm_http_fail(rq, r, "no incident '%s'", id);
        if (r == -EBUSY)
                return tm_http_fail(rq, r, "incident '%s' is already %s", id,
                                    "acknowledged or resolved");
        return r;
}

static int api_incident_ack(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *id = tm_http_param(rq, "id"), *message = NULL;
        double secs = 0;
        json_t *inc;
        int r;

        if (body && (r = tm_http_unpack(rq, body, "{s?:s}", "message", &message)) < 0)
                return r;
        r = tm_incidents_acknowledge(m->incidents, id, tm_http_principal(rq), message,
                                     tm_time_now(), &secs);
        if (r < 0)
                return incident_error(rq, r, id);
        inc = tm_incidents_get(m->incidents, id);
        if (!inc)
                return -ENOMEM;
        mon_incident_responded(m, json_string_value(json_object_get(inc, "severity")), secs);
        mon_incident_notify(m, id, "acknowledged", message);
        *ret = inc;
        return 200;
}

static int api_incident_update(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *id = tm_http_param(rq, "id"), *message, *status = NULL;
        int r;

        r = tm_http_unpack(rq, body, "{s:s, s?:s}", "message", &message, "status", &status);
        if (r < 0)
                return r;
        if (!*message)
                return tm_http_fail(rq, -EINVAL, "message must not be empty");
        r = tm_incidents_update(m->incidents, id, tm_http_principal(rq), message, status,
                                tm_time_now());
        if (r == -EINVAL)
                return tm_http_fail(rq, r,
                                    "status must be investigating, identified or monitoring "
                                    "(resolve and acknowledge have their own endpoints)");
        if (r == -EBUSY)
                return tm_http_fail(rq, r, "incident '%s' is resolved", id);
        if (r < 0)
                return incident_error(rq, r, id);
        mon_incident_notify(m, id, "updated", message);
        *ret = tm_incidents_get(m->incidents, id);
        return *ret ? 200 : -ENOMEM;
}

static int api_incident_resolve(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *id = tm_http_param(rq, "id"), *message = NULL;
        int r;

        if (body && (r = tm_http_unpack(rq, body, "{s?:s}", "message", &message)) < 0)
                return r;
        r = tm_incidents_resolve(m->incidents, id, tm_http_principal(rq), message, tm_time_now());
        if (r == -EBUSY)
                return tm_http_fail(rq, r, "incident '%s' is already resolved", id);
        if (r < 0)
                return incident_error(rq, r, id);
        mon_incident_notify(m, id, "resolved", message);
        *ret = tm_incidents_get(m->incidents, id);
        return *ret ? 200 : -ENOMEM;
}

/* ---- SLA ---- */

static int api_sla(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        char t[40];

        json_t *targets = json_pack("{s:f}", "p95_response_ms", 500.0);

        for (int i = 0; targets && i < TM_TIER_COUNT; i++)
                if (json_object_set_new(targets, tm_tier_name((enum tm_tier)i),
                                        json_real(tm_tier_availability((enum tm_tier)i))) < 0) {
                        json_decref(targets);
                        targets = NULL;
                }
        if (!targets)
                return -ENOMEM;
        tm_time_format(tm_time_now(), t, sizeof(t));
        *ret = json_pack("{s:s, s:o, s:o}", "generated", t, "targets", targets, "services",
                         mon_sla_json(m, tm_time_now()));
        return *ret ? 200 : -ENOMEM;
}

/* ---- runbooks ---- */

static int api_runbooks(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        json_t *a = json_array();

        for (size_t i = 0; a && i < m->runbooks->n; i++)
                json_array_append_new(a, tm_runbook_json(&m->runbooks->rb[i]));
        *ret = json_pack("{s:o}", "runbooks", a);
        return *ret ? 200 : -ENOMEM;
}

static json_t *job_json(const struct tm_job *j)
{
        char t[40];
        json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "execution_id", (json_int_t)j->id, "runbook",
                              j->component, "state", j->state, "incident_id", j->target);

        if (!o)
                return NULL;
        if (j->created) {
                tm_time_format(j->created, t, sizeof(t));
                json_object_set_new(o, "created", json_string(t));
        }
        if (j->finished) {
                tm_time_format(j->finished, t, sizeof(t));
                json_object_set_new(o, "finished", json_string(t));
                json_object_set_new(o, "duration_seconds",
                                    json_real((double)(j->finished - j->started) / 1e9));
        }
        if (j->error[0])
                json_object_set_new(o, "error", json_string(j->error));
        if (j->result_json) {
                json_t *r = json_loads(j->result_json, 0, NULL);

                if (r)
                        json_object_set_new(o, "steps", json_incref(json_object_get(r, "steps")));
                json_decref(r);
        }
        return o;
}

static int api_runbook_execute(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *name;
        json_t *context = NULL;
        char msg[256] = "";
        uint64_t job;
        int r;

        r = tm_http_unpack(rq, body, "{s:s, s?:o}", "runbook", &name, "context", &context);
        if (r < 0)
                return r;
        if (context && !json_is_object(context))
                return tm_http_fail(rq, -EINVAL, "context must be an object");
        r = mon_runbook_start(m, name, context, &job, msg, sizeof(msg));
        if (r < 0)
                return msg[0] ? tm_http_fail(rq, r, "%s", msg) : r;
        *ret = json_pack("{s:I, s:s, s:s, s:s}", "execution_id", (json_int_t)job, "runbook", name,
                         "state", "running", "status_url", "");
        if (*ret) {
                char url[96];

                snprintf(url, sizeof(url), "/api/v1/runbooks/executions/%llu",
                         (unsigned long long)job);
                json_object_set_new(*ret, "status_url", json_string(url));
        }
        return 202;
}

static int api_runbook_execution(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *s = tm_http_param(rq, "id");
        struct tm_job j;
        char *e;
        unsigned long long id = strtoull(s, &e, 10);

        if (*e || !*s)
                return tm_http_fail(rq, -EINVAL, "an execution id is a number, not '%s'", s);
        if (tm_jobs_get(m->jobs, id, &j) < 0)
                return tm_http_fail(rq, -ENOENT, "no runbook execution %llu", id);
        if (strcmp(j.kind, "runbook")) {
                tm_job_dispose(&j);
                return tm_http_fail(rq, -ENOENT, "no runbook execution %llu", id);
        }
        *ret = job_json(&j);
        tm_job_dispose(&j);
        return *ret ? 200 : -ENOMEM;
}

/* ---- compliance ---- */

static int api_compliance(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct mon *m = tm_http_app(rq);
        const char *from_s = tm_http_query(rq, "from"), *to_s = tm_http_query(rq, "to");
        const char *format = tm_http_query(rq, "format");
        int64_t from, to, now = tm_time_now();
        char msg[256] = "";
        int r;

        to = now;
        from = now - 30LL * 86400 * TM_NSEC_PER_SEC;
        if (from_s && tm_time_parse(from_s, &from, NULL) < 0)
                return tm_http_fail(rq, -EINVAL, "from must be a time like 2025-01-01T00:00:00Z");
        if (to_s && tm_time_parse(to_s, &to, NULL) < 0)
                return tm_http_fail(rq, -EINVAL, "to must be a time like 2025-01-31T23:59:59Z");
        if (to <= from)
                return tm_http_fail(rq, -EINVAL, "to must be after from");
        if (format && strcmp(format, "json") && strcmp(format, "html"))
                return tm_http_fail(rq, -EINVAL, "format must be json or html");
        r = mon_compliance(m, from, to, ret, msg, sizeof(msg));
        if (r < 0)
                return msg[0] ? tm_http_fail(rq, r, "%s", msg) : r;
        if (format && !strcmp(format, "html")) {
                char *html = tm_compliance_html(*ret);

                json_decref(*ret);
                *ret = NULL;
                if (!html)
                        return -ENOMEM;
                r = tm_http_set_text_take(rq, "text/html; charset=utf-8", html);
                return r < 0 ? r : 200;
        }
        return 200;
}

/* clang-format off */
const struct tm_http_route mon_routes[] = {
        { "GET",    "/health",                            api_health,            TM_ROLE_NONE,     0,        0 },
        { "GET",    "/metrics",                           api_metrics,           TM_ROLE_NONE,     0,        0 },
        { "GET",    "/docs",                              api_docs,              TM_ROLE_NONE,     0,        0 },
        { "GET",    "/docs/openapi.json",                 api_openapi,           TM_ROLE_NONE,     0,        0 },
        { "GET",    "/api/v1/health",                     api_health_all,        TM_ROLE_VIEWER,   0,        0 },
        { "POST",   "/api/v1/health/check/{name}",        api_health_check,      TM_ROLE_OPERATOR, 0,        TM_HTTP_AUDIT },
        { "GET",    "/api/v1/alerts/active",              api_alerts_active,     TM_ROLE_VIEWER,   0,        0 },
        { "GET",    "/api/v1/alerts/silences",            api_silences,          TM_ROLE_VIEWER,   0,        0 },
        { "POST",   "/api/v1/alerts/silences",            api_silence_add,       TM_ROLE_OPERATOR, 4096,     TM_HTTP_AUDIT },
        { "DELETE", "/api/v1/alerts/silences/{id}",       api_silence_del,       TM_ROLE_OPERATOR, 0,        TM_HTTP_AUDIT },
        { "GET",    "/api/v1/metrics",                    api_metrics_json,      TM_ROLE_VIEWER,   0,        0 },
        { "POST",   "/api/v1/test/alert",                 api_test_alert,        TM_ROLE_OPERATOR, 4096,     TM_HTTP_AUDIT },
        { "GET",    "/api/v1/channels",                   api_channels,          TM_ROLE_VIEWER,   0,        0 },
        { "POST",   "/api/v1/incidents",                  api_incident_create,   TM_ROLE_OPERATOR, 16384,    TM_HTTP_AUDIT },
        { "GET",    "/api/v1/incidents",                  api_incidents,         TM_ROLE_VIEWER,   0,        0 },
        { "GET",    "/api/v1/incidents/{id}",             api_incident_get,      TM_ROLE_VIEWER,   0,        0 },
        { "POST",   "/api/v1/incidents/{id}/acknowledge", api_incident_ack,      TM_ROLE_OPERATOR, 4096,     TM_HTTP_AUDIT },
        { "POST",   "/api/v1/incidents/{id}/updates",     api_incident_update,   TM_ROLE_OPERATOR, 16384,    TM_HTTP_AUDIT },
        { "POST",   "/api/v1/incidents/{id}/resolve",     api_incident_resolve,  TM_ROLE_OPERATOR, 16384,    TM_HTTP_AUDIT },
        { "GET",    "/api/v1/sla/metrics",                api_sla,               TM_ROLE_VIEWER,   0,        0 },
        { "GET",    "/api/v1/runbooks",                   api_runbooks,          TM_ROLE_VIEWER,   0,        0 },
        { "POST",   "/api/v1/runbooks/execute",           api_runbook_execute,   TM_ROLE_OPERATOR, 16384,    TM_HTTP_AUDIT },
        { "GET",    "/api/v1/runbooks/executions/{id}",   api_runbook_execution, TM_ROLE_VIEWER,   0,        0 },
        { "GET",    "/api/v1/reports/compliance",         api_compliance,        TM_ROLE_VIEWER,   0,        0 },
};
/* clang-format on */
const size_t mon_n_routes = TM_ARRAY_SIZE(mon_routes);
