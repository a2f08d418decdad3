/*
 * index: the sealed files that map blob ids to pack locations. Layout in
 * index.h and docs/format.md. An index is only a cache of pack trailers, so
 * the parser is as strict as the trailer parser: one byte form per value,
 * entries in file order inside each pack, and no allocation that the input
 * cannot justify.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/compress.h>
#include <tidemark/core.h>
#include <tidemark/crypto.h>
#include <tidemark/index.h>
#include <tidemark/pack.h>

#include "index/index_internal.h"
#include "pack/pack_internal.h"

#define INDEX_MAGIC     "TMIX"
#define INDEX_VERSION   1
#define INDEX_AAD       "tmindex"
#define INDEX_FLAG_RAW  0
#define INDEX_FLAG_ZSTD 1
/* Smallest encoded pack record: id, one-byte pack_size and n. */
#define PACK_MIN_LEN (TM_ID_LEN + 1 + 1)

int tm_index_add_pack(struct tm_index *idx, const tm_id *pack_id, uint64_t pack_size,
                      const struct tm_pack_entry *entries, size_t n)
{
        struct tm_pack_entry *copy = NULL;

        if (idx->n_packs == idx->cap) {
                size_t ncap = idx->cap ? idx->cap * 2 : 16;
                struct tm_index_pack *p = reallocarray(idx->packs, ncap, sizeof(*p));

                if (!p)
                        return -ENOMEM;
                idx->packs = p;
                idx->cap = ncap;
        }
        if (n) {
                copy = reallocarray(NULL, n, sizeof(*copy));
                if (!copy)
                        return -ENOMEM;
                memcpy(copy, entries, n * sizeof(*copy));
        }
        idx->packs[idx->n_packs++] = (struct tm_index_pack){
                .pack_id = *pack_id,
                .pack_size = pack_size,
                .n = n,
                .entries = copy,
        };
        return 0;
}

int tm_index__format(const struct tm_index *idx, tm_buf *out)
{
        size_t start = out->len;
        int r;

        r = tm_buf_append(out, INDEX_MAGIC, 4);
        if (r >= 0)
                r = tm_put_u8(out, INDEX_VERSION);
        if (r >= 0)
                r = tm_put_varint(out, idx->n_packs);
        for (size_t i = 0; r >= 0 && i < idx->n_packs; i++) {
                const struct tm_index_pack *p = &idx->packs[i];

                r = tm_buf_append(out, p->pack_id.b, TM_ID_LEN);
                if (r >= 0)
                        r = tm_put_varint(out, p->pack_size);
                if (r >= 0)
                        r = tm_put_varint(out, p->n);
                for (size_t j = 0; r >= 0 && j < p->n; j++)
                        r = tm_pack__entry_put(out, &p->entries[j]);
        }
        if (r < 0)
                out->len = start;
        return r;
}

int tm_index_encode(const tm_key *key, const struct tm_index *idx, tm_buf *out)
{
        tm_buf plain = TM_BUF_INIT(TM_INDEX_MAX), framed = TM_BUF_INIT(TM_INDEX_MAX);
        int compressed = 0, r;

        r = tm_index__format(idx, &plain);
        if (r < 0)
                goto out;
        r = tm_put_u8(&framed, INDEX_FLAG_RAW);
        if (r < 0)
                goto out;
        r = tm_compress(TM_COMPRESS_LEVEL_DEFAULT, plain.data, plain.len, &framed, &compressed);
        if (r < 0)
                goto out;
        if (compressed)
                framed.data[0] = INDEX_FLAG_ZSTD;
        if (framed.len + TM_CRYPTO_OVERHEAD > TM_INDEX_MAX) {
                r = -E2BIG;
                goto out;
        }
        r = tm_crypto_seal(key->enc, INDEX_AAD, strlen(INDEX_AAD), framed.data, framed.len, out);
out:
        tm_buf_dispose(&framed);
        tm_buf_dispose(&plain);
        return r;
}

