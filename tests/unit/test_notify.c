/* Unit tests for the channels: the Slack, PagerDuty (trigger and resolve
 * with one dedup key) and webhook payloads; configuration errors; a
 * synchronous delivery to a loopback server; queued delivery with retries
 * to an endpoint that refuses, counted as failed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <tidemark/notify.h>
#include <tidemark/time.h>

#include "mon_test_util.h"

static const struct tm_notify_msg msg = { .kind = "alert",
                                          .status = "firing",
                                          .name = "backup_stale",
                                          .severity = "critical",
                                          .title = "backup_stale: no backup",
                                          .text = "database stale",
                                          .dedup_key = "tidemark/alert/backup_stale",
                                          .at = 1736244000LL * TM_NSEC_PER_SEC };

static void test_payloads(void **state)
{
        struct tm_notify_msg res = msg;
        json_t *j;

        j = tm_notify_payload(TM_NOTIFY_PAGERDUTY, &msg, "KEY");
        assert_string_equal(json_string_value(json_object_get(j, "event_action")), "trigger");
        assert_string_equal(json_string_value(json_object_get(j, "routing_key")), "KEY");
        assert_string_equal(json_string_value(json_object_get(j, "dedup_key")),
                            "tidemark/alert/backup_stale");
        assert_string_equal(
                json_string_value(json_object_get(json_object_get(j, "payload"), "severity")),
                "critical");
        assert_string_equal(
                json_string_value(json_object_get(json_object_get(j, "payload"), "timestamp")),
                "2025-01-07T10:00:00Z");
        json_decref(j);
        res.resolve = 1;
        res.status = "resolved";
        j = tm_notify_payload(TM_NOTIFY_PAGERDUTY, &res, "KEY");
        assert_string_equal(json_string_value(json_object_get(j, "event_action")), "resolve");
        assert_string_equal(json_string_value(json_object_get(j, "dedup_key")),
                            "tidemark/alert/backup_stale");
        assert_null(json_object_get(j, "payload"));
        json_decref(j);
        j = tm_notify_payload(TM_NOTIFY_SLACK, &msg, NULL);
        assert_non_null(strstr(json_string_value(json_object_get(j, "text")), "[firing]"));
        assert_string_equal(json_string_value(json_object_get(
                                    json_array_get(json_object_get(j, "attachments"), 0), "color")),
                            "danger");
        json_decref(j);
        j = tm_notify_payload(TM_NOTIFY_WEBHOOK, &msg, NULL);
        assert_string_equal(json_string_value(json_object_get(j, "name")), "backup_stale");
        assert_string_equal(json_string_value(json_object_get(j, "kind")), "alert");
        json_decref(j);
        assert_null(tm_notify_payload(TM_NOTIFY_EMAIL, &msg, NULL));
        assert_string_equal(tm_notify_type_name(TM_NOTIFY_PAGERDUTY), "pagerduty");
}

static void test_config_errors(void **state)
{
        static const struct {
                const char *text, *needle;
        } bad[] = {
                { "[channel.a]\nurl = http://x\n", "needs type" },
                { "[channel.a]\ntype = fax\n", ":2: type must be" },
                { "[channel.a]\ntype = webhook\n", "needs url" },
                { "[channel.a]\ntype = webhook\nurl = smtp://x\n", ":3: url must start with http" },
                { "[channel.a]\ntype = email\nurl = http://x\n", ":3: url must start with smtp" },
                { "[channel.a]\ntype = email\nurl = smtp://x\nfrom = a@b\n", "needs to =" },
                { "[channel.a]\ntype = pagerduty\n", "needs routing_key" },
                { "[channel.a]\ntype = webhook\nurl = http://x\nattempts = 0\n", ":4: attempts" },
                { "[channel.a]\ntype = webhook\nurl = http://x\ncolour = 1\n", ":4: unknown key" },
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct tm_config *cfg;
                tm_notify *n;
                char err[256] = "";

                assert_int_equal(mt_config(bad[i].text, &cfg, err, sizeof(err)), 0);
                assert_int_equal(tm_notify_new(cfg, &n, err, sizeof(err)), -EINVAL);
                if (!strstr(err, bad[i].needle))
                        fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].needle);
                tm_config_free(cfg);
        }
}

static void test_delivery(void **state)
{
        tm_http_server *s;
        struct tm_config *cfg;
        tm_notify *n;
        char base[64], text[1024], err[256] = "";
        const char *only_bad[] = { "bad", NULL };
        json_t *st;

        assert_int_equal(mt_server(&s, base, sizeof(base)), 0);
        snprintf(text, sizeof(text),
                 "[channel.hook]\ntype = webhook\nurl = %s/echo\n[channel.pd]\ntype = "
                 "pagerduty\nurl = %s/echo\nrouting_key = K\n[channel.bad]\ntype = webhook\n"
                 "url = %s/fail\nattempts = 2\n[channel.mail]\ntype = email\nurl = "
                 "smtp://127.0.0.1:%d\nfrom = a@b\nto = c@d\ntimeout = 2s\nattempts = 1\n",
                 base, base, base, mt_dead_port());
        assert_int_equal(mt_config(text, &cfg, err, sizeof(err)), 0);
        assert_int_equal(tm_notify_new(cfg, &n, err, sizeof(err)), 0);
        assert_int_equal(tm_notify_count(n), 4);
        assert_string_equal(tm_notify_names(n)[1], "pd");
        assert_null(tm_notify_names(n)[4]);
        assert_int_equal(tm_notify_deliver_now(n, "pd", &msg, err, sizeof(err)), 0);
        assert_non_null(strstr(mt_last_body, "\"dedup_key\":\"tidemark/alert/backup_stale\""));
        assert_int_equal(tm_notify_deliver_now(n, "bad", &msg, err, sizeof(err)), -EIO);
        assert_non_null(strstr(err, "HTTP 400"));
        assert_int_equal(tm_notify_deliver_now(n, "nope", &msg, err, sizeof(err)), -ENOENT);
        assert_int_equal(tm_notify_start(n), 0);
        mt_requests = 0;
        assert_int_equal(tm_notify_send(n, &msg, only_bad), 1);
        assert_int_equal(tm_notify_send(n, &msg, NULL), 4);
        assert_int_equal(tm_notify_drain(n, 15000), 0);
        /* bad: 2 messages x 2 attempts; hook and pd: 1 each */
        assert_int_equal(mt_requests, 6);
        st = tm_notify_stats_json(n);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(st, 0), "sent")), 1);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(st, 2), "failed")), 2);
        assert_int_equal(json_integer_value(json_object_get(json_array_get(st, 2), "retries")), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(st, 2), "status")),
                            "down");
        assert_int_equal(json_integer_value(json_object_get(json_array_get(st, 3), "failed")), 1);
        assert_non_null(json_object_get(json_array_get(st, 3), "last_error"));
        json_decref(st);
        tm_notify_free(n, 1000);
        tm_config_free(cfg);
        tm_http_free(s);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_payloads),
                cmocka_unit_test(test_config_errors),
                cmocka_unit_test(test_delivery),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
