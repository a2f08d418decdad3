/*
 * backup: walk, read, chunk, hash, compress, encrypt and write, overlapped.
 *
 * The calling thread walks the source (sorted readdir, lstat, xattrs) and
 * builds one in-memory tree per directory. Regular files that must be read
 * go on a bounded queue to a pool of workers, which read, chunk (FastCDC),
 * hash (HMAC-SHA-256), deduplicate against the set of known blob ids, seal
 * new blobs (zstd + AES-GCM) and append them to the shared pack writer; a
 * full pack is detached under the lock and hashed and written outside it.
 *
 * A directory completes when the walker is done with it and every file and
 * subdirectory below it has completed (a pending counter); whichever thread
 * completes it encodes its tree blob and releases its parent. The root's
 * completion yields the snapshot's tree. Then: last packs, the index file,
 * and only then the snapshot manifest (pack -> index -> snapshot), so an
 * interruption at any point leaves no visible snapshot and only packs that
 * the next backup adopts instead of uploading again.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <tidemark/index.h>
#include <tidemark/log.h>
#include <tidemark/ops.h>
#include <tidemark/time.h>

#include "core/idset.h"
#include "core/ticker.h"

#define PACK_TARGET       (16u * 1024 * 1024)
#define QUEUE_MAX         1024
#define INDEX_EVERY_PACKS 64
#define XATTR_MAX         (64u * 1024)
#define READAHEAD         (16u * 1024 * 1024)

struct bk_dir {
        struct bk_dir *parent;
        size_t slot; /* our node in the parent's tree */
        struct tm_tree tree;
        uint8_t *failed;
        atomic_long pending;
};

/* A directory to walk: one walker thread lists it and adds its entries. */
struct bk_dirjob {
        struct bk_dir *parent; /* NULL for the root */
        size_t slot;
        char *path;
        int has_old;
        tm_id old; /* the same directory in the parent snapshot */
        struct bk_dirjob *next;
};

struct bk_job {
        struct bk_dir *dir;
        size_t slot;
        char *path;
        struct bk_job *next;
};

struct bk {
        tm_repo *repo;
        const struct tm_backup_opts *opts;
        const tm_chunker *chunker;
        int level;

        pthread_mutex_t qmu;
        pthread_cond_t q_nonempty, q_nonfull;
        struct bk_job *head, *tail;
        size_t qlen;
        int closed;

        struct tm_idset set;

        pthread_mutex_t dmu;
        pthread_cond_t dcv;
        struct bk_dirjob *dirs; /* a stack: depth-first keeps few directories open */
        size_t dirs_active;     /* queued or being walked */

        pthread_mutex_t packmu;
        tm_pack_writer *writer[2]; /* by blob type */

        pthread_mutex_t idxmu;
        struct tm_index idx;

        atomic_int err;
        tm_id root;
        int root_done;

        atomic_uint_fast64_t files_done, bytes_done, files_total, bytes_total;
        atomic_uint_fast64_t files_new, files_changed, files_unmodified, files_failed;
        atomic_uint_fast64_t n_files, n_dirs, n_others, bytes, bytes_read;
        atomic_uint_fast64_t blobs_added, bytes_added, bytes_stored;
        atomic_int scan_done;
        int64_t start;

        pthread_mutex_t namemu;
        uid_t last_uid;
        gid_t last_gid;
        char last_user[64], last_group[64];
        int have_user, have_group;
};

static void set_err(struct bk *b, int r)
{
        int zero = 0;

        atomic_compare_exchange_strong(&b->err, &zero, r);
}

/* ---- packs ---- */

static int flush_writer(struct bk *b, tm_pack_writer *w, int type)
{
        tm_buf file = TM_BUF_INIT(0);
        struct tm_pack_entry *entries = NULL;
        size_t n = 0;
        tm_id id;
        int r;

        if (tm_pack_writer_count(w) == 0)
                return 0;
        r = tm_pack_writer_finish(w, &file, &id, &entries, &n);
        if (r < 0)
                goto out;
        r = tm_repo_pack_save(b->repo, &id, (uint8_t)type, &file, entries, n);
        if (r < 0) {
                char name[128];

                tm_repo_pack_name(&id, name, sizeof(name));
                tm_log_errno(tm_log_level_of(r), r, "cannot write pack '%s' to repository '%s'",
                             name, tm_repo_location(b->repo));
                goto out;
        }
        atomic_fetch_add(&b->bytes_stored, file.len);
        pthread_mutex_lock(&b->idxmu);
        r = tm_index_add_pack(&b->idx, &id, file.len, entries, n);
        if (r == 0 && b->idx.n_packs >= INDEX_EVERY_PACKS) {
                /* an index now and then keeps adoption work small after a crash */
                r = tm_repo_index_save(b->repo, &b->idx, NULL);
                tm_index_dispose(&b->idx);
                b->idx = TM_INDEX_INIT;
        }
        pthread_mutex_unlock(&b->idxmu);
out:
        free(entries);
        tm_buf_dispose(&file);
        return r;
}

static int pack_add(struct bk *b, int type, const struct tm_pack_entry *e, const tm_buf *sealed)
{
        tm_pack_writer *full = NULL, *fresh = NULL;
        int r;

        r = tm_pack_writer_new(tm_repo_key(b->repo), type, &fresh);
        if (r < 0)
                return r;
        pthread_mutex_lock(&b->packmu);
        r = tm_pack_writer_add(b->writer[type], e, sealed->data, sealed->len);
        if (r == 0 && tm_pack_writer_size(b->writer[type]) >= PACK_TARGET) {
                full = b->writer[type];
                b->writer[type] = fresh;
                fresh = NULL;
        }
        pthread_mutex_unlock(&b->packmu);
        tm_pack_writer_free(fresh);
        if (r == 0 && full)
                r = flush_writer(b, full, type);
        tm_pack_writer_free(full);
        return r;
}

