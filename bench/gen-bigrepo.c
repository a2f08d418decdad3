/*
 * gen-bigrepo: a repository with a long history of a large, slowly changing
 * tree, for bench/bench-load.sh (issue 9, load).
 *
 *   gen-bigrepo -r REPO -s SRCDIR -c COMPONENT -n SNAPSHOTS
 *               [-k DIRS] [-m FILES] [-t STEP_SECONDS] [-S SEED]
 *
 * The passphrase comes from $TIDEMARK_PASSWORD, the catalog from
 * $TIDEMARK_CATALOG (as for every tidemark program).
 *
 * 1. Snapshot 1 is a real backup of SRCDIR (tm_backup_run), dated
 *    SNAPSHOTS x STEP seconds ago. SRCDIR must be laid out as
 *    SRCDIR/aN/bNN/<files> (SRCDIR is the snapshot root): the leaf
 *    directories are what later snapshots change.
 * 2. Snapshots 2..SNAPSHOTS are derived the way an incremental backup of a
 *    slowly changing tree comes out, without reading the tree again: each
 *    picks DIRS leaf directories at random; in each it rewrites FILES files
 *    (new content, size and mtime) and adds one new file; it stores the new
 *    data blobs and the new trees along the changed paths (leaf, its
 *    parent, the snapshot root); everything else is
 *    shared with the parent snapshot. Like a backup, each snapshot writes
 *    its own data pack, tree pack and index file, under a writer lock,
 *    then the manifest (incremental, parent = the previous snapshot),
 *    STEP seconds after the previous one.
 *
 * Only the public library API is used. Prints one line per phase with the
 * wall seconds and the peak RSS so far.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <tidemark/crypto.h>
#include <tidemark/index.h>
#include <tidemark/log.h>
#include <tidemark/ops.h>
#include <tidemark/pack.h>
#include <tidemark/repo.h>
#include <tidemark/tree.h>

struct gen {
        tm_repo *repo;
        tm_pack_writer *w[2]; /* data, tree */
        struct tm_index idx;
        uint64_t seed;
        uint64_t blobs_added, bytes_added, bytes_stored;
        int64_t now_ns;
        unsigned snap_no;
};

