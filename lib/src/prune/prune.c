/*
 * prune: remove what no snapshot references. Under the exclusive lock (after
 * every running backup has finished), mark the blobs the snapshots use,
 * then per pack: keep it, delete it (nothing used), or repack it (more than
 * max_unused of its bytes unused: copy the used sealed blobs, as they are,
 * into new packs). Crash-safe order: new packs, the new index, then delete
 * the old index files, then the old packs. An interruption leaves either
 * the old index (still complete) or the new one, and at worst extra packs
 * that the next prune removes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/index.h>
#include <tidemark/log.h>
#include <tidemark/ops.h>

#include "core/idset.h"

#define PACK_TARGET     (16u * 1024 * 1024)
#define PACKS_PER_INDEX 10000

struct pk_pack {
        tm_id id;
        uint8_t type;
        uint64_t size;
        struct tm_pack_entry *entries;
        size_t n, cap;
        uint64_t used_bytes, unused_bytes;
        size_t used;
        int action; /* 0 keep, 1 delete, 2 repack */
};

struct pk {
        tm_repo *repo;
        struct tm_idset used;
        struct tm_idset kept; /* blobs already kept somewhere: duplicates elsewhere are unused */
        struct pk_pack *packs;
        size_t n_packs, cap_packs;
        tm_id *orphans;
        size_t n_orphans, cap_orphans;
};

static int mark_cb(const char *path, const struct tm_node *nd, void *ud)
{
        struct pk *p = ud;

        (void)path;
        if (nd->type == TM_NODE_DIR) {
                int r = tm_idset_insert(&p->used, &nd->subtree);

                return r < 0 ? r : (r == 0 ? 1 : 0); /* seen: do not descend again */
        }
        for (size_t i = 0; i < nd->n_content; i++)
                if (tm_idset_insert(&p->used, &nd->content[i].id) < 0)
                        return -ENOMEM;
        return 0;
}

static int pack_cb(const tm_id *pack_id, uint8_t type, uint64_t size, void *ud)
{
        struct pk *p = ud;
        struct pk_pack *k;

        if (p->n_packs == p->cap_packs) {
                size_t ncap = p->cap_packs ? p->cap_packs * 2 : 256;
                struct pk_pack *a = realloc(p->packs, ncap * sizeof(*a));

                if (!a)
                        return -ENOMEM;
                p->packs = a;
                p->cap_packs = ncap;
        }
        k = &p->packs[p->n_packs++];
        memset(k, 0, sizeof(*k));
        k->id = *pack_id;
        k->type = type;
        k->size = size;
        return 0;
}

static int entry_cb(const tm_id *blob, const tm_id *pack, const struct tm_pack_entry *e, void *ud)
{
        struct pk_pack *k = ud;

        (void)blob;
        (void)pack;
        if (k->n == k->cap) {
                size_t ncap = k->cap ? k->cap * 2 : 64;
                struct tm_pack_entry *a = realloc(k->entries, ncap * sizeof(*a));

                if (!a)
                        return -ENOMEM;
                k->entries = a;
                k->cap = ncap;
        }
        k->entries[k->n++] = *e;
        return 0;
}

struct data_list {
        struct pk *p;
        tm_id *ids;
        size_t n, cap;
};

static int data_cb(const char *name, uint64_t size, void *ud)
{
        struct data_list *l = ud;
        const char *slash = strrchr(name, '/');
        tm_id id;

        (void)size;
        if (!slash || tm_id_parse(slash + 1, &id) < 0)
                return 0;
        if (tm_catalog_pack_has(tm_repo_catalog(l->p->repo), &id) == 1)
                return 0;
        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 64;
                tm_id *a = realloc(l->ids, ncap * sizeof(*a));

                if (!a)
                        return -ENOMEM;
                l->ids = a;
                l->cap = ncap;
        }
        l->ids[l->n++] = id;
        return 0;
}

