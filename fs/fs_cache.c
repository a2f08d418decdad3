/*
 * The blob cache: decoded (verified, decompressed) blobs in a bounded LRU,
 * each loaded once however many threads ask for it at the same time (the
 * others wait on the entry), and a few worker threads that load the blobs a
 * sequential reader will want next. A blob that failed verification stays
 * in the table as failed, so it is logged once and never retried into wrong
 * bytes; any other error is not remembered (a retry may succeed).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/log.h>

#include "fs.h"

enum { BLOB_LOADING, BLOB_READY, BLOB_FAILED };

#define CACHE_BUCKETS 8192
#define QUEUE_MAX     64

struct fs_cache {
        fs_blob_loader loader;
        void *userdata;
        size_t limit, bytes, entries;
        uint64_t loads;
        pthread_mutex_t lock;
        pthread_cond_t loaded; /* an entry left BLOB_LOADING */
        pthread_cond_t work;   /* the queue got an item or stop was set */
        struct fs_blob *buckets[CACHE_BUCKETS];
        struct fs_blob lru; /* sentinel: lru.next is the most recent */
        tm_id queue[QUEUE_MAX];
        size_t q_head, q_len;
        int stop;
        pthread_t *threads;
        int n_threads;
};

static size_t bucket_of(const tm_id *id)
{
        size_t h;

        memcpy(&h, id->b, sizeof(h)); /* ids are uniformly random */
        return h % CACHE_BUCKETS;
}

static struct fs_blob *find(struct fs_cache *c, const tm_id *id)
{
        struct fs_blob *b = c->buckets[bucket_of(id)];

        while (b && tm_id_cmp(&b->id, id) != 0)
                b = b->hnext;
        return b;
}

static void lru_unlink(struct fs_blob *b)
{
        if (b->prev) {
                b->prev->next = b->next;
                b->next->prev = b->prev;
        }
        b->prev = b->next = NULL;
}

static void lru_front(struct fs_cache *c, struct fs_blob *b)
{
        lru_unlink(b);
        b->next = c->lru.next;
        b->prev = &c->lru;
        c->lru.next->prev = b;
        c->lru.next = b;
}

static void hash_remove(struct fs_cache *c, struct fs_blob *b)
{
        struct fs_blob **pp = &c->buckets[bucket_of(&b->id)];

        for (; *pp; pp = &(*pp)->hnext)
                if (*pp == b) {
                        *pp = b->hnext;
                        break;
                }
        b->in_hash = 0;
        c->entries--;
        c->bytes -= b->data.cap;
        lru_unlink(b);
}

static void blob_free(struct fs_blob *b)
{
        tm_buf_dispose(&b->data);
        free(b);
}

/* Drop unused entries, least recently used first, until under the limit. */
static void evict(struct fs_cache *c)
{
        struct fs_blob *b = c->lru.prev, *prev;

        for (; c->bytes > c->limit && b != &c->lru; b = prev) {
                prev = b->prev;
                if (b->refs == 0 && b->state == BLOB_READY) {
                        hash_remove(c, b);
                        blob_free(b);
                }
        }
}

int fs_cache_get(struct fs_cache *c, const tm_id *id, struct fs_blob **ret)
{
        struct fs_blob *b;
        tm_buf data;
        int r;

        pthread_mutex_lock(&c->lock);
        b = find(c, id);
        if (b) {
                b->refs++;
                while (b->state == BLOB_LOADING)
                        pthread_cond_wait(&c->loaded, &c->lock);
                if (b->state == BLOB_FAILED) {
                        r = b->err;
                        goto fail_locked;
                }
                lru_front(c, b);
                pthread_mutex_unlock(&c->lock);
                *ret = b;
                return 0;
        }
        b = calloc(1, sizeof(*b));
        if (!b) {
                pthread_mutex_unlock(&c->lock);
                return -ENOMEM;
        }
        b->id = *id;
        b->state = BLOB_LOADING;
        b->refs = 1;
        b->in_hash = 1;
        b->hnext = c->buckets[bucket_of(id)];
        c->buckets[bucket_of(id)] = b;
        c->entries++;
        c->loads++;
        pthread_mutex_unlock(&c->lock);

        /* the I/O happens without the lock */
        data = TM_BUF_INIT(0);
        r = c->loader(c->userdata, id, &data);

        pthread_mutex_lock(&c->lock);
        if (r < 0) {
                tm_buf_dispose(&data);
                b->state = BLOB_FAILED;
                b->err = r;
                if (r == -EBADMSG) {
                        char hex[TM_ID_HEX_LEN + 1];

                        tm_id_hex(id, hex);
                        tm_log(TM_LOG_ERR,
                               "blob %s failed verification: reads of files using it fail with "
                               "EIO",
                               hex);
                        lru_front(c, b); /* kept (size 0) so it is not retried or relogged */
                } else {
                        hash_remove(c, b); /* waiters still hold it */
                }
                pthread_cond_broadcast(&c->loaded);
                goto fail_locked;
        }
        /* blob buffers grow by doubling: a cached 1 MiB blob could hold 2 MiB,
         * and the limit must bound memory, not payload */
        tm_buf_shrink(&data);
        b->data = data;
        b->state = BLOB_READY;
        c->bytes += data.cap;
        lru_front(c, b);
        pthread_cond_broadcast(&c->loaded);
        evict(c);
        pthread_mutex_unlock(&c->lock);
        *ret = b;
        return 0;

fail_locked:
        b->refs--;
        if (b->refs == 0 && !b->in_hash)
                blob_free(b);
        pthread_mutex_unlock(&c->lock);
        return r;
}

