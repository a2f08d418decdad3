/* Unit tests for tm_stats_compute(): real backups into a scratch repository,
 * then the totals, including deduplication across files and snapshots. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/ops.h>
#include <tidemark/repo.h>

#define BIG   (100 * 1024)
#define SMALL "a small text file\n"

struct fixture {
        char base[64];
        char src[128];
        tm_repo *repo;
};

static void put_bytes(const char *dir, const char *name, const void *p, size_t n)
{
        char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(fwrite(p, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static int setup(void **state)
{
        struct fixture *fx = calloc(1, sizeof(*fx));
        struct tm_repo_opts o = TM_REPO_OPTS_INIT;
        char repo[128], cat[128];

        assert_non_null(fx);
        snprintf(fx->base, sizeof(fx->base), "/tmp/tm-stats-XXXXXX");
        assert_non_null(mkdtemp(fx->base));
        snprintf(repo, sizeof(repo), "%s/repo", fx->base);
        snprintf(cat, sizeof(cat), "%s/catalog.db", fx->base);
        snprintf(fx->src, sizeof(fx->src), "%s/src", fx->base);
        assert_int_equal(mkdir(fx->src, 0755), 0);
        o.location = repo;
        o.password = "test passphrase";
        o.password_len = strlen(o.password);
        o.catalog_path = cat;
        o.kdf.m = 8192;
        o.kdf.t = 1;
        assert_int_equal(tm_repo_init(&o, &fx->repo), 0);
        *state = fx;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *fx = *state;

        tm_repo_free(fx->repo);
        nftw(fx->base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(fx);
        return 0;
}

static void backup(struct fixture *fx, const char *strategy, struct tm_snapshot *ret)
{
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        const char *paths[] = { fx->src };

        o.component = "stats";
        o.strategy = strategy;
        o.paths = paths;
        o.n_paths = 1;
        assert_int_equal(tm_backup_run(fx->repo, &o, ret), 0);
}

static void test_stats_empty(void **state)
{
        struct fixture *fx = *state;
        struct tm_repo_stats st;

        memset(&st, 0xff, sizeof(st));
        assert_int_equal(tm_stats_compute(fx->repo, &st), 0);
        assert_int_equal(st.snapshots, 0);
        assert_int_equal(st.packs, 0);
        assert_int_equal(st.pack_bytes, 0);
        assert_int_equal(st.blobs, 0);
        assert_int_equal(st.blob_raw_bytes, 0);
        assert_int_equal(st.blob_stored_bytes, 0);
        assert_int_equal(st.restore_bytes, 0);
        assert_int_equal(st.restore_files, 0);
        assert_int_equal(st.index_files, 0);
        assert_int_equal(tm_stats_compute(fx->repo, NULL), -EINVAL);
}

static void test_stats_dedup(void **state)
{
        struct fixture *fx = *state;
        struct tm_snapshot s1 = { 0 }, s2 = { 0 };
        struct tm_repo_stats a, b;
        const char *env = getenv("TM_TEST_SEED");
        unsigned long seed = env ? strtoul(env, NULL, 10) : 4242;
        uint8_t *big = malloc(BIG);
        uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
        uint64_t file_bytes = 2 * BIG + strlen(SMALL);

        printf("test_stats_dedup: seed %lu (TM_TEST_SEED)\n", seed);
        assert_non_null(big);
        /* incompressible content, so stored ~ raw and the ratios are known */
        for (size_t i = 0; i < BIG; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                big[i] = (uint8_t)x;
        }
        put_bytes(fx->src, "one.bin", big, BIG);
        put_bytes(fx->src, "two.bin", big, BIG); /* same content: one blob */
        put_bytes(fx->src, "small.txt", SMALL, strlen(SMALL));
        backup(fx, "full", &s1);
        assert_int_equal(s1.summary.files, 3);
        assert_int_equal(s1.summary.bytes, file_bytes);

        assert_int_equal(tm_stats_compute(fx->repo, &a), 0);
        assert_int_equal(a.snapshots, 1);
        assert_int_equal(a.restore_files, 3);
        assert_int_equal(a.restore_bytes, file_bytes);
        /* 2 data blobs (the 100 KiB chunk once, the small file) + 1 root tree */
        assert_int_equal(a.blobs, 3);
        assert_true(a.blob_raw_bytes >= BIG + strlen(SMALL));
        assert_true(a.blob_raw_bytes < BIG + strlen(SMALL) + 4096);
        assert_true(a.blob_stored_bytes > BIG); /* random data does not compress */
        /* data and tree blobs never share a pack */
        assert_true(a.packs >= 2);
        assert_true(a.pack_bytes >= a.blob_stored_bytes);
        assert_true(a.index_files >= 1);

        /* the same tree again: one more snapshot, no new unique content */
        backup(fx, "full", &s2);
        assert_int_equal(tm_stats_compute(fx->repo, &b), 0);
        assert_int_equal(b.snapshots, 2);
        assert_int_equal(b.restore_files, 6);
        assert_int_equal(b.restore_bytes, 2 * file_bytes);
        assert_int_equal(b.blobs, a.blobs);
        assert_int_equal(b.blob_raw_bytes, a.blob_raw_bytes);
        assert_true(b.pack_bytes >= a.pack_bytes);

        tm_snapshot_dispose(&s1);
        tm_snapshot_dispose(&s2);
        free(big);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_stats_empty, setup, teardown),
                cmocka_unit_test_setup_teardown(test_stats_dedup, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
