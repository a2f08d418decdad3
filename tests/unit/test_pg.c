/*
 * Unit tests of the pg module: WAL file names and page headers, the tar
 * stream parser (every slicing of a generated archive, hostile headers),
 * the recovery settings, and wal-push / wal-fetch against a scratch
 * repository. The base backup itself needs a server: see
 * tests/integration/pg_pitr.sh; here only its argument and connection
 * errors are tested.
 */
#include <tidemark/pg.h>

/* Does a tm_buf contain a string literal? */
#define HAS(buf, lit) memmem((buf).data, (buf).len, lit, sizeof(lit) - 1)

#include "tm_test_util.h"

/* ---- WAL file names ---- */

static void test_walname(void **state)
{
        struct tm_pg_walname w;

        (void)state;
        assert_int_equal(tm_pg_walname_parse("000000010000000A000000FF", &w), 0);
        assert_int_equal(w.kind, TM_PG_WAL_SEGMENT);
        assert_int_equal(w.tli, 1);
        assert_int_equal(w.log, 0xA);
        assert_int_equal(w.seg, 0xFF);
        assert_int_equal(tm_pg_walname_parse("0000000200000000000000030.partial", &w), -EINVAL);
        assert_int_equal(tm_pg_walname_parse("000000020000000000000003.partial", &w), 0);
        assert_int_equal(w.kind, TM_PG_WAL_PARTIAL);
        assert_int_equal(w.tli, 2);
        assert_int_equal(tm_pg_walname_parse("000000010000000000000002.00000028.backup", &w), 0);
        assert_int_equal(w.kind, TM_PG_WAL_BACKUP);
        assert_int_equal(tm_pg_walname_parse("0000000A.history", &w), 0);
        assert_int_equal(w.kind, TM_PG_WAL_HISTORY);
        assert_int_equal(w.tli, 10);
        /* refused: lower case, timeline 0, wrong lengths, other suffixes */
        assert_int_equal(tm_pg_walname_parse("000000010000000a000000ff", &w), -EINVAL);
        assert_int_equal(tm_pg_walname_parse("000000000000000000000001", &w), -EINVAL);
        assert_int_equal(tm_pg_walname_parse("00000000.history", &w), -EINVAL);
        assert_int_equal(tm_pg_walname_parse("00000001000000000000000", &w), -EINVAL);
        assert_int_equal(tm_pg_walname_parse("0000000100000000000000010", &w), -EINVAL);
        assert_int_equal(tm_pg_walname_parse("000000010000000000000001.gz", &w), -EINVAL);
        assert_int_equal(tm_pg_walname_parse("../00000001.history", &w), -EINVAL);
        assert_int_equal(tm_pg_walname_parse("", &w), -EINVAL);
        assert_int_equal(tm_pg_walname_parse(NULL, &w), -EINVAL);
}

/* ---- WAL page headers ---- */

static void make_hdr(uint8_t h[TM_PG_WAL_LONG_HEADER_LEN], uint16_t magic, uint32_t tli,
                     uint64_t pageaddr, uint32_t segsz)
{
        memset(h, 0, TM_PG_WAL_LONG_HEADER_LEN);
        h[0] = (uint8_t)magic;
        h[1] = (uint8_t)(magic >> 8);
        h[2] = 0x07; /* XLP_LONG_HEADER | XLP_BKP_REMOVABLE | XLP_FIRST_IS_CONTRECORD */
        tm_set_u32le(h + 4, tli);
        tm_set_u64le(h + 8, pageaddr);
        tm_set_u64le(h + 24, UINT64_C(7301234567890123456));
        tm_set_u32le(h + 32, segsz);
        tm_set_u32le(h + 36, 8192);
}

static void test_walhdr(void **state)
{
        uint8_t h[TM_PG_WAL_LONG_HEADER_LEN];
        struct tm_pg_walhdr w;

        (void)state;
        make_hdr(h, 0xD110, 3, UINT64_C(0x500000000), 16u << 20);
        assert_int_equal(tm_pg_walhdr_parse(h, sizeof(h), &w), 0);
        assert_int_equal(w.pg_version, 15);
        assert_int_equal(w.tli, 3);
        assert_true(w.pageaddr == UINT64_C(0x500000000));
        assert_true(w.sysid == UINT64_C(7301234567890123456));
        assert_int_equal(w.seg_size, 16u << 20);
        assert_int_equal(w.blcksz, 8192);
        /* short */
        assert_int_equal(tm_pg_walhdr_parse(h, sizeof(h) - 1, &w), -EBADMSG);
        /* unknown magic */
        make_hdr(h, 0xD0FF, 3, 0, 16u << 20);
        assert_int_equal(tm_pg_walhdr_parse(h, sizeof(h), &w), -EBADMSG);
        /* not a long header */
        make_hdr(h, 0xD110, 3, 0, 16u << 20);
        h[2] = 0x01;
        assert_int_equal(tm_pg_walhdr_parse(h, sizeof(h), &w), -EBADMSG);
        /* timeline 0 */
        make_hdr(h, 0xD110, 0, 0, 16u << 20);
        assert_int_equal(tm_pg_walhdr_parse(h, sizeof(h), &w), -EBADMSG);
        /* segment size not a power of two, too small, too big */
        make_hdr(h, 0xD110, 1, 0, 3u << 20);
        assert_int_equal(tm_pg_walhdr_parse(h, sizeof(h), &w), -EBADMSG);
        make_hdr(h, 0xD110, 1, 0, 1u << 19);
        assert_int_equal(tm_pg_walhdr_parse(h, sizeof(h), &w), -EBADMSG);
        make_hdr(h, 0xD110, 1, 0, 1u << 31);
        assert_int_equal(tm_pg_walhdr_parse(h, sizeof(h), &w), -EBADMSG);
        /* page address inside a segment */
        make_hdr(h, 0xD110, 1, 0x1000, 16u << 20);
        assert_int_equal(tm_pg_walhdr_parse(h, sizeof(h), &w), -EBADMSG);
        /* PostgreSQL 17 and 1 GiB segments */
        make_hdr(h, 0xD116, 1, UINT64_C(3) << 30, 1u << 30);
        assert_int_equal(tm_pg_walhdr_parse(h, sizeof(h), &w), 0);
        assert_int_equal(w.pg_version, 17);
}

