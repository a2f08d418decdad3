/*
 * Point-in-time recovery on demand and the recovery timeline. The restore
 * itself goes through the library (tm_pg_plan_pitr + tm_pg_pitr_restore,
 * what `tidemark restore @T` runs too: choosing the base backup, checking
 * the window, writing the recovery settings); this file adds what a DR
 * orchestrator needs around it: several components, a scratch server
 * started on the result (also the drills'), the instant it really reached,
 * and the confidence of every recovery point.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <tidemark/catalog.h>
#include <tidemark/core.h>
#include <tidemark/dr.h>
#include <tidemark/log.h>
#include <tidemark/ops.h>
#include <tidemark/pg.h>
#include <tidemark/snapshot.h>
#include <tidemark/tier.h>
#include <tidemark/time.h>
#include <tidemark/tree.h>

#include "dr_internal.h"

static int pick_port(void)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
        socklen_t l = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &l) == 0)
                port = ntohs(a.sin_port);
        close(fd);
        return port > 0 ? port : -EADDRNOTAVAIL;
}

/* The last line of a program's output (its error line). */
static const char *last_line(char *out)
{
        char *nl;

        if (!out || !*out)
                return "no output";
        while ((nl = strrchr(out, '\n')) && !nl[1])
                *nl = '\0';
        nl = strrchr(out, '\n');
        return nl ? nl + 1 : out;
}

int tm_dr__pg_ctl(const struct tm_dr_conf *c, const char *pgdata, const char *action,
                  const char *logf, const char *opts, char **ret_output)
{
        char prog[4096];
        const char *argv[16];
        size_t n = 0;

        snprintf(prog, sizeof(prog), "%s/pg_ctl", c->pg_bin);
        argv[n++] = prog;
        argv[n++] = action;
        argv[n++] = "-D";
        argv[n++] = pgdata;
        if (!strcmp(action, "start")) {
                argv[n++] = "-l";
                argv[n++] = logf;
                argv[n++] = "-w";
                argv[n++] = "-t";
                argv[n++] = "300";
                argv[n++] = "-o";
                argv[n++] = opts;
        } else if (!strcmp(action, "stop")) {
                argv[n++] = "-m";
                argv[n++] = opts ? opts : "fast";
                argv[n++] = "-w";
        }
        argv[n] = NULL;
        return tm_dr_exec(argv, NULL, 310 * TM_NSEC_PER_SEC, ret_output);
}

int tm_dr__scratch_remove(const struct tm_dr_conf *c, const char *pgdata, int *ret_stopped)
{
        const char *rm[] = { "/bin/rm", "-rf", "--", pgdata, NULL };
        char pid[4200];
        int r;

        snprintf(pid, sizeof(pid), "%s/postmaster.pid", pgdata);
        r = 3;
        if (access(pid, F_OK) == 0) {
                /* fast first (clean shutdown), immediate if that hangs */
                if (tm_dr__pg_ctl(c, pgdata, "stop", NULL, "fast", NULL) != 0)
                        tm_dr__pg_ctl(c, pgdata, "stop", NULL, "immediate", NULL);
                /* pg_ctl status: 3 = no server runs there (a stale pid file
                 * of a killed one included) */
                r = tm_dr__pg_ctl(c, pgdata, "status", NULL, NULL, NULL);
        }
        if (ret_stopped)
                *ret_stopped = r == 3;
        if (r != 3)
                return -EBUSY;
        if (access(pgdata, F_OK) == 0 && tm_dr_exec(rm, NULL, 300 * TM_NSEC_PER_SEC, NULL) != 0)
                return -EIO;
        return access(pgdata, F_OK) == 0 ? -EIO : 0;
}

