/* Fuzz the REST bodies of the three daemons up to where a handler needs the
 * daemon's live state: the body parse of every route (tm_http__body_parse,
 * the one finish() in lib/src/http runs), the route's tm_http_unpack() format
 * (field types, required and unknown fields) and the lib validators the
 * handler then applies to the fields (strategy, durations, timestamps,
 * severities, component names, runbook contexts). The first input byte picks
 * the route; the rest is the body. The formats are copied from the route
 * handlers in backupd/api.c, failover/api.c and monitor/api.c: keep them in
 * step. What the handlers do after validation (start jobs, fail over, open
 * incidents) needs a running daemon and is covered by the integration tests,
 * not here. Invariant: a rejection always says why (a message), and an
 * accepted body's fields have the types the format promises. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tidemark/config.h>
#include <tidemark/core.h>
#include <tidemark/http.h>
#include <tidemark/incident.h>
#include <tidemark/runbook.h>
#include <tidemark/time.h>

#include "http/http_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum route {
        BKD_BACKUP,       /* POST /api/v1/backup */
        BKD_VALIDATE,     /* POST /api/v1/backup/validate */
        FO_FAILOVER,      /* POST /api/v1/failover */
        FO_FAILBACK,      /* POST /api/v1/failback */
        FO_TEST,          /* POST /api/v1/test/failover */
        FO_PITR,          /* POST /api/v1/recovery/point-in-time */
        MON_SILENCE,      /* POST /api/v1/alerts/silences */
        MON_TEST_ALERT,   /* POST /api/v1/test/alert */
        MON_INCIDENT,     /* POST /api/v1/incidents */
        MON_INCIDENT_ACK, /* POST /api/v1/incidents/{id}/acknowledge, .../resolve */
        MON_INCIDENT_UPD, /* POST /api/v1/incidents/{id}/updates */
        MON_RUNBOOK,      /* POST /api/v1/runbooks/execute */
        ROUTE_COUNT
};

static int nonempty_names(struct tm_http_req *rq, json_t *a, size_t max)
{
        size_t i;
        json_t *v;

        if (!json_is_array(a) || (max && (!json_array_size(a) || json_array_size(a) > max)))
                return tm_http_fail(rq, -EINVAL, "a list of names");
        json_array_foreach(a, i, v)
        {
                if (!json_is_string(v) || !*json_string_value(v))
                        return tm_http_fail(rq, -EINVAL, "[%zu] must be a non-empty string", i);
        }
        return 0;
}

