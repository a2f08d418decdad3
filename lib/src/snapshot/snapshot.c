/*
 * snapshot: the JSON manifest of one snapshot (layout in snapshot.h and
 * docs/format.md). Canonical JSON is jansson's compact output with sorted
 * keys, so a manifest encodes to one byte sequence and its id is stable.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <tidemark/core.h>
#include <tidemark/snapshot.h>
#include <tidemark/time.h>

#define SNAPSHOT_VERSION 1
#define DUMP_FLAGS       (JSON_SORT_KEYS | JSON_COMPACT)
/* 2262-01-01T00:00:00Z: int64 nanoseconds run out in April 2262, and the
 * time parser multiplies before it can check, so both directions stop at the
 * end of 2261. */
#define TIME_LIMIT_NS (9214646400LL * TM_NSEC_PER_SEC)
#define TIME_TEXT_MAX 64

/* The summary's fields, in one table for both directions. */
struct summary_field {
        const char *key;
        size_t off;
        int is_signed;
};

#define U64_FIELD(f)                                           \
        {                                                      \
#f, offsetof(struct tm_snapshot_summary, f), 0 \
        }
static const struct summary_field summary_fields[] = {
        U64_FIELD(files),
        U64_FIELD(dirs),
        U64_FIELD(others),
        U64_FIELD(files_new),
        U64_FIELD(files_changed),
        U64_FIELD(files_unmodified),
        U64_FIELD(files_failed),
        U64_FIELD(bytes),
        U64_FIELD(bytes_read),
        U64_FIELD(blobs_added),
        U64_FIELD(bytes_added),
        U64_FIELD(bytes_stored),
        { "duration_ns", offsetof(struct tm_snapshot_summary, duration_ns), 1 },
};

/* json_object_set_new() steals the value even when it fails, and a NULL
 * value (jansson refuses invalid UTF-8) makes it fail: one check covers both. */
static int set_new(json_t *obj, const char *key, json_t *value)
{
        return json_object_set_new(obj, key, value) < 0 ? -EINVAL : 0;
}

static int set_id(json_t *obj, const char *key, const tm_id *id)
{
        char hex[TM_ID_HEX_LEN + 1];

        tm_id_hex(id, hex);
        return set_new(obj, key, json_string(hex));
}

static int set_strings(json_t *obj, const char *key, char *const *v, size_t n)
{
        json_t *arr = json_array();

        if (!arr)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                if (!v[i] || json_array_append_new(arr, json_string(v[i])) < 0) {
                        json_decref(arr);
                        return -EINVAL;
                }
        }
        return set_new(obj, key, arr);
}

static json_t *summary_to_json(const struct tm_snapshot_summary *s)
{
        json_t *obj = json_object();

        if (!obj)
                return NULL;
        for (size_t i = 0; i < TM_ARRAY_SIZE(summary_fields); i++) {
                const struct summary_field *f = &summary_fields[i];
                const char *base = (const char *)s + f->off;
                json_int_t v;

                if (f->is_signed) {
                        int64_t x;

                        memcpy(&x, base, sizeof(x));
                        v = x;
                } else {
                        uint64_t x;

                        memcpy(&x, base, sizeof(x));
                        if (x > INT64_MAX)
                                goto fail; /* JSON integers here are int64 */
                        v = (json_int_t)x;
                }
                if (set_new(obj, f->key, json_integer(v)) < 0)
                        goto fail;
        }
        return obj;
fail:
        json_decref(obj);
        return NULL;
}

static int nonempty(const char *s)
{
        return s && *s;
}

