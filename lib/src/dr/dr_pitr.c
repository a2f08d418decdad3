/*
 * Point-in-time recovery on demand and the recovery timeline. The restore
 * itself is `tidemark restore @T`, the one implementation of choosing the
 * base backup, checking the window and the WAL's continuity and writing the
 * recovery settings; this file adds what a DR orchestrator needs around it:
 * several components, a scratch server started on the result, the instant
 * it really reached, and the confidence of every recovery point.
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
#include <tidemark/time.h>

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
        nl = strrchr(out, '\n');
        return nl ? nl + 1 : out;
}

int tm_dr_pitr(const struct tm_dr_conf *c, const struct tm_dr_pitr_opts *o, struct tm_dr_log *log,
               json_t **ret, char *err, size_t errlen)
{
        char t[40], at[48], prog[4096], dir[4096], logf[4200], opts[4400], port_s[16], ci[4200];
        const char *argv[64];
        json_t *comps = json_array(), *db = NULL;
        char *out = NULL;
        int r = 0, port = 0;

        *ret = NULL;
        if (!comps)
                return -ENOMEM;
        tm_time_format_ns(o->target_ns, t, sizeof(t));
        snprintf(at, sizeof(at), "@%s", t);
        snprintf(prog, sizeof(prog), "%s/pg_ctl", c->pg_bin);
        for (size_t i = 0; i < o->n_components; i++) {
                const char *comp = o->components[i];
                int is_db = o->database_component && !strcmp(comp, o->database_component);
                size_t n = 0;

                snprintf(dir, sizeof(dir), "%s/%s", o->dest, comp);
                if (is_db && access(dir, F_OK) == 0) {
                        /* a scratch server of an earlier recovery */
                        const char *stop[] = { prog, "stop", "-D", dir, "-m", "immediate", NULL };

                        tm_dr_exec(stop, NULL, 60 * TM_NSEC_PER_SEC, NULL);
                }
                if (access(dir, F_OK) == 0) {
                        const char *rm[] = { "/bin/rm", "-rf", "--", dir, NULL };

                        tm_dr_exec(rm, NULL, 300 * TM_NSEC_PER_SEC, NULL);
                }
                argv[n++] = o->tidemark;
                for (size_t k = 0; o->repo_args && o->repo_args[k] && n < 50; k++)
                        argv[n++] = o->repo_args[k];
                argv[n++] = "restore";
                argv[n++] = "--component";
                argv[n++] = comp;
                argv[n++] = at;
                argv[n++] = "--target";
                argv[n++] = dir;
                argv[n] = NULL;
                {
                        char name[128];
                        json_t *st;

                        snprintf(name, sizeof(name), "restore %s", comp);
                        st = json_pack("{s:s, s:s}", "step", name, "state", "running");
                        if (st) {
                                pthread_mutex_lock(&log->lock);
                                json_array_append_new(log->steps, st);
                                pthread_mutex_unlock(&log->lock);
                        }
                        r = tm_dr_exec(argv, NULL, 3600 * TM_NSEC_PER_SEC, &out);
                        if (st) {
                                pthread_mutex_lock(&log->lock);
                                json_object_set_new(st, "state",
                                                    json_string(r == 0 ? "succeeded" : "failed"));
                                json_object_set_new(st, "detail", json_string(out ? out : ""));
                                pthread_mutex_unlock(&log->lock);
                        }
                }
                if (r != 0) {
                        const char *l = last_line(out);

                        if (!strncmp(l, "tidemark: error: ", 17))
                                l += 17;
                        snprintf(err, errlen, "component '%s': %s", comp, l);
                        r = r < 0 ? r : -EPROTO;
                        goto out;
                }
                free(out);
                out = NULL;
                json_array_append_new(comps, json_pack("{s:s, s:s, s:s}", "component", comp,
                                                       "path", dir, "status", "restored"));
                if (!is_db || !o->start_port)
                        continue;

                /* a scratch server: loopback only, not archiving into the
                 * production archive, its socket in the destination */
                port = o->start_port > 0 ? o->start_port : pick_port();
                if (port < 0) {
                        r = port;
                        snprintf(err, errlen, "no free port for the scratch server");
                        goto out;
                }
                snprintf(port_s, sizeof(port_s), "%d", port);
                snprintf(logf, sizeof(logf), "%s/%s-postgres.log", o->dest, comp);
                snprintf(opts, sizeof(opts),
                         "-p %d -c listen_addresses=127.0.0.1 -c archive_mode=off "
                         "-c unix_socket_directories='%s'",
                         port, o->dest);
                {
                        const char *start[] = { prog, "start", "-D", dir, "-l", logf, "-w",
                                                "-t", "300", "-o", opts, NULL };

                        r = tm_dr_exec(start, NULL, 310 * TM_NSEC_PER_SEC, &out);
                }
                if (r != 0) {
                        snprintf(err, errlen, "the scratch server did not start (see %s): %s",
                                 logf, last_line(out));
                        r = -EPROTO;
                        goto out;
                }
                free(out);
                out = NULL;
                snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d dbname=postgres", port);
                {
                        int64_t deadline = tm_time_mono() + c->catchup_timeout_ns;
                        char v[64] = "", msg[256];

                        for (;;) {
                                r = tm_dr_sql(ci, c->connect_timeout_ns,
                                              "SELECT pg_is_in_recovery()", v, sizeof(v), msg,
                                              sizeof(msg));
                                if (r == 0 && !strcmp(v, "f"))
                                        break;
                                if (tm_time_mono() > deadline) {
                                        snprintf(err, errlen,
                                                 "the scratch server did not finish recovery "
                                                 "in time (see %s)",
                                                 logf);
                                        r = -ETIMEDOUT;
                                        goto out;
                                }
                                usleep(100000);
                        }
                        /* the last commit it replayed: the instant reached */
                        r = tm_dr_sql(ci, c->connect_timeout_ns,
                                      "SELECT coalesce(to_char(pg_last_xact_replay_timestamp() "
                                      "AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '')",
                                      v, sizeof(v), msg, sizeof(msg));
                        db = json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:s}", "component", comp,
                                       "status", "running", "port", port, "host", "127.0.0.1",
                                       "conninfo", ci, "pgdata", dir, "log", logf);
                        if (db)
                                json_object_set_new(db, "reached",
                                                    r == 0 && v[0] ? json_string(v) : json_null());
                        r = 0;
                }
        }
        *ret = json_pack("{s:s, s:s, s:o, s:o}", "target_timestamp", t, "destination", o->dest,
                         "components", comps, "database", db ? db : json_null());
        comps = db = NULL;
        if (!*ret)
                r = -ENOMEM;
out:
        free(out);
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
