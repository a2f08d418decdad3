/* Unit tests for tm_forget_plan(): restic's retention rules. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidemark/ops.h>
#include <tidemark/time.h>

#define MAX_SNAPS 512

struct plan {
        struct tm_snapshot snaps[MAX_SNAPS];
        int keep[MAX_SNAPS];
        const char *reasons[MAX_SNAPS];
        size_t n;
};

static int64_t t(const char *s)
{
        int64_t ns = 0;

        assert_int_equal(tm_time_parse(s, &ns, NULL), 0);
        return ns;
}

static void add(struct plan *p, int64_t time)
{
        assert_true(p->n < MAX_SNAPS);
        memset(&p->snaps[p->n], 0, sizeof(p->snaps[p->n]));
        p->snaps[p->n].time = time;
        /* distinct ids; unrelated to time order on purpose */
        p->snaps[p->n].id.b[0] = (uint8_t)(p->n * 37);
        p->snaps[p->n].id.b[1] = (uint8_t)(p->n >> 8);
        p->n++;
}

static void add_s(struct plan *p, const char *s)
{
        add(p, t(s));
}

static int run(struct plan *p, struct tm_forget_policy pol)
{
        for (size_t i = 0; i < MAX_SNAPS; i++) {
                p->keep[i] = -1;
                p->reasons[i] = "unset";
        }
        return tm_forget_plan(p->snaps, p->n, &pol, p->keep, p->reasons);
}

static size_t n_kept(const struct plan *p)
{
        size_t k = 0;

        for (size_t i = 0; i < p->n; i++) {
                assert_true(p->keep[i] == 0 || p->keep[i] == 1);
                k += (size_t)p->keep[i];
        }
        return k;
}

/* Assert the kept set equals exactly the given indices. */
static void expect_kept(const struct plan *p, size_t n, ...)
{
        int want[MAX_SNAPS] = { 0 };
        va_list ap;

        va_start(ap, n);
        for (size_t i = 0; i < n; i++)
                want[va_arg(ap, int)] = 1;
        va_end(ap);
        for (size_t i = 0; i < p->n; i++) {
                if (p->keep[i] != want[i])
                        fail_msg("snapshot %zu: keep=%d, expected %d", i, p->keep[i], want[i]);
                if (p->keep[i])
                        assert_non_null(p->reasons[i]);
                else
                        assert_null(p->reasons[i]);
        }
}

static void test_keep_last(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));

        /* given out of order: 0 is the newest, 3 the oldest */
        add_s(p, "2025-01-10T00:00:00Z");
        add_s(p, "2025-01-07T00:00:00Z");
        add_s(p, "2025-01-09T00:00:00Z");
        add_s(p, "2025-01-01T00:00:00Z");
        assert_int_equal(run(p, (struct tm_forget_policy){ .last = 2 }), 0);
        expect_kept(p, 2, 0, 2);
        assert_string_equal(p->reasons[0], "last");
        assert_string_equal(p->reasons[2], "last");

        assert_int_equal(run(p, (struct tm_forget_policy){ .last = 1 }), 0);
        expect_kept(p, 1, 0);

        /* more than there are: keep all */
        assert_int_equal(run(p, (struct tm_forget_policy){ .last = 10 }), 0);
        assert_int_equal(n_kept(p), 4);
        free(p);
}

static void test_keep_last_same_time(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));

        /* keep-last counts snapshots, not instants */
        add_s(p, "2025-01-10T00:00:00Z");
        add_s(p, "2025-01-10T00:00:00Z");
        add_s(p, "2025-01-10T00:00:00Z");
        assert_int_equal(run(p, (struct tm_forget_policy){ .last = 2 }), 0);
        assert_int_equal(n_kept(p), 2);
        free(p);
}

static void test_daily_with_gaps(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));

        add_s(p, "2025-03-10T08:00:00Z"); /* 0 */
        add_s(p, "2025-03-10T20:00:00Z"); /* 1: newest of the 10th */
        add_s(p, "2025-03-07T12:00:00Z"); /* 2: gap of two days before it */
        add_s(p, "2025-03-07T11:00:00Z"); /* 3 */
        add_s(p, "2025-03-03T23:59:59Z"); /* 4 */
        add_s(p, "2025-03-01T00:00:00Z"); /* 5 */
        assert_int_equal(run(p, (struct tm_forget_policy){ .daily = 3 }), 0);
        /* the 3 most recent days THAT HAVE snapshots: 10th, 7th, 3rd */
        expect_kept(p, 3, 1, 2, 4);
        assert_string_equal(p->reasons[1], "daily");

        assert_int_equal(run(p, (struct tm_forget_policy){ .daily = 100 }), 0);
        expect_kept(p, 4, 1, 2, 4, 5);
        free(p);
}