static int route(struct tm_http_req *rq, enum route rt, json_t *body)
{
        const char *s1 = NULL, *s2 = NULL, *s3 = NULL, *s4 = NULL;
        json_t *o = NULL;
        int b = 0, r;
        int64_t ns, prec;
        enum tm_strategy st;
        char msg[256];

        switch (rt) {
        case BKD_BACKUP:
                s1 = "incremental";
                r = tm_http_unpack(rq, body, "{s?:s, s?:o}", "strategy", &s1, "components", &o);
                if (r < 0)
                        return r;
                TM_ASSERT(s1);
                if (tm_strategy_parse(s1, &st) < 0)
                        return tm_http_fail(rq, -EINVAL, "invalid strategy '%s'", s1);
                TM_ASSERT(!strcmp(tm_strategy_name(st), s1));
                if (o && nonempty_names(rq, o, 0) < 0)
                        return -EINVAL;
                if (o) {
                        size_t i;
                        json_t *v;

                        json_array_foreach(o, i, v)
                        {
                                if (!tm_config_name_valid(json_string_value(v)))
                                        return tm_http_fail(rq, -EINVAL, "no component");
                        }
                }
                return 0;
        case BKD_VALIDATE:
                r = tm_http_unpack(rq, body, "{s:s}", "backup_id", &s1);
                if (r < 0)
                        return r;
                TM_ASSERT(s1);
                return 0;
        case FO_FAILOVER:
                if (!body)
                        return tm_http_fail(rq, -EINVAL,
                                            "a JSON body with target_site is required");
                r = tm_http_unpack(rq, body, "{s:s, s?s, s?b}", "target_site", &s1, "reason", &s2,
                                   "force", &b);
                if (r < 0)
                        return r;
                TM_ASSERT(s1 && (b == 0 || b == 1));
                return 0;
        case FO_FAILBACK:
                if (body)
                        return tm_http_unpack(rq, body, "{s?s}", "reason", &s1);
                return 0;
        case FO_TEST:
                s1 = "database_failover";
                b = 1;
                if (body &&
                    (r = tm_http_unpack(rq, body, "{s?s, s?b}", "scope", &s1, "dry_run", &b)) < 0)
                        return r;
                if (strcmp(s1, "database_failover"))
                        return tm_http_fail(rq, -EINVAL, "unknown scope '%s'", s1);
                return 0;
        case FO_PITR:
                if (!body)
                        return tm_http_fail(rq, -EINVAL, "a JSON body is required");
                r = tm_http_unpack(rq, body, "{s:s, s?o, s:s}", "target_timestamp", &s1,
                                   "components", &o, "destination", &s2);
                if (r < 0)
                        return r;
                if (tm_time_parse(s1, &ns, &prec) < 0)
                        return tm_http_fail(rq, -EINVAL, "malformed target_timestamp '%s'", s1);
                TM_ASSERT(prec > 0);
                if (o && nonempty_names(rq, o, 16) < 0)
                        return -EINVAL;
                return 0;
        case MON_SILENCE:
                s3 = "";
                r = tm_http_unpack(rq, body, "{s:s, s:s, s?:s}", "alert", &s1, "duration", &s2,
                                   "comment", &s3);
                if (r < 0)
                        return r;
                if (tm_config_parse_duration(s2, &ns) < 0 || ns <= 0)
                        return tm_http_fail(rq, -EINVAL, "duration must be like 30m, not '%s'", s2);
                return 0;
        case MON_TEST_ALERT:
                if (body && (r = tm_http_unpack(rq, body, "{s?:s, s?:s}", "message", &s1,
                                                "severity", &s2)) < 0)
                        return r;
                return 0;
        case MON_INCIDENT:
                r = tm_http_unpack(rq, body, "{s:s, s:s, s?:o, s?:s}", "title", &s1, "severity",
                                   &s2, "affected_services", &o, "description", &s4);
                if (r < 0)
                        return r;
                if (!*s1 || strlen(s1) > 500)
                        return tm_http_fail(rq, -EINVAL, "title must be 1 to 500 characters");
                if (tm_incident_severity_valid(s2) < 0)
                        return tm_http_fail(rq, -EINVAL, "bad severity '%s'", s2);
                if (o && nonempty_names(rq, o, 0) < 0)
                        return -EINVAL;
                return 0;
        case MON_INCIDENT_ACK:
                if (body && (r = tm_http_unpack(rq, body, "{s?:s}", "message", &s1)) < 0)
                        return r;
                return 0;
        case MON_INCIDENT_UPD:
                return tm_http_unpack(rq, body, "{s:s, s?:s}", "message", &s1, "status", &s2);
        case MON_RUNBOOK:
                r = tm_http_unpack(rq, body, "{s:s, s?:o}", "runbook", &s1, "context", &o);
                if (r < 0)
                        return r;
                if (o && !json_is_object(o))
                        return tm_http_fail(rq, -EINVAL, "context must be an object");
                if (o && tm_runbook_validate_context(o, msg, sizeof(msg)) < 0) {
                        TM_ASSERT(msg[0]);
                        return tm_http_fail(rq, -EINVAL, "%s", msg);
                }
                return 0;
        default:
                return 0;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct tm_http_req *rq;
        json_t *body = NULL;
        char msg[512];
        int r;

        if (size < 1)
                return 0;
        rq = tm_http__req_new();
        if (!rq)
                return 0;
        msg[0] = '\0';
        r = tm_http__body_parse(data + 1, size - 1, &body, msg, sizeof(msg));
        if (r < 0) {
                TM_ASSERT(r == -EINVAL && !body && !strncmp(msg, "malformed JSON: ", 16));
        } else {
                TM_ASSERT(size > 1 || !body);
                r = route(rq, (enum route)(data[0] % ROUTE_COUNT), body);
                if (r < 0)
                        TM_ASSERT(tm_http__req_msg(rq)[0] != '\0');
        }
        json_decref(body);
        tm_http__req_free(rq);
        return 0;
}