static void test_wal_validate(void **state)
{
        uint8_t h[TM_PG_WAL_LONG_HEADER_LEN];
        const uint64_t seg = 16u << 20;

        (void)state;
        /* segment 0x5_0000000A: pageaddr = (5 * 256 + 10) * 16 MiB */
        make_hdr(h, 0xD110, 2, ((uint64_t)5 * 256 + 10) * seg, (uint32_t)seg);
        assert_int_equal(tm_pg_wal_validate("00000002000000050000000A", h, sizeof(h), seg), 0);
        /* the first segment of timeline 3 may begin with timeline 2's pages */
        assert_int_equal(tm_pg_wal_validate("00000003000000050000000A", h, sizeof(h), seg), 0);
        /* wrong size, timeline (older name than header), position */
        assert_int_equal(tm_pg_wal_validate("00000002000000050000000A", h, sizeof(h), seg - 1),
                         -EBADMSG);
        assert_int_equal(tm_pg_wal_validate("00000001000000050000000A", h, sizeof(h), seg),
                         -EBADMSG);
        assert_int_equal(tm_pg_wal_validate("00000002000000050000000B", h, sizeof(h), seg),
                         -EBADMSG);
        /* segment number beyond 256 per log with 16 MiB segments */
        assert_int_equal(tm_pg_wal_validate("000000020000000500000100", h, sizeof(h), seg),
                         -EBADMSG);
        /* garbage contents */
        memset(h, 0xAB, sizeof(h));
        assert_int_equal(tm_pg_wal_validate("00000002000000050000000A", h, sizeof(h), seg),
                         -EBADMSG);
        /* other kinds: only the name counts */
        assert_int_equal(tm_pg_wal_validate("00000002.history", "x", 1, 1), 0);
        assert_int_equal(tm_pg_wal_validate("nonsense", h, sizeof(h), seg), -EINVAL);
}

/* ---- tar ---- */

static void tar_octal(uint8_t *f, size_t len, uint64_t v)
{
        /* like PostgreSQL: zero-padded octal and a trailing space */
        f[len - 1] = ' ';
        for (size_t i = len - 1; i-- > 0;) {
                f[i] = (uint8_t)('0' + (v & 7));
                v >>= 3;
        }
}

static void tar_checksum(uint8_t *h)
{
        uint64_t sum = 0;

        memset(h + 148, ' ', 8);
        for (size_t i = 0; i < 512; i++)
                sum += h[i];
        tar_octal(h + 148, 8, sum);
}

/* Append a member: header, data, padding. */
static void tar_add(tm_buf *b, const char *name, char type, const char *link, const void *data,
                    size_t n)
{
        uint8_t h[512] = { 0 };
        static const uint8_t zero[512];

        memcpy(h, name, strlen(name));
        tar_octal(h + 100, 8, type == '5' ? 0700 : 0600);
        tar_octal(h + 108, 8, 105);
        tar_octal(h + 116, 8, 106);
        tar_octal(h + 124, 12, n);
        tar_octal(h + 136, 12, 1700000000);
        h[156] = (uint8_t)type;
        if (link)
                memcpy(h + 157, link, strlen(link));
        memcpy(h + 257,
               "ustar\0"
               "00",
               8);
        tar_checksum(h);
        assert_int_equal(tm_buf_append(b, h, 512), 0);
        if (n) {
                assert_int_equal(tm_buf_append(b, data, n), 0);
                if (n % 512)
                        assert_int_equal(tm_buf_append(b, zero, 512 - n % 512), 0);
        }
}

struct collect {
        tm_buf log;
        int fail_at_entry; /* return -EIO at this entry number (1-based), 0: never */
        int entries;
};

static int col_entry(const struct tm_pg_tar_entry *e, void *u)
{
        struct collect *c = u;

        c->entries++;
        if (c->fail_at_entry && c->entries == c->fail_at_entry)
                return -EIO;
        return tm_buf_printf(&c->log, "[%c %s %o %u:%u %llu %lld%s%s]", e->type, e->name, e->mode,
                             e->uid, e->gid, (unsigned long long)e->size, (long long)e->mtime,
                             *e->linkname ? " -> " : "", e->linkname);
}

static int col_data(const void *p, size_t n, void *u)
{
        struct collect *c = u;

        return tm_buf_append(&c->log, p, n);
}

static int col_end(void *u)
{
        struct collect *c = u;

        return tm_buf_append(&c->log, "|", 1);
}

static const struct tm_pg_tar_ops col_ops = { col_entry, col_data, col_end };

/* Parse buf fed in pieces of `step` bytes; the log into c. */
static int tar_parse(const tm_buf *buf, size_t step, struct collect *c)
{
        struct tm_pg_tar t;
        int r = 0;

        tm_pg_tar_init(&t, &col_ops, c);
        for (size_t i = 0; i < buf->len && r == 0; i += step)
                r = tm_pg_tar_feed(&t, buf->data + i, buf->len - i < step ? buf->len - i : step);
        return r < 0 ? r : tm_pg_tar_finish(&t);
}

static void make_archive(tm_buf *b, uint64_t *seed)
{
        static uint8_t big[70000];

        tmt_fill(seed, big, sizeof(big));
        tar_add(b, "backup_label", '0', NULL, "START WAL LOCATION: 0/2000028\n", 30);
        tar_add(b, "base/", '5', NULL, NULL, 0);
        tar_add(b, "base/1/", '5', NULL, NULL, 0);
        tar_add(b, "base/1/1259", '0', NULL, big, sizeof(big));
        tar_add(b, "base/1/empty", '0', NULL, NULL, 0);
        tar_add(b, "base/1/exact", '0', NULL, big, 1024);
        tar_add(b, "./pg_wal/archive_status/", '5', NULL, NULL, 0);
        tar_add(b, "pg_tblspc/16384", '2', "/srv/ts", NULL, 0);
}