static void test_daily_utc_boundary(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));

        /* buckets are UTC days: 23:59:59.999999999 and 00:00 are different days */
        add(p, t("2025-01-08T00:00:00Z") - 1);
        add_s(p, "2025-01-08T00:00:00Z");
        assert_int_equal(run(p, (struct tm_forget_policy){ .daily = 2 }), 0);
        expect_kept(p, 2, 0, 1);
        free(p);
}

static void test_hourly(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));

        add_s(p, "2025-01-07T10:05:00Z"); /* 0 */
        add_s(p, "2025-01-07T10:55:00Z"); /* 1 */
        add_s(p, "2025-01-07T11:00:00Z"); /* 2 */
        add_s(p, "2025-01-06T11:30:00Z"); /* 3: same hour, another day */
        assert_int_equal(run(p, (struct tm_forget_policy){ .hourly = 3 }), 0);
        expect_kept(p, 3, 1, 2, 3);
        assert_string_equal(p->reasons[2], "hourly");
        free(p);
}

static void test_weekly_iso_53(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));

        /* 2020 has ISO week 53: Mon 2020-12-28 .. Sun 2021-01-03 */
        add_s(p, "2021-01-04T00:00:00Z"); /* 0: 2021-W01 (Monday) */
        add_s(p, "2021-01-03T12:00:00Z"); /* 1: 2020-W53 newest */
        add_s(p, "2021-01-01T12:00:00Z"); /* 2: 2020-W53 */
        add_s(p, "2020-12-28T00:00:00Z"); /* 3: 2020-W53 */
        add_s(p, "2020-12-27T23:00:00Z"); /* 4: 2020-W52 (Sunday) */
        add_s(p, "2020-12-21T00:00:00Z"); /* 5: 2020-W52 (Monday) */
        add_s(p, "2020-12-20T00:00:00Z"); /* 6: 2020-W51 */
        assert_int_equal(run(p, (struct tm_forget_policy){ .weekly = 4 }), 0);
        expect_kept(p, 4, 0, 1, 4, 6);
        assert_string_equal(p->reasons[1], "weekly");
        free(p);
}

static void test_weekly_year_boundary_w1(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));

        /* Mon 2024-12-30 .. Sun 2025-01-05 is 2025-W01; 2024 has 52 weeks */
        add_s(p, "2025-01-05T10:00:00Z"); /* 0: 2025-W01 newest */
        add_s(p, "2024-12-30T10:00:00Z"); /* 1: 2025-W01 */
        add_s(p, "2024-12-29T10:00:00Z"); /* 2: 2024-W52 */
        add_s(p, "2024-12-23T10:00:00Z"); /* 3: 2024-W52 */
        assert_int_equal(run(p, (struct tm_forget_policy){ .weekly = 5 }), 0);
        expect_kept(p, 2, 0, 2);

        /* 2026-01-01 is a Thursday: 2026-W01 starts Mon 2025-12-29 */
        memset(p, 0, sizeof(*p));
        add_s(p, "2026-01-01T00:00:00Z"); /* 0: 2026-W01 */
        add_s(p, "2025-12-29T00:00:00Z"); /* 1: 2026-W01 */
        add_s(p, "2025-12-28T00:00:00Z"); /* 2: 2025-W52 */
        assert_int_equal(run(p, (struct tm_forget_policy){ .weekly = 5 }), 0);
        expect_kept(p, 2, 0, 2);

        /* 2015 has 53 weeks (starts on Thursday); 2016-01-03 is still 2015-W53 */
        memset(p, 0, sizeof(*p));
        add_s(p, "2016-01-04T00:00:00Z"); /* 0: 2016-W01 */
        add_s(p, "2016-01-03T00:00:00Z"); /* 1: 2015-W53 */
        add_s(p, "2015-12-28T00:00:00Z"); /* 2: 2015-W53 */
        add_s(p, "2015-12-27T00:00:00Z"); /* 3: 2015-W52 */
        assert_int_equal(run(p, (struct tm_forget_policy){ .weekly = 10 }), 0);
        expect_kept(p, 3, 0, 1, 3);
        free(p);
}

