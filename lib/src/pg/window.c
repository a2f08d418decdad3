/*
 * pg/window.c: the WAL index (read from the WAL snapshots' manifests), the
 * recoverable windows it gives with the base backups, and the plan of a
 * point-in-time recovery. docs/format.md "PostgreSQL WAL" has the fields.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include <tidemark/log.h>
#include <tidemark/pg.h>
#include <tidemark/time.h>

#include "pg_internal.h"

#define SEGSZ_DEFAULT (16u << 20)

static int64_t jint(json_t *o, const char *k)
{
        return (int64_t)json_integer_value(json_object_get(o, k));
}

static int walseg_cmp(const void *x, const void *y)
{
        const struct tm_pg_walseg *a = x, *b = y;

        if (a->segno != b->segno)
                return a->segno < b->segno ? -1 : 1;
        if (a->tli != b->tli)
                return a->tli < b->tli ? -1 : 1;
        if (a->partial != b->partial)
                return a->partial - b->partial;
        return a->archived_ns < b->archived_ns ? -1 : a->archived_ns > b->archived_ns;
}

static void walseg_from(const struct tm_snapshot *s, const struct tm_pg_walname *w,
                        uint64_t per_log, uint64_t segsz, struct tm_pg_walseg *e)
{
        json_t *o = s->extra_json ? json_loads(s->extra_json, 0, NULL) : NULL;
        json_t *wal = json_object_get(o, "wal");

        memset(e, 0, sizeof(*e));
        snprintf(e->name, sizeof(e->name), "%s", s->tags[0]);
        e->tli = w->tli;
        e->segno = (uint64_t)w->log * per_log + w->seg;
        e->partial = w->kind == TM_PG_WAL_PARTIAL;
        e->archived_ns = s->time;
        e->snapshot = s->id;
        e->start_lsn = e->segno * segsz;
        if (json_is_object(wal) &&
            tm_pg_lsn_parse(json_string_value(json_object_get(wal, "start_lsn")), &e->start_lsn) ==
                    0 &&
            tm_pg_lsn_parse(json_string_value(json_object_get(wal, "end_lsn")), &e->end_lsn) == 0) {
                e->indexed = 1;
                e->commits = (uint64_t)jint(wal, "commits");
                e->first_commit_ns = jint(wal, "first_commit_ns");
                e->last_commit_ns = jint(wal, "last_commit_ns");
                e->received_ns = jint(wal, "received_ns");
        }
        json_decref(o);
}

int tm_pg_wal_index(tm_repo *repo, const char *component, uint64_t segsz, struct tm_pg_walseg **ret,
                    size_t *ret_n)
{
        struct tm_snapshot *a = NULL;
        struct tm_pg_walseg *e = NULL;
        size_t na = 0, n = 0;
        uint64_t per_log;
        char comp[256];
        int r;

        if (!segsz)
                segsz = SEGSZ_DEFAULT;
        per_log = UINT64_C(0x100000000) / segsz;
        r = tm_pg_wal_component(component, comp, sizeof(comp));
        if (r < 0)
                return r;
        r = tm_repo_snapshot_list(repo, comp, &a, &na);
        if (r < 0)
                return r;
        e = calloc(na ? na : 1, sizeof(*e));
        if (!e) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < na; i++) {
                struct tm_pg_walname w;

                if (a[i].n_tags != 1 || tm_pg_walname_parse(a[i].tags[0], &w) < 0 ||
                    (w.kind != TM_PG_WAL_SEGMENT && w.kind != TM_PG_WAL_PARTIAL) ||
                    w.seg >= per_log)
                        continue;
                walseg_from(&a[i], &w, per_log, segsz, &e[n++]);
        }
        qsort(e, n, sizeof(*e), walseg_cmp);
        *ret = e;
        *ret_n = n;
        e = NULL;
out:
        free(e);
        tm_snapshot_array_free(a, na);
        return r;
}

void tm_pg_windows_dispose(struct tm_pg_windows *w)
{
        if (!w)
                return;
        free(w->w);
        free(w->gaps);
        memset(w, 0, sizeof(*w));
}

struct base {
        const struct tm_snapshot *s;
        uint64_t segno;
        uint32_t tli;
};

static int push_window(struct tm_pg_windows *ws, const struct tm_pg_window *w)
{
        struct tm_pg_window *p = realloc(ws->w, (ws->n + 1) * sizeof(*p));

        if (!p)
                return -ENOMEM;
        ws->w = p;
        ws->w[ws->n++] = *w;
        return 0;
}

static int push_gap(struct tm_pg_windows *ws, uint32_t tli, uint64_t segno, uint64_t per_log,
                    int64_t before)
{
        struct tm_pg_gap *p = realloc(ws->gaps, (ws->n_gaps + 1) * sizeof(*p));

        if (!p)
                return -ENOMEM;
        ws->gaps = p;
        p = &ws->gaps[ws->n_gaps++];
        memset(p, 0, sizeof(*p));
        p->tli = tli;
        snprintf(p->missing, sizeof(p->missing), "%08X%08X%08X", tli, (unsigned)(segno / per_log),
                 (unsigned)(segno % per_log));
        p->before_ns = before;
        return 0;
}

/* The copy of each segment number recovery reads: the highest timeline (a
 * promotion's new timeline holds the old one's WAL up to the switch), and a
 * complete file before a .partial of the same timeline. */
