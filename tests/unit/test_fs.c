/* Unit tests for the filesystem logic (fs/): instant names and their
 * resolution, the node table's lookup counts and forget, history grouping,
 * the blob cache, and fs_do_*() over a real repository without a kernel. */
#include <pthread.h>
#include <sys/statvfs.h>

#include "fs.h"
#include "tm_test_util.h"

/* ---- instants ---- */

static void test_instant_parse(void **state)
{
        int64_t b, t;

        (void)state;
        t = tmt_time("2025-01-07T10:17:00Z");
        assert_int_equal(fs_instant_parse("@2025-01-07T10:17:00Z", &b), 0);
        assert_int_equal(b, t + TM_NSEC_PER_SEC - 1);
        assert_int_equal(fs_instant_parse("@2025-01-07T10:17", &b), 0);
        assert_int_equal(b, t + 60 * TM_NSEC_PER_SEC - 1);
        assert_int_equal(fs_instant_parse("@2025-01-07", &b), 0);
        assert_int_equal(b, tmt_time("2025-01-08T00:00:00Z") - 1);
        assert_int_equal(fs_instant_parse("@2025-01-07T12:17:00+02:00", &b), 0);
        assert_int_equal(b, t + TM_NSEC_PER_SEC - 1);
        assert_int_equal(fs_instant_parse("2025-01-07", &b), -ENOENT);
        assert_int_equal(fs_instant_parse("@", &b), -ENOENT);
        assert_int_equal(fs_instant_parse("@yesterday", &b), -ENOENT);
        assert_int_equal(fs_instant_parse("@2025-02-30", &b), -ENOENT);
        assert_int_equal(fs_instant_parse("@2025-01-07T25:00", &b), -ENOENT);
        assert_int_equal(fs_instant_parse(NULL, &b), -ENOENT);
}

static void test_instant_format(void **state)
{
        char out[32];

        (void)state;
        fs_instant_format(tmt_time("2025-01-07T10:00:00Z") + 999999999, out, sizeof(out));
        assert_string_equal(out, "@2025-01-07T10:00:00Z");
}

static void snap_set(struct tm_snapshot *s, const char *component, const char *when, int64_t frac,
                     uint8_t tag)
{
        memset(s, 0, sizeof(*s));
        s->component = (char *)component;
        s->time = tmt_time(when) + frac;
        s->id.b[0] = tag;
        s->tree.b[0] = (uint8_t)(tag + 100);
}

static void test_view_resolve(void **state)
{
        struct tm_snapshot a[5];
        struct fs_view *v = NULL;
        size_t idx[4];
        char name[32];
        tm_id id = { { 0 } };
        size_t i;

        (void)state;
        snap_set(&a[0], "plugins", "2025-01-07T06:00:00Z", 1000, 1);
        snap_set(&a[1], "db", "2025-01-07T06:00:00Z", 5000, 2); /* same second */
        snap_set(&a[2], "plugins", "2025-01-07T10:00:00Z", 0, 3);
        snap_set(&a[3], "plugins", "2025-01-07T12:00:00Z", 0, 4);
        snap_set(&a[4], "db", "2025-01-08T00:00:00Z", 0, 5);
        assert_int_equal(fs_view_new(a, 5, &v), 0);
        assert_int_equal(v->n_snaps, 5);
        assert_int_equal(v->n_instants, 4); /* 06:00 deduplicated */
        assert_int_equal(v->instants[0], tmt_time("2025-01-07T06:00:00Z"));
        fs_instant_format(v->instants[3], name, sizeof(name));
        assert_string_equal(name, "@2025-01-08T00:00:00Z");
        assert_int_equal(v->n_components, 2);
        assert_string_equal(v->components[0], "db");
        assert_string_equal(v->components[1], "plugins");
        assert_true(fs_view_has_component(v, "db"));
        assert_false(fs_view_has_component(v, "nope"));

        /* before every snapshot: nothing */
        assert_int_equal(fs_view_resolve(v, tmt_time("2025-01-07T05:59:59Z"), idx), 0);
        /* the listed instant covers its whole second (both 06:00 snapshots) */
        {
                int64_t b;

                assert_int_equal(fs_instant_parse("@2025-01-07T06:00:00Z", &b), 0);
                assert_int_equal(fs_view_resolve(v, b, idx), 2);
                assert_int_equal(idx[0], 1);
                assert_int_equal(idx[1], 0);
                /* an unlisted instant between two shows the earlier */
                assert_int_equal(fs_instant_parse("@2025-01-07T11:59", &b), 0);
                assert_int_equal(fs_view_resolve(v, b, idx), 2);
                assert_int_equal(idx[0], 1);
                assert_int_equal(idx[1], 2);
                /* a whole day: the latest of that day */
                assert_int_equal(fs_instant_parse("@2025-01-07", &b), 0);
                assert_int_equal(fs_view_resolve(v, b, idx), 2);
                assert_int_equal(idx[0], 1);
                assert_int_equal(idx[1], 3);
                assert_int_equal(fs_instant_parse("@2025-01-08", &b), 0);
                assert_int_equal(fs_view_resolve(v, b, idx), 2);
                assert_int_equal(idx[0], 4);
        }
        id.b[0] = 4;
        assert_int_equal(fs_view_find_id(v, &id, &i), 0);
        assert_int_equal(i, 3);
        id.b[0] = 9;
        assert_int_equal(fs_view_find_id(v, &id, &i), -ENOENT);
        fs_view_free(v);

        assert_int_equal(fs_view_new(NULL, 0, &v), 0);
        assert_int_equal(v->n_instants, 0);
        assert_int_equal(fs_view_resolve(v, INT64_MAX, idx), 0);
        fs_view_free(v);
}