/* ISO weeks checked independently of any calendar formula: 500 daily
 * snapshots starting on a Monday (across the 2016/2017 boundary); weekly
 * keeps exactly each Sunday (the newest of its week) and the newest day. */
static void test_weekly_many_days(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));
        int64_t day = 86400 * TM_NSEC_PER_SEC;
        int64_t start = t("2016-01-04T12:00:00Z"); /* a Monday */
        size_t days = 500;

        for (size_t i = 0; i < days; i++)
                add(p, start + (int64_t)i * day);
        assert_int_equal(run(p, (struct tm_forget_policy){ .weekly = 1000 }), 0);
        for (size_t i = 0; i < days; i++) {
                int is_sunday = i % 7 == 6, is_newest = i == days - 1;

                if (p->keep[i] != (is_sunday || is_newest))
                        fail_msg("day %zu: keep=%d", i, p->keep[i]);
        }
        free(p);
}

static void test_monthly_yearly(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));

        add_s(p, "2025-03-31T23:00:00Z"); /* 0: March newest */
        add_s(p, "2025-03-01T00:00:00Z"); /* 1 */
        add_s(p, "2025-01-15T00:00:00Z"); /* 2: Jan (no Feb) */
        add_s(p, "2024-12-31T23:59:59Z"); /* 3: Dec 2024, newest of 2024 */
        add_s(p, "2024-12-01T00:00:00Z"); /* 4 */
        add_s(p, "2023-06-01T00:00:00Z"); /* 5: newest of 2023 */
        add_s(p, "2023-01-01T00:00:00Z"); /* 6 */
        assert_int_equal(run(p, (struct tm_forget_policy){ .monthly = 3 }), 0);
        expect_kept(p, 3, 0, 2, 3);
        assert_string_equal(p->reasons[2], "monthly");

        assert_int_equal(run(p, (struct tm_forget_policy){ .yearly = 10 }), 0);
        expect_kept(p, 3, 0, 3, 5);
        assert_string_equal(p->reasons[5], "yearly");

        assert_int_equal(run(p, (struct tm_forget_policy){ .yearly = 2 }), 0);
        expect_kept(p, 2, 0, 3);
        free(p);
}

static void test_combination(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));

        add_s(p, "2025-01-07T10:00:00Z"); /* 0 newest */
        add_s(p, "2025-01-07T09:00:00Z"); /* 1 */
        add_s(p, "2025-01-06T09:00:00Z"); /* 2 */
        add_s(p, "2025-01-05T09:00:00Z"); /* 3 */
        add_s(p, "2024-12-20T09:00:00Z"); /* 4 */
        add_s(p, "2024-11-20T09:00:00Z"); /* 5 */
        assert_int_equal(run(p, (struct tm_forget_policy){ .last = 2, .daily = 2, .monthly = 3 }),
                         0);
        /* last: 0, 1; daily: 0 (Jan 7), 2 (Jan 6); monthly: 0 (Jan), 4 (Dec), 5 (Nov) */
        expect_kept(p, 5, 0, 1, 2, 4, 5);
        assert_string_equal(p->reasons[0], "last, daily, monthly");
        assert_string_equal(p->reasons[1], "last");
        assert_string_equal(p->reasons[2], "daily");
        assert_string_equal(p->reasons[4], "monthly");

        /* the order given does not matter: reversed input, same decisions */
        {
                struct plan *q = calloc(1, sizeof(*q));

                for (size_t i = p->n; i-- > 0;)
                        add(q, p->snaps[i].time);
                assert_int_equal(
                        run(q, (struct tm_forget_policy){ .last = 2, .daily = 2, .monthly = 3 }),
                        0);
                for (size_t i = 0; i < p->n; i++)
                        assert_int_equal(q->keep[p->n - 1 - i], p->keep[i]);
                free(q);
        }

        /* all six rules: every rule name appears in the reason of the newest */
        assert_int_equal(run(p, (struct tm_forget_policy){ 1, 1, 1, 1, 1, 1 }), 0);
        assert_string_equal(p->reasons[0], "last, hourly, daily, weekly, monthly, yearly");
        expect_kept(p, 1, 0);
        free(p);
}

