/*
 * Cross-region replication: one pass compares listings of the primary and
 * the replica and copies what is missing in the primary's write order. The
 * listings are the only state: nothing is recorded on either side, so a pass
 * killed at any instant leaves nothing to undo, and the next one copies only
 * what has not landed (a backend write is atomic: an object is there whole
 * or not at all).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tidemark/backend.h>
#include <tidemark/crypto.h>
#include <tidemark/log.h>
#include <tidemark/replica.h>
#include <tidemark/time.h>

#define DEFAULT_INTERVAL_NS (300LL * TM_NSEC_PER_SEC)
#define DEFAULT_PARALLEL    2
#define MAX_PARALLEL        64
/* temp files of writes a kill interrupted on a directory replica */
#define TEMP_AGE_S 3600

/* ---- configuration ---- */

int tm_replica_conf_default(const char *location, struct tm_replica_conf *ret)
{
        *ret = (struct tm_replica_conf){ 0 };
        ret->name = strdup("replica");
        ret->location = location ? strdup(location) : NULL;
        ret->interval_ns = DEFAULT_INTERVAL_NS;
        ret->parallel = DEFAULT_PARALLEL;
        ret->verify = TM_REPLICA_VERIFY_FULL;
        ret->propagate_deletes = 1;
        if (!ret->name || (location && !ret->location)) {
                tm_replica_conf_dispose(ret);
                return -ENOMEM;
        }
        return 0;
}

void tm_replica_conf_dispose(struct tm_replica_conf *c)
{
        if (!c)
                return;
        free(c->name);
        free(c->location);
        *c = (struct tm_replica_conf){ 0 };
}