/* ---- history ---- */

static void test_history_group(void **state)
{
        struct tm_content ca = { .size = 10 }, cb = { .size = 10 },
                          cc[2] = { { .size = 5 }, { .size = 5 } };
        struct tm_node a = { 0 }, b = { 0 }, c = { 0 };
        struct fs_hist_in in[6];
        size_t idx[6];
        int64_t t0 = tmt_time("2025-01-07T00:00:00Z");

        (void)state;
        ca.id.b[0] = 1;
        cb.id.b[0] = 2;
        cc[0].id.b[0] = 1;
        cc[1].id.b[0] = 3;
        a.n_content = 1;
        a.content = &ca;
        b.n_content = 1;
        b.content = &cb;
        c.n_content = 2;
        c.content = cc;
        /* A A B B A C, one hour apart: A, B, A, C */
        in[0] = (struct fs_hist_in){ t0, &a };
        in[1] = (struct fs_hist_in){ t0 + 3600 * TM_NSEC_PER_SEC, &a };
        in[2] = (struct fs_hist_in){ t0 + 7200 * TM_NSEC_PER_SEC, &b };
        in[3] = (struct fs_hist_in){ t0 + 10800 * TM_NSEC_PER_SEC, &b };
        in[4] = (struct fs_hist_in){ t0 + 14400 * TM_NSEC_PER_SEC, &a };
        in[5] = (struct fs_hist_in){ t0 + 18000 * TM_NSEC_PER_SEC, &c };
        assert_int_equal(fs_history_group(in, 6, idx), 4);
        assert_int_equal(idx[0], 0);
        assert_int_equal(idx[1], 2);
        assert_int_equal(idx[2], 4);
        assert_int_equal(idx[3], 5);
        /* two versions in the same second: the later keeps the name */
        in[1] = (struct fs_hist_in){ t0 + 500, &b };
        assert_int_equal(fs_history_group(in, 2, idx), 1);
        assert_int_equal(idx[0], 1);
        assert_int_equal(fs_history_group(in, 0, idx), 0);
}

/* ---- node table ---- */

static int reject(const struct fs_node *existing, const struct fs_node *cand)
{
        (void)existing;
        (void)cand;
        return 0;
}

static void test_nodes(void **state)
{
        struct fs_nodes *t = NULL;
        struct fs_node *n, *m, *x;
        fuse_ino_t ino, ino2;

        (void)state;
        assert_int_equal(fs_nodes_new(&t), 0);
        assert_int_equal(fs_nodes_count(t), 4);
        assert_int_equal(fs_nodes_get(t, FS_INO_ROOT, &n), 0);
        assert_int_equal(n->kind, FS_ROOT);
        fs_nodes_put(t, n);
        assert_int_equal(fs_nodes_get(t, 12345, &n), -ESTALE);

        /* first lookup inserts with nlookup 1 */
        assert_int_equal(fs_nodes_link(t, 1, "a", fs_node_new(FS_TREE), NULL, &n), 0);
        ino = n->ino;
        assert_true(ino >= FS_INO_FIRST);
        assert_int_equal(n->nlookup, 1);
        /* the same name again: the same inode, the candidate is freed */
        assert_int_equal(fs_nodes_link(t, 1, "a", fs_node_new(FS_TREE), NULL, &m), 0);
        assert_ptr_equal(m, n);
        assert_int_equal(n->nlookup, 2);
        assert_int_equal(fs_nodes_link(t, 1, "a", NULL, NULL, &m), 0);
        assert_int_equal(n->nlookup, 3);
        assert_int_equal(fs_nodes_link(t, 1, "zz", NULL, NULL, &m), -ENOENT);
        /* another parent is another entry */
        assert_int_equal(fs_nodes_link(t, 2, "a", fs_node_new(FS_TREE), NULL, &m), 0);
        assert_true(m->ino != ino);
        assert_int_equal(fs_nodes_count(t), 6);

        /* forget 2 of 3: still there */
        fs_nodes_forget(t, ino, 2);
        assert_int_equal(fs_nodes_get(t, ino, &x), 0);
        assert_int_equal(x->nlookup, 1);
        /* the last forget while a thread holds it: freed at the put */
        /* it returns what is left: the held node still counts */
        assert_int_equal(fs_nodes_forget(t, ino, 1), 6);
        assert_int_equal(fs_nodes_count(t), 6);
        fs_nodes_put(t, x);
        assert_int_equal(fs_nodes_count(t), 5);
        assert_int_equal(fs_nodes_get(t, ino, &x), -ESTALE);
        /* its name is free again: a new inode */
        assert_int_equal(fs_nodes_link(t, 1, "a", fs_node_new(FS_TREE), NULL, &n), 0);
        assert_true(n->ino > ino);

        /* a stale mapping is replaced; the old inode lives until forgotten */
        ino = n->ino;
        assert_int_equal(fs_nodes_link(t, 1, "a", fs_node_new(FS_INSTANT), reject, &m), 0);
        ino2 = m->ino;
        assert_true(ino2 != ino);
        assert_int_equal(fs_nodes_get(t, ino, &x), 0);
        fs_nodes_put(t, x);
        fs_nodes_forget(t, ino, 1);
        assert_int_equal(fs_nodes_get(t, ino, &x), -ESTALE);
        assert_int_equal(fs_nodes_link(t, 1, "a", NULL, NULL, &m), 0);
        assert_int_equal(m->ino, ino2);

        /* permanent nodes ignore forget; over-forget is clamped */
        fs_nodes_forget(t, FS_INO_ROOT, 100);
        assert_int_equal(fs_nodes_get(t, FS_INO_ROOT, &x), 0);
        fs_nodes_put(t, x);
        fs_nodes_forget(t, ino2, 100);
        assert_int_equal(fs_nodes_get(t, ino2, &x), -ESTALE);
        fs_nodes_forget(t, 999999, 1); /* unknown: logged, ignored */

        /* many nodes: the table grows and every one is still found */
        for (int i = 0; i < 5000; i++) {
                char name[16];

                snprintf(name, sizeof(name), "n%d", i);
                assert_int_equal(fs_nodes_link(t, 7, name, fs_node_new(FS_TREE), NULL, &n), 0);
        }
        for (int i = 0; i < 5000; i++) {
                char name[16];

                snprintf(name, sizeof(name), "n%d", i);
                assert_int_equal(fs_nodes_link(t, 7, name, NULL, NULL, &n), 0);
                assert_int_equal(n->nlookup, 2);
                assert_int_equal(fs_nodes_get(t, n->ino, &x), 0);
                assert_ptr_equal(x, n);
                fs_nodes_put(t, x);
        }
        fs_nodes_free(t);
}

