/*
 * The REST API of tidemark-backupd: the route table and its handlers. The
 * paths and bodies are the spec's (docs/backupd.md); long work (backups,
 * validation) goes to the job queue and answers 202 with the job ids.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tidemark/log.h>
#include <tidemark/ops.h>
#include <tidemark/time.h>

#include "bkd.h"

#define RECENT_JOBS 50

json_t *bkd_job_json(const struct tm_job *j)
{
        char created[40] = "", started[40] = "", finished[40] = "";
        json_t *o;

        if (j->created)
                tm_time_format(j->created, created, sizeof(created));
        if (j->started)
                tm_time_format(j->started, started, sizeof(started));
        if (j->finished)
                tm_time_format(j->finished, finished, sizeof(finished));
        o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:{s:I, s:I}}", "job_id",
                      (json_int_t)j->id, "kind", j->kind, "component", j->component, "strategy",
                      j->strategy, "state", j->state, "trigger", j->trigger, "attempt", j->attempt,
                      "progress", "files_done", (json_int_t)j->files_done, "bytes_done",
                      (json_int_t)j->bytes_done);
        if (!o)
                return NULL;
        if (created[0])
                json_object_set_new(o, "created", json_string(created));
        if (started[0])
                json_object_set_new(o, "started", json_string(started));
        if (finished[0])
                json_object_set_new(o, "finished", json_string(finished));
        if (j->started)
                json_object_set_new(o, "duration_seconds",
                                    json_real((double)((j->finished ? j->finished : tm_time_now()) -
                                                       j->started) /
                                              1e9));
        if (j->target[0])
                json_object_set_new(o, "backup_id", json_string(j->target));
        if (j->snapshot[0])
                json_object_set_new(o, "snapshot", json_string(j->snapshot));
        if (j->error[0])
                json_object_set_new(o, "error", json_string(j->error));
        if (j->retry_of)
                json_object_set_new(o, "retry_of", json_integer((json_int_t)j->retry_of));
        if (j->retried_by)
                json_object_set_new(o, "retried_by", json_integer((json_int_t)j->retried_by));
        if (j->result_json) {
                json_t *r = json_loads(j->result_json, 0, NULL);

                if (r)
                        json_object_set_new(o, "result", r);
        }
        return o;
}

static json_t *snapshot_json(struct bkd *b, const struct tm_snapshot *s)
{
        const struct tm_component_conf *cc = tm_config_component(b->cfg, s->component);
        char hex[TM_ID_HEX_LEN + 1], name[128], t[40];
        const struct tm_snapshot_summary *m = &s->summary;
        json_t *o, *tags = json_array(), *paths = json_array();

        tm_id_hex(&s->id, hex);
        bkd_backup_name(s, name, sizeof(name));
        tm_time_format(s->time, t, sizeof(t));
        for (size_t i = 0; i < s->n_tags; i++)
                json_array_append_new(tags, json_string(s->tags[i]));
        for (size_t i = 0; i < s->n_paths; i++)
                json_array_append_new(paths, json_string(s->paths[i]));
        o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:{s:I, s:I, s:I, s:I, "
                      "s:I, s:I, s:I, s:I, s:I, s:I, s:f}}",
                      "id", hex, "name", name, "component", s->component, "strategy", s->strategy,
                      "time", t, "host", s->host, "tier", cc ? tm_tier_name(cc->tier) : "standard",
                      "size", (json_int_t)m->bytes, "paths", paths, "tags", tags, "stats", "files",
                      (json_int_t)m->files, "dirs", (json_int_t)m->dirs, "files_new",
                      (json_int_t)m->files_new, "files_changed", (json_int_t)m->files_changed,
                      "files_unmodified", (json_int_t)m->files_unmodified, "files_failed",
                      (json_int_t)m->files_failed, "bytes_read", (json_int_t)m->bytes_read,
                      "blobs_added", (json_int_t)m->blobs_added, "bytes_added",
                      (json_int_t)m->bytes_added, "bytes_stored", (json_int_t)m->bytes_stored,
                      "duration_seconds", (double)m->duration_ns / 1e9);
        if (o)
                json_object_set_new(o, "storage_tier", json_string("hot"));
        return o;
}

/* Resolve a backup by its name (backup-20250107-full-123), a hex id or a
 * hex id prefix. Returns 0, -ENOENT, -EEXIST (ambiguous), -EINVAL. */
