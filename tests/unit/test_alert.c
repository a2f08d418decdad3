/* Unit tests for the alert state machine on a fake clock: pending for the
 * "for" duration, one firing event, repeats at the repeat interval, one
 * resolution; silences mute notification but not state; the incident link;
 * the rules' configuration errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <tidemark/alert.h>
#include <tidemark/time.h>

#include "mon_test_util.h"

#define S TM_NSEC_PER_SEC

static const char conf[] = "[service.b]\nurl = http://h:1\n[check.c]\ntype = http\nservice = b\n"
                           "[alert.a]\ncheck = c\nfor = 10s\nrepeat_interval = 1m\nseverity = "
                           "critical\nchannels = x\nsummary = it broke\nrunbook = fix\n"
                           "[alert.m]\nservice = b\nmetric = lag\nlabels = site=dr\nop = >\n"
                           "threshold = 60\nrepeat_interval = never\n";

static void test_lifecycle(void **state)
{
        const char *chans[] = { "x", NULL };
        struct tm_config *cfg;
        struct tm_probe_config *pc;
        struct tm_alert_event ev;
        tm_alerts *a;
        char err[256], inc[64];
        unsigned counts[4];
        json_t *j;
        uint64_t sid;
        int64_t t = 1000 * S;

        assert_int_equal(mt_config(conf, &cfg, err, sizeof(err)), 0);
        assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), 0);
        assert_int_equal(tm_alerts_new(cfg, pc, chans, &a, err, sizeof(err)), 0);
        assert_int_equal(tm_alerts_count(a), 2);
        assert_string_equal(tm_alerts_rule(a, 0)->summary, "it broke");
        assert_null(tm_alerts_rule(a, 2));
        assert_int_equal(tm_alerts_rule(a, 1)->repeat_ns, 0);
        assert_int_equal(tm_alerts_rule(a, 1)->severity, TM_ALERT_WARNING);

        assert_int_equal(tm_alerts_observe(a, 0, 1, 1, "down", t, &ev), 0); /* pending */
        j = tm_alerts_active_json(a, t, 0);
        assert_int_equal(json_array_size(j), 0);
        json_decref(j);
        j = tm_alerts_active_json(a, t, 1);
        assert_int_equal(json_array_size(j), 1);
        json_decref(j);
        assert_int_equal(tm_alerts_observe(a, 0, 1, 1, "down", t + 5 * S, &ev), 0);
        assert_int_equal(tm_alerts_observe(a, 0, 1, 2, "still down", t + 10 * S, &ev), 1);
        assert_int_equal(ev.kind, TM_ALERT_EV_FIRING);
        assert_string_equal(ev.dedup_key, "tidemark/alert/a");
        assert_string_equal(ev.message, "still down");
        assert_true(ev.started == t && ev.value == 2 && !ev.silenced);
        /* deduplicated until the repeat interval */
        assert_int_equal(tm_alerts_observe(a, 0, 1, 1, "down", t + 30 * S, &ev), 0);
        assert_int_equal(tm_alerts_observe(a, 0, 1, 1, "down", t + 70 * S, &ev), 1);
        assert_int_equal(ev.kind, TM_ALERT_EV_REPEAT);
        tm_alerts_firing_counts(a, counts);
        assert_int_equal(counts[TM_ALERT_CRITICAL], 1);
        assert_int_equal(tm_alerts_set_incident(a, 0, "INC-4"), 0);
        assert_int_equal(tm_alerts_set_incident(a, 9, "INC-4"), -ENOENT);
        j = tm_alerts_active_json(a, t + 71 * S, 0);
        assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "incident_id")),
                            "INC-4");
        assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "state")),
                            "firing");
        json_decref(j);
        assert_int_equal(tm_alerts_observe(a, 0, 0, 0, "up", t + 80 * S, &ev), 1);
        assert_int_equal(ev.kind, TM_ALERT_EV_RESOLVED);
        tm_alerts_incident(a, 0, inc, sizeof(inc));
        assert_string_equal(inc, "INC-4");
        assert_int_equal(tm_alerts_observe(a, 0, 0, 0, "up", t + 81 * S, &ev), 0);
        tm_alerts_firing_counts(a, counts);
        assert_int_equal(counts[TM_ALERT_CRITICAL], 0);

        /* for = 0: fires at once; a silence mutes it */
        assert_int_equal(tm_alerts_silence(a, "m", t + 200 * S, "maint", "ops", t + 100 * S, &sid),
                         0);
        assert_int_equal(tm_alerts_observe(a, 1, 1, 70, "lag", t + 101 * S, &ev), 1);
        assert_true(ev.silenced);
        j = tm_alerts_silences_json(a, t + 102 * S);
        assert_int_equal(json_array_size(j), 1);
        json_decref(j);
        assert_int_equal(tm_alerts_unsilence(a, sid), 0);
        assert_int_equal(tm_alerts_unsilence(a, sid), -ENOENT);
        assert_int_equal(tm_alerts_observe(a, 1, 0, 1, "ok", t + 103 * S, &ev), 1);
        assert_false(ev.silenced);
        assert_int_equal(tm_alerts_silence(a, "nope", t + 200 * S, "", "", t, &sid), -ENOENT);
        assert_int_equal(tm_alerts_silence(a, "*", t - 1, "", "", t, &sid), -EINVAL);
        assert_int_equal(tm_alerts_silence(a, "*", t + S, "", "", t, &sid), 0);
        j = tm_alerts_silences_json(a, t + 2 * S); /* expired */
        assert_int_equal(json_array_size(j), 0);
        json_decref(j);
        tm_alerts_free(a);
        tm_probe_config_free(pc);
        tm_config_free(cfg);
}

