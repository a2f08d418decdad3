#pragma once
/*
 * config: the one INI configuration file every tidemark program reads
 * (docs/configuration.md documents each key; contrib/tidemark.conf is a
 * commented example), and the schedules it declares. A file with an unknown
 * section or key, or a value that does not parse, is refused with
 * "FILE:LINE: reason".
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/http.h>
#include <tidemark/ops.h>

/* ---- schedules ---- */
/* hourly, daily, weekly, monthly, "every N[s|m|h|d]" or a 5-field cron
 * expression (minute hour day-of-month month day-of-week; '*', lists,
 * ranges and steps; day 0 or 7 = Sunday). Times are UTC. */
struct tm_schedule {
        int64_t every_ns;     /* > 0: a fixed interval; 0: cron fields below */
        uint64_t minutes;     /* bit i: minute i */
        uint32_t hours, days; /* days: bit 1..31 */
        uint16_t months;      /* bit 1..12 */
        uint8_t wdays;        /* bit 0..6 */
        uint8_t dom_star, dow_star;
};
/* Parse a schedule. Returns 0 or -EINVAL. */
int tm_schedule_parse(const char *s, struct tm_schedule *ret);
/* The first instant strictly after `after` (ns) when the schedule fires, or
 * -1 if none within 5 years. For intervals: after + every. */
int64_t tm_schedule_next(const struct tm_schedule *s, int64_t after);

/* ---- the file ---- */
enum tm_tier { TM_TIER_CRITICAL, TM_TIER_HIGH, TM_TIER_STANDARD, TM_TIER_DEVELOPMENT };
enum tm_component_type { TM_COMPONENT_FILES, TM_COMPONENT_COMMAND, TM_COMPONENT_POSTGRES };
/* strategy indexes of tm_component_conf.schedule */
enum tm_strategy { TM_STRATEGY_FULL, TM_STRATEGY_DIFFERENTIAL, TM_STRATEGY_INCREMENTAL };
#define TM_STRATEGY_COUNT 3

enum { TM_TIER_COUNT = TM_TIER_DEVELOPMENT + 1 };

const char *tm_tier_name(enum tm_tier t);
/* The spec's targets for a tier (an unknown one gets standard's): recovery
 * time and point objectives in ns, availability in percent. */
int64_t tm_tier_rto(enum tm_tier t);
int64_t tm_tier_rpo(enum tm_tier t);
double tm_tier_availability(enum tm_tier t);
const char *tm_strategy_name(enum tm_strategy s);
/* "full" -> TM_STRATEGY_FULL... Returns 0 or -EINVAL. */
int tm_strategy_parse(const char *s, enum tm_strategy *ret);

struct tm_component_conf {
        char *name;
        enum tm_component_type type;
        char **paths; /* files */
        size_t n_paths;
        char **excludes;
        size_t n_excludes;
        char *command;        /* command: run with /bin/sh -c, stdout is stored */
        char *stdin_filename; /* the stored file's name; default "<name>.out" */
        enum tm_tier tier;
        int has_schedule[TM_STRATEGY_COUNT]; /* 0: never (schedule.x = none) */
        struct tm_schedule schedule[TM_STRATEGY_COUNT];
        struct tm_forget_policy keep;
        int line; /* its first key (inih reports keys, not section headers) */
        /* schedule.continuous = on (files only): a snapshot with strategy
         * "continuous" at most every continuous_interval_ns while something
         * below the paths changes (inotify, see watch.h) */
        int continuous;
        int64_t continuous_interval_ns; /* continuous_interval; default 60 s */
        /* type = postgres: the server (host, port, user, passfile, extra
         * libpq keywords in conninfo; tm_pg_conninfo() adds POSTGRES_HOST /
         * POSTGRES_PASSWORD), the replication slot of its WAL stream
         * (schedule.continuous = on), and where base backups are staged */
        char *pg_host, *pg_port, *pg_user, *pg_passfile, *pg_conninfo, *pg_slot, *pg_staging;
};