static void test_tar_slicings(void **state)
{
        tm_buf arch = TM_BUF_INIT(1u << 20);
        struct collect ref = { .log = TM_BUF_INIT(1u << 20) };
        uint64_t seed = tmt_seed();
        static const size_t steps[] = { 1, 7, 511, 512, 513, 4096, 1u << 20 };

        (void)state;
        make_archive(&arch, &seed);
        assert_int_equal(tar_parse(&arch, arch.len, &ref), 0);
        assert_int_equal(ref.entries, 8);
        /* names normalised, attributes decoded, data passed through */
        assert_non_null(HAS(ref.log, "[0 backup_label 600 105:106 30 1700000000]START WAL"));
        assert_non_null(HAS(ref.log, "[5 base 700 105:106 0 1700000000]|"));
        assert_non_null(HAS(ref.log, "[5 pg_wal/archive_status 700 105:106 0 1700000000]|"));
        assert_non_null(HAS(ref.log, "[2 pg_tblspc/16384 600 105:106 0 1700000000 -> /srv/ts]|"));
        assert_non_null(HAS(ref.log, "[0 base/1/empty 600 105:106 0 1700000000]|"));
        for (size_t i = 0; i < TM_ARRAY_SIZE(steps); i++) {
                struct collect c = { .log = TM_BUF_INIT(1u << 20) };

                assert_int_equal(tar_parse(&arch, steps[i], &c), 0);
                assert_int_equal(c.log.len, ref.log.len);
                assert_memory_equal(c.log.data, ref.log.data, ref.log.len);
                tm_buf_dispose(&c.log);
        }
        /* the two zero blocks of a standard archive, then more zeros, are fine */
        {
                static const uint8_t zero[1536];
                struct collect c = { .log = TM_BUF_INIT(1u << 20) };

                assert_int_equal(tm_buf_append(&arch, zero, sizeof(zero)), 0);
                assert_int_equal(tar_parse(&arch, 100, &c), 0);
                assert_int_equal(c.entries, 8);
                tm_buf_dispose(&c.log);
        }
        tm_buf_dispose(&ref.log);
        tm_buf_dispose(&arch);
}

static int parse_one(const char *name, char type, const char *link, size_t n)
{
        tm_buf b = TM_BUF_INIT(1u << 20);
        struct collect c = { .log = TM_BUF_INIT(1u << 20) };
        static uint8_t data[1000];
        int r;

        tar_add(&b, name, type, link, data, n);
        r = tar_parse(&b, 100, &c);
        tm_buf_dispose(&b);
        tm_buf_dispose(&c.log);
        return r;
}

static void test_tar_hostile(void **state)
{
        tm_buf b = TM_BUF_INIT(1u << 20);
        struct collect c = { .log = TM_BUF_INIT(1u << 20) };
        struct tm_pg_tar t;
        uint64_t seed = tmt_seed();

        (void)state;
        assert_int_equal(parse_one("ok", '0', NULL, 10), 0);
        assert_int_equal(parse_one("../etc/passwd", '0', NULL, 10), -EBADMSG);
        assert_int_equal(parse_one("a/../../b", '0', NULL, 10), -EBADMSG);
        assert_int_equal(parse_one("/etc/passwd", '0', NULL, 10), -EBADMSG);
        assert_int_equal(parse_one("a//b", '0', NULL, 10), -EBADMSG);
        assert_int_equal(parse_one("a/./b", '0', NULL, 10), -EBADMSG);
        assert_int_equal(parse_one("./", '5', NULL, 0), -EBADMSG);
        assert_int_equal(parse_one("hard", '1', "ok", 0), -EBADMSG);
        assert_int_equal(parse_one("pax", 'x', NULL, 10), -EBADMSG);
        assert_int_equal(parse_one("dev", '3', NULL, 0), -EBADMSG);
        assert_int_equal(parse_one("link", '2', "", 0), -EBADMSG);

        /* a bad checksum */
        make_archive(&b, &seed);
        b.data[0] ^= 1;
        assert_int_equal(tar_parse(&b, 512, &c), -EBADMSG);
        /* truncated inside a member's data, and inside a header */
        tm_buf_clear(&b);
        make_archive(&b, &seed);
        b.len = 512 + 10;
        assert_int_equal(tar_parse(&b, 512, &c), -EBADMSG);
        b.len = 100;
        assert_int_equal(tar_parse(&b, 512, &c), -EBADMSG);
        /* a lone zero block followed by a member */
        tm_buf_clear(&b);
        {
                static const uint8_t zero[512];

                assert_int_equal(tm_buf_append(&b, zero, 512), 0);
        }
        tar_add(&b, "x", '0', NULL, "y", 1);
        assert_int_equal(tar_parse(&b, 512, &c), -EBADMSG);
        /* a callback's error stops the parser and sticks */
        tm_buf_clear(&b);
        make_archive(&b, &seed);
        c.entries = 0;
        c.fail_at_entry = 2;
        tm_pg_tar_init(&t, &col_ops, &c);
        assert_int_equal(tm_pg_tar_feed(&t, b.data, b.len), -EIO);
        assert_int_equal(tm_pg_tar_feed(&t, b.data, 1), -EIO);
        assert_int_equal(tm_pg_tar_finish(&t), -EIO);
        /* base-256 size */
        tm_buf_clear(&b);
        {
                uint8_t h[512] = { 0 };
                struct collect c2 = { .log = TM_BUF_INIT(1u << 20) };

                memcpy(h, "big", 3);
                tar_octal(h + 100, 8, 0600);
                tar_octal(h + 108, 8, 0);
                tar_octal(h + 116, 8, 0);
                memset(h + 124, 0, 12);
                h[124] = 0x80;
                h[135] = 3; /* 3 bytes */
                tar_octal(h + 136, 12, 0);
                h[156] = '0';
                tar_checksum(h);
                assert_int_equal(tm_buf_append(&b, h, 512), 0);
                assert_int_equal(tm_buf_append(&b, "abc", 3), 0);
                {
                        static const uint8_t zero[509];

                        assert_int_equal(tm_buf_append(&b, zero, sizeof(zero)), 0);
                }
                assert_int_equal(tar_parse(&b, 512, &c2), 0);
                assert_non_null(HAS(c2.log, "[0 big 600 0:0 3 0]abc|"));
                tm_buf_dispose(&c2.log);
        }
        tm_buf_dispose(&c.log);
        tm_buf_dispose(&b);
}

/* ---- small helpers ---- */

static void test_time_and_component(void **state)
{
        char out[48], comp[16];

        (void)state;
        tm_pg_time_format(tmt_time("2025-01-07T10:00:00.123456789Z"), out, sizeof(out));
        assert_string_equal(out, "2025-01-07 10:00:00.123456+00");
        tm_pg_time_format(tmt_time("2025-01-07T10:00:00Z"), out, sizeof(out));
        assert_string_equal(out, "2025-01-07 10:00:00.000000+00");
        assert_int_equal(tm_pg_wal_component("database", comp, sizeof(comp)), 0);
        assert_string_equal(comp, "database-wal");
        assert_int_equal(tm_pg_wal_component(NULL, comp, sizeof(comp)), 0);
        assert_string_equal(comp, "database-wal");
        assert_int_equal(tm_pg_wal_component("a-very-long-component", comp, sizeof(comp)),
                         -ENAMETOOLONG);
}

