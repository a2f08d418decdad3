/* Unit tests for the compliance report: job summaries over a period
 * (backups by component, validations) and the HTML page, escaped. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidemark/compliance.h>
#include <tidemark/time.h>

static void test_summary_and_html(void **state)
{
        json_t *jobs =
                json_loads("[{\"kind\":\"backup\",\"component\":\"db\",\"state\":\"succeeded\","
                           "\"created\":\"2025-01-02T00:00:00Z\"},"
                           "{\"kind\":\"backup\",\"component\":\"db\",\"state\":\"failed\","
                           "\"created\":\"2025-01-03T00:00:00Z\"},"
                           "{\"kind\":\"backup\",\"component\":\"web\",\"state\":\"succeeded\","
                           "\"created\":\"2025-01-03T00:00:00Z\"},"
                           "{\"kind\":\"backup\",\"component\":\"web\",\"state\":\"running\","
                           "\"created\":\"2025-01-03T00:00:00Z\"},"
                           "{\"kind\":\"backup\",\"component\":\"web\",\"state\":\"succeeded\","
                           "\"created\":\"2024-12-01T00:00:00Z\"},"
                           "{\"kind\":\"validate\",\"component\":\"db\",\"state\":\"succeeded\","
                           "\"created\":\"2025-01-04T00:00:00Z\"},"
                           "{\"kind\":\"backup\",\"state\":\"succeeded\"}]",
                           0, NULL);
        json_t *s, *b, *rep;
        int64_t from, to;
        char *html;

        assert_int_equal(tm_time_parse("2025-01-01", &from, NULL), 0);
        assert_int_equal(tm_time_parse("2025-02-01", &to, NULL), 0);
        s = tm_compliance_jobs(jobs, from, to);
        b = json_object_get(s, "backups");
        assert_int_equal(json_integer_value(json_object_get(b, "total")), 3);
        assert_int_equal(json_integer_value(json_object_get(b, "succeeded")), 2);
        assert_true(fabs(json_real_value(json_object_get(b, "success_rate_percent")) - 200.0 / 3) <
                    1e-9);
        assert_true(json_real_value(
                            json_object_get(json_object_get(json_object_get(b, "components"), "db"),
                                            "success_rate_percent")) == 50);
        assert_int_equal(
                json_integer_value(json_object_get(json_object_get(s, "validations"), "total")), 1);
        rep = json_pack("{s:s, s:s, s:s, s:O, s:O, s:[], s:{}, s:{s:[{s:s, s:s, s:s}]}, s:[], "
                        "s:[{s:s, s:b, s:i}], s:[]}",
                        "from", "2025-01-01T00:00:00Z", "to", "2025-02-01T00:00:00Z", "generated",
                        "now", "backups", b, "validations", json_object_get(s, "validations"),
                        "drills", "sla", "incidents", "items", "id", "INC-1", "title",
                        "<script>alert(1)</script>", "severity", "high", "runbooks", "audit_logs",
                        "path", "/var/log/a", "verified", 1, "entries", 3, "errors");
        html = tm_compliance_html(rep);
        assert_non_null(html);
        assert_non_null(strstr(html, "tidemark compliance report"));
        assert_non_null(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_null(strstr(html, "<script>"));
        assert_non_null(strstr(html, "<td>db</td>"));
        assert_non_null(strstr(html, "2 of 3 backup jobs succeeded"));
        assert_non_null(strstr(html, "<td>yes</td>"));
        free(html);
        json_decref(rep);
        json_decref(s);
        json_decref(jobs);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_summary_and_html),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
