/*
 * The report's arithmetic and its HTML. Pure functions of JSON in, JSON or
 * text out, so the figures are unit-tested on fixed inputs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/compliance.h>
#include <tidemark/core.h>
#include <tidemark/time.h>

static void bump(json_t *o, const char *key)
{
        json_object_set_new(o, key, json_integer(json_integer_value(json_object_get(o, key)) + 1));
}

static void rate(json_t *o)
{
        json_int_t all = json_integer_value(json_object_get(o, "total"));
        json_int_t ok = json_integer_value(json_object_get(o, "succeeded"));

        json_object_set_new(o, "success_rate_percent",
                            all ? json_real(100.0 * (double)ok / (double)all) : json_null());
}

json_t *tm_compliance_jobs(const json_t *jobs, int64_t from, int64_t to)
{
        json_t *backups = json_pack("{s:i, s:i, s:i, s:{}}", "total", 0, "succeeded", 0, "failed",
                                    0, "components");
        json_t *val = json_pack("{s:i, s:i, s:i, s:[]}", "total", 0, "succeeded", 0, "failed", 0,
                                "items");
        json_t *j, *comps;
        size_t i;
        const char *k;

        if (!backups || !val) {
                json_decref(backups);
                json_decref(val);
                return NULL;
        }
        comps = json_object_get(backups, "components");
        json_array_foreach((json_t *)jobs, i, j)
        {
                const char *created = json_string_value(json_object_get(j, "created"));
                const char *kind = json_string_value(json_object_get(j, "kind"));
                const char *state = json_string_value(json_object_get(j, "state"));
                const char *comp = json_string_value(json_object_get(j, "component"));
                int64_t t;
                int ok, final;

                if (!created || !kind || !state || tm_time_parse(created, &t, NULL) < 0)
                        continue;
                if (t < from || t >= to)
                        continue;
                ok = !strcmp(state, "succeeded");
                final = ok || !strcmp(state, "failed") || !strcmp(state, "partial") ||
                        !strcmp(state, "interrupted");
                if (!final)
                        continue;
                if (!strcmp(kind, "backup")) {
                        json_t *c = json_object_get(comps, comp ? comp : "?");

                        if (!c) {
                                c = json_pack("{s:i, s:i, s:i}", "total", 0, "succeeded", 0,
                                              "failed", 0);
                                json_object_set_new(comps, comp ? comp : "?", c);
                        }
                        bump(backups, "total");
                        bump(c, "total");
                        bump(backups, ok ? "succeeded" : "failed");
                        bump(c, ok ? "succeeded" : "failed");
                } else if (!strcmp(kind, "validate")) {
                        bump(val, "total");
                        bump(val, ok ? "succeeded" : "failed");
                        json_array_append_new(json_object_get(val, "items"),
                                              json_pack("{s:s, s:s, s:s}", "time", created, "state",
                                                        state, "component", comp ? comp : ""));
                }
        }
        rate(backups);
        rate(val);
        json_object_foreach(comps, k, j) rate(j);
        return json_pack("{s:o, s:o}", "backups", backups, "validations", val);
}

static int esc(tm_buf *b, const char *s)
{
        int r = 0;

        for (; s && *s && r >= 0; s++) {
                switch (*s) {
                case '<':
                        r = tm_buf_printf(b, "&lt;");
                        break;
                case '>':
                        r = tm_buf_printf(b, "&gt;");
                        break;
                case '&':
                        r = tm_buf_printf(b, "&amp;");
                        break;
                case '"':
                        r = tm_buf_printf(b, "&quot;");
                        break;
                case '\'':
                        r = tm_buf_printf(b, "&#39;");
                        break;
                default:
                        r = tm_buf_append(b, s, 1);
                }
        }
        return r;
}

static int value(tm_buf *b, const json_t *v)
{
        char num[64];

        if (json_is_string(v))
                return esc(b, json_string_value(v));
        if (json_is_integer(v)) {
                snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
                return tm_buf_printf(b, "%s", num);
        }
        if (json_is_real(v)) {
                snprintf(num, sizeof(num), "%.3f", json_real_value(v));
                return tm_buf_printf(b, "%s", num);
        }
        if (json_is_true(v))
                return tm_buf_printf(b, "yes");
        if (json_is_false(v))
                return tm_buf_printf(b, "no");
        if (json_is_null(v) || !v)
                return tm_buf_printf(b, "&ndash;");
        {
                char *s = json_dumps(v, JSON_COMPACT);
                int r = s ? esc(b, s) : -ENOMEM;

                free(s);
                return r;
        }
}

/* An object of objects as a table: one row per key, one column per field
 * of the first row. */
