/*
 * The replication loop of backupd: one thread runs a pass of
 * lib/src/replica after each backup (jobs.c kicks it) and at least every
 * [replica] interval, with a repository handle and catalog of its own, and
 * publishes how far the replica is behind. The lag is recomputed at every
 * scrape, so it keeps growing while the replica is unreachable.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tidemark/log.h>
#include <tidemark/replica.h>
#include <tidemark/time.h>

#include "bkd.h"

/* after a failed pass, try again this soon even with a long interval */
#define RETRY_NS (30LL * TM_NSEC_PER_SEC)

struct bkd_replica {
        struct tm_replica_conf conf;
        char catalog[4200];
        tm_repo *repo;
        tm_replica *rep;
        pthread_t thread;
        int started;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int kicked;
        volatile int stop;
        int64_t last_success; /* ns, UTC; 0 never */
        int last_ok;
};

/* failoverd's replication_lag_seconds carries a "site" label (PostgreSQL
 * streaming); these carry a "replica" label */
static const struct {
        const char *name;
        enum tm_metric_type type;
        const char *help;
} replica_metrics[] = {
        { "replication_lag_seconds", TM_METRIC_GAUGE,
          "Age of the oldest snapshot not yet on the replica (0: caught up)" },
        { "replication_bytes_behind", TM_METRIC_GAUGE,
          "Bytes on the repository not yet on the replica" },
        { "replication_snapshots_behind", TM_METRIC_GAUGE,
          "Snapshots on the repository not yet on the replica" },
        { "replication_replica_up", TM_METRIC_GAUGE,
          "1 when the last pass reached the replica and finished" },
        { "replication_last_success_timestamp_seconds", TM_METRIC_GAUGE,
          "When a pass last caught the replica up" },
        { "replication_passes_total", TM_METRIC_COUNTER, "Replication passes, by result" },
        { "replication_errors_total", TM_METRIC_COUNTER,
          "Objects (or listings) that failed to replicate" },
        { "replication_bytes_total", TM_METRIC_COUNTER, "Bytes copied to the replica" },
        { "replication_objects_total", TM_METRIC_COUNTER, "Objects copied to the replica" },
};

static void replica_metrics_define(struct bkd *b)
{
        for (size_t i = 0; i < TM_ARRAY_SIZE(replica_metrics); i++)
                tm_metrics_define(b->metrics, replica_metrics[i].name, replica_metrics[i].type,
                                  replica_metrics[i].help, NULL, 0);
}

static void *replica_thread(void *arg)
{
        struct bkd *b = arg;
        struct bkd_replica *br = b->replica;
        const char *lab[] = { "replica", br->conf.name, NULL };
        const char *ok_lab[] = { "replica", br->conf.name, "result", "ok", NULL };
        const char *fail_lab[] = { "replica", br->conf.name, "result", "failed", NULL };

        while (!br->stop) {
                struct tm_replica_stats st = { 0 };
                struct timespec ts;
                int64_t wait_ns;
                int r;

                pthread_mutex_lock(&br->mu);
                br->kicked = 0;
                pthread_mutex_unlock(&br->mu);
                r = tm_replica_run(br->rep, &br->stop, &st);
                if (r == -ECANCELED)
                        break;
                tm_metrics_add(b->metrics, "replication_passes_total", r == 0 ? ok_lab : fail_lab,
                               1);
                tm_metrics_add(b->metrics, "replication_errors_total", lab,
                               (double)st.errors + (r < 0 && !st.errors ? 1 : 0));
                tm_metrics_add(b->metrics, "replication_bytes_total", lab, (double)st.bytes_copied);
                tm_metrics_add(b->metrics, "replication_objects_total", lab,
                               (double)st.objects_copied);
                pthread_mutex_lock(&br->mu);
                br->last_ok = r == 0;
                if (r == 0)
                        br->last_success = tm_time_now();
                pthread_mutex_unlock(&br->mu);
                if (r == 0 && (st.objects_copied || st.objects_deleted))
                        tm_log(TM_LOG_INFO,
                               "replica %s: %llu objects (%llu bytes) copied, %llu deleted in "
                               "%.1f s",
                               br->conf.name, (unsigned long long)st.objects_copied,
                               (unsigned long long)st.bytes_copied,
                               (unsigned long long)st.objects_deleted,
                               (double)st.duration_ns / 1e9);
                else if (r < 0)
                        tm_log_errno(TM_LOG_WARN, r,
                                     "replica %s: pass incomplete (%llu behind, %.0f s lag); "
                                     "retrying",
                                     br->conf.name, (unsigned long long)st.status.bytes_behind,
                                     (double)st.status.lag_ns / 1e9);

                wait_ns = br->conf.interval_ns;
                if (r < 0 && wait_ns > RETRY_NS)
                        wait_ns = RETRY_NS;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += wait_ns / TM_NSEC_PER_SEC;
                ts.tv_nsec += wait_ns % TM_NSEC_PER_SEC;
                if (ts.tv_nsec >= TM_NSEC_PER_SEC) {
                        ts.tv_sec++;
                        ts.tv_nsec -= TM_NSEC_PER_SEC;
                }
                pthread_mutex_lock(&br->mu);
                while (!br->stop && !br->kicked)
                        if (pthread_cond_timedwait(&br->cv, &br->mu, &ts) != 0)
                                break;
                pthread_mutex_unlock(&br->mu);
        }
        return NULL;
}

