/*
 * The engine: a scheduler thread hands due checks and scrapes to a small
 * pool of workers; each result is evaluated against the alert rules right
 * away, so an alert goes out within one check interval of its condition.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tidemark/log.h>
#include <tidemark/time.h>

#include "mon.h"

static const double response_buckets[] = { 10, 30, 60, 300, 900, 1800, 3600, 14400, 86400 };

void mon_metrics_define(struct mon *m)
{
        tm_metrics *r = m->metrics;

        tm_metrics_define(r, "monitor_check_up", TM_METRIC_GAUGE,
                          "1 when the check passed on its last run, 0 when it failed", NULL, 0);
        tm_metrics_define(r, "monitor_check_duration_seconds", TM_METRIC_GAUGE,
                          "Duration of the last run of a check", NULL, 0);
        tm_metrics_define(r, "monitor_check_runs_total", TM_METRIC_COUNTER,
                          "Check runs since the daemon started, by result", NULL, 0);
        tm_metrics_define(r, "monitor_service_up", TM_METRIC_GAUGE,
                          "1 when the service's metrics were scraped on the last try", NULL, 0);
        tm_metrics_define(r, "monitor_alerts_firing", TM_METRIC_GAUGE,
                          "Alerts firing now, by severity", NULL, 0);
        tm_metrics_define(r, "monitor_notifications_total", TM_METRIC_COUNTER,
                          "Notifications by channel and result", NULL, 0);
        tm_metrics_define(r, "monitor_channel_up", TM_METRIC_GAUGE,
                          "1 when the last delivery on the channel succeeded", NULL, 0);
        tm_metrics_define(r, "incident_response_time_seconds", TM_METRIC_HISTOGRAM,
                          "Time from an incident's opening to its acknowledgement",
                          response_buckets, TM_ARRAY_SIZE(response_buckets));
        tm_metrics_define(r, "active_incidents_count", TM_METRIC_GAUGE,
                          "Incidents not resolved, by severity", NULL, 0);
        tm_metrics_define(r, "sla_availability_percent", TM_METRIC_GAUGE,
                          "Service availability over a rolling window, from the health probes",
                          NULL, 0);
        tm_metrics_define(r, "sla_target_percent", TM_METRIC_GAUGE,
                          "The availability target of the service's tier", NULL, 0);
        tm_metrics_define(r, "sla_response_time_p95_seconds", TM_METRIC_GAUGE,
                          "95th percentile of the health-probe response time", NULL, 0);
        tm_metrics_define(r, "sla_downtime_budget_remaining_seconds", TM_METRIC_GAUGE,
                          "Downtime the target still allows in the window", NULL, 0);
        tm_metrics_define(r, "runbook_execution_success_rate", TM_METRIC_GAUGE,
                          "Percentage of runbook executions that succeeded", NULL, 0);
        tm_metrics_define(r, "runbook_executions_total", TM_METRIC_COUNTER,
                          "Runbook executions finished since the daemon started, by result", NULL,
                          0);
}

struct chan_ctx {
        struct mon *m;
        size_t i;
};

static void channel_metric(const char *name, const char *type, uint64_t sent, uint64_t failed,
                           int up, void *ud)
{
        struct chan_ctx *c = ud;
        struct mon *m = c->m;
        const char *lab[] = { "channel", name, "type", type, NULL };
        const char *ok[] = { "channel", name, "type", type, "result", "sent", NULL };
        const char *ko[] = { "channel", name, "type", type, "result", "failed", NULL };

        tm_metrics_set(m->metrics, "monitor_channel_up", lab, up);
        /* the notifier keeps the totals; the registry gets the increase */
        tm_metrics_add(m->metrics, "monitor_notifications_total", ok,
                       (double)(sent - m->ch_sent[c->i]));
        tm_metrics_add(m->metrics, "monitor_notifications_total", ko,
                       (double)(failed - m->ch_failed[c->i]));
        m->ch_sent[c->i] = sent;
        m->ch_failed[c->i] = failed;
        c->i++;
}

