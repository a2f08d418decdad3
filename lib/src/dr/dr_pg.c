/*
 * Site health and one-statement SQL over libpq. Every connection is bounded:
 * connect_timeout for the handshake, tcp_user_timeout and keepalives for a
 * peer that vanishes, statement_timeout for a server that hangs, so a
 * health check never blocks the monitor for longer than the timeout.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include <tidemark/dr.h>
#include <tidemark/time.h>

#include "dr_internal.h"

int tm_dr_lsn_parse(const char *s, uint64_t *ret)
{
        unsigned hi, lo;
        int n = 0;

        if (!s || sscanf(s, "%8X/%8X%n", &hi, &lo, &n) != 2 || s[n] || strchr(s, ' ') ||
            s[0] == '-' || s[0] == '+')
                return -EINVAL;
        *ret = ((uint64_t)hi << 32) | lo;
        return 0;
}

void tm_dr_lsn_format(uint64_t lsn, char *out, size_t n)
{
        snprintf(out, n, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

static PGconn *dr_connect(const char *conninfo, int64_t timeout_ns, char *err, size_t errlen)
{
        char ct[16], tut[24], opt[64];
        long secs = (long)((timeout_ns + TM_NSEC_PER_SEC - 1) / TM_NSEC_PER_SEC);
        const char *keys[] = { "dbname",     "connect_timeout", "tcp_user_timeout",
                               "keepalives", "options",         "application_name",
                               NULL };
        const char *vals[7];
        PGconn *conn;

        /* libpq treats connect_timeout below 2 as 2 */
        snprintf(ct, sizeof(ct), "%ld", secs < 2 ? 2 : secs);
        snprintf(tut, sizeof(tut), "%ld", (long)(timeout_ns / 1000000));
        snprintf(opt, sizeof(opt), "-c statement_timeout=%ld", (long)(timeout_ns / 1000000));
        vals[0] = conninfo;
        vals[1] = ct;
        vals[2] = tut;
        vals[3] = "1";
        vals[4] = opt;
        vals[5] = "tidemark-failoverd";
        vals[6] = NULL;
        /* expand_dbname: the site's conninfo comes first, ours override */
        conn = PQconnectdbParams(keys, vals, 1);
        if (!conn) {
                snprintf(err, errlen, "out of memory");
                return NULL;
        }
        if (PQstatus(conn) != CONNECTION_OK) {
                const char *m = PQerrorMessage(conn);
                size_t n;

                snprintf(err, errlen, "%s", m && *m ? m : "cannot connect");
                n = strlen(err);
                while (n && (err[n - 1] == '\n' || err[n - 1] == ' '))
                        err[--n] = '\0';
                for (char *p = err; *p; p++)
                        if (*p == '\n')
                                *p = ' ';
                PQfinish(conn);
                return NULL;
        }
        return conn;
}

static void result_error(PGconn *conn, PGresult *res, char *err, size_t errlen)
{
        const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(conn);
        size_t n;

        snprintf(err, errlen, "%s", m && *m ? m : "query failed");
        n = strlen(err);
        while (n && err[n - 1] == '\n')
                err[--n] = '\0';
        for (char *p = err; *p; p++)
                if (*p == '\n')
                        *p = ' ';
}

int tm_dr_sql(const char *conninfo, int64_t timeout_ns, const char *sql, char *out, size_t n,
              char *err, size_t errlen)
{
        PGconn *conn = dr_connect(conninfo, timeout_ns, err, errlen);
        PGresult *res = NULL;
        int r = 0;

        if (out && n)
                out[0] = '\0';
        if (!conn)
                return -ECONNREFUSED;
        res = PQexec(conn, sql);
        if (!res || (PQresultStatus(res) != PGRES_TUPLES_OK &&
                     PQresultStatus(res) != PGRES_COMMAND_OK)) {
                result_error(conn, res, err, errlen);
                r = -EPROTO;
                goto out;
        }
        if (out && n && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 &&
            PQnfields(res) > 0)
                snprintf(out, n, "%s", PQgetvalue(res, 0, 0));
out:
        PQclear(res);
        PQfinish(conn);
        return r;
}

void tm_dr_health_dispose(struct tm_dr_health *h)
{
        if (!h)
                return;
        json_decref(h->senders);
        h->senders = NULL;
}

static const char probe_sql[] =
        "SELECT pg_is_in_recovery(),"
        " CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END,"
        " pg_last_wal_receive_lsn(),"
        " (SELECT status FROM pg_stat_wal_receiver LIMIT 1),"
        " (SELECT coalesce(sender_host, '') || ':' || coalesce(sender_port::text, '')"
        "    FROM pg_stat_wal_receiver LIMIT 1),"
        " (extract(epoch FROM pg_last_xact_replay_timestamp()) * 1000000)::bigint,"
        " CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() IS NULL"
        "   OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
        "   ELSE extract(epoch FROM clock_timestamp() - pg_last_xact_replay_timestamp()) END,"
        " (SELECT timeline_id FROM pg_control_checkpoint())";

static const char senders_sql[] =
        "SELECT application_name, coalesce(client_addr::text, 'local'), state,"
        " sent_lsn, flush_lsn, replay_lsn,"
        " coalesce(extract(epoch FROM replay_lag), 0), sync_state,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint"
        " FROM pg_stat_replication ORDER BY application_name";

