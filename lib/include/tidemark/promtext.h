#pragma once
/*
 * promtext: a reader for the Prometheus text exposition format (0.0.4), the
 * one every tidemark daemon serves on /metrics. monitord scrapes the other
 * services with it, evaluates alert conditions on the samples and re-exports
 * them. Comments (HELP, TYPE) are skipped; timestamps are ignored.
 */
#include <stddef.h>

#define TM_PROMTEXT_MAX_LABELS 16

struct tm_promtext_label {
        char *name, *value;
};

struct tm_promtext_sample {
        char *name;
        struct tm_promtext_label labels[TM_PROMTEXT_MAX_LABELS];
        size_t n_labels;
        double value;
        size_t family; /* index into the families (see tm_promtext_render_merged) */
};

typedef struct tm_promtext tm_promtext;

/**
 * tm_promtext_parse() - parse a whole exposition. Returns 0 and *ret
 * (caller frees), -EBADMSG when a line does not parse (msg, if non-NULL,
 * gets "line N: reason"), -E2BIG (more than 100000 samples), -ENOMEM.
 * Thread-safety: the result is immutable; concurrent readers are fine.
 */
int tm_promtext_parse(const char *text, size_t len, tm_promtext **ret, char *msg, size_t msg_len);
/* Free; NULL-safe. */
void tm_promtext_free(tm_promtext *p);
/* The samples (borrowed until tm_promtext_free). */
const struct tm_promtext_sample *tm_promtext_samples(const tm_promtext *p, size_t *ret_n);
/* The value of label NAME of a sample, or NULL. */
const char *tm_promtext_label(const struct tm_promtext_sample *s, const char *name);

enum tm_promtext_agg { TM_PROMTEXT_MAX, TM_PROMTEXT_MIN, TM_PROMTEXT_SUM, TM_PROMTEXT_COUNT };

/**
 * tm_promtext_select() - aggregate the samples named NAME whose labels match
 * every "k=v" in matchers (a NULL-terminated list, or NULL). Returns 0 and
 * *ret, or -ENOENT when no sample matches (COUNT gives 0 and returns 0).
 * -EINVAL for a matcher without '='.
 */
int tm_promtext_select(const tm_promtext *p, const char *name, const char *const *matchers,
                       enum tm_promtext_agg agg, double *ret);
/* Is sample s named NAME, with every "k=v" of matchers (NULL-terminated, or
 * NULL) among its labels? Returns 1 or 0 (a matcher without '=' never
 * matches). Thread-safe. */
int tm_promtext_match(const struct tm_promtext_sample *s, const char *name,
                      const char *const *matchers);
/* "max" "min" "sum" "count" -> agg. Returns 0 or -EINVAL. */
int tm_promtext_agg_parse(const char *s, enum tm_promtext_agg *ret);

#include <tidemark/core.h>

/**
 * tm_promtext_render_merged() - write several expositions as one: each
 * family once (its HELP and TYPE from the first set that has it), with the
 * samples of every set, each labelled label="names[i]". Families for which
 * skip(name, ud) returns non-zero are left out. Returns 0, -ENOMEM, -E2BIG.
 */
int tm_promtext_render_merged(const tm_promtext *const *sets, const char *const *names, size_t n,
                              const char *label, int (*skip)(const char *family, void *ud),
                              void *ud, tm_buf *out);
