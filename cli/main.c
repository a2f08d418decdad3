/*
 * tidemark: the command line program. This file parses the arguments (one
 * getopt_long pass over every option of every command, so options may come
 * before or after the command name, restic style), checks that each option
 * given belongs to the command, and dispatches. It also holds the shared
 * output and parsing helpers.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/audit.h>
#include <tidemark/harden.h>

#include "cli.h"

struct cli_opts cli_opts;

enum cli_cmd {
        CMD_INIT,
        CMD_BACKUP,
        CMD_RESTORE,
        CMD_SNAPSHOTS,
        CMD_LS,
        CMD_DIFF,
        CMD_STATS,
        CMD_CHECK,
        CMD_FORGET,
        CMD_PRUNE,
        CMD_REPAIR,
        CMD_KEY,
        CMD_MOUNT,
        CMD_AUDIT,
        CMD_WAL_PUSH,
        CMD_WAL_FETCH,
        CMD_TIER,
        CMD_THAW,
        CMD_REPLICATE,
        CMD_WAL_STREAM,
        CMD_WAL_STATUS,
        CMD_VERSION,
        CMD_HELP,
};

#define M(c)     (1u << (c))
#define ALL_CMDS (~0u)
/* commands that take a snapshot selector and so accept --component */
#define SELECTOR_CMDS                                                                  \
        (M(CMD_BACKUP) | M(CMD_SNAPSHOTS) | M(CMD_LS) | M(CMD_DIFF) | M(CMD_RESTORE) | \
         M(CMD_FORGET))


static const struct {
        const char *name;
        int (*fn)(void);
        const char *summary;
} commands[] = {
        [CMD_INIT] = { "init", cli_cmd_init, "create a new repository" },
        [CMD_BACKUP] = { "backup", cli_cmd_backup, "save files or a stream as a new snapshot" },
        [CMD_RESTORE] = { "restore", cli_cmd_restore, "restore a snapshot into a directory" },
        [CMD_SNAPSHOTS] = { "snapshots", cli_cmd_snapshots, "list snapshots" },
        [CMD_LS] = { "ls", cli_cmd_ls, "list the files in a snapshot" },
        [CMD_DIFF] = { "diff", cli_cmd_diff, "show what changed between two snapshots" },
        [CMD_STATS] = { "stats", cli_cmd_stats, "show repository statistics" },
        [CMD_CHECK] = { "check", cli_cmd_check, "verify the repository" },
        [CMD_FORGET] = { "forget", cli_cmd_forget, "remove snapshots by policy or by id" },
        [CMD_PRUNE] = { "prune", cli_cmd_prune, "remove data no snapshot references" },
        [CMD_REPAIR] = { "repair", cli_cmd_repair, "rebuild the catalog or the index" },
        [CMD_KEY] = { "key", cli_cmd_key, "manage passphrases (list, add, remove, passwd)" },
        [CMD_MOUNT] = { "mount", cli_cmd_mount, "browse every snapshot as a filesystem" },
        [CMD_AUDIT] = { "audit", cli_cmd_audit, "verify a daemon's audit log (audit verify FILE)" },
        [CMD_WAL_PUSH] = { "wal-push", cli_cmd_wal_push,
                           "archive a PostgreSQL WAL file (archive_command)" },
        [CMD_WAL_FETCH] = { "wal-fetch", cli_cmd_wal_fetch,
                            "fetch an archived WAL file (restore_command)" },
        [CMD_TIER] = { "tier", cli_cmd_tier,
                       "storage tiers: status, or run the lifecycle (tier status|run)" },
        [CMD_THAW] = { "thaw", cli_cmd_thaw, "restore a snapshot's archived packs from Glacier" },
        [CMD_REPLICATE] = { "replicate", cli_cmd_replicate, "copy the repository to its replica" },
        [CMD_WAL_STREAM] = { "wal-stream", cli_cmd_wal_stream,
                             "stream PostgreSQL WAL from a replication slot" },
        [CMD_WAL_STATUS] = { "wal-status", cli_cmd_wal_status,
                             "show a PostgreSQL component's recoverable windows and WAL gaps" },
        [CMD_VERSION] = { "version", NULL, "print the version" },
        [CMD_HELP] = { "help", NULL, "print this help" },
};

