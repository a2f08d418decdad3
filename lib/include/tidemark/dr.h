#pragma once
/*
 * dr: disaster recovery across sites (the logic of tidemark-failoverd).
 *
 * - Configuration: [failover], [site.NAME], [service_tier.NAME],
 *   [hook.fence|switch-traffic|notify], [target.NAME] (docs/configuration.md).
 * - Site health through libpq: role, LSNs, the WAL receiver, the senders.
 * - The failover / failback state machine: fence, wait for replay, promote
 *   (pg_promote), switch traffic (a hook), rewind (pg_rewind) and re-attach
 *   the old primary as a standby. Every step is appended to a step log
 *   (a JSON array) that another thread may read while the flow runs.
 * - Hooks: shell commands run with a documented environment and a timeout.
 *
 * Nothing here knows about HTTP; the daemon (failover/) owns jobs and routes.
 */
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include <jansson.h>

#include <tidemark/config.h>
#include <tidemark/repo.h>

#define TM_DR_NAME_MAX 64

enum tm_dr_hook_kind { TM_DR_HOOK_FENCE, TM_DR_HOOK_SWITCH, TM_DR_HOOK_NOTIFY, TM_DR_HOOK_COUNT };

struct tm_dr_site {
        char *name;
        char *conninfo;             /* libpq connection string (required) */
        char *replication_conninfo; /* what a standby of this site connects to; default conninfo */
        char *pgdata;               /* local data directory: stop, rewind, re-attach; optional */
        char *repository;           /* its own repository or replica; optional */
        int auto_failover;          /* may be promoted by the automated failover */
        int line;
};

struct tm_dr_tier {
        char *name;
        int64_t rto_ns, rpo_ns;
};

struct tm_dr_hook {
        char *command; /* run with /bin/sh -c; NULL: not configured */
        int64_t timeout_ns;
};

struct tm_dr_target {
        char *name;
        char *path; /* where a recovered PGDATA goes */
        int port;   /* the scratch PostgreSQL's port (0: pick one) */
};

struct tm_dr_conf {
        struct tm_dr_site *sites;
        size_t n_sites;
        struct tm_dr_tier *tiers; /* the spec's four first, then custom ones */
        size_t n_tiers;
        struct tm_dr_hook hooks[TM_DR_HOOK_COUNT];
        struct tm_dr_target *targets;
        size_t n_targets;
        char *primary;      /* the site that is primary when nothing can be probed */
        char *service_tier; /* the tier whose RTO/RPO this database is held to */
        char *pg_bin;       /* PostgreSQL programs; default /usr/lib/postgresql/15/bin */
        char *state_dir;    /* default /var/lib/tidemark-failoverd */
        char *component;    /* the repository's database component; default "database" */
        char *tidemark;     /* the tidemark program for restores; NULL: next to the daemon */
        int automatic;      /* automated failover (default off) */
        int failure_threshold;       /* consecutive failed checks before promoting (3) */
        int64_t check_interval_ns;   /* health checks (5 s) */
        int64_t connect_timeout_ns;  /* per check (2 s) */
        int64_t catchup_timeout_ns;  /* replay / catch-up waits (120 s) */
};

/* The name of a hook kind as configured: "fence", "switch-traffic", "notify". */
const char *tm_dr_hook_name(enum tm_dr_hook_kind k);

/**
 * tm_dr_conf_load() - read the DR sections of a loaded configuration. The
 * service tiers start from the spec's targets (critical 30 min / 5 min, high
 * 1 h / 15 min, standard 4 h / 1 h, development 8 h / 4 h), which
 * [service_tier.NAME] may override or extend. Returns 0 and *ret (caller
 * frees), -EINVAL with err "FILE:LINE: reason", -ENOMEM.
 * Thread-safety: pure.
 */
