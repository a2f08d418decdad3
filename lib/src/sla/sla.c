/*
 * Probe history and the SLA arithmetic. Records are (time, ok, latency);
 * a window's report walks the records in it, so any window and any clock
 * (a test's) give figures from the same data.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <tidemark/core.h>
#include <tidemark/sla.h>
#include <tidemark/time.h>

#define MAX_SERVICES 256
#define MAX_RECORDS  (1u << 20) /* per service: 12 days of a probe a second */

struct rec {
        int64_t t;
        int32_t latency_us;
        int32_t ok;
};

struct hist {
        char name[128];
        struct rec *r; /* ring, oldest at head */
        size_t head, n, cap;
        int fd;
};

struct tm_sla {
        pthread_mutex_t lock;
        char *dir;
        int64_t keep_ns;
        struct hist h[MAX_SERVICES];
        size_t n;
};

static int valid_name(const char *s)
{
        if (!*s || strlen(s) >= 128)
                return 0;
        for (; *s; s++)
                if (!(isalnum((unsigned char)*s) || *s == '-' || *s == '_' || *s == '.'))
                        return 0;
        return 1;
}

static void push(struct hist *h, const struct rec *r)
{
        if (h->n == h->cap) {
                if (h->cap < MAX_RECORDS) {
                        size_t cap = h->cap ? h->cap * 2 : 1024;
                        struct rec *n = malloc(cap * sizeof(*n));

                        if (n) {
                                /* unroll the ring into the new array */
                                for (size_t i = 0; i < h->n; i++)
                                        n[i] = h->r[(h->head + i) % h->cap];
                                free(h->r);
                                h->r = n;
                                h->head = 0;
                                h->cap = cap;
                        }
                }
                if (h->n == h->cap) { /* full: drop the oldest */
                        h->head = (h->head + 1) % h->cap;
                        h->n--;
                }
        }
        h->r[(h->head + h->n) % h->cap] = *r;
        h->n++;
}

static struct hist *get_hist(tm_sla *s, const char *name, int create)
{
        struct hist *h;

        for (size_t i = 0; i < s->n; i++)
                if (!strcmp(s->h[i].name, name))
                        return &s->h[i];
        if (!create || s->n == MAX_SERVICES)
                return NULL;
        h = &s->h[s->n++];
        memset(h, 0, sizeof(*h));
        h->fd = -1;
        snprintf(h->name, sizeof(h->name), "%s", name);
        if (s->dir) {
                char path[4400];
                FILE *f;

                snprintf(path, sizeof(path), "%s/%s.log", s->dir, name);
                f = fopen(path, "re");
                if (f) {
                        long long t, lat;
                        int ok;
                        int64_t cutoff = tm_time_now() - s->keep_ns;

                        while (fscanf(f, "%lld %d %lld\n", &t, &ok, &lat) == 3) {
                                struct rec r = { .t = t, .ok = ok, .latency_us = (int32_t)lat };

                                if (t >= cutoff)
                                        push(h, &r);
                        }
                        fclose(f);
                }
                h->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        }
        return h;
}

int tm_sla_open(const char *dir, int64_t keep_ns, tm_sla **ret)
{
        tm_sla *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->lock, NULL);
        s->keep_ns = keep_ns > 0 ? keep_ns : 35LL * 86400 * TM_NSEC_PER_SEC;
        if (dir) {
                s->dir = strdup(dir);
                if (!s->dir) {
                        tm_sla_free(s);
                        return -ENOMEM;
                }
        }
        *ret = s;
        return 0;
}

void tm_sla_free(tm_sla *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++) {
                free(s->h[i].r);
                if (s->h[i].fd >= 0)
                        close(s->h[i].fd);
        }
        free(s->dir);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

int tm_sla_record(tm_sla *s, const char *service, int64_t t, int ok, int64_t latency_ns)
{
        struct rec r = { .t = t, .ok = ok ? 1 : 0 };
        struct hist *h;
        int rc = 0;

        if (!valid_name(service))
                return -EINVAL;
        r.latency_us = (int32_t)TM_MIN(latency_ns / 1000, INT32_MAX);
        pthread_mutex_lock(&s->lock);
        h = get_hist(s, service, 1);
        if (!h) {
                rc = -ENOMEM;
                goto out;
        }
        push(h, &r);
        if (!h->r) {
                rc = -ENOMEM;
                goto out;
        }
        if (h->fd >= 0) {
                char line[96];
                int n = snprintf(line, sizeof(line), "%lld %d %d\n", (long long)t, r.ok,
                                 r.latency_us);

                if (write(h->fd, line, (size_t)n) != n)
                        rc = -errno ? -errno : -EIO;
        }
out:
        pthread_mutex_unlock(&s->lock);
        return rc;
}