static int index_collect_cb(const tm_id *id, void *ud)
{
        struct data_list *l = ud;

        if (l->n == l->cap) {
                size_t ncap = l->cap ? l->cap * 2 : 64;
                tm_id *a = realloc(l->ids, ncap * sizeof(*a));

                if (!a)
                        return -ENOMEM;
                l->ids = a;
                l->cap = ncap;
        }
        l->ids[l->n++] = *id;
        return 0;
}

/* Copy the used blobs of a pack into the writer of its type. */
static int repack(struct pk *p, struct pk_pack *k, tm_pack_writer **w, struct tm_index *idx,
                  uint64_t *ret_new)
{
        tm_buf sealed = TM_BUF_INIT(TM_BLOB_MAX + 1024);
        char name[128];
        int r = 0;

        tm_repo_pack_name(&k->id, name, sizeof(name));
        for (size_t i = 0; i < k->n; i++) {
                const struct tm_pack_entry *e = &k->entries[i];
                tm_buf plain = TM_BUF_INIT(TM_BLOB_MAX);

                if (!tm_idset_has(&p->used, &e->id) || tm_idset_insert(&p->kept, &e->id) != 1)
                        continue;
                r = tm_backend_get_range(tm_repo_backend(p->repo), name, e->offset, e->length,
                                         &sealed);
                /* verify before copying: a prune must not propagate damage */
                if (r == 0)
                        r = tm_blob_open(tm_repo_key(p->repo), e, sealed.data, sealed.len, &plain);
                tm_buf_dispose(&plain);
                if (r < 0) {
                        char hex[TM_ID_HEX_LEN + 1];

                        tm_id_hex(&e->id, hex);
                        tm_log_errno(TM_LOG_ERR, r, "cannot repack blob %s from '%s'", hex, name);
                        goto out;
                }
                r = tm_pack_writer_add(*w, e, sealed.data, sealed.len);
                if (r < 0)
                        goto out;
                if (tm_pack_writer_size(*w) >= PACK_TARGET) {
                        tm_buf file = TM_BUF_INIT(0);
                        struct tm_pack_entry *ents = NULL;
                        size_t n = 0;
                        tm_id id;

                        r = tm_pack_writer_finish(*w, &file, &id, &ents, &n);
                        if (r == 0)
                                r = tm_repo_pack_save(p->repo, &id, k->type, &file, ents, n);
                        if (r == 0)
                                r = tm_index_add_pack(idx, &id, file.len, ents, n);
                        if (r == 0)
                                (*ret_new)++;
                        free(ents);
                        tm_buf_dispose(&file);
                        if (r < 0)
                                goto out;
                }
        }
out:
        tm_buf_dispose(&sealed);
        return r;
}

static int flush(struct pk *p, tm_pack_writer *w, uint8_t type, struct tm_index *idx,
                 uint64_t *ret_new)
{
        tm_buf file = TM_BUF_INIT(0);
        struct tm_pack_entry *ents = NULL;
        size_t n = 0;
        tm_id id;
        int r;

        if (tm_pack_writer_count(w) == 0)
                return 0;
        r = tm_pack_writer_finish(w, &file, &id, &ents, &n);
        if (r == 0)
                r = tm_repo_pack_save(p->repo, &id, type, &file, ents, n);
        if (r == 0)
                r = tm_index_add_pack(idx, &id, file.len, ents, n);
        if (r == 0)
                (*ret_new)++;
        free(ents);
        tm_buf_dispose(&file);
        return r;
}

