/*
 * The REST API of tidemark-failoverd (docs/disaster-recovery.md): the
 * spec's paths and bodies. A failover or failback is a job: 202 with its id,
 * its step log at /api/v1/jobs/{id}, one at a time (409 otherwise). A real
 * drill is a job of its own kind, also one at a time; its report is kept
 * under [failover] state_dir/drills.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tidemark/log.h>
#include <tidemark/pg.h>
#include <tidemark/time.h>

#include "fo.h"

/* ---- jobs ---- */

/* The real drills: one at a time, each a job with its own step log. */
struct fo_drill {
        int busy;
        uint64_t job_id;
        struct tm_dr_log *log;
        pthread_t thread;
        int started;
        int loaded;           /* last_success read from the stored reports */
        json_t *last_success; /* the newest succeeded report, without steps */
        int64_t started_ns;
};

struct flow_args {
        struct fo *f;
        enum fo_flow kind;
        char from[TM_DR_NAME_MAX], target[TM_DR_NAME_MAX];
        char reason[256], trigger[16];
        int force, confirmed_down;
        uint64_t job;
        struct tm_dr_health last_primary;
        int64_t detected_ns;
};

static json_t *job_json(struct fo *f, const struct tm_job *j)
{
        char t[40];
        /* a drill's job names the component it restored, a flow's its target */
        json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s}", "job_id", (json_int_t)j->id, "kind",
                              j->kind, strcmp(j->kind, "drill") ? "target_site" : "component",
                              j->component, "state", j->state, "trigger", j->trigger);

        if (!o)
                return NULL;
        if (j->created) {
                tm_time_format_ns(j->created, t, sizeof(t));
                json_object_set_new(o, "created", json_string(t));
        }
        if (j->finished) {
                tm_time_format_ns(j->finished, t, sizeof(t));
                json_object_set_new(o, "finished", json_string(t));
        }
        if (j->error[0])
                json_object_set_new(o, "error", json_string(j->error));
        if (j->result_json) {
                json_t *r = json_loads(j->result_json, 0, NULL);

                if (r)
                        json_object_update(o, r);
                json_decref(r);
        }
        pthread_mutex_lock(&f->lock);
        if (f->busy && f->job_id == j->id && f->log)
                json_object_set_new(o, "steps", tm_dr_log_copy(f->log));
        else if (f->drill && f->drill->busy && f->drill->job_id == j->id && f->drill->log)
                json_object_set_new(o, "steps", tm_dr_log_copy(f->drill->log));
        pthread_mutex_unlock(&f->lock);
        return o;
}

static void *flow_main(void *arg)
{
        struct flow_args *a = arg;
        struct fo *f = a->f;
        struct tm_dr_failover_opts o = { 0 };
        struct tm_dr_outcome out = { 0 };
        struct tm_job job = { 0 };
        char err[1024] = "", started[40], finished[40];
        int64_t w0 = tm_time_now();
        json_t *rec, *res;
        char *s;
        int r;

        if (a->kind == FO_FLOW_FAILOVER) {
                o.from_site = a->from;
                o.target_site = a->target;
                o.reason = a->reason;
                o.trigger = a->trigger;
                o.force = a->force;
                o.confirmed_down = a->confirmed_down;
                o.job_id = a->job;
                o.last_primary = &a->last_primary;
                o.detected_ns = a->detected_ns;
                r = tm_dr_failover(f->dr, &o, f->log, &out, err, sizeof(err));
        } else {
                r = tm_dr_failback(f->dr, a->from, a->target, a->reason, a->job, f->log, &out, err,
                                   sizeof(err));
        }
        tm_time_format_ns(w0, started, sizeof(started));
        tm_time_format_ns(tm_time_now(), finished, sizeof(finished));
        rec = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:f, s:f, s:f, s:I, "
                        "s:b, s:s?}",
                        "job_id", (json_int_t)a->job, "kind",
                        a->kind == FO_FLOW_FAILOVER ? "failover" : "failback", "type",
                        out.planned ? "planned" : "unplanned", "from_site", a->from, "to_site",
                        a->target, "reason", a->reason, "trigger", a->trigger, "started", started,
                        "succeeded", r >= 0, "planned", out.planned, "duration_seconds",
                        (double)out.duration_ns / 1e9, "rto_seconds", (double)out.rto_ns / 1e9,
                        "rpo_seconds", (double)out.rpo_ns / 1e9, "rpo_bytes",
                        (json_int_t)out.rpo_bytes, "traffic_switched", out.traffic_switched,
                        "error", err[0] ? err : NULL);
        if (rec)
                json_object_set_new(rec, "finished", json_string(finished));
        pthread_mutex_lock(&f->lock);
        res = json_pack("{s:o, s:O?}", "steps", tm_dr_log_copy(f->log), "outcome", rec);
        if (out.promote_lsn || (r >= 0 && a->kind == FO_FLOW_FAILBACK)) {
                /* the target is the primary now, even when a later hook failed */
                snprintf(f->active, sizeof(f->active), "%s", a->target);
        }
        if (rec && (out.promote_lsn || r >= 0)) {
                json_decref(f->last_failover);
                f->last_failover = json_incref(rec);
                f->last_rto_s = (double)out.rto_ns / 1e9;
                f->last_rpo_s = (double)out.rpo_ns / 1e9;
                f->last_rpo_bytes = out.rpo_bytes;
                f->last_duration_s = (double)out.duration_ns / 1e9;
        }
        fo_state_save(f);
        {
                const char *l[] = { "kind", a->kind == FO_FLOW_FAILOVER ? "failover" : "failback",
                                    "result", r >= 0 ? "succeeded" : "failed", NULL };

                tm_metrics_add(f->metrics, "dr_failovers_total", l, 1);
        }
        pthread_mutex_unlock(&f->lock);
        if (tm_jobs_get(f->jobs, a->job, &job) == 0) {
                snprintf(job.state, sizeof(job.state), "%s", r >= 0 ? "succeeded" : "failed");
                snprintf(job.error, sizeof(job.error), "%.*s", (int)sizeof(job.error) - 1, err);
                job.finished = tm_time_now();
                s = res ? json_dumps(res, JSON_COMPACT) : NULL;
                free(job.result_json);
                job.result_json = s;
                tm_jobs_update(f->jobs, &job);
                tm_job_dispose(&job);
        }
        tm_log(r >= 0 ? TM_LOG_INFO : TM_LOG_ERR, "job %llu (%s to '%s') %s%s%s",
               (unsigned long long)a->job,
               a->kind == FO_FLOW_FAILOVER ? "failover" : "failback", a->target,
               r >= 0 ? "succeeded" : "failed", err[0] ? ": " : "", err);
        json_decref(rec);
        json_decref(res);
        pthread_mutex_lock(&f->lock);
        f->busy = 0;
        pthread_mutex_unlock(&f->lock);
        tm_dr_health_dispose(&a->last_primary);
        free(a);
        return NULL;
}

