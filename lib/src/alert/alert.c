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
#define MAX_SERIES 1000 /* per rule */

enum state { ST_INACTIVE, ST_PENDING, ST_FIRING };

/* One series of a rule: a label set and where its condition stands. A
 * series that becomes inactive is dropped, so a rule holds only what is
 * pending or firing. */
struct alert_state {
        char key[TM_ALERT_LABELS_MAX];    /* the labels as sorted compact JSON; "" for none */
        char labels[TM_ALERT_LABELS_MAX]; /* k="v",... */
        json_t *labels_json;              /* NULL for none */
        enum state st;
        int64_t since, fired_at, notified_at;
        double value;
        char message[512];
        char incident[64];
};

struct rule_state {
        struct alert_state *s;
        size_t n, cap;
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
        struct rule_state *st;
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
        for (size_t i = 0; i < a->n; i++) {
                rule_dispose(&a->rules[i]);
                for (size_t k = 0; k < a->st[i].n; k++)
                        json_decref(a->st[i].s[k].labels_json);
                free(a->st[i].s);
        }
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
                ar->per_series = !v;
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

/* The labels of a series as its identity (sorted compact JSON) and as
 * text (k="v",... sorted by name). Returns -E2BIG when they are too long. */
static int labels_format(const json_t *labels, char *key, char *text)
{
        const char *names[64], *k;
        size_t n = 0, len = 0;
        json_t *v;
        char *dump;

        key[0] = text[0] = '\0';
        if (!labels || !json_object_size(labels))
                return 0;
        if (!json_is_object(labels) || json_object_size(labels) > TM_ARRAY_SIZE(names))
                return -EINVAL;
        dump = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
        if (!dump)
                return -ENOMEM;
        if (strlen(dump) >= TM_ALERT_LABELS_MAX) {
                free(dump);
                return -E2BIG;
        }
        memcpy(key, dump, strlen(dump) + 1);
        free(dump);
        json_object_foreach((json_t *)labels, k, v)
        {
                size_t j = n++;

                /* insertion sort: a handful of labels */
                while (j > 0 && strcmp(names[j - 1], k) > 0) {
                        names[j] = names[j - 1];
                        j--;
                }
                names[j] = k;
        }
        for (size_t i = 0; i < n; i++) {
                const char *val = json_string_value(json_object_get(labels, names[i]));
                int w = snprintf(text + len, TM_ALERT_LABELS_MAX - len, "%s%s=\"%s\"",
                                 i ? "," : "", names[i], val ? val : "");

                if (w < 0 || (size_t)w >= TM_ALERT_LABELS_MAX - len)
                        return -E2BIG;
                len += (size_t)w;
        }
        return 0;
}

static void dedup_key(const struct tm_alert_rule *r, const char *labels, char *out, size_t n)
{
        if (labels[0])
                snprintf(out, n, "tidemark/alert/%s{%s}", r->name, labels);
        else
                snprintf(out, n, "tidemark/alert/%s", r->name);
}

static struct alert_state *series_find(struct rule_state *rs, const char *key)
{
        for (size_t k = 0; k < rs->n; k++)
                if (!strcmp(rs->s[k].key, key))
                        return &rs->s[k];
        return NULL;
}

static struct alert_state *series_add(struct rule_state *rs, const char *key, const char *text,
                                      const json_t *labels)
{
        struct alert_state *st;

        if (rs->n == MAX_SERIES)
                return NULL;
        if (rs->n == rs->cap) {
                size_t cap = rs->cap ? 2 * rs->cap : 4;
                struct alert_state *p = realloc(rs->s, cap * sizeof(*p));

                if (!p)
                        return NULL;
                rs->s = p;
                rs->cap = cap;
        }
        st = &rs->s[rs->n++];
        memset(st, 0, sizeof(*st));
        snprintf(st->key, sizeof(st->key), "%s", key);
        snprintf(st->labels, sizeof(st->labels), "%s", text);
        st->labels_json = key[0] ? json_deep_copy(labels) : NULL;
        return st;
}

static void series_drop(struct rule_state *rs, struct alert_state *st)
{
        json_decref(st->labels_json);
        *st = rs->s[--rs->n];
}

/* Step one series; fills ev (without labels_json) and returns 1 when
 * something is to be notified. An inactive series is dropped (st is then
 * invalid). */
static int series_step(tm_alerts *a, size_t i, struct alert_state *st, int active, double value,
                       const char *message, int64_t now, struct tm_alert_event *ev)
{
        struct rule_state *rs = &a->st[i];
        const struct tm_alert_rule *r = &a->rules[i];
        int emit = 0;

        if (active) {
                st->value = value;
                snprintf(st->message, sizeof(st->message), "%s", message ? message : "");
                if (st->st == ST_INACTIVE) {
                        st->st = ST_PENDING;
                        st->since = now;
                }
                if (st->st == ST_PENDING && now - st->since >= r->for_ns) {
                        st->st = ST_FIRING;
                        st->fired_at = now;
                        st->notified_at = now;
                        st->incident[0] = '\0';
                        ev->kind = TM_ALERT_EV_FIRING;
                        emit = 1;
                } else if (st->st == ST_FIRING && r->repeat_ns &&
                           now - st->notified_at >= r->repeat_ns) {
                        st->notified_at = now;
                        ev->kind = TM_ALERT_EV_REPEAT;
                        emit = 1;
                }
        } else if (st->st == ST_FIRING) {
                ev->kind = TM_ALERT_EV_RESOLVED;
                emit = 1;
                if (message)
                        snprintf(st->message, sizeof(st->message), "%s", message);
                st->value = value;
        }
        if (emit) {
                ev->rule = r;
                ev->value = st->value;
                ev->started = st->since;
                ev->at = now;
                snprintf(ev->message, sizeof(ev->message), "%s", st->message);
                snprintf(ev->labels, sizeof(ev->labels), "%s", st->labels);
                snprintf(ev->incident, sizeof(ev->incident), "%s", st->incident);
                dedup_key(r, st->labels, ev->dedup_key, sizeof(ev->dedup_key));
                ev->labels_json = NULL;
                ev->silenced = silenced_locked(a, r->name, now);
        }
        if (!active)
                series_drop(rs, st);
        return emit;
}

int tm_alerts_observe(tm_alerts *a, size_t i, int active, double value, const char *message,
                      int64_t now, struct tm_alert_event *ev)
{
        struct alert_state *st;
        int emit = 0;

        if (i >= a->n)
                return 0;
        pthread_mutex_lock(&a->lock);
        st = series_find(&a->st[i], "");
        if (!st && active)
                st = series_add(&a->st[i], "", "", NULL);
        if (st)
                emit = series_step(a, i, st, active, value, message, now, ev);
        pthread_mutex_unlock(&a->lock);
        return emit;
}

void tm_alert_events_free(struct tm_alert_event *evs, size_t n)
{
        for (size_t k = 0; evs && k < n; k++)
                json_decref(evs[k].labels_json);
        free(evs);
}

int tm_alerts_eval(tm_alerts *a, size_t i, const struct tm_alert_sample *samples, size_t n,
                   const char *absent_message, int64_t now, struct tm_alert_event **ret_evs)
{
        struct tm_alert_event *evs = NULL;
        struct rule_state *rs;
        size_t n_ev = 0, cap;
        char (*keys)[TM_ALERT_LABELS_MAX] = NULL;
        int r = 0;

        *ret_evs = NULL;
        if (i >= a->n)
                return 0;
        keys = calloc(n + 1, sizeof(*keys));
        if (!keys)
                return -ENOMEM;
        pthread_mutex_lock(&a->lock);
        rs = &a->st[i];
        /* at most one event per sample and one per series that ended */
        cap = n + rs->n;
        evs = calloc(cap + 1, sizeof(*evs));
        if (!evs) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t k = 0; k < n; k++) {
                char text[TM_ALERT_LABELS_MAX];
                struct alert_state *st;

                /* a label set too long to tell apart is left out */
                if (labels_format(samples[k].labels, keys[k], text) < 0) {
                        keys[k][0] = '\x01';
                        continue;
                }
                st = series_find(rs, keys[k]);
                if (!st && samples[k].active)
                        st = series_add(rs, keys[k], text, samples[k].labels);
                if (!st)
                        continue;
                if (series_step(a, i, st, samples[k].active, samples[k].value, samples[k].message,
                                now, &evs[n_ev])) {
                        if (keys[k][0])
                                evs[n_ev].labels_json = json_deep_copy(samples[k].labels);
                        n_ev++;
                }
        }
        /* the series this evaluation did not produce have ended */
        for (size_t k = 0; k < rs->n;) {
                struct alert_state *st = &rs->s[k];
                json_t *lj = st->labels_json ? json_incref(st->labels_json) : NULL;
                int seen = 0;

                for (size_t j = 0; j < n && !seen; j++)
                        seen = !strcmp(keys[j], st->key);
                if (seen) {
                        json_decref(lj);
                        k++;
                        continue;
                }
                if (n_ev < cap && series_step(a, i, st, 0, NAN, absent_message, now, &evs[n_ev]))
                        evs[n_ev++].labels_json = lj;
                else
                        json_decref(lj);
                /* st was dropped: rs->s[k] is now another series */
        }
out:
        pthread_mutex_unlock(&a->lock);
        free(keys);
        if (r < 0) {
                tm_alert_events_free(evs, n_ev);
                return r;
        }
        *ret_evs = evs;
        return (int)n_ev;
}

