/*
 * replicate: copy the repository to its replica location (lib/src/replica).
 *   tidemark replicate --once     one pass
 *   tidemark replicate --status   what is behind, copying nothing
 *   tidemark replicate            a pass every interval until SIGINT/SIGTERM
 * The location comes from --to, or from the [replica] section of --config
 * FILE or TIDEMARK_CONFIG (which also supplies the repository and password
 * file when they are not given otherwise).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tidemark/config.h>
#include <tidemark/replica.h>
#include <tidemark/time.h>

#include "cli.h"

static volatile sig_atomic_t stop_flag;
static volatile int cancel_flag;

static void on_signal(int sig)
{
        (void)sig;
        stop_flag = 1;
        cancel_flag = 1;
}

static json_t *status_json(const tm_replica *rep, const char *name,
                           const struct tm_replica_status *s)
{
        json_t *o = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I, s:f}", "name", name,
                              "location", tm_replica_location(rep), "reachable", s->reachable,
                              "snapshots", (json_int_t)s->snapshots, "snapshots_behind",
                              (json_int_t)s->snapshots_behind, "objects_behind",
                              (json_int_t)s->objects_behind, "bytes_behind",
                              (json_int_t)s->bytes_behind, "objects_to_delete",
                              (json_int_t)s->objects_extra, "lag_seconds", (double)s->lag_ns / 1e9);
        char t[64];

        if (o && s->oldest_missing_ns) {
                tm_time_format(s->oldest_missing_ns, t, sizeof(t));
                json_object_set_new(o, "oldest_missing_commit", json_string(t));
        }
        return o;
}

static void status_text(const tm_replica *rep, const struct tm_replica_status *s)
{
        char bytes[32], t[64];

        cli_format_bytes(s->bytes_behind, bytes, sizeof(bytes));
        cli_out("replica %s%s\n", tm_replica_location(rep),
                s->reachable ? "" : " (unreachable: figures from the last listing)");
        cli_out("  snapshots: %llu of %llu replicated\n",
                (unsigned long long)(s->snapshots - s->snapshots_behind),
                (unsigned long long)s->snapshots);
        cli_out("  behind:    %llu objects, %s\n", (unsigned long long)s->objects_behind, bytes);
        if (s->oldest_missing_ns) {
                tm_time_format(s->oldest_missing_ns, t, sizeof(t));
                cli_out("  lag:       %.0f s (oldest snapshot not replicated: %s)\n",
                        (double)s->lag_ns / 1e9, t);
        } else {
                cli_out("  lag:       0 s (caught up)\n");
        }
        if (s->objects_extra)
                cli_out("  to delete: %llu objects removed on the repository\n",
                        (unsigned long long)s->objects_extra);
}

static int one_pass(tm_replica *rep, const char *name)
{
        struct tm_replica_stats st = { 0 };
        char bytes[32];
        int r;

        r = tm_replica_run(rep, &cancel_flag, &st);
        if (cli_opts.json) {
                json_t *o = json_pack(
                        "{s:s, s:b, s:I, s:I, s:I, s:I, s:f}", "location", tm_replica_location(rep),
                        "ok", r == 0, "objects_copied", (json_int_t)st.objects_copied,
                        "bytes_copied", (json_int_t)st.bytes_copied, "objects_deleted",
                        (json_int_t)st.objects_deleted, "errors", (json_int_t)st.errors,
                        "duration_seconds", (double)st.duration_ns / 1e9);

                if (o)
                        json_object_set_new(o, "status", status_json(rep, name, &st.status));
                cli_json_print(o);
        } else if (r == 0) {
                cli_format_bytes(st.bytes_copied, bytes, sizeof(bytes));
                cli_out("replicated %llu objects (%s) and deleted %llu to %s in %.1f s\n",
                        (unsigned long long)st.objects_copied, bytes,
                        (unsigned long long)st.objects_deleted, tm_replica_location(rep),
                        (double)st.duration_ns / 1e9);
                status_text(rep, &st.status);
        }
        if (r == -ECANCELED)
                return cli_error("replication to '%s' interrupted; the replica is consistent and "
                                 "the next pass continues",
                                 tm_replica_location(rep));
        if (r == -EEXIST)
                return CLI_EXIT_FAIL; /* the library named the location and why */
        if (r == -ENODATA)
                return cli_error(
                        "replication to '%s' waits for archived packs to thaw (requested); "
                        "run it again later",
                        tm_replica_location(rep));
        if (r == -EBUSY)
                return cli_error("a prune holds '%s'; replicate again when it is done",
                                 cli_opts.repo);
        if (r < 0)
                /* the object that failed is named in the line above */
                return cli_error_errno(r, "replication to '%s' is incomplete (%llu errors)",
                                       tm_replica_location(rep), (unsigned long long)st.errors);
        return CLI_EXIT_OK;
}

