/*
 * dr: the configuration of sites, tiers, hooks and targets; LSNs; the
 * automated failover's decision; running hooks; the step log; and what the
 * flows refuse before touching any server. The flows against real servers
 * are tested in tests/integration/failover_*.sh.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/config.h>
#include <tidemark/dr.h>
#include <tidemark/tier.h>
#include <tidemark/time.h>

#include "tm_test_util.h"

static char dir[] = "/tmp/tm-test-dr-XXXXXX";

static int load(const char *text, struct tm_config **cfg, struct tm_dr_conf **dr, char *err,
                size_t n)
{
        char path[128];
        FILE *f;
        int r;

        snprintf(path, sizeof(path), "%s/c.conf", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        *dr = NULL;
        r = tm_config_load(path, cfg, err, n);
        if (r < 0)
                return r;
        r = tm_dr_conf_load(*cfg, dr, err, n);
        return r;
}

/* A port nothing listens on: bind one, close it. */
static int dead_port(void)
{
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
        socklen_t l = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM, 0);

        assert_true(fd >= 0);
        assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
        close(fd);
        return ntohs(a.sin_port);
}

static void test_conf_defaults(void **state)
{
        struct tm_config *cfg;
        struct tm_dr_conf *dr;
        char err[512];

        assert_int_equal(load("[site.alpha]\nconninfo = host=127.0.0.1 port=1\n", &cfg, &dr, err,
                              sizeof(err)),
                         0);
        assert_int_equal(dr->n_sites, 1);
        assert_string_equal(dr->service_tier, "critical");
        assert_int_equal(dr->n_tiers, 4);
        assert_int_equal(tm_dr_tier_find(dr, "critical")->rto_ns, 30 * 60 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_dr_tier_find(dr, "critical")->rpo_ns, 5 * 60 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_dr_tier_find(dr, "high")->rto_ns, 3600 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_dr_tier_find(dr, "high")->rpo_ns, 15 * 60 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_dr_tier_find(dr, "standard")->rto_ns, 4 * 3600 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_dr_tier_find(dr, "standard")->rpo_ns, 3600 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_dr_tier_find(dr, "development")->rto_ns, 8 * 3600 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_dr_tier_find(dr, "development")->rpo_ns, 4 * 3600 * TM_NSEC_PER_SEC);
        assert_false(dr->automatic);
        assert_int_equal(dr->failure_threshold, 3);
        assert_int_equal(dr->check_interval_ns, TM_NSEC_PER_SEC);
        assert_null(dr->hooks[TM_DR_HOOK_FENCE].command);
        assert_string_equal(dr->pg_bin, "/usr/lib/postgresql/15/bin");
        assert_null(tm_dr_site_find(dr, "beta"));
        assert_null(tm_dr_target_find(dr, "test-environment"));
        tm_dr_conf_free(dr);
        tm_config_free(cfg);
}

static void test_conf_full(void **state)
{
        struct tm_config *cfg;
        struct tm_dr_conf *dr;
        char err[512];

        assert_int_equal(load("[failover]\nprimary = alpha\nautomatic = on\nfailure_threshold = 2\n"
                              "check_interval = 1s\nservice_tier = gold\nstate_dir = /s\n"
                              "[site.alpha]\nconninfo = host=a\npgdata = /a\nauto_failover = yes\n"
                              "[site.beta]\nconninfo = host=b\nreplication_conninfo = host=b2\n"
                              "repository = /r\n"
                              "[service_tier.gold]\nrto = 90s\nrpo = 1s\n"
                              "[service_tier.high]\nrto = 2h\nrpo = 30m\n"
                              "[hook.fence]\ncommand = /bin/true\n"
                              "[hook.switch-traffic]\ncommand = echo hi\ntimeout = 5s\n"
                              "[target.test-environment]\npath = /t\nport = 5999\n"
                              "[monitor]\nwhatever = kept for monitord\n",
                              &cfg, &dr, err, sizeof(err)),
                         0);
        assert_string_equal(dr->primary, "alpha");
        assert_true(dr->automatic);
        assert_int_equal(dr->failure_threshold, 2);
        assert_int_equal(dr->check_interval_ns, TM_NSEC_PER_SEC);
        assert_string_equal(dr->state_dir, "/s");
        assert_int_equal(dr->n_sites, 2);
        assert_true(tm_dr_site_find(dr, "alpha")->auto_failover);
        assert_false(tm_dr_site_find(dr, "beta")->auto_failover);
        assert_string_equal(tm_dr_site_find(dr, "alpha")->pgdata, "/a");
        assert_string_equal(tm_dr_site_find(dr, "beta")->replication_conninfo, "host=b2");
        assert_string_equal(tm_dr_site_find(dr, "beta")->repository, "/r");
        assert_int_equal(dr->n_tiers, 5);
        assert_int_equal(tm_dr_tier_find(dr, "gold")->rto_ns, 90 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_dr_tier_find(dr, "high")->rpo_ns, 30 * 60 * TM_NSEC_PER_SEC);
        assert_string_equal(dr->hooks[TM_DR_HOOK_FENCE].command, "/bin/true");
        assert_int_equal(dr->hooks[TM_DR_HOOK_FENCE].timeout_ns, 60 * TM_NSEC_PER_SEC);
        assert_int_equal(dr->hooks[TM_DR_HOOK_SWITCH].timeout_ns, 5 * TM_NSEC_PER_SEC);
        assert_string_equal(tm_dr_target_find(dr, "test-environment")->path, "/t");
        assert_int_equal(tm_dr_target_find(dr, "test-environment")->port, 5999);
        assert_string_equal(tm_dr_hook_name(TM_DR_HOOK_SWITCH), "switch-traffic");
        tm_dr_conf_free(dr);
        tm_config_free(cfg);
}

