#pragma once
/*
 * core: the few helpers every module uses: bounded buffers, assertions, hex.
 * libc only.
 */
#include <stddef.h>
#include <stdint.h>

#define TM_MUST_CHECK    __attribute__((warn_unused_result))
#define TM_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TM_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define TM_MAX(a, b)     ((a) > (b) ? (a) : (b))

/* TM_ASSERT() is for broken invariants only; bad input gets -EINVAL. Always on. */
#define TM_ASSERT(x)                                            \
        do {                                                    \
                if (!(x))                                       \
                        tm_assert_fail(#x, __FILE__, __LINE__); \
        } while (0)

_Noreturn void tm_assert_fail(const char *expr, const char *file, int line);

/* Identifier of a blob or file: 32 bytes (HMAC-SHA-256 or SHA-256). */
#define TM_ID_LEN     32
#define TM_ID_HEX_LEN 64
typedef struct tm_id {
        uint8_t b[TM_ID_LEN];
} tm_id;

/**
 * tm_buf - a growable byte buffer with a hard maximum. Data from outside is
 * always read into a bounded buffer; growing past `limit` gives -E2BIG.
 * Ownership: caller-owned struct; tm_buf_dispose() frees, is safe twice.
 */
typedef struct tm_buf {
        uint8_t *data;
        size_t len;
        size_t cap;
        size_t limit; /* 0 = SIZE_MAX */
} tm_buf;

#define TM_BUF_INIT(lim)                                         \
        (tm_buf)                                                 \
        {                                                        \
                .data = NULL, .len = 0, .cap = 0, .limit = (lim) \
        }

/* Ensure room for `extra` more bytes. Returns 0, -E2BIG past the limit, -ENOMEM. */
int tm_buf_reserve(tm_buf *b, size_t extra);
/* Append n bytes. Returns 0, -E2BIG, -ENOMEM. */
int tm_buf_append(tm_buf *b, const void *p, size_t n);
/* Append a printf-formatted string (no NUL counted in len; data stays NUL-terminated). */
int tm_buf_printf(tm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Move the contents of src into dst (dst is disposed first); src becomes empty. */
void tm_buf_move(tm_buf *dst, tm_buf *src);
/* Give back unused capacity (growth doubles it): for buffers kept long,
 * such as cached blobs. Keeps the data; never fails (a failed shrink keeps
 * the larger block). */
void tm_buf_shrink(tm_buf *b);
/* Empty the buffer, keeping its memory. */
void tm_buf_clear(tm_buf *b);
/* Free memory; the buffer can be reused (limit kept). */
void tm_buf_dispose(tm_buf *b);
/* Wipe (OPENSSL-free explicit_bzero) then free: for secrets. */
void tm_buf_dispose_secret(tm_buf *b);

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void tm_hex_encode(const uint8_t *p, size_t n, char *out);
/* Parse exactly 2n hex chars. Returns 0 or -EINVAL. */
int tm_hex_decode(const char *hex, uint8_t *out, size_t n);
/* tm_id <-> 64-char hex. */
void tm_id_hex(const tm_id *id, char out[TM_ID_HEX_LEN + 1]);
int tm_id_parse(const char *hex, tm_id *ret);
int tm_id_cmp(const tm_id *a, const tm_id *b);
int tm_id_is_zero(const tm_id *id);

/* Little-endian and varint encoding helpers for the binary formats. */
int tm_put_varint(tm_buf *b, uint64_t v);
int tm_put_u8(tm_buf *b, uint8_t v);
int tm_put_u32le(tm_buf *b, uint32_t v);
int tm_put_u64le(tm_buf *b, uint64_t v);
uint32_t tm_get_u32le(const uint8_t *p);
uint64_t tm_get_u64le(const uint8_t *p);
void tm_set_u32le(uint8_t *p, uint32_t v);
void tm_set_u64le(uint8_t *p, uint64_t v);

/* A bounds-checked reader over a byte range: every get fails with -EBADMSG
 * (truncated or malformed input) instead of reading past the end. */
typedef struct tm_reader {
        const uint8_t *p;
        size_t len;
        size_t off;
} tm_reader;
void tm_reader_init(tm_reader *r, const void *p, size_t len);
int tm_reader_varint(tm_reader *r, uint64_t *ret);
int tm_reader_u8(tm_reader *r, uint8_t *ret);
int tm_reader_u32le(tm_reader *r, uint32_t *ret);
int tm_reader_u64le(tm_reader *r, uint64_t *ret);
/* Borrow n bytes (valid as long as the underlying memory). */
int tm_reader_bytes(tm_reader *r, size_t n, const uint8_t **ret);
size_t tm_reader_left(const tm_reader *r);

/* strdup that returns NULL on NULL input. */
char *tm_strdup(const char *s);
/* Read a whole small file (bounded by limit) into b. Returns 0 or -errno. */
int tm_file_read_all(const char *path, size_t limit, tm_buf *b);
/* Number of online CPUs, at least 1. */
int tm_ncpu(void);
