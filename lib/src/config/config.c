/*
 * config: the INI file (parsed by libinih) and schedules. inih's handler
 * does not get line numbers in Debian's build, so the file is fed through
 * our own reader that counts lines: when the handler runs, the counter is
 * the line being handled. Every problem is reported once, as FILE:LINE:
 * reason, and the first one stops the load.
 */
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/config.h>
#include <tidemark/core.h>
#include <tidemark/crypto.h>
#include <tidemark/time.h>

#define SECRET_FILE_MAX (64 * 1024)

/* ---- schedules ---- */

/* Parse one cron field into a bit mask of [lo, hi]. */
static int cron_field(const char *s, int lo, int hi, uint64_t *ret, int *star)
{
        char buf[128], *save = NULL, *item;
        uint64_t mask = 0;

        if (strlen(s) >= sizeof(buf))
                return -EINVAL;
        snprintf(buf, sizeof(buf), "%s", s);
        *star = strcmp(s, "*") == 0;
        for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
                long a = lo, b = hi, step = 1;
                char *slash = strchr(item, '/'), *end;

                if (slash) {
                        *slash = '\0';
                        errno = 0;
                        step = strtol(slash + 1, &end, 10);
                        if (errno || *end || end == slash + 1 || step < 1 || step > hi)
                                return -EINVAL;
                }
                if (strcmp(item, "*") != 0) {
                        char *dash = strchr(item, '-');

                        errno = 0;
                        a = strtol(item, &end, 10);
                        if (errno || end == item || (dash ? end != dash : *end != '\0'))
                                return -EINVAL;
                        b = slash ? hi : a;
                        if (dash) {
                                b = strtol(dash + 1, &end, 10);
                                if (errno || *end || end == dash + 1)
                                        return -EINVAL;
                        }
                }
                if (a < lo || b > hi || a > b)
                        return -EINVAL;
                for (long v = a; v <= b; v += step)
                        mask |= 1ull << v;
        }
        if (!mask)
                return -EINVAL;
        *ret = mask;
        return 0;
}

