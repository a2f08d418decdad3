/*
 * The failover and failback state machine. Each flow is a sequence of named
 * steps appended to a step log; a failed step says why in its detail and
 * ends the flow. The invariant every step keeps: at no instant are two
 * sites writable. Planned: fence, then promote. Unplanned: the fence hook
 * (or the operator's force, or the standby's own confirmation that the
 * primary is gone) before promotion, never after.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tidemark/core.h>
#include <tidemark/dr.h>
#include <tidemark/log.h>
#include <tidemark/time.h>

#include "dr_internal.h"

#define POLL_NS (100 * 1000000LL)

/* ---- the step log ---- */

json_t *tm_dr__step_begin(struct tm_dr_log *l, const char *name)
{
        char ts[40];
        json_t *s;

        tm_time_format_ns(tm_time_now(), ts, sizeof(ts));
        s = json_pack("{s:s, s:s, s:s}", "step", name, "state", "running", "started", ts);
        if (!s)
                return NULL;
        pthread_mutex_lock(&l->lock);
        json_array_append(l->steps, s);
        pthread_mutex_unlock(&l->lock);
        json_decref(s); /* the array holds it */
        tm_log(TM_LOG_INFO, "step %s", name);
        return s;
}

void tm_dr__step_end(struct tm_dr_log *l, json_t *s, const char *state, const char *fmt, ...)
{
        char ts[40], detail[2048] = "";
        va_list ap;

        if (!s)
                return;
        if (fmt) {
                va_start(ap, fmt);
                vsnprintf(detail, sizeof(detail), fmt, ap);
                va_end(ap);
        }
        tm_time_format_ns(tm_time_now(), ts, sizeof(ts));
        pthread_mutex_lock(&l->lock);
        json_object_set_new(s, "state", json_string(state));
        json_object_set_new(s, "finished", json_string(ts));
        if (detail[0])
                json_object_set_new(s, "detail", json_stringn(detail, strlen(detail)));
        pthread_mutex_unlock(&l->lock);
        tm_log(!strcmp(state, "failed") ? TM_LOG_WARN : TM_LOG_INFO, "step %s %s%s%s",
               json_string_value(json_object_get(s, "step")), state, detail[0] ? ": " : "",
               detail);
}

/* ---- programs and hooks ---- */

static int pg_prog(const struct tm_dr_conf *c, const char *prog, char *out, size_t n)
{
        int w = snprintf(out, n, "%s/%s", c->pg_bin, prog);

        return w < 0 || (size_t)w >= n ? -ENAMETOOLONG : 0;
}

/* pg_ctl status: 1 running, 0 not, < 0 no such data directory. */
static int pg_running(const struct tm_dr_conf *c, const struct tm_dr_site *s)
{
        char prog[4096];
        const char *argv[] = { prog, "status", "-D", s->pgdata, NULL };
        int r;

        if (pg_prog(c, "pg_ctl", prog, sizeof(prog)) < 0)
                return -ENAMETOOLONG;
        r = tm_dr_exec(argv, NULL, 30 * TM_NSEC_PER_SEC, NULL);
        if (r == 0)
                return 1;
        if (r == 3)
                return 0;
        return r < 0 ? r : -ENOENT;
}

static int pg_ctl(const struct tm_dr_conf *c, const struct tm_dr_site *s, const char *action,
                  char **out)
{
        char prog[4096], logf[4096];
        const char *argv[12];
        int n = 0;

        if (pg_prog(c, "pg_ctl", prog, sizeof(prog)) < 0)
                return -ENAMETOOLONG;
        snprintf(logf, sizeof(logf), "%s/%s-postgres.log", c->state_dir, s->name);
        argv[n++] = prog;
        argv[n++] = action;
        argv[n++] = "-D";
        argv[n++] = s->pgdata;
        argv[n++] = "-w";
        argv[n++] = "-t";
        argv[n++] = "120";
        if (!strcmp(action, "stop")) {
                argv[n++] = "-m";
                argv[n++] = "fast";
        } else {
                argv[n++] = "-l";
                argv[n++] = logf;
        }
        argv[n] = NULL;
        return tm_dr_exec(argv, NULL, 150 * TM_NSEC_PER_SEC, out);
}

struct hook_env {
        char v[24][1024];
        const char *p[25];
        int n;
};

static void env_add(struct hook_env *e, const char *k, const char *v)
{
        if (e->n >= 24 || !v)
                return;
        snprintf(e->v[e->n], sizeof(e->v[e->n]), "%s=%s", k, v);
        e->p[e->n] = e->v[e->n];
        e->p[++e->n] = NULL;
}

static void env_site(struct hook_env *e, const char *prefix, const struct tm_dr_site *s)
{
        char k[64], host[512], port[32];

        if (!s)
                return;
        snprintf(k, sizeof(k), "%s", prefix);
        env_add(e, k, s->name);
        snprintf(k, sizeof(k), "%s_CONNINFO", prefix);
        env_add(e, k, s->conninfo);
        if (tm_dr__conninfo_hostport(s->conninfo, host, sizeof(host), port, sizeof(port)) == 0) {
                snprintf(k, sizeof(k), "%s_HOST", prefix);
                env_add(e, k, host);
                snprintf(k, sizeof(k), "%s_PORT", prefix);
                env_add(e, k, port[0] ? port : "5432");
        }
        snprintf(k, sizeof(k), "%s_PGDATA", prefix);
        env_add(e, k, s->pgdata);
}

