/*
 * tier: the [tier.*] configuration, pack temperature, the lifecycle moves
 * and batch thaws. Where a pack lives is the tiered backend's business
 * (lib/src/backend/tiered.c): this module only decides and moves.
 *
 * A move is copy (whole pack, read and hashed: the pack id is the SHA-256
 * of its bytes, so a damaged source is never copied), verify (the copy's
 * size), record (the backend's map), delete the source. A kill at any step
 * leaves the pack in the source, or in both tiers; the next pass sees a pack
 * in two tiers, checks the colder copy and deletes the warmer one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tidemark/crypto.h>
#include <tidemark/log.h>
#include <tidemark/tier.h>
#include <tidemark/time.h>

#include "core/idset.h"

#define NS_PER_S   ((int64_t)1000000000)
#define NS_PER_DAY (86400 * NS_PER_S)
/* A pack is at most a few tens of MiB (prune and backup cut at 16 MiB);
 * refuse to load anything absurd into memory. */
#define PACK_MAX ((size_t)1 << 30)

static const char *const level_names[TM_TIER_LEVELS] = { "hot", "warm", "cold", "archive" };
static const char *const default_class[TM_TIER_LEVELS] = { NULL, "STANDARD_IA", "GLACIER",
                                                           "DEEP_ARCHIVE" };
static const int64_t default_age[TM_TIER_LEVELS] = { NS_PER_DAY, 7 * NS_PER_DAY, 90 * NS_PER_DAY,
                                                     7 * 365 * NS_PER_DAY };

const char *tm_tier_level_name(unsigned level)
{
        return level < TM_TIER_LEVELS ? level_names[level] : "?";
}

int tm_tier_level_parse(const char *name, unsigned *ret)
{
        for (unsigned i = 0; name && i < TM_TIER_LEVELS; i++) {
                if (strcmp(name, level_names[i]) == 0) {
                        *ret = i;
                        return 0;
                }
        }
        return -EINVAL;
}

static int retrieval_valid(const char *v)
{
        return !strcmp(v, "Expedited") || !strcmp(v, "Standard") || !strcmp(v, "Bulk");
}

void tm_tier_set_dispose(struct tm_tier_set *s)
{
        if (!s)
                return;
        for (unsigned i = 0; i < TM_TIER_LEVELS; i++) {
                free(s->t[i].location);
                free(s->t[i].storage_class);
        }
        memset(s, 0, sizeof(*s));
}

static void set_defaults(struct tm_tier_set *s)
{
        memset(s, 0, sizeof(*s));
        for (unsigned i = 0; i < TM_TIER_LEVELS; i++) {
                s->t[i].age_ns = default_age[i];
                snprintf(s->t[i].retrieval, sizeof(s->t[i].retrieval), "Standard");
                s->t[i].thaw_days = 7;
                s->t[i].thaw_poll_ns = 60 * NS_PER_S;
        }
        s->t[TM_TIER_HOT].configured = 1;
}

struct sched_state {
        int has_schedule, schedule_none;
        struct tm_schedule schedule;
};

