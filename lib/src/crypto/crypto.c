/*
 * crypto: the only module that includes OpenSSL and libargon2.
 *
 * Algorithms are fetched once per process (EVP_MD_fetch/EVP_CIPHER_fetch/
 * EVP_MAC_fetch) instead of through the legacy EVP_sha256()-style getters,
 * which re-resolve the provider implementation on every init: blob ids and
 * seal/open run once per chunk and per tree blob, so the per-call lookup
 * would otherwise dominate small objects. Every call still gets its own
 * context, which keeps all functions here thread-safe without locks.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <argon2.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <tidemark/crypto.h>

/* EVP update calls take an int length; feed big buffers in slices of this. */
#define CRYPTO_SLICE (1u << 30)

/* Parameter ranges for tm_crypto_kdf(). m is KiB for argon2id and N for
 * scrypt (128 * r * N bytes = N KiB with r = 8), so one cap serves both. */
#define KDF_T_MAX    1000u
#define KDF_M_MAX    (4u * 1024 * 1024) /* 4 GiB */
#define KDF_P_MAX    64u
#define KDF_SALT_MIN 8u /* libargon2's ARGON2_MIN_SALT_LENGTH; applied to both */
#define KDF_SALT_MAX 1024u
#define SCRYPT_R     8u

static pthread_once_t algs_once = PTHREAD_ONCE_INIT;
static EVP_MD *alg_sha256;
static EVP_CIPHER *alg_gcm;
static EVP_MAC *alg_hmac;
/* An HMAC-SHA-256 context without a key, duplicated per call: about twice
 * as fast as a fresh context that looks the digest up by name each time
 * (small blobs and tree blobs are dominated by that setup). Only ever read
 * after algs_fetch(), so concurrent duplication is safe. */
static EVP_MAC_CTX *hmac_template;

/* Registered with atexit() after the first fetch, so it runs before
 * OpenSSL's own atexit cleanup (registered earlier, runs later) and the
 * leak checker sees no live references. */
static void algs_free(void)
{
        EVP_MD_free(alg_sha256);
        EVP_CIPHER_free(alg_gcm);
        EVP_MAC_CTX_free(hmac_template);
        EVP_MAC_free(alg_hmac);
        hmac_template = NULL;
        alg_sha256 = NULL;
        alg_gcm = NULL;
        alg_hmac = NULL;
}

static void algs_fetch(void)
{
        OSSL_PARAM params[] = {
                OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                OSSL_PARAM_construct_end(),
        };

        alg_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        alg_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
        alg_hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
        hmac_template = alg_hmac ? EVP_MAC_CTX_new(alg_hmac) : NULL;
        /* Without these the default provider is broken: nothing can work. */
        TM_ASSERT(alg_sha256 && alg_gcm && alg_hmac && hmac_template &&
                  EVP_MAC_CTX_set_params(hmac_template, params) == 1);
        atexit(algs_free);
}

static void algs_init(void)
{
        TM_ASSERT(pthread_once(&algs_once, algs_fetch) == 0);
}

void tm_key_wipe(tm_key *k)
{
        if (k)
                OPENSSL_cleanse(k, sizeof(*k));
}

int tm_crypto_random(void *p, size_t n)
{
        uint8_t *q = p;

        while (n > 0) {
                size_t k = TM_MIN(n, (size_t)CRYPTO_SLICE);

                if (RAND_bytes(q, (int)k) != 1)
                        return -EIO;
                q += k;
                n -= k;
        }
        return 0;
}

void tm_crypto_sha256(const void *p, size_t n, tm_id *ret)
{
        unsigned int len = 0;

        algs_init();
        /* Fails only on allocation failure inside OpenSSL; an id that is
         * silently wrong would be far worse than stopping. */
        TM_ASSERT(EVP_Digest(p, n, ret->b, &len, alg_sha256, NULL) == 1 && len == TM_ID_LEN);
}