static int table(tm_buf *b, const char *title, const json_t *obj, const char *keyname)
{
        const char *k, *f;
        json_t *row, *first = NULL, *v;
        int r;

        r = tm_buf_printf(b, "<h2>");
        if (r >= 0)
                r = esc(b, title);
        if (r >= 0)
                r = tm_buf_printf(b, "</h2>\n");
        if (r < 0)
                return r;
        if (!json_object_size(obj))
                return tm_buf_printf(b, "<p class=none>none in this period</p>\n");
        json_object_foreach((json_t *)obj, k, row)
        {
                if (json_is_object(row)) {
                        first = row;
                        break;
                }
        }
        r = tm_buf_printf(b, "<table><tr><th>%s</th>", keyname);
        json_object_foreach(first, f, v)
        {
                if (json_is_object(v) || json_is_array(v))
                        continue;
                if (r >= 0)
                        r = tm_buf_printf(b, "<th>");
                if (r >= 0)
                        r = esc(b, f);
                if (r >= 0)
                        r = tm_buf_printf(b, "</th>");
        }
        if (r >= 0)
                r = tm_buf_printf(b, "</tr>\n");
        json_object_foreach((json_t *)obj, k, row)
        {
                if (r >= 0)
                        r = tm_buf_printf(b, "<tr><td>");
                if (r >= 0)
                        r = esc(b, k);
                if (r >= 0)
                        r = tm_buf_printf(b, "</td>");
                json_object_foreach(first, f, v)
                {
                        if (json_is_object(v) || json_is_array(v))
                                continue;
                        if (r >= 0)
                                r = tm_buf_printf(b, "<td>");
                        if (r >= 0)
                                r = value(b, json_object_get(row, f));
                        if (r >= 0)
                                r = tm_buf_printf(b, "</td>");
                }
                if (r >= 0)
                        r = tm_buf_printf(b, "</tr>\n");
        }
        if (r >= 0)
                r = tm_buf_printf(b, "</table>\n");
        return r;
}

/* An array of objects as a table with the given columns. */
static int list(tm_buf *b, const char *title, const json_t *arr, const char *const *cols)
{
        size_t i;
        json_t *row;
        int r = tm_buf_printf(b, "<h2>");

        if (r >= 0)
                r = esc(b, title);
        if (r >= 0)
                r = tm_buf_printf(b, "</h2>\n");
        if (r < 0)
                return r;
        if (!json_array_size(arr))
                return tm_buf_printf(b, "<p class=none>none in this period</p>\n");
        r = tm_buf_printf(b, "<table><tr>");
        for (const char *const *c = cols; *c && r >= 0; c++) {
                r = tm_buf_printf(b, "<th>");
                if (r >= 0)
                        r = esc(b, *c);
                if (r >= 0)
                        r = tm_buf_printf(b, "</th>");
        }
        if (r >= 0)
                r = tm_buf_printf(b, "</tr>\n");
        json_array_foreach((json_t *)arr, i, row)
        {
                if (r >= 0)
                        r = tm_buf_printf(b, "<tr>");
                for (const char *const *c = cols; *c && r >= 0; c++) {
                        r = tm_buf_printf(b, "<td>");
                        if (r >= 0)
                                r = value(b, json_object_get(row, *c));
                        if (r >= 0)
                                r = tm_buf_printf(b, "</td>");
                }
                if (r >= 0)
                        r = tm_buf_printf(b, "</tr>\n");
        }
        if (r >= 0)
                r = tm_buf_printf(b, "</table>\n");
        return r;
}

