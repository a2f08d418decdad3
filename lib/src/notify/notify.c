/*
 * Channels. The payload builders are pure (unit-tested against the shapes
 * Slack, PagerDuty Events v2 and our webhook document); delivery is one
 * thread that works through a bounded queue, so a slow or dead endpoint
 * never blocks the checks or the API.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tidemark/core.h>
#include <tidemark/httpc.h>
#include <tidemark/log.h>
#include <tidemark/notify.h>
#include <tidemark/probe.h>
#include <tidemark/time.h>

#define QUEUE_MAX 4096

struct channel {
        char *name;
        enum tm_notify_type type;
        char *url, *routing_key, *from, *username, *password;
        char **to;
        int starttls, insecure, attempts;
        int64_t timeout_ns;
        /* stats, under the notifier's lock */
        uint64_t sent, failed, dropped, retries;
        int up; /* last delivery succeeded (1 before any) */
        char last_error[256];
        int64_t last_ok, last_fail;
};

struct item {
        struct item *next;
        struct channel *ch;
        int attempt;
        int64_t not_before; /* mono ns */
        json_t *payload;    /* webhook-style channels */
        char *subject, *text;
};

struct tm_notify {
        struct channel *ch;
        size_t n;
        const char **names;
        pthread_mutex_t lock;
        pthread_cond_t cond, idle;
        struct item *head, *tail;
        size_t queued, inflight;
        int stopping, started;
        pthread_t thread;
};

static const char *type_names[] = { "slack", "pagerduty", "email", "webhook" };

const char *tm_notify_type_name(enum tm_notify_type t)
{
        return type_names[t];
}

static void channel_dispose(struct channel *c)
{
        free(c->name);
        free(c->url);
        free(c->routing_key);
        free(c->from);
        free(c->username);
        if (c->password) {
                for (volatile char *p = c->password; *p; p++)
                        *p = 0;
                free(c->password);
        }
        tm_probe_strv_free(c->to);
}

static int read_secret(const char *path, char **ret)
{
        tm_buf b = TM_BUF_INIT(4096);

        if (tm_file_read_all(path, 4096, &b) < 0 || tm_buf_append(&b, "", 1) < 0) {
                tm_buf_dispose_secret(&b);
                return -EIO;
        }
        *ret = (char *)b.data;
        (*ret)[strcspn(*ret, "\r\n")] = '\0';
        return 0;
}

static int load_channel(const struct tm_config *cfg, const struct tm_config_section *s,
                        struct channel *c, char *err, size_t errlen)
{
        static const char *keys[] = {
                "type",     "url",      "routing_key", "routing_key_file", "from",
                "to",       "starttls", "username",    "password",         "password_file",
                "insecure", "attempts", "timeout"
        };
        const char *type = tm_config_section_get(s, "type"), *v;

