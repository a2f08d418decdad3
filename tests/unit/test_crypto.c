/* Unit tests for lib/src/crypto: published test vectors for SHA-256,
 * HMAC-SHA-256, AES-256-GCM, argon2id, scrypt and base64, plus the sealed
 * format's tamper resistance. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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
#include <tidemark/time.h>

static uint64_t rng_state;

static uint64_t rng_next(void)
{
        /* splitmix64 */
        uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}

static void rng_fill(void *p, size_t n)
{
        uint8_t *q = p;

        for (size_t i = 0; i < n; i++)
                q[i] = (uint8_t)rng_next();
}

static int rng_setup(void **state)
{
        const char *s = getenv("TM_TEST_SEED");

        rng_state = s ? strtoull(s, NULL, 0) : (uint64_t)tm_time_now();
        printf("test_crypto: TM_TEST_SEED=%" PRIu64 "\n", rng_state);
        return 0;
}

static void assert_hex(const uint8_t *p, size_t n, const char *want)
{
        char hex[2 * 64 + 1];

        assert_true(n <= 64);
        tm_hex_encode(p, n, hex);
        assert_string_equal(hex, want);
}

static void test_sha256_vectors(void **state)
{
        tm_id id;

        /* FIPS 180-2 appendix B.1 and the empty message. */
        tm_crypto_sha256("abc", 3, &id);
        assert_hex(id.b, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        tm_crypto_sha256("", 0, &id);
        assert_hex(id.b, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        /* FIPS 180-2 appendix B.2 (two blocks). */
        tm_crypto_sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, &id);
        assert_hex(id.b, 32, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_hmac_vectors(void **state)
{
        uint8_t key[131], out[32];

        /* RFC 4231 test case 1. */
        memset(key, 0x0b, 20);
        tm_crypto_hmac(key, 20, "Hi There", 8, out);
        assert_hex(out, 32, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        /* RFC 4231 test case 2. */
        tm_crypto_hmac((const uint8_t *)"Jefe", 4, "what do ya want for nothing?", 28, out);
        assert_hex(out, 32, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        /* RFC 4231 test case 6: a key longer than the block size. */
        memset(key, 0xaa, sizeof(key));
        tm_crypto_hmac(key, sizeof(key), "Test Using Larger Than Block-Size Key - Hash Key First",
                       54, out);
        assert_hex(out, 32, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void test_blob_id(void **state)
{
        tm_key k;
        tm_id a, b, c;
        uint8_t want[32];

        rng_fill(&k, sizeof(k));
        tm_crypto_blob_id(&k, "hello", 5, &a);
        tm_crypto_blob_id(&k, "hello", 5, &b);
        assert_memory_equal(a.b, b.b, 32);
        /* It is HMAC-SHA-256 under the mac half of the key, not the enc half. */
        tm_crypto_hmac(k.mac, TM_KEY_LEN, "hello", 5, want);
        assert_memory_equal(a.b, want, 32);
        tm_crypto_blob_id(&k, "hellp", 5, &c);
        assert_memory_not_equal(a.b, c.b, 32);
        k.mac[0] ^= 1;
        tm_crypto_blob_id(&k, "hello", 5, &c);
        assert_memory_not_equal(a.b, c.b, 32);
}

static void test_key_wipe(void **state)
{
        tm_key k, zero;

        memset(&k, 0x5a, sizeof(k));
        memset(&zero, 0, sizeof(zero));
        tm_key_wipe(&k);
        assert_memory_equal(&k, &zero, sizeof(k));
        tm_key_wipe(NULL);
}

static void test_random(void **state)
{
        uint8_t a[64], b[64], zero[64] = { 0 };

        assert_int_equal(tm_crypto_random(a, sizeof(a)), 0);
        assert_int_equal(tm_crypto_random(b, sizeof(b)), 0);
        assert_memory_not_equal(a, b, sizeof(a));
        assert_memory_not_equal(a, zero, sizeof(a));
        assert_int_equal(tm_crypto_random(a, 0), 0);
}

static void test_seal_roundtrip(void **state)
{
        static const size_t sizes[] = { 0, 1, 15, 16, 17, 1000, 1 << 20 };
        uint8_t key[TM_KEY_LEN];
        uint8_t *plain = malloc(1 << 20);

        assert_non_null(plain);
        rng_fill(key, sizeof(key));
        rng_fill(plain, 1 << 20);
        for (size_t i = 0; i < TM_ARRAY_SIZE(sizes); i++) {
                size_t n = sizes[i];
                tm_buf sealed = TM_BUF_INIT(0), open = TM_BUF_INIT(0);

                /* Existing content is kept: both functions append. */
                assert_int_equal(tm_buf_append(&sealed, "hdr", 3), 0);
                assert_int_equal(tm_crypto_seal(key, "aad", 3, plain, n, &sealed), 0);
                assert_int_equal(sealed.len, 3 + n + TM_CRYPTO_OVERHEAD);
                assert_memory_equal(sealed.data, "hdr", 3);
                if (n >= 16)
                        assert_memory_not_equal(sealed.data + 3 + TM_CRYPTO_NONCE_LEN, plain, 16);
                assert_int_equal(tm_buf_append(&open, "x", 1), 0);
                assert_int_equal(
                        tm_crypto_open(key, "aad", 3, sealed.data + 3, sealed.len - 3, &open), 0);
                assert_int_equal(open.len, 1 + n);
                assert_int_equal(open.data[0], 'x');
                if (n)
                        assert_memory_equal(open.data + 1, plain, n);
                tm_buf_dispose(&sealed);
                tm_buf_dispose(&open);
        }
        free(plain);
}

static void test_seal_fresh_nonce(void **state)
{
        uint8_t key[TM_KEY_LEN] = { 1 };
        tm_buf a = TM_BUF_INIT(0), b = TM_BUF_INIT(0);

        assert_int_equal(tm_crypto_seal(key, NULL, 0, "same", 4, &a), 0);
        assert_int_equal(tm_crypto_seal(key, NULL, 0, "same", 4, &b), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_not_equal(a.data, b.data, TM_CRYPTO_NONCE_LEN);
        assert_memory_not_equal(a.data, b.data, a.len);
        tm_buf_dispose(&a);
        tm_buf_dispose(&b);
}

static void test_open_tampered(void **state)
{
        uint8_t key[TM_KEY_LEN], plain[40];
        tm_buf sealed = TM_BUF_INIT(0), out = TM_BUF_INIT(0);

        rng_fill(key, sizeof(key));
        rng_fill(plain, sizeof(plain));
        assert_int_equal(tm_crypto_seal(key, "tree", 4, plain, sizeof(plain), &sealed), 0);
        assert_int_equal(tm_buf_append(&out, "keep", 4), 0);
        /* Every bit of nonce, ciphertext and tag is authenticated. */
        for (size_t i = 0; i < sealed.len; i++) {
                for (int bit = 0; bit < 8; bit++) {
                        sealed.data[i] ^= (uint8_t)(1u << bit);
                        assert_int_equal(
                                tm_crypto_open(key, "tree", 4, sealed.data, sealed.len, &out),
                                -EBADMSG);
                        sealed.data[i] ^= (uint8_t)(1u << bit);
                        assert_int_equal(out.len, 4);
                }
        }
        /* Truncated or extended input. */
        for (size_t n = 0; n < sealed.len; n++)
                assert_int_equal(tm_crypto_open(key, "tree", 4, sealed.data, n, &out), -EBADMSG);
        assert_int_equal(tm_buf_append(&sealed, "", 1), 0);
        assert_int_equal(tm_crypto_open(key, "tree", 4, sealed.data, sealed.len, &out), -EBADMSG);
        sealed.len--;
        /* Wrong AAD: another role, a prefix, none at all. */
        assert_int_equal(tm_crypto_open(key, "snap", 4, sealed.data, sealed.len, &out), -EBADMSG);
        assert_int_equal(tm_crypto_open(key, "tre", 3, sealed.data, sealed.len, &out), -EBADMSG);
        assert_int_equal(tm_crypto_open(key, NULL, 0, sealed.data, sealed.len, &out), -EBADMSG);
        /* Wrong key. */
        key[31] ^= 0x80;
        assert_int_equal(tm_crypto_open(key, "tree", 4, sealed.data, sealed.len, &out), -EBADMSG);
        key[31] ^= 0x80;
        assert_int_equal(out.len, 4);
        assert_memory_equal(out.data, "keep", 4);
        /* And the untouched original still opens. */
        assert_int_equal(tm_crypto_open(key, "tree", 4, sealed.data, sealed.len, &out), 0);
        assert_int_equal(out.len, 4 + sizeof(plain));
        assert_memory_equal(out.data + 4, plain, sizeof(plain));
        tm_buf_dispose(&sealed);
        tm_buf_dispose(&out);
}

static void test_open_known_answer(void **state)
{
        /* McGrew & Viega, "The Galois/Counter Mode of Operation", test cases
         * 13 and 14 (AES-256, zero key, zero 96-bit IV), laid out as
         * nonce || ciphertext || tag: pins the sealed format. */
        uint8_t key[TM_KEY_LEN] = { 0 }, sealed[12 + 16 + 16] = { 0 }, zero[16] = { 0 };
        tm_buf out = TM_BUF_INIT(0);

        assert_int_equal(tm_hex_decode("530f8afbc74536b9a963b4f1c4cb738b", sealed + 12, 16), 0);
        assert_int_equal(tm_crypto_open(key, NULL, 0, sealed, 28, &out), 0);
        assert_int_equal(out.len, 0);
        assert_int_equal(tm_hex_decode("cea7403d4d606b6e074ec5d3baf39d18"
                                       "d0d1c8a799996bf0265b98b5d48ab919",
                                       sealed + 12, 32),
                         0);
        assert_int_equal(tm_crypto_open(key, NULL, 0, sealed, sizeof(sealed), &out), 0);
        assert_int_equal(out.len, 16);
        assert_memory_equal(out.data, zero, 16);
        tm_buf_dispose(&out);
}

static void test_seal_open_limits(void **state)
{
        uint8_t key[TM_KEY_LEN] = { 7 }, plain[100] = { 0 };
        tm_buf small = TM_BUF_INIT(100 + TM_CRYPTO_OVERHEAD - 1), sealed = TM_BUF_INIT(0),
               exact = TM_BUF_INIT(100);

        assert_int_equal(tm_crypto_seal(key, NULL, 0, plain, sizeof(plain), &small), -E2BIG);
        assert_int_equal(small.len, 0);
        assert_int_equal(tm_crypto_seal(key, NULL, 0, plain, sizeof(plain), &sealed), 0);
        /* out's limit is exactly the plaintext size: fits. */
        assert_int_equal(tm_crypto_open(key, NULL, 0, sealed.data, sealed.len, &exact), 0);
        assert_int_equal(exact.len, 100);
        assert_int_equal(tm_crypto_open(key, NULL, 0, sealed.data, sealed.len, &exact), -E2BIG);
        assert_int_equal(exact.len, 100);
        tm_buf_dispose(&small);
        tm_buf_dispose(&sealed);
        tm_buf_dispose(&exact);
}

struct thread_arg {
        uint8_t key[TM_KEY_LEN];
        int fails;
};

static void *seal_thread(void *p)
{
        struct thread_arg *a = p;

        for (int i = 0; i < 200; i++) {
                uint8_t msg[64];
                tm_buf s = TM_BUF_INIT(0), o = TM_BUF_INIT(0);
                tm_id id1, id2;

                memset(msg, i, sizeof(msg));
                if (tm_crypto_seal(a->key, "t", 1, msg, sizeof(msg), &s) < 0 ||
                    tm_crypto_open(a->key, "t", 1, s.data, s.len, &o) < 0 || o.len != sizeof(msg) ||
                    memcmp(o.data, msg, sizeof(msg)) != 0)
                        a->fails++;
                tm_crypto_hmac(a->key, 32, msg, sizeof(msg), id1.b);
                tm_crypto_hmac(a->key, 32, msg, sizeof(msg), id2.b);
                if (tm_id_cmp(&id1, &id2) != 0)
                        a->fails++;
                tm_buf_dispose(&s);
                tm_buf_dispose(&o);
        }
        return NULL;
}

static void test_threads(void **state)
{
        pthread_t t[4];
        struct thread_arg a[4];

        for (int i = 0; i < 4; i++) {
                memset(&a[i], 0, sizeof(a[i]));
                rng_fill(a[i].key, TM_KEY_LEN);
                assert_int_equal(pthread_create(&t[i], NULL, seal_thread, &a[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                assert_int_equal(pthread_join(t[i], NULL), 0);
                assert_int_equal(a[i].fails, 0);
        }
}

static struct tm_kdf_params kdf_params(const char *alg, uint32_t t, uint32_t m, uint32_t p)
{
        struct tm_kdf_params k = { .t = t, .m = m, .p = p };

        snprintf(k.alg, sizeof(k.alg), "%s", alg);
        return k;
}

static void test_kdf_argon2id(void **state)
{
        struct tm_kdf_params k = kdf_params("argon2id", 2, 256, 1);
        uint8_t a[32], b[32];

        /* phc-winner-argon2 src/test.c, version 0x13: m = 2^8 KiB, t = 2. */
        assert_int_equal(tm_crypto_kdf(&k, "password", 8, (const uint8_t *)"somesalt", 8, a), 0);
        assert_hex(a, 32, "9dfeb910e80bad0311fee20f9c0e2b12c17987b4cac90c2ef54d5b3021c68bfe");
        k.p = 2;
        assert_int_equal(tm_crypto_kdf(&k, "password", 8, (const uint8_t *)"somesalt", 8, a), 0);
        assert_hex(a, 32, "6d093c501fd5999645e0ea3bf620d7b8be7fd2db59c20d9fff9539da2bf57037");

        k = kdf_params("argon2id", 1, 1024, 1);
        assert_int_equal(tm_crypto_kdf(&k, "pw", 2, (const uint8_t *)"saltsalt", 8, a), 0);
        assert_int_equal(tm_crypto_kdf(&k, "pw", 2, (const uint8_t *)"saltsalt", 8, b), 0);
        assert_memory_equal(a, b, 32);
        assert_int_equal(tm_crypto_kdf(&k, "pw", 2, (const uint8_t *)"saltsalT", 8, b), 0);
        assert_memory_not_equal(a, b, 32);
        assert_int_equal(tm_crypto_kdf(&k, "pW", 2, (const uint8_t *)"saltsalt", 8, b), 0);
        assert_memory_not_equal(a, b, 32);
        k.t = 2;
        assert_int_equal(tm_crypto_kdf(&k, "pw", 2, (const uint8_t *)"saltsalt", 8, b), 0);
        assert_memory_not_equal(a, b, 32);
        /* An empty passphrase is a valid (if silly) input. */
        assert_int_equal(tm_crypto_kdf(&k, "", 0, (const uint8_t *)"saltsalt", 8, b), 0);
}

static void test_kdf_scrypt(void **state)
{
        struct tm_kdf_params k = kdf_params("scrypt", 0, 16384, 1);
        uint8_t a[32], b[32], c[32];

        /* RFC 7914 section 12, third vector (first 32 of its 64 bytes:
         * PBKDF2 output blocks are independent). */
        assert_int_equal(
                tm_crypto_kdf(&k, "pleaseletmein", 13, (const uint8_t *)"SodiumChloride", 14, a),
                0);
        assert_hex(a, 32, "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2");

        k = kdf_params("scrypt", 0, 1024, 1);
        assert_int_equal(tm_crypto_kdf(&k, "pw", 2, (const uint8_t *)"saltsalt", 8, a), 0);
        assert_int_equal(tm_crypto_kdf(&k, "pw", 2, (const uint8_t *)"saltsalt", 8, b), 0);
        assert_memory_equal(a, b, 32);
        /* t is ignored by scrypt. */
        k.t = 7;
        assert_int_equal(tm_crypto_kdf(&k, "pw", 2, (const uint8_t *)"saltsalt", 8, b), 0);
        assert_memory_equal(a, b, 32);
        assert_int_equal(tm_crypto_kdf(&k, "pw", 2, (const uint8_t *)"saltsalT", 8, b), 0);
        assert_memory_not_equal(a, b, 32);
        assert_int_equal(tm_crypto_kdf(&k, "pW", 2, (const uint8_t *)"saltsalt", 8, b), 0);
        assert_memory_not_equal(a, b, 32);
        k.p = 2;
        assert_int_equal(tm_crypto_kdf(&k, "pw", 2, (const uint8_t *)"saltsalt", 8, b), 0);
        assert_memory_not_equal(a, b, 32);
        /* Different algorithms, same inputs: different keys. */
        k = kdf_params("argon2id", 1, 1024, 1);
        assert_int_equal(tm_crypto_kdf(&k, "pw", 2, (const uint8_t *)"saltsalt", 8, c), 0);
        assert_memory_not_equal(a, c, 32);
}

static void test_kdf_invalid(void **state)
{
        const uint8_t *salt = (const uint8_t *)"saltsaltsalt";
        struct tm_kdf_params bad[] = {
                kdf_params("argon2", 1, 1024, 1),      kdf_params("", 1, 1024, 1),
                kdf_params("argon2id", 0, 1024, 1),    kdf_params("argon2id", 1001, 1024, 1),
                kdf_params("argon2id", 1, 7, 1),       kdf_params("argon2id", 1, 15, 2),
                kdf_params("argon2id", 1, 1024, 0),    kdf_params("argon2id", 1, 1024, 65),
                kdf_params("argon2id", 1, 4194305, 1), kdf_params("scrypt", 0, 1000, 1),
                kdf_params("scrypt", 0, 1, 1),         kdf_params("scrypt", 0, 0, 1),
                kdf_params("scrypt", 0, 1024, 0),      kdf_params("scrypt", 0, 8388608, 1),
                kdf_params("SCRYPT", 0, 1024, 1),
        };
        struct tm_kdf_params good = kdf_params("argon2id", 1, 64, 1);
        uint8_t out[32], before[32];

        memset(out, 0xee, sizeof(out));
        memcpy(before, out, sizeof(out));
        for (size_t i = 0; i < TM_ARRAY_SIZE(bad); i++) {
                assert_int_equal(tm_crypto_kdf(&bad[i], "pw", 2, salt, 12, out), -EINVAL);
                assert_memory_equal(out, before, sizeof(out));
        }
        /* A full 16-byte alg field without a NUL must not be over-read. */
        memset(good.alg, 'a', sizeof(good.alg));
        assert_int_equal(tm_crypto_kdf(&good, "pw", 2, salt, 12, out), -EINVAL);
        good = kdf_params("argon2id", 1, 64, 1);
        assert_int_equal(tm_crypto_kdf(&good, "pw", 2, salt, 7, out), -EINVAL);
        assert_int_equal(tm_crypto_kdf(&good, "pw", 2, NULL, 0, out), -EINVAL);
        assert_int_equal(tm_crypto_kdf(&good, NULL, 2, salt, 12, out), -EINVAL);
        assert_int_equal(tm_crypto_kdf(NULL, "pw", 2, salt, 12, out), -EINVAL);
        /* The boundaries themselves are accepted. */
        assert_int_equal(tm_crypto_kdf(&good, "pw", 2, salt, 8, out), 0);
        good = kdf_params("argon2id", 1, 8, 1);
        assert_int_equal(tm_crypto_kdf(&good, "pw", 2, salt, 8, out), 0);
        good = kdf_params("scrypt", 0, 2, 1);
        assert_int_equal(tm_crypto_kdf(&good, "pw", 2, salt, 8, out), 0);
}

static void test_base64_vectors(void **state)
{
        /* RFC 4648 section 10. */
        static const char *const v[][2] = {
                { "", "" },
                { "f", "Zg==" },
                { "fo", "Zm8=" },
                { "foo", "Zm9v" },
                { "foob", "Zm9vYg==" },
                { "fooba", "Zm9vYmE=" },
                { "foobar", "Zm9vYmFy" },
        };

        for (size_t i = 0; i < TM_ARRAY_SIZE(v); i++) {
                tm_buf e = TM_BUF_INIT(0), d = TM_BUF_INIT(0);

                assert_int_equal(tm_base64_encode(v[i][0], strlen(v[i][0]), &e), 0);
                assert_int_equal(e.len, strlen(v[i][1]));
                if (e.len) {
                        assert_string_equal((const char *)e.data, v[i][1]);
                        assert_int_equal(tm_base64_decode((const char *)e.data, e.len, &d), 0);
                }
                assert_int_equal(tm_base64_decode(v[i][1], SIZE_MAX, &d), 0);
                assert_int_equal(d.len, 2 * strlen(v[i][0]));
                if (d.len)
                        assert_memory_equal(d.data, v[i][0], strlen(v[i][0]));
                tm_buf_dispose(&e);
                tm_buf_dispose(&d);
        }
}

static void test_base64_roundtrip(void **state)
{
        for (size_t n = 0; n < 200; n++) {
                uint8_t in[200];
                tm_buf e = TM_BUF_INIT(0), d = TM_BUF_INIT(n);

                rng_fill(in, n);
                assert_int_equal(tm_base64_encode(in, n, &e), 0);
                assert_int_equal(e.len, (n + 2) / 3 * 4);
                /* d's limit is exactly n: padding must not count. */
                assert_int_equal(tm_base64_decode((const char *)e.data, e.len, &d), 0);
                assert_int_equal(d.len, n);
                if (n)
                        assert_memory_equal(d.data, in, n);
                tm_buf_dispose(&e);
                tm_buf_dispose(&d);
        }
}

static void test_base64_invalid(void **state)
{
        static const char *const bad[] = {
                "Zg=",      "Zg",   "Z===", "====",     "Zm9v\n",   " Zm9v",
                "Zm 9",     "Zm9-", "Zm9_", "=Zg=",     "Zm=v",     "Zg==Zg==",
                "Zm9vYg=a", "Zh==", "Zm9=", "Zm8=Zm8=", "Zm9vYmF=", "\xc3\xa9Zm8",
        };
        tm_buf d = TM_BUF_INIT(0);

        assert_int_equal(tm_buf_append(&d, "k", 1), 0);
        for (size_t i = 0; i < TM_ARRAY_SIZE(bad); i++) {
                assert_int_equal(tm_base64_decode(bad[i], SIZE_MAX, &d), -EINVAL);
                assert_int_equal(d.len, 1);
        }
        assert_int_equal(tm_base64_decode(NULL, 4, &d), -EINVAL);
        /* limit cuts the input: 4 characters of "Zm9vYmFy" are "foo". */
        assert_int_equal(tm_base64_decode("Zm9vYmFy", 4, &d), 0);
        assert_int_equal(d.len, 4);
        assert_memory_equal(d.data, "kfoo", 4);
        assert_int_equal(tm_base64_decode("Zm9vYmFy", 5, &d), -EINVAL);
        tm_buf_dispose(&d);
}

static void test_base64_limits(void **state)
{
        uint8_t key[32];
        tm_buf e = TM_BUF_INIT(43), d = TM_BUF_INIT(31);

        rng_fill(key, sizeof(key));
        assert_int_equal(tm_base64_encode(key, 32, &e), -E2BIG);
        assert_int_equal(e.len, 0);
        e.limit = 44;
        assert_int_equal(tm_base64_encode(key, 32, &e), 0);
        assert_int_equal(tm_base64_decode((const char *)e.data, e.len, &d), -E2BIG);
        assert_int_equal(d.len, 0);
        d.limit = 32;
        assert_int_equal(tm_base64_decode((const char *)e.data, e.len, &d), 0);
        assert_memory_equal(d.data, key, 32);
        tm_buf_dispose(&e);
        tm_buf_dispose(&d);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_sha256_vectors),
                cmocka_unit_test(test_hmac_vectors),
                cmocka_unit_test(test_blob_id),
                cmocka_unit_test(test_key_wipe),
                cmocka_unit_test(test_random),
                cmocka_unit_test(test_seal_roundtrip),
                cmocka_unit_test(test_seal_fresh_nonce),
                cmocka_unit_test(test_open_tampered),
                cmocka_unit_test(test_open_known_answer),
                cmocka_unit_test(test_seal_open_limits),
                cmocka_unit_test(test_threads),
                cmocka_unit_test(test_kdf_argon2id),
                cmocka_unit_test(test_kdf_scrypt),
                cmocka_unit_test(test_kdf_invalid),
                cmocka_unit_test(test_base64_vectors),
                cmocka_unit_test(test_base64_roundtrip),
                cmocka_unit_test(test_base64_invalid),
                cmocka_unit_test(test_base64_limits),
        };

        return cmocka_run_group_tests(tests, rng_setup, NULL);
}