int tm_schedule_parse(const char *s, struct tm_schedule *ret)
{
        static const struct {
                const char *name, *cron;
        } aliases[] = {
                { "hourly", "0 * * * *" },
                { "daily", "0 0 * * *" },
                { "weekly", "0 0 * * 0" },
                { "monthly", "0 0 1 * *" },
        };
        struct tm_schedule sc = { 0 };
        char buf[256], *f[6], *save = NULL;
        uint64_t m;
        int n = 0, star;

        if (!s)
                return -EINVAL;
        while (*s == ' ')
                s++;
        for (size_t i = 0; i < TM_ARRAY_SIZE(aliases); i++)
                if (strcmp(s, aliases[i].name) == 0)
                        s = aliases[i].cron;
        if (strncmp(s, "every ", 6) == 0) {
                char *end;
                unsigned long long v;
                int64_t unit = TM_NSEC_PER_SEC;

                errno = 0;
                v = strtoull(s + 6, &end, 10);
                if (errno || end == s + 6 || v == 0 || s[6] == '-')
                        return -EINVAL;
                if (*end == 's' || *end == '\0')
                        unit = TM_NSEC_PER_SEC;
                else if (*end == 'm')
                        unit = 60 * TM_NSEC_PER_SEC;
                else if (*end == 'h')
                        unit = 3600 * TM_NSEC_PER_SEC;
                else if (*end == 'd')
                        unit = 86400 * TM_NSEC_PER_SEC;
                else
                        return -EINVAL;
                if (*end && end[1])
                        return -EINVAL;
                if (v > (unsigned long long)(INT64_MAX / unit))
                        return -EINVAL;
                sc.every_ns = (int64_t)v * unit;
                *ret = sc;
                return 0;
        }
        if (strlen(s) >= sizeof(buf))
                return -EINVAL;
        snprintf(buf, sizeof(buf), "%s", s);
        for (char *t = strtok_r(buf, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
                if (n == 5)
                        return -EINVAL;
                f[n++] = t;
        }
        if (n != 5)
                return -EINVAL;
        if (cron_field(f[0], 0, 59, &sc.minutes, &star) < 0)
                return -EINVAL;
        if (cron_field(f[1], 0, 23, &m, &star) < 0)
                return -EINVAL;
        sc.hours = (uint32_t)m;
        if (cron_field(f[2], 1, 31, &m, &star) < 0)
                return -EINVAL;
        sc.days = (uint32_t)m;
        sc.dom_star = (uint8_t)star;
        if (cron_field(f[3], 1, 12, &m, &star) < 0)
                return -EINVAL;
        sc.months = (uint16_t)m;
        if (cron_field(f[4], 0, 7, &m, &star) < 0)
                return -EINVAL;
        if (m & (1u << 7))
                m |= 1; /* 7 is Sunday too */
        sc.wdays = (uint8_t)(m & 0x7f);
        sc.dow_star = (uint8_t)star;
        *ret = sc;
        return 0;
}

int64_t tm_schedule_next(const struct tm_schedule *s, int64_t after)
{
        const int64_t minute = 60 * TM_NSEC_PER_SEC;
        int64_t t;

        if (s->every_ns > 0)
                return after + s->every_ns;
        /* cron: walk minute by minute (at most ~2.6 million steps for 5
         * years, a few ms), skipping whole hours and days that cannot match */
        t = (after / minute + 1) * minute;
        for (int64_t limit = t + 5 * 366 * 86400 * TM_NSEC_PER_SEC; t < limit;) {
                struct tm_time_fields f;
                int dom_ok, dow_ok, day_ok;

                tm_time_split(t, &f);
                dom_ok = (s->days >> f.day) & 1;
                dow_ok = (s->wdays >> f.wday) & 1;
                /* cron's rule: with both day fields restricted, either matches */
                if (s->dom_star || s->dow_star)
                        day_ok = dom_ok && dow_ok;
                else
                        day_ok = dom_ok || dow_ok;
                if (!((s->months >> f.month) & 1) || !day_ok) {
                        t += (int64_t)(24 * 60 - f.hour * 60 - f.min) * minute;
                        continue;
                }
                if (!((s->hours >> f.hour) & 1)) {
                        t += (int64_t)(60 - f.min) * minute;
                        continue;
                }
                if ((s->minutes >> f.min) & 1)
                        return t;
                t += minute;
        }
        return -1;
}

/* ---- names ---- */

/* The spec's service tiers. One table: backupd's and monitord's freshness
 * checks, monitord's SLA and failoverd's default targets all read it. The
 * spec gives no availability for development; 99.0 is ours. */
static const struct {
        const char *name;
        int64_t rto_min, rpo_min;
        double availability;
} service_tiers[] = {
        [TM_TIER_CRITICAL] = { "critical", 30, 5, 99.95 },
        [TM_TIER_HIGH] = { "high", 60, 15, 99.90 },
        [TM_TIER_STANDARD] = { "standard", 240, 60, 99.50 },
        [TM_TIER_DEVELOPMENT] = { "development", 480, 240, 99.0 },
};
static const char *strategy_names[] = { "full", "differential", "incremental" };

const char *tm_tier_name(enum tm_tier t)
{
        return (unsigned)t < TM_ARRAY_SIZE(service_tiers) ? service_tiers[t].name : "?";
}

/* an unknown tier gets standard's targets, like an unconfigured component */
static unsigned tier_index(enum tm_tier t)
{
        return (unsigned)t < TM_ARRAY_SIZE(service_tiers) ? (unsigned)t : TM_TIER_STANDARD;
}

int64_t tm_tier_rto(enum tm_tier t)
{
        return service_tiers[tier_index(t)].rto_min * 60 * TM_NSEC_PER_SEC;
}

int64_t tm_tier_rpo(enum tm_tier t)
{
        return service_tiers[tier_index(t)].rpo_min * 60 * TM_NSEC_PER_SEC;
}

double tm_tier_availability(enum tm_tier t)
{
        return service_tiers[tier_index(t)].availability;
}

const char *tm_strategy_name(enum tm_strategy s)
{
        return (unsigned)s < TM_ARRAY_SIZE(strategy_names) ? strategy_names[s] : "?";
}

int tm_strategy_parse(const char *s, enum tm_strategy *ret)
{
        for (size_t i = 0; i < TM_ARRAY_SIZE(strategy_names); i++)
                if (s && strcmp(s, strategy_names[i]) == 0) {
                        *ret = (enum tm_strategy)i;
                        return 0;
                }
        return -EINVAL;
}

void tm_config_token_hash(const char *token, char out[65])
{
        tm_id h;

        tm_crypto_sha256(token, strlen(token), &h);
        tm_id_hex(&h, out);
}

/* ---- loading ---- */

struct loader {
        FILE *f;
        int line;
        int long_line;
        struct tm_config *c;
        struct tm_component_conf *cur; /* the component section being read */
        int cur_raw;                   /* the current section is kept raw */
        char cur_section[128];
        char *err;
        size_t errlen;
        int failed;
        /* secrets given as *_file, read after parsing */
        char *secret_files[5];
        int secret_lines[5];
};

static char *reader(char *str, int num, void *stream)
{
        struct loader *l = stream;
        char *s = fgets(str, num, l->f);
        size_t n;

        if (!s)
                return NULL;
        n = strlen(s);
        /* a section header starts a new section even if it repeats the
         * previous name (so a duplicate component is noticed) */
        for (const char *p = s; *p; p++) {
                if (*p == '[')
                        l->cur_section[0] = '\0';
                if (*p != ' ' && *p != '\t')
                        break;
        }
        if (n && s[n - 1] == '\n') {
                l->line++;
        } else if (!feof(l->f)) {
                /* inih would split an over-long line into two: refuse it */
                if (!l->long_line)
                        l->long_line = l->line + 1;
                int ch;

                while ((ch = fgetc(l->f)) != EOF && ch != '\n')
                        ;
                l->line++;
        } else {
                l->line++;
        }
        return s;
}

static int fail(struct loader *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct loader *l, const char *fmt, ...)
{
        char msg[512];
        va_list ap;

        if (l->failed)
                return 0;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(l->err, l->errlen, "%s:%d: %s", l->c->path, l->line, msg);
        l->failed = 1;
        return 0; /* tells inih to carry on; we report only the first */
}

static int set_str(char **dst, const char *v)
{
        char *s = tm_strdup(v);

        if (!s)
                return -ENOMEM;
        free(*dst);
        *dst = s;
        return 0;
}

static int list_add(char ***v, size_t *n, const char *value)
{
        char buf[4096], *save = NULL;

        if (strlen(value) >= sizeof(buf))
                return -EINVAL;
        snprintf(buf, sizeof(buf), "%s", value);
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                char **nv, *e;

                while (*t == ' ' || *t == '\t')
                        t++;
                e = t + strlen(t);
                while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
                        *--e = '\0';
                if (!*t)
                        continue;
                nv = realloc(*v, (*n + 1) * sizeof(*nv));
                if (!nv)
                        return -ENOMEM;
                *v = nv;
                nv[*n] = tm_strdup(t);
                if (!nv[*n])
                        return -ENOMEM;
                (*n)++;
        }
        return 0;
}