int tm_dr__scratch_start(const struct tm_dr_conf *c, const char *pgdata, const char *sockdir,
                         int port, const char *component, int (*should_stop)(void *),
                         void *userdata, json_t **ret_db, int64_t *ret_ready_mono, char *err,
                         size_t errlen)
{
        char logf[4200], opts[4400], ci[128], v[64] = "", msg[256];
        char *out = NULL;
        int64_t deadline;
        json_t *db;
        int r;

        if (port <= 0)
                port = pick_port();
        if (port < 0) {
                snprintf(err, errlen, "no free port for the scratch server");
                return port;
        }
        /* loopback only, not archiving into the production archive, its
         * socket next to it */
        snprintf(logf, sizeof(logf), "%s/%s-postgres.log", sockdir, component);
        snprintf(opts, sizeof(opts),
                 "-p %d -c listen_addresses=127.0.0.1 -c archive_mode=off "
                 "-c unix_socket_directories='%s'",
                 port, sockdir);
        r = tm_dr__pg_ctl(c, pgdata, "start", logf, opts, &out);
        if (r != 0) {
                snprintf(err, errlen, "the scratch server did not start (see %s): %s", logf,
                         last_line(out));
                free(out);
                return -EPROTO;
        }
        free(out);
        snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=postgres", port);
        deadline = tm_time_mono() + c->catchup_timeout_ns;
        for (;;) {
                /* the first query that finds it promoted: writable, recovered */
                r = tm_dr_sql(ci, c->connect_timeout_ns, "SELECT pg_is_in_recovery()", v, sizeof(v),
                              msg, sizeof(msg));
                if (r == 0 && !strcmp(v, "f"))
                        break;
                if (should_stop && should_stop(userdata)) {
                        snprintf(err, errlen, "cancelled: the daemon is stopping");
                        return -ECANCELED;
                }
                if (tm_time_mono() > deadline) {
                        snprintf(err, errlen,
                                 "the scratch server did not finish recovery in time (see %s)",
                                 logf);
                        return -ETIMEDOUT;
                }
                usleep(100000);
        }
        if (ret_ready_mono)
                *ret_ready_mono = tm_time_mono();
        /* the last commit it replayed: the instant reached */
        r = tm_dr_sql(ci, c->connect_timeout_ns,
                      "SELECT coalesce(to_char(pg_last_xact_replay_timestamp() "
                      "AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '')",
                      v, sizeof(v), msg, sizeof(msg));
        db = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s}", "component", component, "status",
                       "running", "port", port, "host", "127.0.0.1", "conninfo", ci, "pgdata",
                       pgdata, "log", logf);
        if (!db)
                return -ENOMEM;
        json_object_set_new(db, "reached", r == 0 && v[0] ? json_string(v) : json_null());
        *ret_db = db;
        return 0;
}

int tm_dr__restore(tm_repo *repo, const char *comp, int is_db, int64_t target_ns, const char *dir,
                   const char *restore_command, json_t **ret_info, char *err, size_t errlen)
{
        struct tm_restore_opts ro = TM_RESTORE_OPTS_INIT;
        struct tm_restore_stats st = { 0 };
        struct tm_pg_plan plan = { 0 };
        struct tm_snapshot snap = { 0 };
        char hex[TM_ID_HEX_LEN + 1], t[40], spec[48];
        json_t *info;
        int r;

        if (is_db) {
                r = tm_pg_plan_pitr(repo, comp, target_ns, &plan, err, errlen);
                if (r == -ENOENT && !err[0])
                        snprintf(err, errlen, "component '%s' has no base backup", comp);
                if (r < 0)
                        return r == -ENOENT || r == -ERANGE ? -EPROTO : r;
                r = tm_pg_pitr_restore(repo, &plan, dir, restore_command, NULL);
                if (r < 0) {
                        snprintf(err, errlen, "component '%s': cannot restore its base backup: %s",
                                 comp, strerror(-r));
                        goto out;
                }
                tm_id_hex(&plan.base.id, hex);
                tm_time_format_ns(plan.base.time, t, sizeof(t));
                info = json_pack("{s:s, s:s, s:b, s:I, s:I}", "snapshot", hex, "snapshot_time", t,
                                 "to_end", plan.to_end, "window_last_commit_ns",
                                 (json_int_t)plan.window.last_commit_ns, "window_latest_ns",
                                 (json_int_t)plan.window.latest_ns);
        } else {
                if (target_ns) {
                        tm_time_format_ns(target_ns, t, sizeof(t));
                        snprintf(spec, sizeof(spec), "@%s", t);
                } else {
                        snprintf(spec, sizeof(spec), "latest");
                }
                r = tm_repo_snapshot_find(repo, spec, comp, &snap);
                if (r < 0) {
                        snprintf(err, errlen, "component '%s' has no snapshot at or before %s",
                                 comp, target_ns ? t : "now");
                        return r == -ENOENT ? -EPROTO : r;
                }
                ro.target = dir;
                r = tm_restore_run(repo, &snap, &ro, &st);
                if (r < 0) {
                        snprintf(err, errlen, "component '%s': restore failed: %s%s", comp,
                                 strerror(-r), r == -EBADMSG ? " (files failed verification)" : "");
                        goto out;
                }
                tm_id_hex(&snap.id, hex);
                tm_time_format_ns(snap.time, t, sizeof(t));
                info = json_pack("{s:s, s:s, s:I, s:I}", "snapshot", hex, "snapshot_time", t,
                                 "files", (json_int_t)st.files, "bytes", (json_int_t)st.bytes);
        }
        if (!info)
                r = -ENOMEM;
        else
                *ret_info = info;
out:
        tm_snapshot_dispose(&plan.base);
        tm_snapshot_dispose(&snap);
        return r;
}

