/* Unit tests for the outbound client against a real HTTP server on
 * loopback: GET, POST with a JSON body and a bearer token, statuses,
 * timeouts, refused connections, the answer bound; the mail format and a
 * refused SMTP connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <tidemark/httpc.h>
#include <tidemark/time.h>

#include "mon_test_util.h"

static void test_requests(void **state)
{
        tm_http_server *s;
        char base[64], url[128];
        struct tm_httpc_req rq = { 0 };
        struct tm_httpc_resp resp;

        assert_int_equal(mt_server(&s, base, sizeof(base)), 0);
        snprintf(url, sizeof(url), "%s/health", base);
        rq.url = url;
        assert_int_equal(tm_httpc_request(&rq, &resp), 0);
        assert_int_equal(resp.status, 200);
        assert_non_null(strstr((char *)resp.body.data, "\"job_id\":7"));
        assert_true(resp.latency_ns > 0);
        tm_buf_dispose(&resp.body);

        snprintf(url, sizeof(url), "%s/echo", base);
        rq.method = "POST";
        rq.body = "{\"b\": 2, \"a\": 1}";
        assert_int_equal(tm_httpc_request(&rq, &resp), 0);
        assert_int_equal(resp.status, 200);
        assert_string_equal(mt_last_body, "{\"a\":1,\"b\":2}");
        tm_buf_dispose(&resp.body);

        snprintf(url, sizeof(url), "%s/fail", base);
        assert_int_equal(tm_httpc_request(&rq, &resp), 0);
        assert_int_equal(resp.status, 400);
        assert_non_null(strstr((char *)resp.body.data, "refused"));
        tm_buf_dispose(&resp.body);

        /* the answer is bounded */
        snprintf(url, sizeof(url), "%s/health", base);
        rq.method = NULL;
        rq.body = NULL;
        rq.max_response = 4;
        assert_int_equal(tm_httpc_request(&rq, &resp), -E2BIG);
        tm_buf_dispose(&resp.body);
        rq.max_response = 0;

        snprintf(url, sizeof(url), "%s/slow", base);
        rq.timeout_ms = 200;
        assert_int_equal(tm_httpc_request(&rq, &resp), -ETIMEDOUT);
        assert_true(resp.error[0] != '\0');
        tm_buf_dispose(&resp.body);

        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", mt_dead_port());
        assert_int_equal(tm_httpc_request(&rq, &resp), -ECONNREFUSED);
        tm_buf_dispose(&resp.body);
        rq.url = "ftp://127.0.0.1/";
        assert_true(tm_httpc_request(&rq, &resp) < 0);
        tm_buf_dispose(&resp.body);
        tm_http_free(s);
}

static void test_mail(void **state)
{
        const char *to[] = { "a@example.org", "b@example.org", NULL };
        struct tm_httpc_mail m = { .url = "smtp://127.0.0.1:1",
                                   .from = "tm@example.org",
                                   .to = to,
                                   .subject = "[tidemark firing] x",
                                   .text = "line one\nline two",
                                   .timeout_ms = 2000 };
        tm_buf b = TM_BUF_INIT(0);
        char err[256] = "", url[64];
        int64_t t;

        assert_int_equal(tm_time_parse("2025-01-07T10:00:00Z", &t, NULL), 0);
        assert_int_equal(tm_httpc_mail_format(&m, t, &b), 0);
        assert_int_equal(tm_buf_append(&b, "", 1), 0);
        assert_non_null(strstr((char *)b.data, "Date: Tue, 07 Jan 2025 10:00:00 +0000\r\n"));
        assert_non_null(strstr((char *)b.data, "To: a@example.org, b@example.org\r\n"));
        assert_non_null(strstr((char *)b.data, "Subject: [tidemark firing] x\r\n"));
        assert_non_null(strstr((char *)b.data, "\r\n\r\nline one\r\nline two\r\n"));
        tm_buf_dispose(&b);
        snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", mt_dead_port());
        m.url = url;
        assert_int_equal(tm_httpc_mail_send(&m, err, sizeof(err)), -ECONNREFUSED);
        assert_true(err[0] != '\0');
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_requests),
                cmocka_unit_test(test_mail),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
