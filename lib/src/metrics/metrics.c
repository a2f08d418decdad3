/*
 * metrics: Prometheus registry. A handful of families with tens of series
 * each, so plain arrays and linear search under one mutex are enough and
 * keep the rendering order stable (definition order, then series creation).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/metrics.h>

struct series {
        char *labels; /* rendered: a="x",b="y" (may be empty) */
        double value; /* counter/gauge; histogram: sum */
        unsigned long long count;
        unsigned long long *bucket_counts; /* histogram: cumulative at render */
};

struct family {
        char *name;
        char *help;
        enum tm_metric_type type;
        double *buckets;
        size_t n_buckets;
        struct series *series;
        size_t n_series, cap_series;
};

struct tm_metrics {
        pthread_mutex_t lock;
        struct family *fam;
        size_t n_fam, cap_fam;
};

static const double default_buckets[] = { 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 1800, 3600 };

static int name_valid(const char *s, int label)
{
        if (!s || !*s)
                return 0;
        for (const char *p = s; *p; p++) {
                int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' ||
                         (!label && *p == ':') || (p != s && *p >= '0' && *p <= '9');

                if (!ok)
                        return 0;
        }
        return 1;
}

int tm_metrics_new(tm_metrics **ret)
{
        tm_metrics *m = calloc(1, sizeof(*m));

        if (!m)
                return -ENOMEM;
        pthread_mutex_init(&m->lock, NULL);
        *ret = m;
        return 0;
}

void tm_metrics_free(tm_metrics *m)
{
        if (!m)
                return;
        for (size_t i = 0; i < m->n_fam; i++) {
                struct family *f = &m->fam[i];

                for (size_t j = 0; j < f->n_series; j++) {
                        free(f->series[j].labels);
                        free(f->series[j].bucket_counts);
                }
                free(f->series);
                free(f->buckets);
                free(f->name);
                free(f->help);
        }
        free(m->fam);
        pthread_mutex_destroy(&m->lock);
        free(m);
}

static struct family *family_find(tm_metrics *m, const char *name)
{
        for (size_t i = 0; i < m->n_fam; i++)
                if (strcmp(m->fam[i].name, name) == 0)
                        return &m->fam[i];
        return NULL;
}

int tm_metrics_define(tm_metrics *m, const char *name, enum tm_metric_type type, const char *help,
                      const double *buckets, size_t n_buckets)
{
        struct family *f;
        size_t nl;
        int r = 0;

        if (!name_valid(name, 0) || !help)
                return -EINVAL;
        nl = strlen(name);
        if (type == TM_METRIC_COUNTER && (nl < 7 || strcmp(name + nl - 6, "_total") != 0))
                return -EINVAL;
        if (type == TM_METRIC_HISTOGRAM) {
                if (!buckets) {
                        buckets = default_buckets;
                        n_buckets = TM_ARRAY_SIZE(default_buckets);
                }
                for (size_t i = 0; i < n_buckets; i++)
                        if (!isfinite(buckets[i]) || (i && buckets[i] <= buckets[i - 1]))
                                return -EINVAL;
        }
        pthread_mutex_lock(&m->lock);
        f = family_find(m, name);
        if (f) {
                r = f->type == type ? 0 : -EEXIST;
                goto out;
        }
        if (m->n_fam == m->cap_fam) {
                size_t cap = m->cap_fam ? m->cap_fam * 2 : 16;
                struct family *nf = realloc(m->fam, cap * sizeof(*nf));

                if (!nf) {
                        r = -ENOMEM;
                        goto out;
                }
                m->fam = nf;
                m->cap_fam = cap;
        }
        f = &m->fam[m->n_fam];
        memset(f, 0, sizeof(*f));
        f->type = type;
        f->name = strdup(name);
        f->help = strdup(help);
        if (type == TM_METRIC_HISTOGRAM && n_buckets) {
                f->buckets = malloc(n_buckets * sizeof(double));
                if (f->buckets)
                        memcpy(f->buckets, buckets, n_buckets * sizeof(double));
                f->n_buckets = n_buckets;
        }
        if (!f->name || !f->help || (f->n_buckets && !f->buckets)) {
                free(f->name);
                free(f->help);
                free(f->buckets);
                r = -ENOMEM;
                goto out;
        }
        m->n_fam++;
out:
        pthread_mutex_unlock(&m->lock);
        return r;
}

