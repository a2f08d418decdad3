#pragma once
/*
 * pg: PostgreSQL continuous backup (the only module that uses libpq).
 *
 * - WAL archiving: tm_pg_wal_push() stores one file of pg_wal (a segment, a
 *   timeline history file, a backup history file) as a snapshot of the WAL
 *   component ("<component>-wal", one snapshot per file, tagged with the
 *   file's name); tm_pg_wal_fetch() brings it back. See docs/format.md
 *   "PostgreSQL WAL".
 * - Base backups over the replication protocol (BASE_BACKUP, tar format
 *   parsed as it streams) stored as the files of a snapshot whose extra_json
 *   holds {"postgres":{...}} (LSNs, timeline, backup_label).
 * - Point-in-time restore: the recovery settings written into a restored
 *   PGDATA, and the recoverable window.
 *
 * The parsers (WAL file names, WAL page headers, tar) are pure functions on
 * bounded buffers and safe on hostile input.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/core.h>
#include <tidemark/ops.h>
#include <tidemark/repo.h>

/* ---- WAL file names ---- */

enum tm_pg_walkind {
        TM_PG_WAL_SEGMENT = 1, /* 000000010000000000000003 */
        TM_PG_WAL_PARTIAL,     /* 000000010000000000000003.partial */
        TM_PG_WAL_BACKUP,      /* 000000010000000000000003.00000028.backup */
        TM_PG_WAL_HISTORY,     /* 00000002.history */
};

struct tm_pg_walname {
        enum tm_pg_walkind kind;
        uint32_t tli;
        uint32_t log, seg; /* the two halves of the segment number (not history) */
};

/**
 * tm_pg_walname_parse() - classify a file name from pg_wal (no directory).
 * Returns 0 and fills *ret, or -EINVAL (not a name PostgreSQL archives;
 * timeline 0 is invalid too).
 * Thread-safety: pure.
 */
int tm_pg_walname_parse(const char *name, struct tm_pg_walname *ret);

/* ---- WAL page headers ---- */

#define TM_PG_WAL_LONG_HEADER_LEN 40

/* XLogLongPageHeaderData, the header of a segment's first page. */
struct tm_pg_walhdr {
        uint16_t magic;
        uint16_t info;
        uint32_t tli;
        uint64_t pageaddr;
        uint64_t sysid;
        uint32_t seg_size;
        uint32_t blcksz;
        int pg_version; /* major version the magic belongs to (13..17) */
};

/**
 * tm_pg_walhdr_parse() - parse and validate the long page header at the start
 * of a WAL segment (n bytes available, little-endian host layout as written
 * by PostgreSQL on x86-64/arm64). Checks: a known magic, the long-header
 * flag, a segment size that is a power of two from 1 MiB to 1 GiB, a page
 * size that is a power of two from 1 KiB to 64 KiB, a page address on a
 * segment boundary, and a non-zero timeline.
 * Returns 0, or -EBADMSG (too short or invalid; *ret untouched).
 * Thread-safety: pure.
 */
int tm_pg_walhdr_parse(const void *p, size_t n, struct tm_pg_walhdr *ret);

/**
 * tm_pg_wal_validate() - check that a segment file's contents agree with its
 * name: header valid, file_size equal to the header's segment size, the
 * header's page address the one the name encodes, the header's timeline at
 * most the name's (the first segment of a new timeline begins with pages of
 * the old one). For names that
 * are not segments (history, backup, partial) only the name is checked.
 * Returns 0, -EINVAL (name), -EBADMSG (contents; logged with the reason).
 * Thread-safety: pure.
 */
int tm_pg_wal_validate(const char *name, const void *head, size_t n, uint64_t file_size);

/* ---- tar (ustar, as BASE_BACKUP writes it) ---- */

#define TM_PG_TAR_NAME_MAX 256