/* Store one blob unless the repository (or this backup) already has it. */
static int blob_store(struct bk *b, int type, const uint8_t *p, size_t n, tm_id *ret_id,
                      tm_buf *scratch)
{
        struct tm_pack_entry e;
        tm_id id;
        int r;

        tm_crypto_blob_id(tm_repo_key(b->repo), p, n, &id);
        *ret_id = id;
        r = tm_idset_insert(&b->set, &id);
        if (r <= 0)
                return r; /* 0: already stored */
        tm_buf_clear(scratch);
        r = tm_blob_seal(tm_repo_key(b->repo), type, &id, p, n, b->level, scratch, &e);
        if (r < 0)
                return r;
        r = pack_add(b, type, &e, scratch);
        if (r < 0)
                return r;
        atomic_fetch_add(&b->blobs_added, 1);
        atomic_fetch_add(&b->bytes_added, n);
        return 0;
}

/* ---- directories ---- */

static void bk_dir_free(struct bk_dir *d)
{
        if (!d)
                return;
        tm_tree_dispose(&d->tree);
        free(d->failed);
        free(d);
}

static int dir_alloc(struct bk_dir *parent, size_t slot, size_t n, struct bk_dir **ret)
{
        struct bk_dir *d = calloc(1, sizeof(*d));

        if (!d)
                return -ENOMEM;
        d->parent = parent;
        d->slot = slot;
        /* sized once, never reallocated: workers fill nodes in place */
        d->tree.nodes = calloc(n ? n : 1, sizeof(struct tm_node));
        d->failed = calloc(n ? n : 1, 1);
        if (!d->tree.nodes || !d->failed) {
                bk_dir_free(d);
                return -ENOMEM;
        }
        d->tree.cap = n ? n : 1;
        atomic_init(&d->pending, 1); /* the walker's hold */
        *ret = d;
        return 0;
}

/* Encode a completed directory (failed files left out) and store its blob. */
static int dir_store(struct bk *b, struct bk_dir *d, tm_id *ret)
{
        tm_buf enc = TM_BUF_INIT(TM_BLOB_MAX), scratch = TM_BUF_INIT(0);
        size_t k = 0;
        int r;

        for (size_t i = 0; i < d->tree.n; i++) {
                if (d->failed[i]) {
                        tm_node_dispose(&d->tree.nodes[i]);
                        continue;
                }
                if (k != i)
                        d->tree.nodes[k] = d->tree.nodes[i];
                k++;
        }
        d->tree.n = k;
        r = tm_tree_encode(&d->tree, &enc);
        if (r == 0)
                r = blob_store(b, TM_BLOB_TREE, enc.data, enc.len, ret, &scratch);
        tm_buf_dispose(&scratch);
        tm_buf_dispose(&enc);
        return r;
}

static void dir_release(struct bk *b, struct bk_dir *d)
{
        while (d) {
                struct bk_dir *parent = d->parent;
                tm_id id = { { 0 } };
                int r;

                if (atomic_fetch_sub(&d->pending, 1) != 1)
                        return;
                if (atomic_load(&b->err) == 0) {
                        r = dir_store(b, d, &id);
                        if (r < 0)
                                set_err(b, r);
                }
                if (parent)
                        parent->tree.nodes[d->slot].subtree = id;
                else if (atomic_load(&b->err) == 0) {
                        b->root = id;
                        b->root_done = 1;
                }
                bk_dir_free(d);
                d = parent;
        }
}

/* ---- metadata ---- */

static char *user_name(struct bk *b, uid_t uid)
{
        char *s = NULL;

        pthread_mutex_lock(&b->namemu);
        if (!b->have_user || b->last_uid != uid) {
                struct passwd pw, *res = NULL;
                char buf[1024];

                b->last_user[0] = 0;
                if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
                        snprintf(b->last_user, sizeof(b->last_user), "%s", pw.pw_name);
                b->last_uid = uid;
                b->have_user = 1;
        }
        if (b->last_user[0])
                s = strdup(b->last_user);
        pthread_mutex_unlock(&b->namemu);
        return s;
}

static char *group_name(struct bk *b, gid_t gid)
{
        char *s = NULL;

        pthread_mutex_lock(&b->namemu);
        if (!b->have_group || b->last_gid != gid) {
                struct group gr, *res = NULL;
                char buf[4096];

                b->last_group[0] = 0;
                if (getgrgid_r(gid, &gr, buf, sizeof(buf), &res) == 0 && res)
                        snprintf(b->last_group, sizeof(b->last_group), "%s", gr.gr_name);
                b->last_gid = gid;
                b->have_group = 1;
        }
        if (b->last_group[0])
                s = strdup(b->last_group);
        pthread_mutex_unlock(&b->namemu);
        return s;
}

static int xattrs_read(const char *path, struct tm_node *nd)
{
        char names[XATTR_MAX];
        ssize_t len = llistxattr(path, names, sizeof(names));
        size_t cnt = 0;

        if (len <= 0)
                return 0; /* none, or not supported: not an error */
        for (ssize_t i = 0; i < len; i += (ssize_t)strlen(names + i) + 1)
                cnt++;
        nd->xattrs = calloc(cnt, sizeof(*nd->xattrs));
        if (!nd->xattrs)
                return -ENOMEM;
        for (ssize_t i = 0; i < len; i += (ssize_t)strlen(names + i) + 1) {
                const char *name = names + i;
                uint8_t val[XATTR_MAX];
                ssize_t vl = lgetxattr(path, name, val, sizeof(val));
                struct tm_xattr *x = &nd->xattrs[nd->n_xattrs];

                if (vl < 0 || !*name)
                        continue;
                x->name = strdup(name);
                x->value = malloc(vl ? (size_t)vl : 1);
                if (!x->name || !x->value) {
                        free(x->name);
                        free(x->value);
                        return -ENOMEM;
                }
                memcpy(x->value, val, (size_t)vl);
                x->len = (size_t)vl;
                nd->n_xattrs++;
        }
        return 0;
}

