/*
 * pack: sealing and opening blobs, the pack trailer and tail, and the
 * in-memory pack writer. The byte layouts are specified in pack.h and
 * docs/format.md; every decoder here is strict (one byte form per value) and
 * never allocates more than its input can justify.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/compress.h>
#include <tidemark/core.h>
#include <tidemark/crypto.h>
#include <tidemark/pack.h>

#include "pack/pack_internal.h"

#define BLOB_AAD_PREFIX     "tmblob"
#define BLOB_AAD_PREFIX_LEN 6
#define BLOB_AAD_LEN        (BLOB_AAD_PREFIX_LEN + 1 + TM_ID_LEN)
#define TRAILER_AAD         "tmpack-trailer"
#define TRAILER_MAGIC       "TMPT"
#define TRAILER_VERSION     1

/* AAD of a blob binds it to its type and id: a tree blob cannot be served as
 * data, nor one blob as another. */
static void blob_aad(uint8_t aad[BLOB_AAD_LEN], uint8_t type, const tm_id *id)
{
        memcpy(aad, BLOB_AAD_PREFIX, BLOB_AAD_PREFIX_LEN);
        aad[BLOB_AAD_PREFIX_LEN] = type;
        memcpy(aad + BLOB_AAD_PREFIX_LEN + 1, id->b, TM_ID_LEN);
}

int tm_pack__read_varint(tm_reader *r, uint64_t *ret)
{
        size_t start = r->off;
        uint64_t v;
        int rc = tm_reader_varint(r, &v);

        if (rc < 0)
                return rc;
        /* A last group of zero after other groups is a padded encoding. */
        if (r->off - start > 1 && r->p[r->off - 1] == 0)
                return -EBADMSG;
        *ret = v;
        return 0;
}

int tm_pack__entry_put(tm_buf *b, const struct tm_pack_entry *e)
{
        int r;

        r = tm_put_u8(b, e->type);
        if (r >= 0)
                r = tm_put_u8(b, e->flags);
        if (r >= 0)
                r = tm_buf_append(b, e->id.b, TM_ID_LEN);
        if (r >= 0)
                r = tm_put_varint(b, e->offset);
        if (r >= 0)
                r = tm_put_varint(b, e->length);
        if (r >= 0)
                r = tm_put_varint(b, e->raw_length);
        return r;
}

/* Field checks that do not depend on where the entry sits. */
static int entry_valid(const struct tm_pack_entry *e)
{
        if (e->type != TM_BLOB_DATA && e->type != TM_BLOB_TREE)
                return 0;
        if (e->flags & ~TM_PACK_FLAG_ZSTD)
                return 0;
        if (e->length < TM_CRYPTO_OVERHEAD || e->raw_length > TM_BLOB_MAX)
                return 0;
        /* A raw blob is exactly its plaintext plus the GCM overhead; a
         * compressed one is only stored when it is smaller than the plaintext. */
        if (!(e->flags & TM_PACK_FLAG_ZSTD) && e->length - TM_CRYPTO_OVERHEAD != e->raw_length)
                return 0;
        if ((e->flags & TM_PACK_FLAG_ZSTD) && e->length - TM_CRYPTO_OVERHEAD >= e->raw_length)
                return 0;
        return 1;
}

int tm_pack__entry_get(tm_reader *r, struct tm_pack_entry *ret)
{
        struct tm_pack_entry e = { 0 };
        const uint8_t *id;
        uint64_t off, len, raw;
        int rc;

        rc = tm_reader_u8(r, &e.type);
        if (rc >= 0)
                rc = tm_reader_u8(r, &e.flags);
        if (rc >= 0)
                rc = tm_reader_bytes(r, TM_ID_LEN, &id);
        if (rc >= 0)
                rc = tm_pack__read_varint(r, &off);
        if (rc >= 0)
                rc = tm_pack__read_varint(r, &len);
        if (rc >= 0)
                rc = tm_pack__read_varint(r, &raw);
        if (rc < 0)
                return -EBADMSG;
        if (len > UINT32_MAX || raw > UINT32_MAX)
                return -EBADMSG;
        memcpy(e.id.b, id, TM_ID_LEN);
        e.offset = off;
        e.length = (uint32_t)len;
        e.raw_length = (uint32_t)raw;
        if (!entry_valid(&e))
                return -EBADMSG;
        *ret = e;
        return 0;
}

