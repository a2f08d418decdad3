/*
 * The tiered backend: hot, warm, cold and archive locations seen as one
 * backend, so that everything above the backend (packs, index rebuild,
 * prune, check, restore, the filesystem) reads and deletes a pack wherever
 * it lives without knowing tiers exist.
 *
 * Only packs ("data/<2 hex>/<64 hex>") ever leave tier 0; config, keys,
 * index files, snapshots and locks are always in tier 0. Where a pack is
 * comes from the stores themselves (one listing of each tier, then a HEAD
 * for packs written since), never from a file of ours: a repository whose
 * catalog and caches are gone is still whole. A move (lib/src/tier) copies
 * first and deletes last, so for a moment a pack is in two tiers; reads then
 * take the warmer copy, and a reader that finds its copy gone (another
 * process moved it) looks again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/log.h>

#include "backend_internal.h"
#include "core/idset.h"

struct slot {
        tm_id id;
        uint8_t used, mask;
};

struct tiered {
        struct tm_backend base;
        struct tm_backend_tier t[TM_BACKEND_TIERS];
        char *retrieval[TM_BACKEND_TIERS];
        pthread_mutex_t lock;      /* guards the map */
        pthread_mutex_t load_lock; /* one listing at a time */
        struct slot *slots;
        size_t cap, n;
        int loaded;
};

static const struct tm_backend_ops tiered_ops;

static struct tiered *to_tb(tm_backend *b)
{
        return (struct tiered *)b;
}

int tm_backend_is_tiered(const tm_backend *b)
{
        return b && b->ops == &tiered_ops;
}

/* "data/ab/<hex>" -> its id; 0 when name is not a pack. */
static int pack_id_of(const char *name, tm_id *ret)
{
        const char *slash;

        if (strncmp(name, "data/", 5) != 0)
                return 0;
        slash = strrchr(name, '/');
        return tm_id_parse(slash + 1, ret) == 0;
}

/* ---- the map: pack id -> bit mask of tiers (caller holds lock) ---- */

static size_t slot_of(const struct tiered *tb, const tm_id *id)
{
        uint64_t h;

        memcpy(&h, id->b, sizeof(h)); /* ids are uniformly random already */
        return (size_t)h & (tb->cap - 1);
}

static struct slot *map_find(struct tiered *tb, const tm_id *id)
{
        if (!tb->cap)
                return NULL;
        for (size_t i = slot_of(tb, id);; i = (i + 1) & (tb->cap - 1)) {
                struct slot *s = &tb->slots[i];

                if (!s->used)
                        return NULL;
                if (memcmp(s->id.b, id->b, sizeof(id->b)) == 0)
                        return s;
        }
}

static int map_grow(struct tiered *tb)
{
        size_t ncap = tb->cap ? tb->cap * 2 : 1024;
        struct slot *old = tb->slots, *a = calloc(ncap, sizeof(*a));
        size_t ocap = tb->cap;

        if (!a)
                return -ENOMEM;
        tb->slots = a;
        tb->cap = ncap;
        for (size_t i = 0; i < ocap; i++) {
                if (!old[i].used)
                        continue;
                for (size_t j = slot_of(tb, &old[i].id);; j = (j + 1) & (ncap - 1)) {
                        if (!a[j].used) {
                                a[j] = old[i];
                                break;
                        }
                }
        }
        free(old);
        return 0;
}

/* Set (or with or_mask, add to) the mask of id. Slots are never removed: a
 * pack in no tier keeps mask 0. */
static int map_set(struct tiered *tb, const tm_id *id, uint8_t mask, int or_mask)
{
        struct slot *s = map_find(tb, id);

        if (!s) {
                int r;

                if ((tb->n + 1) * 4 > tb->cap * 3) {
                        r = map_grow(tb);
                        if (r < 0)
                                return r;
                }
                for (size_t i = slot_of(tb, id);; i = (i + 1) & (tb->cap - 1)) {
                        if (!tb->slots[i].used) {
                                s = &tb->slots[i];
                                break;
                        }
                }
                s->used = 1;
                s->id = *id;
                s->mask = 0;
                tb->n++;
        }
        s->mask = or_mask ? (uint8_t)(s->mask | mask) : mask;
        return 0;
}

static uint8_t map_get(struct tiered *tb, const tm_id *id)
{
        struct slot *s;
        uint8_t m;

        pthread_mutex_lock(&tb->lock);
        s = map_find(tb, id);
        m = s ? s->mask : 0;
        pthread_mutex_unlock(&tb->lock);
        return m;
}