static uint8_t node_type(mode_t m)
{
        if (S_ISREG(m))
                return TM_NODE_FILE;
        if (S_ISDIR(m))
                return TM_NODE_DIR;
        if (S_ISLNK(m))
                return TM_NODE_SYMLINK;
        if (S_ISFIFO(m))
                return TM_NODE_FIFO;
        if (S_ISCHR(m))
                return TM_NODE_CHARDEV;
        if (S_ISBLK(m))
                return TM_NODE_BLOCKDEV;
        return TM_NODE_SOCKET;
}

static int node_fill(struct bk *b, const char *name, const char *path, const struct stat *st,
                     struct tm_node *nd)
{
        memset(nd, 0, sizeof(*nd));
        nd->name = strdup(name);
        if (!nd->name)
                return -ENOMEM;
        nd->type = node_type(st->st_mode);
        nd->mode = st->st_mode & 07777;
        nd->uid = st->st_uid;
        nd->gid = st->st_gid;
        nd->user = user_name(b, st->st_uid);
        nd->group = group_name(b, st->st_gid);
        nd->mtime_ns = (int64_t)st->st_mtim.tv_sec * TM_NSEC_PER_SEC + st->st_mtim.tv_nsec;
        nd->ctime_ns = (int64_t)st->st_ctim.tv_sec * TM_NSEC_PER_SEC + st->st_ctim.tv_nsec;
        nd->size = nd->type == TM_NODE_FILE ? (uint64_t)st->st_size : 0;
        nd->dev = st->st_dev;
        nd->inode = st->st_ino;
        nd->nlink = st->st_nlink;
        if (nd->type == TM_NODE_CHARDEV || nd->type == TM_NODE_BLOCKDEV)
                nd->rdev = st->st_rdev;
        if (nd->type == TM_NODE_SYMLINK) {
                char target[4097];
                ssize_t n = readlink(path, target, sizeof(target) - 1);

                if (n < 0)
                        return -errno;
                target[n] = 0;
                nd->target = strdup(target);
                if (!nd->target)
                        return -ENOMEM;
        }
        return xattrs_read(path, nd);
}

/* ---- reading files ---- */

struct worker {
        struct bk *b;
        uint8_t *buf;
        size_t cap;
        tm_buf scratch;
};

