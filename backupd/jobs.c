/*
 * The worker pool, the scheduler and the jobs themselves: a backup (files
 * or a command's stdout), the retention that follows it, and validation.
 * Each job opens its own repository handle, so jobs never share state
 * inside the library; the repository's writer locks keep a prune from
 * deleting what a running backup writes.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <tidemark/log.h>
#include <tidemark/ops.h>
#include <tidemark/pg.h>
#include <tidemark/time.h>
#include <tidemark/tree.h>
#include <tidemark/watch.h>

#include "bkd.h"

#define VALIDATE_MAX_REPORTED 100

static const double duration_buckets[] = { 1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400 };

int bkd_repo_open(struct bkd *b, tm_repo **ret)
{
        struct tm_repo_opts o = TM_REPO_OPTS_INIT;

        o.location = b->repo_location;
        o.password = b->password;
        o.password_len = b->password_len;
        o.catalog_path = b->job_catalog;
        o.config = b->cfg;
        return tm_repo_open(&o, ret);
}

int bkd_repo_sync(struct bkd *b, int force)
{
        char path[4096];
        struct stat st;
        int r;

        snprintf(path, sizeof(path), "%s/snapshots", b->repo_location);
        if (stat(path, &st) < 0) {
                if (errno != ENOENT)
                        return -errno;
                /* a new repository has no snapshots/ until its first one */
                return force ? tm_repo_refresh(b->repo) : 0;
        }
        if (!force && st.st_mtim.tv_sec == b->synced_mtime.tv_sec &&
            st.st_mtim.tv_nsec == b->synced_mtime.tv_nsec)
                return 0;
        /* stat first: a change during the refresh shows at the next call */
        r = tm_repo_refresh(b->repo);
        if (r >= 0)
                b->synced_mtime = st.st_mtim;
        return r;
}

static uint64_t snapshot_job_id(const struct tm_snapshot *s)
{
        for (size_t i = 0; i < s->n_tags; i++)
                if (!strncmp(s->tags[i], "job=", 4))
                        return strtoull(s->tags[i] + 4, NULL, 10);
        return 0;
}

void bkd_backup_name(const struct tm_snapshot *s, char *out, size_t n)
{
        struct tm_time_fields f;
        uint64_t job = snapshot_job_id(s);
        char hex[TM_ID_HEX_LEN + 1];

        tm_time_split(s->time, &f);
        if (job) {
                snprintf(out, n, "backup-%04d%02d%02d-%s-%llu", f.year, f.month, f.day, s->strategy,
                         (unsigned long long)job);
                return;
        }
        /* made outside the daemon (the CLI): the short id stands in */
        tm_id_hex(&s->id, hex);
        snprintf(out, n, "backup-%04d%02d%02d-%s-%.8s", f.year, f.month, f.day, s->strategy, hex);
}

/* ---- metrics ---- */

void bkd_metrics_define(struct bkd *b)
{
        tm_metrics *m = b->metrics;

        tm_metrics_define(m, "backup_jobs_total", TM_METRIC_COUNTER,
                          "Backup jobs finished since the daemon started, by result", NULL, 0);
        tm_metrics_define(m, "backup_job_success_rate", TM_METRIC_GAUGE,
                          "Percentage of successful backup jobs in the job history", NULL, 0);
        tm_metrics_define(m, "backup_job_duration_seconds", TM_METRIC_HISTOGRAM,
                          "Time taken for backup jobs", duration_buckets,
                          TM_ARRAY_SIZE(duration_buckets));
        tm_metrics_define(m, "backup_size_bytes", TM_METRIC_GAUGE,
                          "Size of the data in the latest backup", NULL, 0);
        tm_metrics_define(m, "backup_storage_utilization_percent", TM_METRIC_GAUGE,
                          "Storage used as a percentage of the configured capacity, by tier", NULL,
                          0);
        tm_metrics_define(m, "backup_storage_bytes", TM_METRIC_GAUGE,
                          "Bytes the repository occupies, by tier", NULL, 0);
        tm_metrics_define(m, "backup_storage_packs", TM_METRIC_GAUGE,
                          "Pack files the repository holds, by tier", NULL, 0);
        tm_metrics_define(m, "backup_last_success_timestamp_seconds", TM_METRIC_GAUGE,
                          "Unix time of the last successful backup of a component", NULL, 0);
        tm_metrics_define(m, "backup_jobs_running", TM_METRIC_GAUGE, "Jobs running now", NULL, 0);
        tm_metrics_define(m, "backup_jobs_queued", TM_METRIC_GAUGE, "Jobs waiting for a worker",
                          NULL, 0);
        bkd_pg_metrics_define(b);
}

static const char *component_tier(struct bkd *b, const char *component)
{
        const struct tm_component_conf *cc = tm_config_component(b->cfg, component);

        return cc ? tm_tier_name(cc->tier) : "standard";
}

int bkd_storage(struct bkd *b, uint64_t *bytes, uint64_t *packs, uint64_t *snapshots,
                struct tm_tier_stats *tiers)
{
        struct tm_tier_stats ts;
        struct tm_repo_stats st;
        int64_t now = tm_time_mono();
        int r = 0;

        pthread_mutex_lock(&b->stats_lock);
        if (!b->stats_at || now - b->stats_at > 10 * TM_NSEC_PER_SEC) {
                pthread_mutex_lock(&b->repo_lock);
                r = bkd_repo_sync(b, 1); /* packs change with prune too */
                if (r >= 0)
                        r = tm_stats_compute(b->repo, &st);
                /* where the packs are now: listing each tier (the stores
                 * are the record, not the catalog) */
                if (r >= 0)
                        r = tm_tier_usage(b->repo, &ts);
                pthread_mutex_unlock(&b->repo_lock);
                if (r >= 0) {
                        b->stats_tiers = ts;
                        b->stats_bytes = st.pack_bytes;
                        b->stats_packs = st.packs;
                        b->stats_snapshots = st.snapshots;
                        b->stats_at = now;
                }
        }
        *bytes = b->stats_bytes;
        *packs = b->stats_packs;
        *snapshots = b->stats_snapshots;
        if (tiers)
                *tiers = b->stats_tiers;
        pthread_mutex_unlock(&b->stats_lock);
        return r < 0 ? r : 0;
}

