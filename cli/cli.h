#pragma once
/*
 * The tidemark command line: a thin shell over libtidemark. main.c parses
 * the arguments into struct cli_opts and dispatches to one cli_cmd_*()
 * function per command; each returns the process exit code.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include <tidemark/config.h>
#include <tidemark/log.h>
#include <tidemark/ops.h>
#include <tidemark/repo.h>

#define CLI_EXIT_OK      0
#define CLI_EXIT_FAIL    1
#define CLI_EXIT_PARTIAL 3

/* A growable list of option values given several times (--tag, --exclude). */
struct cli_strv {
        const char **v;
        size_t n, cap;
};

/* Everything the command line said. Strings point into argv or environ. */
struct cli_opts {
        /* global */
        const char *repo;
        const char *password_file;
        const char *catalog;
        int json, quiet, verbose;
        int threads;
        /* init */
        const char *kdf;
        uint64_t kdf_memory, kdf_iterations;
        int has_kdf_memory, has_kdf_iterations;
        /* backup */
        const char *component;
        const char *strategy;
        const char *host;
        struct cli_strv tags, excludes;
        int use_stdin;
        const char *stdin_filename;
        /* ls */
        int long_format;
        /* restore */
        const char *target;
        struct cli_strv includes;
        /* check */
        int read_data;
        /* forget / prune */
        struct tm_forget_policy policy;
        int has_policy;
        int prune, dry_run;
        double max_unused; /* fraction; < 0 = default */
        /* key */
        const char *new_password_file;
        /* mount */
        int foreground;
        struct cli_strv mount_options;
        /* positional arguments after the command name */
        char **args;
        size_t n_args;
        /* backup --postgres CONNINFO (cli_pg.c) */
        const char *postgres;
        /* --config FILE (or TIDEMARK_CONFIG): the [tier.*] sections; loaded
         * by cli_repo_opts() into cfg */
        const char *config;
        struct tm_config *cfg;
        /* thaw --no-wait */
        int no_wait;
        /* replicate (cli_replica.c) */
        int replicate_once, replicate_status;
        const char *replicate_to;
        /* wal-stream --slot NAME (cli_pg.c) */
        const char *slot;
};

extern struct cli_opts cli_opts;

/* ---- messages (main.c) ---- */
/* Print "tidemark: error: <message>" and return CLI_EXIT_FAIL. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* cli_audit.c: `audit verify`, and the entries of mutating commands in the
 * config's audit_log. begin returns 0 (*ret NULL when nothing is to be
 * recorded) or an exit code; end appends the entry and closes nothing. */
struct tm_audit;
int cli_cmd_audit(void);
int cli_audit_wanted(const char *command);
int cli_audit_begin(struct tm_audit **ret);
void cli_audit_end(struct tm_audit *a, const char *command, int argc, char **argv, int rc);
/* Same, with ": <strerror(-r)>" appended. */
int cli_error_errno(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "tidemark: warning: <message>" on stderr (kept even with --quiet). */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Normal output on stdout, suppressed by --quiet. */
void cli_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print a JSON value on stdout as one line and release it (steals value). */
void cli_json_print(json_t *value);

/* ---- number parsing (main.c) ---- */
/* Parse a whole decimal unsigned integer in [0, max]; on junk print
 * "invalid value 'x' for <what>" and return -EINVAL. */
int cli_parse_u64(const char *what, const char *s, uint64_t max, uint64_t *ret);
int cli_parse_int(const char *what, const char *s, int *ret);

/* ---- formatting (main.c) ---- */
/* "1.234 MiB" style, into out. */
void cli_format_bytes(uint64_t bytes, char *out, size_t n);
/* First 8 hex chars of an id. */
void cli_short_id(const tm_id *id, char out[9]);
/* A snapshot as a JSON object (the manifest fields plus "id"); NULL on ENOMEM. */
json_t *cli_snapshot_json(const struct tm_snapshot *s);

/* ---- repository (cli_repo.c) ---- */
/* A passphrase read from the environment, a file, or the terminal. */
struct cli_secret {
        char *p;
        size_t len;
};
void cli_secret_dispose(struct cli_secret *s);
/* The passphrase of the repository (TIDEMARK_PASSWORD[_FILE], --password-file,
 * or a prompt); confirm asks twice on a terminal (init). Prints the error. */
int cli_password_get(int confirm, struct cli_secret *ret);
/* The new passphrase for key add/passwd. Prints the error. */
int cli_new_password_get(struct cli_secret *ret);
/* Fill repository options from the globals and environment (location,
 * catalog). Prints the error when the location is missing. */
int cli_repo_opts(struct tm_repo_opts *o);
/* Open the repository with everything the user gave. Prints the error. */
int cli_repo_open(tm_repo **ret);
/* Resolve a snapshot selector (id prefix, latest, @TIME). Prints the error. */
int cli_snapshot_find(tm_repo *repo, const char *spec, struct tm_snapshot *ret);

/* ---- progress and log output (cli_progress.c) ---- */
struct cli_progress {
        int enabled;
        int64_t start_ns;
};
/* Enabled when stderr is a terminal and not --quiet. */
void cli_progress_init(struct cli_progress *p);
/* tm_progress_fn: redraws one \r-rewritten line on stderr. */
void cli_progress_update(const struct tm_progress *p, void *userdata);
/* Erase the progress line (before the final output). */
void cli_progress_done(struct cli_progress *p);
/* Write one complete line to stderr, erasing a progress line first. */
void cli_term_line(const char *prefix, const char *msg);
/* The tm_log sink of the program. */
void cli_log_sink(enum tm_log_level level, int err, const char *msg, void *userdata);

/* ---- commands: each returns the exit code ---- */
int cli_cmd_init(void);
int cli_cmd_backup(void);
int cli_cmd_restore(void);
int cli_cmd_snapshots(void);
int cli_cmd_ls(void);
int cli_cmd_diff(void);
int cli_cmd_stats(void);
int cli_cmd_check(void);
int cli_cmd_forget(void);
int cli_cmd_prune(void);
int cli_cmd_repair(void);
int cli_cmd_key(void);
int cli_cmd_mount(void);
int cli_cmd_replicate(void); /* cli_replica.c */

/* ---- PostgreSQL (cli_pg.c) ---- */
int cli_cmd_wal_push(void);
int cli_cmd_wal_fetch(void);
/* cli_tier.c */
int cli_cmd_tier(void);
int cli_cmd_thaw(void);
/* Thaw what the snapshots need, in one batch (wait: until readable).
 * Returns 0, -EAGAIN (not yet, !wait) or -errno (reported). */
int cli_thaw_snapshots(tm_repo *repo, const struct tm_snapshot *snaps, size_t n, int wait);
int cli_cmd_wal_stream(void);
int cli_cmd_wal_status(void);
/* After forget applied a policy to a component's snapshots (group, as they
 * were): if they include PostgreSQL base backups, drop the WAL files no
 * remaining base backup needs (honours --dry-run). Returns 0 or -errno. */
int cli_pg_wal_retention(tm_repo *repo, const char *component, const struct tm_snapshot *group,
                         size_t n);
/* Does this backup command ask for a PostgreSQL base backup (--postgres, or
 * TIDEMARK_PG_CONNINFO with no paths)? */
int cli_pg_backup_wanted(void);
int cli_cmd_pg_backup(void);
/* restore with --component: a PostgreSQL base backup gets its recovery
 * settings; any other snapshot goes to cli_cmd_restore(). */
int cli_cmd_pg_restore(void);