static void test_recovery_write(void **state)
{
        char *dir = tmt_mkdtemp(), p[PATH_MAX];
        tm_buf b = TM_BUF_INIT(1u << 20);
        struct stat st;

        (void)state;
        tmt_path(p, sizeof(p), dir, "postgresql.auto.conf");
        tmt_write(p, "# Do not edit\nwork_mem = '4MB'\n", 31);
        assert_int_equal(tm_pg_recovery_write(dir, "/bin/tm -r '/x y' wal-fetch %f %p",
                                              tmt_time("2025-01-07T10:00:00.5Z")),
                         0);
        tmt_read(p, &b);
        assert_int_equal(tm_buf_append(&b, "", 1), 0);
        assert_non_null(strstr((char *)b.data, "# Do not edit\nwork_mem = '4MB'\n"));
        assert_non_null(strstr((char *)b.data,
                               "restore_command = '/bin/tm -r ''/x y'' wal-fetch %f %p'\n"));
        assert_non_null(
                strstr((char *)b.data, "recovery_target_time = '2025-01-07 10:00:00.500000+00'\n"));
        assert_non_null(strstr((char *)b.data, "recovery_target_action = 'promote'\n"));
        assert_non_null(strstr((char *)b.data, "recovery_target_timeline = 'latest'\n"));
        tmt_path(p, sizeof(p), dir, "recovery.signal");
        assert_int_equal(stat(p, &st), 0);
        assert_true(S_ISREG(st.st_mode) && st.st_size == 0);
        /* no target: no recovery_target_time */
        tmt_rm_rf(dir);
        free(dir);
        dir = tmt_mkdtemp();
        assert_int_equal(tm_pg_recovery_write(dir, "cmd %f %p", 0), 0);
        tmt_path(p, sizeof(p), dir, "postgresql.auto.conf");
        tm_buf_clear(&b);
        tmt_read(p, &b);
        assert_int_equal(tm_buf_append(&b, "", 1), 0);
        assert_null(strstr((char *)b.data, "recovery_target_time ="));
        assert_non_null(strstr((char *)b.data, "restore_command = 'cmd %f %p'\n"));
        /* refused */
        assert_int_equal(tm_pg_recovery_write(dir, "", 0), -EINVAL);
        assert_int_equal(tm_pg_recovery_write(dir, "a\nb", 0), -EINVAL);
        tmt_path(p, sizeof(p), dir, "missing");
        assert_int_equal(tm_pg_recovery_write(p, "cmd", 0), -ENOENT);
        tm_buf_dispose(&b);
        tmt_rm_rf(dir);
        free(dir);
}

/* ---- wal-push / wal-fetch / window against a repository ---- */

/* A plausible 1 MiB segment file (the smallest size PostgreSQL allows). */
static void write_segment(const char *path, const char *name, uint64_t *seed)
{
        static uint8_t seg[1u << 20];
        struct tm_pg_walname w;

        assert_int_equal(tm_pg_walname_parse(name, &w), 0);
        tmt_fill(seed, seg, sizeof(seg));
        make_hdr(seg, 0xD110, w.tli, ((uint64_t)w.log * 4096 + w.seg) * sizeof(seg), sizeof(seg));
        tmt_write(path, seg, sizeof(seg));
}

static void test_wal_push_fetch(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        uint64_t seed = tmt_seed();
        char p[PATH_MAX], q[PATH_MAX];
        const char *name = "000000010000000000000003";
        tm_buf a = TM_BUF_INIT(4u << 20), b = TM_BUF_INIT(4u << 20);
        struct tm_snapshot *snaps = NULL;
        size_t n = 0;

        (void)state;
        tmt_path(p, sizeof(p), f->src, name);
        write_segment(p, name, &seed);
        assert_int_equal(tm_pg_wal_fetch(f->r, "database", name, p), -ENOENT);
        assert_int_equal(tm_pg_wal_push(f->r, "database", p), 0);
        /* one snapshot of database-wal, tagged with the name */
        assert_int_equal(tm_repo_snapshot_list(f->r, "database-wal", &snaps, &n), 0);
        assert_int_equal(n, 1);
        assert_int_equal(snaps[0].n_tags, 1);
        assert_string_equal(snaps[0].tags[0], name);
        tm_snapshot_array_free(snaps, n);
        /* fetched bytes are the pushed ones */
        tmt_path(q, sizeof(q), f->dir, "RECOVERYXLOG");
        assert_int_equal(tm_pg_wal_fetch(f->r, "database", name, q), 0);
        tmt_read(p, &a);
        tmt_read(q, &b);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        /* another component's archive does not have it */
        assert_int_equal(tm_pg_wal_fetch(f->r, "other", name, q), -ENOENT);
        /* a retry with the same bytes is a success and writes nothing */
        assert_int_equal(tm_pg_wal_push(f->r, "database", p), 0);
        assert_int_equal(tmt_snapshot_count(f->r), 1);
        /* different bytes under the same name are refused */
        tmt_flip_byte(p, 5000);
        assert_int_equal(tm_pg_wal_push(f->r, "database", p), -EEXIST);
        /* a segment under a name that does not match its header */
        tmt_path(q, sizeof(q), f->src, "000000010000000000000004");
        assert_int_equal(rename(p, q), 0);
        assert_int_equal(tm_pg_wal_push(f->r, "database", q), -EBADMSG);
        /* not a WAL name, and a missing file */
        tmt_path(q, sizeof(q), f->src, "junk");
        tmt_write(q, "x", 1);
        assert_int_equal(tm_pg_wal_push(f->r, "database", q), -EINVAL);
        tmt_path(q, sizeof(q), f->src, "000000010000000000000009");
        assert_int_equal(tm_pg_wal_push(f->r, "database", q), -ENOENT);
        assert_int_equal(tm_pg_wal_fetch(f->r, "database", "junk", q), -EINVAL);
        /* history files are archived as they are */
        tmt_path(p, sizeof(p), f->src, "00000002.history");
        tmt_write(p, "1\t0/3000000\tno recovery target specified\n", 41);
        assert_int_equal(tm_pg_wal_push(f->r, "database", p), 0);
        tmt_path(q, sizeof(q), f->dir, "h");
        assert_int_equal(tm_pg_wal_fetch(f->r, "database", "00000002.history", q), 0);
        tmt_read(q, &b);
        assert_int_equal(b.len, 41);
        assert_memory_equal(b.data, "1\t0/3000000", 11);
        tm_buf_dispose(&a);
        tm_buf_dispose(&b);
        tmt_fix_free(f);
}

/* ---- synthetic WAL: a 1 MiB segment of 8 KiB pages ---- */

#define SEG         (1u << 20)
#define PAGE        8192u
#define PG_EPOCH_US (INT64_C(946684800) * 1000000)

struct walgen {
        uint8_t *seg;
        uint64_t base; /* LSN of seg[0] */
        size_t pos;
        uint64_t prev;
        uint32_t tli;
};