int cli_cmd_replicate(void)
{
        struct tm_replica_conf conf = { 0 };
        const struct tm_config *cfg = NULL;
        tm_replica *rep = NULL;
        tm_repo *repo = NULL;
        char err[1024];
        int r = CLI_EXIT_FAIL, rc;

        if (cli_opts.n_args > 0)
                return cli_error("replicate takes no arguments (got '%s'; the location is --to)",
                                 cli_opts.args[0]);
        if (cli_opts.replicate_once && cli_opts.replicate_status)
                return cli_error("--once and --status exclude each other");
        if (cli_opts.config && *cli_opts.config) {
                /* the global one (main.c frees it), which also places the
                 * repository's packs in their tiers */
                if (!cli_opts.cfg) {
                        rc = tm_config_load(cli_opts.config, &cli_opts.cfg, err, sizeof(err));
                        if (rc < 0)
                                return cli_error("%s", err);
                }
                cfg = cli_opts.cfg;
                rc = tm_replica_conf_load(cfg, &conf, err, sizeof(err));
                if (rc == -ENOENT && !cli_opts.replicate_to) {
                        cli_error("%s has no [replica] section (or give --to LOCATION)",
                                  cli_opts.config);
                        goto out;
                }
                if (rc < 0 && rc != -ENOENT) {
                        cli_error("%s", err);
                        goto out;
                }
                if (!cli_opts.repo)
                        cli_opts.repo = cfg->repo_location;
                if (!cli_opts.password_file && !getenv("TIDEMARK_PASSWORD") &&
                    !getenv("TIDEMARK_PASSWORD_FILE"))
                        cli_opts.password_file = cfg->password_file;
        }
        if (!conf.name && tm_replica_conf_default(NULL, &conf) < 0) {
                cli_error("out of memory");
                goto out;
        }
        if (cli_opts.replicate_to) {
                free(conf.location);
                conf.location = strdup(cli_opts.replicate_to);
                if (!conf.location) {
                        cli_error("out of memory");
                        goto out;
                }
        }
        if (!conf.location || !*conf.location) {
                cli_error("where to? give --to LOCATION or --config FILE with a [replica] "
                          "section");
                goto out;
        }
        if (cli_repo_open(&repo) < 0)
                goto out;
        rc = tm_replica_new(repo, &conf, &rep);
        if (rc < 0)
                goto out; /* logged with the location */

        if (cli_opts.replicate_status) {
                struct tm_replica_status st;

                rc = tm_replica_status(rep, &st);
                if (rc < 0) {
                        cli_error_errno(rc, "cannot compare '%s' with its replica",
                                        tm_repo_location(repo));
                        goto out;
                }
                if (cli_opts.json)
                        cli_json_print(status_json(rep, conf.name, &st));
                else
                        status_text(rep, &st);
                r = CLI_EXIT_OK;
                goto out;
        }
        if (cli_opts.replicate_once) {
                r = one_pass(rep, conf.name);
                goto out;
        }

        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        while (!stop_flag) {
                int64_t until;

                r = one_pass(rep, conf.name);
                until = tm_time_mono() + conf.interval_ns;
                while (!stop_flag && tm_time_mono() < until) {
                        struct timespec ts = { .tv_sec = 0, .tv_nsec = 200 * 1000 * 1000 };

                        nanosleep(&ts, NULL);
                }
        }
out:
        tm_replica_free(rep);
        tm_repo_free(repo);
        tm_replica_conf_dispose(&conf);
        return r;
}