static int parse_uint(const char *v, unsigned long long max, unsigned long long *ret)
{
        unsigned long long x;
        char *end;

        if (*v < '0' || *v > '9')
                return -EINVAL;
        errno = 0;
        x = strtoull(v, &end, 10);
        if (errno || *end || x > max)
                return -EINVAL;
        *ret = x;
        return 0;
}

int tm_config_parse_size(const char *v, uint64_t *ret)
{
        unsigned long long x, mul = 1;
        char *end;

        if (*v < '0' || *v > '9')
                return -EINVAL;
        errno = 0;
        x = strtoull(v, &end, 10);
        if (errno)
                return -EINVAL;
        switch (*end) {
        case '\0':
                break;
        case 'K':
        case 'k':
                mul = 1ull << 10;
                break;
        case 'M':
                mul = 1ull << 20;
                break;
        case 'G':
                mul = 1ull << 30;
                break;
        case 'T':
                mul = 1ull << 40;
                break;
        default:
                return -EINVAL;
        }
        if (*end && end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
                return -EINVAL;
        if (x > UINT64_MAX / mul)
                return -EINVAL;
        *ret = x * mul;
        return 0;
}

int tm_config_parse_bool(const char *v, int *ret)
{
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
                *ret = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") || !strcmp(v, "0"))
                *ret = 0;
        else
                return -EINVAL;
        return 0;
}

int tm_config_parse_duration(const char *v, int64_t *ret_ns)
{
        static const struct {
                const char *unit;
                int64_t ns;
        } units[] = { { "ms", 1000000LL },
                      { "s", TM_NSEC_PER_SEC },
                      { "m", 60 * TM_NSEC_PER_SEC },
                      { "h", 3600 * TM_NSEC_PER_SEC },
                      { "d", 86400 * TM_NSEC_PER_SEC },
                      { "w", 7 * 86400 * TM_NSEC_PER_SEC },
                      { "y", 365 * 86400 * TM_NSEC_PER_SEC } };
        unsigned long long x;
        char *end;

        if (*v < '0' || *v > '9')
                return -EINVAL;
        errno = 0;
        x = strtoull(v, &end, 10);
        if (errno)
                return -EINVAL;
        for (size_t i = 0; i < TM_ARRAY_SIZE(units); i++) {
                if (strcmp(end, units[i].unit) != 0)
                        continue;
                if (x > (unsigned long long)(INT64_MAX / units[i].ns))
                        return -EINVAL;
                *ret_ns = (int64_t)x * units[i].ns;
                return 0;
        }
        return -EINVAL;
}

/* Sections kept raw for their owners (see config.h): a name equal to one of
 * these, or starting with one that ends in '.'. */
static const char *raw_sections[] = { "tier.",    "replica", "failover", "site.",    "service_tier.",
                                      "hook.",    "target.", "monitor",  "check.",   "alert.",
                                      "channel.", "runbook.", "service.", "sla",     "incidents" };

static int is_raw_section(const char *name)
{
        for (size_t i = 0; i < TM_ARRAY_SIZE(raw_sections); i++) {
                const char *p = raw_sections[i];
                size_t n = strlen(p);

                if (p[n - 1] == '.' ? !strncmp(name, p, n) && name[n] : !strcmp(name, p))
                        return 1;
        }
        return 0;
}

static int on_raw(struct loader *l, const char *section, const char *k, const char *v)
{
        struct tm_config *c = l->c;
        struct tm_config_section *s = c->n_sections ? &c->sections[c->n_sections - 1] : NULL;
        struct tm_config_kv *nkv;

        if (!l->cur_raw) {
                struct tm_config_section *ns;

                for (size_t i = 0; i < c->n_sections; i++)
                        if (!strcmp(c->sections[i].name, section))
                                return fail(l, "section [%s] appears twice", section), 0;
                ns = realloc(c->sections, (c->n_sections + 1) * sizeof(*ns));
                if (!ns)
                        return -ENOMEM;
                c->sections = ns;
                s = &ns[c->n_sections];
                memset(s, 0, sizeof(*s));
                s->name = tm_strdup(section);
                if (!s->name)
                        return -ENOMEM;
                s->line = l->line;
                c->n_sections++;
                l->cur_raw = 1;
        }
        nkv = realloc(s->kv, (s->n_kv + 1) * sizeof(*nkv));
        if (!nkv)
                return -ENOMEM;
        s->kv = nkv;
        nkv[s->n_kv].key = tm_strdup(k);
        nkv[s->n_kv].value = tm_strdup(v);
        nkv[s->n_kv].line = l->line;
        s->n_kv++;
        if (!nkv[s->n_kv - 1].key || !nkv[s->n_kv - 1].value)
                return -ENOMEM;
        return 0;
}

static const char *secret_names[] = { "aws_access_key_id", "aws_secret_access_key", "postgres_host",
                                      "postgres_password", "slack_webhook_url" };
static const char *secret_envs[] = { "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "POSTGRES_HOST",
                                     "POSTGRES_PASSWORD", "SLACK_WEBHOOK_URL" };

static char **secret_slot(struct tm_config *c, size_t i)
{
        char **slots[] = { &c->aws_access_key_id, &c->aws_secret_access_key, &c->postgres_host,
                           &c->postgres_password, &c->slack_webhook_url };
        return slots[i];
}

static int on_repository(struct loader *l, const char *k, const char *v)
{
        struct tm_config *c = l->c;

        if (!strcmp(k, "location"))
                return set_str(&c->repo_location, v);
        if (!strcmp(k, "password_file"))
                return set_str(&c->password_file, v);
        if (!strcmp(k, "catalog"))
                return set_str(&c->catalog, v);
        if (!strcmp(k, "capacity")) {
                if (tm_config_parse_size(v, &c->capacity_bytes) < 0)
                        return fail(l, "invalid capacity '%s' (expected bytes, e.g. 500G)", v), 0;
                return 0;
        }
        return fail(l, "unknown key '%s' in [repository]", k), 0;
}

static int on_server(struct loader *l, const char *k, const char *v)
{
        struct tm_config *c = l->c;
        unsigned long long x;

        if (!strcmp(k, "listen")) {
                const char *colon = strrchr(v, ':');

                if (!colon || parse_uint(colon + 1, 65535, &x) < 0)
                        return fail(l, "invalid listen address '%s' (expected ADDR:PORT)", v), 0;
                return set_str(&c->listen, v);
        }
        if (!strcmp(k, "tls_cert"))
                return set_str(&c->tls_cert, v);
        if (!strcmp(k, "tls_key"))
                return set_str(&c->tls_key, v);
        if (!strcmp(k, "state_dir"))
                return set_str(&c->state_dir, v);
        if (!strcmp(k, "audit_log"))
                return set_str(&c->audit_log, v);
        if (!strcmp(k, "access_log"))
                return set_str(&c->access_log, v);
        if (!strcmp(k, "workers")) {
                if (parse_uint(v, 64, &x) < 0 || x == 0)
                        return fail(l, "invalid workers '%s' (expected 1 to 64)", v), 0;
                c->workers = (int)x;
                return 0;
        }
        if (!strcmp(k, "shutdown_timeout")) {
                if (parse_uint(v, 86400, &x) < 0)
                        return fail(l, "invalid shutdown_timeout '%s' (seconds)", v), 0;
                c->shutdown_timeout_s = (int)x;
                return 0;
        }
        return fail(l, "unknown key '%s' in [server]", k), 0;
}

static int on_auth(struct loader *l, const char *k, const char *v)
{
        struct tm_config *c = l->c;
        struct tm_http_token tok = { 0 }, *nt;
        char role[32];
        const char *colon, *hex;

        if (!strcmp(k, "anonymous")) {
                if (tm_http_role_parse(v, &c->anonymous_role) < 0)
                        return fail(l,
                                    "invalid anonymous role '%s' (none, viewer, operator, "
                                    "admin)",
                                    v),
                               0;
                return 0;
        }
        if (strncmp(k, "token.", 6) != 0 || !k[6] || strlen(k + 6) >= sizeof(tok.name))
                return fail(l, "unknown key '%s' in [auth] (expected token.<name>)", k), 0;
        colon = strchr(v, ':');
        if (!colon || (size_t)(colon - v) >= sizeof(role))
                return fail(l, "invalid token '%s': expected <role>:<sha256 hex>", k), 0;
        memcpy(role, v, (size_t)(colon - v));
        role[colon - v] = '\0';
        if (tm_http_role_parse(role, &tok.role) < 0 || tok.role == TM_ROLE_NONE)
                return fail(l, "invalid role '%s' for %s (viewer, operator, admin)", role, k), 0;
        hex = colon + 1;
        if (strlen(hex) != 64 || tm_hex_decode(hex, tok.sha256, 32) < 0)
                return fail(l,
                            "invalid hash for %s: expected 64 hex digits (the SHA-256 of the "
                            "token, not the token)",
                            k),
                       0;
        snprintf(tok.name, sizeof(tok.name), "%s", k + 6);
        for (size_t i = 0; i < c->n_tokens; i++)
                if (!strcmp(c->tokens[i].name, tok.name))
                        return fail(l, "duplicate token '%s'", tok.name), 0;
        nt = realloc(c->tokens, (c->n_tokens + 1) * sizeof(*nt));
        if (!nt)
                return -ENOMEM;
        c->tokens = nt;
        c->tokens[c->n_tokens++] = tok;
        return 0;
}

static int on_retention(struct loader *l, const char *k, const char *v)
{
        struct tm_config *c = l->c;
        char *end;

        if (!strcmp(k, "prune")) {
                if (tm_config_parse_bool(v, &c->prune) < 0)
                        return fail(l, "invalid prune '%s' (true or false)", v), 0;
                return 0;
        }
        if (!strcmp(k, "max_unused")) {
                errno = 0;
                c->max_unused = strtod(v, &end);
                if (errno || end == v || *end || c->max_unused < 0 || c->max_unused > 1)
                        return fail(l, "invalid max_unused '%s' (a fraction from 0 to 1)", v), 0;
                return 0;
        }
        if (!strcmp(k, "schedule")) {
                if (!strcmp(v, "none") || !strcmp(v, "off") || !strcmp(v, "never")) {
                        c->has_retention_schedule = 0;
                        return 0;
                }
                if (tm_schedule_parse(v, &c->retention_schedule) < 0)
                        return fail(l, "invalid schedule '%s'", v), 0;
                c->has_retention_schedule = 1;
                return 0;
        }
        return fail(l, "unknown key '%s' in [retention]", k), 0;
}

static int on_secrets(struct loader *l, const char *k, const char *v)
{
        for (size_t i = 0; i < TM_ARRAY_SIZE(secret_names); i++) {
                size_t n = strlen(secret_names[i]);

                if (!strcmp(k, secret_names[i]))
                        return set_str(secret_slot(l->c, i), v);
                if (!strncmp(k, secret_names[i], n) && !strcmp(k + n, "_file")) {
                        l->secret_lines[i] = l->line;
                        return set_str(&l->secret_files[i], v);
                }
        }
        return fail(l, "unknown key '%s' in [secrets]", k), 0;
}

static int on_component(struct loader *l, const char *k, const char *v)
{
        struct tm_component_conf *cc = l->cur;
        unsigned long long x;
        int *keep = NULL;

        if (!strcmp(k, "type")) {
                if (!strcmp(v, "files"))
                        cc->type = TM_COMPONENT_FILES;
                else if (!strcmp(v, "command"))
                        cc->type = TM_COMPONENT_COMMAND;
                else if (!strcmp(v, "postgres"))
                        cc->type = TM_COMPONENT_POSTGRES;
                else
                        return fail(l, "invalid type '%s' (files, command or postgres)", v), 0;
                return 0;
        }
        if (!strcmp(k, "paths"))
                return list_add(&cc->paths, &cc->n_paths, v) < 0 ? fail(l, "invalid paths"), 0 : 0;
        if (!strcmp(k, "exclude"))
                return list_add(&cc->excludes, &cc->n_excludes, v) < 0 ? fail(l, "invalid exclude"),
                       0                                               : 0;
        if (!strcmp(k, "command"))
                return set_str(&cc->command, v);
        /* type = postgres */
        if (!strcmp(k, "host"))
                return set_str(&cc->pg_host, v);
        if (!strcmp(k, "port")) {
                if (parse_uint(v, 65535, &x) < 0)
                        return fail(l, "invalid port '%s'", v), 0;
                return set_str(&cc->pg_port, v);
        }
        if (!strcmp(k, "user"))
                return set_str(&cc->pg_user, v);
        if (!strcmp(k, "passfile"))
                return set_str(&cc->pg_passfile, v);
        if (!strcmp(k, "conninfo"))
                return set_str(&cc->pg_conninfo, v);
        if (!strcmp(k, "staging"))
                return set_str(&cc->pg_staging, v);
        if (!strcmp(k, "slot")) {
                if (!*v || strlen(v) > 63 ||
                    strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(v))
                        return fail(l, "invalid slot '%s' (lower-case letters, digits and '_', at "
                                       "most 63)",
                                    v),
                               0;
                return set_str(&cc->pg_slot, v);
        }
        if (!strcmp(k, "filename")) {
                if (strchr(v, '/') || !strcmp(v, ".") || !strcmp(v, ".."))
                        return fail(l, "invalid filename '%s' (a plain file name)", v), 0;
                return set_str(&cc->stdin_filename, v);
        }
        if (!strcmp(k, "tier")) {
                for (size_t i = 0; i < TM_ARRAY_SIZE(service_tiers); i++)
                        if (!strcmp(v, service_tiers[i].name)) {
                                cc->tier = (enum tm_tier)i;
                                return 0;
                        }
                return fail(l, "invalid tier '%s' (critical, high, standard, development)", v), 0;
        }
        if (!strcmp(k, "schedule.continuous")) {
                if (tm_config_parse_bool(v, &cc->continuous) < 0 && strcmp(v, "none") && strcmp(v, "never"))
                        return fail(l, "invalid schedule.continuous '%s' (on or off)", v), 0;
                if (!strcmp(v, "none") || !strcmp(v, "never"))
                        cc->continuous = 0;
                return 0;
        }
        if (!strcmp(k, "continuous_interval")) {
                char buf[80];
                struct tm_schedule sc;

                snprintf(buf, sizeof(buf), "every %s", v);
                if (strlen(v) > 40 || tm_schedule_parse(buf, &sc) < 0 ||
                    sc.every_ns > 86400 * TM_NSEC_PER_SEC)
                        return fail(l, "invalid continuous_interval '%s' (N[s|m|h], from 1s to 1d)",
                                    v),
                               0;
                cc->continuous_interval_ns = sc.every_ns;
                return 0;
        }
        if (!strncmp(k, "schedule.", 9)) {
                enum tm_strategy s;

                if (tm_strategy_parse(k + 9, &s) < 0)
                        return fail(l,
                                    "unknown key '%s' (schedule.full, schedule.differential, "
                                    "schedule.incremental, schedule.continuous)",
                                    k),
                               0;
                if (!strcmp(v, "none") || !strcmp(v, "off") || !strcmp(v, "never")) {
                        cc->has_schedule[s] = 0;
                        return 0;
                }
                if (tm_schedule_parse(v, &cc->schedule[s]) < 0)
                        return fail(l,
                                    "invalid schedule '%s' (hourly, daily, weekly, monthly, "
                                    "every N[s|m|h|d], a 5-field cron expression, or none)",
                                    v),
                               0;
                cc->has_schedule[s] = 1;
                return 0;
        }
        if (!strcmp(k, "keep_last"))
                keep = &cc->keep.last;
        else if (!strcmp(k, "keep_hourly"))
                keep = &cc->keep.hourly;
        else if (!strcmp(k, "keep_daily"))
                keep = &cc->keep.daily;
        else if (!strcmp(k, "keep_weekly"))
                keep = &cc->keep.weekly;
        else if (!strcmp(k, "keep_monthly"))
                keep = &cc->keep.monthly;
        else if (!strcmp(k, "keep_yearly"))
                keep = &cc->keep.yearly;
        if (keep) {
                if (parse_uint(v, 1000000, &x) < 0)
                        return fail(l, "invalid %s '%s' (a count from 0)", k, v), 0;
                *keep = (int)x;
                return 0;
        }
        return fail(l, "unknown key '%s' in [%s]", k, l->cur_section), 0;
}

int tm_config_name_valid(const char *s)
{
        if (!*s || strlen(s) > 64)
                return 0;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_' || *s == '.'))
                        return 0;
        return 1;
}

static int start_component(struct loader *l, const char *name)
{
        struct tm_config *c = l->c;
        struct tm_component_conf *nc, *cc;

        if (!tm_config_name_valid(name))
                return fail(l, "invalid component name '%s' (letters, digits, '-', '_', '.')",
                            name);
        if (tm_config_component(c, name))
                return fail(l, "duplicate component '%s'", name);
        nc = realloc(c->components, (c->n_components + 1) * sizeof(*nc));
        if (!nc)
                return -ENOMEM;
        c->components = nc;
        cc = &nc[c->n_components++];
        memset(cc, 0, sizeof(*cc));
        cc->name = tm_strdup(name);
        if (!cc->name)
                return -ENOMEM;
        cc->tier = TM_TIER_STANDARD;
        cc->line = l->line;
        /* the spec's defaults: full weekly, differential daily, incremental every 4 h */
        tm_schedule_parse("weekly", &cc->schedule[TM_STRATEGY_FULL]);
        tm_schedule_parse("daily", &cc->schedule[TM_STRATEGY_DIFFERENTIAL]);
        tm_schedule_parse("every 4h", &cc->schedule[TM_STRATEGY_INCREMENTAL]);
        for (int i = 0; i < TM_STRATEGY_COUNT; i++)
                cc->has_schedule[i] = 1;
        cc->continuous_interval_ns = 60 * TM_NSEC_PER_SEC;
        l->cur = cc;
        return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
        struct loader *l = user;
        int r;

        if (l->failed)
                return 1;
        if (!l->cur_section[0] || strcmp(section, l->cur_section) != 0) {
                snprintf(l->cur_section, sizeof(l->cur_section), "%s", section);
                l->cur = NULL;
                l->cur_raw = 0;
                if (!strncmp(section, "component.", 10)) {
                        r = start_component(l, section + 10);
                        if (r < 0)
                                return 0;
                        if (l->failed)
                                return 1;
                }
        }
        if (!name) /* a section without keys (inih >= 50 reports these) */
                return 1;
        if (!value || !*value) {
                fail(l, "key '%s' has no value", name);
                return 1;
        }
        if (!strcmp(section, "repository"))
                r = on_repository(l, name, value);
        else if (!strcmp(section, "server"))
                r = on_server(l, name, value);
        else if (!strcmp(section, "auth"))
                r = on_auth(l, name, value);
        else if (!strcmp(section, "retention"))
                r = on_retention(l, name, value);
        else if (!strcmp(section, "secrets"))
                r = on_secrets(l, name, value);
        else if (l->cur)
                r = on_component(l, name, value);
        else if (is_raw_section(section))
                r = on_raw(l, section, name, value);
        else if (!section[0])
                r = fail(l, "key '%s' outside of any section", name);
        else
                r = fail(l, "unknown section [%s]", section);
        if (r < 0)
                fail(l, "out of memory");
        return 1;
}

static int read_secret_file(const char *path, char **ret)
{
        tm_buf b = TM_BUF_INIT(SECRET_FILE_MAX);
        int r;

        r = tm_file_read_all(path, SECRET_FILE_MAX, &b);
        if (r < 0)
                return r;
        while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
                b.len--;
        r = tm_buf_append(&b, "", 1);
        if (r < 0) {
                tm_buf_dispose_secret(&b);
                return r;
        }
        *ret = (char *)b.data;
        return 0;
}

/* Checks that need the whole file, reported at the section's line. */
static void validate(struct loader *l)
{
        struct tm_config *c = l->c;

        for (size_t i = 0; i < c->n_components && !l->failed; i++) {
                struct tm_component_conf *cc = &c->components[i];

                l->line = cc->line;
                if (cc->type == TM_COMPONENT_FILES && (!cc->n_paths || cc->command))
                        fail(l, "component '%s' of type files needs paths (and no command)",
                             cc->name);
                else if (cc->type == TM_COMPONENT_COMMAND && (!cc->command || cc->n_paths))
                        fail(l, "component '%s' of type command needs a command (and no paths)",
                             cc->name);
                else if (cc->type == TM_COMPONENT_POSTGRES && (cc->command || cc->n_paths))
                        fail(l, "component '%s' of type postgres takes no paths and no command",
                             cc->name);
                else if (cc->type != TM_COMPONENT_POSTGRES &&
                         (cc->pg_host || cc->pg_port || cc->pg_user || cc->pg_passfile ||
                          cc->pg_conninfo || cc->pg_slot || cc->pg_staging))
                        fail(l, "component '%s': host, port, user, passfile, conninfo, slot and "
                                "staging need type postgres",
                             cc->name);
                /* postgres: schedule.continuous streams its WAL */
                if (cc->continuous && cc->type == TM_COMPONENT_COMMAND && !l->failed)
                        fail(l, "component '%s': schedule.continuous needs type files or postgres",
                             cc->name);
                for (size_t j = 0; j < cc->n_paths && !l->failed; j++)
                        if (cc->paths[j][0] != '/')
                                fail(l, "component '%s': path '%s' is not absolute", cc->name,
                                     cc->paths[j]);
        }
}

int tm_config_load(const char *path, struct tm_config **ret, char *err, size_t errlen)
{
        struct loader l = { 0 };
        struct tm_config *c = NULL;
        int r, pr;

        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->anonymous_role = (enum tm_role) - 1;
        c->workers = 2;
        c->shutdown_timeout_s = 60;
        c->prune = 1;
        c->max_unused = 0.05;
        c->path = tm_strdup(path);
        if (!c->path) {
                r = -ENOMEM;
                goto out;
        }
        l.c = c;
        l.err = err;
        l.errlen = errlen;
        l.f = fopen(path, "re");
        if (!l.f) {
                r = -errno;
                snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-r));
                goto out;
        }
        pr = ini_parse_stream(reader, &l, handler, &l);
        if (l.long_line && (!l.failed || l.long_line < l.line)) {
                l.failed = 0;
                l.line = l.long_line;
                fail(&l, "line too long (inih reads at most %d characters)", INI_MAX_LINE - 2);
        } else if (pr > 0 && !l.failed) {
                l.line = pr;
                fail(&l, "syntax error (expected [section] or key = value)");
        }
        if (!l.failed)
                validate(&l);
        if (l.failed) {
                r = -EINVAL;
                goto out;
        }
        for (size_t i = 0; i < TM_ARRAY_SIZE(secret_names); i++) {
                char **slot = secret_slot(c, i);
                const char *env;

                if (*slot)
                        continue;
                if (l.secret_files[i]) {
                        r = read_secret_file(l.secret_files[i], slot);
                        if (r < 0) {
                                snprintf(err, errlen, "%s:%d: cannot read %s_file '%s': %s", path,
                                         l.secret_lines[i], secret_names[i], l.secret_files[i],
                                         strerror(-r));
                                goto out;
                        }
                } else if ((env = getenv(secret_envs[i])) && *env) {
                        *slot = tm_strdup(env);
                        if (!*slot) {
                                r = -ENOMEM;
                                goto out;
                        }
                }
        }
        if ((int)c->anonymous_role == -1)
                c->anonymous_role = c->n_tokens ? TM_ROLE_NONE : TM_ROLE_ADMIN;
        if (!c->listen && set_str(&c->listen, "0.0.0.0:8080") < 0) {
                r = -ENOMEM;
                goto out;
        }
        if (!c->access_log && set_str(&c->access_log, "stderr") < 0) {
                r = -ENOMEM;
                goto out;
        }
        *ret = c;
        c = NULL;
        r = 0;