static int map_update(struct tiered *tb, const tm_id *id, uint8_t mask, int or_mask)
{
        int r;

        pthread_mutex_lock(&tb->lock);
        r = map_set(tb, id, mask, or_mask);
        pthread_mutex_unlock(&tb->lock);
        return r;
}

/* ---- where a pack is ---- */

struct load_ctx {
        struct tiered *tb;
        unsigned tier;
};

static int load_cb(const char *name, uint64_t size, void *ud)
{
        struct load_ctx *c = ud;
        tm_id id;

        (void)size;
        if (!pack_id_of(name, &id))
                return 0;
        return map_update(c->tb, &id, (uint8_t)(1u << c->tier), 1);
}

static int load(struct tiered *tb)
{
        int r = 0;

        pthread_mutex_lock(&tb->load_lock);
        if (tb->loaded)
                goto out;
        for (unsigned i = 0; i < TM_BACKEND_TIERS; i++) {
                struct load_ctx c = { tb, i };

                if (!tb->t[i].backend)
                        continue;
                r = tm_backend_list(tb->t[i].backend, "data/", load_cb, &c);
                if (r < 0) {
                        tm_log_errno(TM_LOG_ERR, r, "cannot list the packs of tier %u at '%s'", i,
                                     tm_backend_location(tb->t[i].backend));
                        goto out;
                }
        }
        tb->loaded = 1;
out:
        pthread_mutex_unlock(&tb->load_lock);
        return r;
}

/* Ask every tier (a pack written or moved by another process since the
 * listing). */
static int probe(struct tiered *tb, const char *name, const tm_id *id, uint8_t *ret)
{
        uint8_t m = 0;
        int r;

        for (unsigned i = 0; i < TM_BACKEND_TIERS; i++) {
                if (!tb->t[i].backend)
                        continue;
                r = tm_backend_head(tb->t[i].backend, name, NULL);
                if (r == 0)
                        m |= (uint8_t)(1u << i);
                else if (r != -ENOENT && r != -ENODATA)
                        return r;
        }
        r = map_update(tb, id, m, 0);
        if (r < 0)
                return r;
        *ret = m;
        return m ? 0 : -ENOENT;
}

static int where(struct tiered *tb, const char *name, const tm_id *id, uint8_t *ret)
{
        int r = load(tb);

        if (r < 0)
                return r;
        *ret = map_get(tb, id);
        if (*ret)
                return 0;
        return probe(tb, name, id, ret);
}

/*
 * Run op on the warmest tier holding the pack; a copy that vanished under us
 * (moved or deleted by another process) is dropped from the map and the
 * next one tried, then every tier is asked once more.
 */
typedef int (*tier_op_fn)(tm_backend *b, const char *name, void *ud);

static int on_pack(struct tiered *tb, const char *name, const tm_id *id, tier_op_fn op, void *ud)
{
        uint8_t m;
        int r, round;

        for (round = 0; round < 2; round++) {
                r = round == 0 ? where(tb, name, id, &m) : probe(tb, name, id, &m);
                if (r < 0)
                        return r;
                for (unsigned i = 0; i < TM_BACKEND_TIERS; i++) {
                        if (!(m & (1u << i)) || !tb->t[i].backend)
                                continue;
                        r = op(tb->t[i].backend, name, ud);
                        if (r != -ENOENT)
                                return r;
                        pthread_mutex_lock(&tb->lock);
                        struct slot *s = map_find(tb, id);
                        if (s)
                                s->mask &= (uint8_t)~(1u << i);
                        pthread_mutex_unlock(&tb->lock);
                }
        }
        return -ENOENT;
}

/* ---- the ops ---- */

static tm_backend *home(tm_backend *b)
{
        return to_tb(b)->t[0].backend;
}

static int tb_put(tm_backend *b, const char *name, const void *p, size_t n)
{
        tm_id id;
        int r = tm_backend_put(home(b), name, p, n);

        if (r == 0 && pack_id_of(name, &id))
                r = map_update(to_tb(b), &id, 1, 1);
        return r;
}

static int tb_put_new(tm_backend *b, const char *name, const void *p, size_t n)
{
        return tm_backend_put_new(home(b), name, p, n);
}

struct get_args {
        size_t limit;
        uint64_t off;
        size_t len;
        tm_buf *ret;
        uint64_t *size;
        const char *retrieval;
        int days;
};

static int op_get(tm_backend *b, const char *name, void *ud)
{
        struct get_args *a = ud;

        return tm_backend_get(b, name, a->limit, a->ret);
}

static int tb_get(tm_backend *b, const char *name, size_t limit, tm_buf *ret)
{
        struct get_args a = { .limit = limit, .ret = ret };
        tm_id id;

        if (!pack_id_of(name, &id))
                return tm_backend_get(home(b), name, limit, ret);
        return on_pack(to_tb(b), name, &id, op_get, &a);
}

