/* Unit tests for the health checks: config parsing and its errors, the
 * tier RPOs, comparisons, metric and freshness evaluation on fixed
 * expositions at a fixed instant, and real http/metric checks and scrapes
 * against a loopback server. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <tidemark/probe.h>
#include <tidemark/time.h>

#include "mon_test_util.h"

static void test_config(void **state)
{
        static const struct {
                const char *text, *needle;
        } bad[] = {
                { "[service.a]\nurl = ftp://x\n", ":2: [service.a] needs url" },
                { "[service.a]\nurl = http://x\ncolour = red\n", ":3: unknown key 'colour'" },
                { "[service.a]\nurl = http://x\ntier = gold\n", ":3: tier must be" },
                { "[check.c]\ninterval = 1s\n", "needs type" },
                { "[check.c]\ntype = ping\n", ":2: type must be http" },
                { "[check.c]\ntype = metric\nservice = nope\n", ":3: no [service.nope]" },
                { "[service.a]\nurl = http://x\n[check.c]\ntype = metric\nservice = a\n",
                  "needs metric" },
                { "[service.a]\nurl = http://x\n[check.c]\ntype = metric\nservice = a\nmetric = "
                  "m\nthreshold = lots\n",
                  ":7: threshold must be a number" },
                { "[service.a]\nurl = http://x\n[check.c]\ntype = http\nservice = a\ninterval = "
                  "often\n",
                  ":6: interval must be a duration" },
                { "[service.a]\nurl = http://x\n[check.c]\ntype = metric\nservice = a\nmetric = "
                  "m\nthreshold = 1\nop = ~\n",
                  ":8: op must be" },
        };
        struct tm_config *cfg;
        struct tm_probe_config *pc;
        char err[512];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                assert_int_equal(mt_config(bad[i].text, &cfg, err, sizeof(err)), 0);
                assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), -EINVAL);
                if (!strstr(err, bad[i].needle))
                        fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].needle);
                tm_config_free(cfg);
        }
        assert_int_equal(mt_config("[service.b]\nurl = http://h:1/\ntier = critical\n"
                                   "[check.f]\ntype = freshness\nservice = b\ncomponents = x, "
                                   "y\nmax_age = 2m\n[check.m]\ntype = metric\nservice = b\n"
                                   "metric = lag\nlabels = site=dr\nop = >=\nthreshold = 5\n"
                                   "aggregate = sum\nabsent = fail\n",
                                   &cfg, err, sizeof(err)),
                         0);
        assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), 0);
        assert_int_equal(pc->n_services, 1);
        assert_string_equal(pc->services[0].url, "http://h:1");
        assert_string_equal(pc->services[0].health_path, "/health");
        assert_int_equal(pc->services[0].tier, TM_TIER_CRITICAL);
        assert_ptr_equal(tm_probe_service_find(pc, "b"), &pc->services[0]);
        assert_null(tm_probe_service_find(pc, "c"));
        assert_ptr_equal(tm_probe_check_find(pc, "m"), &pc->checks[1]);
        assert_null(tm_probe_check_find(pc, "z"));
        assert_string_equal(pc->checks[0].components[1], "y");
        assert_true(pc->checks[0].max_age_ns == 120 * TM_NSEC_PER_SEC);
        assert_int_equal(pc->checks[1].op, TM_PROBE_GE);
        assert_int_equal(pc->checks[1].agg, TM_PROMTEXT_SUM);
        assert_true(pc->checks[1].absent_fails);
        assert_true(pc->checks[1].interval_ns == 30 * TM_NSEC_PER_SEC);
        tm_probe_config_free(pc);
        tm_config_free(cfg);
}

static void test_helpers(void **state)
{
        enum tm_probe_op op;
        char **v;

        assert_int_equal(tm_probe_op_parse("!=", &op), 0);
        assert_string_equal(tm_probe_op_name(op), "!=");
        assert_int_equal(tm_probe_op_parse("=", &op), -EINVAL);
        assert_true(tm_probe_compare(2, TM_PROBE_GT, 1));
        assert_false(tm_probe_compare(1, TM_PROBE_GT, 1));
        assert_true(tm_probe_compare(1, TM_PROBE_LE, 1));
        assert_true(tm_probe_compare(0, TM_PROBE_LT, 1));
        assert_true(tm_probe_compare(1, TM_PROBE_EQ, 1));
        assert_true(tm_probe_compare(1, TM_PROBE_GE, 1));
        assert_string_equal(tm_probe_status_name(TM_PROBE_FAILING), "failing");
        assert_string_equal(tm_probe_type_name(TM_PROBE_FRESHNESS), "freshness");
        assert_int_equal(tm_probe_strv_split(" a, b  c,", &v), 0);
        assert_string_equal(v[0], "a");
        assert_string_equal(v[2], "c");
        assert_null(v[3]);
        tm_probe_strv_free(v);
}

static void test_eval(void **state)
{
        const char *text =
                "backup_last_success_timestamp_seconds{component=\"db\",tier=\"critical\"} "
                "1000\nbackup_last_success_timestamp_seconds{component=\"web\"} 1500\n"
                "lag{site=\"dr\"} 7\nlag{site=\"x\"} 1\n";
        struct tm_config *cfg;
        struct tm_probe_config *pc;
        struct tm_probe_result res;
        tm_promtext *pt;
        char err[256];

        assert_int_equal(mt_config("[component.db]\ntype = files\npaths = /tmp\ntier = critical\n"
                                   "[component.web]\ntype = files\npaths = /tmp\ntier = high\n"
                                   "[component.new]\ntype = files\npaths = /tmp\ntier = high\n"
                                   "[service.b]\nurl = http://h:1\n[check.f]\ntype = freshness\n"
                                   "service = b\ncomponents = db web\n[check.all]\ntype = "
                                   "freshness\nservice = b\n[check.m]\ntype = metric\nservice = "
                                   "b\nmetric = lag\nlabels = site=dr\nop = >\nthreshold = 5\n"
                                   "[check.gone]\ntype = metric\nservice = b\nmetric = nope\n"
                                   "threshold = 1\n",
                                   &cfg, err, sizeof(err)),
                         0);
        assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), 0);
        assert_int_equal(tm_promtext_parse(text, strlen(text), &pt, NULL, 0), 0);
        /* at 1200 s: db is 200 s old (RPO 300 s), web -300 s: fresh */
        tm_probe_eval_freshness(cfg, tm_probe_check_find(pc, "f"), pt, 1200 * TM_NSEC_PER_SEC,
                                &res);
        assert_int_equal(res.status, TM_PROBE_OK);
        /* at 1400 s db is 400 s old: stale */
        tm_probe_eval_freshness(cfg, tm_probe_check_find(pc, "f"), pt, 1400 * TM_NSEC_PER_SEC,
                                &res);
        assert_int_equal(res.status, TM_PROBE_FAILING);
        assert_non_null(strstr(res.message, "db (last 400 s ago, RPO 300 s)"));
        assert_true(fabs(res.value - 400) < 1e-6);
        /* and how each component fared, for one alert per component */
        assert_int_equal(res.n_items, 2);
        assert_string_equal(res.items[0].label, "component");
        assert_string_equal(res.items[0].value, "db");
        assert_true(res.items[0].failing && fabs(res.items[0].metric - 400) < 1e-6);
        assert_string_equal(res.items[0].message, "db: last backup 400 s ago, RPO 300 s");
        assert_string_equal(res.items[1].value, "web");
        assert_false(res.items[1].failing);
        /* every configured component: "new" has never been backed up */
        tm_probe_eval_freshness(cfg, tm_probe_check_find(pc, "all"), pt, 1200 * TM_NSEC_PER_SEC,
                                &res);
        assert_int_equal(res.status, TM_PROBE_FAILING);
        assert_non_null(strstr(res.message, "1 of 3 components stale: new (no successful backup)"));
        assert_int_equal(res.n_items, 3);
        assert_true(res.items[2].failing && isinf(res.items[2].metric));
        assert_string_equal(res.items[2].message, "new: no successful backup");
        tm_probe_eval_metric(tm_probe_check_find(pc, "m"), pt, &res);
        assert_int_equal(res.status, TM_PROBE_FAILING);
        assert_true(res.value == 7);
        tm_probe_eval_metric(tm_probe_check_find(pc, "gone"), pt, &res);
        assert_int_equal(res.status, TM_PROBE_OK);
        tm_promtext_free(pt);
        tm_probe_config_free(pc);
        tm_config_free(cfg);
}

