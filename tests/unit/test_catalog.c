/* Unit tests for the catalog module (SQLite cache). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include <tidemark/catalog.h>
#include <tidemark/log.h>
#include <tidemark/time.h>

static uint64_t rng_state;

static uint64_t rng_next(void)
{
        /* xorshift64*: deterministic from the printed seed */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * 0x2545F4914F6CDD1DULL;
}

static void fill_random(void *p, size_t n)
{
        uint8_t *b = p;

        for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(rng_next() >> 56);
}

/* Distinct, reproducible ids: a tag byte and a counter, rest zero. */
static tm_id make_id(uint8_t tag, uint32_t n)
{
        tm_id id;

        memset(&id, 0, sizeof(id));
        id.b[0] = tag;
        tm_set_u32le(id.b + 1, n);
        id.b[31] = (uint8_t)(n * 7 + tag);
        return id;
}

static struct tm_pack_entry make_entry(uint32_t n, uint64_t offset)
{
        struct tm_pack_entry e = { 0 };

        e.id = make_id('b', n);
        e.type = (uint8_t)(n & 1);
        e.flags = (uint8_t)(n % 3 == 0 ? TM_PACK_FLAG_ZSTD : 0);
        e.offset = offset;
        e.length = 1000 + n;
        e.raw_length = 2000 + n;
        return e;
}

static void assert_entry_equal(const struct tm_pack_entry *a, const struct tm_pack_entry *b)
{
        assert_memory_equal(a->id.b, b->id.b, TM_ID_LEN);
        assert_int_equal(a->type, b->type);
        assert_int_equal(a->flags, b->flags);
        assert_int_equal(a->offset, b->offset);
        assert_int_equal(a->length, b->length);
        assert_int_equal(a->raw_length, b->raw_length);
}

struct fixture {
        char dir[256];
        char path[320];
        tm_catalog *cat;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/tm-test-catalog-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->path, sizeof(f->path), "%s/catalog.db", f->dir);
        assert_int_equal(tm_catalog_open(f->path, &f->cat), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        tm_catalog_free(f->cat);
        tm_catalog_destroy(f->path);
        rmdir(f->dir);
        free(f);
        return 0;
}

static void reopen(struct fixture *f)
{
        tm_catalog_free(f->cat);
        f->cat = NULL;
        assert_int_equal(tm_catalog_open(f->path, &f->cat), 0);
}

static void make_snapshot(struct tm_snapshot *s, uint32_t n, const char *component, int64_t time)
{
        memset(s, 0, sizeof(*s));
        s->id = make_id('s', n);
        s->time = time;
        s->host = strdup("host1");
        s->username = strdup("root");
        s->component = strdup(component);
        s->strategy = strdup("full");
        s->tree = make_id('t', n);
        if (n > 0) {
                s->has_parent = 1;
                s->parent = make_id('s', n - 1);
        }
        assert_int_equal(tm_snapshot_add_path(s, "/srv/plugins"), 0);
        assert_int_equal(tm_snapshot_add_tag(s, "nightly"), 0);
        s->summary.files = 10 + n;
        s->summary.bytes = 12345;
        s->summary.duration_ns = 42;
}