static int content_push(struct tm_content **arr, size_t *n, size_t *cap, const tm_id *id,
                        uint64_t size)
{
        if (*n == *cap) {
                size_t ncap = *cap ? *cap * 2 : 4;
                struct tm_content *p = realloc(*arr, ncap * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                *arr = p;
                *cap = ncap;
        }
        (*arr)[*n].id = *id;
        (*arr)[*n].size = size;
        (*n)++;
        return 0;
}

/* Read fd to the end, storing its chunks; fills nd->content and nd->size.
 * Returns 0, a read error (> -4096, the file is skipped) flagged by
 * *ret_read_error, or a repository error. */
/* Make room for `want` bytes from buf[start]: slide the window to the front,
 * or grow the buffer (up to twice the largest chunk). */
static int window_room(struct worker *w, size_t *start, size_t *end, size_t want)
{
        if (*start + want <= w->cap)
                return 0;
        if (*start > 0) {
                memmove(w->buf, w->buf + *start, *end - *start);
                *end -= *start;
                *start = 0;
        }
        if (want > w->cap) {
                uint8_t *p = realloc(w->buf, want);

                if (!p)
                        return -ENOMEM;
                w->buf = p;
                w->cap = want;
        }
        return 0;
}

/* Read fd to the end, storing its chunks; fills nd->content and nd->size.
 * A read error sets *ret_read_error (the caller skips the file); other
 * errors are the repository's.
 *
 * Memory: chunks average 1 MiB but may reach max (8 MiB), and a cut needs up
 * to max bytes of lookahead. Rather than keep max bytes buffered, read about
 * two average chunks and ask the chunker; a cut before the end of the window
 * is final (FastCDC cuts at the first boundary, whose position does not
 * depend on how much data follows), otherwise read more and ask again. */
static int file_store(struct worker *w, int fd, uint32_t fixed, struct tm_node *nd,
                      int *ret_read_error)
{
        struct bk *b = w->b;
        const struct tm_chunker_params *cp = tm_chunker_params(b->chunker);
        const size_t cdc_want = TM_MIN((size_t)cp->avg * 2, (size_t)cp->max);
        /* fixed blocks (opts->fixed_block_paths): read one block at a time */
        const size_t first_want = fixed ? fixed : cdc_want;
        struct tm_content *content = NULL;
        size_t n = 0, cap = 0, start = 0, end = 0, want = first_want;
        uint64_t total = 0, pos = 0, ra_next = 0;
        int eof = 0, r = 0;

        *ret_read_error = 0;
        for (;;) {
                size_t cut;
                tm_id id;

                r = window_room(w, &start, &end, want);
                if (r < 0)
                        goto out;
                while (!eof && end - start < want) {
                        ssize_t got;

                        /* Ask the kernel for the next 16 MiB while we hash this
                         * part: small reads of a cold file otherwise wait on
                         * the disk one window at a time. */
                        if (pos + READAHEAD / 2 >= ra_next) {
                                posix_fadvise(fd, (off_t)ra_next, READAHEAD, POSIX_FADV_WILLNEED);
                                ra_next += READAHEAD;
                        }
                        got = read(fd, w->buf + end, start + want - end);

                        if (got < 0) {
                                if (errno == EINTR)
                                        continue;
                                r = -errno;
                                *ret_read_error = 1;
                                goto out;
                        }
                        if (got == 0)
                                eof = 1;
                        end += (size_t)got;
                        pos += (uint64_t)got;
                        atomic_fetch_add(&b->bytes_read, (uint64_t)got);
                        atomic_fetch_add(&b->bytes_done, (uint64_t)got);
                }
                if (end == start)
                        break;
                if (fixed)
                        cut = TM_MIN((size_t)fixed, end - start); /* short only at EOF */
                else
                        cut = tm_chunker_cut(b->chunker, w->buf + start, end - start);
                if (!fixed && cut == end - start && !eof && cut < cp->max) {
                        want = TM_MIN(want * 2, (size_t)cp->max); /* no boundary yet */
                        continue;
                }
                r = blob_store(b, TM_BLOB_DATA, w->buf + start, cut, &id, &w->scratch);
                if (r < 0)
                        goto out;
                r = content_push(&content, &n, &cap, &id, cut);
                if (r < 0)
                        goto out;
                total += cut;
                start += cut;
                want = first_want;
                if (atomic_load(&b->err)) {
                        r = -ECANCELED;
                        goto out;
                }
        }
        nd->content = content;
        nd->n_content = n;
        nd->size = total; /* what was read is what restores */
        content = NULL;
out:
        free(content);
        if (w->cap > 2 * TM_MAX(cdc_want, first_want)) {
                /* a rare large chunk grew the buffer: give the memory back */
                uint8_t *p = realloc(w->buf, 2 * TM_MAX(cdc_want, first_want));

                if (p) {
                        w->buf = p;
                        w->cap = 2 * TM_MAX(cdc_want, first_want);
                }
        }
        if (w->scratch.cap > 4 * TM_MAX(cdc_want, first_want))
                tm_buf_dispose(&w->scratch);
        return r;
}

/* The fixed block size for a file (0: content-defined chunks). */
static uint32_t fixed_block_for(const struct tm_backup_opts *o, const char *path)
{
        for (size_t i = 0; i < o->n_fixed_block_paths; i++)
                if (fnmatch(o->fixed_block_paths[i], path, 0) == 0)
                        return o->fixed_block;
        return 0;
}

static void job_run(struct worker *w, struct bk_job *job)
{
        struct bk *b = w->b;
        struct tm_node *nd = &job->dir->tree.nodes[job->slot];
        int fd, r, read_err = 0;

        if (atomic_load(&b->err))
                goto done;
        fd = open(job->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOATIME);
        if (fd < 0 && errno == EPERM)
                fd = open(job->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                r = -errno;
                read_err = 1;
        } else {
                if (nd->size > READAHEAD / 4)
                        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
                r = file_store(w, fd, fixed_block_for(b->opts, job->path), nd, &read_err);
                close(fd);
        }
        if (r < 0 && read_err) {
                tm_log_errno(TM_LOG_WARN, r, "cannot read '%s', skipped", job->path);
                job->dir->failed[job->slot] = 1;
                atomic_fetch_add(&b->files_failed, 1);
        } else if (r < 0) {
                set_err(b, r);
        } else {
                atomic_fetch_add(&b->bytes, nd->size);
        }
done:
        atomic_fetch_add(&b->files_done, 1);
        dir_release(b, job->dir);
}

static void *worker_main(void *arg)
{
        struct worker *w = arg;
        struct bk *b = w->b;

        for (;;) {
                struct bk_job *job;

                pthread_mutex_lock(&b->qmu);
                while (!b->head && !b->closed)
                        pthread_cond_wait(&b->q_nonempty, &b->qmu);
                job = b->head;
                if (!job) {
                        pthread_mutex_unlock(&b->qmu);
                        break;
                }
                b->head = job->next;
                if (!b->head)
                        b->tail = NULL;
                b->qlen--;
                pthread_cond_signal(&b->q_nonfull);
                pthread_mutex_unlock(&b->qmu);
                job_run(w, job);
                free(job->path);
                free(job);
        }
        return NULL;
}

static int enqueue(struct bk *b, struct bk_dir *d, size_t slot, const char *path)
{
        struct bk_job *job = calloc(1, sizeof(*job));

        if (!job)
                return -ENOMEM;
        job->dir = d;
        job->slot = slot;
        job->path = strdup(path);
        if (!job->path) {
                free(job);
                return -ENOMEM;
        }
        atomic_fetch_add(&d->pending, 1);
        pthread_mutex_lock(&b->qmu);
        while (b->qlen >= QUEUE_MAX)
                pthread_cond_wait(&b->q_nonfull, &b->qmu);
        if (b->tail)
                b->tail->next = job;
        else
                b->head = job;
        b->tail = job;
        b->qlen++;
        pthread_cond_signal(&b->q_nonempty);
        pthread_mutex_unlock(&b->qmu);
        return 0;
}

/* ---- walking ---- */

static int excluded(struct bk *b, const char *name, const char *path)
{
        for (size_t i = 0; i < b->opts->n_excludes; i++) {
                const char *pat = b->opts->excludes[i];

                if (fnmatch(pat, name, 0) == 0 || fnmatch(pat, path, 0) == 0)
                        return 1;
        }
        return 0;
}

static int name_cmp(const void *x, const void *y)
{
        return strcmp(*(char *const *)x, *(char *const *)y);
}

static int unchanged(struct bk *b, const struct tm_node *old, const struct tm_node *nd)
{
        if (!old || old->type != TM_NODE_FILE || nd->type != TM_NODE_FILE)
                return 0;
        if (old->size != nd->size || old->mtime_ns != nd->mtime_ns ||
            old->ctime_ns != nd->ctime_ns || old->inode != nd->inode)
                return 0;
        for (size_t i = 0; i < old->n_content; i++)
                if (!tm_idset_has(&b->set, &old->content[i].id))
                        return 0;
        return 1;
}

static int dirjob_push(struct bk *b, struct bk_dir *parent, size_t slot, const char *path,
                       const tm_id *old);

/* Add one entry (already lstat'ed) to directory d. */
static int walk_entry(struct bk *b, struct bk_dir *d, const char *name, const char *path,
                      const struct stat *st, const struct tm_tree *old)
{
        size_t slot = d->tree.n;
        struct tm_node *nd = &d->tree.nodes[slot];
        const struct tm_node *on = old ? tm_tree_find(old, name) : NULL;
        int r;

        r = node_fill(b, name, path, st, nd);
        if (r < 0 && r != -ENOMEM) {
                tm_log_errno(TM_LOG_WARN, r, "cannot read '%s', skipped", path);
                tm_node_dispose(nd);
                atomic_fetch_add(&b->files_failed, 1);
                return 0;
        }
        if (r < 0) {
                tm_node_dispose(nd);
                return r;
        }
        d->tree.n++;
        switch (nd->type) {
        case TM_NODE_FILE:
                atomic_fetch_add(&b->n_files, 1);
                if (unchanged(b, on, nd)) {
                        nd->content = malloc(on->n_content * sizeof(*nd->content) + 1);
                        if (!nd->content)
                                return -ENOMEM;
                        if (on->n_content) /* an empty file has no content array */
                                memcpy(nd->content, on->content,
                                       on->n_content * sizeof(*nd->content));
                        nd->n_content = on->n_content;
                        atomic_fetch_add(&b->files_unmodified, 1);
                        atomic_fetch_add(&b->files_done, 1);
                        atomic_fetch_add(&b->bytes_done, nd->size);
                        atomic_fetch_add(&b->bytes, nd->size);
                        return 0;
                }
                atomic_fetch_add(on ? &b->files_changed : &b->files_new, 1);
                return enqueue(b, d, slot, path);
        case TM_NODE_DIR:
                atomic_fetch_add(&b->n_dirs, 1);
                /* the child's completion releases this hold on d */
                atomic_fetch_add(&d->pending, 1);
                return dirjob_push(b, d, slot, path,
                                   on && on->type == TM_NODE_DIR ? &on->subtree : NULL);
        default:
                atomic_fetch_add(&b->n_others, 1);
                return 0;
        }
}

/* Walk directory dpath, whose node is parent's slot (or the root when
 * parent is NULL). Always releases exactly one hold on parent (via the
 * child's completion). */
static int walk_dir(struct bk *b, struct bk_dir *parent, size_t slot, const char *dpath,
                    const struct tm_tree *old)
{
        struct bk_dir *d = NULL;
        char **names = NULL, *path = NULL;
        size_t n = 0, cap = 0, plen = strlen(dpath);
        DIR *dir = NULL;
        struct dirent *de;
        int r = 0;

        dir = opendir(dpath);
        if (!dir) {
                tm_log_errno(TM_LOG_WARN, -errno, "cannot read directory '%s', stored empty",
                             dpath);
                atomic_fetch_add(&b->files_failed, 1);
        }
        while (dir && (de = readdir(dir))) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 32;
                        char **p = realloc(names, ncap * sizeof(*p));

                        if (!p) {
                                r = -ENOMEM;
                                goto out;
                        }
                        names = p;
                        cap = ncap;
                }
                names[n] = strdup(de->d_name);
                if (!names[n]) {
                        r = -ENOMEM;
                        goto out;
                }
                n++;
        }
        if (n)
                qsort(names, n, sizeof(*names), name_cmp);
        r = dir_alloc(parent, slot, n, &d);
        if (r < 0)
                goto out;
        path = malloc(plen + 4096 + 2);
        if (!path) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n && !atomic_load(&b->err); i++) {
                struct stat st;

                if (strlen(names[i]) > 4095)
                        continue;
                snprintf(path, plen + 4096 + 2, "%s%s%s", dpath,
                         plen && dpath[plen - 1] == '/' ? "" : "/", names[i]);
                if (excluded(b, names[i], path))
                        continue;
                /* relative to the open directory: no path walk per entry */
                if (fstatat(dirfd(dir), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno != ENOENT) { /* vanished meanwhile: not a failure */
                                tm_log_errno(TM_LOG_WARN, -errno, "cannot stat '%s', skipped",
                                             path);
                                atomic_fetch_add(&b->files_failed, 1);
                        }
                        continue;
                }
                r = walk_entry(b, d, names[i], path, &st, old);
                if (r < 0)
                        break;
        }
