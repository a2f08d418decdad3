/* Unit tests for the incident register: the lifecycle with its timeline
 * and response time, the errors of each transition, filters, active counts,
 * and that everything survives a reopen while a corrupt file is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/incident.h>
#include <tidemark/time.h>

#define S TM_NSEC_PER_SEC

static void test_lifecycle(void **state)
{
        char dir[] = "/tmp/tm-inc-XXXXXX", path[64], id[16], id2[16];
        json_t *svc = json_pack("[s, s]", "auth", "users"), *j, *l;
        tm_incidents *in;
        unsigned counts[4];
        double rt = 0;
        int64_t t = 1736244000LL * S;
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/incidents.json", dir);
        assert_int_equal(tm_incidents_open(path, &in), 0);
        assert_int_equal(tm_incidents_create(in, "", "high", svc, "api", "ops", t, id, sizeof(id)),
                         -EINVAL);
        assert_int_equal(tm_incidents_create(in, "x", "huge", svc, "api", "ops", t, id, sizeof(id)),
                         -EINVAL);
        assert_int_equal(tm_incidents_create(in, "Database down", "high", svc, "api", "ops", t, id,
                                             sizeof(id)),
                         0);
        assert_string_equal(id, "INC-1");
        assert_int_equal(tm_incidents_create(in, "Disk", "critical", NULL, "alert:x", "monitord",
                                             t + S, id2, sizeof(id2)),
                         0);
        assert_string_equal(id2, "INC-2");
        tm_incidents_active_counts(in, counts);
        assert_int_equal(counts[0], 1);
        assert_int_equal(counts[1], 1);
        assert_int_equal(tm_incidents_acknowledge(in, id, "alice", NULL, t + 90 * S, &rt), 0);
        assert_true(rt == 90);
        assert_int_equal(tm_incidents_acknowledge(in, id, "alice", NULL, t + 91 * S, &rt), -EBUSY);
        assert_int_equal(tm_incidents_acknowledge(in, "INC-9", "a", NULL, t, &rt), -ENOENT);
        assert_int_equal(tm_incidents_update(in, id, "bob", "found it", "identified", t + 100 * S),
                         0);
        assert_int_equal(tm_incidents_update(in, id, "bob", "x", "closed", t), -EINVAL);
        assert_int_equal(tm_incidents_update(in, id, "bob", "", NULL, t), -EINVAL);
        j = json_pack("{s:i}", "step", 1);
        assert_int_equal(
                tm_incidents_note(in, id, "runbook", "monitord", "step 1 ok", j, t + 101 * S), 0);
        json_decref(j);
        assert_int_equal(tm_incidents_resolve(in, id, "bob", "fixed", t + 200 * S), 0);
        assert_int_equal(tm_incidents_resolve(in, id, "bob", "fixed", t + 201 * S), -EBUSY);
        assert_int_equal(tm_incidents_update(in, id, "bob", "late", NULL, t + 202 * S), -EBUSY);
        tm_incidents_close(in);

        /* reopen: the same register, ids continue */
        assert_int_equal(tm_incidents_open(path, &in), 0);
        j = tm_incidents_get(in, id);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "status")), "resolved");
        assert_true(json_real_value(json_object_get(j, "response_time_seconds")) == 90);
        assert_true(json_real_value(json_object_get(j, "resolution_time_seconds")) == 200);
        assert_int_equal(json_array_size(json_object_get(j, "timeline")), 5);
        assert_string_equal(json_string_value(json_object_get(
                                    json_array_get(json_object_get(j, "timeline"), 3), "kind")),
                            "runbook");
        assert_string_equal(
                json_string_value(json_array_get(json_object_get(j, "affected_services"), 1)),
                "users");
        json_decref(j);
        assert_null(tm_incidents_get(in, "INC-77"));
        l = tm_incidents_list(in, "active", 0, 0);
        assert_int_equal(json_array_size(l), 1);
        json_decref(l);
        l = tm_incidents_list(in, NULL, 0, 0);
        assert_int_equal(json_array_size(l), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "id")),
                            "INC-2");
        json_decref(l);
        l = tm_incidents_list(in, NULL, t + S, 0);
        assert_int_equal(json_array_size(l), 1);
        json_decref(l);
        l = tm_incidents_list(in, "resolved", 0, t + S);
        assert_int_equal(json_array_size(l), 1);
        json_decref(l);
        assert_int_equal(
                tm_incidents_create(in, "Third", "low", NULL, NULL, NULL, t, id, sizeof(id)), 0);
        assert_string_equal(id, "INC-3");
        tm_incidents_active_counts(in, counts);
        assert_int_equal(counts[0] + counts[1] + counts[2] + counts[3], 2);
        tm_incidents_close(in);
        assert_int_equal(tm_incident_severity_valid("medium"), 0);
        assert_int_equal(tm_incident_severity_valid("sev1"), -EINVAL);

        f = fopen(path, "w");
        fputs("{\"not\": \"a list\"}", f);
        fclose(f);
        assert_int_equal(tm_incidents_open(path, &in), -EBADMSG);
        unlink(path);
        rmdir(dir);
        json_decref(svc);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_lifecycle),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
