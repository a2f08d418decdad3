/* Unit tests for lib/src/core/time.c: the instant parser users type at
 * (accepted forms, precisions, offsets, impossible dates), formatting and
 * its round trip, and the broken-down fields used by retention. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <tidemark/core.h>
#include <tidemark/time.h>

#define S               TM_NSEC_PER_SEC
#define T_2025_01_07_10 (1736244000LL * S) /* 2025-01-07T10:00:00Z */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
        /* splitmix64 */
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static int rng_setup(void **state)
{
        const char *s = getenv("TM_TEST_SEED");

        rng_state = s ? strtoull(s, NULL, 0) : (uint64_t)tm_time_now();
        printf("test_time: TM_TEST_SEED=%" PRIu64 "\n", rng_state);
        return 0;
}

static void check_parse(const char *s, int64_t want, int64_t want_prec)
{
        int64_t ns = -1, prec = -1;

        if (tm_time_parse(s, &ns, &prec) != 0)
                fail_msg("'%s' did not parse", s);
        if (ns != want || prec != want_prec)
                fail_msg("'%s': got %" PRId64 " / %" PRId64 ", want %" PRId64 " / %" PRId64, s, ns,
                         prec, want, want_prec);
}

static void test_parse_forms(void **state)
{
        const int64_t day = 86400 * S;

        check_parse("2025-01-07T10:00:00Z", T_2025_01_07_10, S);
        check_parse("2025-01-07t10:00:00z", T_2025_01_07_10, S);
        check_parse("2025-01-07 10:00:00", T_2025_01_07_10, S);
        check_parse("2025-01-07T10:00:00", T_2025_01_07_10, S);
        check_parse("2025-01-07T10:00", T_2025_01_07_10, 60 * S);
        check_parse("2025-01-07T10:00Z", T_2025_01_07_10, 60 * S);
        check_parse("2025-01-07T10", T_2025_01_07_10, 3600 * S);
        check_parse("2025-01-07", T_2025_01_07_10 - 10 * 3600 * S, day);
        check_parse("2025-01-07Z", T_2025_01_07_10 - 10 * 3600 * S, day);
        check_parse("1970-01-01", 0, day);
        check_parse("2024-02-29T12:34:56Z", 1709210096LL * S, S);
        check_parse("2000-02-29", 951782400LL * S, day);
        check_parse("2038-01-19T03:14:08Z", 2147483648LL * S, S);
        /* A leap second is clamped to :59. */
        check_parse("2016-12-31T23:59:60Z", (1483228800LL - 1) * S, S);
}

static void test_parse_fractions(void **state)
{
        check_parse("2025-01-07T10:00:00.5Z", T_2025_01_07_10 + S / 2, S / 10);
        check_parse("2025-01-07T10:00:00,5Z", T_2025_01_07_10 + S / 2, S / 10);
        check_parse("2025-01-07T10:00:00.123Z", T_2025_01_07_10 + 123000000, 1000000);
        check_parse("2025-01-07T10:00:00.000001", T_2025_01_07_10 + 1000, 1000);
        check_parse("2025-01-07T10:00:00.123456789Z", T_2025_01_07_10 + 123456789, 1);
        /* Digits past nanoseconds are accepted and ignored. */
        check_parse("2025-01-07T10:00:00.1234567899Z", T_2025_01_07_10 + 123456789, 1);
        check_parse("2025-01-07T10:00:00.250+01:00", T_2025_01_07_10 - 3600 * S + S / 4, S / 1000);
}

static void test_parse_offsets(void **state)
{
        check_parse("2025-01-07T12:00:00+02:00", T_2025_01_07_10, S);
        check_parse("2025-01-07T12:00:00+0200", T_2025_01_07_10, S);
        check_parse("2025-01-07T04:30:00-05:30", T_2025_01_07_10, S);
        check_parse("2025-01-07T12:00+02:00", T_2025_01_07_10, 60 * S);
        check_parse("2025-01-07T10:00:00+00:00", T_2025_01_07_10, S);
        /* An offset can cross midnight and the year. */
        check_parse("2025-01-01T01:00:00+02:00", (1735689600LL - 3600) * S, S);
        /* Before the epoch after applying the offset. */
        check_parse("1970-01-01T00:00:00+01:00", -3600 * S, S);
}