int tm_replica_conf_load(const struct tm_config *c, struct tm_replica_conf *ret, char *err,
                         size_t errlen)
{
        static const char *const keys[] = { "location", "name",   "interval", "bandwidth",
                                            "parallel", "verify", "delete" };
        const struct tm_config_section *s = tm_config_section(c, "replica");
        const char *v;
        uint64_t u;
        int r;

        *ret = (struct tm_replica_conf){ 0 };
        if (!s)
                return -ENOENT;
        r = tm_replica_conf_default(NULL, ret);
        if (r < 0)
                return r;
        for (size_t i = 0; i < s->n_kv; i++) {
                size_t k = 0;

                while (k < TM_ARRAY_SIZE(keys) && strcmp(keys[k], s->kv[i].key))
                        k++;
                if (k == TM_ARRAY_SIZE(keys)) {
                        r = tm_config_section_error(c, s, s->kv[i].key, err, errlen,
                                                    "unknown key '%s' in [replica] (known: "
                                                    "location, name, interval, bandwidth, "
                                                    "parallel, verify, delete)",
                                                    s->kv[i].key);
                        goto fail;
                }
        }
        v = tm_config_section_get(s, "location");
        if (!v || !*v) {
                r = tm_config_section_error(c, s, "location", err, errlen,
                                            "[replica] needs a location (s3:https://host/bucket/"
                                            "prefix or a directory)");
                goto fail;
        }
        ret->location = strdup(v);
        if (!ret->location) {
                r = -ENOMEM;
                goto fail;
        }
        v = tm_config_section_get(s, "name");
        if (v) {
                if (!tm_config_name_valid(v)) {
                        r = tm_config_section_error(c, s, "name", err, errlen,
                                                    "invalid replica name '%s': use letters, "
                                                    "digits, '-', '_' and '.' (at most 64)",
                                                    v);
                        goto fail;
                }
                free(ret->name);
                ret->name = strdup(v);
                if (!ret->name) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        v = tm_config_section_get(s, "interval");
        if (v && (tm_config_parse_duration(v, &ret->interval_ns) < 0 || ret->interval_ns <= 0)) {
                r = tm_config_section_error(c, s, "interval", err, errlen,
                                            "invalid interval '%s' (e.g. 30s, 5m, 1h)", v);
                goto fail;
        }
        v = tm_config_section_get(s, "bandwidth");
        if (v && tm_config_parse_size(v, &ret->bandwidth) < 0) {
                r = tm_config_section_error(c, s, "bandwidth", err, errlen,
                                            "invalid bandwidth '%s' (bytes per second, e.g. "
                                            "50M; 0 = unlimited)",
                                            v);
                goto fail;
        }
        v = tm_config_section_get(s, "parallel");
        if (v) {
                char *end = NULL;

                errno = 0;
                u = strtoull(v, &end, 10);
                if (*v < '0' || *v > '9' || errno || !end || *end || u < 1 || u > MAX_PARALLEL) {
                        r = tm_config_section_error(c, s, "parallel", err, errlen,
                                                    "invalid parallel '%s' (1 to %d)", v,
                                                    MAX_PARALLEL);
                        goto fail;
                }
                ret->parallel = (int)u;
        }
        v = tm_config_section_get(s, "verify");
        if (v) {
                if (!strcmp(v, "full")) {
                        ret->verify = TM_REPLICA_VERIFY_FULL;
                } else if (!strcmp(v, "size")) {
                        ret->verify = TM_REPLICA_VERIFY_SIZE;
                } else {
                        r = tm_config_section_error(c, s, "verify", err, errlen,
                                                    "invalid verify '%s' (full or size)", v);
                        goto fail;
                }
        }
        v = tm_config_section_get(s, "delete");
        if (v && tm_config_parse_bool(v, &ret->propagate_deletes) < 0) {
                r = tm_config_section_error(c, s, "delete", err, errlen,
                                            "invalid delete '%s' (on or off)", v);
                goto fail;
        }
        return 0;
fail:
        tm_replica_conf_dispose(ret);
        return r;
}

/* ---- listings ---- */

struct obj {
        char *name;
        uint64_t size;
        int64_t commit_ns; /* snapshots: from the primary's catalog; 0 unknown */
        int done;          /* on the replica, whole */
        int gone;          /* removed from the primary since the listing */
};

struct objset {
        struct obj *v;
        size_t n, cap;
};

static void objset_dispose(struct objset *s)
{
        for (size_t i = 0; i < s->n; i++)
                free(s->v[i].name);
        free(s->v);
        *s = (struct objset){ 0 };
}

static int objset_add(struct objset *s, const char *name, uint64_t size)
{
        if (s->n == s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 64;
                struct obj *v = realloc(s->v, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                s->v = v;
                s->cap = cap;
        }
        s->v[s->n] = (struct obj){ .name = strdup(name), .size = size };
        if (!s->v[s->n].name)
                return -ENOMEM;
        s->n++;
        return 0;
}

static int obj_cmp(const void *a, const void *b)
{
        return strcmp(((const struct obj *)a)->name, ((const struct obj *)b)->name);
}

static struct obj *objset_find(const struct objset *s, const char *name)
{
        struct obj key = { .name = (char *)name };

        return s->n ? bsearch(&key, s->v, s->n, sizeof(*s->v), obj_cmp) : NULL;
}

/* qsort() must not see the NULL array of an empty set */
static void objset_sort(struct objset *s)
{
        if (s->n > 1)
                qsort(s->v, s->n, sizeof(*s->v), obj_cmp);
}

static int list_cb(const char *name, uint64_t size, void *userdata)
{
        return objset_add(userdata, name, size);
}

/* The object kinds a repository is made of, in the order a pass copies them:
 * a replica becomes a repository (config) only once a key opens it. Locks
 * belong to the primary's live processes and are never copied. */
static const char *const kinds[] = { "keys/", "config", "data/", "index/", "snapshots/" };
enum { K_KEYS, K_CONFIG, K_DATA, K_INDEX, K_SNAPSHOTS, K_COUNT };

struct side {
        struct objset k[K_COUNT];
};

static void side_dispose(struct side *s)
{
        for (int i = 0; i < K_COUNT; i++)
                objset_dispose(&s->k[i]);
}

static int side_list(tm_backend *be, struct side *ret)
{
        struct side s = { 0 };
        uint64_t size;
        int r = 0;

        /* newest commits first: snapshots, then the index files they need,
         * then packs. Each is written before what refers to it, so every
         * snapshot listed here finds its index files and packs in the later
         * listings. */
        for (int i = K_COUNT - 1; i >= 0; i--) {
                if (i == K_CONFIG) {
                        r = tm_backend_head(be, "config", &size);
                        if (r == 0)
                                r = objset_add(&s.k[i], "config", size);
                        else if (r == -ENOENT)
                                r = 0;
                } else {
                        r = tm_backend_list(be, kinds[i], list_cb, &s.k[i]);
                }
                if (r < 0)
                        goto out;
                objset_sort(&s.k[i]);
        }
        side_dispose(ret);
        *ret = s;
        s = (struct side){ 0 };
out:
        side_dispose(&s);
        return r;
}

/* ---- the replicator ---- */

struct tm_replica {
        tm_repo *primary;
        const struct tm_replica_conf *conf;
        tm_backend *dst;
        struct side src, known; /* known: the replica as last listed, plus copies since */
        int known_valid;

        pthread_mutex_t lock; /* last, and the throttle */
        struct tm_replica_status last;
        int64_t tb_start;
        uint64_t tb_bytes;
};

int tm_replica_new(tm_repo *primary, const struct tm_replica_conf *conf, tm_replica **ret)
{
        tm_replica *r = NULL;
        int rc;

        if (!primary || !conf || !conf->location || !*conf->location)
                return -EINVAL;
        if (!strcmp(conf->location, tm_repo_location(primary)))
                return tm_log_errno(TM_LOG_ERR, -EINVAL,
                                    "the replica location '%s' is the repository itself",
                                    conf->location);
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->primary = primary;
        r->conf = conf;
        pthread_mutex_init(&r->lock, NULL);
        rc = tm_backend_open_url(conf->location, 1, &r->dst);
        if (rc < 0) {
                tm_log_errno(TM_LOG_ERR, rc, "cannot open the replica location '%s'",
                             conf->location);
                tm_replica_free(r);
                return rc;
        }
        *ret = r;
        return 0;
}

void tm_replica_free(tm_replica *r)
{
        if (!r)
                return;
        tm_backend_free(r->dst);
        side_dispose(&r->src);
        side_dispose(&r->known);
        pthread_mutex_destroy(&r->lock);
        free(r);
}

const char *tm_replica_location(const tm_replica *r)
{
        return r->conf->location;
}

void tm_replica_last(tm_replica *r, struct tm_replica_status *ret)
{
        pthread_mutex_lock(&r->lock);
        *ret = r->last;
        pthread_mutex_unlock(&r->lock);
        if (ret->oldest_missing_ns > 0) {
                int64_t lag = tm_time_now() - ret->oldest_missing_ns;

                ret->lag_ns = lag > 0 ? lag : 0;
        }
}

/* Give each listed snapshot its commit time from the primary's catalog. */
static int snapshot_times(tm_replica *r)
{
        struct tm_snapshot *snaps = NULL;
        size_t n = 0;
        char name[16 + TM_ID_HEX_LEN];
        int rc;

        rc = tm_repo_refresh(r->primary);
        if (rc < 0)
                return rc;
        rc = tm_repo_snapshot_list(r->primary, NULL, &snaps, &n);
        if (rc < 0)
                return rc;
        for (size_t i = 0; i < n; i++) {
                struct obj *o;
                char hex[TM_ID_HEX_LEN + 1];

                tm_id_hex(&snaps[i].id, hex);
                snprintf(name, sizeof(name), "snapshots/%s", hex);
                o = objset_find(&r->src.k[K_SNAPSHOTS], name);
                /* a backup stamps its snapshot when it commits */
                if (o)
                        o->commit_ns = snaps[i].time;
        }
        tm_snapshot_array_free(snaps, n);
        return 0;
}

static int obj_commit_cmp(const void *a, const void *b)
{
        const struct obj *x = *(const struct obj *const *)a, *y = *(const struct obj *const *)b;

        if (x->commit_ns != y->commit_ns)
                return x->commit_ns < y->commit_ns ? -1 : 1;
        return strcmp(x->name, y->name);
}

/* Mark what the replica already holds whole (same name and size). */
static void mark_done(tm_replica *r)
{
        for (int k = 0; k < K_COUNT; k++)
                for (size_t i = 0; i < r->src.k[k].n; i++) {
                        struct obj *o = &r->src.k[k].v[i],
                                   *d = objset_find(&r->known.k[k], o->name);

                        o->done = d && d->size == o->size;
                }
}

static void compute_status(tm_replica *r, int reachable, struct tm_replica_status *ret)
{
        struct tm_replica_status st = { .reachable = reachable };

        for (int k = 0; k < K_COUNT; k++) {
                for (size_t i = 0; i < r->src.k[k].n; i++) {
                        const struct obj *o = &r->src.k[k].v[i];

                        if (o->gone)
                                continue;
                        if (k == K_SNAPSHOTS)
                                st.snapshots++;
                        if (o->done)
                                continue;
                        st.objects_behind++;
                        st.bytes_behind += o->size;
                        if (k == K_SNAPSHOTS) {
                                st.snapshots_behind++;
                                /* a snapshot the catalog does not know yet
                                 * was committed just now */
                                int64_t t = o->commit_ns > 0 ? o->commit_ns : tm_time_now();

                                if (!st.oldest_missing_ns || t < st.oldest_missing_ns)
                                        st.oldest_missing_ns = t;
                        }
                }
                for (size_t i = 0; i < r->known.k[k].n; i++)
                        if (!objset_find(&r->src.k[k], r->known.k[k].v[i].name))
                                st.objects_extra++;
        }
        if (st.oldest_missing_ns) {
                int64_t lag = tm_time_now() - st.oldest_missing_ns;

                st.lag_ns = lag > 0 ? lag : 0;
        }
        pthread_mutex_lock(&r->lock);
        r->last = st;
        pthread_mutex_unlock(&r->lock);
        if (ret)
                *ret = st;
}

/* List the primary, then the replica (keeping the last known listing of an
 * unreachable replica). Returns 1 when the replica answered, 0 when not,
 * or the primary's error. */
static int list_both(tm_replica *r, int *ret_dst_err)
{
        struct side dst = { 0 };
        int rc;

        *ret_dst_err = 0;

        rc = side_list(tm_repo_backend(r->primary), &r->src);
        if (rc < 0)
                return tm_log_errno(TM_LOG_ERR, rc, "cannot list the repository '%s'",
                                    tm_repo_location(r->primary));
        rc = snapshot_times(r);
        if (rc < 0)
                return rc;
        rc = side_list(r->dst, &dst);
        if (rc < 0) {
                tm_log_errno(TM_LOG_WARN, rc, "cannot list the replica '%s'", r->conf->location);
                *ret_dst_err = rc;
                mark_done(r);
                return 0;
        }
        side_dispose(&r->known);
        r->known = dst;
        r->known_valid = 1;
        mark_done(r);
        return 1;
}

int tm_replica_status(tm_replica *r, struct tm_replica_status *ret)
{
        int dst_err;
        int rc = list_both(r, &dst_err);

        if (rc < 0)
                return rc;
        compute_status(r, rc, ret);
        return 0;
}

/* ---- copying ---- */

/* Sleep so that the bytes moved since the pass began stay within the
 * configured bandwidth (one budget shared by all workers). */
static void throttle(tm_replica *r, uint64_t n)
{
        int64_t due, now;

        if (!r->conf->bandwidth)
                return;
        pthread_mutex_lock(&r->lock);
        r->tb_bytes += n;
        due = r->tb_start + (int64_t)((double)r->tb_bytes * 1e9 / (double)r->conf->bandwidth);
        pthread_mutex_unlock(&r->lock);
        now = tm_time_mono();
        if (due > now) {
                struct timespec ts = { .tv_sec = (due - now) / TM_NSEC_PER_SEC,
                                       .tv_nsec = (due - now) % TM_NSEC_PER_SEC };

                while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                        ;
        }
}

/* The SHA-256 every name but "config" carries: "keys/<hex>",
 * "data/ab/<hex>", "index/<hex>", "snapshots/<hex>". */
static int name_id(const char *name, tm_id *ret)
{
        const char *slash = strrchr(name, '/');

        return slash ? tm_id_parse(slash + 1, ret) : -ENOENT;
}

static int verify_bytes(const char *name, const tm_buf *b, const tm_buf *want)
{
        tm_id id, got;

        if (want)
                return b->len == want->len && !memcmp(b->data, want->data, b->len) ? 0 : -EBADMSG;
        if (name_id(name, &id) < 0)
                return -EBADMSG;
        tm_crypto_sha256(b->data, b->len, &got);
        return tm_id_cmp(&id, &got) == 0 ? 0 : -EBADMSG;
}

/* Copy one object: read it from the primary, check it against its name,
 * write it, check what landed. */
static int copy_one(tm_replica *r, const char *name, uint64_t *ret_bytes)
{
        tm_buf b = TM_BUF_INIT(0), back = TM_BUF_INIT(0);
        uint64_t size = 0;
        int is_config = !strcmp(name, "config");
        int rc;

        rc = tm_backend_get(tm_repo_backend(r->primary), name, 0, &b);
        if (rc == -ENODATA) {
                /* a pack the lifecycle moved to GLACIER / DEEP_ARCHIVE
                 * before it was replicated: ask for it now; the pass stops
                 * before the index files and a later one copies it */
                int t = tm_backend_thaw(tm_repo_backend(r->primary), name, NULL, 1);

                if (t < 0)
                        rc = t;
                tm_log(TM_LOG_INFO, "replica: '%s' is archived; %s", name,
                       t < 0 ? "its thaw request failed"
                             : "thaw requested, a later pass copies it");
        }
        if (rc < 0) {
                if (rc != -ENOENT && rc != -ENODATA)
                        tm_log_errno(TM_LOG_ERR, rc, "replica: cannot read '%s' from '%s'", name,
                                     tm_repo_location(r->primary));
                goto out;
        }
        if (!is_config && verify_bytes(name, &b, NULL) < 0) {
                /* never spread a damaged object: the replica may be what a
                 * restore needs after this primary is gone */
                rc = tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                  "replica: '%s' on the repository does not match its name; "
                                  "not copied (run check --read-data there)",
                                  name);
                goto out;
        }
        throttle(r, b.len);
        rc = tm_backend_put(r->dst, name, b.data, b.len);
        if (rc < 0) {
                tm_log_errno(TM_LOG_ERR, rc, "replica: cannot write '%s' to '%s'", name,
                             r->conf->location);
                goto out;
        }
        if (r->conf->verify == TM_REPLICA_VERIFY_FULL) {
                rc = tm_backend_get(r->dst, name, b.len + 1, &back);
                if (rc == 0)
                        rc = verify_bytes(name, &back, is_config ? &b : NULL);
                if (rc == 0 && back.len != b.len)
                        rc = -EBADMSG;
        } else {
                rc = tm_backend_head(r->dst, name, &size);
                if (rc == 0 && size != b.len)
                        rc = -EBADMSG;
        }
        if (rc < 0) {
                tm_log_errno(TM_LOG_ERR, rc, "replica: '%s' on '%s' does not read back as written",
                             name, r->conf->location);
                goto out;
        }
        *ret_bytes = b.len;
out:
        tm_buf_dispose(&b);
        tm_buf_dispose(&back);
        return rc;
}

struct batch {
        tm_replica *r;
        struct obj **v;
        size_t n;
        atomic_size_t next;
        const volatile int *cancel;
        atomic_uint_fast64_t copied, bytes, errors;
        atomic_int first_err;
};

static void *batch_worker(void *arg)
{
        struct batch *bt = arg;
        size_t i;

        while ((i = atomic_fetch_add(&bt->next, 1)) < bt->n) {
                struct obj *o = bt->v[i];
                uint64_t bytes = 0;
                int rc, zero = 0;

                if (bt->cancel && *bt->cancel) {
                        atomic_compare_exchange_strong(&bt->first_err, &zero, -ECANCELED);
                        break;
                }
                rc = copy_one(bt->r, o->name, &bytes);
                if (rc == -ENOENT) {
                        /* forgotten on the primary since the listing */
                        o->gone = 1;
                        continue;
                }
                if (rc < 0) {
                        if (rc != -ENODATA) /* a thaw is not a failure */
                                atomic_fetch_add(&bt->errors, 1);
                        atomic_compare_exchange_strong(&bt->first_err, &zero, rc);
                        continue;
                }
                o->done = 1;
                atomic_fetch_add(&bt->copied, 1);
                atomic_fetch_add(&bt->bytes, bytes);
        }
        return NULL;
}

/* Copy every object of v (in order when parallel is 1; snapshots always go
 * one by one so that they land in commit order). */
static int copy_batch(tm_replica *r, struct obj **v, size_t n, int parallel,
                      const volatile int *cancel, struct tm_replica_stats *st)
{
        struct batch bt = { .r = r, .v = v, .n = n, .cancel = cancel };
        pthread_t th[MAX_PARALLEL];
        int started = 0;

        if (!n)
                return 0;
        if ((size_t)parallel > n)
                parallel = (int)n;
        for (; started < parallel - 1; started++)
                if (pthread_create(&th[started], NULL, batch_worker, &bt) != 0)
                        break;
        batch_worker(&bt);
        for (int i = 0; i < started; i++)
                pthread_join(th[i], NULL);
        st->objects_copied += atomic_load(&bt.copied);
        st->bytes_copied += atomic_load(&bt.bytes);
        st->errors += atomic_load(&bt.errors);
        return atomic_load(&bt.first_err);
}

/* The not-yet-copied objects of one kind (pointers into r->src). */
static int pending(tm_replica *r, int k, struct obj ***ret, size_t *ret_n)
{
        struct objset *s = &r->src.k[k];
        struct obj **v;
        size_t n = 0;

        v = calloc(s->n ? s->n : 1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++)
                if (!s->v[i].done)
                        v[n++] = &s->v[i];
        if (k == K_SNAPSHOTS && n > 1)
                qsort(v, n, sizeof(*v), obj_commit_cmp);
        *ret = v;
        *ret_n = n;
        return 0;
}

/* The config on the replica must be the primary's: anything else means the
 * location holds another repository, which a pass must never touch (it
 * would delete that repository's objects). */
static int same_repository(tm_replica *r)
{
        tm_buf a = TM_BUF_INIT(1 << 20), b = TM_BUF_INIT(1 << 20);
        int rc;

        rc = tm_backend_get(r->dst, "config", 1 << 20, &b);
        if (rc == -ENOENT) {
                /* a fresh location, unless it holds objects of its own */
                rc = 0;
                for (int k = 0; k < K_COUNT; k++)
                        if (r->known.k[k].n && k != K_KEYS)
                                rc = 1;
                if (rc)
                        rc = tm_log_errno(TM_LOG_ERR, -EEXIST,
                                          "the replica location '%s' holds objects but no "
                                          "repository config: not replicating into it",
                                          r->conf->location);
                goto out;
        }
        if (rc < 0)
                goto out;
        rc = tm_backend_get(tm_repo_backend(r->primary), "config", 1 << 20, &a);
        if (rc < 0)
                goto out;
        if (a.len != b.len || memcmp(a.data, b.data, a.len))
                rc = tm_log_errno(TM_LOG_ERR, -EEXIST,
                                  "the replica location '%s' holds another repository: not "
                                  "replicating into it",
                                  r->conf->location);
out:
        tm_buf_dispose(&a);
        tm_buf_dispose(&b);
        return rc;
}

/* Remove from the replica what the primary no longer has, in the reverse of
 * the write order: a snapshot goes before the index files and packs it
 * needs, so no replica snapshot ever points at a deleted pack. */
static int propagate_deletes(tm_replica *r, const volatile int *cancel, struct tm_replica_stats *st)
{
        static const int order[] = { K_SNAPSHOTS, K_INDEX, K_DATA, K_KEYS };
        int first = 0;

        for (size_t j = 0; j < TM_ARRAY_SIZE(order); j++) {
                struct objset *known = &r->known.k[order[j]];
                size_t keep = 0;

                if (order[j] == K_KEYS && !r->src.k[K_KEYS].n)
                        continue; /* never leave a replica without a key */
                for (size_t i = 0; i < known->n; i++) {
                        struct obj *o = &known->v[i];
                        int rc = 0;

                        if (objset_find(&r->src.k[order[j]], o->name) || first ||
                            (cancel && *cancel)) {
                                known->v[keep++] = *o;
                                continue;
                        }
                        rc = tm_backend_remove(r->dst, o->name);
                        if (rc < 0 && rc != -ENOENT) {
                                tm_log_errno(TM_LOG_ERR, rc, "replica: cannot delete '%s' on '%s'",
                                             o->name, r->conf->location);
                                st->errors++;
                                first = rc;
                                known->v[keep++] = *o;
                                continue;
                        }
                        st->objects_deleted++;
                        free(o->name);
                }
                known->n = keep;
                /* a later kind may only go once the earlier one is gone */
                if (first || (cancel && *cancel))
                        break;
        }
        if (!first && cancel && *cancel)
                first = -ECANCELED;
        return first;
}

/* Record copies in the known listing (for status while unreachable). */
static int remember_copies(tm_replica *r)
{
        for (int k = 0; k < K_COUNT; k++) {
                struct objset *known = &r->known.k[k];
                /* look up in the sorted part only; additions go after it */
                struct objset sorted = *known;

                for (size_t i = 0; i < r->src.k[k].n; i++) {
                        const struct obj *o = &r->src.k[k].v[i];
                        struct obj *d;

                        if (!o->done)
                                continue;
                        d = objset_find(&sorted, o->name);
                        if (d) {
                                d->size = o->size;
                                continue;
                        }
                        if (objset_add(known, o->name, o->size) < 0)
                                return -ENOMEM;
                        sorted.v = known->v;
                }
                objset_sort(known);
        }
        return 0;
}

int tm_replica_run(tm_replica *r, const volatile int *cancel, struct tm_replica_stats *ret)
{
        struct tm_replica_stats st = { 0 };
        int64_t start = tm_time_mono();
        tm_lock *lock = NULL;
        struct obj **v = NULL;
        size_t n = 0;
        int rc, reachable = 0, listed = 0, dst_err = 0;

        /* a prune waits for registered writers: holding one keeps every
         * pack a listed snapshot needs on the primary until the pass ends */
        rc = tm_repo_lock_writer(r->primary, 0, &lock);
        if (rc < 0) {
                if (rc == -EBUSY || rc == -ETIMEDOUT)
                        tm_log(TM_LOG_INFO, "replica: a prune holds the repository; the next "
                                            "pass will catch up");
                goto out;
        }
        rc = list_both(r, &dst_err);
        if (rc < 0)
                goto out;
        listed = 1;
        reachable = rc;
        if (!reachable) {
                rc = dst_err;
                st.errors++;
                goto out;
        }
        rc = same_repository(r);
        if (rc < 0)
                goto out;
        if (tm_backend_clean_temp(r->dst, TEMP_AGE_S) < 0)
                tm_log(TM_LOG_DEBUG, "replica: cannot clean temp files on '%s'", r->conf->location);
        pthread_mutex_lock(&r->lock);
        r->tb_start = tm_time_mono();
        r->tb_bytes = 0;
        pthread_mutex_unlock(&r->lock);
        /* the primary's write order; a kind starts only when every object
         * of the kinds before it has landed */
        for (int k = 0; k < K_COUNT; k++) {
                rc = pending(r, k, &v, &n);
                if (rc < 0)
                        goto out;
                rc = copy_batch(r, v, n, k == K_SNAPSHOTS ? 1 : r->conf->parallel, cancel, &st);
                free(v);
                v = NULL;
                if (rc < 0)
                        goto out;
        }
        if (r->conf->propagate_deletes) {
                rc = propagate_deletes(r, cancel, &st);
                if (rc < 0)
                        goto out;
        }
out:
        if (r->known_valid && remember_copies(r) < 0 && rc == 0)
                rc = -ENOMEM;
        if (lock)
                tm_lock_release(lock);
        if (listed)
                compute_status(r, reachable, &st.status);
        else
                tm_replica_last(r, &st.status);
        st.duration_ns = tm_time_mono() - start;
        if (ret)
                *ret = st;
        return rc;
}