        if (tm_config_section_check_keys(cfg, s, keys, TM_ARRAY_SIZE(keys), err, errlen) < 0)
                return -EINVAL;
        c->name = strdup(s->name + strlen("channel."));
        if (!c->name)
                return -ENOMEM;
        c->up = 1;
        if (!type)
                return tm_config_section_error(cfg, s, NULL, err, errlen,
                                               "[%s] needs type = slack, pagerduty, email or "
                                               "webhook",
                                               s->name);
        {
                size_t k = 0;

                while (k < TM_ARRAY_SIZE(type_names) && strcmp(type_names[k], type))
                        k++;
                if (k == TM_ARRAY_SIZE(type_names))
                        return tm_config_section_error(
                                cfg, s, "type", err, errlen,
                                "type must be slack, pagerduty, email or webhook, not '%s'", type);
                c->type = (enum tm_notify_type)k;
        }
        v = tm_config_section_get(s, "url");
        if (!v && c->type == TM_NOTIFY_PAGERDUTY)
                v = "https://events.pagerduty.com/v2/enqueue";
        if (!v && c->type == TM_NOTIFY_SLACK)
                v = cfg->slack_webhook_url; /* [secrets] slack_webhook_url / SLACK_WEBHOOK_URL */
        if (!v)
                return tm_config_section_error(cfg, s, NULL, err, errlen,
                                               "[%s] needs url =", s->name);
        if (c->type == TM_NOTIFY_EMAIL ? strncmp(v, "smtp://", 7) && strncmp(v, "smtps://", 8)
                                       : strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
                return tm_config_section_error(
                        cfg, s, "url", err, errlen, "url must start with %s, not '%s'",
                        c->type == TM_NOTIFY_EMAIL ? "smtp:// or smtps://" : "http:// or https://",
                        v);
        c->url = strdup(v);
        if (!c->url)
                return -ENOMEM;
        if (c->type == TM_NOTIFY_PAGERDUTY) {
                v = tm_config_section_get(s, "routing_key");
                if (v)
                        c->routing_key = strdup(v);
                else if ((v = tm_config_section_get(s, "routing_key_file")) &&
                         read_secret(v, &c->routing_key) < 0)
                        return tm_config_section_error(cfg, s, "routing_key_file", err, errlen,
                                                       "cannot read '%s'", v);
                if (!c->routing_key)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "[%s] needs routing_key or "
                                                       "routing_key_file",
                                                       s->name);
        }
        if (c->type == TM_NOTIFY_EMAIL) {
                v = tm_config_section_get(s, "from");
                if (!v)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "[%s] needs from = ADDRESS", s->name);
                c->from = strdup(v);
                v = tm_config_section_get(s, "to");
                if (!v)
                        return tm_config_section_error(cfg, s, NULL, err, errlen,
                                                       "[%s] needs to = ADDRESS ...", s->name);
                if (!c->from || tm_probe_strv_split(v, &c->to) < 0)
                        return -ENOMEM;
                v = tm_config_section_get(s, "starttls");
                if (v && tm_config_parse_bool(v, &c->starttls) < 0)
                        return tm_config_section_error(cfg, s, "starttls", err, errlen,
                                                       "starttls must be on or off");
                v = tm_config_section_get(s, "insecure");
                if (v && tm_config_parse_bool(v, &c->insecure) < 0)
                        return tm_config_section_error(cfg, s, "insecure", err, errlen,
                                                       "insecure must be on or off");
                v = tm_config_section_get(s, "username");
                if (v && !(c->username = strdup(v)))
                        return -ENOMEM;
                v = tm_config_section_get(s, "password");
                if (v && !(c->password = strdup(v)))
                        return -ENOMEM;
                v = tm_config_section_get(s, "password_file");
                if (v && !c->password && read_secret(v, &c->password) < 0)
                        return tm_config_section_error(cfg, s, "password_file", err, errlen,
                                                       "cannot read '%s'", v);
        }
        c->attempts = 5;
        v = tm_config_section_get(s, "attempts");
        if (v) {
                char *e;
                long k = strtol(v, &e, 10);

                if (*e || k < 1 || k > 100)
                        return tm_config_section_error(cfg, s, "attempts", err, errlen,
                                                       "attempts must be 1 to 100, not '%s'", v);
                c->attempts = (int)k;
        }
        c->timeout_ns = 10 * TM_NSEC_PER_SEC;
        v = tm_config_section_get(s, "timeout");
        if (v && (tm_config_parse_duration(v, &c->timeout_ns) < 0 || c->timeout_ns <= 0))
                return tm_config_section_error(cfg, s, "timeout", err, errlen,
                                               "timeout must be a duration, not '%s'", v);
        return 0;
}

int tm_notify_new(const struct tm_config *cfg, tm_notify **ret, char *err, size_t errlen)
{
        tm_notify *n = calloc(1, sizeof(*n));
        int r = 0;

        if (!n)
                return -ENOMEM;
        pthread_mutex_init(&n->lock, NULL);
        pthread_cond_init(&n->cond, NULL);
        pthread_cond_init(&n->idle, NULL);
        n->ch = calloc(cfg->n_sections + 1, sizeof(*n->ch));
        n->names = calloc(cfg->n_sections + 1, sizeof(*n->names));
        if (!n->ch || !n->names) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < cfg->n_sections; i++) {
                if (strncmp(cfg->sections[i].name, "channel.", 8))
                        continue;
                r = load_channel(cfg, &cfg->sections[i], &n->ch[n->n], err, errlen);
                n->n++;
                if (r < 0)
                        goto out;
                n->names[n->n - 1] = n->ch[n->n - 1].name;
        }
out:
        if (r < 0) {
                if (r == -ENOMEM)
                        snprintf(err, errlen, "out of memory");
                tm_notify_free(n, 0);
                return r;
        }
        *ret = n;
        return 0;
}

const char *const *tm_notify_names(const tm_notify *n)
{
        return n->names;
}

size_t tm_notify_count(const tm_notify *n)
{
        return n->n;
}

static void item_free(struct item *it)
{
        if (!it)
                return;
        json_decref(it->payload);
        free(it->subject);
        free(it->text);
        free(it);
}