static const struct {
        const char *name;
        int64_t ns;
} windows[] = {
        { "1h", 3600 * TM_NSEC_PER_SEC },
        { "24h", 86400 * TM_NSEC_PER_SEC },
        { "7d", 7 * 86400 * TM_NSEC_PER_SEC },
        { "30d", 30 * 86400 * TM_NSEC_PER_SEC },
};

json_t *mon_sla_json(struct mon *m, int64_t now)
{
        json_t *services = json_object();

        for (size_t i = 0; services && i < m->pc->n_services; i++) {
                const struct tm_probe_service *s = &m->pc->services[i];
                json_t *w = json_object(), *o;

                for (size_t k = 0; k < TM_ARRAY_SIZE(windows); k++) {
                        struct tm_sla_report rep;

                        if (tm_sla_report(m->sla, s->name, s->tier, windows[k].ns, now, &rep) < 0)
                                continue;
                        json_object_set_new(w, windows[k].name, tm_sla_report_json(&rep));
                }
                o = json_pack("{s:s, s:f, s:f, s:o}", "tier", tm_tier_name(s->tier),
                              "target_percent", tm_tier_availability(s->tier), "p95_target_ms", 500.0,
                              "windows", w);
                json_object_set_new(services, s->name, o);
        }
        return services;
}

void mon_metrics_refresh(struct mon *m)
{
        unsigned counts[4];
        static const char *sev[] = { "critical", "high", "warning", "info" };
        static const char *isev[] = { "critical", "high", "medium", "low" };
        int64_t now = tm_time_now();

        tm_alerts_firing_counts(m->alerts, counts);
        for (int i = 0; i < 4; i++) {
                const char *lab[] = { "severity", sev[i], NULL };

                tm_metrics_set(m->metrics, "monitor_alerts_firing", lab, counts[i]);
        }
        tm_incidents_active_counts(m->incidents, counts);
        for (int i = 0; i < 4; i++) {
                const char *lab[] = { "severity", isev[i], NULL };

                tm_metrics_set(m->metrics, "active_incidents_count", lab, counts[i]);
        }
        {
                struct chan_ctx cc = { .m = m, .i = 0 };

                pthread_mutex_lock(&m->metrics_lock);
                tm_notify_stats_each(m->notify, channel_metric, &cc);
                pthread_mutex_unlock(&m->metrics_lock);
        }
        tm_metrics_reset(m->metrics, "sla_availability_percent");
        tm_metrics_reset(m->metrics, "sla_downtime_budget_remaining_seconds");
        for (size_t i = 0; i < m->pc->n_services; i++) {
                const struct tm_probe_service *s = &m->pc->services[i];
                const char *tier = tm_tier_name(s->tier);
                const char *lab[] = { "service", s->name, "tier", tier, NULL };

                tm_metrics_set(m->metrics, "sla_target_percent", lab, tm_tier_availability(s->tier));
                for (size_t k = 0; k < TM_ARRAY_SIZE(windows); k++) {
                        struct tm_sla_report rep;
                        const char *wl[] = { "service", s->name,         "tier", tier,
                                             "window",  windows[k].name, NULL };

                        if (tm_sla_report(m->sla, s->name, s->tier, windows[k].ns, now, &rep) < 0)
                                continue;
                        tm_metrics_set(m->metrics, "sla_availability_percent", wl,
                                       rep.availability_percent);
                        tm_metrics_set(m->metrics, "sla_downtime_budget_remaining_seconds", wl,
                                       rep.budget_left_s);
                        if (k == 0)
                                tm_metrics_set(m->metrics, "sla_response_time_p95_seconds", lab,
                                               rep.p95_ms / 1000.0);
                }
        }
        mon_runbook_metrics(m);
}

/* ---- alert events ---- */