out:
        if (r < 0)
                set_err(b, r);
        if (d)
                dir_release(b, d); /* the walker's hold; completes d if nothing is pending */
        else if (parent)
                dir_release(b, parent);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        free(path);
        if (dir)
                closedir(dir);
        return r;
}

static int dirjob_push(struct bk *b, struct bk_dir *parent, size_t slot, const char *path,
                       const tm_id *old)
{
        struct bk_dirjob *job = calloc(1, sizeof(*job));

        if (job)
                job->path = strdup(path);
        if (!job || !job->path) {
                free(job);
                if (parent)
                        dir_release(b, parent);
                return -ENOMEM;
        }
        job->parent = parent;
        job->slot = slot;
        if (old) {
                job->has_old = 1;
                job->old = *old;
        }
        pthread_mutex_lock(&b->dmu);
        job->next = b->dirs;
        b->dirs = job;
        b->dirs_active++;
        pthread_cond_signal(&b->dcv);
        pthread_mutex_unlock(&b->dmu);
        return 0;
}

/* Directories are walked by several threads: on a cold cache the walk is a
 * chain of metadata reads, and one thread would leave the disk idle. */
static void *walker_main(void *arg)
{
        struct bk *b = arg;

        for (;;) {
                struct bk_dirjob *job;
                struct tm_tree old = TM_TREE_INIT;
                const struct tm_tree *po = NULL;

                pthread_mutex_lock(&b->dmu);
                while (!b->dirs && b->dirs_active > 0)
                        pthread_cond_wait(&b->dcv, &b->dmu);
                job = b->dirs;
                if (!job) {
                        pthread_mutex_unlock(&b->dmu);
                        break;
                }
                b->dirs = job->next;
                pthread_mutex_unlock(&b->dmu);
                if (job->has_old && !atomic_load(&b->err) &&
                    tm_repo_tree_load(b->repo, &job->old, &old) == 0)
                        po = &old;
                walk_dir(b, job->parent, job->slot, job->path, po);
                tm_tree_dispose(&old);
                free(job->path);
                free(job);
                pthread_mutex_lock(&b->dmu);
                if (--b->dirs_active == 0)
                        pthread_cond_broadcast(&b->dcv);
                pthread_mutex_unlock(&b->dmu);
        }
        return NULL;
}