static void drill_join(struct fo *f);

void fo_flow_join(struct fo *f)
{
        drill_join(f);
        pthread_mutex_lock(&f->lock);
        if (!f->flow_started) {
                pthread_mutex_unlock(&f->lock);
                return;
        }
        f->flow_started = 0;
        pthread_mutex_unlock(&f->lock);
        pthread_join(f->flow_thread, NULL);
}

/* A fresh step log for a new job, replacing the last job's. */
static int log_renew(struct tm_dr_log **l)
{
        if (*l) {
                tm_dr_log_dispose(*l);
                free(*l);
        }
        *l = calloc(1, sizeof(**l));
        if (!*l || tm_dr_log_init(*l) < 0) {
                free(*l);
                *l = NULL;
                return -ENOMEM;
        }
        return 0;
}

int fo_flow_start(struct fo *f, enum fo_flow kind, const char *target, const char *reason,
                  const char *trigger, int force, int confirmed_down, uint64_t *ret_job,
                  char *err, size_t errlen)
{
        struct flow_args *a = calloc(1, sizeof(*a));
        struct tm_job job = { 0 };
        int r, ai;

        if (!a)
                return -ENOMEM;
        pthread_mutex_lock(&f->lock);
        if (!f->dr->n_sites) {
                snprintf(err, errlen, "no sites configured: failover and failback need "
                                      "[site.NAME] sections (docs/disaster-recovery.md)");
                r = -EINVAL;
                goto fail;
        }
        if (f->busy) {
                snprintf(err, errlen, "a %s is already running (job %llu)",
                         "failover or failback", (unsigned long long)f->job_id);
                r = -EBUSY;
                goto fail;
        }
        if (f->flow_started) {
                /* the previous flow is over (busy is 0): reap its thread */
                f->flow_started = 0;
                pthread_mutex_unlock(&f->lock);
                pthread_join(f->flow_thread, NULL);
                pthread_mutex_lock(&f->lock);
                if (f->busy) {
                        snprintf(err, errlen, "a failover or failback is already running");
                        r = -EBUSY;
                        goto fail;
                }
        }
        if (kind == FO_FLOW_FAILBACK) {
                if (!f->dr->primary) {
                        snprintf(err, errlen,
                                 "no original site to fail back to: set [failover] primary");
                        r = -EINVAL;
                        goto fail;
                }
                if (!strcmp(f->active, f->dr->primary)) {
                        snprintf(err, errlen, "site '%s' is already the primary: nothing to "
                                              "fail back",
                                 f->active);
                        r = -EEXIST;
                        goto fail;
                }
                target = f->dr->primary;
        } else if (fo_site_index(f, target) < 0) {
                snprintf(err, errlen, "unknown site '%s'", target);
                r = -ENOENT;
                goto fail;
        } else if (!strcmp(f->active, target)) {
                snprintf(err, errlen, "site '%s' is already the primary", target);
                r = -EINVAL;
                goto fail;
        }
        a->f = f;
        a->kind = kind;
        snprintf(a->from, sizeof(a->from), "%s", f->active);
        snprintf(a->target, sizeof(a->target), "%s", target);
        snprintf(a->reason, sizeof(a->reason), "%s", reason ? reason : "");
        snprintf(a->trigger, sizeof(a->trigger), "%s", trigger);
        a->force = force;
        a->confirmed_down = confirmed_down;
        a->last_primary = f->last_primary;
        a->last_primary.senders = NULL;
        ai = fo_site_index(f, f->active);
        a->detected_ns = !strcmp(trigger, "automatic") && ai >= 0 ? f->sites[ai].last_ok : 0;
        snprintf(job.kind, sizeof(job.kind), "%s",
                 kind == FO_FLOW_FAILOVER ? "failover" : "failback");
        snprintf(job.component, sizeof(job.component), "%s", a->target);
        snprintf(job.trigger, sizeof(job.trigger), "%s", trigger);
        snprintf(job.state, sizeof(job.state), "running");
        job.started = tm_time_now();
        job.attempt = 1;
        r = tm_jobs_add(f->jobs, &job);
        if (r < 0) {
                snprintf(err, errlen, "cannot record the job: %s", strerror(-r));
                goto fail;
        }
        a->job = job.id;
        r = log_renew(&f->log);
        if (r < 0)
                goto fail;
        f->busy = 1;
        f->job_id = job.id;
        r = -pthread_create(&f->flow_thread, NULL, flow_main, a);
        if (r < 0) {
                f->busy = 0;
                snprintf(err, errlen, "cannot start the job: %s", strerror(-r));
                goto fail;
        }
        f->flow_started = 1;
        *ret_job = job.id;
        pthread_mutex_unlock(&f->lock);
        tm_log(TM_LOG_INFO, "job %llu: %s from '%s' to '%s' (%s: %s)",
               (unsigned long long)job.id, job.kind, a->from, a->target, trigger,
               reason ? reason : "");
        return 0;
fail:
        pthread_mutex_unlock(&f->lock);
        free(a);
        return r;
}

