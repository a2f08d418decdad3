#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tidemark/core.h>

void tm_assert_fail(const char *expr, const char *file, int line)
{
        fprintf(stderr, "tidemark: assertion '%s' failed at %s:%d\n", expr, file, line);
        abort();
}

int tm_buf_reserve(tm_buf *b, size_t extra)
{
        size_t limit = b->limit ? b->limit : SIZE_MAX, need, ncap;
        uint8_t *p;

        if (extra > limit || b->len > limit - extra)
                return -E2BIG;
        if (b->len + extra == SIZE_MAX)
                return -ENOMEM;    /* no room for the NUL below */
        need = b->len + extra + 1; /* +1 keeps a NUL after text */
        if (need <= b->cap)
                return 0;
        ncap = b->cap ? b->cap : 64;
        while (ncap < need)
                ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
        p = realloc(b->data, ncap);
        if (!p)
                return -ENOMEM;
        b->data = p;
        b->cap = ncap;
        return 0;
}

int tm_buf_append(tm_buf *b, const void *p, size_t n)
{
        int r = tm_buf_reserve(b, n);

        if (r < 0)
                return r;
        if (n)
                memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = 0;
        return 0;
}

int tm_buf_printf(tm_buf *b, const char *fmt, ...)
{
        va_list ap;
        int n, r;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -EINVAL;
        r = tm_buf_reserve(b, (size_t)n);
        if (r < 0)
                return r;
        va_start(ap, fmt);
        vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
        b->len += (size_t)n;
        return 0;
}

void tm_buf_move(tm_buf *dst, tm_buf *src)
{
        size_t lim = dst->limit;

        tm_buf_dispose(dst);
        *dst = *src;
        if (lim && (!dst->limit || lim > dst->limit))
                dst->limit = lim;
        src->data = NULL;
        src->len = src->cap = 0;
}

void tm_buf_shrink(tm_buf *b)
{
        uint8_t *p;

        if (!b->data || b->cap <= b->len + 1)
                return;
        p = realloc(b->data, b->len + 1);
        if (!p)
                return;
        b->data = p;
        b->cap = b->len + 1;
}

void tm_buf_clear(tm_buf *b)
{
        b->len = 0;
        if (b->data)
                b->data[0] = 0;
}

void tm_buf_dispose(tm_buf *b)
{
        if (!b)
                return;
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
}

void tm_buf_dispose_secret(tm_buf *b)
{
        if (!b)
                return;
        if (b->data)
                explicit_bzero(b->data, b->cap);
        tm_buf_dispose(b);
}

