/*
 * pg/parse.c: the pure parsers of the PostgreSQL module: WAL file names, the
 * long page header that starts every WAL segment, and the ustar stream that
 * BASE_BACKUP sends. Everything here is bounded and safe on hostile input
 * (tests/fuzz/fuzz_walhdr.c).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <tidemark/log.h>
#include <tidemark/pg.h>
#include <tidemark/time.h>

/* ---- WAL file names ---- */

static int parse_hex8(const char *s, uint32_t *ret)
{
        uint32_t v = 0;

        for (int i = 0; i < 8; i++) {
                char c = s[i];
                uint32_t d;

                if (c >= '0' && c <= '9')
                        d = (uint32_t)(c - '0');
                else if (c >= 'A' && c <= 'F')
                        d = (uint32_t)(c - 'A' + 10);
                else
                        return -EINVAL; /* PostgreSQL writes upper case only */
                v = v << 4 | d;
        }
        *ret = v;
        return 0;
}

int tm_pg_walname_parse(const char *name, struct tm_pg_walname *ret)
{
        struct tm_pg_walname w = { 0 };
        size_t n;
        uint32_t off;

        if (!name)
                return -EINVAL;
        n = strnlen(name, 64);
        if (n == 16 && strcmp(name + 8, ".history") == 0) {
                if (parse_hex8(name, &w.tli) < 0)
                        return -EINVAL;
                w.kind = TM_PG_WAL_HISTORY;
                goto done;
        }
        if (n < 24 || parse_hex8(name, &w.tli) < 0 || parse_hex8(name + 8, &w.log) < 0 ||
            parse_hex8(name + 16, &w.seg) < 0)
                return -EINVAL;
        if (n == 24)
                w.kind = TM_PG_WAL_SEGMENT;
        else if (n == 32 && strcmp(name + 24, ".partial") == 0)
                w.kind = TM_PG_WAL_PARTIAL;
        else if (n == 40 && name[24] == '.' && strcmp(name + 33, ".backup") == 0 &&
                 parse_hex8(name + 25, &off) == 0)
                w.kind = TM_PG_WAL_BACKUP;
        else
                return -EINVAL;
done:
        if (w.tli == 0)
                return -EINVAL;
        *ret = w;
        return 0;
}

/* ---- WAL page headers ---- */

#define XLP_LONG_HEADER 0x0002
#define XLP_ALL_FLAGS   0x000F

static const struct {
        uint16_t magic;
        int version;
} wal_magics[] = {
        { 0xD106, 13 }, { 0xD10D, 14 }, { 0xD110, 15 }, { 0xD113, 16 }, { 0xD116, 17 },
};

static int is_pow2(uint64_t v)
{
        return v && (v & (v - 1)) == 0;
}

static uint16_t get_u16le(const uint8_t *p)
{
        return (uint16_t)(p[0] | p[1] << 8);
}

int tm_pg_walhdr_parse(const void *p, size_t n, struct tm_pg_walhdr *ret)
{
        const uint8_t *b = p;
        struct tm_pg_walhdr h = { 0 };

        if (!p || n < TM_PG_WAL_LONG_HEADER_LEN)
                return -EBADMSG;
        /* XLogPageHeaderData: magic u16, info u16, tli u32, pageaddr u64,
         * rem_len u32, 4 bytes padding; then sysid u64, seg_size u32,
         * xlog_blcksz u32 */
        h.magic = get_u16le(b);
        h.info = get_u16le(b + 2);
        h.tli = tm_get_u32le(b + 4);
        h.pageaddr = tm_get_u64le(b + 8);
        h.sysid = tm_get_u64le(b + 24);
        h.seg_size = tm_get_u32le(b + 32);
        h.blcksz = tm_get_u32le(b + 36);
        for (size_t i = 0; i < TM_ARRAY_SIZE(wal_magics); i++)
                if (wal_magics[i].magic == h.magic)
                        h.pg_version = wal_magics[i].version;
        if (!h.pg_version || !(h.info & XLP_LONG_HEADER) || (h.info & ~XLP_ALL_FLAGS) || h.tli == 0)
                return -EBADMSG;
        if (!is_pow2(h.seg_size) || h.seg_size < (1u << 20) || h.seg_size > (1u << 30))
                return -EBADMSG;
        if (!is_pow2(h.blcksz) || h.blcksz < 1024 || h.blcksz > 65536)
                return -EBADMSG;
        if (h.pageaddr % h.seg_size)
                return -EBADMSG;
        *ret = h;
        return 0;
}