char *tm_compliance_html(const json_t *rep)
{
        static const char *inc_cols[] = { "id",
                                          "title",
                                          "severity",
                                          "status",
                                          "created",
                                          "response_time_seconds",
                                          "resolution_time_seconds",
                                          NULL };
        static const char *drill_cols[] = { "metric", "labels", "value", NULL };
        static const char *audit_cols[] = { "path", "verified", "entries", "error", NULL };
        static const char *rb_cols[] = { "execution_id", "runbook",     "state",
                                         "created",      "incident_id", NULL };
        static const char *val_cols[] = { "time", "component", "state", NULL };
        tm_buf b = TM_BUF_INIT(16u << 20);
        const json_t *backups = json_object_get(rep, "backups");
        int r;

        r = tm_buf_printf(&b, "<!doctype html>\n<html><head><meta charset=utf-8>"
                              "<title>tidemark compliance report</title>\n<style>"
                              "body{font:14px sans-serif;margin:2em;color:#111}"
                              "table{border-collapse:collapse;margin:.5em 0 1.5em}"
                              "th,td{border:1px solid #999;padding:3px 8px;text-align:left}"
                              "th{background:#eee}.none{color:#666}"
                              "@media print{body{margin:0}h2{page-break-after:avoid}}"
                              "</style></head><body>\n<h1>tidemark compliance report</h1>\n<p>");
        if (r >= 0)
                r = tm_buf_printf(&b, "Period: ");
        if (r >= 0)
                r = value(&b, json_object_get(rep, "from"));
        if (r >= 0)
                r = tm_buf_printf(&b, " to ");
        if (r >= 0)
                r = value(&b, json_object_get(rep, "to"));
        if (r >= 0)
                r = tm_buf_printf(&b, ". Generated ");
        if (r >= 0)
                r = value(&b, json_object_get(rep, "generated"));
        if (r >= 0)
                r = tm_buf_printf(&b, ".</p>\n<h2>Backups</h2>\n<p>");
        if (r >= 0)
                r = value(&b, json_object_get(backups, "succeeded"));
        if (r >= 0)
                r = tm_buf_printf(&b, " of ");
        if (r >= 0)
                r = value(&b, json_object_get(backups, "total"));
        if (r >= 0)
                r = tm_buf_printf(&b, " backup jobs succeeded (success rate ");
        if (r >= 0)
                r = value(&b, json_object_get(backups, "success_rate_percent"));
        if (r >= 0)
                r = tm_buf_printf(&b, " %%).</p>\n");
        if (r >= 0)
                r = table(&b, "Backups by component", json_object_get(backups, "components"),
                          "component");
        if (r >= 0)
                r = list(&b, "Validations",
                         json_object_get(json_object_get(rep, "validations"), "items"), val_cols);
        if (r >= 0)
                r = list(&b, "DR drills: measured RTO and RPO", json_object_get(rep, "drills"),
                         drill_cols);
        if (r >= 0)
                r = table(&b, "SLA attainment", json_object_get(rep, "sla"), "service");
        if (r >= 0)
                r = list(&b, "Incidents",
                         json_object_get(json_object_get(rep, "incidents"), "items"), inc_cols);
        if (r >= 0)
                r = list(&b, "Runbook executions", json_object_get(rep, "runbooks"), rb_cols);
        if (r >= 0)
                r = list(&b, "Audit-log verification", json_object_get(rep, "audit_logs"),
                         audit_cols);
        if (r >= 0)
                r = list(&b, "Sources that could not be read", json_object_get(rep, "errors"),
                         (const char *const[]){ "source", "error", NULL });
        if (r >= 0)
                r = tm_buf_printf(&b, "</body></html>\n");
        if (r >= 0)
                r = tm_buf_append(&b, "", 1);
        if (r < 0) {
                tm_buf_dispose(&b);
                return NULL;
        }
        return (char *)b.data;
}
