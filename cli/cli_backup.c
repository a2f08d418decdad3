/*
 * tidemark backup: turn the command line into tm_backup_opts, run it with a
 * progress line, and report the snapshot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* An absolute, lexically normalised path ("." and ".." resolved, repeated
 * and trailing slashes dropped) without following symlinks: backing up a
 * symlink must save the link, and the name in the snapshot is the one the
 * user typed. Returns a malloc'd string or NULL (ENOMEM or no cwd). */
static char *absolute_path(const char *p)
{
        char *cwd = NULL, *joined = NULL, *out = NULL;
        size_t n, o = 0;

        if (p[0] != '/') {
                cwd = getcwd(NULL, 0);
                if (!cwd)
                        return NULL;
        }
        n = (cwd ? strlen(cwd) : 0) + strlen(p) + 2;
        joined = malloc(n);
        out = malloc(n + 1);
        if (!joined || !out)
                goto fail;
        snprintf(joined, n, "%s/%s", cwd ? cwd : "", p);
        for (const char *s = joined; *s;) {
                const char *e;
                size_t len;

                while (*s == '/')
                        s++;
                e = strchrnul(s, '/');
                len = (size_t)(e - s);
                if (len == 0 || (len == 1 && s[0] == '.')) {
                        /* nothing */
                } else if (len == 2 && s[0] == '.' && s[1] == '.') {
                        while (o > 0 && out[o - 1] != '/')
                                o--;
                        if (o > 0)
                                o--; /* the slash */
                } else {
                        out[o++] = '/';
                        memcpy(out + o, s, len);
                        o += len;
                }
                s = e;
        }
        if (o == 0)
                out[o++] = '/';
        out[o] = '\0';
        free(cwd);
        free(joined);
        return out;
fail:
        free(cwd);
        free(joined);
        free(out);
        return NULL;
}

static int component_valid(const char *c)
{
        if (!*c || strlen(c) > 255)
                return 0;
        for (const char *p = c; *p; p++)
                if (*p == '/' || (unsigned char)*p < 0x20)
                        return 0;
        return 1;
}

int cli_cmd_backup(void)
{
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        struct tm_snapshot snap = { 0 };
        struct cli_progress prog;
        const char *component = cli_opts.component;
        char **paths = NULL;
        char *default_component = NULL;
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL, ret;
        char id[9];

        if (cli_opts.strategy && strcmp(cli_opts.strategy, "full") != 0 &&
            strcmp(cli_opts.strategy, "incremental") != 0 &&
            strcmp(cli_opts.strategy, "differential") != 0)
                return cli_error("invalid value '%s' for --strategy: expected full, incremental "
                                 "or differential",
                                 cli_opts.strategy);
        for (size_t i = 0; i < cli_opts.tags.n; i++)
                if (!*cli_opts.tags.v[i])
                        return cli_error("empty value for --tag");
        if (cli_opts.use_stdin) {
                if (cli_opts.n_args > 0)
                        return cli_error("backup --stdin takes no paths (got '%s')",
                                         cli_opts.args[0]);
                if (!cli_opts.stdin_filename)
                        return cli_error("backup --stdin needs --stdin-filename NAME");
                if (!tm_tree_name_valid(cli_opts.stdin_filename))
                        return cli_error("invalid value '%s' for --stdin-filename: a file name "
                                         "without '/'",
                                         cli_opts.stdin_filename);
                if (cli_opts.excludes.n > 0)
                        return cli_error("--exclude cannot be used with --stdin");
                o.stdin_fd = STDIN_FILENO;
                o.stdin_filename = cli_opts.stdin_filename;
                if (!component)
                        component = "stdin";
        } else {
                if (cli_opts.stdin_filename)
                        return cli_error("--stdin-filename needs --stdin");
                if (cli_opts.n_args == 0)
                        return cli_error("nothing to back up: give one or more paths, or --stdin");
                paths = calloc(cli_opts.n_args, sizeof(*paths));
                if (!paths)
                        return cli_error_errno(-ENOMEM, "backup");
                for (size_t i = 0; i < cli_opts.n_args; i++) {
                        struct stat st;

                        paths[i] = absolute_path(cli_opts.args[i]);
                        if (!paths[i]) {
                                cli_error_errno(-errno ? -errno : -ENOMEM, "cannot resolve '%s'",
                                                cli_opts.args[i]);
                                goto out;
                        }
                        if (lstat(paths[i], &st) < 0) {
                                cli_error_errno(-errno, "cannot back up '%s'", cli_opts.args[i]);
                                goto out;
                        }
                }
                if (!component) {
                        const char *slash = strrchr(paths[0], '/');

                        default_component = strdup(slash && slash[1] ? slash + 1 : "root");
                        if (!default_component) {
                                cli_error_errno(-ENOMEM, "backup");
                                goto out;
                        }
                        component = default_component;
                }
                o.paths = (const char *const *)paths;
                o.n_paths = cli_opts.n_args;
        }
        if (!component_valid(component)) {
                cli_error("invalid component name '%s': not empty, no '/'", component);
                goto out;
        }
        o.component = component;
        if (cli_opts.strategy)
                o.strategy = cli_opts.strategy;
        o.excludes = cli_opts.excludes.v;
        o.n_excludes = cli_opts.excludes.n;
        o.tags = cli_opts.tags.v;
        o.n_tags = cli_opts.tags.n;
        o.host = cli_opts.host;
        o.threads = cli_opts.threads;

        if (cli_repo_open(&repo) < 0)
                goto out;
        cli_progress_init(&prog);
        o.progress = cli_progress_update;
        o.userdata = &prog;
        ret = tm_backup_run(repo, &o, &snap);
        cli_progress_done(&prog);
        if (ret < 0) {
                if (ret == -ENOSPC)
                        cli_error("backup of component '%s' to '%s' failed: no space left; "
                                  "nothing was committed",
                                  component, tm_repo_location(repo));
                else
                        cli_error_errno(ret, "backup of component '%s' to '%s' failed", component,
                                        tm_repo_location(repo));
                goto out;
        }
        cli_short_id(&snap.id, id);
        if (cli_opts.json) {
                cli_json_print(cli_snapshot_json(&snap));
        } else {
                cli_out("snapshot %s saved: %llu files, %.2f MiB read, %.2f MiB added in %.1fs\n",
                        id, (unsigned long long)snap.summary.files,
                        (double)snap.summary.bytes_read / (1024.0 * 1024.0),
                        (double)snap.summary.bytes_added / (1024.0 * 1024.0),
                        (double)snap.summary.duration_ns / 1e9);
        }
        if (ret == TM_BACKUP_PARTIAL) {
                cli_warn("snapshot %s is incomplete: %llu files could not be read (named above)",
                         id, (unsigned long long)snap.summary.files_failed);
                r = CLI_EXIT_PARTIAL;
        } else {
                r = CLI_EXIT_OK;
        }
out:
        tm_snapshot_dispose(&snap);
        tm_repo_free(repo);
        if (paths)
                for (size_t i = 0; i < cli_opts.n_args; i++)
                        free(paths[i]);
        free(paths);
        free(default_component);
        return r;
}
