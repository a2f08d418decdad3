#pragma once
/*
 * notify: the alert channels of [channel.NAME] sections and their delivery.
 *
 *   type = slack      url = an incoming-webhook URL (Slack's JSON)
 *   type = pagerduty  url = the Events API v2 endpoint (default
 *                     https://events.pagerduty.com/v2/enqueue), routing_key
 *                     (or routing_key_file); trigger and resolve share a
 *                     stable dedup_key
 *   type = email      url = smtp://HOST:PORT (or smtps://), from, to (list),
 *                     starttls = on|off, username, password_file (optional)
 *   type = webhook    url = any endpoint taking our JSON
 *
 * Messages are queued and delivered by a thread of their own; a channel
 * that fails is retried (attempts =, default 5, backoff 1 s doubling), and
 * its failures are counted and shown (tm_notify_stats_json).
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <tidemark/config.h>

enum tm_notify_type { TM_NOTIFY_SLACK, TM_NOTIFY_PAGERDUTY, TM_NOTIFY_EMAIL, TM_NOTIFY_WEBHOOK };

struct tm_notify_msg {
        const char *kind;     /* "alert", "incident", "test" */
        const char *status;   /* "firing" / "resolved" (alerts), "open" ... (incidents) */
        const char *name;     /* rule name, or incident id */
        const char *severity; /* critical high warning info (incidents: critical high medium low) */
        const char *title;
        const char *text;
        const char *dedup_key;
        int resolve;           /* PagerDuty: event_action resolve instead of trigger */
        int64_t at;            /* ns */
        const json_t *details; /* borrowed, optional: goes into the JSON payloads */
};

typedef struct tm_notify tm_notify;

/**
 * tm_notify_new() - load [channel.*] from cfg (no thread yet). Returns 0 and
 * *ret (caller frees), -EINVAL (err "FILE:LINE: reason"), -ENOMEM.
 */
int tm_notify_new(const struct tm_config *cfg, tm_notify **ret, char *err, size_t errlen);
/* Start the delivery thread. Returns 0 or -errno. */
int tm_notify_start(tm_notify *n);
/* Stop (delivering what is queued for at most timeout_ms) and free. NULL-safe. */
void tm_notify_free(tm_notify *n, int timeout_ms);
/* The channel names, NULL-terminated (borrowed). */
const char *const *tm_notify_names(const tm_notify *n);
size_t tm_notify_count(const tm_notify *n);

/**
 * tm_notify_send() - queue msg for each channel named in channels
 * (NULL-terminated; NULL = all). The message is copied. Returns the number
 * of deliveries queued, or -ENOSPC when the queue is full (the message is
 * dropped and counted), -ENOMEM. Thread-safe.
 */
int tm_notify_send(tm_notify *n, const struct tm_notify_msg *msg, const char *const *channels);
/**
 * tm_notify_deliver_now() - deliver msg on one channel synchronously, once
 * (no retry). Returns 0 or -errno (err says why). For tests and the bench.
 */
int tm_notify_deliver_now(tm_notify *n, const char *channel, const struct tm_notify_msg *msg,
                          char *err, size_t errlen);
/* Wait until the queue is empty (or timeout_ms). Returns 0 or -ETIMEDOUT. */
int tm_notify_drain(tm_notify *n, int timeout_ms);
/* Per-channel counters and the last error, as a JSON array. */
json_t *tm_notify_stats_json(tm_notify *n);
/* Per-channel counters for metrics: calls fn(name, type, sent, failed,
 * up(0/1), pending) for each channel. */
void tm_notify_stats_each(tm_notify *n,
                          void (*fn)(const char *name, const char *type, uint64_t sent,
                                     uint64_t failed, int up, void *ud),
                          void *ud);

/* The JSON body a channel of this type posts for msg (new reference), or
 * NULL (email has none). routing_key only for PagerDuty. */
json_t *tm_notify_payload(enum tm_notify_type type, const struct tm_notify_msg *msg,
                          const char *routing_key);
const char *tm_notify_type_name(enum tm_notify_type t);