static const char *val(PGresult *res, int row, int col)
{
        return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

int tm_dr_probe(const char *conninfo, int64_t timeout_ns, struct tm_dr_health *ret)
{
        PGconn *conn;
        PGresult *res = NULL;
        const char *v;
        int r = 0;

        memset(ret, 0, sizeof(*ret));
        ret->checked_at = tm_time_now();
        conn = dr_connect(conninfo, timeout_ns, ret->error, sizeof(ret->error));
        if (!conn)
                return 0;
        res = PQexec(conn, probe_sql);
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
                result_error(conn, res, ret->error, sizeof(ret->error));
                goto out;
        }
        ret->in_recovery = !strcmp(PQgetvalue(res, 0, 0), "t");
        if ((v = val(res, 0, 1)))
                tm_dr_lsn_parse(v, &ret->lsn);
        if ((v = val(res, 0, 2)))
                tm_dr_lsn_parse(v, &ret->receive_lsn);
        ret->receiver_streaming = (v = val(res, 0, 3)) && !strcmp(v, "streaming");
        if ((v = val(res, 0, 4)))
                snprintf(ret->upstream, sizeof(ret->upstream), "%s", v);
        if ((v = val(res, 0, 5)))
                ret->last_replay_ns = strtoll(v, NULL, 10) * 1000;
        if ((v = val(res, 0, 6)))
                ret->lag_seconds = strtod(v, NULL);
        if ((v = val(res, 0, 7)))
                ret->timeline = (uint32_t)strtoul(v, NULL, 10);
        PQclear(res);
        res = NULL;
        ret->senders = json_array();
        if (!ret->senders) {
                r = -ENOMEM;
                goto out;
        }
        if (!ret->in_recovery) {
                res = PQexec(conn, senders_sql);
                if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
                        result_error(conn, res, ret->error, sizeof(ret->error));
                        goto out;
                }
                for (int i = 0; i < PQntuples(res); i++) {
                        json_t *o = json_pack(
                                "{s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:f, s:s?, s:I}",
                                "application_name", PQgetvalue(res, i, 0), "client", val(res, i, 1),
                                "state", val(res, i, 2), "sent_lsn", val(res, i, 3), "flush_lsn",
                                val(res, i, 4), "replay_lsn", val(res, i, 5), "lag_seconds",
                                strtod(PQgetvalue(res, i, 6), NULL), "sync_state", val(res, i, 7),
                                "lag_bytes",
                                (json_int_t)(val(res, i, 8) ? strtoll(val(res, i, 8), NULL, 10) : 0));

                        if (!o || json_array_append_new(ret->senders, o) < 0) {
                                r = -ENOMEM;
                                goto out;
                        }
                }
        }
        ret->reachable = 1;
out:
        PQclear(res);
        PQfinish(conn);
        return r;
}

json_t *tm_dr_health_json(const struct tm_dr_health *h)
{
        char lsn[24], rlsn[24], at[40] = "", replay[40] = "";
        json_t *o;

        if (h->checked_at)
                tm_time_format_ns(h->checked_at, at, sizeof(at));
        if (!h->reachable)
                return json_pack("{s:b, s:s, s:s, s:s}", "reachable", 0, "role", "unknown",
                                 "checked_at", at, "error", h->error);
        tm_dr_lsn_format(h->lsn, lsn, sizeof(lsn));
        tm_dr_lsn_format(h->receive_lsn, rlsn, sizeof(rlsn));
        o = json_pack("{s:b, s:s, s:s, s:s, s:i}", "reachable", 1, "role",
                      h->in_recovery ? "standby" : "primary", "checked_at", at, "lsn", lsn,
                      "timeline", (int)h->timeline);
        if (!o)
                return NULL;
        if (h->in_recovery) {
                if (h->last_replay_ns)
                        tm_time_format_ns(h->last_replay_ns, replay, sizeof(replay));
                json_object_set_new(o, "receive_lsn", json_string(rlsn));
                json_object_set_new(o, "wal_receiver",
                                    json_string(h->receiver_streaming ? "streaming" : "none"));
                json_object_set_new(o, "upstream", json_string(h->upstream));
                json_object_set_new(o, "last_replay", replay[0] ? json_string(replay) : json_null());
                json_object_set_new(o, "lag_seconds", json_real(h->lag_seconds));
        } else {
                json_object_set_new(o, "senders", h->senders ? json_deep_copy(h->senders)
                                                             : json_array());
        }
        return o;
}

int tm_dr__conninfo_hostport(const char *conninfo, char *host, size_t hn, char *port, size_t pn)
{
        PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);

        host[0] = port[0] = '\0';
        if (!opts)
                return -EINVAL;
        for (PQconninfoOption *o = opts; o->keyword; o++) {
                if (!o->val)
                        continue;
                if (!strcmp(o->keyword, "host") || (!host[0] && !strcmp(o->keyword, "hostaddr")))
                        snprintf(host, hn, "%s", o->val);
                else if (!strcmp(o->keyword, "port"))
                        snprintf(port, pn, "%s", o->val);
        }
        PQconninfoFree(opts);
        return 0;
}