static void walgen_page(struct walgen *g, size_t at, uint16_t info, uint32_t rem)
{
        uint8_t *h = g->seg + at;

        memset(h, 0, 24);
        h[0] = 0x10;
        h[1] = 0xD1;
        h[2] = (uint8_t)info;
        tm_set_u32le(h + 4, g->tli);
        tm_set_u64le(h + 8, g->base + at);
        tm_set_u32le(h + 16, rem);
}

/* Start a segment whose first rem bytes finish a record of the previous one. */
static void walgen_init(struct walgen *g, uint64_t base, uint32_t tli, uint32_t rem)
{
        g->seg = calloc(1, SEG);
        assert_non_null(g->seg);
        g->base = base;
        g->tli = tli;
        make_hdr(g->seg, 0xD110, tli, base, SEG);
        g->seg[2] = rem ? 0x03 : 0x02;
        tm_set_u32le(g->seg + 16, rem);
        g->pos = TM_PG_WAL_LONG_HEADER_LEN + ((rem + 7) & ~7u);
        g->prev = 0;
}

/* Append one record (its bytes cross pages as PostgreSQL writes them:
 * each page it continues on says so, with the bytes still to come). */
static void walgen_record(struct walgen *g, uint8_t rmid, uint8_t info, const void *data,
                          size_t len)
{
        uint8_t rec[4096];
        size_t tot = 24 + len, done = 0;

        assert_true(tot <= sizeof(rec));
        memset(rec, 0, 24);
        tm_set_u32le(rec, (uint32_t)tot);
        tm_set_u64le(rec + 8, g->prev);
        rec[16] = info;
        rec[17] = rmid;
        memcpy(rec + 24, data, len);
        if (g->pos % PAGE == 0) {
                walgen_page(g, g->pos, 0, 0);
                g->pos += 24;
        }
        g->prev = g->base + g->pos;
        while (done < tot) {
                size_t room = PAGE - g->pos % PAGE, k = tot - done < room ? tot - done : room;

                if (g->pos >= SEG)
                        return; /* continues into the next segment */
                memcpy(g->seg + g->pos, rec + done, k);
                done += k;
                g->pos += k;
                if (done < tot && g->pos % PAGE == 0 && g->pos < SEG) {
                        walgen_page(g, g->pos, 0x01, (uint32_t)(tot - done));
                        g->pos += 24;
                }
        }
        g->pos = (g->pos + 7) & ~(size_t)7;
}

/* A commit record at unix time us (microseconds). */
static void walgen_commit(struct walgen *g, int64_t unix_us, uint8_t op)
{
        uint8_t d[10] = { 0xFF, 8 };

        tm_set_u64le(d + 2, (uint64_t)(unix_us - PG_EPOCH_US));
        walgen_record(g, 1, op, d, sizeof(d));
}

static void walgen_filler(struct walgen *g, size_t len)
{
        uint8_t d[4000];

        memset(d, 0x5A, sizeof(d));
        walgen_record(g, 10, 0, d, len);
}

static void test_wal_scan(void **state)
{
        struct walgen g;
        struct tm_pg_walscan sc;
        const int64_t t0 = INT64_C(1736244000000000); /* 2025-01-07T10:00:00Z in us */
        size_t end;

        (void)state;
        /* a segment that begins with the 100-byte tail of a record */
        walgen_init(&g, UINT64_C(0x300000000) + 3 * SEG, 2, 100);
        walgen_commit(&g, t0, 0x00);
        for (int i = 0; i < 5; i++)
                walgen_filler(&g, 3000);                 /* crosses page boundaries */
        walgen_commit(&g, t0 + 5, 0x20);                 /* an abort is a recovery target too */
        walgen_filler(&g, PAGE - g.pos % PAGE - 24 - 8); /* ends 8 bytes before a page */
        walgen_commit(&g, t0 + 9, 0x30);                 /* its header is split across the pages */
        walgen_record(&g, 1, 0x10, "\xFF\x08\0\0\0\0\0\0\0\0", 10); /* a PREPARE: not a target */
        end = g.pos;
        assert_int_equal(tm_pg_wal_scan(g.seg, SEG, &sc), 0);
        assert_int_equal(sc.tli, 2);
        assert_true(sc.start_lsn == g.base);
        assert_int_equal(sc.records, 10);
        assert_int_equal(sc.commits, 3);
        assert_true(sc.first_commit_ns == t0 * 1000);
        assert_true(sc.last_commit_ns == (t0 + 9) * 1000);
        assert_true(sc.end_lsn == g.base + end - 6); /* 34-byte record, padded to 40 */

        /* the head of a segment still being written: only complete records */
        assert_int_equal(tm_pg_wal_scan(g.seg, end - 10, &sc), 0);
        assert_int_equal(sc.records, 9);
        assert_int_equal(sc.commits, 3);
        assert_int_equal(tm_pg_wal_scan(g.seg, 5000, &sc), 0);
        assert_int_equal(sc.commits, 1);

        /* a record whose xl_prev does not point back ends the valid WAL */
        walgen_commit(&g, t0 + 20, 0x00);
        tm_set_u64le(g.seg + end + 8, 12345);
        assert_int_equal(tm_pg_wal_scan(g.seg, SEG, &sc), 0);
        assert_int_equal(sc.records, 10);
        tm_set_u64le(g.seg + end + 8, g.base + end - 40);

        /* a stale page (a recycled segment's old address) ends it too */
        while (g.pos < 8 * PAGE)
                walgen_filler(&g, 2000);
        walgen_commit(&g, t0 + 30, 0x00);
        assert_int_equal(tm_pg_wal_scan(g.seg, SEG, &sc), 0);
        assert_true(sc.last_commit_ns == (t0 + 30) * 1000);
        tm_set_u64le(g.seg + 8 * PAGE + 8, g.base - SEG + 8 * PAGE);
        assert_int_equal(tm_pg_wal_scan(g.seg, SEG, &sc), 0);
        assert_true(sc.last_commit_ns == (t0 + 20) * 1000);
        assert_true(sc.end_lsn <= g.base + 8 * PAGE);

        /* not a segment */
        assert_int_equal(tm_pg_wal_scan(g.seg + 1, SEG - 1, &sc), -EBADMSG);
        assert_int_equal(tm_pg_wal_scan(g.seg, 10, &sc), -EBADMSG);
        free(g.seg);
}

/* Push a synthetic segment segno on timeline tli with commits at the given
 * unix seconds (0-terminated) through tm_pg_wal_push. */