static size_t chain_pick(const struct tm_pg_walseg *e, size_t n, size_t i)
{
        size_t best = i;

        for (size_t k = i + 1; k < n && e[k].segno == e[i].segno; k++) {
                const struct tm_pg_walseg *b = &e[best], *c = &e[k];

                if (c->tli > b->tli || (c->tli == b->tli && b->partial && !c->partial) ||
                    (c->tli == b->tli && c->partial == b->partial && c->end_lsn >= b->end_lsn))
                        best = k;
        }
        return best;
}

static int64_t seg_latest(const struct tm_pg_walseg *s)
{
        int64_t t = s->indexed ? s->last_commit_ns : s->archived_ns;

        return s->received_ns > t ? s->received_ns : t;
}

int tm_pg_windows_get(tm_repo *repo, const char *component, struct tm_pg_windows *ret)
{
        struct tm_snapshot *a = NULL;
        struct tm_pg_walseg *e = NULL;
        struct base *bb = NULL;
        struct tm_pg_windows ws = { 0 };
        size_t na = 0, ne = 0, nb = 0;
        uint64_t per_log;
        int r;

        if (!component || !*component)
                component = "database";
        r = tm_repo_snapshot_list(repo, component, &a, &na);
        if (r < 0)
                return r;
        bb = calloc(na ? na : 1, sizeof(*bb));
        if (!bb) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < na; i++) {
                uint64_t lsn, segsz;
                uint32_t tli;

                if (!tm_pg_snapshot_is_base_backup(&a[i]) ||
                    tm_pg__base_info(&a[i], &lsn, &tli, &segsz) < 0)
                        continue;
                if (!ws.segsz)
                        ws.segsz = segsz;
                bb[nb].s = &a[i];
                bb[nb].segno = lsn / segsz;
                bb[nb].tli = tli;
                nb++;
        }
        if (!nb) {
                r = -ENOENT;
                goto out;
        }
        per_log = UINT64_C(0x100000000) / ws.segsz;
        r = tm_pg_wal_index(repo, component, ws.segsz, &e, &ne);
        if (r < 0)
                goto out;

        /* base backups are by time (the snapshot list's order); follow the
         * chain from each one not already inside the previous window */
        for (size_t b = 0; b < nb; b++) {
                struct tm_pg_window w = { 0 };
                uint64_t expect = bb[b].segno;
                size_t i = 0;

                if (ws.n && bb[b].s->time <= ws.w[ws.n - 1].latest_ns &&
                    ws.w[ws.n - 1].end_lsn / ws.segsz >= bb[b].segno)
                        continue; /* recoverable from an earlier base backup already */
                w.tli = bb[b].tli;
                w.earliest_ns = w.latest_ns = bb[b].s->time;
                w.base = bb[b].s->id;
                w.start_lsn = w.end_lsn = bb[b].segno * ws.segsz;
                while (i < ne && e[i].segno < expect)
                        i++;
                while (i < ne && e[i].segno == expect) {
                        size_t k = chain_pick(e, ne, i);
                        const struct tm_pg_walseg *s = &e[k];
                        int64_t t = seg_latest(s);

                        if (s->tli != w.tli && w.latest_ns > w.earliest_ns) {
                                /* a new timeline: the old one's window ends here */
                                r = push_window(&ws, &w);
                                if (r < 0)
                                        goto out;
                                w.earliest_ns = w.latest_ns;
                                w.start_lsn = s->start_lsn;
                        }
                        w.tli = s->tli;
                        if (t > w.latest_ns)
                                w.latest_ns = t;
                        if (s->indexed && s->last_commit_ns > w.last_commit_ns)
                                w.last_commit_ns = s->last_commit_ns;
                        w.end_lsn = s->indexed ? s->end_lsn : (s->segno + 1) * ws.segsz;
                        while (i < ne && e[i].segno == expect)
                                i++;
                        expect++;
                        /* a partial segment is where the stored WAL ends for now */
                        if (s->partial)
                                break;
                }
                r = push_window(&ws, &w);
                if (r < 0)
                        goto out;
                /* WAL stored beyond a missing segment: a gap, not the end */
                for (size_t k = i; k < ne; k++)
                        if (e[k].segno > expect) {
                                r = push_gap(&ws, w.tli, expect, per_log, w.latest_ns);
                                if (r < 0)
                                        goto out;
                                break;
                        }
        }
        *ret = ws;
        ws = (struct tm_pg_windows){ 0 };