struct flow {
        const struct tm_dr_conf *c;
        struct tm_dr_log *log;
        const char *kind, *reason, *trigger;
        uint64_t job_id;
        const struct tm_dr_site *old_primary, *new_primary;
};

/* Run a hook; 1 = not configured, 0 = ok, < 0 failed (out has its output). */
static int run_hook(struct flow *f, enum tm_dr_hook_kind k, const struct tm_dr_site *site,
                    const char *status, char **out)
{
        const struct tm_dr_hook *h = &f->c->hooks[k];
        const char *argv[] = { "/bin/sh", "-c", h->command, NULL };
        struct hook_env *e;
        char job[32];
        int r;

        *out = NULL;
        if (!h->command)
                return 1;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        snprintf(job, sizeof(job), "%llu", (unsigned long long)f->job_id);
        env_add(e, "TM_DR_EVENT", tm_dr_hook_name(k));
        env_add(e, "TM_DR_KIND", f->kind);
        env_add(e, "TM_DR_REASON", f->reason ? f->reason : "");
        env_add(e, "TM_DR_TRIGGER", f->trigger ? f->trigger : "api");
        env_add(e, "TM_DR_JOB_ID", job);
        env_add(e, "TM_DR_PG_BIN", f->c->pg_bin);
        env_add(e, "TM_DR_STATUS", status);
        env_site(e, "TM_DR_OLD_PRIMARY", f->old_primary);
        env_site(e, "TM_DR_NEW_PRIMARY", f->new_primary);
        env_site(e, "TM_DR_SITE", site);
        r = tm_dr_exec(argv, e->p, h->timeout_ns, out);
        free(e);
        if (r == -ETIMEDOUT)
                return r;
        if (r < 0)
                return r;
        return r == 0 ? 0 : -EIO;
}

static const char *out_or(const char *o, const char *dflt)
{
        return o && *o ? o : dflt;
}

/* Wait until site's replayed LSN reaches lsn (and, with streaming, its WAL
 * receiver streams). Returns 0 or -ETIMEDOUT; *ret_h gets the last check. */
static int wait_replay(const struct tm_dr_conf *c, const struct tm_dr_site *s, uint64_t lsn,
                       int streaming, struct tm_dr_health *ret_h)
{
        int64_t deadline = tm_time_mono() + c->catchup_timeout_ns;

        memset(ret_h, 0, sizeof(*ret_h));
        for (;;) {
                tm_dr_health_dispose(ret_h);
                tm_dr_probe(s->conninfo, c->connect_timeout_ns, ret_h);
                if (ret_h->reachable && ret_h->in_recovery && ret_h->lsn >= lsn &&
                    (!streaming || ret_h->receiver_streaming))
                        return 0;
                if (tm_time_mono() > deadline)
                        return -ETIMEDOUT;
                usleep(POLL_NS / 1000);
        }
}