#define WALKERS 4

static void walk_all(struct bk *b)
{
        pthread_t t[WALKERS];
        int started = 0;

        for (; started < WALKERS - 1; started++)
                if (pthread_create(&t[started], NULL, walker_main, b) != 0)
                        break;
        walker_main(b);
        for (int i = 0; i < started; i++)
                pthread_join(t[i], NULL);
}

/* ---- progress ---- */

static void report(void *arg)
{
        struct bk *b = arg;

        struct tm_progress p = {
                .phase = "backup",
                .files_done = atomic_load(&b->files_done),
                .files_total = atomic_load(&b->files_total),
                .bytes_done = atomic_load(&b->bytes_done),
                .bytes_total = atomic_load(&b->bytes_total),
                .elapsed_ns = tm_time_mono() - b->start,
                .totals_final = atomic_load(&b->scan_done),
        };

        b->opts->progress(&p, b->opts->userdata);
}

/* ---- the run ---- */

static int load_known(const tm_id *blob, const tm_id *pack, const struct tm_pack_entry *e, void *ud)
{
        (void)pack;
        (void)e;
        return tm_idset_insert(ud, blob) < 0 ? -ENOMEM : 0;
}

static int find_parent(tm_repo *repo, const struct tm_backup_opts *o, struct tm_snapshot *ret)
{
        struct tm_snapshot *a = NULL;
        size_t n = 0;
        int r, found = -ENOENT;

        if (strcmp(o->strategy, "full") == 0)
                return -ENOENT;
        r = tm_repo_snapshot_list(repo, o->component, &a, &n);
        if (r < 0)
                return r;
        for (size_t i = n; i-- > 0;) {
                if (strcmp(o->strategy, "differential") == 0 && strcmp(a[i].strategy, "full") != 0)
                        continue;
                found = tm_snapshot_copy(&a[i], ret);
                if (found == 0)
                        ret->id = a[i].id;
                break;
        }
        tm_snapshot_array_free(a, n);
        return found;
}

static int valid_strategy(const char *s)
{
        return s && (strcmp(s, "full") == 0 || strcmp(s, "incremental") == 0 ||
                     strcmp(s, "differential") == 0 || strcmp(s, "continuous") == 0);
}

/* Back up the roots: one directory is the root itself; otherwise a
 * synthetic root holds each path by its basename. */
static int walk_roots(struct bk *b, const tm_id *old_id, const struct tm_tree *old)
{
        const struct tm_backup_opts *o = b->opts;
        struct bk_dir *root = NULL;
        struct stat st;
        int r;

        if (o->n_paths == 1 && stat(o->paths[0], &st) == 0 && S_ISDIR(st.st_mode)) {
                r = dirjob_push(b, NULL, 0, o->paths[0], old_id);
                if (r == 0)
                        walk_all(b);
                return r;
        }
        r = dir_alloc(NULL, 0, o->n_paths, &root);
        if (r < 0)
                return r;
        for (size_t i = 0; i < o->n_paths && r >= 0; i++) {
                char *copy = strdup(o->paths[i]), *base;
                size_t len;

                if (!copy) {
                        r = -ENOMEM;
                        break;
                }
                len = strlen(copy);
                while (len > 1 && copy[len - 1] == '/')
                        copy[--len] = 0;
                base = strrchr(copy, '/');
                base = base && base[1] ? base + 1 : copy;
                if (strcmp(base, "/") == 0)
                        base = "root";
                if (lstat(o->paths[i], &st) < 0) {
                        r = tm_log_errno(TM_LOG_ERR, -errno, "cannot back up '%s'", o->paths[i]);
                } else if (!tm_tree_name_valid(base)) {
                        r = tm_log_errno(TM_LOG_ERR, -EINVAL, "cannot name '%s' in a snapshot",
                                         o->paths[i]);
                } else {
                        int dup = 0;

                        /* the root is not sorted yet: a linear check */
                        for (size_t k = 0; k < root->tree.n; k++)
                                if (strcmp(root->tree.nodes[k].name, base) == 0)
                                        dup = 1;
                        if (dup)
                                r = tm_log_errno(TM_LOG_ERR, -EINVAL,
                                                 "two paths share the name '%s'", base);
                        else
                                r = walk_entry(b, root, base, o->paths[i], &st, old);
                }
                free(copy);
        }
        if (r < 0)
                set_err(b, r);
        dir_release(b, root);
        walk_all(b);
        return r;
}

