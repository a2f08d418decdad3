/*
 * restore: write a snapshot's tree under a target directory, never outside
 * it. The walker (calling thread) creates directories, symlinks, fifos and
 * devices through directory descriptors opened with O_NOFOLLOW, and queues
 * file contents to workers in parts of about PART_BYTES. Workers reach the
 * target's subdirectories with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS),
 * write each file under a temporary name, and rename it into place only when
 * every blob of it verified: a damaged blob never leaves wrong bytes behind.
 * Hard links and directory metadata come last.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <tidemark/log.h>
#include <tidemark/ops.h>
#include <tidemark/time.h>

#include "core/ticker.h"

#define PART_BYTES (32u * 1024 * 1024)
#define QUEUE_MAX  256
/* One read of a run of blobs: large enough that a request's latency is
 * small beside its transfer, small enough for a buffer per worker. */
#define RUN_BYTES  (8u * 1024 * 1024)
/* Bytes no file of the job needs that a run may read across: blobs of one
 * directory lie close together in a pack, not always back to back (a
 * backup's workers interleave their files' blobs). */
#define GAP_BYTES  (1u * 1024 * 1024)
/* Workers for a remote repository, where each waits on a request most of
 * its time (the S3 backend keeps up to 16 connections). */
#define REMOTE_THREADS 12
/* Files up to SMALL_FILE are restored BATCH_FILES at a time (QUEUE_MAX
 * counts files: each holds its directory's descriptor while queued). */
#define SMALL_FILE  (1u * 1024 * 1024)
#define BATCH_FILES 32

/* A directory descriptor shared by the files queued from it, so workers
 * need no path resolution per file; closed by the last user. */
struct rs_dirref {
        int fd;
        atomic_int refs;
};

static void dirref_unref(struct rs_dirref *d)
{
        if (d && atomic_fetch_sub(&d->refs, 1) == 1) {
                close(d->fd);
                free(d);
        }
}

struct rs_file {
        char *dir; /* parent, relative to target ("" for the target itself) */
        char *name;
        char tmp[96];
        struct tm_node node; /* copy */
        pthread_mutex_t mu;
        int fd, dirfd;
        int parts_left;
        int failed;
        int direct; /* written under its final name (it did not exist) */
        struct rs_dirref *dref;
};

struct rs_job {
        struct rs_file *f;
        size_t first, count; /* content blobs */
        uint64_t offset;
        size_t left;          /* job_run: its blobs not yet handled */
        struct rs_job *batch; /* the next file of a batch (one queue entry) */
        size_t nfiles;        /* the batch's head: files in it */
        struct rs_job *next;
};

struct rs_dirmeta {
        char *path;
        struct tm_node node;
};

struct rs_link {
        char *path; /* the link to create */
        uint64_t dev, inode;
};

struct rs {
        tm_repo *repo;
        const struct tm_restore_opts *o;
        int targetfd;
        int as_root;

        pthread_mutex_t qmu;
        pthread_cond_t q_nonempty, q_nonfull;
        struct rs_job *head, *tail;
        size_t qlen; /* files queued */
        int closed;
        /* small files gathered by the walker into one queue entry */
        struct rs_job *batch, *batch_tail;
        size_t batch_files;
        uint64_t batch_bytes;

        pthread_mutex_t mu; /* dirs, links, firsts */
        struct rs_dirmeta *dirs;
        size_t n_dirs, cap_dirs;
        struct rs_link *links;
        size_t n_links, cap_links;
        struct rs_link *firsts; /* first path restored for each (dev, inode) */
        size_t n_firsts, cap_firsts;

        atomic_uint_fast64_t files, dirs_n, others, bytes, failed;
        atomic_uint_fast64_t files_total, bytes_total;
        atomic_int fatal;
        atomic_int walk_done;
        int64_t start;
};

static int open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
        struct open_how how = {
                .flags = (uint64_t)flags | O_CLOEXEC,
                .mode = (flags & O_CREAT) ? mode : 0,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        long fd;

        if (!*path)
                path = ".";
        fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        return fd < 0 ? -errno : (int)fd;
}

static char *join(const char *a, const char *b)
{
        size_t la = strlen(a), lb = strlen(b);
        char *s = malloc(la + lb + 2);

        if (!s)
                return NULL;
        if (la) {
                memcpy(s, a, la);
                s[la] = '/';
                memcpy(s + la + 1, b, lb + 1);
        } else {
                memcpy(s, b, lb + 1);
        }
        return s;
}

/* ---- metadata ---- */

static void set_xattrs(int fd, const struct tm_node *nd, const char *what)
{
        for (size_t i = 0; i < nd->n_xattrs; i++) {
                const struct tm_xattr *x = &nd->xattrs[i];

                if (fsetxattr(fd, x->name, x->value, x->len, 0) < 0 && errno != ENOTSUP)
                        tm_log_errno(TM_LOG_WARN, -errno, "cannot set xattr '%s' on '%s'", x->name,
                                     what);
        }
}