int tm_dr_pitr(const struct tm_dr_conf *c, const struct tm_dr_pitr_opts *o, struct tm_dr_log *log,
               json_t **ret, char *err, size_t errlen)
{
        char t[40] = "", dir[4096];
        json_t *comps = json_array(), *db = NULL;
        int r = 0;

        *ret = NULL;
        err[0] = '\0';
        if (!comps)
                return -ENOMEM;
        if (!o->repo || !o->restore_command) {
                json_decref(comps);
                snprintf(err, errlen, "no repository is configured");
                return -EINVAL;
        }
        if (o->target_ns)
                tm_time_format_ns(o->target_ns, t, sizeof(t));
        for (size_t i = 0; i < o->n_components; i++) {
                const char *comp = o->components[i];
                int is_db = o->database_component && !strcmp(comp, o->database_component);
                json_t *info = NULL, *st;
                char name[128];

                snprintf(dir, sizeof(dir), "%s/%s", o->dest, comp);
                snprintf(name, sizeof(name), "restore %s", comp);
                st = tm_dr__step_begin(log, name);
                /* an earlier recovery's files, and its scratch server */
                r = tm_dr__scratch_remove(c, dir, NULL);
                if (r < 0) {
                        snprintf(err, errlen, "cannot clear '%s' (a server still runs there?)",
                                 dir);
                        tm_dr__step_end(log, st, "failed", "%s", err);
                        goto out;
                }
                r = tm_dr__restore(o->repo, comp, is_db, o->target_ns, dir, o->restore_command,
                                   &info, err, errlen);
                if (r < 0) {
                        tm_dr__step_end(log, st, "failed", "%s", err);
                        goto out;
                }
                tm_dr__step_end(log, st, "succeeded", "snapshot %s into %s",
                                json_string_value(json_object_get(info, "snapshot")), dir);
                json_object_set_new(info, "component", json_string(comp));
                json_object_set_new(info, "path", json_string(dir));
                json_object_set_new(info, "status", json_string("restored"));
                json_object_del(info, "window_last_commit_ns");
                json_object_del(info, "window_latest_ns");
                json_array_append_new(comps, info);
                if (!is_db || !o->start_port)
                        continue;
                st = tm_dr__step_begin(log, "start scratch server");
                r = tm_dr__scratch_start(c, dir, o->dest, o->start_port, comp, NULL, NULL, &db,
                                         NULL, err, errlen);
                if (r < 0) {
                        tm_dr__step_end(log, st, "failed", "%s", err);
                        goto out;
                }
                tm_dr__step_end(log, st, "succeeded", "port %d",
                                (int)json_integer_value(json_object_get(db, "port")));
        }
        *ret = json_pack("{s:s?, s:s, s:o, s:o}", "target_timestamp", t[0] ? t : NULL,
                         "destination", o->dest, "components", comps, "database",
                         db ? db : json_null());
        comps = db = NULL;
        if (!*ret)
                r = -ENOMEM;
out:
        json_decref(comps);
        json_decref(db);
        return r;
}

/* ---- the timeline ---- */

/*
 * The expected delay of a thaw, as a duration to weigh against an RTO: the
 * upper ends of the AWS restore times tm_tier_thaw_eta() names (S3 Glacier
 * Flexible Retrieval: Expedited 1-5 min, Standard 3-5 h, Bulk 5-12 h; Deep
 * Archive: Standard 12 h, Bulk 48 h). Hot and warm packs read at once.
 */
