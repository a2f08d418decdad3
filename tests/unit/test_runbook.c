/* Unit tests for runbooks: parsing the steps and their errors, running
 * command, wait, http, wait_jobs and check steps (against a loopback
 * server), context substitution and its restriction, stop at the first
 * failure or continue_on_error, and cancellation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <tidemark/runbook.h>
#include <tidemark/time.h>

#include "mon_test_util.h"

struct seen {
        int steps;
};

static void on_step(void *ud, const json_t *entry)
{
        ((struct seen *)ud)->steps++;
}

static void test_run(void **state)
{
        tm_http_server *s;
        struct tm_config *cfg;
        struct tm_probe_config *pc;
        struct tm_runbooks *rbs;
        const struct tm_runbook *rb;
        struct seen seen = { 0 };
        char base[64], text[2048], err[256], msg[128];
        json_t *ctx = json_pack("{s:s, s:i}", "incident_id", "INC-7", "n", 3), *log, *j;
        int stop = 0;

        assert_int_equal(mt_server(&s, base, sizeof(base)), 0);
        snprintf(text, sizeof(text),
                 "[service.b]\nurl = %s\n[check.h]\ntype = http\nservice = b\n"
                 "[runbook.ok]\ndescription = all good\n"
                 "step = http POST b /echo {\"incident\": \"{incident_id}\", \"n\": {n}}\n"
                 "step = wait_jobs 5s\nstep = command echo \"for {incident_id}\"\n"
                 "step = wait 10ms\nstep = check h\n"
                 "[runbook.bad]\nstep = command exit 3\nstep = command echo never\n"
                 "[runbook.cont]\ncontinue_on_error = on\nstep = http POST b /fail\n"
                 "step = command echo after\n"
                 "[runbook.slow]\ncommand_timeout = 1s\nstep = command sleep 5\n",
                 base);
        assert_int_equal(mt_config(text, &cfg, err, sizeof(err)), 0);
        assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), 0);
        assert_int_equal(tm_runbooks_load(cfg, pc, &rbs, err, sizeof(err)), 0);
        assert_int_equal(rbs->n, 4);
        assert_null(tm_runbooks_find(rbs, "nope"));
        rb = tm_runbooks_find(rbs, "ok");
        assert_int_equal(rb->n_steps, 5);
        j = tm_runbook_json(rb);
        assert_string_equal(json_string_value(json_object_get(j, "description")), "all good");
        assert_int_equal(json_array_size(json_object_get(j, "steps")), 5);
        json_decref(j);

        assert_int_equal(tm_runbook_run(rb, cfg, ctx, on_step, &seen, &stop, &log), 0);
        assert_int_equal(seen.steps, 5);
        assert_string_equal(mt_last_body, "{\"incident\":\"INC-7\",\"n\":3}");
        j = json_array_get(log, 1);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
        assert_string_equal(json_string_value(json_object_get(j, "message")), "1 job(s) succeeded");
        assert_string_equal(json_string_value(json_object_get(json_array_get(log, 2), "output")),
                            "for INC-7\n");
        json_decref(log);

        seen.steps = 0;
        assert_int_equal(tm_runbook_run(tm_runbooks_find(rbs, "bad"), cfg, NULL, on_step, &seen,
                                        &stop, &log),
                         -EIO);
        assert_int_equal(json_array_size(log), 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(log, 0), "message")),
                            "exit 3");
        json_decref(log);
        assert_int_equal(
                tm_runbook_run(tm_runbooks_find(rbs, "cont"), cfg, NULL, NULL, NULL, &stop, &log),
                -EIO);
        assert_int_equal(json_array_size(log), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(log, 1), "status")),
                            "ok");
        json_decref(log);
        assert_int_equal(
                tm_runbook_run(tm_runbooks_find(rbs, "slow"), cfg, NULL, NULL, NULL, &stop, &log),
                -EIO);
        assert_non_null(
                strstr(json_string_value(json_object_get(json_array_get(log, 0), "message")),
                       "timed out"));
        json_decref(log);
        stop = 1;
        assert_int_equal(tm_runbook_run(rb, cfg, ctx, NULL, NULL, &stop, &log), -ECANCELED);
        json_decref(log);

        json_decref(ctx);
        ctx = json_pack("{s:s}", "incident_id", "x; rm -rf /");
        assert_int_equal(tm_runbook_validate_context(ctx, msg, sizeof(msg)), -EINVAL);
        assert_non_null(strstr(msg, "context.incident_id"));
        stop = 0;
        assert_int_equal(tm_runbook_run(rb, cfg, ctx, NULL, NULL, &stop, &log), -EINVAL);
        json_decref(ctx);
        ctx = json_pack("{s:[]}", "x");
        assert_int_equal(tm_runbook_validate_context(ctx, msg, sizeof(msg)), -EINVAL);
        json_decref(ctx);
        assert_int_equal(tm_runbook_validate_context(NULL, msg, sizeof(msg)), 0);
        tm_runbooks_free(rbs);
        tm_probe_config_free(pc);
        tm_config_free(cfg);
        tm_http_free(s);
}

static void test_config_errors(void **state)
{
        static const struct {
                const char *text, *needle;
        } bad[] = {
                { "[runbook.a]\ndescription = x\n", "has no step" },
                { "[runbook.a]\nstep = dance\n", ":2: a step is http" },
                { "[runbook.a]\nstep = http POST nowhere /x\n", "no [service.nowhere]" },
                { "[service.b]\nurl = http://h\n[runbook.a]\nstep = http POST b x\n",
                  "needs METHOD SERVICE /PATH" },
                { "[service.b]\nurl = http://h\n[runbook.a]\nstep = http PATCH b /x\n",
                  "method must be" },
                { "[service.b]\nurl = http://h\n[runbook.a]\nstep = http POST b /x [1,\n",
                  "the body is not JSON" },
                { "[runbook.a]\nstep = wait\n", "needs a duration" },
                { "[runbook.a]\nstep = wait_jobs forever\n", "is not a duration" },
                { "[runbook.a]\nstep = check nope\n", "no [check.nope]" },
                { "[runbook.a]\nstep = command\n", "needs a command" },
                { "[runbook.a]\nstep = wait 1s\nmood = calm\n", ":3: unknown key" },
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct tm_config *cfg;
                struct tm_probe_config *pc;
                struct tm_runbooks *rbs;
                char err[256] = "";

                assert_int_equal(mt_config(bad[i].text, &cfg, err, sizeof(err)), 0);
                assert_int_equal(tm_probe_config_load(cfg, &pc, err, sizeof(err)), 0);
                assert_int_equal(tm_runbooks_load(cfg, pc, &rbs, err, sizeof(err)), -EINVAL);
                if (!strstr(err, bad[i].needle))
                        fail_msg("case %zu: '%s' lacks '%s'", i, err, bad[i].needle);
                tm_probe_config_free(pc);
                tm_config_free(cfg);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_run),
                cmocka_unit_test(test_config_errors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
