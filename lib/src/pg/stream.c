/*
 * pg/stream.c: WAL streamed from a physical replication slot
 * (START_REPLICATION), like pg_receivewal, into the repository. The
 * protocol is in PostgreSQL's "Streaming Replication Protocol" chapter:
 * XLogData ('w') and keepalive ('k') messages in, standby status updates
 * ('r') out. The slot is only ever told that WAL committed to the
 * repository is flushed, so the server keeps everything after it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <tidemark/log.h>
#include <tidemark/pg.h>
#include <tidemark/time.h>

#include "pg_internal.h"

#define PG_EPOCH_UNIX_US (INT64_C(946684800) * 1000000)
#define SLOT_NAME_MAX    63

struct stream {
        tm_repo *repo;
        const struct tm_pg_stream_opts *o;
        char comp[256];
        const char *slot;
        PGconn *conn;
        uint64_t segsz;
        uint8_t *buf;       /* the segment being received */
        uint64_t seg_start; /* its LSN */
        int spool;          /* an unlinked file with the same bytes, for tm_backup_run */
        tm_id partial;      /* our stored .partial of this segment, replaced by the next */
        int have_partial;
        int64_t recv_caught_up_ns;         /* server time when received covered the server's end */
        int64_t stored_caught_up_ns;       /* the same, as last stored */
        int64_t last_partial, last_status; /* monotonic */
        uint64_t slot_restart;             /* the slot's position when we started */
        struct tm_pg_stream_status st;
};

static uint64_t get_be64(const uint8_t *p)
{
        uint64_t v = 0;

        for (int i = 0; i < 8; i++)
                v = v << 8 | p[i];
        return v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
        for (int i = 7; i >= 0; i--, v >>= 8)
                p[i] = (uint8_t)v;
}

static int64_t pg_time_to_ns(uint64_t pg_us)
{
        return ((int64_t)pg_us + PG_EPOCH_UNIX_US) * 1000;
}

static int slot_name_valid(const char *s)
{
        size_t n = strlen(s);

        return n > 0 && n <= SLOT_NAME_MAX &&
               strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

static void seg_name(uint32_t tli, uint64_t lsn, uint64_t segsz, int partial, char *out, size_t n)
{
        uint64_t segno = lsn / segsz, per_log = UINT64_C(0x100000000) / segsz;

        snprintf(out, n, "%08X%08X%08X%s", tli, (unsigned)(segno / per_log),
                 (unsigned)(segno % per_log), partial ? ".partial" : "");
}

/* Standby status update: the slot may advance to stored_lsn. */
static int send_status(struct stream *s, int reply)
{
        uint8_t m[34];
        int64_t now_us = tm_time_now() / 1000;

        m[0] = 'r';
        put_be64(m + 1, s->st.received_lsn);
        /* a physical slot takes the flush position as its restart point
         * even backwards, and a checkpoint may then invalidate it: until
         * what is stored passes where the slot stood, say nothing
         * (InvalidXLogRecPtr) */
        put_be64(m + 9, s->st.stored_lsn >= s->slot_restart ? s->st.stored_lsn : 0);
        put_be64(m + 17, 0); /* applied: nothing is applied here */
        put_be64(m + 25, (uint64_t)(now_us - PG_EPOCH_UNIX_US));
        m[33] = (uint8_t)reply;
        if (PQputCopyData(s->conn, (const char *)m, sizeof(m)) <= 0 || PQflush(s->conn) < 0)
                return tm_pg__fail(s->conn, -EPROTO, "cannot send the standby status");
        s->last_status = tm_time_mono();
        return 0;
}

/* A fresh segment starting at lsn: zeroes in memory and in the spool. */
static int seg_reset(struct stream *s, uint64_t lsn)
{
        s->seg_start = lsn;
        memset(s->buf, 0, s->segsz);
        s->have_partial = 0;
        if (ftruncate(s->spool, 0) < 0 || ftruncate(s->spool, (off_t)s->segsz) < 0)
                return tm_log_errno(TM_LOG_ERR, -errno, "cannot size the WAL spool file");
        return 0;
}

/* Commit the segment (whole, or what was received of it as .partial) to
 * the repository, drop the .partial it replaces, tell the server. */
static int seg_store(struct stream *s, int complete)
{
        struct tm_snapshot snap = { 0 };
        struct tm_pg_walscan sc;
        uint64_t len = complete ? s->segsz : s->st.received_lsn - s->seg_start;
        int64_t received = 0;
        char name[48];
        int r;

        if (len == 0)
                return 0;
        r = tm_pg_wal_scan(s->buf, len, &sc);
        if (r < 0)
                return tm_log_errno(TM_LOG_ERR, r,
                                    "the server sent a WAL segment at %X/%X that "
                                    "does not start with a valid page header",
                                    (unsigned)(s->seg_start >> 32), (unsigned)s->seg_start);
        /* the stored WAL holds everything the server had at that time */
        if (s->st.received_lsn == s->seg_start + len)
                received = s->recv_caught_up_ns;
        seg_name(s->st.tli, s->seg_start, s->segsz, !complete, name, sizeof(name));
        r = tm_pg__wal_store(s->repo, s->comp, name, s->spool, &sc, !complete, received, &snap);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot store WAL %s", name);
                goto out;
        }
        if (s->have_partial) {
                r = tm_repo_snapshot_remove(s->repo, &s->partial);
                if (r < 0)
                        tm_log_errno(TM_LOG_WARN, r, "cannot remove the superseded %s.partial",
                                     name);
        }
        s->partial = snap.id;
        s->have_partial = !complete;
        s->st.stored_lsn = s->seg_start + len;
        if (received)
                s->st.caught_up_ns = s->stored_caught_up_ns = received;
        if (sc.last_commit_ns > s->st.last_commit_ns)
                s->st.last_commit_ns = sc.last_commit_ns;
        s->st.stored_at_ns = tm_time_now();
        if (complete)
                s->st.segments++;
        else
                s->st.partials++;
        s->last_partial = tm_time_mono();
        tm_log(TM_LOG_DEBUG, "stored WAL %s up to %X/%X", name, (unsigned)(s->st.stored_lsn >> 32),
               (unsigned)s->st.stored_lsn);
        if (s->o->on_status)
                s->o->on_status(&s->st, s->o->userdata);
        r = send_status(s, 0);
out:
        tm_snapshot_dispose(&snap);
        return r;
}