void bkd_metrics_refresh(struct bkd *b)
{
        struct tm_job *a = NULL;
        size_t n = 0;
        uint64_t bytes, packs, snaps;
        struct tm_tier_stats tiers;
        int running = 0;
        size_t queued;

        if (tm_jobs_list(b->jobs, &a, &n) >= 0) {
                tm_metrics_reset(b->metrics, "backup_job_success_rate");
                for (size_t c = 0; c < b->cfg->n_components; c++) {
                        const struct tm_component_conf *cc = &b->cfg->components[c];
                        const char *tier = tm_tier_name(cc->tier);
                        int64_t last = 0;

                        /* the last pass is the continuous strategy, which has no
                         * slot in the schedule table */
                        for (int s = 0; s <= TM_STRATEGY_COUNT; s++) {
                                const char *strat = s < TM_STRATEGY_COUNT
                                                            ? tm_strategy_name((enum tm_strategy)s)
                                                            : "continuous";
                                unsigned ok = 0, all = 0;

                                for (size_t i = 0; i < n; i++) {
                                        if (strcmp(a[i].kind, "backup") ||
                                            strcmp(a[i].component, cc->name) ||
                                            strcmp(a[i].strategy, strat) ||
                                            !tm_job_state_final(a[i].state))
                                                continue;
                                        all++;
                                        if (!strcmp(a[i].state, "succeeded"))
                                                ok++;
                                }
                                if (!all)
                                        continue;
                                const char *lab[] = { "component", cc->name, "strategy", strat,
                                                      "tier",      tier,     NULL };
                                tm_metrics_set(b->metrics, "backup_job_success_rate", lab,
                                               100.0 * ok / all);
                        }
                        for (size_t i = 0; i < n; i++)
                                if (!strcmp(a[i].kind, "backup") &&
                                    !strcmp(a[i].component, cc->name) &&
                                    !strcmp(a[i].state, "succeeded") && a[i].finished > last)
                                        last = a[i].finished;
                        if (last) {
                                const char *lab[] = { "component", cc->name, "tier", tier, NULL };

                                tm_metrics_set(b->metrics, "backup_last_success_timestamp_seconds",
                                               lab, (double)(last / TM_NSEC_PER_SEC));
                        }
                }
                for (size_t i = 0; i < n; i++)
                        running += !strcmp(a[i].state, "running");
                tm_job_array_free(a, n);
        }
        pthread_mutex_lock(&b->qlock);
        queued = b->qn;
        pthread_mutex_unlock(&b->qlock);
        tm_metrics_set(b->metrics, "backup_jobs_running", NULL, running);
        tm_metrics_set(b->metrics, "backup_jobs_queued", NULL, (double)queued);
        if (bkd_storage(b, &bytes, &packs, &snaps, &tiers) >= 0) {
                const struct tm_tier_set *set = tm_repo_tiers(b->repo);

                for (unsigned i = 0; i < TM_TIER_LEVELS; i++) {
                        const char *lab[] = { "tier", tm_tier_level_name(i), NULL };

                        if (!set->t[i].configured)
                                continue;
                        tm_metrics_set(b->metrics, "backup_storage_bytes", lab,
                                       (double)tiers.bytes[i]);
                        tm_metrics_set(b->metrics, "backup_storage_packs", lab,
                                       (double)tiers.packs[i]);
                        /* capacity is the hot location's; object stores have none */
                        if (i == TM_TIER_HOT && b->cfg->capacity_bytes)
                                tm_metrics_set(b->metrics, "backup_storage_utilization_percent",
                                               lab,
                                               100.0 * (double)tiers.bytes[i] /
                                                       (double)b->cfg->capacity_bytes);
                }
        }
        bkd_replica_metrics(b);
        bkd_pg_metrics(b);
}

/* Latest snapshot size per component and strategy, at start. */
static void metrics_seed_sizes(struct bkd *b)
{
        struct tm_snapshot *s = NULL;
        size_t n = 0;

        pthread_mutex_lock(&b->repo_lock);
        if (tm_repo_snapshot_list(b->repo, NULL, &s, &n) >= 0) {
                for (size_t i = 0; i < n; i++) { /* oldest first: the last one wins */
                        const char *lab[] = { "component", s[i].component,
                                              "strategy",  s[i].strategy,
                                              "tier",      component_tier(b, s[i].component),
                                              NULL };

                        tm_metrics_set(b->metrics, "backup_size_bytes", lab,
                                       (double)s[i].summary.bytes);
                }
                tm_snapshot_array_free(s, n);
        }
        pthread_mutex_unlock(&b->repo_lock);
}

/* ---- running one job ---- */

struct progress_ctx {
        struct bkd *b;
        uint64_t id;
};

static void on_progress(const struct tm_progress *p, void *userdata)
{
        struct progress_ctx *c = userdata;

        tm_jobs_progress(c->b->jobs, c->id, p->files_done, p->bytes_done);
}