static void test_conf_errors(void **state)
{
        static const struct {
                const char *text, *msg;
        } cases[] = {
                { "[site.a]\npgdata = /x\n", "c.conf:2: [site.a] needs conninfo" },
                { "[site.a]\nconninfo = x\ncolour = red\n", "c.conf:3: unknown key 'colour'" },
                { "[site.a]\nconninfo = x\npgdata = rel\n", "c.conf:3: pgdata = 'rel'" },
                { "[site.a b]\nconninfo = x\n", "a name is 1 to 63" },
                { "[failover]\nautomatic = maybe\n", "c.conf:2: automatic = 'maybe'" },
                { "[failover]\ncheck_interval = soon\n", "check_interval = 'soon'" },
                { "[failover]\nfailure_threshold = 0\n", "failure_threshold = '0'" },
                { "[failover]\nservice_tier = platinum\n", "no such tier" },
                { "[failover]\nprimary = gamma\n", "primary = 'gamma': no [site.gamma]" },
                { "[service_tier.gold]\nrto = 1h\n", "needs rto and rpo" },
                { "[hook.reboot]\ncommand = x\n", "unknown hook [hook.reboot]" },
                { "[hook.fence]\ntimeout = 5s\n", "[hook.fence] needs command" },
                { "[target.t]\nport = 5432\n", "needs path" },
                { "[target.t]\npath = /t\nport = 70000\n", "port = '70000'" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct tm_config *cfg = NULL;
                struct tm_dr_conf *dr = NULL;
                char err[512] = "";

                assert_int_equal(load(cases[i].text, &cfg, &dr, err, sizeof(err)), -EINVAL);
                if (!strstr(err, cases[i].msg))
                        fail_msg("case %zu: '%s' lacks '%s'", i, err, cases[i].msg);
                assert_null(dr);
                tm_config_free(cfg);
        }
}

static void test_lsn(void **state)
{
        uint64_t v;
        char s[24];

        assert_int_equal(tm_dr_lsn_parse("16/B374D848", &v), 0);
        assert_true(v == 0x16B374D848ULL);
        tm_dr_lsn_format(v, s, sizeof(s));
        assert_string_equal(s, "16/B374D848");
        assert_int_equal(tm_dr_lsn_parse("0/0", &v), 0);
        assert_true(v == 0);
        assert_int_equal(tm_dr_lsn_parse("", &v), -EINVAL);
        assert_int_equal(tm_dr_lsn_parse("16B374D848", &v), -EINVAL);
        assert_int_equal(tm_dr_lsn_parse("1/2x", &v), -EINVAL);
        assert_int_equal(tm_dr_lsn_parse("123456789/0", &v), -EINVAL);
        assert_int_equal(tm_dr_lsn_parse(NULL, &v), -EINVAL);
}

static void test_auto_decide(void **state)
{
        struct tm_dr_health h = { .reachable = 1, .in_recovery = 1 };

        assert_int_equal(tm_dr_auto_decide(0, 3, &h), TM_DR_AUTO_HEALTHY);
        assert_int_equal(tm_dr_auto_decide(2, 3, &h), TM_DR_AUTO_WAIT);
        assert_int_equal(tm_dr_auto_decide(3, 3, NULL), TM_DR_AUTO_NO_CANDIDATE);
        h.receiver_streaming = 1;
        /* the standby still hears the primary: our network, not a disaster */
        assert_int_equal(tm_dr_auto_decide(5, 3, &h), TM_DR_AUTO_STANDBY_SEES_PRIMARY);
        h.receiver_streaming = 0;
        assert_int_equal(tm_dr_auto_decide(3, 3, &h), TM_DR_AUTO_PROMOTE);
        h.in_recovery = 0; /* already writable: never promote a primary */
        assert_int_equal(tm_dr_auto_decide(3, 3, &h), TM_DR_AUTO_NO_CANDIDATE);
        h.in_recovery = 1;
        h.reachable = 0;
        assert_int_equal(tm_dr_auto_decide(3, 3, &h), TM_DR_AUTO_NO_CANDIDATE);
        assert_string_equal(tm_dr_auto_verdict_name(TM_DR_AUTO_PROMOTE), "promote");
        assert_string_equal(tm_dr_auto_verdict_name(TM_DR_AUTO_STANDBY_SEES_PRIMARY),
                            "standby_sees_primary");
}

static void test_exec(void **state)
{
        const char *ok[] = { "/bin/sh", "-c", "echo out; echo err >&2; echo $TM_X; exit 3", NULL };
        const char *env[] = { "TM_X=from-env", NULL };
        const char *slow[] = { "/bin/sh", "-c", "sleep 30 & sleep 30", NULL };
        const char *missing[] = { "/nonexistent/prog", NULL };
        char *out = NULL;
        int64_t t0;

        assert_int_equal(tm_dr_exec(ok, env, 10 * TM_NSEC_PER_SEC, &out), 3);
        assert_string_equal(out, "out\nerr\nfrom-env");
        free(out);
        t0 = tm_time_mono();
        assert_int_equal(tm_dr_exec(slow, NULL, TM_NSEC_PER_SEC / 5, &out), -ETIMEDOUT);
        /* the whole process group went, the background sleep too */
        assert_true(tm_time_mono() - t0 < 5 * TM_NSEC_PER_SEC);
        free(out);
        assert_int_equal(tm_dr_exec(missing, NULL, TM_NSEC_PER_SEC, NULL), 127);
}

static void test_log(void **state)
{
        struct tm_dr_log l;
        json_t *c;

        assert_int_equal(tm_dr_log_init(&l), 0);
        json_array_append_new(l.steps, json_pack("{s:s}", "step", "x"));
        c = tm_dr_log_copy(&l);
        assert_int_equal(json_array_size(c), 1);
        json_array_clear(l.steps);
        assert_int_equal(json_array_size(c), 1); /* a deep copy */
        json_decref(c);
        tm_dr_log_dispose(&l);
        tm_dr_log_dispose(&l); /* safe twice */
}

static void test_unreachable(void **state)
{
        struct tm_dr_health h;
        char ci[128], out[32], err[256];
        json_t *j;

        snprintf(ci, sizeof(ci), "host=127.0.0.1 port=%d user=postgres", dead_port());
        assert_int_equal(tm_dr_probe(ci, TM_NSEC_PER_SEC, &h), 0);
        assert_false(h.reachable);
        assert_non_null(strstr(h.error, "refused"));
        j = tm_dr_health_json(&h);
        assert_false(json_is_true(json_object_get(j, "reachable")));
        assert_string_equal(json_string_value(json_object_get(j, "role")), "unknown");
        json_decref(j);
        tm_dr_health_dispose(&h);
        assert_int_equal(tm_dr_sql(ci, TM_NSEC_PER_SEC, "SELECT 1", out, sizeof(out), err,
                                   sizeof(err)),
                         -ECONNREFUSED);
        assert_int_equal(tm_dr_probe("not a conninfo = = =", TM_NSEC_PER_SEC, &h), 0);
        assert_false(h.reachable);
        tm_dr_health_dispose(&h);
}

/* A fence is lifted only when every site answers: with one that does not,
 * nothing is touched and the error names it (the positive path needs real
 * servers: tests/integration/failover_interrupted.sh). */
static void test_recover_fence_refuses(void **state)
{
        struct tm_config *cfg = NULL;
        struct tm_dr_conf *dr = NULL;
        char text[512], err[768], site[64];

        (void)state;
        snprintf(text, sizeof(text),
                 "[site.alpha]\nconninfo = host=127.0.0.1 port=%d user=postgres "
                 "connect_timeout=1\n",
                 dead_port());
        assert_int_equal(load(text, &cfg, &dr, err, sizeof(err)), 0);
        assert_int_equal(tm_dr_recover_fence(dr, site, sizeof(site), err, sizeof(err)), -EAGAIN);
        assert_non_null(strstr(err, "site 'alpha' does not answer"));
        assert_non_null(strstr(err, "default_transaction_read_only"));
        assert_string_equal(site, "");
        tm_dr_conf_free(dr);
        tm_config_free(cfg);
        /* no sites: nothing to recover */
        assert_int_equal(load("[failover]\nstate_dir = /s\n", &cfg, &dr, err, sizeof(err)), 0);
        assert_int_equal(tm_dr_recover_fence(dr, site, sizeof(site), err, sizeof(err)), 0);
        tm_dr_conf_free(dr);
        tm_config_free(cfg);
}

static void test_flows_refuse(void **state)
{
        struct tm_config *cfg;
        struct tm_dr_conf *dr;
        struct tm_dr_log l;
        struct tm_dr_outcome o;
        struct tm_dr_failover_opts fo = { 0 };
        char text[512], err[512];
        json_t *pf;
        int p = dead_port();

        snprintf(text, sizeof(text),
                 "[failover]\nconnect_timeout = 1s\n"
                 "[site.alpha]\nconninfo = host=127.0.0.1 port=%d\n"
                 "[site.beta]\nconninfo = host=127.0.0.1 port=%d\n",
                 p, p);
        assert_int_equal(load(text, &cfg, &dr, err, sizeof(err)), 0);
        assert_int_equal(tm_dr_log_init(&l), 0);
        fo.from_site = "alpha";
        fo.target_site = "gamma";
        assert_int_equal(tm_dr_failover(dr, &fo, &l, &o, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "unknown site 'gamma'");
        fo.target_site = "alpha";
        assert_int_equal(tm_dr_failover(dr, &fo, &l, &o, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "already the primary"));
        fo.target_site = "beta";
        assert_int_equal(tm_dr_failover(dr, &fo, &l, &o, err, sizeof(err)), -ECONNREFUSED);
        assert_non_null(strstr(err, "'beta' does not answer"));
        assert_int_equal(json_array_size(l.steps), 1);
        assert_int_equal(tm_dr_rejoin(dr, "alpha", "beta", &l, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "has no pgdata"));
        assert_int_equal(tm_dr_failback(dr, "beta", "gamma", "x", 1, &l, &o, err, sizeof(err)),
                         -EINVAL);
        /* the dry run: nothing answers, no standby configured */
        assert_int_equal(tm_dr_preflight(dr, "alpha", NULL, 0, &pf), 0);
        assert_false(json_is_true(json_object_get(pf, "ready")));
        assert_true(json_number_value(json_object_get(pf, "estimated_rto_seconds")) > 0);
        assert_int_equal(json_number_value(json_object_get(pf, "rto_target_seconds")), 1800);
        json_decref(pf);
        tm_dr_log_dispose(&l);
        tm_dr_conf_free(dr);
        tm_config_free(cfg);
}

/* tm_dr_pitr restores through the library: a plain component from its
 * snapshot at or before the instant, a database component without a base
 * backup and a component without a snapshot refused with the reason */
static void test_pitr(void **state)
{
        struct tmt_fix *fx = tmt_fix_new();
        struct tm_config *cfg;
        struct tm_dr_conf *dr;
        struct tm_dr_pitr_opts o = { 0 };
        struct tm_snapshot s1 = { 0 };
        struct tm_dr_log l;
        char text[256], err[512], dest[4200], path[4300];
        const char *comps[] = { "plugins", "bad", "database" };
        json_t *ret = NULL, *c0;
        uint64_t seed = 7;
        tm_buf a = TM_BUF_INIT(1 << 20), b = TM_BUF_INIT(1 << 20);

        snprintf(text, sizeof(text), "[site.a]\nconninfo = x\n[failover]\nstate_dir = %s\n", dir);
        assert_int_equal(load(text, &cfg, &dr, err, sizeof(err)), 0);
        snprintf(path, sizeof(path), "%s/a", fx->src);
        tmt_write_rand(path, &seed, 5000);
        assert_int_equal(tmt_backup(fx->r, fx->src, "plugins", "full", &s1), 0);
        snprintf(dest, sizeof(dest), "%s/dest", fx->dir);
        o.repo = fx->r;
        o.restore_command = "false";
        o.target_ns = s1.time + 1;
        o.components = comps;
        o.n_components = 1;
        o.dest = dest;
        o.database_component = "database";
        assert_int_equal(tm_dr_log_init(&l), 0);
        assert_int_equal(tm_dr_pitr(dr, &o, &l, &ret, err, sizeof(err)), 0);
        c0 = json_array_get(json_object_get(ret, "components"), 0);
        assert_string_equal(json_string_value(json_object_get(c0, "status")), "restored");
        assert_non_null(json_string_value(json_object_get(c0, "snapshot")));
        assert_true(json_is_null(json_object_get(ret, "database")));
        json_decref(ret);
        /* the bytes came back */
        tmt_read(path, &a);
        snprintf(path, sizeof(path), "%s/plugins/a", dest);
        tmt_read(path, &b);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        /* again: the earlier files are replaced, not merged */
        assert_int_equal(tm_dr_pitr(dr, &o, &l, &ret, err, sizeof(err)), 0);
        json_decref(ret);
        /* before the snapshot: nothing to restore */
        o.target_ns = s1.time - TM_NSEC_PER_SEC;
        assert_int_equal(tm_dr_pitr(dr, &o, &l, &ret, err, sizeof(err)), -EPROTO);
        assert_non_null(strstr(err, "component 'plugins' has no snapshot at or before"));
        assert_null(ret);
        o.target_ns = 0;
        o.components = comps + 1;
        assert_int_equal(tm_dr_pitr(dr, &o, &l, &ret, err, sizeof(err)), -EPROTO);
        assert_string_equal(err, "component 'bad' has no snapshot at or before now");
        o.components = comps + 2;
        assert_int_equal(tm_dr_pitr(dr, &o, &l, &ret, err, sizeof(err)), -EPROTO);
        assert_non_null(strstr(err, "database"));
        assert_null(ret);
        /* no repository: refused before anything */
        o.repo = NULL;
        assert_int_equal(tm_dr_pitr(dr, &o, &l, &ret, err, sizeof(err)), -EINVAL);
        /* each attempt logged its restore step */
        assert_int_equal(json_array_size(l.steps), 5);
        assert_string_equal(json_string_value(json_object_get(json_array_get(l.steps, 4), "state")),
                            "failed");
        tm_dr_log_dispose(&l);
        tm_buf_dispose(&a);
        tm_buf_dispose(&b);
        tm_snapshot_dispose(&s1);
        tm_dr_conf_free(dr);
        tm_config_free(cfg);
        tmt_fix_free(fx);
}

/* A drill with nothing to restore fails cleanly: a report that names the
 * failed step and the reason, and no scratch instance left behind. */
static void test_drill_no_backup(void **state)
{
        struct tmt_fix *fx = tmt_fix_new();
        struct tm_config *cfg;
        struct tm_dr_conf *dr;
        struct tm_dr_drill_opts o = { 0 };
        pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        struct tm_dr_log l;
        char text[256], err[512], scratch[4200], path[4300];
        json_t *rep = NULL;

        snprintf(text, sizeof(text), "[site.a]\nconninfo = x\n[failover]\nstate_dir = %s\n", dir);
        assert_int_equal(load(text, &cfg, &dr, err, sizeof(err)), 0);
        snprintf(scratch, sizeof(scratch), "%s/scratch", fx->dir);
        o.id = 42;
        o.repo = fx->r;
        o.repo_lock = &lock;
        o.restore_command = "false";
        o.scratch = scratch;
        assert_int_equal(tm_dr_log_init(&l), 0);
        assert_int_equal(tm_dr_drill(dr, &o, &l, &rep, err, sizeof(err)), -EPROTO);
        assert_non_null(rep);
        assert_non_null(strstr(err, "database"));
        assert_false(json_is_true(json_object_get(rep, "succeeded")));
        assert_string_equal(json_string_value(json_object_get(rep, "failed_step")),
                            "restore latest backup");
        assert_string_equal(json_string_value(json_object_get(rep, "error")), err);
        assert_int_equal(json_integer_value(json_object_get(rep, "id")), 42);
        assert_true(json_is_true(json_object_get(json_object_get(rep, "scratch"), "stopped")));
        assert_true(json_is_true(json_object_get(json_object_get(rep, "scratch"), "removed")));
        assert_null(json_object_get(rep, "rto_seconds"));
        assert_true(json_array_size(json_object_get(rep, "steps")) >= 2);
        snprintf(path, sizeof(path), "%s/database", scratch);
        assert_int_equal(access(path, F_OK), -1);
        /* the lock was given back */
        assert_int_equal(pthread_mutex_trylock(&lock), 0);
        pthread_mutex_unlock(&lock);
        json_decref(rep);
        tm_dr_log_dispose(&l);
        tm_dr_conf_free(dr);
        tm_config_free(cfg);
        tmt_fix_free(fx);
}

static void test_reports(void **state)
{
        char *d = tmt_mkdtemp(), rd[4200], path[4300];
        json_t *a = NULL, *r = NULL, *one;
        FILE *fp;

        snprintf(rd, sizeof(rd), "%s/drills", d);
        /* no directory yet: no reports */
        assert_int_equal(tm_dr_reports_list(rd, &a), 0);
        assert_int_equal(json_array_size(a), 0);
        json_decref(a);
        assert_int_equal(tm_dr_report_load(rd, 1, &r), -ENOENT);
        /* an id is required */
        one = json_pack("{s:s}", "kind", "drill");
        assert_int_equal(tm_dr_report_save(rd, one), -EINVAL);
        json_decref(one);
        for (int i = 1; i <= 12; i++) {
                one = json_pack("{s:i, s:b, s:[{s:s}]}", "id", i, "succeeded", i % 2, "steps",
                                "step", "x");
                assert_int_equal(tm_dr_report_save(rd, one), 0);
                json_decref(one);
        }
        /* junk next to them is skipped */
        snprintf(path, sizeof(path), "%s/drill-99.json", rd);
        fp = fopen(path, "w");
        assert_non_null(fp);
        fputs("not json", fp);
        fclose(fp);
        snprintf(path, sizeof(path), "%s/notes.txt", rd);
        fp = fopen(path, "w");
        assert_non_null(fp);
        fclose(fp);
        assert_int_equal(tm_dr_reports_list(rd, &a), 0);
        assert_int_equal(json_array_size(a), 12);
        /* newest first (12 after 9: by number, not by name), without steps */
        assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 0), "id")), 12);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 11), "id")), 1);
        assert_null(json_object_get(json_array_get(a, 0), "steps"));
        json_decref(a);
        assert_int_equal(tm_dr_report_load(rd, 7, &r), 0);
        assert_true(json_is_true(json_object_get(r, "succeeded")));
        assert_int_equal(json_array_size(json_object_get(r, "steps")), 1);
        json_decref(r);
        assert_int_equal(tm_dr_report_load(rd, 99, &r), -EBADMSG);
        /* saving again replaces */
        one = json_pack("{s:i, s:b}", "id", 7, "succeeded", 0);
        assert_int_equal(tm_dr_report_save(rd, one), 0);
        json_decref(one);
        assert_int_equal(tm_dr_report_load(rd, 7, &r), 0);
        assert_false(json_is_true(json_object_get(r, "succeeded")));
        json_decref(r);
        tmt_rm_rf(d);
        free(d);
}

