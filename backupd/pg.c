/*
 * backupd/pg.c: postgres components. Their full, differential and
 * incremental strategies take a base backup; schedule.continuous = on runs
 * a WAL stream from the component's replication slot in a thread of its
 * own, restarted after a failure (backing off up to 30 s), with its state,
 * lag and errors in the metrics and dr_rpo_seconds{component}.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/log.h>
#include <tidemark/pg.h>
#include <tidemark/time.h>

#include "bkd.h"

#define BACKOFF_MAX_NS (30 * TM_NSEC_PER_SEC)
/* how often /metrics re-reads the recoverable windows from the repository */
#define WINDOW_TTL_NS (15 * TM_NSEC_PER_SEC)

struct bkd_pg_stream {
        struct bkd *b;
        const struct tm_component_conf *cc;
        pthread_t thread;
        int started;
        pthread_mutex_t lock; /* the fields below */
        struct tm_pg_stream_status st;
        int up;
        uint64_t errors;
        int64_t window_latest_ns; /* from the repository, cached */
        int64_t window_at;        /* mono, 0: never read */
};

static int component_conninfo(const struct tm_component_conf *cc, char **ret)
{
        struct tm_pg_conn c = { cc->pg_host, cc->pg_port, cc->pg_user, cc->pg_passfile,
                                cc->pg_conninfo };

        return tm_pg_conninfo(&c, ret);
}

int bkd_pg_backup(struct bkd *b, tm_repo *repo, const struct tm_component_conf *cc,
                  const char *const *tags, size_t n_tags, struct tm_snapshot *ret, char *err,
                  size_t errlen)
{
        struct tm_pg_backup_opts o = { 0 };
        char *conninfo = NULL;
        int r;

        (void)b;
        r = component_conninfo(cc, &conninfo);
        if (r < 0) {
                snprintf(err, errlen, "cannot build the connection string: %s", strerror(-r));
                return r;
        }
        o.conninfo = conninfo;
        o.component = cc->name;
        o.label = "tidemark-backupd";
        o.staging = cc->pg_staging;
        o.tags = tags;
        o.n_tags = n_tags;
        r = tm_pg_backup_run(repo, &o, ret);
        if (r < 0)
                snprintf(err, errlen, "base backup failed: %s (see the daemon's log)",
                         strerror(-r));
        free(conninfo);
        return r;
}

static int stream_should_stop(void *userdata)
{
        struct bkd_pg_stream *s = userdata;

        return bkd_is_stopping(s->b);
}

static void stream_status(const struct tm_pg_stream_status *st, void *userdata)
{
        struct bkd_pg_stream *s = userdata;

        pthread_mutex_lock(&s->lock);
        s->st = *st;
        s->up = 1;
        pthread_mutex_unlock(&s->lock);
}

/* Sleep ns, waking early when the daemon stops. */
static void nap(struct bkd *b, int64_t ns)
{
        int64_t until = tm_time_mono() + ns;

        while (!bkd_is_stopping(b) && tm_time_mono() < until) {
                struct timespec ts = { 0, 100 * 1000 * 1000 };

                nanosleep(&ts, NULL);
        }
}

static void *stream_thread(void *arg)
{
        struct bkd_pg_stream *s = arg;
        struct bkd *b = s->b;
        int64_t backoff = TM_NSEC_PER_SEC;

        while (!bkd_is_stopping(b)) {
                struct tm_pg_stream_opts o = { 0 };
                char *conninfo = NULL;
                tm_repo *repo = NULL;
                int64_t t0 = tm_time_mono();
                int r;

                r = component_conninfo(s->cc, &conninfo);
                if (r == 0)
                        r = bkd_repo_open(b, &repo);
                if (r == 0) {
                        o.conninfo = conninfo;
                        o.component = s->cc->name;
                        o.slot = s->cc->pg_slot;
                        o.staging = s->cc->pg_staging;
                        o.should_stop = stream_should_stop;
                        o.on_status = stream_status;
                        o.userdata = s;
                        r = tm_pg_stream_run(repo, &o);
                }
                tm_repo_free(repo);
                free(conninfo);
                pthread_mutex_lock(&s->lock);
                s->up = 0;
                if (r < 0)
                        s->errors++;
                pthread_mutex_unlock(&s->lock);
                if (r == 0 || bkd_is_stopping(b))
                        break;
                /* a stream that ran a while failed afresh: start the
                 * backoff over */
                if (tm_time_mono() - t0 > BACKOFF_MAX_NS)
                        backoff = TM_NSEC_PER_SEC;
                tm_log(TM_LOG_WARN,
                       "component '%s': the WAL stream stopped (%s); restarting in %lld s",
                       s->cc->name, strerror(-r), (long long)(backoff / TM_NSEC_PER_SEC));
                nap(b, backoff);
                backoff = backoff * 2 > BACKOFF_MAX_NS ? BACKOFF_MAX_NS : backoff * 2;
        }
        return NULL;
}