/* Refuse new writes on a primary and end its sessions. */
static int sql_fence(const struct tm_dr_conf *c, const struct tm_dr_site *s, char *err, size_t n)
{
        int r = tm_dr_sql(s->conninfo, c->connect_timeout_ns,
                          "ALTER SYSTEM SET default_transaction_read_only = on", NULL, 0, err, n);

        if (r >= 0)
                r = tm_dr_sql(s->conninfo, c->connect_timeout_ns, "SELECT pg_reload_conf()", NULL,
                              0, err, n);
        /* the reload reaches idle sessions only at their next command: end
         * them, so every later transaction opens read-only */
        if (r >= 0)
                r = tm_dr_sql(s->conninfo, c->connect_timeout_ns,
                              "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                              NULL, 0, err, n);
        return r;
}

static void sql_unfence(const struct tm_dr_conf *c, const struct tm_dr_site *s)
{
        char err[256];

        if (tm_dr_sql(s->conninfo, c->connect_timeout_ns,
                      "ALTER SYSTEM RESET default_transaction_read_only", NULL, 0, err,
                      sizeof(err)) >= 0)
                tm_dr_sql(s->conninfo, c->connect_timeout_ns, "SELECT pg_reload_conf()", NULL, 0,
                          err, sizeof(err));
}

int tm_dr_recover_fence(const struct tm_dr_conf *c, char *site, size_t n, char *err,
                        size_t errlen)
{
        const struct tm_dr_site *primary = NULL;
        size_t primaries = 0;
        char v[64] = "", msg[256] = "";
        int fenced = 0;

        if (n)
                site[0] = '\0';
        if (errlen)
                err[0] = '\0';
        for (size_t i = 0; i < c->n_sites; i++) {
                const struct tm_dr_site *s = &c->sites[i];

                if (tm_dr_sql(s->conninfo, c->connect_timeout_ns,
                              "SELECT pg_is_in_recovery()::text || ',' || "
                              "current_setting('default_transaction_read_only')",
                              v, sizeof(v), msg, sizeof(msg)) < 0) {
                        snprintf(err, errlen,
                                 "site '%s' does not answer (%s): it may have been promoted, "
                                 "so a fenced primary stays fenced; check every site, then "
                                 "ALTER SYSTEM RESET default_transaction_read_only on the one "
                                 "primary",
                                 s->name, msg);
                        return -EAGAIN;
                }
                if (!strncmp(v, "false,", 6)) {
                        primaries++;
                        primary = s;
                        fenced = !strcmp(v + 6, "on");
                }
        }
        if (primaries != 1 || !fenced)
                return 0;
        sql_unfence(c, primary);
        if (tm_dr_sql(primary->conninfo, c->connect_timeout_ns,
                      "SELECT current_setting('default_transaction_read_only')", v, sizeof(v),
                      msg, sizeof(msg)) < 0 ||
            strcmp(v, "off") != 0) {
                snprintf(err, errlen, "cannot lift the fence on '%s': %s", primary->name,
                         msg[0] ? msg : "still read-only");
                return -EPROTO;
        }
        snprintf(site, n, "%s", primary->name);
        return 1;
}

int tm_dr_failover(const struct tm_dr_conf *c, const struct tm_dr_failover_opts *o,
                   struct tm_dr_log *log, struct tm_dr_outcome *ret, char *err, size_t errlen)
{
        const struct tm_dr_site *from = tm_dr_site_find(c, o->from_site);
        const struct tm_dr_site *to = tm_dr_site_find(c, o->target_site);
        struct tm_dr_health hf = { 0 }, ht = { 0 }, hw = { 0 };
        struct flow f = { c, log, NULL, o->reason, o->trigger, o->job_id, from, to };
        int64_t t0 = tm_time_mono(), w0 = tm_time_now();
        char msg[512], *out = NULL, lsn_s[24];
        uint64_t fence_lsn = 0;
        json_t *st;
        int r;

        memset(ret, 0, sizeof(*ret));
        err[0] = '\0';
        if (!to || !from) {
                snprintf(err, errlen, "unknown site '%s'", !to ? o->target_site : o->from_site);
                return -EINVAL;
        }
        if (from == to) {
                snprintf(err, errlen, "site '%s' is already the primary", to->name);
                return -EINVAL;
        }

        st = tm_dr__step_begin(log, "check-sites");
        tm_dr_probe(to->conninfo, c->connect_timeout_ns, &ht);
        tm_dr_probe(from->conninfo, c->connect_timeout_ns, &hf);
        if (!ht.reachable || !ht.in_recovery) {
                snprintf(err, errlen, "the target site '%s' %s", to->name,
                         !ht.reachable ? "does not answer" : "is not a standby");
                tm_dr__step_end(log, st, "failed", "%s%s%s", err, ht.reachable ? "" : ": ",
                                ht.error);
                r = ht.reachable ? -EINVAL : -ECONNREFUSED;
                goto out;
        }
        ret->planned = hf.reachable && !hf.in_recovery;
        f.kind = ret->planned ? "planned" : "unplanned";
        tm_dr__step_end(log, st, "succeeded",
                        "%s failover: old primary '%s' %s; target '%s' standby", f.kind, from->name,
                        !hf.reachable    ? "does not answer"
                        : hf.in_recovery ? "is a standby"
                                         : "is up",
                        to->name);

        /* ---- fence ---- */
        st = tm_dr__step_begin(log, "fence");
        if (hf.reachable && hf.in_recovery) {
                tm_dr__step_end(log, st, "skipped", "'%s' is not writable", from->name);
        } else if (c->hooks[TM_DR_HOOK_FENCE].command) {
                r = run_hook(&f, TM_DR_HOOK_FENCE, from, "", &out);
                if (r < 0 && !o->force) {
                        snprintf(err, errlen,
                                 "cannot fence the old primary '%s': the fence hook %s (%s); "
                                 "retry with \"force\": true only if it is certainly down",
                                 from->name, r == -ETIMEDOUT ? "timed out" : "failed",
                                 out_or(out, "no output"));
                        tm_dr__step_end(log, st, "failed", "%s", err);
                        r = -EPERM;
                        goto out;
                }
                tm_dr__step_end(log, st, r < 0 ? "failed" : "succeeded", "fence hook%s: %s",
                                r < 0 ? " failed, forced" : "", out_or(out, "ok"));
                free(out);
                out = NULL;
        } else if (ret->planned) {
                r = sql_fence(c, from, msg, sizeof(msg));
                if (r < 0 && !o->force) {
                        snprintf(err, errlen,
                                 "cannot fence the old primary '%s': %s; retry with "
                                 "\"force\": true only if it is certainly down",
                                 from->name, msg);
                        tm_dr__step_end(log, st, "failed", "%s", err);
                        r = -EPERM;
                        goto out;
                }
                tm_dr__step_end(log, st, r < 0 ? "failed" : "succeeded", "%s",
                                r < 0 ? msg : "read-only, client sessions ended");
        } else if (o->force || o->confirmed_down) {
                tm_dr__step_end(log, st, "skipped",
                                "'%s' does not answer and there is no [hook.fence]; "
                                "%s",
                                from->name,
                                o->force ? "forced by the operator"
                                         : "its standby confirmed it gone (no WAL receiver)");
        } else {
                snprintf(err, errlen,
                         "the old primary '%s' does not answer and cannot be fenced (no "
                         "[hook.fence]): retry with \"force\": true only if it is certainly "
                         "down",
                         from->name);
                tm_dr__step_end(log, st, "failed", "%s", err);
                r = -EPERM;
                goto out;
        }

        if (ret->planned) {
                r = tm_dr_sql(from->conninfo, c->connect_timeout_ns,
                              "SELECT pg_current_wal_lsn()", lsn_s, sizeof(lsn_s), msg,
                              sizeof(msg));
                if (r >= 0)
                        r = tm_dr_lsn_parse(lsn_s, &fence_lsn);
                if (r < 0)
                        fence_lsn = hf.lsn;
                if (from->pgdata) {
                        st = tm_dr__step_begin(log, "stop-old-primary");
                        r = pg_ctl(c, from, "stop", &out);
                        tm_dr__step_end(log, st, r == 0 ? "succeeded" : "failed", "pg_ctl stop: %s",
                                        out_or(out, "no output"));
                        free(out);
                        out = NULL;
                }
                st = tm_dr__step_begin(log, "wait-replay");
                tm_dr_lsn_format(fence_lsn, lsn_s, sizeof(lsn_s));
                r = wait_replay(c, to, fence_lsn, 0, &hw);
                if (r < 0) {
                        char got[24];

                        tm_dr_lsn_format(hw.lsn, got, sizeof(got));
                        snprintf(err, errlen,
                                 "'%s' did not replay up to %s within the catch-up timeout "
                                 "(at %s): the old primary is restarted and unfenced",
                                 to->name, lsn_s, got);
                        tm_dr__step_end(log, st, "failed", "%s", err);
                        if (from->pgdata)
                                pg_ctl(c, from, "start", NULL);
                        sql_unfence(c, from);
                        goto out;
                }
                tm_dr__step_end(log, st, "succeeded", "replayed up to %s: nothing is lost", lsn_s);
        } else {
                /* what the standby has received is all it will ever have */
                uint64_t have = ht.receive_lsn > ht.lsn ? ht.receive_lsn : ht.lsn;
                const struct tm_dr_health *lp = o->last_primary;

                if (lp && lp->reachable && lp->lsn > have) {
                        ret->rpo_bytes = lp->lsn - have;
                        if (ht.last_replay_ns && lp->checked_at > ht.last_replay_ns)
                                ret->rpo_ns = lp->checked_at - ht.last_replay_ns;
                }
        }

        /* ---- promote ---- */
        st = tm_dr__step_begin(log, "promote");
        r = tm_dr_sql(to->conninfo, c->catchup_timeout_ns, "SELECT pg_promote(true, 60)", msg,
                      sizeof(msg), err, errlen);
        if (r < 0 || strcmp(msg, "t")) {
                if (r >= 0)
                        snprintf(err, errlen, "pg_promote() on '%s' did not finish in 60 s",
                                 to->name);
                tm_dr__step_end(log, st, "failed", "%s", err);
                r = r < 0 ? r : -ETIMEDOUT;
                goto out;
        }
        tm_dr_health_dispose(&hw);
        tm_dr_probe(to->conninfo, c->connect_timeout_ns, &hw);
        ret->promote_lsn = hw.lsn;
        tm_dr_lsn_format(hw.lsn, lsn_s, sizeof(lsn_s));
        tm_dr__step_end(log, st, "succeeded", "'%s' is the primary at %s, timeline %u", to->name,
                        lsn_s, hw.timeline);
        /* a checkpoint on the new timeline, without which a later pg_rewind
         * finds "no rewind required" and the old primary cannot follow */
        st = tm_dr__step_begin(log, "checkpoint");
        r = tm_dr_sql(to->conninfo, c->catchup_timeout_ns, "CHECKPOINT", NULL, 0, msg, sizeof(msg));
        tm_dr__step_end(log, st, r < 0 ? "failed" : "succeeded", "%s", r < 0 ? msg : "");

        /* ---- traffic ---- */
        st = tm_dr__step_begin(log, "switch-traffic");
        r = run_hook(&f, TM_DR_HOOK_SWITCH, to, "", &out);
        if (r == 1) {
                tm_dr__step_end(log, st, "skipped",
                                "no [hook.switch-traffic]: clients must find '%s' themselves",
                                to->name);
        } else if (r < 0) {
                snprintf(err, errlen,
                         "'%s' is promoted but the switch-traffic hook %s: %s", to->name,
                         r == -ETIMEDOUT ? "timed out" : "failed", out_or(out, "no output"));
                tm_dr__step_end(log, st, "failed", "%s", err);
                r = -EIO;
        } else {
                ret->traffic_switched = 1;
                tm_dr__step_end(log, st, "succeeded", "%s", out_or(out, ""));
        }
        free(out);
        out = NULL;
        ret->duration_ns = tm_time_mono() - t0;
        ret->rto_ns = tm_time_now() - (o->detected_ns ? o->detected_ns : w0);
        if (r == -EIO)
                goto notify;
        r = 0;
notify:
        st = tm_dr__step_begin(log, "notify");
        {
                int rn = run_hook(&f, TM_DR_HOOK_NOTIFY, NULL, r < 0 ? "failed" : "succeeded",
                                  &out);

                tm_dr__step_end(log, st,
                                rn == 1  ? "skipped"
                                : rn < 0 ? "failed"
                                         : "succeeded",
                                "%s", rn == 1 ? "no [hook.notify]" : out_or(out, ""));
        }
out:
        free(out);
        tm_dr_health_dispose(&hf);
        tm_dr_health_dispose(&ht);
        tm_dr_health_dispose(&hw);
        return r;
}

/* ---- rejoin ---- */

static void slot_name(const char *site, char *out, size_t n)
{
        size_t j = 0;

        j += (size_t)snprintf(out, n, "tm_");
        for (const char *p = site; *p && j + 1 < n; p++)
                out[j++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a')
                           : ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) ? *p
                                                                                     : '_';
        out[j] = '\0';
}

static int quote_append(tm_buf *b, const char *v)
{
        int r = tm_buf_append(b, "'", 1);

        for (const char *p = v; r >= 0 && *p; p++)
                r = tm_buf_append(b, *p == '\'' ? "''" : p, 1 + (*p == '\''));
        return r < 0 ? r : tm_buf_append(b, "'", 1);
}

/* Rewrite postgresql.auto.conf for a standby of primary: drop what the
 * rewind copied from the source or the fence left (a slot that exists
 * only on the old primary, read-only, recovery targets) and point it at
 * primary through a slot of its own. Keeps the file's owner and mode. */
static int write_standby_conf(const struct tm_dr_site *s, const struct tm_dr_site *p,
                              const char *slot, char *err, size_t errlen)
{
        static const char *drop[] = { "primary_conninfo", "primary_slot_name",
                                      "default_transaction_read_only", "recovery_target" };
        char path[4096], tmp[4200], line[8192], ci[4096];
        tm_buf b = TM_BUF_INIT(1 << 20);
        struct stat sb;
        FILE *in;
        int fd = -1, r;

        snprintf(path, sizeof(path), "%s/postgresql.auto.conf", s->pgdata);
        if (stat(path, &sb) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot stat %s: %s", path, strerror(-r));
                return r;
        }
        in = fopen(path, "re");
        if (!in) {
                r = -errno;
                snprintf(err, errlen, "cannot read %s: %s", path, strerror(-r));
                return r;
        }
        r = 0;
        while (r >= 0 && fgets(line, sizeof(line), in)) {
                const char *l = line + strspn(line, " \t");
                int skip = 0;

                for (size_t i = 0; i < TM_ARRAY_SIZE(drop); i++)
                        skip |= !strncmp(l, drop[i], strlen(drop[i]));
                if (!skip)
                        r = tm_buf_append(&b, line, strlen(line));
        }
        fclose(in);
        snprintf(ci, sizeof(ci), "%s application_name=%s",
                 p->replication_conninfo ? p->replication_conninfo : p->conninfo, s->name);
        if (r >= 0)
                r = tm_buf_printf(&b, "# tidemark-failoverd: a standby of site %s\n"
                                      "primary_conninfo = ",
                                  p->name);
        if (r >= 0)
                r = quote_append(&b, ci);
        if (r >= 0)
                r = tm_buf_printf(&b, "\nprimary_slot_name = '%s'\n", slot);
        if (r < 0)
                goto out;
        snprintf(tmp, sizeof(tmp), "%s.tm-tmp", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, sb.st_mode & 07777);
        if (fd < 0 || write(fd, b.data, b.len) != (ssize_t)b.len || fchown(fd, sb.st_uid, sb.st_gid) < 0 ||
            fsync(fd) < 0 || close(fd) < 0) {
                r = -errno;
                if (fd >= 0)
                        close(fd);
                fd = -1;
                unlink(tmp);
                snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(-r));
                goto out;
        }
        fd = -1;
        if (rename(tmp, path) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot rename %s: %s", tmp, strerror(-r));
                goto out;
        }
        snprintf(path, sizeof(path), "%s/standby.signal", s->pgdata);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || fchown(fd, sb.st_uid, sb.st_gid) < 0) {
                r = -errno;
                snprintf(err, errlen, "cannot create %s: %s", path, strerror(-r));
                goto out;
        }
        r = 0;