static void test_open_errors(void **state)
{
        struct fixture *f = *state;
        tm_catalog *cat = NULL;
        char path[512];
        struct stat st;

        assert_int_equal(tm_catalog_open(NULL, &cat), -EINVAL);
        assert_int_equal(tm_catalog_open("", &cat), -EINVAL);
        snprintf(path, sizeof(path), "%s/no/such/dir/c.db", f->dir);
        assert_int_equal(tm_catalog_open(path, &cat), -ENOENT);
        assert_null(cat);
        /* the catalog holds decrypted manifests: private mode */
        assert_int_equal(stat(f->path, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0600);
        tm_catalog_free(NULL);
}

static void test_meta(void **state)
{
        struct fixture *f = *state;
        char *v = (char *)"untouched";

        assert_int_equal(tm_catalog_meta_get(f->cat, "repo_id", &v), -ENOENT);
        assert_string_equal(v, "untouched");
        assert_int_equal(tm_catalog_meta_set(f->cat, "repo_id", "abc"), 0);
        assert_int_equal(tm_catalog_meta_get(f->cat, "repo_id", &v), 0);
        assert_string_equal(v, "abc");
        free(v);
        assert_int_equal(tm_catalog_meta_set(f->cat, "repo_id", "def"), 0);
        assert_int_equal(tm_catalog_meta_set(f->cat, "empty", ""), 0);
        assert_int_equal(tm_catalog_meta_get(f->cat, "repo_id", &v), 0);
        assert_string_equal(v, "def");
        free(v);
        assert_int_equal(tm_catalog_meta_get(f->cat, "empty", &v), 0);
        assert_string_equal(v, "");
        free(v);
        assert_int_equal(tm_catalog_meta_set(f->cat, "k", NULL), -EINVAL);
        assert_int_equal(tm_catalog_meta_get(f->cat, NULL, &v), -EINVAL);
}

struct id_list {
        tm_id *ids;
        size_t n;
        size_t cap;
        int stop_after;
        tm_catalog *cat; /* for callbacks that call back in */
};

static int collect_id(const tm_id *id, void *userdata)
{
        struct id_list *l = userdata;

        assert_true(l->n < l->cap);
        l->ids[l->n++] = *id;
        if (l->cat) /* re-entrant call: must not deadlock */
                assert_int_equal(tm_catalog_index_has(l->cat, id), 1);
        if (l->stop_after && (int)l->n == l->stop_after)
                return -ECANCELED;
        return 0;
}

static void test_index(void **state)
{
        struct fixture *f = *state;
        struct id_list l = { 0 };
        enum { N = 600 }; /* more than one batch */
        tm_id id = make_id('i', 1);

        assert_int_equal(tm_catalog_index_has(f->cat, &id), 0);
        assert_int_equal(tm_catalog_index_add(f->cat, &id), 0);
        assert_int_equal(tm_catalog_index_has(f->cat, &id), 1);
        assert_int_equal(tm_catalog_index_add(f->cat, &id), -EEXIST);
        assert_int_equal(tm_catalog_index_remove(f->cat, &id), 0);
        assert_int_equal(tm_catalog_index_remove(f->cat, &id), -ENOENT);
        assert_int_equal(tm_catalog_index_has(f->cat, &id), 0);

        for (uint32_t i = 0; i < N; i++) {
                id = make_id('i', (i * 7919) % N); /* inserted out of order */
                assert_int_equal(tm_catalog_index_add(f->cat, &id), 0);
        }
        l.ids = calloc(N, sizeof(tm_id));
        l.cap = N;
        l.cat = f->cat;
        assert_int_equal(tm_catalog_index_foreach(f->cat, collect_id, &l), 0);
        assert_int_equal(l.n, N);
        for (size_t i = 1; i < l.n; i++)
                assert_true(tm_id_cmp(&l.ids[i - 1], &l.ids[i]) < 0);
        l.n = 0;
        l.stop_after = 300;
        assert_int_equal(tm_catalog_index_foreach(f->cat, collect_id, &l), -ECANCELED);
        assert_int_equal(l.n, 300);
        assert_int_equal(tm_catalog_index_foreach(f->cat, NULL, NULL), -EINVAL);
        free(l.ids);
}

struct pack_list {
        tm_id ids[16];
        uint8_t types[16];
        uint64_t sizes[16];
        size_t n;
};

static int collect_pack(const tm_id *id, uint8_t type, uint64_t size, void *userdata)
{
        struct pack_list *l = userdata;

        assert_true(l->n < 16);
        l->ids[l->n] = *id;
        l->types[l->n] = type;
        l->sizes[l->n] = size;
        l->n++;
        return 0;
}

struct blob_list {
        tm_id blob[2048];
        tm_id pack[2048];
        struct tm_pack_entry e[2048];
        size_t n;
        tm_catalog *cat;
};

static int collect_blob(const tm_id *blob_id, const tm_id *pack_id, const struct tm_pack_entry *e,
                        void *userdata)
{
        struct blob_list *l = userdata;

        assert_true(l->n < 2048);
        assert_memory_equal(blob_id->b, e->id.b, TM_ID_LEN);
        l->blob[l->n] = *blob_id;
        l->pack[l->n] = *pack_id;
        l->e[l->n] = *e;
        l->n++;
        if (l->cat) {
                /* modify the catalog from inside the walk */
                tm_id p;

                assert_int_equal(tm_catalog_blob_find(l->cat, blob_id, &p, NULL), 0);
        }
        return 0;
}

static void test_packs(void **state)
{
        struct fixture *f = *state;
        struct pack_list l = { 0 };
        struct blob_list *bl = calloc(1, sizeof(*bl));
        tm_id p1 = make_id('p', 1), p2 = make_id('p', 2), got;
        struct tm_pack_entry e;

        assert_int_equal(tm_catalog_pack_has(f->cat, &p1), 0);
        assert_int_equal(tm_catalog_pack_add(f->cat, &p1, TM_BLOB_DATA, 1ULL << 33), 0);
        assert_int_equal(tm_catalog_pack_add(f->cat, &p1, TM_BLOB_DATA, 1ULL << 33), 0);
        assert_int_equal(tm_catalog_pack_add(f->cat, &p2, TM_BLOB_TREE, 77), 0);
        assert_int_equal(tm_catalog_pack_has(f->cat, &p1), 1);
        assert_int_equal(tm_catalog_pack_foreach(f->cat, collect_pack, &l), 0);
        assert_int_equal(l.n, 2);
        assert_memory_equal(l.ids[0].b, p1.b, TM_ID_LEN);
        assert_int_equal(l.types[0], TM_BLOB_DATA);
        assert_int_equal(l.sizes[0], 1ULL << 33);
        assert_memory_equal(l.ids[1].b, p2.b, TM_ID_LEN);
        assert_int_equal(l.types[1], TM_BLOB_TREE);
        assert_int_equal(l.sizes[1], 77);

        /* removing a pack removes its blob locations, not others' */
        for (uint32_t i = 0; i < 5; i++) {
                e = make_entry(i, i * 100);
                assert_int_equal(tm_catalog_blob_add(f->cat, &p1, &e), 0);
        }
        e = make_entry(0, 0);
        assert_int_equal(tm_catalog_blob_add(f->cat, &p2, &e), 0);
        assert_int_equal(tm_catalog_pack_remove(f->cat, &p1), 0);
        assert_int_equal(tm_catalog_pack_has(f->cat, &p1), 0);
        assert_int_equal(tm_catalog_pack_remove(f->cat, &p1), -ENOENT);
        assert_int_equal(tm_catalog_blob_foreach(f->cat, collect_blob, bl), 0);
        assert_int_equal(bl->n, 1);
        assert_memory_equal(bl->pack[0].b, p2.b, TM_ID_LEN);
        assert_int_equal(tm_catalog_blob_find(f->cat, &e.id, &got, NULL), 0);
        assert_memory_equal(got.b, p2.b, TM_ID_LEN);
        e = make_entry(1, 100);
        assert_int_equal(tm_catalog_blob_find(f->cat, &e.id, &got, NULL), -ENOENT);
        free(bl);
}

static void test_blobs(void **state)
{
        struct fixture *f = *state;
        struct blob_list *l = calloc(1, sizeof(*l));
        tm_id p1 = make_id('p', 1), p2 = make_id('p', 2), pack = make_id('x', 0);
        struct tm_pack_entry e, got = { 0 };
        uint64_t count = 99;
        enum { N = 700 }; /* several batches */

        assert_int_equal(tm_catalog_blob_count(f->cat, &count), 0);
        assert_int_equal(count, 0);
        e = make_entry(1, 0);
        assert_int_equal(tm_catalog_blob_find(f->cat, &e.id, &pack, &got), -ENOENT);
        assert_int_equal(pack.b[0], 'x'); /* untouched on failure */

        /* p1 gets N blobs, inserted in reverse offset order */
        for (uint32_t i = N; i-- > 0;) {
                e = make_entry(i, (uint64_t)i * 4096 + (1ULL << 32));
                assert_int_equal(tm_catalog_blob_add(f->cat, &p1, &e), 0);
        }
        /* adding the same location again is not an error and changes nothing */
        e = make_entry(5, 5 * 4096 + (1ULL << 32));
        assert_int_equal(tm_catalog_blob_add(f->cat, &p1, &e), 0);
        /* blob 5 is also in p2 */
        e = make_entry(5, 12);
        assert_int_equal(tm_catalog_blob_add(f->cat, &p2, &e), 0);

        assert_int_equal(tm_catalog_blob_count(f->cat, &count), 0);
        assert_int_equal(count, N + 1); /* locations: blob 5 counts twice */

        e = make_entry(17, 17 * 4096 + (1ULL << 32));
        assert_int_equal(tm_catalog_blob_find(f->cat, &e.id, &pack, &got), 0);
        assert_memory_equal(pack.b, p1.b, TM_ID_LEN);
        assert_entry_equal(&got, &e);
        /* either location of blob 5 is a right answer */
        e = make_entry(5, 0);
        assert_int_equal(tm_catalog_blob_find(f->cat, &e.id, &pack, &got), 0);
        assert_true(!memcmp(pack.b, p1.b, TM_ID_LEN) || !memcmp(pack.b, p2.b, TM_ID_LEN));
        assert_int_equal(got.length, e.length);
        assert_int_equal(got.offset,
                         !memcmp(pack.b, p1.b, TM_ID_LEN) ? 5 * 4096 + (1ULL << 32) : 12);

        /* every location of blob 5, in pack order; max bounds the answer */
        {
                tm_id packs[4];
                struct tm_pack_entry all[4];
                size_t n = 9;

                assert_int_equal(tm_catalog_blob_find_all(f->cat, &e.id, packs, all, 4, &n), 0);
                assert_int_equal(n, 2);
                assert_memory_equal(packs[0].b, p1.b, TM_ID_LEN);
                assert_memory_equal(packs[1].b, p2.b, TM_ID_LEN);
                assert_int_equal(all[0].offset, 5 * 4096 + (1ULL << 32));
                assert_int_equal(all[1].offset, 12);
                assert_memory_equal(all[1].id.b, e.id.b, TM_ID_LEN);
                assert_int_equal(tm_catalog_blob_find_all(f->cat, &e.id, packs, all, 1, &n), 0);
                assert_int_equal(n, 1);
                assert_int_equal(tm_catalog_blob_find_all(f->cat, &e.id, packs, all, 0, &n),
                                 -EINVAL);
                e = make_entry(N + 5, 0);
                assert_int_equal(tm_catalog_blob_find_all(f->cat, &e.id, packs, all, 4, &n),
                                 -ENOENT);
                assert_int_equal(n, 0);
        }

        /* all locations, each once */
        assert_int_equal(tm_catalog_blob_foreach(f->cat, collect_blob, l), 0);
        assert_int_equal(l->n, N + 1);
        for (size_t i = 1; i < l->n; i++) {
                int c = tm_id_cmp(&l->blob[i - 1], &l->blob[i]);

                assert_true(c < 0 || (c == 0 && tm_id_cmp(&l->pack[i - 1], &l->pack[i]) < 0));
        }

        /* one pack, in offset order, with a re-entrant callback */
        memset(l, 0, sizeof(*l));
        l->cat = f->cat;
        assert_int_equal(tm_catalog_blob_foreach_in_pack(f->cat, &p1, collect_blob, l), 0);
        assert_int_equal(l->n, N);
        for (size_t i = 0; i < l->n; i++) {
                e = make_entry((uint32_t)i, (uint64_t)i * 4096 + (1ULL << 32));
                assert_entry_equal(&l->e[i], &e);
                assert_memory_equal(l->pack[i].b, p1.b, TM_ID_LEN);
        }
        memset(l, 0, sizeof(*l));
        assert_int_equal(tm_catalog_blob_foreach_in_pack(f->cat, &p2, collect_blob, l), 0);
        assert_int_equal(l->n, 1);
        assert_int_equal(l->e[0].offset, 12);
        memset(l, 0, sizeof(*l));
        pack = make_id('p', 3);
        assert_int_equal(tm_catalog_blob_foreach_in_pack(f->cat, &pack, collect_blob, l), 0);
        assert_int_equal(l->n, 0);
        assert_int_equal(tm_catalog_blob_foreach_in_pack(f->cat, NULL, collect_blob, l), -EINVAL);
        free(l);
}

struct snap_list {
        tm_id ids[64];
        int64_t times[64];
        char components[64][32];
        size_t n;
        tm_catalog *cat;
};

static int collect_snap(const struct tm_snapshot *s, void *userdata)
{
        struct snap_list *l = userdata;

        assert_true(l->n < 64);
        l->ids[l->n] = s->id;
        l->times[l->n] = s->time;
        snprintf(l->components[l->n], sizeof(l->components[0]), "%s", s->component);
        l->n++;
        if (l->cat) /* call back in while iterating */
                assert_int_equal(tm_catalog_snapshot_has(l->cat, &s->id), 1);
        return 0;
}

static void test_snapshots(void **state)
{
        struct fixture *f = *state;
        struct snap_list *l = calloc(1, sizeof(*l));
        struct tm_snapshot s, got;
        tm_id id = make_id('s', 3);
        const int64_t base = 1736244000LL * TM_NSEC_PER_SEC;

        assert_int_equal(tm_catalog_snapshot_has(f->cat, &id), 0);
        assert_int_equal(tm_catalog_snapshot_get(f->cat, &id, &got), -ENOENT);
        /* 40 snapshots (more than one batch), two components, added newest
         * first; pairs share a time so the id breaks the tie */
        for (uint32_t i = 40; i-- > 0;) {
                make_snapshot(&s, i, i % 2 ? "database" : "plugins",
                              base + (int64_t)(i / 2) * 3600 * TM_NSEC_PER_SEC);
                assert_int_equal(tm_catalog_snapshot_add(f->cat, &s), 0);
                if (i == 3)
                        assert_int_equal(tm_catalog_snapshot_add(f->cat, &s), -EEXIST);
                tm_snapshot_dispose(&s);
        }
        assert_int_equal(tm_catalog_snapshot_has(f->cat, &id), 1);

        make_snapshot(&s, 3, "database", base + 3600 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_catalog_snapshot_get(f->cat, &id, &got), 0);
        assert_memory_equal(got.id.b, s.id.b, TM_ID_LEN);
        assert_int_equal(got.time, s.time);
        assert_string_equal(got.host, "host1");
        assert_string_equal(got.username, "root");
        assert_string_equal(got.component, "database");
        assert_string_equal(got.strategy, "full");
        assert_int_equal(got.has_parent, 1);
        assert_memory_equal(got.parent.b, s.parent.b, TM_ID_LEN);
        assert_memory_equal(got.tree.b, s.tree.b, TM_ID_LEN);
        assert_int_equal(got.n_paths, 1);
        assert_string_equal(got.paths[0], "/srv/plugins");
        assert_int_equal(got.n_tags, 1);
        assert_string_equal(got.tags[0], "nightly");
        assert_int_equal(got.summary.files, 13);
        assert_int_equal(got.summary.duration_ns, 42);
        tm_snapshot_dispose(&got);
        tm_snapshot_dispose(&s);

        /* all, oldest first */
        l->cat = f->cat;
        assert_int_equal(tm_catalog_snapshot_foreach(f->cat, NULL, collect_snap, l), 0);
        assert_int_equal(l->n, 40);
        for (size_t i = 1; i < l->n; i++)
                assert_true(l->times[i - 1] <= l->times[i]);
        for (size_t i = 0; i < l->n; i++) {
                tm_id want = make_id('s', (uint32_t)i);

                assert_memory_equal(l->ids[i].b, want.b, TM_ID_LEN);
        }
        /* one component */
        memset(l, 0, sizeof(*l));
        assert_int_equal(tm_catalog_snapshot_foreach(f->cat, "database", collect_snap, l), 0);
        assert_int_equal(l->n, 20);
        for (size_t i = 0; i < l->n; i++) {
                assert_string_equal(l->components[i], "database");
                if (i)
                        assert_true(l->times[i - 1] < l->times[i]);
        }
        memset(l, 0, sizeof(*l));
        assert_int_equal(tm_catalog_snapshot_foreach(f->cat, "nope", collect_snap, l), 0);
        assert_int_equal(l->n, 0);

        assert_int_equal(tm_catalog_snapshot_remove(f->cat, &id), 0);
        assert_int_equal(tm_catalog_snapshot_remove(f->cat, &id), -ENOENT);
        assert_int_equal(tm_catalog_snapshot_has(f->cat, &id), 0);
        assert_int_equal(tm_catalog_snapshot_foreach(f->cat, "database", collect_snap, l), 0);
        assert_int_equal(l->n, 19);

        /* a manifest the snapshot module rejects is not stored */
        make_snapshot(&s, 100, "plugins", base);
        free(s.strategy);
        s.strategy = NULL;
        assert_int_equal(tm_catalog_snapshot_add(f->cat, &s), -EINVAL);
        tm_snapshot_dispose(&s);
        free(l);
}

static void test_transactions(void **state)
{
        struct fixture *f = *state;
        tm_id a = make_id('i', 1), b = make_id('i', 2);

        assert_int_equal(tm_catalog_begin(f->cat), 0);
        assert_int_equal(tm_catalog_index_add(f->cat, &a), 0);
        assert_int_equal(tm_catalog_index_has(f->cat, &a), 1);
        assert_int_equal(tm_catalog_rollback(f->cat), 0);
        assert_int_equal(tm_catalog_index_has(f->cat, &a), 0);

        assert_int_equal(tm_catalog_begin(f->cat), 0);
        assert_int_equal(tm_catalog_index_add(f->cat, &b), 0);
        /* pack_remove's savepoint nests inside the transaction */
        assert_int_equal(tm_catalog_pack_remove(f->cat, &a), -ENOENT);
        assert_int_equal(tm_catalog_commit(f->cat), 0);
        assert_int_equal(tm_catalog_index_has(f->cat, &b), 1);

        /* misuse is an error, not a crash */
        assert_true(tm_catalog_commit(f->cat) < 0);
        assert_true(tm_catalog_rollback(f->cat) < 0);
        assert_int_equal(tm_catalog_begin(f->cat), 0);
        assert_true(tm_catalog_begin(f->cat) < 0);
        assert_int_equal(tm_catalog_commit(f->cat), 0);
        assert_int_equal(tm_catalog_begin(NULL), -EINVAL);
}

static void test_persist_clear(void **state)
{
        struct fixture *f = *state;
        struct tm_snapshot s, got;
        tm_id p = make_id('p', 1), i1 = make_id('i', 1), pack;
        struct tm_pack_entry e = make_entry(9, 900), ge;
        uint64_t count;
        char *v;

        assert_int_equal(tm_catalog_meta_set(f->cat, "repo_id", "r1"), 0);
        assert_int_equal(tm_catalog_index_add(f->cat, &i1), 0);
        assert_int_equal(tm_catalog_pack_add(f->cat, &p, TM_BLOB_DATA, 1000), 0);
        assert_int_equal(tm_catalog_blob_add(f->cat, &p, &e), 0);
        make_snapshot(&s, 1, "config", 5 * TM_NSEC_PER_SEC);
        assert_int_equal(tm_catalog_snapshot_add(f->cat, &s), 0);

        reopen(f);
        assert_int_equal(tm_catalog_meta_get(f->cat, "repo_id", &v), 0);
        assert_string_equal(v, "r1");
        free(v);
        assert_int_equal(tm_catalog_index_has(f->cat, &i1), 1);
        assert_int_equal(tm_catalog_pack_has(f->cat, &p), 1);
        assert_int_equal(tm_catalog_blob_find(f->cat, &e.id, &pack, &ge), 0);
        assert_entry_equal(&ge, &e);
        assert_int_equal(tm_catalog_snapshot_get(f->cat, &s.id, &got), 0);
        assert_string_equal(got.component, "config");
        tm_snapshot_dispose(&got);

        assert_int_equal(tm_catalog_clear(f->cat), 0);
        assert_int_equal(tm_catalog_meta_get(f->cat, "repo_id", &v), -ENOENT);
        assert_int_equal(tm_catalog_index_has(f->cat, &i1), 0);
        assert_int_equal(tm_catalog_pack_has(f->cat, &p), 0);
        assert_int_equal(tm_catalog_blob_count(f->cat, &count), 0);
        assert_int_equal(count, 0);
        assert_int_equal(tm_catalog_snapshot_has(f->cat, &s.id), 0);
        /* clear works inside a transaction too, and is rolled back with it */
        assert_int_equal(tm_catalog_snapshot_add(f->cat, &s), 0);
        assert_int_equal(tm_catalog_begin(f->cat), 0);
        assert_int_equal(tm_catalog_clear(f->cat), 0);
        assert_int_equal(tm_catalog_snapshot_has(f->cat, &s.id), 0);
        assert_int_equal(tm_catalog_rollback(f->cat), 0);
        assert_int_equal(tm_catalog_snapshot_has(f->cat, &s.id), 1);
        reopen(f);
        assert_int_equal(tm_catalog_snapshot_has(f->cat, &s.id), 1);
        tm_snapshot_dispose(&s);
}

static void test_destroy(void **state)
{
        struct fixture *f = *state;
        char p[512];
        tm_id id = make_id('i', 1);

        assert_int_equal(tm_catalog_index_add(f->cat, &id), 0);
        tm_catalog_free(f->cat);
        f->cat = NULL;
        /* leave companions around as a crash would */
        snprintf(p, sizeof(p), "%s-wal", f->path);
        close(open(p, O_CREAT | O_WRONLY, 0600));
        assert_int_equal(tm_catalog_destroy(f->path), 0);
        assert_int_equal(access(f->path, F_OK), -1);
        assert_int_equal(access(p, F_OK), -1);
        snprintf(p, sizeof(p), "%s-shm", f->path);
        assert_int_equal(access(p, F_OK), -1);
        assert_int_equal(tm_catalog_destroy(f->path), 0); /* nothing left: fine */
        assert_int_equal(tm_catalog_destroy(NULL), -EINVAL);
        /* a fresh catalog is empty */
        assert_int_equal(tm_catalog_open(f->path, &f->cat), 0);
        assert_int_equal(tm_catalog_index_has(f->cat, &id), 0);
}

static void write_file(const char *path, const void *p, size_t n)
{
        int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, p, n), (ssize_t)n);
        close(fd);
}

