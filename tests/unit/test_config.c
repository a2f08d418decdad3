/* Unit tests for the configuration file (every section, defaults, secrets
 * from values, *_file keys and the environment, and a table of bad files
 * each refused with FILE:LINE: reason) and for schedules (parsing and the
 * next firing time of intervals, aliases and cron expressions). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/config.h>
#include <tidemark/time.h>

static char dir[64];

static int setup(void **state)
{
        snprintf(dir, sizeof(dir), "/tmp/tm-config-XXXXXX");
        assert_non_null(mkdtemp(dir));
        return 0;
}

static int teardown(void **state)
{
        char p[128];

        snprintf(p, sizeof(p), "%s/c.conf", dir);
        unlink(p);
        snprintf(p, sizeof(p), "%s/secret", dir);
        unlink(p);
        rmdir(dir);
        return 0;
}

static const char *write_conf(const char *text)
{
        static char path[128];
        FILE *f;

        snprintf(path, sizeof(path), "%s/c.conf", dir);
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
        return path;
}

static void test_full_config(void **state)
{
        char err[512], secret[128], hex[65];
        struct tm_config *c = NULL;
        const struct tm_component_conf *db, *files;
        FILE *f;
        char text[2048];

        snprintf(secret, sizeof(secret), "%s/secret", dir);
        f = fopen(secret, "w");
        fputs("s3cr3t\n", f);
        fclose(f);
        tm_config_token_hash("tok", hex);
        snprintf(text, sizeof(text),
                 "# comment\n"
                 "[repository]\nlocation = /srv/repo\npassword_file = /etc/pw\ncapacity = 2G\n"
                 "[server]\nlisten = 127.0.0.1:0\nworkers = 3\naccess_log = none\n"
                 "[auth]\ntoken.ci = operator:%s\n"
                 "[retention]\nprune = false\nmax_unused = 0.1\nschedule = daily\n"
                 "[secrets]\npostgres_password_file = %s\naws_access_key_id = AKIA\n"
                 "[component.database]\ntype = command\ncommand = pg_dump app\n"
                 "tier = critical\nschedule.incremental = every 2s\nschedule.full = none\n"
                 "keep_last = 3\nkeep_daily = 7\n"
                 "[component.plugins]\ntype = files\npaths = /srv/a, /srv/b\npaths = /srv/c\n"
                 "exclude = *.tmp\n",
                 hex, secret);
        setenv("SLACK_WEBHOOK_URL", "https://hooks.example/x", 1);
        setenv("AWS_ACCESS_KEY_ID", "from-env", 1);
        assert_int_equal(tm_config_load(write_conf(text), &c, err, sizeof(err)), 0);
        assert_string_equal(c->repo_location, "/srv/repo");
        assert_string_equal(c->password_file, "/etc/pw");
        assert_int_equal(c->capacity_bytes, 2ull << 30);
        assert_string_equal(c->listen, "127.0.0.1:0");
        assert_int_equal(c->workers, 3);
        assert_int_equal(c->n_tokens, 1);
        assert_string_equal(c->tokens[0].name, "ci");
        assert_int_equal(c->tokens[0].role, TM_ROLE_OPERATOR);
        assert_int_equal(c->anonymous_role, TM_ROLE_NONE);
        assert_int_equal(c->prune, 0);
        assert_int_equal(c->has_retention_schedule, 1);
        assert_int_equal(c->retention_schedule.every_ns, 0);
        assert_string_equal(c->postgres_password, "s3cr3t");
        assert_string_equal(c->aws_access_key_id, "AKIA"); /* the file wins over env */
        assert_string_equal(c->slack_webhook_url, "https://hooks.example/x");
        assert_null(c->postgres_host);
        assert_int_equal(c->n_components, 2);
        db = tm_config_component(c, "database");
        assert_non_null(db);
        assert_int_equal(db->type, TM_COMPONENT_COMMAND);
        assert_string_equal(db->command, "pg_dump app");
        assert_int_equal(db->tier, TM_TIER_CRITICAL);
        assert_int_equal(db->has_schedule[TM_STRATEGY_FULL], 0);
        assert_int_equal(db->has_schedule[TM_STRATEGY_DIFFERENTIAL], 1); /* default daily */
        assert_int_equal(db->schedule[TM_STRATEGY_INCREMENTAL].every_ns, 2 * TM_NSEC_PER_SEC);
        assert_int_equal(db->keep.last, 3);
        assert_int_equal(db->keep.daily, 7);
        files = tm_config_component(c, "plugins");
        assert_int_equal(files->n_paths, 3);
        assert_string_equal(files->paths[1], "/srv/b");
        assert_string_equal(files->paths[2], "/srv/c");
        assert_int_equal(files->n_excludes, 1);
        assert_int_equal(files->tier, TM_TIER_STANDARD);
        /* default incremental: every 4 h */
        assert_int_equal(files->schedule[TM_STRATEGY_INCREMENTAL].every_ns,
                         4 * 3600 * TM_NSEC_PER_SEC);
        assert_null(tm_config_component(c, "nope"));
        tm_config_free(c);
        tm_config_free(NULL);
        unsetenv("SLACK_WEBHOOK_URL");
        unsetenv("AWS_ACCESS_KEY_ID");
}