out:
        if (fd >= 0)
                close(fd);
        tm_buf_dispose(&b);
        return r;
}

/* A copy (pg_rewind rewrites files in place: a hard link would follow). */
static int copy_file(const char *from, const char *to)
{
        tm_buf b = TM_BUF_INIT(16u << 20);
        struct stat sb;
        int fd = -1, r;

        if (stat(from, &sb) < 0)
                return -errno;
        r = tm_file_read_all(from, 16u << 20, &b);
        if (r < 0)
                goto out;
        fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, sb.st_mode & 07777);
        if (fd < 0 || (b.len && write(fd, b.data, b.len) != (ssize_t)b.len) ||
            fchown(fd, sb.st_uid, sb.st_gid) < 0 || fsync(fd) < 0)
                r = -errno;
        else
                r = 0;
out:
        if (fd >= 0 && close(fd) < 0 && r == 0)
                r = -errno;
        tm_buf_dispose(&b);
        return r;
}

/* Save (restore = 0) or put back (restore = 1) the configuration files of
 * a site's data directory around pg_rewind, as <state_dir>/<site>.<file>.keep
 * (not inside the data directory: pg_rewind deletes what the source lacks).
 * Files a layout keeps elsewhere (Debian's /etc/postgresql) are absent. */
static int keep_conf(const struct tm_dr_conf *c, const struct tm_dr_site *site, int restore,
                     char *err, size_t errlen)
{
        static const char *files[] = { "postgresql.conf", "postgresql.auto.conf", "pg_hba.conf",
                                       "pg_ident.conf" };

        for (size_t i = 0; i < TM_ARRAY_SIZE(files); i++) {
                char path[4096], keep[4200];

                snprintf(path, sizeof(path), "%s/%s", site->pgdata, files[i]);
                snprintf(keep, sizeof(keep), "%s/%s.%s.keep", c->state_dir, site->name, files[i]);
                if (!restore) {
                        int r = copy_file(path, keep);

                        if (r < 0 && r != -ENOENT) {
                                snprintf(err, errlen, "cannot keep %s: %s", path, strerror(-r));
                                return r;
                        }
                } else if (copy_file(keep, path) == 0) {
                        unlink(keep);
                } else if (access(keep, F_OK) == 0) {
                        snprintf(err, errlen, "cannot put back %s: %s", path, strerror(errno));
                        return -errno;
                }
        }
        return 0;
}