out:
        for (size_t i = 0; i < TM_ARRAY_SIZE(l.secret_files); i++)
                free(l.secret_files[i]);
        if (l.f)
                fclose(l.f);
        tm_config_free(c);
        return r;
}

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

static void free_secret(char *s)
{
        if (!s)
                return;
        /* volatile stores so the wipe is not optimised away */
        for (volatile char *p = s; *p; p++)
                *p = 0;
        free(s);
}

void tm_config_free(struct tm_config *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->n_components; i++) {
                struct tm_component_conf *cc = &c->components[i];

                free(cc->name);
                strv_free(cc->paths, cc->n_paths);
                strv_free(cc->excludes, cc->n_excludes);
                free(cc->command);
                free(cc->stdin_filename);
                free(cc->pg_host);
                free(cc->pg_port);
                free(cc->pg_user);
                free(cc->pg_passfile);
                free(cc->pg_conninfo);
                free(cc->pg_slot);
                free(cc->pg_staging);
        }
        free(c->components);
        for (size_t i = 0; i < c->n_sections; i++) {
                for (size_t j = 0; j < c->sections[i].n_kv; j++) {
                        free(c->sections[i].kv[j].key);
                        free_secret(c->sections[i].kv[j].value);
                }
                free(c->sections[i].kv);
                free(c->sections[i].name);
        }
        free(c->sections);
        for (size_t i = 0; i < TM_ARRAY_SIZE(secret_names); i++)
                free_secret(*secret_slot(c, i));
        free(c->tokens);
        free(c->path);
        free(c->repo_location);
        free(c->password_file);
        free(c->catalog);
        free(c->listen);
        free(c->tls_cert);
        free(c->tls_key);
        free(c->state_dir);
        free(c->audit_log);
        free(c->access_log);
        free(c);
}