static int stdin_store(struct bk *b)
{
        const struct tm_backup_opts *o = b->opts;
        struct worker w = { .b = b, .scratch = TM_BUF_INIT(0) };
        struct bk_dir *root = NULL;
        struct tm_node *nd;
        int r, read_err = 0;

        if (!o->stdin_filename || !tm_tree_name_valid(o->stdin_filename))
                return -EINVAL;
        r = dir_alloc(NULL, 0, 1, &root);
        if (r < 0)
                return r;
        w.cap = (size_t)tm_chunker_params(b->chunker)->avg * 4;
        w.buf = malloc(w.cap);
        nd = &root->tree.nodes[0];
        nd->name = strdup(o->stdin_filename);
        if (!w.buf || !nd->name) {
                r = -ENOMEM;
                goto out;
        }
        root->tree.n = 1;
        nd->type = TM_NODE_FILE;
        nd->mode = 0644;
        nd->uid = geteuid();
        nd->gid = getegid();
        nd->user = user_name(b, nd->uid);
        nd->group = group_name(b, nd->gid);
        nd->mtime_ns = nd->ctime_ns = tm_time_now();
        nd->nlink = 1;
        r = file_store(&w, o->stdin_fd, 0, nd, &read_err);
        if (r < 0)
                tm_log_errno(TM_LOG_ERR, r, "cannot read standard input");
        else {
                atomic_fetch_add(&b->n_files, 1);
                atomic_fetch_add(&b->files_new, 1);
                atomic_fetch_add(&b->bytes, nd->size);
        }
out:
        if (r < 0)
                set_err(b, r);
        dir_release(b, root);
        free(w.buf);
        tm_buf_dispose(&w.scratch);
        return r;
}

/* The scanner only counts (files, bytes) so that progress can show totals
 * and an ETA; it runs beside the walker and never blocks it. */
static void scan_rec(struct bk *b, const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        char p[8192];

        if (!d)
                return;
        while ((de = readdir(d)) && !atomic_load(&b->err)) {
                struct stat st;

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
                if (lstat(p, &st) < 0 || excluded(b, de->d_name, p))
                        continue;
                if (S_ISDIR(st.st_mode))
                        scan_rec(b, p);
                else if (S_ISREG(st.st_mode)) {
                        atomic_fetch_add(&b->files_total, 1);
                        atomic_fetch_add(&b->bytes_total, (uint64_t)st.st_size);
                }
        }
        closedir(d);
}

static void *scanner_main(void *arg)
{
        struct bk *b = arg;

        for (size_t i = 0; i < b->opts->n_paths; i++) {
                struct stat st;

                if (lstat(b->opts->paths[i], &st) < 0)
                        continue;
                if (S_ISDIR(st.st_mode))
                        scan_rec(b, b->opts->paths[i]);
                else if (S_ISREG(st.st_mode)) {
                        atomic_fetch_add(&b->files_total, 1);
                        atomic_fetch_add(&b->bytes_total, (uint64_t)st.st_size);
                }
        }
        atomic_store(&b->scan_done, 1);
        return NULL;
}

