/*
 * check: structure first (every snapshot's trees load, every referenced
 * blob is indexed, every indexed pack exists with its recorded size), then
 * with read_data every pack byte: its SHA-256 against its name, its trailer,
 * every blob's GCM tag, decompression and HMAC id. Damage is reported with
 * what it touches: the pack, the blobs, and the snapshots and files that
 * reference them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/log.h>
#include <tidemark/ops.h>
#include <tidemark/pg.h>
#include <tidemark/time.h>

#include "core/idset.h"

struct pack_item {
        tm_id id;
        uint64_t size;
        int in_catalog;
};

struct ck {
        tm_repo *repo;
        const struct tm_check_opts *o;
        struct pack_item *packs;
        size_t n_packs, cap_packs;
        struct tm_idset damaged; /* blob ids that are missing or fail verification */
        struct tm_idset trees_ok;
        atomic_uint_fast64_t errors, packs_read, next;
        uint64_t bytes_total;
        atomic_uint_fast64_t bytes_done;
        int64_t start;
};

static int list_pack_cb(const char *name, uint64_t size, void *ud)
{
        struct ck *c = ud;
        const char *slash = strrchr(name, '/');
        tm_id id;

        if (!slash || tm_id_parse(slash + 1, &id) < 0) {
                tm_log(TM_LOG_WARN, "unexpected file '%s' in data/", name);
                return 0;
        }
        if (c->n_packs == c->cap_packs) {
                size_t ncap = c->cap_packs ? c->cap_packs * 2 : 256;
                struct pack_item *p = realloc(c->packs, ncap * sizeof(*p));

                if (!p)
                        return -ENOMEM;
                c->packs = p;
                c->cap_packs = ncap;
        }
        c->packs[c->n_packs].id = id;
        c->packs[c->n_packs].size = size;
        c->packs[c->n_packs].in_catalog = 0;
        c->n_packs++;
        c->bytes_total += size;
        return 0;
}

static int pack_cmp(const void *x, const void *y)
{
        return tm_id_cmp(&((const struct pack_item *)x)->id, &((const struct pack_item *)y)->id);
}

static struct pack_item *pack_find(struct ck *c, const tm_id *id)
{
        struct pack_item key = { .id = *id };

        return bsearch(&key, c->packs, c->n_packs, sizeof(key), pack_cmp);
}

static void mark_pack_blobs_damaged(struct ck *c, const tm_id *pack_id);

/* Indexed packs must exist with the size the index recorded. */
static int catalog_pack_cb(const tm_id *pack_id, uint8_t type, uint64_t size, void *ud)
{
        struct ck *c = ud;
        struct pack_item *p = pack_find(c, pack_id);
        char name[128];

        (void)type;
        tm_repo_pack_name(pack_id, name, sizeof(name));
        if (!p) {
                tm_log(TM_LOG_ERR, "pack '%s' is listed in the index but missing", name);
                atomic_fetch_add(&c->errors, 1);
                mark_pack_blobs_damaged(c, pack_id);
                return 0;
        }
        p->in_catalog = 1;
        if (p->size != size) {
                tm_log(TM_LOG_ERR, "pack '%s' has size %llu, the index says %llu", name,
                       (unsigned long long)p->size, (unsigned long long)size);
                atomic_fetch_add(&c->errors, 1);
                mark_pack_blobs_damaged(c, pack_id);
        }
        return 0;
}

struct damage_ctx {
        struct ck *c;
        const char *pack;
};

static int damage_blob_cb(const tm_id *blob, const tm_id *pack, const struct tm_pack_entry *e,
                          void *ud)
{
        struct damage_ctx *d = ud;
        char hex[TM_ID_HEX_LEN + 1];

        (void)pack;
        (void)e;
        if (tm_idset_insert(&d->c->damaged, blob) == 1) {
                tm_id_hex(blob, hex);
                tm_log(TM_LOG_ERR, "  blob %s in pack '%s' is affected", hex, d->pack);
        }
        return 0;
}

static void mark_pack_blobs_damaged(struct ck *c, const tm_id *pack_id)
{
        char name[128];
        struct damage_ctx d = { c, name };

        tm_repo_pack_name(pack_id, name, sizeof(name));
        tm_catalog_blob_foreach_in_pack(tm_repo_catalog(c->repo), pack_id, damage_blob_cb, &d);
}

/* ---- read data ---- */