static void patch_file(const char *path, off_t off, const void *p, size_t n)
{
        int fd = open(path, O_WRONLY);

        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, p, n, off), (ssize_t)n);
        close(fd);
}

static void test_garbage(void **state)
{
        struct fixture *f = *state;
        tm_catalog *cat = NULL;
        uint8_t junk[8192];

        tm_catalog_free(f->cat);
        f->cat = NULL;
        assert_int_equal(tm_catalog_destroy(f->path), 0);

        fill_random(junk, sizeof(junk));
        write_file(f->path, junk, sizeof(junk));
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);
        assert_null(cat);
        write_file(f->path, junk, 10);
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);
        write_file(f->path, "SQLite format 3", 16);
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);

        /* after destroy the caller can rebuild */
        assert_int_equal(tm_catalog_destroy(f->path), 0);
        assert_int_equal(tm_catalog_open(f->path, &f->cat), 0);
}

/* A catalog with enough rows to span many pages, then closed. */
static void fill_and_close(struct fixture *f)
{
        tm_id p = make_id('p', 1);

        assert_int_equal(tm_catalog_begin(f->cat), 0);
        for (uint32_t i = 0; i < 3000; i++) {
                struct tm_pack_entry e = make_entry(i, (uint64_t)i * 100);

                assert_int_equal(tm_catalog_blob_add(f->cat, &p, &e), 0);
        }
        assert_int_equal(tm_catalog_commit(f->cat), 0);
        tm_catalog_free(f->cat);
        f->cat = NULL;
}