static int on_xlogdata(struct stream *s, const uint8_t *m, size_t n)
{
        uint64_t at, end;
        const uint8_t *d;
        size_t len;

        if (n < 25)
                return tm_log_errno(TM_LOG_ERR, -EPROTO, "short XLogData message");
        at = get_be64(m + 1);
        end = get_be64(m + 9);
        d = m + 25;
        len = n - 25;
        if (at != s->st.received_lsn)
                return tm_log_errno(
                        TM_LOG_ERR, -EPROTO, "the server sent WAL at %X/%X, expected %X/%X",
                        (unsigned)(at >> 32), (unsigned)at, (unsigned)(s->st.received_lsn >> 32),
                        (unsigned)s->st.received_lsn);
        while (len > 0) {
                uint64_t off = at - s->seg_start, k = s->segsz - off;

                if (k > len)
                        k = len;
                memcpy(s->buf + off, d, k);
                if (pwrite(s->spool, d, k, (off_t)off) != (ssize_t)k)
                        return tm_log_errno(TM_LOG_ERR, errno ? -errno : -ENOSPC,
                                            "cannot write the WAL spool file");
                at += k;
                d += k;
                len -= k;
                s->st.received_lsn = at;
                if (at == s->seg_start + s->segsz) {
                        int r = seg_store(s, 1);

                        if (r == 0)
                                r = seg_reset(s, at);
                        if (r < 0)
                                return r;
                }
        }
        if (end > s->st.server_lsn)
                s->st.server_lsn = end;
        if (s->st.received_lsn >= end)
                s->recv_caught_up_ns = pg_time_to_ns(get_be64(m + 17));
        return 0;
}

static int on_keepalive(struct stream *s, const uint8_t *m, size_t n)
{
        uint64_t end;
        int64_t at;

        if (n < 18)
                return tm_log_errno(TM_LOG_ERR, -EPROTO, "short keepalive message");
        end = get_be64(m + 1);
        at = pg_time_to_ns(get_be64(m + 9));
        if (end > s->st.server_lsn)
                s->st.server_lsn = end;
        if (s->st.received_lsn >= end) {
                s->recv_caught_up_ns = at;
                /* nothing new: what is stored is all the server has */
                if (s->st.stored_lsn >= end) {
                        s->st.caught_up_ns = at;
                        if (s->o->on_status)
                                s->o->on_status(&s->st, s->o->userdata);
                }
        }
        return m[17] ? send_status(s, 0) : 0;
}

static PGresult *exec_ok(struct stream *s, const char *cmd, ExecStatusType want)
{
        PGresult *res = PQexec(s->conn, cmd);

        if (PQresultStatus(res) != want) {
                char what[160];

                snprintf(what, sizeof(what), "%.120s failed", cmd);
                tm_pg__fail(s->conn, -EPROTO, what);
                PQclear(res);
                return NULL;
        }
        return res;
}

