/*
 * Locks. Only prune (exclusive maintenance) locks the repository against
 * others; backups never block each other. To keep a prune from deleting
 * what a running backup writes (or dedups against), a backup registers as a
 * "writer": a lock object that excludes nothing but makes a prune wait.
 *   writer:    write own lock; if a live exclusive lock exists, remove own,
 *              wait, retry.
 *   exclusive: write own lock; if another live exclusive exists, remove own,
 *              wait, retry; then wait until no live writer remains.
 * Each side writes before it looks, so at least one of two racing parties
 * sees the other; the writer always backs off, so there is no deadlock.
 * A lock is live while it is refreshed (every 60 s by a thread) and, on the
 * same host, while its process exists.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <tidemark/log.h>
#include <tidemark/time.h>

#include "repo_internal.h"

#define LOCK_MAX       (64u * 1024)
#define LOCK_REFRESH_S 60
#define LOCK_STALE_S   (30 * 60)

struct tm_lock {
        tm_repo *repo;
        char name[128];
        int exclusive;
        int64_t created;
        pthread_t thread;
        int thread_started;
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int stop;
};

static int lock_encode(const struct tm_lock *l, tm_buf *out)
{
        char host[256], created[40], now[40];
        json_t *j;
        char *s;
        int r = -ENOMEM;

        if (gethostname(host, sizeof(host)) < 0)
                snprintf(host, sizeof(host), "unknown");
        host[sizeof(host) - 1] = 0;
        tm_time_format_ns(l->created, created, sizeof(created));
        tm_time_format_ns(tm_time_now(), now, sizeof(now));
        j = json_pack("{s:s, s:s, s:I, s:s, s:s}", "kind", l->exclusive ? "exclusive" : "writer",
                      "host", host, "pid", (json_int_t)getpid(), "time", created, "refreshed", now);
        if (!j)
                return -ENOMEM;
        s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        if (s)
                r = tm_buf_append(out, s, strlen(s));
        free(s);
        json_decref(j);
        return r;
}

static int lock_write(struct tm_lock *l)
{
        tm_buf plain = TM_BUF_INIT(LOCK_MAX), sealed = TM_BUF_INIT(0);
        int r = lock_encode(l, &plain);

        if (r == 0)
                r = tm_crypto_seal(l->repo->key.enc, "tmlock", 6, plain.data, plain.len, &sealed);
        if (r == 0)
                r = tm_backend_put(l->repo->be, l->name, sealed.data, sealed.len);
        tm_buf_dispose(&plain);
        tm_buf_dispose(&sealed);
        return r;
}

struct scan {
        tm_repo *repo;
        const char *self;
        int exclusive, writers;
};

static int lock_scan_cb(const char *name, uint64_t size, void *ud)
{
        struct scan *sc = ud;
        tm_buf raw = TM_BUF_INIT(LOCK_MAX), plain = TM_BUF_INIT(LOCK_MAX);
        const char *kind, *host, *refreshed;
        json_int_t pid;
        json_t *j = NULL;
        char myhost[256];
        int64_t t;
        int stale = 0;

        (void)size;
        if (strcmp(name, sc->self) == 0)
                return 0;
        if (tm_backend_get(sc->repo->be, name, LOCK_MAX, &raw) < 0)
                goto out; /* vanished meanwhile */
        if (tm_crypto_open(sc->repo->key.enc, "tmlock", 6, raw.data, raw.len, &plain) < 0)
                goto out;
        j = json_loadb((const char *)plain.data, plain.len, 0, NULL);
        if (!j || json_unpack(j, "{s:s, s:s, s:I, s:s}", "kind", &kind, "host", &host, "pid", &pid,
                              "refreshed", &refreshed) < 0)
                goto out;
        if (tm_time_parse(refreshed, &t, NULL) < 0 ||
            tm_time_now() - t > (int64_t)LOCK_STALE_S * TM_NSEC_PER_SEC)
                stale = 1;
        if (gethostname(myhost, sizeof(myhost)) == 0 && strcmp(myhost, host) == 0 && pid > 0 &&
            kill((pid_t)pid, 0) < 0 && errno == ESRCH)
                stale = 1;
        if (stale) {
                tm_log(TM_LOG_INFO, "removing stale lock '%s' (pid %lld on %s)", name,
                       (long long)pid, host);
                tm_backend_remove(sc->repo->be, name);
                goto out;
        }
        if (strcmp(kind, "exclusive") == 0)
                sc->exclusive++;
        else
                sc->writers++;
