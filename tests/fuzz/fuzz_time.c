/* Fuzz target for tm_time_parse(): any byte string, made NUL-terminated.
 * Invariants: parsing never reads past the NUL or overflows; an accepted
 * instant formats and parses back to itself (exactly at nanosecond
 * precision, floored at second precision) and splits into sane fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *s = malloc(size + 1), buf[40];
        int64_t ns, prec, back, back_prec;
        struct tm_time_fields f;

        if (!s)
                return 0;
        memcpy(s, data, size);
        s[size] = 0;
        if (tm_time_parse(s, &ns, &prec) < 0)
                goto out;
        TM_ASSERT(prec >= 1 && prec <= 86400 * TM_NSEC_PER_SEC);
        tm_time_split(ns, &f);
        TM_ASSERT(f.month >= 1 && f.month <= 12 && f.day >= 1 && f.day <= 31);
        TM_ASSERT(f.hour >= 0 && f.hour < 24 && f.min >= 0 && f.min < 60);
        TM_ASSERT(f.sec >= 0 && f.sec < 60 && f.wday >= 0 && f.wday < 7);
        TM_ASSERT(f.yday >= 0 && f.yday < 366);
        tm_time_format(ns, buf, sizeof(buf));
        /* An offset can move an instant before 1970, which the parser does
         * not accept: the round trip only holds from the epoch on. */
        if (ns < 0)
                goto out;
        TM_ASSERT(tm_time_parse(buf, &back, &back_prec) == 0);
        TM_ASSERT(back == ns - ns % TM_NSEC_PER_SEC && back_prec == TM_NSEC_PER_SEC);
        tm_time_format_ns(ns, buf, sizeof(buf));
        TM_ASSERT(tm_time_parse(buf, &back, &back_prec) == 0);
        TM_ASSERT(back == ns && back_prec == 1);
out:
        free(s);
        return 0;
}