static double factor(json_t *pts, size_t i, const char *name)
{
        json_t *p = json_array_get(pts, i);

        return name ? json_number_value(json_object_get(json_object_get(p, "factors"), name))
                    : json_number_value(json_object_get(p, "confidence"));
}

static void test_timeline(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_snapshot s1 = { 0 }, s2 = { 0 };
        struct tm_dr_timeline_opts o = { .database_component = "database",
                                         .end = INT64_MAX,
                                         .rto_ns = 1800 * TM_NSEC_PER_SEC };
        char path[4200], rd[4300], hex[TM_ID_HEX_LEN + 1];
        json_t *t, *pts, *rep;
        uint64_t seed = 1;
        unsigned level = 99;

        snprintf(path, sizeof(path), "%s/a", f->src);
        tmt_write_rand(path, &seed, 1000);
        assert_int_equal(tmt_backup(f->r, f->src, "plugins", "full", &s1), 0);
        assert_int_equal(tmt_backup(f->r, f->src, "config", "full", &s2), 0);
        /* an untiered repository: everything is hot */
        assert_int_equal(tm_dr_snapshot_tier(f->r, &s1, &level), 0);
        assert_int_equal(level, 0);
        assert_int_equal(tm_dr_timeline(f->r, &o, &t), 0);
        pts = json_object_get(json_object_get(json_object_get(t, "components"), "plugins"),
                              "points");
        assert_int_equal(json_array_size(pts), 1);
        /* when plugins was taken, config had no point yet: half complete;
         * never drilled: validation 0.5 */
        assert_true(factor(pts, 0, "completeness") == 0.5);
        assert_true(factor(pts, 0, "validation") == 0.5);
        assert_true(factor(pts, 0, "tier") == 1.0);
        assert_true(factor(pts, 0, NULL) == 0.4 + 0.1 + 0.2 + 0.1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(pts, 0), "tier")),
                            "hot");
        assert_string_equal(
                json_string_value(json_object_get(json_array_get(pts, 0), "validated_by")), "none");
        pts = json_object_get(json_object_get(json_object_get(t, "components"), "config"),
                              "points");
        assert_true(factor(pts, 0, NULL) == 0.4 + 0.1 + 0.2 + 0.2);
        /* no base backup of the database: no window, no gap */
        assert_null(json_object_get(json_object_get(t, "components"), "database"));
        json_decref(t);

        /* a drill that restored config makes it validated */
        snprintf(rd, sizeof(rd), "%s/drills", f->dir);
        tm_id_hex(&s2.id, hex);
        rep = json_pack("{s:i, s:b, s:s}", "id", 3, "succeeded", 1, "snapshot", hex);
        assert_int_equal(tm_dr_report_save(rd, rep), 0);
        json_decref(rep);
        o.reports_dir = rd;
        assert_int_equal(tm_dr_timeline(f->r, &o, &t), 0);
        pts = json_object_get(json_object_get(json_object_get(t, "components"), "config"),
                              "points");
        assert_true(factor(pts, 0, "validation") == 1.0);
        assert_true(factor(pts, 0, NULL) == 1.0);
        assert_string_equal(
                json_string_value(json_object_get(json_array_get(pts, 0), "validated_by")),
                "drill 3");
        json_decref(t);
        /* a drill whose scratch server failed on it counts against it */
        rep = json_pack("{s:i, s:b, s:s, s:s}", "id", 4, "succeeded", 0, "snapshot", hex,
                        "failed_step", "start scratch server");
        assert_int_equal(tm_dr_report_save(rd, rep), 0);
        json_decref(rep);
        assert_int_equal(tm_dr_timeline(f->r, &o, &t), 0);
        pts = json_object_get(json_object_get(json_object_get(t, "components"), "config"),
                              "points");
        assert_true(factor(pts, 0, "validation") == 0.0);
        json_decref(t);

        /* a range before everything, and a chosen component */
        {
                const char *only[] = { "plugins" };

                o.components = only;
                o.n_components = 1;
                o.end = s1.time - 1;
                assert_int_equal(tm_dr_timeline(f->r, &o, &t), 0);
                assert_int_equal(json_object_size(json_object_get(t, "components")), 1);
                assert_int_equal(json_array_size(json_object_get(
                                         json_object_get(json_object_get(t, "components"),
                                                         "plugins"),
                                         "points")),
                                 0);
                json_decref(t);
        }
        tm_snapshot_dispose(&s1);
        tm_snapshot_dispose(&s2);
        tmt_fix_free(f);
}