enum {
        OPT_PASSWORD_FILE = 256,
        OPT_CATALOG,
        OPT_JSON,
        OPT_THREADS,
        OPT_VERSION,
        OPT_KDF,
        OPT_KDF_MEMORY,
        OPT_KDF_ITERATIONS,
        OPT_COMPONENT,
        OPT_STRATEGY,
        OPT_TAG,
        OPT_EXCLUDE,
        OPT_HOST,
        OPT_STDIN,
        OPT_STDIN_FILENAME,
        OPT_TARGET,
        OPT_INCLUDE,
        OPT_READ_DATA,
        OPT_KEEP_LAST,
        OPT_KEEP_HOURLY,
        OPT_KEEP_DAILY,
        OPT_KEEP_WEEKLY,
        OPT_KEEP_MONTHLY,
        OPT_KEEP_YEARLY,
        OPT_PRUNE,
        OPT_DRY_RUN,
        OPT_MAX_UNUSED,
        OPT_POSTGRES,
        OPT_ONCE,
        OPT_STATUS,
        OPT_TO,
        OPT_NEW_PASSWORD_FILE,
        OPT_CONFIG,
        OPT_NO_WAIT,
        OPT_SLOT,
        OPT__END /* keep last: sizes the table of options seen */
};

static const struct option long_options[] = {
        { "repo", required_argument, NULL, 'r' },
        { "password-file", required_argument, NULL, OPT_PASSWORD_FILE },
        { "catalog", required_argument, NULL, OPT_CATALOG },
        { "json", no_argument, NULL, OPT_JSON },
        { "quiet", no_argument, NULL, 'q' },
        { "verbose", no_argument, NULL, 'v' },
        { "threads", required_argument, NULL, OPT_THREADS },
        { "version", no_argument, NULL, OPT_VERSION },
        { "help", no_argument, NULL, 'h' },
        { "kdf", required_argument, NULL, OPT_KDF },
        { "kdf-memory", required_argument, NULL, OPT_KDF_MEMORY },
        { "kdf-iterations", required_argument, NULL, OPT_KDF_ITERATIONS },
        { "component", required_argument, NULL, OPT_COMPONENT },
        { "strategy", required_argument, NULL, OPT_STRATEGY },
        { "tag", required_argument, NULL, OPT_TAG },
        { "exclude", required_argument, NULL, OPT_EXCLUDE },
        { "host", required_argument, NULL, OPT_HOST },
        { "stdin", no_argument, NULL, OPT_STDIN },
        { "stdin-filename", required_argument, NULL, OPT_STDIN_FILENAME },
        { "long", no_argument, NULL, 'l' },
        { "target", required_argument, NULL, OPT_TARGET },
        { "include", required_argument, NULL, OPT_INCLUDE },
        { "read-data", no_argument, NULL, OPT_READ_DATA },
        { "keep-last", required_argument, NULL, OPT_KEEP_LAST },
        { "keep-hourly", required_argument, NULL, OPT_KEEP_HOURLY },
        { "keep-daily", required_argument, NULL, OPT_KEEP_DAILY },
        { "keep-weekly", required_argument, NULL, OPT_KEEP_WEEKLY },
        { "keep-monthly", required_argument, NULL, OPT_KEEP_MONTHLY },
        { "keep-yearly", required_argument, NULL, OPT_KEEP_YEARLY },
        { "prune", no_argument, NULL, OPT_PRUNE },
        { "dry-run", no_argument, NULL, OPT_DRY_RUN },
        { "max-unused", required_argument, NULL, OPT_MAX_UNUSED },
        { "new-password-file", required_argument, NULL, OPT_NEW_PASSWORD_FILE },
        { "postgres", required_argument, NULL, OPT_POSTGRES },
        { "config", required_argument, NULL, OPT_CONFIG },
        { "no-wait", no_argument, NULL, OPT_NO_WAIT },
        { "once", no_argument, NULL, OPT_ONCE },
        { "status", no_argument, NULL, OPT_STATUS },
        { "to", required_argument, NULL, OPT_TO },
        { "slot", required_argument, NULL, OPT_SLOT },
        { "foreground", no_argument, NULL, 'f' },
        { "options", required_argument, NULL, 'o' },
        { NULL, 0, NULL, 0 },
};

