#pragma once
/*
 * tidemark-monitord: monitoring, alerting and business continuity. main.c
 * starts and stops the pieces; engine.c runs the checks and scrapes on a
 * scheduler and a small worker pool, turns results into alert events,
 * notifications and incidents; runbooks.c runs runbooks as jobs; api.c
 * holds the route table and the handlers. The logic lives in lib/ (probe,
 * promtext, alert, notify, incident, sla, runbook, compliance).
 */
#include <pthread.h>
#include <stdint.h>

#include <tidemark/alert.h>
#include <tidemark/audit.h>
#include <tidemark/config.h>
#include <tidemark/http.h>
#include <tidemark/incident.h>
#include <tidemark/jobs.h>
#include <tidemark/metrics.h>
#include <tidemark/notify.h>
#include <tidemark/probe.h>
#include <tidemark/promtext.h>
#include <tidemark/runbook.h>
#include <tidemark/sla.h>

struct mon_check {
        const struct tm_probe_check *c;
        struct tm_probe_result last;
        uint64_t runs, failures;
        int64_t next; /* mono ns */
        int busy;
};

struct mon_scrape {
        const struct tm_probe_service *s;
        tm_promtext *last; /* owned; replaced whole under mon.lock */
        int64_t at, next;  /* wall / mono ns */
        char error[512];
        int busy;
};

#define MON_QUEUE_MAX 4096

struct mon {
        struct tm_config *cfg;
        struct tm_probe_config *pc;
        tm_alerts *alerts;
        tm_notify *notify;
        tm_incidents *incidents;
        tm_sla *sla;
        tm_jobs *jobs;
        tm_metrics *metrics;
        tm_audit *audit;
        tm_http_server *http;
        struct tm_runbooks *runbooks;
        char state_dir[4096];
        char audit_path[4200];
        char **audit_logs; /* [monitor] audit_logs: other services' logs to verify */

        /* settings ([monitor], [incidents], [sla]) */
        int64_t scrape_interval_ns;
        int reexport;
        int auto_incidents;
        enum tm_alert_severity incident_min_severity;
        char **incident_channels; /* NULL: every channel */
        int n_workers;
        /* notification totals already added to the registry, per channel */
        pthread_mutex_t metrics_lock;
        uint64_t *ch_sent, *ch_failed;
        int64_t started;

        pthread_mutex_t lock; /* checks, scrapes, queue */
        pthread_cond_t cond;
        struct mon_check *checks;
        size_t n_checks;
        struct mon_scrape *scrapes;
        size_t n_scrapes;
        /* work queue: >= 0 check index, < 0 -(scrape index + 1) */
        long queue[MON_QUEUE_MAX];
        size_t qhead, qn;
        int stopping;
        pthread_t sched;
        pthread_t *workers;
        int sched_started;
        int64_t sched_tick;

        /* runbook executions in flight */
        pthread_mutex_t rb_lock;
        pthread_cond_t rb_cond;
        int rb_running;
};

/* engine.c */
int mon_engine_start(struct mon *m);
void mon_engine_stop(struct mon *m);
void mon_metrics_define(struct mon *m);
void mon_metrics_refresh(struct mon *m);
/* Run check i now on the caller's thread and process the result. */
void mon_check_run(struct mon *m, size_t i, struct tm_probe_result *ret);
/* Notify an incident change on the incident channels. */
void mon_incident_notify(struct mon *m, const char *id, const char *what, const char *text);
/* Record a new incident response time. */
void mon_incident_responded(struct mon *m, const char *severity, double seconds);
/* Re-export the scraped services into out. */
int mon_reexport(struct mon *m, tm_buf *out);

json_t *mon_sla_json(struct mon *m, int64_t now);

/* runbooks.c */
/* Start one runbook as a job. Returns 0 with *ret_job set, -ENOENT (no such
 * runbook), -ENOENT for the incident too (msg says which), -EBUSY. */
int mon_runbook_start(struct mon *m, const char *name, json_t *context, uint64_t *ret_job,
                      char *msg, size_t msglen);
void mon_runbooks_wait(struct mon *m, int timeout_s);
void mon_runbook_metrics(struct mon *m);

/* api.c */
extern const struct tm_http_route mon_routes[];
extern const size_t mon_n_routes;

/* compliance.c */
/* Gather the compliance report over [from, to). Returns 0 and *ret. */
int mon_compliance(struct mon *m, int64_t from, int64_t to, json_t **ret, char *msg, size_t msglen);