int tm_pg_wal_validate(const char *name, const void *head, size_t n, uint64_t file_size)
{
        struct tm_pg_walname w;
        struct tm_pg_walhdr h;
        uint64_t segno, per_log;

        if (tm_pg_walname_parse(name, &w) < 0)
                return -EINVAL;
        if (w.kind != TM_PG_WAL_SEGMENT)
                return 0;
        if (tm_pg_walhdr_parse(head, n, &h) < 0)
                return tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                    "WAL segment %s does not start with a valid page header", name);
        if (file_size != h.seg_size)
                return tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                    "WAL segment %s is %llu bytes, its header says %u", name,
                                    (unsigned long long)file_size, h.seg_size);
        /* the first segment of a new timeline starts as a copy of the old
         * timeline's, so its first page may carry an older timeline */
        if (h.tli > w.tli)
                return tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                    "WAL segment %s holds timeline %u, after its name's %u", name,
                                    h.tli, w.tli);
        /* the name is log (high 32 bits of the LSN) and the segment number
         * within it */
        per_log = UINT64_C(0x100000000) / h.seg_size;
        if (w.seg >= per_log)
                return tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                    "WAL segment %s: segment number out of range for %u-byte "
                                    "segments",
                                    name, h.seg_size);
        segno = (uint64_t)w.log * per_log + w.seg;
        if (h.pageaddr / h.seg_size != segno)
                return tm_log_errno(TM_LOG_ERR, -EBADMSG,
                                    "WAL segment %s starts at %X/%X, not where its name says", name,
                                    (unsigned)(h.pageaddr >> 32), (unsigned)h.pageaddr);
        return 0;
}

/* ---- tar ---- */

void tm_pg_tar_init(struct tm_pg_tar *t, const struct tm_pg_tar_ops *ops, void *userdata)
{
        *t = (struct tm_pg_tar){ .ops = ops, .userdata = userdata };
}

/* An octal field (NUL or space terminated, leading spaces allowed) or GNU
 * base-256 (high bit of the first byte). */
static int tar_number(const uint8_t *f, size_t len, uint64_t *ret)
{
        uint64_t v = 0;
        size_t i = 0;

        if (f[0] & 0x80) {
                if (f[0] != 0x80)
                        return -EBADMSG; /* negative or too large */
                for (i = 1; i < len; i++) {
                        if (v >> 56)
                                return -EBADMSG;
                        v = v << 8 | f[i];
                }
                *ret = v;
                return 0;
        }
        while (i < len && f[i] == ' ')
                i++;
        if (i == len || f[i] < '0' || f[i] > '7')
                return -EBADMSG;
        for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
                if (v >> 60)
                        return -EBADMSG;
                v = v << 3 | (uint64_t)(f[i] - '0');
        }
        for (; i < len; i++)
                if (f[i] != ' ' && f[i] != '\0')
                        return -EBADMSG;
        *ret = v;
        return 0;
}

static int tar_name_valid(const char *s)
{
        const char *c = s;

        if (!*s || *s == '/')
                return 0;
        while (*c) {
                const char *e = strchr(c, '/');
                size_t len = e ? (size_t)(e - c) : strlen(c);

                if (len == 0 || (len == 1 && c[0] == '.') ||
                    (len == 2 && c[0] == '.' && c[1] == '.'))
                        return 0;
                if (!e)
                        break;
                c = e + 1;
        }
        return 1;
}