int tm_dr_rejoin(const struct tm_dr_conf *c, const char *site, const char *primary,
                 struct tm_dr_log *log, char *err, size_t errlen)
{
        const struct tm_dr_site *s = tm_dr_site_find(c, site), *p = tm_dr_site_find(c, primary);
        struct tm_dr_health h = { 0 };
        char prog[4096], src[4200], slot[TM_DR_NAME_MAX + 8], sql[512], msg[512], lsn_s[24];
        char *out = NULL;
        uint64_t lsn = 0;
        json_t *st;
        int r;

        err[0] = '\0';
        if (!s || !p) {
                snprintf(err, errlen, "unknown site '%s'", !s ? site : primary);
                return -EINVAL;
        }
        if (!s->pgdata) {
                snprintf(err, errlen,
                         "site '%s' has no pgdata: rewind it and attach it as a standby by hand "
                         "(docs/disaster-recovery.md)",
                         s->name);
                return -EINVAL;
        }
        tm_dr_probe(s->conninfo, c->connect_timeout_ns, &h);
        if (h.reachable && !h.in_recovery) {
                snprintf(err, errlen,
                         "site '%s' runs as a primary while '%s' is the primary: stop it first",
                         s->name, p->name);
                tm_dr_health_dispose(&h);
                return -EEXIST;
        }
        tm_dr_health_dispose(&h);