/* The thaw delays weighed against an RTO */
static void test_tier_factor(void **state)
{
        int64_t h = 3600 * TM_NSEC_PER_SEC;

        assert_int_equal(tm_dr_thaw_ns(0, NULL), 0);
        assert_int_equal(tm_dr_thaw_ns(1, "Bulk"), 0);
        assert_int_equal(tm_dr_thaw_ns(2, NULL), 5 * h);
        assert_int_equal(tm_dr_thaw_ns(2, "Standard"), 5 * h);
        assert_int_equal(tm_dr_thaw_ns(2, "Expedited"), 5 * 60 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_dr_thaw_ns(2, "Bulk"), 12 * h);
        assert_int_equal(tm_dr_thaw_ns(3, NULL), 12 * h);
        assert_int_equal(tm_dr_thaw_ns(3, "Bulk"), 48 * h);
        /* fits: 1; too slow: RTO / thaw */
        assert_true(tm_dr_tier_factor(0, h / 2) == 1.0);
        assert_true(tm_dr_tier_factor(5 * 60 * TM_NSEC_PER_SEC, h / 2) == 1.0);
        assert_true(tm_dr_tier_factor(5 * h, h / 2) == 0.1);
        assert_true(tm_dr_tier_factor(12 * h, 4 * h) == 4.0 / 12.0);
        assert_true(tm_dr_tier_factor(12 * h, 0) == 1.0);
}