void tm_hex_encode(const uint8_t *p, size_t n, char *out)
{
        static const char d[] = "0123456789abcdef";

        for (size_t i = 0; i < n; i++) {
                out[2 * i] = d[p[i] >> 4];
                out[2 * i + 1] = d[p[i] & 15];
        }
        out[2 * n] = 0;
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

int tm_hex_decode(const char *hex, uint8_t *out, size_t n)
{
        if (!hex || strlen(hex) != 2 * n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

                if (hi < 0 || lo < 0)
                        return -EINVAL;
                out[i] = (uint8_t)(hi << 4 | lo);
        }
        return 0;
}

void tm_id_hex(const tm_id *id, char out[TM_ID_HEX_LEN + 1])
{
        tm_hex_encode(id->b, TM_ID_LEN, out);
}

int tm_id_parse(const char *hex, tm_id *ret)
{
        tm_id id;
        int r = tm_hex_decode(hex, id.b, TM_ID_LEN);

        if (r < 0)
                return r;
        *ret = id;
        return 0;
}

int tm_id_cmp(const tm_id *a, const tm_id *b)
{
        return memcmp(a->b, b->b, TM_ID_LEN);
}

int tm_id_is_zero(const tm_id *id)
{
        for (size_t i = 0; i < TM_ID_LEN; i++)
                if (id->b[i])
                        return 0;
        return 1;
}

int tm_put_varint(tm_buf *b, uint64_t v)
{
        uint8_t tmp[10];
        size_t n = 0;

        do {
                tmp[n] = (uint8_t)(v & 0x7f);
                v >>= 7;
                if (v)
                        tmp[n] |= 0x80;
                n++;
        } while (v);
        return tm_buf_append(b, tmp, n);
}

int tm_put_u8(tm_buf *b, uint8_t v)
{
        return tm_buf_append(b, &v, 1);
}

void tm_set_u32le(uint8_t *p, uint32_t v)
{
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

void tm_set_u64le(uint8_t *p, uint64_t v)
{
        for (int i = 0; i < 8; i++)
                p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t tm_get_u32le(const uint8_t *p)
{
        return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t tm_get_u64le(const uint8_t *p)
{
        return (uint64_t)tm_get_u32le(p) | (uint64_t)tm_get_u32le(p + 4) << 32;
}

int tm_put_u32le(tm_buf *b, uint32_t v)
{
        uint8_t t[4];

        tm_set_u32le(t, v);
        return tm_buf_append(b, t, 4);
}

int tm_put_u64le(tm_buf *b, uint64_t v)
{
        uint8_t t[8];

        tm_set_u64le(t, v);
        return tm_buf_append(b, t, 8);
}

void tm_reader_init(tm_reader *r, const void *p, size_t len)
{
        r->p = p;
        r->len = len;
        r->off = 0;
}

size_t tm_reader_left(const tm_reader *r)
{
        return r->len - r->off;
}

int tm_reader_varint(tm_reader *r, uint64_t *ret)
{
        uint64_t v = 0;
        size_t off = r->off;

        /* On failure r->off is left where it was, like the other getters. */
        for (int shift = 0; shift < 64; shift += 7) {
                uint8_t c;

                if (off >= r->len)
                        return -EBADMSG;
                c = r->p[off++];
                if (shift == 63 && (c & 0x7e))
                        return -EBADMSG; /* overflows 64 bits */
                /* Overlong (a final 0x00 after a continuation byte): the
                 * formats are canonical, so each value has one encoding. */
                if (shift > 0 && c == 0)
                        return -EBADMSG;
                v |= (uint64_t)(c & 0x7f) << shift;
                if (!(c & 0x80)) {
                        r->off = off;
                        *ret = v;
                        return 0;
                }
        }
        return -EBADMSG;
}

int tm_reader_u8(tm_reader *r, uint8_t *ret)
{
        if (tm_reader_left(r) < 1)
                return -EBADMSG;
        *ret = r->p[r->off++];
        return 0;
}

int tm_reader_u32le(tm_reader *r, uint32_t *ret)
{
        if (tm_reader_left(r) < 4)
                return -EBADMSG;
        *ret = tm_get_u32le(r->p + r->off);
        r->off += 4;
        return 0;
}

int tm_reader_u64le(tm_reader *r, uint64_t *ret)
{
        if (tm_reader_left(r) < 8)
                return -EBADMSG;
        *ret = tm_get_u64le(r->p + r->off);
        r->off += 8;
        return 0;
}

int tm_reader_bytes(tm_reader *r, size_t n, const uint8_t **ret)
{
        if (tm_reader_left(r) < n)
                return -EBADMSG;
        *ret = r->p + r->off;
        r->off += n;
        return 0;
}

char *tm_strdup(const char *s)
{
        return s ? strdup(s) : NULL;
}

int tm_file_read_all(const char *path, size_t limit, tm_buf *b)
{
        int fd = -1, r = 0;
        tm_buf tmp = TM_BUF_INIT(limit);

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (;;) {
                size_t room = (limit ? limit : SIZE_MAX) - tmp.len, want = TM_MIN(room, 65536);
                uint8_t probe, *dst = &probe;
                ssize_t n;

                /* Reserve only what the limit allows (a file just under the
                 * limit must load); once full, read one byte on the side to
                 * tell "exactly at the limit" from "too big". */
                if (want > 0) {
                        r = tm_buf_reserve(&tmp, want);
                        if (r < 0)
                                goto out;
                        dst = tmp.data + tmp.len;
                }
                n = read(fd, dst, want ? want : 1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        goto out;
                }
                if (n == 0)
                        break;
                if (want == 0) {
                        r = -E2BIG;
                        goto out;
                }
                tmp.len += (size_t)n;
        }
        r = tm_buf_reserve(&tmp, 0); /* an empty file has no data yet */
        if (r < 0)
                goto out;
        tmp.data[tmp.len] = 0;
        tm_buf_move(b, &tmp);
out:
        tm_buf_dispose(&tmp);
        if (fd >= 0)
                close(fd);
        return r;
}

int tm_ncpu(void)
{
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        return n < 1 ? 1 : (int)n;
}
