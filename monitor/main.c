/*
 * tidemark-monitord: monitoring, alerting and business continuity. Reads the
 * one config file ([monitor], [service.*], [check.*], [alert.*],
 * [channel.*], [runbook.*], [incidents], [sla], [auth]), starts the
 * notifier, the check engine and the HTTP API, then waits for
 * SIGTERM/SIGINT: the API stops, queued notifications get a few seconds to
 * go out, running runbooks are cancelled.
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

#include "mon.h"

static void usage(FILE *f)
{
        fprintf(f, "usage: tidemark-monitord [options]\n"
                   "  -c, --config FILE     configuration file (or TIDEMARK_CONFIG;\n"
                   "                        default /etc/tidemark/tidemark.conf)\n"
                   "      --listen ADDR:PORT  override [monitor] listen\n"
                   "      --port-file FILE  write the bound port to FILE once listening\n"
                   "      --check-config    validate the configuration and exit\n"
                   "  -v, --verbose         debug logging\n"
                   "      --version         print the version\n"
                   "see docs/monitoring.md and docs/business-continuity.md\n");
}

struct settings {
        const char *listen, *state_dir, *access_log, *audit_log;
};

/* [monitor], [incidents] and [sla]: the daemon's own sections. */
static int load_settings(struct mon *m, struct settings *st, char *err, size_t errlen)
{
        const struct tm_config *cfg = m->cfg;
        const struct tm_config_section *s = tm_config_section(cfg, "monitor");
        const char *v;

        st->listen = "0.0.0.0:8080";
        st->access_log = "stderr";
        m->scrape_interval_ns = 15 * TM_NSEC_PER_SEC;
        m->reexport = 1;
        m->n_workers = 4;
        m->auto_incidents = 1;
        m->incident_min_severity = TM_ALERT_CRITICAL;
        if (s) {
                static const char *keys[] = { "listen",    "state_dir", "access_log",
                                              "audit_log", "workers",   "scrape_interval",
                                              "reexport",  "audit_logs" };

                if (tm_config_section_check_keys(cfg, s, keys, TM_ARRAY_SIZE(keys), err, errlen) <
                    0)
                        return -EINVAL;
                if ((v = tm_config_section_get(s, "listen")))
                        st->listen = v;
                st->state_dir = tm_config_section_get(s, "state_dir");
                if ((v = tm_config_section_get(s, "access_log")))
                        st->access_log = v;
                st->audit_log = tm_config_section_get(s, "audit_log");
                if ((v = tm_config_section_get(s, "workers"))) {
                        char *e;
                        long n = strtol(v, &e, 10);

                        if (*e || n < 1 || n > 64)
                                return tm_config_section_error(cfg, s, "workers", err, errlen,
                                                               "workers must be 1 to 64");
                        m->n_workers = (int)n;
                }
                if ((v = tm_config_section_get(s, "scrape_interval")) &&
                    (tm_config_parse_duration(v, &m->scrape_interval_ns) < 0 ||
                     m->scrape_interval_ns <= 0))
                        return tm_config_section_error(cfg, s, "scrape_interval", err, errlen,
                                                       "scrape_interval must be a duration");
                if ((v = tm_config_section_get(s, "reexport")) &&
                    tm_config_parse_bool(v, &m->reexport) < 0)
                        return tm_config_section_error(cfg, s, "reexport", err, errlen,
                                                       "reexport must be on or off");
                if ((v = tm_config_section_get(s, "audit_logs")) &&
                    tm_probe_strv_split(v, &m->audit_logs) < 0)
                        return -ENOMEM;
        }
        s = tm_config_section(cfg, "incidents");
        if (s) {
                static const char *keys[] = { "auto_open", "min_severity", "channels" };

                if (tm_config_section_check_keys(cfg, s, keys, TM_ARRAY_SIZE(keys), err, errlen) <
                    0)
                        return -EINVAL;
                if ((v = tm_config_section_get(s, "auto_open")) &&
                    tm_config_parse_bool(v, &m->auto_incidents) < 0)
                        return tm_config_section_error(cfg, s, "auto_open", err, errlen,
                                                       "auto_open must be on or off");
                if ((v = tm_config_section_get(s, "min_severity")) &&
                    (tm_alert_severity_parse(v, &m->incident_min_severity) < 0 ||
                     m->incident_min_severity > TM_ALERT_HIGH))
                        return tm_config_section_error(cfg, s, "min_severity", err, errlen,
                                                       "min_severity must be critical or high");
                if ((v = tm_config_section_get(s, "channels"))) {
                        if (tm_probe_strv_split(v, &m->incident_channels) < 0)
                                return -ENOMEM;
                        for (char **c = m->incident_channels; *c; c++) {
                                const char *const *k = tm_notify_names(m->notify);

                                while (*k && strcmp(*k, *c))
                                        k++;
                                if (!*k)
                                        return tm_config_section_error(
                                                cfg, s, "channels", err, errlen,
                                                "no [channel.%s] for incident updates", *c);
                        }
                }
        }
        return 0;
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
        struct settings st = { 0 };
        struct mon m = { 0 };
        char err[1024] = "", path[4200], *cert = NULL, *key = NULL;
        int c, r, check_only = 0, access_fd = -1, exit_code = 1, sig = 0;
        sigset_t sigs;

        tm_log_set_sink(tm_daemon_log_sink, "monitord");
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
                        printf("tidemark-monitord %s\n", TM_VERSION);
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
                fprintf(stderr, "tidemark-monitord: unexpected argument '%s'\n", argv[optind]);
                return 2;
        }
        if (!config_path)
                config_path = "/etc/tidemark/tidemark.conf";
        pthread_mutex_init(&m.lock, NULL);
        pthread_mutex_init(&m.metrics_lock, NULL);
        pthread_mutex_init(&m.rb_lock, NULL);
        pthread_cond_init(&m.cond, NULL);
        pthread_cond_init(&m.rb_cond, NULL);
        r = tm_config_load(config_path, &m.cfg, err, sizeof(err));
        if (r >= 0)
                r = tm_probe_config_load(m.cfg, &m.pc, err, sizeof(err));
        if (r >= 0)
                r = tm_notify_new(m.cfg, &m.notify, err, sizeof(err));
        if (r >= 0)
                r = tm_alerts_new(m.cfg, m.pc, tm_notify_names(m.notify), &m.alerts, err,
                                  sizeof(err));
        if (r >= 0)
                r = tm_runbooks_load(m.cfg, m.pc, &m.runbooks, err, sizeof(err));
        if (r >= 0)
                r = load_settings(&m, &st, err, sizeof(err));
        if (r < 0) {
                fprintf(stderr, "tidemark-monitord: %s\n", err[0] ? err : strerror(-r));
                exit_code = 2;
                goto out;
        }
        if (check_only) {
                printf("%s: ok (%zu services, %zu checks, %zu alerts, %zu channels, %zu "
                       "runbooks)\n",
                       config_path, m.pc->n_services, m.pc->n_checks, tm_alerts_count(m.alerts),
                       tm_notify_count(m.notify), m.runbooks->n);
                exit_code = 0;
                goto out;
        }
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGTERM);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);

        snprintf(m.state_dir, sizeof(m.state_dir), "%s",
                 st.state_dir ? st.state_dir : "/var/lib/tidemark-monitord");
        snprintf(path, sizeof(path), "%s/sla", m.state_dir);
        r = tm_daemon_mkdir_p(path);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot create the state directory '%s'", m.state_dir);
                goto out;
        }
        m.started = tm_time_now();
        r = tm_sla_open(path, 0, &m.sla);
        if (r >= 0) {
                snprintf(path, sizeof(path), "%s/incidents.json", m.state_dir);
                r = tm_incidents_open(path, &m.incidents);
        }
        if (r >= 0) {
                snprintf(path, sizeof(path), "%s/jobs.jsonl", m.state_dir);
                r = tm_jobs_open(path, &m.jobs);
        }
        if (r >= 0) {
                snprintf(m.audit_path, sizeof(m.audit_path), "%s",
                         st.audit_log ? st.audit_log : "");
                if (!st.audit_log)
                        snprintf(m.audit_path, sizeof(m.audit_path), "%s/audit.log", m.state_dir);
                r = tm_audit_open(m.audit_path, &m.audit);
        }
        if (r >= 0)
                r = tm_metrics_new(&m.metrics);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot open the state in '%s'", m.state_dir);
                goto out;
        }
        m.ch_sent = calloc(tm_notify_count(m.notify) + 1, sizeof(*m.ch_sent));
        m.ch_failed = calloc(tm_notify_count(m.notify) + 1, sizeof(*m.ch_failed));
        if (!m.ch_sent || !m.ch_failed)
                goto out;
        mon_metrics_define(&m);
        r = tm_notify_start(m.notify);
        if (r >= 0)
                r = mon_engine_start(&m);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot start the engine");
                goto out;
        }
        r = tm_daemon_open_log(st.access_log, &access_fd);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot open the access log '%s'", st.access_log);
                goto out;
        }
        if (!m.cfg->n_tokens && m.cfg->anonymous_role > TM_ROLE_NONE)
                tm_log(TM_LOG_WARN,
                       "no API tokens are configured: requests without a token act as '%s'",
                       tm_http_role_name(m.cfg->anonymous_role));
        r = tm_daemon_read_tls(m.cfg->tls_cert, m.cfg->tls_key, &cert, &key);
        if (r < 0)
                goto out;
        ho.tls_cert_pem = cert;
        ho.tls_key_pem = key;
        ho.listen = listen ? listen : st.listen;
        ho.tokens = m.cfg->tokens;
        ho.n_tokens = m.cfg->n_tokens;
        ho.anonymous_role = m.cfg->anonymous_role;
        ho.audit = m.audit;
        ho.access_log_fd = access_fd;
        ho.service = "monitord";
        ho.app = &m;
        r = tm_http_serve(mon_routes, mon_n_routes, &ho, &m.http);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot listen on '%s'", ho.listen);
                goto out;
        }
        tm_log(TM_LOG_INFO,
               "listening on %s (port %d): %zu services, %zu checks, %zu alerts, %zu channels, "
               "%zu runbooks",
               ho.listen, tm_http_port(m.http), m.pc->n_services, m.pc->n_checks,
               tm_alerts_count(m.alerts), tm_notify_count(m.notify), m.runbooks->n);
        if (port_file && (r = tm_daemon_write_port_file(port_file, tm_http_port(m.http))) < 0) {
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
                                tm_http_tls_reload_files(m.http, m.cfg->tls_cert, m.cfg->tls_key);
                        else
                                tm_log(TM_LOG_INFO,
                                       "SIGHUP: restart the daemon to reload the configuration");
                        continue;
                }
                break;
        }
        tm_log(TM_LOG_INFO, "signal %d: stopping", sig);
        tm_http_quiesce(m.http);
        exit_code = 0;
out:
        tm_http_free(m.http);
        m.http = NULL;
        mon_engine_stop(&m);
        /* cancelled runbooks end within their longest step timeout (an HTTP
         * call, 30 s) */
        mon_runbooks_wait(&m, 40);
        tm_notify_free(m.notify, exit_code == 0 ? 3000 : 0);
        if (access_fd > 2)
                close(access_fd);
        tm_metrics_free(m.metrics);
        tm_audit_close(m.audit);
        tm_jobs_close(m.jobs);
        tm_incidents_close(m.incidents);
        tm_sla_free(m.sla);
        tm_runbooks_free(m.runbooks);
        tm_alerts_free(m.alerts);
        tm_probe_config_free(m.pc);
        tm_probe_strv_free(m.incident_channels);
        tm_probe_strv_free(m.audit_logs);
        free(m.ch_sent);
        free(m.ch_failed);
        tm_daemon_secret_free(key);
        free(cert);
        tm_config_free(m.cfg);
        if (exit_code == 0)
                tm_log(TM_LOG_INFO, "stopped");
        return exit_code;
}
