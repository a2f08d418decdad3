/*
 * PostgreSQL commands:
 *   tidemark wal-push PATH                 archive_command = 'tidemark ... wal-push %p'
 *   tidemark wal-fetch NAME DEST           restore_command = 'tidemark ... wal-fetch %f %p'
 *   tidemark backup --postgres CONNINFO    a base backup (or TIDEMARK_PG_CONNINFO)
 *   tidemark restore --component C @T --target DIR
 *                                          a PGDATA that recovers to T
 * See docs/postgresql.md.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tidemark/pg.h>
#include <tidemark/time.h>

#include "cli.h"

static const char *pg_component(void)
{
        return cli_opts.component && *cli_opts.component ? cli_opts.component : "database";
}

int cli_cmd_wal_push(void)
{
        tm_repo *repo = NULL;
        int r;

        if (cli_opts.n_args != 1)
                return cli_error("wal-push needs exactly one WAL file (wal-push %%p)");
        if (cli_repo_open(&repo) < 0)
                return CLI_EXIT_FAIL;
        r = tm_pg_wal_push(repo, pg_component(), cli_opts.args[0]);
        tm_repo_free(repo);
        if (r < 0)
                return cli_error_errno(r, "wal-push of '%s' failed", cli_opts.args[0]);
        return CLI_EXIT_OK;
}

int cli_cmd_wal_fetch(void)
{
        tm_repo *repo = NULL;
        int r;

        if (cli_opts.n_args != 2)
                return cli_error("wal-fetch needs a WAL file name and a destination (wal-fetch "
                                 "%%f %%p)");
        if (cli_repo_open(&repo) < 0)
                return CLI_EXIT_FAIL;
        r = tm_pg_wal_fetch(repo, pg_component(), cli_opts.args[0], cli_opts.args[1]);
        tm_repo_free(repo);
        /* PostgreSQL asks for files that were never archived (the next
         * timeline's history, the segment after the last): that is exit 1
         * without a message */
        if (r == -ENOENT)
                return CLI_EXIT_FAIL;
        if (r < 0)
                return cli_error_errno(r, "wal-fetch of '%s' failed", cli_opts.args[0]);
        return CLI_EXIT_OK;
}

int cli_pg_backup_wanted(void)
{
        const char *env = getenv("TIDEMARK_PG_CONNINFO");

        if (cli_opts.postgres)
                return 1;
        return env && *env && cli_opts.n_args == 0 && !cli_opts.use_stdin;
}