int tm_backup_run(tm_repo *repo, const struct tm_backup_opts *o, struct tm_snapshot *ret)
{
        struct bk *b = NULL;
        struct worker *workers = NULL;
        pthread_t *threads = NULL;
        struct tm_ticker tick = { 0 };
        pthread_t scanner;
        int scanner_started = 0;
        struct tm_snapshot parent = { 0 }, snap = { 0 };
        struct tm_tree oldroot = TM_TREE_INIT;
        tm_lock *lock = NULL;
        int nthreads = 0, started = 0, have_parent = 0, r;
        uint64_t nblobs = 0;
        char host[256];

        if (!o->component || !*o->component || !valid_strategy(o->strategy) ||
            (o->stdin_fd < 0 && o->n_paths == 0) ||
            (o->stdin_fd >= 0 && (!o->stdin_filename || !tm_tree_name_valid(o->stdin_filename))) ||
            (o->n_fixed_block_paths && (o->fixed_block < 4096 || o->fixed_block > TM_BLOB_MAX)))
                return -EINVAL;
        b = calloc(1, sizeof(*b));
        if (!b)
                return -ENOMEM;
        b->repo = repo;
        b->opts = o;
        b->chunker = tm_repo_chunker(repo);
        b->level = tm_repo_compression_level(repo);
        b->start = tm_time_mono();
        b->idx = TM_INDEX_INIT;
        pthread_mutex_init(&b->qmu, NULL);
        pthread_cond_init(&b->q_nonempty, NULL);
        pthread_cond_init(&b->q_nonfull, NULL);
        pthread_mutex_init(&b->packmu, NULL);
        pthread_mutex_init(&b->idxmu, NULL);
        pthread_mutex_init(&b->namemu, NULL);
        pthread_mutex_init(&b->dmu, NULL);
        pthread_cond_init(&b->dcv, NULL);

        r = tm_repo_lock_writer(repo, 3600, &lock);
        if (r < 0)
                goto out;
        /* see other writers' snapshots and packs, and adopt what a crashed
         * backup left, before deciding what is already stored */
        r = tm_repo_refresh(repo);
        if (r < 0)
                goto out;
        r = tm_repo_adopt_orphan_packs(repo);
        if (r < 0)
                goto out;
        tm_catalog_blob_count(tm_repo_catalog(repo), &nblobs);
        r = tm_idset_init(&b->set, nblobs + 4096);
        if (r < 0)
                goto out;
        /* blobs only in cold/archive packs are not known: stored afresh, hot */
        r = tm_repo_blob_foreach_dedup(repo, load_known, &b->set, NULL);
        if (r < 0)
                goto out;
        for (int t = 0; t < 2; t++) {
                r = tm_pack_writer_new(tm_repo_key(repo), t, &b->writer[t]);
                if (r < 0)
                        goto out;
        }
        if (o->stdin_fd < 0 && find_parent(repo, o, &parent) == 0) {
                have_parent = 1;
                if (tm_repo_tree_load(repo, &parent.tree, &oldroot) < 0) {
                        tm_log(TM_LOG_WARN, "parent snapshot's tree cannot be read; reading all");
                        tm_tree_dispose(&oldroot);
                }
        }

        nthreads = o->threads > 0 ? o->threads : TM_MAX(4, 2 * tm_ncpu());
        workers = calloc((size_t)nthreads, sizeof(*workers));
        threads = calloc((size_t)nthreads, sizeof(*threads));
        if (!workers || !threads) {
                r = -ENOMEM;
                goto out;
        }
        for (int i = 0; i < nthreads; i++) {
                workers[i].b = b;
                workers[i].cap = (size_t)tm_chunker_params(b->chunker)->avg * 4;
                workers[i].buf = malloc(workers[i].cap);
                workers[i].scratch = TM_BUF_INIT(0);
                if (!workers[i].buf) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        for (; started < nthreads; started++)
                if (pthread_create(&threads[started], NULL, worker_main, &workers[started]) != 0)
                        break;
        if (started == 0) {
                r = -EAGAIN;
                goto out;
        }
        if (o->progress) {
                tm_ticker_start(&tick, TM_NSEC_PER_SEC / 4, report, b);
                if (o->stdin_fd < 0 && pthread_create(&scanner, NULL, scanner_main, b) == 0)
                        scanner_started = 1;
        }

        if (o->stdin_fd >= 0)
                stdin_store(b);
        else
                walk_roots(b, have_parent ? &parent.tree : NULL,
                           oldroot.n || have_parent ? &oldroot : NULL);
        pthread_mutex_lock(&b->qmu);
        b->closed = 1;
        pthread_cond_broadcast(&b->q_nonempty);
        pthread_mutex_unlock(&b->qmu);
        for (int i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        started = 0;
        if (scanner_started) {
                pthread_join(scanner, NULL);
                scanner_started = 0;
        }
        if (tick.started) {
                tm_ticker_stop(&tick);
                report(b);
        }
        r = atomic_load(&b->err);
        if (r == 0 && !b->root_done)
                r = -EIO;
        if (r < 0)
                goto out;
        /* trees were written last; flush both writers, then the index */
        for (int t = 0; t < 2 && r == 0; t++)
                r = flush_writer(b, b->writer[t], t);
        if (r == 0 && b->idx.n_packs > 0)
                r = tm_repo_index_save(repo, &b->idx, NULL);
        if (r < 0)
                goto out;

        snap.time = o->time ? o->time : tm_time_now();
        if (o->host) {
                snprintf(host, sizeof(host), "%s", o->host);
        } else if (gethostname(host, sizeof(host)) < 0) {
                snprintf(host, sizeof(host), "unknown");
        }
        host[sizeof(host) - 1] = 0;
        snap.host = strdup(host);
        snap.username = user_name(b, geteuid());
        snap.component = strdup(o->component);
        snap.strategy = strdup(o->strategy);
        if (!snap.host || !snap.component || !snap.strategy) {
                r = -ENOMEM;
                goto out;
        }
        if (have_parent) {
                snap.has_parent = 1;
                snap.parent = parent.id;
        }
        snap.tree = b->root;
        for (size_t i = 0; i < o->n_paths && r == 0; i++) {
                char *abs = realpath(o->paths[i], NULL);

                r = tm_snapshot_add_path(&snap, abs ? abs : o->paths[i]);
                free(abs);
        }
        if (o->stdin_fd >= 0 && r == 0)
                r = tm_snapshot_add_path(&snap, "-");
        for (size_t i = 0; i < o->n_tags && r == 0; i++)
                r = tm_snapshot_add_tag(&snap, o->tags[i]);
        if (o->extra_json && r == 0 && !(snap.extra_json = strdup(o->extra_json)))
                r = -ENOMEM;
        if (r < 0)
                goto out;
        snap.summary = (struct tm_snapshot_summary){
                .files = atomic_load(&b->n_files) - atomic_load(&b->files_failed),
                .dirs = atomic_load(&b->n_dirs),
                .others = atomic_load(&b->n_others),
                .files_new = atomic_load(&b->files_new),
                .files_changed = atomic_load(&b->files_changed),
                .files_unmodified = atomic_load(&b->files_unmodified),
                .files_failed = atomic_load(&b->files_failed),
                .bytes = atomic_load(&b->bytes),
                .bytes_read = atomic_load(&b->bytes_read),
                .blobs_added = atomic_load(&b->blobs_added),
                .bytes_added = atomic_load(&b->bytes_added),
                .bytes_stored = atomic_load(&b->bytes_stored),
                .duration_ns = tm_time_mono() - b->start,
        };
        r = tm_repo_snapshot_save(repo, &snap);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot write snapshot to repository '%s'",
                             tm_repo_location(repo));
                goto out;
        }
        *ret = snap;
        memset(&snap, 0, sizeof(snap));
        r = atomic_load(&b->files_failed) ? TM_BACKUP_PARTIAL : 0;
out:
        if (started) {
                set_err(b, r < 0 ? r : -ECANCELED);
                pthread_mutex_lock(&b->qmu);
                b->closed = 1;
                pthread_cond_broadcast(&b->q_nonempty);
                pthread_mutex_unlock(&b->qmu);
                for (int i = 0; i < started; i++)
                        pthread_join(threads[i], NULL);
        }
        tm_ticker_stop(&tick);
        if (scanner_started)
                pthread_join(scanner, NULL);
        for (int i = 0; workers && i < nthreads; i++) {
                free(workers[i].buf);
                tm_buf_dispose(&workers[i].scratch);
        }
        free(workers);
        free(threads);
        tm_snapshot_dispose(&snap);
        tm_snapshot_dispose(&parent);
        tm_tree_dispose(&oldroot);
        tm_lock_release(lock);
        if (b) {
                for (int t = 0; t < 2; t++)
                        tm_pack_writer_free(b->writer[t]);
                tm_index_dispose(&b->idx);
                tm_idset_dispose(&b->set);
                pthread_mutex_destroy(&b->qmu);
                pthread_cond_destroy(&b->q_nonempty);
                pthread_cond_destroy(&b->q_nonfull);
                pthread_mutex_destroy(&b->packmu);
                pthread_mutex_destroy(&b->idxmu);
                pthread_mutex_destroy(&b->namemu);
                pthread_mutex_destroy(&b->dmu);
                pthread_cond_destroy(&b->dcv);
                free(b);
        }
        return r;
}