int64_t tm_dr_thaw_ns(unsigned level, const char *retrieval)
{
        int bulk = retrieval && !strcmp(retrieval, "Bulk");
        int fast = retrieval && !strcmp(retrieval, "Expedited");

        if (level < TM_TIER_COLD)
                return 0;
        if (level == TM_TIER_COLD)
                return (fast ? 5 * 60 : bulk ? 12 * 3600 : 5 * 3600) * TM_NSEC_PER_SEC;
        return (bulk ? 48 : 12) * 3600 * TM_NSEC_PER_SEC;
}

double tm_dr_tier_factor(int64_t thaw_ns, int64_t rto_ns)
{
        if (thaw_ns <= 0 || rto_ns <= 0 || thaw_ns <= rto_ns)
                return 1;
        return (double)rto_ns / (double)thaw_ns;
}

struct tier_walk {
        tm_repo *repo;
        unsigned level; /* the coldest so far */
};

static int tier_cb(const char *path, const struct tm_node *nd, void *ud)
{
        struct tier_walk *w = ud;

        (void)path;
        for (size_t i = 0; nd->type == TM_NODE_FILE && i < nd->n_content; i++) {
                struct tm_pack_entry e;
                unsigned l;
                tm_id pack;

                if (tm_catalog_blob_find(tm_repo_catalog(w->repo), &nd->content[i].id, &pack, &e) <
                    0)
                        continue; /* a missing blob is check's to report */
                l = tm_tier_of_pack(w->repo, &pack);
                if (l < TM_TIER_LEVELS && l > w->level)
                        w->level = l;
                if (w->level == TM_TIER_ARCHIVE)
                        return 1; /* nothing is colder */
        }
        return 0;
}

int tm_dr_snapshot_tier(tm_repo *repo, const struct tm_snapshot *s, unsigned *ret)
{
        struct tier_walk w = { .repo = repo, .level = TM_TIER_HOT };
        int r;

        /* one location of our own: every pack is hot */
        if (!tm_backend_is_tiered(tm_repo_backend(repo))) {
                *ret = TM_TIER_HOT;
                return 0;
        }
        r = tm_repo_walk(repo, &s->tree, tier_cb, &w);
        if (r < 0)
                return r;
        *ret = w.level;
        return 0;
}

/* The drills' evidence per base backup: 1 restored and served in a drill,
 * -1 restored but the scratch server failed on it (0: never drilled). */
static int drill_evidence(const json_t *reports, const char *hex, uint64_t *ret_id)
{
        const json_t *v;
        size_t i;

        json_array_foreach(reports, i, v)
        {
                const char *snap = json_string_value(json_object_get(v, "snapshot"));
                const char *step = json_string_value(json_object_get(v, "failed_step"));

                if (!snap || strcmp(snap, hex))
                        continue;
                *ret_id = (uint64_t)json_integer_value(json_object_get(v, "id"));
                if (json_is_true(json_object_get(v, "succeeded")))
                        return 1;
                if (step && (!strcmp(step, "start scratch server") || !strcmp(step, "measure")))
                        return -1;
        }
        return 0;
}

struct comp_acc {
        const char *name;
        json_t *points;
        int64_t first; /* its earliest point */
};

/* The factors every point and window shares: validation and tier. */
struct point_factors {
        double validation, tier;
        unsigned level;
        int64_t thaw_ns;
        char validated_by[64];
};

static int point_factors(tm_repo *repo, const struct tm_dr_timeline_opts *o, const json_t *reports,
                         const struct tm_snapshot *s, struct point_factors *ret)
{
        const struct tm_tier_set *set = tm_repo_tiers(repo);
        char hex[TM_ID_HEX_LEN + 1];
        uint64_t drill = 0;
        int ev, r;

        tm_id_hex(&s->id, hex);
        ev = drill_evidence(reports, hex, &drill);
        if (ev > 0) {
                ret->validation = 1;
                snprintf(ret->validated_by, sizeof(ret->validated_by), "drill %llu",
                         (unsigned long long)drill);
        } else if (ev < 0 || s->summary.files_failed) {
                ret->validation = 0;
                snprintf(ret->validated_by, sizeof(ret->validated_by), "%s",
                         ev < 0 ? "failed in a drill" : "unreadable files at backup");
        } else {
                ret->validation = 0.5;
                snprintf(ret->validated_by, sizeof(ret->validated_by), "none");
        }
        r = tm_dr_snapshot_tier(repo, s, &ret->level);
        if (r < 0)
                return r;
        ret->thaw_ns = tm_dr_thaw_ns(ret->level, set ? set->t[ret->level].retrieval : NULL);
        ret->tier = tm_dr_tier_factor(ret->thaw_ns, o->rto_ns);
        return 0;
}

