#pragma once
/*
 * sla: availability and response time of each service from the health-probe
 * history, against the spec's targets: critical 99.95 %, high 99.90 %,
 * standard 99.50 % (development: 99.0 %), and a 95th-percentile response
 * time under 500 ms. Availability is the share of probes that succeeded in
 * a rolling window; the downtime budget is what the target allows in that
 * window, minus what was used (each failed probe counts for the time until
 * the next probe, capped at the probe interval).
 *
 * The history is kept in memory (bounded per service) and appended to one
 * file per service in a directory, replayed at start.
 */
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <tidemark/config.h>

typedef struct tm_sla tm_sla;

struct tm_sla_report {
        uint64_t probes, ok;
        double availability_percent; /* 100 when there are no probes */
        double target_percent;
        double p95_ms;
        double downtime_s, budget_s, budget_left_s;
        int availability_met, latency_met;
};

/**
 * tm_sla_open() - a history; dir (may be NULL: memory only) holds one
 * "<service>.log" per service, replayed now (records older than keep_ns
 * are dropped). Returns 0 and *ret (caller frees), -errno. Thread-safe.
 */
int tm_sla_open(const char *dir, int64_t keep_ns, tm_sla **ret);
void tm_sla_free(tm_sla *s);
/* Record one probe of service at t (ns): ok or not, and its latency.
 * Returns 0, -EINVAL (bad service name), -ENOMEM, -errno (not persisted). */
int tm_sla_record(tm_sla *s, const char *service, int64_t t, int ok, int64_t latency_ns);
/* The report of service over [now - window, now]. Returns 0 or -ENOENT
 * (never probed). */
int tm_sla_report(tm_sla *s, const char *service, enum tm_tier tier, int64_t window_ns, int64_t now,
                  struct tm_sla_report *ret);
/* The same as JSON (new reference). */
json_t *tm_sla_report_json(const struct tm_sla_report *r);
