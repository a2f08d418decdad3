#pragma once
/*
 * probe: the health checks of tidemark-monitord, declared in the one
 * configuration file. [service.NAME] names a tidemark service (its base URL,
 * its tier for the SLA, an API token); [check.NAME] is one check with a
 * type, an interval and a timeout:
 *
 *   http       GET the service's /health (or url =): ok on 2xx
 *   metric     scrape the service's /metrics, aggregate one metric
 *              (metric =, labels = k=v ..., aggregate = max|min|sum|count)
 *              and compare it (op = > >= < <= == !=, threshold =): the
 *              check FAILS while the comparison holds (replication lag >
 *              60, utilization > 85, failed jobs > 0)
 *   jobs       the service's recent jobs (GET /api/v1/backups/status):
 *              fails while a job of kinds = (backup validate ...; default
 *              every kind) failed within window = (default 24h) and was not
 *              retried successfully: failed backups, validations, drills
 *   freshness  every component's last successful backup
 *              (backup_last_success_timestamp_seconds) is younger than its
 *              tier's RPO (critical 5 min, high 15 min, standard 1 h,
 *              development 4 h) or max_age =
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <tidemark/config.h>
#include <tidemark/promtext.h>

enum tm_probe_type { TM_PROBE_HTTP, TM_PROBE_METRIC, TM_PROBE_FRESHNESS, TM_PROBE_JOBS };
enum tm_probe_status { TM_PROBE_UNKNOWN, TM_PROBE_OK, TM_PROBE_FAILING };
enum tm_probe_op { TM_PROBE_GT, TM_PROBE_GE, TM_PROBE_LT, TM_PROBE_LE, TM_PROBE_EQ, TM_PROBE_NE };

struct tm_probe_service {
        char *name;
        char *url;         /* base, no trailing slash */
        char *health_path; /* default /health */
        char *token;       /* bearer for its API, or NULL */
        enum tm_tier tier; /* for the SLA target; default standard */
        int scrape;        /* scrape its /metrics (default on) */
};

struct tm_probe_check {
        char *name;
        enum tm_probe_type type;
        const struct tm_probe_service *service; /* borrowed from the config */
        char *url;                              /* http: overrides the service's health URL */
        int64_t interval_ns, timeout_ns;
        char *metric;
        char **matchers; /* NULL-terminated "k=v" */
        enum tm_promtext_agg agg;
        enum tm_probe_op op;
        double threshold;
        int absent_fails;   /* metric: a missing metric fails the check (default no) */
        char **components;  /* freshness: NULL-terminated; NULL = every [component.*] */
        int64_t max_age_ns; /* freshness: 0 = the tier's RPO */
        char **kinds;       /* jobs: NULL-terminated; NULL = every kind */
        int64_t window_ns;  /* jobs: how far back a failure counts */
};

struct tm_probe_config {
        struct tm_probe_service *services;
        size_t n_services;
        struct tm_probe_check *checks;
        size_t n_checks;
};

/* A check over several things (freshness: one per component) also says how
 * each one fared, so an alert on it fires per thing, as Prometheus does per
 * label set. At most TM_PROBE_MAX_ITEMS; the status and message still
 * cover all of them. */
#define TM_PROBE_MAX_ITEMS 64

struct tm_probe_item {
        char label[32];  /* the label's name, e.g. "component" */
        char value[96];  /* its value */
        int failing;
        double metric;   /* freshness: the age (s), +inf when never backed up */
        char message[160];
};

struct tm_probe_result {
        enum tm_probe_status status;
        char message[512];
        double value;       /* the compared value; freshness: the oldest age (s) */
        int64_t latency_ns; /* of the request */
        int64_t at;         /* wall clock, ns */
        int reached;        /* the service answered at all (for the SLA) */
        size_t n_items;     /* 0: one verdict for the whole check */
        struct tm_probe_item items[TM_PROBE_MAX_ITEMS];
};

/**
 * tm_probe_config_load() - read the [service.*] and [check.*] sections of
 * cfg. Returns 0 and *ret (free with tm_probe_config_free), -EINVAL with err
 * "FILE:LINE: reason", -ENOMEM.
 */
int tm_probe_config_load(const struct tm_config *cfg, struct tm_probe_config **ret, char *err,
                         size_t errlen);
void tm_probe_config_free(struct tm_probe_config *pc);
/* Lookups by name (borrowed), or NULL. */
const struct tm_probe_check *tm_probe_check_find(const struct tm_probe_config *pc,
                                                 const char *name);
const struct tm_probe_service *tm_probe_service_find(const struct tm_probe_config *pc,
                                                     const char *name);
/* "ok" "failing" "unknown"; "http" "metric" "freshness"; ">" ... */
const char *tm_probe_status_name(enum tm_probe_status s);
const char *tm_probe_type_name(enum tm_probe_type t);
int tm_probe_op_parse(const char *s, enum tm_probe_op *ret);
const char *tm_probe_op_name(enum tm_probe_op op);
/* Does `v op threshold` hold? */
int tm_probe_compare(double v, enum tm_probe_op op, double threshold);

/**
 * tm_probe_run() - run one check now (blocking, bounded by its timeout).
 * Always fills *ret; returns 0, or -ENOMEM. Thread-safe.
 */
int tm_probe_run(const struct tm_config *cfg, const struct tm_probe_check *c,
                 struct tm_probe_result *ret);
/**
 * tm_probe_eval_metric(), tm_probe_eval_freshness() - the pure halves of
 * tm_probe_run() on an already scraped exposition, at instant now (ns).
 */
void tm_probe_eval_metric(const struct tm_probe_check *c, const tm_promtext *pt,
                          struct tm_probe_result *ret);
void tm_probe_eval_freshness(const struct tm_config *cfg, const struct tm_probe_check *c,
                             const tm_promtext *pt, int64_t now, struct tm_probe_result *ret);
/* The pure half of a jobs check: jobs is the array of job objects
 * ("kind", "state", "component", "finished" or "created", "error",
 * "retried_by"). */
void tm_probe_eval_jobs(const struct tm_probe_check *c, const json_t *jobs, int64_t now,
                        struct tm_probe_result *ret);
/**
 * tm_probe_scrape() - GET a service's /metrics and parse it. Returns 0 and
 * *ret (caller frees), or -errno with err set.
 */
int tm_probe_scrape(const struct tm_probe_service *s, int timeout_ms, tm_promtext **ret, char *err,
                    size_t errlen);
/* Split a space- or comma-separated list into a NULL-terminated array
 * (caller frees with tm_probe_strv_free). Returns 0 or -ENOMEM. */
int tm_probe_strv_split(const char *s, char ***ret);
void tm_probe_strv_free(char **v);