void tm_crypto_hmac(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[32])
{
        EVP_MAC_CTX *ctx;
        size_t len = 0;
        int ok;

        algs_init();
        ctx = EVP_MAC_CTX_dup(hmac_template);
        TM_ASSERT(ctx);
        /* HMAC requires a non-NULL key pointer even when it is empty. */
        ok = EVP_MAC_init(ctx, keylen ? key : (const uint8_t *)"", keylen, NULL) == 1 &&
             EVP_MAC_update(ctx, p, n) == 1 && EVP_MAC_final(ctx, out, &len, 32) == 1 && len == 32;
        EVP_MAC_CTX_free(ctx);
        /* Fails only on allocation failure inside OpenSSL; a wrong id would
         * be far worse than stopping. */
        TM_ASSERT(ok);
}

void tm_crypto_blob_id(const tm_key *key, const void *p, size_t n, tm_id *ret)
{
        tm_crypto_hmac(key->mac, TM_KEY_LEN, p, n, ret->b);
}

/* EVP_{En,De}cryptUpdate in int-sized slices. out NULL means AAD. */
static int gcm_update(EVP_CIPHER_CTX *ctx, int enc, uint8_t *out, const uint8_t *in, size_t n)
{
        while (n > 0) {
                int k = (int)TM_MIN(n, (size_t)CRYPTO_SLICE), outl = 0;
                int ok = enc ? EVP_EncryptUpdate(ctx, out, &outl, in, k)
                             : EVP_DecryptUpdate(ctx, out, &outl, in, k);

                if (ok != 1 || (out && outl != k))
                        return -1;
                in += k;
                if (out)
                        out += k;
                n -= (size_t)k;
        }
        return 0;
}

int tm_crypto_seal(const uint8_t key[TM_KEY_LEN], const void *aad, size_t aadlen, const void *plain,
                   size_t n, tm_buf *out)
{
        EVP_CIPHER_CTX *ctx = NULL;
        uint8_t *dst;
        int outl = 0, r;

        if (n > SIZE_MAX - TM_CRYPTO_OVERHEAD)
                return -E2BIG;
        r = tm_buf_reserve(out, n + TM_CRYPTO_OVERHEAD);
        if (r < 0)
                return r;
        algs_init();
        dst = out->data + out->len;
        r = tm_crypto_random(dst, TM_CRYPTO_NONCE_LEN);
        if (r < 0)
                goto out;
        ctx = EVP_CIPHER_CTX_new();
        if (!ctx) {
                r = -ENOMEM;
                goto out;
        }
        /* AES-256-GCM's default IV length is 12, our nonce length. */
        if (EVP_EncryptInit_ex2(ctx, alg_gcm, key, dst, NULL) != 1 ||
            gcm_update(ctx, 1, NULL, aad, aadlen) < 0 ||
            gcm_update(ctx, 1, dst + TM_CRYPTO_NONCE_LEN, plain, n) < 0 ||
            EVP_EncryptFinal_ex(ctx, dst + TM_CRYPTO_NONCE_LEN + n, &outl) != 1 || outl != 0 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TM_CRYPTO_TAG_LEN,
                                dst + TM_CRYPTO_NONCE_LEN + n) != 1) {
                r = -EIO;
                goto out;
        }
        out->len += n + TM_CRYPTO_OVERHEAD;
        out->data[out->len] = 0;
        r = 0;
out:
        EVP_CIPHER_CTX_free(ctx);
        return r;
}