static void read_pack(struct ck *c, const struct pack_item *p)
{
        tm_repo *repo = c->repo;
        tm_buf file = TM_BUF_INIT(0), plain = TM_BUF_INIT(TM_BLOB_MAX);
        struct tm_pack_entry *entries = NULL;
        char name[128], hex[TM_ID_HEX_LEN + 1];
        size_t n = 0;
        uint32_t tlen;
        tm_id got;
        int r, bad = 0;

        tm_repo_pack_name(&p->id, name, sizeof(name));
        r = tm_backend_get(tm_repo_backend(repo), name, 0, &file);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "pack '%s' cannot be read", name);
                goto damaged;
        }
        atomic_fetch_add(&c->bytes_done, file.len);
        tm_crypto_sha256(file.data, file.len, &got);
        if (tm_id_cmp(&got, &p->id) != 0) {
                tm_log(TM_LOG_ERR, "pack '%s' is damaged: its contents do not match its name",
                       name);
                bad = 1;
        }
        if (file.len < TM_PACK_TAIL_LEN ||
            tm_pack_tail_parse(file.data + file.len - TM_PACK_TAIL_LEN, &tlen) < 0 ||
            tlen > file.len - TM_PACK_TAIL_LEN ||
            tm_pack_trailer_decode(tm_repo_key(repo),
                                   file.data + file.len - TM_PACK_TAIL_LEN - tlen, tlen, file.len,
                                   &entries, &n) < 0) {
                tm_log(TM_LOG_ERR, "pack '%s' has a damaged trailer", name);
                goto damaged;
        }
        for (size_t i = 0; i < n; i++) {
                const struct tm_pack_entry *e = &entries[i];

                if (tm_blob_open(tm_repo_key(repo), e, file.data + e->offset, e->length, &plain) <
                    0) {
                        tm_id_hex(&e->id, hex);
                        tm_log(TM_LOG_ERR, "  blob %s in pack '%s' fails verification", hex, name);
                        tm_idset_insert(&c->damaged, &e->id);
                        bad = 1;
                }
        }
        if (bad)
                atomic_fetch_add(&c->errors, 1);
        goto out;
damaged:
        atomic_fetch_add(&c->errors, 1);
        if (p->in_catalog)
                mark_pack_blobs_damaged(c, &p->id);
out:
        atomic_fetch_add(&c->packs_read, 1);
        free(entries);
        tm_buf_dispose(&plain);
        tm_buf_dispose(&file);
}

static void *read_worker(void *arg)
{
        struct ck *c = arg;

        for (;;) {
                uint64_t i = atomic_fetch_add(&c->next, 1);

                if (i >= c->n_packs)
                        break;
                read_pack(c, &c->packs[i]);
                if (c->o->progress) {
                        struct tm_progress pr = {
                                .phase = "check",
                                .files_done = atomic_load(&c->packs_read),
                                .files_total = c->n_packs,
                                .bytes_done = atomic_load(&c->bytes_done),
                                .bytes_total = c->bytes_total,
                                .elapsed_ns = tm_time_mono() - c->start,
                                .totals_final = 1,
                        };

                        c->o->progress(&pr, c->o->userdata);
                }
        }
        return NULL;
}

/* ---- snapshots ---- */

struct snap_walk {
        struct ck *c;
        const struct tm_snapshot *snap;
        char sid[9];
        int report_only; /* second pass: name the files touched by damage */
};

/* A damaged file of a PostgreSQL WAL archive: say which recoverable
 * window it breaks (docs/postgresql.md). */
static void wal_damage(struct ck *c, const struct tm_snapshot *s, const char *path)
{
        char msg[512];

        if (s->n_tags == 1 && strcmp(path, s->tags[0]) == 0 &&
            tm_pg_wal_damage_window(c->repo, s->component, s->tags[0], msg, sizeof(msg)) == 0)
                tm_log(TM_LOG_ERR, "%s", msg);
}