static int cmp_i32(const void *a, const void *b)
{
        int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;

        return (x > y) - (x < y);
}

int tm_sla_report(tm_sla *s, const char *service, enum tm_tier tier, int64_t window_ns, int64_t now,
                  struct tm_sla_report *ret)
{
        struct hist *h;
        int32_t *lat = NULL;
        size_t nl = 0;
        int64_t from = now - window_ns, down_ns = 0, gap_cap;
        int r = 0;

        memset(ret, 0, sizeof(*ret));
        ret->target_percent = tm_tier_availability(tier);
        pthread_mutex_lock(&s->lock);
        h = get_hist(s, service, 0);
        if (!h) {
                r = -ENOENT;
                goto out;
        }
        lat = malloc((h->n + 1) * sizeof(*lat));
        if (!lat) {
                r = -ENOMEM;
                goto out;
        }
        /* the typical spacing of probes bounds what one failure may cost:
         * a probe that failed just before the daemon stopped for an hour
         * does not make that whole hour downtime */
        gap_cap = 0;
        for (size_t i = 0; i < h->n; i++) {
                const struct rec *c = &h->r[(h->head + i) % h->cap];
                const struct rec *nx = i + 1 < h->n ? &h->r[(h->head + i + 1) % h->cap] : NULL;
                int64_t span;

                if (c->t < from || c->t > now)
                        continue;
                ret->probes++;
                ret->ok += c->ok != 0;
                lat[nl++] = c->latency_us;
                if (!c->ok) {
                        span = nx && nx->t <= now ? nx->t - c->t : now - c->t;
                        if (gap_cap == 0 && nx)
                                gap_cap = nx->t - c->t;
                        if (i > 0) {
                                const struct rec *pv = &h->r[(h->head + i - 1) % h->cap];

                                if (c->t - pv->t > 0)
                                        gap_cap = c->t - pv->t;
                        }
                        if (gap_cap > 0 && span > gap_cap)
                                span = gap_cap;
                        down_ns += span;
                }
        }
out:
        pthread_mutex_unlock(&s->lock);
        if (r >= 0) {
                ret->availability_percent =
                        ret->probes ? 100.0 * (double)ret->ok / (double)ret->probes : 100.0;
                if (nl) {
                        size_t k;

                        qsort(lat, nl, sizeof(*lat), cmp_i32);
                        /* nearest-rank p95: ceil(0.95 n), in integers (exact, and
                         * no libm for the daemons to link) */
                        k = (95 * nl + 99) / 100;
                        ret->p95_ms = (double)lat[k ? k - 1 : 0] / 1000.0;
                }
                ret->downtime_s = (double)down_ns / 1e9;
                ret->budget_s = (100.0 - ret->target_percent) / 100.0 * (double)window_ns / 1e9;
                ret->budget_left_s = ret->budget_s - ret->downtime_s;
                ret->availability_met = ret->availability_percent >= ret->target_percent;
                ret->latency_met = ret->p95_ms < 500.0;
        }
        free(lat);
        return r;
}

json_t *tm_sla_report_json(const struct tm_sla_report *r)
{
        return json_pack("{s:I, s:I, s:f, s:f, s:b, s:f, s:f, s:b, s:f, s:f, s:f}", "probes",
                         (json_int_t)r->probes, "successful", (json_int_t)r->ok,
                         "availability_percent", r->availability_percent, "target_percent",
                         r->target_percent, "availability_met", r->availability_met,
                         "p95_response_ms", r->p95_ms, "p95_target_ms", 500.0, "latency_met",
                         r->latency_met, "downtime_seconds", r->downtime_s,
                         "downtime_budget_seconds", r->budget_s, "downtime_budget_left_seconds",
                         r->budget_left_s);
}