static void test_corrupt_header(void **state)
{
        struct fixture *f = *state;
        tm_catalog *cat = NULL;
        uint8_t junk[16];

        fill_and_close(f);
        fill_random(junk, sizeof(junk));
        patch_file(f->path, 0, junk, sizeof(junk)); /* the magic */
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);
        assert_null(cat);
}

static void test_corrupt_page_size(void **state)
{
        struct fixture *f = *state;
        tm_catalog *cat = NULL;
        const uint8_t bad[2] = { 0x03, 0x00 }; /* 768: not a power of two */

        fill_and_close(f);
        patch_file(f->path, 16, bad, sizeof(bad));
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);
}

static void test_truncated(void **state)
{
        struct fixture *f = *state;
        tm_catalog *cat = NULL;
        struct stat st;

        fill_and_close(f);
        assert_int_equal(stat(f->path, &st), 0);
        assert_true(st.st_size > 64 * 1024);
        assert_int_equal(truncate(f->path, st.st_size / 2), 0);
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);
        /* cut to just the first page */
        assert_int_equal(truncate(f->path, 4096), 0);
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);
}

static void test_corrupt_pages(void **state)
{
        struct fixture *f = *state;
        tm_catalog *cat = NULL;
        struct stat st;
        uint8_t junk[4096];

        /* overwrite the last pages (b-tree right edges) with garbage */
        fill_and_close(f);
        assert_int_equal(stat(f->path, &st), 0);
        fill_random(junk, sizeof(junk));
        for (off_t off = 4096; off < st.st_size; off += 4096)
                patch_file(f->path, off, junk, sizeof(junk));
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);
}