static int find_backup(struct bkd *b, struct tm_http_req *rq, const char *spec,
                       struct tm_snapshot *ret)
{
        struct tm_snapshot *s = NULL;
        size_t n = 0, len = strlen(spec);
        int r;

        if (!strncmp(spec, "backup-", 7)) {
                char name[128];

                pthread_mutex_lock(&b->repo_lock);
                r = bkd_repo_sync(b, 0);
                if (r >= 0)
                        r = tm_repo_snapshot_list(b->repo, NULL, &s, &n);
                pthread_mutex_unlock(&b->repo_lock);
                if (r < 0)
                        return r;
                r = -ENOENT;
                for (size_t i = n; i-- > 0;) {
                        bkd_backup_name(&s[i], name, sizeof(name));
                        if (!strcmp(name, spec)) {
                                r = tm_snapshot_copy(&s[i], ret);
                                if (r >= 0)
                                        ret->id = s[i].id;
                                break;
                        }
                }
                tm_snapshot_array_free(s, n);
                if (r == -ENOENT)
                        return tm_http_fail(rq, r, "no backup named '%s'", spec);
                return r;
        }
        if (len < 4 || len > TM_ID_HEX_LEN || strspn(spec, "0123456789abcdef") != len)
                return tm_http_fail(rq, -EINVAL,
                                    "invalid backup id '%s': expected a name like "
                                    "backup-20250107-full-123 or a hex id (4 to 64 digits)",
                                    spec);
        pthread_mutex_lock(&b->repo_lock);
        r = bkd_repo_sync(b, 0);
        if (r >= 0)
                r = tm_repo_snapshot_find(b->repo, spec, NULL, ret);
        pthread_mutex_unlock(&b->repo_lock);
        if (r == -ENOENT)
                return tm_http_fail(rq, r, "no backup with id '%s'", spec);
        if (r == -EEXIST)
                return tm_http_fail(rq, r, "backup id '%s' is ambiguous", spec);
        return r;
}

/* ---- handlers ---- */

static int api_health(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct bkd *b = tm_http_app(rq);
        char path[4096];
        struct stat st;
        int repo_ok, sched_ok, healthy, stopping;
        int64_t age;

        snprintf(path, sizeof(path), "%s/config", b->repo_location);
        repo_ok = stat(path, &st) == 0;
        pthread_mutex_lock(&b->qlock);
        age = tm_time_mono() - b->sched_tick;
        stopping = b->stopping;
        sched_ok = stopping || age < 30 * TM_NSEC_PER_SEC;
        pthread_mutex_unlock(&b->qlock);
        healthy = repo_ok && sched_ok && !stopping;
        *ret = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "status",
                         healthy ? "healthy" : "unhealthy", "version", TM_VERSION, "checks",
                         "repository", repo_ok ? "ok" : "unreachable", "scheduler",
                         sched_ok ? "ok" : "stalled", "api", stopping ? "shutting down" : "ok");
        if (!*ret)
                return -ENOMEM;
        return healthy ? 200 : 503;
}

static int api_metrics(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct bkd *b = tm_http_app(rq);
        tm_buf out = TM_BUF_INIT(16u << 20);
        int r;

        bkd_metrics_refresh(b);
        r = tm_metrics_render(b->metrics, &out);
        if (r >= 0)
                r = tm_buf_append(&out, "", 1);
        if (r < 0) {
                tm_buf_dispose(&out);
                return r;
        }
        r = tm_http_set_text_take(rq, "text/plain; version=0.0.4; charset=utf-8", (char *)out.data);
        return r < 0 ? r : 200;
}