int tm_alerts_set_incident(tm_alerts *a, const struct tm_alert_event *ev, const char *incident_id)
{
        char key[TM_ALERT_LABELS_MAX], text[TM_ALERT_LABELS_MAX];
        struct alert_state *st = NULL;
        size_t i = 0;
        int r = -ENOENT;

        while (i < a->n && ev->rule != &a->rules[i])
                i++;
        if (i == a->n)
                return -ENOENT;
        if (labels_format(ev->labels_json, key, text) < 0)
                return -ENOENT;
        pthread_mutex_lock(&a->lock);
        st = series_find(&a->st[i], key);
        if (st) {
                snprintf(st->incident, sizeof(st->incident), "%s", incident_id);
                r = 0;
        }
        pthread_mutex_unlock(&a->lock);
        return r;
}

json_t *tm_alerts_active_json(tm_alerts *a, int64_t now, int pending)
{
        json_t *arr = json_array();

        if (!arr)
                return NULL;
        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < a->n; i++)
        for (size_t k = 0; k < a->st[i].n; k++) {
                struct alert_state *s = &a->st[i].s[k];
                const struct tm_alert_rule *r = &a->rules[i];
                char since[40], key[TM_ALERT_LABELS_MAX + 160];
                json_t *o;

                if (s->st == ST_INACTIVE || (s->st == ST_PENDING && !pending))
                        continue;
                tm_time_format(s->since, since, sizeof(since));
                dedup_key(r, s->labels, key, sizeof(key));
                o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:b}", "name", r->name,
                              "state", s->st == ST_FIRING ? "firing" : "pending", "severity",
                              sev_names[r->severity], "summary", r->summary, "message", s->message,
                              "since", since, "dedup_key", key, "duration_seconds",
                              (double)(now - s->since) / 1e9, "silenced",
                              silenced_locked(a, r->name, now));
                if (!o)
                        continue;
                json_object_set_new(o, "labels",
                                    s->labels_json ? json_deep_copy(s->labels_json) : json_object());
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
                for (size_t k = 0; k < a->st[i].n; k++)
                        if (a->st[i].s[k].st == ST_FIRING)
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
