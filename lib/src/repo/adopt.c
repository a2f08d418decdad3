#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/index.h>
#include <tidemark/log.h>

#include "repo_internal.h"

struct adopt_ctx {
        tm_repo *repo;
        struct tm_index idx;
        int n;
        int err;
};

/* Read a pack's trailer with two ranged reads (tail, then trailer) and
 * decode it. Returns 0 and a malloc'd array, -EBADMSG for a pack whose tail
 * or trailer is damaged, or another negative errno. */
static int read_trailer(tm_repo *repo, const char *name, uint64_t size, struct tm_pack_entry **ret,
                        size_t *ret_n)
{
        tm_buf tail = TM_BUF_INIT(TM_PACK_TAIL_LEN), tr = TM_BUF_INIT(TM_PACK_TRAILER_MAX);
        uint32_t tlen;
        int r;

        if (size < TM_PACK_TAIL_LEN)
                return -EBADMSG;
        r = tm_backend_get_range(repo->be, name, size - TM_PACK_TAIL_LEN, TM_PACK_TAIL_LEN, &tail);
        if (r == 0)
                r = tm_pack_tail_parse(tail.data, &tlen);
        if (r == 0 && tlen > size - TM_PACK_TAIL_LEN)
                r = -EBADMSG;
        if (r == 0)
                r = tm_backend_get_range(repo->be, name, size - TM_PACK_TAIL_LEN - tlen, tlen, &tr);
        if (r == 0)
                r = tm_pack_trailer_decode(&repo->key, tr.data, tr.len, size, ret, ret_n);
        tm_buf_dispose(&tr);
        tm_buf_dispose(&tail);
        return r;
}

/* Read a pack's tail and trailer (two ranged reads) and add it to the index. */
static int adopt_one(const char *name, uint64_t size, void *ud)
{
        struct adopt_ctx *c = ud;
        struct tm_pack_entry *entries = NULL;
        const char *slash = strrchr(name, '/');
        size_t n = 0;
        tm_id pack_id;
        int r;

        if (!slash || tm_id_parse(slash + 1, &pack_id) < 0)
                return 0; /* not a pack name: ignore */
        r = tm_catalog_pack_has(c->repo->cat, &pack_id);
        if (r != 0)
                return r < 0 ? r : 0;
        r = read_trailer(c->repo, name, size, &entries, &n);
        if (r < 0) {
                /* a damaged orphan is check's business; adoption just skips it */
                tm_log(TM_LOG_WARN, "pack '%s' has no index and an unreadable trailer, ignored",
                       name);
                return 0;
        }
        r = tm_index_add_pack(&c->idx, &pack_id, size, entries, n);
        if (r == 0)
                c->n++;
        free(entries);
        return r;
}

int tm_repo_adopt_orphan_packs(tm_repo *repo)
{
        struct adopt_ctx c = { .repo = repo, .idx = TM_INDEX_INIT };
        int r;

        r = tm_backend_list(repo->be, "data/", adopt_one, &c);
        if (r < 0)
                goto out;
        if (c.n > 0) {
                r = tm_repo_index_save(repo, &c.idx, NULL);
                if (r < 0)
                        goto out;
                tm_log(TM_LOG_INFO, "adopted %d pack(s) left by an interrupted backup", c.n);
        }
        r = c.n;
out:
        tm_index_dispose(&c.idx);
        return r;
}

struct rebuild_ctx {
        tm_repo *repo;
        struct tm_index idx;
        int n, bad;
};

static int rebuild_one(const char *name, uint64_t size, void *ud)
{
        struct rebuild_ctx *c = ud;
        struct tm_pack_entry *entries = NULL;
        const char *slash = strrchr(name, '/');
        size_t n = 0;
        tm_id pack_id;
        int r;

        if (!slash || tm_id_parse(slash + 1, &pack_id) < 0)
                return 0;
        r = read_trailer(c->repo, name, size, &entries, &n);
        if (r < 0) {
                tm_log_errno(TM_LOG_ERR, r, "pack '%s' has an unreadable trailer, left out", name);
                c->bad++;
                return 0;
        }
        r = tm_index_add_pack(&c->idx, &pack_id, size, entries, n);
        if (r == 0)
                c->n++;
        free(entries);
        return r;
}

static int collect_index_cb(const char *name, uint64_t size, void *ud)
{
        tm_buf *names = ud;

        (void)size;
        return tm_buf_append(names, name, strlen(name) + 1);
}

int tm_repo_index_rebuild(tm_repo *repo)
{
        struct rebuild_ctx c = { .repo = repo, .idx = TM_INDEX_INIT };
        tm_buf old = TM_BUF_INIT(0);
        tm_lock *lock = NULL;
        tm_id new_id;
        char keep[128] = "";
        int r;

        r = tm_repo_lock_exclusive(repo, 3600, &lock);
        if (r < 0)
                return r;
        r = tm_backend_list(repo->be, "index/", collect_index_cb, &old);
        if (r < 0)
                goto out;
        r = tm_backend_list(repo->be, "data/", rebuild_one, &c);
        if (r < 0)
                goto out;
        /* the new index is complete before any old one goes */
        if (c.n > 0) {
                char hex[TM_ID_HEX_LEN + 1];

                r = tm_repo_index_save(repo, &c.idx, &new_id);
                if (r < 0)
                        goto out;
                tm_id_hex(&new_id, hex);
                snprintf(keep, sizeof(keep), "index/%s", hex);
        }
        for (size_t off = 0; off < old.len; off += strlen((char *)old.data + off) + 1) {
                const char *name = (const char *)old.data + off;

                if (strcmp(name, keep) == 0)
                        continue;
                r = tm_backend_remove(repo->be, name);
                if (r < 0 && r != -ENOENT)
                        goto out;
        }
        tm_lock_release(lock);
        lock = NULL;
        r = tm_repo_catalog_rebuild(repo);
        if (r == 0)
                r = c.n;
        if (r >= 0 && c.bad)
                r = -EBADMSG;
out:
        tm_lock_release(lock);
        tm_buf_dispose(&old);
        tm_index_dispose(&c.idx);
        return r;
}
