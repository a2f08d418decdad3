#pragma once
/*
 * chunker: FastCDC content-defined chunking (gear rolling hash, normalized
 * chunking with two masks) with a gear table derived from a per-repository
 * secret, so chunk boundaries reveal nothing about contents across
 * repositories. Also fixed-size blocks for page-structured files.
 */
#include <stddef.h>
#include <stdint.h>

struct tm_chunker_params {
        uint32_t min; /* bytes */
        uint32_t avg; /* power of two */
        uint32_t max;
};
#define TM_CHUNKER_MIN_DEFAULT (512u * 1024)
#define TM_CHUNKER_AVG_DEFAULT (1024u * 1024)
#define TM_CHUNKER_MAX_DEFAULT (8u * 1024 * 1024)
#define TM_CHUNKER_PARAMS_DEFAULT                                             \
        (struct tm_chunker_params)                                            \
        {                                                                     \
                .min = TM_CHUNKER_MIN_DEFAULT, .avg = TM_CHUNKER_AVG_DEFAULT, \
                .max = TM_CHUNKER_MAX_DEFAULT                                 \
        }

typedef struct tm_chunker tm_chunker;

/* Validate params (64 <= min < avg < max <= 64 MiB, avg a power of two).
 * Returns 0 or -EINVAL. */
int tm_chunker_params_check(const struct tm_chunker_params *p);

/**
 * tm_chunker_new() - build a chunker; the 256-entry gear table is derived
 * deterministically from the 32-byte seed. Returns 0, -EINVAL, -ENOMEM.
 * Ownership: caller frees with tm_chunker_free(). Thread-safety: immutable
 * after creation; any number of threads may call tm_chunker_cut().
 */
int tm_chunker_new(const struct tm_chunker_params *p, const uint8_t seed[32], tm_chunker **ret);
void tm_chunker_free(tm_chunker *c);
const struct tm_chunker_params *tm_chunker_params(const tm_chunker *c);

/**
 * tm_chunker_cut() - length of the next chunk at the start of p.
 * The caller passes at least params.max bytes, or everything that is left
 * when the stream ends; n <= min returns n. The result is in [1, n] and
 * depends only on the bytes (deterministic, shift-resistant).
 */
size_t tm_chunker_cut(const tm_chunker *c, const uint8_t *p, size_t n);