/* Where the packs really are: a repository with local warm, cold and
 * archive tiers, its packs aged into cold by a lifecycle pass; the
 * timeline's tier factor then weighs the cold tier's thaw (Standard: 5 h)
 * against the RTO. */
static void test_timeline_cold(void **state)
{
        char *d = tmt_mkdtemp(), repo[4200], cat[4200], src[4200], conf[4200], path[4300];
        struct tm_repo_opts ro;
        struct tm_tier_opts to = { 0 };
        struct tm_tier_stats st = { 0 };
        struct tm_config *cfg = NULL;
        struct tm_snapshot s1 = { 0 };
        struct tm_dr_timeline_opts o = { .end = INT64_MAX, .rto_ns = 1800 * TM_NSEC_PER_SEC };
        char err[512];
        tm_repo *r = NULL;
        uint64_t seed = 3;
        unsigned level = 99;
        json_t *t, *pts;
        FILE *fp;

        snprintf(repo, sizeof(repo), "%s/repo", d);
        snprintf(cat, sizeof(cat), "%s/catalog.db", d);
        snprintf(src, sizeof(src), "%s/src", d);
        snprintf(conf, sizeof(conf), "%s/tiers.conf", d);
        tmt_mkdir(src);
        fp = fopen(conf, "w");
        assert_non_null(fp);
        fprintf(fp,
                "[tier.warm]\nlocation = %s/warm\n[tier.cold]\nlocation = %s/cold\n"
                "[tier.archive]\nlocation = %s/archive\n",
                d, d, d);
        fclose(fp);
        assert_int_equal(tm_config_load(conf, &cfg, err, sizeof(err)), 0);
        ro = tmt_repo_opts(repo, cat, TMT_PASS);
        ro.config = cfg;
        assert_int_equal(tm_repo_init(&ro, &r), 0);
        snprintf(path, sizeof(path), "%s/f", src);
        tmt_write_rand(path, &seed, 200000);
        assert_int_equal(tmt_backup(r, src, "plugins", "full", &s1), 0);
        assert_int_equal(tm_dr_snapshot_tier(r, &s1, &level), 0);
        assert_int_equal(level, TM_TIER_HOT);
        /* ten days later its data belongs in cold (default ages 24 h, 7 d, 90 d) */
        to.now_ns = s1.time + 10 * 86400 * TM_NSEC_PER_SEC;
        assert_int_equal(tm_tier_run(r, &to, &st), 0);
        assert_true(st.packs[TM_TIER_COLD] > 0);
        assert_int_equal(tm_dr_snapshot_tier(r, &s1, &level), 0);
        assert_int_equal(level, TM_TIER_COLD);
        assert_int_equal(tm_dr_timeline(r, &o, &t), 0);
        pts = json_object_get(json_object_get(json_object_get(t, "components"), "plugins"),
                              "points");
        assert_string_equal(json_string_value(json_object_get(json_array_get(pts, 0), "tier")),
                            "cold");
        assert_true(json_number_value(json_object_get(json_array_get(pts, 0), "thaw_seconds")) ==
                    5 * 3600);
        /* 30 min against a 5 h thaw */
        assert_true(factor(pts, 0, "tier") == 0.1);
        assert_true(factor(pts, 0, NULL) < 0.4 + 0.1 + 0.2 * 0.1 + 0.2 + 1e-9);
        json_decref(t);
        /* a tier whose RTO fits the thaw keeps the full factor */
        o.rto_ns = 8 * 3600 * TM_NSEC_PER_SEC;
        assert_int_equal(tm_dr_timeline(r, &o, &t), 0);
        pts = json_object_get(json_object_get(json_object_get(t, "components"), "plugins"),
                              "points");
        assert_true(factor(pts, 0, "tier") == 1.0);
        json_decref(t);
        tm_snapshot_dispose(&s1);
        tm_repo_free(r);
        tm_config_free(cfg);
        tmt_rm_rf(d);
        free(d);
}

static int setup(void **state)
{
        return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
        char path[128];

        snprintf(path, sizeof(path), "%s/c.conf", dir);
        unlink(path);
        rmdir(dir);
        return 0;
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_conf_defaults), cmocka_unit_test(test_conf_full),
                cmocka_unit_test(test_conf_errors),   cmocka_unit_test(test_lsn),
                cmocka_unit_test(test_auto_decide),   cmocka_unit_test(test_exec),
                cmocka_unit_test(test_log),           cmocka_unit_test(test_unreachable),
                cmocka_unit_test(test_flows_refuse),  cmocka_unit_test(test_pitr),
                cmocka_unit_test(test_timeline),      cmocka_unit_test(test_drill_no_backup),
                cmocka_unit_test(test_reports),       cmocka_unit_test(test_tier_factor),
                cmocka_unit_test(test_timeline_cold), cmocka_unit_test(test_recover_fence_refuses),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