struct tm_pg_tar_entry {
        char name[TM_PG_TAR_NAME_MAX + 1]; /* relative, validated, no trailing '/' */
        char linkname[101];                /* symlinks */
        char type;                         /* '0' file, '5' directory, '2' symlink */
        uint32_t mode;                     /* permission bits */
        uint32_t uid, gid;
        uint64_t size; /* data bytes (files) */
        int64_t mtime; /* seconds */
};

/* Callbacks: a header, then the member's data in pieces, then the end of the
 * member (also for empty files, directories and symlinks). Returning a
 * negative errno stops the parser, which returns it. */
struct tm_pg_tar_ops {
        int (*entry)(const struct tm_pg_tar_entry *e, void *userdata);
        int (*data)(const void *p, size_t n, void *userdata);
        int (*end)(void *userdata);
};

/* A streaming parser: feed it bytes as they arrive, in any slicing. */
struct tm_pg_tar {
        const struct tm_pg_tar_ops *ops;
        void *userdata;
        uint8_t hdr[512];
        size_t hdr_fill;
        uint64_t data_left; /* of the current member */
        uint32_t pad_left;  /* padding to the next 512-byte boundary */
        int in_member;
        int zero_blocks; /* consecutive all-zero headers: two end the archive */
        int failed;
        uint64_t members;
};

/* Start a parser (no allocation; nothing to dispose). */
void tm_pg_tar_init(struct tm_pg_tar *t, const struct tm_pg_tar_ops *ops, void *userdata);
/**
 * tm_pg_tar_feed() - parse n more bytes. Headers are verified (checksum,
 * octal or base-256 numbers, names without "..", "." or empty components,
 * not absolute, at most TM_PG_TAR_NAME_MAX bytes); types other than regular
 * files, directories and symlinks are refused, pax headers included.
 * Returns 0, -EBADMSG (malformed archive), or a callback's error; after an
 * error every later call fails the same way.
 * Thread-safety: one thread per parser.
 */
int tm_pg_tar_feed(struct tm_pg_tar *t, const void *p, size_t n);
/**
 * tm_pg_tar_finish() - the stream ended: fine between members (PostgreSQL's
 * server-side tar has no trailing zero blocks), -EBADMSG inside one.
 */
int tm_pg_tar_finish(struct tm_pg_tar *t);

/* ---- WAL archive ---- */

/* The component that holds a database component's WAL: "<component>-wal"
 * into out. Returns 0 or -ENAMETOOLONG. */
int tm_pg_wal_component(const char *component, char *out, size_t n);

/**
 * tm_pg_wal_push() - archive_command: store the file at path (name = its
 * basename) as one snapshot of the WAL component of `component`. Segments
 * are validated first (tm_pg_wal_validate). If the same name is already
 * archived with identical contents, nothing is written and 0 is returned
 * (PostgreSQL retries after a crash); with different contents -EEXIST.
 * Crash-safe by construction: the snapshot (the WAL file's index entry) is
 * written after its packs and index.
 * Returns 0, -EINVAL, -EBADMSG, -EEXIST, -errno. Logs the reason.
 */
int tm_pg_wal_push(tm_repo *repo, const char *component, const char *path);

/**
 * tm_pg_wal_fetch() - restore_command: write archived file `name` to dest
 * (through a temporary name in dest's directory, renamed when complete).
 * Returns 0, -ENOENT (not archived: quietly, PostgreSQL probes for files
 * that do not exist), -EINVAL (a name PostgreSQL does not archive), -errno.
 */
int tm_pg_wal_fetch(tm_repo *repo, const char *component, const char *name, const char *dest);

/* ---- base backups ---- */

struct tm_pg_backup_opts {
        const char *conninfo;  /* libpq connection string; replication=true is added */
        const char *component; /* "database" if NULL */
        const char *label;     /* backup label ("tidemark" if NULL) */
        const char *staging;   /* parent directory for the staging dir; NULL: $TMPDIR or /var/tmp */
        const char *const *tags;
        size_t n_tags;
        const char *host; /* NULL: gethostname() */
        tm_progress_fn progress;
        void *userdata;
};

