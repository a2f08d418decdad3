/*
 * tidemark-backupd: the backup orchestrator daemon. Reads one config file,
 * opens the repository, replays the job history (retrying jobs a crash or a
 * restart interrupted), starts the workers, the scheduler and the HTTP API,
 * then waits for SIGTERM/SIGINT: the API stops accepting, running jobs get
 * shutdown_timeout seconds to finish, queued ones stay queued in the history
 * and are retried at the next start.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tidemark/daemon.h>
#include <tidemark/harden.h>
#include <tidemark/log.h>
#include <tidemark/time.h>

#include "bkd.h"

static void usage(FILE *f)
{
        fprintf(f, "usage: tidemark-backupd [options]\n"
                   "  -c, --config FILE     configuration file (or TIDEMARK_CONFIG;\n"
                   "                        default /etc/tidemark/tidemark.conf)\n"
                   "      --listen ADDR:PORT  override [server] listen\n"
                   "      --port-file FILE  write the bound port to FILE once listening\n"
                   "      --check-config    validate the configuration and exit\n"
                   "  -v, --verbose         debug logging\n"
                   "      --version         print the version\n"
                   "see docs/configuration.md and docs/backupd.md\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "config", required_argument, NULL, 'c' },
                { "listen", required_argument, NULL, 'l' },
                { "port-file", required_argument, NULL, 'p' },
                { "check-config", no_argument, NULL, 'k' },
                { "verbose", no_argument, NULL, 'v' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        const char *config_path = getenv("TIDEMARK_CONFIG"), *listen = NULL, *port_file = NULL;
        struct tm_http_opts ho = TM_HTTP_OPTS_INIT;
        struct bkd b = { 0 };
        char err[1024], state_dir[4096], jobs_path[4096 + 16], audit_path[4096 + 16];
        char *cert = NULL, *key = NULL;
        int c, r, check_only = 0, access_fd = -1, exit_code = 1, sig = 0;
        sigset_t sigs;

        tm_log_set_sink(tm_daemon_log_sink, "backupd");
        /* no core file and no same-user ptrace can read the key */
        r = tm_harden_process();
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot disable core dumps");
                return 1;
        }
        while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 'l':
                        listen = optarg;
                        break;
                case 'p':
                        port_file = optarg;
                        break;
                case 'k':
                        check_only = 1;
                        break;
                case 'v':
                        tm_log_set_level(TM_LOG_DEBUG);
                        break;
                case 'V':
                        printf("tidemark-backupd %s\n", TM_VERSION);
                        return 0;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "tidemark-backupd: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (!config_path)
                config_path = "/etc/tidemark/tidemark.conf";
        r = tm_config_load(config_path, &b.cfg, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "tidemark-backupd: %s\n", err);
                return 2;
        }
        b.repo_location =
                b.cfg->repo_location ? b.cfg->repo_location : getenv("TIDEMARK_REPOSITORY");
        b.catalog = b.cfg->catalog ? b.cfg->catalog : getenv("TIDEMARK_CATALOG");
        if (!b.repo_location) {
                fprintf(stderr,
                        "tidemark-backupd: %s: [repository] location is not set (nor "
                        "TIDEMARK_REPOSITORY)\n",
                        config_path);
                goto out_early;
        }
        if (check_only) {
                printf("%s: ok (%zu components)\n", config_path, b.cfg->n_components);
                exit_code = 0;
                goto out_early;
        }

        /* block the signals we wait for before any thread starts, so every
         * thread inherits the mask and only sigwait() sees them */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);

        pthread_mutex_init(&b.repo_lock, NULL);
        pthread_mutex_init(&b.retention_lock, NULL);
        pthread_mutex_init(&b.qlock, NULL);
        pthread_mutex_init(&b.stats_lock, NULL);
        pthread_cond_init(&b.qcond, NULL);
        pthread_cond_init(&b.qidle, NULL);
        pthread_cond_init(&b.sched_cond, NULL);

        if (tm_daemon_load_password(b.cfg->password_file, &b.password, &b.password_len) < 0)
                goto out;
        {
                struct tm_repo_opts o = TM_REPO_OPTS_INIT;

                o.location = b.repo_location;
                o.password = b.password;
                o.password_len = b.password_len;
                o.catalog_path = b.catalog;
                o.config = b.cfg;
                r = tm_repo_open(&o, &b.repo);
        }
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot open the repository '%s'", b.repo_location);
                goto out;
        }
        if (b.cfg->state_dir)
                snprintf(state_dir, sizeof(state_dir), "%s", b.cfg->state_dir);
        else
                snprintf(state_dir, sizeof(state_dir), "/var/lib/tidemark-backupd");
        r = tm_daemon_mkdir_p(state_dir);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot create the state directory '%s'", state_dir);
                goto out;
        }
        snprintf(jobs_path, sizeof(jobs_path), "%s/jobs.jsonl", state_dir);
        /* Jobs open their own repository handles, with a catalog of their
         * own: opening the API handle's catalog file a second time in this
         * process (the catalog's pre-open check opens and closes it) would
         * release that handle's POSIX locks, and another process (the CLI)
         * could then delete the WAL under it and leave it reading a stale
         * database. The API handle catches up with tm_repo_refresh() when
         * snapshots/ changes. */
        snprintf(b.job_catalog, sizeof(b.job_catalog), "%s/jobs-catalog.db", state_dir);
        snprintf(audit_path, sizeof(audit_path), "%s/audit.log", state_dir);
        r = tm_jobs_open(jobs_path, &b.jobs);
        if (r < 0)
                goto out;
        r = tm_audit_open(b.cfg->audit_log ? b.cfg->audit_log : audit_path, &b.audit);
        if (r < 0)
                goto out;
        /* at most a minute, even if the mtime misses a change */
        r = tm_http_cache_new(60 * TM_NSEC_PER_SEC, &b.list_cache);
        if (r < 0)
                goto out;
        r = tm_metrics_new(&b.metrics);
        if (r < 0)
                goto out;
        r = bkd_jobs_start(&b);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot start the workers");
                goto out;
        }
        bkd_jobs_retry_interrupted(&b);
        if (bkd_replica_start(&b) < 0)
                goto out;

        r = tm_daemon_read_tls(b.cfg->tls_cert, b.cfg->tls_key, &cert, &key);
        if (r < 0)
                goto out;
        r = tm_daemon_open_log(b.cfg->access_log, &access_fd);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot open the access log '%s'", b.cfg->access_log);
                goto out;
        }
        if (!b.cfg->n_tokens && b.cfg->anonymous_role > TM_ROLE_NONE)
                tm_log(TM_LOG_WARN,
                       "no API tokens are configured: requests without a token act "
                       "as '%s'",
                       tm_http_role_name(b.cfg->anonymous_role));
        ho.listen = listen ? listen : b.cfg->listen;
        ho.tls_cert_pem = cert;
        ho.tls_key_pem = key;
        ho.tokens = b.cfg->tokens;
        ho.n_tokens = b.cfg->n_tokens;
        ho.anonymous_role = b.cfg->anonymous_role;
        ho.audit = b.audit;
        ho.access_log_fd = access_fd;
        ho.service = "backupd";
        ho.app = &b;
        r = tm_http_serve(bkd_routes, bkd_n_routes, &ho, &b.http);
        if (r < 0)
                goto out;
        tm_log(TM_LOG_INFO, "listening on %s (port %d), %zu components, %d workers", ho.listen,
               tm_http_port(b.http), b.cfg->n_components, b.cfg->workers);
        if (port_file && (r = tm_daemon_write_port_file(port_file, tm_http_port(b.http))) < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot write '%s'", port_file);
                goto out;
        }
        for (;;) {
                if (sigwait(&sigs, &sig) != 0)
                        continue;
                if (sig == SIGHUP) {
                        /* certificate renewal; a pair that does not load is
                         * logged and the old one stays */
                        if (cert)
                                tm_http_tls_reload_files(b.http, b.cfg->tls_cert, b.cfg->tls_key);
                        else
                                tm_log(TM_LOG_INFO, "SIGHUP: restart the daemon to reload "
                                                    "the configuration");
                        continue;
                }
                break;
        }
        tm_log(TM_LOG_INFO, "signal %d: stopping (running jobs get %d s)", sig,
               b.cfg->shutdown_timeout_s);
        tm_http_quiesce(b.http);
        tm_http_free(b.http);
        b.http = NULL;
        bkd_replica_stop(&b);
        r = bkd_jobs_stop(&b, b.cfg->shutdown_timeout_s);
        if (r == -ETIMEDOUT) {
                /* the repository is consistent either way (snapshots commit
                 * last); the history says "running" and the next start
                 * marks those jobs interrupted and retries them */
                tm_log(TM_LOG_WARN, "jobs still running after %d s: exiting anyway",
                       b.cfg->shutdown_timeout_s);
                fflush(NULL);
                _exit(0);
        }
        tm_log(TM_LOG_INFO, "stopped");
        exit_code = 0;
out:
        tm_http_free(b.http);
        bkd_replica_stop(&b);
        if (!b.stopping && b.n_workers)
                bkd_jobs_stop(&b, b.cfg->shutdown_timeout_s);
        if (access_fd > 2)
                close(access_fd);
        free(b.workers);
        free(b.next_run);
        tm_metrics_free(b.metrics);
        tm_http_cache_free(b.list_cache);
        tm_audit_close(b.audit);
        tm_jobs_close(b.jobs);
        tm_repo_free(b.repo);
        tm_daemon_secret_free(b.password);
        tm_daemon_secret_free(key);
        free(cert);
out_early:
        tm_config_free(b.cfg);
        return exit_code;
}