static const char *pd_severity(const char *s)
{
        if (!s)
                return "warning";
        if (!strcmp(s, "critical"))
                return "critical";
        if (!strcmp(s, "high"))
                return "error";
        if (!strcmp(s, "info") || !strcmp(s, "low"))
                return "info";
        return "warning";
}

json_t *tm_notify_payload(enum tm_notify_type type, const struct tm_notify_msg *m,
                          const char *routing_key)
{
        char ts[40];
        json_t *o = NULL;

        tm_time_format(m->at, ts, sizeof(ts));
        switch (type) {
        case TM_NOTIFY_SLACK: {
                const char *color = m->resolve                                        ? "good"
                                    : m->severity && !strcmp(m->severity, "critical") ? "danger"
                                                                                      : "warning";
                char head[512];

                snprintf(head, sizeof(head), "[%s] %s", m->status ? m->status : m->kind, m->title);
                o = json_pack("{s:s, s:[{s:s, s:s, s:s, s:s, s:[{s:s, s:s, s:b}, {s:s, s:s, "
                              "s:b}]}]}",
                              "text", head, "attachments", "color", color, "title", m->title,
                              "text", m->text ? m->text : "", "ts", ts, "fields", "title",
                              "Severity", "value", m->severity ? m->severity : "", "short", 1,
                              "title", "Kind", "value", m->kind, "short", 1);
                break;
        }
        case TM_NOTIFY_PAGERDUTY:
                o = json_pack("{s:s, s:s, s:s}", "routing_key", routing_key ? routing_key : "",
                              "event_action", m->resolve ? "resolve" : "trigger", "dedup_key",
                              m->dedup_key ? m->dedup_key : m->name);
                if (o && !m->resolve) {
                        json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "summary", m->title,
                                              "source", "tidemark-monitord", "severity",
                                              pd_severity(m->severity), "timestamp", ts,
                                              "component", m->name, "class", m->kind);

                        if (p && (m->text || m->details)) {
                                json_t *cd =
                                        m->details ? json_deep_copy(m->details) : json_object();

                                if (cd && json_is_object(cd) && m->text)
                                        json_object_set_new(cd, "message", json_string(m->text));
                                json_object_set_new(p, "custom_details", cd);
                        }
                        json_object_set_new(o, "payload", p);
                }
                break;
        case TM_NOTIFY_WEBHOOK:
                o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "kind", m->kind, "status",
                              m->status ? m->status : "", "name", m->name, "severity",
                              m->severity ? m->severity : "", "title", m->title, "text",
                              m->text ? m->text : "", "dedup_key",
                              m->dedup_key ? m->dedup_key : m->name, "timestamp", ts);
                if (o && m->details)
                        json_object_set_new(o, "details", json_deep_copy(m->details));
                break;
        case TM_NOTIFY_EMAIL:
                break;
        }
        return o;
}

static int deliver(struct channel *c, struct item *it, char *err, size_t errlen)
{
        int r;

        if (c->type == TM_NOTIFY_EMAIL) {
                struct tm_httpc_mail m = {
                        .url = c->url,
                        .from = c->from,
                        .to = (const char *const *)c->to,
                        .username = c->username,
                        .password = c->password,
                        .starttls = c->starttls,
                        .insecure = c->insecure,
                        .subject = it->subject,
                        .text = it->text,
                        .timeout_ms = (int)(c->timeout_ns / 1000000),
                };

                return tm_httpc_mail_send(&m, err, errlen);
        }
        {
                char *body = json_dumps(it->payload, JSON_COMPACT);
                struct tm_httpc_req rq = { .method = "POST",
                                           .url = c->url,
                                           .body = body,
                                           .timeout_ms = (int)(c->timeout_ns / 1000000),
                                           .max_response = 64 * 1024 };
                struct tm_httpc_resp resp;

                if (!body)
                        return -ENOMEM;
                r = tm_httpc_request(&rq, &resp);
                if (r < 0) {
                        snprintf(err, errlen, "%s", resp.error);
                } else if (resp.status < 200 || resp.status >= 300) {
                        snprintf(err, errlen, "%s answered HTTP %ld", c->url, resp.status);
                        r = -EIO;
                }
                tm_buf_dispose(&resp.body);
                free(body);
                return r;
        }
}

static struct item *make_item(struct channel *c, const struct tm_notify_msg *m)
{
        struct item *it = calloc(1, sizeof(*it));