static void meta_fd(struct rs *s, int fd, const struct tm_node *nd, const char *what)
{
        struct timespec ts[2];

        if (s->as_root && fchown(fd, nd->uid, nd->gid) < 0)
                tm_log_errno(TM_LOG_WARN, -errno, "cannot chown '%s'", what);
        if (fchmod(fd, nd->mode & 07777) < 0)
                tm_log_errno(TM_LOG_WARN, -errno, "cannot chmod '%s'", what);
        set_xattrs(fd, nd, what);
        ts[0].tv_sec = ts[1].tv_sec = nd->mtime_ns / TM_NSEC_PER_SEC;
        ts[0].tv_nsec = ts[1].tv_nsec = nd->mtime_ns % TM_NSEC_PER_SEC;
        if (ts[0].tv_nsec < 0) {
                ts[0].tv_sec--;
                ts[1].tv_sec--;
                ts[0].tv_nsec = ts[1].tv_nsec = ts[0].tv_nsec + TM_NSEC_PER_SEC;
        }
        if (futimens(fd, ts) < 0)
                tm_log_errno(TM_LOG_WARN, -errno, "cannot set times of '%s'", what);
}

/* Metadata for entries that cannot be opened for writing (symlinks, fifos,
 * devices): by name relative to their parent's descriptor, never following. */
static void meta_at(struct rs *s, int dirfd, const char *name, const struct tm_node *nd,
                    const char *what)
{
        struct timespec ts[2];

        if (s->as_root && fchownat(dirfd, name, nd->uid, nd->gid, AT_SYMLINK_NOFOLLOW) < 0)
                tm_log_errno(TM_LOG_WARN, -errno, "cannot chown '%s'", what);
        if (nd->type != TM_NODE_SYMLINK) {
                int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);

                if (fd >= 0) {
                        char p[64];

                        /* chmod through the O_PATH descriptor: no path re-resolution */
                        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
                        if (chmod(p, nd->mode & 07777) < 0)
                                tm_log_errno(TM_LOG_WARN, -errno, "cannot chmod '%s'", what);
                        for (size_t i = 0; i < nd->n_xattrs; i++)
                                if (setxattr(p, nd->xattrs[i].name, nd->xattrs[i].value,
                                             nd->xattrs[i].len, 0) < 0 &&
                                    errno != ENOTSUP && errno != EPERM)
                                        tm_log_errno(TM_LOG_WARN, -errno,
                                                     "cannot set xattr '%s' on '%s'",
                                                     nd->xattrs[i].name, what);
                        close(fd);
                }
        }
        ts[0].tv_sec = ts[1].tv_sec = nd->mtime_ns / TM_NSEC_PER_SEC;
        ts[0].tv_nsec = ts[1].tv_nsec = nd->mtime_ns % TM_NSEC_PER_SEC;
        if (ts[0].tv_nsec < 0) {
                ts[0].tv_sec--;
                ts[1].tv_sec--;
                ts[0].tv_nsec = ts[1].tv_nsec = ts[0].tv_nsec + TM_NSEC_PER_SEC;
        }
        if (utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
                tm_log_errno(TM_LOG_WARN, -errno, "cannot set times of '%s'", what);
}

/* ---- files ---- */

static void file_free(struct rs_file *f)
{
        if (!f)
                return;
        free(f->dir);
        free(f->name);
        dirref_unref(f->dref);
        tm_node_dispose(&f->node);
        pthread_mutex_destroy(&f->mu);
        free(f);
}

