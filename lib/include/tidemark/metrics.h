#pragma once
/*
 * metrics: a small registry of Prometheus metrics (counters, gauges,
 * histograms with labels) rendered in the text exposition format 0.0.4, the
 * one `promtool check metrics` accepts. Families are defined once; series
 * are created on first use. Label values are escaped; label order is the
 * order the caller passes (keep it the same for a family).
 */
#include <stddef.h>

#include <tidemark/core.h>

enum tm_metric_type { TM_METRIC_COUNTER, TM_METRIC_GAUGE, TM_METRIC_HISTOGRAM };

typedef struct tm_metrics tm_metrics;

/* A new empty registry. Returns 0 and *ret (caller frees) or -ENOMEM. */
int tm_metrics_new(tm_metrics **ret);
/* Free; NULL-safe. */
void tm_metrics_free(tm_metrics *m);
/**
 * tm_metrics_define() - declare a family. Counter names must end in
 * "_total". buckets (ascending upper bounds, +Inf implied) only for
 * histograms; NULL gives a default set for seconds. Returns 0, -EINVAL (bad
 * name, counter without _total, buckets not ascending), -EEXIST (defined
 * with another type), -ENOMEM. Thread-safe.
 */
int tm_metrics_define(tm_metrics *m, const char *name, enum tm_metric_type type, const char *help,
                      const double *buckets, size_t n_buckets);
/* Label arguments: a NULL-terminated list of name, value, name, value...
 * (NULL for no labels). Each returns 0, -ENOENT (family not defined),
 * -EINVAL (wrong type, bad label name, negative counter increment), -ENOMEM.
 * All are thread-safe. */
int tm_metrics_set(tm_metrics *m, const char *name, const char *const *labels, double v);
int tm_metrics_add(tm_metrics *m, const char *name, const char *const *labels, double v);
int tm_metrics_observe(tm_metrics *m, const char *name, const char *const *labels, double v);
/* Remove every series of a family (for gauges recomputed from scratch). */
int tm_metrics_reset(tm_metrics *m, const char *name);
/* Append the whole registry in text format to out (ends with a newline).
 * Returns 0 or -ENOMEM / -E2BIG. */
int tm_metrics_render(tm_metrics *m, tm_buf *out);