int tm_dr_conf_load(const struct tm_config *c, struct tm_dr_conf **ret, char *err, size_t errlen);
/* Free; NULL-safe. */
void tm_dr_conf_free(struct tm_dr_conf *c);
/* A site, tier or target by name (borrowed), or NULL. */
const struct tm_dr_site *tm_dr_site_find(const struct tm_dr_conf *c, const char *name);
const struct tm_dr_tier *tm_dr_tier_find(const struct tm_dr_conf *c, const char *name);
const struct tm_dr_target *tm_dr_target_find(const struct tm_dr_conf *c, const char *name);

/* ---- LSNs ---- */
/* "16/B374D848" -> 0x16B374D848. Returns 0 or -EINVAL. */
int tm_dr_lsn_parse(const char *s, uint64_t *ret);
/* The "X/Y" form into out (>= 18 bytes). */
void tm_dr_lsn_format(uint64_t lsn, char *out, size_t n);

/* ---- health ---- */
struct tm_dr_health {
        int reachable;
        int in_recovery;
        uint64_t lsn;          /* primary: current WAL position; standby: last replayed */
        uint64_t receive_lsn;  /* standby: last received */
        int receiver_streaming; /* standby: a WAL receiver is streaming from a primary */
        char upstream[128];     /* standby: the receiver's sender host:port */
        int64_t last_replay_ns; /* standby: commit time of the last replayed transaction */
        double lag_seconds;     /* standby: 0 when all received WAL is replayed */
        uint32_t timeline;
        int64_t checked_at;     /* wall clock */
        json_t *senders;        /* primary: pg_stat_replication rows (owned) */
        char error[256];        /* why it is unreachable */
};

/**
 * tm_dr_probe() - check one site: connect (timeout_ns bounds the connection
 * and the queries), read its role, LSNs, WAL receiver and senders. A site
 * that cannot be reached is not an error: ret->reachable = 0, ret->error
 * says why. Returns 0 or -ENOMEM. Dispose ret with tm_dr_health_dispose().
 * Thread-safety: any thread.
 */
int tm_dr_probe(const char *conninfo, int64_t timeout_ns, struct tm_dr_health *ret);
void tm_dr_health_dispose(struct tm_dr_health *h);
/* The health as the API shows it (new reference). */
json_t *tm_dr_health_json(const struct tm_dr_health *h);

/**
 * tm_dr_sql() - run one statement on a site; the first column of the first
 * row, if any, goes to out (may be NULL). Returns 0, -ECONNREFUSED (cannot
 * connect), -EPROTO (the statement failed); err gets the server's message.
 */
int tm_dr_sql(const char *conninfo, int64_t timeout_ns, const char *sql, char *out, size_t n,
              char *err, size_t errlen);

/* ---- commands and hooks ---- */
/**
 * tm_dr_exec() - run argv (argv[0] a path) with extra environment entries
 * ("K=V", NULL-terminated, may be NULL) added, stdin from /dev/null,
 * stdout+stderr captured (the last 4 KiB) into *ret_output (caller frees;
 * may be NULL), killed with its process group after timeout_ns.
 * Returns the exit status (>= 0), -ETIMEDOUT, -errno.
 * Thread-safety: any thread (fork with only async-signal-safe calls).
 */
int tm_dr_exec(const char *const *argv, const char *const *env, int64_t timeout_ns,
               char **ret_output);

/* ---- the automated failover's decision ---- */
enum tm_dr_auto_verdict {
        TM_DR_AUTO_HEALTHY,      /* the primary answers */
        TM_DR_AUTO_WAIT,         /* failing, but fewer than K checks in a row */
        TM_DR_AUTO_NO_CANDIDATE, /* no reachable standby may be promoted */
        TM_DR_AUTO_STANDBY_SEES_PRIMARY, /* the standby still streams: our network, not theirs */
        TM_DR_AUTO_PROMOTE,
};
/**
 * tm_dr_auto_decide() - should the automated failover promote now? failures
 * is the number of consecutive failed checks of the primary (0 if the last
 * one succeeded); standby the candidate's latest check (NULL: none).
 * Thread-safety: pure.
 */
enum tm_dr_auto_verdict tm_dr_auto_decide(int failures, int threshold,
                                          const struct tm_dr_health *standby);