/* ---- blob cache ---- */

struct fake {
        pthread_mutex_t lock;
        int loads[256];
        int delay_us;
};

/* Blob k (first id byte) is 1000 bytes of k; k == 66 fails verification,
 * k == 77 fails with EIO. */
static int fake_load(void *userdata, const tm_id *id, tm_buf *ret)
{
        struct fake *f = userdata;
        uint8_t k = id->b[0];
        uint8_t data[1000];

        pthread_mutex_lock(&f->lock);
        f->loads[k]++;
        pthread_mutex_unlock(&f->lock);
        if (f->delay_us)
                usleep((useconds_t)f->delay_us);
        if (k == 66)
                return -EBADMSG;
        if (k == 77)
                return -EIO;
        memset(data, k, sizeof(data));
        return tm_buf_append(ret, data, sizeof(data));
}

static tm_id mkid(uint8_t k)
{
        tm_id id = { { 0 } };

        id.b[0] = k;
        id.b[9] = 0x5a;
        return id;
}

struct getter {
        struct fs_cache *c;
        tm_id id;
        int r;
        uint8_t first;
};

static void *get_thread(void *arg)
{
        struct getter *g = arg;
        struct fs_blob *b = NULL;

        g->r = fs_cache_get(g->c, &g->id, &b);
        if (g->r == 0) {
                g->first = b->data.data[0];
                fs_cache_put(g->c, b);
        }
        return NULL;
}