/* Connect, identify, make sure the slot exists; the server's timeline and
 * position, and the slot's restart position (0 if new). */
static int stream_connect(struct stream *s, uint32_t *ret_tli, uint64_t *ret_pos,
                          uint64_t *ret_restart)
{
        const char *kw[] = { "dbname", "replication", "fallback_application_name", NULL };
        const char *val[] = { s->o->conninfo, "true", "tidemark-wal-stream", NULL };
        PGresult *res = NULL;
        char cmd[160];
        int r = 0;

        s->conn = PQconnectdbParams(kw, val, 1);
        if (!s->conn)
                return -ENOMEM;
        if (PQstatus(s->conn) != CONNECTION_OK)
                return tm_pg__fail(s->conn, -ECONNREFUSED, "cannot connect");
        PQsetNoticeProcessor(s->conn, tm_pg__notice, NULL);
        if (PQserverVersion(s->conn) < 150000)
                return tm_log_errno(TM_LOG_ERR, -ENOTSUP,
                                    "PostgreSQL %d: WAL streaming needs PostgreSQL 15 or later",
                                    PQserverVersion(s->conn) / 10000);
        res = exec_ok(s, "IDENTIFY_SYSTEM", PGRES_TUPLES_OK);
        if (!res || PQntuples(res) != 1 || PQnfields(res) < 3 ||
            tm_pg_lsn_parse(PQgetvalue(res, 0, 2), ret_pos) < 0 ||
            (*ret_tli = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10)) == 0) {
                r = res ? tm_log_errno(TM_LOG_ERR, -EPROTO, "unexpected IDENTIFY_SYSTEM answer")
                        : -EPROTO;
                goto out;
        }
        PQclear(res);
        res = exec_ok(s, "SHOW wal_segment_size", PGRES_TUPLES_OK);
        if (!res || PQntuples(res) != 1 || !(s->segsz = tm_pg__parse_size(PQgetvalue(res, 0, 0)))) {
                r = -EPROTO;
                goto out;
        }
        PQclear(res);
        /* read, create if missing, read again: CREATE answers no position
         * for a physical slot */
        for (int pass = 0; pass < 2; pass++) {
                snprintf(cmd, sizeof(cmd), "READ_REPLICATION_SLOT %s", s->slot);
                res = exec_ok(s, cmd, PGRES_TUPLES_OK);
                if (!res || PQntuples(res) != 1 || PQnfields(res) < 2) {
                        r = -EPROTO;
                        goto out;
                }
                *ret_restart = 0;
                if (!PQgetisnull(res, 0, 0)) {
                        if (strcmp(PQgetvalue(res, 0, 0), "physical") != 0) {
                                r = tm_log_errno(TM_LOG_ERR, -EINVAL,
                                                 "replication slot '%s' is %s, not physical",
                                                 s->slot, PQgetvalue(res, 0, 0));
                                goto out;
                        }
                        if (!PQgetisnull(res, 0, 1))
                                tm_pg_lsn_parse(PQgetvalue(res, 0, 1), ret_restart);
                        break;
                }
                PQclear(res);
                snprintf(cmd, sizeof(cmd), "CREATE_REPLICATION_SLOT %s PHYSICAL RESERVE_WAL",
                         s->slot);
                res = exec_ok(s, cmd, PGRES_TUPLES_OK);
                if (!res) {
                        r = -EPROTO;
                        goto out;
                }
                tm_log(TM_LOG_INFO, "created the physical replication slot '%s'", s->slot);
                PQclear(res);
                res = NULL;
        }
out:
        PQclear(res);
        return r;
}

/* Where to start: after the last segment stored, or at the start of the
 * one stored partially (re-read whole: the slot kept it). */