static double mono(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long peak_rss_kib(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return ru.ru_maxrss;
}

/* xorshift64*: reproducible choices from -S */
static uint64_t rnd(struct gen *g)
{
        g->seed ^= g->seed >> 12;
        g->seed ^= g->seed << 25;
        g->seed ^= g->seed >> 27;
        return g->seed * 2685821657736338717ull;
}

/* Seal one blob into the writer of its type (the id is the keyed hash, as
 * the backup computes it). */
static int blob_put(struct gen *g, enum tm_blob_type type, const void *p, size_t n, tm_id *ret_id)
{
        tm_buf sealed = TM_BUF_INIT(0);
        struct tm_pack_entry e;
        int r;

        tm_crypto_blob_id(tm_repo_key(g->repo), p, n, ret_id);
        r = tm_repo_blob_has(g->repo, ret_id);
        if (r != 0)
                goto out; /* already stored (1), or an error */
        r = tm_blob_seal(tm_repo_key(g->repo), type, ret_id, p, n,
                         tm_repo_compression_level(g->repo), &sealed, &e);
        if (r < 0)
                goto out;
        r = tm_pack_writer_add(g->w[type], &e, sealed.data, sealed.len);
        if (r < 0)
                goto out;
        g->blobs_added++;
        g->bytes_added += n;
out:
        tm_buf_dispose(&sealed);
        return r < 0 ? r : 0;
}

static int tree_put(struct gen *g, struct tm_tree *t, tm_id *ret_id)
{
        tm_buf enc = TM_BUF_INIT(0);
        int r;

        r = tm_tree_encode(t, &enc);
        if (r == 0)
                r = blob_put(g, TM_BLOB_TREE, enc.data, enc.len, ret_id);
        tm_buf_dispose(&enc);
        return r;
}

/* Write the pending packs and one index file for them, as a backup does at
 * its end. */
static int flush(struct gen *g)
{
        int r = 0;

        for (int t = 0; t < 2 && r == 0; t++) {
                tm_buf file = TM_BUF_INIT(0);
                struct tm_pack_entry *entries = NULL;
                size_t n = 0;
                tm_id id;

                if (tm_pack_writer_count(g->w[t]) == 0)
                        continue;
                r = tm_pack_writer_finish(g->w[t], &file, &id, &entries, &n);
                if (r == 0)
                        r = tm_repo_pack_save(g->repo, &id, (uint8_t)t, &file, entries, n);
                if (r == 0)
                        r = tm_index_add_pack(&g->idx, &id, file.len, entries, n);
                g->bytes_stored += file.len;
                free(entries);
                tm_buf_dispose(&file);
        }
        if (r == 0 && g->idx.n_packs > 0)
                r = tm_repo_index_save(g->repo, &g->idx, NULL);
        tm_index_dispose(&g->idx);
        g->idx = TM_INDEX_INIT;
        return r;
}

/* Find a node by name for writing (tm_tree_find gives a const pointer into
 * the same array). */
static struct tm_node *node_mut(struct tm_tree *t, const char *name)
{
        const struct tm_node *n = tm_tree_find(t, name);

        return n ? &t->nodes[n - t->nodes] : NULL;
}

/* Rewrite nfiles files of one leaf directory and add one; ret_id gets the
 * new leaf tree. *added counts the new files. */
static int change_leaf(struct gen *g, const tm_id *leaf_id, const char *where, unsigned nfiles,
                       tm_id *ret_id, uint64_t *bytes_delta)
{
        struct tm_tree t = TM_TREE_INIT;
        struct tm_node fresh = { 0 };
        char buf[256];
        int r;

        r = tm_repo_tree_load(g->repo, leaf_id, &t);
        if (r < 0)
                goto out;
        if (t.n == 0) {
                r = -EINVAL;
                goto out;
        }
        for (unsigned i = 0; i < nfiles; i++) {
                struct tm_node *n = &t.nodes[rnd(g) % t.n];
                int len;

                if (n->type != TM_NODE_FILE)
                        continue;
                len = snprintf(buf, sizeof(buf), "%s/%s changed by snapshot %u\n", where, n->name,
                               g->snap_no);
                free(n->content);
                n->content = calloc(1, sizeof(*n->content));
                if (!n->content) {
                        n->n_content = 0;
                        r = -ENOMEM;
                        goto out;
                }
                n->n_content = 1;
                r = blob_put(g, TM_BLOB_DATA, buf, (size_t)len, &n->content[0].id);
                if (r < 0)
                        goto out;
                *bytes_delta += (uint64_t)len - n->size;
                n->content[0].size = (uint64_t)len;
                n->size = (uint64_t)len;
                n->mtime_ns = n->ctime_ns = g->now_ns;
        }
        /* one new file, a copy of the first file's metadata */
        r = tm_node_copy(&t.nodes[0], &fresh);
        if (r < 0)
                goto out;
        free(fresh.name);
        snprintf(buf, sizeof(buf), "new%06u", g->snap_no);
        fresh.name = strdup(buf);
        if (!fresh.name) {
                r = -ENOMEM;
                goto out;
        }
        {
                int len = snprintf(buf, sizeof(buf), "%s/new%06u added by snapshot %u\n", where,
                                   g->snap_no, g->snap_no);

                r = blob_put(g, TM_BLOB_DATA, buf, (size_t)len, &fresh.content[0].id);
                if (r < 0)
                        goto out;
                fresh.content[0].size = fresh.size = (uint64_t)len;
                *bytes_delta += (uint64_t)len;
        }
        fresh.mtime_ns = fresh.ctime_ns = g->now_ns;
        fresh.inode = 0;
        r = tm_tree_add_take(&t, &fresh);
        if (r < 0)
                goto out;
        r = tree_put(g, &t, ret_id);
out:
        tm_node_dispose(&fresh);
        tm_tree_dispose(&t);
        return r;
}

/* The directory node `name` of tree *t now holds subtree id: set it and the
 * directory's times (a directory whose entries changed has a new mtime). */
static int set_subtree(struct tm_tree *t, const char *name, const tm_id *id)
{
        struct tm_node *n = node_mut(t, name);

        if (!n || n->type != TM_NODE_DIR)
                return -ENOENT;
        n->subtree = *id;
        return 0;
}

static int set_dir_time(struct tm_tree *t, const char *name, int64_t ns)
{
        struct tm_node *n = node_mut(t, name);

        if (!n)
                return -ENOENT;
        n->mtime_ns = n->ctime_ns = ns;
        return 0;
}

struct leaf {
        unsigned a, b;
};

static int cmp_leaf(const void *x, const void *y)
{
        const struct leaf *p = x, *q = y;

        if (p->a != q->a)
                return p->a < q->a ? -1 : 1;
        return p->b < q->b ? -1 : p->b > q->b;
}

/* One derived snapshot of prev. */
static int derive(struct gen *g, const struct tm_snapshot *prev, unsigned n_a, unsigned n_b,
                  unsigned ndirs, unsigned nfiles, int64_t step_s, struct tm_snapshot *ret)
{
        struct tm_tree topt = TM_TREE_INIT, at = TM_TREE_INIT;
        struct tm_snapshot s = { 0 };
        struct leaf *leaves = NULL;
        uint64_t bytes_delta = 0, blobs0 = g->blobs_added, bytes0 = g->bytes_added;
        uint64_t stored0 = g->bytes_stored;
        double t0 = mono();
        int r;

        g->now_ns = prev->time + step_s * 1000000000ll;
        leaves = calloc(ndirs, sizeof(*leaves));
        if (!leaves)
                return -ENOMEM;
        for (unsigned i = 0; i < ndirs; i++) {
                leaves[i].a = (unsigned)(rnd(g) % n_a);
                leaves[i].b = (unsigned)(rnd(g) % n_b);
        }
        qsort(leaves, ndirs, sizeof(*leaves), cmp_leaf);

        /* a backup of one directory makes that directory the snapshot root */
        r = tm_repo_tree_load(g->repo, &prev->tree, &topt);
        if (r < 0)
                goto out;
        for (unsigned i = 0; i < ndirs;) {
                unsigned a = leaves[i].a;
                char aname[32];
                const struct tm_node *an;
                tm_id new_a;

                snprintf(aname, sizeof(aname), "a%u", a);
                an = tm_tree_find(&topt, aname);
                if (!an) {
                        fprintf(stderr, "gen-bigrepo: no %s\n", aname);
                        r = -ENOENT;
                        goto out;
                }
                r = tm_repo_tree_load(g->repo, &an->subtree, &at);
                if (r < 0)
                        goto out;
                for (; i < ndirs && leaves[i].a == a; i++) {
                        char bname[32], where[128];
                        const struct tm_node *bn;
                        tm_id new_leaf;

                        if (i > 0 && leaves[i - 1].a == a && leaves[i - 1].b == leaves[i].b)
                                continue; /* picked twice */
                        snprintf(bname, sizeof(bname), "b%02u", leaves[i].b);
                        snprintf(where, sizeof(where), "%s/%s", aname, bname);
                        bn = tm_tree_find(&at, bname);
                        if (!bn) {
                                fprintf(stderr, "gen-bigrepo: no %s\n", where);
                                r = -ENOENT;
                                goto out;
                        }
                        r = change_leaf(g, &bn->subtree, where, nfiles, &new_leaf, &bytes_delta);
                        if (r == 0)
                                r = set_subtree(&at, bname, &new_leaf);
                        if (r == 0)
                                r = set_dir_time(&at, bname, g->now_ns);
                        if (r < 0)
                                goto out;
                        s.summary.files_new++;
                }
                r = tree_put(g, &at, &new_a);
                if (r == 0)
                        r = set_subtree(&topt, aname, &new_a);
                tm_tree_dispose(&at);
                at = TM_TREE_INIT;
                if (r < 0)
                        goto out;
        }
        r = tree_put(g, &topt, &s.tree);
        if (r == 0)
                r = flush(g);
        if (r < 0)
                goto out;

        s.time = g->now_ns;
        s.host = strdup(prev->host);
        s.username = strdup(prev->username ? prev->username : "bench");
        s.component = strdup(prev->component);
        s.strategy = strdup("incremental");
        if (!s.host || !s.username || !s.component || !s.strategy) {
                r = -ENOMEM;
                goto out;
        }
        s.has_parent = 1;
        s.parent = prev->id;
        for (size_t i = 0; i < prev->n_paths && r == 0; i++)
                r = tm_snapshot_add_path(&s, prev->paths[i]);
        if (r == 0)
                r = tm_snapshot_add_tag(&s, "gen-bigrepo");
        if (r < 0)
                goto out;
        /* files_new was counted per changed directory: one new file each */
        s.summary.files = prev->summary.files + s.summary.files_new;
        s.summary.dirs = prev->summary.dirs;
        s.summary.others = prev->summary.others;
        s.summary.files_changed = (uint64_t)nfiles * s.summary.files_new;
        s.summary.files_unmodified =
                s.summary.files - s.summary.files_new - s.summary.files_changed;
        s.summary.bytes = prev->summary.bytes + bytes_delta;
        s.summary.bytes_read = 0;
        s.summary.blobs_added = g->blobs_added - blobs0;
        s.summary.bytes_added = g->bytes_added - bytes0;
        s.summary.bytes_stored = g->bytes_stored - stored0;
        s.summary.duration_ns = (int64_t)((mono() - t0) * 1e9);
        r = tm_repo_snapshot_save(g->repo, &s);
        if (r < 0)
                goto out;
        *ret = s;
        s = (struct tm_snapshot){ 0 };
out:
        if (r < 0)
                fprintf(stderr, "gen-bigrepo: snapshot %u: %s\n", g->snap_no, strerror(-r));
        tm_snapshot_dispose(&s);
        tm_tree_dispose(&at);
        tm_tree_dispose(&topt);
        free(leaves);
        return r;
}

/* Count the aN directories of the first snapshot and the bNN directories
 * under its a0. */
static int count_dirs(tm_repo *repo, const struct tm_snapshot *s, unsigned *ret_a, unsigned *ret_b)
{
        struct tm_tree t = TM_TREE_INIT, a0 = TM_TREE_INIT;
        const struct tm_node *n;
        int r;

        r = tm_repo_tree_load(repo, &s->tree, &t);
        if (r < 0)
                goto out;
        n = tm_tree_find(&t, "a0");
        if (!n || n->type != TM_NODE_DIR) {
                r = -ENOENT;
                goto out;
        }
        r = tm_repo_tree_load(repo, &n->subtree, &a0);
        if (r < 0)
                goto out;
        *ret_a = (unsigned)t.n;
        *ret_b = (unsigned)a0.n;
out:
        tm_tree_dispose(&a0);
        tm_tree_dispose(&t);
        return r;
}

static void usage(void)
{
        fprintf(stderr, "usage: gen-bigrepo -r REPO -s SRCDIR -c COMPONENT -n SNAPSHOTS "
                        "[-k DIRS] [-m FILES] [-t STEP_SECONDS] [-S SEED]\n");
}

int main(int argc, char **argv)
{
        struct tm_repo_opts ro = TM_REPO_OPTS_INIT;
        struct tm_backup_opts bo = TM_BACKUP_OPTS_INIT;
        struct tm_snapshot prev = { 0 }, next = { 0 };
        struct gen g = { .idx = TM_INDEX_INIT, .seed = 88172645463325252ull };
        tm_lock *lock = NULL;
        const char *src = NULL, *comp = NULL;
        const char *pass = getenv("TIDEMARK_PASSWORD");
        unsigned nsnap = 0, ndirs = 3, nfiles = 4, n_a = 0, n_b = 0;
        int64_t step = 3600;
        double t0;
        int r, c;

        ro.location = getenv("TIDEMARK_REPOSITORY");
        while ((c = getopt(argc, argv, "r:s:c:n:k:m:t:S:")) != -1) {
                switch (c) {
                case 'r':
                        ro.location = optarg;
                        break;
                case 's':
                        src = optarg;
                        break;
                case 'c':
                        comp = optarg;
                        break;
                case 'n':
                        nsnap = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'k':
                        ndirs = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'm':
                        nfiles = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 't':
                        step = strtoll(optarg, NULL, 10);
                        break;
                case 'S':
                        g.seed = strtoull(optarg, NULL, 10) | 1;
                        break;
                default:
                        usage();
                        return 64;
                }
        }
        if (!ro.location || !src || !comp || nsnap < 1 || ndirs < 1 || step < 1 || !pass) {
                usage();
                fprintf(stderr, "gen-bigrepo: -r (or $TIDEMARK_REPOSITORY), -s, -c, -n >= 1 and "
                                "$TIDEMARK_PASSWORD are required\n");
                return 64;
        }
        ro.password = pass;
        ro.password_len = strlen(pass);
        r = tm_repo_open(&ro, &g.repo);
        if (r < 0) {
                fprintf(stderr, "gen-bigrepo: cannot open repository '%s': %s\n", ro.location,
                        strerror(-r));
                return 1;
        }

        /* 1. the real backup, dated so that the history ends about now */
        t0 = mono();
        bo.component = comp;
        bo.strategy = "full";
        bo.paths = &src;
        bo.n_paths = 1;
        bo.host = "bench";
        bo.time = ((int64_t)time(NULL) - (int64_t)nsnap * step) * 1000000000ll;
        r = tm_backup_run(g.repo, &bo, &prev);
        if (r != 0) {
                fprintf(stderr, "gen-bigrepo: backup of '%s' failed: %d\n", src, r);
                goto out;
        }
        printf("backup1 files=%" PRIu64 " dirs=%" PRIu64 " seconds=%.2f peak_rss_kib=%ld\n",
               prev.summary.files, prev.summary.dirs, mono() - t0, peak_rss_kib());
        fflush(stdout);
        r = count_dirs(g.repo, &prev, &n_a, &n_b);
        if (r < 0 || n_a == 0 || n_b == 0) {
                fprintf(stderr, "gen-bigrepo: '%s' is not laid out as aN/bNN/files\n", src);
                r = r < 0 ? r : -EINVAL;
                goto out;
        }

        /* 2. derived snapshots, under a writer lock like a backup */
        t0 = mono();
        r = tm_repo_lock_writer(g.repo, 60, &lock);
        for (int t = 0; t < 2 && r == 0; t++)
                r = tm_pack_writer_new(tm_repo_key(g.repo), (enum tm_blob_type)t, &g.w[t]);
        for (unsigned i = 2; i <= nsnap && r == 0; i++) {
                g.snap_no = i;
                r = derive(&g, &prev, n_a, n_b, ndirs, nfiles, step, &next);
                if (r < 0)
                        break;
                tm_snapshot_dispose(&prev);
                prev = next;
                next = (struct tm_snapshot){ 0 };
                if (i % 100 == 0 || i == nsnap) {
                        printf("derived %u snapshots seconds=%.2f blobs_added=%" PRIu64
                               " bytes_stored=%" PRIu64 " peak_rss_kib=%ld\n",
                               i - 1, mono() - t0, g.blobs_added, g.bytes_stored, peak_rss_kib());
                        fflush(stdout);
                }
        }
out:
        tm_lock_release(lock);
        tm_pack_writer_free(g.w[0]);
        tm_pack_writer_free(g.w[1]);
        tm_index_dispose(&g.idx);
        tm_snapshot_dispose(&prev);
        tm_repo_free(g.repo);
        return r == 0 ? 0 : 1;
}