static int load_one(const struct tm_config *c, const struct tm_config_section *sec,
                    struct tm_tier_conf *t, unsigned level, struct sched_state *set, char *err,
                    size_t errlen)
{
        for (size_t k = 0; k < sec->n_kv; k++) {
                const char *key = sec->kv[k].key, *v = sec->kv[k].value;
                int64_t ns;

                if (!strcmp(key, "location") || !strcmp(key, "storage_class")) {
                        char **dst = key[0] == 'l' ? &t->location : &t->storage_class;

                        if (level == TM_TIER_HOT)
                                return tm_config_section_error(
                                        c, sec, key, err, errlen,
                                        "the hot tier is the repository's own location "
                                        "([repository] location): no %s here",
                                        key);
                        if (!*v)
                                return tm_config_section_error(c, sec, key, err, errlen,
                                                               "%s is empty", key);
                        free(*dst);
                        *dst = strdup(v);
                        if (!*dst)
                                return -ENOMEM;
                } else if (!strcmp(key, "age") || !strcmp(key, "thaw_poll")) {
                        if (tm_config_parse_duration(v, &ns) < 0 || ns <= 0)
                                return tm_config_section_error(
                                        c, sec, key, err, errlen,
                                        "%s: '%s' is not a positive duration (e.g. 24h, 7d)", key,
                                        v);
                        if (key[0] == 'a')
                                t->age_ns = ns;
                        else
                                t->thaw_poll_ns = ns;
                } else if (!strcmp(key, "schedule") && level == TM_TIER_HOT) {
                        if (!strcmp(v, "none")) {
                                set->has_schedule = 0;
                                set->schedule_none = 1;
                        } else if (tm_schedule_parse(v, &set->schedule) < 0) {
                                return tm_config_section_error(
                                        c, sec, key, err, errlen,
                                        "schedule: '%s' is not a schedule (hourly, daily, "
                                        "every 6h, a cron line, none)",
                                        v);
                        } else {
                                set->has_schedule = 1;
                        }
                } else if (!strcmp(key, "retrieval")) {
                        if (!retrieval_valid(v))
                                return tm_config_section_error(
                                        c, sec, key, err, errlen,
                                        "retrieval: '%s' is not Expedited, Standard or Bulk", v);
                        snprintf(t->retrieval, sizeof(t->retrieval), "%s", v);
                } else if (!strcmp(key, "thaw_days")) {
                        char *end;
                        long d = strtol(v, &end, 10);

                        if (!*v || *end || d < 1 || d > 30)
                                return tm_config_section_error(
                                        c, sec, key, err, errlen,
                                        "thaw_days: '%s' is not a number of days (1-30)", v);
                        t->thaw_days = (int)d;
                } else {
                        return tm_config_section_error(
                                c, sec, key, err, errlen,
                                "unknown key '%s' in [%s] (location, storage_class, age, "
                                "retrieval, thaw_days, thaw_poll; schedule in [tier.hot])",
                                key, sec->name);
                }
        }
        return 0;
}

int tm_tier_set_load(const struct tm_config *c, struct tm_tier_set *ret, char *err, size_t errlen)
{
        const struct tm_config_section *secs[TM_TIER_LEVELS] = { 0 };
        struct sched_state sched = { 0 };
        int64_t prev = 0;
        int r;

        if (!ret)
                return -EINVAL;
        set_defaults(ret);
        if (err && errlen)
                err[0] = 0;
        for (size_t i = 0; c && i < c->n_sections; i++) {
                const struct tm_config_section *sec = &c->sections[i];
                unsigned level;

                if (strncmp(sec->name, "tier.", 5) != 0)
                        continue;
                if (tm_tier_level_parse(sec->name + 5, &level) < 0)
                        return tm_config_section_error(
                                c, sec, NULL, err, errlen,
                                "unknown tier [%s]: tiers are hot, warm, cold, archive", sec->name);
                secs[level] = sec;
                ret->t[level].configured = 1;
                r = load_one(c, sec, &ret->t[level], level, &sched, err, errlen);
                if (r < 0)
                        return r;
        }
        for (unsigned i = 1; i < TM_TIER_LEVELS; i++) {
                struct tm_tier_conf *t = &ret->t[i];

                if (!t->configured)
                        continue;
                ret->n_configured++;
                if (!t->location)
                        return tm_config_section_error(c, secs[i], NULL, err, errlen,
                                                       "[tier.%s] needs a location (e.g. "
                                                       "s3:https://host/bucket/prefix)",
                                                       level_names[i]);
                if (!t->storage_class) {
                        t->storage_class = strdup(default_class[i]);
                        if (!t->storage_class)
                                return -ENOMEM;
                }
        }
        if (sched.has_schedule) {
                ret->has_schedule = 1;
                ret->schedule = sched.schedule;
        } else if (!sched.schedule_none && ret->n_configured > 0) {
                ret->has_schedule = tm_schedule_parse("hourly", &ret->schedule) == 0;
        }
        for (unsigned i = 0; i < TM_TIER_LEVELS; i++) {
                if (!ret->t[i].configured)
                        continue;
                if (ret->t[i].age_ns <= prev)
                        return tm_config_section_error(
                                c, secs[i], "age", err, errlen,
                                "[tier.%s] age must be longer than the warmer tiers' ages",
                                level_names[i]);
                prev = ret->t[i].age_ns;
        }
        return 0;
}