static int file_open_locked(struct rs *s, struct rs_file *f)
{
        uint8_t rnd[8];
        char hex[17];
        int r;

        if (f->fd >= 0)
                return 0;
        f->dirfd = f->dref->fd;
        /* Most names are new in the target: create them directly, which
         * halves the directory updates of a large restore. A failure still
         * removes the file (file_finish). An existing entry is never
         * truncated in place: it is replaced by a rename once the new
         * contents are complete. */
        r = openat(f->dirfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (r >= 0) {
                f->fd = r;
                f->direct = 1;
                goto sized;
        }
        if (errno != EEXIST)
                return -errno;
        tm_crypto_random(rnd, sizeof(rnd));
        tm_hex_encode(rnd, sizeof(rnd), hex);
        snprintf(f->tmp, sizeof(f->tmp), ".tidemark-restore-%s", hex);
        r = openat(f->dirfd, f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (r < 0)
                return -errno;
        f->fd = r;
sized:
        if (f->node.size && ftruncate(f->fd, (off_t)f->node.size) < 0)
                return -errno;
        return 0;
}

static int link_first_add(struct rs *s, const char *path, const struct tm_node *nd)
{
        struct rs_link *l;

        pthread_mutex_lock(&s->mu);
        if (s->n_firsts == s->cap_firsts) {
                size_t ncap = s->cap_firsts ? s->cap_firsts * 2 : 64;
                struct rs_link *p = realloc(s->firsts, ncap * sizeof(*p));

                if (!p) {
                        pthread_mutex_unlock(&s->mu);
                        return -ENOMEM;
                }
                s->firsts = p;
                s->cap_firsts = ncap;
        }
        l = &s->firsts[s->n_firsts];
        l->path = strdup(path);
        l->dev = nd->dev;
        l->inode = nd->inode;
        if (l->path)
                s->n_firsts++;
        pthread_mutex_unlock(&s->mu);
        return l->path ? 0 : -ENOMEM;
}

/* The last part of a file to finish puts it in place (or removes it). */
static void file_finish(struct rs *s, struct rs_file *f)
{
        char *path = join(f->dir, f->name);
        const char *what = path ? path : f->name;

        if (f->fd >= 0 && !f->failed) {
                meta_fd(s, f->fd, &f->node, what);
                if (!f->direct && renameat(f->dirfd, f->tmp, f->dirfd, f->name) < 0) {
                        tm_log_errno(TM_LOG_ERR, -errno, "cannot restore '%s'", what);
                        f->failed = 1;
                }
        }
        if (f->failed) {
                if (f->fd >= 0)
                        unlinkat(f->dirfd, f->direct ? f->name : f->tmp, 0);
                atomic_fetch_add(&s->failed, 1);
        } else {
                atomic_fetch_add(&s->files, 1);
                if (f->node.nlink > 1 && path)
                        link_first_add(s, path, &f->node);
        }
        if (f->fd >= 0)
                close(f->fd);
        free(path);
        file_free(f);
}

/* One blob to write: where it comes from and where it goes. */
struct rs_item {
        tm_id pack;
        struct tm_pack_entry e;
        struct rs_job *job;
        const struct tm_content *c;
        uint64_t off; /* in the file */
};

struct rs_write {
        struct rs *s;
        const struct rs_item *items;
        const size_t *grp; /* the run's first blob: its items are grp[0]..grp[1] */
        size_t done;       /* blobs of the run handled */
};

/* Open the job's file if it is not yet (the first part to write opens it).
 * Returns 0, or -1 when the file has failed. */
static int job_file_ready(struct rs *s, struct rs_job *job)
{
        struct rs_file *f = job->f;
        int r = 0;

        pthread_mutex_lock(&f->mu);
        if (!f->failed && f->fd < 0) {
                r = file_open_locked(s, f);
                if (r < 0) {
                        char *p = join(f->dir, f->name);

                        tm_log_errno(TM_LOG_ERR, r, "cannot create '%s' in the target",
                                     p ? p : f->name);
                        free(p);
                        f->failed = 1;
                }
        }
        r = f->failed ? -1 : 0;
        pthread_mutex_unlock(&f->mu);
        return r;
}

static void job_fail(struct rs_job *job)
{
        pthread_mutex_lock(&job->f->mu);
        job->f->failed = 1;
        pthread_mutex_unlock(&job->f->mu);
}

/* A part is done: the last one puts the file in place (or removes it). The
 * job is freed unless it is the queue entry (its worker frees that). */
static void job_done(struct rs *s, struct rs_job *job, const struct rs_job *head)
{
        struct rs_file *f = job->f;
        int last;

        if (job->count == 0)
                job_file_ready(s, job); /* an empty file is created all the same */
        pthread_mutex_lock(&f->mu);
        last = --f->parts_left == 0;
        pthread_mutex_unlock(&f->mu);
        if (last)
                file_finish(s, f);
        if (job != head)
                free(job);
}

/* One item handled (written, skipped or failed): a job with none left is
 * done, so a file is put in place, and closed, as soon as it is whole. */
static void item_done(struct rs *s, const struct rs_item *it, const struct rs_job *head)
{
        if (--it->job->left == 0)
                job_done(s, it->job, head);
}

static void blob_failed(struct rs_job *job, const struct tm_content *c, int r)
{
        struct rs_file *f = job->f;
        char *p = join(f->dir, f->name), hex[TM_ID_HEX_LEN + 1];

        tm_id_hex(&c->id, hex);
        tm_log_errno(TM_LOG_ERR, r, "cannot restore '%s': blob %s", p ? p : f->name, hex);
        free(p);
        job_fail(job);
}

static void item_write(struct rs *s, const struct rs_item *it, const tm_buf *plain)
{
        struct rs_file *f = it->job->f;
        int r;

        if (job_file_ready(s, it->job) < 0)
                return; /* this file failed; the run goes on for the others */
        for (size_t at = 0; at < plain->len;) {
                ssize_t n = pwrite(f->fd, plain->data + at, plain->len - at, (off_t)(it->off + at));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        char *p = join(f->dir, f->name);

                        r = n < 0 ? -errno : -EIO;
                        tm_log_errno(TM_LOG_ERR, r, "cannot write '%s'", p ? p : f->name);
                        free(p);
                        job_fail(it->job);
                        if (r == -ENOSPC)
                                atomic_store(&s->fatal, r);
                        return;
                }
                at += (size_t)n;
        }
        atomic_fetch_add(&s->bytes, it->c->size);
}

/* Blob i of the run: written wherever the job's files hold it (a blob may
 * be in several files, or twice in one). */
static int write_blob(size_t i, const tm_buf *plain, void *ud)
{
        struct rs_write *w = ud;

        if (plain->len != w->items[w->grp[i]].c->size)
                return -EBADMSG;
        w->done++;
        for (size_t k = w->grp[i]; k < w->grp[i + 1]; k++)
                item_write(w->s, &w->items[k], plain);
        return 0;
}

/* Items of the files of a job (one file's part, or a batch of small files),
 * located; a file whose blob is not found fails here. Returns the count. */
static size_t job_items(struct rs *s, struct rs_job *head, struct rs_item *items)
{
        size_t n = 0;

        for (struct rs_job *j = head; j; j = j->batch) {
                size_t begin = n;
                uint64_t off = j->offset;

                for (size_t k = 0; k < j->count; k++) {
                        struct rs_item *it = &items[n];
                        int r;

                        it->c = &j->f->node.content[j->first + k];
                        r = tm_repo_blob_locate(s->repo, &it->c->id, &it->pack, &it->e);
                        if (r < 0) {
                                blob_failed(j, it->c, r);
                                n = begin;
                                break;
                        }
                        it->job = j;
                        it->off = off;
                        off += it->c->size;
                        n++;
                }
                j->left = n - begin;
        }
        return n;
}

static int item_cmp(const void *x, const void *y)
{
        const struct rs_item *a = x, *b = y;
        int c = tm_id_cmp(&a->pack, &b->pack);

        if (c)
                return c;
        return a->e.offset < b->e.offset ? -1 : a->e.offset > b->e.offset;
}

/* Read the job's blobs in pack order, each run of them close together in
 * one pack with one read (on S3: one request per run, not per blob), and
 * write each where it belongs. */
static void job_run(struct rs *s, struct rs_job *head)
{
        struct rs_item *items = NULL;
        struct tm_pack_entry *es = NULL;
        size_t *grp = NULL;
        struct rs_write w = { .s = s };
        struct rs_job *next;
        size_t n = 0, m = 0, i = 0;

        for (struct rs_job *j = head; j; j = j->batch)
                n += j->count;
        items = calloc(n ? n : 1, sizeof(*items));
        es = calloc(n ? n : 1, sizeof(*es));
        grp = calloc(n + 1, sizeof(*grp));
        if (!items || !es || !grp) {
                tm_log(TM_LOG_ERR, "out of memory restoring '%s'", head->f->name);
                for (struct rs_job *j = head; j; j = j->batch)
                        job_fail(j);
                n = 0;
        } else {
                n = job_items(s, head, items);
        }
        /* jobs with nothing to read are done now; the others when their
         * last item is */
        for (struct rs_job *j = head; j; j = next) {
                next = j->batch;
                if (j->left == 0)
                        job_done(s, j, head);
        }
        /* in pack order, each blob once: es[k] is read for items
         * grp[k]..grp[k+1] */
        qsort(items, n, sizeof(*items), item_cmp);
        for (size_t k = 0; k < n; k++) {
                if (k == 0 || item_cmp(&items[k], &items[k - 1]) != 0) {
                        es[m] = items[k].e;
                        grp[m++] = k;
                }
        }
        grp[m] = n;
        w.items = items;
        while (i < m) {
                size_t run = 1;
                int r;

                while (i + run < m && tm_id_cmp(&items[grp[i + run]].pack, &items[grp[i]].pack) == 0)
                        run++;
                run = tm_repo_blob_run_len(es + i, run, RUN_BYTES, GAP_BYTES);
                w.grp = grp + i;
                w.done = 0;
                r = tm_repo_blob_load_run(s->repo, &items[grp[i]].pack, es + i, run, write_blob,
                                          &w);
                if (r < 0) { /* this blob fails its files; the rest is read again */
                        for (size_t k = grp[i + w.done]; k < grp[i + w.done + 1]; k++)
                                blob_failed(items[k].job, items[k].c, r);
                        run = w.done + 1;
                }
                for (size_t k = grp[i]; k < grp[i + run]; k++)
                        item_done(s, &items[k], head);
                i += run;
        }
        free(items);
        free(es);
        free(grp);
}

static void *worker_main(void *arg)
{
        struct rs *s = arg;

        for (;;) {
                struct rs_job *job;

                pthread_mutex_lock(&s->qmu);
                while (!s->head && !s->closed)
                        pthread_cond_wait(&s->q_nonempty, &s->qmu);
                job = s->head;
                if (!job) {
                        pthread_mutex_unlock(&s->qmu);
                        break;
                }
                s->head = job->next;
                if (!s->head)
                        s->tail = NULL;
                s->qlen -= job->nfiles;
                pthread_cond_broadcast(&s->q_nonfull);
                pthread_mutex_unlock(&s->qmu);
                job_run(s, job);
                free(job);
        }
        return NULL;
}

/* Queue a job: one file's part, or the head of a batch of nfiles. */
static int enqueue(struct rs *s, struct rs_job *job)
{
        if (!job->nfiles)
                job->nfiles = 1;
        pthread_mutex_lock(&s->qmu);
        while (s->qlen >= QUEUE_MAX)
                pthread_cond_wait(&s->q_nonfull, &s->qmu);
        if (s->tail)
                s->tail->next = job;
        else
                s->head = job;
        s->tail = job;
        s->qlen += job->nfiles;
        pthread_cond_signal(&s->q_nonempty);
        pthread_mutex_unlock(&s->qmu);
        return 0;
}

/* Queue the small files gathered so far as one job (walker only). */
static int batch_flush(struct rs *s)
{
        struct rs_job *head = s->batch;

        if (!head)
                return 0;
        head->nfiles = s->batch_files;
        s->batch = s->batch_tail = NULL;
        s->batch_files = 0;
        s->batch_bytes = 0;
        return enqueue(s, head);
}

/* Small files go into batches: backups write neighbours of a directory
 * into the same pack, back to back, so a batch is mostly one read. */
static int batch_add(struct rs *s, struct rs_job *job)
{
        if (s->batch_tail)
                s->batch_tail->batch = job;
        else
                s->batch = job;
        s->batch_tail = job;
        s->batch_files++;
        s->batch_bytes += job->f->node.size;
        if (s->batch_files >= BATCH_FILES || s->batch_bytes >= RUN_BYTES)
                return batch_flush(s);
        return 0;
}

/* Queue a regular file in parts. */
static int file_queue(struct rs *s, struct rs_dirref *dref, const char *dir,
                      const struct tm_node *nd)
{
        struct rs_file *f = calloc(1, sizeof(*f));
        size_t start = 0;
        uint64_t off = 0, acc = 0;
        int r, nparts = 0;

        if (!f)
                return -ENOMEM;
        pthread_mutex_init(&f->mu, NULL);
        f->fd = f->dirfd = -1;
        atomic_fetch_add(&dref->refs, 1);
        f->dref = dref;
        f->dir = strdup(dir);
        f->name = strdup(nd->name);
        r = tm_node_copy(nd, &f->node);
        if (!f->dir || !f->name || r < 0) {
                file_free(f);
                return -ENOMEM;
        }
        /* count parts first so parts_left is final before any worker runs */
        for (size_t i = 0; i < nd->n_content; i++) {
                acc += nd->content[i].size;
                if (acc >= PART_BYTES || i + 1 == nd->n_content) {
                        nparts++;
                        acc = 0;
                }
        }
        f->parts_left = nparts ? nparts : 1;
        atomic_fetch_add(&s->files_total, 1);
        atomic_fetch_add(&s->bytes_total, nd->size);
        if (nparts <= 1) {
                struct rs_job *job = calloc(1, sizeof(*job));

                if (!job) {
                        file_free(f);
                        return -ENOMEM;
                }
                job->f = f;
                job->count = nd->n_content;
                return nd->size <= SMALL_FILE ? batch_add(s, job) : enqueue(s, job);
        }
        acc = 0;
        for (size_t i = 0; i < nd->n_content; i++) {
                acc += nd->content[i].size;
                if (acc >= PART_BYTES || i + 1 == nd->n_content) {
                        struct rs_job *job = calloc(1, sizeof(*job));

                        if (!job)
                                return -ENOMEM; /* the file stays incomplete: reported */
                        job->f = f;
                        job->first = start;
                        job->count = i + 1 - start;
                        job->offset = off;
                        off += acc;
                        acc = 0;
                        start = i + 1;
                        enqueue(s, job);
                }
        }
        return 0;
}

/* ---- progress ---- */

static void rs_report(struct rs *s, int final)
{
        struct tm_progress p = {
                .phase = "restore",
                .files_done = atomic_load(&s->files),
                .files_total = atomic_load(&s->files_total),
                .bytes_done = atomic_load(&s->bytes),
                .bytes_total = atomic_load(&s->bytes_total),
                .elapsed_ns = tm_time_mono() - s->start,
                .totals_final = final || atomic_load(&s->walk_done),
        };

        s->o->progress(&p, s->o->userdata);
}

static void rs_tick(void *arg)
{
        rs_report(arg, 0);
}

/* ---- the walk ---- */

static int dirmeta_add(struct rs *s, const char *path, const struct tm_node *nd)
{
        struct rs_dirmeta *m;
        int r;

        if (s->n_dirs == s->cap_dirs) {
                size_t ncap = s->cap_dirs ? s->cap_dirs * 2 : 64;
                struct rs_dirmeta *p = realloc(s->dirs, ncap * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                s->dirs = p;
                s->cap_dirs = ncap;
        }
        m = &s->dirs[s->n_dirs];
        m->path = strdup(path);
        r = tm_node_copy(nd, &m->node);
        if (!m->path || r < 0) {
                free(m->path);
                return -ENOMEM;
        }
        s->n_dirs++;
        return 0;
}

static int link_later(struct rs *s, const char *path, const struct tm_node *nd)
{
        struct rs_link *l;

        if (s->n_links == s->cap_links) {
                size_t ncap = s->cap_links ? s->cap_links * 2 : 64;
                struct rs_link *p = realloc(s->links, ncap * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                s->links = p;
                s->cap_links = ncap;
        }
        l = &s->links[s->n_links];
        l->path = strdup(path);
        l->dev = nd->dev;
        l->inode = nd->inode;
        if (!l->path)
                return -ENOMEM;
        s->n_links++;
        return 0;
}

struct seen_inode {
        uint64_t dev, inode;
};

static int restore_tree(struct rs *s, int dirfd, const char *rel, const tm_id *tree_id,
                        struct seen_inode **seen, size_t *n_seen, size_t *cap_seen);
static struct rs_dirref *dirref_get(int dirfd, struct rs_dirref **slot);

static struct rs_dirref *dirref_get(int dirfd, struct rs_dirref **slot)
{
        struct rs_dirref *d = *slot;

        if (d)
                return d;
        d = calloc(1, sizeof(*d));
        if (!d)
                return NULL;
        d->fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
        if (d->fd < 0) {
                free(d);
                return NULL;
        }
        atomic_init(&d->refs, 1); /* the walker's, dropped when it leaves the directory */
        *slot = d;
        return d;
}

/* Restore one node into the directory dirfd (relative path rel). */
static int restore_node(struct rs *s, int dirfd, struct rs_dirref **dref, const char *rel,
                        const struct tm_node *nd, struct seen_inode **seen, size_t *n_seen,
                        size_t *cap_seen)
{
        char *path = join(rel, nd->name);
        int r = 0, fd = -1;

        if (!path)
                return -ENOMEM;
        if (!tm_tree_name_valid(nd->name)) {
                /* the decoder refuses these; a second fence costs nothing */
                tm_log(TM_LOG_ERR, "refusing entry '%s' in '%s': not a plain name", nd->name, rel);
                atomic_fetch_add(&s->failed, 1);
                goto out;
        }
        switch (nd->type) {
        case TM_NODE_DIR:
                if (mkdirat(dirfd, nd->name, 0700) < 0 && errno != EEXIST) {
                        r = tm_log_errno(TM_LOG_ERR, -errno, "cannot create directory '%s'", path);
                        atomic_fetch_add(&s->failed, 1);
                        r = 0;
                        goto out;
                }
                fd = openat(dirfd, nd->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                        tm_log_errno(TM_LOG_ERR, -errno, "cannot enter directory '%s'", path);
                        atomic_fetch_add(&s->failed, 1);
                        goto out;
                }
                r = dirmeta_add(s, path, nd);
                if (r < 0)
                        goto out;
                atomic_fetch_add(&s->dirs_n, 1);
                r = restore_tree(s, fd, path, &nd->subtree, seen, n_seen, cap_seen);
                break;
        case TM_NODE_FILE:
                if (nd->nlink > 1) {
                        for (size_t i = 0; i < *n_seen; i++) {
                                if ((*seen)[i].dev == nd->dev && (*seen)[i].inode == nd->inode) {
                                        r = link_later(s, path, nd);
                                        goto out;
                                }
                        }
                        if (*n_seen == *cap_seen) {
                                size_t ncap = *cap_seen ? *cap_seen * 2 : 64;
                                struct seen_inode *p = realloc(*seen, ncap * sizeof(*p));

                                if (!p) {
                                        r = -ENOMEM;
                                        goto out;
                                }
                                *seen = p;
                                *cap_seen = ncap;
                        }
                        (*seen)[*n_seen].dev = nd->dev;
                        (*seen)[*n_seen].inode = nd->inode;
                        (*n_seen)++;
                }
                {
                        struct rs_dirref *d = dirref_get(dirfd, dref);

                        r = d ? file_queue(s, d, rel, nd) : -ENOMEM;
                }
                break;
        case TM_NODE_SYMLINK:
                unlinkat(dirfd, nd->name, 0);
                if (symlinkat(nd->target ? nd->target : "", dirfd, nd->name) < 0) {
                        tm_log_errno(TM_LOG_ERR, -errno, "cannot create symlink '%s'", path);
                        atomic_fetch_add(&s->failed, 1);
                        goto out;
                }
                meta_at(s, dirfd, nd->name, nd, path);
                atomic_fetch_add(&s->others, 1);
                break;
        case TM_NODE_FIFO:
        case TM_NODE_CHARDEV:
        case TM_NODE_BLOCKDEV: {
                mode_t kind = nd->type == TM_NODE_FIFO      ? S_IFIFO
                              : nd->type == TM_NODE_CHARDEV ? S_IFCHR
                                                            : S_IFBLK;

                unlinkat(dirfd, nd->name, 0);
                if (mknodat(dirfd, nd->name, kind | 0600, (dev_t)nd->rdev) < 0) {
                        tm_log_errno(TM_LOG_WARN, -errno, "cannot create '%s'", path);
                        goto out;
                }
                meta_at(s, dirfd, nd->name, nd, path);
                atomic_fetch_add(&s->others, 1);
                break;
        }
        default: /* sockets are not restored: they mean nothing without their process */
                break;
        }
out:
        if (fd >= 0)
                close(fd);
        free(path);
        return r;
}

static int restore_tree(struct rs *s, int dirfd, const char *rel, const tm_id *tree_id,
                        struct seen_inode **seen, size_t *n_seen, size_t *cap_seen)
{
        struct tm_tree t = TM_TREE_INIT;
        struct rs_dirref *dref = NULL;
        int r = tm_repo_tree_load(s->repo, tree_id, &t);

        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot load the listing of '%s'", *rel ? rel : "/");
                atomic_fetch_add(&s->failed, 1);
                return 0;
        }
        for (size_t i = 0; i < t.n && r >= 0 && !atomic_load(&s->fatal); i++)
                r = restore_node(s, dirfd, &dref, rel, &t.nodes[i], seen, n_seen, cap_seen);
        dirref_unref(dref);
        tm_tree_dispose(&t);
        return r;
}

static int make_dirs(const char *path)
{
        char tmp[4096];
        size_t n = strlen(path);

        if (n == 0 || n >= sizeof(tmp))
                return -EINVAL;
        memcpy(tmp, path, n + 1);
        for (char *p = tmp + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* Restore one included path: create its parents (with their snapshot
 * metadata), then the node itself. */
static int restore_include(struct rs *s, const tm_id *root, const char *inc,
                           struct seen_inode **seen, size_t *n_seen, size_t *cap_seen)
{
        char *copy = strdup(inc), *save = NULL, *tok, *rel = strdup("");
        struct tm_node cur = { 0 };
        int r = 0, dirfd = dup(s->targetfd);

        if (!copy || !rel || dirfd < 0) {
                r = -ENOMEM;
                goto out;
        }
        r = tm_repo_lookup_path(s->repo, root, inc, &cur);
        if (r < 0) {
                if (r == -ENOENT)
                        tm_log(TM_LOG_ERR, "'%s' is not in the snapshot", inc);
                goto out;
        }
        tm_node_dispose(&cur);
        /* walk the parents */
        {
                char *parts[512];
                size_t np = 0;

                for (tok = strtok_r(copy, "/", &save); tok && np < 512;
                     tok = strtok_r(NULL, "/", &save))
                        if (strcmp(tok, ".") != 0)
                                parts[np++] = tok;
                for (size_t i = 0; i < np; i++) {
                        char *sub = NULL, *next = NULL;
                        size_t len = 0;

                        for (size_t k = 0; k <= i; k++)
                                len += strlen(parts[k]) + 1;
                        sub = malloc(len + 1);
                        if (!sub) {
                                r = -ENOMEM;
                                goto out;
                        }
                        sub[0] = 0;
                        for (size_t k = 0; k <= i; k++) {
                                if (k)
                                        strncat(sub, "/", len);
                                strncat(sub, parts[k], len);
                        }
                        r = tm_repo_lookup_path(s->repo, root, sub, &cur);
                        free(sub);
                        if (r < 0)
                                goto out;
                        if (i + 1 == np) {
                                struct rs_dirref *dref = NULL;

                                r = restore_node(s, dirfd, &dref, rel, &cur, seen, n_seen,
                                                 cap_seen);
                                dirref_unref(dref);
                                tm_node_dispose(&cur);
                                goto out;
                        }
                        /* a parent directory */
                        if (mkdirat(dirfd, cur.name, 0700) < 0 && errno != EEXIST) {
                                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot create '%s'",
                                                 cur.name);
                                tm_node_dispose(&cur);
                                goto out;
                        }
                        next = join(rel, cur.name);
                        if (!next || dirmeta_add(s, next, &cur) < 0) {
                                free(next);
                                tm_node_dispose(&cur);
                                r = -ENOMEM;
                                goto out;
                        }
                        free(rel);
                        rel = next;
                        {
                                int nfd = openat(dirfd, cur.name,
                                                 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                                tm_node_dispose(&cur);
                                if (nfd < 0) {
                                        r = tm_log_errno(TM_LOG_ERR, -errno, "cannot enter '%s'",
                                                         rel);
                                        goto out;
                                }
                                close(dirfd);
                                dirfd = nfd;
                        }
                }
                if (np == 0) /* "/" */
                        r = restore_tree(s, dirfd, "", root, seen, n_seen, cap_seen);
        }
out:
        if (dirfd >= 0)
                close(dirfd);
        free(copy);
        free(rel);
        return r;
}

static int dirmeta_cmp(const void *x, const void *y)
{
        const struct rs_dirmeta *a = x, *b = y;

        return -strcmp(a->path, b->path); /* children before parents */
}

static void finish_links(struct rs *s)
{
        for (size_t i = 0; i < s->n_links; i++) {
                struct rs_link *l = &s->links[i];
                const char *first = NULL;

                for (size_t k = 0; k < s->n_firsts; k++)
                        if (s->firsts[k].dev == l->dev && s->firsts[k].inode == l->inode)
                                first = s->firsts[k].path;
                if (!first) {
                        tm_log(TM_LOG_ERR, "cannot restore hard link '%s': its file failed",
                               l->path);
                        atomic_fetch_add(&s->failed, 1);
                        continue;
                }
                {
                        /* both ends resolved beneath the target, symlinks refused */
                        char *slash = strrchr(l->path, '/'), *fslash = strrchr(first, '/');
                        char *ldir =
                                slash ? strndup(l->path, (size_t)(slash - l->path)) : strdup("");
                        char *fdir = fslash ? strndup(first, (size_t)(fslash - first)) : strdup("");
                        int lfd = ldir ? open_beneath(s->targetfd, ldir, O_RDONLY | O_DIRECTORY, 0)
                                       : -ENOMEM;
                        int ffd = fdir ? open_beneath(s->targetfd, fdir, O_RDONLY | O_DIRECTORY, 0)
                                       : -ENOMEM;
                        const char *lname = slash ? slash + 1 : l->path;
                        const char *fname = fslash ? fslash + 1 : first;

                        if (lfd >= 0 && ffd >= 0) {
                                unlinkat(lfd, lname, 0);
                                if (linkat(ffd, fname, lfd, lname, 0) < 0) {
                                        tm_log_errno(TM_LOG_ERR, -errno,
                                                     "cannot create hard link '%s'", l->path);
                                        atomic_fetch_add(&s->failed, 1);
                                } else {
                                        atomic_fetch_add(&s->files, 1);
                                }
                        }
                        if (lfd >= 0)
                                close(lfd);
                        if (ffd >= 0)
                                close(ffd);
                        free(ldir);
                        free(fdir);
                }
        }
}

static void finish_dirs(struct rs *s)
{
        if (s->n_dirs)
                qsort(s->dirs, s->n_dirs, sizeof(*s->dirs), dirmeta_cmp);
        for (size_t i = 0; i < s->n_dirs; i++) {
                int fd = open_beneath(s->targetfd, s->dirs[i].path, O_RDONLY | O_DIRECTORY, 0);

                if (fd < 0)
                        continue;
                meta_fd(s, fd, &s->dirs[i].node, s->dirs[i].path);
                close(fd);
        }
}

int tm_restore_run(tm_repo *repo, const struct tm_snapshot *snap, const struct tm_restore_opts *o,
                   struct tm_restore_stats *ret)
{
        struct rs s = { 0 };
        pthread_t *threads = NULL;
        struct seen_inode *seen = NULL;
        struct tm_ticker tick = { 0 };
        size_t n_seen = 0, cap_seen = 0;
        int nthreads, started = 0, r;

        if (!o->target || !*o->target)
                return -EINVAL;
        s.repo = repo;
        s.o = o;
        s.targetfd = -1;
        s.as_root = geteuid() == 0 && !o->no_owner;
        s.start = tm_time_mono();
        pthread_mutex_init(&s.qmu, NULL);
        pthread_cond_init(&s.q_nonempty, NULL);
        pthread_cond_init(&s.q_nonfull, NULL);
        pthread_mutex_init(&s.mu, NULL);
        r = make_dirs(o->target);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "cannot create target '%s'", o->target);
                goto out;
        }
        s.targetfd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s.targetfd < 0) {
                r = tm_log_errno(TM_LOG_ERR, -errno, "cannot open target '%s'", o->target);
                goto out;
        }
        nthreads = o->threads > 0 ? o->threads : TM_MAX(4, 2 * tm_ncpu());
        if (o->threads <= 0 && tm_backend_is_remote(tm_repo_backend(repo)))
                nthreads = TM_MAX(nthreads, REMOTE_THREADS);
        threads = calloc((size_t)nthreads, sizeof(*threads));
        if (!threads) {
                r = -ENOMEM;
                goto out;
        }
        for (; started < nthreads; started++)
                if (pthread_create(&threads[started], NULL, worker_main, &s) != 0)
                        break;
        if (started == 0) {
                r = -EAGAIN;
                goto out;
        }
        if (o->progress)
                tm_ticker_start(&tick, TM_NSEC_PER_SEC / 4, rs_tick, &s);
        if (o->n_includes == 0) {
                r = restore_tree(&s, s.targetfd, "", &snap->tree, &seen, &n_seen, &cap_seen);
        } else {
                for (size_t i = 0; i < o->n_includes && r >= 0; i++)
                        r = restore_include(&s, &snap->tree, o->includes[i], &seen, &n_seen,
                                            &cap_seen);
        }
out:
        batch_flush(&s);
        atomic_store(&s.walk_done, 1);
        pthread_mutex_lock(&s.qmu);
        s.closed = 1;
        pthread_cond_broadcast(&s.q_nonempty);
        pthread_mutex_unlock(&s.qmu);
        for (int i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        if (s.targetfd >= 0 && r >= 0) {
                finish_links(&s);
                finish_dirs(&s);
        }
        tm_ticker_stop(&tick);
        if (o->progress)
                rs_report(&s, 1);
        if (ret) {
                ret->files = atomic_load(&s.files);
                ret->dirs = atomic_load(&s.dirs_n);
                ret->others = atomic_load(&s.others);
                ret->bytes = atomic_load(&s.bytes);
                ret->files_failed = atomic_load(&s.failed);
        }
        if (r >= 0 && atomic_load(&s.fatal))
                r = atomic_load(&s.fatal);
        if (r >= 0 && atomic_load(&s.failed))
                r = -EBADMSG;
        for (size_t i = 0; i < s.n_dirs; i++) {
                free(s.dirs[i].path);
                tm_node_dispose(&s.dirs[i].node);
        }
        for (size_t i = 0; i < s.n_links; i++)
                free(s.links[i].path);
        for (size_t i = 0; i < s.n_firsts; i++)
                free(s.firsts[i].path);
        free(s.dirs);
        free(s.links);
        free(s.firsts);
        free(seen);
        free(threads);
        if (s.targetfd >= 0)
                close(s.targetfd);
        pthread_mutex_destroy(&s.qmu);
        pthread_cond_destroy(&s.q_nonempty);
        pthread_cond_destroy(&s.q_nonfull);
        pthread_mutex_destroy(&s.mu);
        return r;
}