static void notify_alert(struct mon *m, const struct tm_alert_event *ev)
{
        const struct tm_alert_rule *r = ev->rule;
        const char *status = ev->kind == TM_ALERT_EV_RESOLVED ? "resolved" : "firing";
        char title[1000], text[1700], since[40];
        json_t *details;
        struct tm_notify_msg msg = { 0 };

        /* the labels say which series: Slack's text, the email subject and
         * PagerDuty's summary come from the title */
        tm_time_format(ev->started, since, sizeof(since));
        snprintf(title, sizeof(title), "%s%s%s%s: %s", r->name, ev->labels[0] ? "{" : "",
                 ev->labels, ev->labels[0] ? "}" : "", r->summary);
        snprintf(text, sizeof(text), "%s%s\nsince %s%s%s%s%s",
                 ev->kind == TM_ALERT_EV_RESOLVED ? "resolved: " : "", ev->message, since,
                 ev->labels[0] ? "\nlabels: " : "", ev->labels, r->runbook ? "\nrunbook: " : "",
                 r->runbook ? r->runbook : "");
        details = json_pack("{s:s, s:s, s:s, s:s, s:o}", "alert", r->name, "since", since,
                            "message", ev->message, "state", status, "labels",
                            ev->labels_json ? json_deep_copy(ev->labels_json) : json_object());
        if (details && !isnan(ev->value) && !isinf(ev->value))
                json_object_set_new(details, "value", json_real(ev->value));
        msg.kind = "alert";
        msg.status = status;
        msg.name = r->name;
        msg.severity = tm_alert_severity_name(r->severity);
        msg.title = title;
        msg.text = text;
        msg.dedup_key = ev->dedup_key;
        msg.resolve = ev->kind == TM_ALERT_EV_RESOLVED;
        msg.at = ev->at;
        msg.details = details;
        if (tm_notify_send(m->notify, &msg, (const char *const *)r->channels) < 0)
                tm_log(TM_LOG_ERR, "alert '%s': the notification could not be queued", r->name);
        json_decref(details);
}

void mon_incident_notify(struct mon *m, const char *id, const char *what, const char *text)
{
        json_t *inc = tm_incidents_get(m->incidents, id);
        struct tm_notify_msg msg = { 0 };
        char title[700], key[96];

        if (!inc)
                return;
        snprintf(title, sizeof(title), "%s %s: %s", id, what,
                 json_string_value(json_object_get(inc, "title")));
        snprintf(key, sizeof(key), "tidemark/incident/%s", id);
        msg.kind = "incident";
        msg.status = json_string_value(json_object_get(inc, "status"));
        msg.name = id;
        msg.severity = json_string_value(json_object_get(inc, "severity"));
        msg.title = title;
        msg.text = text ? text : title;
        msg.dedup_key = key;
        msg.resolve = !strcmp(msg.status, "resolved");
        msg.at = tm_time_now();
        msg.details = inc;
        tm_notify_send(m->notify, &msg, (const char *const *)m->incident_channels);
        json_decref(inc);
}

void mon_incident_responded(struct mon *m, const char *severity, double seconds)
{
        const char *lab[] = { "severity", severity, NULL };

        tm_metrics_observe(m->metrics, "incident_response_time_seconds", lab, seconds);
}