/* ---- real drills ---- */

static void drill_paths(const struct fo *f, char *reports, size_t rn, char *scratch, size_t sn)
{
        if (reports)
                snprintf(reports, rn, "%s/drills", f->dr->state_dir);
        if (scratch)
                snprintf(scratch, sn, "%s/drill-scratch", f->dr->state_dir);
}

/* The drill state, created on first use. Call with f->lock held. */
static struct fo_drill *drill_get(struct fo *f)
{
        if (!f->drill)
                f->drill = calloc(1, sizeof(*f->drill));
        return f->drill;
}

/* The newest succeeded report, from disk the first time. Call with f->lock
 * held. */
static const json_t *drill_last_success(struct fo *f)
{
        struct fo_drill *d = drill_get(f);
        char dir[4300];
        json_t *all = NULL, *v;
        size_t i;

        if (!d || d->loaded)
                return d ? d->last_success : NULL;
        d->loaded = 1;
        drill_paths(f, dir, sizeof(dir), NULL, 0);
        if (tm_dr_reports_list(dir, &all) < 0)
                return NULL;
        json_array_foreach(all, i, v)
        {
                if (json_is_true(json_object_get(v, "succeeded"))) {
                        d->last_success = json_incref(v);
                        break;
                }
        }
        json_decref(all);
        return d->last_success;
}

static void drill_metrics_define(struct fo *f)
{
        tm_metrics_define(f->metrics, "dr_drill_last_success_timestamp_seconds", TM_METRIC_GAUGE,
                          "When the last real drill that succeeded finished (Unix time)", NULL, 0);
        tm_metrics_define(f->metrics, "dr_drills_total", TM_METRIC_COUNTER, "Real drills by result",
                          NULL, 0);
}

/* The last good drill's figures: dr_rto_seconds / dr_rpo_seconds with
 * kind="drill" next to the failover's "measured" and the tier's "target". */
static void drill_metrics_refresh(struct fo *f)
{
        const struct tm_dr_tier *t = tm_dr_tier_find(f->dr, f->dr->service_tier);
        const json_t *last;

        drill_metrics_define(f);
        pthread_mutex_lock(&f->lock);
        last = drill_last_success(f);
        if (last && t) {
                const char *l[] = { "tier", t->name, "kind", "drill", NULL };
                int64_t fin = 0;

                tm_metrics_set(f->metrics, "dr_rto_seconds", l,
                               json_number_value(json_object_get(last, "rto_seconds")));
                tm_metrics_set(f->metrics, "dr_rpo_seconds", l,
                               json_number_value(json_object_get(last, "rpo_seconds")));
                if (tm_time_parse(json_string_value(json_object_get(last, "finished")), &fin,
                                  NULL) == 0)
                        tm_metrics_set(f->metrics, "dr_drill_last_success_timestamp_seconds", NULL,
                                       (double)fin / 1e9);
        }
        pthread_mutex_unlock(&f->lock);
}

/* PostgreSQL's restore_command for the recovered database: the tidemark
 * program's wal-fetch (the server runs it; a root daemon's catalog is not
 * the server's to write). */
static int restore_command(struct fo *f, tm_buf *out)
{
        const char *loc =
                f->cfg->repo_location ? f->cfg->repo_location : getenv("TIDEMARK_REPOSITORY");
        const char *pw =
                f->cfg->password_file ? f->cfg->password_file : getenv("TIDEMARK_PASSWORD_FILE");
        int r;

        if (!loc)
                return -EINVAL;
        r = tm_pg_restore_command(out, f->tidemark, loc, pw,
                                  geteuid() == 0 ? NULL : f->restore_catalog, f->dr->component);
        return r < 0 ? r : tm_buf_append(out, "", 1);
}

/* A drill gives up its waits when the daemon stops (the restore itself
 * runs to its end). */
static int drill_should_stop(void *ud)
{
        struct fo *f = ud;
        int r;

        pthread_mutex_lock(&f->lock);
        r = f->stopping;
        pthread_mutex_unlock(&f->lock);
        return r;
}