static int api_backup_start(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct bkd *b = tm_http_app(rq);
        const char *strategy = "incremental";
        enum tm_strategy st;
        json_t *components = NULL, *jobs = NULL, *v;
        size_t i;
        int r;

        r = tm_http_unpack(rq, body, "{s?:s, s?:o}", "strategy", &strategy, "components",
                           &components);
        if (r < 0)
                return r;
        if (tm_strategy_parse(strategy, &st) < 0)
                return tm_http_fail(rq, -EINVAL,
                                    "invalid strategy '%s' (full, differential, incremental)",
                                    strategy);
        if (components && !json_is_array(components))
                return tm_http_fail(rq, -EINVAL,
                                    "invalid request: field 'components' must be an array of "
                                    "component names");
        if (components && json_array_size(components) == 0)
                return tm_http_fail(rq, -EINVAL, "'components' is empty");
        if (!components && b->cfg->n_components == 0)
                return tm_http_fail(rq, -EINVAL, "no components are configured");
        /* check every name before queueing anything: all or nothing */
        json_array_foreach(components, i, v)
        {
                if (!json_is_string(v))
                        return tm_http_fail(rq, -EINVAL,
                                            "invalid request: components[%zu] must be a string", i);
                if (!tm_config_component(b->cfg, json_string_value(v)))
                        return tm_http_fail(rq, -EINVAL, "unknown component '%s'",
                                            json_string_value(v));
                for (size_t k = 0; k < i; k++)
                        if (json_equal(v, json_array_get(components, k)))
                                return tm_http_fail(rq, -EINVAL, "component '%s' is listed twice",
                                                    json_string_value(v));
        }
        jobs = json_array();
        if (!jobs)
                return -ENOMEM;
        for (size_t k = 0; k < (components ? json_array_size(components) : b->cfg->n_components);
             k++) {
                const char *name = components ? json_string_value(json_array_get(components, k))
                                              : b->cfg->components[k].name;
                struct tm_job job = { 0 };

                snprintf(job.kind, sizeof(job.kind), "backup");
                snprintf(job.component, sizeof(job.component), "%s", name);
                snprintf(job.strategy, sizeof(job.strategy), "%s", strategy);
                snprintf(job.trigger, sizeof(job.trigger), "api");
                r = bkd_jobs_enqueue(b, &job);
                if (r < 0) {
                        json_decref(jobs);
                        if (r == -ECANCELED)
                                return tm_http_fail(rq, -EAGAIN, "the daemon is shutting down");
                        if (r == -EBUSY)
                                return tm_http_fail(rq, r, "the job queue is full");
                        return r;
                }
                json_array_append_new(jobs, json_pack("{s:I, s:s, s:s, s:s}", "job_id",
                                                      (json_int_t)job.id, "component", name,
                                                      "strategy", strategy, "state", "queued"));
        }
        *ret = json_pack("{s:s, s:o, s:s}", "status", "accepted", "jobs", jobs, "status_url",
                         "/api/v1/backups/status");
        return *ret ? 202 : -ENOMEM;
}

static int api_backups_status(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct bkd *b = tm_http_app(rq);
        struct tm_job *a = NULL;
        size_t n = 0, shown = 0;
        json_t *running = json_array(), *queued = json_array(), *recent = json_array();
        unsigned ok = 0, failed = 0;
        int r;

        r = tm_jobs_list(b->jobs, &a, &n);
        if (r < 0 || !running || !queued || !recent) {
                json_decref(running);
                json_decref(queued);
                json_decref(recent);
                return r < 0 ? r : -ENOMEM;
        }
        for (size_t i = n; i-- > 0;) {
                if (!strcmp(a[i].state, "running"))
                        json_array_append_new(running, bkd_job_json(&a[i]));
                else if (!strcmp(a[i].state, "queued"))
                        json_array_append_new(queued, bkd_job_json(&a[i]));
                else if (shown++ < RECENT_JOBS)
                        json_array_append_new(recent, bkd_job_json(&a[i]));
                if (!strcmp(a[i].state, "succeeded"))
                        ok++;
                else if (!strcmp(a[i].state, "failed"))
                        failed++;
        }
        tm_job_array_free(a, n);
        *ret = json_pack("{s:o, s:o, s:o, s:{s:I, s:i, s:i}}", "running", running, "queued", queued,
                         "recent", recent, "totals", "jobs", (json_int_t)n, "succeeded", ok,
                         "failed", failed);
        return *ret ? 200 : -ENOMEM;
}

