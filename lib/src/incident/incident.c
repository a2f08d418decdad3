/*
 * The register is small (incidents are rare), so it lives in memory as one
 * JSON array and is written whole; timestamps are kept as text (what
 * clients read) plus ns (what figures are computed from).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tidemark/core.h>
#include <tidemark/incident.h>
#include <tidemark/log.h>
#include <tidemark/time.h>

struct tm_incidents {
        pthread_mutex_t lock;
        char *path;
        json_t *all; /* array, oldest first */
        uint64_t next;
};

static const char *severities[] = { "critical", "high", "medium", "low" };

int tm_incident_severity_valid(const char *s)
{
        for (size_t i = 0; i < TM_ARRAY_SIZE(severities); i++)
                if (!strcmp(s, severities[i]))
                        return 0;
        return -EINVAL;
}

void tm_incidents_close(tm_incidents *in)
{
        if (!in)
                return;
        json_decref(in->all);
        free(in->path);
        pthread_mutex_destroy(&in->lock);
        free(in);
}

int tm_incidents_open(const char *path, tm_incidents **ret)
{
        tm_incidents *in = calloc(1, sizeof(*in));
        json_error_t je;
        size_t i;
        json_t *v;

        if (!in)
                return -ENOMEM;
        pthread_mutex_init(&in->lock, NULL);
        in->next = 1;
        in->path = strdup(path);
        if (!in->path) {
                tm_incidents_close(in);
                return -ENOMEM;
        }
        if (access(path, F_OK) == 0) {
                in->all = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
                if (!in->all || !json_is_array(in->all)) {
                        tm_log(TM_LOG_ERR, "'%s' is not an incident register: %s", path,
                               in->all ? "not an array" : je.text);
                        tm_incidents_close(in);
                        return -EBADMSG;
                }
        } else {
                in->all = json_array();
        }
        json_array_foreach(in->all, i, v)
        {
                const char *id = json_string_value(json_object_get(v, "id"));
                unsigned long long k;

                if (id && sscanf(id, "INC-%llu", &k) == 1 && k >= in->next)
                        in->next = k + 1;
        }
        *ret = in;
        return 0;
}

static int save_locked(tm_incidents *in)
{
        char tmp[4200];
        int fd, r = 0;
        char *s = json_dumps(in->all, JSON_INDENT(1));

        if (!s)
                return -ENOMEM;
        snprintf(tmp, sizeof(tmp), "%s.tmp", in->path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) {
                r = -errno;
                goto out;
        }
        for (size_t off = 0, n = strlen(s); off < n;) {
                ssize_t w = write(fd, s + off, n - off);

                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                off += (size_t)w;
        }
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r >= 0)
                r = -errno;
        if (r >= 0 && rename(tmp, in->path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                tm_log_errno(TM_LOG_ERR, r, "cannot save the incident register '%s'", in->path);
        }
out:
        free(s);
        return r;
}

static json_t *find_locked(tm_incidents *in, const char *id)
{
        size_t i;
        json_t *v;

        json_array_foreach(in->all, i, v) if (!strcmp(json_string_value(json_object_get(v, "id")),
                                                      id)) return v;
        return NULL;
}

static int add_entry(json_t *inc, const char *kind, const char *author, const char *message,
                     const char *status, const json_t *data, int64_t now)
{
        char ts[40];
        json_t *e;

        tm_time_format(now, ts, sizeof(ts));
        e = json_pack("{s:s, s:s, s:s, s:s}", "time", ts, "kind", kind, "author",
                      author ? author : "", "message", message ? message : "");
        if (!e)
                return -ENOMEM;
        if (status)
                json_object_set_new(e, "status", json_string(status));
        if (data)
                json_object_set_new(e, "data", json_deep_copy(data));
        json_array_append_new(json_object_get(inc, "timeline"), e);
        json_object_set_new(inc, "updated", json_string(ts));
        return 0;
}