int tm_crypto_open(const uint8_t key[TM_KEY_LEN], const void *aad, size_t aadlen,
                   const void *sealed, size_t n, tm_buf *out)
{
        const uint8_t *in = sealed;
        EVP_CIPHER_CTX *ctx = NULL;
        uint8_t tag[TM_CRYPTO_TAG_LEN], *dst = NULL;
        size_t plen;
        int outl = 0, r;

        if (n < TM_CRYPTO_OVERHEAD)
                return -EBADMSG;
        plen = n - TM_CRYPTO_OVERHEAD;
        r = tm_buf_reserve(out, plen);
        if (r < 0)
                return r;
        algs_init();
        /* Decrypt in place at the end of out; len moves only once the tag
         * has been verified, so a failure appends nothing. */
        dst = out->data + out->len;
        memcpy(tag, in + TM_CRYPTO_NONCE_LEN + plen, TM_CRYPTO_TAG_LEN);
        ctx = EVP_CIPHER_CTX_new();
        if (!ctx) {
                r = -ENOMEM;
                goto out;
        }
        if (EVP_DecryptInit_ex2(ctx, alg_gcm, key, in, NULL) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TM_CRYPTO_TAG_LEN, tag) != 1) {
                r = -EIO;
                goto out;
        }
        if (gcm_update(ctx, 0, NULL, aad, aadlen) < 0 ||
            gcm_update(ctx, 0, dst, in + TM_CRYPTO_NONCE_LEN, plen) < 0 ||
            EVP_DecryptFinal_ex(ctx, dst + plen, &outl) != 1 || outl != 0) {
                r = -EBADMSG;
                goto out;
        }
        out->len += plen;
        out->data[out->len] = 0;
        r = 0;
out:
        /* Unauthenticated plaintext must not linger in out's spare room. */
        if (r < 0 && dst)
                OPENSSL_cleanse(dst, plen);
        EVP_CIPHER_CTX_free(ctx);
        return r;
}

static int kdf_argon2id(const struct tm_kdf_params *params, const char *pass, size_t passlen,
                        const uint8_t *salt, size_t saltlen, uint8_t out[TM_KEY_LEN])
{
        int r;

        if (params->t < ARGON2_MIN_TIME || params->p < ARGON2_MIN_LANES ||
            params->m < 8 * params->p || params->m < ARGON2_MIN_MEMORY || passlen > UINT32_MAX)
                return -EINVAL;
        r = argon2id_hash_raw(params->t, params->m, params->p, pass, passlen, salt, saltlen, out,
                              TM_KEY_LEN);
        switch (r) {
        case ARGON2_OK:
                return 0;
        case ARGON2_MEMORY_ALLOCATION_ERROR:
                return -ENOMEM;
        default:
                return -EIO;
        }
}

static int kdf_scrypt(const struct tm_kdf_params *params, const char *pass, size_t passlen,
                      const uint8_t *salt, size_t saltlen, uint8_t out[TM_KEY_LEN])
{
        uint64_t n = params->m, maxmem;
        uint32_t r8 = SCRYPT_R, p = params->p;
        OSSL_PARAM kp[7], *q = kp;
        EVP_KDF *kdf = NULL;
        EVP_KDF_CTX *ctx = NULL;
        int r;

        if (n < 2 || (n & (n - 1)) || p < 1)
                return -EINVAL;
        /* OpenSSL needs 128*r*(N+2) bytes for V plus 128*r*p for B. */
        maxmem = 128ull * SCRYPT_R * (n + 2) + 128ull * SCRYPT_R * p;
        kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_SCRYPT, NULL);
        if (!kdf) {
                r = -EIO;
                goto out;
        }
        ctx = EVP_KDF_CTX_new(kdf);
        if (!ctx) {
                r = -ENOMEM;
                goto out;
        }
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
                                                 (void *)(passlen ? pass : ""), passlen);
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
        *q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n);
        *q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r8);
        *q++ = OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p);
        *q++ = OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem);
        *q = OSSL_PARAM_construct_end();
        /* Parameters were validated above, so a failure here is almost
         * always the 128*r*N allocation. */
        r = EVP_KDF_derive(ctx, out, TM_KEY_LEN, kp) == 1 ? 0 : -ENOMEM;
out:
        EVP_KDF_CTX_free(ctx);
        EVP_KDF_free(kdf);
        return r;
}