/* Start `sh -c command` with its stdout on a pipe; *ret_fd is the read end. */
static int command_start(const char *command, pid_t *ret_pid, int *ret_fd)
{
        int p[2];
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int r = -errno;

                close(p[0]);
                close(p[1]);
                return r;
        }
        if (pid == 0) {
                sigset_t none;
                int devnull = open("/dev/null", O_RDONLY);

                /* only async-signal-safe calls until exec: the daemon has
                 * threads, and it blocks the signals main() waits for */
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                signal(SIGPIPE, SIG_DFL);
                if (devnull >= 0)
                        dup2(devnull, 0);
                dup2(p[1], 1);
                execl("/bin/sh", "sh", "-c", command, (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        *ret_pid = pid;
        *ret_fd = p[0];
        return 0;
}

/* forget by the component's policy, then prune if anything went */
static json_t *run_retention(struct bkd *b, tm_repo *repo, const struct tm_component_conf *cc)
{
        const struct tm_forget_policy *pol = &cc->keep;
        struct tm_snapshot *s = NULL;
        size_t n = 0, removed = 0;
        int *keep = NULL, r;
        json_t *out = json_object(), *names = json_array();

        if (!pol->last && !pol->hourly && !pol->daily && !pol->weekly && !pol->monthly &&
            !pol->yearly) {
                json_decref(names);
                json_decref(out);
                return NULL;
        }
        pthread_mutex_lock(&b->retention_lock);
        r = tm_repo_snapshot_list(repo, cc->name, &s, &n);
        if (r < 0)
                goto out;
        keep = calloc(n ? n : 1, sizeof(*keep));
        if (!keep) {
                r = -ENOMEM;
                goto out;
        }
        r = tm_forget_plan(s, n, pol, keep, NULL);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < n; i++) {
                char name[128];

                if (keep[i])
                        continue;
                r = tm_repo_snapshot_remove(repo, &s[i].id);
                if (r < 0)
                        goto out;
                bkd_backup_name(&s[i], name, sizeof(name));
                json_array_append_new(names, json_string(name));
                removed++;
        }
        json_object_set_new(out, "kept", json_integer((json_int_t)(n - removed)));
        if (cc->type == TM_COMPONENT_POSTGRES) {
                /* the WAL only the forgotten base backups needed */
                size_t wal_removed = 0;

                r = tm_pg_wal_retention(repo, cc->name, NULL, 0, 0, &wal_removed, NULL);
                if (r < 0)
                        goto out;
                json_object_set_new(out, "wal_forgotten", json_integer((json_int_t)wal_removed));
                removed += wal_removed;
        }
        if (removed && b->cfg->prune) {
                struct tm_prune_opts po = TM_PRUNE_OPTS_INIT;
                struct tm_prune_stats ps;

                po.max_unused = b->cfg->max_unused;
                po.lock_wait_s = 600;
                r = tm_prune_run(repo, &po, &ps);
                if (r < 0)
                        goto out;
                json_object_set_new(out, "pruned_bytes", json_integer((json_int_t)ps.bytes_freed));
                json_object_set_new(out, "packs_deleted",
                                    json_integer((json_int_t)ps.packs_deleted));
        }
        r = 0;
out:
        pthread_mutex_unlock(&b->retention_lock);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "retention of component '%s' failed", cc->name);
                json_object_set_new(out, "error", json_string(strerror(-r)));
        }
        json_object_set_new(out, "forgotten", names);
        free(keep);
        tm_snapshot_array_free(s, n);
        return out;
}

static int run_backup(struct bkd *b, struct tm_job *job)
{
        const struct tm_component_conf *cc = tm_config_component(b->cfg, job->component);
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        struct tm_snapshot snap = { 0 };
        struct progress_ctx pc = { b, job->id };
        char tag_job[48], tag_trigger[48], name[128], filename[128], hex[TM_ID_HEX_LEN + 1];
        const char *tags[2] = { tag_job, tag_trigger };
        tm_repo *repo = NULL;
        pid_t pid = -1;
        int fd = -1, r, status = 0;
        json_t *res = NULL, *ret_json = NULL;
        int64_t t0 = tm_time_mono();

        if (!cc) {
                snprintf(job->error, sizeof(job->error), "component '%s' is no longer configured",
                         job->component);
                return -ENOENT;
        }
        r = bkd_repo_open(b, &repo);
        if (r < 0) {
                snprintf(job->error, sizeof(job->error), "cannot open the repository: %s",
                         strerror(-r));
                goto out;
        }
        snprintf(tag_job, sizeof(tag_job), "job=%llu", (unsigned long long)job->id);
        snprintf(tag_trigger, sizeof(tag_trigger), "trigger=%s", job->trigger);
        o.component = cc->name;
        o.strategy = job->strategy;
        o.tags = tags;
        o.n_tags = 2;
        o.progress = on_progress;
        o.userdata = &pc;
        o.excludes = (const char *const *)cc->excludes;
        o.n_excludes = cc->n_excludes;
        if (cc->type == TM_COMPONENT_POSTGRES) {
                r = bkd_pg_backup(b, repo, cc, tags, 2, &snap, job->error, sizeof(job->error));
                if (r < 0)
                        goto out;
        } else if (cc->type == TM_COMPONENT_FILES) {
                o.paths = (const char *const *)cc->paths;
                o.n_paths = cc->n_paths;
        } else {
                r = command_start(cc->command, &pid, &fd);
                if (r < 0) {
                        snprintf(job->error, sizeof(job->error), "cannot run the command: %s",
                                 strerror(-r));
                        goto out;
                }
                snprintf(filename, sizeof(filename), "%s",
                         cc->stdin_filename ? cc->stdin_filename : cc->name);
                o.stdin_fd = fd;
                o.stdin_filename = filename;
        }
        if (cc->type != TM_COMPONENT_POSTGRES)
                r = tm_backup_run(repo, &o, &snap);
        if (fd >= 0) {
                close(fd); /* a command still writing gets EPIPE and ends */
                fd = -1;
        }
        if (pid > 0) {
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
                pid = -1;
                if (r >= 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
                        /* the stream is incomplete: it must not pass for a backup */
                        tm_repo_snapshot_remove(repo, &snap.id);
                        if (WIFEXITED(status))
                                snprintf(job->error, sizeof(job->error),
                                         "the command exited with status %d", WEXITSTATUS(status));
                        else
                                snprintf(job->error, sizeof(job->error),
                                         "the command was killed by signal %d", WTERMSIG(status));
                        r = -EIO;
                        goto out;
                }
        }
        if (r < 0) {
                snprintf(job->error, sizeof(job->error), "backup failed: %s", strerror(-r));
                goto out;
        }
        tm_id_hex(&snap.id, hex);
        snprintf(job->snapshot, sizeof(job->snapshot), "%s", hex);
        bkd_backup_name(&snap, name, sizeof(name));
        res = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f}", "snapshot", hex, "name", name,
                        "files", (json_int_t)snap.summary.files, "bytes",
                        (json_int_t)snap.summary.bytes, "files_new",
                        (json_int_t)snap.summary.files_new, "bytes_added",
                        (json_int_t)snap.summary.bytes_added, "bytes_stored",
                        (json_int_t)snap.summary.bytes_stored, "duration_seconds",
                        (double)(tm_time_mono() - t0) / 1e9);
        if (r == TM_BACKUP_PARTIAL)
                snprintf(job->error, sizeof(job->error), "%llu file(s) could not be read",
                         (unsigned long long)snap.summary.files_failed);
        {
                const char *lab[] = { "component",   cc->name, "strategy",
                                      job->strategy, "tier",   tm_tier_name(cc->tier),
                                      NULL };

                tm_metrics_set(b->metrics, "backup_size_bytes", lab, (double)snap.summary.bytes);
        }
        ret_json = run_retention(b, repo, cc);
        if (res && ret_json)
                json_object_set_new(res, "retention", ret_json);
        else
                json_decref(ret_json);
        bkd_replica_kick(b);
        if (res) {
                job->result_json = json_dumps(res, JSON_COMPACT);
                json_decref(res);
        }