static void *drill_main(void *arg)
{
        struct fo *f = arg;
        struct fo_drill *d;
        struct tm_dr_drill_opts o = { 0 };
        struct tm_job job = { 0 };
        tm_buf cmd = TM_BUF_INIT(64 * 1024);
        char err[1024] = "", reports[4300], scratch[4300];
        json_t *rep = NULL, *res = NULL;
        int r, saved = 0;

        pthread_mutex_lock(&f->lock);
        d = f->drill;
        o.id = d->job_id;
        o.started_ns = d->started_ns;
        pthread_mutex_unlock(&f->lock);
        drill_paths(f, reports, sizeof(reports), scratch, sizeof(scratch));
        o.repo = f->repo;
        o.repo_lock = &f->repo_lock;
        o.scratch = scratch;
        o.should_stop = drill_should_stop;
        o.userdata = f;
        r = restore_command(f, &cmd);
        if (r < 0) {
                snprintf(err, sizeof(err), "cannot build the restore_command: %s", strerror(-r));
        } else {
                o.restore_command = (const char *)cmd.data;
                r = tm_dr_drill(f->dr, &o, d->log, &rep, err, sizeof(err));
        }
        if (rep) {
                int r2 = tm_dr_report_save(reports, rep);

                saved = r2 == 0;
                if (r2 < 0)
                        tm_log_errno(TM_LOG_ERR, r2, "drill %llu: cannot store its report in '%s'",
                                     (unsigned long long)o.id, reports);
        }
        res = rep ? json_pack("{s:{s:I, s:b, s:O, s:O, s:O, s:O, s:O}, s:s?, s:O?}", "report", "id",
                              (json_int_t)o.id, "succeeded", r == 0, "failed_step",
                              json_object_get(rep, "failed_step"), "rto_seconds",
                              json_object_get(rep, "rto_seconds") ?: json_null(), "rpo_seconds",
                              json_object_get(rep, "rpo_seconds") ?: json_null(), "reached",
                              json_object_get(rep, "reached") ?: json_null(), "scratch",
                              json_object_get(rep, "scratch"), "report_url", NULL, "steps",
                              json_object_get(rep, "steps"))
                  : NULL;
        if (res && saved) {
                char u[96];

                snprintf(u, sizeof(u), "/api/v1/test/failover/reports/%llu",
                         (unsigned long long)o.id);
                json_object_set_new(res, "report_url", json_string(u));
        }
        drill_metrics_define(f);
        {
                const char *l[] = { "result", r == 0 ? "succeeded" : "failed", NULL };

                tm_metrics_add(f->metrics, "dr_drills_total", l, 1);
        }
        if (tm_jobs_get(f->jobs, o.id, &job) == 0) {
                const char *step =
                        rep ? json_string_value(json_object_get(rep, "failed_step")) : NULL;

                snprintf(job.state, sizeof(job.state), "%s", r == 0 ? "succeeded" : "failed");
                if (r < 0)
                        snprintf(job.error, sizeof(job.error), "%s%s%.200s", step ? step : "",
                                 step ? ": " : "", err);
                job.finished = tm_time_now();
                free(job.result_json);
                job.result_json = res ? json_dumps(res, JSON_COMPACT) : NULL;
                tm_jobs_update(f->jobs, &job);
                tm_job_dispose(&job);
        }
        tm_log(r == 0 ? TM_LOG_INFO : TM_LOG_ERR, "drill %llu %s%s%s", (unsigned long long)o.id,
               r == 0 ? "succeeded" : "failed", err[0] ? ": " : "", err);
        pthread_mutex_lock(&f->lock);
        if (r == 0 && rep) {
                json_decref(d->last_success);
                d->last_success = json_deep_copy(rep);
                json_object_del(d->last_success, "steps");
                d->loaded = 1;
        }
        d->busy = 0;
        pthread_mutex_unlock(&f->lock);
        json_decref(rep);
        json_decref(res);
        tm_buf_dispose(&cmd);
        return NULL;
}

static void drill_join(struct fo *f)
{
        struct fo_drill *d;

        pthread_mutex_lock(&f->lock);
        d = f->drill;
        f->drill = NULL;
        pthread_mutex_unlock(&f->lock);
        if (!d)
                return;
        if (d->started)
                pthread_join(d->thread, NULL);
        if (d->log) {
                tm_dr_log_dispose(d->log);
                free(d->log);
        }
        json_decref(d->last_success);
        free(d);
}

/* Start a real drill as a job. Returns 0 and *ret_job, -EBUSY (one runs),
 * -EINVAL (no repository), -errno; err says why. */
static int drill_start(struct fo *f, uint64_t *ret_job, char *err, size_t errlen)
{
        struct tm_job job = { 0 };
        struct fo_drill *d;
        int r;

        if (!f->repo) {
                snprintf(err, errlen,
                         "a real drill restores the latest backup: no repository is "
                         "configured ([repository] location)");
                return -EINVAL;
        }
        pthread_mutex_lock(&f->lock);
        d = drill_get(f);
        if (!d) {
                r = -ENOMEM;
                goto fail;
        }
        if (d->busy) {
                snprintf(err, errlen, "a drill is already running (job %llu)",
                         (unsigned long long)d->job_id);
                r = -EBUSY;
                goto fail;
        }
        if (d->started) {
                /* the previous drill is over (busy is 0): reap its thread */
                pthread_join(d->thread, NULL);
                d->started = 0;
        }
        snprintf(job.kind, sizeof(job.kind), "drill");
        snprintf(job.component, sizeof(job.component), "%s", f->dr->component);
        snprintf(job.trigger, sizeof(job.trigger), "api");
        snprintf(job.state, sizeof(job.state), "running");
        job.started = tm_time_now();
        job.attempt = 1;
        r = tm_jobs_add(f->jobs, &job);
        if (r < 0) {
                snprintf(err, errlen, "cannot record the job: %s", strerror(-r));
                goto fail;
        }
        r = log_renew(&d->log);
        if (r < 0)
                goto fail;
        d->busy = 1;
        d->job_id = job.id;
        d->started_ns = job.started;
        r = -pthread_create(&d->thread, NULL, drill_main, f);
        if (r < 0) {
                d->busy = 0;
                snprintf(err, errlen, "cannot start the drill: %s", strerror(-r));
                goto fail;
        }
        d->started = 1;
        *ret_job = job.id;
        pthread_mutex_unlock(&f->lock);
        tm_log(TM_LOG_INFO, "job %llu: real drill of component '%s'", (unsigned long long)job.id,
               f->dr->component);
        return 0;
fail:
        pthread_mutex_unlock(&f->lock);
        return r;
}