int tm_crypto_kdf(const struct tm_kdf_params *params, const char *pass, size_t passlen,
                  const uint8_t *salt, size_t saltlen, uint8_t out[TM_KEY_LEN])
{
        if (!params || (!pass && passlen) || !salt || saltlen < KDF_SALT_MIN ||
            saltlen > KDF_SALT_MAX || params->t > KDF_T_MAX || params->m > KDF_M_MAX ||
            params->p > KDF_P_MAX)
                return -EINVAL;
        /* alg is a fixed array that need not be NUL-terminated. */
        if (strncmp(params->alg, "argon2id", sizeof(params->alg)) == 0)
                return kdf_argon2id(params, pass, passlen, salt, saltlen, out);
        if (strncmp(params->alg, "scrypt", sizeof(params->alg)) == 0)
                return kdf_scrypt(params, pass, passlen, salt, saltlen, out);
        return -EINVAL;
}

int tm_base64_encode(const void *p, size_t n, tm_buf *out)
{
        /* A multiple of 3, so that only the last slice can carry padding. */
        const size_t slice = 3u << 28;
        const uint8_t *in = p;
        size_t olen;
        uint8_t *dst;
        int r;

        if (n / 3 >= SIZE_MAX / 4 - 1)
                return -E2BIG;
        olen = (n + 2) / 3 * 4;
        r = tm_buf_reserve(out, olen);
        if (r < 0)
                return r;
        dst = out->data + out->len;
        while (n > 0) {
                size_t k = TM_MIN(n, slice);
                int w = EVP_EncodeBlock(dst, in, (int)k);

                /* EVP_EncodeBlock writes a NUL after the text: reserve keeps
                 * one spare byte past len + extra for exactly that. */
                TM_ASSERT(w >= 0 && (size_t)w == (k + 2) / 3 * 4);
                dst += w;
                in += k;
                n -= k;
        }
        out->len += olen;
        out->data[out->len] = 0;
        return 0;
}

static int b64_val(char c)
{
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

int tm_base64_decode(const char *s, size_t limit, tm_buf *out)
{
        /* A multiple of 4 characters, so slices split on quantum edges. */
        const size_t slice = 4u << 20;
        size_t len, pad = 0, body, olen;
        uint8_t last[3], *dst;
        int r;

        if (!s)
                return -EINVAL;
        len = strnlen(s, limit);
        if (len % 4)
                return -EINVAL;
        if (len == 0)
                return 0;
        if (s[len - 1] == '=')
                pad++;
        if (s[len - 2] == '=')
                pad++;
        /* EVP_DecodeBlock tolerates whitespace and stray '=': be strict so
         * that exactly one text decodes to a given byte string. */
        for (size_t i = 0; i < len - pad; i++)
                if (b64_val(s[i]) < 0)
                        return -EINVAL;
        /* The unused low bits of the last symbol before padding must be 0. */
        if (pad == 1 && (b64_val(s[len - 2]) & 0x3))
                return -EINVAL;
        if (pad == 2 && (b64_val(s[len - 3]) & 0xf))
                return -EINVAL;
        /* The last quantum is decoded on the side: EVP_DecodeBlock counts
         * padding as output bytes, and reserving those could trip a limit
         * sized exactly for the result (a 32-byte key in 44 characters). */
        body = len - 4;
        olen = body / 4 * 3 + 3 - pad;
        r = tm_buf_reserve(out, olen);
        if (r < 0)
                return r;
        dst = out->data + out->len;
        for (size_t i = 0; i < body;) {
                size_t k = TM_MIN(body - i, slice);
                int w = EVP_DecodeBlock(dst, (const uint8_t *)s + i, (int)k);

                if (w < 0 || (size_t)w != k / 4 * 3)
                        return -EINVAL;
                dst += w;
                i += k;
        }
        if (EVP_DecodeBlock(last, (const uint8_t *)s + body, 4) != 3)
                return -EINVAL;
        memcpy(dst, last, 3 - pad);
        out->len += olen;
        out->data[out->len] = 0;
        return 0;
}