int tm_pack__entry_place(const struct tm_pack_entry *e, uint64_t area_len, uint64_t *prev_end)
{
        if (e->offset < *prev_end)
                return -EBADMSG; /* out of order or overlapping */
        if (e->offset > area_len || e->length > area_len - e->offset)
                return -EBADMSG; /* outside the blob area */
        *prev_end = e->offset + e->length;
        return 0;
}

int tm_pack__trailer_format(const struct tm_pack_entry *entries, size_t n, tm_buf *out)
{
        size_t start = out->len;
        int r;

        r = tm_buf_append(out, TRAILER_MAGIC, 4);
        if (r >= 0)
                r = tm_put_u8(out, TRAILER_VERSION);
        if (r >= 0)
                r = tm_put_varint(out, n);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = tm_pack__entry_put(out, &entries[i]);
        if (r < 0)
                out->len = start;
        return r;
}

int tm_blob_seal(const tm_key *key, enum tm_blob_type type, const tm_id *id, const void *plain,
                 size_t n, int level, tm_buf *out, struct tm_pack_entry *ret)
{
        tm_buf zst = TM_BUF_INIT(0);
        uint8_t aad[BLOB_AAD_LEN];
        const void *payload = plain;
        size_t payload_len = n, start = out->len;
        int compressed = 0, r;

        if (n > TM_BLOB_MAX || (type != TM_BLOB_DATA && type != TM_BLOB_TREE))
                return -EINVAL;
        if (level > 0 && n > 0) {
                r = tm_compress(level, plain, n, &zst, &compressed);
                if (r < 0)
                        goto out;
                /* Only a strictly smaller frame is worth the decompression. */
                if (compressed && zst.len < n) {
                        payload = zst.data;
                        payload_len = zst.len;
                }
        }
        blob_aad(aad, (uint8_t)type, id);
        r = tm_crypto_seal(key->enc, aad, sizeof(aad), payload, payload_len, out);
        if (r < 0) {
                out->len = start;
                goto out;
        }
        *ret = (struct tm_pack_entry){
                .id = *id,
                .type = (uint8_t)type,
                .flags = payload != plain ? TM_PACK_FLAG_ZSTD : 0,
                .offset = 0,
                .length = (uint32_t)(out->len - start),
                .raw_length = (uint32_t)n,
        };
out:
        tm_buf_dispose(&zst);
        return r;
}

int tm_blob_open(const tm_key *key, const struct tm_pack_entry *e, const void *sealed, size_t n,
                 tm_buf *out)
{
        tm_buf dec = TM_BUF_INIT(TM_BLOB_MAX), plain = TM_BUF_INIT(TM_BLOB_MAX);
        uint8_t aad[BLOB_AAD_LEN];
        tm_id got;
        int r;

        tm_buf_clear(out);
        if (n != e->length || !entry_valid(e))
                return -EBADMSG;
        if (out->limit && e->raw_length > out->limit)
                return -E2BIG;
        blob_aad(aad, e->type, &e->id);
        r = tm_crypto_open(key->enc, aad, sizeof(aad), sealed, n, &dec);
        if (r < 0)
                goto out;
        if (e->flags & TM_PACK_FLAG_ZSTD) {
                r = tm_decompress(dec.data, dec.len, e->raw_length, &plain);
                if (r < 0)
                        goto out;
        } else {
                tm_buf_move(&plain, &dec);
        }
        if (plain.len != e->raw_length) {
                r = -EBADMSG;
                goto out;
        }
        tm_crypto_blob_id(key, plain.data, plain.len, &got);
        if (tm_id_cmp(&got, &e->id) != 0) {
                r = -EBADMSG;
                goto out;
        }
        tm_buf_move(out, &plain);
        r = 0;
out:
        /* Translate library limits on hostile input to an integrity failure. */
        if (r == -E2BIG)
                r = -EBADMSG;
        tm_buf_dispose(&plain);
        tm_buf_dispose(&dec);
        return r;
}