static void test_cache(void **state)
{
        struct fake f = { .lock = PTHREAD_MUTEX_INITIALIZER };
        struct fs_cache *c = NULL;
        struct fs_blob *b = NULL, *b2 = NULL;
        struct getter g[6];
        pthread_t th[6];
        size_t bytes, entries;
        uint64_t loads;
        tm_id id;

        (void)state;
        /* the limit counts memory: each 1000-byte blob occupies 1001 bytes
         * (its buffer keeps a terminating byte) */
        assert_int_equal(fs_cache_new(fake_load, &f, 3003, 2, &c), 0);
        id = mkid(1);
        assert_int_equal(fs_cache_get(c, &id, &b), 0);
        assert_int_equal(b->data.len, 1000);
        assert_int_equal(b->data.data[999], 1);
        fs_cache_put(c, b);
        assert_int_equal(fs_cache_get(c, &id, &b), 0); /* cached */
        fs_cache_put(c, b);
        assert_int_equal(f.loads[1], 1);

        /* LRU: 1 and 2 and 3 fit; touching 1 makes 2 the victim of 4 */
        id = mkid(2);
        assert_int_equal(fs_cache_get(c, &id, &b), 0);
        fs_cache_put(c, b);
        id = mkid(3);
        assert_int_equal(fs_cache_get(c, &id, &b), 0);
        fs_cache_put(c, b);
        id = mkid(1);
        assert_int_equal(fs_cache_get(c, &id, &b), 0);
        fs_cache_put(c, b);
        id = mkid(4);
        assert_int_equal(fs_cache_get(c, &id, &b), 0);
        fs_cache_put(c, b);
        fs_cache_stats(c, &bytes, &entries, &loads);
        assert_int_equal(bytes, 3003);
        assert_int_equal(entries, 3);
        id = mkid(1);
        assert_int_equal(fs_cache_get(c, &id, &b), 0);
        fs_cache_put(c, b);
        assert_int_equal(f.loads[1], 1);
        id = mkid(2);
        assert_int_equal(fs_cache_get(c, &id, &b), 0);
        fs_cache_put(c, b);
        assert_int_equal(f.loads[2], 2);

        /* a held blob is never evicted, even over the limit */
        id = mkid(5);
        assert_int_equal(fs_cache_get(c, &id, &b), 0);
        for (uint8_t k = 10; k < 14; k++) {
                id = mkid(k);
                assert_int_equal(fs_cache_get(c, &id, &b2), 0);
                fs_cache_put(c, b2);
        }
        assert_int_equal(b->data.data[0], 5);
        id = mkid(5);
        assert_int_equal(fs_cache_get(c, &id, &b2), 0);
        assert_ptr_equal(b, b2);
        fs_cache_put(c, b2);
        fs_cache_put(c, b);
        assert_int_equal(f.loads[5], 1);

        /* verification failure is remembered; other errors are retried */
        id = mkid(66);
        assert_int_equal(fs_cache_get(c, &id, &b), -EBADMSG);
        assert_int_equal(fs_cache_get(c, &id, &b), -EBADMSG);
        assert_int_equal(f.loads[66], 1);
        id = mkid(77);
        assert_int_equal(fs_cache_get(c, &id, &b), -EIO);
        assert_int_equal(fs_cache_get(c, &id, &b), -EIO);
        assert_int_equal(f.loads[77], 2);

        /* six threads asking together load it once */
        f.delay_us = 50000;
        for (int i = 0; i < 6; i++) {
                g[i] = (struct getter){ .c = c, .id = mkid(40) };
                assert_int_equal(pthread_create(&th[i], NULL, get_thread, &g[i]), 0);
        }
        for (int i = 0; i < 6; i++) {
                assert_int_equal(pthread_join(th[i], NULL), 0);
                assert_int_equal(g[i].r, 0);
                assert_int_equal(g[i].first, 40);
        }
        assert_int_equal(f.loads[40], 1);

        /* read-ahead loads in the background */
        f.delay_us = 0;
        id = mkid(50);
        fs_cache_prefetch(c, &id);
        for (int i = 0; i < 500; i++) {
                pthread_mutex_lock(&f.lock);
                loads = (uint64_t)f.loads[50];
                pthread_mutex_unlock(&f.lock);
                if (loads)
                        break;
                usleep(2000);
        }
        assert_int_equal(loads, 1);
        assert_int_equal(fs_cache_get(c, &id, &b), 0);
        fs_cache_put(c, b);
        assert_int_equal(f.loads[50], 1);
        fs_cache_free(c);
        fs_cache_free(NULL);
}

/* ---- the operations over a real repository ---- */

static void backup_at(tm_repo *repo, const char *path, const char *component, const char *when,
                      struct tm_snapshot *ret)
{
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        const char *paths[1] = { path };

        o.component = component;
        o.paths = paths;
        o.n_paths = 1;
        o.threads = 2;
        o.time = tmt_time(when);
        assert_int_equal(tm_backup_run(repo, &o, ret), 0);
}

static void lookup_ok(struct fs *fs, fuse_ino_t parent, const char *name,
                      struct fuse_entry_param *e)
{
        int r = fs_do_lookup(fs, parent, name, e);

        if (r != 0)
                fprintf(stderr, "lookup of '%s' in %llu: %s\n", name, (unsigned long long)parent,
                        strerror(-r));
        assert_int_equal(r, 0);
        assert_true(e->ino != 0);
}

static fuse_ino_t path_ino(struct fs *fs, const char *path)
{
        char copy[1024], *save = NULL;
        fuse_ino_t ino = FS_INO_ROOT;

        snprintf(copy, sizeof(copy), "%s", path);
        /* "latest" is a symlink the kernel would follow: follow it here */
        if (strncmp(path, "latest/", 7) == 0) {
                char *target = NULL;

                assert_int_equal(fs_do_readlink(fs, FS_INO_LATEST, &target), 0);
                snprintf(copy, sizeof(copy), "%s/%s", target, path + 7);
                free(target);
        }
        for (char *tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
                struct fuse_entry_param e;

                lookup_ok(fs, ino, tok, &e);
                ino = e.ino;
        }
        return ino;
}

static void read_all(struct fs *fs, fuse_ino_t ino, size_t chunk, tm_buf *out)
{
        struct fs_file *f = NULL;
        uint64_t off = 0;

        assert_int_equal(fs_do_open(fs, ino, O_RDONLY, &f), 0);
        for (;;) {
                size_t before = out->len;

                assert_int_equal(fs_do_read(fs, f, off, chunk, out), 0);
                if (out->len == before)
                        break;
                off += out->len - before;
        }
        fs_do_release(fs, f);
}