static void test_run(void **state)
{
        tm_http_server *s;
        struct tm_config *cfg;
        struct tm_probe_config *pc;
        struct tm_probe_result res;
        char base[64], text[1024], err[256];
        tm_promtext *pt;

        assert_int_equal(mt_server(&s, base, sizeof(base)), 0);
        snprintf(text, sizeof(text),
                 "[service.up]\nurl = %s\n[service.down]\nurl = http://127.0.0.1:%d\n"
                 "[check.h]\ntype = http\nservice = up\n[check.d]\ntype = http\nservice = "
                 "down\ntimeout = 1s\n[check.x]\ntype = metric\nservice = up\nmetric = x\nop = "
                 ">\nthreshold = 0\n[check.u]\ntype = http\nurl = %s/nowhere\n",
                 base, mt_dead_port(), base);
        assert_int_equal(mt_config(text, &cfg, err, sizeof(err)), 0);
        assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), 0);
        assert_int_equal(tm_probe_run(cfg, tm_probe_check_find(pc, "h"), &res), 0);
        assert_int_equal(res.status, TM_PROBE_OK);
        assert_true(res.reached && res.latency_ns > 0 && res.at > 0);
        assert_int_equal(tm_probe_run(cfg, tm_probe_check_find(pc, "d"), &res), 0);
        assert_int_equal(res.status, TM_PROBE_FAILING);
        assert_false(res.reached);
        assert_int_equal(tm_probe_run(cfg, tm_probe_check_find(pc, "x"), &res), 0);
        assert_int_equal(res.status, TM_PROBE_FAILING);
        assert_non_null(strstr(res.message, "x = 1 (> 0)"));
        assert_int_equal(tm_probe_run(cfg, tm_probe_check_find(pc, "u"), &res), 0);
        assert_int_equal(res.status, TM_PROBE_FAILING);
        assert_non_null(strstr(res.message, "HTTP 404"));
        assert_int_equal(
                tm_probe_scrape(tm_probe_service_find(pc, "up"), 2000, &pt, err, sizeof(err)), 0);
        tm_promtext_free(pt);
        mt_metrics_text = "<html>\n";
        assert_int_equal(
                tm_probe_scrape(tm_probe_service_find(pc, "up"), 2000, &pt, err, sizeof(err)),
                -EBADMSG);
        assert_non_null(strstr(err, "not the Prometheus text format"));
        assert_true(tm_probe_scrape(tm_probe_service_find(pc, "down"), 2000, &pt, err,
                                    sizeof(err)) < 0);
        tm_probe_config_free(pc);
        tm_config_free(cfg);
        tm_http_free(s);
}

