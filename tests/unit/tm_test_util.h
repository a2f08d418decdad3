#pragma once
/*
 * Shared helpers for the unit tests of the repository operations (repo,
 * backup, restore, check, prune). Header-only, static inline only, so each
 * test binary takes what it uses and nothing else links against it.
 *
 * Randomness: tmt_seed() reads TM_TEST_SEED (or derives one from the clock),
 * prints it, and every generator here is a splitmix64 stream from it, so a
 * failing run can be replayed exactly.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <tidemark/log.h>
#include <tidemark/ops.h>
#include <tidemark/repo.h>
#include <tidemark/time.h>

/* Small chunker parameters keep multi-chunk files small and the tests fast. */
#define TMT_CHUNK_MIN 4096u
#define TMT_CHUNK_AVG 16384u
#define TMT_CHUNK_MAX 65536u
/* The generated tree's large file: several chunks at the parameters above. */
#define TMT_BIG_SIZE (5u * TMT_CHUNK_MAX + 1234u)
#define TMT_PASS     "correct horse battery staple"

/* ---- randomness ---- */

static inline uint64_t tmt_seed(void)
{
        const char *env = getenv("TM_TEST_SEED");
        uint64_t seed;

        if (env && *env) {
                seed = strtoull(env, NULL, 0);
        } else {
                struct timespec ts;

                clock_gettime(CLOCK_REALTIME, &ts);
                seed = (uint64_t)ts.tv_sec * 1000000007ULL ^ (uint64_t)ts.tv_nsec ^
                       ((uint64_t)getpid() << 32);
        }
        fprintf(stderr, "test seed: TM_TEST_SEED=%" PRIu64 "\n", seed);
        return seed;
}

