/* Unit tests for lib/src/core/log.c: sinks, levels, errno formatting. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <tidemark/log.h>

struct captured {
        int n;
        enum tm_log_level level;
        int err;
        char msg[2048];
};

static void capture(enum tm_log_level level, int err, const char *msg, void *ud)
{
        struct captured *c = ud;

        c->n++;
        c->level = level;
        c->err = err;
        snprintf(c->msg, sizeof(c->msg), "%s", msg);
}

static void test_sink_and_levels(void **state)
{
        struct captured c = { 0 };

        (void)state;
        tm_log_set_sink(capture, &c);
        tm_log_set_level(TM_LOG_INFO);
        assert_int_equal(tm_log_get_level(), TM_LOG_INFO);
        tm_log(TM_LOG_WARN, "pack '%s' is %d bytes", "ab", 12);
        assert_int_equal(c.n, 1);
        assert_int_equal(c.level, TM_LOG_WARN);
        assert_int_equal(c.err, 0);
        assert_string_equal(c.msg, "pack 'ab' is 12 bytes");
        tm_log(TM_LOG_DEBUG, "dropped");
        assert_int_equal(c.n, 1);
        tm_log_set_level(TM_LOG_TRACE);
        tm_log(TM_LOG_DEBUG, "kept");
        assert_int_equal(c.n, 2);
        tm_log_set_sink(NULL, NULL);
        tm_log_set_level(TM_LOG_INFO);
}

static void test_errno_appends_and_returns(void **state)
{
        struct captured c = { 0 };
        int r;

        (void)state;
        tm_log_set_sink(capture, &c);
        r = tm_log_errno(TM_LOG_ERR, -ENOSPC, "cannot write '%s'", "data/ab/cd");
        assert_int_equal(r, -ENOSPC);
        assert_int_equal(c.err, -ENOSPC);
        assert_non_null(strstr(c.msg, "cannot write 'data/ab/cd': "));
        assert_non_null(strstr(c.msg, strerror(ENOSPC)));
        /* a long message is cut, never overflows */
        {
                char big[4000];

                memset(big, 'x', sizeof(big) - 1);
                big[sizeof(big) - 1] = 0;
                assert_int_equal(tm_log_errno(TM_LOG_ERR, -EIO, "%s", big), -EIO);
                assert_true(strlen(c.msg) < sizeof(c.msg));
        }
        tm_log_set_sink(NULL, NULL);
}

static void test_level_of(void **state)
{
        (void)state;
        assert_int_equal(tm_log_level_of(-ENOSPC), TM_LOG_DEBUG);
        assert_int_equal(tm_log_level_of(-EDQUOT), TM_LOG_DEBUG);
        assert_int_equal(tm_log_level_of(-EACCES), TM_LOG_DEBUG);
        assert_int_equal(tm_log_level_of(-EROFS), TM_LOG_DEBUG);
        assert_int_equal(tm_log_level_of(-EIO), TM_LOG_ERR);
        assert_int_equal(tm_log_level_of(-EBADMSG), TM_LOG_ERR);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sink_and_levels),
                cmocka_unit_test(test_errno_appends_and_returns),
                cmocka_unit_test(test_level_of),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
