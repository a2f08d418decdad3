/* Unit tests for lib/src/core/ticker.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/time.h>

#include "core/ticker.h"

static void count(void *ud)
{
        atomic_fetch_add((atomic_int *)ud, 1);
}

static void test_ticks_and_stops(void **state)
{
        struct tm_ticker t = { 0 };
        atomic_int n = 0;
        int after;

        (void)state;
        assert_int_equal(tm_ticker_start(&t, TM_NSEC_PER_SEC / 100, count, &n), 0);
        usleep(200000);
        tm_ticker_stop(&t);
        after = atomic_load(&n);
        assert_true(after >= 2); /* 10 ms ticks over 200 ms, with a wide margin */
        usleep(50000);
        assert_int_equal(atomic_load(&n), after); /* no tick after stop */
        tm_ticker_stop(&t);                       /* twice is safe */
}

static void test_stop_unstarted(void **state)
{
        struct tm_ticker t = { 0 };

        (void)state;
        tm_ticker_stop(&t);
        tm_ticker_stop(NULL);
}

static void test_stop_is_prompt(void **state)
{
        struct tm_ticker t = { 0 };
        atomic_int n = 0;
        int64_t t0;

        (void)state;
        /* an hour-long interval must not delay stopping */
        assert_int_equal(tm_ticker_start(&t, 3600 * TM_NSEC_PER_SEC, count, &n), 0);
        t0 = tm_time_mono();
        tm_ticker_stop(&t);
        assert_true(tm_time_mono() - t0 < 5 * TM_NSEC_PER_SEC);
        assert_int_equal(atomic_load(&n), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_ticks_and_stops),
                cmocka_unit_test(test_stop_unstarted),
                cmocka_unit_test(test_stop_is_prompt),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