static void test_parse_rejects(void **state)
{
        static const char *const bad[] = {
                "",
                "2025",
                "2025-01",
                "2025-02-30",
                "2025-02-29", /* not a leap year */
                "2100-02-29", /* century, not a leap year */
                "2025-13-01",
                "2025-00-10",
                "2025-01-00",
                "2025-01-32",
                "2025-04-31",
                "2025-1-7",
                "2025-01-7",
                "25-01-07",
                "1969-12-31", /* before the epoch */
                "2025/01/07",
                "2025-01-07T",
                "2025-01-07T1",
                "2025-01-07T24",
                "2025-01-07T10:",
                "2025-01-07T10:6",
                "2025-01-07T10:60",
                "2025-01-07T10:00:",
                "2025-01-07T10:00:61",
                "2025-01-07T10:00:00.",
                "2025-01-07T10:00:00.Z",
                "2025-01-07T10:00:00Zjunk",
                "2025-01-07T10:00:00Z ",
                " 2025-01-07",
                "2025-01-07x",
                "2025-01-07T10:00:00+",
                "2025-01-07T10:00:00+2",
                "2025-01-07T10:00:00+24:00",
                "2025-01-07T10:00:00+02:60",
                "2025-01-07T10:00:00+02:00Z",
                "2025-01-07+02:00",
                "2025-01-07T10:00:00ZZ",
                "+2025-01-07",
                "9999-12-31", /* past the int64 nanosecond range (2262) */
                "2262-04-12",
                "2025-01-07T10:00:00.000000000000000000000000000000000000000000000000000001Z",
        };
        int64_t ns = 7, prec = 7;

        for (size_t i = 0; i < TM_ARRAY_SIZE(bad); i++) {
                if (tm_time_parse(bad[i], &ns, &prec) != -EINVAL)
                        fail_msg("'%s' was accepted", bad[i]);
                assert_int_equal(ns, 7);
                assert_int_equal(prec, 7);
        }
        assert_int_equal(tm_time_parse(NULL, &ns, NULL), -EINVAL);
        /* The last representable instant still parses. */
        check_parse("2262-04-11T23:47:16Z", 9223372036LL * S, S);
        check_parse("2262-04-11T23:47:16.854775807Z", INT64_MAX, 1);
        assert_int_equal(tm_time_parse("2262-04-11T23:47:16.854775808Z", &ns, NULL), -EINVAL);
        /* precision is optional. */
        assert_int_equal(tm_time_parse("2025-01-07", &ns, NULL), 0);
        assert_int_equal(ns, T_2025_01_07_10 - 10 * 3600 * S);
}

static void test_format(void **state)
{
        char buf[40];

        tm_time_format(T_2025_01_07_10 + 999999999, buf, sizeof(buf));
        assert_string_equal(buf, "2025-01-07T10:00:00Z");
        tm_time_format_ns(T_2025_01_07_10 + 123, buf, sizeof(buf));
        assert_string_equal(buf, "2025-01-07T10:00:00.000000123Z");
        tm_time_format(0, buf, sizeof(buf));
        assert_string_equal(buf, "1970-01-01T00:00:00Z");
        /* Before the epoch: floor, not truncation towards zero. */
        tm_time_format(-1, buf, sizeof(buf));
        assert_string_equal(buf, "1969-12-31T23:59:59Z");
        tm_time_format_ns(-1, buf, sizeof(buf));
        assert_string_equal(buf, "1969-12-31T23:59:59.999999999Z");
        tm_time_format_ns(INT64_MAX, buf, sizeof(buf));
        assert_string_equal(buf, "2262-04-11T23:47:16.854775807Z");
        tm_time_format_ns(INT64_MIN, buf, sizeof(buf));
        assert_string_equal(buf, "1677-09-21T00:12:43.145224192Z");
        /* The documented minimum buffer sizes are enough. */
        tm_time_format(T_2025_01_07_10, buf, 21);
        assert_string_equal(buf, "2025-01-07T10:00:00Z");
        tm_time_format_ns(T_2025_01_07_10, buf, 31);
        assert_string_equal(buf, "2025-01-07T10:00:00.000000000Z");
}

