/*
 * tidemark-failoverd: the DR orchestrator daemon. Reads the one config file
 * ([failover], [site.*], [service_tier.*], [hook.*], [target.*]), checks
 * every site once to learn which is the primary, starts the health monitor
 * and the HTTP API, then waits for SIGTERM/SIGINT. With no site at all (the
 * embedded default: a local repository, no PostgreSQL replication) it
 * serves what needs none: health, metrics, status, the recovery timeline,
 * point-in-time recovery and dry-run drills. A failover in flight at
 * shutdown is waited for: stopping half-way through a promotion helps
 * nobody.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tidemark/daemon.h>
#include <tidemark/harden.h>
#include <tidemark/log.h>
#include <tidemark/time.h>

#include "fo.h"

static void usage(FILE *f)
{
        fprintf(f, "usage: tidemark-failoverd [options]\n"
                   "  -c, --config FILE     configuration file (or TIDEMARK_CONFIG;\n"
                   "                        default /etc/tidemark/tidemark.conf)\n"
                   "      --listen ADDR:PORT  override [server] listen\n"
                   "      --port-file FILE  write the bound port to FILE once listening\n"
                   "      --check-config    validate the configuration and exit\n"
                   "  -v, --verbose         debug logging\n"
                   "      --version         print the version\n"
                   "see docs/disaster-recovery.md and docs/configuration.md\n");
}

/* The repository is optional: without it failoverd moves primaries but
 * cannot recover to a point in time nor show the timeline. */
static int open_repository(struct fo *f)
{
        const char *loc = f->cfg->repo_location ? f->cfg->repo_location
                                                : getenv("TIDEMARK_REPOSITORY");
        const char *pw = f->cfg->password_file ? f->cfg->password_file
                                               : getenv("TIDEMARK_PASSWORD_FILE");
        struct tm_repo_opts o = TM_REPO_OPTS_INIT;
        char self[4000], cat[4200];
        ssize_t n;
        int r;

        if (!loc)
                return 0;
        r = tm_daemon_load_password(pw, &f->password, &f->password_len);
        if (r < 0)
                return r;
        snprintf(cat, sizeof(cat), "%s/catalog.db", f->dr->state_dir);
        o.location = loc;
        o.password = f->password;
        o.password_len = f->password_len;
        o.catalog_path = cat;
        r = tm_repo_open(&o, &f->repo);
        if (r < 0)
                return tm_log_errno(TM_LOG_ERR, r, "cannot open the repository '%s'", loc);
        f->repo_location = loc;
        /* a few seconds: an answer without end= runs up to now */
        r = tm_http_cache_new(5 * TM_NSEC_PER_SEC, &f->timeline_cache);
        if (r < 0)
                return r;
        /* a recovered server's restore_command runs the tidemark program
         * (wal-fetch), with a catalog of its own */
        if (f->dr->tidemark) {
                snprintf(f->tidemark, sizeof(f->tidemark), "%s", f->dr->tidemark);
        } else {
                n = readlink("/proc/self/exe", self, sizeof(self) - 1);
                self[n > 0 ? n : 0] = '\0';
                if (strrchr(self, '/'))
                        *strrchr(self, '/') = '\0';
                snprintf(f->tidemark, sizeof(f->tidemark), "%s/tidemark", self);
        }
        snprintf(f->restore_catalog, sizeof(f->restore_catalog), "%s/restore-catalog.db",
                 f->dr->state_dir);
        tm_log(TM_LOG_INFO, "repository '%s': point-in-time recovery with %s", loc, f->tidemark);
        return 0;
}

/*
 * A failover or failback killed with the daemon (kill -9, a host crash)
 * may have fenced the primary and promoted nothing: the platform then has
 * no writable database, and automatic failover does not step in because
 * the fenced primary still answers (tests/chaos fo_kill found it). At
 * start-up, lift such a fence when it is provably the only primary.
 */
