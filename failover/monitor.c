/*
 * The health monitor: every check_interval it checks each site, keeps which
 * site is the primary, feeds the metrics, and (when [failover] automatic is
 * on) promotes a standby after failure_threshold failed checks in a row,
 * but only when that standby also lost its WAL stream: a primary we cannot
 * see but the standby can is our network's problem, not a disaster.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tidemark/log.h>
#include <tidemark/time.h>

#include "fo.h"

int fo_site_index(const struct fo *f, const char *name)
{
        for (size_t i = 0; i < f->dr->n_sites; i++)
                if (!strcmp(f->dr->sites[i].name, name))
                        return (int)i;
        return -1;
}

void fo_state_save(struct fo *f)
{
        char tmp[4300];
        json_t *o = json_pack("{s:s, s:O?}", "active", f->active, "last_failover",
                              f->last_failover);

        if (!o)
                return;
        snprintf(tmp, sizeof(tmp), "%s.tmp", f->state_path);
        if (json_dump_file(o, tmp, JSON_COMPACT) < 0 || rename(tmp, f->state_path) < 0)
                tm_log(TM_LOG_WARN, "cannot write the state file '%s'", f->state_path);
        json_decref(o);
}

void fo_state_load(struct fo *f)
{
        json_t *o = json_load_file(f->state_path, 0, NULL), *lf;
        const char *a;

        if (!o)
                return;
        a = json_string_value(json_object_get(o, "active"));
        if (a && fo_site_index(f, a) >= 0)
                snprintf(f->active, sizeof(f->active), "%s", a);
        lf = json_object_get(o, "last_failover");
        if (json_is_object(lf)) {
                f->last_failover = json_incref(lf);
                f->last_rto_s = json_number_value(json_object_get(lf, "rto_seconds"));
                f->last_rpo_s = json_number_value(json_object_get(lf, "rpo_seconds"));
                f->last_duration_s = json_number_value(json_object_get(lf, "duration_seconds"));
                f->last_rpo_bytes =
                        (uint64_t)json_integer_value(json_object_get(lf, "rpo_bytes"));
        }
        json_decref(o);
}

static void auto_failover(struct fo *f)
{
        int ai = fo_site_index(f, f->active), ci = -1, failures;
        enum tm_dr_auto_verdict v;
        char target[TM_DR_NAME_MAX], err[512];
        uint64_t job;

        if (ai < 0 || f->busy)
                return;
        failures = f->sites[ai].failures;
        for (size_t i = 0; i < f->dr->n_sites; i++) {
                if ((int)i == ai || !f->dr->sites[i].auto_failover)
                        continue;
                if (ci < 0 || (f->sites[i].h.reachable && !f->sites[ci].h.reachable))
                        ci = (int)i;
        }
        v = tm_dr_auto_decide(failures, f->dr->failure_threshold, ci >= 0 ? &f->sites[ci].h : NULL);
        if (strcmp(f->auto_verdict, tm_dr_auto_verdict_name(v)) && v != TM_DR_AUTO_HEALTHY)
                tm_log(v == TM_DR_AUTO_PROMOTE ? TM_LOG_WARN : TM_LOG_INFO,
                       "automatic failover: primary '%s' failed %d check(s) in a row: %s",
                       f->active, failures, tm_dr_auto_verdict_name(v));
        snprintf(f->auto_verdict, sizeof(f->auto_verdict), "%s", tm_dr_auto_verdict_name(v));
        if (v != TM_DR_AUTO_PROMOTE)
                return;
        snprintf(target, sizeof(target), "%s", f->dr->sites[ci].name);
        pthread_mutex_unlock(&f->lock);
        if (fo_flow_start(f, FO_FLOW_FAILOVER, target, "automatic: primary unreachable",
                          "automatic", 0, 1, &job, err, sizeof(err)) < 0)
                tm_log(TM_LOG_ERR, "automatic failover to '%s' did not start: %s", target, err);
        pthread_mutex_lock(&f->lock);
}

void fo_check_sites(struct fo *f)
{
        size_t n = f->dr->n_sites, writable = 0;
        struct tm_dr_health *h = n ? calloc(n, sizeof(*h)) : NULL;
        int w = -1;

        /* no site: nothing to check (and main.c starts no monitor then) */
        if (!h)
                return;
        for (size_t i = 0; i < n; i++)
                tm_dr_probe(f->dr->sites[i].conninfo, f->dr->connect_timeout_ns, &h[i]);
        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < n; i++) {
                struct fo_site_state *s = &f->sites[i];

                tm_dr_health_dispose(&s->h);
                s->h = h[i];
                if (h[i].reachable) {
                        s->failures = 0;
                        s->last_ok = h[i].checked_at;
                } else
                        s->failures++;
                if (h[i].reachable && !h[i].in_recovery) {
                        writable++;
                        w = (int)i;
                }
        }
        free(h);
        if (writable > 1)
                tm_log(TM_LOG_ERR, "%zu sites are writable primaries: fence all but one", writable);
        else if (writable == 1 && !f->busy && strcmp(f->active, f->dr->sites[w].name)) {
                tm_log(TM_LOG_INFO, "site '%s' is the primary", f->dr->sites[w].name);
                snprintf(f->active, sizeof(f->active), "%s", f->dr->sites[w].name);
                fo_state_save(f);
        }
        if (w >= 0 && writable == 1 && !strcmp(f->active, f->dr->sites[w].name)) {
                tm_dr_health_dispose(&f->last_primary);
                f->last_primary = f->sites[w].h;
                f->last_primary.senders = NULL; /* not needed for the RPO */
        }
        if (f->dr->automatic)
                auto_failover(f);
        pthread_mutex_unlock(&f->lock);
}