/**
 * tm_pg_backup_run() - take a base backup (BASE_BACKUP with LABEL, fast
 * checkpoint, WAL false, wait for the WAL to be archived), write its tar
 * stream into a private staging directory, back that directory up as a
 * snapshot of the component (strategy "full", time = the end of the base
 * backup) whose extra_json is {"postgres":{"backup_label", "start_lsn",
 * "stop_lsn", "timeline", "system_identifier", "server_version",
 * "start_time", "wal_segment_size"}}; files under base/ and global/ (the
 * relation files) are cut on fixed 64 KiB blocks, the rest by content, and remove the staging
 * directory. Only the main tablespace is supported for now (-ENOTSUP otherwise). ret gets the
 * committed snapshot (caller disposes). Returns 0, -ECONNREFUSED (cannot connect; the server's
 * message is logged), -EPROTO (the server refused or broke the protocol; logged), -EBADMSG (bad tar
 * stream), -ENOTSUP, -errno.
 */
int tm_pg_backup_run(tm_repo *repo, const struct tm_pg_backup_opts *opts, struct tm_snapshot *ret);

/* ---- point-in-time restore ---- */

/* Is this snapshot a PostgreSQL base backup (extra_json has "postgres")? 1/0. */
int tm_pg_snapshot_is_base_backup(const struct tm_snapshot *s);

/**
 * tm_pg_recovery_write() - make a restored PGDATA recover to target_ns:
 * create recovery.signal and append to postgresql.auto.conf restore_command,
 * recovery_target_time (UTC, microseconds), recovery_target_action =
 * 'promote' and recovery_target_timeline = 'latest'. target_ns 0: no target
 * time (recover to the end of the archived WAL). Single quotes in
 * restore_command are doubled. The new files get the PGDATA's owner. Returns 0, -EINVAL, -errno.
 */
int tm_pg_recovery_write(const char *pgdata, const char *restore_command, int64_t target_ns);

/* Format an instant the way PostgreSQL reads it: "2025-01-07 10:00:00.123456+00"
 * (truncated to microseconds) into out (>= 32 bytes). */
void tm_pg_time_format(int64_t ns, char *out, size_t n);

/* ---- WAL records ---- */

/* What one WAL segment (or the written head of one) holds. */
struct tm_pg_walscan {
        uint32_t tli;            /* of its first page */
        uint64_t start_lsn;      /* its first byte (a segment boundary) */
        uint64_t end_lsn;        /* the end of its last complete record */
        uint64_t records;        /* records that start in it */
        uint64_t commits;        /* commit and abort records (recovery targets) */
        int64_t first_commit_ns; /* their times (server clock, UTC); 0 if none */
        int64_t last_commit_ns;
};

/**
 * tm_pg_wal_scan() - walk the records of a WAL segment whose first n bytes
 * are at p (a whole segment, or the head of one still being written), and
 * collect the times of its transaction commit and abort records (the
 * instants recovery_target_time is compared with). The walk stops where the
 * valid WAL ends: zeroes, a page whose address is not the expected one (a
 * recycled segment's stale tail), a record whose xl_prev does not point at
 * the one before, or the end of the buffer. A record is counted in the
 * segment it starts in; a transaction record whose first 32 bytes cross
 * into the next segment is not seen (they are ~50 bytes, PostgreSQL
 * aligns them on 8 bytes: rare, and only the window's edge can move).
 * Returns 0, or -EBADMSG (no valid long page header at p).
 * Thread-safety: pure.
 */
int tm_pg_wal_scan(const void *p, size_t n, struct tm_pg_walscan *ret);

/* An LSN as PostgreSQL writes it ("0/3000028") into out (>= 18 bytes). */
void tm_pg_lsn_format(uint64_t lsn, char *out, size_t n);
/* Parse "X/Y" (hex). Returns 0 or -EINVAL. */
int tm_pg_lsn_parse(const char *s, uint64_t *ret);