/* splitmix64 */
static inline uint64_t tmt_rand(uint64_t *s)
{
        uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static inline void tmt_fill(uint64_t *s, void *p, size_t n)
{
        uint8_t *b = p;

        for (size_t i = 0; i < n; i += 8) {
                uint64_t v = tmt_rand(s);

                memcpy(b + i, &v, n - i < 8 ? n - i : 8);
        }
}

/* ---- files ---- */

static inline char *tmt_mkdtemp(void)
{
        char tmpl[] = "/tmp/tidemark-test-XXXXXX";
        char *d = mkdtemp(tmpl);

        assert_non_null(d);
        d = strdup(d);
        assert_non_null(d);
        return d;
}

static inline int tmt_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* rm -rf; never follows symlinks. NULL is a no-op. */
static inline void tmt_rm_rf(const char *path)
{
        if (path)
                nftw(path, tmt_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void tmt_path(char *out, size_t n, const char *a, const char *b)
{
        int k = snprintf(out, n, "%s/%s", a, b);

        assert_true(k > 0 && (size_t)k < n);
}

static inline void tmt_write(const char *path, const void *p, size_t n)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        assert_true(fd >= 0);
        assert_int_equal(write(fd, p, n), (ssize_t)n);
        assert_int_equal(close(fd), 0);
}

static inline void tmt_write_rand(const char *path, uint64_t *s, size_t n)
{
        uint8_t *p = malloc(n ? n : 1);

        assert_non_null(p);
        tmt_fill(s, p, n);
        tmt_write(path, p, n);
        free(p);
}

static inline void tmt_mkdir(const char *path)
{
        assert_int_equal(mkdir(path, 0755), 0);
}

/* Read a whole file into b (replaced). */
static inline void tmt_read(const char *path, tm_buf *b)
{
        tm_buf_clear(b);
        assert_int_equal(tm_file_read_all(path, 64u * 1024 * 1024, b), 0);
}

/* Two files have the same bytes. */
static inline void tmt_assert_same_bytes(const char *x, const char *y)
{
        tm_buf a = TM_BUF_INIT(0), b = TM_BUF_INIT(0);

        tmt_read(x, &a);
        tmt_read(y, &b);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        tm_buf_dispose(&a);
        tm_buf_dispose(&b);
}

/* Flip one byte of a file in place (XOR 0x01). */
static inline void tmt_flip_byte(const char *path, uint64_t off)
{
        int fd = open(path, O_RDWR | O_CLOEXEC);
        uint8_t c;

        assert_true(fd >= 0);
        assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
        c ^= 0x01;
        assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
        assert_int_equal(close(fd), 0);
}

static inline void tmt_set_mtime(const char *path, int64_t ns)
{
        struct timespec ts[2] = { { ns / TM_NSEC_PER_SEC, ns % TM_NSEC_PER_SEC },
                                  { ns / TM_NSEC_PER_SEC, ns % TM_NSEC_PER_SEC } };

        assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static inline int tmt_name_cmp(const void *x, const void *y)
{
        return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Sorted entry names of a directory (without . and ..); free with tmt_names_free. */
static inline char **tmt_names(const char *dir, size_t *ret_n)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        char **names = NULL;
        size_t n = 0, cap = 0;

        assert_non_null(d);
        while ((de = readdir(d))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (n == cap) {
                        cap = cap ? cap * 2 : 16;
                        names = realloc(names, cap * sizeof(*names));
                        assert_non_null(names);
                }
                names[n] = strdup(de->d_name);
                assert_non_null(names[n]);
                n++;
        }
        closedir(d);
        if (n)
                qsort(names, n, sizeof(*names), tmt_name_cmp);
        *ret_n = n;
        return names;
}

static inline void tmt_names_free(char **names, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

static inline void tmt_listing_rec(const char *dir, const char *rel, tm_buf *out)
{
        size_t n = 0;
        char **names = tmt_names(dir, &n);

        for (size_t i = 0; i < n; i++) {
                char p[PATH_MAX], r[PATH_MAX];
                struct stat st;

                tmt_path(p, sizeof(p), dir, names[i]);
                snprintf(r, sizeof(r), "%s%s%s", rel, *rel ? "/" : "", names[i]);
                assert_int_equal(lstat(p, &st), 0);
                assert_int_equal(tm_buf_printf(out, "%s %o %lld %lld.%09ld\n", r,
                                               (unsigned)st.st_mode, (long long)st.st_size,
                                               (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec),
                                 0);
                if (S_ISDIR(st.st_mode))
                        tmt_listing_rec(p, r, out);
        }
        tmt_names_free(names, n);
}

/* A deterministic listing (path, mode, size, mtime) of everything under dir:
 * two equal listings mean nothing was written in between. */
static inline void tmt_listing(const char *dir, tm_buf *out)
{
        tm_buf_clear(out);
        assert_int_equal(tm_buf_append(out, "", 0), 0);
        tmt_listing_rec(dir, "", out);
        assert_int_equal(tm_buf_append(out, "", 1), 0); /* NUL for string compares */
}

/* Total bytes of the regular files under dir. */
static inline uint64_t tmt_du(const char *dir)
{
        size_t n = 0;
        char **names = tmt_names(dir, &n);
        uint64_t total = 0;

        for (size_t i = 0; i < n; i++) {
                char p[PATH_MAX];
                struct stat st;

                tmt_path(p, sizeof(p), dir, names[i]);
                assert_int_equal(lstat(p, &st), 0);
                if (S_ISDIR(st.st_mode))
                        total += tmt_du(p);
                else if (S_ISREG(st.st_mode))
                        total += (uint64_t)st.st_size;
        }
        tmt_names_free(names, n);
        return total;
}

/* Number of regular files under dir (recursively). */
static inline size_t tmt_count_files(const char *dir)
{
        size_t n = 0, count = 0;
        char **names = tmt_names(dir, &n);

        for (size_t i = 0; i < n; i++) {
                char p[PATH_MAX];
                struct stat st;

                tmt_path(p, sizeof(p), dir, names[i]);
                assert_int_equal(lstat(p, &st), 0);
                if (S_ISDIR(st.st_mode))
                        count += tmt_count_files(p);
                else if (S_ISREG(st.st_mode))
                        count++;
        }
        tmt_names_free(names, n);
        return count;
}

/* ---- a source tree ---- */

struct tmt_tree_counts {
        uint64_t files;  /* regular file entries (each hard link name counts) */
        uint64_t dirs;   /* directories below the root */
        uint64_t others; /* symlinks, fifos */
        uint64_t bytes;  /* sum of regular file sizes */
        int xattrs;      /* user.* xattrs could be set */
};

static inline void tmt_add_file(const char *root, const char *rel, uint64_t *s, size_t n,
                                mode_t mode, struct tmt_tree_counts *c)
{
        char p[PATH_MAX];

        tmt_path(p, sizeof(p), root, rel);
        tmt_write_rand(p, s, n);
        assert_int_equal(chmod(p, mode), 0);
        c->files++;
        c->bytes += n;
}

/*
 * Build a small tree under root (which exists) from a seed:
 *   a.txt (random size, xattr user.tidemark), empty, big.bin (several chunks),
 *   exec.sh 0755, secret 0600, link -> a.txt, dangling -> ../nowhere,
 *   fifo, emptydir/, sub/{f0..f<k>, hard1}, hard2 (hard link to sub/hard1),
 *   sub/deeper/leaf.
 * Contents are random per seed, so different seeds give unique data. mtimes
 * (with nanoseconds) are set last, directories after their contents.
 */
static inline struct tmt_tree_counts tmt_make_tree(const char *root, uint64_t seed)
{
        struct tmt_tree_counts c = { 0 };
        uint64_t s = seed;
        char p[PATH_MAX], q[PATH_MAX];
        int nsub = 2 + (int)(tmt_rand(&s) % 4);
        int64_t base = 1700000000LL * TM_NSEC_PER_SEC + (int64_t)(tmt_rand(&s) % 1000000000);

        tmt_add_file(root, "a.txt", &s, 1 + tmt_rand(&s) % 5000, 0644, &c);
        tmt_add_file(root, "empty", &s, 0, 0644, &c);
        tmt_add_file(root, "big.bin", &s, TMT_BIG_SIZE, 0644, &c);
        tmt_add_file(root, "exec.sh", &s, 100 + tmt_rand(&s) % 100, 0755, &c);
        tmt_add_file(root, "secret", &s, 10 + tmt_rand(&s) % 100, 0600, &c);
        tmt_path(p, sizeof(p), root, "a.txt");
        c.xattrs = setxattr(p, "user.tidemark", "v1", 2, 0) == 0;
        tmt_path(p, sizeof(p), root, "link");
        assert_int_equal(symlink("a.txt", p), 0);
        tmt_path(p, sizeof(p), root, "dangling");
        assert_int_equal(symlink("../nowhere", p), 0);
        tmt_path(p, sizeof(p), root, "fifo");
        assert_int_equal(mkfifo(p, 0640), 0);
        c.others += 3;
        tmt_path(p, sizeof(p), root, "emptydir");
        tmt_mkdir(p);
        tmt_path(p, sizeof(p), root, "sub");
        tmt_mkdir(p);
        tmt_path(p, sizeof(p), root, "sub/deeper");
        tmt_mkdir(p);
        c.dirs += 3;
        for (int i = 0; i < nsub; i++) {
                char rel[64];

                snprintf(rel, sizeof(rel), "sub/f%d", i);
                tmt_add_file(root, rel, &s, tmt_rand(&s) % 20000, 0644, &c);
        }
        tmt_add_file(root, "sub/hard1", &s, 3000, 0644, &c);
        tmt_path(p, sizeof(p), root, "sub/hard1");
        tmt_path(q, sizeof(q), root, "hard2");
        assert_int_equal(link(p, q), 0);
        c.files++;
        c.bytes += 3000;
        tmt_add_file(root, "sub/deeper/leaf", &s, 777, 0644, &c);

        /* times last: files, then directories bottom-up */
        {
                static const char *const files[] = { "a.txt",          "empty",  "big.bin",
                                                     "exec.sh",        "secret", "link",
                                                     "dangling",       "fifo",   "sub/hard1",
                                                     "sub/deeper/leaf" };
                static const char *const dirs[] = { "sub/deeper", "sub", "emptydir" };

                for (size_t i = 0; i < TM_ARRAY_SIZE(files); i++) {
                        tmt_path(p, sizeof(p), root, files[i]);
                        tmt_set_mtime(p, base + (int64_t)i * 1000003);
                }
                for (int i = 0; i < nsub; i++) {
                        char rel[64];

                        snprintf(rel, sizeof(rel), "sub/f%d", i);
                        tmt_path(p, sizeof(p), root, rel);
                        tmt_set_mtime(p, base - (int64_t)i * 7777);
                }
                for (size_t i = 0; i < TM_ARRAY_SIZE(dirs); i++) {
                        tmt_path(p, sizeof(p), root, dirs[i]);
                        tmt_set_mtime(p, base + 5 * TM_NSEC_PER_SEC + (int64_t)i);
                }
        }
        return c;
}

static inline int tmt_xattrs_equal(const char *a, const char *b)
{
        char na[4096], nb[4096];
        ssize_t la = llistxattr(a, na, sizeof(na)), lb = llistxattr(b, nb, sizeof(nb));

        if (la < 0)
                la = 0;
        if (lb < 0)
                lb = 0;
        /* only user.*: security.* and system.* depend on the machine */
        for (ssize_t i = 0; i < la; i += (ssize_t)strlen(na + i) + 1) {
                char va[4096], vb[4096];
                ssize_t x, y;

                if (strncmp(na + i, "user.", 5) != 0)
                        continue;
                x = lgetxattr(a, na + i, va, sizeof(va));
                y = lgetxattr(b, na + i, vb, sizeof(vb));
                if (x != y || x < 0 || memcmp(va, vb, (size_t)x) != 0) {
                        fprintf(stderr, "xattr %s differs: %s vs %s\n", na + i, a, b);
                        return 0;
                }
        }
        for (ssize_t i = 0; i < lb; i += (ssize_t)strlen(nb + i) + 1) {
                char v[4096];

                if (strncmp(nb + i, "user.", 5) == 0 && lgetxattr(a, nb + i, v, sizeof(v)) < 0) {
                        fprintf(stderr, "xattr %s only in %s\n", nb + i, b);
                        return 0;
                }
        }
        return 1;
}

#define TMT_CMP_DIR_TIMES 1 /* also compare directories' mtimes */
#define TMT_CMP_NLINK     2 /* also compare regular files' link counts */
#define TMT_CMP_ALL       (TMT_CMP_DIR_TIMES | TMT_CMP_NLINK)

/*
 * Compare two trees recursively: the same names, types, permission bits,
 * mtimes (ns), sizes and bytes, symlink targets, user.* xattrs, and what
 * flags (TMT_CMP_*) add. Returns 1 when equal; otherwise prints the first
 * difference and returns 0.
 */
static inline int tmt_trees_equal(const char *a, const char *b, int flags)
{
        size_t na = 0, nb = 0;
        char **la = tmt_names(a, &na), **lb = tmt_names(b, &nb);
        int eq = 1;

        if (na != nb) {
                fprintf(stderr, "'%s' has %zu entries, '%s' has %zu\n", a, na, b, nb);
                eq = 0;
        }
        for (size_t i = 0; eq && i < na; i++) {
                char pa[PATH_MAX], pb[PATH_MAX];
                struct stat sa, sb;

                if (strcmp(la[i], lb[i]) != 0) {
                        fprintf(stderr, "'%s/%s' vs '%s/%s'\n", a, la[i], b, lb[i]);
                        eq = 0;
                        break;
                }
                tmt_path(pa, sizeof(pa), a, la[i]);
                tmt_path(pb, sizeof(pb), b, lb[i]);
                if (lstat(pa, &sa) < 0 || lstat(pb, &sb) < 0) {
                        fprintf(stderr, "cannot lstat '%s' or '%s'\n", pa, pb);
                        eq = 0;
                        break;
                }
                if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
                        fprintf(stderr, "'%s': type differs\n", pb);
                        eq = 0;
                } else if (!S_ISLNK(sa.st_mode) && (sa.st_mode & 07777) != (sb.st_mode & 07777)) {
                        fprintf(stderr, "'%s': mode %o vs %o\n", pb, sa.st_mode & 07777,
                                sb.st_mode & 07777);
                        eq = 0;
                } else if ((!S_ISDIR(sa.st_mode) || (flags & TMT_CMP_DIR_TIMES)) &&
                           (sa.st_mtim.tv_sec != sb.st_mtim.tv_sec ||
                            sa.st_mtim.tv_nsec != sb.st_mtim.tv_nsec)) {
                        fprintf(stderr, "'%s': mtime %lld.%09ld vs %lld.%09ld\n", pb,
                                (long long)sa.st_mtim.tv_sec, sa.st_mtim.tv_nsec,
                                (long long)sb.st_mtim.tv_sec, sb.st_mtim.tv_nsec);
                        eq = 0;
                } else if (S_ISREG(sa.st_mode)) {
                        tm_buf ba = TM_BUF_INIT(0), bb = TM_BUF_INIT(0);

                        tmt_read(pa, &ba);
                        tmt_read(pb, &bb);
                        if (ba.len != bb.len || (ba.len && memcmp(ba.data, bb.data, ba.len))) {
                                fprintf(stderr, "'%s': contents differ (%zu vs %zu bytes)\n", pb,
                                        ba.len, bb.len);
                                eq = 0;
                        } else if ((flags & TMT_CMP_NLINK) && sa.st_nlink != sb.st_nlink) {
                                fprintf(stderr, "'%s': nlink %lu vs %lu\n", pb,
                                        (unsigned long)sa.st_nlink, (unsigned long)sb.st_nlink);
                                eq = 0;
                        }
                        tm_buf_dispose(&ba);
                        tm_buf_dispose(&bb);
                } else if (S_ISLNK(sa.st_mode)) {
                        char ta[PATH_MAX] = { 0 }, tb[PATH_MAX] = { 0 };

                        if (readlink(pa, ta, sizeof(ta) - 1) < 0 ||
                            readlink(pb, tb, sizeof(tb) - 1) < 0 || strcmp(ta, tb) != 0) {
                                fprintf(stderr, "'%s': link target '%s' vs '%s'\n", pb, ta, tb);
                                eq = 0;
                        }
                }
                if (eq && !S_ISLNK(sa.st_mode) && !tmt_xattrs_equal(pa, pb))
                        eq = 0;
                if (eq && S_ISDIR(sa.st_mode))
                        eq = tmt_trees_equal(pa, pb, flags);
        }
        tmt_names_free(la, na);
        tmt_names_free(lb, nb);
        return eq;
}

/* ---- repositories ---- */

static inline struct tm_repo_opts tmt_repo_opts(const char *location, const char *catalog,
                                                const char *pass)
{
        struct tm_repo_opts o = TM_REPO_OPTS_INIT;

        o.location = location;
        o.catalog_path = catalog;
        o.password = pass;
        o.password_len = strlen(pass);
        o.kdf = (struct tm_kdf_params){ .alg = "argon2id", .t = 1, .m = 8192, .p = 1 };
        o.chunker = (struct tm_chunker_params){ .min = TMT_CHUNK_MIN,
                                                .avg = TMT_CHUNK_AVG,
                                                .max = TMT_CHUNK_MAX };
        return o;
}

/* A scratch directory holding a repository (dir/repo), its catalog
 * (dir/catalog.db), a source tree (dir/src) and room for targets. */
struct tmt_fix {
        char *dir;
        char repo[PATH_MAX];
        char catalog[PATH_MAX];
        char src[PATH_MAX];
        tm_repo *r;
};

static inline struct tmt_fix *tmt_fix_new(void)
{
        struct tmt_fix *f = calloc(1, sizeof(*f));
        struct tm_repo_opts o;

        assert_non_null(f);
        f->dir = tmt_mkdtemp();
        tmt_path(f->repo, sizeof(f->repo), f->dir, "repo");
        tmt_path(f->catalog, sizeof(f->catalog), f->dir, "catalog.db");
        tmt_path(f->src, sizeof(f->src), f->dir, "src");
        tmt_mkdir(f->src);
        o = tmt_repo_opts(f->repo, f->catalog, TMT_PASS);
        assert_int_equal(tm_repo_init(&o, &f->r), 0);
        return f;
}

/* Close and reopen the fixture's repository (same catalog). */
static inline void tmt_fix_reopen(struct tmt_fix *f)
{
        struct tm_repo_opts o = tmt_repo_opts(f->repo, f->catalog, TMT_PASS);

        tm_repo_free(f->r);
        f->r = NULL;
        assert_int_equal(tm_repo_open(&o, &f->r), 0);
}

static inline void tmt_fix_free(struct tmt_fix *f)
{
        if (!f)
                return;
        tm_repo_free(f->r);
        tmt_rm_rf(f->dir);
        free(f->dir);
        free(f);
}

/* Back up one path as a component with a strategy; returns tm_backup_run's result. */
static inline int tmt_backup(tm_repo *repo, const char *path, const char *component,
                             const char *strategy, struct tm_snapshot *ret)
{
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        const char *paths[1] = { path };

        o.component = component;
        o.strategy = strategy;
        o.paths = paths;
        o.n_paths = 1;
        o.threads = 2;
        return tm_backup_run(repo, &o, ret);
}

/* Restore a whole snapshot into target; returns tm_restore_run's result. */
static inline int tmt_restore(tm_repo *repo, const struct tm_snapshot *snap, const char *target,
                              struct tm_restore_stats *st)
{
        struct tm_restore_opts o = TM_RESTORE_OPTS_INIT;

        o.target = target;
        o.threads = 2;
        return tm_restore_run(repo, snap, &o, st);
}

/* Path of the pack holding a blob, and the blob's entry in it. */
static inline void tmt_blob_pack_path(struct tmt_fix *f, const tm_id *blob, char *out, size_t n,
                                      struct tm_pack_entry *ret_e)
{
        tm_id pack;
        char name[128];

        assert_int_equal(tm_catalog_blob_find(tm_repo_catalog(f->r), blob, &pack, ret_e), 0);
        tm_repo_pack_name(&pack, name, sizeof(name));
        tmt_path(out, n, f->repo, name);
}

/* Damage the first blob of a file of snapshot tree root (one flipped byte
 * in the middle of it, in its pack). */
static inline void tmt_damage_first_blob(struct tmt_fix *f, const tm_id *root, const char *path)
{
        struct tm_node nd = { 0 };
        struct tm_pack_entry e;
        char pack[PATH_MAX];

        assert_int_equal(tm_repo_lookup_path(f->r, root, path, &nd), 0);
        assert_true(nd.n_content >= 1);
        tmt_blob_pack_path(f, &nd.content[0].id, pack, sizeof(pack), &e);
        tmt_flip_byte(pack, e.offset + e.length / 2);
        tm_node_dispose(&nd);
}

/* Build a pack of blobs of one type by hand and store it (and, with
 * with_index, an index file for it). Returns the pack id; ids[] get the
 * blob ids. */
static inline tm_id tmt_store_blobs(tm_repo *repo, enum tm_blob_type type, const void *const *blobs,
                                    const size_t *lens, size_t n, int with_index, tm_id *ids)
{
        tm_pack_writer *w = NULL;
        tm_buf sealed = TM_BUF_INIT(0), file = TM_BUF_INIT(0);
        struct tm_pack_entry *entries = NULL;
        size_t ne = 0;
        tm_id pack_id;

        assert_int_equal(tm_pack_writer_new(tm_repo_key(repo), type, &w), 0);
        for (size_t i = 0; i < n; i++) {
                struct tm_pack_entry e;

                tm_crypto_blob_id(tm_repo_key(repo), blobs[i], lens[i], &ids[i]);
                tm_buf_clear(&sealed);
                assert_int_equal(tm_blob_seal(tm_repo_key(repo), type, &ids[i], blobs[i], lens[i],
                                              tm_repo_compression_level(repo), &sealed, &e),
                                 0);
                assert_int_equal(tm_pack_writer_add(w, &e, sealed.data, sealed.len), 0);
        }
        assert_int_equal(tm_pack_writer_finish(w, &file, &pack_id, &entries, &ne), 0);
        assert_int_equal(ne, n);
        assert_int_equal(tm_repo_pack_save(repo, &pack_id, (uint8_t)type, &file, entries, ne), 0);
        if (with_index) {
                struct tm_index idx = TM_INDEX_INIT;

                assert_int_equal(tm_index_add_pack(&idx, &pack_id, file.len, entries, ne), 0);
                assert_int_equal(tm_repo_index_save(repo, &idx, NULL), 0);
                tm_index_dispose(&idx);
        }
        free(entries);
        tm_buf_dispose(&file);
        tm_buf_dispose(&sealed);
        tm_pack_writer_free(w);
        return pack_id;
}

/* Encode a tree and store it as a tree blob (own pack, indexed). */
static inline tm_id tmt_store_tree(tm_repo *repo, struct tm_tree *t)
{
        tm_buf enc = TM_BUF_INIT(0);
        const void *blobs[1];
        size_t lens[1];
        tm_id id;

        assert_int_equal(tm_tree_encode(t, &enc), 0);
        blobs[0] = enc.data;
        lens[0] = enc.len;
        tmt_store_blobs(repo, TM_BLOB_TREE, blobs, lens, 1, 1, &id);
        tm_buf_dispose(&enc);
        return id;
}

/* Append a node to t (name copied). For files, content/n_content are copied. */
static inline void tmt_tree_add(struct tm_tree *t, const char *name, uint8_t type,
                                const tm_id *sub_or_null, const char *target,
                                const struct tm_content *content, size_t n_content)
{
        struct tm_node nd = { 0 };

        nd.name = strdup(name);
        assert_non_null(nd.name);
        nd.type = type;
        nd.mode = type == TM_NODE_DIR ? 0755 : 0644;
        nd.mtime_ns = 1700000000LL * TM_NSEC_PER_SEC;
        nd.nlink = 1;
        if (sub_or_null)
                nd.subtree = *sub_or_null;
        if (target) {
                nd.target = strdup(target);
                assert_non_null(nd.target);
        }
        if (n_content) {
                nd.content = malloc(n_content * sizeof(*nd.content));
                assert_non_null(nd.content);
                memcpy(nd.content, content, n_content * sizeof(*nd.content));
                nd.n_content = n_content;
                for (size_t i = 0; i < n_content; i++)
                        nd.size += content[i].size;
        }
        assert_int_equal(tm_tree_add_take(t, &nd), 0);
}

/* A minimal snapshot manifest pointing at tree, saved to the repository. */
static inline void tmt_snapshot_make(tm_repo *repo, const char *component, int64_t time,
                                     const tm_id *tree, struct tm_snapshot *ret)
{
        memset(ret, 0, sizeof(*ret));
        ret->time = time;
        ret->host = strdup("testhost");
        ret->username = strdup("tester");
        ret->component = strdup(component);
        ret->strategy = strdup("full");
        assert_true(ret->host && ret->username && ret->component && ret->strategy);
        if (tree)
                ret->tree = *tree;
        assert_int_equal(tm_snapshot_add_path(ret, "/src"), 0);
        assert_int_equal(tm_repo_snapshot_save(repo, ret), 0);
}

static inline int64_t tmt_time(const char *s)
{
        int64_t t = 0;

        assert_int_equal(tm_time_parse(s, &t, NULL), 0);
        return t;
}

/* Number of snapshots in the repository (any component). */
static inline size_t tmt_snapshot_count(tm_repo *repo)
{
        struct tm_snapshot *a = NULL;
        size_t n = 0;

        assert_int_equal(tm_repo_snapshot_list(repo, NULL, &a, &n), 0);
        tm_snapshot_array_free(a, n);
        return n;
}