int tm_incidents_create(tm_incidents *in, const char *title, const char *severity,
                        const json_t *services, const char *source, const char *author, int64_t now,
                        char *id, size_t idlen)
{
        char ts[40], myid[32];
        json_t *inc;
        int r;

        if (!title || !*title || tm_incident_severity_valid(severity) < 0)
                return -EINVAL;
        tm_time_format(now, ts, sizeof(ts));
        pthread_mutex_lock(&in->lock);
        snprintf(myid, sizeof(myid), "INC-%llu", (unsigned long long)in->next);
        inc = json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:I, s:[]}", "id", myid, "title",
                        title, "severity", severity, "affected_services",
                        services ? json_deep_copy(services) : json_array(), "status", "open",
                        "source", source ? source : "api", "created", ts, "created_ns",
                        (json_int_t)now, "timeline");
        if (!inc) {
                r = -ENOMEM;
                goto out;
        }
        add_entry(inc, "opened", author, title, "open", NULL, now);
        json_array_append_new(in->all, inc);
        r = save_locked(in);
        if (r < 0) {
                json_array_remove(in->all, json_array_size(in->all) - 1);
                goto out;
        }
        in->next++;
        snprintf(id, idlen, "%s", myid);
out:
        pthread_mutex_unlock(&in->lock);
        return r;
}

/* Apply a change to a copy, save, and only then swap it in: a failed save
 * leaves the register as it was. */
typedef int (*change_fn)(json_t *inc, void *ud);

static int change(tm_incidents *in, const char *id, change_fn fn, void *ud)
{
        json_t *cur, *copy;
        size_t i;
        json_t *v;
        int r;

        pthread_mutex_lock(&in->lock);
        cur = find_locked(in, id);
        if (!cur) {
                r = -ENOENT;
                goto out;
        }
        copy = json_deep_copy(cur);
        if (!copy) {
                r = -ENOMEM;
                goto out;
        }
        r = fn(copy, ud);
        if (r < 0) {
                json_decref(copy);
                goto out;
        }
        json_array_foreach(in->all, i, v) if (v == cur) break;
        json_incref(cur);
        json_array_set_new(in->all, i, copy);
        r = save_locked(in);
        if (r < 0)
                json_array_set_new(in->all, i, cur);
        else
                json_decref(cur);
out:
        pthread_mutex_unlock(&in->lock);
        return r;
}

struct ack_ctx {
        const char *author, *message;
        int64_t now;
        double response_s;
        const char *status, *kind;
        const json_t *data;
};

static int do_ack(json_t *inc, void *ud)
{
        struct ack_ctx *c = ud;
        const char *st = json_string_value(json_object_get(inc, "status"));
        char ts[40];

        if (!strcmp(st, "resolved") || json_object_get(inc, "acknowledged"))
                return -EBUSY;
        c->response_s =
                (double)(c->now - json_integer_value(json_object_get(inc, "created_ns"))) / 1e9;
        tm_time_format(c->now, ts, sizeof(ts));
        json_object_set_new(inc, "status", json_string("acknowledged"));
        json_object_set_new(inc, "acknowledged", json_string(ts));
        json_object_set_new(inc, "acknowledged_by", json_string(c->author ? c->author : ""));
        json_object_set_new(inc, "response_time_seconds", json_real(c->response_s));
        return add_entry(inc, "acknowledged", c->author, c->message ? c->message : "acknowledged",
                         "acknowledged", NULL, c->now);
}

int tm_incidents_acknowledge(tm_incidents *in, const char *id, const char *author,
                             const char *message, int64_t now, double *ret_response_s)
{
        struct ack_ctx c = { .author = author, .message = message, .now = now };
        int r = change(in, id, do_ack, &c);

        if (r >= 0 && ret_response_s)
                *ret_response_s = c.response_s;
        return r;
}

