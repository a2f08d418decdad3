/*
 * tidemark mount MOUNTPOINT [-f] [-o OPTION]...: hand over to tidemark-fs,
 * installed next to this program. The repository, catalog and passphrase go
 * through the environment (never argv: other users can read a command line).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

#define MOUNT_ARGS_MAX 64

/* A passphrase file stays known to tidemark-fs (a path, not a secret): the
 * restore_command of @T/<PostgreSQL component>/ names it. */
static int mount_password_file(void)
{
        const char *f = cli_opts.password_file ? cli_opts.password_file
                                               : getenv("TIDEMARK_PASSWORD_FILE");
        char abs[PATH_MAX];

        if (!f || !*f)
                return unsetenv("TIDEMARK_PASSWORD_FILE");
        return setenv("TIDEMARK_PASSWORD_FILE", realpath(f, abs) ? abs : f, 1);
}

/* <directory of /proc/self/exe>/tidemark-fs */
static int fs_program(char *out, size_t n)
{
        char self[PATH_MAX];
        ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
        char *slash;

        if (len < 0)
                return -errno;
        self[len] = '\0';
        slash = strrchr(self, '/');
        if (!slash)
                return -ENOENT;
        *slash = '\0';
        if ((size_t)snprintf(out, n, "%s/tidemark-fs", self) >= n)
                return -ENAMETOOLONG;
        return access(out, X_OK) == 0 ? 0 : -errno;
}

int cli_cmd_mount(void)
{
        struct tm_repo_opts o = TM_REPO_OPTS_INIT;
        struct cli_secret pw = { 0 };
        char prog[PATH_MAX + 16];
        const char *argv[MOUNT_ARGS_MAX];
        size_t n = 0;
        struct stat st;
        int r;

        if (cli_opts.n_args != 1)
                return cli_error("mount takes one argument, the mountpoint (got %zu)",
                                 cli_opts.n_args);
        if (cli_opts.mount_options.n + 8 > MOUNT_ARGS_MAX)
                return cli_error("too many -o options");
        if (stat(cli_opts.args[0], &st) < 0)
                return cli_error_errno(-errno, "cannot use mountpoint '%s'", cli_opts.args[0]);
        if (!S_ISDIR(st.st_mode))
                return cli_error("mountpoint '%s' is not a directory", cli_opts.args[0]);
        r = fs_program(prog, sizeof(prog));
        if (r < 0)
                return cli_error_errno(r, "cannot find tidemark-fs next to the tidemark program");
        if (cli_repo_opts(&o) < 0)
                return CLI_EXIT_FAIL;
        if (cli_password_get(0, &pw) < 0)
                return CLI_EXIT_FAIL;
        if (setenv("TIDEMARK_REPOSITORY", o.location, 1) < 0 ||
            (o.catalog_path && setenv("TIDEMARK_CATALOG", o.catalog_path, 1) < 0) ||
            setenv("TIDEMARK_PASSWORD", pw.p, 1) < 0 || mount_password_file() < 0 ||
            (cli_opts.config && setenv("TIDEMARK_CONFIG", cli_opts.config, 1) < 0)) {
                r = -errno;
                cli_secret_dispose(&pw);
                return cli_error_errno(r, "cannot prepare the environment of tidemark-fs");
        }
        cli_secret_dispose(&pw);

        argv[n++] = prog;
        argv[n++] = cli_opts.args[0];
        if (cli_opts.foreground)
                argv[n++] = "-f";
        if (cli_opts.verbose > 1)
                argv[n++] = "-d";
        for (size_t i = 0; i < cli_opts.mount_options.n; i++) {
                argv[n++] = "-o";
                argv[n++] = cli_opts.mount_options.v[i];
        }
        argv[n] = NULL;
        fflush(stdout);
        execv(prog, (char *const *)argv);
        r = -errno;
        unsetenv("TIDEMARK_PASSWORD");
        return cli_error_errno(r, "cannot run '%s'", prog);
}