out:
        if (fd >= 0)
                close(fd);
        if (pid > 0)
                while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                        ;
        tm_snapshot_dispose(&snap);
        tm_repo_free(repo);
        return r;
}

struct validate_ctx {
        tm_repo *repo;
        struct bkd *b;
        uint64_t id;
        uint64_t files, blobs, bytes, damaged, trees;
        json_t *list;
};

static void validate_file(struct validate_ctx *v, const char *path, const struct tm_node *node)
{
        v->files++;
        for (size_t i = 0; i < node->n_content; i++) {
                tm_buf data = TM_BUF_INIT(0);
                int r = tm_repo_blob_load(v->repo, &node->content[i].id, &data);

                v->blobs++;
                if (r >= 0) {
                        v->bytes += data.len;
                } else {
                        char hex[TM_ID_HEX_LEN + 1];

                        v->damaged++;
                        tm_id_hex(&node->content[i].id, hex);
                        if (json_array_size(v->list) < VALIDATE_MAX_REPORTED)
                                json_array_append_new(
                                        v->list,
                                        json_pack("{s:s, s:s, s:I, s:s}", "path", path, "blob", hex,
                                                  "chunk", (json_int_t)i, "error",
                                                  r == -EBADMSG ? "integrity check failed"
                                                                : strerror(-r)));
                }
                tm_buf_dispose(&data);
        }
        tm_jobs_progress(v->b->jobs, v->id, v->files, v->bytes);
}

/* Walk a tree ourselves (not tm_repo_walk) so that a damaged subtree is
 * reported with its path and the rest of the snapshot is still read. */
static void validate_tree(struct validate_ctx *v, const tm_id *tree_id, const char *dir, int depth)
{
        struct tm_tree t = TM_TREE_INIT;
        char hex[TM_ID_HEX_LEN + 1];
        int r;

        r = depth > 256 ? -ELOOP : tm_repo_tree_load(v->repo, tree_id, &t);
        v->trees++;
        if (r < 0) {
                v->damaged++;
                tm_id_hex(tree_id, hex);
                if (json_array_size(v->list) < VALIDATE_MAX_REPORTED)
                        json_array_append_new(
                                v->list,
                                json_pack("{s:s, s:s, s:s}", "path", dir[0] ? dir : "/", "tree",
                                          hex, "error",
                                          r == -EBADMSG ? "integrity check failed: nothing below "
                                                          "this directory could be read"
                                                        : strerror(-r)));
                return;
        }
        for (size_t i = 0; i < t.n; i++) {
                const struct tm_node *node = &t.nodes[i];
                char *path = NULL;

                if (asprintf(&path, "%s/%s", dir, node->name) < 0)
                        break;
                if (node->type == TM_NODE_DIR)
                        validate_tree(v, &node->subtree, path, depth + 1);
                else if (node->type == TM_NODE_FILE)
                        validate_file(v, path + 1, node);
                free(path);
        }
        tm_tree_dispose(&t);
}

