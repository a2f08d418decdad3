/* Fuzz the pack format past the trailer (fuzz_pack_trailer covers the
 * trailer's plaintext): what `check --read-data`, restore and the FUSE mount
 * do with a pack file read from a backend that may be corrupt or hostile.
 * Everything is under one fixed test key. AES-GCM authenticates before any
 * parsing, so random bytes never pass it; modes 1 and 2 therefore seal the
 * fuzzer's bytes themselves, as an attacker holding the key (or a bug in our
 * own writer) could, to reach the code behind the authentication. The first
 * byte picks the mode:
 *   0: the rest is a whole pack file: tail, sealed trailer, then every blob
 *      the trailer lists is opened;
 *   1: the rest is a trailer plaintext, sealed and given a tail here, then
 *      decoded as a pack of an 8-byte-per-entry blob area;
 *   2: the rest is [type][flags][raw_length u32le][payload]: the payload is
 *      sealed as one blob (zstd frame or raw bytes) and opened; the blob id is
 *      the HMAC of the payload, so raw blobs can succeed and compressed ones
 *      exercise the decompressor and its limits;
 *   3: the rest is cut into blobs (lengths from its bytes) written by the pack
 *      writer; the finished file must read back to the same blobs.
 * Invariants: an opened blob has exactly raw_length bytes whose HMAC is its
 * id; accepted entries lie inside the blob area. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/crypto.h>
#include <tidemark/pack.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* docs/format.md: the AADs a trailer and a blob are sealed with */
#define TRAILER_AAD "tmpack-trailer"

static tm_key key;

static void init_key(void)
{
        /* the same fixed key as tests/unit/test_pack.c, so seeds can be made there */
        for (size_t i = 0; i < TM_KEY_LEN; i++) {
                key.enc[i] = (uint8_t)(i * 7 + 1);
                key.mac[i] = (uint8_t)(i * 13 + 5);
        }
}

static void open_checked(const struct tm_pack_entry *e, const uint8_t *sealed, size_t n,
                         const uint8_t *want, size_t want_n)
{
        tm_buf out = TM_BUF_INIT(TM_BLOB_MAX);
        tm_id id;

        if (tm_blob_open(&key, e, sealed, n, &out) == 0) {
                TM_ASSERT(out.len == e->raw_length);
                tm_crypto_blob_id(&key, out.data, out.len, &id);
                TM_ASSERT(tm_id_cmp(&id, &e->id) == 0);
                if (want)
                        TM_ASSERT(out.len == want_n && memcmp(out.data, want, want_n) == 0);
        } else {
                TM_ASSERT(out.len == 0);
                TM_ASSERT(!want);
        }
        tm_buf_dispose(&out);
}

static void read_pack(const uint8_t *p, size_t n)
{
        struct tm_pack_entry *e = NULL;
        size_t count = 0;
        uint32_t tlen;

        if (n < TM_PACK_TAIL_LEN || tm_pack_tail_parse(p + n - TM_PACK_TAIL_LEN, &tlen) < 0 ||
            tlen > n - TM_PACK_TAIL_LEN)
                return;
        if (tm_pack_trailer_decode(&key, p + n - TM_PACK_TAIL_LEN - tlen, tlen, n, &e, &count) < 0)
                return;
        for (size_t i = 0; i < count; i++) {
                TM_ASSERT(e[i].offset + e[i].length <= n - TM_PACK_TAIL_LEN - tlen);
                open_checked(&e[i], p + e[i].offset, e[i].length, NULL, 0);
        }
        free(e);
}

static void sealed_trailer(const uint8_t *p, size_t n)
{
        tm_buf f = TM_BUF_INIT(0);
        size_t area = 8 * (n / 16 + 1), sealed_start;
        uint8_t tail[TM_PACK_TAIL_LEN];

        if (tm_buf_reserve(&f, area + n + 64) < 0)
                goto out;
        memset(f.data, 0xa5, area);
        f.len = area;
        sealed_start = f.len;
        if (tm_crypto_seal(key.enc, TRAILER_AAD, strlen(TRAILER_AAD), p, n, &f) < 0)
                goto out;
        tm_set_u32le(tail, (uint32_t)(f.len - sealed_start));
        memcpy(tail + 4, TM_PACK_MAGIC, 4);
        if (tm_buf_append(&f, tail, sizeof(tail)) < 0)
                goto out;
        read_pack(f.data, f.len);
out:
        tm_buf_dispose(&f);
}

static void sealed_blob(const uint8_t *p, size_t n)
{
        struct tm_pack_entry e;
        uint8_t aad[6 + 1 + TM_ID_LEN];
        tm_buf s = TM_BUF_INIT(0);

        if (n < 6)
                return;
        memset(&e, 0, sizeof(e));
        e.type = p[0];
        e.flags = p[1];
        e.raw_length = tm_get_u32le(p + 2);
        p += 6;
        n -= 6;
        tm_crypto_blob_id(&key, p, n, &e.id);
        memcpy(aad, "tmblob", 6);
        aad[6] = e.type;
        memcpy(aad + 7, e.id.b, TM_ID_LEN);
        if (tm_crypto_seal(key.enc, aad, sizeof(aad), p, n, &s) == 0) {
                e.length = (uint32_t)s.len;
                open_checked(&e, s.data, s.len, NULL, 0);
        }
        tm_buf_dispose(&s);
}

static void write_read(const uint8_t *p, size_t n)
{
        tm_pack_writer *w = NULL;
        struct tm_pack_entry e, *ents = NULL;
        size_t nents = 0, off = 0, k = 0;
        tm_buf sealed = TM_BUF_INIT(0), file = TM_BUF_INIT(0);
        tm_id pid;
        size_t starts[64], lens[64];

        if (n < 1 || tm_pack_writer_new(&key, (enum tm_blob_type)(p[0] & 1), &w) < 0)
                return;
        off = 1;
        while (off < n && k < 64) {
                size_t len = p[off] * 4u;

                off++;
                if (len > n - off)
                        len = n - off;
                tm_buf_clear(&sealed);
                tm_crypto_blob_id(&key, p + off, len, &e.id);
                /* level from the data: 0 never compresses, 1 when it pays */
                if (tm_blob_seal(&key, (enum tm_blob_type)(p[0] & 1), &e.id, p + off, len,
                                 (p[0] >> 1) & 1, &sealed, &e) < 0 ||
                    tm_pack_writer_add(w, &e, sealed.data, sealed.len) < 0)
                        goto out;
                starts[k] = off;
                lens[k++] = len;
                off += len;
        }
        if (tm_pack_writer_finish(w, &file, &pid, &ents, &nents) < 0)
                goto out;
        TM_ASSERT(nents == k);
        read_pack(file.data, file.len);
        for (size_t i = 0; i < nents; i++)
                open_checked(&ents[i], file.data + ents[i].offset, ents[i].length, p + starts[i],
                             lens[i]);
out:
        free(ents);
        tm_buf_dispose(&file);
        tm_buf_dispose(&sealed);
        tm_pack_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!key.enc[0])
                init_key();
        if (size < 1)
                return 0;
        switch (data[0] % 4) {
        case 0:
                read_pack(data + 1, size - 1);
                break;
        case 1:
                sealed_trailer(data + 1, size - 1);
                break;
        case 2:
                sealed_blob(data + 1, size - 1);
                break;
        default:
                write_read(data + 1, size - 1);
                break;
        }
        return 0;
}