static void test_format_roundtrip(void **state)
{
        for (int i = 0; i < 20000; i++) {
                /* Anywhere from 1970 to 2262. */
                int64_t ns = (int64_t)(rng_next() >> 1), back = -1, prec = 0;
                char buf[40];

                tm_time_format_ns(ns, buf, sizeof(buf));
                assert_int_equal(tm_time_parse(buf, &back, &prec), 0);
                assert_int_equal(back, ns);
                assert_int_equal(prec, 1);
                tm_time_format(ns, buf, sizeof(buf));
                assert_int_equal(tm_time_parse(buf, &back, &prec), 0);
                assert_int_equal(back, ns - ns % S);
                assert_int_equal(prec, S);
        }
}

static void check_split(int64_t secs, int year, int month, int day, int hour, int min, int sec,
                        int wday, int yday)
{
        struct tm_time_fields f;

        tm_time_split(secs * S, &f);
        assert_int_equal(f.year, year);
        assert_int_equal(f.month, month);
        assert_int_equal(f.day, day);
        assert_int_equal(f.hour, hour);
        assert_int_equal(f.min, min);
        assert_int_equal(f.sec, sec);
        assert_int_equal(f.wday, wday);
        assert_int_equal(f.yday, yday);
}

static void test_split(void **state)
{
        check_split(0, 1970, 1, 1, 0, 0, 0, 4, 0);                 /* Thursday */
        check_split(1736244000, 2025, 1, 7, 10, 0, 0, 2, 6);       /* Tuesday */
        check_split(951782400, 2000, 2, 29, 0, 0, 0, 2, 59);       /* 400-year leap */
        check_split(1709210096, 2024, 2, 29, 12, 34, 56, 4, 59);   /* leap day */
        check_split(1735689599, 2024, 12, 31, 23, 59, 59, 2, 365); /* 366th day */
        check_split(4107542400, 2100, 3, 1, 0, 0, 0, 1, 59);       /* 2100: no Feb 29 */
        check_split(2147483648, 2038, 1, 19, 3, 14, 8, 2, 18);     /* past int32 */
        check_split(9223372036, 2262, 4, 11, 23, 47, 16, 5, 100);  /* last int64 second */
        check_split(-1, 1969, 12, 31, 23, 59, 59, 3, 364);         /* Wednesday */
        check_split(-86400 * 365, 1969, 1, 1, 0, 0, 0, 3, 0);
        /* Nanoseconds just before a second belong to the previous one. */
        {
                struct tm_time_fields f;

                tm_time_split(-1, &f);
                assert_int_equal(f.sec, 59);
                tm_time_split(INT64_MIN, &f);
                assert_int_equal(f.year, 1677);
                assert_int_equal(f.month, 9);
                assert_int_equal(f.day, 21);
        }
}

/* tm_time_split agrees with gmtime_r over random instants. */
static void test_split_vs_libc(void **state)
{
        for (int i = 0; i < 20000; i++) {
                time_t t = (time_t)(rng_next() % 9223372036ull);
                struct tm_time_fields f;
                struct tm g;

                assert_non_null(gmtime_r(&t, &g));
                tm_time_split((int64_t)t * S, &f);
                assert_int_equal(f.year, g.tm_year + 1900);
                assert_int_equal(f.month, g.tm_mon + 1);
                assert_int_equal(f.day, g.tm_mday);
                assert_int_equal(f.hour, g.tm_hour);
                assert_int_equal(f.min, g.tm_min);
                assert_int_equal(f.sec, g.tm_sec);
                assert_int_equal(f.wday, g.tm_wday);
                assert_int_equal(f.yday, g.tm_yday);
        }
}

static void test_clocks(void **state)
{
        int64_t now = tm_time_now(), m1, m2;
        time_t t = time(NULL);

        assert_true(now / S >= (int64_t)t - 2 && now / S <= (int64_t)t + 2);
        m1 = tm_time_mono();
        m2 = tm_time_mono();
        assert_true(m1 > 0);
        assert_true(m2 >= m1);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_forms),   cmocka_unit_test(test_parse_fractions),
                cmocka_unit_test(test_parse_offsets), cmocka_unit_test(test_parse_rejects),
                cmocka_unit_test(test_format),        cmocka_unit_test(test_format_roundtrip),
                cmocka_unit_test(test_split),         cmocka_unit_test(test_split_vs_libc),
                cmocka_unit_test(test_clocks),
        };

        return cmocka_run_group_tests(tests, rng_setup, NULL);
}