static void recover_interrupted(struct fo *f)
{
        struct tm_job *a = NULL;
        size_t n = 0;
        char site[TM_DR_NAME_MAX + 1], err[768];
        int r, interrupted = 0;

        if (tm_jobs_list(f->jobs, &a, &n) < 0)
                return;
        for (size_t i = n; i-- > 0;)
                if (!strcmp(a[i].kind, "failover") || !strcmp(a[i].kind, "failback")) {
                        interrupted = !strcmp(a[i].state, "interrupted");
                        break;
                }
        tm_job_array_free(a, n);
        if (!interrupted)
                return;
        r = tm_dr_recover_fence(f->dr, site, sizeof(site), err, sizeof(err));
        if (r > 0) {
                tm_log(TM_LOG_WARN,
                       "the last failover was interrupted and left '%s' fenced with no other "
                       "primary: its fence is lifted",
                       site);
                fo_check_sites(f);
        } else if (r < 0) {
                tm_log(TM_LOG_ERR, "the last failover was interrupted: %s", err);
        } else {
                tm_log(TM_LOG_INFO, "the last failover was interrupted; no primary is left fenced");
        }
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
        struct fo f = { 0 };
        char err[1024], path[4200], *cert = NULL, *key = NULL;
        int c, r, check_only = 0, access_fd = -1, exit_code = 1, sig = 0;
        sigset_t sigs;

        tm_log_set_sink(tm_daemon_log_sink, "failoverd");
        /* no core file and no same-user ptrace can read the secrets */
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
                        printf("tidemark-failoverd %s\n", TM_VERSION);
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
                fprintf(stderr, "tidemark-failoverd: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (!config_path)
                config_path = "/etc/tidemark/tidemark.conf";
        r = tm_config_load(config_path, &f.cfg, err, sizeof(err));
        if (r >= 0)
                r = tm_dr_conf_load(f.cfg, &f.dr, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "tidemark-failoverd: %s\n", err);
                tm_config_free(f.cfg);
                return 2;
        }
        /* a shared file may configure the other daemons first: valid */
        if (check_only) {
                printf("%s: ok (%zu sites)\n", config_path, f.dr->n_sites);
                exit_code = 0;
                goto out_early;
        }

        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);
        pthread_mutex_init(&f.lock, NULL);
        pthread_cond_init(&f.cond, NULL);

        /* without sites there is nothing to check or promote, but the
         * repository (timeline, point-in-time recovery), the tiers' targets
         * and the drill's preflight still make sense: serve those */
        if (f.dr->n_sites) {
                f.sites = calloc(f.dr->n_sites, sizeof(*f.sites));
                if (!f.sites)
                        goto out;
        }
        r = tm_daemon_mkdir_p(f.dr->state_dir);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot create the state directory '%s'",
                             f.dr->state_dir);
                goto out;
        }
        snprintf(f.state_path, sizeof(f.state_path), "%s/state.json", f.dr->state_dir);
        snprintf(path, sizeof(path), "%s/jobs.jsonl", f.dr->state_dir);
        r = tm_jobs_open(path, &f.jobs);
        if (r < 0)
                goto out;
        snprintf(path, sizeof(path), "%s/audit.log", f.dr->state_dir);
        r = tm_audit_open(f.cfg->audit_log ? f.cfg->audit_log : path, &f.audit);
        if (r < 0)
                goto out;
        r = tm_metrics_new(&f.metrics);
        if (r < 0)
                goto out;
        fo_metrics_define(&f);
        pthread_mutex_init(&f.repo_lock, NULL);
        r = open_repository(&f);
        if (r < 0)
                goto out;
        if (f.dr->n_sites) {
                snprintf(f.active, sizeof(f.active), "%s",
                         f.dr->primary ? f.dr->primary : f.dr->sites[0].name);
                fo_state_load(&f);
                fo_check_sites(&f);
                recover_interrupted(&f);
                tm_log(TM_LOG_INFO, "%zu sites, primary '%s', automatic failover %s",
                       f.dr->n_sites, f.active, f.dr->automatic ? "on" : "off");
                r = fo_monitor_start(&f);
                if (r < 0)
                        goto out;
        } else {
                /* the last failover's record still counts for the RTO figures */
                fo_state_load(&f);
                tm_log(TM_LOG_WARN, "%s: no [site.NAME] section: failover and failback are "
                                    "disabled; serving status, recovery and drills only",
                       config_path);
        }

        r = tm_daemon_read_tls(f.cfg->tls_cert, f.cfg->tls_key, &cert, &key);
        if (r < 0)
                goto out;
        r = tm_daemon_open_log(f.cfg->access_log, &access_fd);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot open the access log '%s'", f.cfg->access_log);
                goto out;
        }
        if (!f.cfg->n_tokens && f.cfg->anonymous_role > TM_ROLE_NONE)
                tm_log(TM_LOG_WARN, "no API tokens are configured: requests without a token act "
                                    "as '%s'",
                       tm_http_role_name(f.cfg->anonymous_role));
        ho.listen = listen ? listen : f.cfg->listen;
        ho.tls_cert_pem = cert;
        ho.tls_key_pem = key;
        ho.tokens = f.cfg->tokens;
        ho.n_tokens = f.cfg->n_tokens;
        ho.anonymous_role = f.cfg->anonymous_role;
        ho.audit = f.audit;
        ho.access_log_fd = access_fd;
        ho.service = "failoverd";
        ho.app = &f;
        r = tm_http_serve(fo_routes, fo_n_routes, &ho, &f.http);
        if (r < 0)
                goto out;
        tm_log(TM_LOG_INFO, "listening on %s (port %d)", ho.listen, tm_http_port(f.http));
        if (port_file && (r = tm_daemon_write_port_file(port_file, tm_http_port(f.http))) < 0) {
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
                                tm_http_tls_reload_files(f.http, f.cfg->tls_cert, f.cfg->tls_key);
                        else
                                tm_log(TM_LOG_INFO,
                                       "SIGHUP: restart the daemon to reload the configuration");
                        continue;
                }
                break;
        }
        tm_log(TM_LOG_INFO, "signal %d: stopping", sig);
        exit_code = 0;
out:
        if (f.http)
                tm_http_quiesce(f.http);
        tm_http_free(f.http);
        fo_monitor_stop(&f);
        fo_flow_join(&f);
        if (access_fd > 2)
                close(access_fd);
        if (f.sites)
                for (size_t i = 0; i < f.dr->n_sites; i++)
                        tm_dr_health_dispose(&f.sites[i].h);
        free(f.sites);
        tm_dr_health_dispose(&f.last_primary);
        if (f.log) {
                tm_dr_log_dispose(f.log);
                free(f.log);
        }
        json_decref(f.last_failover);
        tm_metrics_free(f.metrics);
        tm_audit_close(f.audit);
        tm_jobs_close(f.jobs);
        tm_repo_free(f.repo);
        tm_http_cache_free(f.timeline_cache);
        tm_daemon_secret_free(f.password);
        tm_daemon_secret_free(key);
        free(cert);
out_early:
        tm_dr_conf_free(f.dr);
        tm_config_free(f.cfg);
        return exit_code;
}