static void push_seg(struct tmt_fix *f, uint32_t tli, unsigned segno, const int64_t *secs,
                     int partial)
{
        struct walgen g;
        char name[64], p[PATH_MAX];

        walgen_init(&g, (uint64_t)segno * SEG, tli, 0);
        for (; *secs; secs++)
                walgen_commit(&g, *secs * 1000000, 0x00);
        snprintf(name, sizeof(name), "%08X%08X%08X%s", tli, 0u, segno, partial ? ".partial" : "");
        tmt_path(p, sizeof(p), f->src, name);
        tmt_write(p, g.seg, SEG);
        assert_int_equal(tm_pg_wal_push(f->r, "database", p), 0);
        free(g.seg);
}

/* A base backup manifest (no files) that ended at unix second t, starting
 * in segment segno. */
static void base_snap(struct tmt_fix *f, int64_t t, unsigned segno, uint32_t tli)
{
        struct tm_snapshot s = { 0 };
        char extra[256];

        snprintf(extra, sizeof(extra),
                 "{\"postgres\":{\"start_lsn\":\"0/%X\",\"timeline\":%u,"
                 "\"wal_segment_size\":%u}}",
                 segno * SEG + 0x28, tli, SEG);
        s.time = t * TM_NSEC_PER_SEC;
        s.host = strdup("h");
        s.username = strdup("u");
        s.component = strdup("database");
        s.strategy = strdup("full");
        s.extra_json = strdup(extra);
        assert_int_equal(tm_repo_snapshot_save(f->r, &s), 0);
        tm_snapshot_dispose(&s);
}

static void test_windows(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_pg_windows ws = { 0 };
        struct tm_pg_plan plan = { 0 };
        struct tm_pg_walseg *e = NULL;
        size_t n = 0;
        const int64_t T = 1736244000; /* 2025-01-07T10:00:00Z */
        char err[2048];
        const int64_t c3[] = { T + 10, T + 20, 0 }, c4[] = { T + 30, 0 }, none[] = { 0 };
        const int64_t c5a[] = { T + 40, T + 45, 0 }, c5b[] = { T + 40, T + 50, 0 };
        const int64_t c6[] = { T + 60, 0 }, c9[] = { T + 90, 0 }, c10[] = { T + 100, 0 };

        (void)state;
        assert_int_equal(tm_pg_windows_get(f->r, "database", &ws), -ENOENT);
        assert_int_equal(
                tm_pg_plan_pitr(f->r, "database", T * TM_NSEC_PER_SEC, &plan, err, sizeof(err)),
                -ENOENT);
        assert_non_null(strstr(err, "no PostgreSQL base backup"));
        base_snap(f, T + 5, 3, 1);
        push_seg(f, 1, 2, none, 0); /* before the base backup: not in a window */
        push_seg(f, 1, 3, c3, 0);
        push_seg(f, 1, 4, c4, 0);
        /* the index is the manifests' extra.wal */
        assert_int_equal(tm_pg_wal_index(f->r, "database", SEG, &e, &n), 0);
        assert_int_equal(n, 3);
        assert_true(e[1].segno == 3 && e[1].indexed && e[1].commits == 2);
        assert_true(e[1].last_commit_ns == (T + 20) * TM_NSEC_PER_SEC);
        free(e);
        assert_int_equal(tm_pg_windows_get(f->r, "database", &ws), 0);
        assert_int_equal(ws.n, 1);
        assert_int_equal(ws.n_gaps, 0);
        assert_true(ws.w[0].earliest_ns == (T + 5) * TM_NSEC_PER_SEC);
        assert_true(ws.w[0].latest_ns == (T + 30) * TM_NSEC_PER_SEC);
        tm_pg_windows_dispose(&ws);

        /* promotion: timeline 1 ends in a .partial of 5, timeline 2 goes on */
        push_seg(f, 1, 5, c5a, 1);
        push_seg(f, 2, 5, c5b, 0);
        push_seg(f, 2, 6, c6, 0);
        /* then segment 7 is lost; a new base backup starts after the gap */
        base_snap(f, T + 85, 9, 2);
        push_seg(f, 2, 8, none, 0);
        push_seg(f, 2, 9, c9, 0);
        push_seg(f, 2, 10, c10, 1);
        assert_int_equal(tm_pg_windows_get(f->r, "database", &ws), 0);
        assert_int_equal(ws.n, 3);
        assert_true(ws.w[0].tli == 1 && ws.w[0].latest_ns == (T + 30) * TM_NSEC_PER_SEC);
        assert_true(ws.w[1].tli == 2 && ws.w[1].earliest_ns == (T + 30) * TM_NSEC_PER_SEC &&
                    ws.w[1].latest_ns == (T + 60) * TM_NSEC_PER_SEC);
        assert_true(ws.w[2].tli == 2 && ws.w[2].earliest_ns == (T + 85) * TM_NSEC_PER_SEC &&
                    ws.w[2].latest_ns == (T + 100) * TM_NSEC_PER_SEC);
        assert_int_equal(ws.n_gaps, 1);
        assert_string_equal(ws.gaps[0].missing, "000000020000000000000007");
        assert_true(ws.gaps[0].before_ns == (T + 60) * TM_NSEC_PER_SEC);
        tm_pg_windows_dispose(&ws);

        /* plans: between two commits, from the first base backup */
        assert_int_equal(tm_pg_plan_pitr(f->r, "database", (T + 25) * TM_NSEC_PER_SEC, &plan, err,
                                         sizeof(err)),
                         0);
        assert_true(plan.base.time == (T + 5) * TM_NSEC_PER_SEC);
        assert_false(plan.to_end);
        tm_snapshot_dispose(&plan.base);
        /* on timeline 2 */
        assert_int_equal(tm_pg_plan_pitr(f->r, "database", (T + 55) * TM_NSEC_PER_SEC, &plan, err,
                                         sizeof(err)),
                         0);
        assert_true(plan.base.time == (T + 5) * TM_NSEC_PER_SEC);
        assert_int_equal(plan.window.tli, 2);
        assert_false(plan.to_end);
        tm_snapshot_dispose(&plan.base);
        /* at the last commit: replay to the end */
        assert_int_equal(tm_pg_plan_pitr(f->r, "database", (T + 100) * TM_NSEC_PER_SEC, &plan, err,
                                         sizeof(err)),
                         0);
        assert_true(plan.base.time == (T + 85) * TM_NSEC_PER_SEC);
        assert_true(plan.to_end);
        tm_snapshot_dispose(&plan.base);
        /* in the gap, before and after: refused with the windows and the gap */
        for (int64_t t = T + 70; t <= T + 200; t += 130) {
                assert_int_equal(tm_pg_plan_pitr(f->r, "database", t * TM_NSEC_PER_SEC, &plan, err,
                                                 sizeof(err)),
                                 -ERANGE);
                assert_non_null(strstr(err, "outside the recoverable window of component "
                                            "'database': from 2025-01-07T10:00:05"));
                assert_non_null(strstr(err, "to 2025-01-07T10:01:40"));
                assert_non_null(strstr(err, "000000020000000000000007 is missing"));
        }
        assert_int_equal(
                tm_pg_plan_pitr(f->r, "database", T * TM_NSEC_PER_SEC, &plan, err, sizeof(err)),
                -ERANGE);
        /* no target: the newest base backup, to the end */
        assert_int_equal(tm_pg_plan_pitr(f->r, "database", 0, &plan, err, sizeof(err)), 0);
        assert_true(plan.base.time == (T + 85) * TM_NSEC_PER_SEC && plan.to_end);
        tm_snapshot_dispose(&plan.base);
        tmt_fix_free(f);
}

