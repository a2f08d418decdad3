/* Unit tests for the tier module and the tiered backend, on local
 * directories (S3 tiers and Glacier thaws are exercised by
 * tests/integration/tier_*.sh against s3rver behind tests/fake/s3front.py):
 * the [tier.*] sections and their errors, the target tier of an age, the
 * tiered backend's contract (reads from the warmest copy, one listing entry
 * per pack, removal from every tier, rediscovery by listing), lifecycle
 * passes with a moved clock (hot -> warm -> cold -> archive, trees stop at
 * warm, a pack a young snapshot uses stays hot, an interrupted move is
 * finished), a backup of data found only archived storing fresh hot copies
 * (counted by stats, read instead of the archived ones), usage, thaw of
 * readable tiers, and a restore from the tiers. */
#include <tidemark/config.h>
#include <tidemark/tier.h>

#include "tm_test_util.h"

#define DAY (86400LL * 1000000000LL)

static struct tm_config *config_from(const char *dir, const char *text)
{
        char path[PATH_MAX], err[512];
        struct tm_config *c = NULL;

        tmt_path(path, sizeof(path), dir, "tidemark.conf");
        tmt_write(path, text, strlen(text));
        assert_int_equal(tm_config_load(path, &c, err, sizeof(err)), 0);
        return c;
}

static void expect_error(const char *dir, const char *text, const char *needle)
{
        struct tm_config *c = config_from(dir, text);
        struct tm_tier_set s;
        char err[512];

        assert_int_equal(tm_tier_set_load(c, &s, err, sizeof(err)), -EINVAL);
        if (!strstr(err, needle))
                fail_msg("error '%s' does not mention '%s'", err, needle);
        assert_non_null(strstr(err, "tidemark.conf:"));
        tm_tier_set_dispose(&s);
        tm_config_free(c);
}

static void test_tier_config(void **state)
{
        char *dir = tmt_mkdtemp();
        struct tm_tier_set s;
        struct tm_config *c;
        char err[512];

        (void)state;
        /* no config: hot only, the spec's defaults */
        assert_int_equal(tm_tier_set_load(NULL, &s, err, sizeof(err)), 0);
        assert_int_equal(s.n_configured, 0);
        assert_true(s.t[TM_TIER_HOT].configured);
        assert_true(s.t[TM_TIER_HOT].age_ns == DAY);
        assert_true(s.t[TM_TIER_WARM].age_ns == 7 * DAY);
        assert_true(s.t[TM_TIER_COLD].age_ns == 90 * DAY);
        assert_true(s.t[TM_TIER_ARCHIVE].age_ns == 7 * 365 * DAY);
        tm_tier_set_dispose(&s);

        c = config_from(dir, "[tier.warm]\nlocation = /srv/warm\n"
                             "[tier.archive]\nlocation = s3:https://h/b/archive\nage = 10y\n"
                             "retrieval = Bulk\nthaw_days = 3\nthaw_poll = 5m\n");
        assert_int_equal(tm_tier_set_load(c, &s, err, sizeof(err)), 0);
        assert_int_equal(s.n_configured, 2);
        assert_string_equal(s.t[TM_TIER_WARM].location, "/srv/warm");
        assert_string_equal(s.t[TM_TIER_WARM].storage_class, "STANDARD_IA");
        assert_false(s.t[TM_TIER_COLD].configured);
        assert_string_equal(s.t[TM_TIER_ARCHIVE].storage_class, "DEEP_ARCHIVE");
        assert_string_equal(s.t[TM_TIER_ARCHIVE].retrieval, "Bulk");
        assert_int_equal(s.t[TM_TIER_ARCHIVE].thaw_days, 3);
        assert_true(s.t[TM_TIER_ARCHIVE].thaw_poll_ns == 300LL * 1000000000LL);
        assert_true(s.t[TM_TIER_ARCHIVE].age_ns == 10 * 365 * DAY);
        tm_tier_set_dispose(&s);
        tm_config_free(c);

        expect_error(dir, "[tier.lukewarm]\nlocation = /x\n", "unknown tier");
        expect_error(dir, "[tier.warm]\nlocation = /x\ncolour = blue\n", "unknown key 'colour'");
        expect_error(dir, "[tier.cold]\nlocation = /x\nretrieval = Fast\n", "retrieval");
        expect_error(dir, "[tier.cold]\nage = 90d\n", "needs a location");
        expect_error(dir, "[tier.warm]\nlocation = /x\nage = 30d\n[tier.cold]\nlocation = /y\n"
                          "age = 10d\n",
                     "longer than");
        expect_error(dir, "[tier.hot]\nlocation = /x\n", "hot tier");
        expect_error(dir, "[tier.warm]\nlocation = /x\nage = soon\n", "age");
        tmt_rm_rf(dir);
        free(dir);
}

