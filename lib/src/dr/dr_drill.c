/*
 * The real drill: prove that the newest backup of the database restores
 * and serves, and measure what a restore-from-backup disaster recovery
 * achieves today (RTO, RPO), without touching the production sites. The
 * restore and the scratch server are dr_pitr.c's; this file adds the
 * measurements, the clean-up and the drill reports.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tidemark/dr.h>
#include <tidemark/log.h>
#include <tidemark/time.h>

#include "dr_internal.h"

#define REPORT_MAX (4u << 20)

static int64_t parse_instant(json_t *v)
{
        int64_t ns = 0;

        if (!json_is_string(v) || tm_time_parse(json_string_value(v), &ns, NULL) < 0)
                return 0;
        return ns;
}

static void set_time(json_t *o, const char *key, int64_t ns)
{
        char t[40];

        if (!ns) {
                json_object_set_new(o, key, json_null());
                return;
        }
        tm_time_format_ns(ns, t, sizeof(t));
        json_object_set_new(o, key, json_string(t));
}

int tm_dr_drill(const struct tm_dr_conf *c, const struct tm_dr_drill_opts *o, struct tm_dr_log *log,
                json_t **ret_report, char *err, size_t errlen)
{
        const struct tm_dr_tier *tier = tm_dr_tier_find(c, c->service_tier);
        const char *comp = c->component, *failed_step = NULL;
        int64_t t0 = tm_time_mono(), w0 = o->started_ns ? o->started_ns : tm_time_now();
        int64_t ready = 0, restored = 0, reached_ns = 0, newest_ns = 0;
        char dir[4200];
        json_t *rep = NULL, *info = NULL, *db = NULL, *scratch = NULL, *st;
        int r, stopped = 0, removed = 0, started = 0;

        *ret_report = NULL;
        err[0] = '\0';
        rep = json_pack("{s:I, s:s, s:s, s:b, s:s, s:s}", "id", (json_int_t)o->id, "kind", "drill",
                        "scope", "database_failover", "dry_run", 0, "component", comp,
                        "service_tier", c->service_tier);
        scratch = json_object();
        if (!rep || !scratch) {
                r = -ENOMEM;
                goto out;
        }
        set_time(rep, "started", w0);
        snprintf(dir, sizeof(dir), "%s/%s", o->scratch, comp);
        if (mkdir(o->scratch, 0700) < 0 && errno != EEXIST) {
                r = -errno;
                snprintf(err, errlen, "cannot create the scratch directory '%s': %s", o->scratch,
                         strerror(errno));
                failed_step = "prepare";
                goto out;
        }

        st = tm_dr__step_begin(log, "restore latest backup");
        failed_step = "restore latest backup";
        /* a scratch instance an interrupted drill left behind */
        r = tm_dr__scratch_remove(c, dir, NULL);
        if (r < 0) {
                snprintf(err, errlen, "cannot clear '%s' (a server still runs there?)", dir);
                tm_dr__step_end(log, st, "failed", "%s", err);
                goto out;
        }
        if (o->repo_lock)
                pthread_mutex_lock(o->repo_lock);
        r = tm_repo_refresh(o->repo);
        if (r >= 0)
                r = tm_dr__restore(o->repo, comp, 1, 0, dir, o->restore_command, &info, err,
                                   errlen);
        else
                snprintf(err, errlen, "cannot read the repository: %s", strerror(-r));
        if (o->repo_lock)
                pthread_mutex_unlock(o->repo_lock);
        if (r < 0) {
                tm_dr__step_end(log, st, "failed", "%s", err);
                goto out;
        }
        restored = tm_time_mono();
        json_object_set(rep, "snapshot", json_object_get(info, "snapshot"));
        json_object_set(rep, "snapshot_time", json_object_get(info, "snapshot_time"));
        /* the newest commit the repository held when the drill began */
        newest_ns = json_integer_value(json_object_get(info, "window_last_commit_ns"));
        tm_dr__step_end(log, st, "succeeded", "base backup %s and its WAL into %s",
                        json_string_value(json_object_get(info, "snapshot")), dir);

        st = tm_dr__step_begin(log, "start scratch server");
        failed_step = "start scratch server";
        if (o->should_stop && o->should_stop(o->userdata)) {
                snprintf(err, errlen, "cancelled: the daemon is stopping");
                r = -ECANCELED;
                tm_dr__step_end(log, st, "failed", "%s", err);
                goto out;
        }
        r = tm_dr__scratch_start(c, dir, o->scratch, -1, comp, o->should_stop, o->userdata, &db,
                                 &ready, err, errlen);
        /* whatever happened, a server may run there now: stop it below */
        started = 1;
        if (r < 0) {
                tm_dr__step_end(log, st, "failed", "%s", err);
                goto out;
        }
        json_object_set(scratch, "port", json_object_get(db, "port"));
        json_object_set(scratch, "pgdata", json_object_get(db, "pgdata"));
        tm_dr__step_end(log, st, "succeeded", "promoted on 127.0.0.1:%d after %.3f s",
                        (int)json_integer_value(json_object_get(db, "port")),
                        (double)(ready - t0) / 1e9);

        st = tm_dr__step_begin(log, "measure");
        failed_step = "measure";
        reached_ns = parse_instant(json_object_get(db, "reached"));
        if (!reached_ns) {
                /* no transaction replayed at all: nothing to measure an RPO by */
                snprintf(err, errlen,
                         "the scratch server replayed no commit: the instant it "
                         "reached is unknown");
                r = -EPROTO;
                tm_dr__step_end(log, st, "failed", "%s", err);
                goto out;
        }
        {
                double rto = (double)(ready - t0) / 1e9;
                double rpo = newest_ns > reached_ns ? (double)(newest_ns - reached_ns) / 1e9 : 0;
                double upper = w0 > reached_ns ? (double)(w0 - reached_ns) / 1e9 : 0;

                json_object_set_new(rep, "rto_seconds", json_real(rto));
                json_object_set_new(rep, "restore_seconds",
                                    json_real((double)(restored - t0) / 1e9));
                json_object_set_new(rep, "recovery_seconds",
                                    json_real((double)(ready - restored) / 1e9));
                json_object_set_new(rep, "rpo_seconds", json_real(rpo));
                json_object_set_new(rep, "rpo_upper_bound_seconds", json_real(upper));
                set_time(rep, "reached", reached_ns);
                set_time(rep, "newest_commit", newest_ns);
                if (tier) {
                        json_object_set_new(rep, "rto_target_seconds",
                                            json_real((double)tier->rto_ns / 1e9));
                        json_object_set_new(rep, "rpo_target_seconds",
                                            json_real((double)tier->rpo_ns / 1e9));
                        json_object_set_new(rep, "rto_met",
                                            json_boolean(rto * 1e9 <= (double)tier->rto_ns));
                        json_object_set_new(rep, "rpo_met",
                                            json_boolean(rpo * 1e9 <= (double)tier->rpo_ns));
                }
                tm_dr__step_end(log, st, "succeeded",
                                "RTO %.3f s; reached %s, %.3f s before the newest commit stored",
                                rto, json_string_value(json_object_get(db, "reached")), rpo);
        }
        failed_step = NULL;
        r = 0;
