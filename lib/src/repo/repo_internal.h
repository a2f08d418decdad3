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
};

/* Seal a metadata object with the master key under an AAD label and store it
 * under "<dir>/<sha256 hex of the sealed bytes>". */
int tm_repo__put_sealed(tm_repo *repo, const char *dir, const char *aad, const void *plain,
                        size_t n, tm_id *ret_id);
/* Fetch "<dir>/<hex>", check its name is its SHA-256, open it. */
int tm_repo__get_sealed(tm_repo *repo, const char *dir, const char *aad, const tm_id *id,
                        size_t limit, tm_buf *ret);
/* Ingest one index file into the catalog (inside the caller's transaction). */
int tm_repo__ingest_index(tm_repo *repo, const tm_id *index_id);