static void test_tier_target(void **state)
{
        struct tm_tier_set s;
        unsigned lvl = 99;

        (void)state;
        assert_int_equal(tm_tier_set_load(NULL, &s, NULL, 0), 0);
        /* hot only: everything stays hot */
        assert_int_equal(tm_tier_target(&s, 400 * DAY, 0), TM_TIER_HOT);
        for (unsigned i = 1; i < TM_TIER_LEVELS; i++)
                s.t[i].configured = 1;
        assert_int_equal(tm_tier_target(&s, 0, 0), TM_TIER_HOT);
        assert_int_equal(tm_tier_target(&s, DAY - 1, 0), TM_TIER_HOT);
        assert_int_equal(tm_tier_target(&s, DAY, 0), TM_TIER_WARM);
        assert_int_equal(tm_tier_target(&s, 7 * DAY, 0), TM_TIER_COLD);
        assert_int_equal(tm_tier_target(&s, 90 * DAY, 0), TM_TIER_ARCHIVE);
        assert_int_equal(tm_tier_target(&s, 90 * DAY, 1), TM_TIER_WARM); /* trees */
        assert_int_equal(tm_tier_target(&s, 0, 1), TM_TIER_HOT);
        /* no cold tier: what belongs there stays warm */
        s.t[TM_TIER_COLD].configured = 0;
        assert_int_equal(tm_tier_target(&s, 30 * DAY, 0), TM_TIER_WARM);
        assert_int_equal(tm_tier_target(&s, 100 * DAY, 0), TM_TIER_ARCHIVE);
        assert_int_equal(tm_tier_target(NULL, 100 * DAY, 0), TM_TIER_HOT);

        assert_string_equal(tm_tier_level_name(TM_TIER_COLD), "cold");
        assert_string_equal(tm_tier_level_name(9), "?");
        assert_int_equal(tm_tier_level_parse("archive", &lvl), 0);
        assert_int_equal(lvl, TM_TIER_ARCHIVE);
        assert_int_equal(tm_tier_level_parse("tepid", &lvl), -EINVAL);
        assert_string_equal(tm_tier_thaw_eta(TM_TIER_COLD, "Expedited"), "1-5 minutes");
        assert_string_equal(tm_tier_thaw_eta(TM_TIER_COLD, "Standard"), "3-5 hours");
        assert_string_equal(tm_tier_thaw_eta(TM_TIER_ARCHIVE, "Bulk"), "up to 48 hours");
        assert_non_null(strstr(tm_tier_thaw_eta(TM_TIER_WARM, NULL), "readable"));
        tm_tier_set_dispose(&s);
}

static int count_cb(const char *name, uint64_t size, void *ud)
{
        (void)name;
        (void)size;
        (*(int *)ud)++;
        return 0;
}