static void handle_event(struct mon *m, const struct tm_alert_event *ev)
{
        const struct tm_alert_rule *r = ev->rule;
        static const char *kinds[] = { "firing", "repeat", "resolved" };
        char name[TM_ALERT_LABELS_MAX + 200];

        snprintf(name, sizeof(name), "%s%s%s%s", r->name, ev->labels[0] ? "{" : "", ev->labels,
                 ev->labels[0] ? "}" : "");
        tm_log(ev->kind == TM_ALERT_EV_RESOLVED ? TM_LOG_INFO : TM_LOG_WARN,
               "alert '%s' (%s) %s%s: %s", name, tm_alert_severity_name(r->severity),
               kinds[ev->kind], ev->silenced ? " (silenced)" : "", ev->message);
        if (!ev->silenced)
                notify_alert(m, ev);
        /* a silenced alert (a maintenance window) opens no incident either */
        if (ev->kind == TM_ALERT_EV_FIRING && m->auto_incidents && !ev->silenced &&
            r->severity <= m->incident_min_severity) {
                json_t *services = json_array();
                char title[1000], id[32];
                const char *sev = r->severity == TM_ALERT_CRITICAL ? "critical" : "high";
                char src[TM_ALERT_LABELS_MAX + 210];

                if (r->check) {
                        const struct tm_probe_check *c = tm_probe_check_find(m->pc, r->check);

                        if (c && c->service)
                                json_array_append_new(services, json_string(c->service->name));
                } else if (r->service) {
                        json_array_append_new(services, json_string(r->service->name));
                }
                snprintf(title, sizeof(title), "%s: %s", name, r->summary);
                snprintf(src, sizeof(src), "alert:%s", name);
                if (tm_incidents_create(m->incidents, title, sev, services, src, "monitord", ev->at,
                                        id, sizeof(id)) >= 0) {
                        tm_alerts_set_incident(m->alerts, ev, id);
                        tm_incidents_note(m->incidents, id, "alert", "monitord", ev->message, NULL,
                                          ev->at);
                        tm_log(TM_LOG_WARN, "alert '%s' opened incident %s", name, id);
                        mon_incident_notify(m, id, "opened", ev->message);
                }
                json_decref(services);
        }
        if (ev->kind == TM_ALERT_EV_RESOLVED && ev->incident[0]) {
                char text[TM_ALERT_LABELS_MAX + 900];

                snprintf(text, sizeof(text), "alert %s resolved: %s", name, ev->message);
                tm_incidents_note(m->incidents, ev->incident, "alert", "monitord", text, NULL,
                                  ev->at);
                mon_incident_notify(m, ev->incident, "updated", text);
        }
}

/* n: what tm_alerts_eval() returned for evs */
static void handle_events(struct mon *m, struct tm_alert_event *evs, int n)
{
        for (int k = 0; k < n; k++)
                handle_event(m, &evs[k]);
        if (n >= 0)
                tm_alert_events_free(evs, (size_t)n);
}

static void eval_check_rules(struct mon *m, const char *check, const struct tm_probe_result *res)
{
        struct tm_alert_sample samples[TM_PROBE_MAX_ITEMS];
        json_t *labels[TM_PROBE_MAX_ITEMS] = { NULL };
        size_t n = 0;

        /* a check over several things: one series per thing, so each one
         * alerts (and resolves) on its own; otherwise the check's verdict,
         * which leaves the per-thing alerts as they are (a freshness check
         * that cannot reach backupd knows nothing new about a component) */
        for (size_t k = 0; k < res->n_items; k++) {
                const struct tm_probe_item *it = &res->items[k];

                labels[n] = json_pack("{s:s}", it->label, it->value);
                if (!labels[n])
                        continue;
                samples[n] = (struct tm_alert_sample){ labels[n], it->failing, it->metric,
                                                       it->message };
                n++;
        }
        for (size_t i = 0; i < tm_alerts_count(m->alerts); i++) {
                const struct tm_alert_rule *r = tm_alerts_rule(m->alerts, i);
                struct tm_alert_event *evs = NULL, ev;
                int k;

                if (!r->check || strcmp(r->check, check) || res->status == TM_PROBE_UNKNOWN)
                        continue;
                if (!res->n_items) {
                        if (tm_alerts_observe(m->alerts, i, res->status == TM_PROBE_FAILING,
                                              res->value, res->message, tm_time_now(), &ev))
                                handle_event(m, &ev);
                        continue;
                }
                k = tm_alerts_eval(m->alerts, i, samples, n, res->message, tm_time_now(), &evs);
                handle_events(m, evs, k);
        }
        for (size_t k = 0; k < TM_PROBE_MAX_ITEMS; k++)
                json_decref(labels[k]);
}

/* Every series of the rule's metric, each with its own labels; or, with
 * aggregate =, one series for the aggregate. */
