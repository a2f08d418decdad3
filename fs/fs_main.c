/*
 * tidemark-fs: mount a repository's time-travel view.
 *
 *   tidemark-fs [REPOSITORY] MOUNTPOINT [-f] [-d] [-o OPTION[,OPTION...]]
 *
 * Also a mount helper: installed as /sbin/mount.fuse.tidemark (a symlink),
 * `mount -t fuse.tidemark REPOSITORY MOUNTPOINT -o password_file=F` and the
 * fstab line `REPOSITORY MOUNTPOINT fuse.tidemark password_file=F 0 0` call
 * it with the source first. The passphrase comes from -o password_file=,
 * TIDEMARK_PASSWORD_FILE or TIDEMARK_PASSWORD; never from the command line.
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <fuse_opt.h>

#include <tidemark/config.h>
#include <tidemark/harden.h>
#include <tidemark/log.h>

#include "fs.h"

#define PASSWORD_MAX (16 * 1024)

struct fs_conf {
        char *repo, *password_file, *catalog, *cache_size, *config;
        char *pos[3];
        int n_pos;
};

#define CONF_OPT(t, p)                            \
        {                                         \
                t, offsetof(struct fs_conf, p), 1 \
        }
static const struct fuse_opt conf_spec[] = {
        CONF_OPT("repo=%s", repo),
        CONF_OPT("password_file=%s", password_file),
        CONF_OPT("catalog=%s", catalog),
        CONF_OPT("cache_size=%s", cache_size),
        CONF_OPT("config=%s", config),
        /* mount(8) and fstab options that mean nothing to the kernel: a
         * mount helper must not pass them on (libfuse would refuse them) */
        FUSE_OPT_KEY("defaults", FUSE_OPT_KEY_DISCARD),
        FUSE_OPT_KEY("auto", FUSE_OPT_KEY_DISCARD),
        FUSE_OPT_KEY("noauto", FUSE_OPT_KEY_DISCARD),
        FUSE_OPT_KEY("nofail", FUSE_OPT_KEY_DISCARD),
        FUSE_OPT_KEY("_netdev", FUSE_OPT_KEY_DISCARD),
        FUSE_OPT_KEY("user", FUSE_OPT_KEY_DISCARD),
        FUSE_OPT_KEY("users", FUSE_OPT_KEY_DISCARD),
        FUSE_OPT_KEY("nouser", FUSE_OPT_KEY_DISCARD),
        FUSE_OPT_KEY("-n", FUSE_OPT_KEY_DISCARD),
        FUSE_OPT_KEY("-v", FUSE_OPT_KEY_DISCARD),
        FUSE_OPT_END,
};

static int conf_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
        struct fs_conf *c = data;

        if (key != FUSE_OPT_KEY_NONOPT)
                return 1;
        /* the source and the mountpoint: fuse_parse_cmdline takes only one */
        if (c->n_pos >= 2) {
                fprintf(stderr, "tidemark-fs: error: unexpected argument '%s'\n", arg);
                return -1;
        }
        c->pos[c->n_pos] = strdup(arg);
        if (!c->pos[c->n_pos])
                return -1;
        c->n_pos++;
        return 0;
}

/* Once daemonized stderr is gone: log to syslog. */
static void syslog_sink(enum tm_log_level level, int err, const char *msg, void *userdata)
{
        static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG };

        syslog(prio[(unsigned)level < TM_ARRAY_SIZE(prio) ? level : TM_LOG_DEBUG], "%s", msg);
}

/* "256M", "1G", "1048576". */
static int parse_size(const char *s, size_t *ret)
{
        unsigned long long v;
        char *end = NULL;
        int shift = 0;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno)
                return -EINVAL;
        switch (*end) {
        case 'k':
        case 'K':
                shift = 10;
                end++;
                break;
        case 'm':
        case 'M':
                shift = 20;
                end++;
                break;
        case 'g':
        case 'G':
                shift = 30;
                end++;
                break;
        default:
                break;
        }
        if (*end == 'i' && shift)
                end++;
        if (*end == 'B' || *end == 'b')
                end++;
        if (*end || v > (SIZE_MAX >> shift))
                return -EINVAL;
        *ret = (size_t)(v << shift);
        return 0;
}

static int read_password(const char *file, tm_buf *ret)
{
        const char *env;
        size_t n;
        int r;

        if (!file || !*file)
                file = getenv("TIDEMARK_PASSWORD_FILE");
        if (file && *file) {
                r = tm_file_read_all(file, PASSWORD_MAX, ret);
                if (r < 0) {
                        fprintf(stderr,
                                "tidemark-fs: error: cannot read passphrase file '%s': %s\n", file,
                                strerror(-r));
                        return r;
                }
                for (n = 0; n < ret->len && ret->data[n] != '\n'; n++)
                        ;
                if (n > 0 && ret->data[n - 1] == '\r')
                        n--;
                ret->len = n;
        } else if ((env = getenv("TIDEMARK_PASSWORD"))) {
                r = tm_buf_append(ret, env, strlen(env));
                if (r < 0)
                        return r;
        }
        /* nothing below needs it, and children should not see it */
        unsetenv("TIDEMARK_PASSWORD");
        if (ret->len == 0) {
                fprintf(stderr, "tidemark-fs: error: no passphrase: use -o password_file=FILE, "
                                "TIDEMARK_PASSWORD_FILE or TIDEMARK_PASSWORD\n");
                return -ENOKEY;
        }
        return 0;
}