static void test_defaults(void **state)
{
        char err[256];
        struct tm_config *c = NULL;

        assert_int_equal(
                tm_config_load(write_conf("[repository]\nlocation = /r\n"), &c, err, sizeof(err)),
                0);
        assert_string_equal(c->listen, "0.0.0.0:8080");
        assert_int_equal(c->anonymous_role, TM_ROLE_ADMIN); /* no tokens: open */
        assert_int_equal(c->workers, 2);
        assert_int_equal(c->prune, 1);
        assert_int_equal(c->n_components, 0);
        tm_config_free(c);
}

static void test_bad_configs(void **state)
{
        static const struct {
                const char *text;
                int line;
                const char *reason;
        } cases[] = {
                { "[repository]\nlocation = /r\nnope = 1\n", 3, "unknown key 'nope'" },
                { "[bogus]\nx = 1\n", 2, "unknown section [bogus]" },
                { "x = 1\n", 1, "outside of any section" },
                { "[server]\nlisten = nowhere\n", 2, "invalid listen" },
                { "[server]\n\nworkers = 0\n", 3, "invalid workers" },
                { "[auth]\ntoken.a = operator:abcd\n", 2, "64 hex digits" },
                { "[auth]\ntoken.a = root:"
                  "0000000000000000000000000000000000000000000000000000000000000000\n",
                  2, "invalid role 'root'" },
                { "[auth]\nanonymous = god\n", 2, "invalid anonymous role" },
                { "[component.db]\ntype = tape\n", 2, "invalid type 'tape'" },
                { "[component.db]\ntype = files\nschedule.full = sometimes\n", 3,
                  "invalid schedule 'sometimes'" },
                { "[component.db]\ntype = files\nschedule.hourly = daily\n", 3,
                  "unknown key 'schedule.hourly'" },
                { "[component.db]\ntype = files\nkeep_last = -1\n", 3, "invalid keep_last" },
                { "[component.db]\ntype = files\ntier = gold\n", 3, "invalid tier 'gold'" },
                { "[component.db]\ntype = files\n", 2, "needs paths" },
                { "[component.db]\ntype = files\npaths = relative/x\n", 2, "not absolute" },
                { "[component.db]\ntype = command\n", 2, "needs a command" },
                { "[component.a b]\ntype = files\n", 2, "invalid component name" },
                { "[component.db]\ntype = command\ncommand = x\n[component.db]\ncommand = y\n", 5,
                  "duplicate component" },
                { "[repository]\nthis line has no equals sign\n", 2, "syntax error" },
                { "[repository]\nlocation =\n", 2, "no value" },
                { "[secrets]\npostgres_password_file = /nonexistent/x\n", 2, "cannot read" },
                { "[retention]\nmax_unused = 2\n", 2, "invalid max_unused" },
                { "[retention]\nschedule = often\n", 2, "invalid schedule 'often'" },
        };
        char err[512], want[256];
        struct tm_config *c = NULL;
        const char *path;

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                path = write_conf(cases[i].text);
                int r = tm_config_load(path, &c, err, sizeof(err));

                if (r >= 0)
                        fail_msg("case %zu accepted: %s", i, cases[i].text);
                snprintf(want, sizeof(want), "%s:%d: ", path, cases[i].line);
                if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, cases[i].reason))
                        fail_msg("case %zu: got '%s', want '%s...%s'", i, err, want,
                                 cases[i].reason);
        }
        assert_int_equal(tm_config_load("/nonexistent/c.conf", &c, err, sizeof(err)), -ENOENT);
        assert_non_null(strstr(err, "cannot open"));
}

static int64_t at(const char *s)
{
        int64_t t;

        assert_int_equal(tm_time_parse(s, &t, NULL), 0);
        return t;
}

static void expect_next(const char *sched, const char *after, const char *want)
{
        struct tm_schedule s;
        char got[40];
        int64_t n;

        assert_int_equal(tm_schedule_parse(sched, &s), 0);
        n = tm_schedule_next(&s, at(after));
        tm_time_format(n, got, sizeof(got));
        if (strcmp(got, want) != 0)
                fail_msg("'%s' after %s: got %s, want %s", sched, after, got, want);
}