static void eval_metric_rule(struct mon *m, size_t i, const struct tm_alert_rule *r,
                             const tm_promtext *pt)
{
        struct tm_alert_sample *samples = NULL;
        struct tm_alert_event *evs = NULL;
        const struct tm_promtext_sample *all;
        char absent[300], (*msgs)[200] = NULL;
        size_t n_all = 0, n = 0;
        double v = NAN;
        int k_ev;

        snprintf(absent, sizeof(absent), "%s: no such series", r->metric);
        if (!r->per_series) {
                struct tm_alert_sample one = { NULL, 0, NAN, absent };
                char msg[300];
                int k;

                if (tm_promtext_select(pt, r->metric, (const char *const *)r->matchers, r->agg,
                                       &v) >= 0) {
                        one.active = tm_probe_compare(v, r->op, r->threshold);
                        one.value = v;
                        snprintf(msg, sizeof(msg), "%s = %g (%s %g)", r->metric, v,
                                 tm_probe_op_name(r->op), r->threshold);
                        one.message = msg;
                }
                k = tm_alerts_eval(m->alerts, i, &one, 1, absent, tm_time_now(), &evs);
                handle_events(m, evs, k);
                return;
        }
        all = tm_promtext_samples(pt, &n_all);
        samples = calloc(n_all + 1, sizeof(*samples));
        msgs = calloc(n_all + 1, sizeof(*msgs));
        if (!samples || !msgs)
                goto out;
        for (size_t k = 0; k < n_all; k++) {
                const struct tm_promtext_sample *s = &all[k];
                json_t *l;

                if (!tm_promtext_match(s, r->metric, (const char *const *)r->matchers))
                        continue;
                l = json_object();
                for (size_t j = 0; l && j < s->n_labels; j++)
                        json_object_set_new(l, s->labels[j].name, json_string(s->labels[j].value));
                if (!l)
                        continue;
                snprintf(msgs[n], sizeof(msgs[n]), "%s = %g (%s %g)", r->metric, s->value,
                         tm_probe_op_name(r->op), r->threshold);
                samples[n] = (struct tm_alert_sample){ l, tm_probe_compare(s->value, r->op,
                                                                           r->threshold),
                                                       s->value, msgs[n] };
                n++;
        }
        k_ev = tm_alerts_eval(m->alerts, i, samples, n, absent, tm_time_now(), &evs);
        handle_events(m, evs, k_ev);
out:
        for (size_t k = 0; samples && k < n; k++)
                json_decref((json_t *)samples[k].labels);
        free(samples);
        free(msgs);
}

static void eval_metric_rules(struct mon *m, const struct tm_probe_service *s,
                              const tm_promtext *pt)
{
        /* a failed scrape says nothing about the metric */
        if (!pt)
                return;
        for (size_t i = 0; i < tm_alerts_count(m->alerts); i++) {
                const struct tm_alert_rule *r = tm_alerts_rule(m->alerts, i);

                if (!r->check && r->service == s)
                        eval_metric_rule(m, i, r, pt);
        }
}

/* ---- checks and scrapes ---- */

static void record_result(struct mon *m, size_t i, const struct tm_probe_result *res)
{
        struct mon_check *mc = &m->checks[i];
        const struct tm_probe_check *c = mc->c;
        const char *lab[] = { "check", c->name, "type", tm_probe_type_name(c->type), NULL };
        const char *rl[] = { "check", c->name, "result",
                             res->status == TM_PROBE_OK ? "ok" : "failing", NULL };

        pthread_mutex_lock(&m->lock);
        mc->last = *res;
        mc->runs++;
        mc->failures += res->status == TM_PROBE_FAILING;
        pthread_mutex_unlock(&m->lock);
        tm_metrics_set(m->metrics, "monitor_check_up", lab, res->status == TM_PROBE_OK);
        tm_metrics_set(m->metrics, "monitor_check_duration_seconds", lab,
                       (double)res->latency_ns / 1e9);
        tm_metrics_add(m->metrics, "monitor_check_runs_total", rl, 1);
        /* the availability of a service is what its health probe sees */
        if (c->type == TM_PROBE_HTTP && c->service && !c->url)
                tm_sla_record(m->sla, c->service->name, res->at, res->status == TM_PROBE_OK,
                              res->latency_ns);
        eval_check_rules(m, c->name, res);
}