/* @T/<component>/ of a PostgreSQL component recovers through the tidemark
 * program next to this one, with this repository and passphrase file (a
 * passphrase from the environment is never written anywhere: the server
 * then needs TIDEMARK_PASSWORD itself). Without the program, base backups
 * are shown as they are. */
static void pg_recovery_setup(struct fs *fs, const char *location, const char *password_file)
{
        char exe[PATH_MAX], abs[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        const char *pw = password_file && *password_file ? password_file
                                                         : getenv("TIDEMARK_PASSWORD_FILE");
        char *slash;

        if (n <= 0)
                return;
        exe[n] = '\0';
        slash = strrchr(exe, '/');
        if (!slash || (size_t)(slash - exe) + sizeof("/tidemark") > sizeof(exe))
                return;
        memcpy(slash + 1, "tidemark", sizeof("tidemark"));
        if (access(exe, X_OK) < 0) {
                tm_log(TM_LOG_WARN, "no '%s': PostgreSQL base backups are shown without recovery "
                                    "settings",
                       exe);
                return;
        }
        fs->pg_exe = strdup(exe);
        fs->pg_repo = strdup(realpath(location, abs) ? abs : location);
        fs->pg_password_file = pw && *pw ? strdup(realpath(pw, abs) ? abs : pw) : NULL;
        if (!fs->pg_exe || !fs->pg_repo || (pw && *pw && !fs->pg_password_file)) {
                free(fs->pg_exe);
                fs->pg_exe = NULL;
        }
}

static void usage(const char *prog)
{
        printf("usage: %s [REPOSITORY] MOUNTPOINT [options]\n\n"
               "tidemark options (-o):\n"
               "    repo=LOCATION          repository (or TIDEMARK_REPOSITORY)\n"
               "    password_file=FILE     passphrase file (or TIDEMARK_PASSWORD_FILE,\n"
               "                           TIDEMARK_PASSWORD)\n"
               "    catalog=PATH           catalog cache (or TIDEMARK_CATALOG)\n"
               "    cache_size=SIZE        blob cache size (default 128M)\n\n",
               prog);
        fuse_cmdline_help();
        fuse_lowlevel_help();
}

int main(int argc, char **argv)
{
        struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
        struct fs_conf conf = { 0 };
        struct fuse_cmdline_opts opts = { 0 };
        struct tm_repo_opts ro = TM_REPO_OPTS_INIT;
        tm_buf pw = TM_BUF_INIT(PASSWORD_MAX);
        struct fuse_loop_config *cfg = NULL;
        struct tm_config *tcfg = NULL;
        struct fuse_session *se = NULL;
        struct fs_cache *cache = NULL;
        tm_repo *repo = NULL;
        struct fs fs = { 0 };
        size_t cache_size = 128u << 20;
        const char *location;
        int r = 1, fs_ok = 0, mounted = 0, handlers = 0;

        /* Blobs of ~1 MiB come and go on many threads. glibc raises its mmap
         * threshold after the first large frees, so they end up in per-thread
         * heaps that keep the memory: a 256 MiB cache peaked at 610 MiB
         * resident under tar of the benchmark snapshot. A fixed threshold
         * maps each blob and returns it on free (380 MiB; 271 MiB with the
         * 128 MiB cache that is now the default). */
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        /* no core file and no same-user ptrace can read the key */
        if (tm_harden_process() < 0) {
                fprintf(stderr, "tidemark-fs: cannot disable core dumps: %s\n", strerror(errno));
                goto out;
        }
        if (fuse_opt_parse(&args, &conf, conf_spec, conf_proc) < 0)
                goto out;
        if (conf.n_pos == 2) {
                if (!conf.repo)
                        conf.repo = strdup(conf.pos[0]);
                if (fuse_opt_add_arg(&args, conf.pos[1]) < 0)
                        goto out;
        } else if (conf.n_pos == 1) {
                if (fuse_opt_add_arg(&args, conf.pos[0]) < 0)
                        goto out;
        }
        /* read-only, and the kernel checks the original modes and owners */
        if (fuse_opt_add_arg(&args, "-oro,default_permissions,fsname=tidemark,subtype=tidemark") <
            0)
                goto out;
        if (fuse_parse_cmdline(&args, &opts) != 0)
                goto out;
        if (opts.show_help) {
                usage(argv[0]);
                r = 0;
                goto out;
        }
        if (opts.show_version) {
                printf("tidemark-fs %s, FUSE library %s\n", TM_VERSION, fuse_pkgversion());
                r = 0;
                goto out;
        }
        if (!opts.mountpoint) {
                fprintf(stderr, "tidemark-fs: error: no mountpoint given (see --help)\n");
                goto out;
        }
        if (conf.cache_size && parse_size(conf.cache_size, &cache_size) < 0) {
                fprintf(stderr,
                        "tidemark-fs: error: invalid value '%s' for cache_size: expected a size "
                        "like 256M\n",
                        conf.cache_size);
                goto out;
        }
        location = conf.repo ? conf.repo : getenv("TIDEMARK_REPOSITORY");
        if (!location || !*location) {
                fprintf(stderr, "tidemark-fs: error: no repository given: use -o repo=LOCATION "
                                "or set TIDEMARK_REPOSITORY\n");
                goto out;
        }
        if (read_password(conf.password_file, &pw) < 0)
                goto out;
        tm_log_set_level(opts.debug ? TM_LOG_DEBUG : TM_LOG_WARN);
        ro.location = location;
        ro.password = (const char *)pw.data;
        ro.password_len = pw.len;
        ro.catalog_path = conf.catalog ? conf.catalog : getenv("TIDEMARK_CATALOG");
        if (ro.catalog_path && !*ro.catalog_path)
                ro.catalog_path = NULL;
        {
                /* the [tier.*] sections: where older packs live */
                const char *cpath = conf.config ? conf.config : getenv("TIDEMARK_CONFIG");
                char err[1024];

                if (cpath && *cpath && tm_config_load(cpath, &tcfg, err, sizeof(err)) < 0) {
                        fprintf(stderr, "tidemark-fs: error: %s\n", err);
                        tm_buf_dispose_secret(&pw);
                        r = 1;
                        goto out;
                }
        }
        ro.config = tcfg;
        /* a read must not block for the hours a Glacier thaw takes: EAGAIN */
        ro.thaw_nowait = 1;
        r = tm_repo_open(&ro, &repo);
        tm_buf_dispose_secret(&pw);
        if (r < 0) {
                fprintf(stderr, "tidemark-fs: error: cannot open repository at '%s': %s\n",
                        location, r == -EACCES ? "wrong passphrase or no key" : strerror(-r));
                r = 1;
                goto out;
        }
        r = fs_init(&fs, repo, NULL);
        if (r < 0) {
                fprintf(stderr, "tidemark-fs: error: cannot list the snapshots: %s\n",
                        strerror(-r));
                r = 1;
                goto out;
        }
        pg_recovery_setup(&fs, location, conf.password_file);
        fs_ok = 1;
        r = 1;
        se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), &fs);
        if (!se)
                goto out;
        if (fuse_set_signal_handlers(se) != 0)
                goto out;
        handlers = 1;
        if (fuse_session_mount(se, opts.mountpoint) != 0)
                goto out;
        mounted = 1;
        if (!opts.foreground) {
                openlog("tidemark-fs", LOG_PID, LOG_DAEMON);
                tm_log_set_sink(syslog_sink, NULL);
        }
        fuse_daemonize(opts.foreground);
        /* threads only after the fork of fuse_daemonize() */
        if (fs_cache_new(fs_load_blob, &fs, cache_size, TM_MAX(4, 2 * tm_ncpu()), &cache) <
            0) {
                fprintf(stderr, "tidemark-fs: error: cannot start the blob cache\n");
                goto out;
        }
        fs.cache = cache;
        if (opts.singlethread) {
                r = fuse_session_loop(se);
        } else {
                cfg = fuse_loop_cfg_create();
                if (!cfg)
                        goto out;
                fuse_loop_cfg_set_clone_fd(cfg, opts.clone_fd);
                /* the library's default when -o max_threads= is absent is out of range */
                fuse_loop_cfg_set_max_threads(
                        cfg, opts.max_threads && opts.max_threads <= 1000 ? opts.max_threads : 16);
                if (opts.max_idle_threads != UINT_MAX) /* UINT_MAX: not given */
                        fuse_loop_cfg_set_idle_threads(cfg, opts.max_idle_threads);
                r = fuse_session_loop_mt(se, cfg);
        }
        /* the loop returns the signal that ended it: a requested stop */
        r = r == 0 || r == SIGTERM || r == SIGINT || r == SIGHUP ? 0 : 1;
out:
        if (mounted)
                fuse_session_unmount(se);
        if (handlers)
                fuse_remove_signal_handlers(se);
        if (se)
                fuse_session_destroy(se);
        fuse_loop_cfg_destroy(cfg);
        if (fs_ok)
                fs_dispose(&fs);
        fs_cache_free(cache);
        tm_repo_free(repo);
        tm_config_free(tcfg);
        tm_buf_dispose_secret(&pw);
        free(opts.mountpoint);
        fuse_opt_free_args(&args);
        free(conf.repo);
        free(conf.password_file);
        free(conf.catalog);
        free(conf.cache_size);
        free(conf.config);
        for (int i = 0; i < conf.n_pos; i++)
                free(conf.pos[i]);
        return r;
}