const struct tm_component_conf *tm_config_component(const struct tm_config *c, const char *name)
{
        for (size_t i = 0; c && name && i < c->n_components; i++)
                if (!strcmp(c->components[i].name, name))
                        return &c->components[i];
        return NULL;
}

const struct tm_config_section *tm_config_section(const struct tm_config *c, const char *name)
{
        for (size_t i = 0; i < c->n_sections; i++)
                if (!strcmp(c->sections[i].name, name))
                        return &c->sections[i];
        return NULL;
}

const char *tm_config_section_get(const struct tm_config_section *s, const char *key)
{
        const char *v = NULL;

        for (size_t i = 0; s && i < s->n_kv; i++)
                if (!strcmp(s->kv[i].key, key))
                        v = s->kv[i].value;
        return v;
}

int tm_config_section_error(const struct tm_config *c, const struct tm_config_section *s,
                            const char *key, char *err, size_t errlen, const char *fmt, ...)
{
        char msg[512];
        int line = s ? s->line : 0;
        va_list ap;

        for (size_t i = 0; s && key && i < s->n_kv; i++)
                if (!strcmp(s->kv[i].key, key))
                        line = s->kv[i].line;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(err, errlen, "%s:%d: %s", c->path, line, msg);
        return -EINVAL;
}

int tm_config_section_check_keys(const struct tm_config *c, const struct tm_config_section *s,
                                 const char *const *keys, size_t n, char *err, size_t errlen)
{
        for (size_t i = 0; i < s->n_kv; i++) {
                size_t k = 0;

                while (k < n && strcmp(keys[k], s->kv[i].key))
                        k++;
                if (k == n)
                        return tm_config_section_error(c, s, s->kv[i].key, err, errlen,
                                                       "unknown key '%s' in [%s]", s->kv[i].key,
                                                       s->name);
        }
        return 0;
}
