#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <tidemark/time.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil); avoids timegm()'s dependence on the TZ environment. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
        int64_t era, yoe, doy, doe;

        y -= m <= 2;
        era = (y >= 0 ? y : y - 399) / 400;
        yoe = y - era * 400;
        doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
        doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
        static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

        if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
                return 29;
        return dm[m - 1];
}

/* Read exactly n digits. */
static int digits(const char **s, int n, int *ret)
{
        int v = 0;

        for (int i = 0; i < n; i++) {
                if (!isdigit((unsigned char)(*s)[i]))
                        return -EINVAL;
                v = v * 10 + ((*s)[i] - '0');
        }
        *s += n;
        *ret = v;
        return 0;
}

int tm_time_parse(const char *s, int64_t *ret, int64_t *ret_precision_ns)
{
        int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 1;
        int64_t frac = 0, prec = 86400 * TM_NSEC_PER_SEC, days, ns;

        if (!s || strlen(s) > 64)
                return -EINVAL;
        if (digits(&s, 4, &y) < 0 || *s++ != '-' || digits(&s, 2, &mo) < 0 || *s++ != '-' ||
            digits(&s, 2, &d) < 0)
                return -EINVAL;
        if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
                return -EINVAL;
        if (*s == 'T' || *s == 't' || *s == ' ') {
                s++;
                if (digits(&s, 2, &h) < 0 || h > 23)
                        return -EINVAL;
                prec = 3600 * TM_NSEC_PER_SEC;
                if (*s == ':') {
                        s++;
                        if (digits(&s, 2, &mi) < 0 || mi > 59)
                                return -EINVAL;
                        prec = 60 * TM_NSEC_PER_SEC;
                        if (*s == ':') {
                                s++;
                                if (digits(&s, 2, &sec) < 0 || sec > 60)
                                        return -EINVAL;
                                if (sec == 60)
                                        sec = 59; /* leap second: clamp */
                                prec = TM_NSEC_PER_SEC;
                                if (*s == '.' || *s == ',') {
                                        int64_t scale = TM_NSEC_PER_SEC;
                                        int n = 0;

                                        s++;
                                        while (isdigit((unsigned char)*s)) {
                                                if (n++ < 9) {
                                                        scale /= 10;
                                                        frac += (*s - '0') * scale;
                                                }
                                                s++;
                                        }
                                        if (n == 0)
                                                return -EINVAL;
                                        prec = scale ? scale : 1;
                                }
                        }
                }
                if (*s == 'Z' || *s == 'z') {
                        s++;
                } else if (*s == '+' || *s == '-') {
                        sign = *s == '-' ? -1 : 1;
                        s++;
                        if (digits(&s, 2, &oh) < 0 || oh > 23)
                                return -EINVAL;
                        if (*s == ':')
                                s++;
                        if (digits(&s, 2, &om) < 0 || om > 59)
                                return -EINVAL;
                }
        } else if (*s == 'Z' || *s == 'z') {
                s++;
        }
        if (*s)
                return -EINVAL;
        days = days_from_civil(y, mo, d);
        /* int64 nanoseconds end in April 2262: later instants (any year up
         * to 9999 passes the checks above) are out of range, not UB. */
        if (__builtin_mul_overflow((days * 86400 + h * 3600 + mi * 60 + sec) -
                                           sign * (oh * 3600 + om * 60),
                                   TM_NSEC_PER_SEC, &ns) ||
            __builtin_add_overflow(ns, frac, &ns))
                return -EINVAL;
        *ret = ns;
        if (ret_precision_ns)
                *ret_precision_ns = prec;
        return 0;
}

void tm_time_split(int64_t ns, struct tm_time_fields *ret)
{
        /* Floor division written without negating ns, which overflows for
         * INT64_MIN. */
        int64_t secs = ns / TM_NSEC_PER_SEC - (ns % TM_NSEC_PER_SEC < 0);
        int64_t days = secs / 86400 - (secs % 86400 < 0);
        int64_t rem = secs - days * 86400, z, era, doe, yoe, y, doy, mp;

        ret->hour = (int)(rem / 3600);
        ret->min = (int)(rem % 3600 / 60);
        ret->sec = (int)(rem % 60);
        ret->wday = (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday */
        z = days + 719468;
        era = (z >= 0 ? z : z - 146096) / 146097;
        doe = z - era * 146097;
        yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        y = yoe + era * 400;
        doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        mp = (5 * doy + 2) / 153;
        ret->day = (int)(doy - (153 * mp + 2) / 5 + 1);
        ret->month = (int)(mp < 10 ? mp + 3 : mp - 9);
        ret->year = (int)(y + (ret->month <= 2));
        ret->yday = (int)(days - days_from_civil(ret->year, 1, 1));
}

void tm_time_format(int64_t ns, char *out, size_t n)
{
        struct tm_time_fields f;

        tm_time_split(ns, &f);
        snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02dZ", f.year, f.month, f.day, f.hour, f.min,
                 f.sec);
}

void tm_time_format_ns(int64_t ns, char *out, size_t n)
{
        struct tm_time_fields f;
        int64_t frac = ns % TM_NSEC_PER_SEC;

        if (frac < 0)
                frac += TM_NSEC_PER_SEC;
        tm_time_split(ns, &f);
        snprintf(out, n, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", f.year, f.month, f.day, f.hour,
                 f.min, f.sec, (long long)frac);
}

int64_t tm_time_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * TM_NSEC_PER_SEC + ts.tv_nsec;
}

int64_t tm_time_mono(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * TM_NSEC_PER_SEC + ts.tv_nsec;
}