static void test_tiered_backend(void **state)
{
        char *dir = tmt_mkdtemp();
        struct tm_backend_tier t[TM_BACKEND_TIERS] = { 0 };
        tm_backend *b = NULL, *plain = NULL;
        const char *pack = "data/ab/ab00000000000000000000000000000000000000000000000000000000000001";
        char p[PATH_MAX];
        tm_buf buf = TM_BUF_INIT(0);
        unsigned mask = 0;
        uint64_t size = 0;
        int n = 0;

        (void)state;
        assert_int_equal(tm_backend_open_tiered(t, &b), -EINVAL); /* no hot tier */
        for (unsigned i = 0; i < 3; i++) {
                static const char *const names[] = { "hot", "warm", "cold" };

                tmt_path(p, sizeof(p), dir, names[i]);
                assert_int_equal(tm_backend_open_local(p, 1, &t[i].backend), 0);
        }
        t[2].retrieval = "Bulk";
        assert_int_equal(tm_backend_open_tiered(t, &b), 0);
        assert_null(t[0].backend); /* taken */
        assert_true(tm_backend_is_tiered(b));
        assert_int_equal(tm_backend_is_remote(b), 0); /* every tier is a directory */
        assert_non_null(tm_backend_tier(b, 1));
        assert_null(tm_backend_tier(b, 3));
        assert_int_equal(tm_backend_tier_where(b, pack, &mask), -ENOENT);

        /* a pack is written hot; other objects live in hot only */
        assert_int_equal(tm_backend_put(b, pack, "0123456789", 10), 0);
        assert_int_equal(tm_backend_put(b, "index/x1", "idx", 3), 0);
        assert_int_equal(tm_backend_tier_where(b, pack, &mask), 0);
        assert_int_equal(mask, 1);
        assert_int_equal(tm_backend_tier_where(b, "index/x1", &mask), 0);
        assert_int_equal(mask, 1);

        /* a copy in cold, as a move makes it: listed once, read from hot */
        assert_int_equal(tm_backend_put(tm_backend_tier(b, 2), pack, "0123456789", 10), 0);
        assert_int_equal(tm_backend_tier_note(b, pack, 5), 0);
        assert_int_equal(tm_backend_list(b, "data/", count_cb, &n), 0);
        assert_int_equal(n, 1);
        n = 0;
        assert_int_equal(tm_backend_list(b, "", count_cb, &n), 0);
        assert_int_equal(n, 2); /* the pack once, the index file */
        /* the hot copy goes (the move's last step): reads find the cold one */
        assert_int_equal(tm_backend_remove(tm_backend_tier(b, 0), pack), 0);
        assert_int_equal(tm_backend_get_range(b, pack, 2, 3, &buf), 0);
        assert_memory_equal(buf.data, "234", 3);
        assert_int_equal(tm_backend_head(b, pack, &size), 0);
        assert_int_equal(size, 10);
        assert_int_equal(tm_backend_tier_where(b, pack, &mask), 0);
        assert_int_equal(mask, 4);
        /* local tiers are always readable */
        assert_int_equal(tm_backend_thaw(b, pack, NULL, 0), 0);
        assert_int_equal(tm_backend_thaw(b, pack, "Warp", 0), -EINVAL);

        /* a fresh handle finds the pack by listing the tiers */
        tm_backend_tier_forget(b);
        assert_int_equal(tm_backend_tier_where(b, pack, &mask), 0);
        assert_int_equal(mask, 4);
        assert_int_equal(tm_backend_get(b, pack, 100, &buf), 0);
        assert_int_equal(buf.len, 10);

        /* remove deletes it from every tier */
        assert_int_equal(tm_backend_put(tm_backend_tier(b, 1), pack, "0123456789", 10), 0);
        assert_int_equal(tm_backend_tier_note(b, pack, 6), 0);
        assert_int_equal(tm_backend_remove(b, pack), 0);
        tmt_path(p, sizeof(p), dir, "warm/data/ab");
        assert_int_equal(tmt_count_files(p), 0);
        tmt_path(p, sizeof(p), dir, "cold/data/ab");
        assert_int_equal(tmt_count_files(p), 0);
        assert_int_equal(tm_backend_remove(b, pack), -ENOENT);
        assert_int_equal(tm_backend_get(b, pack, 100, &buf), -ENOENT);
        assert_int_equal(tm_backend_tier_note(b, "index/x1", 1), -EINVAL);

        /* an untiered backend is its own tier 0 */
        tmt_path(p, sizeof(p), dir, "plain");
        assert_int_equal(tm_backend_open_local(p, 1, &plain), 0);
        assert_false(tm_backend_is_tiered(plain));
        assert_int_equal(tm_backend_is_remote(plain), 0);
        assert_int_equal(tm_backend_is_remote(NULL), 0);
        assert_ptr_equal(tm_backend_tier(plain, 0), plain);
        assert_null(tm_backend_tier(plain, 1));
        assert_int_equal(tm_backend_put(plain, pack, "x", 1), 0);
        assert_int_equal(tm_backend_tier_where(plain, pack, &mask), 0);
        assert_int_equal(mask, 1);

        tm_buf_dispose(&buf);
        tm_backend_free(plain);
        tm_backend_free(b);
        tmt_rm_rf(dir);
        free(dir);
}

