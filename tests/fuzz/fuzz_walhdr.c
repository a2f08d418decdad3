/* Fuzz target for the PostgreSQL parsers: the WAL long page header
 * (tm_pg_walhdr_parse), WAL file names (tm_pg_walname_parse,
 * tm_pg_wal_validate) and the streaming tar parser (tm_pg_tar_feed).
 * Invariants: an accepted header has the properties the parser promises;
 * the tar parser reaches the same result and the same members whether the
 * input comes whole or one byte at a time, and every accepted member name
 * is relative with no "." or ".." component. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/pg.h>

#include "tar_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
        uint64_t hash, entries, bytes;
};

static int on_entry(const struct tm_pg_tar_entry *e, void *u)
{
        struct acc *a = u;
        const char *c;

        fuzz_tar_entry_check(e);
        a->entries++;
        for (c = e->name; *c; c++)
                a->hash = a->hash * 131 + (uint8_t)*c;
        return 0;
}

static int on_data(const void *p, size_t n, void *u)
{
        struct acc *a = u;
        const uint8_t *b = p;

        for (size_t i = 0; i < n; i++)
                a->hash = a->hash * 31 + b[i];
        a->bytes += n;
        return 0;
}

static int on_end(void *u)
{
        struct acc *a = u;

        a->hash = a->hash * 7 + 1;
        return 0;
}

static const struct tm_pg_tar_ops ops = { on_entry, on_data, on_end };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct tm_pg_walhdr h;
        struct tm_pg_walname w;
        struct tm_pg_tar t;
        struct acc a1 = { 0 }, a2 = { 0 };
        char name[64];
        int r1, r2 = 0;

        if (tm_pg_walhdr_parse(data, size, &h) == 0) {
                TM_ASSERT(h.tli != 0 && h.pg_version >= 13);
                TM_ASSERT(h.seg_size >= (1u << 20) && h.seg_size <= (1u << 30));
                TM_ASSERT((h.seg_size & (h.seg_size - 1)) == 0);
                TM_ASSERT(h.pageaddr % h.seg_size == 0);
        }
        /* the first bytes as a file name */
        {
                size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;

                memcpy(name, data, n);
                name[n] = '\0';
                if (tm_pg_walname_parse(name, &w) == 0) {
                        TM_ASSERT(w.tli != 0);
                        (void)tm_pg_wal_validate(name, data, size, size);
                }
        }
        /* the whole input as a tar stream, whole and byte by byte */
        tm_pg_tar_init(&t, &ops, &a1);
        r1 = tm_pg_tar_feed(&t, data, size);
        if (r1 == 0)
                r1 = tm_pg_tar_finish(&t);
        tm_pg_tar_init(&t, &ops, &a2);
        for (size_t i = 0; i < size && r2 == 0; i++)
                r2 = tm_pg_tar_feed(&t, data + i, 1);
        if (r2 == 0)
                r2 = tm_pg_tar_finish(&t);
        TM_ASSERT(r1 == r2);
        if (r1 == 0)
                TM_ASSERT(a1.hash == a2.hash && a1.entries == a2.entries && a1.bytes == a2.bytes);
        return 0;
}
