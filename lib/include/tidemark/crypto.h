#pragma once
/*
 * crypto: every use of OpenSSL and libargon2 lives here.
 *
 * Sealed format (blobs, metadata objects, wrapped keys):
 *     nonce (12 random bytes) || AES-256-GCM ciphertext || tag (16 bytes)
 * with caller-chosen additional authenticated data (AAD) that binds an
 * object to its role (a tree blob cannot be replayed as a snapshot, a blob
 * as another id).
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/core.h>

#define TM_CRYPTO_NONCE_LEN 12
#define TM_CRYPTO_TAG_LEN   16
#define TM_CRYPTO_OVERHEAD  (TM_CRYPTO_NONCE_LEN + TM_CRYPTO_TAG_LEN)
#define TM_KEY_LEN          32

/* The repository master key: `enc` encrypts (AES-256-GCM), `mac` is the
 * HMAC-SHA-256 key for blob ids. Wipe with tm_key_wipe(). */
typedef struct tm_key {
        uint8_t enc[TM_KEY_LEN];
        uint8_t mac[TM_KEY_LEN];
} tm_key;

void tm_key_wipe(tm_key *k);

/* Fill p with n cryptographically random bytes. Returns 0 or -EIO. */
int tm_crypto_random(void *p, size_t n);

/* SHA-256 of a buffer (names of packs, index files, snapshots, keys). */
void tm_crypto_sha256(const void *p, size_t n, tm_id *ret);

/* Blob id: HMAC-SHA-256(key->mac, plaintext). Thread-safe. */
void tm_crypto_blob_id(const tm_key *key, const void *p, size_t n, tm_id *ret);

/* HMAC-SHA-256 with an arbitrary key (used to derive sub-secrets such as the
 * chunker gear table seed). */
void tm_crypto_hmac(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[32]);

/**
 * tm_crypto_seal() - encrypt n bytes with AES-256-GCM under a 32-byte key and
 * a fresh random nonce; appends nonce || ciphertext || tag to out.
 * Returns 0, -E2BIG (out's limit), -ENOMEM, -EIO. Thread-safe.
 */
int tm_crypto_seal(const uint8_t key[TM_KEY_LEN], const void *aad, size_t aadlen, const void *plain,
                   size_t n, tm_buf *out);

/**
 * tm_crypto_open() - authenticate and decrypt a sealed buffer; appends the
 * plaintext to out. Returns 0, or -EBADMSG if the input is too short, was
 * tampered with, or the key or AAD is wrong (nothing is appended then), or
 * -E2BIG/-ENOMEM. Thread-safe.
 */
int tm_crypto_open(const uint8_t key[TM_KEY_LEN], const void *aad, size_t aadlen,
                   const void *sealed, size_t n, tm_buf *out);

/* Passphrase key derivation. alg is "argon2id" (libargon2; t = passes,
 * m = memory in KiB, p = lanes) or "scrypt" (OpenSSL; n = 1 << t ... see
 * docs/format.md: N = m, r = 8, p = p). */
struct tm_kdf_params {
        char alg[16];
        uint32_t t;
        uint32_t m;
        uint32_t p;
};
#define TM_KDF_PARAMS_DEFAULT                                     \
        (struct tm_kdf_params)                                    \
        {                                                         \
                .alg = "argon2id", .t = 3, .m = 64 * 1024, .p = 4 \
        }

/* Derive 32 bytes from a passphrase and salt. Ranges: salt 8..1024 bytes,
 * t <= 1000, m <= 4 GiB in KiB, 1 <= p <= 64; argon2id also needs t >= 1 and
 * m >= 8 * p (libargon2's minimums); scrypt needs m (= N) a power of two
 * >= 2 and ignores t. Returns 0, -EINVAL (unknown alg or parameters out of
 * range), -ENOMEM, -EIO. Thread-safe. */
int tm_crypto_kdf(const struct tm_kdf_params *params, const char *pass, size_t passlen,
                  const uint8_t *salt, size_t saltlen, uint8_t out[TM_KEY_LEN]);

/* Base64 (standard alphabet, padded) for key files. encode appends the text
 * (out stays NUL-terminated) and returns 0, -E2BIG, -ENOMEM. decode reads s
 * up to its NUL or `limit` characters, whichever comes first, and appends
 * exactly the decoded bytes; it returns -EINVAL on bad input (characters
 * outside the alphabet, whitespace, misplaced padding, a length that is not
 * a multiple of 4, non-zero padding bits) with nothing appended, -E2BIG,
 * -ENOMEM. */
int tm_base64_encode(const void *p, size_t n, tm_buf *out);
int tm_base64_decode(const char *s, size_t limit, tm_buf *out);