/* The mtime of <repository>/snapshots: every snapshot saved or removed
 * changes it. Returns 0 or -errno. */
static int snapshots_mtime(struct bkd *b, struct timespec *ret)
{
        char path[4096];
        struct stat st;

        snprintf(path, sizeof(path), "%s/snapshots", b->repo_location);
        if (stat(path, &st) < 0)
                return -errno;
        *ret = st.st_mtim;
        return 0;
}

static int api_backups_list(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct bkd *b = tm_http_app(rq);
        const char *component = tm_http_query(rq, "component"), *from = tm_http_query(rq, "from"),
                   *to = tm_http_query(rq, "to"), *strategy = tm_http_query(rq, "strategy");
        int64_t tfrom = INT64_MIN, tto = INT64_MAX, prec = 0;
        struct tm_snapshot *s = NULL;
        size_t n = 0;
        json_t *list;
        struct timespec mtime;
        char tag[48];
        int r, cacheable = 0;

        if (component && !component[0])
                return tm_http_fail(rq, -EINVAL, "empty component");
        /* stat before listing: a snapshot saved in between makes the next
         * request miss the cache rather than serve a stale list forever */
        if (!component && !from && !to && !strategy && snapshots_mtime(b, &mtime) >= 0) {
                int hit;

                snprintf(tag, sizeof(tag), "%lld.%09ld", (long long)mtime.tv_sec, mtime.tv_nsec);
                hit = tm_http_cache_serve(b->list_cache, rq, "backups", tag);
                tm_log(TM_LOG_DEBUG, "list cache %s at mtime %s", hit ? "hit" : "miss", tag);
                if (hit)
                        return 200;
                cacheable = 1;
        }
        if (from && tm_time_parse(from, &tfrom, NULL) < 0)
                return tm_http_fail(rq, -EINVAL,
                                    "invalid 'from' time '%s' (e.g. 2025-01-07 or "
                                    "2025-01-07T10:00:00Z)",
                                    from);
        if (to) {
                if (tm_time_parse(to, &tto, &prec) < 0)
                        return tm_http_fail(rq, -EINVAL, "invalid 'to' time '%s'", to);
                tto += prec; /* to=2025-01-07 includes that whole day */
        }
        pthread_mutex_lock(&b->repo_lock);
        r = bkd_repo_sync(b, 0);
        if (r >= 0)
                r = tm_repo_snapshot_list(b->repo, component, &s, &n);
        pthread_mutex_unlock(&b->repo_lock);
        if (r < 0)
                return r;
        list = json_array();
        for (size_t i = n; list && i-- > 0;) { /* newest first */
                if (s[i].time < tfrom || s[i].time >= tto)
                        continue;
                if (strategy && strcmp(strategy, s[i].strategy))
                        continue;
                json_array_append_new(list, snapshot_json(b, &s[i]));
        }
        tm_snapshot_array_free(s, n);
        if (!list)
                return -ENOMEM;
        *ret = json_pack("{s:o, s:I}", "backups", list, "count", (json_int_t)json_array_size(list));
        if (*ret && cacheable && tm_http_cache_store(b->list_cache, rq, "backups", tag, ret) == 0)
                return 200;
        return *ret ? 200 : -ENOMEM;
}

static int api_backup_get(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct bkd *b = tm_http_app(rq);
        struct tm_snapshot s = { 0 };
        int r;

        r = find_backup(b, rq, tm_http_param(rq, "id"), &s);
        if (r < 0)
                return r;
        *ret = snapshot_json(b, &s);
        tm_snapshot_dispose(&s);
        return *ret ? 200 : -ENOMEM;
}