static int op_get_range(tm_backend *b, const char *name, void *ud)
{
        struct get_args *a = ud;

        return tm_backend_get_range(b, name, a->off, a->len, a->ret);
}

static int tb_get_range(tm_backend *b, const char *name, uint64_t off, size_t len, tm_buf *ret)
{
        struct get_args a = { .off = off, .len = len, .ret = ret };
        tm_id id;

        if (!pack_id_of(name, &id))
                return tm_backend_get_range(home(b), name, off, len, ret);
        return on_pack(to_tb(b), name, &id, op_get_range, &a);
}

static int op_head(tm_backend *b, const char *name, void *ud)
{
        struct get_args *a = ud;

        return tm_backend_head(b, name, a->size);
}

static int tb_head(tm_backend *b, const char *name, uint64_t *ret_size)
{
        struct get_args a = { .size = ret_size };
        tm_id id;

        if (!pack_id_of(name, &id))
                return tm_backend_head(home(b), name, ret_size);
        return on_pack(to_tb(b), name, &id, op_head, &a);
}

struct list_ctx {
        struct tiered *tb;
        unsigned tier;
        struct tm_idset seen;
        tm_backend_list_fn fn;
        void *ud;
};

static int list_cb(const char *name, uint64_t size, void *ud)
{
        struct list_ctx *c = ud;
        tm_id id;
        int r;

        if (!pack_id_of(name, &id))
                return c->tier == 0 ? c->fn(name, size, c->ud) : 0;
        r = map_update(c->tb, &id, (uint8_t)(1u << c->tier), 1);
        if (r < 0)
                return r;
        r = tm_idset_insert(&c->seen, &id);
        if (r < 0)
                return r;
        if (r == 0) /* already listed from a warmer tier */
                return 0;
        return c->fn(name, size, c->ud);
}

static int tb_list(tm_backend *b, const char *prefix, tm_backend_list_fn fn, void *userdata)
{
        struct tiered *tb = to_tb(b);
        struct list_ctx c = { .tb = tb, .fn = fn, .ud = userdata };
        int r;

        if (*prefix && strcmp(prefix, "data") != 0 && strncmp(prefix, "data/", 5) != 0)
                return tm_backend_list(home(b), prefix, fn, userdata);
        r = tm_idset_init(&c.seen, 1024);
        if (r < 0)
                return r;
        for (c.tier = 0; c.tier < TM_BACKEND_TIERS; c.tier++) {
                if (!tb->t[c.tier].backend)
                        continue;
                r = tm_backend_list(tb->t[c.tier].backend, c.tier == 0 || *prefix ? prefix : "data",
                                    list_cb, &c);
                if (r != 0)
                        break;
        }
        tm_idset_dispose(&c.seen);
        return r;
}

static int tb_remove(tm_backend *b, const char *name)
{
        struct tiered *tb = to_tb(b);
        uint8_t m;
        tm_id id;
        int r, removed = 0;

        if (!pack_id_of(name, &id))
                return tm_backend_remove(home(b), name);
        r = where(tb, name, &id, &m);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < TM_BACKEND_TIERS; i++) {
                if (!(m & (1u << i)) || !tb->t[i].backend)
                        continue;
                r = tm_backend_remove(tb->t[i].backend, name);
                if (r == 0)
                        removed = 1;
                else if (r != -ENOENT)
                        return r;
        }
        r = map_update(tb, &id, 0, 0);
        if (r < 0)
                return r;
        return removed ? 0 : -ENOENT;
}

static int tb_clean_temp(tm_backend *b, int64_t age_s)
{
        struct tiered *tb = to_tb(b);
        int n = 0;

        for (unsigned i = 0; i < TM_BACKEND_TIERS; i++) {
                int r;

                if (!tb->t[i].backend)
                        continue;
                r = tm_backend_clean_temp(tb->t[i].backend, age_s);
                if (r < 0)
                        return r;
                n += r;
        }
        return n;
}

static int op_thaw(tm_backend *b, const char *name, void *ud)
{
        struct get_args *a = ud;

        return tm_backend_thaw(b, name, a->retrieval, a->days);
}