out:
        tm_pg_windows_dispose(&ws);
        free(e);
        free(bb);
        tm_snapshot_array_free(a, na);
        return r;
}

void tm_pg_windows_format(const struct tm_pg_windows *w, char *out, size_t n)
{
        size_t len = 0;

        if (n)
                out[0] = '\0';
        for (size_t i = 0; i < w->n && len < n; i++) {
                char a[40], b[40];
                int k;

                tm_time_format_ns(w->w[i].earliest_ns, a, sizeof(a));
                tm_time_format_ns(w->w[i].latest_ns, b, sizeof(b));
                k = snprintf(out + len, n - len, "%sfrom %s to %s (timeline %u)", i ? ", " : "", a,
                             b, w->w[i].tli);
                if (k < 0)
                        break;
                len += (size_t)k;
        }
}

int tm_pg_plan_pitr(tm_repo *repo, const char *component, int64_t target_ns, struct tm_pg_plan *ret,
                    char *err, size_t errlen)
{
        struct tm_pg_windows ws = { 0 };
        struct tm_snapshot *a = NULL;
        size_t na = 0, wi;
        char when[40], list[2048];
        int r;

        if (!component || !*component)
                component = "database";
        if (errlen)
                err[0] = '\0';
        memset(ret, 0, sizeof(*ret));
        r = tm_pg_windows_get(repo, component, &ws);
        if (r == -ENOENT) {
                snprintf(err, errlen, "component '%s' has no PostgreSQL base backup", component);
                return r;
        }
        if (r < 0)
                return r;
        /* the window holding the target (the last one: to the end) */
        wi = ws.n - 1;
        if (target_ns) {
                for (wi = 0; wi < ws.n; wi++)
                        if (ws.w[wi].earliest_ns <= target_ns && target_ns <= ws.w[wi].latest_ns)
                                break;
                if (wi == ws.n) {
                        tm_time_format_ns(target_ns, when, sizeof(when));
                        tm_pg_windows_format(&ws, list, sizeof(list));
                        snprintf(err, errlen,
                                 "%s is outside the recoverable window of component '%s': %s", when,
                                 component, list);
                        /* name the gaps: they are why a window ends early */
                        for (size_t g = 0; g < ws.n_gaps; g++) {
                                size_t len = strlen(err);
                                char b[40];

                                tm_time_format_ns(ws.gaps[g].before_ns, b, sizeof(b));
                                snprintf(err + len, errlen - len,
                                         "; WAL segment %s is missing from the archive (no "
                                         "recovery past %s from the base backups before it)",
                                         ws.gaps[g].missing, b);
                        }
                        r = -ERANGE;
                        goto out;
                }
        }
        /* the newest base backup of that window that ended by the target:
         * the least WAL to replay */
        r = tm_repo_snapshot_list(repo, component, &a, &na);
        if (r < 0)
                goto out;
        {
                /* windows split by timeline share their base backup: the
                 * first window of the run bounds the choice */
                int64_t from = ws.w[wi].earliest_ns;
                int64_t until = target_ns ? target_ns : ws.w[wi].latest_ns;

                for (size_t k = wi; k-- > 0 && tm_id_cmp(&ws.w[k].base, &ws.w[wi].base) == 0;)
                        from = ws.w[k].earliest_ns;
                r = -ENOENT;
                for (size_t i = na; i-- > 0;)
                        if (tm_pg_snapshot_is_base_backup(&a[i]) && a[i].time <= until &&
                            a[i].time >= from) {
                                r = tm_snapshot_copy(&a[i], &ret->base);
                                break;
                        }
        }
        if (r < 0) {
                snprintf(err, errlen, "no base backup of component '%s' to recover from",
                         component);
                goto out;
        }
        ret->target_ns = target_ns;
        ret->window = ws.w[wi];
        /* nothing committed after the target is stored: replaying to the
         * end gives the same data, where a target time never passed would
         * make PostgreSQL stop without opening */
        ret->to_end = !target_ns ||
                      (target_ns >= ws.w[wi].last_commit_ns &&
                       (wi + 1 == ws.n || tm_id_cmp(&ws.w[wi + 1].base, &ws.w[wi].base) != 0));
out:
        tm_snapshot_array_free(a, na);
        tm_pg_windows_dispose(&ws);
        return r;
}