int tm_tier_backend_open(const struct tm_tier_set *s, const char *location, int create,
                         tm_backend **ret)
{
        struct tm_backend_tier t[TM_BACKEND_TIERS] = { 0 };
        int r;

        if (!location || !ret)
                return -EINVAL;
        if (!s || s->n_configured == 0)
                return tm_backend_open_url(location, create, ret);
        r = tm_backend_open_url(location, create, &t[0].backend);
        if (r < 0)
                return r;
        for (unsigned i = 1; i < TM_TIER_LEVELS; i++) {
                if (!s->t[i].configured)
                        continue;
                /* a local directory tier is made on first use like a new repository */
                r = tm_backend_open_url_class(s->t[i].location, 1, s->t[i].storage_class,
                                              &t[i].backend);
                if (r < 0) {
                        tm_log_errno(TM_LOG_ERR, r, "cannot open the %s tier at '%s'",
                                     level_names[i], s->t[i].location);
                        goto fail;
                }
                t[i].retrieval = s->t[i].retrieval;
                t[i].thaw_days = s->t[i].thaw_days;
        }
        return tm_backend_open_tiered(t, ret);
fail:
        for (unsigned i = 0; i < TM_BACKEND_TIERS; i++)
                tm_backend_free(t[i].backend);
        return r;
}

unsigned tm_tier_target(const struct tm_tier_set *s, int64_t age_ns, int is_tree)
{
        unsigned want = TM_TIER_ARCHIVE, best = TM_TIER_HOT;

        if (!s)
                return TM_TIER_HOT;
        /* tier i keeps packs younger than its age; the archive keeps the rest */
        for (unsigned i = 0; i < TM_TIER_ARCHIVE; i++) {
                if (age_ns < s->t[i].age_ns) {
                        want = i;
                        break;
                }
        }
        if (is_tree && want > TM_TIER_WARM)
                want = TM_TIER_WARM;
        for (unsigned i = 1; i <= want; i++)
                if (s->t[i].configured)
                        best = i;
        return best;
}

const char *tm_tier_thaw_eta(unsigned level, const char *retrieval)
{
        int bulk = retrieval && !strcmp(retrieval, "Bulk");
        int fast = retrieval && !strcmp(retrieval, "Expedited");

        if (level < TM_TIER_COLD)
                return "none (readable now)";
        /* AWS's documented restore times for S3 Glacier Flexible Retrieval and
         * Deep Archive (Expedited is not offered for Deep Archive) */
        if (level == TM_TIER_COLD)
                return fast ? "1-5 minutes" : bulk ? "5-12 hours" : "3-5 hours";
        return bulk ? "up to 48 hours" : "up to 12 hours";
}

/* ---- temperature ---- */

struct pack_rec {
        tm_id id;
        uint8_t type;
        uint64_t size;
        int64_t youngest; /* 0: no snapshot references it */
        unsigned mask;    /* tiers holding it */
};

/* blob id -> time of the youngest snapshot using it (open addressing) */
struct blob_time {
        tm_id id;
        int64_t t; /* 0: empty slot */
};

struct temp {
        tm_repo *repo;
        struct pack_rec *packs;
        size_t n_packs, cap_packs;
        struct blob_time *bt;
        size_t bt_cap, bt_n;
        struct tm_idset trees_seen;
        int64_t snap_time;
        /* the group of locations of one blob in tm_catalog_blob_foreach order */
        tm_id group_blob;
        size_t *group;
        size_t n_group, cap_group;
        int have_group;
};

static size_t bt_slot(const struct temp *t, const tm_id *id)
{
        uint64_t h;

        memcpy(&h, id->b, sizeof(h));
        return (size_t)h & (t->bt_cap - 1);
}