static void test_jobs(void **state)
{
        json_t *jobs =
                json_loads("[{\"kind\":\"backup\",\"component\":\"db\",\"state\":\"succeeded\","
                           "\"finished\":\"2025-01-07T09:00:00Z\"},"
                           "{\"kind\":\"validate\",\"component\":\"db\",\"state\":\"failed\","
                           "\"error\":\"blob damaged\",\"finished\":\"2025-01-07T09:30:00Z\"},"
                           "{\"kind\":\"backup\",\"component\":\"web\",\"state\":\"interrupted\","
                           "\"retried_by\":9,\"finished\":\"2025-01-07T09:40:00Z\"},"
                           "{\"kind\":\"backup\",\"component\":\"old\",\"state\":\"failed\","
                           "\"finished\":\"2025-01-01T09:00:00Z\"},"
                           "{\"kind\":\"backup\",\"component\":\"web\",\"state\":\"running\","
                           "\"created\":\"2025-01-07T09:50:00Z\"}]",
                           0, NULL);
        struct tm_config *cfg;
        struct tm_probe_config *pc;
        struct tm_probe_result res;
        char err[256];
        int64_t now;

        assert_int_equal(tm_time_parse("2025-01-07T10:00:00Z", &now, NULL), 0);
        assert_int_equal(mt_config("[service.b]\nurl = http://h:1\n[check.all]\ntype = jobs\n"
                                   "service = b\n[check.backups]\ntype = jobs\nservice = b\n"
                                   "kinds = backup\nwindow = 7d\n",
                                   &cfg, err, sizeof(err)),
                         0);
        assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), 0);
        tm_probe_eval_jobs(tm_probe_check_find(pc, "all"), jobs, now, &res);
        assert_int_equal(res.status, TM_PROBE_FAILING);
        assert_true(res.value == 1);
        assert_non_null(strstr(res.message, "1 of 4 recent jobs failed: validate db failed: "
                                            "blob damaged"));
        /* backups only, over a week: the old failure counts, the retried one not */
        tm_probe_eval_jobs(tm_probe_check_find(pc, "backups"), jobs, now, &res);
        assert_int_equal(res.status, TM_PROBE_FAILING);
        assert_non_null(strstr(res.message, "backup old failed"));
        assert_null(strstr(res.message, "web"));
        tm_probe_eval_jobs(tm_probe_check_find(pc, "backups"), jobs,
                           now + 8 * 86400 * TM_NSEC_PER_SEC, &res);
        assert_int_equal(res.status, TM_PROBE_OK);
        json_decref(jobs);
        tm_probe_config_free(pc);
        tm_config_free(cfg);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_config), cmocka_unit_test(test_helpers),
                cmocka_unit_test(test_eval),   cmocka_unit_test(test_run),
                cmocka_unit_test(test_jobs),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