int tm_snapshot_encode(const struct tm_snapshot *s, tm_buf *out)
{
        json_t *root = NULL, *extra = NULL, *summary;
        char when[40], *text = NULL;
        int r;

        if (!nonempty(s->host) || !nonempty(s->component) || !nonempty(s->strategy) ||
            s->time < 0 || s->time >= TIME_LIMIT_NS)
                return -EINVAL;
        root = json_object();
        if (!root)
                return -ENOMEM;
        tm_time_format_ns(s->time, when, sizeof(when));
        r = set_new(root, "version", json_integer(SNAPSHOT_VERSION));
        if (r >= 0)
                r = set_new(root, "time", json_string(when));
        if (r >= 0)
                r = set_new(root, "host", json_string(s->host));
        if (r >= 0 && s->username)
                r = set_new(root, "username", json_string(s->username));
        if (r >= 0)
                r = set_new(root, "component", json_string(s->component));
        if (r >= 0)
                r = set_new(root, "strategy", json_string(s->strategy));
        if (r >= 0 && s->has_parent)
                r = set_id(root, "parent", &s->parent);
        if (r >= 0)
                r = set_id(root, "tree", &s->tree);
        if (r >= 0)
                r = set_strings(root, "paths", s->paths, s->n_paths);
        if (r >= 0)
                r = set_strings(root, "tags", s->tags, s->n_tags);
        if (r < 0)
                goto out;
        summary = summary_to_json(&s->summary);
        r = set_new(root, "summary", summary);
        if (r < 0)
                goto out;
        if (s->extra_json) {
                extra = json_loads(s->extra_json, JSON_REJECT_DUPLICATES, NULL);
                if (!json_is_object(extra)) {
                        r = -EINVAL;
                        goto out;
                }
                r = set_new(root, "extra", extra);
                extra = NULL; /* owned by root now */
                if (r < 0)
                        goto out;
        }
        text = json_dumps(root, DUMP_FLAGS);
        if (!text) {
                r = -ENOMEM;
                goto out;
        }
        r = tm_buf_append(out, text, strlen(text));
out:
        free(text);
        json_decref(extra);
        json_decref(root);
        return r;
}

/* An optional string member: absent leaves *ret NULL; any other type fails. */
static int get_string(json_t *root, const char *key, int required, char **ret)
{
        json_t *v = json_object_get(root, key);

        *ret = NULL;
        if (!v)
                return required ? -EBADMSG : 0;
        if (!json_is_string(v))
                return -EBADMSG;
        *ret = strdup(json_string_value(v));
        return *ret ? 0 : -ENOMEM;
}

static int get_id(json_t *root, const char *key, int required, tm_id *ret, int *ret_found)
{
        json_t *v = json_object_get(root, key);

        *ret_found = 0;
        if (!v)
                return required ? -EBADMSG : 0;
        if (!json_is_string(v) || tm_id_parse(json_string_value(v), ret) < 0)
                return -EBADMSG;
        *ret_found = 1;
        return 0;
}

static int get_strings(json_t *root, const char *key, char ***ret, size_t *ret_n)
{
        json_t *v = json_object_get(root, key), *e;
        size_t i, n;
        char **arr;

        if (!v)
                return 0;
        if (!json_is_array(v))
                return -EBADMSG;
        n = json_array_size(v);
        if (!n)
                return 0;
        arr = calloc(n, sizeof(*arr));
        if (!arr)
                return -ENOMEM;
        /* Hand the array over first so the caller's dispose frees a partial one. */
        *ret = arr;
        json_array_foreach(v, i, e)
        {
                if (!json_is_string(e))
                        return -EBADMSG;
                arr[i] = strdup(json_string_value(e));
                if (!arr[i])
                        return -ENOMEM;
                (*ret_n)++;
        }
        return 0;
}

static int get_summary(json_t *root, struct tm_snapshot_summary *ret)
{
        json_t *obj = json_object_get(root, "summary");

        memset(ret, 0, sizeof(*ret));
        if (!obj)
                return 0;
        if (!json_is_object(obj))
                return -EBADMSG;
        for (size_t i = 0; i < TM_ARRAY_SIZE(summary_fields); i++) {
                const struct summary_field *f = &summary_fields[i];
                json_t *v = json_object_get(obj, f->key);
                char *base = (char *)ret + f->off;
                json_int_t x;

                if (!v)
                        continue;
                if (!json_is_integer(v))
                        return -EBADMSG;
                x = json_integer_value(v);
                if (f->is_signed) {
                        int64_t y = x;

                        memcpy(base, &y, sizeof(y));
                } else {
                        uint64_t y;

                        if (x < 0)
                                return -EBADMSG;
                        y = (uint64_t)x;
                        memcpy(base, &y, sizeof(y));
                }
        }
        return 0;
}

/* The time must be an instant tm_time_parse() reads without overflowing and
 * that tm_snapshot_encode() would write back. */
static int get_time(json_t *root, int64_t *ret)
{
        json_t *v = json_object_get(root, "time");
        const char *s;
        int year = 0;

        if (!json_is_string(v))
                return -EBADMSG;
        s = json_string_value(v);
        if (json_string_length(v) > TIME_TEXT_MAX || json_string_length(v) < 4)
                return -EBADMSG;
        for (int i = 0; i < 4; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EBADMSG;
                year = year * 10 + (s[i] - '0');
        }
        if (year > 2261)
                return -EBADMSG;
        if (tm_time_parse(s, ret, NULL) < 0 || *ret < 0 || *ret >= TIME_LIMIT_NS)
                return -EBADMSG;
        return 0;
}