/* Render the label list into a malloc'd string. */
static int labels_render(const char *const *labels, char **ret)
{
        tm_buf b = TM_BUF_INIT(64 * 1024);
        int r = 0;

        if (tm_buf_append(&b, "", 1) < 0)
                return -ENOMEM;
        b.len = 0;
        for (size_t i = 0; labels && labels[i]; i += 2) {
                const char *v = labels[i + 1];

                if (!name_valid(labels[i], 1) || strncmp(labels[i], "__", 2) == 0 || !v) {
                        r = -EINVAL;
                        goto out;
                }
                r = tm_buf_printf(&b, "%s%s=\"", i ? "," : "", labels[i]);
                for (const char *p = v; r >= 0 && *p; p++) {
                        if (*p == '\\')
                                r = tm_buf_append(&b, "\\\\", 2);
                        else if (*p == '"')
                                r = tm_buf_append(&b, "\\\"", 2);
                        else if (*p == '\n')
                                r = tm_buf_append(&b, "\\n", 2);
                        else
                                r = tm_buf_append(&b, p, 1);
                }
                if (r >= 0)
                        r = tm_buf_printf(&b, "\"");
                if (r < 0)
                        goto out;
        }
        *ret = (char *)b.data;
        b.data = NULL;
        return 0;
out:
        tm_buf_dispose(&b);
        return r;
}

/* Find or create a series; called with the lock held. */
static int series_get(struct family *f, const char *const *labels, struct series **ret)
{
        char *key = NULL;
        struct series *s;
        int r;

        r = labels_render(labels, &key);
        if (r < 0)
                return r;
        for (size_t i = 0; i < f->n_series; i++)
                if (strcmp(f->series[i].labels, key) == 0) {
                        free(key);
                        *ret = &f->series[i];
                        return 0;
                }
        if (f->n_series == f->cap_series) {
                size_t cap = f->cap_series ? f->cap_series * 2 : 8;
                struct series *ns = realloc(f->series, cap * sizeof(*ns));

                if (!ns) {
                        free(key);
                        return -ENOMEM;
                }
                f->series = ns;
                f->cap_series = cap;
        }
        s = &f->series[f->n_series];
        memset(s, 0, sizeof(*s));
        if (f->type == TM_METRIC_HISTOGRAM && f->n_buckets) {
                s->bucket_counts = calloc(f->n_buckets, sizeof(*s->bucket_counts));
                if (!s->bucket_counts) {
                        free(key);
                        return -ENOMEM;
                }
        }
        s->labels = key;
        f->n_series++;
        *ret = s;
        return 0;
}

enum op { OP_SET, OP_ADD, OP_OBSERVE };

static int update(tm_metrics *m, const char *name, const char *const *labels, double v, enum op op)
{
        struct family *f;
        struct series *s;
        int r;

        pthread_mutex_lock(&m->lock);
        f = family_find(m, name);
        if (!f) {
                r = -ENOENT;
                goto out;
        }
        if ((op == OP_OBSERVE) != (f->type == TM_METRIC_HISTOGRAM) ||
            (op == OP_SET && f->type == TM_METRIC_COUNTER) ||
            (op == OP_ADD && f->type == TM_METRIC_COUNTER && !(v >= 0))) {
                r = -EINVAL;
                goto out;
        }
        r = series_get(f, labels, &s);
        if (r < 0)
                goto out;
        switch (op) {
        case OP_SET:
                s->value = v;
                break;
        case OP_ADD:
                s->value += v;
                break;
        case OP_OBSERVE:
                s->value += v;
                s->count++;
                for (size_t i = 0; i < f->n_buckets; i++)
                        if (v <= f->buckets[i]) {
                                s->bucket_counts[i]++;
                                break;
                        }
                break;
        }
out:
        pthread_mutex_unlock(&m->lock);
        return r;
}