int bkd_pg_start(struct bkd *b)
{
        size_t n = 0;
        int r;

        for (size_t c = 0; c < b->cfg->n_components; c++)
                n += b->cfg->components[c].type == TM_COMPONENT_POSTGRES;
        if (!n)
                return 0;
        b->pg_streams = calloc(n, sizeof(*b->pg_streams));
        if (!b->pg_streams)
                return -ENOMEM;
        for (size_t c = 0; c < b->cfg->n_components; c++) {
                const struct tm_component_conf *cc = &b->cfg->components[c];
                struct bkd_pg_stream *s = &b->pg_streams[b->n_pg_streams];

                if (cc->type != TM_COMPONENT_POSTGRES)
                        continue;
                s->b = b;
                s->cc = cc;
                pthread_mutex_init(&s->lock, NULL);
                b->n_pg_streams++;
                if (!cc->continuous)
                        continue;
                tm_log(TM_LOG_INFO, "component '%s': streaming WAL from slot '%s'", cc->name,
                       cc->pg_slot ? cc->pg_slot : "tidemark");
                r = -pthread_create(&s->thread, NULL, stream_thread, s);
                if (r < 0)
                        return r;
                s->started = 1;
        }
        return 0;
}

void bkd_pg_stop(struct bkd *b)
{
        for (size_t i = 0; i < b->n_pg_streams; i++) {
                if (b->pg_streams[i].started)
                        pthread_join(b->pg_streams[i].thread, NULL);
                pthread_mutex_destroy(&b->pg_streams[i].lock);
        }
        free(b->pg_streams);
        b->pg_streams = NULL;
        b->n_pg_streams = 0;
}

void bkd_pg_metrics_define(struct bkd *b)
{
        tm_metrics *m = b->metrics;

        tm_metrics_define(m, "dr_rpo_seconds", TM_METRIC_GAUGE,
                          "Actual recovery point: now minus the latest instant the component "
                          "can be recovered to",
                          NULL, 0);
        tm_metrics_define(m, "pg_wal_stream_up", TM_METRIC_GAUGE,
                          "1 while the WAL stream of a postgres component is connected", NULL, 0);
        tm_metrics_define(m, "pg_wal_stream_lag_bytes", TM_METRIC_GAUGE,
                          "WAL the server has and the repository does not yet", NULL, 0);
        tm_metrics_define(m, "pg_wal_stream_errors_total", TM_METRIC_COUNTER,
                          "Times the WAL stream failed and was restarted", NULL, 0);
}

/* The latest recoverable instant in the repository (cached a few seconds:
 * reading the windows lists the WAL snapshots). */
static int64_t window_latest(struct bkd_pg_stream *s)
{
        struct tm_pg_windows ws = { 0 };
        tm_repo *repo = NULL;
        int64_t latest = 0;

        pthread_mutex_lock(&s->lock);
        if (s->window_at && tm_time_mono() - s->window_at < WINDOW_TTL_NS) {
                latest = s->window_latest_ns;
                pthread_mutex_unlock(&s->lock);
                return latest;
        }
        pthread_mutex_unlock(&s->lock);
        if (bkd_repo_open(s->b, &repo) == 0 && tm_pg_windows_get(repo, s->cc->name, &ws) == 0 &&
            ws.n)
                latest = ws.w[ws.n - 1].latest_ns;
        tm_pg_windows_dispose(&ws);
        tm_repo_free(repo);
        pthread_mutex_lock(&s->lock);
        s->window_latest_ns = latest;
        s->window_at = tm_time_mono();
        pthread_mutex_unlock(&s->lock);
        return latest;
}

void bkd_pg_metrics(struct bkd *b)
{
        int64_t now = tm_time_now();

        for (size_t i = 0; i < b->n_pg_streams; i++) {
                struct bkd_pg_stream *s = &b->pg_streams[i];
                const char *lab[] = { "component", s->cc->name, "tier", tm_tier_name(s->cc->tier),
                                      NULL };
                struct tm_pg_stream_status st;
                int64_t latest = window_latest(s);
                uint64_t errors;
                int up;

                pthread_mutex_lock(&s->lock);
                st = s->st;
                up = s->up;
                errors = s->errors;
                pthread_mutex_unlock(&s->lock);
                /* a connected stream that has stored all the server has
                 * knows the database is recoverable up to that moment */
                if (up && st.caught_up_ns > latest)
                        latest = st.caught_up_ns;
                if (st.stored_at_ns && st.last_commit_ns > latest)
                        latest = st.last_commit_ns;
                if (latest)
                        tm_metrics_set(b->metrics, "dr_rpo_seconds", lab,
                                       now > latest ? (double)(now - latest) / 1e9 : 0);
                if (!s->started)
                        continue;
                tm_metrics_set(b->metrics, "pg_wal_stream_up", lab, up);
                tm_metrics_set(b->metrics, "pg_wal_stream_lag_bytes", lab,
                               st.server_lsn > st.stored_lsn
                                       ? (double)(st.server_lsn - st.stored_lsn)
                                       : 0);
                tm_metrics_set(b->metrics, "pg_wal_stream_errors_total", lab, (double)errors);
        }
}