int tm_snapshot_decode(const void *p, size_t n, struct tm_snapshot *ret)
{
        struct tm_snapshot s = { 0 };
        json_t *root = NULL, *v;
        int r;

        if (n > TM_SNAPSHOT_MAX)
                return -EBADMSG;
        root = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(root)) {
                r = -EBADMSG;
                goto out;
        }
        v = json_object_get(root, "version");
        if (!json_is_integer(v) || json_integer_value(v) != SNAPSHOT_VERSION) {
                r = -EBADMSG;
                goto out;
        }
        r = get_time(root, &s.time);
        if (r >= 0)
                r = get_string(root, "host", 1, &s.host);
        if (r >= 0)
                r = get_string(root, "username", 0, &s.username);
        if (r >= 0)
                r = get_string(root, "component", 1, &s.component);
        if (r >= 0)
                r = get_string(root, "strategy", 1, &s.strategy);
        if (r < 0)
                goto out;
        if (!*s.host || !*s.component || !*s.strategy) {
                r = -EBADMSG;
                goto out;
        }
        r = get_id(root, "parent", 0, &s.parent, &s.has_parent);
        if (r >= 0) {
                int found;

                r = get_id(root, "tree", 1, &s.tree, &found);
        }
        if (r >= 0)
                r = get_strings(root, "paths", &s.paths, &s.n_paths);
        if (r >= 0)
                r = get_strings(root, "tags", &s.tags, &s.n_tags);
        if (r >= 0)
                r = get_summary(root, &s.summary);
        if (r < 0)
                goto out;
        v = json_object_get(root, "extra");
        if (v) {
                if (!json_is_object(v)) {
                        r = -EBADMSG;
                        goto out;
                }
                s.extra_json = json_dumps(v, DUMP_FLAGS);
                if (!s.extra_json) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        *ret = s;
        memset(&s, 0, sizeof(s));
        r = 0;
out:
        tm_snapshot_dispose(&s);
        json_decref(root);
        return r;
}

static void strings_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

void tm_snapshot_dispose(struct tm_snapshot *s)
{
        if (!s)
                return;
        free(s->host);
        free(s->username);
        free(s->component);
        free(s->strategy);
        strings_free(s->paths, s->n_paths);
        strings_free(s->tags, s->n_tags);
        free(s->extra_json);
        memset(s, 0, sizeof(*s));
}

static int strings_add(char ***v, size_t *n, const char *s)
{
        char **p, *d;

        if (!s)
                return -EINVAL;
        d = strdup(s);
        if (!d)
                return -ENOMEM;
        p = reallocarray(*v, *n + 1, sizeof(*p));
        if (!p) {
                free(d);
                return -ENOMEM;
        }
        p[(*n)++] = d;
        *v = p;
        return 0;
}

int tm_snapshot_add_tag(struct tm_snapshot *s, const char *tag)
{
        return strings_add(&s->tags, &s->n_tags, tag);
}

int tm_snapshot_add_path(struct tm_snapshot *s, const char *path)
{
        return strings_add(&s->paths, &s->n_paths, path);
}

static int dup_field(const char *src, char **ret)
{
        *ret = NULL;
        if (!src)
                return 0;
        *ret = strdup(src);
        return *ret ? 0 : -ENOMEM;
}

int tm_snapshot_copy(const struct tm_snapshot *src, struct tm_snapshot *ret)
{
        struct tm_snapshot s = *src;
        int r;

        s.host = s.username = s.component = s.strategy = s.extra_json = NULL;
        s.paths = s.tags = NULL;
        s.n_paths = s.n_tags = 0;
        r = dup_field(src->host, &s.host);
        if (r >= 0)
                r = dup_field(src->username, &s.username);
        if (r >= 0)
                r = dup_field(src->component, &s.component);
        if (r >= 0)
                r = dup_field(src->strategy, &s.strategy);
        if (r >= 0)
                r = dup_field(src->extra_json, &s.extra_json);
        for (size_t i = 0; r >= 0 && i < src->n_paths; i++)
                r = tm_snapshot_add_path(&s, src->paths[i]);
        for (size_t i = 0; r >= 0 && i < src->n_tags; i++)
                r = tm_snapshot_add_tag(&s, src->tags[i]);
        if (r < 0) {
                tm_snapshot_dispose(&s);
                return r;
        }
        *ret = s;
        return 0;
}