/* ---- the WAL index and the recoverable windows ---- */

/* One archived WAL file, as its snapshot's manifest describes it. */
struct tm_pg_walseg {
        char name[48]; /* as archived: a segment, or a segment's ".partial" */
        uint32_t tli;  /* the name's timeline */
        uint64_t segno;
        int partial;
        int indexed; /* the manifest has extra.wal (archived by this version or later) */
        uint64_t start_lsn, end_lsn;
        uint64_t commits;
        int64_t first_commit_ns, last_commit_ns; /* 0: none */
        int64_t received_ns;                     /* streamed: caught up with the server then */
        int64_t archived_ns;                     /* the snapshot's time */
        tm_id snapshot;
};

/**
 * tm_pg_wal_index() - the WAL index of a database component: one entry per
 * archived segment (and .partial), read from the manifests of its WAL
 * component, so it is rebuilt with the catalog from the repository alone.
 * Sorted by segment number, timeline, complete before partial, then time.
 * segsz: the WAL segment size (0: 16 MiB).
 * Returns 0 or -errno. Ownership: *ret is the caller's (free()).
 */
int tm_pg_wal_index(tm_repo *repo, const char *component, uint64_t segsz, struct tm_pg_walseg **ret,
                    size_t *ret_n);

/* A stretch of time the component can be recovered to, on one timeline. */
struct tm_pg_window {
        uint32_t tli;
        int64_t earliest_ns;    /* the end of the base backup it starts from (or the
                                 * previous timeline's end) */
        int64_t latest_ns;      /* max(last commit, caught-up time of the stream) */
        int64_t last_commit_ns; /* the last commit or abort stored (0: none) */
        uint64_t start_lsn, end_lsn;
        tm_id base; /* the first base backup it can start from */
};

/* Where the archived WAL breaks: recovery cannot cross it. */
struct tm_pg_gap {
        uint32_t tli;
        char missing[32];  /* the first missing segment */
        int64_t before_ns; /* the last instant recoverable before it */
};

struct tm_pg_windows {
        struct tm_pg_window *w; /* by time */
        size_t n;
        struct tm_pg_gap *gaps;
        size_t n_gaps;
        uint64_t segsz;
};

/**
 * tm_pg_windows_get() - the recoverable windows of a database component:
 * from each base backup, the WAL stored after it is followed segment by
 * segment (at each segment number the copy of the highest timeline, a
 * complete one before a .partial) up to the first missing segment, which is
 * reported as a gap, never skipped; a later base backup starts a new window.
 * The window's end is the last commit time read from the WAL (or, for files
 * archived before commit times were indexed, their archive time). Returns
 * 0, -ENOENT (no base backup), -errno. Ownership: dispose *ret.
 * Thread-safety: as the repository.
 */
int tm_pg_windows_get(tm_repo *repo, const char *component, struct tm_pg_windows *ret);
void tm_pg_windows_dispose(struct tm_pg_windows *w);
/* "from A to B (timeline N), from C to D (timeline M)" into out. */
void tm_pg_windows_format(const struct tm_pg_windows *w, char *out, size_t n);

/* What recovering a component to an instant takes. */
struct tm_pg_plan {
        struct tm_snapshot base; /* the base backup to restore */
        int64_t target_ns;       /* 0: the end of the stored WAL */
        /* nothing was committed after target_ns in the stored WAL: recover
         * to its end (PostgreSQL refuses a target time it never passes) */
        int to_end;
        struct tm_pg_window window;
};

/**
 * tm_pg_plan_pitr() - choose how to recover component to target_ns (0: to
 * the end of the stored WAL, from the newest base backup): the last base
 * backup that ended at or before the target, inside a window that holds
 * it. On refusal err (NUL-terminated, for the user) says why with the
 * window(s): "T is outside the recoverable window of component 'C': from A
 * to B". Returns 0, -ERANGE (outside every window), -ENOENT (no base
 * backup), -errno. Ownership: dispose ret->base.
 */
