#pragma once
/*
 * ops: the repository operations the programs run: backup, restore, check,
 * forget/prune, diff, stats. Each takes an open repository.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/repo.h>

/* Progress reports, called from a worker thread about 4 times a second.
 * totals are 0 while still unknown (the scanner runs alongside). */
struct tm_progress {
        const char *phase; /* "backup", "restore", "check" */
        uint64_t files_done, files_total;
        uint64_t bytes_done, bytes_total;
        int64_t elapsed_ns;
        int totals_final;
};
typedef void (*tm_progress_fn)(const struct tm_progress *p, void *userdata);

/* ---- backup ---- */
struct tm_backup_opts {
        const char *component; /* required */
        const char *strategy;  /* full | incremental | differential | continuous */
        const char *const *paths;
        size_t n_paths;
        const char *const *excludes; /* fnmatch patterns on the basename and the full path */
        size_t n_excludes;
        const char *const *tags;
        size_t n_tags;
        int stdin_fd;               /* >= 0: back up this stream as one file */
        const char *stdin_filename; /* its name in the snapshot */
        const char *host;           /* NULL: gethostname() */
        int64_t time;               /* 0: now */
        int threads;                /* 0: automatic */
        tm_progress_fn progress;
        void *userdata;
        /* Files whose full path matches one of these fnmatch patterns are cut
         * into fixed blocks of fixed_block bytes (4 KiB..TM_BLOB_MAX) instead
         * of content-defined chunks: files changed in place at page
         * granularity, such as PostgreSQL relation files, then share every
         * unchanged block with the previous backup. */
        const char *const *fixed_block_paths;
        size_t n_fixed_block_paths;
        uint32_t fixed_block;
        /* Stored as the snapshot's "extra" (a JSON object; NULL: none), for
         * what a module knows about the snapshot (PostgreSQL: the WAL range). */
        const char *extra_json;
};
#define TM_BACKUP_OPTS_INIT                               \
        (struct tm_backup_opts)                           \
        {                                                 \
                .strategy = "incremental", .stdin_fd = -1 \
        }
/* A backup that completed but could not read some files returns this (> 0). */
#define TM_BACKUP_PARTIAL 3
/**
 * tm_backup_run() - back up paths (or a stream) as one snapshot of a
 * component. Unreadable files are logged (each named), skipped, and counted;
 * the snapshot still commits and TM_BACKUP_PARTIAL is returned. ret gets the
 * committed snapshot (caller disposes). Returns 0, TM_BACKUP_PARTIAL, or a
 * negative errno (nothing committed: -ENOSPC, -EIO, -EINVAL...).
 */
int tm_backup_run(tm_repo *repo, const struct tm_backup_opts *opts, struct tm_snapshot *ret);

/* ---- restore ---- */
struct tm_restore_opts {
        const char *target;          /* directory; created if missing */
        const char *const *includes; /* snapshot-relative paths; none = everything */
        size_t n_includes;
        int threads;
        int no_owner; /* skip chown even as root */
        tm_progress_fn progress;
        void *userdata;
};
#define TM_RESTORE_OPTS_INIT     \
        (struct tm_restore_opts) \
        {                        \
                0                \
        }
struct tm_restore_stats {
        uint64_t files, dirs, others, bytes;
        uint64_t files_failed; /* each logged with the blob that failed */
};
/**
 * tm_restore_run() - write the snapshot's tree (or the included paths) under
 * target. Never writes outside target: names are validated, every file is
 * created through directory descriptors with O_NOFOLLOW, symlinks are created
 * but never followed. A file whose data fails verification is not left
 * behind (written to a temporary name, renamed only when complete) and the
 * others are still restored. Returns 0, -EBADMSG (some files failed; stats
 * say how many), -ENOENT (an include path is not in the snapshot), -errno.
 */
int tm_restore_run(tm_repo *repo, const struct tm_snapshot *snap,
                   const struct tm_restore_opts *opts, struct tm_restore_stats *ret);