out:
        if (rep && (started || failed_step)) {
                /* always leave nothing running and nothing behind */
                int r2;

                st = tm_dr__step_begin(log, "stop and remove scratch instance");
                r2 = tm_dr__scratch_remove(c, dir, &stopped);
                removed = r2 == 0;
                tm_dr__step_end(log, st, r2 == 0 ? "succeeded" : "failed", "%s",
                                r2 == 0   ? "stopped and removed"
                                : stopped ? "stopped, but the files were not removed"
                                          : "a server still runs there");
                if (r2 < 0 && r == 0) {
                        r = r2;
                        failed_step = "stop and remove scratch instance";
                        snprintf(err, errlen, "the scratch instance in '%s' was not %s", dir,
                                 stopped ? "removed" : "stopped");
                }
                json_object_set_new(scratch, "stopped", json_boolean(stopped));
                json_object_set_new(scratch, "removed", json_boolean(removed));
        }
        if (rep) {
                set_time(rep, "finished", tm_time_now());
                json_object_set_new(rep, "succeeded", json_boolean(r == 0));
                json_object_set_new(rep, "failed_step",
                                    failed_step ? json_string(failed_step) : json_null());
                json_object_set_new(rep, "error", err[0] ? json_string(err) : json_null());
                json_object_set_new(rep, "scratch", scratch);
                scratch = NULL;
                json_object_set_new(rep, "steps", tm_dr_log_copy(log));
                *ret_report = rep;
                rep = NULL;
        }
        json_decref(scratch);
        json_decref(info);
        json_decref(db);
        json_decref(rep);
        return r;
}