int tm_index_decode(const tm_key *key, const void *p, size_t n, struct tm_index *ret)
{
        tm_buf framed = TM_BUF_INIT(TM_INDEX_MAX), plain = TM_BUF_INIT(TM_INDEX_MAX);
        int r;

        if (n > TM_INDEX_MAX)
                return -EBADMSG;
        r = tm_crypto_open(key->enc, INDEX_AAD, strlen(INDEX_AAD), p, n, &framed);
        if (r < 0)
                goto out;
        if (framed.len < 1) {
                r = -EBADMSG;
                goto out;
        }
        switch (framed.data[0]) {
        case INDEX_FLAG_RAW:
                r = tm_index_parse(framed.data + 1, framed.len - 1, ret);
                break;
        case INDEX_FLAG_ZSTD:
                r = tm_decompress(framed.data + 1, framed.len - 1, TM_INDEX_MAX, &plain);
                if (r >= 0)
                        r = tm_index_parse(plain.data, plain.len, ret);
                break;
        default:
                r = -EBADMSG;
        }
out:
        /* Limits hit on hostile input are integrity failures. */
        if (r == -E2BIG)
                r = -EBADMSG;
        tm_buf_dispose(&plain);
        tm_buf_dispose(&framed);
        return r;
}

/* Parse one pack record into *p (entries malloc'd). */
static int parse_pack(tm_reader *rd, struct tm_index_pack *p)
{
        struct tm_pack_entry *entries = NULL;
        const uint8_t *id;
        uint64_t size, count, prev_end = 0, area;
        int r;

        r = tm_reader_bytes(rd, TM_ID_LEN, &id);
        if (r >= 0)
                r = tm_pack__read_varint(rd, &size);
        if (r >= 0)
                r = tm_pack__read_varint(rd, &count);
        if (r < 0)
                return -EBADMSG;
        /* The trailer's length is not recorded, so the blob area is bounded by
         * the pack size less the tail; the trailer check proper is pack.c's. */
        if (size < TM_PACK_TAIL_LEN)
                return -EBADMSG;
        area = size - TM_PACK_TAIL_LEN;
        if (count > tm_reader_left(rd) / TM_PACK__ENTRY_MIN_LEN ||
            count > area / TM_CRYPTO_OVERHEAD)
                return -EBADMSG;
        if (count) {
                entries = calloc(count, sizeof(*entries));
                if (!entries)
                        return -ENOMEM;
        }
        for (uint64_t i = 0; i < count; i++) {
                r = tm_pack__entry_get(rd, &entries[i]);
                if (r >= 0)
                        r = tm_pack__entry_place(&entries[i], area, &prev_end);
                if (r >= 0 && entries[i].type != entries[0].type)
                        r = -EBADMSG; /* data and tree blobs never share a pack */
                if (r < 0) {
                        free(entries);
                        return r;
                }
        }
        memcpy(p->pack_id.b, id, TM_ID_LEN);
        p->pack_size = size;
        p->n = (size_t)count;
        p->entries = entries;
        return 0;
}

int tm_index_parse(const void *p, size_t n, struct tm_index *ret)
{
        struct tm_index idx = TM_INDEX_INIT;
        const uint8_t *magic;
        uint64_t n_packs;
        uint8_t version;
        tm_reader rd;
        int r;

        tm_reader_init(&rd, p, n);
        r = tm_reader_bytes(&rd, 4, &magic);
        if (r >= 0)
                r = tm_reader_u8(&rd, &version);
        if (r >= 0)
                r = tm_pack__read_varint(&rd, &n_packs);
        if (r < 0)
                goto out;
        if (memcmp(magic, INDEX_MAGIC, 4) != 0 || version != INDEX_VERSION ||
            n_packs > tm_reader_left(&rd) / PACK_MIN_LEN) {
                r = -EBADMSG;
                goto out;
        }
        if (n_packs) {
                idx.packs = calloc(n_packs, sizeof(*idx.packs));
                if (!idx.packs) {
                        r = -ENOMEM;
                        goto out;
                }
                idx.cap = (size_t)n_packs;
        }
        for (uint64_t i = 0; i < n_packs; i++) {
                r = parse_pack(&rd, &idx.packs[i]);
                if (r < 0)
                        goto out;
                idx.n_packs++;
        }
        if (tm_reader_left(&rd) != 0) {
                r = -EBADMSG;
                goto out;
        }
        *ret = idx;
        idx = TM_INDEX_INIT;
        r = 0;
out:
        tm_index_dispose(&idx);
        return r;
}

void tm_index_dispose(struct tm_index *idx)
{
        if (!idx)
                return;
        for (size_t i = 0; i < idx->n_packs; i++)
                free(idx->packs[i].entries);
        free(idx->packs);
        *idx = TM_INDEX_INIT;
}