static int dir_has(struct fs *fs, fuse_ino_t ino, const char *name)
{
        struct fs_dir *d = NULL;
        int found = 0;

        assert_int_equal(fs_do_opendir(fs, ino, &d), 0);
        for (size_t i = 0; i < d->n; i++)
                found |= strcmp(d->ents[i].name, name) == 0;
        fs_dir_free(d);
        return found;
}

static void test_fs_repo(void **state)
{
        struct tmt_fix *fx = tmt_fix_new();
        uint64_t seed = tmt_seed();
        struct tm_snapshot s1 = { 0 }, s2 = { 0 }, s3 = { 0 };
        struct fs_cache *cache = NULL;
        struct fuse_entry_param e;
        struct fs fs;
        struct fs_dir *d = NULL;
        struct fs_file *file = NULL;
        struct stat st;
        tm_buf a = TM_BUF_INIT(0), b = TM_BUF_INIT(0);
        char p[PATH_MAX], dirbuf[4096], hex[TM_ID_HEX_LEN + 1], *target = NULL, xv[16];
        size_t len, n0;
        double ttl;
        fuse_ino_t ino, dino;

        (void)state;
        tmt_path(p, sizeof(p), fx->src, "a.txt");
        tmt_write(p, "one\n", 4);
        assert_int_equal(setxattr(p, "user.tm", "v1", 2, 0) == 0 || errno == ENOTSUP, 1);
        tmt_path(p, sizeof(p), fx->src, "big.bin");
        tmt_write_rand(p, &seed, TMT_BIG_SIZE);
        tmt_path(p, sizeof(p), fx->src, "link");
        assert_int_equal(symlink("a.txt", p), 0);
        tmt_path(p, sizeof(p), fx->src, "h1");
        tmt_write(p, "hard\n", 5);
        {
                char q[PATH_MAX];

                tmt_path(q, sizeof(q), fx->src, "h2");
                assert_int_equal(link(p, q), 0);
        }
        backup_at(fx->r, fx->src, "files", "2025-01-07T06:00:00Z", &s1);
        tmt_path(p, sizeof(p), fx->src, "a.txt");
        tmt_write(p, "two\n", 4);
        backup_at(fx->r, fx->src, "files", "2025-01-07T10:00:00Z", &s2);
        backup_at(fx->r, fx->src, "other", "2025-01-07T08:00:00Z", &s3);

        assert_int_equal(fs_cache_new(fs_repo_blob_loader, fx->r, 1 << 20, 2, &cache), 0);
        assert_int_equal(fs_init(&fs, fx->r, cache), 0);
        n0 = fs_nodes_count(fs.nodes);
        assert_int_equal(n0, 4);

        /* root listing: latest, the fixed dirs, three recovery points */
        assert_int_equal(fs_do_opendir(&fs, FS_INO_ROOT, &d), 0);
        assert_int_equal(d->n, 2 + 3 + 3);
        assert_string_equal(d->ents[2].name, "latest");
        assert_string_equal(d->ents[5].name, "@2025-01-07T06:00:00Z");
        assert_string_equal(d->ents[7].name, "@2025-01-07T10:00:00Z");
        assert_int_equal(fs_do_readdir(&fs, NULL, d, 0, dirbuf, sizeof(dirbuf), &len), 0);
        assert_true(len > 0);
        fs_dir_free(d);
        assert_int_equal(fs_do_readlink(&fs, FS_INO_LATEST, &target), 0);
        assert_string_equal(target, "@2025-01-07T10:00:00Z");
        free(target);

        /* listed instant, unlisted instant, before the first, invalid */
        ino = path_ino(&fs, "@2025-01-07T06:00:00Z");
        assert_true(dir_has(&fs, ino, "files"));
        assert_false(dir_has(&fs, ino, "other"));
        ino = path_ino(&fs, "@2025-01-07T09:30");
        assert_true(dir_has(&fs, ino, "files"));
        assert_true(dir_has(&fs, ino, "other"));
        ino = path_ino(&fs, "@2025-01-07T09:30/files/a.txt");
        read_all(&fs, ino, 3, &a);
        assert_int_equal(a.len, 4);
        assert_memory_equal(a.data, "one\n", 4);
        assert_int_equal(fs_do_lookup(&fs, FS_INO_ROOT, "@2025-01-06", &e), -ENOENT);
        assert_int_equal(fs_do_lookup(&fs, FS_INO_ROOT, "@nonsense", &e), -ENOENT);
        assert_int_equal(fs_do_lookup(&fs, FS_INO_ROOT, "nonsense", &e), -ENOENT);
        ino = path_ino(&fs, "@2025-01-07/files/a.txt");
        tm_buf_clear(&a);
        read_all(&fs, ino, 4096, &a);
        assert_memory_equal(a.data, "two\n", 4);

        /* readdirplus looks entries up (+1 each) and gives back the one
         * that does not fit */
        dino = path_ino(&fs, "@2025-01-07T10:00:00Z/files");
        assert_int_equal(fs_do_opendir(&fs, dino, &d), 0);
        assert_int_equal(d->n, 7); /* . .. a.txt big.bin h1 h2 link */
        n0 = fs_nodes_count(fs.nodes);
        assert_int_equal(fs_do_readdirplus(&fs, NULL, d, 2, dirbuf, 40, &len), 0);
        assert_int_equal(len, 0);
        assert_int_equal(fs_nodes_count(fs.nodes), n0);
        assert_int_equal(fs_do_readdirplus(&fs, NULL, d, 0, dirbuf, sizeof(dirbuf), &len), 0);
        assert_true(len > 0);
        assert_int_equal(fs_nodes_count(fs.nodes), n0 + 4); /* h1 and h2: one inode */
        {
                struct fuse_entry_param e2;
                struct fs_node *nd;

                /* a second lookup finds the same inode with two lookups */
                lookup_ok(&fs, dino, "big.bin", &e2);
                assert_int_equal(fs_nodes_get(fs.nodes, e2.ino, &nd), 0);
                assert_int_equal(nd->nlookup, 2);
                fs_nodes_put(fs.nodes, nd);
                fs_do_forget(&fs, e2.ino, 2);
                assert_int_equal(fs_nodes_count(fs.nodes), n0 + 3);
        }
        /* hard links: one inode with the original link count */
        {
                struct fuse_entry_param e1, e2;

                lookup_ok(&fs, dino, "h1", &e1);
                lookup_ok(&fs, dino, "h2", &e2);
                assert_int_equal(e1.ino, e2.ino);
                assert_int_equal(e1.attr.st_nlink, 2);
                lookup_ok(&fs, path_ino(&fs, "@2025-01-07T06:00:00Z/files"), "h1", &e2);
                assert_true(e1.ino != e2.ino); /* another snapshot tree */
        }
        fs_dir_free(d);

        /* metadata */
        assert_int_equal(fs_do_getattr(&fs, ino, &st, &ttl), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, 0644);
        assert_int_equal(st.st_size, 4);
        assert_int_equal(st.st_uid, getuid());
        assert_true(ttl > 1);
        if (fs_do_getxattr(&fs, path_ino(&fs, "latest/files/a.txt"), "user.tm", xv, sizeof(xv),
                           &len) == 0) {
                assert_int_equal(len, 2);
                assert_memory_equal(xv, "v1", 2);
                assert_int_equal(fs_do_getxattr(&fs, path_ino(&fs, "latest/files/a.txt"), "user.tm",
                                                xv, 1, &len),
                                 -ERANGE);
                assert_int_equal(fs_do_listxattr(&fs, path_ino(&fs, "latest/files/a.txt"), xv,
                                                 sizeof(xv), &len),
                                 0);
                assert_int_equal(len, 8);
                assert_string_equal(xv, "user.tm");
        }
        assert_int_equal(fs_do_getxattr(&fs, ino, "user.none", xv, sizeof(xv), &len), -ENODATA);
        ino = path_ino(&fs, "latest/files/link");
        assert_int_equal(fs_do_readlink(&fs, ino, &target), 0);
        assert_string_equal(target, "a.txt");
        free(target);
        /* a miss inside a snapshot is a cacheable negative entry */
        assert_int_equal(fs_do_lookup(&fs, path_ino(&fs, "latest/files"), "nope", &e), -ENOENT);
        assert_true(e.entry_timeout > 1);

        /* multi-blob file read in odd pieces equals the source */
        tmt_path(p, sizeof(p), fx->src, "big.bin");
        tmt_read(p, &b);
        tm_buf_clear(&a);
        read_all(&fs, path_ino(&fs, "latest/files/big.bin"), 12345, &a);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, b.len);
        /* random offsets */
        assert_int_equal(fs_do_open(&fs, path_ino(&fs, "latest/files/big.bin"), O_RDONLY, &file),
                         0);
        for (int i = 0; i < 50; i++) {
                uint64_t off = tmt_rand(&seed) % (b.len + 10), sz = tmt_rand(&seed) % 200000;

                tm_buf_clear(&a);
                assert_int_equal(fs_do_read(&fs, file, off, (size_t)sz, &a), 0);
                if (off >= b.len)
                        assert_int_equal(a.len, 0);
                else
                        assert_int_equal(a.len, TM_MIN(sz, b.len - off));
                if (a.len)
                        assert_memory_equal(a.data, b.data + off, a.len);
        }
        fs_do_release(&fs, file);
        /* read-only */
        assert_int_equal(fs_do_open(&fs, path_ino(&fs, "latest/files/a.txt"), O_RDWR, &file),
                         -EROFS);
        assert_int_equal(fs_do_open(&fs, path_ino(&fs, "latest/files/a.txt"), O_WRONLY, &file),
                         -EROFS);

        /* .snapshots/<id> */
        tm_id_hex(&s1.id, hex);
        snprintf(p, sizeof(p), ".snapshots/%s/a.txt", hex);
        tm_buf_clear(&a);
        read_all(&fs, path_ino(&fs, p), 4096, &a);
        assert_memory_equal(a.data, "one\n", 4);
        assert_true(dir_has(&fs, FS_INO_SNAPDIR, hex));
        assert_int_equal(fs_do_lookup(&fs, FS_INO_SNAPDIR, "00", &e), -ENOENT);

        /* .history: two versions of a.txt, one of big.bin */
        assert_true(dir_has(&fs, FS_INO_HISTDIR, "files"));
        assert_true(dir_has(&fs, path_ino(&fs, ".history/files"), "a.txt"));
        ino = path_ino(&fs, ".history/files/a.txt");
        assert_int_equal(fs_do_opendir(&fs, ino, &d), 0);
        assert_int_equal(d->n, 4);
        assert_string_equal(d->ents[2].name, "@2025-01-07T06:00:00Z");
        assert_string_equal(d->ents[3].name, "@2025-01-07T10:00:00Z");
        fs_dir_free(d);
        tm_buf_clear(&a);
        read_all(&fs, path_ino(&fs, ".history/files/a.txt/@2025-01-07T06:00:00Z"), 4096, &a);
        assert_memory_equal(a.data, "one\n", 4);
        ino = path_ino(&fs, ".history/files/big.bin");
        assert_int_equal(fs_do_opendir(&fs, ino, &d), 0);
        assert_int_equal(d->n, 3);
        fs_dir_free(d);
        assert_int_equal(fs_do_lookup(&fs, path_ino(&fs, ".history/files"), "nope", &e), -ENOENT);

        /* statfs, the root, bad inodes */
        {
                struct statvfs sv;

                assert_int_equal(fs_do_statfs(&fs, &sv), 0);
                assert_true(sv.f_blocks > 0);
                assert_int_equal(sv.f_bfree, 0);
                assert_int_equal(sv.f_files, 3);
                assert_true(sv.f_flag & ST_RDONLY);
        }
        assert_int_equal(fs_do_getattr(&fs, FS_INO_ROOT, &st, &ttl), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_true(ttl <= 1);
        assert_int_equal(fs_do_getattr(&fs, 424242, &st, &ttl), -ESTALE);
        assert_int_equal(fs_do_readlink(&fs, FS_INO_ROOT, &target), -EINVAL);
        assert_int_equal(fs_do_opendir(&fs, path_ino(&fs, "latest/files/a.txt"), &d), -ENOTDIR);
        assert_int_equal(fs_do_open(&fs, path_ino(&fs, "latest/files"), O_RDONLY, &file), -EISDIR);

        /* lookups without forgets keep their nodes (freed with the table) */
        assert_true(fs_nodes_count(fs.nodes) > n0);
        fs_dispose(&fs);
        fs_cache_free(cache);
        tm_buf_dispose(&a);
        tm_buf_dispose(&b);
        tm_snapshot_dispose(&s1);
        tm_snapshot_dispose(&s2);
        tm_snapshot_dispose(&s3);
        tmt_fix_free(fx);
}