static void sql_exec(const char *path, const char *sql)
{
        sqlite3 *db = NULL;

        assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
}

static void test_wrong_schema(void **state)
{
        struct fixture *f = *state;
        tm_catalog *cat = NULL;

        tm_catalog_free(f->cat);
        f->cat = NULL;
        sql_exec(f->path, "PRAGMA user_version = 7");
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);

        /* somebody else's database at our path */
        assert_int_equal(tm_catalog_destroy(f->path), 0);
        sql_exec(f->path, "CREATE TABLE t(x)");
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);

        /* right version, a table missing */
        assert_int_equal(tm_catalog_destroy(f->path), 0);
        assert_int_equal(tm_catalog_open(f->path, &f->cat), 0);
        tm_catalog_free(f->cat);
        f->cat = NULL;
        sql_exec(f->path, "DROP TABLE blobs");
        assert_int_equal(tm_catalog_open(f->path, &cat), -EBADMSG);
        assert_null(cat);
}

static void test_bulk(void **state)
{
        struct fixture *f = *state;
        tm_id packs[10];
        uint64_t count;
        enum { N = 10000 };

        for (int i = 0; i < 10; i++)
                packs[i] = make_id('p', (uint32_t)i);
        assert_int_equal(tm_catalog_begin(f->cat), 0);
        for (uint32_t i = 0; i < N; i++) {
                struct tm_pack_entry e = make_entry(0, (uint64_t)(i % 1000) * 65536);

                fill_random(e.id.b, TM_ID_LEN);
                if (i % 1000 == 0)
                        assert_int_equal(tm_catalog_pack_add(f->cat, &packs[i / 1000], TM_BLOB_DATA,
                                                             64 << 20),
                                         0);
                assert_int_equal(tm_catalog_blob_add(f->cat, &packs[i / 1000], &e), 0);
        }
        assert_int_equal(tm_catalog_commit(f->cat), 0);
        assert_int_equal(tm_catalog_blob_count(f->cat, &count), 0);
        assert_int_equal(count, N);
}