int tm_prune_run(tm_repo *repo, const struct tm_prune_opts *o, struct tm_prune_stats *ret)
{
        struct pk p = { .repo = repo };
        struct tm_prune_stats st = { 0 };
        struct tm_snapshot *snaps = NULL;
        struct data_list orphans = { .p = &p }, old_index = { .p = &p };
        struct tm_index idx = TM_INDEX_INIT;
        tm_pack_writer *w[2] = { NULL, NULL };
        tm_lock *lock = NULL;
        size_t n_snaps = 0;
        uint64_t nblobs = 0, new_packs = 0;
        int r;

        r = tm_repo_lock_exclusive(repo, o->lock_wait_s, &lock);
        if (r < 0) {
                if (r == -EBUSY)
                        tm_log(TM_LOG_ERR, "repository '%s' is busy (backups running)",
                               tm_repo_location(repo));
                return r;
        }
        r = tm_repo_refresh(repo);
        if (r < 0)
                goto out;
        tm_catalog_blob_count(tm_repo_catalog(repo), &nblobs);
        r = tm_idset_init(&p.used, nblobs + 1024);
        if (r == 0)
                r = tm_idset_init(&p.kept, nblobs + 1024);
        if (r < 0)
                goto out;
        r = tm_repo_snapshot_list(repo, NULL, &snaps, &n_snaps);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < n_snaps; i++) {
                r = tm_idset_insert(&p.used, &snaps[i].tree);
                if (r < 0)
                        goto out;
                if (r == 0)
                        continue;
                r = tm_repo_walk(repo, &snaps[i].tree, mark_cb, &p);
                if (r < 0) {
                        char hex[TM_ID_HEX_LEN + 1];

                        /* pruning with an unreadable snapshot could delete what it needs */
                        tm_id_hex(&snaps[i].id, hex);
                        tm_log_errno(TM_LOG_ERR, r,
                                     "snapshot %.8s cannot be read; refusing to prune (run check)",
                                     hex);
                        goto out;
                }
        }
        r = tm_catalog_pack_foreach(tm_repo_catalog(repo), pack_cb, &p);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < p.n_packs; i++) {
                struct pk_pack *k = &p.packs[i];

                r = tm_catalog_blob_foreach_in_pack(tm_repo_catalog(repo), &k->id, entry_cb, k);
                if (r < 0)
                        goto out;
        }
        /* decide: a blob is used once; its copies in other packs are unused */
        for (size_t i = 0; i < p.n_packs; i++) {
                struct pk_pack *k = &p.packs[i];
                struct tm_idset seen_here;

                r = tm_idset_init(&seen_here, k->n + 16);
                if (r < 0)
                        goto out;
                for (size_t j = 0; j < k->n; j++) {
                        const struct tm_pack_entry *e = &k->entries[j];

                        if (tm_idset_has(&p.used, &e->id) && !tm_idset_has(&p.kept, &e->id) &&
                            tm_idset_insert(&seen_here, &e->id) == 1) {
                                k->used++;
                                k->used_bytes += e->length;
                        } else {
                                k->unused_bytes += e->length;
                                st.blobs_removed++;
                        }
                }
                tm_idset_dispose(&seen_here);
                if (k->used == 0)
                        k->action = 1;
                else if (k->unused_bytes > 0 &&
                         (double)k->unused_bytes >
                                 o->max_unused * (double)(k->used_bytes + k->unused_bytes))
                        k->action = 2;
                else
                        k->action = 0;
                /* what a kept pack holds is kept there; a repacked pack's
                 * blobs are claimed when copied */
                if (k->action == 0)
                        for (size_t j = 0; j < k->n; j++)
                                if (tm_idset_has(&p.used, &k->entries[j].id))
                                        tm_idset_insert(&p.kept, &k->entries[j].id);
        }
        r = tm_backend_list(tm_repo_backend(repo), "data/", data_cb, &orphans);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < p.n_packs; i++) {
                if (p.packs[i].action == 1) {
                        st.packs_deleted++;
                        st.bytes_freed += p.packs[i].size;
                } else if (p.packs[i].action == 2) {
                        st.packs_repacked++;
                        st.bytes_freed += p.packs[i].unused_bytes;
                } else {
                        st.packs_kept++;
                }
        }
        for (size_t i = 0; i < orphans.n; i++) {
                uint64_t sz = 0;
                char name[128];

                tm_repo_pack_name(&orphans.ids[i], name, sizeof(name));
                if (tm_backend_head(tm_repo_backend(repo), name, &sz) == 0)
                        st.bytes_freed += sz;
                st.packs_deleted++;
        }
        /* under the exclusive lock, with every backup finished, a temp file is
         * what a killed writer left; a minute's grace covers key and config
         * writes, which take no lock */
        if (!o->dry_run)
                tm_backend_clean_temp(tm_repo_backend(repo), 60);
        if (o->dry_run || (st.packs_deleted == 0 && st.packs_repacked == 0)) {
                r = 0;
                goto out;
        }

        /* 1. new packs */
        for (int t = 0; t < 2; t++) {
                r = tm_pack_writer_new(tm_repo_key(repo), t, &w[t]);
                if (r < 0)
                        goto out;
        }
        for (size_t i = 0; i < p.n_packs; i++) {
                struct pk_pack *k = &p.packs[i];

                if (k->action != 2)
                        continue;
                r = repack(&p, k, &w[k->type ? 1 : 0], &idx, &new_packs);
                if (r < 0)
                        goto out;
        }
        for (int t = 0; t < 2; t++) {
                r = flush(&p, w[t], (uint8_t)t, &idx, &new_packs);
                if (r < 0)
                        goto out;
        }
        /* 2. the new index: the kept packs and the new ones */
        r = tm_catalog_index_foreach(tm_repo_catalog(repo), index_collect_cb, &old_index);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < p.n_packs; i++) {
                struct pk_pack *k = &p.packs[i];

                if (k->action != 0)
                        continue;
                r = tm_index_add_pack(&idx, &k->id, k->size, k->entries, k->n);
                if (r < 0)
                        goto out;
                if (idx.n_packs >= PACKS_PER_INDEX) {
                        r = tm_repo_index_save(repo, &idx, NULL);
                        tm_index_dispose(&idx);
                        idx = TM_INDEX_INIT;
                        if (r < 0)
                                goto out;
                        st.index_files_rewritten++;
                }
        }
        if (idx.n_packs > 0) {
                r = tm_repo_index_save(repo, &idx, NULL);
                if (r < 0)
                        goto out;
                st.index_files_rewritten++;
        }
        /* 3. old index files */
        for (size_t i = 0; i < old_index.n; i++) {
                char name[128], hex[TM_ID_HEX_LEN + 1];

                tm_id_hex(&old_index.ids[i], hex);
                snprintf(name, sizeof(name), "index/%s", hex);
                r = tm_backend_remove(tm_repo_backend(repo), name);
                if (r < 0 && r != -ENOENT)
                        goto out;
        }
        /* 4. old packs */
        for (size_t i = 0; i < p.n_packs + orphans.n; i++) {
                const tm_id *id = i < p.n_packs ? &p.packs[i].id : &orphans.ids[i - p.n_packs];
                char name[128];

                if (i < p.n_packs && p.packs[i].action == 0)
                        continue;
                tm_repo_pack_name(id, name, sizeof(name));
                r = tm_backend_remove(tm_repo_backend(repo), name);
                if (r < 0 && r != -ENOENT)
                        goto out;
        }
        r = tm_repo_refresh(repo);
out:
        if (ret)
                *ret = st;
        for (int t = 0; t < 2; t++)
                tm_pack_writer_free(w[t]);
        tm_index_dispose(&idx);
        for (size_t i = 0; i < p.n_packs; i++)
                free(p.packs[i].entries);
        free(p.packs);
        free(orphans.ids);
        free(old_index.ids);
        free(p.orphans);
        tm_snapshot_array_free(snaps, n_snaps);
        tm_idset_dispose(&p.used);
        tm_idset_dispose(&p.kept);
        tm_lock_release(lock);
        return r;
}