/* A corrupted data pack: EIO for the file using it, never its bytes. */
static void test_fs_corrupt(void **state)
{
        struct tmt_fix *fx = tmt_fix_new();
        uint64_t seed = tmt_seed();
        struct tm_snapshot s = { 0 };
        struct tm_pack_entry pe;
        struct fs_cache *cache = NULL;
        struct fs_file *file = NULL;
        struct fs fs;
        struct tm_node nd = { 0 };
        tm_buf a = TM_BUF_INIT(0);
        char p[PATH_MAX];

        (void)state;
        tmt_path(p, sizeof(p), fx->src, "big.bin");
        tmt_write_rand(p, &seed, TMT_BIG_SIZE);
        tmt_path(p, sizeof(p), fx->src, "small.txt");
        tmt_write(p, "fine\n", 5);
        backup_at(fx->r, fx->src, "files", "2025-01-07T06:00:00Z", &s);
        assert_int_equal(tm_repo_lookup_path(fx->r, &s.tree, "big.bin", &nd), 0);
        assert_true(nd.n_content > 1);
        tmt_blob_pack_path(fx, &nd.content[1].id, p, sizeof(p), &pe);
        tmt_flip_byte(p, pe.offset + pe.length / 2);
        tmt_fix_reopen(fx);

        assert_int_equal(fs_cache_new(fs_repo_blob_loader, fx->r, 1 << 20, 2, &cache), 0);
        assert_int_equal(fs_init(&fs, fx->r, cache), 0);
        assert_int_equal(fs_do_open(&fs, path_ino(&fs, "latest/files/big.bin"), O_RDONLY, &file),
                         0);
        /* the first blob reads; a read touching the second fails, twice */
        assert_int_equal(fs_do_read(&fs, file, 0, nd.content[0].size, &a), 0);
        assert_int_equal(a.len, nd.content[0].size);
        tm_buf_clear(&a);
        assert_int_equal(fs_do_read(&fs, file, nd.content[0].size, 100, &a), -EIO);
        assert_int_equal(fs_do_read(&fs, file, 0, TMT_BIG_SIZE, &a), -EIO);
        fs_do_release(&fs, file);
        tm_buf_clear(&a);
        read_all(&fs, path_ino(&fs, "latest/files/small.txt"), 4096, &a);
        assert_memory_equal(a.data, "fine\n", 5);

        fs_dispose(&fs);
        fs_cache_free(cache);
        tm_node_dispose(&nd);
        tm_buf_dispose(&a);
        tm_snapshot_dispose(&s);
        tmt_fix_free(fx);
}