static int tar_header(struct tm_pg_tar *t)
{
        const uint8_t *h = t->hdr;
        struct tm_pg_tar_entry e = { 0 };
        uint64_t sum = 0, want, v;
        size_t nlen, plen;
        int ustar;

        for (size_t i = 0; i < 512; i++)
                sum += (i >= 148 && i < 156) ? ' ' : h[i];
        if (tar_number(h + 148, 8, &want) < 0 || want != sum)
                return -EBADMSG;
        ustar = memcmp(h + 257, "ustar", 5) == 0;
        nlen = strnlen((const char *)h, 100);
        plen = ustar ? strnlen((const char *)h + 345, 155) : 0;
        if (plen + 1 + nlen > TM_PG_TAR_NAME_MAX)
                return -EBADMSG;
        if (plen) {
                memcpy(e.name, h + 345, plen);
                e.name[plen] = '/';
                memcpy(e.name + plen + 1, h, nlen);
                e.name[plen + 1 + nlen] = '\0';
        } else {
                memcpy(e.name, h, nlen);
                e.name[nlen] = '\0';
        }
        /* PostgreSQL names some members "./pg_wal/archive_status/" */
        while (e.name[0] == '.' && e.name[1] == '/')
                memmove(e.name, e.name + 2, strlen(e.name + 2) + 1);
        nlen = strlen(e.name);
        while (nlen > 0 && e.name[nlen - 1] == '/')
                e.name[--nlen] = '\0';
        if (memchr(e.name, '\0', nlen) || !tar_name_valid(e.name))
                return -EBADMSG;
        if (tar_number(h + 100, 8, &v) < 0)
                return -EBADMSG;
        e.mode = (uint32_t)(v & 07777);
        if (tar_number(h + 108, 8, &v) < 0 || v > UINT32_MAX)
                return -EBADMSG;
        e.uid = (uint32_t)v;
        if (tar_number(h + 116, 8, &v) < 0 || v > UINT32_MAX)
                return -EBADMSG;
        e.gid = (uint32_t)v;
        if (tar_number(h + 124, 12, &e.size) < 0 || e.size > (UINT64_C(1) << 50))
                return -EBADMSG;
        if (tar_number(h + 136, 12, &v) < 0 || v > (uint64_t)INT64_MAX)
                return -EBADMSG;
        e.mtime = (int64_t)v;
        switch (h[156]) {
        case '0':
        case '\0':
        case '7':
                e.type = '0';
                break;
        case '5':
                e.type = '5';
                e.size = 0;
                break;
        case '2':
                e.type = '2';
                e.size = 0;
                nlen = strnlen((const char *)h + 157, 100);
                if (nlen == 0)
                        return -EBADMSG;
                memcpy(e.linkname, h + 157, nlen);
                e.linkname[nlen] = '\0';
                break;
        default:
                return -EBADMSG; /* hard links, devices, pax and GNU extensions */
        }
        t->members++;
        t->in_member = 1;
        t->data_left = e.size;
        t->pad_left = (uint32_t)((512 - e.size % 512) % 512);
        return t->ops && t->ops->entry ? t->ops->entry(&e, t->userdata) : 0;
}

static int tar_member_end(struct tm_pg_tar *t)
{
        t->in_member = 0;
        return t->ops && t->ops->end ? t->ops->end(t->userdata) : 0;
}

int tm_pg_tar_feed(struct tm_pg_tar *t, const void *p, size_t n)
{
        const uint8_t *b = p;
        int r = 0;

        if (t->failed)
                return t->failed;
        while (n > 0) {
                if (t->zero_blocks >= 2) {
                        /* after the end marker only zero padding may follow */
                        for (size_t i = 0; i < n; i++)
                                if (b[i]) {
                                        r = -EBADMSG;
                                        goto out;
                                }
                        return 0;
                }
                if (t->in_member && t->data_left > 0) {
                        size_t k = n < t->data_left ? n : (size_t)t->data_left;

                        if (t->ops && t->ops->data) {
                                r = t->ops->data(b, k, t->userdata);
                                if (r < 0)
                                        goto out;
                        }
                        t->data_left -= k;
                        b += k;
                        n -= k;
                        continue;
                }
                if (t->in_member && t->pad_left > 0) {
                        size_t k = n < t->pad_left ? n : t->pad_left;

                        t->pad_left -= (uint32_t)k;
                        b += k;
                        n -= k;
                        continue;
                }
                if (t->in_member) {
                        r = tar_member_end(t);
                        if (r < 0)
                                goto out;
                        continue;
                }
                {
                        size_t k = 512 - t->hdr_fill;

                        if (k > n)
                                k = n;
                        memcpy(t->hdr + t->hdr_fill, b, k);
                        t->hdr_fill += k;
                        b += k;
                        n -= k;
                }
                if (t->hdr_fill < 512)
                        break;
                t->hdr_fill = 0;
                {
                        int zero = 1;

                        for (size_t i = 0; i < 512 && zero; i++)
                                zero = t->hdr[i] == 0;
                        if (zero) {
                                t->zero_blocks++;
                                continue;
                        }
                }
                if (t->zero_blocks) {
                        r = -EBADMSG; /* a lone zero block inside the archive */
                        goto out;
                }
                r = tar_header(t);
                if (r < 0)
                        goto out;
        }
        /* a member with no data and no padding ends right away */
        if (t->in_member && t->data_left == 0 && t->pad_left == 0) {
                r = tar_member_end(t);
                if (r < 0)
                        goto out;
        }
        return 0;
out:
        t->failed = r;
        return r;
}

