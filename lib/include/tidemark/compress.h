#pragma once
/*
 * compress: zstd, and only here. Blobs are compressed before encryption and
 * stored raw when compression does not shrink them.
 */
#include <stddef.h>

#include <tidemark/core.h>

#ifndef TM_COMPRESS_LEVEL_DEFAULT
#define TM_COMPRESS_LEVEL_DEFAULT 3
#endif

/**
 * tm_compress() - compress n bytes at `level` (1..19) and append the result to
 * out, if and only if it is smaller than the input; otherwise append the
 * input unchanged. *ret_compressed says which. Level 0 never compresses.
 * Returns 0, -E2BIG, -ENOMEM. Thread-safe (a context per thread).
 */
int tm_compress(int level, const void *in, size_t n, tm_buf *out, int *ret_compressed);

/**
 * tm_decompress() - decompress a zstd frame of n bytes, appending at most
 * `max` bytes to out. Returns 0, or -EBADMSG when the frame is corrupt or
 * would exceed max, -ENOMEM. Thread-safe.
 */
int tm_decompress(const void *in, size_t n, size_t max, tm_buf *out);