/* A PostgreSQL base backup under @T is a PGDATA that recovers to T: its
 * postgresql.auto.conf gets the recovery settings (a made-up blob read
 * like any other) and recovery.signal appears; .snapshots shows it as it
 * is. */
static void test_fs_pg(void **state)
{
        struct tmt_fix *fx = tmt_fix_new();
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        struct tm_snapshot s = { 0 }, w = { 0 };
        struct fs_cache *cache = NULL;
        struct fs fs;
        struct stat st;
        tm_buf a = TM_BUF_INIT(0);
        const char *paths[1] = { NULL };
        char p[PATH_MAX], hex[TM_ID_HEX_LEN + 1], path[256];
        double ttl;
        tm_id id1, id2;

        (void)state;
        tmt_path(p, sizeof(p), fx->src, "postgresql.auto.conf");
        tmt_write(p, "# orig\n", 7);
        tmt_path(p, sizeof(p), fx->src, "global");
        assert_int_equal(mkdir(p, 0700), 0);
        paths[0] = fx->src;
        o.component = "database";
        o.paths = paths;
        o.n_paths = 1;
        o.time = tmt_time("2025-01-07T10:00:00Z");
        o.extra_json = "{\"postgres\":{\"start_lsn\":\"0/2000028\",\"timeline\":1,"
                       "\"wal_segment_size\":16777216}}";
        assert_int_equal(tm_backup_run(fx->r, &o, &s), 0);
        /* the WAL after it (a file of the archive before commit times were
         * indexed: its archive time bounds the window) */
        w.time = tmt_time("2025-01-07T10:01:00Z");
        w.host = strdup("h");
        w.username = strdup("u");
        w.component = strdup("database-wal");
        w.strategy = strdup("continuous");
        assert_int_equal(tm_snapshot_add_tag(&w, "000000010000000000000002"), 0);
        assert_int_equal(tm_repo_snapshot_save(fx->r, &w), 0);

        assert_int_equal(fs_cache_new(fs_load_blob, &fs, 1 << 20, 2, &cache), 0);
        assert_int_equal(fs_init(&fs, fx->r, cache), 0);
        fs.pg_exe = strdup("/usr/bin/tidemark");
        fs.pg_repo = strdup("/srv/repo");
        assert_non_null(fs.pg_exe);
        assert_non_null(fs.pg_repo);
        assert_int_equal(fs_do_getattr(&fs, path_ino(&fs, "@2025-01-07T10:00:30Z/database"), &st,
                                       &ttl),
                         0);
        assert_int_equal(st.st_mode & 07777, 0700);
        assert_int_equal(st.st_uid, geteuid()); /* global/'s owner */
        assert_int_equal(fs_do_getattr(&fs,
                                       path_ino(&fs, "@2025-01-07T10:00:30Z/database/recovery.signal"),
                                       &st, &ttl),
                         0);
        assert_true(S_ISREG(st.st_mode) && st.st_size == 0);
        read_all(&fs, path_ino(&fs, "@2025-01-07T10:00:30Z/database/postgresql.auto.conf"), 4096,
                 &a);
        assert_true(a.len > 7 && memcmp(a.data, "# orig\n", 7) == 0);
        assert_int_equal(tm_buf_append(&a, "", 1), 0);
        assert_non_null(strstr((const char *)a.data,
                               "restore_command = '''/usr/bin/tidemark'' ''-q'' ''-r'' "
                               "''/srv/repo'' ''--component'' ''database'' wal-fetch %f %p'"));
        assert_non_null(strstr((const char *)a.data, "recovery_target_timeline = 'latest'"));
        /* the base backup itself, as it is */
        tm_id_hex(&s.id, hex);
        snprintf(path, sizeof(path), ".snapshots/%s/postgresql.auto.conf", hex);
        tm_buf_clear(&a);
        read_all(&fs, path_ino(&fs, path), 4096, &a);
        assert_int_equal(a.len, 7);

        /* made-up blobs: one id per content, unknown ids are not theirs */
        assert_int_equal(fs_synth_add(&fs, "x", 1, &id1), 0);
        assert_int_equal(fs_synth_add(&fs, "x", 1, &id2), 0);
        assert_int_equal(tm_id_cmp(&id1, &id2), 0);
        assert_int_equal(fs_synth_add(&fs, "y", 1, &id2), 0);
        assert_int_not_equal(tm_id_cmp(&id1, &id2), 0);
        tm_buf_clear(&a);
        assert_int_equal(fs_synth_get(&fs, &id1, &a), 0);
        assert_true(a.len == 1 && a.data[0] == 'x');
        assert_int_equal(fs_synth_get(&fs, &s.id, &a), -ENOENT);

        fs_dispose(&fs);
        fs_cache_free(cache);
        tm_buf_dispose(&a);
        tm_snapshot_dispose(&s);
        tm_snapshot_dispose(&w);
        tmt_fix_free(fx);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_instant_parse), cmocka_unit_test(test_instant_format),
                cmocka_unit_test(test_view_resolve),  cmocka_unit_test(test_history_group),
                cmocka_unit_test(test_nodes),         cmocka_unit_test(test_cache),
                cmocka_unit_test(test_fs_repo),       cmocka_unit_test(test_fs_corrupt),
                cmocka_unit_test(test_fs_pg),
        };

        tm_log_set_level(TM_LOG_ERR);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