static int api_backup_validate(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct bkd *b = tm_http_app(rq);
        const char *backup_id;
        struct tm_snapshot s = { 0 };
        struct tm_job job = { 0 };
        char hex[TM_ID_HEX_LEN + 1], name[128];
        int r;

        r = tm_http_unpack(rq, body, "{s:s}", "backup_id", &backup_id);
        if (r < 0)
                return r;
        r = find_backup(b, rq, backup_id, &s);
        if (r < 0)
                return r;
        tm_id_hex(&s.id, hex);
        bkd_backup_name(&s, name, sizeof(name));
        snprintf(job.kind, sizeof(job.kind), "validate");
        snprintf(job.component, sizeof(job.component), "%s", s.component);
        snprintf(job.strategy, sizeof(job.strategy), "%s", s.strategy);
        snprintf(job.trigger, sizeof(job.trigger), "api");
        snprintf(job.target, sizeof(job.target), "%s", hex);
        tm_snapshot_dispose(&s);
        r = bkd_jobs_enqueue(b, &job);
        if (r == -ECANCELED)
                return tm_http_fail(rq, -EAGAIN, "the daemon is shutting down");
        if (r < 0)
                return r;
        *ret = json_pack("{s:I, s:s, s:s, s:s, s:s}", "job_id", (json_int_t)job.id, "backup_id",
                         hex, "name", name, "state", "queued", "status_url", "/api/v1/jobs/");
        if (*ret) {
                char url[64];

                snprintf(url, sizeof(url), "/api/v1/jobs/%llu", (unsigned long long)job.id);
                json_object_set_new(*ret, "status_url", json_string(url));
        }
        return *ret ? 202 : -ENOMEM;
}

static int api_job_get(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct bkd *b = tm_http_app(rq);
        const char *id = tm_http_param(rq, "id");
        struct tm_job job;
        char *end = NULL;
        unsigned long long v;

        errno = 0;
        v = strtoull(id, &end, 10);
        if (errno || !end || *end || id[0] < '1' || id[0] > '9')
                return tm_http_fail(rq, -EINVAL, "invalid job id '%s' (a positive number)", id);
        if (tm_jobs_get(b->jobs, v, &job) < 0)
                return tm_http_fail(rq, -ENOENT, "no job %llu", v);
        *ret = bkd_job_json(&job);
        tm_job_dispose(&job);
        return *ret ? 200 : -ENOMEM;
}

static int api_storage(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct bkd *b = tm_http_app(rq);
        uint64_t bytes, packs, snaps, cap = b->cfg->capacity_bytes;
        const struct tm_tier_set *set = tm_repo_tiers(b->repo);
        struct tm_tier_stats ts;
        json_t *tiers;
        int r;

        (void)body;
        r = bkd_storage(b, &bytes, &packs, &snaps, &ts);
        if (r < 0)
                return r;
        /* every tier is reported (0 when not configured): dashboards key on
         * the four names; the capacity and percent are the hot location's */
        tiers = json_object();
        for (unsigned i = 0; tiers && i < TM_TIER_LEVELS; i++) {
                const struct tm_tier_conf *t = &set->t[i];
                json_t *one = json_pack(
                        "{s:I, s:I, s:b, s:s?, s:s?}", "bytes", (json_int_t)ts.bytes[i], "packs",
                        (json_int_t)ts.packs[i], "configured", t->configured, "storage_class",
                        t->storage_class, "location",
                        i == TM_TIER_HOT ? b->repo_location : t->location);

                if (one && i == TM_TIER_HOT) {
                        json_object_set_new(one, "capacity_bytes",
                                            cap ? json_integer((json_int_t)cap) : json_null());
                        json_object_set_new(one, "percent",
                                            cap ? json_real(100.0 * (double)ts.bytes[i] /
                                                            (double)cap)
                                                : json_null());
                }
                if (!one || json_object_set_new(tiers, tm_tier_level_name(i), one) < 0) {
                        json_decref(tiers);
                        return -ENOMEM;
                }
        }
        if (!tiers)
                return -ENOMEM;
        *ret = json_pack("{s:I, s:I, s:I, s:o, s:o, s:o}", "bytes", (json_int_t)bytes, "packs",
                         (json_int_t)packs, "snapshots", (json_int_t)snaps, "capacity_bytes",
                         cap ? json_integer((json_int_t)cap) : json_null(), "percent",
                         cap ? json_real(100.0 * (double)ts.bytes[TM_TIER_HOT] / (double)cap)
                             : json_null(),
                         "tiers", tiers);
        return *ret ? 200 : -ENOMEM;
}