/* ---- reports ---- */

int tm_dr_report_save(const char *dir, const json_t *report)
{
        json_t *idv = json_object_get(report, "id");
        char path[4200], tmp[4300];
        char *s = NULL;
        size_t len;
        int fd = -1, r = 0;

        if (!json_is_integer(idv) || json_integer_value(idv) <= 0)
                return -EINVAL;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        snprintf(path, sizeof(path), "%s/drill-%lld.json", dir, (long long)json_integer_value(idv));
        snprintf(tmp, sizeof(tmp), "%s.tmp", path);
        s = json_dumps(report, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!s)
                return -ENOMEM;
        len = strlen(s);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                goto out;
        }
        for (size_t off = 0; off < len;) {
                ssize_t n = write(fd, s + off, len - off);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? -errno : -EIO;
                        goto out;
                }
                off += (size_t)n;
        }
        if (write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
                r = -EIO;
                goto out;
        }
        if (close(fd) < 0) {
                fd = -1;
                r = -errno;
                goto out;
        }
        fd = -1;
        if (rename(tmp, path) < 0)
                r = -errno;
out:
        if (fd >= 0)
                close(fd);
        if (r < 0)
                unlink(tmp);
        free(s);
        return r;
}

static int report_read(const char *path, json_t **ret)
{
        json_error_t e;
        struct stat sb;
        json_t *o;

        if (stat(path, &sb) < 0)
                return -errno;
        if (!S_ISREG(sb.st_mode) || sb.st_size > (off_t)REPORT_MAX)
                return -EBADMSG;
        o = json_load_file(path, 0, &e);
        if (!o)
                return access(path, R_OK) == 0 ? -EBADMSG : -errno;
        if (!json_is_object(o)) {
                json_decref(o);
                return -EBADMSG;
        }
        *ret = o;
        return 0;
}

int tm_dr_report_load(const char *dir, uint64_t id, json_t **ret)
{
        char path[4200];

        snprintf(path, sizeof(path), "%s/drill-%llu.json", dir, (unsigned long long)id);
        return report_read(path, ret);
}

static int by_id_desc(const void *a, const void *b)
{
        json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "id"));
        json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "id"));

        return x < y ? 1 : x > y ? -1 : 0;
}

int tm_dr_reports_list(const char *dir, json_t **ret)
{
        json_t **v = NULL, *a = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        DIR *d;
        int r = 0;

        d = opendir(dir);
        if (!d && errno != ENOENT)
                return -errno;
        while (d && (de = readdir(d))) {
                char path[4200], *end = NULL;
                unsigned long long id;
                json_t *o = NULL;

                if (strncmp(de->d_name, "drill-", 6))
                        continue;
                errno = 0;
                id = strtoull(de->d_name + 6, &end, 10);
                if (errno || !id || !end || strcmp(end, ".json"))
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                if (report_read(path, &o) < 0)
                        continue;
                json_object_del(o, "steps");
                if (n == cap) {
                        json_t **nv = realloc(v, (cap ? cap * 2 : 16) * sizeof(*v));

                        if (!nv) {
                                json_decref(o);
                                r = -ENOMEM;
                                goto out;
                        }
                        v = nv;
                        cap = cap ? cap * 2 : 16;
                }
                v[n++] = o;
        }
        if (n)
                qsort(v, n, sizeof(*v), by_id_desc);
        a = json_array();
        if (!a) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                json_array_append_new(a, v[i]);
                v[i] = NULL;
        }
        *ret = a;
        a = NULL;
out:
        for (size_t i = 0; i < n; i++)
                json_decref(v[i]);
        free(v);
        json_decref(a);
        if (d)
                closedir(d);
        return r;
}