/* A restored PGDATA must be owned by the server's user and private. */
static int pgdata_fix(const char *dir)
{
        char global[4200];
        struct stat st;

        if ((size_t)snprintf(global, sizeof(global), "%s/global", dir) >= sizeof(global))
                return -ENAMETOOLONG;
        if (stat(global, &st) < 0)
                return -errno;
        if (geteuid() == 0 && chown(dir, st.st_uid, st.st_gid) < 0)
                return -errno;
        return chmod(dir, 0700) < 0 ? -errno : 0;
}

int tm_pg_pitr_restore(tm_repo *repo, const struct tm_pg_plan *plan, const char *dir,
                       const char *restore_command, const struct tm_restore_opts *ropts)
{
        struct tm_restore_opts o = ropts ? *ropts : TM_RESTORE_OPTS_INIT;
        struct tm_restore_stats st = { 0 };
        int r;

        if (!repo || !plan || !dir || !restore_command)
                return -EINVAL;
        o.target = dir;
        r = tm_restore_run(repo, &plan->base, &o, &st);
        if (r < 0)
                return tm_log_errno(TM_LOG_ERR, r, "cannot restore the base backup into '%s'", dir);
        r = pgdata_fix(dir);
        if (r == 0)
                r = tm_pg_recovery_write(dir, restore_command, plan->to_end ? 0 : plan->target_ns);
        if (r < 0)
                return tm_log_errno(TM_LOG_ERR, r, "cannot write the recovery settings into '%s'",
                                    dir);
        return 0;
}