        st = tm_dr__step_begin(log, "stop-old-primary");
        r = pg_running(c, s);
        if (r < 0) {
                snprintf(err, errlen, "no PostgreSQL data directory at %s", s->pgdata);
                tm_dr__step_end(log, st, "failed", "%s", err);
                return -ENOENT;
        }
        if (r == 1) {
                r = pg_ctl(c, s, "stop", &out);
                tm_dr__step_end(log, st, r == 0 ? "succeeded" : "failed", "pg_ctl stop: %s",
                                out_or(out, ""));
                free(out);
                out = NULL;
                if (r != 0) {
                        snprintf(err, errlen, "cannot stop '%s'", s->name);
                        return -EPROTO;
                }
        } else
                tm_dr__step_end(log, st, "skipped", "not running");

        st = tm_dr__step_begin(log, "checkpoint");
        r = tm_dr_sql(p->conninfo, c->catchup_timeout_ns, "CHECKPOINT", NULL, 0, msg, sizeof(msg));
        if (r < 0) {
                snprintf(err, errlen, "CHECKPOINT on '%s': %s", p->name, msg);
                tm_dr__step_end(log, st, "failed", "%s", err);
                return r;
        }
        tm_dr__step_end(log, st, "succeeded", NULL);

        st = tm_dr__step_begin(log, "rewind");
        if (pg_prog(c, "pg_rewind", prog, sizeof(prog)) < 0)
                return -ENAMETOOLONG;
        /* pg_rewind copies the source's configuration files over the
         * target's: keep the site's own (its port, its addresses) */
        r = keep_conf(c, s, 0, err, errlen);
        if (r < 0) {
                tm_dr__step_end(log, st, "failed", "%s", err);
                return r;
        }
        snprintf(src, sizeof(src), "--source-server=%s", p->conninfo);
        {
                char tgt[4200];
                const char *argv[] = { prog, "--target-pgdata", s->pgdata, src, NULL, NULL };

                snprintf(tgt, sizeof(tgt), "%s", s->pgdata);
                argv[2] = tgt;
                r = tm_dr_exec(argv, NULL, 10 * 60 * TM_NSEC_PER_SEC, &out);
        }
        {
                int rk = keep_conf(c, s, 1, err, errlen);

                if (rk < 0 && r == 0) {
                        tm_dr__step_end(log, st, "failed", "%s", err);
                        free(out);
                        return rk;
                }
        }
        if (r != 0) {
                snprintf(err, errlen, "pg_rewind of '%s' from '%s' failed: %s", s->name, p->name,
                         out_or(out, "no output"));
                tm_dr__step_end(log, st, "failed", "%s", err);
                free(out);
                return -EPROTO;
        }
        tm_dr__step_end(log, st, "succeeded", "%s", out_or(out, ""));
        free(out);
        out = NULL;