static void test_config_errors(void **state)
{
        static const struct {
                const char *text, *needle;
        } bad[] = {
                { "[alert.a]\nfor = 1s\n", "needs check = NAME" },
                { "[alert.a]\ncheck = nope\n", ":2: no [check.nope]" },
                { "[alert.a]\nmetric = m\n", "needs service" },
                { "[service.b]\nurl = http://h\n[alert.a]\nmetric = m\nservice = b\n",
                  "needs threshold" },
                { "[service.b]\nurl = http://h\n[alert.a]\nmetric = m\nservice = b\nthreshold = "
                  "1\nseverity = meh\n",
                  ":7: severity must be" },
                { "[service.b]\nurl = http://h\n[alert.a]\nmetric = m\nservice = b\nthreshold = "
                  "1\nchannels = x y\n",
                  ":7: no [channel.y]" },
                { "[service.b]\nurl = http://h\n[alert.a]\nmetric = m\nservice = b\nthreshold = "
                  "1\nfor = soon\n",
                  ":7: for must be" },
                { "[service.b]\nurl = http://h\n[alert.a]\nmetric = m\nservice = b\nthreshold = "
                  "1\nflavour = x\n",
                  ":7: unknown key 'flavour'" },
        };
        const char *chans[] = { "x", NULL };
        enum tm_alert_severity sev;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct tm_config *cfg;
                struct tm_probe_config *pc;
                tm_alerts *a;
                char err[256] = "";

                assert_int_equal(mt_config(bad[i].text, &cfg, err, sizeof(err)), 0);
                assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), 0);
                assert_int_equal(tm_alerts_new(cfg, pc, chans, &a, err, sizeof(err)), -EINVAL);
                if (!strstr(err, bad[i].needle))
                        fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].needle);
                tm_probe_config_free(pc);
                tm_config_free(cfg);
        }
        assert_int_equal(tm_alert_severity_parse("high", &sev), 0);
        assert_string_equal(tm_alert_severity_name(sev), "high");
        assert_int_equal(tm_alert_severity_parse("low", &sev), -EINVAL);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lifecycle),
                cmocka_unit_test(test_config_errors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
