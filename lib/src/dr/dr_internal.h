#pragma once
/* Shared by the dr module's files only. */
#include <stddef.h>

/* The host and port a libpq conninfo points at ("" when absent). Returns 0
 * or -EINVAL (not a conninfo). */
int tm_dr__conninfo_hostport(const char *conninfo, char *host, size_t hn, char *port, size_t pn);

#include <stdint.h>

#include <jansson.h>

#include <tidemark/dr.h>
#include <tidemark/repo.h>

/* The step log (dr_flow.c): append a running step (borrowed; NULL on
 * ENOMEM, which the end call accepts), then finish it with a state
 * ("succeeded", "failed", "skipped") and a detail. Thread-safety: the log's
 * lock. */
json_t *tm_dr__step_begin(struct tm_dr_log *l, const char *name);
void tm_dr__step_end(struct tm_dr_log *l, json_t *s, const char *state, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* ---- restores and scratch servers (dr_pitr.c), shared with the drill ---- */

/* pg_ctl ACTION -D pgdata: "start" (logf, opts: -o), "stop" (opts: the
 * mode, NULL fast), "status". Returns pg_ctl's exit status or -errno. */
int tm_dr__pg_ctl(const struct tm_dr_conf *c, const char *pgdata, const char *action,
                  const char *logf, const char *opts, char **ret_output);

/* Restore component comp as it was at target_ns (0: the newest) into dir,
 * through the library: a database component by tm_pg_plan_pitr +
 * tm_pg_pitr_restore (with restore_command), others by the snapshot at or
 * before the instant. *ret_info: {"snapshot","snapshot_time",...} (new
 * reference; the database's also "window_last_commit_ns" and
 * "window_latest_ns", the plan's window). Returns 0, -EPROTO (refused:
 * outside the window, no backup; err says why), -errno (err says why). */
int tm_dr__restore(tm_repo *repo, const char *comp, int is_db, int64_t target_ns, const char *dir,
                   const char *restore_command, json_t **ret_info, char *err, size_t errlen);

/* Start a scratch PostgreSQL on a recovered pgdata (loopback, archiving
 * off, its socket and log in sockdir; port <= 0: a free one), wait until a
 * query finds it promoted (*ret_ready_mono: then, monotonic clock; may be
 * NULL) and read the instant it reached. *ret_db: {"component","status",
 * "port","host","conninfo","pgdata","log","reached"} (new reference).
 * Returns 0, -EPROTO (did not start), -ETIMEDOUT (did not promote within
 * catchup_timeout), -ECANCELED (should_stop, may be NULL, said so while
 * waiting), -errno; err says why. */
int tm_dr__scratch_start(const struct tm_dr_conf *c, const char *pgdata, const char *sockdir,
                         int port, const char *component, int (*should_stop)(void *),
                         void *userdata, json_t **ret_db, int64_t *ret_ready_mono, char *err,
                         size_t errlen);

/* Stop the server running on pgdata, if any (fast, then immediate), make
 * sure none runs (*ret_stopped, may be NULL) and remove pgdata. Returns 0,
 * -EBUSY (a server still runs there), -EIO (not removed). */
int tm_dr__scratch_remove(const struct tm_dr_conf *c, const char *pgdata, int *ret_stopped);
