/* Unit tests for the SLA arithmetic over a synthetic probe history on a
 * test clock: availability, the p95 response time, downtime and the budget
 * left against each tier's target, windows, and persistence. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/sla.h>
#include <tidemark/time.h>

#define S  TM_NSEC_PER_SEC
#define MS 1000000LL

static void test_figures(void **state)
{
        char dir[] = "/tmp/tm-sla-XXXXXX", path[64];
        struct tm_sla_report r;
        int64_t t0 = tm_time_now() - 7200 * S, now;
        tm_sla *s;
        json_t *j;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(tm_sla_open(dir, 0, &s), 0);
        /* 1000 probes 10 s apart; probes 100..104 fail (50 s down); latency
         * 10 ms, but 60 of the 1000 take 600 ms: p95 is 600 ms */
        for (int i = 0; i < 1000; i++)
                assert_int_equal(tm_sla_record(s, "api", t0 + i * 10LL * S, i < 100 || i > 104,
                                               (i % 100 < 6 ? 600 : 10) * MS),
                                 0);
        now = t0 + 9990LL * S;
        assert_int_equal(tm_sla_report(s, "api", TM_TIER_HIGH, 10000LL * S, now, &r), 0);
        assert_int_equal(r.probes, 1000);
        assert_int_equal(r.ok, 995);
        assert_true(fabs(r.availability_percent - 99.5) < 1e-9);
        assert_true(fabs(r.downtime_s - 50) < 1e-9);
        assert_true(fabs(r.budget_s - 10) < 1e-9); /* 0.1 % of 10000 s */
        assert_true(fabs(r.budget_left_s + 40) < 1e-9);
        assert_false(r.availability_met);
        assert_true(fabs(r.p95_ms - 600) < 1e-9);
        assert_false(r.latency_met);
        /* standard tier: 99.5 % is met */
        assert_int_equal(tm_sla_report(s, "api", TM_TIER_STANDARD, 10000LL * S, now, &r), 0);
        assert_true(r.availability_met);
        assert_true(fabs(r.budget_left_s) < 1e-9);
        /* the last 1000 s: 100 probes, none failed; 94 at 10 ms and 6 at
         * 600 ms: the 95th of 100 (nearest rank) is 600 ms */
        assert_int_equal(tm_sla_report(s, "api", TM_TIER_CRITICAL, 999LL * S, now, &r), 0);
        assert_int_equal(r.probes, 100);
        assert_true(r.availability_percent == 100);
        assert_true(r.availability_met && !r.latency_met);
        assert_true(fabs(r.p95_ms - 600) < 1e-9);
        /* 4 slow of 98: the 94th (nearest rank) is fast */
        assert_int_equal(tm_sla_report(s, "api", TM_TIER_CRITICAL, 979LL * S, now, &r), 0);
        assert_int_equal(r.probes, 98);
        assert_true(r.latency_met);
        j = tm_sla_report_json(&r);
        assert_true(json_real_value(json_object_get(j, "target_percent")) == 99.95);
        assert_true(json_is_true(json_object_get(j, "availability_met")));
        json_decref(j);
        assert_int_equal(tm_sla_report(s, "nobody", TM_TIER_HIGH, S, now, &r), -ENOENT);
        assert_int_equal(tm_sla_record(s, "../etc", now, 1, 0), -EINVAL);
        tm_sla_free(s);

        /* replayed from the files */
        assert_int_equal(tm_sla_open(dir, 0, &s), 0);
        assert_int_equal(tm_sla_record(s, "api", now + 10 * S, 1, MS), 0);
        assert_int_equal(tm_sla_report(s, "api", TM_TIER_HIGH, 20000LL * S, now + 10 * S, &r), 0);
        assert_int_equal(r.probes, 1001);
        tm_sla_free(s);
        snprintf(path, sizeof(path), "%s/api.log", dir);
        unlink(path);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_figures),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