void mon_check_run(struct mon *m, size_t i, struct tm_probe_result *ret)
{
        if (tm_probe_run(m->cfg, m->checks[i].c, ret) < 0) {
                ret->status = TM_PROBE_UNKNOWN;
                snprintf(ret->message, sizeof(ret->message), "out of memory");
                return;
        }
        record_result(m, i, ret);
}

static void scrape_run(struct mon *m, size_t i)
{
        struct mon_scrape *sc = &m->scrapes[i];
        tm_promtext *pt = NULL, *old;
        char err[512] = "";
        const char *lab[] = { "service", sc->s->name, NULL };
        int r = tm_probe_scrape(sc->s, 5000, &pt, err, sizeof(err));

        if (r < 0)
                tm_log(TM_LOG_DEBUG, "scrape of '%s' failed: %s", sc->s->name, err);
        tm_metrics_set(m->metrics, "monitor_service_up", lab, r >= 0);
        pthread_mutex_lock(&m->lock);
        if (r >= 0) {
                old = sc->last;
                sc->last = pt;
                sc->at = tm_time_now();
                sc->error[0] = '\0';
        } else {
                old = NULL;
                snprintf(sc->error, sizeof(sc->error), "%s", err);
        }
        pthread_mutex_unlock(&m->lock);
        /* readers (the API, re-export) hold m->lock while they read sc->last,
         * so the old exposition can go once it is swapped out */
        tm_promtext_free(old);
        if (r >= 0) {
                /* evaluation reads pt under the lock: a later scrape may swap it */
                pthread_mutex_lock(&m->lock);
                eval_metric_rules(m, sc->s, sc->last);
                pthread_mutex_unlock(&m->lock);
        }
}

static void *worker(void *arg)
{
        struct mon *m = arg;

        pthread_mutex_lock(&m->lock);
        for (;;) {
                long item;

                while (!m->qn && !m->stopping)
                        pthread_cond_wait(&m->cond, &m->lock);
                if (m->stopping)
                        break;
                item = m->queue[m->qhead];
                m->qhead = (m->qhead + 1) % MON_QUEUE_MAX;
                m->qn--;
                pthread_mutex_unlock(&m->lock);
                if (item >= 0) {
                        struct tm_probe_result res;

                        mon_check_run(m, (size_t)item, &res);
                        pthread_mutex_lock(&m->lock);
                        m->checks[item].busy = 0;
                } else {
                        size_t si = (size_t)(-item - 1);

                        scrape_run(m, si);
                        pthread_mutex_lock(&m->lock);
                        m->scrapes[si].busy = 0;
                }
        }
        pthread_mutex_unlock(&m->lock);
        return NULL;
}

static void enqueue_locked(struct mon *m, long item)
{
        m->queue[(m->qhead + m->qn) % MON_QUEUE_MAX] = item;
        m->qn++;
        pthread_cond_signal(&m->cond);
}