int tm_pg_plan_pitr(tm_repo *repo, const char *component, int64_t target_ns, struct tm_pg_plan *ret,
                    char *err, size_t errlen);

/**
 * tm_pg_pitr_restore() - restore plan's base backup into dir (created; mode
 * 0700, owned like its global/ directory when run as root) and write the
 * recovery settings (tm_pg_recovery_write) with restore_command. This is
 * what `tidemark restore --component C @T --target DIR` and failoverd's
 * point-in-time recovery run. Returns 0 or -errno (logged).
 */
int tm_pg_pitr_restore(tm_repo *repo, const struct tm_pg_plan *plan, const char *dir,
                       const char *restore_command, const struct tm_restore_opts *ropts);

/**
 * tm_pg_recovery_conf() - the lines tm_pg_recovery_write() appends to
 * postgresql.auto.conf, into out (appended). Returns 0, -EINVAL (a newline
 * in restore_command), -ENOMEM.
 */
int tm_pg_recovery_conf(tm_buf *out, const char *restore_command, int64_t target_ns);

/* ---- WAL streaming from a replication slot ---- */

/* Where a WAL stream stands (reported after every store). */
struct tm_pg_stream_status {
        uint32_t tli;
        uint64_t received_lsn; /* end of the WAL received */
        uint64_t stored_lsn;   /* end of the WAL committed to the repository (the slot's
                                * flush position: the server keeps everything after it) */
        uint64_t server_lsn;   /* the server's flushed end, as last reported */
        int64_t caught_up_ns;  /* server time when stored == server end (0: not yet) */
        int64_t last_commit_ns;
        int64_t stored_at_ns;        /* our clock, at the last store */
        uint64_t segments, partials; /* stored since the start */
};

struct tm_pg_stream_opts {
        const char *conninfo;  /* libpq connection string; replication=true is added */
        const char *component; /* "database" if NULL */
        const char *slot;      /* physical slot, created if missing; "tidemark" if NULL */
        /* the segment being written is stored (as "<segment>.partial",
         * replacing the previous one) this often when it grew: the RPO
         * under load (0: 1 s) */
        int64_t partial_interval_ns;
        int64_t status_interval_ns; /* standby status to the server (0: 10 s) */
        const char *staging;        /* for the spool file; NULL: $TMPDIR or /var/tmp */
        /* polled a few times a second: non-zero ends the stream cleanly
         * (what was received is stored first) */
        int (*should_stop)(void *userdata);
        void (*on_status)(const struct tm_pg_stream_status *st, void *userdata);
        void *userdata;
};

/**
 * tm_pg_stream_run() - stream WAL like pg_receivewal, into the WAL component
 * of the component: create the physical slot if missing, start at the
 * segment after the last one stored (or re-read the one stored partial;
 * with nothing stored, at the slot's restart position), store every
 * completed segment as a snapshot with its extra.wal index, and the
 * segment in progress as "<segment>.partial" every partial_interval_ns.
 * The server is told the slot may advance only past what is committed to
 * the repository, so a crash (kill -9) loses nothing: the next run
 * re-reads from the slot. Follows timeline switches (the old timeline's
 * last segment is stored as .partial, as PostgreSQL archives it). Runs
 * until should_stop or an error.
 * Returns 0 (stopped), -ECONNREFUSED, -EPROTO (logged with the server's
 * message), -errno.
 * Thread-safety: one stream per slot.
 */
int tm_pg_stream_run(tm_repo *repo, const struct tm_pg_stream_opts *o);

/* ---- connection settings ---- */