/* Which commands accept an option (by its getopt value). */
static unsigned option_commands(int val)
{
        switch (val) {
        case OPT_KDF:
        case OPT_KDF_MEMORY:
        case OPT_KDF_ITERATIONS:
                return M(CMD_INIT);
        case OPT_COMPONENT:
                return SELECTOR_CMDS | M(CMD_WAL_PUSH) | M(CMD_WAL_FETCH) | M(CMD_WAL_STREAM) |
                       M(CMD_WAL_STATUS);
        case OPT_POSTGRES:
                return M(CMD_BACKUP) | M(CMD_WAL_STREAM);
        case OPT_SLOT:
                return M(CMD_WAL_STREAM);
        case OPT_STRATEGY:
        case OPT_TAG:
        case OPT_EXCLUDE:
        case OPT_HOST:
        case OPT_STDIN:
        case OPT_STDIN_FILENAME:
                return M(CMD_BACKUP);
        case 'l':
                return M(CMD_LS);
        case OPT_TARGET:
        case OPT_INCLUDE:
                return M(CMD_RESTORE);
        case OPT_READ_DATA:
                return M(CMD_CHECK);
        case OPT_KEEP_LAST:
        case OPT_KEEP_HOURLY:
        case OPT_KEEP_DAILY:
        case OPT_KEEP_WEEKLY:
        case OPT_KEEP_MONTHLY:
        case OPT_KEEP_YEARLY:
        case OPT_PRUNE:
                return M(CMD_FORGET);
        case OPT_DRY_RUN:
                return M(CMD_FORGET) | M(CMD_PRUNE) | M(CMD_TIER);
        case OPT_MAX_UNUSED:
                return M(CMD_FORGET) | M(CMD_PRUNE);
        case OPT_NO_WAIT:
                return M(CMD_THAW);
        case OPT_NEW_PASSWORD_FILE:
                return M(CMD_KEY);
        case 'f':
        case 'o':
                return M(CMD_MOUNT);
        case OPT_ONCE:
        case OPT_STATUS:
        case OPT_TO:
                return M(CMD_REPLICATE);
        default:
                return ALL_CMDS;
        }
}

static const char *option_name(int val, char *buf, size_t n)
{
        for (size_t i = 0; long_options[i].name; i++)
                if (long_options[i].val == val) {
                        snprintf(buf, n, "--%s", long_options[i].name);
                        return buf;
                }
        snprintf(buf, n, "-%c", val);
        return buf;
}

/* ---- messages ---- */

static void vmessage(const char *prefix, int r, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
static void vmessage(const char *prefix, int r, const char *fmt, va_list ap)
{
        char msg[2048];
        size_t n;

        vsnprintf(msg, sizeof(msg), fmt, ap);
        if (r) {
                n = strlen(msg);
                snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(r < 0 ? -r : r));
        }
        cli_term_line(prefix, msg);
}

int cli_error(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vmessage("tidemark: error: ", 0, fmt, ap);
        va_end(ap);
        return CLI_EXIT_FAIL;
}

int cli_error_errno(int r, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vmessage("tidemark: error: ", r, fmt, ap);
        va_end(ap);
        return CLI_EXIT_FAIL;
}

void cli_warn(const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vmessage("tidemark: warning: ", 0, fmt, ap);
        va_end(ap);
}

void cli_out(const char *fmt, ...)
{
        va_list ap;

        if (cli_opts.quiet)
                return;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
}

void cli_json_print(json_t *value)
{
        char *s;

        if (!value)
                return;
        if (!cli_opts.quiet) {
                s = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
                if (s) {
                        puts(s);
                        free(s);
                }
        }
        json_decref(value);
}

/* ---- parsing ---- */

int cli_parse_u64(const char *what, const char *s, uint64_t max, uint64_t *ret)
{
        unsigned long long v;
        char *end = NULL;

        /* strtoull accepts leading blanks and a minus sign; a count does not */
        if (!s || *s < '0' || *s > '9')
                goto bad;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || !end || *end || v > max)
                goto bad;
        *ret = v;
        return 0;
bad:
        cli_error("invalid value '%s' for %s: expected a whole number from 0 to %llu", s ? s : "",
                  what, (unsigned long long)max);
        return -EINVAL;
}

int cli_parse_int(const char *what, const char *s, int *ret)
{
        uint64_t v;
        int r;

        r = cli_parse_u64(what, s, 1000000000, &v);
        if (r < 0)
                return r;
        *ret = (int)v;
        return 0;
}