int tm_pack_trailer_encode(const tm_key *key, const struct tm_pack_entry *entries, size_t n,
                           tm_buf *out)
{
        tm_buf plain = TM_BUF_INIT(TM_PACK_TRAILER_MAX);
        size_t start = out->len, sealed_len;
        uint8_t tail[TM_PACK_TAIL_LEN];
        int r;

        for (size_t i = 0; i < n; i++)
                if (!entry_valid(&entries[i]))
                        return -EINVAL;
        r = tm_pack__trailer_format(entries, n, &plain);
        if (r < 0)
                goto out;
        if (plain.len + TM_CRYPTO_OVERHEAD > TM_PACK_TRAILER_MAX) {
                r = -E2BIG;
                goto out;
        }
        r = tm_crypto_seal(key->enc, TRAILER_AAD, strlen(TRAILER_AAD), plain.data, plain.len, out);
        if (r < 0)
                goto out;
        sealed_len = out->len - start;
        tm_set_u32le(tail, (uint32_t)sealed_len);
        memcpy(tail + 4, TM_PACK_MAGIC, 4);
        r = tm_buf_append(out, tail, sizeof(tail));
out:
        if (r < 0)
                out->len = start;
        tm_buf_dispose(&plain);
        return r;
}

int tm_pack_tail_parse(const uint8_t tail[TM_PACK_TAIL_LEN], uint32_t *ret_trailer_len)
{
        uint32_t len = tm_get_u32le(tail);

        if (memcmp(tail + 4, TM_PACK_MAGIC, 4) != 0)
                return -EBADMSG;
        /* The smallest trailer is an empty entry list: magic, version, count. */
        if (len > TM_PACK_TRAILER_MAX || len < TM_CRYPTO_OVERHEAD + 6)
                return -EBADMSG;
        *ret_trailer_len = len;
        return 0;
}

int tm_pack_trailer_decode(const tm_key *key, const void *sealed, size_t n, uint64_t pack_size,
                           struct tm_pack_entry **ret, size_t *ret_n)
{
        tm_buf plain = TM_BUF_INIT(TM_PACK_TRAILER_MAX);
        int r;

        if (n > TM_PACK_TRAILER_MAX || pack_size < TM_PACK_TAIL_LEN ||
            n > pack_size - TM_PACK_TAIL_LEN)
                return -EBADMSG;
        r = tm_crypto_open(key->enc, TRAILER_AAD, strlen(TRAILER_AAD), sealed, n, &plain);
        if (r == -E2BIG)
                r = -EBADMSG;
        if (r < 0)
                goto out;
        r = tm_pack_trailer_parse(plain.data, plain.len, pack_size - TM_PACK_TAIL_LEN - n, ret,
                                  ret_n);
out:
        tm_buf_dispose(&plain);
        return r;
}

int tm_pack_trailer_parse(const void *plain, size_t n, uint64_t blob_area_len,
                          struct tm_pack_entry **ret, size_t *ret_n)
{
        struct tm_pack_entry *entries = NULL;
        const uint8_t *magic;
        uint64_t count, prev_end = 0;
        uint8_t version;
        tm_reader rd;
        int r;

