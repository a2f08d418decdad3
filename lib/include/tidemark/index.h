#pragma once
/*
 * index: index files map blob ids to (pack, offset, length). They are
 * written after the packs they describe and are only a cache of the pack
 * trailers: `repair index` rebuilds them from data/ alone.
 *
 * Plaintext: magic "TMIX" || version u8 (1) || n_packs varint ||
 *   n_packs x { pack_id[32] || pack_size varint || n varint ||
 *               n x { type u8 || flags u8 || id[32] || offset varint ||
 *                     length varint || raw_length varint } }
 * then zstd-compressed (flag byte 1) or raw (flag byte 0) behind a 1-byte
 * flag, then sealed with AAD "tmindex". The file name is SHA-256 of the file.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/core.h>
#include <tidemark/crypto.h>
#include <tidemark/pack.h>

/* Largest index file accepted when reading. */
#define TM_INDEX_MAX (256u * 1024 * 1024)

struct tm_index_pack {
        tm_id pack_id;
        uint64_t pack_size;
        size_t n;
        struct tm_pack_entry *entries;
};

struct tm_index {
        size_t n_packs;
        size_t cap;
        struct tm_index_pack *packs;
};

#define TM_INDEX_INIT     \
        (struct tm_index) \
        {                 \
                0         \
        }

/* Add a pack (entries are copied). Returns 0 or -ENOMEM. */
int tm_index_add_pack(struct tm_index *idx, const tm_id *pack_id, uint64_t pack_size,
                      const struct tm_pack_entry *entries, size_t n);
/* Serialize, compress and seal into out (appended). */
int tm_index_encode(const tm_key *key, const struct tm_index *idx, tm_buf *out);
/* Open and parse a stored index file. *ret is overwritten (not disposed)
 * only on success. Returns 0, -EBADMSG, -ENOMEM. */
int tm_index_decode(const tm_key *key, const void *p, size_t n, struct tm_index *ret);
/* Parse the plaintext form (fuzz target). */
int tm_index_parse(const void *p, size_t n, struct tm_index *ret);
void tm_index_dispose(struct tm_index *idx);