static void test_empty_policy_keeps_all(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));

        for (int i = 0; i < 20; i++)
                add(p, t("2020-01-01T00:00:00Z") + (int64_t)i * 3600 * TM_NSEC_PER_SEC);
        assert_int_equal(run(p, (struct tm_forget_policy){ 0 }), 0);
        assert_int_equal(n_kept(p), 20);
        for (size_t i = 0; i < p->n; i++)
                assert_non_null(p->reasons[i]);
        /* reasons may be NULL */
        assert_int_equal(tm_forget_plan(p->snaps, p->n, &(struct tm_forget_policy){ .last = 1 },
                                        p->keep, NULL),
                         0);
        assert_int_equal(n_kept(p), 1);
        free(p);
}

static void test_negative_is_einval(void **state)
{
        struct plan *p = calloc(1, sizeof(*p));
        struct tm_forget_policy bad[] = {
                { .last = -1 },   { .hourly = -1 },  { .daily = -1 },
                { .weekly = -2 }, { .monthly = -1 }, { .yearly = -1, .last = 3 },
        };

        add_s(p, "2025-01-07T10:00:00Z");
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                p->keep[0] = 42;
                assert_int_equal(tm_forget_plan(p->snaps, p->n, &bad[i], p->keep, NULL), -EINVAL);
                assert_int_equal(p->keep[0], 42); /* nothing written */
        }
        assert_int_equal(tm_forget_plan(p->snaps, p->n, NULL, p->keep, NULL), -EINVAL);
        /* no snapshots: fine */
        assert_int_equal(
                tm_forget_plan(NULL, 0, &(struct tm_forget_policy){ .last = 1 }, NULL, NULL), 0);
        free(p);
}

/* Randomised cross-check against a straightforward reimplementation of
 * keep-daily: a snapshot is kept iff it is the newest of its UTC day and its
 * day is among the N most recent days with snapshots. */
static void test_daily_random(void **state)
{
        const char *env = getenv("TM_TEST_SEED");
        unsigned long seed = env ? strtoul(env, NULL, 10) : 12345;
        uint64_t x = seed * 2654435761u + 1;
        struct plan *p = calloc(1, sizeof(*p));

        printf("test_daily_random: seed %lu (TM_TEST_SEED)\n", seed);
        for (int round = 0; round < 50; round++) {
                int n_days = 0;
                int64_t day_ns = 86400 * TM_NSEC_PER_SEC, base = t("2024-01-01T00:00:00Z");
                int keep_n;

                memset(p, 0, sizeof(*p));
                for (int i = 0; i < 60; i++) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        add(p, base + (int64_t)(x % (40 * (uint64_t)day_ns)));
                }
                keep_n = (int)(x % 15) + 1;
                assert_int_equal(run(p, (struct tm_forget_policy){ .daily = keep_n }), 0);
                for (size_t i = 0; i < p->n; i++) {
                        int64_t d = (p->snaps[i].time - base) / day_ns;
                        int newest = 1, newer_days = 0;
                        int seen[64] = { 0 };

                        for (size_t j = 0; j < p->n; j++) {
                                int64_t dj = (p->snaps[j].time - base) / day_ns;

                                if (dj == d && (p->snaps[j].time > p->snaps[i].time ||
                                                (p->snaps[j].time == p->snaps[i].time &&
                                                 tm_id_cmp(&p->snaps[j].id, &p->snaps[i].id) > 0)))
                                        newest = 0;
                                if (dj > d && !seen[dj]) {
                                        seen[dj] = 1;
                                        newer_days++;
                                }
                        }
                        n_days = newest && newer_days < keep_n;
                        if (p->keep[i] != n_days)
                                fail_msg("seed %lu round %d snapshot %zu: keep %d expected %d",
                                         seed, round, i, p->keep[i], n_days);
                }
        }
        free(p);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_keep_last),
                cmocka_unit_test(test_keep_last_same_time),
                cmocka_unit_test(test_daily_with_gaps),
                cmocka_unit_test(test_daily_utc_boundary),
                cmocka_unit_test(test_hourly),
                cmocka_unit_test(test_weekly_iso_53),
                cmocka_unit_test(test_weekly_year_boundary_w1),
                cmocka_unit_test(test_weekly_many_days),
                cmocka_unit_test(test_monthly_yearly),
                cmocka_unit_test(test_combination),
                cmocka_unit_test(test_empty_policy_keeps_all),
                cmocka_unit_test(test_negative_is_einval),
                cmocka_unit_test(test_daily_random),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
