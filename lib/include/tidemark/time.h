#pragma once
/*
 * time: UTC instants as int64 nanoseconds since the epoch, and the parser for
 * the instants users type: 2025-01-07T10:00:00Z, 2025-01-07T10:00:00.123Z,
 * 2025-01-07T10:00:00+02:00, 2025-01-07T10:00, 2025-01-07T10, 2025-01-07.
 * Anything without an offset is UTC.
 */
#include <stddef.h>
#include <stdint.h>

#define TM_NSEC_PER_SEC 1000000000LL

/* Parse an instant. Returns 0 and *ret (ns), or -EINVAL naming nothing (the
 * caller has the context). A date that does not exist (2025-02-30) is -EINVAL.
 * *ret_precision_ns, if non-NULL, gets the span the text covers (1 day for a
 * date, 60 s for minutes...) so "@2025-01-07" can mean the end of that span. */
int tm_time_parse(const char *s, int64_t *ret, int64_t *ret_precision_ns);
/* Format as 2025-01-07T10:00:00Z (seconds) into out (>= 21 bytes). */
void tm_time_format(int64_t ns, char *out, size_t n);
/* Format with nanoseconds: 2025-01-07T10:00:00.123456789Z (>= 31 bytes). */
void tm_time_format_ns(int64_t ns, char *out, size_t n);
/* Current wall-clock time in ns. */
int64_t tm_time_now(void);
/* Monotonic clock in ns, for durations. */
int64_t tm_time_mono(void);
/* Broken-down UTC fields (for retention buckets). */
struct tm_time_fields {
        int year, month, day, hour, min, sec, wday, yday; /* month 1-12, wday 0=Sunday */
};
void tm_time_split(int64_t ns, struct tm_time_fields *ret);