static void test_schedules(void **state)
{
        static const char *bad[] = {
                "",          "every",       "every 0s",    "every 5x",  "every -1s",
                "* * * *",   "60 * * * *",  "* 24 * * *",  "* * 0 * *", "* * * 13 *",
                "* * * * 8", "*/0 * * * *", "5-1 * * * *", "a * * * *", "* * * * * *",
                "sometimes"
        };
        struct tm_schedule s;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (tm_schedule_parse(bad[i], &s) == 0)
                        fail_msg("schedule '%s' accepted", bad[i]);
        assert_int_equal(tm_schedule_parse("every 90m", &s), 0);
        assert_int_equal(s.every_ns, 90 * 60 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_schedule_next(&s, 1000), 1000 + 90 * 60 * TM_NSEC_PER_SEC);
        expect_next("every 2s", "2025-01-07T10:00:00Z", "2025-01-07T10:00:02Z");
        expect_next("hourly", "2025-01-07T10:00:00Z", "2025-01-07T11:00:00Z");
        expect_next("hourly", "2025-01-07T10:59:59Z", "2025-01-07T11:00:00Z");
        expect_next("daily", "2025-01-07T10:00:00Z", "2025-01-08T00:00:00Z");
        expect_next("weekly", "2025-01-07T10:00:00Z", "2025-01-12T00:00:00Z"); /* Sunday */
        expect_next("monthly", "2025-01-07T10:00:00Z", "2025-02-01T00:00:00Z");
        expect_next("*/15 * * * *", "2025-01-07T10:07:00Z", "2025-01-07T10:15:00Z");
        expect_next("30 2 * * 1-5", "2025-01-10T03:00:00Z", "2025-01-13T02:30:00Z"); /* Fri->Mon */
        expect_next("0 0 29 2 *", "2025-01-01T00:00:00Z", "2028-02-29T00:00:00Z");
        expect_next("0 12 1 * 0", "2025-01-01T13:00:00Z", "2025-01-05T12:00:00Z"); /* dom or dow */
        expect_next("0 0 * * 7", "2025-01-07T10:00:00Z", "2025-01-12T00:00:00Z");
        assert_int_equal(tm_schedule_parse("0 0 31 2 *", &s), 0);
        assert_int_equal(tm_schedule_next(&s, at("2025-01-01")), -1);
}

