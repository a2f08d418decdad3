#pragma once
/*
 * tidemark-backupd: the backup orchestrator. main.c starts and stops the
 * pieces, jobs.c runs the worker pool, the scheduler, backups, validation
 * and retention, api.c holds the route table and the handlers.
 */
#include <pthread.h>
#include <stdint.h>

#include <tidemark/audit.h>
#include <tidemark/config.h>
#include <tidemark/http.h>
#include <tidemark/jobs.h>
#include <tidemark/metrics.h>
#include <tidemark/repo.h>
#include <tidemark/tier.h>

struct bkd_watcher;
struct bkd_replica;
struct bkd_pg_stream;

#define BKD_QUEUE_MAX    1000
#define BKD_MAX_ATTEMPTS 3

struct bkd {
        struct tm_config *cfg;
        const char *repo_location;
        const char *catalog;
        /* jobs use their own catalog file: a second tm_repo_open of the
         * API handle's catalog in this process would drop that handle's
         * SQLite locks (see main.c) */
        char job_catalog[4200];
        struct timespec synced_mtime; /* snapshots/ when the API handle last refreshed */
        char *password;
        size_t password_len;
        tm_jobs *jobs;
        tm_metrics *metrics;
        tm_audit *audit;
        tm_http_server *http;

        /* a shared handle for the API's reads */
        tm_repo *repo;
        pthread_mutex_t repo_lock;
        pthread_mutex_t retention_lock; /* one forget + prune at a time */

        pthread_mutex_t qlock;
        pthread_cond_t qcond;      /* work queued, or stopping */
        pthread_cond_t qidle;      /* a job finished */
        pthread_cond_t sched_cond; /* the scheduler's sleep (stopping wakes it) */
        uint64_t queue[BKD_QUEUE_MAX];
        size_t qn;
        int running;
        int stopping;
        pthread_t *workers;
        int n_workers;

        pthread_t sched;
        int sched_started;
        int64_t sched_tick; /* last time the scheduler looked (mono ns) */
        int64_t (*next_run)[TM_STRATEGY_COUNT];
        int64_t next_retention;
        int64_t next_lifecycle; /* storage tiers: the next lifecycle pass, -1 none */

        /* one thread per component with schedule.continuous (jobs.c) */
        struct bkd_watcher *watchers;
        size_t n_watchers;
        /* one per postgres component; a WAL stream thread with schedule.continuous (pg.c) */
        struct bkd_pg_stream *pg_streams;
        size_t n_pg_streams;

        struct bkd_replica *replica; /* replica.c; NULL before start */

        /* cached storage figures for /metrics and /health */
        pthread_mutex_t stats_lock;
        int64_t stats_at;
        uint64_t stats_bytes, stats_packs, stats_snapshots;
        struct tm_tier_stats stats_tiers; /* packs and bytes per storage tier */

        /* the unfiltered GET /api/v1/backups answer, valid while the
         * repository's snapshots/ directory keeps its mtime (and for at
         * most a minute): 1000 snapshots take ~50 ms to list and encode */
        tm_http_cache *list_cache;
};

/* jobs.c */
int bkd_jobs_start(struct bkd *b);
/* Stop taking work, wait up to timeout_s for running jobs. Returns 0 when
 * all finished, -ETIMEDOUT otherwise. */
int bkd_jobs_stop(struct bkd *b, int timeout_s);
/* Record a job and queue it. Returns 0, -EBUSY (queue full), -ECANCELED
 * (shutting down), -errno. */
int bkd_jobs_enqueue(struct bkd *b, struct tm_job *job);
/* Queue retries of jobs a crash or restart interrupted. */
void bkd_jobs_retry_interrupted(struct bkd *b);
/* Open a repository handle for a job (the caller frees). */
int bkd_repo_open(struct bkd *b, tm_repo **ret);
/* Bring the API handle's catalog up to date when snapshots/ changed (or
 * always with force). Call with repo_lock held. */
int bkd_repo_sync(struct bkd *b, int force);
/* The spec's name for a snapshot: backup-20250107-full-123. */
void bkd_backup_name(const struct tm_snapshot *s, char *out, size_t n);
void bkd_metrics_define(struct bkd *b);
/* Recompute the gauges derived from the history and the repository. */
void bkd_metrics_refresh(struct bkd *b);
/* Storage figures, cached for a few seconds; tiers (may be NULL) gets the
 * packs and bytes of each storage tier. */
int bkd_storage(struct bkd *b, uint64_t *bytes, uint64_t *packs, uint64_t *snapshots,
                struct tm_tier_stats *tiers);

/* replica.c: the [replica] loop. start validates the section (errors name
 * FILE:LINE) and starts the thread when there is one; kick asks for a pass
 * now; stop (NULL-safe, idempotent) cancels and joins; metrics sets the
 * replication_* gauges at scrape time. */
int bkd_replica_start(struct bkd *b);
void bkd_replica_kick(struct bkd *b);
void bkd_replica_stop(struct bkd *b);
void bkd_replica_metrics(struct bkd *b);
/* Is the daemon shutting down? */
int bkd_is_stopping(struct bkd *b);

/* pg.c: postgres components */
/* A base backup of cc (its full, differential and incremental strategies);
 * err gets a one-line reason on failure. */
int bkd_pg_backup(struct bkd *b, tm_repo *repo, const struct tm_component_conf *cc,
                  const char *const *tags, size_t n_tags, struct tm_snapshot *ret, char *err,
                  size_t errlen);
/* Start the supervised WAL streams (schedule.continuous = on). */
int bkd_pg_start(struct bkd *b);
/* Join them (after bkd_is_stopping() turned true). */
void bkd_pg_stop(struct bkd *b);
void bkd_pg_metrics_define(struct bkd *b);
/* dr_rpo_seconds and the streams' gauges. */
void bkd_pg_metrics(struct bkd *b);

/* api.c */
extern const struct tm_http_route bkd_routes[];
extern const size_t bkd_n_routes;
json_t *bkd_job_json(const struct tm_job *j);