static struct blob_time *bt_find(struct temp *t, const tm_id *id, int add)
{
        if (add && (t->bt_n + 1) * 4 > t->bt_cap * 3) {
                size_t ncap = t->bt_cap ? t->bt_cap * 2 : 4096;
                struct blob_time *old = t->bt, *a = calloc(ncap, sizeof(*a));
                size_t ocap = t->bt_cap;

                if (!a)
                        return NULL;
                t->bt = a;
                t->bt_cap = ncap;
                for (size_t i = 0; i < ocap; i++) {
                        if (!old[i].t)
                                continue;
                        for (size_t j = bt_slot(t, &old[i].id);; j = (j + 1) & (ncap - 1))
                                if (!a[j].t) {
                                        a[j] = old[i];
                                        break;
                                }
                }
                free(old);
        }
        if (!t->bt_cap)
                return NULL;
        for (size_t i = bt_slot(t, id);; i = (i + 1) & (t->bt_cap - 1)) {
                struct blob_time *b = &t->bt[i];

                if (!b->t) {
                        if (!add)
                                return NULL;
                        b->id = *id;
                        t->bt_n++;
                        return b;
                }
                if (!memcmp(b->id.b, id->b, TM_ID_LEN))
                        return b;
        }
}

/* Snapshots are visited newest first, so the first time a blob is seen is
 * the youngest snapshot that uses it. */
static int mark(struct temp *t, const tm_id *id)
{
        struct blob_time *b = bt_find(t, id, 1);

        if (!b)
                return -ENOMEM;
        if (!b->t)
                b->t = t->snap_time;
        return 0;
}