/* ---- handlers ---- */

static int api_health(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        int ai, up;

        pthread_mutex_lock(&f->lock);
        ai = fo_site_index(f, f->active);
        up = ai >= 0 && f->sites[ai].h.reachable;
        /* no site configured: no monitor and no primary, and nothing wrong */
        *ret = json_pack("{s:s, s:s, s:s?, s:{s:s, s:s}}", "status", "healthy", "version",
                         TM_VERSION, "active_site", f->active[0] ? f->active : NULL, "checks",
                         "monitor",
                         !f->dr->n_sites ? "no_sites" : f->monitor_started ? "ok" : "stopped",
                         "primary", !f->dr->n_sites ? "no_sites" : up ? "ok" : "unreachable");
        pthread_mutex_unlock(&f->lock);
        return *ret ? 200 : -ENOMEM;
}

static int api_metrics(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        tm_buf out = TM_BUF_INIT(4u << 20);
        int r;

        fo_metrics_refresh(f);
        drill_metrics_refresh(f);
        r = tm_metrics_render(f->metrics, &out);
        if (r >= 0)
                r = tm_buf_append(&out, "", 1);
        if (r < 0) {
                tm_buf_dispose(&out);
                return r;
        }
        r = tm_http_set_text_take(rq, "text/plain; version=0.0.4; charset=utf-8", (char *)out.data);
        return r < 0 ? r : 200;
}

static json_t *tiers_json(struct fo *f)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < f->dr->n_tiers; i++) {
                const struct tm_dr_tier *t = &f->dr->tiers[i];
                int mine = !strcmp(t->name, f->dr->service_tier);
                json_t *o = json_pack("{s:s, s:f, s:f, s:b}", "tier", t->name,
                                      "rto_target_seconds", (double)t->rto_ns / 1e9,
                                      "rpo_target_seconds", (double)t->rpo_ns / 1e9, "database",
                                      mine);

                if (o && mine && f->last_failover) {
                        json_object_set_new(o, "rto_measured_seconds", json_real(f->last_rto_s));
                        json_object_set_new(o, "rpo_measured_seconds", json_real(f->last_rpo_s));
                        json_object_set_new(o, "rto_met",
                                            json_boolean(f->last_rto_s * 1e9 <= (double)t->rto_ns));
                        json_object_set_new(o, "rpo_met",
                                            json_boolean(f->last_rpo_s * 1e9 <= (double)t->rpo_ns));
                }
                json_array_append_new(a, o);
        }
        return a;
}

static int api_status(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        json_t *sites = json_array();
        uint64_t plsn = 0;
        int ai;

        pthread_mutex_lock(&f->lock);
        ai = fo_site_index(f, f->active);
        if (ai >= 0 && f->sites[ai].h.reachable)
                plsn = f->sites[ai].h.lsn;
        for (size_t i = 0; sites && i < f->dr->n_sites; i++) {
                const struct tm_dr_health *h = &f->sites[i].h;
                json_t *o = tm_dr_health_json(h);

                if (!o)
                        continue;
                json_object_set_new(o, "name", json_string(f->dr->sites[i].name));
                json_object_set_new(o, "active", json_boolean((int)i == ai));
                json_object_set_new(o, "health", json_string(h->reachable ? "healthy" : "down"));
                json_object_set_new(o, "consecutive_failures", json_integer(f->sites[i].failures));
                json_object_set_new(o, "auto_failover",
                                    json_boolean(f->dr->sites[i].auto_failover));
                if (h->reachable && h->in_recovery && plsn)
                        json_object_set_new(o, "lag_bytes",
                                            json_integer(plsn > h->lsn ? (json_int_t)(plsn - h->lsn)
                                                                       : 0));
                json_object_del(o, "senders");
                json_array_append_new(sites, o);
        }
        *ret = json_pack("{s:s?, s:o, s:O?, s:o, s:s, s:{s:b, s:i, s:f, s:s}, s:o}",
                         "active_site", f->active[0] ? f->active : NULL, "sites", sites,
                         "last_failover", f->last_failover, "tiers",
                         tiers_json(f), "service_tier", f->dr->service_tier,
                         "automatic_failover", "enabled", f->dr->automatic, "failure_threshold",
                         f->dr->failure_threshold, "check_interval_seconds",
                         (double)f->dr->check_interval_ns / 1e9, "last_verdict",
                         f->auto_verdict[0] ? f->auto_verdict : "healthy", "failover_running",
                         json_boolean(f->busy));
        if (*ret && f->busy)
                json_object_set_new(*ret, "running_job", json_integer((json_int_t)f->job_id));
        if (*ret) {
                /* what the last good real drill achieved (its report has the rest) */
                const json_t *d = drill_last_success(f);

                json_object_set_new(*ret, "last_drill",
                                    d ? json_pack("{s:O, s:O, s:O?, s:O?, s:O?, s:O?}", "id",
                                                  json_object_get(d, "id"), "finished",
                                                  json_object_get(d, "finished"), "rto_seconds",
                                                  json_object_get(d, "rto_seconds"), "rpo_seconds",
                                                  json_object_get(d, "rpo_seconds"), "rto_met",
                                                  json_object_get(d, "rto_met"), "rpo_met",
                                                  json_object_get(d, "rpo_met"))
                                      : json_null());
                json_object_set_new(*ret, "drill_running",
                                    json_boolean(f->drill && f->drill->busy));
        }
        pthread_mutex_unlock(&f->lock);
        return *ret ? 200 : -ENOMEM;
}