int tm_metrics_set(tm_metrics *m, const char *name, const char *const *labels, double v)
{
        return update(m, name, labels, v, OP_SET);
}

int tm_metrics_add(tm_metrics *m, const char *name, const char *const *labels, double v)
{
        return update(m, name, labels, v, OP_ADD);
}

int tm_metrics_observe(tm_metrics *m, const char *name, const char *const *labels, double v)
{
        return update(m, name, labels, v, OP_OBSERVE);
}

int tm_metrics_reset(tm_metrics *m, const char *name)
{
        struct family *f;
        int r = 0;

        pthread_mutex_lock(&m->lock);
        f = family_find(m, name);
        if (!f) {
                r = -ENOENT;
        } else {
                for (size_t j = 0; j < f->n_series; j++) {
                        free(f->series[j].labels);
                        free(f->series[j].bucket_counts);
                }
                f->n_series = 0;
        }
        pthread_mutex_unlock(&m->lock);
        return r;
}

static int put_value(tm_buf *b, double v)
{
        if (isnan(v))
                return tm_buf_printf(b, "NaN\n");
        if (isinf(v))
                return tm_buf_printf(b, v > 0 ? "+Inf\n" : "-Inf\n");
        return tm_buf_printf(b, "%.15g\n", v);
}

static int put_help(tm_buf *b, const char *help)
{
        int r = 0;

        for (const char *p = help; r >= 0 && *p; p++) {
                if (*p == '\\')
                        r = tm_buf_append(b, "\\\\", 2);
                else if (*p == '\n')
                        r = tm_buf_append(b, "\\n", 2);
                else
                        r = tm_buf_append(b, p, 1);
        }
        return r;
}

int tm_metrics_render(tm_metrics *m, tm_buf *out)
{
        static const char *types[] = { "counter", "gauge", "histogram" };
        int r = 0;

        pthread_mutex_lock(&m->lock);
        for (size_t i = 0; r >= 0 && i < m->n_fam; i++) {
                const struct family *f = &m->fam[i];

                r = tm_buf_printf(out, "# HELP %s ", f->name);
                if (r >= 0)
                        r = put_help(out, f->help);
                if (r >= 0)
                        r = tm_buf_printf(out, "\n# TYPE %s %s\n", f->name, types[f->type]);
                for (size_t j = 0; r >= 0 && j < f->n_series; j++) {
                        const struct series *s = &f->series[j];
                        const char *sep = s->labels[0] ? "," : "";

                        if (f->type != TM_METRIC_HISTOGRAM) {
                                r = tm_buf_printf(out, "%s%s%s%s ", f->name,
                                                  s->labels[0] ? "{" : "", s->labels,
                                                  s->labels[0] ? "}" : "");
                                if (r >= 0)
                                        r = put_value(out, s->value);
                                continue;
                        }
                        unsigned long long cum = 0;

                        for (size_t k = 0; r >= 0 && k < f->n_buckets; k++) {
                                cum += s->bucket_counts[k];
                                r = tm_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", f->name,
                                                  s->labels, sep, f->buckets[k], cum);
                        }
                        if (r >= 0)
                                r = tm_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name,
                                                  s->labels, sep, s->count);
                        if (r >= 0)
                                r = tm_buf_printf(out, "%s_sum%s%s%s ", f->name,
                                                  s->labels[0] ? "{" : "", s->labels,
                                                  s->labels[0] ? "}" : "");
                        if (r >= 0)
                                r = put_value(out, s->value);
                        if (r >= 0)
                                r = tm_buf_printf(out, "%s_count%s%s%s %llu\n", f->name,
                                                  s->labels[0] ? "{" : "", s->labels,
                                                  s->labels[0] ? "}" : "", s->count);
                }
        }
        pthread_mutex_unlock(&m->lock);
        return r < 0 ? r : 0;
}