        tm_reader_init(&rd, plain, n);
        r = tm_reader_bytes(&rd, 4, &magic);
        if (r >= 0)
                r = tm_reader_u8(&rd, &version);
        if (r >= 0)
                r = tm_pack__read_varint(&rd, &count);
        if (r < 0)
                goto out;
        if (memcmp(magic, TRAILER_MAGIC, 4) != 0 || version != TRAILER_VERSION) {
                r = -EBADMSG;
                goto out;
        }
        /* Never trust the count: the bytes left and the blob area must both be
         * able to hold that many entries before anything is allocated. */
        if (count > tm_reader_left(&rd) / TM_PACK__ENTRY_MIN_LEN ||
            count > blob_area_len / TM_CRYPTO_OVERHEAD) {
                r = -EBADMSG;
                goto out;
        }
        entries = calloc(count ? count : 1, sizeof(*entries));
        if (!entries) {
                r = -ENOMEM;
                goto out;
        }
        for (uint64_t i = 0; i < count; i++) {
                r = tm_pack__entry_get(&rd, &entries[i]);
                if (r < 0)
                        goto out;
                r = tm_pack__entry_place(&entries[i], blob_area_len, &prev_end);
                if (r < 0)
                        goto out;
                /* data and tree blobs never share a pack */
                if (entries[i].type != entries[0].type) {
                        r = -EBADMSG;
                        goto out;
                }
        }
        if (tm_reader_left(&rd) != 0) {
                r = -EBADMSG;
                goto out;
        }
        *ret = entries;
        *ret_n = (size_t)count;
        entries = NULL;
        r = 0;
out:
        free(entries);
        return r;
}

struct tm_pack_writer {
        tm_key key;
        uint8_t type;
        tm_buf data; /* the blob area so far */
        struct tm_pack_entry *entries;
        size_t n;
        size_t cap;
};

int tm_pack_writer_new(const tm_key *key, enum tm_blob_type type, tm_pack_writer **ret)
{
        tm_pack_writer *w;

        if (type != TM_BLOB_DATA && type != TM_BLOB_TREE)
                return -EINVAL;
        w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->key = *key;
        w->type = (uint8_t)type;
        w->data = TM_BUF_INIT(0);
        *ret = w;
        return 0;
}

void tm_pack_writer_free(tm_pack_writer *w)
{
        if (!w)
                return;
        tm_key_wipe(&w->key);
        tm_buf_dispose(&w->data);
        free(w->entries);
        free(w);
}

int tm_pack_writer_add(tm_pack_writer *w, const struct tm_pack_entry *e, const void *sealed,
                       size_t n)
{
        struct tm_pack_entry copy;
        int r;

        if (e->type != w->type || n != e->length || !entry_valid(e))
                return -EINVAL;
        if (w->n == w->cap) {
                size_t ncap = w->cap ? w->cap * 2 : 64;
                struct tm_pack_entry *p = reallocarray(w->entries, ncap, sizeof(*p));

                if (!p)
                        return -ENOMEM;
                w->entries = p;
                w->cap = ncap;
        }
        copy = *e;
        copy.offset = w->data.len;
        r = tm_buf_append(&w->data, sealed, n);
        if (r < 0)
                return r;
        w->entries[w->n++] = copy;
        return 0;
}

size_t tm_pack_writer_size(const tm_pack_writer *w)
{
        return w->data.len;
}

size_t tm_pack_writer_count(const tm_pack_writer *w)
{
        return w->n;
}

int tm_pack_writer_finish(tm_pack_writer *w, tm_buf *ret_file, tm_id *ret_id,
                          struct tm_pack_entry **ret_entries, size_t *ret_n)
{
        size_t blob_len = w->data.len;
        int r;

        r = tm_pack_trailer_encode(&w->key, w->entries, w->n, &w->data);
        if (r < 0) {
                w->data.len = blob_len;
                return r;
        }
        tm_crypto_sha256(w->data.data, w->data.len, ret_id);
        tm_buf_move(ret_file, &w->data);
        *ret_entries = w->entries;
        *ret_n = w->n;
        w->entries = NULL;
        w->n = w->cap = 0;
        return 0;
}
