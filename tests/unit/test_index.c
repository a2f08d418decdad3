/* Unit tests for index: building, sealing and strict parsing of index files.
 * TM_UPDATE_GOLDEN=1 rewrites the index fuzz corpus. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <tidemark/core.h>
#include <tidemark/crypto.h>
#include <tidemark/index.h>
#include <tidemark/pack.h>

#include "index/index_internal.h"

static tm_key test_key(uint8_t salt)
{
        tm_key k;

        for (size_t i = 0; i < TM_KEY_LEN; i++) {
                k.enc[i] = (uint8_t)(i * 3 + 11 + salt);
                k.mac[i] = (uint8_t)(i * 5 + 17 + salt);
        }
        return k;
}

/* Field by field: struct padding is not part of the value. */
static void assert_entries_equal(const struct tm_pack_entry *a, const struct tm_pack_entry *b,
                                 size_t n)
{
        for (size_t i = 0; i < n; i++) {
                assert_memory_equal(a[i].id.b, b[i].id.b, TM_ID_LEN);
                assert_int_equal(a[i].type, b[i].type);
                assert_int_equal(a[i].flags, b[i].flags);
                assert_int_equal(a[i].offset, b[i].offset);
                assert_int_equal(a[i].length, b[i].length);
                assert_int_equal(a[i].raw_length, b[i].raw_length);
        }
}

static const char *data_dir(void)
{
        const char *d = getenv("TM_TEST_DATA");

        return d ? d : "tests/data";
}

