/*
 * Opening the repository: where it is, the passphrase (environment, file or
 * a no-echo prompt on the terminal; never argv), the catalog cache, and the
 * snapshot selectors users type.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <tidemark/time.h>

#include "cli.h"

#define PASSWORD_MAX 4096

void cli_secret_dispose(struct cli_secret *s)
{
        if (s->p) {
                explicit_bzero(s->p, s->len);
                free(s->p);
        }
        s->p = NULL;
        s->len = 0;
}

static int secret_set(struct cli_secret *s, const char *p, size_t n)
{
        s->p = malloc(n + 1);
        if (!s->p)
                return -ENOMEM;
        memcpy(s->p, p, n);
        s->p[n] = '\0';
        s->len = n;
        return 0;
}

/* The first line of a file, without its line ending. */
static int secret_from_file(const char *path, struct cli_secret *ret)
{
        tm_buf b = TM_BUF_INIT(PASSWORD_MAX * 4);
        size_t n;
        int r;

        r = tm_file_read_all(path, PASSWORD_MAX * 4, &b);
        if (r < 0) {
                cli_error_errno(r, "cannot read passphrase file '%s'", path);
                goto out;
        }
        for (n = 0; n < b.len && b.data[n] != '\n'; n++)
                ;
        if (n > 0 && b.data[n - 1] == '\r')
                n--;
        r = secret_set(ret, (const char *)b.data, n);
        if (r < 0)
                cli_error_errno(r, "cannot read passphrase file '%s'", path);
out:
        tm_buf_dispose_secret(&b);
        return r;
}

/* Ask on /dev/tty with echo off. */
static int secret_prompt(const char *prompt, struct cli_secret *ret)
{
        struct termios old, noecho;
        char buf[PASSWORD_MAX];
        size_t n = 0;
        int fd, r = 0, restore = 0;
        char ch;

        fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
                r = -errno;
                cli_error_errno(r, "cannot open the terminal to ask for a passphrase");
                return r;
        }
        if (tcgetattr(fd, &old) == 0) {
                noecho = old;
                noecho.c_lflag &= ~(tcflag_t)ECHO;
                noecho.c_lflag |= ECHONL;
                if (tcsetattr(fd, TCSAFLUSH, &noecho) == 0)
                        restore = 1;
        }
        if (write(fd, prompt, strlen(prompt)) < 0) {
                r = -errno;
                goto out;
        }
        for (;;) {
                ssize_t k = read(fd, &ch, 1);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        goto out;
                }
                if (k == 0 || ch == '\n' || ch == '\r')
                        break;
                if (n + 1 >= sizeof(buf)) {
                        r = -E2BIG;
                        goto out;
                }
                buf[n++] = ch;
        }
        r = secret_set(ret, buf, n);
out:
        if (restore)
                tcsetattr(fd, TCSAFLUSH, &old);
        close(fd);
        explicit_bzero(buf, sizeof(buf));
        if (r < 0)
                cli_error_errno(r, "cannot read the passphrase from the terminal");
        return r;
}

/* Prompt (twice when confirm) for a passphrase that must not be empty. */
static int secret_prompt_checked(const char *prompt, int confirm, struct cli_secret *ret)
{
        struct cli_secret a = { 0 }, b = { 0 };
        int r;

        r = secret_prompt(prompt, &a);
        if (r < 0)
                goto out;
        if (confirm) {
                r = secret_prompt("enter the passphrase again: ", &b);
                if (r < 0)
                        goto out;
                if (a.len != b.len || memcmp(a.p, b.p, a.len) != 0) {
                        r = -EINVAL;
                        cli_error("the passphrases do not match");
                        goto out;
                }
        }
        *ret = a;
        a = (struct cli_secret){ 0 };
out:
        cli_secret_dispose(&a);
        cli_secret_dispose(&b);
        return r;
}

/* Shared by the current and the new passphrase: file option, then the
 * _FILE variable, then the variable, then a prompt on a terminal. */