/* A percentage: "5", "5%", "2.5". */
static int parse_percent(const char *what, const char *s, double *ret)
{
        char *end = NULL;
        double v;

        if (!s || ((*s < '0' || *s > '9') && *s != '.'))
                goto bad;
        errno = 0;
        v = strtod(s, &end);
        if (errno || !end || end == s)
                goto bad;
        if (*end == '%')
                end++;
        if (*end || !isfinite(v) || v < 0 || v > 100)
                goto bad;
        *ret = v / 100.0;
        return 0;
bad:
        cli_error("invalid value '%s' for %s: expected a percentage from 0 to 100", s ? s : "",
                  what);
        return -EINVAL;
}

static int strv_add(struct cli_strv *sv, const char *s)
{
        if (sv->n == sv->cap) {
                size_t cap = sv->cap ? sv->cap * 2 : 8;
                const char **v = realloc(sv->v, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                sv->v = v;
                sv->cap = cap;
        }
        sv->v[sv->n++] = s;
        return 0;
}

static void strv_dispose(struct cli_strv *sv)
{
        free(sv->v);
        *sv = (struct cli_strv){ 0 };
}

/* ---- formatting ---- */

void cli_format_bytes(uint64_t bytes, char *out, size_t n)
{
        static const char *units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
        double v = (double)bytes;
        size_t u = 0;

        if (bytes < 1024) {
                snprintf(out, n, "%llu B", (unsigned long long)bytes);
                return;
        }
        v /= 1024;
        while (v >= 1024 && u + 1 < TM_ARRAY_SIZE(units)) {
                v /= 1024;
                u++;
        }
        snprintf(out, n, "%.3f %s", v, units[u]);
}

void cli_short_id(const tm_id *id, char out[9])
{
        char hex[TM_ID_HEX_LEN + 1];

        tm_id_hex(id, hex);
        memcpy(out, hex, 8);
        out[8] = '\0';
}

json_t *cli_snapshot_json(const struct tm_snapshot *s)
{
        tm_buf b = TM_BUF_INIT(TM_SNAPSHOT_MAX);
        char hex[TM_ID_HEX_LEN + 1];
        json_t *o = NULL;

        /* the manifest's own canonical JSON, so --json shows exactly the
         * fields that are stored */
        if (tm_snapshot_encode(s, &b) < 0)
                goto out;
        o = json_loadb((const char *)b.data, b.len, 0, NULL);
        if (!o)
                goto out;
        tm_id_hex(&s->id, hex);
        json_object_set_new(o, "id", json_string(hex));
        hex[8] = '\0';
        json_object_set_new(o, "short_id", json_string(hex));
out:
        tm_buf_dispose(&b);
        return o;
}

/* ---- usage ---- */

static void usage(FILE *f)
{
        fprintf(f, "usage: tidemark [options] <command> [arguments]\n\ncommands:\n");
        for (size_t i = 0; i < TM_ARRAY_SIZE(commands); i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
        fprintf(f, "\nglobal options:\n"
                   "  -r, --repo LOCATION      repository (or TIDEMARK_REPOSITORY)\n"
                   "      --password-file FILE read the passphrase from FILE (or\n"
                   "                           TIDEMARK_PASSWORD_FILE, TIDEMARK_PASSWORD)\n"
                   "      --catalog PATH       catalog cache file (or TIDEMARK_CATALOG)\n"
                   "      --config FILE        config file whose [tier.*] sections place packs\n"
                   "                           in warm/cold/archive tiers (or TIDEMARK_CONFIG)\n"
                   "      --json               machine-readable output\n"
                   "  -q, --quiet              print nothing but errors\n"
                   "  -v, --verbose            more logging (twice: debug)\n"
                   "      --threads N          worker threads\n"
                   "      --version            print the version\n"
                   "  -h, --help               print this help\n"
                   "\nsee docs/cli.md for every command's options.\n");
}

/* ---- main ---- */

int main(int argc, char **argv)
{
        unsigned char seen[OPT__END] = { 0 };
        int c, r = CLI_EXIT_FAIL, want_version = 0, want_help = 0;
        const char *name;
        tm_audit *audit = NULL;
        int cmd = -1;
        char optbuf[64];
        uint64_t v;

        tm_log_set_sink(cli_log_sink, NULL);
        tm_log_set_level(TM_LOG_WARN);
        /* no core file and no same-user ptrace can read the key */
        r = tm_harden_process();
        if (r < 0) {
                cli_error_errno(r, "cannot disable core dumps");
                r = CLI_EXIT_FAIL;
                goto out;
        }
        r = CLI_EXIT_FAIL;
        cli_opts.max_unused = -1;
        opterr = 0;
        while ((c = getopt_long(argc, argv, ":r:qvhlfo:", long_options, NULL)) != -1) {
                int *keep = NULL;

                if (c == '?') {
                        if (optopt)
                                cli_error("unknown option '-%c' (see 'tidemark help')", optopt);
                        else
                                cli_error("unknown option '%s' (see 'tidemark help')",
                                          argv[optind - 1]);
                        goto out;
                }
                if (c == ':') {
                        cli_error("option '%s' needs a value",
                                  optopt ? option_name(optopt, optbuf, sizeof(optbuf))
                                         : argv[optind - 1]);
                        goto out;
                }
                if (c >= 0 && (size_t)c < sizeof(seen))
                        seen[c] = 1;
                switch (c) {
                case 'r':
                        cli_opts.repo = optarg;
                        break;
                case OPT_PASSWORD_FILE:
                        cli_opts.password_file = optarg;
                        break;
                case OPT_CATALOG:
                        cli_opts.catalog = optarg;
                        break;
                case OPT_JSON:
                        cli_opts.json = 1;
                        break;
                case 'q':
                        cli_opts.quiet = 1;
                        break;
                case 'v':
                        cli_opts.verbose++;
                        break;
                case OPT_THREADS:
                        if (cli_parse_u64("--threads", optarg, 1024, &v) < 0)
                                goto out;
                        cli_opts.threads = (int)v;
                        break;
                case OPT_VERSION:
                        want_version = 1;
                        break;
                case 'h':
                        want_help = 1;
                        break;
                case OPT_KDF:
                        cli_opts.kdf = optarg;
                        break;
                case OPT_KDF_MEMORY:
                        if (cli_parse_u64("--kdf-memory", optarg, UINT32_MAX,
                                          &cli_opts.kdf_memory) < 0)
                                goto out;
                        cli_opts.has_kdf_memory = 1;
                        break;
                case OPT_KDF_ITERATIONS:
                        if (cli_parse_u64("--kdf-iterations", optarg, UINT32_MAX,
                                          &cli_opts.kdf_iterations) < 0)
                                goto out;
                        cli_opts.has_kdf_iterations = 1;
                        break;
                case OPT_COMPONENT:
                        cli_opts.component = optarg;
                        break;
                case OPT_STRATEGY:
                        cli_opts.strategy = optarg;
                        break;
                case OPT_TAG:
                        if (strv_add(&cli_opts.tags, optarg) < 0)
                                goto nomem;
                        break;
                case OPT_EXCLUDE:
                        if (strv_add(&cli_opts.excludes, optarg) < 0)
                                goto nomem;
                        break;
                case OPT_HOST:
                        cli_opts.host = optarg;
                        break;
                case OPT_STDIN:
                        cli_opts.use_stdin = 1;
                        break;
                case OPT_STDIN_FILENAME:
                        cli_opts.stdin_filename = optarg;
                        break;
                case 'l':
                        cli_opts.long_format = 1;
                        break;
                case OPT_TARGET:
                        cli_opts.target = optarg;
                        break;
                case OPT_INCLUDE:
                        if (strv_add(&cli_opts.includes, optarg) < 0)
                                goto nomem;
                        break;
                case OPT_READ_DATA:
                        cli_opts.read_data = 1;
                        break;
                case OPT_KEEP_LAST:
                        keep = &cli_opts.policy.last;
                        break;
                case OPT_KEEP_HOURLY:
                        keep = &cli_opts.policy.hourly;
                        break;
                case OPT_KEEP_DAILY:
                        keep = &cli_opts.policy.daily;
                        break;
                case OPT_KEEP_WEEKLY:
                        keep = &cli_opts.policy.weekly;
                        break;
                case OPT_KEEP_MONTHLY:
                        keep = &cli_opts.policy.monthly;
                        break;
                case OPT_KEEP_YEARLY:
                        keep = &cli_opts.policy.yearly;
                        break;
                case OPT_PRUNE:
                        cli_opts.prune = 1;
                        break;
                case OPT_DRY_RUN:
                        cli_opts.dry_run = 1;
                        break;
                case OPT_MAX_UNUSED:
                        if (parse_percent("--max-unused", optarg, &cli_opts.max_unused) < 0)
                                goto out;
                        break;
                case OPT_NEW_PASSWORD_FILE:
                        cli_opts.new_password_file = optarg;
                        break;
                case OPT_POSTGRES:
                        cli_opts.postgres = optarg;
                        break;
                case OPT_CONFIG:
                        cli_opts.config = optarg;
                        break;
                case OPT_NO_WAIT:
                        cli_opts.no_wait = 1;
                        break;
                case OPT_ONCE:
                        cli_opts.replicate_once = 1;
                        break;
                case OPT_STATUS:
                        cli_opts.replicate_status = 1;
                        break;
                case OPT_TO:
                        cli_opts.replicate_to = optarg;
                        break;
                case OPT_SLOT:
                        cli_opts.slot = optarg;
                        break;
                case 'f':
                        cli_opts.foreground = 1;
                        break;
                case 'o':
                        if (strv_add(&cli_opts.mount_options, optarg) < 0)
                                goto nomem;
                        break;
                default:
                        cli_error("unhandled option");
                        goto out;
                }
                if (keep) {
                        if (cli_parse_int(option_name(c, optbuf, sizeof(optbuf)), optarg, keep) < 0)
                                goto out;
                        cli_opts.has_policy = 1;
                }
        }

        if (want_version) {
                printf("tidemark %s\n", TM_VERSION);
                r = CLI_EXIT_OK;
                goto out;
        }
        if (optind >= argc) {
                if (want_help) {
                        usage(stdout);
                        r = CLI_EXIT_OK;
                        goto out;
                }
                usage(stderr);
                r = cli_error("no command given");
                goto out;
        }
        name = argv[optind];
        for (size_t i = 0; i < TM_ARRAY_SIZE(commands); i++)
                if (strcmp(name, commands[i].name) == 0)
                        cmd = (int)i;
        if (cmd < 0) {
                r = cli_error("unknown command '%s' (see 'tidemark help')", name);
                goto out;
        }
        if (cmd == CMD_HELP || want_help) {
                usage(stdout);
                r = CLI_EXIT_OK;
                goto out;
        }
        if (cmd == CMD_VERSION) {
                printf("tidemark %s\n", TM_VERSION);
                r = CLI_EXIT_OK;
                goto out;
        }
        for (size_t i = 0; i < sizeof(seen); i++)
                if (seen[i] && !(option_commands((int)i) & M(cmd))) {
                        r = cli_error("option '%s' is not valid for '%s'",
                                      option_name((int)i, optbuf, sizeof(optbuf)), name);
                        goto out;
                }
        if (cli_opts.verbose)
                tm_log_set_level(cli_opts.verbose > 1 ? TM_LOG_DEBUG : TM_LOG_INFO);
        if (!cli_opts.repo)
                cli_opts.repo = getenv("TIDEMARK_REPOSITORY");
        if (!cli_opts.catalog)
                cli_opts.catalog = getenv("TIDEMARK_CATALOG");
        if (!cli_opts.config)
                cli_opts.config = getenv("TIDEMARK_CONFIG");
        cli_opts.args = argv + optind + 1;
        cli_opts.n_args = (size_t)(argc - optind - 1);
        if (cli_audit_wanted(name)) {
                r = cli_audit_begin(&audit);
                if (r != 0)
                        goto out;
        }
        if (cmd == CMD_BACKUP && cli_pg_backup_wanted())
                r = cli_cmd_pg_backup();
        else if (cmd == CMD_RESTORE && cli_opts.component)
                r = cli_cmd_pg_restore();
        else
                r = commands[cmd].fn();
        cli_audit_end(audit, name, argc, argv, r);
        fflush(stdout);
        if (ferror(stdout))
                r = cli_error("cannot write the output");
        goto out;
nomem:
        r = cli_error_errno(-ENOMEM, "cannot parse the arguments");
out:
        strv_dispose(&cli_opts.tags);
        strv_dispose(&cli_opts.excludes);
        strv_dispose(&cli_opts.includes);
        strv_dispose(&cli_opts.mount_options);
        tm_audit_close(audit);
        tm_config_free(cli_opts.cfg);
        return r;
}