void fs_cache_put(struct fs_cache *c, struct fs_blob *b)
{
        if (!b)
                return;
        pthread_mutex_lock(&c->lock);
        TM_ASSERT(b->refs > 0);
        b->refs--;
        if (b->refs == 0 && !b->in_hash)
                blob_free(b);
        else
                evict(c);
        pthread_mutex_unlock(&c->lock);
}

void fs_cache_prefetch(struct fs_cache *c, const tm_id *id)
{
        pthread_mutex_lock(&c->lock);
        if (c->n_threads > 0 && c->q_len < QUEUE_MAX && !find(c, id)) {
                c->queue[(c->q_head + c->q_len) % QUEUE_MAX] = *id;
                c->q_len++;
                pthread_cond_signal(&c->work);
        }
        pthread_mutex_unlock(&c->lock);
}

static void *worker(void *arg)
{
        struct fs_cache *c = arg;

        pthread_mutex_lock(&c->lock);
        for (;;) {
                struct fs_blob *b = NULL;
                tm_id id;

                while (!c->stop && c->q_len == 0)
                        pthread_cond_wait(&c->work, &c->lock);
                if (c->stop)
                        break;
                id = c->queue[c->q_head];
                c->q_head = (c->q_head + 1) % QUEUE_MAX;
                c->q_len--;
                pthread_mutex_unlock(&c->lock);
                /* errors are reported to the reader that needs the blob */
                if (fs_cache_get(c, &id, &b) == 0)
                        fs_cache_put(c, b);
                pthread_mutex_lock(&c->lock);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

int fs_cache_new(fs_blob_loader loader, void *userdata, size_t limit, int n_threads,
                 struct fs_cache **ret)
{
        struct fs_cache *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        c->loader = loader;
        c->userdata = userdata;
        c->limit = limit;
        c->lru.next = c->lru.prev = &c->lru;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->loaded, NULL);
        pthread_cond_init(&c->work, NULL);
        if (n_threads > 0) {
                c->threads = calloc((size_t)n_threads, sizeof(*c->threads));
                if (!c->threads) {
                        fs_cache_free(c);
                        return -ENOMEM;
                }
        }
        for (int i = 0; i < n_threads; i++) {
                r = -pthread_create(&c->threads[i], NULL, worker, c);
                if (r < 0) {
                        fs_cache_free(c);
                        return r;
                }
                c->n_threads++;
        }
        *ret = c;
        return 0;
}

void fs_cache_free(struct fs_cache *c)
{
        struct fs_blob *b, *next;

        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_cond_broadcast(&c->work);
        pthread_mutex_unlock(&c->lock);
        for (int i = 0; i < c->n_threads; i++)
                pthread_join(c->threads[i], NULL);
        free(c->threads);
        for (b = c->lru.next; b != &c->lru; b = next) {
                next = b->next;
                blob_free(b);
        }
        pthread_cond_destroy(&c->loaded);
        pthread_cond_destroy(&c->work);
        pthread_mutex_destroy(&c->lock);
        free(c);
}

void fs_cache_stats(struct fs_cache *c, size_t *ret_bytes, size_t *ret_entries, uint64_t *ret_loads)
{
        pthread_mutex_lock(&c->lock);
        if (ret_bytes)
                *ret_bytes = c->bytes;
        if (ret_entries)
                *ret_entries = c->entries;
        if (ret_loads)
                *ret_loads = c->loads;
        pthread_mutex_unlock(&c->lock);
}
