/*
 * Runbook executions: each one is a job in the daemon's job history (kind
 * "runbook"), run on a thread of its own; every step's log entry is added
 * to the incident named in the context as it completes, and the whole log
 * is the job's result.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tidemark/log.h>
#include <tidemark/time.h>

#include "mon.h"

struct exec {
        struct mon *m;
        const struct tm_runbook *rb;
        json_t *context;
        char incident[64];
        struct tm_job job;
};

static void on_step(void *ud, const json_t *entry)
{
        struct exec *x = ud;
        char msg[800];

        if (!x->incident[0])
                return;
        snprintf(msg, sizeof(msg), "runbook %s (job %llu) step %lld %s: %s", x->rb->name,
                 (unsigned long long)x->job.id,
                 (long long)json_integer_value(json_object_get(entry, "step")),
                 json_string_value(json_object_get(entry, "status")),
                 json_string_value(json_object_get(entry, "message")));
        tm_incidents_note(x->m->incidents, x->incident, "runbook", "monitord", msg, entry,
                          tm_time_now());
}

static void *exec_thread(void *arg)
{
        struct exec *x = arg;
        struct mon *m = x->m;
        json_t *log = NULL, *result;
        int r;
        char *s;

        x->job.started = tm_time_now();
        snprintf(x->job.state, sizeof(x->job.state), "running");
        tm_jobs_update(m->jobs, &x->job);
        r = tm_runbook_run(x->rb, m->cfg, x->context, on_step, x, &m->stopping, &log);
        x->job.finished = tm_time_now();
        snprintf(x->job.state, sizeof(x->job.state), "%s",
                 r >= 0            ? "succeeded"
                 : r == -ECANCELED ? "interrupted"
                                   : "failed");
        if (r < 0)
                snprintf(x->job.error, sizeof(x->job.error), "%s",
                         r == -EIO ? "a step failed" : strerror(-r));
        result = json_pack("{s:s, s:o, s:o}", "runbook", x->rb->name, "context",
                           x->context ? json_incref(x->context) : json_object(), "steps",
                           log ? log : json_array());
        s = result ? json_dumps(result, JSON_COMPACT) : NULL;
        free(x->job.result_json);
        x->job.result_json = s;
        tm_jobs_update(m->jobs, &x->job);
        {
                const char *lab[] = { "runbook", x->rb->name, "result", x->job.state, NULL };

                tm_metrics_add(m->metrics, "runbook_executions_total", lab, 1);
        }
        tm_log(r >= 0 ? TM_LOG_INFO : TM_LOG_WARN, "runbook '%s' (job %llu) %s", x->rb->name,
               (unsigned long long)x->job.id, x->job.state);
        if (x->incident[0]) {
                char msg[300];

                snprintf(msg, sizeof(msg), "runbook %s (job %llu) %s", x->rb->name,
                         (unsigned long long)x->job.id, x->job.state);
                tm_incidents_note(m->incidents, x->incident, "runbook", "monitord", msg, result,
                                  tm_time_now());
                mon_incident_notify(m, x->incident, "updated", msg);
        }
        json_decref(result);
        json_decref(x->context);
        tm_job_dispose(&x->job);
        free(x);
        pthread_mutex_lock(&m->rb_lock);
        m->rb_running--;
        pthread_cond_broadcast(&m->rb_cond);
        pthread_mutex_unlock(&m->rb_lock);
        return NULL;
}

int mon_runbook_start(struct mon *m, const char *name, json_t *context, uint64_t *ret_job,
                      char *msg, size_t msglen)
{
        const struct tm_runbook *rb = tm_runbooks_find(m->runbooks, name);
        const char *inc =
                context ? json_string_value(json_object_get(context, "incident_id")) : NULL;
        struct exec *x;
        pthread_t t;
        pthread_attr_t attr;
        int r;

        if (!rb) {
                snprintf(msg, msglen, "no runbook '%s'", name);
                return -ENOENT;
        }
        if (tm_runbook_validate_context(context, msg, msglen) < 0)
                return -EINVAL;
        if (inc) {
                json_t *i = tm_incidents_get(m->incidents, inc);

                if (!i) {
                        snprintf(msg, msglen, "no incident '%s'", inc);
                        return -ENOENT;
                }
                json_decref(i);
        }
        pthread_mutex_lock(&m->rb_lock);
        if (m->rb_running >= 16 || m->stopping) {
                pthread_mutex_unlock(&m->rb_lock);
                snprintf(msg, msglen, "too many runbooks running");
                return -EBUSY;
        }
        m->rb_running++;
        pthread_mutex_unlock(&m->rb_lock);
        x = calloc(1, sizeof(*x));
        if (!x) {
                r = -ENOMEM;
                goto fail;
        }
        x->m = m;
        x->rb = rb;
        x->context = context ? json_incref(context) : NULL;
        snprintf(x->incident, sizeof(x->incident), "%s", inc ? inc : "");
        snprintf(x->job.kind, sizeof(x->job.kind), "runbook");
        snprintf(x->job.component, sizeof(x->job.component), "%s", name);
        snprintf(x->job.trigger, sizeof(x->job.trigger), "api");
        snprintf(x->job.target, sizeof(x->job.target), "%s", x->incident);
        x->job.attempt = 1;
        r = tm_jobs_add(m->jobs, &x->job);
        if (r < 0) {
                json_decref(x->context);
                free(x);
                goto fail;
        }
        *ret_job = x->job.id;
        if (x->incident[0]) {
                char note[200];

                snprintf(note, sizeof(note), "runbook %s started (job %llu)", name,
                         (unsigned long long)x->job.id);
                tm_incidents_note(m->incidents, x->incident, "runbook", "monitord", note, NULL,
                                  tm_time_now());
        }
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&t, &attr, exec_thread, x);
        pthread_attr_destroy(&attr);
        if (r) {
                r = -r;
                snprintf(x->job.state, sizeof(x->job.state), "failed");
                tm_jobs_update(m->jobs, &x->job);
                json_decref(x->context);
                free(x);
                goto fail;
        }
        return 0;
fail:
        pthread_mutex_lock(&m->rb_lock);
        m->rb_running--;
        pthread_mutex_unlock(&m->rb_lock);
        return r;
}

void mon_runbooks_wait(struct mon *m, int timeout_s)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_s;
        pthread_mutex_lock(&m->rb_lock);
        while (m->rb_running > 0)
                if (pthread_cond_timedwait(&m->rb_cond, &m->rb_lock, &ts) == ETIMEDOUT)
                        break;
        pthread_mutex_unlock(&m->rb_lock);
}

void mon_runbook_metrics(struct mon *m)
{
        struct tm_job *a = NULL;
        size_t n = 0;

        if (tm_jobs_list(m->jobs, &a, &n) < 0)
                return;
        tm_metrics_reset(m->metrics, "runbook_execution_success_rate");
        for (size_t r = 0; r < m->runbooks->n; r++) {
                const char *name = m->runbooks->rb[r].name;
                unsigned ok = 0, all = 0;

                for (size_t i = 0; i < n; i++) {
                        if (strcmp(a[i].kind, "runbook") || strcmp(a[i].component, name) ||
                            !tm_job_state_final(a[i].state))
                                continue;
                        all++;
                        ok += !strcmp(a[i].state, "succeeded");
                }
                if (all) {
                        const char *lab[] = { "runbook", name, NULL };

                        tm_metrics_set(m->metrics, "runbook_execution_success_rate", lab,
                                       100.0 * ok / all);
                }
        }
        tm_job_array_free(a, n);
}