static void *monitor_main(void *arg)
{
        struct fo *f = arg;

        pthread_mutex_lock(&f->lock);
        while (!f->stopping) {
                struct timespec ts;
                int64_t until;

                pthread_mutex_unlock(&f->lock);
                fo_check_sites(f);
                pthread_mutex_lock(&f->lock);
                until = tm_time_now() + f->dr->check_interval_ns;
                ts.tv_sec = (time_t)(until / TM_NSEC_PER_SEC);
                ts.tv_nsec = (long)(until % TM_NSEC_PER_SEC);
                while (!f->stopping && tm_time_now() < until)
                        pthread_cond_timedwait(&f->cond, &f->lock, &ts);
        }
        pthread_mutex_unlock(&f->lock);
        return NULL;
}

int fo_monitor_start(struct fo *f)
{
        int r = pthread_create(&f->monitor, NULL, monitor_main, f);

        if (r)
                return -r;
        f->monitor_started = 1;
        return 0;
}

void fo_monitor_stop(struct fo *f)
{
        pthread_mutex_lock(&f->lock);
        f->stopping = 1;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
        if (f->monitor_started)
                pthread_join(f->monitor, NULL);
        f->monitor_started = 0;
}

void fo_metrics_define(struct fo *f)
{
        tm_metrics_define(f->metrics, "dr_failover_duration_seconds", TM_METRIC_GAUGE,
                          "Duration of the last failover, from its start to traffic switched",
                          NULL, 0);
        tm_metrics_define(f->metrics, "dr_rto_seconds", TM_METRIC_GAUGE,
                          "Recovery time of the last failover (primary last seen to traffic "
                          "switched) and the tier's target",
                          NULL, 0);
        tm_metrics_define(f->metrics, "dr_rpo_seconds", TM_METRIC_GAUGE,
                          "Data loss of the last failover in seconds of commits, and the "
                          "tier's target",
                          NULL, 0);
        tm_metrics_define(f->metrics, "dr_rpo_bytes", TM_METRIC_GAUGE,
                          "Data loss of the last failover in bytes of WAL", NULL, 0);
        tm_metrics_define(f->metrics, "replication_lag_seconds", TM_METRIC_GAUGE,
                          "Replay lag of a standby site", NULL, 0);
        tm_metrics_define(f->metrics, "dr_site_up", TM_METRIC_GAUGE,
                          "1 if the site's PostgreSQL answered the last health check", NULL, 0);
        tm_metrics_define(f->metrics, "dr_site_primary", TM_METRIC_GAUGE,
                          "1 for the site that is the primary", NULL, 0);
        tm_metrics_define(f->metrics, "dr_failovers_total", TM_METRIC_COUNTER,
                          "Failover and failback jobs by kind and result", NULL, 0);
}

void fo_metrics_refresh(struct fo *f)
{
        const struct tm_dr_tier *t = tm_dr_tier_find(f->dr, f->dr->service_tier);

        tm_metrics_reset(f->metrics, "replication_lag_seconds");
        tm_metrics_reset(f->metrics, "dr_rto_seconds");
        tm_metrics_reset(f->metrics, "dr_rpo_seconds");
        pthread_mutex_lock(&f->lock);
        for (size_t i = 0; i < f->dr->n_sites; i++) {
                const struct tm_dr_health *h = &f->sites[i].h;
                const char *l[] = { "site", f->dr->sites[i].name, NULL };

                tm_metrics_set(f->metrics, "dr_site_up", l, h->reachable ? 1 : 0);
                tm_metrics_set(f->metrics, "dr_site_primary", l,
                               !strcmp(f->active, f->dr->sites[i].name));
                if (h->reachable && h->in_recovery)
                        tm_metrics_set(f->metrics, "replication_lag_seconds", l, h->lag_seconds);
        }
        if (t) {
                const char *m[] = { "tier", t->name, "kind", "measured", NULL };
                const char *g[] = { "tier", t->name, "kind", "target", NULL };

                if (f->last_failover) {
                        tm_metrics_set(f->metrics, "dr_rto_seconds", m, f->last_rto_s);
                        tm_metrics_set(f->metrics, "dr_rpo_seconds", m, f->last_rpo_s);
                        tm_metrics_set(f->metrics, "dr_failover_duration_seconds", NULL,
                                       f->last_duration_s);
                        tm_metrics_set(f->metrics, "dr_rpo_bytes", NULL, (double)f->last_rpo_bytes);
                }
                tm_metrics_set(f->metrics, "dr_rto_seconds", g, (double)t->rto_ns / 1e9);
                tm_metrics_set(f->metrics, "dr_rpo_seconds", g, (double)t->rpo_ns / 1e9);
        }
        pthread_mutex_unlock(&f->lock);
}