static int start_point(struct stream *s, uint32_t server_tli, uint64_t server_pos, uint64_t restart,
                       uint32_t *ret_tli, uint64_t *ret_lsn, tm_id *ret_partial,
                       int *ret_have_partial)
{
        struct tm_pg_walseg *e = NULL;
        size_t n = 0;
        uint64_t lsn;
        uint32_t tli = server_tli;
        int r;

        r = tm_pg_wal_index(s->repo, s->o->component, s->segsz, &e, &n);
        if (r < 0)
                return r;
        if (n) {
                /* the highest segment, its highest timeline, complete first */
                size_t k = n - 1;

                while (k > 0 && e[k - 1].segno == e[k].segno && e[k - 1].tli == e[k].tli &&
                       !e[k - 1].partial)
                        k--;
                tli = e[k].tli;
                lsn = (e[k].segno + (e[k].partial ? 0 : 1)) * s->segsz;
                /* a .partial of ours is replaced by the first store; one
                 * a promotion left on an older timeline stays (the server
                 * streams that timeline to its end and then switches) */
                if (e[k].partial) {
                        *ret_partial = e[k].snapshot;
                        *ret_have_partial = 1;
                }
        } else {
                lsn = (restart ? restart : server_pos) / s->segsz * s->segsz;
        }
        free(e);
        if (restart && restart / s->segsz * s->segsz > lsn) {
                char a[24], b[24];

                tm_pg_lsn_format(lsn, a, sizeof(a));
                tm_pg_lsn_format(restart, b, sizeof(b));
                tm_log(TM_LOG_WARN,
                       "the WAL from %s to %s is not in the repository and the slot '%s' no "
                       "longer holds it: recovery cannot cross this gap",
                       a, b, s->slot);
                lsn = restart / s->segsz * s->segsz;
        }
        *ret_tli = tli;
        *ret_lsn = lsn;
        return 0;
}

static int start_replication(struct stream *s, uint32_t tli, uint64_t lsn)
{
        PGresult *res;
        char cmd[160], at[24];

        tm_pg_lsn_format(lsn, at, sizeof(at));
        snprintf(cmd, sizeof(cmd), "START_REPLICATION SLOT %s PHYSICAL %s TIMELINE %u", s->slot, at,
                 tli);
        res = exec_ok(s, cmd, PGRES_COPY_BOTH);
        if (!res)
                return -EPROTO;
        PQclear(res);
        s->st.tli = tli;
        s->st.received_lsn = s->st.stored_lsn = lsn;
        tm_log(TM_LOG_INFO, "streaming WAL from %s on timeline %u (slot '%s')", at, tli, s->slot);
        return seg_reset(s, lsn);
}

/* The server ended the COPY: a timeline switch (the next timeline and where
 * it starts), or the end of the stream. */
static int end_of_copy(struct stream *s, uint32_t *ret_tli, uint64_t *ret_lsn)
{
        PGresult *res = PQgetResult(s->conn);
        int r = -ECONNRESET;

        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) >= 2 &&
            tm_pg_lsn_parse(PQgetvalue(res, 0, 1), ret_lsn) == 0) {
                *ret_tli = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
                r = *ret_tli ? 0 : -EPROTO;
        } else if (PQresultStatus(res) == PGRES_FATAL_ERROR) {
                r = tm_pg__fail(s->conn, -EPROTO, "the WAL stream failed");
        }
        PQclear(res);
        while ((res = PQgetResult(s->conn)))
                PQclear(res);
        if (r == -ECONNRESET)
                tm_log(TM_LOG_WARN, "the server ended the WAL stream");
        return r;
}

static int wait_input(struct stream *s, int64_t timeout_ns)
{
        int fd = PQsocket(s->conn);
        struct timeval tv;
        fd_set rd;

        if (fd < 0)
                return tm_pg__fail(s->conn, -EPROTO, "lost the connection");
        FD_ZERO(&rd);
        FD_SET(fd, &rd);
        tv.tv_sec = (time_t)(timeout_ns / TM_NSEC_PER_SEC);
        tv.tv_usec = (suseconds_t)(timeout_ns % TM_NSEC_PER_SEC / 1000);
        if (select(fd + 1, &rd, NULL, NULL, &tv) < 0 && errno != EINTR)
                return -errno;
        if (!PQconsumeInput(s->conn))
                return tm_pg__fail(s->conn, -EPROTO, "lost the connection");
        return 0;
}