static void test_retention_and_damage(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        const int64_t T = 1736244000, none[] = { 0 }, c[] = { T + 50, 0 };
        size_t removed = 99, kept = 99;
        char msg[512], p[PATH_MAX];
        struct tm_snapshot *a = NULL;
        size_t n = 0;

        (void)state;
        /* no base backup: nothing is known to be unneeded */
        push_seg(f, 1, 1, none, 0);
        assert_int_equal(tm_pg_wal_retention(f->r, "database", NULL, 0, 0, &removed, &kept), 0);
        assert_true(removed == 0);
        for (unsigned i = 2; i <= 5; i++)
                push_seg(f, 1, i, i == 5 ? c : none, 0);
        push_seg(f, 1, 2, none, 1); /* a .partial of 2 too */
        tmt_path(p, sizeof(p), f->src, "00000002.history");
        tmt_write(p, "1\t0/3000000\tx\n", 14);
        assert_int_equal(tm_pg_wal_push(f->r, "database", p), 0);
        base_snap(f, T + 10, 2, 1);
        base_snap(f, T + 40, 4, 1);
        /* both base backups kept: segment 1 only goes */
        assert_int_equal(tm_pg_wal_retention(f->r, "database", NULL, 0, 1, &removed, &kept), 0);
        assert_true(removed == 1 && kept == 6);
        assert_int_equal(tm_pg_wal_retention(f->r, "database", NULL, 0, 0, &removed, &kept), 0);
        assert_true(removed == 1 && kept == 6);
        /* the first base backup forgotten: 2 and its .partial, 3 go; 4, 5
         * and the history stay */
        assert_int_equal(tm_repo_snapshot_list(f->r, "database", &a, &n), 0);
        assert_int_equal(n, 2);
        /* a dry run counts as if the first one were gone */
        assert_int_equal(tm_pg_wal_retention(f->r, "database", &a[0].id, 1, 1, &removed, &kept), 0);
        assert_true(removed == 3 && kept == 3);
        assert_int_equal(tm_repo_snapshot_remove(f->r, &a[0].id), 0);
        tm_snapshot_array_free(a, n);
        assert_int_equal(tm_pg_wal_retention(f->r, "database", NULL, 0, 0, &removed, &kept), 0);
        assert_true(removed == 3 && kept == 3);
        assert_int_equal(tm_pg_wal_fetch(f->r, "database", "000000010000000000000003", p), -ENOENT);

        /* a damaged WAL file names the window it breaks */
        assert_int_equal(tm_pg_wal_damage_window(f->r, "database-wal", "000000010000000000000005",
                                                 msg, sizeof(msg)),
                         0);
        assert_non_null(strstr(msg, "the recoverable window of component 'database' from "
                                    "2025-01-07T10:00:40"));
        assert_non_null(strstr(msg, "(timeline 1) is broken at WAL file 000000010000000000000005"));
        assert_int_equal(tm_pg_wal_damage_window(f->r, "database-wal", "000000010000000000000009",
                                                 msg, sizeof(msg)),
                         -ENOENT);
        assert_int_equal(
                tm_pg_wal_damage_window(f->r, "database-wal", "00000002.history", msg, sizeof(msg)),
                -ENOENT);
        assert_int_equal(tm_pg_wal_damage_window(f->r, "plugins", "000000010000000000000005", msg,
                                                 sizeof(msg)),
                         -ENOENT);
        tmt_fix_free(f);
}

static void test_conninfo_and_lsn(void **state)
{
        struct tm_pg_conn c = { 0 };
        char *s = NULL, buf[24];
        uint64_t lsn = 0;

        (void)state;
        unsetenv("POSTGRES_HOST");
        unsetenv("POSTGRES_PASSWORD");
        assert_int_equal(tm_pg_conninfo(&c, &s), 0);
        assert_string_equal(s, "");
        free(s);
        setenv("POSTGRES_HOST", "db.example", 1);
        setenv("POSTGRES_PASSWORD", "it's a \\secret", 1);
        c.port = "5433";
        c.user = "tidemark";
        c.extra = "sslmode=require";
        assert_int_equal(tm_pg_conninfo(&c, &s), 0);
        assert_string_equal(s, "host='db.example' port='5433' user='tidemark' "
                               "password='it\\'s a \\\\secret' sslmode=require");
        free(s);
        /* a passfile wins over the environment's password; host overrides */
        c.host = "/run/postgresql";
        c.passfile = "/etc/pgpass";
        c.extra = NULL;
        assert_int_equal(tm_pg_conninfo(&c, &s), 0);
        assert_string_equal(s, "host='/run/postgresql' port='5433' user='tidemark' "
                               "passfile='/etc/pgpass'");
        free(s);
        unsetenv("POSTGRES_HOST");
        unsetenv("POSTGRES_PASSWORD");

        tm_pg_lsn_format(UINT64_C(0x1600000028), buf, sizeof(buf));
        assert_string_equal(buf, "16/28");
        assert_int_equal(tm_pg_lsn_parse("16/28", &lsn), 0);
        assert_true(lsn == UINT64_C(0x1600000028));
        assert_int_equal(tm_pg_lsn_parse("0/3000060", &lsn), 0);
        assert_true(lsn == 0x3000060);
        assert_int_equal(tm_pg_lsn_parse("0/30000G0", &lsn), -EINVAL);
        assert_int_equal(tm_pg_lsn_parse("3000060", &lsn), -EINVAL);
        assert_int_equal(tm_pg_lsn_parse("0/1 ", &lsn), -EINVAL);
        assert_int_equal(tm_pg_lsn_parse(NULL, &lsn), -EINVAL);
}

