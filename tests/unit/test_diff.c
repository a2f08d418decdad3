/* Unit tests for tm_diff_trees(): two real backups of a scratch directory in
 * a scratch repository, then the exact list of changes. */
#include <errno.h>
#include <fcntl.h>
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

struct fixture {
        char base[64];
        char src[128];
        tm_repo *repo;
};

static void put_file(const char *dir, const char *name, const char *content)
{
        char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        f = fopen(path, "w");
        assert_non_null(f);
        assert_int_equal(fputs(content, f) >= 0, 1);
        assert_int_equal(fclose(f), 0);
}

static void mk(const char *dir, const char *name)
{
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        assert_int_equal(mkdir(path, 0755), 0);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        return remove(path);
}

static void rm_rf(const char *dir, const char *name)
{
        char path[512];

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        assert_int_equal(nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static int setup(void **state)
{
        struct fixture *fx = calloc(1, sizeof(*fx));
        struct tm_repo_opts o = TM_REPO_OPTS_INIT;
        char repo[128], cat[128];

        assert_non_null(fx);
        snprintf(fx->base, sizeof(fx->base), "/tmp/tm-diff-XXXXXX");
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

        o.component = "diffme";
        o.strategy = strategy;
        o.paths = paths;
        o.n_paths = 1;
        assert_int_equal(tm_backup_run(fx->repo, &o, ret), 0);
}

#define MAX_CHANGES 64

struct changes {
        char lines[MAX_CHANGES][128];
        size_t n;
        int bad_nodes;
        int stop_after; /* return 7 after this many calls (0: never) */
};

static int collect(char change, const char *path, const struct tm_node *a, const struct tm_node *b,
                   void *userdata)
{
        struct changes *c = userdata;

        /* the node arguments must match the change letter */
        if ((change == '+' && (a || !b)) || (change == '-' && (!a || b)) ||
            ((change == 'M' || change == 'T') && (!a || !b)))
                c->bad_nodes++;
        if (change == 'T' && a && b && a->type == b->type)
                c->bad_nodes++;
        assert_true(c->n < MAX_CHANGES);
        snprintf(c->lines[c->n++], sizeof(c->lines[0]), "%c %s", change, path);
        if (c->stop_after && c->n == (size_t)c->stop_after)
                return 7;
        return 0;
}

static void expect(const struct changes *c, const char *const *want, size_t n)
{
        for (size_t i = 0; i < c->n || i < n; i++) {
                const char *got = i < c->n ? c->lines[i] : "(none)";
                const char *exp = i < n ? want[i] : "(none)";

                if (strcmp(got, exp) != 0)
                        fail_msg("change %zu: got '%s', expected '%s'", i, got, exp);
        }
        assert_int_equal(c->bad_nodes, 0);
}

static void test_diff_changes(void **state)
{
        struct fixture *fx = *state;
        struct tm_snapshot s1 = { 0 }, s2 = { 0 };
        struct changes *c = calloc(1, sizeof(*c));
        char path[512];
        static const char *const forward[] = {
                "M a.txt",   "M dir1/b.txt", "- gone",          "- gone/x.txt",
                "M link",    "+ new",        "+ new/y.txt",     "+ new/z",
                "+ new/z/w", "T typechg",    "+ typechg/inner",
        };
        static const char *const backward[] = {
                "M a.txt",   "M dir1/b.txt", "+ gone",          "+ gone/x.txt",
                "M link",    "- new",        "- new/y.txt",     "- new/z",
                "- new/z/w", "T typechg",    "- typechg/inner",
        };

        put_file(fx->src, "a.txt", "hello");
        mk(fx->src, "dir1");
        put_file(fx->src, "dir1/b.txt", "b");
        mk(fx->src, "dir1/sub");
        put_file(fx->src, "dir1/sub/c.txt", "c");
        mk(fx->src, "gone");
        put_file(fx->src, "gone/x.txt", "x");
        put_file(fx->src, "typechg", "was a file");
        snprintf(path, sizeof(path), "%s/link", fx->src);
        assert_int_equal(symlink("a.txt", path), 0);
        backup(fx, "full", &s1);

        put_file(fx->src, "a.txt", "hello, world"); /* new content and size */
        snprintf(path, sizeof(path), "%s/dir1/b.txt", fx->src);
        assert_int_equal(chmod(path, 0600), 0); /* metadata only */
        rm_rf(fx->src, "gone");
        mk(fx->src, "new");
        put_file(fx->src, "new/y.txt", "y");
        mk(fx->src, "new/z");
        put_file(fx->src, "new/z/w", "w");
        snprintf(path, sizeof(path), "%s/typechg", fx->src);
        assert_int_equal(unlink(path), 0);
        mk(fx->src, "typechg");
        put_file(fx->src, "typechg/inner", "i");
        snprintf(path, sizeof(path), "%s/link", fx->src);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(symlink("dir1", path), 0);
        backup(fx, "incremental", &s2);

        assert_int_equal(tm_diff_trees(fx->repo, &s1.tree, &s2.tree, collect, c), 0);
        expect(c, forward, sizeof(forward) / sizeof(forward[0]));

        memset(c, 0, sizeof(*c));
        assert_int_equal(tm_diff_trees(fx->repo, &s2.tree, &s1.tree, collect, c), 0);
        expect(c, backward, sizeof(backward) / sizeof(backward[0]));

        /* a tree against itself: nothing */
        memset(c, 0, sizeof(*c));
        assert_int_equal(tm_diff_trees(fx->repo, &s1.tree, &s1.tree, collect, c), 0);
        assert_int_equal(c->n, 0);

        /* the callback's non-zero return stops the walk and comes back */
        memset(c, 0, sizeof(*c));
        c->stop_after = 3;
        assert_int_equal(tm_diff_trees(fx->repo, &s1.tree, &s2.tree, collect, c), 7);
        assert_int_equal(c->n, 3);

        free(c);
        tm_snapshot_dispose(&s1);
        tm_snapshot_dispose(&s2);
}

static void test_diff_identical_ids_not_loaded(void **state)
{
        struct fixture *fx = *state;
        struct changes *c = calloc(1, sizeof(*c));
        tm_id bogus, other;
        struct tm_snapshot s = { 0 };

        /* equal ids are never loaded: an id that does not exist still diffs
         * as "no change" */
        memset(&bogus, 0xab, sizeof(bogus));
        assert_int_equal(tm_diff_trees(fx->repo, &bogus, &bogus, collect, c), 0);
        assert_int_equal(c->n, 0);

        /* but a missing tree on one side is an error, not an empty tree */
        put_file(fx->src, "f", "f");
        backup(fx, "full", &s);
        memset(&other, 0xcd, sizeof(other));
        assert_true(tm_diff_trees(fx->repo, &s.tree, &other, collect, c) < 0);
        assert_int_equal(tm_diff_trees(fx->repo, &s.tree, &other, NULL, NULL), -EINVAL);
        tm_snapshot_dispose(&s);
        free(c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_diff_changes, setup, teardown),
                cmocka_unit_test_setup_teardown(test_diff_identical_ids_not_loaded, setup,
                                                teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