static int id_in(const tm_id *id, const tm_id *a, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (tm_id_cmp(id, &a[i]) == 0)
                        return 1;
        return 0;
}

int tm_pg_wal_retention(tm_repo *repo, const char *component, const tm_id *gone, size_t n_gone,
                        int dry_run, size_t *ret_removed, size_t *ret_kept)
{
        struct tm_snapshot *a = NULL;
        size_t na = 0, removed = 0, kept = 0;
        uint64_t first = UINT64_MAX, segsz = 0, per_log;
        char comp[256];
        int r;

        if (!component || !*component)
                component = "database";
        r = tm_repo_snapshot_list(repo, component, &a, &na);
        if (r < 0)
                return r;
        for (size_t i = 0; i < na; i++) {
                uint64_t lsn, sz;
                uint32_t tli;

                if (tm_pg_snapshot_is_base_backup(&a[i]) && !id_in(&a[i].id, gone, n_gone) &&
                    tm_pg__base_info(&a[i], &lsn, &tli, &sz) == 0 && lsn / sz < first) {
                        first = lsn / sz;
                        segsz = sz;
                }
        }
        tm_snapshot_array_free(a, na);
        a = NULL;
        na = 0;
        r = tm_pg_wal_component(component, comp, sizeof(comp));
        if (r < 0 || first == UINT64_MAX)
                goto out; /* no base backup: nothing is known to be unneeded */
        per_log = UINT64_C(0x100000000) / segsz;
        r = tm_repo_snapshot_list(repo, comp, &a, &na);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < na; i++) {
                struct tm_pg_walname w;

                if (a[i].n_tags != 1 || tm_pg_walname_parse(a[i].tags[0], &w) < 0 ||
                    w.kind == TM_PG_WAL_HISTORY || w.seg >= per_log ||
                    (uint64_t)w.log * per_log + w.seg >= first) {
                        kept++;
                        continue;
                }
                if (!dry_run) {
                        r = tm_repo_snapshot_remove(repo, &a[i].id);
                        if (r < 0) {
                                tm_log_errno(TM_LOG_ERR, r, "cannot remove WAL file %s",
                                             a[i].tags[0]);
                                goto out;
                        }
                }
                removed++;
        }
out:
        tm_snapshot_array_free(a, na);
        if (ret_removed)
                *ret_removed = removed;
        if (ret_kept)
                *ret_kept = kept;
        return r;
}

int tm_pg_wal_damage_window(tm_repo *repo, const char *wal_component, const char *name, char *out,
                            size_t n)
{
        struct tm_pg_windows ws = { 0 };
        struct tm_pg_walname w;
        char comp[256], a[40], b[40];
        size_t len = wal_component ? strlen(wal_component) : 0;
        uint64_t segno, per_log;
        int r;

        if (len < 5 || len - 4 >= sizeof(comp) || strcmp(wal_component + len - 4, "-wal") != 0 ||
            tm_pg_walname_parse(name, &w) < 0 ||
            (w.kind != TM_PG_WAL_SEGMENT && w.kind != TM_PG_WAL_PARTIAL))
                return -ENOENT;
        memcpy(comp, wal_component, len - 4);
        comp[len - 4] = '\0';
        r = tm_pg_windows_get(repo, comp, &ws);
        if (r < 0)
                return r;
        per_log = UINT64_C(0x100000000) / ws.segsz;
        segno = (uint64_t)w.log * per_log + w.seg;
        r = -ENOENT;
        for (size_t i = 0; i < ws.n; i++) {
                uint64_t first = ws.w[i].start_lsn / ws.segsz;
                uint64_t last = ws.w[i].end_lsn ? (ws.w[i].end_lsn - 1) / ws.segsz : first;

                if (segno < first || segno > last)
                        continue;
                tm_time_format_ns(ws.w[i].earliest_ns, a, sizeof(a));
                tm_time_format_ns(ws.w[i].latest_ns, b, sizeof(b));
                snprintf(out, n,
                         "the recoverable window of component '%s' from %s to %s (timeline %u) is "
                         "broken at WAL file %s",
                         comp, a, b, ws.w[i].tli, name);
                r = 0;
                break;
        }
        tm_pg_windows_dispose(&ws);
        return r;
}