static void test_stream_and_pitr_errors(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_pg_stream_opts o = { 0 };
        struct tm_pg_plan plan = { 0 };
        tm_buf conf = TM_BUF_INIT(4096);

        (void)state;
        assert_int_equal(tm_pg_stream_run(f->r, &o), -EINVAL); /* no conninfo */
        o.conninfo = "host=/nonexistent-socket-dir port=1 connect_timeout=2";
        o.slot = "Bad-Slot";
        assert_int_equal(tm_pg_stream_run(f->r, &o), -EINVAL);
        o.slot = NULL;
        o.staging = f->dir;
        assert_int_equal(tm_pg_stream_run(f->r, &o), -ECONNREFUSED);
        assert_int_equal(tmt_snapshot_count(f->r), 0);
        assert_int_equal(tm_pg_pitr_restore(f->r, &plan, NULL, "cmd", NULL), -EINVAL);
        assert_int_equal(tm_pg_recovery_conf(&conf, "a\nb", 0), -EINVAL);
        assert_int_equal(tm_pg_recovery_conf(&conf, "", 0), -EINVAL);
        tm_buf_clear(&conf);
        assert_int_equal(tm_pg_recovery_conf(&conf, "fetch %f %p", 0), 0);
        assert_null(strstr((const char *)conf.data, "recovery_target_time ="));
        tm_buf_dispose(&conf);
        tmt_fix_free(f);
}

/* tm_backup_opts.fixed_block_paths (used for relation files): matching
 * files are cut on fixed blocks, and an in-place change of one byte adds
 * one block; other files keep content-defined chunks. */
static void test_fixed_blocks(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_backup_opts o = TM_BACKUP_OPTS_INIT;
        struct tm_snapshot s1 = { 0 }, s2 = { 0 };
        struct tm_node nd = { 0 };
        uint64_t seed = tmt_seed();
        char rel[PATH_MAX], other[PATH_MAX], pat[PATH_MAX + 8];
        const char *paths[1] = { f->src }, *pats[1] = { pat };
        const size_t block = 65536, size = 5 * 65536 + 1000;

        (void)state;
        tmt_path(rel, sizeof(rel), f->src, "base");
        tmt_mkdir(rel);
        tmt_path(rel, sizeof(rel), f->src, "base/16384");
        tmt_write_rand(rel, &seed, size);
        tmt_path(other, sizeof(other), f->src, "other");
        tmt_write_rand(other, &seed, size);
        snprintf(pat, sizeof(pat), "%s/base/*", f->src);
        o.component = "database";
        o.strategy = "full";
        o.paths = paths;
        o.n_paths = 1;
        o.fixed_block_paths = pats;
        o.n_fixed_block_paths = 1;
        o.fixed_block = 1000; /* too small */
        assert_int_equal(tm_backup_run(f->r, &o, &s1), -EINVAL);
        o.fixed_block = (uint32_t)block;
        assert_int_equal(tm_backup_run(f->r, &o, &s1), 0);
        assert_int_equal(tm_repo_lookup_path(f->r, &s1.tree, "base/16384", &nd), 0);
        assert_int_equal(nd.n_content, 6);
        for (size_t i = 0; i < 5; i++)
                assert_int_equal(nd.content[i].size, block);
        assert_int_equal(nd.content[5].size, 1000);
        tm_node_dispose(&nd);
        /* the other file: content-defined (chunks of the test chunker vary) */
        assert_int_equal(tm_repo_lookup_path(f->r, &s1.tree, "other", &nd), 0);
        {
                int all_fixed = 1;

                for (size_t i = 0; i + 1 < nd.n_content; i++)
                        all_fixed &= nd.content[i].size == block;
                assert_false(all_fixed && nd.n_content == 6);
        }
        tm_node_dispose(&nd);
        /* one byte changed in place in block 2: one new data blob (plus trees) */
        tmt_flip_byte(rel, 2 * block + 77);
        tmt_set_mtime(rel, tm_time_now() + TM_NSEC_PER_SEC);
        assert_int_equal(tm_backup_run(f->r, &o, &s2), 0);
        assert_true(s2.summary.bytes_added >= block && s2.summary.bytes_added < 2 * block);
        /* and it restores byte for byte */
        {
                char target[PATH_MAX], got[PATH_MAX];
                struct tm_restore_stats st = { 0 };

                tmt_path(target, sizeof(target), f->dir, "target");
                assert_int_equal(tmt_restore(f->r, &s2, target, &st), 0);
                tmt_path(got, sizeof(got), target, "base/16384");
                tmt_assert_same_bytes(rel, got);
        }
        tm_snapshot_dispose(&s1);
        tm_snapshot_dispose(&s2);
        tmt_fix_free(f);
}

static void test_backup_errors(void **state)
{
        struct tmt_fix *f = tmt_fix_new();
        struct tm_pg_backup_opts o = { 0 };
        struct tm_snapshot s = { 0 };

        (void)state;
        assert_int_equal(tm_pg_backup_run(f->r, &o, &s), -EINVAL); /* no conninfo */
        o.conninfo = "host=/nonexistent-socket-dir port=1 connect_timeout=2";
        o.label = "it's";
        assert_int_equal(tm_pg_backup_run(f->r, &o, &s), -EINVAL); /* a quote in the label */
        o.label = NULL;
        o.staging = f->dir;
        assert_int_equal(tm_pg_backup_run(f->r, &o, &s), -ECONNREFUSED);
        /* nothing committed, the staging directory removed */
        assert_int_equal(tmt_snapshot_count(f->r), 0);
        {
                size_t n = 0;
                char **names = tmt_names(f->dir, &n);

                for (size_t i = 0; i < n; i++)
                        assert_null(strstr(names[i], "tidemark-pg-"));
                tmt_names_free(names, n);
        }
        tmt_fix_free(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_walname),
                cmocka_unit_test(test_walhdr),
                cmocka_unit_test(test_wal_validate),
                cmocka_unit_test(test_tar_slicings),
                cmocka_unit_test(test_tar_hostile),
                cmocka_unit_test(test_time_and_component),
                cmocka_unit_test(test_recovery_write),
                cmocka_unit_test(test_wal_push_fetch),
                cmocka_unit_test(test_wal_scan),
                cmocka_unit_test(test_windows),
                cmocka_unit_test(test_retention_and_damage),
                cmocka_unit_test(test_conninfo_and_lsn),
                cmocka_unit_test(test_stream_and_pitr_errors),
                cmocka_unit_test(test_fixed_blocks),
                cmocka_unit_test(test_backup_errors),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