static int count_blob_cb(const tm_id *blob, const tm_id *pack, const struct tm_pack_entry *e,
                         void *ud)
{
        (void)blob;
        (void)pack;
        (void)e;
        (*(int *)ud)++;
        return 0;
}

struct tier_hist {
        tm_repo *repo;
        uint64_t n[TM_TIER_LEVELS + 1];
};

static int hist_cb(const tm_id *pack_id, uint8_t type, uint64_t size, void *ud)
{
        struct tier_hist *h = ud;

        (void)type;
        (void)size;
        h->n[tm_tier_of_pack(h->repo, pack_id)]++;
        return 0;
}

/* A repository on local directories with all four tiers. */
struct tfix {
        char *dir;
        char repo[PATH_MAX], catalog[PATH_MAX], src[PATH_MAX];
        struct tm_config *cfg;
        tm_repo *r;
};

static void tfix_open(struct tfix *f, int init)
{
        struct tm_repo_opts o = tmt_repo_opts(f->repo, f->catalog, TMT_PASS);

        o.config = f->cfg;
        assert_int_equal(init ? tm_repo_init(&o, &f->r) : tm_repo_open(&o, &f->r), 0);
}

static struct tfix *tfix_new(void)
{
        struct tfix *f = calloc(1, sizeof(*f));
        char text[4 * PATH_MAX];

        assert_non_null(f);
        f->dir = tmt_mkdtemp();
        tmt_path(f->repo, sizeof(f->repo), f->dir, "repo");
        tmt_path(f->catalog, sizeof(f->catalog), f->dir, "catalog.db");
        tmt_path(f->src, sizeof(f->src), f->dir, "src");
        tmt_mkdir(f->src);
        snprintf(text, sizeof(text),
                 "[tier.warm]\nlocation = %s/warm\n[tier.cold]\nlocation = %s/cold\n"
                 "[tier.archive]\nlocation = %s/archive\n",
                 f->dir, f->dir, f->dir);
        f->cfg = config_from(f->dir, text);
        tfix_open(f, 1);
        return f;
}

static void tfix_free(struct tfix *f)
{
        tm_repo_free(f->r);
        tm_config_free(f->cfg);
        tmt_rm_rf(f->dir);
        free(f->dir);
        free(f);
}

static size_t tier_files(struct tfix *f, const char *tier)
{
        char p[PATH_MAX];

        snprintf(p, sizeof(p), "%s/%s/data", f->dir, tier);
        return tmt_count_files(p);
}

static void run_at(struct tfix *f, int64_t now, struct tm_tier_stats *st)
{
        struct tm_tier_opts o = { .now_ns = now };

        assert_int_equal(tm_tier_run(f->r, &o, st), 0);
        assert_int_equal(st->failed, 0);
}

static void assert_check_clean(tm_repo *r)
{
        struct tm_check_opts o = TM_CHECK_OPTS_INIT;
        struct tm_check_stats st = { 0 };

        o.read_data = 1;
        assert_int_equal(tm_check_run(r, &o, &st), 0);
        assert_int_equal(st.errors, 0);
}

/* A lifecycle pass on a repository without a pack (backupd's schedule can
 * run one before the first backup) moves nothing and fails nothing. */
static void test_tier_empty(void **state)
{
        struct tfix *f = tfix_new();
        struct tm_tier_stats st;

        (void)state;
        run_at(f, 1000000000LL * 86400 * 365 * 60, &st);
        assert_int_equal(st.moved, 0);
        assert_int_equal(st.packs[TM_TIER_HOT], 0);
        tfix_free(f);
}