static int mark_cb(const char *path, const struct tm_node *nd, void *ud)
{
        struct temp *t = ud;
        int r;

        (void)path;
        if (nd->type == TM_NODE_DIR) {
                r = tm_idset_insert(&t->trees_seen, &nd->subtree);
                if (r < 0)
                        return r;
                if (r == 0)
                        return 1; /* a younger snapshot already marked all below */
                return mark(t, &nd->subtree);
        }
        for (size_t i = 0; i < nd->n_content; i++) {
                r = mark(t, &nd->content[i].id);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int pack_cb(const tm_id *pack_id, uint8_t type, uint64_t size, void *ud)
{
        struct temp *t = ud;

        if (t->n_packs == t->cap_packs) {
                size_t ncap = t->cap_packs ? t->cap_packs * 2 : 256;
                struct pack_rec *a = realloc(t->packs, ncap * sizeof(*a));

                if (!a)
                        return -ENOMEM;
                t->packs = a;
                t->cap_packs = ncap;
        }
        t->packs[t->n_packs++] = (struct pack_rec){ .id = *pack_id, .type = type, .size = size };
        return 0;
}

static int pack_rec_cmp(const void *a, const void *b)
{
        return tm_id_cmp(&((const struct pack_rec *)a)->id, &((const struct pack_rec *)b)->id);
}

static struct pack_rec *pack_find(struct temp *t, const tm_id *id)
{
        struct pack_rec key = { .id = *id };

        return bsearch(&key, t->packs, t->n_packs, sizeof(key), pack_rec_cmp);
}

static int lowest_bit(unsigned m)
{
        for (int i = 0; i < TM_TIER_LEVELS; i++)
                if (m & (1u << i))
                        return i;
        return TM_TIER_LEVELS;
}

/* A blob stored in several packs (a fresh hot copy of a cold blob) warms
 * only its warmest copy: the cold one must not be pulled back by it. */
static void group_flush(struct temp *t)
{
        struct blob_time *b;
        struct pack_rec *best = NULL;

        if (!t->have_group)
                return;
        b = bt_find(t, &t->group_blob, 0);
        for (size_t i = 0; b && i < t->n_group; i++) {
                struct pack_rec *p = &t->packs[t->group[i]];

                if (!best || lowest_bit(p->mask) < lowest_bit(best->mask))
                        best = p;
        }
        if (best && b->t > best->youngest)
                best->youngest = b->t;
        t->n_group = 0;
        t->have_group = 0;
}

static int blob_cb(const tm_id *blob_id, const tm_id *pack_id, const struct tm_pack_entry *e,
                   void *ud)
{
        struct temp *t = ud;
        struct pack_rec *p;

        (void)e;
        if (t->have_group && tm_id_cmp(&t->group_blob, blob_id) != 0)
                group_flush(t);
        p = pack_find(t, pack_id);
        if (!p)
                return 0;
        if (t->n_group == t->cap_group) {
                size_t ncap = t->cap_group ? t->cap_group * 2 : 8;
                size_t *a = realloc(t->group, ncap * sizeof(*a));

                if (!a)
                        return -ENOMEM;
                t->group = a;
                t->cap_group = ncap;
        }
        t->group[t->n_group++] = (size_t)(p - t->packs);
        t->group_blob = *blob_id;
        t->have_group = 1;
        return 0;
}

static void temp_dispose(struct temp *t)
{
        free(t->packs);
        free(t->bt);
        free(t->group);
        tm_idset_dispose(&t->trees_seen);
}

/* Every pack of the catalog with its tiers and temperature. */
static int temperature(tm_repo *repo, struct temp *t)
{
        tm_backend *be = tm_repo_backend(repo);
        struct tm_snapshot *snaps = NULL;
        size_t n_snaps = 0;
        char name[128];
        int r;

        r = tm_idset_init(&t->trees_seen, 1024);
        if (r < 0)
                return r;
        r = tm_catalog_pack_foreach(tm_repo_catalog(repo), pack_cb, t);
        if (r < 0)
                return r;
        /* an empty repository has no array at all: qsort(NULL) is undefined */
        if (t->n_packs > 1)
                qsort(t->packs, t->n_packs, sizeof(*t->packs), pack_rec_cmp);
        for (size_t i = 0; i < t->n_packs; i++) {
                tm_repo_pack_name(&t->packs[i].id, name, sizeof(name));
                r = tm_backend_tier_where(be, name, &t->packs[i].mask);
                if (r == -ENOENT) {
                        t->packs[i].mask = 0;
                        continue;
                }
                if (r < 0)
                        return r;
        }
        r = tm_repo_snapshot_list(repo, NULL, &snaps, &n_snaps);
        if (r < 0)
                return r;
        for (size_t i = n_snaps; i-- > 0;) {
                t->snap_time = snaps[i].time > 0 ? snaps[i].time : 1;
                r = tm_idset_insert(&t->trees_seen, &snaps[i].tree);
                if (r < 0)
                        goto out;
                if (r == 0)
                        continue;
                r = mark(t, &snaps[i].tree);
                if (r < 0)
                        goto out;
                r = tm_repo_walk(repo, &snaps[i].tree, mark_cb, t);
                if (r < 0) {
                        char hex[TM_ID_HEX_LEN + 1];

                        tm_id_hex(&snaps[i].id, hex);
                        tm_log_errno(TM_LOG_ERR, r, "tier: cannot walk snapshot %.8s", hex);
                        goto out;
                }
        }
        r = tm_catalog_blob_foreach(tm_repo_catalog(repo), blob_cb, t);
        if (r < 0)
                goto out;
        group_flush(t);
        r = 0;
out:
        tm_snapshot_array_free(snaps, n_snaps);
        return r;
}

/* ---- moves ---- */

/* Copy name from tier `from` into tier `to` (read, hash against the pack
 * id, write with to's storage class, check the size). 1: the source is
 * archived and a thaw was requested. */
static int copy_pack(tm_backend *be, const struct pack_rec *p, const char *name, unsigned from,
                     unsigned to)
{
        tm_backend *src = tm_backend_tier(be, from), *dst = tm_backend_tier(be, to);
        tm_buf data = TM_BUF_INIT(PACK_MAX);
        uint64_t got_size = 0;
        tm_id sum;
        int r;

        r = tm_backend_get(src, name, PACK_MAX, &data);
        if (r == -ENODATA) {
                r = tm_backend_thaw(be, name, NULL, 0);
                if (r >= 0) {
                        tm_log(TM_LOG_INFO,
                               "tier: pack %s in %s is archived: thaw requested, it moves to %s "
                               "once readable",
                               name, level_names[from], level_names[to]);
                        r = 1;
                }
                goto out;
        }
        if (r < 0)
                goto out;
        tm_crypto_sha256(data.data, data.len, &sum);
        if (tm_id_cmp(&sum, &p->id) != 0) {
                r = tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                 "tier: pack %s in %s does not match its id; not moved (run check)",
                                 name, level_names[from]);
                goto out;
        }
        r = tm_backend_put(dst, name, data.data, data.len);
        if (r < 0)
                goto out;
        r = tm_backend_head(dst, name, &got_size);
        if (r == -ENODATA)
                r = 0;
        if (r == 0 && got_size != data.len)
                r = tm_log_errno(TM_LOG_ERR, -EIO,
                                 "tier: copy of %s in %s has %" PRIu64 " bytes, not %zu", name,
                                 level_names[to], got_size, data.len);
out:
        tm_buf_dispose(&data);
        return r;
}

/* The copy in tier `to` is whole: drop the others. */
static int drop_others(tm_backend *be, const char *name, unsigned mask, unsigned to)
{
        int r;

        r = tm_backend_tier_note(be, name, mask | (1u << to));
        if (r < 0)
                return r;
        for (unsigned i = 0; i < TM_TIER_LEVELS; i++) {
                if (i == to || !(mask & (1u << i)))
                        continue;
                r = tm_backend_remove(tm_backend_tier(be, i), name);
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        return tm_backend_tier_note(be, name, 1u << to);
}

static int copy_is_whole(tm_backend *be, const struct pack_rec *p, const char *name, unsigned to)
{
        uint64_t size = 0;
        int r = tm_backend_head(tm_backend_tier(be, to), name, &size);

        if (r < 0)
                return r == -ENOENT ? 0 : r;
        return size == p->size;
}

static void count_usage(const struct pack_rec *p, struct tm_tier_stats *st)
{
        int lvl = lowest_bit(p->mask);

        if (lvl >= TM_TIER_LEVELS)
                return;
        st->packs[lvl]++;
        st->bytes[lvl] += p->size;
}

int tm_tier_run(tm_repo *repo, const struct tm_tier_opts *o, struct tm_tier_stats *ret)
{
        struct tm_tier_opts def = { 0 };
        const struct tm_tier_set *set;
        struct tm_tier_stats st = { 0 };
        struct temp t = { .repo = repo };
        tm_backend *be;
        int64_t now;
        char name[128];
        int r;

        if (!repo)
                return -EINVAL;
        if (!o)
                o = &def;
        set = tm_repo_tiers(repo);
        be = tm_repo_backend(repo);
        now = o->now_ns ? o->now_ns : tm_time_now();
        r = tm_repo_refresh(repo);
        if (r < 0)
                goto out;
        r = temperature(repo, &t);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < t.n_packs; i++) {
                struct pack_rec *p = &t.packs[i];
                unsigned from = (unsigned)lowest_bit(p->mask), to;
                int ok;

                if (from >= TM_TIER_LEVELS)
                        continue; /* in no tier: check reports it */
                if (!p->youngest) {
                        st.unreferenced++;
                        count_usage(p, &st);
                        continue;
                }
                to = tm_tier_target(set, now - p->youngest, p->type == TM_BLOB_TREE);
                tm_repo_pack_name(&p->id, name, sizeof(name));
                if (p->mask & ~(1u << from)) {
                        /* in two tiers: a move was interrupted; finish it if the
                         * colder copy is whole, else start it again */
                        unsigned colder = (unsigned)lowest_bit(p->mask & ~(1u << from));

                        ok = o->dry_run ? 0 : copy_is_whole(be, p, name, colder);
                        if (ok < 0)
                                goto fail_one;
                        if (ok) {
                                r = drop_others(be, name, p->mask, colder);
                                if (r < 0)
                                        goto fail_one;
                                p->mask = 1u << colder;
                                from = colder;
                                st.finished++;
                        }
                }
                if (to <= from) {
                        count_usage(p, &st);
                        continue;
                }
                if (o->dry_run) {
                        st.moved++;
                        st.moved_bytes += p->size;
                        p->mask = 1u << to;
                        count_usage(p, &st);
                        continue;
                }
                r = copy_pack(be, p, name, from, to);
                if (r == 1) {
                        st.thawing++;
                        count_usage(p, &st);
                        continue;
                }
                if (r < 0)
                        goto fail_one;
                r = drop_others(be, name, p->mask, to);
                if (r < 0)
                        goto fail_one;
                p->mask = 1u << to;
                st.moved++;
                st.moved_bytes += p->size;
                tm_log(TM_LOG_DEBUG, "tier: %s %s -> %s", name, level_names[from], level_names[to]);
                count_usage(p, &st);
                continue;
fail_one:
                tm_log_errno(TM_LOG_ERR, r, "tier: moving pack %s from %s to %s failed; it stays",
                             name, level_names[from], level_names[to]);
                st.failed++;
                count_usage(p, &st);
        }
        r = st.failed ? -EAGAIN : 0;
out:
        temp_dispose(&t);
        if (ret)
                *ret = st;
        return r;
}

unsigned tm_tier_of_pack(tm_repo *repo, const tm_id *pack_id)
{
        char name[128];
        unsigned mask = 0;

        if (!repo || !pack_id)
                return TM_TIER_LEVELS;
        tm_repo_pack_name(pack_id, name, sizeof(name));
        if (tm_backend_tier_where(tm_repo_backend(repo), name, &mask) < 0)
                return TM_TIER_LEVELS;
        return (unsigned)lowest_bit(mask);
}

/* ---- usage ---- */

struct usage_ctx {
        struct tm_tier_stats *st;
        unsigned tier;
        struct tm_idset seen;
};

static int usage_cb(const char *name, uint64_t size, void *ud)
{
        struct usage_ctx *c = ud;
        const char *slash = strrchr(name, '/');
        tm_id id;
        int r;

        if (!slash || tm_id_parse(slash + 1, &id) < 0)
                return 0;
        r = tm_idset_insert(&c->seen, &id);
        if (r <= 0)
                return r; /* mid-move copy: counted in the warmer tier */
        c->st->packs[c->tier]++;
        c->st->bytes[c->tier] += size;
        return 0;
}

int tm_tier_usage(tm_repo *repo, struct tm_tier_stats *ret)
{
        struct usage_ctx c = { 0 };
        tm_backend *be;
        int r;

        if (!repo || !ret)
                return -EINVAL;
        memset(ret, 0, sizeof(*ret));
        c.st = ret;
        be = tm_repo_backend(repo);
        r = tm_idset_init(&c.seen, 1024);
        if (r < 0)
                return r;
        for (c.tier = 0; c.tier < TM_TIER_LEVELS; c.tier++) {
                tm_backend *tb = tm_backend_tier(be, c.tier);

                if (!tb)
                        continue;
                r = tm_backend_list(tb, "data/", usage_cb, &c);
                if (r < 0)
                        break;
        }
        tm_idset_dispose(&c.seen);
        return r < 0 ? r : 0;
}

/* ---- thaw ---- */

struct thaw_ctx {
        tm_repo *repo;
        struct tm_idset seen_blobs, seen_packs;
        tm_id *packs;
        size_t n, cap;
};

static int thaw_add_blob(struct thaw_ctx *c, const tm_id *blob)
{
        struct tm_pack_entry e;
        tm_id pack;
        int r;

        r = tm_idset_insert(&c->seen_blobs, blob);
        if (r <= 0)
                return r;
        r = tm_catalog_blob_find(tm_repo_catalog(c->repo), blob, &pack, &e);
        if (r == -ENOENT)
                return 0; /* check reports missing blobs; restore names them */
        if (r < 0)
                return r;
        r = tm_idset_insert(&c->seen_packs, &pack);
        if (r <= 0)
                return r;
        if (c->n == c->cap) {
                size_t ncap = c->cap ? c->cap * 2 : 64;
                tm_id *a = realloc(c->packs, ncap * sizeof(*a));

                if (!a)
                        return -ENOMEM;
                c->packs = a;
                c->cap = ncap;
        }
        c->packs[c->n++] = pack;
        return 0;
}

static int thaw_cb(const char *path, const struct tm_node *nd, void *ud)
{
        struct thaw_ctx *c = ud;
        int r;

        (void)path;
        for (size_t i = 0; nd->type == TM_NODE_FILE && i < nd->n_content; i++) {
                r = thaw_add_blob(c, &nd->content[i].id);
                if (r < 0)
                        return r;
        }
        return 0;
}

static void sleep_ns(int64_t ns)
{
        struct timespec ts = { .tv_sec = ns / NS_PER_S, .tv_nsec = ns % NS_PER_S };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Ask for every pack still pending; returns how many are not readable yet. */
static int thaw_pass(tm_backend *be, tm_id *packs, size_t *n, int first,
                     struct tm_thaw_stats *st)
{
        char name[128];
        size_t keep = 0;

        for (size_t i = 0; i < *n; i++) {
                int r;

                tm_repo_pack_name(&packs[i], name, sizeof(name));
                r = tm_backend_thaw(be, name, NULL, 0);
                if (r < 0)
                        return tm_log_errno(TM_LOG_ERR, r, "thaw: cannot restore pack %s", name);
                if (r == 1) {
                        packs[keep++] = packs[i];
                        if (first)
                                st->requested++;
                }
        }
        *n = keep;
        return (int)TM_MIN(keep, (size_t)INT32_MAX);
}

int tm_tier_thaw(tm_repo *repo, const tm_id *trees, size_t n_trees, int wait, int64_t timeout_ns,
                 struct tm_thaw_stats *ret)
{
        struct thaw_ctx c = { .repo = repo };
        struct tm_thaw_stats st = { 0 };
        const struct tm_tier_set *set;
        tm_backend *be;
        int64_t start = tm_time_mono(), poll = 60 * NS_PER_S;
        unsigned slowest = TM_TIER_HOT;
        int r;

        if (!repo || (!trees && n_trees))
                return -EINVAL;
        be = tm_repo_backend(repo);
        set = tm_repo_tiers(repo);
        r = tm_idset_init(&c.seen_blobs, 4096);
        if (r < 0)
                goto out;
        r = tm_idset_init(&c.seen_packs, 256);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < n_trees; i++) {
                r = tm_repo_walk(repo, &trees[i], thaw_cb, &c);
                if (r < 0)
                        goto out;
        }
        st.packs = c.n;
        if (!tm_backend_is_tiered(be))
                goto done; /* nothing is ever archived in one location of ours */
        for (unsigned i = TM_TIER_COLD; set && i < TM_TIER_LEVELS; i++) {
                if (set->t[i].configured) {
                        poll = TM_MIN(poll, set->t[i].thaw_poll_ns);
                        slowest = i;
                }
        }
        r = thaw_pass(be, c.packs, &c.n, 1, &st);
        if (r < 0)
                goto out;
        st.archived = c.n;
        if (c.n)
                tm_log(TM_LOG_INFO,
                       "thaw: %zu of %" PRIu64 " packs are archived; restore requested (%s "
                       "retrieval, expected %s)%s",
                       c.n, st.packs, set ? set->t[slowest].retrieval : "Standard",
                       tm_tier_thaw_eta(slowest, set ? set->t[slowest].retrieval : NULL),
                       wait ? "; waiting" : "");
        while (c.n && wait) {
                if (timeout_ns > 0 && tm_time_mono() - start >= timeout_ns)
                        break;
                sleep_ns(poll);
                r = thaw_pass(be, c.packs, &c.n, 0, &st);
                if (r < 0)
                        goto out;
                if (c.n)
                        tm_log(TM_LOG_INFO, "thaw: %zu packs still thawing; next check in %" PRId64
                               " s", c.n, (int64_t)(poll / NS_PER_S));
        }
done:
        r = c.n ? -EAGAIN : 0;
out:
        st.waited_ns = tm_time_mono() - start;
        if (ret)
                *ret = st;
        free(c.packs);
        tm_idset_dispose(&c.seen_blobs);
        tm_idset_dispose(&c.seen_packs);
        return r;
}