static int do_update(json_t *inc, void *ud)
{
        struct ack_ctx *c = ud;
        const char *st = json_string_value(json_object_get(inc, "status"));

        if (!strcmp(st, "resolved"))
                return -EBUSY;
        if (c->status)
                json_object_set_new(inc, "status", json_string(c->status));
        return add_entry(inc, "update", c->author, c->message, c->status, NULL, c->now);
}

int tm_incidents_update(tm_incidents *in, const char *id, const char *author, const char *message,
                        const char *status, int64_t now)
{
        struct ack_ctx c = { .author = author, .message = message, .now = now, .status = status };

        if (status && strcmp(status, "investigating") && strcmp(status, "identified") &&
            strcmp(status, "monitoring"))
                return -EINVAL;
        if (!message || !*message)
                return -EINVAL;
        return change(in, id, do_update, &c);
}

static int do_resolve(json_t *inc, void *ud)
{
        struct ack_ctx *c = ud;
        const char *st = json_string_value(json_object_get(inc, "status"));
        char ts[40];

        if (!strcmp(st, "resolved"))
                return -EBUSY;
        tm_time_format(c->now, ts, sizeof(ts));
        json_object_set_new(inc, "status", json_string("resolved"));
        json_object_set_new(inc, "resolved", json_string(ts));
        json_object_set_new(inc, "resolution_time_seconds",
                            json_real((double)(c->now - json_integer_value(json_object_get(
                                                                inc, "created_ns"))) /
                                      1e9));
        return add_entry(inc, "resolved", c->author, c->message ? c->message : "resolved",
                         "resolved", NULL, c->now);
}

int tm_incidents_resolve(tm_incidents *in, const char *id, const char *author, const char *message,
                         int64_t now)
{
        struct ack_ctx c = { .author = author, .message = message, .now = now };

        return change(in, id, do_resolve, &c);
}

static int do_note(json_t *inc, void *ud)
{
        struct ack_ctx *c = ud;

        return add_entry(inc, c->kind, c->author, c->message, NULL, c->data, c->now);
}

int tm_incidents_note(tm_incidents *in, const char *id, const char *kind, const char *author,
                      const char *message, const json_t *data, int64_t now)
{
        struct ack_ctx c = {
                .author = author, .message = message, .now = now, .kind = kind, .data = data
        };

        return change(in, id, do_note, &c);
}

json_t *tm_incidents_get(tm_incidents *in, const char *id)
{
        json_t *v, *r = NULL;

        pthread_mutex_lock(&in->lock);
        v = find_locked(in, id);
        if (v)
                r = json_deep_copy(v);
        pthread_mutex_unlock(&in->lock);
        return r;
}

json_t *tm_incidents_list(tm_incidents *in, const char *status, int64_t from, int64_t to)
{
        json_t *arr = json_array();

        pthread_mutex_lock(&in->lock);
        for (size_t i = json_array_size(in->all); arr && i-- > 0;) {
                json_t *v = json_array_get(in->all, i);
                const char *st = json_string_value(json_object_get(v, "status"));
                int64_t t = json_integer_value(json_object_get(v, "created_ns"));

                if (status &&
                    (!strcmp(status, "active") ? !strcmp(st, "resolved") : strcmp(status, st) != 0))
                        continue;
                if ((from && t < from) || (to && t >= to))
                        continue;
                json_array_append_new(arr, json_deep_copy(v));
        }
        pthread_mutex_unlock(&in->lock);
        return arr;
}

void tm_incidents_active_counts(tm_incidents *in, unsigned counts[4])
{
        size_t i;
        json_t *v;

        memset(counts, 0, 4 * sizeof(*counts));
        pthread_mutex_lock(&in->lock);
        json_array_foreach(in->all, i, v)
        {
                const char *sev = json_string_value(json_object_get(v, "severity"));

                if (!strcmp(json_string_value(json_object_get(v, "status")), "resolved"))
                        continue;
                for (size_t k = 0; k < TM_ARRAY_SIZE(severities); k++)
                        if (!strcmp(sev, severities[k]))
                                counts[k]++;
        }
        pthread_mutex_unlock(&in->lock);
}