/* ---- check ---- */
struct tm_check_opts {
        int read_data; /* read and verify every blob of every pack */
        int threads;
        tm_progress_fn progress;
        void *userdata;
};
#define TM_CHECK_OPTS_INIT     \
        (struct tm_check_opts) \
        {                      \
                0              \
        }
struct tm_check_stats {
        uint64_t snapshots, trees, blobs, packs, packs_read;
        uint64_t errors;
        uint64_t orphan_packs; /* not referenced by any index: harmless, prune removes */
};
/**
 * tm_check_run() - verify the repository: every snapshot's trees load, every
 * referenced blob is indexed, every indexed pack exists with the right size;
 * with read_data every pack's hash, trailer and blob is verified. Each
 * problem is logged (error level) naming the pack, the blobs, and the
 * snapshots and files affected. Returns 0 (clean), -EBADMSG (problems
 * found; stats->errors), or another negative errno.
 */
int tm_check_run(tm_repo *repo, const struct tm_check_opts *opts, struct tm_check_stats *ret);

/* ---- forget ---- */
struct tm_forget_policy {
        int last, hourly, daily, weekly, monthly, yearly; /* 0 = unused */
};
/**
 * tm_forget_plan() - decide which of n snapshots (one group: same
 * component; any order) to keep under a policy, restic's rules: the newest
 * `last`; then for each period the newest snapshot of each of the most recent
 * N distinct periods (hours, days, ISO weeks, months, years) that have one.
 * keep[i] is set to 1 or 0; reasons (may be NULL) gets a static string per
 * kept snapshot. A policy with every field 0 keeps everything.
 * Returns 0 or -EINVAL (negative counts).
 */
int tm_forget_plan(const struct tm_snapshot *snaps, size_t n, const struct tm_forget_policy *pol,
                   int *keep, const char **reasons);

/* ---- prune ---- */
struct tm_prune_opts {
        double max_unused; /* repack packs with more than this fraction unused (0.05) */
        int dry_run;
        int64_t lock_wait_s; /* how long to wait for running backups */
};
#define TM_PRUNE_OPTS_INIT                              \
        (struct tm_prune_opts)                          \
        {                                               \
                .max_unused = 0.05, .lock_wait_s = 3600 \
        }
struct tm_prune_stats {
        uint64_t packs_deleted, packs_repacked, packs_kept;
        uint64_t bytes_freed, blobs_removed;
        uint64_t index_files_rewritten;
};
/* Remove what no snapshot references. Holds the exclusive lock; waits for
 * backups in flight first. Crash-safe order: new packs, new index, delete
 * old index files, delete old packs. */
int tm_prune_run(tm_repo *repo, const struct tm_prune_opts *opts, struct tm_prune_stats *ret);

/* ---- diff ---- */
/* Compare two trees; fn gets '+' (only in b), '-' (only in a), 'M' (content
 * or metadata changed), 'T' (type changed) and the path. Unchanged subtrees
 * (same id) are skipped without loading. */
typedef int (*tm_diff_fn)(char change, const char *path, const struct tm_node *a,
                          const struct tm_node *b, void *userdata);
int tm_diff_trees(tm_repo *repo, const tm_id *a, const tm_id *b, tm_diff_fn fn, void *userdata);

/* ---- stats ---- */
struct tm_repo_stats {
        uint64_t snapshots;
        uint64_t packs, pack_bytes;            /* what the repository occupies */
        uint64_t blobs, blob_raw_bytes;        /* unique plaintext */
        uint64_t blob_stored_bytes;            /* sealed */
        uint64_t restore_bytes, restore_files; /* sum over snapshots (logical) */
        uint64_t index_files;
        /* storage tiers: blobs stored again hot/warm because a backup found
         * them only in cold/archive packs, and what those copies occupy */
        uint64_t fresh_copies, fresh_copy_bytes;
};
int tm_stats_compute(tm_repo *repo, struct tm_repo_stats *ret);