static int run_validate(struct bkd *b, struct tm_job *job)
{
        struct validate_ctx v = { 0 };
        struct tm_snapshot snap = { 0 };
        char name[128];
        tm_id id;
        int r;
        json_t *res;

        v.b = b;
        v.id = job->id;
        v.list = json_array();
        r = bkd_repo_open(b, &v.repo);
        if (r < 0) {
                snprintf(job->error, sizeof(job->error), "cannot open the repository: %s",
                         strerror(-r));
                goto out;
        }
        r = tm_id_parse(job->target, &id);
        if (r >= 0)
                r = tm_repo_snapshot_load(v.repo, &id, &snap);
        if (r < 0) {
                snprintf(job->error, sizeof(job->error), "cannot load snapshot %s: %s", job->target,
                         strerror(-r));
                goto out;
        }
        validate_tree(&v, &snap.tree, "", 0);
        bkd_backup_name(&snap, name, sizeof(name));
        res = json_pack("{s:b, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:O}", "ok", v.damaged == 0,
                        "snapshot", job->target, "name", name, "files", (json_int_t)v.files,
                        "trees", (json_int_t)v.trees, "blobs", (json_int_t)v.blobs, "bytes",
                        (json_int_t)v.bytes, "damaged_count", (json_int_t)v.damaged, "damaged",
                        v.list);
        if (res) {
                job->result_json = json_dumps(res, JSON_COMPACT);
                json_decref(res);
        }
        if (v.damaged) {
                snprintf(job->error, sizeof(job->error),
                         "validation failed: %llu damaged object(s), listed in the result",
                         (unsigned long long)v.damaged);
                r = -EBADMSG;
        }
out:
        json_decref(v.list);
        tm_snapshot_dispose(&snap);
        tm_repo_free(v.repo);
        return r;
}

/* A lifecycle pass over the storage tiers (one at a time, and never with a
 * prune: both move and delete packs). */
static int run_lifecycle_job(struct bkd *b, struct tm_job *job)
{
        struct tm_tier_stats st = { 0 };
        tm_repo *repo = NULL;
        json_t *res;
        int r;

        r = bkd_repo_open(b, &repo);
        if (r < 0) {
                snprintf(job->error, sizeof(job->error), "cannot open the repository: %s",
                         strerror(-r));
                return r;
        }
        pthread_mutex_lock(&b->retention_lock);
        r = tm_tier_run(repo, NULL, &st);
        pthread_mutex_unlock(&b->retention_lock);
        tm_repo_free(repo);
        res = json_pack("{s:I, s:I, s:I, s:I, s:I}", "moved", (json_int_t)st.moved, "moved_bytes",
                        (json_int_t)st.moved_bytes, "thawing", (json_int_t)st.thawing,
                        "finished", (json_int_t)st.finished, "failed", (json_int_t)st.failed);
        if (res) {
                job->result_json = json_dumps(res, JSON_COMPACT);
                json_decref(res);
        }
        if (r < 0)
                snprintf(job->error, sizeof(job->error), "lifecycle pass: %s%s", strerror(-r),
                         r == -EAGAIN ? " (some moves failed; they are retried next pass)" : "");
        pthread_mutex_lock(&b->stats_lock);
        b->stats_at = 0; /* the tiers changed: recount */
        pthread_mutex_unlock(&b->stats_lock);
        return r;
}

/* A scheduled retention pass over every component that has a policy. */
static int run_retention_job(struct bkd *b, struct tm_job *job)
{
        json_t *res = json_object();
        tm_repo *repo = NULL;
        int r, failed = 0;

        r = bkd_repo_open(b, &repo);
        if (r < 0 || !res) {
                snprintf(job->error, sizeof(job->error), "cannot open the repository: %s",
                         strerror(r < 0 ? -r : ENOMEM));
                json_decref(res);
                return r < 0 ? r : -ENOMEM;
        }
        for (size_t i = 0; i < b->cfg->n_components; i++) {
                json_t *one = run_retention(b, repo, &b->cfg->components[i]);

                if (!one)
                        continue;
                failed |= json_object_get(one, "error") != NULL;
                json_object_set_new(res, b->cfg->components[i].name, one);
        }
        job->result_json = json_dumps(res, JSON_COMPACT);
        json_decref(res);
        tm_repo_free(repo);
        if (failed) {
                snprintf(job->error, sizeof(job->error), "retention failed for some components");
                return -EIO;
        }
        return 0;
}

static void run_job(struct bkd *b, uint64_t id)
{
        struct tm_job job;
        int64_t t0;
        int r;

        if (tm_jobs_get(b->jobs, id, &job) < 0)
                return;
        snprintf(job.state, sizeof(job.state), "running");
        job.started = tm_time_now();
        tm_jobs_update(b->jobs, &job);
        tm_log(TM_LOG_INFO, "job %llu: %s of '%s' (%s) started", (unsigned long long)id, job.kind,
               job.component, job.strategy);
        t0 = tm_time_mono();
        if (!strcmp(job.kind, "validate"))
                r = run_validate(b, &job);
        else if (!strcmp(job.kind, "retention"))
                r = run_retention_job(b, &job);
        else if (!strcmp(job.kind, "lifecycle"))
                r = run_lifecycle_job(b, &job);
        else
                r = run_backup(b, &job);
        job.finished = tm_time_now();
        if (r < 0)
                snprintf(job.state, sizeof(job.state), "failed");
        else if (r == TM_BACKUP_PARTIAL && !strcmp(job.kind, "backup"))
                snprintf(job.state, sizeof(job.state), "partial");
        else
                snprintf(job.state, sizeof(job.state), "succeeded");
        if (tm_jobs_update(b->jobs, &job) < 0)
                tm_log(TM_LOG_ERR, "job %llu: cannot record its end", (unsigned long long)id);
        if (!strcmp(job.kind, "backup")) {
                const char *tier = component_tier(b, job.component);
                const char *lab[] = { "component", job.component, "strategy", job.strategy, "tier",
                                      tier,        "result",      job.state,  NULL };

                tm_metrics_add(b->metrics, "backup_jobs_total", lab, 1);
                lab[6] = NULL;
                tm_metrics_observe(b->metrics, "backup_job_duration_seconds", lab,
                                   (double)(tm_time_mono() - t0) / 1e9);
        }
        if (r < 0)
                tm_log(TM_LOG_ERR, "job %llu: %s of '%s' failed: %s", (unsigned long long)id,
                       job.kind, job.component, job.error);
        else
                tm_log(TM_LOG_INFO, "job %llu: %s of '%s' %s", (unsigned long long)id, job.kind,
                       job.component, job.state);
        tm_job_dispose(&job);
}