        st = tm_dr__step_begin(log, "configure-standby");
        slot_name(s->name, slot, sizeof(slot));
        snprintf(sql, sizeof(sql),
                 "SELECT pg_create_physical_replication_slot('%s', true) WHERE NOT EXISTS "
                 "(SELECT 1 FROM pg_replication_slots WHERE slot_name = '%s')",
                 slot, slot);
        r = tm_dr_sql(p->conninfo, c->connect_timeout_ns, sql, NULL, 0, msg, sizeof(msg));
        if (r < 0) {
                snprintf(err, errlen, "cannot create the slot %s on '%s': %s", slot, p->name, msg);
                tm_dr__step_end(log, st, "failed", "%s", err);
                return r;
        }
        r = write_standby_conf(s, p, slot, err, errlen);
        if (r < 0) {
                tm_dr__step_end(log, st, "failed", "%s", err);
                return r;
        }
        tm_dr__step_end(log, st, "succeeded", "standby.signal, primary '%s', slot %s", p->name,
                        slot);

        st = tm_dr__step_begin(log, "start-standby");
        r = pg_ctl(c, s, "start", &out);
        if (r != 0) {
                snprintf(err, errlen, "'%s' did not start as a standby: %s (see %s/%s-postgres.log)",
                         s->name, out_or(out, ""), c->state_dir, s->name);
                tm_dr__step_end(log, st, "failed", "%s", err);
                free(out);
                return -EPROTO;
        }
        tm_dr__step_end(log, st, "succeeded", NULL);
        free(out);
        out = NULL;

        st = tm_dr__step_begin(log, "catch-up");
        r = tm_dr_sql(p->conninfo, c->connect_timeout_ns, "SELECT pg_current_wal_lsn()", lsn_s,
                      sizeof(lsn_s), msg, sizeof(msg));
        if (r >= 0)
                r = tm_dr_lsn_parse(lsn_s, &lsn);
        if (r >= 0)
                r = wait_replay(c, s, lsn, 1, &h);
        tm_dr_health_dispose(&h);
        if (r < 0) {
                snprintf(err, errlen, "'%s' did not catch up with '%s' (up to %s) in time",
                         s->name, p->name, lsn_s);
                tm_dr__step_end(log, st, "failed", "%s", err);
                return -ETIMEDOUT;
        }
        tm_dr__step_end(log, st, "succeeded", "streaming from '%s', replayed %s", p->name, lsn_s);
        return 0;
}

int tm_dr_failback(const struct tm_dr_conf *c, const char *current, const char *original,
                   const char *reason, uint64_t job_id, struct tm_dr_log *log,
                   struct tm_dr_outcome *ret, char *err, size_t errlen)
{
        struct tm_dr_failover_opts o = { 0 };
        struct tm_dr_health h = { 0 };
        const struct tm_dr_site *s = tm_dr_site_find(c, original);
        int r;

        memset(ret, 0, sizeof(*ret));
        if (!s) {
                snprintf(err, errlen, "unknown site '%s'", original);
                return -EINVAL;
        }
        /* already a streaming standby of current: no rewind needed */
        tm_dr_probe(s->conninfo, c->connect_timeout_ns, &h);
        if (!(h.reachable && h.in_recovery && h.receiver_streaming)) {
                r = tm_dr_rejoin(c, original, current, log, err, errlen);
                if (r < 0)
                        goto out;
        }
        o.from_site = current;
        o.target_site = original;
        o.reason = reason;
        o.trigger = "failback";
        o.job_id = job_id;
        r = tm_dr_failover(c, &o, log, ret, err, errlen);
        if (r < 0)
                goto out;
        if (!ret->planned) {
                snprintf(err, errlen, "'%s' stopped answering during the failback", current);
                r = -EPROTO;
                goto out;
        }
        r = tm_dr_rejoin(c, current, original, log, err, errlen);
out:
        tm_dr_health_dispose(&h);
        return r;
}

/* ---- the dry run ---- */