static int secret_get(const char *file_opt, const char *file_env, const char *env,
                      const char *prompt, int confirm, const char *none_msg, struct cli_secret *ret)
{
        struct cli_secret s = { 0 };
        const char *v;
        int r;

        if (file_opt) {
                r = secret_from_file(file_opt, &s);
        } else if ((v = getenv(file_env)) && *v) {
                r = secret_from_file(v, &s);
        } else if ((v = getenv(env))) {
                r = secret_set(&s, v, strlen(v));
                if (r < 0)
                        cli_error_errno(r, "cannot read %s", env);
        } else if (isatty(STDIN_FILENO)) {
                r = secret_prompt_checked(prompt, confirm, &s);
        } else {
                cli_error("%s", none_msg);
                return -ENOKEY;
        }
        if (r < 0)
                goto out;
        if (s.len == 0) {
                r = -EINVAL;
                cli_error("empty passphrase");
                goto out;
        }
        *ret = s;
        s = (struct cli_secret){ 0 };
out:
        cli_secret_dispose(&s);
        return r;
}

int cli_password_get(int confirm, struct cli_secret *ret)
{
        return secret_get(cli_opts.password_file, "TIDEMARK_PASSWORD_FILE", "TIDEMARK_PASSWORD",
                          confirm ? "enter a passphrase for the new repository: "
                                  : "enter the passphrase for the repository: ",
                          confirm,
                          "no passphrase: set TIDEMARK_PASSWORD, TIDEMARK_PASSWORD_FILE or "
                          "--password-file",
                          ret);
}

int cli_new_password_get(struct cli_secret *ret)
{
        return secret_get(cli_opts.new_password_file, "TIDEMARK_NEW_PASSWORD_FILE",
                          "TIDEMARK_NEW_PASSWORD", "enter the new passphrase: ", 1,
                          "no new passphrase: set TIDEMARK_NEW_PASSWORD, "
                          "TIDEMARK_NEW_PASSWORD_FILE or --new-password-file",
                          ret);
}

int cli_repo_opts(struct tm_repo_opts *o)
{
        if (!cli_opts.repo || !*cli_opts.repo) {
                cli_error("no repository given: use -r/--repo or set TIDEMARK_REPOSITORY");
                return -EINVAL;
        }
        o->location = cli_opts.repo;
        o->catalog_path = cli_opts.catalog && *cli_opts.catalog ? cli_opts.catalog : NULL;
        if (cli_opts.config && *cli_opts.config && !cli_opts.cfg) {
                char err[1024];
                int r = tm_config_load(cli_opts.config, &cli_opts.cfg, err, sizeof(err));

                if (r < 0) {
                        cli_error("%s", err[0] ? err : "cannot read the config file");
                        return r;
                }
        }
        o->config = cli_opts.cfg;
        return 0;
}

int cli_repo_open(tm_repo **ret)
{
        struct tm_repo_opts o = TM_REPO_OPTS_INIT;
        struct cli_secret pw = { 0 };
        int r;

        r = cli_repo_opts(&o);
        if (r < 0)
                return r;
        r = cli_password_get(0, &pw);
        if (r < 0)
                goto out;
        o.password = pw.p;
        o.password_len = pw.len;
        r = tm_repo_open(&o, ret);
        switch (r) {
        case 0:
                break;
        case -ENOENT:
                cli_error("no repository at '%s'", o.location);
                break;
        case -EACCES:
                cli_error("wrong passphrase or no key for repository at '%s'", o.location);
                break;
        case -EBADMSG:
                cli_error("repository config at '%s' is damaged (integrity check failed)",
                          o.location);
                break;
        case -EPERM:
                cli_error("the storage of '%s' refused access: check its credentials (for S3: "
                          "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)",
                          o.location);
                break;
        case -ENOSPC:
        case -EDQUOT:
                /* opening only reads the repository but brings the catalog
                 * up to date: the disk to free is the catalog's */
                cli_error("cannot open repository at '%s': no space left on the disk of its "
                          "catalog (%s)",
                          o.location,
                          o.catalog_path ? o.catalog_path : "under /var/cache/tidemark");
                break;
        default:
                cli_error_errno(r, "cannot open repository at '%s'", o.location);
                break;
        }
out:
        cli_secret_dispose(&pw);
        return r;
}

static int is_hex_prefix(const char *s)
{
        size_t n = strlen(s);

        if (n < 4 || n > TM_ID_HEX_LEN)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!isxdigit((unsigned char)s[i]))
                        return 0;
        return 1;
}