const char *tm_dr_auto_verdict_name(enum tm_dr_auto_verdict v);

/* ---- flows ---- */
/* The step log: a JSON array of {"step","state","started","finished",
 * "detail"} that the flow appends to and another thread may copy. */
struct tm_dr_log {
        pthread_mutex_t lock;
        json_t *steps;
};
int tm_dr_log_init(struct tm_dr_log *l);
void tm_dr_log_dispose(struct tm_dr_log *l);
/* A deep copy of the steps so far (new reference), or NULL on ENOMEM. */
json_t *tm_dr_log_copy(struct tm_dr_log *l);

struct tm_dr_failover_opts {
        const char *from_site;  /* the current primary */
        const char *target_site;
        const char *reason;
        const char *trigger; /* "api", "automatic", "failback" */
        int force;           /* go on when the old primary cannot be fenced */
        int confirmed_down;  /* automatic: the standby confirmed the primary gone */
        uint64_t job_id;
        /* the primary's last good check (unplanned RPO), may be NULL */
        const struct tm_dr_health *last_primary;
        int64_t detected_ns; /* wall clock when the primary was last seen (RTO start); 0: now */
};

struct tm_dr_outcome {
        int planned;
        int64_t duration_ns; /* the flow, start to traffic switched */
        int64_t rto_ns;      /* from detected_ns (or the start) to traffic switched */
        uint64_t rpo_bytes;
        int64_t rpo_ns;
        int traffic_switched;
        uint64_t promote_lsn;
};

/**
 * tm_dr_failover() - make target_site the primary. Planned when from_site
 * answers: fence it (the fence hook, or read-only + terminate sessions, then
 * a fast stop when its pgdata is local), wait until the target replayed
 * everything, promote, checkpoint, switch traffic. Unplanned when it does
 * not: run the fence hook (without one, refuse unless force or
 * confirmed_down), promote, switch traffic, and measure what was lost.
 * Steps go to log; err says why it failed. Returns 0, -EINVAL (target is
 * not a standby, unknown site), -EPERM (cannot fence, force needed),
 * -ETIMEDOUT (replay did not catch up), -EPROTO / -ECONNREFUSED (a site
 * refused), -EIO (a hook failed after promotion: the promotion stands).
 * Thread-safety: one flow at a time per set of sites (the caller's job).
 */
/**
 * tm_dr_recover_fence() - after a failover or failback that was killed
 * between its fence and the promotion: when every site answers, exactly one
 * is a primary (not in recovery) and that one is fenced (new transactions
 * read-only, as the fence step leaves it), lift the fence: nothing was
 * promoted, so it is the only primary and the platform has none writable.
 * Returns 1 (unfenced; site gets its name), 0 (nothing to do: a primary is
 * writable, none is a primary, or more than one is), -EAGAIN (a site does
 * not answer: no one can tell that it was not promoted, so the fence stays
 * and err says what an operator must check), -errno.
 */
int tm_dr_recover_fence(const struct tm_dr_conf *c, char *site, size_t n, char *err,
                        size_t errlen);

int tm_dr_failover(const struct tm_dr_conf *c, const struct tm_dr_failover_opts *o,
                   struct tm_dr_log *log, struct tm_dr_outcome *ret, char *err, size_t errlen);

/**
 * tm_dr_rejoin() - make `site` (stopped or not answering) a streaming
 * standby of `primary`: checkpoint the primary, pg_rewind the site's pgdata
 * from it (crash recovery first when it was killed; "no rewind required" is
 * fine), write standby.signal, point primary_conninfo and a replication slot
 * of its own at the primary (dropping the fencing and any inherited slot
 * name), start it and wait until it streams and has replayed the primary's
 * current LSN. Returns 0, -EINVAL (no pgdata), -EEXIST (the site runs as a
 * primary), -ETIMEDOUT, -EPROTO, -errno.
 */
int tm_dr_rejoin(const struct tm_dr_conf *c, const char *site, const char *primary,
                 struct tm_dr_log *log, char *err, size_t errlen);

