/*
 * The tree-pack cache of a repository on a remote backend. Walking a
 * snapshot (restore, ls, diff, the filesystem) loads its trees one after
 * another, each a dependency of the next; on S3 that is one request's
 * latency per directory, and a restore of 3,000 directories spent most of
 * its time there. Tree packs are few and small beside data packs (a 1.8 GB
 * dataset's 3,311 trees fit in one 3 MiB pack), so the first tree load
 * from a pack fetches the whole pack and keeps its sealed bytes in memory:
 * the pack's other trees cost no request. Safe to keep: packs are
 * immutable and every blob is authenticated when opened, so the cache
 * holds nothing that is trusted before that check.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/backend.h>

#include "repo_internal.h"

/* A pack bigger than this is read blob by blob, as data is. */
#define PACK_MAX    (32u * 1024 * 1024)
#define CACHE_BYTES (96u * 1024 * 1024)

struct tm_packcache_ent {
        tm_id pack;
        tm_buf data;
        uint64_t used; /* tick of the last hit: the least recent goes first */
};

void tm_repo__packcache_dispose(tm_repo *repo)
{
        for (size_t i = 0; i < repo->pc_n; i++)
                tm_buf_dispose(&repo->pc[i].data);
        free(repo->pc);
        repo->pc = NULL;
        repo->pc_n = repo->pc_cap = 0;
        repo->pc_bytes = 0;
}

/* Copy the sealed bytes of e out of a cached pack. Caller holds pc_lock.
 * Returns 1 (copied), 0 (pack not cached), -errno. */
static int lookup_locked(tm_repo *repo, const tm_id *pack, const struct tm_pack_entry *e,
                         tm_buf *sealed)
{
        for (size_t i = 0; i < repo->pc_n; i++) {
                struct tm_packcache_ent *c = &repo->pc[i];

                if (tm_id_cmp(&c->pack, pack) != 0)
                        continue;
                if (e->offset > c->data.len || e->length > c->data.len - e->offset)
                        return -EBADMSG; /* the entry points past the pack's end */
                c->used = ++repo->pc_tick;
                tm_buf_clear(sealed);
                return tm_buf_append(sealed, c->data.data + e->offset, e->length) < 0 ? -ENOMEM
                                                                                       : 1;
        }
        return 0;
}

/* Keep a fetched pack (taken from data), dropping the least recently used
 * packs to stay within CACHE_BYTES. Caller holds pc_lock. */
static void insert_locked(tm_repo *repo, const tm_id *pack, tm_buf *data)
{
        while (repo->pc_n && repo->pc_bytes + data->len > CACHE_BYTES) {
                size_t old = 0;

                for (size_t i = 1; i < repo->pc_n; i++)
                        if (repo->pc[i].used < repo->pc[old].used)
                                old = i;
                repo->pc_bytes -= repo->pc[old].data.len;
                tm_buf_dispose(&repo->pc[old].data);
                repo->pc[old] = repo->pc[--repo->pc_n];
        }
        if (repo->pc_n == repo->pc_cap) {
                size_t ncap = repo->pc_cap ? repo->pc_cap * 2 : 8;
                struct tm_packcache_ent *p = realloc(repo->pc, ncap * sizeof(*p));

                if (!p)
                        return; /* not kept: the next load fetches again */
                repo->pc = p;
                repo->pc_cap = ncap;
        }
        repo->pc[repo->pc_n] = (struct tm_packcache_ent){ .pack = *pack, .used = ++repo->pc_tick };
        tm_buf_move(&repo->pc[repo->pc_n].data, data);
        repo->pc_bytes += repo->pc[repo->pc_n].data.len;
        repo->pc_n++;
}

/* Whether reading the pack crosses a network: on a tiered backend, whether
 * the warmest tier holding it does (a local hot tier needs no cache). */
static int pack_is_remote(tm_repo *repo, const tm_id *pack)
{
        char name[128];
        unsigned mask = 0;

        if (!tm_backend_is_tiered(repo->be))
                return tm_backend_is_remote(repo->be);
        tm_repo_pack_name(pack, name, sizeof(name));
        if (tm_backend_tier_where(repo->be, name, &mask) < 0 || !mask)
                return 0;
        for (unsigned i = 0; i < TM_BACKEND_TIERS; i++)
                if (mask & (1u << i))
                        return tm_backend_is_remote(tm_backend_tier(repo->be, i));
        return 0;
}

int tm_repo__packcache_get(tm_repo *repo, const tm_id *pack, const struct tm_pack_entry *e,
                           tm_buf *sealed)
{
        tm_buf whole = TM_BUF_INIT(0);
        char name[128];
        int r;

        if (e->type != TM_BLOB_TREE || !pack_is_remote(repo, pack))
                return 0;
        pthread_mutex_lock(&repo->pc_lock);
        r = lookup_locked(repo, pack, e, sealed);
        pthread_mutex_unlock(&repo->pc_lock);
        if (r != 0)
                return r;
        /* Two threads missing the same pack both fetch it; the second copy
         * is dropped. Cheaper than making every walker wait on one. */
        tm_repo_pack_name(pack, name, sizeof(name));
        r = tm_backend_get(repo->be, name, PACK_MAX, &whole);
        if (r < 0) { /* too big, archived, gone: the caller reads the blob alone */
                tm_buf_dispose(&whole);
                return 0;
        }
        pthread_mutex_lock(&repo->pc_lock);
        r = lookup_locked(repo, pack, e, sealed);
        if (r == 0) {
                insert_locked(repo, pack, &whole);
                r = lookup_locked(repo, pack, e, sealed);
        }
        pthread_mutex_unlock(&repo->pc_lock);
        tm_buf_dispose(&whole);
        return r;
}