int cli_snapshot_find(tm_repo *repo, const char *spec, struct tm_snapshot *ret)
{
        const char *comp = cli_opts.component;
        char bound[64];
        const char *query = spec;
        int64_t t, prec;
        int r;

        if (spec[0] == '@') {
                /* "@2025-01-07" means up to the end of that day: turn the span
                 * the user typed into an exact nanosecond bound */
                if (tm_time_parse(spec + 1, &t, &prec) < 0) {
                        cli_error("invalid time in snapshot selector '%s': expected "
                                  "@2025-01-07T10:00:00Z, @2025-01-07T10:00 or @2025-01-07",
                                  spec);
                        return -EINVAL;
                }
                bound[0] = '@';
                tm_time_format_ns(t + prec - 1, bound + 1, sizeof(bound) - 1);
                query = bound;
        } else if (strcmp(spec, "latest") != 0 && !is_hex_prefix(spec)) {
                cli_error("invalid snapshot selector '%s': expected an id prefix of at least 4 "
                          "hex digits, 'latest' or '@TIME'",
                          spec);
                return -EINVAL;
        }
        r = tm_repo_snapshot_find(repo, query, comp, ret);
        switch (r) {
        case 0:
                break;
        case -ENOENT:
                if (comp)
                        cli_error("no snapshot matches '%s' for component '%s' in '%s'", spec, comp,
                                  tm_repo_location(repo));
                else
                        cli_error("no snapshot matches '%s' in '%s'", spec, tm_repo_location(repo));
                break;
        case -EEXIST:
                cli_error("snapshot id prefix '%s' is ambiguous: give more digits", spec);
                break;
        case -EINVAL:
                cli_error("invalid snapshot selector '%s'", spec);
                break;
        default:
                cli_error_errno(r, "cannot look up snapshot '%s'", spec);
                break;
        }
        return r;
}

int cli_cmd_init(void)
{
        struct tm_repo_opts o = TM_REPO_OPTS_INIT;
        struct cli_secret pw = { 0 };
        tm_repo *repo = NULL;
        int r;

        if (cli_opts.n_args > 0)
                return cli_error("init takes no arguments (got '%s')", cli_opts.args[0]);
        if (cli_repo_opts(&o) < 0)
                return CLI_EXIT_FAIL;
        if (cli_opts.kdf) {
                if (strcmp(cli_opts.kdf, "argon2id") != 0 && strcmp(cli_opts.kdf, "scrypt") != 0)
                        return cli_error(
                                "invalid value '%s' for --kdf: expected argon2id or scrypt",
                                cli_opts.kdf);
                snprintf(o.kdf.alg, sizeof(o.kdf.alg), "%s", cli_opts.kdf);
        }
        if (cli_opts.has_kdf_memory)
                o.kdf.m = (uint32_t)cli_opts.kdf_memory;
        if (cli_opts.has_kdf_iterations)
                o.kdf.t = (uint32_t)cli_opts.kdf_iterations;
        r = cli_password_get(1, &pw);
        if (r < 0)
                goto out;
        o.password = pw.p;
        o.password_len = pw.len;
        r = tm_repo_init(&o, &repo);
        if (r == -EEXIST) {
                cli_error("a repository already exists at '%s'", o.location);
                goto out;
        }
        if (r == -EINVAL) {
                cli_error("cannot create repository at '%s': invalid parameters (KDF %s, memory "
                          "%u KiB, %u iterations)",
                          o.location, o.kdf.alg, o.kdf.m, o.kdf.t);
                goto out;
        }
        if (r < 0) {
                cli_error_errno(r, "cannot create repository at '%s'", o.location);
                goto out;
        }
        if (cli_opts.json) {
                cli_json_print(json_pack("{s:s, s:s, s:s?}", "id", tm_repo_id(repo), "location",
                                         tm_repo_location(repo), "catalog",
                                         tm_repo_catalog_path(repo)));
        } else {
                cli_out("created tidemark repository %.16s at %s\n", tm_repo_id(repo),
                        tm_repo_location(repo));
        }
out:
        tm_repo_free(repo);
        cli_secret_dispose(&pw);
        return r < 0 ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
