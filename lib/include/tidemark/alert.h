#pragma once
/*
 * alert: alert rules and their state. [alert.NAME] declares a condition (a
 * check that fails, or a metric compared with a threshold), how long it must
 * hold (for =), a severity, the channels to notify and how often to repeat
 * while it lasts (repeat_interval =). The engine turns observations of the
 * condition into events: one "firing" when it has held for its duration,
 * "repeat" every repeat interval, one "resolved" when it ends. As in
 * Prometheus, an alert is a rule and a label set: a rule over a metric with
 * several series (backup age per component, lag per replica) fires one
 * alert per series, each with its own dedup key, pending time and
 * resolution, so a condition seen a thousand times notifies once per
 * series. Silences mute notifications (not state) for a while, by rule name
 * or for every rule ("*").
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <tidemark/config.h>
#include <tidemark/probe.h>

enum tm_alert_severity { TM_ALERT_CRITICAL, TM_ALERT_HIGH, TM_ALERT_WARNING, TM_ALERT_INFO };

struct tm_alert_rule {
        char *name;
        char *check; /* the condition is "this check is failing", or: */
        const struct tm_probe_service *service;
        char *metric;
        char **matchers;
        enum tm_promtext_agg agg;
        int per_series; /* metric rules without aggregate =: one alert per series */
        enum tm_probe_op op;
        double threshold;
        int64_t for_ns, repeat_ns; /* repeat 0: never */
        enum tm_alert_severity severity;
        char **channels; /* NULL-terminated; NULL: every channel */
        char *summary;
        char *runbook; /* optional: suggested in the notification */
};

enum tm_alert_event_kind { TM_ALERT_EV_FIRING, TM_ALERT_EV_REPEAT, TM_ALERT_EV_RESOLVED };

/* Labels of a series: a JSON object of strings, shown as k="v",k2="v2"
 * (sorted by name); at most this long. */
#define TM_ALERT_LABELS_MAX 256

struct tm_alert_event {
        enum tm_alert_event_kind kind;
        const struct tm_alert_rule *rule; /* borrowed from the engine */
        char message[512];
        double value;
        int64_t started; /* when the condition began (ns) */
        int64_t at;
        int silenced; /* the caller records it but does not notify */
        char dedup_key[TM_ALERT_LABELS_MAX + 160]; /* tidemark/alert/RULE{LABELS} */
        char labels[TM_ALERT_LABELS_MAX];          /* k="v",...; "" for the rule's one series */
        json_t *labels_json; /* owned (NULL: no labels); tm_alert_events_free */
        char incident[64];   /* the incident this alert opened, if any */
};

/* One series of an evaluation: labels NULL (or empty) is the rule's one
 * series; message may be NULL. */
struct tm_alert_sample {
        const json_t *labels;
        int active;
        double value;
        const char *message;
};

typedef struct tm_alerts tm_alerts;

/**
 * tm_alerts_new() - load the [alert.*] sections of cfg. A rule's check,
 * service and channels must exist (channel_names is NULL-terminated).
 * Returns 0 and *ret (caller frees), -EINVAL (err "FILE:LINE: reason"),
 * -ENOMEM. Every function below is thread-safe.
 */
int tm_alerts_new(const struct tm_config *cfg, const struct tm_probe_config *pc,
                  const char *const *channel_names, tm_alerts **ret, char *err, size_t errlen);
void tm_alerts_free(tm_alerts *a);
size_t tm_alerts_count(const tm_alerts *a);
const struct tm_alert_rule *tm_alerts_rule(const tm_alerts *a, size_t i);
const char *tm_alert_severity_name(enum tm_alert_severity s);
int tm_alert_severity_parse(const char *s, enum tm_alert_severity *ret);

/**
 * tm_alerts_observe() - the condition of rule i's one series (no labels) is
 * (active) at now, with value and message. Other series of the rule are
 * left alone. Returns 1 and fills *ev when something is to be notified (or
 * recorded, if ev->silenced), 0 otherwise; ev->labels_json is NULL.
 */
int tm_alerts_observe(tm_alerts *a, size_t i, int active, double value, const char *message,
                      int64_t now, struct tm_alert_event *ev);
/**
 * tm_alerts_eval() - one evaluation of rule i that produced the series in
 * samples (active or not). A series the rule had pending or firing that is
 * not among them has ended and resolves with absent_message, as in
 * Prometheus. A rule keeps at most 1000 series; more are ignored.
 * Returns the number of events (>= 0) and *ret_evs (free with
 * tm_alert_events_free), or -ENOMEM.
 */
int tm_alerts_eval(tm_alerts *a, size_t i, const struct tm_alert_sample *samples, size_t n,
                   const char *absent_message, int64_t now, struct tm_alert_event **ret_evs);
/* Free the events of tm_alerts_eval (their labels too); NULL-safe. */
void tm_alert_events_free(struct tm_alert_event *evs, size_t n);
/* Remember the incident the alert of ev opened (so it is not opened twice
 * and its resolution reaches it). Returns 0 or -ENOENT (no such series). */
int tm_alerts_set_incident(tm_alerts *a, const struct tm_alert_event *ev, const char *incident_id);
/* Firing alerts (and pending ones with pending=1) as a JSON array, one
 * entry per series with its "labels" object. */
json_t *tm_alerts_active_json(tm_alerts *a, int64_t now, int pending);
/* Number of firing alerts (series) by severity (array of 4). */
void tm_alerts_firing_counts(tm_alerts *a, unsigned counts[4]);

/**
 * tm_alerts_silence() - mute rule (a rule name, or "*") until `until`.
 * Returns 0 and the new silence's id in *ret_id, -ENOENT (no such rule),
 * -EINVAL (until not in the future), -ENOSPC (too many silences).
 */
int tm_alerts_silence(tm_alerts *a, const char *rule, int64_t until, const char *comment,
                      const char *author, int64_t now, uint64_t *ret_id);
/* Lift a silence. Returns 0 or -ENOENT. */
int tm_alerts_unsilence(tm_alerts *a, uint64_t id);
/* Silences still in force at now, as a JSON array. */
json_t *tm_alerts_silences_json(tm_alerts *a, int64_t now);