struct worker {
        tm_catalog *cat;
        int find;
        uint32_t n;
        int errors;
        uint64_t seen;
};

static int count_blob(const tm_id *blob_id, const tm_id *pack_id, const struct tm_pack_entry *e,
                      void *userdata)
{
        struct worker *w = userdata;

        (void)blob_id;
        (void)pack_id;
        (void)e;
        w->seen++;
        return 0;
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;

        for (int round = 0; round < 20; round++) {
                if (w->find) {
                        for (uint32_t i = 0; i < w->n; i += 7) {
                                struct tm_pack_entry want = make_entry(i, (uint64_t)i * 10), got;
                                tm_id pack;

                                if (tm_catalog_blob_find(w->cat, &want.id, &pack, &got) < 0 ||
                                    got.offset != want.offset || got.length != want.length)
                                        w->errors++;
                        }
                } else {
                        uint64_t before = w->seen;

                        if (tm_catalog_blob_foreach(w->cat, count_blob, w) < 0 ||
                            w->seen - before != w->n)
                                w->errors++;
                }
        }
        return NULL;
}

static void test_threads(void **state)
{
        struct fixture *f = *state;
        tm_id p = make_id('p', 1);
        struct worker w[4];
        pthread_t th[4];
        enum { N = 2000 };

        assert_int_equal(tm_catalog_begin(f->cat), 0);
        for (uint32_t i = 0; i < N; i++) {
                struct tm_pack_entry e = make_entry(i, (uint64_t)i * 10);

                assert_int_equal(tm_catalog_blob_add(f->cat, &p, &e), 0);
        }
        assert_int_equal(tm_catalog_commit(f->cat), 0);
        for (int i = 0; i < 4; i++) {
                w[i] = (struct worker){ .cat = f->cat, .find = i % 2, .n = N };
                assert_int_equal(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(w[i].errors, 0);
        }
}

struct opener {
        const char *path;
        int r;
};

static void *open_main(void *arg)
{
        struct opener *o = arg;
        tm_catalog *cat = NULL;
        tm_id id = make_id('i', 1);

        o->r = tm_catalog_open(o->path, &cat);
        if (o->r == 0) {
                int r = tm_catalog_index_add(cat, &id);

                /* exactly one opener wins the insert */
                o->r = r == -EEXIST ? 1 : r;
        }
        tm_catalog_free(cat);
        return NULL;
}

static void test_two_handles(void **state)
{
        struct fixture *f = *state;
        struct opener o[4];
        pthread_t th[4];
        tm_catalog *other = NULL;
        tm_id id = make_id('i', 9);
        char path[512];
        int wins = 0;

        /* several processes' handles on one file see each other's commits */
        assert_int_equal(tm_catalog_open(f->path, &other), 0);
        assert_int_equal(tm_catalog_index_add(f->cat, &id), 0);
        assert_int_equal(tm_catalog_index_has(other, &id), 1);
        assert_int_equal(tm_catalog_begin(f->cat), 0);
        assert_int_equal(tm_catalog_index_remove(f->cat, &id), 0);
        assert_int_equal(tm_catalog_index_has(other, &id), 1); /* not committed yet */
        assert_int_equal(tm_catalog_commit(f->cat), 0);
        assert_int_equal(tm_catalog_index_has(other, &id), 0);
        tm_catalog_free(other);

        /* concurrent first opens of a new file agree on one schema */
        snprintf(path, sizeof(path), "%s/race.db", f->dir);
        for (int i = 0; i < 4; i++) {
                o[i] = (struct opener){ .path = path };
                assert_int_equal(pthread_create(&th[i], NULL, open_main, &o[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                pthread_join(th[i], NULL);
                assert_true(o[i].r == 0 || o[i].r == 1);
                wins += o[i].r == 0;
        }
        assert_int_equal(wins, 1);
        assert_int_equal(tm_catalog_destroy(path), 0);
}

int main(void)
{
        const char *seed_env = getenv("TM_TEST_SEED");
        uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : (uint64_t)time(NULL);
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
                cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
                cmocka_unit_test_setup_teardown(test_index, setup, teardown),
                cmocka_unit_test_setup_teardown(test_packs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_blobs, setup, teardown),
                cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
                cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
                cmocka_unit_test_setup_teardown(test_persist_clear, setup, teardown),
                cmocka_unit_test_setup_teardown(test_destroy, setup, teardown),
                cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_header, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_page_size, setup, teardown),
                cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
                cmocka_unit_test_setup_teardown(test_corrupt_pages, setup, teardown),
                cmocka_unit_test_setup_teardown(test_wrong_schema, setup, teardown),
                cmocka_unit_test_setup_teardown(test_bulk, setup, teardown),
                cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
                cmocka_unit_test_setup_teardown(test_two_handles, setup, teardown),
        };

        if (!seed)
                seed = 1;
        printf("test_catalog: seed %" PRIu64 " (set TM_TEST_SEED to repeat)\n", seed);
        rng_state = seed;
        tm_log_set_level(TM_LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