        if (!it)
                return NULL;
        it->ch = c;
        it->attempt = 0;
        if (c->type == TM_NOTIFY_EMAIL) {
                size_t n = strlen(m->title) + 64;

                it->subject = malloc(n);
                if (it->subject)
                        snprintf(it->subject, n, "[tidemark %s%s%s] %s",
                                 m->status ? m->status : m->kind, m->severity ? " " : "",
                                 m->severity ? m->severity : "", m->title);
                it->text = strdup(m->text ? m->text : m->title);
                if (!it->subject || !it->text) {
                        item_free(it);
                        return NULL;
                }
        } else {
                it->payload = tm_notify_payload(c->type, m, c->routing_key);
                if (!it->payload) {
                        item_free(it);
                        return NULL;
                }
        }
        return it;
}

int tm_notify_deliver_now(tm_notify *n, const char *channel, const struct tm_notify_msg *msg,
                          char *err, size_t errlen)
{
        for (size_t i = 0; i < n->n; i++) {
                struct item *it;
                int r;

                if (strcmp(n->ch[i].name, channel))
                        continue;
                it = make_item(&n->ch[i], msg);
                if (!it)
                        return -ENOMEM;
                r = deliver(&n->ch[i], it, err, errlen);
                item_free(it);
                return r;
        }
        snprintf(err, errlen, "no channel '%s'", channel);
        return -ENOENT;
}

int tm_notify_send(tm_notify *n, const struct tm_notify_msg *msg, const char *const *channels)
{
        int queued = 0;

        for (size_t i = 0; i < n->n; i++) {
                struct channel *c = &n->ch[i];
                struct item *it;

                if (channels) {
                        const char *const *k = channels;

                        while (*k && strcmp(*k, c->name))
                                k++;
                        if (!*k)
                                continue;
                }
                it = make_item(c, msg);
                if (!it)
                        return -ENOMEM;
                pthread_mutex_lock(&n->lock);
                if (n->queued >= QUEUE_MAX) {
                        c->dropped++;
                        c->failed++;
                        snprintf(c->last_error, sizeof(c->last_error),
                                 "delivery queue full: message dropped");
                        pthread_mutex_unlock(&n->lock);
                        item_free(it);
                        return -ENOSPC;
                }
                it->not_before = 0;
                if (n->tail)
                        n->tail->next = it;
                else
                        n->head = it;
                n->tail = it;
                n->queued++;
                pthread_cond_signal(&n->cond);
                pthread_mutex_unlock(&n->lock);
                queued++;
        }
        return queued;
}

/* The first item due at now, unlinked; or NULL and *wait_ns until the
 * earliest one. Called with the lock held. */
static struct item *take_due(tm_notify *n, int64_t now, int64_t *wait_ns)
{
        struct item *prev = NULL;

        *wait_ns = -1;
        for (struct item *it = n->head; it; prev = it, it = it->next) {
                if (it->not_before <= now) {
                        if (prev)
                                prev->next = it->next;
                        else
                                n->head = it->next;
                        if (n->tail == it)
                                n->tail = prev;
                        it->next = NULL;
                        return it;
                }
                if (*wait_ns < 0 || it->not_before - now < *wait_ns)
                        *wait_ns = it->not_before - now;
        }
        return NULL;
}

static void *worker(void *arg)
{
        tm_notify *n = arg;

        pthread_mutex_lock(&n->lock);
        for (;;) {
                int64_t wait_ns;
                struct item *it = take_due(n, tm_time_mono(), &wait_ns);
                char err[256] = "";
                int r;

                if (!it) {
                        if (n->stopping)
                                break;
                        if (wait_ns < 0) {
                                pthread_cond_wait(&n->cond, &n->lock);
                        } else {
                                struct timespec ts;

                                clock_gettime(CLOCK_REALTIME, &ts);
                                wait_ns += ts.tv_nsec;
                                ts.tv_sec += (time_t)(wait_ns / TM_NSEC_PER_SEC);
                                ts.tv_nsec = (long)(wait_ns % TM_NSEC_PER_SEC);
                                pthread_cond_timedwait(&n->cond, &n->lock, &ts);
                        }
                        continue;
                }
                n->inflight++;
                pthread_mutex_unlock(&n->lock);
                r = deliver(it->ch, it, err, sizeof(err));
                pthread_mutex_lock(&n->lock);
                n->inflight--;
                it->attempt++;
                if (r >= 0) {
                        it->ch->sent++;
                        it->ch->up = 1;
                        it->ch->last_ok = tm_time_now();
                } else {
                        it->ch->up = 0;
                        it->ch->last_fail = tm_time_now();
                        snprintf(it->ch->last_error, sizeof(it->ch->last_error), "%s", err);
                        if (it->attempt < it->ch->attempts && !n->stopping) {
                                it->ch->retries++;
                                tm_log(TM_LOG_WARN,
                                       "channel '%s': delivery failed (%s), retry %d of %d",
                                       it->ch->name, err, it->attempt, it->ch->attempts - 1);
                                it->not_before = tm_time_mono() +
                                                 (TM_NSEC_PER_SEC
                                                  << (it->attempt - 1 < 6 ? it->attempt - 1 : 6));
                                if (n->tail)
                                        n->tail->next = it;
                                else
                                        n->head = it;
                                n->tail = it;
                                continue;
                        }
                        it->ch->failed++;
                        tm_log(TM_LOG_ERR, "channel '%s': delivery failed after %d attempts: %s",
                               it->ch->name, it->attempt, err);
                }
                n->queued--;
                item_free(it);
                if (!n->queued)
                        pthread_cond_broadcast(&n->idle);
        }
        pthread_mutex_unlock(&n->lock);
        return NULL;
}

