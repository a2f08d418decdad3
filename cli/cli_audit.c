/*
 * tidemark audit verify FILE: check an audit log (the hash chain and its
 * head file, see tidemark/audit.h). Exit 0 when intact, 1 with the first
 * line that breaks the chain otherwise.
 *
 * And the CLI's own entries: when the config (--config / TIDEMARK_CONFIG)
 * names an audit_log, every command that changes a repository or writes a
 * restore appends to that same chain the daemons write, so a forget run by
 * hand sits next to one requested over the API. The log is opened before
 * the command runs: a mutation that could not be recorded does not happen.
 * wal-push, wal-fetch and wal-stream are left out: PostgreSQL runs them
 * once per WAL segment, and the backups they belong to are audited.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tidemark/audit.h>
#include <tidemark/core.h>
#include <tidemark/time.h>

#include "cli.h"


int cli_cmd_audit(void)
{
        char why[512];
        uint64_t lines = 0;
        const char *path;
        int r;

        if (cli_opts.n_args != 2 || strcmp(cli_opts.args[0], "verify") != 0)
                return cli_error("usage: tidemark audit verify FILE");
        path = cli_opts.args[1];
        r = tm_audit_verify(path, &lines, why, sizeof(why));
        if (r == -EBADMSG)
                return cli_error("audit log '%s' has been tampered with: %s", path, why);
        if (r < 0)
                return cli_error_errno(r, "cannot read audit log '%s'", path);
        if (cli_opts.json)
                cli_json_print(json_pack("{s:s, s:b, s:I}", "file", path, "intact", 1, "entries",
                                         (json_int_t)lines));
        else
                cli_out("audit log '%s' is intact: %llu entries\n", path,
                        (unsigned long long)lines);
        return CLI_EXIT_OK;
}

int cli_audit_wanted(const char *command)
{
        const char *sub = cli_opts.n_args ? cli_opts.args[0] : "";

        if (!strcmp(command, "init") || !strcmp(command, "backup") ||
            !strcmp(command, "restore") || !strcmp(command, "repair") ||
            !strcmp(command, "thaw"))
                return 1;
        if (!strcmp(command, "forget") || !strcmp(command, "prune"))
                return !cli_opts.dry_run;
        if (!strcmp(command, "key"))
                return strcmp(sub, "list") != 0;
        if (!strcmp(command, "tier"))
                return !strcmp(sub, "run") && !cli_opts.dry_run;
        if (!strcmp(command, "replicate"))
                return !cli_opts.replicate_status;
        return 0;
}

int cli_audit_begin(tm_audit **ret)
{
        char err[1024];
        int r;

        *ret = NULL;
        if (!cli_opts.config || !*cli_opts.config)
                return 0;
        if (!cli_opts.cfg) {
                r = tm_config_load(cli_opts.config, &cli_opts.cfg, err, sizeof(err));
                if (r < 0)
                        return cli_error("%s", err[0] ? err : "cannot read the config file");
        }
        if (!cli_opts.cfg->audit_log)
                return 0;
        r = tm_audit_open(cli_opts.cfg->audit_log, ret);
        /* it has said what and where, except when out of memory */
        if (r == -ENOMEM)
                return cli_error_errno(r, "cannot open the audit log '%s'",
                                       cli_opts.cfg->audit_log);
        return r < 0 ? CLI_EXIT_FAIL : 0;
}

/* A conninfo on the command line may carry password=...: mask its value. */
static json_t *masked_arg(const char *a)
{
        const char *p = strstr(a, "password=");
        json_t *j;
        tm_buf b = TM_BUF_INIT(0);
        size_t k;

        if (!p)
                return json_string(a);
        p += strlen("password=");
        k = strcspn(p, " ");
        if (tm_buf_append(&b, a, (size_t)(p - a)) < 0 || tm_buf_append(&b, "***", 3) < 0 ||
            tm_buf_append(&b, p + k, strlen(p + k)) < 0) {
                tm_buf_dispose(&b);
                return NULL;
        }
        j = json_stringn((const char *)b.data, b.len);
        tm_buf_dispose(&b);
        return j;
}

void cli_audit_end(tm_audit *a, const char *command, int argc, char **argv, int rc)
{
        struct passwd *pw;
        char ts[40], who[300], host[256] = "";
        json_t *o, *args;

        if (!a)
                return;
        pw = getpwuid(geteuid());
        gethostname(host, sizeof(host) - 1);
        snprintf(who, sizeof(who), "%s@%s", pw ? pw->pw_name : "?", host);
        tm_time_format(tm_time_now(), ts, sizeof(ts));
        args = json_array();
        for (int i = 1; args && i < argc; i++)
                if (json_array_append_new(args, masked_arg(argv[i])) < 0) {
                        json_decref(args);
                        args = NULL;
                }
        o = json_pack("{s:s, s:s, s:s, s:s, s:I, s:s, s:s, s:o, s:i, s:s}", "ts", ts, "service",
                      "cli", "principal", who, "role", "local", "uid", (json_int_t)geteuid(),
                      "method", "CLI", "path", command, "args", args ? args : json_null(),
                      "status", rc, "result", rc == CLI_EXIT_OK ? "ok" : "failed");
        if (!o || tm_audit_append(a, o) < 0)
                cli_error("'%s' ran, but its audit entry could not be written to '%s'", command,
                          cli_opts.cfg->audit_log);
        json_decref(o);
}
