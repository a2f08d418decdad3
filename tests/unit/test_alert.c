/* Unit tests for the alert state machine on a fake clock: pending for the
 * "for" duration, one firing event, repeats at the repeat interval, one
 * resolution; silences mute notification but not state; the incident link;
 * one alert per label set (each with its own key, pending time, resolution
 * and incident); the rules' configuration errors. */
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
        struct tm_alert_event ev, other = { 0 };
        tm_alerts *a;
        char err[256];
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
        assert_int_equal(tm_alerts_set_incident(a, &ev, "INC-4"), 0);
        other.rule = tm_alerts_rule(a, 1); /* rule m has no series yet */
        assert_int_equal(tm_alerts_set_incident(a, &other, "INC-4"), -ENOENT);
        j = tm_alerts_active_json(a, t + 71 * S, 0);
        assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "incident_id")),
                            "INC-4");
        assert_string_equal(json_string_value(json_object_get(json_array_get(j, 0), "state")),
                            "firing");
        json_decref(j);
        assert_int_equal(tm_alerts_observe(a, 0, 0, 0, "up", t + 80 * S, &ev), 1);
        assert_int_equal(ev.kind, TM_ALERT_EV_RESOLVED);
        assert_string_equal(ev.incident, "INC-4");
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

/* one evaluation of rule i with per-component samples */
static int eval2(tm_alerts *a, size_t i, const char *c1, int act1, const char *c2, int act2,
                 int64_t now, struct tm_alert_event **evs)
{
        json_t *l1 = json_pack("{s:s}", "component", c1), *l2 = json_pack("{s:s}", "component", c2);
        struct tm_alert_sample s[] = { { l1, act1, act1 ? 900 : 10, "m1" },
                                       { l2, act2, act2 ? 900 : 10, "m2" } };
        int r = tm_alerts_eval(a, i, s, c2 ? 2 : 1, "gone", now, evs);

        json_decref(l1);
        json_decref(l2);
        return r;
}

static const char *jstr(json_t *o, const char *k)
{
        return json_string_value(json_object_get(o, k));
}