out:
        json_decref(j);
        tm_buf_dispose(&plain);
        tm_buf_dispose(&raw);
        return 0;
}

static int lock_scan(struct tm_lock *l, struct scan *sc)
{
        memset(sc, 0, sizeof(*sc));
        sc->repo = l->repo;
        sc->self = l->name;
        return tm_backend_list(l->repo->be, "locks/", lock_scan_cb, sc);
}

static void *refresh_thread(void *arg)
{
        struct tm_lock *l = arg;

        pthread_mutex_lock(&l->mu);
        while (!l->stop) {
                struct timespec ts;

                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += LOCK_REFRESH_S;
                pthread_cond_timedwait(&l->cv, &l->mu, &ts);
                if (l->stop)
                        break;
                pthread_mutex_unlock(&l->mu);
                if (lock_write(l) < 0)
                        tm_log(TM_LOG_WARN, "cannot refresh lock '%s'", l->name);
                pthread_mutex_lock(&l->mu);
        }
        pthread_mutex_unlock(&l->mu);
        return NULL;
}

static int lock_new(tm_repo *repo, int exclusive, struct tm_lock **ret)
{
        struct tm_lock *l = calloc(1, sizeof(*l));
        uint8_t rnd[16];
        char hex[33];
        int r;

        if (!l)
                return -ENOMEM;
        r = tm_crypto_random(rnd, sizeof(rnd));
        if (r < 0) {
                free(l);
                return r;
        }
        tm_hex_encode(rnd, sizeof(rnd), hex);
        snprintf(l->name, sizeof(l->name), "locks/%s", hex);
        l->repo = repo;
        l->exclusive = exclusive;
        l->created = tm_time_now();
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
        *ret = l;
        return 0;
}

static void sleep_jitter(void)
{
        uint8_t b = 0;

        tm_crypto_random(&b, 1);
        usleep(500000 + (useconds_t)b * 2000);
}

static int lock_acquire(tm_repo *repo, int exclusive, int64_t wait_s, tm_lock **ret)
{
        struct tm_lock *l = NULL;
        int64_t deadline = tm_time_mono() + wait_s * TM_NSEC_PER_SEC;
        int r, announced = 0, written = 0;

        r = lock_new(repo, exclusive, &l);
        if (r < 0)
                return r;
        for (;;) {
                struct scan sc;

                if (!written) {
                        r = lock_write(l);
                        if (r < 0)
                                goto fail;
                        written = 1;
                }
                r = lock_scan(l, &sc);
                if (r < 0)
                        goto fail;
                if (sc.exclusive == 0 && (!exclusive || sc.writers == 0))
                        break;
                if (sc.exclusive > 0) {
                        /* back off entirely, so a prune waiting for writers can go on */
                        tm_backend_remove(repo->be, l->name);
                        written = 0;
                }
                if (tm_time_mono() > deadline) {
                        r = -EBUSY;
                        goto fail;
                }
                if (!announced) {
                        tm_log(TM_LOG_INFO, "%s",
                               sc.exclusive ? "repository is locked by a prune, waiting"
                                            : "waiting for running backups to finish");
                        announced = 1;
                }
                sleep_jitter();
        }
        if (pthread_create(&l->thread, NULL, refresh_thread, l) == 0)
                l->thread_started = 1;
        *ret = l;
        return 0;
fail:
        if (written)
                tm_backend_remove(repo->be, l->name);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        free(l);
        return r;
}

int tm_repo_lock_exclusive(tm_repo *repo, int64_t wait_s, tm_lock **ret)
{
        return lock_acquire(repo, 1, wait_s, ret);
}

int tm_repo_lock_writer(tm_repo *repo, int64_t wait_s, tm_lock **ret)
{
        return lock_acquire(repo, 0, wait_s, ret);
}

void tm_lock_release(tm_lock *l)
{
        if (!l)
                return;
        if (l->thread_started) {
                pthread_mutex_lock(&l->mu);
                l->stop = 1;
                pthread_cond_signal(&l->cv);
                pthread_mutex_unlock(&l->mu);
                pthread_join(l->thread, NULL);
        }
        tm_backend_remove(l->repo->be, l->name);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        free(l);
}