static void *scheduler(void *arg)
{
        struct mon *m = arg;

        pthread_mutex_lock(&m->lock);
        while (!m->stopping) {
                int64_t now = tm_time_mono(), next = now + TM_NSEC_PER_SEC;
                struct timespec ts;

                m->sched_tick = now;
                for (size_t i = 0; i < m->n_checks; i++) {
                        struct mon_check *mc = &m->checks[i];

                        if (!mc->busy && mc->next <= now && m->qn < MON_QUEUE_MAX) {
                                mc->busy = 1;
                                /* keep the cadence: the next run is due one interval
                                 * after this one was, not after it ends */
                                mc->next += mc->c->interval_ns;
                                if (mc->next <= now)
                                        mc->next = now + mc->c->interval_ns;
                                enqueue_locked(m, (long)i);
                        }
                        if (mc->next < next)
                                next = mc->next;
                }
                for (size_t i = 0; i < m->n_scrapes; i++) {
                        struct mon_scrape *sc = &m->scrapes[i];

                        if (!sc->busy && sc->next <= now && m->qn < MON_QUEUE_MAX) {
                                sc->busy = 1;
                                sc->next = now + m->scrape_interval_ns;
                                enqueue_locked(m, -(long)i - 1);
                        }
                        if (sc->next < next)
                                next = sc->next;
                }
                /* sleep until the next due item, on the wall clock (condvar) */
                {
                        int64_t wait = next - tm_time_mono();

                        if (wait < 1000000)
                                wait = 1000000;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        wait += ts.tv_nsec;
                        ts.tv_sec += (time_t)(wait / TM_NSEC_PER_SEC);
                        ts.tv_nsec = (long)(wait % TM_NSEC_PER_SEC);
                        pthread_cond_timedwait(&m->cond, &m->lock, &ts);
                }
        }
        pthread_mutex_unlock(&m->lock);
        return NULL;
}

int mon_engine_start(struct mon *m)
{
        int64_t now = tm_time_mono();
        int r;

        m->checks = calloc(m->pc->n_checks + 1, sizeof(*m->checks));
        m->scrapes = calloc(m->pc->n_services + 1, sizeof(*m->scrapes));
        m->workers = calloc((size_t)m->n_workers, sizeof(*m->workers));
        if (!m->checks || !m->scrapes || !m->workers)
                return -ENOMEM;
        for (size_t i = 0; i < m->pc->n_checks; i++) {
                m->checks[i].c = &m->pc->checks[i];
                m->checks[i].next = now;
                m->checks[i].last.value = NAN;
        }
        m->n_checks = m->pc->n_checks;
        for (size_t i = 0; i < m->pc->n_services; i++) {
                if (!m->pc->services[i].scrape)
                        continue;
                m->scrapes[m->n_scrapes].s = &m->pc->services[i];
                m->scrapes[m->n_scrapes].next = now;
                m->n_scrapes++;
        }
        for (int i = 0; i < m->n_workers; i++) {
                r = pthread_create(&m->workers[i], NULL, worker, m);
                if (r) {
                        m->n_workers = i;
                        return -r;
                }
        }
        r = pthread_create(&m->sched, NULL, scheduler, m);
        if (r)
                return -r;
        m->sched_started = 1;
        return 0;
}

void mon_engine_stop(struct mon *m)
{
        pthread_mutex_lock(&m->lock);
        m->stopping = 1;
        pthread_cond_broadcast(&m->cond);
        pthread_mutex_unlock(&m->lock);
        if (m->sched_started)
                pthread_join(m->sched, NULL);
        for (int i = 0; m->workers && i < m->n_workers; i++)
                pthread_join(m->workers[i], NULL);
        for (size_t i = 0; i < m->n_scrapes; i++)
                tm_promtext_free(m->scrapes[i].last);
        free(m->checks);
        free(m->scrapes);
        free(m->workers);
        m->checks = NULL;
        m->scrapes = NULL;
        m->workers = NULL;
        m->n_scrapes = 0;
}

static int skip_own(const char *family, void *ud)
{
        static const char *own[] = { "monitor_", "incident_", "active_incidents", "sla_",
                                     "runbook_" };

        (void)ud;
        for (size_t i = 0; i < TM_ARRAY_SIZE(own); i++)
                if (!strncmp(family, own[i], strlen(own[i])))
                        return 1;
        return 0;
}

int mon_reexport(struct mon *m, tm_buf *out)
{
        const tm_promtext *sets[256];
        const char *names[256];
        size_t n = 0;
        int r;

        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->n_scrapes && n < 256; i++) {
                if (!m->scrapes[i].last)
                        continue;
                sets[n] = m->scrapes[i].last;
                names[n++] = m->scrapes[i].s->name;
        }
        r = tm_promtext_render_merged(sets, names, n, "service", skip_own, NULL, out);
        pthread_mutex_unlock(&m->lock);
        return r;
}