/**
 * tm_dr_failback() - return to the original topology: rejoin `original`
 * as a standby of `current`, then a planned failover back to it, then
 * rejoin `current` as its standby. Returns as the two calls above.
 */
int tm_dr_failback(const struct tm_dr_conf *c, const char *current, const char *original,
                   const char *reason, uint64_t job_id, struct tm_dr_log *log,
                   struct tm_dr_outcome *ret, char *err, size_t errlen);

/**
 * tm_dr_preflight() - the dry-run drill: every precondition of a failover
 * from `primary` to `standby` (NULL: none configured), each {"check","ok",
 * "detail"}, and an RTO estimate from the configuration and the last
 * measured failover (last_rto_ns, 0: none). Returns 0 and *ret (new
 * reference: {"checks":[...],"ready":bool,"estimated_rto_seconds":n}) or
 * -ENOMEM.
 */
int tm_dr_preflight(const struct tm_dr_conf *c, const char *primary, const char *standby,
                    int64_t last_rto_ns, json_t **ret);

/* ---- point-in-time recovery ---- */
struct tm_dr_pitr_opts {
        tm_repo *repo;                  /* the repository (the caller serialises its use) */
        const char *restore_command;    /* how the recovered server fetches WAL
                                           (tm_pg_restore_command) */
        int64_t target_ns;              /* 0: the newest recoverable instant */
        const char *const *components;  /* restored into dest/<component> */
        size_t n_components;
        const char *dest;               /* a directory */
        const char *database_component; /* the PostgreSQL one ("database") */
        int start_port;                 /* > 0: start a scratch PostgreSQL on the recovered
                                           database at this port; -1: pick one; 0: don't */
};

/**
 * tm_dr_pitr() - restore each component as it was at target_ns into
 * dest/<component> through the library (the database: tm_pg_plan_pitr,
 * which refuses an instant outside the recoverable window, naming it, and
 * tm_pg_pitr_restore; the others: their snapshot at or before the
 * instant), and optionally start a scratch PostgreSQL (loopback only,
 * archiving off) on the recovered database, wait until it has recovered
 * and promoted, and report the instant it actually reached (its last
 * replayed commit). A scratch server already running at the destination
 * is stopped and its files replaced. *ret: {"components":[...],
 * "database": {...}} (new reference). Returns 0, -EPROTO (a restore was
 * refused: err says why), -ETIMEDOUT, -errno.
 */
int tm_dr_pitr(const struct tm_dr_conf *c, const struct tm_dr_pitr_opts *o, struct tm_dr_log *log,
               json_t **ret, char *err, size_t errlen);

/* ---- drills ---- */
struct tm_dr_drill_opts {
        uint64_t id; /* the report's id (the daemon's job id) */
        tm_repo *repo;
        pthread_mutex_t *repo_lock;  /* held while the repository is read; may be NULL */
        const char *restore_command; /* as for tm_dr_pitr */
        const char *scratch;         /* a directory of its own: the instance goes in
                                        scratch/<component>, removed afterwards */
        int64_t started_ns;          /* wall clock of the request (0: now) */
        /* polled between steps and while the scratch server recovers:
         * non-zero cancels the drill (it still cleans up); may be NULL */
        int (*should_stop)(void *userdata);
        void *userdata;
};

/**
 * tm_dr_drill() - the real drill: restore the newest backup of the
 * database component (its newest base backup and all the WAL archived
 * after it) into a scratch instance, start a scratch PostgreSQL on a free
 * loopback port, measure the RTO achieved (drill start to the first query
 * that finds the scratch server promoted) and the RPO achieved (the newest
 * commit the repository held against the instant the scratch server
 * reached; and, as an upper bound, the drill's start against it), then stop
 * and remove the scratch instance. Each step goes to log. *ret_report is
 * the drill report (new reference), also when the drill failed:
 * {"id","kind":"drill","succeeded","failed_step","error","started",
 * "finished","component","snapshot","reached","newest_commit",
 * "rto_seconds","rpo_seconds","rpo_upper_bound_seconds",
 * "rto_target_seconds","rpo_target_seconds","rto_met","rpo_met",
 * "scratch":{"port","stopped","removed"},"steps":[...]}.
 * Returns 0 (succeeded), -EPROTO (no backup to restore, or refused),
 * -ETIMEDOUT, -ECANCELED (should_stop), -errno; err says why.
 * Thread-safety: one drill per scratch directory.
 */