static void test_tier_lifecycle(void **state)
{
        struct tfix *f = tfix_new();
        uint64_t seed = tmt_seed();
        struct tm_snapshot a = { 0 }, b = { 0 }, young = { 0 };
        struct tm_tier_stats st, us;
        struct tm_thaw_stats th;
        char srcb[PATH_MAX], target[PATH_MAX];
        int64_t t0;
        size_t total;

        (void)state;
        tmt_path(srcb, sizeof(srcb), f->dir, "srcb");
        tmt_mkdir(srcb);
        tmt_make_tree(f->src, seed);
        tmt_make_tree(srcb, seed + 1);
        assert_int_equal(tmt_backup(f->r, f->src, "a", "full", &a), 0);
        assert_int_equal(tmt_backup(f->r, srcb, "b", "full", &b), 0);
        t0 = b.time;
        total = tier_files(f, "repo");
        assert_true(total >= 4); /* data and tree packs of both */

        /* young: nothing moves; a dry run plans nothing either */
        run_at(f, t0 + 3600LL * 1000000000LL, &st);
        assert_int_equal(st.moved, 0);
        assert_int_equal(st.packs[TM_TIER_HOT], total);

        /* a young snapshot (40 days on) uses a's data: a's packs stay hot */
        tmt_snapshot_make(f->r, "a", t0 + 40 * DAY, &a.tree, &young);

        /* two days: everything of b goes warm (dry run first: nothing moves) */
        {
                struct tm_tier_opts o = { .now_ns = t0 + 2 * DAY, .dry_run = 1 };

                assert_int_equal(tm_tier_run(f->r, &o, &st), 0);
                assert_true(st.moved >= 2);
                assert_int_equal(tier_files(f, "repo"), total);
        }
        run_at(f, t0 + 2 * DAY, &st);
        assert_true(st.moved >= 2);
        assert_int_equal(tier_files(f, "warm"), st.moved);
        assert_int_equal(tier_files(f, "repo") + tier_files(f, "warm"), total);
        /* thirty days: b's data packs go cold, its tree packs stay warm */
        run_at(f, t0 + 30 * DAY, &st);
        assert_true(tier_files(f, "cold") >= 1);
        assert_true(tier_files(f, "warm") >= 1);
        /* 100 days: b's data is archived; a's packs went no further than the
         * young snapshot's age allows (60 days: cold) */
        run_at(f, t0 + 100 * DAY, &st);
        assert_true(tier_files(f, "archive") >= 1);
        assert_int_equal(tier_files(f, "repo") + tier_files(f, "warm") + tier_files(f, "cold") +
                                 tier_files(f, "archive"),
                         total);
        assert_int_equal(st.packs[TM_TIER_HOT] + st.packs[TM_TIER_WARM] + st.packs[TM_TIER_COLD] +
                                 st.packs[TM_TIER_ARCHIVE],
                         total);
        assert_int_equal(tm_tier_usage(f->r, &us), 0);
        for (unsigned i = 0; i < TM_TIER_LEVELS; i++) {
                assert_int_equal(us.packs[i], st.packs[i]);
                assert_int_equal(us.bytes[i], st.bytes[i]);
        }
        assert_true(us.bytes[TM_TIER_ARCHIVE] > 0);
        /* each pack's tier, one by one, agrees with the listings */
        {
                struct tier_hist h = { .repo = f->r };

                assert_int_equal(tm_catalog_pack_foreach(tm_repo_catalog(f->r), hist_cb, &h), 0);
                for (unsigned i = 0; i < TM_TIER_LEVELS; i++)
                        assert_int_equal(h.n[i], us.packs[i]);
                assert_int_equal(h.n[TM_TIER_LEVELS], 0);
                assert_int_equal(tm_tier_of_pack(f->r, &(tm_id){ { 0 } }), TM_TIER_LEVELS);
        }

        /* an interrupted move (copy made, source not deleted) is finished */
        {
                char name[PATH_MAX], p[2 * PATH_MAX], q[2 * PATH_MAX];
                tm_buf data = TM_BUF_INIT(0);
                DIR *d;
                struct dirent *de;
                char sub[PATH_MAX] = "";

                snprintf(p, sizeof(p), "%s/archive/data", f->dir);
                d = opendir(p);
                assert_non_null(d);
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.')
                                snprintf(sub, sizeof(sub), "%s", de->d_name);
                closedir(d);
                snprintf(p, sizeof(p), "%s/archive/data/%.8s", f->dir, sub);
                d = opendir(p);
                assert_non_null(d);
                while ((de = readdir(d)))
                        if (de->d_name[0] != '.')
                                snprintf(name, sizeof(name), "data/%s/%s", sub, de->d_name);
                closedir(d);
                snprintf(p, sizeof(p), "%s/archive/%s", f->dir, name);
                snprintf(q, sizeof(q), "%s/cold/data/%s", f->dir, sub);
                assert_true(mkdir(q, 0700) == 0 || errno == EEXIST);
                snprintf(q, sizeof(q), "%s/cold/%s", f->dir, name);
                tmt_read(p, &data);
                tmt_write(q, data.data, data.len);
                tm_buf_dispose(&data);
                tm_repo_free(f->r);
                tfix_open(f, 0); /* a new process: it learns by listing */
                run_at(f, t0 + 100 * DAY, &st);
                assert_int_equal(st.finished, 1);
                assert_int_equal(access(q, F_OK), -1);
                assert_int_equal(access(p, F_OK), 0);
        }

        /* a new backup of b's data finds it only archived: it stores fresh hot
         * copies (counted by stats), and the new snapshot reads only those */
        {
                struct tm_snapshot b2 = { 0 };
                struct tm_repo_stats rs;
                uint64_t archived_only = 0;
                char arch[PATH_MAX], moved[PATH_MAX];
                size_t hot_before = tier_files(f, "repo");

                assert_int_equal(tm_repo_blob_foreach_dedup(f->r, count_blob_cb, &(int){ 0 },
                                                            &archived_only),
                                 0);
                assert_true(archived_only > 0);
                assert_int_equal(tm_stats_compute(f->r, &rs), 0);
                assert_int_equal(rs.fresh_copies, 0);
                assert_int_equal(tmt_backup(f->r, srcb, "b", "full", &b2), 0);
                assert_true(tier_files(f, "repo") > hot_before);
                assert_int_equal(tm_stats_compute(f->r, &rs), 0);
                assert_true(rs.fresh_copies > 0 && rs.fresh_copies <= archived_only);
                assert_true(rs.fresh_copy_bytes > 0);
                /* the archive gone for a moment: the new snapshot still restores */
                tmt_path(arch, sizeof(arch), f->dir, "archive");
                tmt_path(moved, sizeof(moved), f->dir, "archive.away");
                assert_int_equal(rename(arch, moved), 0);
                tmt_path(target, sizeof(target), f->dir, "out2");
                assert_int_equal(tmt_restore(f->r, &b2, target, NULL), 0);
                assert_true(tmt_trees_equal(srcb, target, TMT_CMP_ALL));
                assert_int_equal(rename(moved, arch), 0);
                tm_snapshot_dispose(&b2);
        }

        /* everything reads back from where it is */
        assert_int_equal(tm_tier_thaw(f->r, &b.tree, 1, 1, 0, &th), 0);
        assert_true(th.packs >= 1);
        assert_int_equal(th.archived, 0); /* local tiers never need a thaw */
        tmt_path(target, sizeof(target), f->dir, "out");
        assert_int_equal(tmt_restore(f->r, &b, target, NULL), 0);
        assert_true(tmt_trees_equal(srcb, target, TMT_CMP_ALL));
        assert_check_clean(f->r);

        /* the catalog is a cache: rebuilt from the tiers, nothing is lost */
        tm_repo_free(f->r);
        f->r = NULL;
        assert_int_equal(tm_catalog_destroy(f->catalog), 0);
        tfix_open(f, 0);
        assert_check_clean(f->r);

        tm_snapshot_dispose(&a);
        tm_snapshot_dispose(&b);
        tm_snapshot_dispose(&young);
        tfix_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_tier_config),
                cmocka_unit_test(test_tier_target),
                cmocka_unit_test(test_tiered_backend),
                cmocka_unit_test(test_tier_empty),
                cmocka_unit_test(test_tier_lifecycle),
        };

        tm_log_set_level(TM_LOG_WARN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