static void write_file(const char *path, const void *p, size_t n)
{
        FILE *f = fopen(path, "wb");

        assert_non_null(f);
        assert_int_equal(fwrite(p, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
}

/* n entries of one type laid out back to back from offset 0; returns the
 * size of a pack that holds them (blob area + a 100-byte trailer + tail). */
static uint64_t fake_entries(struct tm_pack_entry *e, size_t n, uint8_t type, uint8_t idbase)
{
        uint64_t off = 0;

        for (size_t i = 0; i < n; i++) {
                memset(&e[i], 0, sizeof(e[i]));
                memset(e[i].id.b, (int)(uint8_t)(idbase + i), TM_ID_LEN);
                e[i].id.b[0] = (uint8_t)i;
                e[i].type = type;
                e[i].flags = (i % 3 == 0) ? TM_PACK_FLAG_ZSTD : 0;
                e[i].raw_length = (uint32_t)(4096 + i);
                e[i].length = e[i].flags ? (uint32_t)(TM_CRYPTO_OVERHEAD + 1000 + i)
                                         : e[i].raw_length + TM_CRYPTO_OVERHEAD;
                e[i].offset = off;
                off += e[i].length;
        }
        return off + 100 + TM_PACK_TAIL_LEN;
}

static void build_index(struct tm_index *idx, size_t n_per_pack)
{
        struct tm_pack_entry *e = calloc(n_per_pack ? n_per_pack : 1, sizeof(*e));
        tm_id pid;
        uint64_t size;

        assert_non_null(e);
        memset(pid.b, 0xc1, TM_ID_LEN);
        size = fake_entries(e, n_per_pack, TM_BLOB_DATA, 0x20);
        assert_int_equal(tm_index_add_pack(idx, &pid, size, e, n_per_pack), 0);
        memset(e, 0xee, n_per_pack * sizeof(*e)); /* add_pack copied them */
        memset(pid.b, 0xc2, TM_ID_LEN);
        size = fake_entries(e, n_per_pack / 2, TM_BLOB_TREE, 0x70);
        assert_int_equal(tm_index_add_pack(idx, &pid, size, e, n_per_pack / 2), 0);
        memset(pid.b, 0xc3, TM_ID_LEN);
        assert_int_equal(tm_index_add_pack(idx, &pid, 200, NULL, 0), 0); /* empty pack */
        free(e);
}

static void assert_index_equal(const struct tm_index *a, const struct tm_index *b)
{
        assert_int_equal(a->n_packs, b->n_packs);
        for (size_t i = 0; i < a->n_packs; i++) {
                const struct tm_index_pack *p = &a->packs[i], *q = &b->packs[i];

                assert_memory_equal(p->pack_id.b, q->pack_id.b, TM_ID_LEN);
                assert_int_equal(p->pack_size, q->pack_size);
                assert_int_equal(p->n, q->n);
                if (p->n)
                        assert_entries_equal(p->entries, q->entries, p->n);
        }
}

/* The flag byte behind the seal: 1 = zstd, 0 = raw. */
static int sealed_flag(const tm_key *k, const tm_buf *enc)
{
        tm_buf framed = TM_BUF_INIT(0);
        int flag;

        assert_int_equal(tm_crypto_open(k->enc, "tmindex", 7, enc->data, enc->len, &framed), 0);
        assert_true(framed.len >= 1);
        flag = framed.data[0];
        tm_buf_dispose(&framed);
        return flag;
}

static void test_roundtrip(void **state)
{
        tm_key k = test_key(0);
        struct tm_index idx = TM_INDEX_INIT, got = TM_INDEX_INIT;
        tm_buf enc = TM_BUF_INIT(0);

        (void)state;
        build_index(&idx, 40);
        assert_int_equal(idx.n_packs, 3);
        assert_int_equal(idx.packs[0].n, 40);
        assert_int_equal(idx.packs[1].n, 20);
        assert_int_equal(idx.packs[0].entries[1].raw_length, 4097); /* copied, not aliased */
        assert_int_equal(tm_index_encode(&k, &idx, &enc), 0);
        assert_int_equal(sealed_flag(&k, &enc), 1); /* repetitive: compressed */
        assert_int_equal(tm_index_decode(&k, enc.data, enc.len, &got), 0);
        assert_index_equal(&idx, &got);
        tm_index_dispose(&got);
        tm_index_dispose(&got); /* safe twice */
        tm_index_dispose(NULL);
        tm_index_dispose(&idx);
        tm_buf_dispose(&enc);
}

static void test_small_raw(void **state)
{
        tm_key k = test_key(0);
        struct tm_index idx = TM_INDEX_INIT, got = TM_INDEX_INIT;
        tm_buf enc = TM_BUF_INIT(0), plain = TM_BUF_INIT(0);

        (void)state;
        /* an empty index does not compress: stored raw behind flag 0 */
        assert_int_equal(tm_index_encode(&k, &idx, &enc), 0);
        assert_int_equal(sealed_flag(&k, &enc), 0);
        assert_int_equal(enc.len, TM_CRYPTO_OVERHEAD + 1 + 6);
        assert_int_equal(tm_index_decode(&k, enc.data, enc.len, &got), 0);
        assert_int_equal(got.n_packs, 0);
        assert_int_equal(tm_index__format(&idx, &plain), 0);
        assert_int_equal(plain.len, 6);
        assert_memory_equal(plain.data, "TMIX\x01\x00", 6);
        tm_index_dispose(&got);
        tm_buf_dispose(&plain);
        tm_buf_dispose(&enc);
}

static void test_decode_rejects(void **state)
{
        tm_key k = test_key(0), other = test_key(1);
        struct tm_index idx = TM_INDEX_INIT, got = TM_INDEX_INIT;
        tm_buf enc = TM_BUF_INIT(0), framed = TM_BUF_INIT(0);

        (void)state;
        build_index(&idx, 6);
        assert_int_equal(tm_index_encode(&k, &idx, &enc), 0);
        assert_int_equal(tm_index_decode(&other, enc.data, enc.len, &got), -EBADMSG);
        for (size_t i = 0; i < enc.len; i++) {
                enc.data[i] ^= 0x04;
                assert_int_equal(tm_index_decode(&k, enc.data, enc.len, &got), -EBADMSG);
                enc.data[i] ^= 0x04;
        }
        for (size_t len = 0; len < enc.len; len++)
                assert_int_equal(tm_index_decode(&k, enc.data, len, &got), -EBADMSG);
        assert_null(got.packs);

        /* the same plaintext under another AAD, an unknown flag, no flag, and
         * a zstd flag in front of raw bytes */
        assert_int_equal(tm_index__format(&idx, &framed), 0);
        tm_buf_clear(&enc);
        assert_int_equal(tm_crypto_seal(k.enc, "tmother", 7, framed.data, framed.len, &enc), 0);
        assert_int_equal(tm_index_decode(&k, enc.data, enc.len, &got), -EBADMSG);
        {
                static const uint8_t flags[] = { 2, 1, 0 };

                for (size_t f = 0; f < sizeof(flags); f++) {
                        tm_buf b = TM_BUF_INIT(0);

                        assert_int_equal(tm_put_u8(&b, flags[f]), 0);
                        assert_int_equal(tm_buf_append(&b, framed.data, framed.len), 0);
                        tm_buf_clear(&enc);
                        assert_int_equal(tm_crypto_seal(k.enc, "tmindex", 7, b.data, b.len, &enc),
                                         0);
                        assert_int_equal(tm_index_decode(&k, enc.data, enc.len, &got),
                                         flags[f] == 0 ? 0 : -EBADMSG);
                        tm_index_dispose(&got);
                        tm_buf_dispose(&b);
                }
        }
        tm_buf_clear(&enc);
        assert_int_equal(tm_crypto_seal(k.enc, "tmindex", 7, "", 0, &enc), 0);
        assert_int_equal(tm_index_decode(&k, enc.data, enc.len, &got), -EBADMSG);

        tm_index_dispose(&idx);
        tm_buf_dispose(&framed);
        tm_buf_dispose(&enc);
}

static int parse_buf(const tm_buf *b)
{
        struct tm_index got = TM_INDEX_INIT;
        int r = tm_index_parse(b->data, b->len, &got);

        if (r < 0)
                assert_null(got.packs);
        tm_index_dispose(&got);
        return r;
}

static void test_parse_truncated(void **state)
{
        struct tm_index idx = TM_INDEX_INIT;
        tm_buf plain = TM_BUF_INIT(0), t = TM_BUF_INIT(0);

        (void)state;
        build_index(&idx, 4);
        assert_int_equal(tm_index__format(&idx, &plain), 0);
        assert_int_equal(parse_buf(&plain), 0);
        for (size_t len = 0; len < plain.len; len++) {
                tm_buf_clear(&t);
                assert_int_equal(tm_buf_append(&t, plain.data, len), 0);
                if (parse_buf(&t) != -EBADMSG)
                        fail_msg("index truncated to %zu bytes accepted", len);
        }
        assert_int_equal(tm_buf_append(&plain, "\x00", 1), 0);
        assert_int_equal(parse_buf(&plain), -EBADMSG);
        tm_index_dispose(&idx);
        tm_buf_dispose(&t);
        tm_buf_dispose(&plain);
}

/* Parse a one-pack index whose entries were mutated after layout. */
static int parse_pack_with(void (*mutate)(struct tm_pack_entry *e, uint64_t *size))
{
        struct tm_index idx = TM_INDEX_INIT;
        struct tm_pack_entry e[3];
        tm_buf plain = TM_BUF_INIT(0);
        tm_id pid;
        uint64_t size;
        int r;

        memset(pid.b, 0x99, TM_ID_LEN);
        size = fake_entries(e, 3, TM_BLOB_DATA, 1);
        mutate(e, &size);
        assert_int_equal(tm_index_add_pack(&idx, &pid, size, e, 3), 0);
        assert_int_equal(tm_index__format(&idx, &plain), 0);
        r = parse_buf(&plain);
        tm_index_dispose(&idx);
        tm_buf_dispose(&plain);
        return r;
}

static void m_none(struct tm_pack_entry *e, uint64_t *size)
{
        (void)e;
        (void)size;
}
static void m_tight(struct tm_pack_entry *e, uint64_t *size)
{
        *size = e[2].offset + e[2].length + TM_PACK_TAIL_LEN;
}
static void m_outside(struct tm_pack_entry *e, uint64_t *size)
{
        *size = e[2].offset + e[2].length + TM_PACK_TAIL_LEN - 1;
}
static void m_tiny(struct tm_pack_entry *e, uint64_t *size)
{
        (void)e;
        *size = TM_PACK_TAIL_LEN - 1;
}
static void m_overlap(struct tm_pack_entry *e, uint64_t *size)
{
        (void)size;
        e[2].offset = e[1].offset;
}
static void m_mixed(struct tm_pack_entry *e, uint64_t *size)
{
        (void)size;
        e[1].type = TM_BLOB_TREE;
}
static void m_type(struct tm_pack_entry *e, uint64_t *size)
{
        (void)size;
        e[0].type = 3;
}
static void m_flags(struct tm_pack_entry *e, uint64_t *size)
{
        (void)size;
        e[0].flags |= 0x40;
}
static void m_raw_big(struct tm_pack_entry *e, uint64_t *size)
{
        (void)size;
        e[0].raw_length = TM_BLOB_MAX + 1;
}

static void test_parse_rejects(void **state)
{
        tm_buf b = TM_BUF_INIT(0);

        (void)state;
        assert_int_equal(parse_pack_with(m_none), 0);
        assert_int_equal(parse_pack_with(m_tight), 0);
        assert_int_equal(parse_pack_with(m_outside), -EBADMSG);
        assert_int_equal(parse_pack_with(m_tiny), -EBADMSG);
        assert_int_equal(parse_pack_with(m_overlap), -EBADMSG);
        assert_int_equal(parse_pack_with(m_mixed), -EBADMSG);
        assert_int_equal(parse_pack_with(m_type), -EBADMSG);
        assert_int_equal(parse_pack_with(m_flags), -EBADMSG);
        assert_int_equal(parse_pack_with(m_raw_big), -EBADMSG);

        assert_int_equal(tm_buf_append(&b, "TMIY\x01\x00", 6), 0);
        assert_int_equal(parse_buf(&b), -EBADMSG);
        b.data[3] = 'X';
        assert_int_equal(parse_buf(&b), 0);
        b.data[4] = 0;
        assert_int_equal(parse_buf(&b), -EBADMSG);
        tm_buf_clear(&b);
        /* a huge pack count is refused before any allocation */
        assert_int_equal(tm_buf_append(&b, "TMIX\x01\xff\xff\xff\xff\x0f", 10), 0);
        assert_int_equal(parse_buf(&b), -EBADMSG);
        tm_buf_clear(&b);
        assert_int_equal(tm_buf_append(&b, "TMIX\x01\x80\x00", 7), 0); /* padded varint */
        assert_int_equal(parse_buf(&b), -EBADMSG);
        /* one pack claiming 2^32 entries in a few bytes */
        tm_buf_clear(&b);
        assert_int_equal(tm_buf_append(&b, "TMIX\x01\x01", 6), 0);
        for (int i = 0; i < TM_ID_LEN; i++)
                assert_int_equal(tm_put_u8(&b, 0x42), 0);
        assert_int_equal(tm_put_varint(&b, UINT64_C(1) << 40), 0);
        assert_int_equal(tm_put_varint(&b, UINT64_C(1) << 32), 0);
        assert_int_equal(parse_buf(&b), -EBADMSG);
        tm_buf_dispose(&b);
}

static void test_corpus(void **state)
{
        const char *v = getenv("TM_UPDATE_GOLDEN");
        struct tm_index idx = TM_INDEX_INIT;
        tm_buf plain = TM_BUF_INIT(0);
        char path[4096];
        static const uint8_t garbage[] = "TMIX\x01\x03\xff\xff\xff";

        (void)state;
        if (!v || strcmp(v, "1") != 0)
                skip();
        assert_int_equal(tm_index__format(&idx, &plain), 0);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/index/valid-empty.bin", data_dir());
        write_file(path, plain.data, plain.len);
        build_index(&idx, 4);
        tm_buf_clear(&plain);
        assert_int_equal(tm_index__format(&idx, &plain), 0);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/index/valid-3packs.bin", data_dir());
        write_file(path, plain.data, plain.len);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/index/garbage.bin", data_dir());
        write_file(path, garbage, sizeof(garbage) - 1);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/index/garbage-text.bin", data_dir());
        write_file(path, "not an index\n", 13);
        tm_index_dispose(&idx);
        tm_buf_dispose(&plain);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip),      cmocka_unit_test(test_small_raw),
                cmocka_unit_test(test_decode_rejects), cmocka_unit_test(test_parse_truncated),
                cmocka_unit_test(test_parse_rejects),  cmocka_unit_test(test_corpus),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
