#pragma once
/*
 * tidemark-failoverd: the DR orchestrator. main.c starts and stops the
 * pieces, monitor.c checks the sites and runs the automated failover,
 * api.c holds the route table, the handlers and the failover jobs.
 * The logic (health, the failover / failback state machine, hooks) is in
 * lib/src/dr.
 */
#include <pthread.h>
#include <stdint.h>

#include <tidemark/audit.h>
#include <tidemark/config.h>
#include <tidemark/dr.h>
#include <tidemark/http.h>
#include <tidemark/jobs.h>
#include <tidemark/metrics.h>
#include <tidemark/repo.h>

struct fo_site_state {
        struct tm_dr_health h; /* the latest check */
        int failures;          /* consecutive failed checks */
        int64_t last_ok;       /* wall clock of the last good check */
};

struct fo {
        struct tm_config *cfg;
        struct tm_dr_conf *dr;
        tm_jobs *jobs;
        tm_metrics *metrics;
        tm_audit *audit;
        tm_http_server *http;
        char state_path[4200];

        pthread_mutex_t lock; /* everything below */
        pthread_cond_t cond;  /* the monitor's sleep; stopping wakes it */
        int stopping;
        struct fo_site_state *sites; /* one per dr->sites[i] */
        struct tm_dr_health last_primary; /* the primary's last good check */
        char active[TM_DR_NAME_MAX];      /* the site that is primary */
        /* the running flow, if any */
        int busy;
        uint64_t job_id;
        struct tm_dr_log *log;
        pthread_t flow_thread;
        int flow_started;
        /* the last failover and what it achieved */
        json_t *last_failover;
        double last_rto_s, last_rpo_s, last_duration_s;
        uint64_t last_rpo_bytes;
        char auto_verdict[32];
        struct fo_drill *drill; /* the real drills (api.c) */
        pthread_t monitor;
        int monitor_started;

        /* the repository (PITR and the timeline), when configured */
        pthread_mutex_t repo_lock;  /* the handle; one recovery at a time */
        tm_repo *repo;
        const char *repo_location;
        /* timeline answers (api.c): a timeline reads every snapshot and
         * its WAL; bench-load.sh saw 22 req/s with 79 snapshots */
        tm_http_cache *timeline_cache;
        char *password;
        size_t password_len;
        char tidemark[4096];
        char restore_catalog[4200];
};

/* monitor.c */
int fo_monitor_start(struct fo *f);
void fo_monitor_stop(struct fo *f);
/* Check every site now and update the state (and the active site). */
void fo_check_sites(struct fo *f);
/* The index of a site in dr->sites, or -1. */
int fo_site_index(const struct fo *f, const char *name);
/* Persist active site and last failover (state.json). Call with lock held. */
void fo_state_save(struct fo *f);
void fo_state_load(struct fo *f);
void fo_metrics_define(struct fo *f);
void fo_metrics_refresh(struct fo *f);

/* api.c */
extern const struct tm_http_route fo_routes[];
extern const size_t fo_n_routes;
enum fo_flow { FO_FLOW_FAILOVER, FO_FLOW_FAILBACK };
/**
 * fo_flow_start() - start a failover (to target) or a failback as a job.
 * Returns 0 and *ret_job, -EBUSY (one runs), -errno. err says why.
 */
int fo_flow_start(struct fo *f, enum fo_flow kind, const char *target, const char *reason,
                  const char *trigger, int force, int confirmed_down, uint64_t *ret_job,
                  char *err, size_t errlen);
/* Wait for a running flow and drill to end (shutdown). */
void fo_flow_join(struct fo *f);
