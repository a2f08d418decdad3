/*
 * compress: zstd, and only here.
 *
 * Each thread keeps one compression and one decompression context in
 * thread-specific data: a ZSTD_CCtx costs ~1 MiB at level 3 to set up, far
 * too much per blob, and sharing one across threads would need a lock on the
 * backup hot path. The key's destructor frees them when a thread exits; the
 * main thread, which never runs key destructors, is cleaned up by atexit().
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>
#include <zstd_errors.h>

#include <tidemark/compress.h>

#define COMPRESS_LEVEL_MAX 19
#define COMPRESS_FRAME_MIN 10

struct zctx {
        ZSTD_CCtx *c;
        ZSTD_DCtx *d;
};

static pthread_once_t zkey_once = PTHREAD_ONCE_INIT;
static pthread_key_t zkey;

static void zctx_free(void *p)
{
        struct zctx *z = p;

        if (!z)
                return;
        ZSTD_freeCCtx(z->c);
        ZSTD_freeDCtx(z->d);
        free(z);
}

/* Frees the contexts of whichever thread calls exit(), normally main. */
static void zctx_free_current(void)
{
        struct zctx *z = pthread_getspecific(zkey);

        pthread_setspecific(zkey, NULL);
        zctx_free(z);
}

static void zkey_create(void)
{
        TM_ASSERT(pthread_key_create(&zkey, zctx_free) == 0);
        atexit(zctx_free_current);
}

static struct zctx *zctx_get(void)
{
        struct zctx *z;

        TM_ASSERT(pthread_once(&zkey_once, zkey_create) == 0);
        z = pthread_getspecific(zkey);
        if (z)
                return z;
        z = calloc(1, sizeof(*z));
        if (!z)
                return NULL;
        if (pthread_setspecific(zkey, z) != 0) {
                free(z);
                return NULL;
        }
        return z;
}

static ZSTD_CCtx *cctx_get(void)
{
        struct zctx *z = zctx_get();

        if (z && !z->c)
                z->c = ZSTD_createCCtx();
        return z ? z->c : NULL;
}

static ZSTD_DCtx *dctx_get(void)
{
        struct zctx *z = zctx_get();

        if (z && !z->d)
                z->d = ZSTD_createDCtx();
        return z ? z->d : NULL;
}

int tm_compress(int level, const void *in, size_t n, tm_buf *out, int *ret_compressed)
{
        size_t room, cap, w;
        ZSTD_CCtx *cctx;
        int r;

        if (level < 0 || level > COMPRESS_LEVEL_MAX || (!in && n))
                return -EINVAL;
        /* A frame holding at least one byte takes >= 10 bytes (magic 4,
         * header >= 2, block header 3, content >= 1): it cannot win below. */
        if (level == 0 || n <= COMPRESS_FRAME_MIN)
                goto raw;
        room = out->limit ? (out->limit > out->len ? out->limit - out->len : 0) : SIZE_MAX;
        /* Strictly smaller than the input, and within out's limit: zstd then
         * reports dstSize_tooSmall rather than writing a useless frame. It
         * wants a few bytes of slack beyond the final frame size, so an
         * input that would shrink by only that much is stored raw. */
        cap = TM_MIN(n - 1, room);
        if (cap == 0)
                goto raw;
        r = tm_buf_reserve(out, cap);
        if (r < 0)
                return r;
        cctx = cctx_get();
        if (!cctx)
                return -ENOMEM;
        w = ZSTD_compressCCtx(cctx, out->data + out->len, cap, in, n, level);
        if (!ZSTD_isError(w)) {
                out->len += w;
                out->data[out->len] = 0;
                *ret_compressed = 1;
                return 0;
        }
        switch (ZSTD_getErrorCode(w)) {
        case ZSTD_error_dstSize_tooSmall:
                break;
        case ZSTD_error_memory_allocation:
                return -ENOMEM;
        default:
                return -EIO;
        }
raw:
        r = tm_buf_append(out, in, n);
        if (r < 0)
                return r;
        *ret_compressed = 0;
        return 0;
}

/* One frame whose header states its size: decompress in one call straight
 * into out. */
static int decompress_sized(ZSTD_DCtx *dctx, const void *in, size_t n, unsigned long long size,
                            size_t max, tm_buf *out)
{
        size_t w;
        int r;

        if (size > max || size > SIZE_MAX - 1)
                return -EBADMSG;
        r = tm_buf_reserve(out, (size_t)size);
        if (r < 0)
                return r;
        w = ZSTD_decompressDCtx(dctx, out->data + out->len, (size_t)size, in, n);
        if (ZSTD_isError(w))
                return ZSTD_getErrorCode(w) == ZSTD_error_memory_allocation ? -ENOMEM : -EBADMSG;
        if (w != size)
                return -EBADMSG;
        out->len += w;
        out->data[out->len] = 0;
        return 0;
}

/* A frame without a content size: stream into out in steps, never letting
 * it produce more than max bytes. */
static int decompress_stream(ZSTD_DCtx *dctx, const void *in, size_t n, size_t max, tm_buf *out)
{
        ZSTD_inBuffer ib = { in, n, 0 };
        size_t produced = 0, step = ZSTD_DStreamOutSize();
        int r;

        ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
        for (;;) {
                size_t left = max - produced, w;
                ZSTD_outBuffer ob;
                uint8_t probe;

                if (left == 0) {
                        /* At max: offer one byte on the side; if zstd
                         * writes it, the frame is too big. */
                        ob = (ZSTD_outBuffer){ &probe, 1, 0 };
                } else {
                        size_t want = TM_MIN(left, step);

                        r = tm_buf_reserve(out, produced + want);
                        if (r < 0)
                                return r;
                        ob = (ZSTD_outBuffer){ out->data + out->len + produced, want, 0 };
                }
                w = ZSTD_decompressStream(dctx, &ob, &ib);
                if (ZSTD_isError(w))
                        return ZSTD_getErrorCode(w) == ZSTD_error_memory_allocation ? -ENOMEM
                                                                                    : -EBADMSG;
                if (left == 0 && ob.pos > 0)
                        return -EBADMSG;
                produced += ob.pos;
                if (w == 0) /* frame complete */
                        break;
                /* Wants more input than there is while output room is left:
                 * truncated. */
                if (ib.pos == ib.size && ob.pos < ob.size)
                        return -EBADMSG;
        }
        if (ib.pos != ib.size)
                return -EBADMSG;
        out->len += produced;
        out->data[out->len] = 0;
        return 0;
}

int tm_decompress(const void *in, size_t n, size_t max, tm_buf *out)
{
        unsigned long long size;
        ZSTD_DCtx *dctx;
        size_t fsize;

        if (!in || n == 0)
                return -EBADMSG;
        /* Exactly one frame: trailing bytes would be a second, unchecked
         * frame or garbage. */
        fsize = ZSTD_findFrameCompressedSize(in, n);
        if (ZSTD_isError(fsize) || fsize != n)
                return -EBADMSG;
        size = ZSTD_getFrameContentSize(in, n);
        if (size == ZSTD_CONTENTSIZE_ERROR)
                return -EBADMSG;
        dctx = dctx_get();
        if (!dctx)
                return -ENOMEM;
        if (size != ZSTD_CONTENTSIZE_UNKNOWN)
                return decompress_sized(dctx, in, n, size, max, out);
        return decompress_stream(dctx, in, n, max, out);
}