static void *worker(void *arg)
{
        struct bkd *b = arg;

        pthread_mutex_lock(&b->qlock);
        for (;;) {
                uint64_t id;

                while (!b->qn && !b->stopping)
                        pthread_cond_wait(&b->qcond, &b->qlock);
                if (b->stopping)
                        break;
                id = b->queue[0];
                memmove(&b->queue[0], &b->queue[1], (b->qn - 1) * sizeof(b->queue[0]));
                b->qn--;
                b->running++;
                pthread_mutex_unlock(&b->qlock);
                run_job(b, id);
                pthread_mutex_lock(&b->qlock);
                b->running--;
                pthread_cond_broadcast(&b->qidle);
        }
        pthread_mutex_unlock(&b->qlock);
        return NULL;
}

int bkd_jobs_enqueue(struct bkd *b, struct tm_job *job)
{
        int r;

        pthread_mutex_lock(&b->qlock);
        if (b->stopping) {
                r = -ECANCELED;
                goto out;
        }
        if (b->qn == BKD_QUEUE_MAX) {
                r = -EBUSY;
                goto out;
        }
        r = tm_jobs_add(b->jobs, job);
        if (r < 0)
                goto out;
        b->queue[b->qn++] = job->id;
        pthread_cond_signal(&b->qcond);
out:
        pthread_mutex_unlock(&b->qlock);
        return r;
}

/* The id of a queued or running job like this one (same kind, and the same
 * component, strategy and target where given), or 0; -1 if the history
 * cannot be read, which callers treat as busy. */
static int64_t job_pending(struct bkd *b, const char *kind, const char *component,
                           const char *strategy, const char *target)
{
        struct tm_job *a = NULL;
        size_t n = 0;
        int64_t id = 0;

        if (tm_jobs_list(b->jobs, &a, &n) < 0)
                return -1;
        for (size_t i = n; i-- > 0 && !id;) {
                if (strcmp(a[i].kind, kind) || tm_job_state_final(a[i].state))
                        continue;
                if ((component && strcmp(a[i].component, component)) ||
                    (strategy && strcmp(a[i].strategy, strategy)) ||
                    (target && strcmp(a[i].target, target)))
                        continue;
                id = (int64_t)a[i].id;
        }
        tm_job_array_free(a, n);
        return id;
}

/* Is a backup of this component queued or running? */
static int component_busy(struct bkd *b, const char *component)
{
        return job_pending(b, "backup", component, NULL, NULL) != 0;
}