static void test_per_series(void **state)
{
        const char *chans[] = { "x", NULL };
        struct tm_config *cfg;
        struct tm_probe_config *pc;
        struct tm_alert_event *evs = NULL, *evs2 = NULL, ev1;
        tm_alerts *a;
        char err[256];
        unsigned counts[4];
        json_t *j;
        int64_t t = 1000 * S;

        assert_int_equal(mt_config(conf, &cfg, err, sizeof(err)), 0);
        assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), 0);
        assert_int_equal(tm_alerts_new(cfg, pc, chans, &a, err, sizeof(err)), 0);
        /* no aggregate = on the metric rule: per series */
        assert_true(tm_alerts_rule(a, 1)->per_series);

        /* rule a (for = 10s): db stale, plugins fresh: one series pending */
        assert_int_equal(eval2(a, 0, "db", 1, "plugins", 0, t, &evs), 0);
        tm_alert_events_free(evs, 0);
        j = tm_alerts_active_json(a, t, 1);
        assert_int_equal(json_array_size(j), 1);
        assert_string_equal(jstr(json_object_get(json_array_get(j, 0), "labels"), "component"),
                            "db");
        json_decref(j);
        /* plugins goes stale 5 s later: its own pending time */
        assert_int_equal(eval2(a, 0, "db", 1, "plugins", 1, t + 5 * S, &evs), 0);
        tm_alert_events_free(evs, 0);
        assert_int_equal(eval2(a, 0, "db", 1, "plugins", 1, t + 10 * S, &evs), 1);
        assert_int_equal(evs[0].kind, TM_ALERT_EV_FIRING);
        assert_string_equal(evs[0].labels, "component=\"db\"");
        assert_string_equal(evs[0].dedup_key, "tidemark/alert/a{component=\"db\"}");
        assert_string_equal(jstr(evs[0].labels_json, "component"), "db");
        assert_string_equal(evs[0].message, "m1");
        assert_int_equal(tm_alerts_set_incident(a, &evs[0], "INC-1"), 0);
        assert_int_equal(eval2(a, 0, "db", 1, "plugins", 1, t + 15 * S, &evs2), 1);
        assert_string_equal(evs2[0].dedup_key, "tidemark/alert/a{component=\"plugins\"}");
        assert_int_equal(tm_alerts_set_incident(a, &evs2[0], "INC-2"), 0);
        tm_alert_events_free(evs2, 1);
        /* the same series again: deduplicated */
        assert_int_equal(eval2(a, 0, "db", 1, "plugins", 1, t + 20 * S, &evs2), 0);
        tm_alert_events_free(evs2, 0);
        tm_alerts_firing_counts(a, counts);
        assert_int_equal(counts[TM_ALERT_CRITICAL], 2);
        j = tm_alerts_active_json(a, t + 20 * S, 0);
        assert_int_equal(json_array_size(j), 2);
        for (size_t k = 0; k < 2; k++) {
                json_t *o = json_array_get(j, k);
                const char *c = jstr(json_object_get(o, "labels"), "component");

                assert_non_null(c);
                assert_string_equal(jstr(o, "incident_id"), !strcmp(c, "db") ? "INC-1" : "INC-2");
                assert_non_null(strstr(jstr(o, "dedup_key"), c));
        }
        json_decref(j);
        /* db gets a backup: only db resolves, with its incident */
        assert_int_equal(eval2(a, 0, "db", 0, "plugins", 1, t + 25 * S, &evs2), 1);
        assert_int_equal(evs2[0].kind, TM_ALERT_EV_RESOLVED);
        assert_string_equal(evs2[0].dedup_key, evs[0].dedup_key);
        assert_string_equal(evs2[0].incident, "INC-1");
        tm_alert_events_free(evs2, 1);
        tm_alert_events_free(evs, 1);
        tm_alerts_firing_counts(a, counts);
        assert_int_equal(counts[TM_ALERT_CRITICAL], 1);
        /* plugins no longer reported at all: it ended, as in Prometheus */
        assert_int_equal(eval2(a, 0, "db", 0, NULL, 0, t + 30 * S, &evs), 1);
        assert_int_equal(evs[0].kind, TM_ALERT_EV_RESOLVED);
        assert_string_equal(evs[0].message, "gone");
        assert_string_equal(evs[0].incident, "INC-2");
        assert_string_equal(jstr(evs[0].labels_json, "component"), "plugins");
        tm_alert_events_free(evs, 1);
        j = tm_alerts_active_json(a, t + 30 * S, 1);
        assert_int_equal(json_array_size(j), 0);
        json_decref(j);

        /* two labels: sorted by name in the key, whatever the order given */
        {
                json_t *l = json_pack("{s:s, s:s}", "site", "dr", "replica", "r1");
                struct tm_alert_sample s1 = { l, 1, 70, "lag" };

                assert_int_equal(tm_alerts_eval(a, 1, &s1, 1, "gone", t, &evs), 1);
                assert_string_equal(evs[0].labels, "replica=\"r1\",site=\"dr\"");
                tm_alert_events_free(evs, 1);
                /* the one-series call leaves the labelled series alone */
                assert_int_equal(tm_alerts_observe(a, 1, 0, 0, "ok", t + S, &ev1), 0);
                tm_alerts_firing_counts(a, counts);
                assert_int_equal(counts[TM_ALERT_WARNING], 1);
                /* an empty evaluation ends it */
                assert_int_equal(tm_alerts_eval(a, 1, NULL, 0, "no such series", t + 2 * S, &evs),
                                 1);
                assert_string_equal(evs[0].message, "no such series");
                tm_alert_events_free(evs, 1);
                json_decref(l);
        }
        assert_int_equal(tm_alerts_eval(a, 9, NULL, 0, "x", t, &evs), 0);
        tm_alert_events_free(evs, 0);
        tm_alerts_free(a);
        tm_probe_config_free(pc);
        tm_config_free(cfg);
}

static void test_aggregate_rule(void **state)
{
        const char *chans[] = { "x", NULL };
        static const char c2[] = "[service.b]\nurl = http://h:1\n[alert.m]\nservice = b\n"
                                 "metric = lag\naggregate = max\nop = >\nthreshold = 1\n";
        struct tm_config *cfg;
        struct tm_probe_config *pc;
        tm_alerts *a;
        char err[256];

        assert_int_equal(mt_config(c2, &cfg, err, sizeof(err)), 0);
        assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), 0);
        assert_int_equal(tm_alerts_new(cfg, pc, chans, &a, err, sizeof(err)), 0);
        assert_false(tm_alerts_rule(a, 0)->per_series);
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
                cmocka_unit_test(test_per_series),
                cmocka_unit_test(test_aggregate_rule),
                cmocka_unit_test(test_config_errors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
