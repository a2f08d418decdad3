#pragma once
/*
 * pack: blobs and the self-describing pack files that hold them.
 *
 * A blob is sealed as: plaintext -> zstd (only if smaller) -> AES-256-GCM
 * with AAD = "tmblob" || type (1 byte) || id (32 bytes). Opening checks the
 * GCM tag, decompresses, and recomputes HMAC(id key, plaintext) == id; any
 * mismatch is -EBADMSG and no bytes come back.
 *
 * A pack file is:
 *     sealed blob 0 || sealed blob 1 || ... || sealed trailer || tail
 * tail (8 bytes) = trailer_len (u32 LE, length of the sealed trailer)
 *                  || magic "TMP1"
 * The trailer plaintext (sealed with AAD "tmpack-trailer") is:
 *     magic "TMPT" || version u8 (1) || count varint ||
 *     count x { type u8 || flags u8 || id[32] || offset varint ||
 *               length varint || raw_length varint }
 * Entries are in file order, non-overlapping, inside the blob area.
 * A pack's name (id) is SHA-256 of the whole file. data and tree blobs never
 * share a pack. See docs/format.md.
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/core.h>
#include <tidemark/crypto.h>

enum tm_blob_type { TM_BLOB_DATA = 0, TM_BLOB_TREE = 1 };

#define TM_PACK_FLAG_ZSTD 0x01
#define TM_PACK_TAIL_LEN  8
#define TM_PACK_MAGIC     "TMP1"
/* Largest plaintext blob accepted anywhere (trees of huge directories). */
#define TM_BLOB_MAX (64u * 1024 * 1024)
/* Largest trailer accepted when reading (bounds hostile input). */
#define TM_PACK_TRAILER_MAX (64u * 1024 * 1024)

struct tm_pack_entry {
        tm_id id;
        uint8_t type;  /* enum tm_blob_type */
        uint8_t flags; /* TM_PACK_FLAG_* */
        uint64_t offset;
        uint32_t length;     /* sealed length in the pack */
        uint32_t raw_length; /* plaintext length */
};

/**
 * tm_blob_seal() - compress (level 0: never) and encrypt one blob whose id
 * the caller computed; append the sealed bytes to out and describe them in
 * *ret (offset set to 0; the pack writer assigns it).
 * Returns 0, -EINVAL (n > TM_BLOB_MAX), -E2BIG, -ENOMEM. Thread-safe.
 */
int tm_blob_seal(const tm_key *key, enum tm_blob_type type, const tm_id *id, const void *plain,
                 size_t n, int level, tm_buf *out, struct tm_pack_entry *ret);

/**
 * tm_blob_open() - authenticate, decompress and verify one sealed blob
 * (n must equal e->length). out is cleared, then receives exactly
 * e->raw_length plaintext bytes.
 * Returns 0, -EBADMSG on any integrity failure (out left empty), -ENOMEM.
 */
int tm_blob_open(const tm_key *key, const struct tm_pack_entry *e, const void *sealed, size_t n,
                 tm_buf *out);

/* Encode a trailer for entries[0..n) and append sealed trailer + tail to out. */
int tm_pack_trailer_encode(const tm_key *key, const struct tm_pack_entry *entries, size_t n,
                           tm_buf *out);

/* Parse the 8-byte tail: *ret_trailer_len is the sealed trailer's length.
 * Returns 0 or -EBADMSG (bad magic, or longer than TM_PACK_TRAILER_MAX). */
int tm_pack_tail_parse(const uint8_t tail[TM_PACK_TAIL_LEN], uint32_t *ret_trailer_len);

/**
 * tm_pack_trailer_decode() - decrypt and parse a sealed trailer (exactly the
 * trailer_len bytes before the tail) of a pack whose total size is
 * pack_size; checks every entry lies in the blob area and entries do not
 * overlap. Returns 0 and a malloc'd array (caller frees) or -EBADMSG, -ENOMEM.
 */
int tm_pack_trailer_decode(const tm_key *key, const void *sealed, size_t n, uint64_t pack_size,
                           struct tm_pack_entry **ret, size_t *ret_n);

/* Decode a trailer's plaintext (what the fuzz target exercises). */
int tm_pack_trailer_parse(const void *plain, size_t n, uint64_t blob_area_len,
                          struct tm_pack_entry **ret, size_t *ret_n);

/**
 * tm_pack_writer - accumulates sealed blobs of one type in memory and
 * produces the finished pack file. Not thread-safe: one owner.
 */
typedef struct tm_pack_writer tm_pack_writer;
int tm_pack_writer_new(const tm_key *key, enum tm_blob_type type, tm_pack_writer **ret);
void tm_pack_writer_free(tm_pack_writer *w);
/* Append one sealed blob described by e (its offset is assigned here). */
int tm_pack_writer_add(tm_pack_writer *w, const struct tm_pack_entry *e, const void *sealed,
                       size_t n);
size_t tm_pack_writer_size(const tm_pack_writer *w);
size_t tm_pack_writer_count(const tm_pack_writer *w);
/**
 * tm_pack_writer_finish() - append the trailer; hand over the file bytes
 * (ret_file, moved), its id (SHA-256) and the entries (malloc'd, caller
 * frees). The writer is empty afterwards and can be reused.
 */
int tm_pack_writer_finish(tm_pack_writer *w, tm_buf *ret_file, tm_id *ret_id,
                          struct tm_pack_entry **ret_entries, size_t *ret_n);