int tm_pg_tar_finish(struct tm_pg_tar *t)
{
        if (t->failed)
                return t->failed;
        if (t->in_member || t->hdr_fill || t->zero_blocks == 1)
                return -EBADMSG;
        return 0;
}

void tm_pg_time_format(int64_t ns, char *out, size_t n)
{
        char iso[40];

        /* 2025-01-07T10:00:00.123456789Z -> 2025-01-07 10:00:00.123456+00 */
        tm_time_format_ns(ns, iso, sizeof(iso));
        if (strlen(iso) < 26) {
                snprintf(out, n, "%s", iso);
                return;
        }
        iso[10] = ' ';
        iso[26] = '\0';
        snprintf(out, n, "%s+00", iso);
}

/* ---- WAL records: commit times ---- */

#define XLP_FIRST_IS_CONTRECORD 0x0001
#define WAL_SHORT_PHD           24u /* MAXALIGN(sizeof(XLogPageHeaderData)) */
#define WAL_RECORD_HDR          24u /* SizeOfXLogRecord */
#define WAL_RECORD_MAX          (1u << 30)
#define RM_XACT_ID              1
#define XLOG_XACT_OPMASK        0x70
#define XLOG_XACT_COMMIT        0x00
#define XLOG_XACT_ABORT         0x20
#define XLOG_XACT_COMMIT_PREP   0x30
#define XLOG_XACT_ABORT_PREP    0x40
#define XLR_BLOCK_ID_DATA_SHORT 255
#define XLR_BLOCK_ID_DATA_LONG  254
#define XLR_BLOCK_ID_ORIGIN     253
#define XLR_BLOCK_ID_TOPLEVEL   252
/* PostgreSQL's epoch, 2000-01-01T00:00:00Z, in Unix seconds */
#define PG_EPOCH_UNIX INT64_C(946684800)
/* a transaction record's time is in its first bytes */
#define XACT_HEAD_MAX 32u

struct walrd {
        const uint8_t *p;
        size_t n; /* bytes available, from a segment boundary */
        uint32_t blcksz;
        uint16_t magic;
        uint64_t base; /* LSN of p[0] */
        size_t pos;    /* offset of the next byte */
};

/* The header of the page at pos: the segment's magic and the address the
 * page must have, so that a recycled segment's stale tail is never read as
 * WAL. Returns its info flags, or -1 where the valid WAL ends. */
static int page_check(const struct walrd *w, size_t pos)
{
        if (pos + WAL_SHORT_PHD > w->n || (uint16_t)(w->p[pos] | w->p[pos + 1] << 8) != w->magic ||
            tm_get_u64le(w->p + pos + 8) != w->base + pos)
                return -1;
        return w->p[pos + 2] | w->p[pos + 3] << 8;
}

/* Copy (out != NULL) or skip len bytes of one record from pos, stepping over
 * the headers of the pages it continues on. Returns 0, or -1 when the valid
 * WAL ends first. */
static int wal_read(struct walrd *w, uint8_t *out, size_t len)
{
        while (len > 0) {
                size_t in_page = w->pos % w->blcksz, k;

                if (in_page == 0) {
                        int info = page_check(w, w->pos);

                        if (info < 0 || !(info & XLP_FIRST_IS_CONTRECORD))
                                return -1;
                        w->pos += WAL_SHORT_PHD;
                        continue;
                }
                k = w->blcksz - in_page;
                if (k > len)
                        k = len;
                if (w->pos + k > w->n)
                        return -1;
                if (out) {
                        memcpy(out, w->p + w->pos, k);
                        out += k;
                }
                w->pos += k;
                len -= k;
        }
        return 0;
}

/* The time of a transaction record (main data: xl_xact_commit or
 * xl_xact_abort, both starting with a TimestampTz), or 0. */