static int api_components(struct tm_http_req *rq, json_t *body, json_t **ret)
{
        struct bkd *b = tm_http_app(rq);
        json_t *list = json_array();

        for (size_t i = 0; list && i < b->cfg->n_components; i++) {
                const struct tm_component_conf *cc = &b->cfg->components[i];
                json_t *sch = json_object();

                for (int s = 0; s < TM_STRATEGY_COUNT; s++) {
                        char t[40];
                        int64_t next;

                        if (!cc->has_schedule[s])
                                continue;
                        pthread_mutex_lock(&b->qlock);
                        next = b->next_run ? b->next_run[i][s] : -1;
                        pthread_mutex_unlock(&b->qlock);
                        if (next < 0)
                                continue;
                        tm_time_format(next, t, sizeof(t));
                        json_object_set_new(sch, tm_strategy_name((enum tm_strategy)s),
                                            json_pack("{s:s}", "next_run", t));
                }
                if (cc->continuous)
                        json_object_set_new(sch, "continuous",
                                            json_pack("{s:I}", "interval_seconds",
                                                      (json_int_t)(cc->continuous_interval_ns /
                                                                   TM_NSEC_PER_SEC)));
                json_array_append_new(
                        list,
                        json_pack("{s:s, s:s, s:s, s:o, s:{s:i, s:i, s:i, s:i, s:i, s:i}}", "name",
                                  cc->name, "type",
                                  cc->type == TM_COMPONENT_FILES     ? "files"
                                  : cc->type == TM_COMPONENT_POSTGRES ? "postgres"
                                                                      : "command", "tier",
                                  tm_tier_name(cc->tier), "schedule", sch, "retention", "keep_last",
                                  cc->keep.last, "keep_hourly", cc->keep.hourly, "keep_daily",
                                  cc->keep.daily, "keep_weekly", cc->keep.weekly, "keep_monthly",
                                  cc->keep.monthly, "keep_yearly", cc->keep.yearly));
        }
        *ret = json_pack("{s:o}", "components", list);
        return *ret ? 200 : -ENOMEM;
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
const struct tm_http_route bkd_routes[] = {
        { "GET",  "/health",                     api_health,          TM_ROLE_NONE,     0,         0 },
        { "GET",  "/metrics",                    api_metrics,         TM_ROLE_NONE,     0,         0 },
        { "GET",  "/docs",                       api_docs,            TM_ROLE_NONE,     0,         0 },
        { "GET",  "/docs/openapi.json",          api_openapi,         TM_ROLE_NONE,     0,         0 },
        { "POST", "/api/v1/backup",              api_backup_start,    TM_ROLE_OPERATOR, 16 * 1024, TM_HTTP_AUDIT },
        { "GET",  "/api/v1/backups/status",      api_backups_status,  TM_ROLE_VIEWER,   0,         0 },
        { "GET",  "/api/v1/backups",             api_backups_list,    TM_ROLE_VIEWER,   0,         0 },
        { "GET",  "/api/v1/backups/{id}",        api_backup_get,      TM_ROLE_VIEWER,   0,         0 },
        { "POST", "/api/v1/backup/validate",     api_backup_validate, TM_ROLE_OPERATOR, 4 * 1024,  TM_HTTP_AUDIT },
        { "GET",  "/api/v1/jobs/{id}",           api_job_get,         TM_ROLE_VIEWER,   0,         0 },
        { "GET",  "/api/v1/storage/utilization", api_storage,         TM_ROLE_VIEWER,   0,         0 },
        { "GET",  "/api/v1/components",          api_components,      TM_ROLE_VIEWER,   0,         0 },
};
/* clang-format on */
const size_t bkd_n_routes = TM_ARRAY_SIZE(bkd_routes);