struct tm_pg_conn {
        const char *host;     /* NULL: $POSTGRES_HOST, else libpq's default */
        const char *port;     /* NULL: libpq's default */
        const char *user;     /* NULL: libpq's default */
        const char *passfile; /* a .pgpass file; NULL: $POSTGRES_PASSWORD if set */
        const char *extra;    /* more libpq keywords ("sslmode=require ..."); may be NULL */
};

/**
 * tm_pg_conninfo() - a libpq connection string from a postgres component's
 * settings and the environment (POSTGRES_HOST, POSTGRES_PASSWORD, as the
 * deployment's secrets provide them), values quoted as libpq wants. The
 * result may hold a password: never log it. Returns 0, -ENOMEM.
 * Ownership: *ret is the caller's (free()).
 */
int tm_pg_conninfo(const struct tm_pg_conn *c, char **ret);

/* ---- retention ---- */

/**
 * tm_pg_wal_retention() - remove the WAL files of component that no kept
 * base backup needs: every segment, .partial and backup history file whose
 * segment number is below the start segment of the oldest base backup of
 * the component (on any timeline), not counting the n_gone base backups in
 * gone (being forgotten: a dry run passes them). Timeline history files
 * are kept (tiny, and recovery reads them all). With no base backup left
 * nothing is removed. Run it after forgetting base backups; prune then
 * frees the data. dry_run: only count. ret_removed / ret_kept (may be
 * NULL): WAL files. Returns 0, -errno (what was removed before the error
 * stays removed).
 */
int tm_pg_wal_retention(tm_repo *repo, const char *component, const tm_id *gone, size_t n_gone,
                        int dry_run, size_t *ret_removed, size_t *ret_kept);

/**
 * tm_pg_wal_damage_window() - what a damaged WAL file of the WAL component
 * wal_component ("<C>-wal") breaks: if the file lies in a recoverable
 * window of component C, out gets "the recoverable window of component 'C'
 * from A to B (timeline N) is broken at WAL file NAME" and 0 is returned;
 * -ENOENT when no window needs it (or it is not a WAL segment), -errno.
 */
int tm_pg_wal_damage_window(tm_repo *repo, const char *wal_component, const char *name, char *out,
                            size_t n);

/**
 * tm_pg_restore_command() - append to out the restore_command with which
 * PostgreSQL fetches a component's WAL through the tidemark binary exe:
 * 'exe' '-q' '-r' 'repo' ['--password-file' 'pw'] ['--catalog' 'cat']
 * '--component' 'C' wal-fetch %f %p, each word shell-quoted (the server
 * runs it with /bin/sh). password_file and catalog may be NULL.
 * Returns 0, -EINVAL, -ENOMEM.
 */
int tm_pg_restore_command(tm_buf *out, const char *exe, const char *repo, const char *password_file,
                          const char *catalog, const char *component);

/**
 * tm_pg_window() - the whole recoverable span of a database component: the
 * earliest instant of its first window and the latest of its last (see
 * tm_pg_windows_get() for the windows and gaps in between). Returns 0,
 * -ENOENT (no base backup), -errno.
 */
int tm_pg_window(tm_repo *repo, const char *component, int64_t *ret_earliest, int64_t *ret_latest);

/**
 * tm_pg_wal_continuous() - is the archived WAL of component continuous from
 * base backup `base` (its extra.postgres start_lsn and wal_segment_size;
 * 16 MiB when absent) up to and including the first segment archived after
 * target_ns? Segments are matched by number on any timeline. On a gap,
 * ret_missing gets the first missing segment's name (on the base backup's
 * timeline) and *ret_until the archive time of the last segment before it
 * (the base backup's time if none).
 * Returns 0 (continuous), -ENODATA (a gap), -ERANGE (no segment archived
 * after target yet), -EBADMSG (base has no usable start_lsn), -errno.
 */
int tm_pg_wal_continuous(tm_repo *repo, const char *component, const struct tm_snapshot *base,
                         int64_t target_ns, char *ret_missing, size_t n, int64_t *ret_until);
