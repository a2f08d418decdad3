/*
 * The compliance report's inputs: backup and validation jobs from every
 * service that answers GET /api/v1/backups/status, drills' measured RTO
 * and RPO from the scraped dr_* metrics, SLA over the period from the
 * probe history, incidents and runbook executions from our own state, and
 * the verification of our audit log and those listed in [monitor]
 * audit_logs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/compliance.h>
#include <tidemark/httpc.h>
#include <tidemark/time.h>

#include "mon.h"

static void add_error(json_t *errors, const char *source, const char *err)
{
        json_array_append_new(errors, json_pack("{s:s, s:s}", "source", source, "error", err));
}

static json_t *gather_jobs(struct mon *m, json_t *errors)
{
        json_t *all = json_array();

        for (size_t i = 0; i < m->pc->n_services; i++) {
                const struct tm_probe_service *s = &m->pc->services[i];
                char url[2048];
                struct tm_httpc_req rq = { .url = url,
                                           .bearer = s->token,
                                           .timeout_ms = 10000,
                                           .max_response = 16u << 20 };
                struct tm_httpc_resp resp;
                json_t *j;

                snprintf(url, sizeof(url), "%s/api/v1/backups/status", s->url);
                if (tm_httpc_request(&rq, &resp) < 0) {
                        add_error(errors, url, resp.error);
                } else if (resp.status == 200) {
                        j = json_loads((const char *)resp.body.data, 0, NULL);
                        json_array_extend(all, json_object_get(j, "recent"));
                        json_decref(j);
                }
                /* 404: not a backup service */
                tm_buf_dispose(&resp.body);
        }
        return all;
}

static json_t *gather_drills(struct mon *m)
{
        static const char *names[] = { "dr_rto_seconds", "dr_rpo_seconds",
                                       "dr_failover_duration_seconds" };
        json_t *a = json_array();

        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; i < m->n_scrapes; i++) {
                size_t n;
                const struct tm_promtext_sample *s;

                if (!m->scrapes[i].last)
                        continue;
                s = tm_promtext_samples(m->scrapes[i].last, &n);
                for (size_t k = 0; k < n; k++) {
                        json_t *labels = json_object();
                        int want = 0;

                        for (size_t x = 0; x < TM_ARRAY_SIZE(names); x++)
                                want |= !strcmp(s[k].name, names[x]) ||
                                        (!strncmp(s[k].name, names[x], strlen(names[x])) &&
                                         (!strcmp(s[k].name + strlen(names[x]), "_sum") ||
                                          !strcmp(s[k].name + strlen(names[x]), "_count")));
                        if (!want) {
                                json_decref(labels);
                                continue;
                        }
                        json_object_set_new(labels, "service", json_string(m->scrapes[i].s->name));
                        for (size_t l = 0; l < s[k].n_labels; l++)
                                json_object_set_new(labels, s[k].labels[l].name,
                                                    json_string(s[k].labels[l].value));
                        json_array_append_new(a, json_pack("{s:s, s:o, s:f}", "metric", s[k].name,
                                                           "labels", labels, "value", s[k].value));
                }
        }
        pthread_mutex_unlock(&m->lock);
        return a;
}

static json_t *audit_entry(const char *path)
{
        char why[512] = "";
        uint64_t lines = 0;
        int r = tm_audit_verify(path, &lines, why, sizeof(why));
        json_t *o = json_pack("{s:s, s:b, s:I}", "path", path, "verified", r >= 0, "entries",
                              (json_int_t)lines);

        if (o && r < 0)
                json_object_set_new(o, "error", json_string(why[0] ? why : strerror(-r)));
        return o;
}

int mon_compliance(struct mon *m, int64_t from, int64_t to, json_t **ret, char *msg, size_t msglen)
{
        json_t *errors = json_array(), *jobs, *summary, *sla = json_object(), *incs, *audits;
        json_t *rbs = json_array(), *rep;
        char f[40], t[40], g[40];
        struct tm_job *a = NULL;
        size_t n = 0;
        double resp_sum = 0;
        unsigned resp_n = 0, open = 0;
        size_t i;
        json_t *v;

        jobs = gather_jobs(m, errors);
        summary = tm_compliance_jobs(jobs, from, to);
        json_decref(jobs);
        if (!summary)
                return -ENOMEM;
        for (size_t k = 0; k < m->pc->n_services; k++) {
                const struct tm_probe_service *s = &m->pc->services[k];
                struct tm_sla_report r;

                if (tm_sla_report(m->sla, s->name, s->tier, to - from, to, &r) < 0)
                        continue;
                json_object_set_new(sla, s->name, tm_sla_report_json(&r));
                json_object_set_new(json_object_get(sla, s->name), "tier",
                                    json_string(tm_tier_name(s->tier)));
        }
        incs = tm_incidents_list(m->incidents, NULL, from, to);
        json_array_foreach(incs, i, v)
        {
                json_t *rt = json_object_get(v, "response_time_seconds");

                json_object_del(v, "timeline");
                if (rt) {
                        resp_sum += json_real_value(rt);
                        resp_n++;
                }
                open += strcmp(json_string_value(json_object_get(v, "status")), "resolved") != 0;
        }
        if (tm_jobs_list(m->jobs, &a, &n) >= 0) {
                for (size_t k = 0; k < n; k++) {
                        char c[40];

                        if (strcmp(a[k].kind, "runbook") || a[k].created < from ||
                            a[k].created >= to)
                                continue;
                        tm_time_format(a[k].created, c, sizeof(c));
                        json_array_append_new(rbs,
                                              json_pack("{s:I, s:s, s:s, s:s, s:s}", "execution_id",
                                                        (json_int_t)a[k].id, "runbook",
                                                        a[k].component, "state", a[k].state,
                                                        "created", c, "incident_id", a[k].target));
                }
                tm_job_array_free(a, n);
        }
        audits = json_array();
        json_array_append_new(audits, audit_entry(m->audit_path));
        for (char **p = m->audit_logs; p && *p; p++)
                json_array_append_new(audits, audit_entry(*p));
        tm_time_format(from, f, sizeof(f));
        tm_time_format(to, t, sizeof(t));
        tm_time_format(tm_time_now(), g, sizeof(g));
        rep = json_pack("{s:s, s:s, s:s, s:O, s:O, s:o, s:o, s:{s:I, s:I, s:o, s:o}, s:o, s:o, "
                        "s:o}",
                        "from", f, "to", t, "generated", g, "backups",
                        json_object_get(summary, "backups"), "validations",
                        json_object_get(summary, "validations"), "drills", gather_drills(m), "sla",
                        sla, "incidents", "total", (json_int_t)json_array_size(incs), "unresolved",
                        (json_int_t)open, "mean_response_time_seconds",
                        resp_n ? json_real(resp_sum / resp_n) : json_null(), "items", incs,
                        "runbooks", rbs, "audit_logs", audits, "errors", errors);
        json_decref(summary);
        (void)msg;
        (void)msglen;
        if (!rep)
                return -ENOMEM;
        *ret = rep;
        return 0;
}
