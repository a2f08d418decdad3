/*
 * The alert state machine. Kept free of I/O and of the clock (now is a
 * parameter), so its every transition is unit-tested with a fake clock.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/alert.h>
#include <tidemark/core.h>
#include <tidemark/time.h>

#define MAX_SILENCES 256

enum state { ST_INACTIVE, ST_PENDING, ST_FIRING };

struct alert_state {
        enum state st;
        int64_t since, fired_at, notified_at;
        double value;
        char message[512];
        char incident[64];
};

struct silence {
        uint64_t id;
        char rule[128];
        int64_t from, until;
        char comment[256], author[64];
};

struct tm_alerts {
        pthread_mutex_t lock;
        struct tm_alert_rule *rules;
        struct alert_state *st;
        size_t n;
        struct silence sil[MAX_SILENCES];
        size_t n_sil;
        uint64_t next_sil;
};

static const char *sev_names[] = { "critical", "high", "warning", "info" };

const char *tm_alert_severity_name(enum tm_alert_severity s)
{
        return sev_names[s];
}

int tm_alert_severity_parse(const char *s, enum tm_alert_severity *ret)
{
        for (size_t i = 0; i < TM_ARRAY_SIZE(sev_names); i++)
                if (!strcmp(s, sev_names[i])) {
                        *ret = (enum tm_alert_severity)i;
                        return 0;
                }
        return -EINVAL;
}

static void rule_dispose(struct tm_alert_rule *r)
{
        free(r->name);
        free(r->check);
        free(r->metric);
        free(r->summary);
        free(r->runbook);
        tm_probe_strv_free(r->matchers);
        tm_probe_strv_free(r->channels);
}

void tm_alerts_free(tm_alerts *a)
{
        if (!a)
                return;
        for (size_t i = 0; i < a->n; i++)
                rule_dispose(&a->rules[i]);
        free(a->rules);
        free(a->st);
        pthread_mutex_destroy(&a->lock);
        free(a);
}

size_t tm_alerts_count(const tm_alerts *a)
{
        return a->n;
}

const struct tm_alert_rule *tm_alerts_rule(const tm_alerts *a, size_t i)
{
        return i < a->n ? &a->rules[i] : NULL;
}

static int load_rule(const struct tm_config *cfg, const struct tm_probe_config *pc,
                     const char *const *channels, const struct tm_config_section *s,
                     struct tm_alert_rule *ar, char *err, size_t errlen)
{
        static const char *keys[] = { "check",     "service",  "metric",          "labels",
                                      "aggregate", "op",       "threshold",       "for",
                                      "severity",  "channels", "repeat_interval", "summary",
                                      "runbook" };
        const char *v;

        if (tm_config_section_check_keys(cfg, s, keys, TM_ARRAY_SIZE(keys), err, errlen) < 0)
                return -EINVAL;
        ar->name = strdup(s->name + strlen("alert."));
        if (!ar->name)
                return -ENOMEM;
        v = tm_config_section_get(s, "check");
        if (v) {
                if (!tm_probe_check_find(pc, v))
                        return tm_config_section_error(cfg, s, "check", err, errlen,
                                                       "no [check.%s] for this alert", v);
                ar->check = strdup(v);
                if (!ar->check)
                        return -ENOMEM;
        } else {
                char *e;

                v = tm_config_section_get(s, "metric");
                if (!v)
                        return tm_config_section_error(
                                cfg, s, NULL, err, errlen,
                                "[%s] needs check = NAME, or metric = NAME with service, op "
                                "and threshold",
                                s->name);
                ar->metric = strdup(v);
                if (!ar->metric)
                        return -ENOMEM;
                v = tm_config_section_get(s, "service");
                ar->service = v ? tm_probe_service_find(pc, v) : NULL;
                if (!ar->service)
                        return tm_config_section_error(cfg, s, "service", err, errlen,
                                                       "[%s] needs service = NAME of a "
                                                       "[service.NAME] to read the metric from",
                                                       s->name);
                v = tm_config_section_get(s, "op");
                if (v && tm_probe_op_parse(v, &ar->op) < 0)
                        return tm_config_section_error(cfg, s, "op", err, errlen,
                                                       "op must be > >= < <= == or !=, not '%s'",
                                                       v);
                v = tm_config_section_get(s, "threshold");
                if (!v)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "[%s] needs threshold = NUMBER", s->name);
                ar->threshold = strtod(v, &e);
                if (*e || e == v)
                        return tm_config_section_error(cfg, s, "threshold", err, errlen,
                                                       "threshold must be a number, not '%s'", v);
                v = tm_config_section_get(s, "aggregate");
                if (v && tm_promtext_agg_parse(v, &ar->agg) < 0)
                        return tm_config_section_error(
                                cfg, s, "aggregate", err, errlen,
                                "aggregate must be max, min, sum or count, not '%s'", v);
                v = tm_config_section_get(s, "labels");
                if (v && tm_probe_strv_split(v, &ar->matchers) < 0)
                        return -ENOMEM;
                for (char **m = ar->matchers; m && *m; m++)
                        if (!strchr(*m, '=') || **m == '=')
                                return tm_config_section_error(
                                        cfg, s, "labels", err, errlen,
                                        "labels must be NAME=VALUE ..., not '%s'", *m);
        }
        v = tm_config_section_get(s, "for");
        if (v && (tm_config_parse_duration(v, &ar->for_ns) < 0 || ar->for_ns < 0))
                return tm_config_section_error(cfg, s, "for", err, errlen,
                                               "for must be a duration such as 5m, not '%s'", v);
        ar->repeat_ns = 4 * 3600 * TM_NSEC_PER_SEC;
        v = tm_config_section_get(s, "repeat_interval");
        if (v && strcmp(v, "never") &&
            (tm_config_parse_duration(v, &ar->repeat_ns) < 0 || ar->repeat_ns <= 0))
                return tm_config_section_error(cfg, s, "repeat_interval", err, errlen,
                                               "repeat_interval must be a duration or never, "
                                               "not '%s'",
                                               v);
        if (v && !strcmp(v, "never"))
                ar->repeat_ns = 0;
        ar->severity = TM_ALERT_WARNING;
        v = tm_config_section_get(s, "severity");
        if (v && tm_alert_severity_parse(v, &ar->severity) < 0)
                return tm_config_section_error(cfg, s, "severity", err, errlen,
                                               "severity must be critical, high, warning or "
                                               "info, not '%s'",
                                               v);
        v = tm_config_section_get(s, "channels");
        if (v) {
                if (tm_probe_strv_split(v, &ar->channels) < 0)
                        return -ENOMEM;
                for (char **c = ar->channels; *c; c++) {
                        const char *const *k = channels;

                        while (k && *k && strcmp(*k, *c))
                                k++;
                        if (!k || !*k)
                                return tm_config_section_error(cfg, s, "channels", err, errlen,
                                                               "no [channel.%s] for this alert",
                                                               *c);
                }
        }
        v = tm_config_section_get(s, "summary");
        ar->summary = strdup(v ? v : ar->name);
        if (!ar->summary)
                return -ENOMEM;
        v = tm_config_section_get(s, "runbook");
        if (v && !(ar->runbook = strdup(v)))
                return -ENOMEM;
        return 0;
}

int tm_alerts_new(const struct tm_config *cfg, const struct tm_probe_config *pc,
                  const char *const *channel_names, tm_alerts **ret, char *err, size_t errlen)
{
        tm_alerts *a = calloc(1, sizeof(*a));
        int r = 0;

        if (!a)
                return -ENOMEM;
        pthread_mutex_init(&a->lock, NULL);
        a->next_sil = 1;
        a->rules = calloc(cfg->n_sections + 1, sizeof(*a->rules));
        a->st = calloc(cfg->n_sections + 1, sizeof(*a->st));
        if (!a->rules || !a->st) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < cfg->n_sections; i++) {
                if (strncmp(cfg->sections[i].name, "alert.", 6))
                        continue;
                r = load_rule(cfg, pc, channel_names, &cfg->sections[i], &a->rules[a->n++], err,
                              errlen);
                if (r < 0)
                        goto out;
        }
out:
        if (r < 0) {
                if (r == -ENOMEM)
                        snprintf(err, errlen, "out of memory");
                tm_alerts_free(a);
                return r;
        }
        *ret = a;
        return 0;
}

static int silenced_locked(tm_alerts *a, const char *rule, int64_t now)
{
        for (size_t i = 0; i < a->n_sil; i++)
                if (a->sil[i].until > now && a->sil[i].from <= now &&
                    (!strcmp(a->sil[i].rule, "*") || !strcmp(a->sil[i].rule, rule)))
                        return 1;
        return 0;
}

int tm_alerts_observe(tm_alerts *a, size_t i, int active, double value, const char *message,
                      int64_t now, struct tm_alert_event *ev)
{
        struct alert_state *s;
        const struct tm_alert_rule *r;
        int emit = 0;

        if (i >= a->n)
                return 0;
        pthread_mutex_lock(&a->lock);
        s = &a->st[i];
        r = &a->rules[i];
        if (active) {
                s->value = value;
                snprintf(s->message, sizeof(s->message), "%s", message ? message : "");
                if (s->st == ST_INACTIVE) {
                        s->st = ST_PENDING;
                        s->since = now;
                }
                if (s->st == ST_PENDING && now - s->since >= r->for_ns) {
                        s->st = ST_FIRING;
                        s->fired_at = now;
                        s->notified_at = now;
                        s->incident[0] = '\0';
                        ev->kind = TM_ALERT_EV_FIRING;
                        emit = 1;
                } else if (s->st == ST_FIRING && r->repeat_ns &&
                           now - s->notified_at >= r->repeat_ns) {
                        s->notified_at = now;
                        ev->kind = TM_ALERT_EV_REPEAT;
                        emit = 1;
                }
        } else {
                if (s->st == ST_FIRING) {
                        ev->kind = TM_ALERT_EV_RESOLVED;
                        emit = 1;
                        if (message)
                                snprintf(s->message, sizeof(s->message), "%s", message);
                        s->value = value;
                }
                s->st = ST_INACTIVE;
        }
        if (emit) {
                ev->rule = r;
                ev->value = s->value;
                ev->started = s->since;
                ev->at = now;
                snprintf(ev->message, sizeof(ev->message), "%s", s->message);
                snprintf(ev->dedup_key, sizeof(ev->dedup_key), "tidemark/alert/%s", r->name);
                ev->silenced = silenced_locked(a, r->name, now);
        }
        pthread_mutex_unlock(&a->lock);
        return emit;
}

int tm_alerts_set_incident(tm_alerts *a, size_t i, const char *incident_id)
{
        if (i >= a->n)
                return -ENOENT;
        pthread_mutex_lock(&a->lock);
        snprintf(a->st[i].incident, sizeof(a->st[i].incident), "%s", incident_id);
        pthread_mutex_unlock(&a->lock);
        return 0;
}

void tm_alerts_incident(tm_alerts *a, size_t i, char *out, size_t n)
{
        out[0] = '\0';
        if (i >= a->n)
                return;
        pthread_mutex_lock(&a->lock);
        snprintf(out, n, "%s", a->st[i].incident);
        pthread_mutex_unlock(&a->lock);
}

json_t *tm_alerts_active_json(tm_alerts *a, int64_t now, int pending)
{
        json_t *arr = json_array();

        if (!arr)
                return NULL;
        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < a->n; i++) {
                struct alert_state *s = &a->st[i];
                const struct tm_alert_rule *r = &a->rules[i];
                char since[40], key[160];
                json_t *o;

                if (s->st == ST_INACTIVE || (s->st == ST_PENDING && !pending))
                        continue;
                tm_time_format(s->since, since, sizeof(since));
                snprintf(key, sizeof(key), "tidemark/alert/%s", r->name);
                o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:b}", "name", r->name,
                              "state", s->st == ST_FIRING ? "firing" : "pending", "severity",
                              sev_names[r->severity], "summary", r->summary, "message", s->message,
                              "since", since, "dedup_key", key, "duration_seconds",
                              (double)(now - s->since) / 1e9, "silenced",
                              silenced_locked(a, r->name, now));
                if (!o)
                        continue;
                if (!isnan(s->value) && !isinf(s->value))
                        json_object_set_new(o, "value", json_real(s->value));
                if (s->incident[0])
                        json_object_set_new(o, "incident_id", json_string(s->incident));
                if (r->runbook)
                        json_object_set_new(o, "runbook", json_string(r->runbook));
                json_array_append_new(arr, o);
        }
        pthread_mutex_unlock(&a->lock);
        return arr;
}

void tm_alerts_firing_counts(tm_alerts *a, unsigned counts[4])
{
        memset(counts, 0, 4 * sizeof(*counts));
        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < a->n; i++)
                if (a->st[i].st == ST_FIRING)
                        counts[a->rules[i].severity]++;
        pthread_mutex_unlock(&a->lock);
}

int tm_alerts_silence(tm_alerts *a, const char *rule, int64_t until, const char *comment,
                      const char *author, int64_t now, uint64_t *ret_id)
{
        int found = !strcmp(rule, "*"), r = 0;

        for (size_t i = 0; !found && i < a->n; i++)
                found = !strcmp(a->rules[i].name, rule);
        if (!found)
                return -ENOENT;
        if (until <= now)
                return -EINVAL;
        pthread_mutex_lock(&a->lock);
        /* expired silences make room */
        for (size_t i = 0; i < a->n_sil;)
                if (a->sil[i].until <= now)
                        a->sil[i] = a->sil[--a->n_sil];
                else
                        i++;
        if (a->n_sil == MAX_SILENCES) {
                r = -ENOSPC;
        } else {
                struct silence *s = &a->sil[a->n_sil++];

                memset(s, 0, sizeof(*s));
                s->id = a->next_sil++;
                snprintf(s->rule, sizeof(s->rule), "%s", rule);
                snprintf(s->comment, sizeof(s->comment), "%s", comment ? comment : "");
                snprintf(s->author, sizeof(s->author), "%s", author ? author : "");
                s->from = now;
                s->until = until;
                *ret_id = s->id;
        }
        pthread_mutex_unlock(&a->lock);
        return r;
}

int tm_alerts_unsilence(tm_alerts *a, uint64_t id)
{
        int r = -ENOENT;

        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < a->n_sil; i++)
                if (a->sil[i].id == id) {
                        a->sil[i] = a->sil[--a->n_sil];
                        r = 0;
                        break;
                }
        pthread_mutex_unlock(&a->lock);
        return r;
}

json_t *tm_alerts_silences_json(tm_alerts *a, int64_t now)
{
        json_t *arr = json_array();

        if (!arr)
                return NULL;
        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < a->n_sil; i++) {
                char from[40], until[40];

                if (a->sil[i].until <= now)
                        continue;
                tm_time_format(a->sil[i].from, from, sizeof(from));
                tm_time_format(a->sil[i].until, until, sizeof(until));
                json_array_append_new(arr,
                                      json_pack("{s:I, s:s, s:s, s:s, s:s, s:s}", "id",
                                                (json_int_t)a->sil[i].id, "alert", a->sil[i].rule,
                                                "from", from, "until", until, "comment",
                                                a->sil[i].comment, "author", a->sil[i].author));
        }
        pthread_mutex_unlock(&a->lock);
        return arr;
}