void bkd_jobs_retry_interrupted(struct bkd *b)
{
        struct tm_job *a = NULL;
        size_t n = 0;

        if (tm_jobs_list(b->jobs, &a, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                struct tm_job retry = { 0 };
                int64_t twin;

                if (strcmp(a[i].state, "interrupted") || a[i].retried_by)
                        continue;
                /* several interrupted runs of the same work (a daemon killed
                 * while scheduled passes were queued) need one retry, not one
                 * each: the later ones are answered by the first */
                twin = job_pending(b, a[i].kind, a[i].component, a[i].strategy, a[i].target);
                if (twin > 0) {
                        a[i].retried_by = (uint64_t)twin;
                        tm_jobs_update(b->jobs, &a[i]);
                        continue;
                }
                if (a[i].attempt >= BKD_MAX_ATTEMPTS ||
                    (!strcmp(a[i].kind, "backup") &&
                     !tm_config_component(b->cfg, a[i].component))) {
                        tm_log(TM_LOG_WARN, "job %llu was interrupted: not retried (attempt %d)",
                               (unsigned long long)a[i].id, a[i].attempt);
                        continue;
                }
                snprintf(retry.kind, sizeof(retry.kind), "%s", a[i].kind);
                snprintf(retry.component, sizeof(retry.component), "%s", a[i].component);
                snprintf(retry.strategy, sizeof(retry.strategy), "%s", a[i].strategy);
                snprintf(retry.target, sizeof(retry.target), "%s", a[i].target);
                snprintf(retry.trigger, sizeof(retry.trigger), "retry");
                retry.retry_of = a[i].id;
                retry.attempt = a[i].attempt + 1;
                if (bkd_jobs_enqueue(b, &retry) < 0)
                        continue;
                a[i].retried_by = retry.id;
                tm_jobs_update(b->jobs, &a[i]);
                tm_log(TM_LOG_INFO, "job %llu was interrupted: retried as job %llu",
                       (unsigned long long)a[i].id, (unsigned long long)retry.id);
        }
        tm_job_array_free(a, n);
}

/* ---- scheduler ---- */

static void *scheduler(void *arg)
{
        struct bkd *b = arg;
        struct timespec ts;

        pthread_mutex_lock(&b->qlock);
        while (!b->stopping) {
                int64_t now = tm_time_now();

                b->sched_tick = tm_time_mono();
                pthread_mutex_unlock(&b->qlock);
                for (size_t c = 0; c < b->cfg->n_components; c++) {
                        const struct tm_component_conf *cc = &b->cfg->components[c];
                        int queued = 0;

                        /* full before differential before incremental: when two
                         * fall due together the stronger one runs */
                        for (int s = 0; s < TM_STRATEGY_COUNT; s++) {
                                struct tm_job job = { 0 };

                                if (!cc->has_schedule[s] || b->next_run[c][s] < 0 ||
                                    now < b->next_run[c][s])
                                        continue;
                                b->next_run[c][s] = tm_schedule_next(&cc->schedule[s], now);
                                if (queued || component_busy(b, cc->name))
                                        continue;
                                snprintf(job.kind, sizeof(job.kind), "backup");
                                snprintf(job.component, sizeof(job.component), "%s", cc->name);
                                snprintf(job.strategy, sizeof(job.strategy), "%s",
                                         tm_strategy_name((enum tm_strategy)s));
                                snprintf(job.trigger, sizeof(job.trigger), "schedule");
                                if (bkd_jobs_enqueue(b, &job) >= 0)
                                        queued = 1;
                        }
                }
                if (b->cfg->has_retention_schedule && b->next_retention >= 0 &&
                    now >= b->next_retention) {
                        struct tm_job job = { 0 };

                        b->next_retention = tm_schedule_next(&b->cfg->retention_schedule, now);
                        snprintf(job.kind, sizeof(job.kind), "retention");
                        snprintf(job.trigger, sizeof(job.trigger), "schedule");
                        /* a pass still queued or running covers this one */
                        if (!job_pending(b, job.kind, NULL, NULL, NULL))
                                bkd_jobs_enqueue(b, &job);
                }
                if (b->next_lifecycle >= 0 && now >= b->next_lifecycle) {
                        struct tm_job job = { 0 };

                        b->next_lifecycle = tm_schedule_next(&tm_repo_tiers(b->repo)->schedule,
                                                             now);
                        snprintf(job.kind, sizeof(job.kind), "lifecycle");
                        snprintf(job.trigger, sizeof(job.trigger), "schedule");
                        if (!job_pending(b, job.kind, NULL, NULL, NULL))
                                bkd_jobs_enqueue(b, &job);
                }
                pthread_mutex_lock(&b->qlock);
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 250 * 1000 * 1000;
                if (ts.tv_nsec >= 1000000000) {
                        ts.tv_sec++;
                        ts.tv_nsec -= 1000000000;
                }
                if (!b->stopping)
                        pthread_cond_timedwait(&b->sched_cond, &b->qlock, &ts);
        }
        pthread_mutex_unlock(&b->qlock);
        return NULL;
}

/* ---- continuous backups ---- */

struct bkd_watcher {
        struct bkd *b;
        const struct tm_component_conf *cc;
        tm_watch *w;
        pthread_t thread;
        int started;
};

#define NSEC_PER_MSEC 1000000LL

static int is_stopping(struct bkd *b)
{
        int s;

        pthread_mutex_lock(&b->qlock);
        s = b->stopping;
        pthread_mutex_unlock(&b->qlock);
        return s;
}

int bkd_is_stopping(struct bkd *b)
{
        return is_stopping(b);
}

/*
 * Watch a component's tree and queue a "continuous" backup when something
 * changed and the last one started at least continuous_interval ago. The
 * changes are taken before the job is queued, so whatever changes while it
 * runs makes the next one due. A component with a backup queued or running
 * (whatever started it) waits: jobs of one component never overlap.
 */
static void *watcher(void *arg)
{
        struct bkd_watcher *bw = arg;
        struct bkd *b = bw->b;
        const struct tm_component_conf *cc = bw->cc;
        const int64_t iv = cc->continuous_interval_ns;
        int64_t last_take = 0;
        uint64_t last_job = 0;
        int owed = 0; /* changes taken for a job that could not be queued */

        while (!is_stopping(b)) {
                int64_t now = tm_time_mono(), at = tm_watch_due_at(bw->w, iv);
                struct tm_job job = { 0 };
                uint64_t changes;
                int timeout = 250, r;

                if (owed && (at < 0 || at > last_take + iv))
                        at = last_take + iv;
                if (at > now && at - now < 250 * NSEC_PER_MSEC)
                        timeout = (int)((at - now) / NSEC_PER_MSEC) + 1;
                r = tm_watch_process(bw->w, timeout, NULL, NULL);
                if (r < 0 && r != -EINTR) {
                        tm_log_errno(TM_LOG_ERR, r, "component '%s': watching failed", cc->name);
                        sleep(1);
                        continue;
                }
                now = tm_time_mono();
                if (!tm_watch_due(bw->w, now, iv) && !(owed && now >= last_take + iv))
                        continue;
                if (component_busy(b, cc->name)) {
                        /* check again in a second, reading events meanwhile */
                        (void)tm_watch_process(bw->w, 1000, NULL, NULL);
                        continue;
                }
                if (last_job) {
                        /* The interval runs from the last job's start, not
                         * from when it was queued: a job that waited for a
                         * worker would otherwise leave less than the
                         * interval before the next. */
                        struct tm_job prev = { 0 };
                        int64_t wait = 0;

                        if (tm_jobs_get(b->jobs, last_job, &prev) == 0 && prev.started > 0)
                                wait = prev.started + iv - tm_time_now();
                        tm_job_dispose(&prev);
                        if (wait > 0) {
                                (void)tm_watch_process(bw->w, (int)(wait / NSEC_PER_MSEC) + 1, NULL,
                                                       NULL);
                                continue;
                        }
                }
                changes = tm_watch_pending(bw->w);
                tm_watch_take(bw->w, now);
                last_take = now;
                snprintf(job.kind, sizeof(job.kind), "backup");
                snprintf(job.component, sizeof(job.component), "%s", cc->name);
                snprintf(job.strategy, sizeof(job.strategy), "continuous");
                snprintf(job.trigger, sizeof(job.trigger), "continuous");
                r = bkd_jobs_enqueue(b, &job);
                if (r >= 0)
                        last_job = job.id;
                owed = r < 0 && r != -ECANCELED;
                if (r < 0 && r != -ECANCELED)
                        tm_log_errno(TM_LOG_WARN, r,
                                     "component '%s': cannot queue a continuous backup", cc->name);
                else if (r >= 0)
                        tm_log(TM_LOG_INFO,
                               "component '%s': %llu change(s): continuous backup queued as job "
                               "%llu",
                               cc->name, (unsigned long long)changes, (unsigned long long)job.id);
        }
        return NULL;
}

/* Paths the daemon itself writes: a change there must not cut a snapshot
 * (a repository inside a watched tree would otherwise feed itself). */
static size_t own_paths(struct bkd *b, char state[4200], const char *out[5])
{
        const char *cand[4] = { b->repo_location, b->cfg->catalog, b->cfg->audit_log,
                                b->cfg->access_log };
        size_t n = 0;

        snprintf(state, 4200, "%s", b->job_catalog);
        out[n++] = dirname(state);
        for (size_t i = 0; i < TM_ARRAY_SIZE(cand); i++)
                if (cand[i] && cand[i][0] == '/')
                        out[n++] = cand[i];
        return n;
}

static int watchers_start(struct bkd *b)
{
        char state[4200];
        const char *ign[5];
        size_t n_ign = own_paths(b, state, ign), n = 0;
        int r;

        for (size_t c = 0; c < b->cfg->n_components; c++)
                n += b->cfg->components[c].continuous &&
                     b->cfg->components[c].type == TM_COMPONENT_FILES;
        if (!n)
                return 0;
        b->watchers = calloc(n, sizeof(*b->watchers));
        if (!b->watchers)
                return -ENOMEM;
        for (size_t c = 0; c < b->cfg->n_components; c++) {
                const struct tm_component_conf *cc = &b->cfg->components[c];
                struct bkd_watcher *bw = &b->watchers[b->n_watchers];
                struct tm_watch_opts o = { (const char *const *)cc->paths, cc->n_paths, ign,
                                           n_ign };

                if (!cc->continuous || cc->type != TM_COMPONENT_FILES)
                        continue;
                bw->b = b;
                bw->cc = cc;
                b->n_watchers++;
                r = tm_watch_new(&o, &bw->w);
                if (r < 0)
                        return tm_log_errno(TM_LOG_ERR, r,
                                            "component '%s': cannot watch its paths for "
                                            "continuous backups",
                                            cc->name);
                /* logged before the thread owns the watch */
                tm_log(TM_LOG_INFO,
                       "component '%s': continuous backups, at most one every %llu s "
                       "(%zu watches)",
                       cc->name, (unsigned long long)(cc->continuous_interval_ns / TM_NSEC_PER_SEC),
                       tm_watch_count(bw->w));
                r = -pthread_create(&bw->thread, NULL, watcher, bw);
                if (r < 0)
                        return r;
                bw->started = 1;
        }
        return 0;
}

static void watchers_stop(struct bkd *b)
{
        for (size_t i = 0; i < b->n_watchers; i++) {
                if (b->watchers[i].started)
                        pthread_join(b->watchers[i].thread, NULL);
                tm_watch_free(b->watchers[i].w);
        }
        free(b->watchers);
        b->watchers = NULL;
        b->n_watchers = 0;
}

int bkd_jobs_start(struct bkd *b)
{
        int64_t now = tm_time_now();
        int r;

        bkd_metrics_define(b);
        metrics_seed_sizes(b);
        b->next_run = calloc(b->cfg->n_components ? b->cfg->n_components : 1, sizeof(*b->next_run));
        b->workers = calloc((size_t)b->cfg->workers, sizeof(*b->workers));
        if (!b->next_run || !b->workers)
                return -ENOMEM;
        for (size_t c = 0; c < b->cfg->n_components; c++)
                for (int s = 0; s < TM_STRATEGY_COUNT; s++)
                        b->next_run[c][s] =
                                b->cfg->components[c].has_schedule[s]
                                        ? tm_schedule_next(&b->cfg->components[c].schedule[s], now)
                                        : -1;
        for (int i = 0; i < b->cfg->workers; i++) {
                r = -pthread_create(&b->workers[i], NULL, worker, b);
                if (r < 0)
                        return r;
                b->n_workers++;
        }
        b->next_lifecycle = tm_repo_tiers(b->repo)->has_schedule
                                    ? tm_schedule_next(&tm_repo_tiers(b->repo)->schedule, now)
                                    : -1;
        b->next_retention = b->cfg->has_retention_schedule
                                    ? tm_schedule_next(&b->cfg->retention_schedule, now)
                                    : -1;
        b->sched_tick = tm_time_mono();
        r = -pthread_create(&b->sched, NULL, scheduler, b);
        if (r < 0)
                return r;
        b->sched_started = 1;
        r = bkd_pg_start(b);
        if (r < 0)
                return r;
        return watchers_start(b);
}

int bkd_jobs_stop(struct bkd *b, int timeout_s)
{
        struct timespec ts;
        int r = 0;

        pthread_mutex_lock(&b->qlock);
        b->stopping = 1;
        pthread_cond_broadcast(&b->qcond);
        pthread_cond_broadcast(&b->sched_cond);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_s;
        while (b->running > 0 && r == 0)
                r = -pthread_cond_timedwait(&b->qidle, &b->qlock, &ts);
        if (b->running > 0)
                r = -ETIMEDOUT;
        pthread_mutex_unlock(&b->qlock);
        if (b->sched_started)
                pthread_join(b->sched, NULL);
        b->sched_started = 0;
        watchers_stop(b);
        bkd_pg_stop(b);
        if (r == 0) {
                for (int i = 0; i < b->n_workers; i++)
                        pthread_join(b->workers[i], NULL);
                b->n_workers = 0;
        }
        return r < 0 ? -ETIMEDOUT : 0;
}