static int add_check(json_t *a, const char *name, int ok, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int add_check(json_t *a, const char *name, int ok, const char *fmt, ...)
{
        char d[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(d, sizeof(d), fmt, ap);
        va_end(ap);
        return json_array_append_new(a, json_pack("{s:s, s:b, s:s}", "check", name, "ok", ok,
                                                  "detail", d));
}

/* Is the first word of a shell command an executable we can find? */
static int command_runnable(const char *cmd, char *which, size_t n)
{
        char word[1024], *path, *save = NULL;
        size_t len = strcspn(cmd + strspn(cmd, " \t"), " \t");

        cmd += strspn(cmd, " \t");
        snprintf(word, sizeof(word), "%.*s", (int)(len < sizeof(word) ? len : sizeof(word) - 1),
                 cmd);
        if (strchr(word, '/')) {
                snprintf(which, n, "%s", word);
                return access(word, X_OK) == 0;
        }
        path = tm_strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
        for (char *d = path ? strtok_r(path, ":", &save) : NULL; d; d = strtok_r(NULL, ":", &save)) {
                snprintf(which, n, "%s/%s", d, word);
                if (access(which, X_OK) == 0) {
                        free(path);
                        return 1;
                }
        }
        free(path);
        snprintf(which, n, "%s", word);
        return 0;
}

int tm_dr_preflight(const struct tm_dr_conf *c, const char *primary, const char *standby,
                    int64_t last_rto_ns, json_t **ret)
{
        const struct tm_dr_site *p = tm_dr_site_find(c, primary), *s = tm_dr_site_find(c, standby);
        const struct tm_dr_tier *tier = tm_dr_tier_find(c, c->service_tier);
        struct tm_dr_health hp = { 0 }, hs = { 0 };
        json_t *a = json_array(), *o = NULL;
        char msg[512], v[64], which[1200];
        double est;
        int ready = 1, r;

        if (!a)
                return -ENOMEM;
        if (p)
                tm_dr_probe(p->conninfo, c->connect_timeout_ns, &hp);
        add_check(a, "primary_reachable", hp.reachable && !hp.in_recovery, "%s",
                  !p ? "no primary site" : hp.reachable ? (hp.in_recovery ? "it is in recovery"
                                                                          : "answers as primary")
                                                        : hp.error);
        if (!s) {
                ready = 0;
                add_check(a, "standby_configured", 0,
                          "no standby site: configure a second [site.NAME] with a streaming "
                          "standby");
        } else {
                tm_dr_probe(s->conninfo, c->connect_timeout_ns, &hs);
                add_check(a, "standby_configured", 1, "site '%s'", s->name);
                ready &= hs.reachable && hs.in_recovery && hs.receiver_streaming;
                add_check(a, "standby_reachable", hs.reachable, "%s",
                          hs.reachable ? "answers" : hs.error);
                add_check(a, "standby_in_recovery", hs.reachable && hs.in_recovery, "%s",
                          hs.reachable && !hs.in_recovery ? "it is writable: two primaries?"
                                                          : "");
                add_check(a, "standby_streaming", hs.receiver_streaming, "%s",
                          hs.receiver_streaming ? hs.upstream : "no WAL receiver is streaming");
                if (hs.reachable && tier) {
                        int ok = hs.lag_seconds * TM_NSEC_PER_SEC <= (double)tier->rpo_ns;

                        ready &= ok;
                        add_check(a, "lag_within_rpo", ok, "lag %.3f s, %s tier RPO %lld s",
                                  hs.lag_seconds, tier->name,
                                  (long long)(tier->rpo_ns / TM_NSEC_PER_SEC));
                }
        }
        if (p && hp.reachable) {
                r = tm_dr_sql(p->conninfo, c->connect_timeout_ns,
                              "SELECT current_setting('wal_log_hints') = 'on' OR "
                              "current_setting('data_checksums') = 'on'",
                              v, sizeof(v), msg, sizeof(msg));
                add_check(a, "rewind_possible", r >= 0 && !strcmp(v, "t") && p->pgdata,
                          "%s", r < 0 ? msg : strcmp(v, "t") ? "needs wal_log_hints = on or data checksums"
                                          : !p->pgdata ? "the primary's pgdata is not configured"
                                                       : "wal_log_hints or checksums on, pgdata local");
        }
        for (int k = 0; k < TM_DR_HOOK_COUNT; k++) {
                char name[64];
                int ok;

                snprintf(name, sizeof(name), "hook_%s", tm_dr_hook_name(k));
                if (!c->hooks[k].command) {
                        add_check(a, name, k != TM_DR_HOOK_SWITCH, "not configured%s",
                                  k == TM_DR_HOOK_SWITCH ? ": clients will not follow" : "");
                        continue;
                }
                ok = command_runnable(c->hooks[k].command, which, sizeof(which));
                ready &= ok;
                add_check(a, name, ok, "%s %s", which, ok ? "is executable" : "is not executable");
        }
        /* planned: fence + replay + promote + hook; unplanned: detection too */
        est = last_rto_ns > 0 ? (double)last_rto_ns / 1e9
                              : (double)(c->failure_threshold * c->check_interval_ns +
                                         c->connect_timeout_ns) / 1e9 + 5.0;
        o = json_pack("{s:o, s:b, s:f, s:s, s:f, s:f}", "checks", a, "ready", ready,
                      "estimated_rto_seconds", est, "estimate_basis",
                      last_rto_ns > 0 ? "the last measured failover"
                                      : "detection (failure_threshold x check_interval) + 5 s",
                      "rto_target_seconds", tier ? (double)tier->rto_ns / 1e9 : 0.0,
                      "rpo_target_seconds", tier ? (double)tier->rpo_ns / 1e9 : 0.0);
        tm_dr_health_dispose(&hp);
        tm_dr_health_dispose(&hs);
        if (!o)
                return -ENOMEM;
        *ret = o;
        return 0;
}