static int stream_loop(struct stream *s)
{
        const struct tm_pg_stream_opts *o = s->o;
        int64_t part_iv = o->partial_interval_ns > 0 ? o->partial_interval_ns : TM_NSEC_PER_SEC;
        int64_t stat_iv = o->status_interval_ns > 0 ? o->status_interval_ns : TM_NSEC_PER_SEC;
        int64_t idle_iv = 5 * part_iv;
        int r = 0;

        for (;;) {
                int64_t now = tm_time_mono(), wait;
                char *m = NULL;
                int n;

                if (o->should_stop && o->should_stop(o->userdata))
                        return s->st.received_lsn > s->st.stored_lsn ? seg_store(s, 0) : 0;
                if (s->st.received_lsn > s->st.stored_lsn && now - s->last_partial >= part_iv) {
                        r = seg_store(s, 0);
                        if (r < 0)
                                return r;
                }
                /* an idle server: store the same .partial again (only a new
                 * manifest, the data deduplicates) so that the repository
                 * knows nothing was committed meanwhile and the window
                 * keeps up with the clock */
                if (s->st.received_lsn == s->st.stored_lsn && s->st.received_lsn > s->seg_start &&
                    s->recv_caught_up_ns - s->stored_caught_up_ns >= idle_iv &&
                    now - s->last_partial >= idle_iv) {
                        r = seg_store(s, 0);
                        if (r < 0)
                                return r;
                }
                /* asking for a reply keeps the server's "caught up" time
                 * fresh when nothing is written: the RPO of an idle server */
                if (now - s->last_status >= stat_iv) {
                        r = send_status(s, 1);
                        if (r < 0)
                                return r;
                }
                n = PQgetCopyData(s->conn, &m, 1);
                if (n == 0) {
                        wait = TM_NSEC_PER_SEC / 5;
                        r = wait_input(s, wait);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n == -1) {
                        uint32_t tli = 0;
                        uint64_t lsn = 0;

                        r = end_of_copy(s, &tli, &lsn);
                        if (r == 0) {
                                /* the old timeline's last segment, as .partial, for good */
                                r = seg_store(s, 0);
                                s->have_partial = 0;
                                tm_log(TM_LOG_INFO, "timeline %u ends at %X/%X, following %u",
                                       s->st.tli, (unsigned)(lsn >> 32), (unsigned)lsn, tli);
                                if (r == 0)
                                        r = start_replication(s, tli, lsn / s->segsz * s->segsz);
                        } else if (s->st.received_lsn > s->st.stored_lsn) {
                                seg_store(s, 0);
                        }
                        if (r < 0)
                                return r;
                        continue;
                }
                if (n < 0)
                        return tm_pg__fail(s->conn, -EPROTO, "the WAL stream broke");
                if (m[0] == 'w')
                        r = on_xlogdata(s, (const uint8_t *)m, (size_t)n);
                else if (m[0] == 'k')
                        r = on_keepalive(s, (const uint8_t *)m, (size_t)n);
                else
                        r = tm_log_errno(TM_LOG_ERR, -EPROTO,
                                         "unknown message '%c' in the WAL "
                                         "stream",
                                         m[0]);
                PQfreemem(m);
                if (r < 0)
                        return r;
        }
}

int tm_pg_stream_run(tm_repo *repo, const struct tm_pg_stream_opts *o)
{
        struct stream s = { .repo = repo, .o = o, .spool = -1 };
        char spool[4200];
        const char *dir;
        uint32_t server_tli = 0, tli = 0;
        uint64_t server_pos = 0, restart = 0, lsn = 0;
        tm_id partial;
        int r, have_partial = 0;

        if (!repo || !o || !o->conninfo)
                return -EINVAL;
        s.slot = o->slot && *o->slot ? o->slot : "tidemark";
        if (!slot_name_valid(s.slot))
                return tm_log_errno(TM_LOG_ERR, -EINVAL,
                                    "invalid replication slot name '%s' (lower-case letters, "
                                    "digits and '_', at most 63)",
                                    s.slot);
        r = tm_pg_wal_component(o->component, s.comp, sizeof(s.comp));
        if (r < 0)
                return r;
        dir = o->staging && *o->staging ? o->staging : getenv("TMPDIR");
        snprintf(spool, sizeof(spool), "%s/tidemark-wal-XXXXXX", dir && *dir ? dir : "/var/tmp");
        s.spool = mkstemp(spool);
        if (s.spool < 0)
                return tm_log_errno(TM_LOG_ERR, -errno, "cannot create a spool file in '%s'",
                                    dir && *dir ? dir : "/var/tmp");
        unlink(spool);
        r = stream_connect(&s, &server_tli, &server_pos, &restart);
        if (r < 0)
                goto out;
        s.buf = malloc(s.segsz);
        if (!s.buf) {
                r = -ENOMEM;
                goto out;
        }
        s.slot_restart = restart;
        r = start_point(&s, server_tli, server_pos, restart, &tli, &lsn, &partial, &have_partial);
        if (r == 0)
                r = start_replication(&s, tli, lsn);
        if (r == 0 && have_partial && lsn / s.segsz * s.segsz == lsn) {
                s.partial = partial;
                s.have_partial = 1;
        }
        if (r == 0)
                r = stream_loop(&s);
        if (r == 0 && PQputCopyEnd(s.conn, NULL) > 0)
                PQflush(s.conn);
out:
        if (s.conn)
                PQfinish(s.conn);
        if (s.spool >= 0)
                close(s.spool);
        free(s.buf);
        return r;
}