static json_t *factors_json(double continuity, const struct point_factors *pf, double complete)
{
        return json_pack("{s:f, s:f, s:f, s:f}", "continuity", continuity, "validation",
                         pf->validation, "tier", pf->tier, "completeness", complete);
}

static double score(double continuity, const struct point_factors *pf, double complete)
{
        return 0.4 * continuity + 0.2 * pf->validation + 0.2 * pf->tier + 0.2 * complete;
}

int tm_dr_timeline(tm_repo *repo, const struct tm_dr_timeline_opts *o, json_t **ret)
{
        const char *dbc = o->database_component;
        struct tm_pg_windows win = { 0 };
        struct tm_snapshot *a = NULL;
        struct comp_acc *acc = NULL;
        size_t n = 0, na = 0;
        char wal[TM_DR_NAME_MAX + 8] = "", ts[40];
        json_t *out = NULL, *cj, *reports = NULL;
        int r, have_win = 0;

        *ret = NULL;
        if (dbc)
                tm_pg_wal_component(dbc, wal, sizeof(wal));
        if (!o->reports_dir || tm_dr_reports_list(o->reports_dir, &reports) < 0)
                reports = json_array();
        if (!reports)
                return -ENOMEM;
        r = tm_repo_snapshot_list(repo, NULL, &a, &n);
        if (r < 0)
                goto out;
        acc = calloc(n + o->n_components + 1, sizeof(*acc));
        if (!acc) {
                r = -ENOMEM;
                goto out;
        }
        /* the components: the ones asked for, or every one but WAL archives */
        for (size_t i = 0; i < o->n_components; i++)
                acc[na++] = (struct comp_acc){ o->components[i], json_array(), INT64_MAX };
        for (size_t i = 0; !o->n_components && i < n; i++) {
                size_t k;

                if (wal[0] && !strcmp(a[i].component, wal))
                        continue;
                for (k = 0; k < na && strcmp(acc[k].name, a[i].component); k++)
                        ;
                if (k == na)
                        acc[na++] = (struct comp_acc){ a[i].component, json_array(), INT64_MAX };
        }
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < na; k++)
                        if (!strcmp(acc[k].name, a[i].component) && a[i].time < acc[k].first)
                                acc[k].first = a[i].time;
        cj = json_object();
        out = json_object();
        if (!cj || !out) {
                json_decref(cj);
                r = -ENOMEM;
                goto out;
        }
        tm_time_format_ns(o->start, ts, sizeof(ts));
        json_object_set_new(out, "start", json_string(ts));
        tm_time_format_ns(o->end, ts, sizeof(ts));
        json_object_set_new(out, "end", json_string(ts));
        json_object_set_new(out, "components", cj);
        for (size_t i = 0; i < n; i++) {
                const struct tm_snapshot *s = &a[i];
                struct point_factors pf = { 0 };
                struct comp_acc *ca = NULL;
                double continuity = 1, complete;
                const char *cont = "files";
                char hex[TM_ID_HEX_LEN + 1];
                size_t have = 0;
                json_t *p;

                for (size_t k = 0; k < na; k++)
                        if (!strcmp(acc[k].name, s->component))
                                ca = &acc[k];
                if (!ca || s->time < o->start || s->time > o->end)
                        continue;
                if (dbc && !strcmp(s->component, dbc) && tm_pg_snapshot_is_base_backup(s)) {
                        char missing[32];
                        int64_t until;
                        int c2 = tm_pg_wal_continuous(repo, dbc, s, s->time, missing,
                                                      sizeof(missing), &until);

                        continuity = c2 == 0 ? 1 : c2 == -ERANGE ? 0.5 : 0;
                        cont = c2 == 0 ? "wal continuous" : c2 == -ERANGE ? "no wal archived after it yet"
                                                                            : "wal gap";
                }
                r = point_factors(repo, o, reports, s, &pf);
                if (r < 0)
                        goto out;
                for (size_t k = 0; k < na; k++)
                        have += acc[k].first <= s->time;
                complete = na ? (double)have / (double)na : 1;
                tm_id_hex(&s->id, hex);
                tm_time_format_ns(s->time, ts, sizeof(ts));
                p = json_pack("{s:s, s:s, s:s, s:s, s:f, s:f, s:o, s:s, s:s}", "time", ts,
                              "snapshot", hex, "strategy", s->strategy, "tier",
                              tm_tier_level_name(pf.level), "thaw_seconds",
                              (double)pf.thaw_ns / 1e9, "confidence",
                              score(continuity, &pf, complete), "factors",
                              factors_json(continuity, &pf, complete), "continuity", cont,
                              "validated_by", pf.validated_by);
                json_array_append_new(ca->points, p);
        }
        if (dbc) {
                r = tm_pg_windows_get(repo, dbc, &win);
                if (r < 0 && r != -ENOENT)
                        goto out;
                have_win = r == 0;
        }
        for (size_t k = 0; k < na; k++) {
                json_t *co = json_pack("{s:o, s:o, s:o}", "points", acc[k].points, "windows",
                                       json_array(), "gaps", json_array());
                int is_db = dbc && !strcmp(acc[k].name, dbc);

                acc[k].points = NULL;
                if (!co) {
                        r = -ENOMEM;
                        goto out;
                }
                /* every window of the database on its own (a gap ends one) */
                for (size_t w = 0; is_db && have_win && w < win.n; w++) {
                        const struct tm_pg_window *pw = &win.w[w];
                        struct point_factors pf = { .validation = 0.5, .tier = 1 };
                        char es[40], ls[40], hex[TM_ID_HEX_LEN + 1];
                        size_t have = 0;
                        double complete;

                        if (pw->latest_ns < o->start || pw->earliest_ns > o->end)
                                continue;
                        snprintf(pf.validated_by, sizeof(pf.validated_by), "none");
                        for (size_t i = 0; i < n; i++)
                                if (!tm_id_cmp(&a[i].id, &pw->base)) {
                                        r = point_factors(repo, o, reports, &a[i], &pf);
                                        if (r < 0)
                                                goto out;
                                }
                        for (size_t j = 0; j < na; j++)
                                have += acc[j].first <= pw->earliest_ns;
                        complete = na ? (double)have / (double)na : 1;
                        tm_time_format_ns(pw->earliest_ns < o->start ? o->start : pw->earliest_ns,
                                          es, sizeof(es));
                        tm_time_format_ns(pw->latest_ns > o->end ? o->end : pw->latest_ns, ls,
                                          sizeof(ls));
                        tm_id_hex(&pw->base, hex);
                        /* continuous by construction: the WAL is followed
                         * segment by segment and a gap starts a new window */
                        json_array_append_new(
                                json_object_get(co, "windows"),
                                json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:f, s:f, s:o, s:s}",
                                          "from", es, "to", ls, "kind", "wal", "timeline",
                                          (int)pw->tli, "base_backup", hex, "tier",
                                          tm_tier_level_name(pf.level), "thaw_seconds",
                                          (double)pf.thaw_ns / 1e9, "confidence",
                                          score(1, &pf, complete), "factors",
                                          factors_json(1, &pf, complete), "validated_by",
                                          pf.validated_by));
                }
                for (size_t g = 0; is_db && have_win && g < win.n_gaps; g++) {
                        const struct tm_pg_gap *pg = &win.gaps[g];
                        char bs[40];

                        if (pg->before_ns < o->start || pg->before_ns > o->end)
                                continue;
                        tm_time_format_ns(pg->before_ns, bs, sizeof(bs));
                        json_array_append_new(json_object_get(co, "gaps"),
                                              json_pack("{s:i, s:s, s:s}", "timeline", (int)pg->tli,
                                                        "missing", pg->missing, "after", bs));
                }
                json_object_set_new(cj, acc[k].name, co);
        }
        *ret = out;
        out = NULL;
        r = 0;
out:
        for (size_t k = 0; acc && k < na; k++)
                json_decref(acc[k].points);
        free(acc);
        json_decref(out);
        json_decref(reports);
        if (have_win)
                tm_pg_windows_dispose(&win);
        tm_snapshot_array_free(a, n);
        return r;
}
