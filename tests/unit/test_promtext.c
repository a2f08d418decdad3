/* Unit tests for the Prometheus text reader: samples, labels with escapes,
 * families from HELP/TYPE (histogram suffixes), selection and aggregation,
 * line-numbered errors, and the merged re-export. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidemark/promtext.h>

static const char text[] = "# HELP backup_job_success_rate Percentage\n"
                           "# TYPE backup_job_success_rate gauge\n"
                           "backup_job_success_rate{component=\"db\",strategy=\"full\"} 100\n"
                           "backup_job_success_rate{component=\"plugins\",strategy=\"full\"} 50\n"
                           "# HELP d Time taken\n"
                           "# TYPE d histogram\n"
                           "d_bucket{le=\"1\"} 2\n"
                           "d_bucket{le=\"+Inf\"} 3\n"
                           "d_sum 4.5\n"
                           "d_count 3\n"
                           "weird{msg=\"a \\\"quoted\\\" \\\\ line\\nnext\"} -Inf\n"
                           "up 1 1700000000000\n";

static void test_parse_select(void **state)
{
        tm_promtext *p = NULL;
        const struct tm_promtext_sample *s;
        const char *m[] = { "component=plugins", NULL }, *bad[] = { "nolabel", NULL };
        size_t n;
        double v;

        assert_int_equal(tm_promtext_parse(text, strlen(text), &p, NULL, 0), 0);
        s = tm_promtext_samples(p, &n);
        assert_int_equal(n, 8);
        assert_string_equal(s[0].name, "backup_job_success_rate");
        assert_string_equal(tm_promtext_label(&s[1], "component"), "plugins");
        assert_null(tm_promtext_label(&s[1], "nope"));
        assert_string_equal(tm_promtext_label(&s[6], "msg"), "a \"quoted\" \\ line\nnext");
        assert_true(isinf(s[6].value) && s[6].value < 0);
        assert_true(s[7].value == 1); /* the timestamp is ignored */
        assert_int_equal(
                tm_promtext_select(p, "backup_job_success_rate", NULL, TM_PROMTEXT_MAX, &v), 0);
        assert_true(v == 100);
        assert_int_equal(
                tm_promtext_select(p, "backup_job_success_rate", NULL, TM_PROMTEXT_MIN, &v), 0);
        assert_true(v == 50);
        assert_int_equal(
                tm_promtext_select(p, "backup_job_success_rate", NULL, TM_PROMTEXT_SUM, &v), 0);
        assert_true(v == 150);
        assert_int_equal(tm_promtext_select(p, "backup_job_success_rate", m, TM_PROMTEXT_MAX, &v),
                         0);
        assert_true(v == 50);
        assert_int_equal(tm_promtext_select(p, "nope", NULL, TM_PROMTEXT_MAX, &v), -ENOENT);
        assert_int_equal(tm_promtext_select(p, "nope", NULL, TM_PROMTEXT_COUNT, &v), 0);
        assert_true(v == 0);
        assert_int_equal(tm_promtext_select(p, "d_bucket", NULL, TM_PROMTEXT_COUNT, &v), 0);
        assert_true(v == 2);
        assert_int_equal(tm_promtext_select(p, "up", bad, TM_PROMTEXT_MAX, &v), -EINVAL);
        /* one sample at a time, as per-series alert rules read them */
        assert_true(tm_promtext_match(&s[1], "backup_job_success_rate", m));
        assert_true(tm_promtext_match(&s[1], "backup_job_success_rate", NULL));
        assert_false(tm_promtext_match(&s[0], "backup_job_success_rate", m));
        assert_false(tm_promtext_match(&s[1], "up", NULL));
        assert_false(tm_promtext_match(&s[1], "backup_job_success_rate", bad));
        tm_promtext_free(p);
        tm_promtext_free(NULL);
}

static void test_errors(void **state)
{
        static const char *bad[] = { "x{a=1} 2\n", "x 2\n9bad 1\n", "x{a=\"1\" 2\n",
                                     "x\n",        "x abc\n",       "<html>\n" };
        tm_promtext *p = NULL;
        char msg[128];
        enum tm_promtext_agg agg;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                msg[0] = '\0';
                assert_int_equal(tm_promtext_parse(bad[i], strlen(bad[i]), &p, msg, sizeof(msg)),
                                 -EBADMSG);
                assert_non_null(strstr(msg, "line "));
        }
        assert_int_equal(tm_promtext_parse("x 2\n9bad 1\n", 11, &p, msg, sizeof(msg)), -EBADMSG);
        assert_non_null(strstr(msg, "line 2"));
        assert_int_equal(tm_promtext_agg_parse("sum", &agg), 0);
        assert_int_equal(agg, TM_PROMTEXT_SUM);
        assert_int_equal(tm_promtext_agg_parse("avg", &agg), -EINVAL);
        /* empty and comment-only expositions are fine */
        assert_int_equal(tm_promtext_parse("# nothing\n", 10, &p, NULL, 0), 0);
        tm_promtext_free(p);
}

static int skip_up(const char *family, void *ud)
{
        return !strcmp(family, "up");
}

static void test_merged(void **state)
{
        const char *b = "# HELP d Time taken\n# TYPE d histogram\nd_bucket{le=\"+Inf\"} 7\n"
                        "d_sum 1\nd_count 7\n# TYPE other gauge\nother 3\n";
        tm_promtext *p1 = NULL, *p2 = NULL;
        const tm_promtext *sets[2];
        const char *names[] = { "backupd", "fail\"overd" };
        tm_buf out = TM_BUF_INIT(0);
        char *s;

        assert_int_equal(tm_promtext_parse(text, strlen(text), &p1, NULL, 0), 0);
        assert_int_equal(tm_promtext_parse(b, strlen(b), &p2, NULL, 0), 0);
        sets[0] = p1;
        sets[1] = p2;
        assert_int_equal(tm_promtext_render_merged(sets, names, 2, "service", skip_up, NULL, &out),
                         0);
        assert_int_equal(tm_buf_append(&out, "", 1), 0);
        s = (char *)out.data;
        /* each family once, its samples from both sets together */
        assert_non_null(strstr(s, "# TYPE d histogram\n"));
        assert_null(strstr(strstr(s, "# TYPE d histogram\n") + 1, "# TYPE d histogram"));
        assert_non_null(strstr(s, "d_bucket{service=\"backupd\",le=\"1\"} 2\n"));
        assert_non_null(strstr(s, "d_count{service=\"fail\\\"overd\"} 7\n"));
        assert_true(strstr(s, "d_count{service=\"backupd\"}") < strstr(s, "# TYPE other gauge"));
        assert_non_null(strstr(s, "other{service=\"fail\\\"overd\"} 3\n"));
        assert_non_null(strstr(
                s, "weird{service=\"backupd\",msg=\"a \\\"quoted\\\" \\\\ line\\nnext\"} -Inf\n"));
        assert_null(strstr(s, "\nup{"));
        tm_buf_dispose(&out);
        tm_promtext_free(p1);
        tm_promtext_free(p2);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_select),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_merged),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