int tm_dr_drill(const struct tm_dr_conf *c, const struct tm_dr_drill_opts *o, struct tm_dr_log *log,
                json_t **ret_report, char *err, size_t errlen);

/**
 * tm_dr_report_save() - store a drill report (an object with a positive
 * integer "id") as dir/drill-<id>.json, atomically (a temporary file
 * renamed). dir is created if missing. Returns 0, -EINVAL (no id), -errno.
 */
int tm_dr_report_save(const char *dir, const json_t *report);
/**
 * tm_dr_report_load() - the report with this id. Returns 0 and *ret (new
 * reference), -ENOENT, -EBADMSG (not a JSON object), -errno.
 */
int tm_dr_report_load(const char *dir, uint64_t id, json_t **ret);
/**
 * tm_dr_reports_list() - every stored report, newest (highest id) first,
 * without their step logs. Returns 0 and *ret (a new array; empty when dir
 * does not exist), -errno. Unreadable files are skipped.
 */
int tm_dr_reports_list(const char *dir, json_t **ret);

/* ---- the recovery timeline ---- */
struct tm_dr_timeline_opts {
        const char *database_component; /* its windows and WAL continuity; may be NULL */
        const char *const *components;  /* NULL / 0: every component but WAL archives */
        size_t n_components;
        int64_t start, end;      /* ns */
        int64_t rto_ns;          /* the service tier's RTO a thaw is weighed against (0: never) */
        const char *reports_dir; /* the drill reports (validation evidence); may be NULL */
};

/**
 * tm_dr_timeline() - the recovery points (snapshots) of each component
 * between start and end, and each recoverable window of the database
 * component (from tm_pg_windows_get: a gap in the WAL ends one window and
 * is listed under "gaps"), each with a confidence score in [0, 1]:
 *   0.4 x continuity   (a base backup: its WAL continuous past it = 1, no
 *                       segment archived after it yet = 0.5, a gap = 0;
 *                       files = 1; a window = 1, gaps end windows)
 * + 0.2 x validation   (restored and served in a drill = 1; never drilled
 *                       and no unreadable file at backup = 0.5; unreadable
 *                       files, or a drill whose scratch server failed on it
 *                       = 0)
 * + 0.2 x tier         (min(1, RTO / expected thaw of its coldest pack):
 *                       hot and warm = 1, see tm_dr_thaw_ns)
 * + 0.2 x completeness (share of the components with a point at or before
 *                       it; a window: at its start)
 * A window's validation and tier are those of the base backup it starts
 * from. *ret gets {"start","end","components":{name:{"points":[...],
 * "windows":[...],"gaps":[...]}}}. Returns 0, -ENOMEM, -errno (the
 * repository).
 */
int tm_dr_timeline(tm_repo *repo, const struct tm_dr_timeline_opts *o, json_t **ret);

/* The expected delay of a thaw from a tier level (enum tm_tier_level) with
 * a retrieval speed ("Expedited", "Standard", "Bulk"; NULL Standard): the
 * upper end of the times tm_tier_thaw_eta() names; 0 for hot and warm. */
int64_t tm_dr_thaw_ns(unsigned level, const char *retrieval);
/* The timeline's tier factor: 1 when the thaw fits the RTO (or either is
 * 0), else rto / thaw. */
double tm_dr_tier_factor(int64_t thaw_ns, int64_t rto_ns);
/**
 * tm_dr_snapshot_tier() - the coldest tier holding a pack of the
 * snapshot's file data (enum tm_tier_level): TM_TIER_HOT at once for an
 * untiered repository, else by walking its tree. Returns 0 or -errno.
 */
int tm_dr_snapshot_tier(tm_repo *repo, const struct tm_snapshot *s, unsigned *ret);