static void test_names(void **state)
{
        enum tm_strategy s;
        char hex[65];

        assert_string_equal(tm_tier_name(TM_TIER_CRITICAL), "critical");
        assert_string_equal(tm_tier_name(TM_TIER_DEVELOPMENT), "development");
        assert_string_equal(tm_tier_name((enum tm_tier)9), "?");
        /* the spec's targets: critical 30 min / 5 min ... development 8 h / 4 h */
        assert_true(tm_tier_rto(TM_TIER_CRITICAL) == 1800 * TM_NSEC_PER_SEC);
        assert_true(tm_tier_rpo(TM_TIER_CRITICAL) == 300 * TM_NSEC_PER_SEC);
        assert_true(tm_tier_rto(TM_TIER_HIGH) == 3600 * TM_NSEC_PER_SEC);
        assert_true(tm_tier_rpo(TM_TIER_HIGH) == 900 * TM_NSEC_PER_SEC);
        assert_true(tm_tier_rto(TM_TIER_STANDARD) == 4 * 3600 * TM_NSEC_PER_SEC);
        assert_true(tm_tier_rpo(TM_TIER_STANDARD) == 3600 * TM_NSEC_PER_SEC);
        assert_true(tm_tier_rto(TM_TIER_DEVELOPMENT) == 8 * 3600 * TM_NSEC_PER_SEC);
        assert_true(tm_tier_rpo(TM_TIER_DEVELOPMENT) == 4 * 3600 * TM_NSEC_PER_SEC);
        assert_true(tm_tier_availability(TM_TIER_CRITICAL) == 99.95);
        assert_true(tm_tier_availability(TM_TIER_HIGH) == 99.90);
        assert_true(tm_tier_availability(TM_TIER_STANDARD) == 99.50);
        /* an unknown tier is treated as standard */
        assert_true(tm_tier_rpo((enum tm_tier)9) == tm_tier_rpo(TM_TIER_STANDARD));
        assert_true(tm_tier_availability((enum tm_tier)9) == 99.50);
        assert_string_equal(tm_strategy_name(TM_STRATEGY_DIFFERENTIAL), "differential");
        assert_int_equal(tm_strategy_parse("incremental", &s), 0);
        assert_int_equal(s, TM_STRATEGY_INCREMENTAL);
        assert_int_equal(tm_strategy_parse("continuous", &s), -EINVAL);
        assert_true(tm_config_name_valid("eu-west_1.b"));
        assert_false(tm_config_name_valid(""));
        assert_false(tm_config_name_valid("a b"));
        assert_false(tm_config_name_valid("a\"b"));
        assert_false(tm_config_name_valid(
                "x12345678901234567890123456789012345678901234567890123456789012345"));
        tm_config_token_hash("abc", hex);
        assert_string_equal(hex,
                            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* The commented example we ship must load. */
static void test_raw_sections(void **state)
{
        const char *text = "[repository]\nlocation = /r\n"
                           "[tier.warm]\nlocation = s3:https://h/b/w\nage = 7d\nage = 8d\n"
                           "[replica]\nlocation = /replica\n";
        const struct tm_config_section *s;
        struct tm_config *c = NULL;
        char err[512];
        int64_t ns;
        uint64_t sz;
        int b;

        (void)state;
        assert_int_equal(tm_config_load(write_conf(text), &c, err, sizeof(err)), 0);
        assert_int_equal(c->n_sections, 2);
        s = tm_config_section(c, "tier.warm");
        assert_non_null(s);
        assert_int_equal(s->line, 4);
        assert_string_equal(tm_config_section_get(s, "location"), "s3:https://h/b/w");
        assert_string_equal(tm_config_section_get(s, "age"), "8d"); /* the last one wins */
        assert_null(tm_config_section_get(s, "class"));
        assert_null(tm_config_section(c, "tier.cold"));
        assert_non_null(tm_config_section(c, "replica"));
        assert_int_equal(tm_config_section_error(c, s, "age", err, sizeof(err), "bad %s", "age"),
                         -EINVAL);
        assert_non_null(strstr(err, ":6: bad age"));
        assert_int_equal(tm_config_section_error(c, s, NULL, err, sizeof(err), "x"), -EINVAL);
        assert_non_null(strstr(err, ":4: x"));
        tm_config_free(c);

        /* a raw section may not repeat; an unknown one is still refused */
        assert_int_equal(tm_config_load(write_conf("[replica]\na = 1\n[replica]\na = 2\n"), &c,
                                        err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, "appears twice"));
        assert_int_equal(tm_config_load(write_conf("[tier.]\na = 1\n"), &c, err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, "unknown section [tier.]"));

        assert_int_equal(tm_config_parse_duration("90d", &ns), 0);
        assert_true(ns == 90LL * 86400 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_config_parse_duration("250ms", &ns), 0);
        assert_true(ns == 250000000LL);
        assert_int_equal(tm_config_parse_duration("7y", &ns), 0);
        assert_true(ns == 7LL * 365 * 86400 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_config_parse_duration("5", &ns), -EINVAL);
        assert_int_equal(tm_config_parse_duration("-5s", &ns), -EINVAL);
        assert_int_equal(tm_config_parse_duration("5 s", &ns), -EINVAL);
        assert_int_equal(tm_config_parse_duration("99999999999999999y", &ns), -EINVAL);
        assert_int_equal(tm_config_parse_size("2GiB", &sz), 0);
        assert_true(sz == 2ull << 30);
        assert_int_equal(tm_config_parse_size("2X", &sz), -EINVAL);
        assert_int_equal(tm_config_parse_bool("on", &b), 0);
        assert_int_equal(b, 1);
        assert_int_equal(tm_config_parse_bool("maybe", &b), -EINVAL);
}

static void test_contrib_example(void **state)
{
        const char *data = getenv("TM_TEST_DATA");
        char path[4096], err[512];
        struct tm_config *c = NULL;

        if (!data)
                skip();
        snprintf(path, sizeof(path), "%s/../../contrib/tidemark.conf", data);
        if (tm_config_load(path, &c, err, sizeof(err)) < 0)
                fail_msg("%s", err);
        assert_non_null(tm_config_component(c, "database"));
        assert_int_equal(c->n_tokens, 2);
        tm_config_free(c);
}

static void test_check_keys(void **state)
{
        static const char *keys[] = { "location", "age" };
        struct tm_config *c = NULL;
        char err[512];

        (void)state;
        assert_int_equal(tm_config_load(write_conf("[tier.warm]\nlocation = /w\nage = 7d\n"
                                                   "[tier.cold]\nage = 9d\ncolour = blue\n"),
                                        &c, err, sizeof(err)),
                         0);
        assert_int_equal(tm_config_section_check_keys(c, tm_config_section(c, "tier.warm"), keys, 2,
                                                      err, sizeof(err)),
                         0);
        assert_int_equal(tm_config_section_check_keys(c, tm_config_section(c, "tier.cold"), keys, 2,
                                                      err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, ":6: unknown key 'colour' in [tier.cold]"));
        tm_config_free(c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_full_config), cmocka_unit_test(test_defaults),
                cmocka_unit_test(test_bad_configs), cmocka_unit_test(test_schedules),
                cmocka_unit_test(test_names),       cmocka_unit_test(test_contrib_example),
                cmocka_unit_test(test_raw_sections),
                cmocka_unit_test(test_check_keys),
        };

        return cmocka_run_group_tests(tests, setup, teardown);
}