int bkd_replica_start(struct bkd *b)
{
        struct bkd_replica *br;
        struct tm_repo_opts o = TM_REPO_OPTS_INIT;
        char err[1024], *slash;
        int r;

        br = calloc(1, sizeof(*br));
        if (!br)
                return -ENOMEM;
        pthread_mutex_init(&br->mu, NULL);
        pthread_cond_init(&br->cv, NULL);
        b->replica = br;
        r = tm_replica_conf_load(b->cfg, &br->conf, err, sizeof(err));
        if (r == -ENOENT)
                return 0; /* no [replica]: nothing to do */
        if (r < 0) {
                tm_log(TM_LOG_ERR, "%s", err);
                return r;
        }
        /* a catalog of its own, next to the jobs' one (see main.c for why
         * handles in one process never share a catalog file) */
        snprintf(br->catalog, sizeof(br->catalog), "%s", b->job_catalog);
        slash = strrchr(br->catalog, '/');
        snprintf(slash ? slash + 1 : br->catalog,
                 sizeof(br->catalog) - (size_t)(slash ? slash + 1 - br->catalog : 0),
                 "replica-catalog.db");
        o.location = b->repo_location;
        o.password = b->password;
        o.password_len = b->password_len;
        o.catalog_path = br->catalog;
        o.config = b->cfg; /* packs in colder tiers are read where they are */
        r = tm_repo_open(&o, &br->repo);
        if (r < 0)
                return tm_log_errno(TM_LOG_ERR, r, "replica: cannot open the repository '%s'",
                                    b->repo_location);
        r = tm_replica_new(br->repo, &br->conf, &br->rep);
        if (r < 0)
                return r; /* logged with the location */
        replica_metrics_define(b);
        r = -pthread_create(&br->thread, NULL, replica_thread, b);
        if (r < 0)
                return r;
        br->started = 1;
        tm_log(TM_LOG_INFO, "replica %s: replicating to %s every %.0f s and after each backup",
               br->conf.name, br->conf.location, (double)br->conf.interval_ns / 1e9);
        return 0;
}

void bkd_replica_kick(struct bkd *b)
{
        struct bkd_replica *br = b->replica;

        if (!br || !br->started)
                return;
        pthread_mutex_lock(&br->mu);
        br->kicked = 1;
        pthread_cond_signal(&br->cv);
        pthread_mutex_unlock(&br->mu);
}

void bkd_replica_stop(struct bkd *b)
{
        struct bkd_replica *br = b->replica;

        if (!br)
                return;
        if (br->started) {
                pthread_mutex_lock(&br->mu);
                br->stop = 1;
                pthread_cond_signal(&br->cv);
                pthread_mutex_unlock(&br->mu);
                pthread_join(br->thread, NULL);
        }
        tm_replica_free(br->rep);
        tm_repo_free(br->repo);
        tm_replica_conf_dispose(&br->conf);
        pthread_mutex_destroy(&br->mu);
        pthread_cond_destroy(&br->cv);
        free(br);
        b->replica = NULL;
}

void bkd_replica_metrics(struct bkd *b)
{
        struct bkd_replica *br = b->replica;
        struct tm_replica_status st;
        const char *lab[3];
        int64_t last;
        int ok;

        if (!br || !br->started)
                return;
        lab[0] = "replica";
        lab[1] = br->conf.name;
        lab[2] = NULL;
        tm_replica_last(br->rep, &st);
        pthread_mutex_lock(&br->mu);
        last = br->last_success;
        ok = br->last_ok;
        pthread_mutex_unlock(&br->mu);
        tm_metrics_set(b->metrics, "replication_lag_seconds", lab, (double)st.lag_ns / 1e9);
        tm_metrics_set(b->metrics, "replication_bytes_behind", lab, (double)st.bytes_behind);
        tm_metrics_set(b->metrics, "replication_snapshots_behind", lab,
                       (double)st.snapshots_behind);
        tm_metrics_set(b->metrics, "replication_replica_up", lab, st.reachable && ok ? 1 : 0);
        if (last)
                tm_metrics_set(b->metrics, "replication_last_success_timestamp_seconds", lab,
                               (double)last / 1e9);
}
