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

#include <tidemark/core.h>
#include <tidemark/dr.h>
#include <tidemark/pg.h>
#include <tidemark/log.h>
#include <tidemark/snapshot.h>
#include <tidemark/ops.h>
#include <tidemark/time.h>

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
                         int port, const char *component, json_t **ret_db,
                         int64_t *ret_ready_mono, char *err, size_t errlen)
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
                r = tm_dr_sql(ci, c->connect_timeout_ns, "SELECT pg_is_in_recovery()", v,
                              sizeof(v), msg, sizeof(msg));
                if (r == 0 && !strcmp(v, "f"))
                        break;
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

int tm_dr__restore(tm_repo *repo, const char *comp, int is_db, int64_t target_ns,
                   const char *dir, const char *restore_command, json_t **ret_info, char *err,
                   size_t errlen)
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
                r = tm_dr__scratch_start(c, dir, o->dest, o->start_port, comp, &db, NULL, err,
                                         errlen);
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

struct comp_acc {
        const char *name;
        json_t *points;
        int64_t first; /* its earliest point */
};

int tm_dr_timeline(tm_repo *repo, const char *dbc, const char *const *components,
                   size_t n_components, int64_t start, int64_t end, json_t **ret)
{
        struct tm_snapshot *a = NULL;
        struct comp_acc *acc = NULL;
        size_t n = 0, na = 0;
        char wal[TM_DR_NAME_MAX + 8] = "", ts[40];
        json_t *out = NULL, *cj;
        double db_last = -1; /* the newest base backup's confidence */
        int r;

        *ret = NULL;
        if (dbc)
                tm_pg_wal_component(dbc, wal, sizeof(wal));
        r = tm_repo_snapshot_list(repo, NULL, &a, &n);
        if (r < 0)
                return r;
        acc = calloc(n + n_components + 1, sizeof(*acc));
        if (!acc) {
                r = -ENOMEM;
                goto out;
        }
        /* the components: the ones asked for, or every one but WAL archives */
        for (size_t i = 0; i < n_components; i++)
                acc[na++] = (struct comp_acc){ components[i], json_array(), INT64_MAX };
        for (size_t i = 0; !n_components && i < n; i++) {
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
        tm_time_format_ns(start, ts, sizeof(ts));
        json_object_set_new(out, "start", json_string(ts));
        tm_time_format_ns(end, ts, sizeof(ts));
        json_object_set_new(out, "end", json_string(ts));
        json_object_set_new(out, "components", cj);
        for (size_t i = 0; i < n; i++) {
                const struct tm_snapshot *s = &a[i];
                struct comp_acc *ca = NULL;
                double continuity = 1, validated, tier = 1, complete, score;
                const char *cont = "files";
                char hex[TM_ID_HEX_LEN + 1];
                size_t have = 0;

                for (size_t k = 0; k < na; k++)
                        if (!strcmp(acc[k].name, s->component))
                                ca = &acc[k];
                if (!ca || s->time < start || s->time > end)
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
                validated = s->summary.files_failed ? 0 : 1;
                for (size_t k = 0; k < na; k++)
                        have += acc[k].first <= s->time;
                complete = na ? (double)have / (double)na : 1;
                score = 0.4 * continuity + 0.2 * validated + 0.2 * tier + 0.2 * complete;
                if (dbc && !strcmp(s->component, dbc))
                        db_last = score;
                tm_id_hex(&s->id, hex);
                tm_time_format_ns(s->time, ts, sizeof(ts));
                json_array_append_new(
                        ca->points,
                        json_pack("{s:s, s:s, s:s, s:s, s:f, s:{s:f, s:f, s:f, s:f}, s:s}", "time",
                                  ts, "snapshot", hex, "strategy", s->strategy, "tier", "hot",
                                  "confidence", score, "factors", "continuity", continuity,
                                  "validation", validated, "tier", tier, "completeness", complete,
                                  "continuity", cont));
        }
        for (size_t k = 0; k < na; k++) {
                json_t *o = json_pack("{s:o, s:o}", "points", acc[k].points, "windows",
                                      json_array());
                int64_t e, l;

                acc[k].points = NULL;
                if (!o)
                        continue;
                if (dbc && !strcmp(acc[k].name, dbc) && tm_pg_window(repo, dbc, &e, &l) == 0 &&
                    l >= start && e <= end) {
                        char es[40], ls[40];

                        tm_time_format_ns(e < start ? start : e, es, sizeof(es));
                        tm_time_format_ns(l > end ? end : l, ls, sizeof(ls));
                        json_array_append_new(json_object_get(o, "windows"),
                                              json_pack("{s:s, s:s, s:s, s:f}", "from", es, "to",
                                                        ls, "kind", "wal", "confidence",
                                                        db_last >= 0 ? db_last : 0.6));
                }
                json_object_set_new(cj, acc[k].name, o);
        }
        *ret = out;
        out = NULL;
        r = 0;
out:
        for (size_t k = 0; acc && k < na; k++)
                json_decref(acc[k].points);
        free(acc);
        json_decref(out);
        tm_snapshot_array_free(a, n);
        return r;
}