static int api_replication(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        json_t *recv = json_array(), *senders = NULL;
        uint64_t plsn = 0;
        int ai;

        pthread_mutex_lock(&f->lock);
        ai = fo_site_index(f, f->active);
        if (ai >= 0 && f->sites[ai].h.reachable) {
                plsn = f->sites[ai].h.lsn;
                senders = f->sites[ai].h.senders ? json_deep_copy(f->sites[ai].h.senders) : NULL;
        }
        for (size_t i = 0; recv && i < f->dr->n_sites; i++) {
                const struct tm_dr_health *h = &f->sites[i].h;
                char lsn[24], rl[24];

                if ((int)i == ai)
                        continue;
                tm_dr_lsn_format(h->lsn, lsn, sizeof(lsn));
                tm_dr_lsn_format(h->receive_lsn, rl, sizeof(rl));
                json_array_append_new(
                        recv,
                        json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:I, s:f}", "site",
                                  f->dr->sites[i].name, "reachable", h->reachable, "state",
                                  !h->reachable ? "down"
                                  : !h->in_recovery ? "primary"
                                  : h->receiver_streaming ? "streaming"
                                                          : "disconnected",
                                  "upstream", h->upstream, "receive_lsn", rl, "replay_lsn", lsn,
                                  "lag_bytes",
                                  (json_int_t)(h->reachable && h->in_recovery && plsn > h->lsn
                                                       ? plsn - h->lsn
                                                       : 0),
                                  "lag_seconds", h->reachable ? h->lag_seconds : 0.0));
        }
        *ret = json_pack("{s:s, s:o, s:o}", "primary", f->active, "senders",
                         senders ? senders : json_array(), "receivers", recv);
        pthread_mutex_unlock(&f->lock);
        return *ret ? 200 : -ENOMEM;
}

static int api_failover(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        const char *target = NULL, *reason = NULL;
        char err[512];
        uint64_t job;
        int force = 0, r;

        if (!body)
                return tm_http_fail(rq, -EINVAL, "a JSON body with target_site is required");
        r = tm_http_unpack(rq, body, "{s:s, s?s, s?b}", "target_site", &target, "reason", &reason,
                           "force", &force);
        if (r < 0)
                return r;
        r = fo_flow_start(f, FO_FLOW_FAILOVER, target, reason, "api", force, 0, &job, err,
                          sizeof(err));
        if (r < 0)
                return tm_http_fail(rq, r, "%s", err);
        *ret = json_pack("{s:I, s:s, s:s, s:s}", "job_id", (json_int_t)job, "status", "running",
                         "target_site", target, "status_url", "/api/v1/jobs/");
        if (*ret) {
                char u[64];

                snprintf(u, sizeof(u), "/api/v1/jobs/%llu", (unsigned long long)job);
                json_object_set_new(*ret, "status_url", json_string(u));
        }
        return *ret ? 202 : -ENOMEM;
}

static int api_failback(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        const char *reason = NULL;
        char err[512], u[64];
        uint64_t job;
        int r;

        if (body) {
                r = tm_http_unpack(rq, body, "{s?s}", "reason", &reason);
                if (r < 0)
                        return r;
        }
        r = fo_flow_start(f, FO_FLOW_FAILBACK, NULL, reason, "api", 0, 0, &job, err, sizeof(err));
        if (r < 0)
                return tm_http_fail(rq, r, "%s", err);
        snprintf(u, sizeof(u), "/api/v1/jobs/%llu", (unsigned long long)job);
        *ret = json_pack("{s:I, s:s, s:s, s:s}", "job_id", (json_int_t)job, "status", "running",
                         "target_site", f->dr->primary, "status_url", u);
        return *ret ? 202 : -ENOMEM;
}

static int api_job(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        const char *id = tm_http_param(rq, "id");
        struct tm_job job;
        char *end = NULL;
        unsigned long long v;

        errno = 0;
        v = strtoull(id, &end, 10);
        if (errno || !end || *end || id[0] < '1' || id[0] > '9')
                return tm_http_fail(rq, -EINVAL, "invalid job id '%s' (a positive number)", id);
        if (tm_jobs_get(f->jobs, v, &job) < 0)
                return tm_http_fail(rq, -ENOENT, "no job %llu", v);
        *ret = job_json(f, &job);
        tm_job_dispose(&job);
        return *ret ? 200 : -ENOMEM;
}

