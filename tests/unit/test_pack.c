/* Unit tests for pack: blob sealing, trailers, tails and the pack writer.
 * TM_UPDATE_GOLDEN=1 rewrites the pack_trailer fuzz corpus. */
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
#include <tidemark/pack.h>

#include "pack/pack_internal.h"

static tm_key test_key(uint8_t salt)
{
        tm_key k;

        for (size_t i = 0; i < TM_KEY_LEN; i++) {
                k.enc[i] = (uint8_t)(i * 7 + 1 + salt);
                k.mac[i] = (uint8_t)(i * 13 + 5 + salt);
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

/* Deterministic incompressible bytes. */
static void noise(uint8_t *p, size_t n, uint32_t seed)
{
        uint32_t x = seed | 1;

        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p[i] = (uint8_t)x;
        }
}

/* Seal plain as a blob of type; returns the sealed bytes in *sealed. */
static void seal(const tm_key *k, enum tm_blob_type type, const void *plain, size_t n, int level,
                 tm_buf *sealed, struct tm_pack_entry *e)
{
        tm_id id;

        tm_crypto_blob_id(k, plain, n, &id);
        assert_int_equal(tm_blob_seal(k, type, &id, plain, n, level, sealed, e), 0);
        assert_memory_equal(e->id.b, id.b, TM_ID_LEN);
        assert_int_equal(e->type, type);
        assert_int_equal(e->offset, 0);
        assert_int_equal(e->raw_length, n);
        assert_int_equal(e->length, sealed->len);
}

static void test_blob_roundtrip(void **state)
{
        tm_key k = test_key(0);
        uint8_t text[4096], rnd[1000];
        tm_buf sealed = TM_BUF_INIT(0), out = TM_BUF_INIT(0);
        struct tm_pack_entry e;

        (void)state;
        for (size_t i = 0; i < sizeof(text); i++)
                text[i] = (uint8_t)("tidemark "[i % 9]);
        noise(rnd, sizeof(rnd), 42);

        /* compressible, level 3: zstd flag and a smaller sealed blob */
        seal(&k, TM_BLOB_DATA, text, sizeof(text), 3, &sealed, &e);
        assert_int_equal(e.flags, TM_PACK_FLAG_ZSTD);
        assert_true(e.length < sizeof(text));
        assert_int_equal(tm_blob_open(&k, &e, sealed.data, sealed.len, &out), 0);
        assert_int_equal(out.len, sizeof(text));
        assert_memory_equal(out.data, text, sizeof(text));

        /* level 0 never compresses */
        tm_buf_clear(&sealed);
        seal(&k, TM_BLOB_TREE, text, sizeof(text), 0, &sealed, &e);
        assert_int_equal(e.flags, 0);
        assert_int_equal(e.length, sizeof(text) + TM_CRYPTO_OVERHEAD);
        assert_int_equal(tm_blob_open(&k, &e, sealed.data, sealed.len, &out), 0);
        assert_memory_equal(out.data, text, sizeof(text));

        /* incompressible: stored raw */
        tm_buf_clear(&sealed);
        seal(&k, TM_BLOB_DATA, rnd, sizeof(rnd), 3, &sealed, &e);
        assert_int_equal(e.flags, 0);
        assert_int_equal(e.length, sizeof(rnd) + TM_CRYPTO_OVERHEAD);
        assert_int_equal(tm_blob_open(&k, &e, sealed.data, sealed.len, &out), 0);
        assert_int_equal(out.len, sizeof(rnd));
        assert_memory_equal(out.data, rnd, sizeof(rnd));

        /* empty blob */
        tm_buf_clear(&sealed);
        seal(&k, TM_BLOB_DATA, "", 0, 3, &sealed, &e);
        assert_int_equal(e.length, TM_CRYPTO_OVERHEAD);
        assert_int_equal(tm_blob_open(&k, &e, sealed.data, sealed.len, &out), 0);
        assert_int_equal(out.len, 0);

        /* appends after what out already holds */
        tm_buf_clear(&sealed);
        assert_int_equal(tm_buf_append(&sealed, "prefix", 6), 0);
        {
                tm_id id;

                tm_crypto_blob_id(&k, rnd, 100, &id);
                assert_int_equal(tm_blob_seal(&k, TM_BLOB_DATA, &id, rnd, 100, 3, &sealed, &e), 0);
        }
        assert_int_equal(e.length, sealed.len - 6);
        assert_int_equal(tm_blob_open(&k, &e, sealed.data + 6, e.length, &out), 0);
        assert_memory_equal(out.data, rnd, 100);

        tm_buf_dispose(&out);
        tm_buf_dispose(&sealed);
}

static void test_blob_seal_rejects(void **state)
{
        tm_key k = test_key(0);
        tm_buf sealed = TM_BUF_INIT(0);
        struct tm_pack_entry e;
        tm_id id = { { 0 } };

        (void)state;
        /* the size check comes before the input is touched */
        assert_int_equal(
                tm_blob_seal(&k, TM_BLOB_DATA, &id, "x", (size_t)TM_BLOB_MAX + 1, 3, &sealed, &e),
                -EINVAL);
        assert_int_equal(tm_blob_seal(&k, (enum tm_blob_type)2, &id, "x", 1, 3, &sealed, &e),
                         -EINVAL);
        assert_int_equal(sealed.len, 0);
        tm_buf_dispose(&sealed);
}

static void expect_open_fails(const tm_key *k, const struct tm_pack_entry *e, const void *p,
                              size_t n)
{
        tm_buf out = TM_BUF_INIT(0);

        assert_int_equal(tm_buf_append(&out, "stale", 5), 0);
        assert_int_equal(tm_blob_open(k, e, p, n, &out), -EBADMSG);
        assert_int_equal(out.len, 0);
        tm_buf_dispose(&out);
}

static void test_blob_tamper(void **state)
{
        tm_key k = test_key(0);
        uint8_t text[600];
        tm_buf sealed = TM_BUF_INIT(0);
        struct tm_pack_entry e;
        int level[] = { 3, 0 };

        (void)state;
        for (size_t i = 0; i < sizeof(text); i++)
                text[i] = (uint8_t)(i % 10);
        for (size_t l = 0; l < 2; l++) {
                tm_buf_clear(&sealed);
                seal(&k, TM_BLOB_DATA, text, sizeof(text), level[l], &sealed, &e);
                for (size_t i = 0; i < sealed.len; i++) {
                        for (int bit = 0; bit < 8; bit += 3) {
                                sealed.data[i] ^= (uint8_t)(1u << bit);
                                expect_open_fails(&k, &e, sealed.data, sealed.len);
                                sealed.data[i] ^= (uint8_t)(1u << bit);
                        }
                }
        }
        tm_buf_dispose(&sealed);
}

static void test_blob_wrong_entry(void **state)
{
        tm_key k = test_key(0), other = test_key(9);
        uint8_t text[300];
        tm_buf sealed = TM_BUF_INIT(0), out = TM_BUF_INIT(0);
        struct tm_pack_entry e, bad;

        (void)state;
        memset(text, 'a', sizeof(text));
        seal(&k, TM_BLOB_DATA, text, sizeof(text), 3, &sealed, &e);
        assert_int_equal(tm_blob_open(&k, &e, sealed.data, sealed.len, &out), 0);

        bad = e;
        bad.id.b[31] ^= 1; /* another id: the AAD no longer matches */
        expect_open_fails(&k, &bad, sealed.data, sealed.len);
        bad = e;
        bad.type = TM_BLOB_TREE; /* a data blob served as a tree */
        expect_open_fails(&k, &bad, sealed.data, sealed.len);
        bad = e;
        bad.type = 7;
        expect_open_fails(&k, &bad, sealed.data, sealed.len);
        bad = e;
        bad.raw_length--;
        expect_open_fails(&k, &bad, sealed.data, sealed.len);
        bad = e;
        bad.raw_length++;
        expect_open_fails(&k, &bad, sealed.data, sealed.len);
        bad = e;
        bad.flags = 0; /* claims raw */
        expect_open_fails(&k, &bad, sealed.data, sealed.len);
        bad = e;
        bad.flags |= 0x80;
        expect_open_fails(&k, &bad, sealed.data, sealed.len);
        expect_open_fails(&k, &e, sealed.data, sealed.len - 1); /* n != length */
        expect_open_fails(&other, &e, sealed.data, sealed.len); /* wrong key */
        /* right key for decryption, wrong id key: the HMAC check catches it */
        other = k;
        other.mac[0] ^= 1;
        expect_open_fails(&other, &e, sealed.data, sealed.len);

        tm_buf_dispose(&out);
        tm_buf_dispose(&sealed);
}

/* Entries that describe a plausible blob area, built without sealing. */
static void fake_entries(struct tm_pack_entry *e, size_t n, uint8_t type)
{
        uint64_t off = 0;

        for (size_t i = 0; i < n; i++) {
                memset(&e[i], 0, sizeof(e[i]));
                memset(e[i].id.b, (int)(0x10 + i), TM_ID_LEN);
                e[i].type = type;
                e[i].flags = (i % 2) ? TM_PACK_FLAG_ZSTD : 0;
                e[i].raw_length = (uint32_t)(1000 + 300 * i);
                e[i].length = (i % 2) ? (uint32_t)(TM_CRYPTO_OVERHEAD + 200 + i)
                                      : e[i].raw_length + TM_CRYPTO_OVERHEAD;
                e[i].offset = off;
                off += e[i].length;
        }
}

static uint64_t area_of(const struct tm_pack_entry *e, size_t n)
{
        return n ? e[n - 1].offset + e[n - 1].length : 0;
}

static int parse(const tm_buf *b, uint64_t area, size_t *ret_n)
{
        struct tm_pack_entry *got = NULL;
        size_t n = 99;
        int r = tm_pack_trailer_parse(b->data, b->len, area, &got, &n);

        if (r == 0) {
                *ret_n = n;
                free(got);
        } else {
                assert_null(got);
                assert_int_equal(n, 99);
        }
        return r;
}

static void test_trailer_roundtrip(void **state)
{
        tm_key k = test_key(0);
        struct tm_pack_entry e[5], *got = NULL;
        tm_buf file = TM_BUF_INIT(0);
        uint32_t tlen;
        size_t n = 0;
        uint64_t area;

        (void)state;
        fake_entries(e, 5, TM_BLOB_DATA);
        area = area_of(e, 5);
        /* a file whose blob area is zero bytes of the right size */
        assert_int_equal(tm_buf_reserve(&file, (size_t)area), 0);
        memset(file.data, 0, (size_t)area);
        file.len = (size_t)area;
        assert_int_equal(tm_pack_trailer_encode(&k, e, 5, &file), 0);
        assert_int_equal(tm_pack_tail_parse(file.data + file.len - TM_PACK_TAIL_LEN, &tlen), 0);
        assert_int_equal(area + tlen + TM_PACK_TAIL_LEN, file.len);
        assert_memory_equal(file.data + file.len - 4, "TMP1", 4);
        assert_int_equal(tm_pack_trailer_decode(&k, file.data + area, tlen, file.len, &got, &n), 0);
        assert_int_equal(n, 5);
        assert_entries_equal(got, e, 5);
        free(got);
        got = NULL;

        /* the pack claims one byte less: the last entry leaves the blob area */
        assert_int_equal(tm_pack_trailer_decode(&k, file.data + area, tlen, file.len - 1, &got, &n),
                         -EBADMSG);
        /* wrong key, and a pack size smaller than the trailer */
        {
                tm_key other = test_key(3);

                assert_int_equal(
                        tm_pack_trailer_decode(&other, file.data + area, tlen, file.len, &got, &n),
                        -EBADMSG);
        }
        assert_int_equal(tm_pack_trailer_decode(&k, file.data + area, tlen, 4, &got, &n), -EBADMSG);
        assert_null(got);

        /* every truncation of the sealed trailer fails */
        for (uint32_t len = 0; len < tlen; len++)
                assert_int_equal(tm_pack_trailer_decode(&k, file.data + area, len,
                                                        area + len + TM_PACK_TAIL_LEN, &got, &n),
                                 -EBADMSG);
        /* and so does every tampered byte */
        for (uint32_t i = 0; i < tlen; i++) {
                file.data[area + i] ^= 0x20;
                assert_int_equal(
                        tm_pack_trailer_decode(&k, file.data + area, tlen, file.len, &got, &n),
                        -EBADMSG);
                file.data[area + i] ^= 0x20;
        }
        tm_buf_dispose(&file);
}

static void test_trailer_empty(void **state)
{
        tm_key k = test_key(0);
        struct tm_pack_entry *got = NULL;
        tm_buf file = TM_BUF_INIT(0), plain = TM_BUF_INIT(0);
        uint32_t tlen;
        size_t n = 7;

        (void)state;
        assert_int_equal(tm_pack_trailer_encode(&k, NULL, 0, &file), 0);
        assert_int_equal(tm_pack_tail_parse(file.data + file.len - TM_PACK_TAIL_LEN, &tlen), 0);
        assert_int_equal(tlen, TM_CRYPTO_OVERHEAD + 6);
        assert_int_equal(tm_pack_trailer_decode(&k, file.data, tlen, file.len, &got, &n), 0);
        assert_int_equal(n, 0);
        free(got);
        assert_int_equal(tm_pack__trailer_format(NULL, 0, &plain), 0);
        assert_int_equal(plain.len, 6);
        assert_memory_equal(plain.data, "TMPT\x01\x00", 6);
        tm_buf_dispose(&plain);
        tm_buf_dispose(&file);
}

static void test_trailer_encode_rejects(void **state)
{
        tm_key k = test_key(0);
        struct tm_pack_entry e[2];
        tm_buf out = TM_BUF_INIT(0);

        (void)state;
        fake_entries(e, 2, TM_BLOB_DATA);
        e[1].type = 9;
        assert_int_equal(tm_pack_trailer_encode(&k, e, 2, &out), -EINVAL);
        assert_int_equal(out.len, 0);
        tm_buf_dispose(&out);
}

static void test_trailer_parse_truncated(void **state)
{
        struct tm_pack_entry e[4];
        tm_buf plain = TM_BUF_INIT(0), t = TM_BUF_INIT(0);
        size_t n = 0;
        uint64_t area;

        (void)state;
        fake_entries(e, 4, TM_BLOB_TREE);
        area = area_of(e, 4);
        assert_int_equal(tm_pack__trailer_format(e, 4, &plain), 0);
        assert_int_equal(parse(&plain, area, &n), 0);
        assert_int_equal(n, 4);
        for (size_t len = 0; len < plain.len; len++) {
                tm_buf_clear(&t);
                assert_int_equal(tm_buf_append(&t, plain.data, len), 0);
                if (parse(&t, area, &n) != -EBADMSG)
                        fail_msg("truncated trailer of %zu bytes accepted", len);
        }
        assert_int_equal(tm_buf_append(&plain, "", 1), 0); /* trailing byte */
        assert_int_equal(parse(&plain, area, &n), -EBADMSG);
        tm_buf_dispose(&t);
        tm_buf_dispose(&plain);
}

/* Format entries (after mutate) and parse them against their own area. */
static int parse_mutated(void (*mutate)(struct tm_pack_entry *e), uint64_t area_delta)
{
        struct tm_pack_entry e[3];
        tm_buf plain = TM_BUF_INIT(0);
        size_t n;
        uint64_t area;
        int r;

        fake_entries(e, 3, TM_BLOB_DATA);
        area = area_of(e, 3);
        mutate(e);
        assert_int_equal(tm_pack__trailer_format(e, 3, &plain), 0);
        r = parse(&plain, area - area_delta, &n);
        tm_buf_dispose(&plain);
        return r;
}

static void m_none(struct tm_pack_entry *e)
{
        (void)e;
}
static void m_overlap(struct tm_pack_entry *e)
{
        e[1].offset--;
}
static void m_order(struct tm_pack_entry *e)
{
        struct tm_pack_entry t = e[0];

        e[0] = e[1];
        e[1] = t;
}
static void m_gap(struct tm_pack_entry *e)
{
        e[0].offset = 0;
        e[1].offset += 5; /* a gap is allowed, as long as the area holds it */
        e[2].offset += 5;
}
static void m_type(struct tm_pack_entry *e)
{
        e[1].type = 2;
}
static void m_mixed(struct tm_pack_entry *e)
{
        e[2].type = TM_BLOB_TREE;
}
static void m_flags(struct tm_pack_entry *e)
{
        e[0].flags = 0x02;
}
static void m_short(struct tm_pack_entry *e)
{
        e[1].length = TM_CRYPTO_OVERHEAD - 1;
}
static void m_raw_big(struct tm_pack_entry *e)
{
        e[1].raw_length = TM_BLOB_MAX + 1;
}
static void m_raw_mismatch(struct tm_pack_entry *e)
{
        e[0].raw_length++; /* a raw blob is plaintext + overhead exactly */
}
static void m_zstd_bigger(struct tm_pack_entry *e)
{
        e[1].raw_length = e[1].length - TM_CRYPTO_OVERHEAD; /* zstd that did not shrink */
}

static void test_trailer_parse_rejects(void **state)
{
        tm_buf b = TM_BUF_INIT(0);
        size_t n;

        (void)state;
        assert_int_equal(parse_mutated(m_none, 0), 0);
        assert_int_equal(parse_mutated(m_none, 1), -EBADMSG); /* outside the area */
        assert_int_equal(parse_mutated(m_overlap, 0), -EBADMSG);
        assert_int_equal(parse_mutated(m_order, 0), -EBADMSG);
        assert_int_equal(parse_mutated(m_gap, 0), -EBADMSG);
        assert_int_equal(parse_mutated(m_gap, (uint64_t)-5), 0);
        assert_int_equal(parse_mutated(m_type, 0), -EBADMSG);
        assert_int_equal(parse_mutated(m_mixed, 0), -EBADMSG);
        assert_int_equal(parse_mutated(m_flags, 0), -EBADMSG);
        assert_int_equal(parse_mutated(m_short, 0), -EBADMSG);
        assert_int_equal(parse_mutated(m_raw_big, 0), -EBADMSG);
        assert_int_equal(parse_mutated(m_raw_mismatch, 0), -EBADMSG);
        assert_int_equal(parse_mutated(m_zstd_bigger, 0), -EBADMSG);

        /* header: magic, version, a count the input cannot hold, a count the
         * blob area cannot hold, a padded varint */
        assert_int_equal(tm_buf_append(&b, "TMPX\x01\x00", 6), 0);
        assert_int_equal(parse(&b, 0, &n), -EBADMSG);
        b.data[3] = 'T';
        assert_int_equal(parse(&b, 0, &n), 0);
        b.data[4] = 2;
        assert_int_equal(parse(&b, 0, &n), -EBADMSG);
        tm_buf_clear(&b);
        assert_int_equal(tm_buf_append(&b, "TMPT\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 14), 0);
        assert_int_equal(parse(&b, UINT64_MAX, &n), -EBADMSG);
        tm_buf_clear(&b);
        assert_int_equal(tm_buf_append(&b, "TMPT\x01\x80\x00", 7), 0);
        assert_int_equal(parse(&b, 0, &n), -EBADMSG);
        {
                struct tm_pack_entry e[1];

                fake_entries(e, 1, TM_BLOB_DATA);
                tm_buf_clear(&b);
                assert_int_equal(tm_pack__trailer_format(e, 1, &b), 0);
                assert_int_equal(parse(&b, e[0].length, &n), 0);
                assert_int_equal(parse(&b, TM_CRYPTO_OVERHEAD - 1, &n), -EBADMSG);
        }
        tm_buf_dispose(&b);
}

static void test_tail(void **state)
{
        uint8_t tail[TM_PACK_TAIL_LEN];
        uint32_t len = 0;

        (void)state;
        tm_set_u32le(tail, 1234);
        memcpy(tail + 4, "TMP1", 4);
        assert_int_equal(tm_pack_tail_parse(tail, &len), 0);
        assert_int_equal(len, 1234);
        tm_set_u32le(tail, TM_PACK_TRAILER_MAX);
        assert_int_equal(tm_pack_tail_parse(tail, &len), 0);
        tm_set_u32le(tail, TM_PACK_TRAILER_MAX + 1);
        assert_int_equal(tm_pack_tail_parse(tail, &len), -EBADMSG);
        tm_set_u32le(tail, TM_CRYPTO_OVERHEAD + 5); /* smaller than any trailer */
        assert_int_equal(tm_pack_tail_parse(tail, &len), -EBADMSG);
        tm_set_u32le(tail, 1234);
        tail[7] = '2';
        assert_int_equal(tm_pack_tail_parse(tail, &len), -EBADMSG);
        assert_int_equal(len, TM_PACK_TRAILER_MAX); /* untouched on failure */
}

static void test_writer(void **state)
{
        tm_key k = test_key(0);
        tm_pack_writer *w = NULL;
        tm_buf sealed = TM_BUF_INIT(0), file = TM_BUF_INIT(0), out = TM_BUF_INIT(0);
        struct tm_pack_entry e, *entries = NULL, *got = NULL;
        uint8_t plain[7][700];
        size_t n = 0, n_got = 0, expect_size = 0;
        uint32_t tlen;
        tm_id id, sha;

        (void)state;
        assert_int_equal(tm_pack_writer_new(&k, TM_BLOB_DATA, &w), 0);
        assert_int_equal(tm_pack_writer_count(w), 0);
        assert_int_equal(tm_pack_writer_size(w), 0);
        for (int i = 0; i < 7; i++) {
                if (i % 2)
                        noise(plain[i], sizeof(plain[i]), (uint32_t)i + 1);
                else
                        memset(plain[i], 'a' + i, sizeof(plain[i]));
                tm_buf_clear(&sealed);
                seal(&k, TM_BLOB_DATA, plain[i], sizeof(plain[i]), 3, &sealed, &e);
                e.offset = 999; /* ignored: the writer assigns offsets */
                assert_int_equal(tm_pack_writer_add(w, &e, sealed.data, sealed.len), 0);
                expect_size += sealed.len;
                assert_int_equal(tm_pack_writer_size(w), expect_size);
                assert_int_equal(tm_pack_writer_count(w), (size_t)i + 1);
        }
        /* a tree blob in a data pack, and a length that does not match */
        tm_buf_clear(&sealed);
        seal(&k, TM_BLOB_TREE, "t", 1, 3, &sealed, &e);
        assert_int_equal(tm_pack_writer_add(w, &e, sealed.data, sealed.len), -EINVAL);
        e.type = TM_BLOB_DATA;
        assert_int_equal(tm_pack_writer_add(w, &e, sealed.data, sealed.len - 1), -EINVAL);
        assert_int_equal(tm_pack_writer_count(w), 7);

        assert_int_equal(tm_pack_writer_finish(w, &file, &id, &entries, &n), 0);
        assert_int_equal(n, 7);
        assert_int_equal(tm_pack_writer_count(w), 0);
        assert_int_equal(tm_pack_writer_size(w), 0);
        tm_crypto_sha256(file.data, file.len, &sha);
        assert_memory_equal(sha.b, id.b, TM_ID_LEN);

        /* read it back the way a reader does: tail, trailer, blobs */
        assert_int_equal(tm_pack_tail_parse(file.data + file.len - TM_PACK_TAIL_LEN, &tlen), 0);
        assert_int_equal(tm_pack_trailer_decode(&k, file.data + file.len - TM_PACK_TAIL_LEN - tlen,
                                                tlen, file.len, &got, &n_got),
                         0);
        assert_int_equal(n_got, 7);
        assert_entries_equal(got, entries, 7);
        assert_int_equal(got[0].offset, 0);
        for (int i = 0; i < 7; i++) {
                if (i)
                        assert_int_equal(got[i].offset, got[i - 1].offset + got[i - 1].length);
                assert_int_equal(
                        tm_blob_open(&k, &got[i], file.data + got[i].offset, got[i].length, &out),
                        0);
                assert_int_equal(out.len, sizeof(plain[i]));
                assert_memory_equal(out.data, plain[i], sizeof(plain[i]));
        }
        free(got);
        free(entries);

        /* the writer is reusable, and an empty pack is well-formed */
        assert_int_equal(tm_pack_writer_finish(w, &file, &id, &entries, &n), 0);
        assert_int_equal(n, 0);
        free(entries);
        assert_int_equal(tm_pack_tail_parse(file.data + file.len - TM_PACK_TAIL_LEN, &tlen), 0);
        assert_int_equal(tlen + TM_PACK_TAIL_LEN, file.len);

        tm_pack_writer_free(w);
        tm_pack_writer_free(NULL);
        assert_int_equal(tm_pack_writer_new(&k, (enum tm_blob_type)5, &w), -EINVAL);
        tm_buf_dispose(&out);
        tm_buf_dispose(&file);
        tm_buf_dispose(&sealed);
}

/* With TM_UPDATE_GOLDEN=1, write the pack_trailer fuzz corpus: an 8-byte
 * blob area length followed by a trailer plaintext. */
static void test_corpus(void **state)
{
        const char *v = getenv("TM_UPDATE_GOLDEN");
        char path[4096];
        struct tm_pack_entry e[3];
        tm_buf b = TM_BUF_INIT(0);
        uint8_t area[8];
        static const uint8_t garbage[] = "TMPT\x01\x05\x00\x00garbage";
        static const uint8_t tail[] = "\x40\x00\x00\x00TMP1";

        (void)state;
        if (!v || strcmp(v, "1") != 0)
                skip();
        for (size_t n = 0; n <= 3; n += 3) {
                fake_entries(e, n, TM_BLOB_DATA);
                tm_set_u64le(area, area_of(e, n));
                tm_buf_clear(&b);
                assert_int_equal(tm_buf_append(&b, area, 8), 0);
                assert_int_equal(tm_pack__trailer_format(e, n, &b), 0);
                snprintf(path, sizeof(path), "%s/../fuzz/corpus/pack_trailer/valid-%zu.bin",
                         data_dir(), n);
                write_file(path, b.data, b.len);
        }
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/pack_trailer/garbage.bin", data_dir());
        write_file(path, garbage, sizeof(garbage) - 1);
        snprintf(path, sizeof(path), "%s/../fuzz/corpus/pack_trailer/tail.bin", data_dir());
        write_file(path, tail, sizeof(tail) - 1);
        tm_buf_dispose(&b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_blob_roundtrip),
                cmocka_unit_test(test_blob_seal_rejects),
                cmocka_unit_test(test_blob_tamper),
                cmocka_unit_test(test_blob_wrong_entry),
                cmocka_unit_test(test_trailer_roundtrip),
                cmocka_unit_test(test_trailer_empty),
                cmocka_unit_test(test_trailer_encode_rejects),
                cmocka_unit_test(test_trailer_parse_truncated),
                cmocka_unit_test(test_trailer_parse_rejects),
                cmocka_unit_test(test_tail),
                cmocka_unit_test(test_writer),
                cmocka_unit_test(test_corpus),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
