/*
 * stats: repository totals from the catalog (packs, blobs, index files) and
 * the snapshot manifests' summaries, with no pack I/O.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/ops.h>
#include <tidemark/tier.h>

struct blob_row {
        tm_id id, pack;
        uint32_t raw, stored;
};

struct blob_acc {
        struct blob_row *rows;
        size_t n, cap;
};

static int count_pack(const tm_id *pack_id, uint8_t type, uint64_t size, void *userdata)
{
        struct tm_repo_stats *st = userdata;

        st->packs++;
        st->pack_bytes += size;
        return 0;
}

static int count_index(const tm_id *id, void *userdata)
{
        struct tm_repo_stats *st = userdata;

        st->index_files++;
        return 0;
}

static int collect_blob(const tm_id *blob_id, const tm_id *pack_id, const struct tm_pack_entry *e,
                        void *userdata)
{
        struct blob_acc *acc = userdata;

        if (acc->n == acc->cap) {
                size_t cap = acc->cap ? acc->cap * 2 : 1024;
                struct blob_row *rows = realloc(acc->rows, cap * sizeof(*rows));

                if (!rows)
                        return -ENOMEM;
                acc->rows = rows;
                acc->cap = cap;
        }
        acc->rows[acc->n++] = (struct blob_row){ *blob_id, *pack_id, e->raw_length, e->length };
        return 0;
}

static int row_cmp(const void *a, const void *b)
{
        return tm_id_cmp(&((const struct blob_row *)a)->id, &((const struct blob_row *)b)->id);
}

/* A blob stored in several packs (rows[i..] share its id): when one copy is
 * cold or archive and another warm or hot, the warm one is the
 * fresh copy a backup paid for. */
static void fresh_copy(tm_repo *repo, const struct blob_row *rows, size_t i, size_t n,
                       struct tm_repo_stats *st)
{
        uint32_t warm_bytes = 0;
        int warm = 0, cold = 0;

        if (!tm_backend_is_tiered(tm_repo_backend(repo)))
                return;
        for (size_t j = i; j < n && tm_id_cmp(&rows[j].id, &rows[i].id) == 0; j++) {
                unsigned t = tm_tier_of_pack(repo, &rows[j].pack);

                if (t <= TM_TIER_WARM && !warm) {
                        warm = 1;
                        warm_bytes = rows[j].stored;
                } else if (t >= TM_TIER_COLD && t < TM_TIER_LEVELS) {
                        cold = 1;
                }
        }
        if (warm && cold) {
                st->fresh_copies++;
                st->fresh_copy_bytes += warm_bytes;
        }
}

/* Statistics of the whole repository. A blob stored in several packs (two
 * concurrent backups wrote it) counts once: the numbers describe unique
 * content, while pack_bytes says what the repository really occupies.
 * Returns 0 or a negative errno from the catalog. */
int tm_stats_compute(tm_repo *repo, struct tm_repo_stats *ret)
{
        struct tm_repo_stats st = { 0 };
        struct blob_acc acc = { 0 };
        struct tm_snapshot *snaps = NULL;
        size_t n_snaps = 0;
        tm_catalog *cat;
        int r;

        if (!repo || !ret)
                return -EINVAL;
        cat = tm_repo_catalog(repo);
        if (!cat)
                return -EIO;
        r = tm_repo_snapshot_list(repo, NULL, &snaps, &n_snaps);
        if (r < 0)
                goto out;
        st.snapshots = n_snaps;
        for (size_t i = 0; i < n_snaps; i++) {
                st.restore_bytes += snaps[i].summary.bytes;
                st.restore_files += snaps[i].summary.files;
        }
        r = tm_catalog_pack_foreach(cat, count_pack, &st);
        if (r < 0)
                goto out;
        r = tm_catalog_index_foreach(cat, count_index, &st);
        if (r < 0)
                goto out;
        r = tm_catalog_blob_foreach(cat, collect_blob, &acc);
        if (r < 0)
                goto out;
        if (acc.n)
                qsort(acc.rows, acc.n, sizeof(*acc.rows), row_cmp);
        for (size_t i = 0; i < acc.n; i++) {
                if (i > 0 && tm_id_cmp(&acc.rows[i].id, &acc.rows[i - 1].id) == 0)
                        continue;
                if (i + 1 < acc.n && tm_id_cmp(&acc.rows[i].id, &acc.rows[i + 1].id) == 0)
                        fresh_copy(repo, acc.rows, i, acc.n, &st);
                st.blobs++;
                st.blob_raw_bytes += acc.rows[i].raw;
                st.blob_stored_bytes += acc.rows[i].stored;
        }
        *ret = st;
        r = 0;
out:
        free(acc.rows);
        tm_snapshot_array_free(snaps, n_snaps);
        return r;
}
