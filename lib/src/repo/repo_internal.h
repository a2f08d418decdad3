#pragma once
/* Internals of the repo module shared by its files (and tests). */
#include <pthread.h>

#include <tidemark/repo.h>
#include <tidemark/tier.h>

struct tm_repo {
        tm_backend *be;
        tm_catalog *cat;
        char *catalog_path;
        char *location;
        tm_key key;
        tm_id key_id; /* the key file this handle was opened with */
        char id_hex[TM_ID_HEX_LEN + 1];
        tm_chunker *chunker;
        struct tm_chunker_params cparams;
        uint8_t gear_seed[32];
        int level;
        struct tm_kdf_params kdf;
        pthread_mutex_t lock; /* guards the catalog refresh and thaw_logged */
        struct tm_tier_set tiers;
        int thaw_nowait;
        int64_t thaw_logged; /* monotonic ns of the last "try again later" line */
        /* tree packs of a remote backend, whole (packcache.c) */
        pthread_mutex_t pc_lock;
        struct tm_packcache_ent *pc;
        size_t pc_n, pc_cap;
        uint64_t pc_bytes, pc_tick;
};

/*
 * tm_repo__packcache_get() - the sealed bytes of blob e of pack from the
 * cache of whole tree packs, fetching the pack on the first miss. Only for
 * tree blobs on a remote backend. Returns 1 (sealed holds e's bytes), 0
 * (not cached and not cacheable: read the blob from the backend), -EBADMSG
 * (e lies past the pack's end), -ENOMEM.
 */
int tm_repo__packcache_get(tm_repo *repo, const tm_id *pack, const struct tm_pack_entry *e,
                           tm_buf *sealed);
void tm_repo__packcache_dispose(tm_repo *repo);

/* Seal a metadata object with the master key under an AAD label and store it
 * under "<dir>/<sha256 hex of the sealed bytes>". */
int tm_repo__put_sealed(tm_repo *repo, const char *dir, const char *aad, const void *plain,
                        size_t n, tm_id *ret_id);
/* Fetch "<dir>/<hex>", check its name is its SHA-256, open it. */
int tm_repo__get_sealed(tm_repo *repo, const char *dir, const char *aad, const tm_id *id,
                        size_t limit, tm_buf *ret);
/* Ingest one index file into the catalog (inside the caller's transaction). */
int tm_repo__ingest_index(tm_repo *repo, const tm_id *index_id);