static int api_test_failover(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        const char *scope = "database_failover", *standby = NULL;
        char active[TM_DR_NAME_MAX], ts[40];
        int dry_run = 1, r;
        int64_t last_rto;

        if (body) {
                r = tm_http_unpack(rq, body, "{s?s, s?b}", "scope", &scope, "dry_run", &dry_run);
                if (r < 0)
                        return r;
        }
        if (strcmp(scope, "database_failover"))
                return tm_http_fail(rq, -EINVAL, "unknown scope '%s': expected database_failover",
                                    scope);
        if (!dry_run) {
                char err[512], u[64];
                uint64_t job;

                r = drill_start(f, &job, err, sizeof(err));
                if (r < 0)
                        return tm_http_fail(rq, r, "%s", err);
                snprintf(u, sizeof(u), "/api/v1/jobs/%llu", (unsigned long long)job);
                *ret = json_pack("{s:I, s:s, s:s, s:b, s:s, s:s}", "job_id", (json_int_t)job,
                                 "status", "running", "scope", scope, "dry_run", 0, "status_url", u,
                                 "reports_url", "/api/v1/test/failover/reports");
                return *ret ? 202 : -ENOMEM;
        }
        pthread_mutex_lock(&f->lock);
        snprintf(active, sizeof(active), "%s", f->active);
        for (size_t i = 0; i < f->dr->n_sites; i++)
                if (strcmp(f->dr->sites[i].name, active)) {
                        standby = f->dr->sites[i].name;
                        break;
                }
        last_rto = f->last_failover ? (int64_t)(f->last_rto_s * 1e9) : 0;
        pthread_mutex_unlock(&f->lock);
        r = tm_dr_preflight(f->dr, active, standby, last_rto, ret);
        if (r < 0)
                return r;
        tm_time_format(tm_time_now(), ts, sizeof(ts));
        json_object_set_new(*ret, "scope", json_string(scope));
        json_object_set_new(*ret, "dry_run", json_true());
        json_object_set_new(*ret, "primary_site",
                            active[0] ? json_string(active) : json_null());
        json_object_set_new(*ret, "standby_site", standby ? json_string(standby) : json_null());
        json_object_set_new(*ret, "tested_at", json_string(ts));
        {
                char path[4300], *s = json_dumps(*ret, JSON_INDENT(2));
                FILE *fp;

                /* the drill report stays with the daemon's state */
                snprintf(path, sizeof(path), "%s/drill-latest.json", f->dr->state_dir);
                fp = s ? fopen(path, "we") : NULL;
                if (fp) {
                        fputs(s, fp);
                        fclose(fp);
                }
                free(s);
        }
        return 200;
}

static int api_drill_reports(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        char dir[4300];
        json_t *a = NULL;
        int r;

        drill_paths(f, dir, sizeof(dir), NULL, 0);
        r = tm_dr_reports_list(dir, &a);
        if (r < 0)
                return tm_http_fail(rq, r, "cannot read the drill reports in '%s'", dir);
        *ret = json_pack("{s:o}", "reports", a);
        return *ret ? 200 : -ENOMEM;
}

static int api_drill_report(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        const char *id = tm_http_param(rq, "id");
        char dir[4300], *end = NULL;
        unsigned long long v;
        int r;

        errno = 0;
        v = strtoull(id, &end, 10);
        if (errno || !end || *end || id[0] < '1' || id[0] > '9')
                return tm_http_fail(rq, -EINVAL, "invalid report id '%s' (a positive number)", id);
        drill_paths(f, dir, sizeof(dir), NULL, 0);
        r = tm_dr_report_load(dir, v, ret);
        if (r == -ENOENT)
                return tm_http_fail(rq, r, "no drill report %llu", v);
        if (r < 0)
                return tm_http_fail(rq, r, "drill report %llu cannot be read", v);
        return 200;
}

static int valid_component(const char *s)
{
        size_t n = strlen(s);

        return n > 0 && n < 64 &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") == n &&
               s[0] != '.';
}

static int api_pitr(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        struct tm_dr_pitr_opts o = { 0 };
        const char *ts = NULL, *dest = NULL, *comps[16];
        const struct tm_dr_target *t;
        json_t *jc = NULL, *v;
        struct tm_dr_log log;
        tm_buf cmd = TM_BUF_INIT(64 * 1024);
        char err[1024] = "";
        size_t i;
        int r;

        if (!body)
                return tm_http_fail(rq, -EINVAL, "a JSON body with target_timestamp is required");
        r = tm_http_unpack(rq, body, "{s:s, s?o, s:s}", "target_timestamp", &ts, "components", &jc,
                           "destination", &dest);
        if (r < 0)
                return r;
        if (tm_time_parse(ts, &o.target_ns, NULL) < 0)
                return tm_http_fail(rq, -EINVAL,
                                    "malformed target_timestamp '%s': expected an instant like "
                                    "2025-01-07T10:00:00Z",
                                    ts);
        if (o.target_ns > tm_time_now())
                return tm_http_fail(rq, -EINVAL, "target_timestamp %s is in the future", ts);
        if (jc && (!json_is_array(jc) || !json_array_size(jc) || json_array_size(jc) > 16))
                return tm_http_fail(rq, -EINVAL, "components: a list of 1 to 16 names");
        json_array_foreach(jc, i, v) {
                if (!json_is_string(v) || !valid_component(json_string_value(v)))
                        return tm_http_fail(rq, -EINVAL, "components[%zu]: not a component name",
                                            i);
                comps[i] = json_string_value(v);
        }
        if (!jc)
                comps[0] = f->dr->component;
        o.components = comps;
        o.n_components = jc ? json_array_size(jc) : 1;
        t = tm_dr_target_find(f->dr, dest);
        if (t) {
                o.dest = t->path;
                o.start_port = t->port ? t->port : -1;
        } else if (dest[0] == '/' && !strstr(dest, "/../") && !strstr(dest, "/./")) {
                o.dest = dest;
        } else {
                return tm_http_fail(rq, -EINVAL,
                                    "unknown destination '%s': a [target.NAME] or an absolute "
                                    "directory",
                                    dest);
        }
        if (!f->repo)
                return tm_http_fail(rq, -EINVAL,
                                    "no repository is configured ([repository] location)");
        o.repo = f->repo;
        o.database_component = f->dr->component;
        r = restore_command(f, &cmd);
        if (r < 0) {
                tm_buf_dispose(&cmd);
                return tm_http_fail(rq, r, "cannot build the restore_command");
        }
        o.restore_command = (const char *)cmd.data;
        if (pthread_mutex_trylock(&f->repo_lock) != 0) {
                tm_buf_dispose(&cmd);
                return tm_http_fail(rq, -EBUSY,
                                    "a point-in-time recovery or a drill's restore is running");
        }
        r = tm_dr_log_init(&log);
        if (r >= 0)
                r = tm_repo_refresh(f->repo);
        if (r >= 0)
                r = tm_dr_pitr(f->dr, &o, &log, ret, err, sizeof(err));
        pthread_mutex_unlock(&f->repo_lock);
        tm_buf_dispose(&cmd);
        if (r >= 0)
                json_object_set_new(*ret, "steps", tm_dr_log_copy(&log));
        tm_dr_log_dispose(&log);
        if (r == -EPROTO)
                return tm_http_fail(rq, -EINVAL, "%s", err);
        if (r < 0) {
                tm_log(TM_LOG_ERR, "point-in-time recovery to %s failed: %s", ts, err);
                return tm_http_fail(rq, r, "%s", err);
        }
        json_object_set_new(*ret, "destination_name", json_string(dest));
        return 200;
}

