/*
 * forget: the retention policy (which snapshots to keep), restic's rules.
 * A pure function over snapshot times; removing is the caller's job.
 */
#include <errno.h>
#include <stdlib.h>

#include <tidemark/ops.h>
#include <tidemark/time.h>

enum { RULE_LAST, RULE_HOURLY, RULE_DAILY, RULE_WEEKLY, RULE_MONTHLY, RULE_YEARLY, N_RULES };

/* reasons[mask] names every rule that kept a snapshot (bit i = rule i), so a
 * kept snapshot gets one static string however many rules matched it; index 0
 * is used when the policy is empty and everything is kept. */
static const char *const reasons_by_mask[1 << N_RULES] = {
        "all",
        "last",
        "hourly",
        "last, hourly",
        "daily",
        "last, daily",
        "hourly, daily",
        "last, hourly, daily",
        "weekly",
        "last, weekly",
        "hourly, weekly",
        "last, hourly, weekly",
        "daily, weekly",
        "last, daily, weekly",
        "hourly, daily, weekly",
        "last, hourly, daily, weekly",
        "monthly",
        "last, monthly",
        "hourly, monthly",
        "last, hourly, monthly",
        "daily, monthly",
        "last, daily, monthly",
        "hourly, daily, monthly",
        "last, hourly, daily, monthly",
        "weekly, monthly",
        "last, weekly, monthly",
        "hourly, weekly, monthly",
        "last, hourly, weekly, monthly",
        "daily, weekly, monthly",
        "last, daily, weekly, monthly",
        "hourly, daily, weekly, monthly",
        "last, hourly, daily, weekly, monthly",
        "yearly",
        "last, yearly",
        "hourly, yearly",
        "last, hourly, yearly",
        "daily, yearly",
        "last, daily, yearly",
        "hourly, daily, yearly",
        "last, hourly, daily, yearly",
        "weekly, yearly",
        "last, weekly, yearly",
        "hourly, weekly, yearly",
        "last, hourly, weekly, yearly",
        "daily, weekly, yearly",
        "last, daily, weekly, yearly",
        "hourly, daily, weekly, yearly",
        "last, hourly, daily, weekly, yearly",
        "monthly, yearly",
        "last, monthly, yearly",
        "hourly, monthly, yearly",
        "last, hourly, monthly, yearly",
        "daily, monthly, yearly",
        "last, daily, monthly, yearly",
        "hourly, daily, monthly, yearly",
        "last, hourly, daily, monthly, yearly",
        "weekly, monthly, yearly",
        "last, weekly, monthly, yearly",
        "hourly, weekly, monthly, yearly",
        "last, hourly, weekly, monthly, yearly",
        "daily, weekly, monthly, yearly",
        "last, daily, weekly, monthly, yearly",
        "hourly, daily, weekly, monthly, yearly",
        "last, hourly, daily, weekly, monthly, yearly",
};

struct item {
        int64_t time;
        const tm_id *id;
        size_t index;
};

/* Newest first; ties broken by id, then by position, so the plan does not
 * depend on the order the caller passed. */
static int item_cmp(const void *pa, const void *pb)
{
        const struct item *a = pa, *b = pb;
        int c;

        if (a->time != b->time)
                return a->time > b->time ? -1 : 1;
        c = tm_id_cmp(a->id, b->id);
        if (c)
                return -c;
        return a->index > b->index ? -1 : (a->index < b->index);
}

/* Day of the week, ISO style: Monday 1 .. Sunday 7. */
static int iso_wday(int wday)
{
        return wday == 0 ? 7 : wday;
}

/* ISO 8601 years have 53 weeks when they start on a Thursday, or on a
 * Wednesday in a leap year; p(y) is the weekday of Dec 31 (0 = Sunday). */
static int iso_weeks_in_year(int64_t y)
{
        int64_t p = (y + y / 4 - y / 100 + y / 400) % 7;
        int64_t pp = ((y - 1) + (y - 1) / 4 - (y - 1) / 100 + (y - 1) / 400) % 7;

        return (p == 4 || pp == 3) ? 53 : 52;
}

/* ISO year * 100 + ISO week: the week that holds the Thursday of this week
 * decides the year, so 2021-01-01 is 2020-W53 and 2024-12-30 is 2025-W01. */
static int64_t iso_week_bucket(const struct tm_time_fields *f)
{
        int64_t year = f->year;
        int week = (f->yday + 1 - iso_wday(f->wday) + 10) / 7;

        if (week < 1) {
                year--;
                week = iso_weeks_in_year(year);
        } else if (week > iso_weeks_in_year(year)) {
                year++;
                week = 1;
        }
        return year * 100 + week;
}

static int64_t bucket(int rule, const struct tm_time_fields *f, size_t rank)
{
        int64_t day = (int64_t)f->year * 10000 + f->month * 100 + f->day;

        switch (rule) {
        case RULE_LAST:
                return (int64_t)rank; /* every snapshot is its own period */
        case RULE_HOURLY:
                return day * 100 + f->hour;
        case RULE_DAILY:
                return day;
        case RULE_WEEKLY:
                return iso_week_bucket(f);
        case RULE_MONTHLY:
                return (int64_t)f->year * 100 + f->month;
        default:
                return f->year;
        }
}

int tm_forget_plan(const struct tm_snapshot *snaps, size_t n, const struct tm_forget_policy *pol,
                   int *keep, const char **reasons)
{
        struct item *items = NULL;
        int left[N_RULES], have_last[N_RULES] = { 0 }, any = 0, r = 0;
        int64_t last[N_RULES] = { 0 };

        if (!pol || (n > 0 && (!snaps || !keep)))
                return -EINVAL;
        left[RULE_LAST] = pol->last;
        left[RULE_HOURLY] = pol->hourly;
        left[RULE_DAILY] = pol->daily;
        left[RULE_WEEKLY] = pol->weekly;
        left[RULE_MONTHLY] = pol->monthly;
        left[RULE_YEARLY] = pol->yearly;
        for (int i = 0; i < N_RULES; i++) {
                if (left[i] < 0)
                        return -EINVAL;
                any |= left[i] > 0;
        }
        if (!any) {
                /* an empty policy must never mean "delete everything" */
                for (size_t i = 0; i < n; i++) {
                        keep[i] = 1;
                        if (reasons)
                                reasons[i] = reasons_by_mask[0];
                }
                return 0;
        }
        if (n == 0)
                return 0;
        items = calloc(n, sizeof(*items));
        if (!items)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                items[i] = (struct item){ snaps[i].time, &snaps[i].id, i };
        qsort(items, n, sizeof(*items), item_cmp);

        for (size_t k = 0; k < n; k++) {
                struct tm_time_fields f;
                size_t i = items[k].index;
                unsigned mask = 0;

                tm_time_split(items[k].time, &f);
                for (int rule = 0; rule < N_RULES; rule++) {
                        int64_t b;

                        if (left[rule] == 0)
                                continue;
                        b = bucket(rule, &f, k);
                        /* newest first: the first snapshot seen in a period is
                         * that period's newest */
                        if (have_last[rule] && b == last[rule])
                                continue;
                        have_last[rule] = 1;
                        last[rule] = b;
                        left[rule]--;
                        mask |= 1u << rule;
                }
                keep[i] = mask != 0;
                if (reasons)
                        reasons[i] = mask ? reasons_by_mask[mask] : NULL;
        }
        free(items);
        return r;
}