int cli_cmd_pg_backup(void)
{
        struct tm_pg_backup_opts o = { 0 };
        struct tm_snapshot snap = { 0 };
        struct cli_progress prog;
        tm_repo *repo = NULL;
        char id[9];
        int r;

        o.conninfo = cli_opts.postgres ? cli_opts.postgres : getenv("TIDEMARK_PG_CONNINFO");
        if (cli_opts.n_args || cli_opts.use_stdin)
                return cli_error("backup --postgres takes no paths and no --stdin");
        if (cli_opts.strategy && strcmp(cli_opts.strategy, "full") != 0)
                cli_warn("a PostgreSQL base backup is always a full one (deduplicated against "
                         "the others); --strategy %s ignored",
                         cli_opts.strategy);
        o.component = pg_component();
        o.tags = cli_opts.tags.v;
        o.n_tags = cli_opts.tags.n;
        o.host = cli_opts.host;
        o.staging = getenv("TIDEMARK_PG_STAGING");
        if (cli_repo_open(&repo) < 0)
                return CLI_EXIT_FAIL;
        cli_progress_init(&prog);
        o.progress = cli_progress_update;
        o.userdata = &prog;
        r = tm_pg_backup_run(repo, &o, &snap);
        cli_progress_done(&prog);
        if (r < 0) {
                cli_error_errno(r, "base backup of component '%s' failed", o.component);
                goto out;
        }
        cli_short_id(&snap.id, id);
        if (cli_opts.json)
                cli_json_print(cli_snapshot_json(&snap));
        else
                cli_out("snapshot %s saved (base backup of component %s)\n", id, o.component);
out:
        tm_snapshot_dispose(&snap);
        tm_repo_free(repo);
        return r < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

/* The restore_command: this very binary with the repository options given
 * on the command line, since the server's environment has none of them. */
static int restore_command(tm_buf *b, uid_t server_uid)
{
        char exe[PATH_MAX], repo[PATH_MAX], pwabs[PATH_MAX], cat[PATH_MAX];
        const char *pw =
                cli_opts.password_file ? cli_opts.password_file : getenv("TIDEMARK_PASSWORD_FILE");
        const char *catalog = NULL;
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

        if (n <= 0)
                return -errno;
        exe[n] = '\0';
        if (!pw)
                cli_warn("no --password-file: the server needs TIDEMARK_PASSWORD or "
                         "TIDEMARK_PASSWORD_FILE in its environment for restore_command");
        /* the catalog is a per-user cache: the server's user cannot write
         * another user's, so it then uses its own default one */
        if (cli_opts.catalog && server_uid == geteuid())
                catalog = realpath(cli_opts.catalog, cat) ? cat : cli_opts.catalog;
        return tm_pg_restore_command(b, exe, realpath(cli_opts.repo, repo) ? repo : cli_opts.repo,
                                     pw ? (realpath(pw, pwabs) ? pwabs : pw) : NULL, catalog,
                                     pg_component());
}

int cli_cmd_pg_restore(void)
{
        struct tm_restore_opts o = TM_RESTORE_OPTS_INIT;
        struct tm_pg_plan plan = { 0 };
        struct cli_progress prog;
        tm_buf cmd = TM_BUF_INIT(64 * 1024);
        const char *spec;
        int64_t target = 0;
        tm_repo *repo = NULL;
        char id[9], t[40], err[4096];
        int r = CLI_EXIT_FAIL, ret;

        if (cli_opts.n_args != 1 || !cli_opts.target || cli_opts.includes.n)
                return cli_cmd_restore(); /* its messages */
        spec = cli_opts.args[0];
        if (cli_repo_open(&repo) < 0)
                goto out;
        if (spec[0] == '@') {
                if (tm_time_parse(spec + 1, &target, NULL) < 0) {
                        cli_error("invalid instant '%s'", spec + 1);
                        goto out;
                }
                ret = tm_pg_plan_pitr(repo, pg_component(), target, &plan, err, sizeof(err));
                if (ret == -ENOENT) {
                        /* not a PostgreSQL component: a plain restore */
                        tm_repo_free(repo);
                        repo = NULL;
                        return cli_cmd_restore();
                }
                if (ret < 0) {
                        if (err[0])
                                cli_error("%s", err);
                        else
                                cli_error_errno(ret, "cannot plan the recovery");
                        goto out;
                }
        } else {
                if (cli_snapshot_find(repo, spec, &plan.base) < 0)
                        goto out;
                if (!tm_pg_snapshot_is_base_backup(&plan.base)) {
                        tm_snapshot_dispose(&plan.base);
                        tm_repo_free(repo);
                        repo = NULL;
                        return cli_cmd_restore();
                }
                plan.to_end = 1;
        }
        cli_short_id(&plan.base.id, id);
        o.threads = cli_opts.threads;
        cli_progress_init(&prog);
        o.progress = cli_progress_update;
        o.userdata = &prog;
        /* as root the server's user (another one) will run it: it cannot
         * use root's catalog */
        if (restore_command(&cmd, geteuid() == 0 ? (uid_t)-1 : geteuid()) < 0 ||
            tm_buf_append(&cmd, "", 1) < 0) {
                cli_progress_done(&prog);
                cli_error("cannot build the restore_command");
                goto out;
        }
        ret = tm_pg_pitr_restore(repo, &plan, cli_opts.target, (const char *)cmd.data, &o);
        cli_progress_done(&prog);
        if (ret < 0) {
                cli_error_errno(ret, "restore of base backup %s to '%s' failed", id,
                                cli_opts.target);
                goto out;
        }
        if (target)
                tm_time_format_ns(target, t, sizeof(t));
        if (cli_opts.json) {
                char hex[TM_ID_HEX_LEN + 1];

                tm_id_hex(&plan.base.id, hex);
                cli_json_print(json_pack("{s:s, s:s, s:s, s:b}", "snapshot", hex, "target",
                                         cli_opts.target, "recovery_target_time",
                                         target && !plan.to_end ? t : "", "to_end", plan.to_end));
        } else if (target && plan.to_end) {
                cli_out("restored base backup %s to %s; nothing was committed after %s in the "
                        "stored WAL: PostgreSQL will replay all of it and promote\n",
                        id, cli_opts.target, t);
        } else {
                cli_out("restored base backup %s to %s; PostgreSQL will recover to %s and "
                        "promote\n",
                        id, cli_opts.target, target ? t : "the end of the archived WAL");
        }
        r = CLI_EXIT_OK;
out:
        tm_buf_dispose(&cmd);
        tm_snapshot_dispose(&plan.base);
        tm_repo_free(repo);
        return r;
}

static volatile sig_atomic_t stream_stop;

static void stream_signal(int sig)
{
        (void)sig;
        stream_stop = 1;
}

static int stream_should_stop(void *userdata)
{
        (void)userdata;
        return stream_stop;
}

static void stream_status(const struct tm_pg_stream_status *st, void *userdata)
{
        char a[24], b[24];

        (void)userdata;
        tm_pg_lsn_format(st->stored_lsn, a, sizeof(a));
        tm_pg_lsn_format(st->server_lsn, b, sizeof(b));
        tm_log(TM_LOG_DEBUG, "WAL stored up to %s (server at %s), timeline %u", a, b, st->tli);
}

int cli_cmd_wal_stream(void)
{
        struct tm_pg_stream_opts o = { 0 };
        struct sigaction sa = { 0 };
        tm_repo *repo = NULL;
        int r;

        o.conninfo = cli_opts.postgres ? cli_opts.postgres : getenv("TIDEMARK_PG_CONNINFO");
        if (!o.conninfo || !*o.conninfo)
                return cli_error("wal-stream needs --postgres CONNINFO (or TIDEMARK_PG_CONNINFO)");
        if (cli_opts.n_args)
                return cli_error("wal-stream takes no arguments");
        o.component = pg_component();
        o.slot = cli_opts.slot;
        o.staging = getenv("TIDEMARK_PG_STAGING");
        o.should_stop = stream_should_stop;
        o.on_status = stream_status;
        sa.sa_handler = stream_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        if (cli_repo_open(&repo) < 0)
                return CLI_EXIT_FAIL;
        r = tm_pg_stream_run(repo, &o);
        tm_repo_free(repo);
        if (r < 0)
                return cli_error_errno(r, "WAL streaming of component '%s' stopped", o.component);
        return CLI_EXIT_OK;
}

int cli_cmd_wal_status(void)
{
        struct tm_pg_windows ws = { 0 };
        tm_repo *repo = NULL;
        json_t *o = NULL, *wa, *ga;
        char a[40], b[40], s[24], e[24];
        int r;

        if (cli_opts.n_args)
                return cli_error("wal-status takes no arguments");
        if (cli_repo_open(&repo) < 0)
                return CLI_EXIT_FAIL;
        r = tm_pg_windows_get(repo, pg_component(), &ws);
        tm_repo_free(repo);
        if (r == -ENOENT)
                return cli_error("component '%s' has no PostgreSQL base backup", pg_component());
        if (r < 0)
                return cli_error_errno(r, "cannot read the WAL index of '%s'", pg_component());
        wa = json_array();
        ga = json_array();
        for (size_t i = 0; i < ws.n; i++) {
                tm_time_format_ns(ws.w[i].earliest_ns, a, sizeof(a));
                tm_time_format_ns(ws.w[i].latest_ns, b, sizeof(b));
                tm_pg_lsn_format(ws.w[i].start_lsn, s, sizeof(s));
                tm_pg_lsn_format(ws.w[i].end_lsn, e, sizeof(e));
                if (cli_opts.json)
                        json_array_append_new(wa,
                                              json_pack("{s:i, s:s, s:s, s:s, s:s}", "timeline",
                                                        (int)ws.w[i].tli, "earliest", a, "latest",
                                                        b, "start_lsn", s, "end_lsn", e));
                else
                        cli_out("timeline %u: recoverable from %s to %s (WAL %s..%s)\n",
                                ws.w[i].tli, a, b, s, e);
        }
        for (size_t i = 0; i < ws.n_gaps; i++) {
                tm_time_format_ns(ws.gaps[i].before_ns, a, sizeof(a));
                if (cli_opts.json)
                        json_array_append_new(ga, json_pack("{s:i, s:s, s:s}", "timeline",
                                                            (int)ws.gaps[i].tli, "missing",
                                                            ws.gaps[i].missing, "after", a));
                else
                        cli_out("gap: WAL segment %s is missing (nothing recoverable past %s "
                                "from before it)\n",
                                ws.gaps[i].missing, a);
        }
        if (cli_opts.json) {
                o = json_pack("{s:s, s:o, s:o}", "component", pg_component(), "windows", wa, "gaps",
                              ga);
                cli_json_print(o);
        } else {
                json_decref(wa);
                json_decref(ga);
        }
        r = ws.n_gaps ? CLI_EXIT_FAIL : CLI_EXIT_OK;
        tm_pg_windows_dispose(&ws);
        return r;
}

int cli_pg_wal_retention(tm_repo *repo, const char *component, const struct tm_snapshot *group,
                         size_t n)
{
        size_t removed = 0, kept = 0, n_gone = 0, i;
        tm_id *gone = NULL;
        int *keep = NULL, r;
        char comp[256];

        for (i = 0; i < n && !tm_pg_snapshot_is_base_backup(&group[i]); i++)
                ;
        if (i == n || tm_pg_wal_component(component, comp, sizeof(comp)) < 0)
                return 0;
        /* a dry run forgot nothing: count as if the policy's victims were gone */
        gone = calloc(n, sizeof(*gone));
        keep = calloc(n, sizeof(*keep));
        r = gone && keep ? 0 : -ENOMEM;
        if (r == 0 && cli_opts.dry_run) {
                r = tm_forget_plan(group, n, &cli_opts.policy, keep, NULL);
                for (i = 0; r == 0 && i < n; i++)
                        if (!keep[i])
                                gone[n_gone++] = group[i].id;
        }
        if (r == 0)
                r = tm_pg_wal_retention(repo, component, gone, n_gone, cli_opts.dry_run, &removed,
                                        &kept);
        free(gone);
        free(keep);
        if (r < 0)
                return cli_error_errno(r, "WAL retention of component '%s' failed", component), r;
        if (!cli_opts.json)
                cli_out("component '%s': %s%zu WAL file(s) no kept base backup needs, %zu "
                        "kept\n",
                        comp, cli_opts.dry_run ? "would remove " : "removed ", removed, kept);
        return 0;
}