/* What a timeline depends on that a stat can see: the snapshots (a local
 * repository's snapshots/ directory) and the drill reports. The cache's
 * few seconds of life cover the rest (tier moves, S3). */
static void timeline_tag(const struct fo *f, const char *reports, char *tag, size_t n)
{
        char path[4200];
        struct stat a = { 0 }, b = { 0 };

        snprintf(path, sizeof(path), "%s/snapshots", f->repo_location);
        if (stat(path, &a) < 0)
                a = (struct stat){ 0 };
        if (stat(reports, &b) < 0)
                b = (struct stat){ 0 };
        snprintf(tag, n, "%lld.%09ld/%lld.%09ld", (long long)a.st_mtim.tv_sec,
                 a.st_mtim.tv_nsec, (long long)b.st_mtim.tv_sec, b.st_mtim.tv_nsec);
}

static int api_timeline(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct fo *f = tm_http_app(rq);
        const char *s = tm_http_query(rq, "start"), *e = tm_http_query(rq, "end");
        const struct tm_dr_tier *t = tm_dr_tier_find(f->dr, f->dr->service_tier);
        struct tm_dr_timeline_opts o = { 0 };
        int64_t start = 0, end = tm_time_now(), prec = 0;
        char reports[4300], key[512], tag[96];
        int r;

        if (s && tm_time_parse(s, &start, NULL) < 0)
                return tm_http_fail(rq, -EINVAL, "malformed start '%s'", s);
        /* an end given as a date or a minute covers all of it */
        if (e && tm_time_parse(e, &end, &prec) < 0)
                return tm_http_fail(rq, -EINVAL, "malformed end '%s'", e);
        if (e && prec > 1)
                end += prec - 1;
        if (end < start)
                return tm_http_fail(rq, -EINVAL, "end is before start");
        if (!f->repo)
                return tm_http_fail(rq, -EINVAL,
                                    "no repository is configured ([repository] location)");
        o.database_component = f->dr->component;
        o.start = start;
        o.end = end;
        o.rto_ns = t ? t->rto_ns : 0;
        drill_paths(f, reports, sizeof(reports), NULL, 0);
        o.reports_dir = reports;
        snprintf(key, sizeof(key), "%s|%s", s ? s : "", e ? e : "");
        timeline_tag(f, reports, tag, sizeof(tag));
        if (tm_http_cache_serve(f->timeline_cache, rq, key, tag))
                return 200;
        pthread_mutex_lock(&f->repo_lock);
        r = tm_repo_refresh(f->repo);
        if (r >= 0)
                r = tm_dr_timeline(f->repo, &o, ret);
        pthread_mutex_unlock(&f->repo_lock);
        if (r < 0)
                return r;
        tm_http_cache_store(f->timeline_cache, rq, key, tag, ret);
        return 200;
}

/* ---- documentation ---- */

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

/* clang-format off */
const struct tm_http_route fo_routes[] = {
        { "GET",  "/health",                    api_health,        TM_ROLE_NONE,     0,        0 },
        { "GET",  "/metrics",                   api_metrics,       TM_ROLE_NONE,     0,        0 },
        { "GET",  "/docs",                      api_docs,          TM_ROLE_NONE,     0,        0 },
        { "GET",  "/docs/openapi.json",         api_openapi,       TM_ROLE_NONE,     0,        0 },
        { "GET",  "/api/v1/status",             api_status,        TM_ROLE_VIEWER,   0,        0 },
        { "GET",  "/api/v1/replication/status", api_replication,   TM_ROLE_VIEWER,   0,        0 },
        { "POST", "/api/v1/failover",           api_failover,      TM_ROLE_OPERATOR, 4 * 1024, TM_HTTP_AUDIT },
        { "POST", "/api/v1/failback",           api_failback,      TM_ROLE_OPERATOR, 4 * 1024, TM_HTTP_AUDIT },
        { "GET",  "/api/v1/jobs/{id}",          api_job,           TM_ROLE_VIEWER,   0,        0 },
        { "POST", "/api/v1/recovery/point-in-time", api_pitr,   TM_ROLE_OPERATOR, 4 * 1024, TM_HTTP_AUDIT },
        { "GET",  "/api/v1/recovery/timeline",  api_timeline,      TM_ROLE_VIEWER,   0,        0 },
        { "POST", "/api/v1/test/failover",      api_test_failover, TM_ROLE_OPERATOR, 4 * 1024, TM_HTTP_AUDIT },
        { "GET",  "/api/v1/test/failover/reports", api_drill_reports, TM_ROLE_VIEWER, 0,      0 },
        { "GET",  "/api/v1/test/failover/reports/{id}", api_drill_report, TM_ROLE_VIEWER, 0, 0 },
};
/* clang-format on */
const size_t fo_n_routes = TM_ARRAY_SIZE(fo_routes);