/* ---- the earlier API (failoverd uses it) ---- */

int tm_pg_window(tm_repo *repo, const char *component, int64_t *ret_earliest, int64_t *ret_latest)
{
        struct tm_pg_windows ws = { 0 };
        int r = tm_pg_windows_get(repo, component, &ws);

        if (r < 0)
                return r;
        *ret_earliest = ws.w[0].earliest_ns;
        *ret_latest = ws.w[ws.n - 1].latest_ns;
        tm_pg_windows_dispose(&ws);
        return 0;
}

struct seg_time {
        uint64_t segno;
        int64_t time;
};

static int seg_cmp(const void *x, const void *y)
{
        const struct seg_time *a = x, *b = y;

        if (a->segno != b->segno)
                return a->segno < b->segno ? -1 : 1;
        return a->time < b->time ? -1 : a->time > b->time;
}

int tm_pg_wal_continuous(tm_repo *repo, const char *component, const struct tm_snapshot *base,
                         int64_t target_ns, char *ret_missing, size_t n, int64_t *ret_until)
{
        struct tm_snapshot *a = NULL;
        struct seg_time *segs = NULL;
        size_t na = 0, ns = 0;
        uint64_t lsn, segsz, per_log, expected;
        int64_t until;
        uint32_t tli;
        char comp[256];
        int r, reached = 0;

        r = tm_pg__base_info(base, &lsn, &tli, &segsz);
        if (r < 0)
                return r;
        per_log = UINT64_C(0x100000000) / segsz;
        expected = lsn / segsz;
        until = base->time;
        r = tm_pg_wal_component(component, comp, sizeof(comp));
        if (r < 0)
                return r;
        r = tm_repo_snapshot_list(repo, comp, &a, &na);
        if (r < 0)
                return r;
        segs = calloc(na ? na : 1, sizeof(*segs));
        if (!segs) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < na; i++) {
                struct tm_pg_walname w;

                if (a[i].n_tags != 1 || tm_pg_walname_parse(a[i].tags[0], &w) < 0 ||
                    w.kind != TM_PG_WAL_SEGMENT || w.seg >= per_log)
                        continue;
                segs[ns].segno = (uint64_t)w.log * per_log + w.seg;
                segs[ns].time = a[i].time;
                ns++;
        }
        qsort(segs, ns, sizeof(*segs), seg_cmp);
        for (size_t i = 0; i < ns && !reached; i++) {
                if (segs[i].segno < expected)
                        continue;
                if (segs[i].segno > expected)
                        break; /* a gap */
                /* every copy of this segment number (one per timeline): one
                 * archived after target holds the WAL up to target on its
                 * timeline */
                for (;;) {
                        if (segs[i].time > target_ns)
                                reached = 1;
                        else if (segs[i].time > until)
                                until = segs[i].time;
                        if (i + 1 == ns || segs[i + 1].segno != expected)
                                break;
                        i++;
                }
                expected++;
        }
        if (reached) {
                r = 0;
        } else {
                /* a gap, or simply nothing archived after target yet */
                size_t k = 0;

                while (k < ns && segs[k].segno <= expected)
                        k++;
                r = k < ns ? -ENODATA : -ERANGE;
                if (ret_missing)
                        snprintf(ret_missing, n, "%08X%08X%08X", tli,
                                 (unsigned)(expected / per_log), (unsigned)(expected % per_log));
                if (ret_until)
                        *ret_until = until;
        }
out:
        free(segs);
        tm_snapshot_array_free(a, na);
        return r;
}