/*
 * A section the core loader keeps raw for the module that owns it: [tier.*],
 * [replica], the daemons' sites, checks, alerts, channels, runbooks... (the
 * prefixes are listed in config.c). One file configures every program, and
 * each program validates the sections it uses, naming FILE:LINE through
 * tm_config_section_error().
 */
struct tm_config_kv {
        char *key, *value;
        int line;
};

struct tm_config_section {
        char *name; /* e.g. "tier.warm" */
        struct tm_config_kv *kv;
        size_t n_kv;
        int line; /* its first key */
};

struct tm_config {
        char *path;
        /* [repository] */
        char *repo_location, *password_file, *catalog;
        uint64_t capacity_bytes; /* for utilization percent; 0 = unknown */
        /* [server] */
        char *listen; /* default 0.0.0.0:8080 */
        char *tls_cert, *tls_key;
        char *state_dir;        /* job history; default <repository>/../backupd-state */
        char *audit_log;        /* default <state_dir>/audit.log */
        char *access_log;       /* "stderr" (default), "stdout", "none" or a path */
        int workers;            /* default 2 */
        int shutdown_timeout_s; /* default 60 */
        /* [auth] */
        struct tm_http_token *tokens;
        size_t n_tokens;
        enum tm_role anonymous_role; /* default: none with tokens, admin without */
        /* [retention] */
        int prune; /* default 1 */
        double max_unused;
        int has_retention_schedule; /* schedule = ...: forget + prune every component */
        struct tm_schedule retention_schedule;
        /* [secrets]: value, then *_file, then the environment */
        char *aws_access_key_id, *aws_secret_access_key, *postgres_host, *postgres_password,
                *slack_webhook_url;
        struct tm_component_conf *components;
        size_t n_components;
        /* the sections other modules own, in file order (see below) */
        struct tm_config_section *sections;
        size_t n_sections;
};

/**
 * tm_config_load() - read and validate a configuration file. Returns 0 and
 * *ret (caller frees), or -EINVAL with err set to "FILE:LINE: reason", or
 * -errno when the file (or a *_file it names) cannot be read (err says so).
 */
int tm_config_load(const char *path, struct tm_config **ret, char *err, size_t errlen);
/* Free, wiping the secrets; NULL-safe. */
void tm_config_free(struct tm_config *c);
/* A component by name (borrowed until tm_config_free), or NULL. */
const struct tm_component_conf *tm_config_component(const struct tm_config *c, const char *name);
/* The section named exactly NAME, or NULL (borrowed). */
const struct tm_config_section *tm_config_section(const struct tm_config *c, const char *name);
/* The value of KEY in S (the last one if repeated), or NULL. */
const char *tm_config_section_get(const struct tm_config_section *s, const char *key);
/* "FILE:LINE: reason" into err for KEY of S (its first line when KEY is NULL
 * or absent); returns -EINVAL. */
int tm_config_section_error(const struct tm_config *c, const struct tm_config_section *s,
                            const char *key, char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 6, 7)));
/* 0 when every key of S is one of keys[0..n), else -EINVAL with err
 * "FILE:LINE: unknown key 'K' in [S]". */
int tm_config_section_check_keys(const struct tm_config *c, const struct tm_config_section *s,
                                 const char *const *keys, size_t n, char *err, size_t errlen);
/* Value parsers shared by every section's owner; each returns 0 or -EINVAL.
 * Sizes take K/M/G/T (binary, optional "iB"/"B"); booleans
 * true/false/yes/no/on/off/1/0; durations an integer and a unit among
 * ms, s, m, h, d, w, y (365 d), e.g. "90d". */
int tm_config_parse_size(const char *v, uint64_t *ret);
int tm_config_parse_bool(const char *v, int *ret);
int tm_config_parse_duration(const char *v, int64_t *ret_ns);
/* A name that may be a section suffix or a metric label value (components,
 * the replica): 1 to 64 of letters, digits, '-', '_', '.'. Returns 1 or 0. */
int tm_config_name_valid(const char *s);
/* Hex SHA-256 of a token, the form [auth] stores (out: 65 bytes). */
void tm_config_token_hash(const char *token, char out[65]);