static int64_t xact_time(const uint8_t *d, size_t n)
{
        size_t i = 0;
        int64_t us;

        while (i < n) {
                uint8_t id = d[i++];

                if (id == XLR_BLOCK_ID_ORIGIN)
                        i += 2;
                else if (id == XLR_BLOCK_ID_TOPLEVEL)
                        i += 4;
                else if (id == XLR_BLOCK_ID_DATA_SHORT)
                        i += 1;
                else if (id == XLR_BLOCK_ID_DATA_LONG)
                        i += 4;
                else
                        return 0; /* block references: not a plain transaction record */
                if (id == XLR_BLOCK_ID_DATA_SHORT || id == XLR_BLOCK_ID_DATA_LONG) {
                        if (i + 8 > n)
                                return 0;
                        us = (int64_t)tm_get_u64le(d + i);
                        if (us < -PG_EPOCH_UNIX * 1000000 || us > INT64_C(4) << 56)
                                return 0;
                        return (us + PG_EPOCH_UNIX * 1000000) * 1000;
                }
        }
        return 0;
}

int tm_pg_wal_scan(const void *p, size_t n, struct tm_pg_walscan *ret)
{
        struct tm_pg_walhdr h;
        struct walrd w = { .p = p, .n = n };
        struct tm_pg_walscan s = { 0 };
        uint8_t hdr[WAL_RECORD_HDR], head[XACT_HEAD_MAX];
        uint64_t prev = 0;

        if (tm_pg_walhdr_parse(p, n, &h) < 0)
                return -EBADMSG;
        w.blcksz = h.blcksz;
        w.magic = h.magic;
        w.base = h.pageaddr;
        if (w.n > h.seg_size)
                w.n = h.seg_size;
        s.tli = h.tli;
        s.start_lsn = h.pageaddr;
        w.pos = TM_PG_WAL_LONG_HEADER_LEN;
        if (h.info & XLP_FIRST_IS_CONTRECORD) {
                /* the tail of a record that began in the previous segment
                 * (counted there) */
                if (wal_read(&w, NULL, tm_get_u32le(w.p + 16)) < 0)
                        goto done;
                w.pos = (w.pos + 7) & ~(size_t)7;
        }
        s.end_lsn = w.base + w.pos;
        for (;;) {
                uint64_t start;
                uint32_t tot;
                size_t k;
                uint8_t rmid, info;

                if (w.pos % w.blcksz == 0) {
                        int pinfo = page_check(&w, w.pos);

                        if (pinfo < 0 || (pinfo & XLP_FIRST_IS_CONTRECORD))
                                break;
                        w.pos += WAL_SHORT_PHD;
                }
                start = w.base + w.pos;
                if (wal_read(&w, hdr, sizeof(hdr)) < 0)
                        break;
                tot = tm_get_u32le(hdr);
                /* zeroes (the end of what was written), or not a record that
                 * follows the previous one: the end of the valid WAL */
                if (tot < WAL_RECORD_HDR || tot > WAL_RECORD_MAX ||
                    (prev && tm_get_u64le(hdr + 8) != prev))
                        break;
                info = hdr[16];
                rmid = hdr[17];
                k = tot - WAL_RECORD_HDR;
                if (k > sizeof(head))
                        k = sizeof(head);
                if (wal_read(&w, head, k) < 0 || wal_read(&w, NULL, tot - WAL_RECORD_HDR - k) < 0)
                        break;
                s.records++;
                s.end_lsn = w.base + w.pos;
                prev = start;
                w.pos = (w.pos + 7) & ~(size_t)7;
                if (rmid == RM_XACT_ID) {
                        uint8_t op = info & XLOG_XACT_OPMASK;
                        int64_t t = 0;

                        if (op == XLOG_XACT_COMMIT || op == XLOG_XACT_ABORT ||
                            op == XLOG_XACT_COMMIT_PREP || op == XLOG_XACT_ABORT_PREP)
                                t = xact_time(head, k);
                        if (t) {
                                if (!s.commits || t < s.first_commit_ns)
                                        s.first_commit_ns = t;
                                if (!s.commits || t > s.last_commit_ns)
                                        s.last_commit_ns = t;
                                s.commits++;
                        }
                }
        }
done:
        if (!s.end_lsn)
                s.end_lsn = s.start_lsn;
        *ret = s;
        return 0;
}