int tm_notify_start(tm_notify *n)
{
        int r = pthread_create(&n->thread, NULL, worker, n);

        if (r)
                return -r;
        n->started = 1;
        return 0;
}

int tm_notify_drain(tm_notify *n, int timeout_ms)
{
        int64_t deadline = tm_time_now() + (int64_t)timeout_ms * 1000000;
        int r = 0;

        pthread_mutex_lock(&n->lock);
        while (n->queued && !r) {
                struct timespec ts = { .tv_sec = (time_t)(deadline / TM_NSEC_PER_SEC),
                                       .tv_nsec = (long)(deadline % TM_NSEC_PER_SEC) };

                if (pthread_cond_timedwait(&n->idle, &n->lock, &ts) == ETIMEDOUT)
                        r = -ETIMEDOUT;
        }
        pthread_mutex_unlock(&n->lock);
        return r;
}

void tm_notify_free(tm_notify *n, int timeout_ms)
{
        if (!n)
                return;
        if (n->started) {
                if (timeout_ms > 0)
                        tm_notify_drain(n, timeout_ms);
                pthread_mutex_lock(&n->lock);
                n->stopping = 1;
                /* what is still waiting for a retry is given up */
                while (n->head) {
                        struct item *it = n->head;

                        n->head = it->next;
                        item_free(it);
                }
                n->tail = NULL;
                pthread_cond_broadcast(&n->cond);
                pthread_mutex_unlock(&n->lock);
                pthread_join(n->thread, NULL);
        }
        for (size_t i = 0; i < n->n; i++)
                channel_dispose(&n->ch[i]);
        free(n->ch);
        free(n->names);
        pthread_mutex_destroy(&n->lock);
        pthread_cond_destroy(&n->cond);
        pthread_cond_destroy(&n->idle);
        free(n);
}

json_t *tm_notify_stats_json(tm_notify *n)
{
        json_t *arr = json_array();

        pthread_mutex_lock(&n->lock);
        for (size_t i = 0; arr && i < n->n; i++) {
                struct channel *c = &n->ch[i];
                char ok[40] = "", fail[40] = "";
                size_t pending = 0;
                json_t *o;

                for (struct item *it = n->head; it; it = it->next)
                        pending += it->ch == c;
                if (c->last_ok)
                        tm_time_format(c->last_ok, ok, sizeof(ok));
                if (c->last_fail)
                        tm_time_format(c->last_fail, fail, sizeof(fail));
                o = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:I}", "name", c->name,
                              "type", type_names[c->type], "status", c->up ? "up" : "down", "up",
                              c->up, "sent", (json_int_t)c->sent, "failed", (json_int_t)c->failed,
                              "retries", (json_int_t)c->retries, "dropped", (json_int_t)c->dropped,
                              "pending", (json_int_t)pending);
                if (o && ok[0])
                        json_object_set_new(o, "last_success", json_string(ok));
                if (o && fail[0]) {
                        json_object_set_new(o, "last_failure", json_string(fail));
                        json_object_set_new(o, "last_error", json_string(c->last_error));
                }
                json_array_append_new(arr, o);
        }
        pthread_mutex_unlock(&n->lock);
        return arr;
}

void tm_notify_stats_each(tm_notify *n,
                          void (*fn)(const char *name, const char *type, uint64_t sent,
                                     uint64_t failed, int up, void *ud),
                          void *ud)
{
        pthread_mutex_lock(&n->lock);
        for (size_t i = 0; i < n->n; i++)
                fn(n->ch[i].name, type_names[n->ch[i].type], n->ch[i].sent, n->ch[i].failed,
                   n->ch[i].up, ud);
        pthread_mutex_unlock(&n->lock);
}