/* The warmest copy decides; each tier thaws with its own retrieval tier. */
static int tb_thaw(tm_backend *b, const char *name, const char *retrieval, int days)
{
        struct tiered *tb = to_tb(b);
        struct get_args a = { .retrieval = retrieval, .days = days };
        uint8_t m;
        tm_id id;
        int r;

        if (!pack_id_of(name, &id))
                return tm_backend_thaw(home(b), name, retrieval, days);
        r = where(tb, name, &id, &m);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < TM_BACKEND_TIERS; i++) {
                if (!(m & (1u << i)) || !tb->t[i].backend)
                        continue;
                if (tb->retrieval[i])
                        a.retrieval = tb->retrieval[i];
                if (tb->t[i].thaw_days > 0)
                        a.days = tb->t[i].thaw_days;
                return op_thaw(tb->t[i].backend, name, &a);
        }
        return -ENOENT;
}

static const char *tb_location(const tm_backend *b)
{
        return tm_backend_location(((const struct tiered *)b)->t[0].backend);
}

static void tb_free(tm_backend *b)
{
        struct tiered *tb = to_tb(b);

        for (unsigned i = 0; i < TM_BACKEND_TIERS; i++) {
                tm_backend_free(tb->t[i].backend);
                free(tb->retrieval[i]);
        }
        free(tb->slots);
        pthread_mutex_destroy(&tb->lock);
        pthread_mutex_destroy(&tb->load_lock);
        free(tb);
}

static const struct tm_backend_ops tiered_ops = {
        .kind = "tiered",
        .put = tb_put,
        .put_new = tb_put_new,
        .get = tb_get,
        .get_range = tb_get_range,
        .head = tb_head,
        .list = tb_list,
        .remove = tb_remove,
        .clean_temp = tb_clean_temp,
        .thaw = tb_thaw,
        .free = tb_free,
        .location = tb_location,
};

int tm_backend_open_tiered(struct tm_backend_tier tiers[TM_BACKEND_TIERS], tm_backend **ret)
{
        struct tiered *tb = NULL;
        int r = -EINVAL;

        if (!tiers || !ret || !tiers[0].backend)
                goto fail;
        r = -ENOMEM;
        tb = calloc(1, sizeof(*tb));
        if (!tb)
                goto fail;
        tb->base.ops = &tiered_ops;
        pthread_mutex_init(&tb->lock, NULL);
        pthread_mutex_init(&tb->load_lock, NULL);
        for (unsigned i = 0; i < TM_BACKEND_TIERS; i++) {
                tb->t[i] = tiers[i];
                tiers[i].backend = NULL;
                tb->t[i].retrieval = NULL;
                if (tiers[i].retrieval) {
                        tb->retrieval[i] = strdup(tiers[i].retrieval);
                        if (!tb->retrieval[i]) {
                                tb_free(&tb->base);
                                return -ENOMEM;
                        }
                }
        }
        *ret = &tb->base;
        return 0;
fail:
        for (unsigned i = 0; tiers && i < TM_BACKEND_TIERS; i++) {
                tm_backend_free(tiers[i].backend);
                tiers[i].backend = NULL;
        }
        return r;
}

tm_backend *tm_backend_tier(tm_backend *b, unsigned i)
{
        if (!b || i >= TM_BACKEND_TIERS)
                return NULL;
        if (!tm_backend_is_tiered(b))
                return i == 0 ? b : NULL;
        return to_tb(b)->t[i].backend;
}

int tm_backend_tier_where(tm_backend *b, const char *name, unsigned *ret_mask)
{
        uint8_t m;
        tm_id id;
        int r;

        if (!b || !ret_mask || !tm_backend__name_valid(name))
                return -EINVAL;
        if (!tm_backend_is_tiered(b) || !pack_id_of(name, &id)) {
                r = tm_backend_head(tm_backend_is_tiered(b) ? home(b) : b, name, NULL);
                if (r < 0 && r != -ENODATA)
                        return r;
                *ret_mask = 1;
                return 0;
        }
        r = where(to_tb(b), name, &id, &m);
        if (r < 0)
                return r;
        *ret_mask = m;
        return 0;
}

int tm_backend_tier_note(tm_backend *b, const char *name, unsigned mask)
{
        tm_id id;

        if (!tm_backend_is_tiered(b) || !name || !pack_id_of(name, &id) ||
            mask >= (1u << TM_BACKEND_TIERS))
                return -EINVAL;
        return map_update(to_tb(b), &id, (uint8_t)mask, 0);
}

void tm_backend_tier_forget(tm_backend *b)
{
        struct tiered *tb;

        if (!tm_backend_is_tiered(b))
                return;
        tb = to_tb(b);
        pthread_mutex_lock(&tb->load_lock);
        pthread_mutex_lock(&tb->lock);
        free(tb->slots);
        tb->slots = NULL;
        tb->cap = tb->n = 0;
        tb->loaded = 0;
        pthread_mutex_unlock(&tb->lock);
        pthread_mutex_unlock(&tb->load_lock);
}