static int snap_walk_cb(const char *path, const struct tm_node *nd, void *ud)
{
        struct snap_walk *w = ud;
        struct ck *c = w->c;

        if (nd->type == TM_NODE_DIR) {
                if (w->report_only)
                        return 0;
                /* an already verified subtree needs no second look */
                return tm_idset_insert(&c->trees_ok, &nd->subtree) == 0 ? 1 : 0;
        }
        if (nd->type != TM_NODE_FILE)
                return 0;
        for (size_t i = 0; i < nd->n_content; i++) {
                const tm_id *id = &nd->content[i].id;
                char hex[TM_ID_HEX_LEN + 1];

                if (w->report_only) {
                        if (tm_idset_has(&c->damaged, id)) {
                                tm_id_hex(id, hex);
                                tm_log(TM_LOG_ERR, "snapshot %s: file '/%s' is damaged (blob %s)",
                                       w->sid, path, hex);
                                wal_damage(c, w->snap, path);
                                return 0;
                        }
                        continue;
                }
                if (tm_repo_blob_has(c->repo, id) != 1) {
                        tm_id_hex(id, hex);
                        tm_log(TM_LOG_ERR,
                               "snapshot %s: file '/%s' needs blob %s, which is missing", w->sid,
                               path, hex);
                        tm_idset_insert(&c->damaged, id);
                        atomic_fetch_add(&c->errors, 1);
                        return 0;
                }
        }
        return 0;
}

static int check_snapshot(struct ck *c, const struct tm_snapshot *s, int report_only)
{
        struct snap_walk w = { .c = c, .snap = s, .report_only = report_only };
        char hex[TM_ID_HEX_LEN + 1];
        int r;

        tm_id_hex(&s->id, hex);
        snprintf(w.sid, sizeof(w.sid), "%.8s", hex);
        if (!report_only && tm_idset_insert(&c->trees_ok, &s->tree) == 0)
                return 0;
        r = tm_repo_walk(c->repo, &s->tree, snap_walk_cb, &w);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "snapshot %s (%s, %s): its tree cannot be read", w.sid,
                             s->component, s->strategy);
                if (!report_only)
                        atomic_fetch_add(&c->errors, 1);
        }
        return 0;
}

int tm_check_run(tm_repo *repo, const struct tm_check_opts *o, struct tm_check_stats *ret)
{
        struct ck c = { .repo = repo, .o = o };
        struct tm_snapshot *snaps = NULL;
        size_t n_snaps = 0;
        pthread_t *threads = NULL;
        int r, started = 0, nthreads;
        uint64_t nblobs = 0;

        c.start = tm_time_mono();
        r = tm_repo_refresh(repo);
        if (r < 0)
                return r;
        r = tm_idset_init(&c.damaged, 64);
        if (r < 0)
                goto out;
        r = tm_idset_init(&c.trees_ok, 1024);
        if (r < 0)
                goto out;
        r = tm_backend_list(tm_repo_backend(repo), "data/", list_pack_cb, &c);
        if (r < 0)
                goto out;
        if (c.n_packs)
                qsort(c.packs, c.n_packs, sizeof(*c.packs), pack_cmp);
        r = tm_catalog_pack_foreach(tm_repo_catalog(repo), catalog_pack_cb, &c);
        if (r < 0)
                goto out;
        r = tm_repo_snapshot_list(repo, NULL, &snaps, &n_snaps);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < n_snaps; i++)
                check_snapshot(&c, &snaps[i], 0);
        if (o->read_data && c.n_packs) {
                nthreads = o->threads > 0 ? o->threads : tm_ncpu();
                threads = calloc((size_t)nthreads, sizeof(*threads));
                if (!threads) {
                        r = -ENOMEM;
                        goto out;
                }
                for (; started < nthreads; started++)
                        if (pthread_create(&threads[started], NULL, read_worker, &c) != 0)
                                break;
                if (started == 0)
                        read_worker(&c);
                for (int i = 0; i < started; i++)
                        pthread_join(threads[i], NULL);
        }
        if (c.damaged.n > 0) {
                /* name what the damage touches */
                for (size_t i = 0; i < n_snaps; i++)
                        check_snapshot(&c, &snaps[i], 1);
        }
        if (ret) {
                uint64_t orphans = 0;

                for (size_t i = 0; i < c.n_packs; i++)
                        orphans += !c.packs[i].in_catalog;
                tm_catalog_blob_count(tm_repo_catalog(repo), &nblobs);
                ret->snapshots = n_snaps;
                ret->trees = c.trees_ok.n;
                ret->blobs = nblobs;
                ret->packs = c.n_packs;
                ret->packs_read = atomic_load(&c.packs_read);
                ret->errors = atomic_load(&c.errors);
                ret->orphan_packs = orphans;
        }
        r = atomic_load(&c.errors) ? -EBADMSG : 0;
out:
        free(threads);
        tm_snapshot_array_free(snaps, n_snaps);
        free(c.packs);
        tm_idset_dispose(&c.damaged);
        tm_idset_dispose(&c.trees_ok);
        return r;
}
