/* Fuzz the streaming tar parser that reads PostgreSQL base backups off the
 * replication connection (tm_pg_tar_feed: what a hostile or broken server
 * sends). The first input byte picks a slice size so the parser sees the
 * same stream in many different cuts; invariants: the result and every
 * member (name, type, size, data) are the same as when the whole stream comes
 * in one piece, member names are relative, without "." or ".." components,
 * and a member's data is exactly its declared size. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/pg.h>

#include "tar_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct acc {
        uint64_t hash, entries, bytes, want, got;
        int open;
};

static int on_entry(const struct tm_pg_tar_entry *e, void *u)
{
        struct acc *a = u;
        const char *c;

        TM_ASSERT(!a->open);
        fuzz_tar_entry_check(e);
        TM_ASSERT(memchr(e->linkname, '\0', sizeof(e->linkname)) != NULL);
        TM_ASSERT(e->type == '0' || e->size == 0);
        a->open = 1;
        a->want = e->size;
        a->got = 0;
        a->entries++;
        for (c = e->name; *c; c++)
                a->hash = a->hash * 131 + (uint8_t)*c;
        a->hash = a->hash * 131 + (uint8_t)e->type;
        a->hash = a->hash * 131 + e->size + e->mode;
        return 0;
}

static int on_data(const void *p, size_t n, void *u)
{
        struct acc *a = u;
        const uint8_t *b = p;

        TM_ASSERT(a->open && n > 0);
        for (size_t i = 0; i < n; i++)
                a->hash = a->hash * 31 + b[i];
        a->bytes += n;
        a->got += n;
        TM_ASSERT(a->got <= a->want);
        return 0;
}

static int on_end(void *u)
{
        struct acc *a = u;

        TM_ASSERT(a->open && a->got == a->want);
        a->open = 0;
        a->hash = a->hash * 7 + 1;
        return 0;
}

static const struct tm_pg_tar_ops ops = { on_entry, on_data, on_end };

static int parse(const uint8_t *p, size_t n, size_t slice, struct acc *a)
{
        struct tm_pg_tar t;
        int r = 0;

        tm_pg_tar_init(&t, &ops, a);
        for (size_t off = 0; off < n && r == 0; off += slice)
                r = tm_pg_tar_feed(&t, p + off, n - off < slice ? n - off : slice);
        /* after a feed error every later call fails the same way */
        if (r < 0) {
                TM_ASSERT(tm_pg_tar_feed(&t, p, n) == r && tm_pg_tar_finish(&t) == r);
                return r;
        }
        r = tm_pg_tar_finish(&t);
        if (r == 0)
                TM_ASSERT(!a->open);
        return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const size_t slices[] = { 1, 7, 511, 512, 513, 1000, 4096 };
        struct acc whole = { 0 }, cut = { 0 };
        size_t slice;
        int r1, r2;

        if (size < 1)
                return 0;
        slice = slices[data[0] % TM_ARRAY_SIZE(slices)];
        data++;
        size--;
        r1 = parse(data, size, size ? size : 1, &whole);
        r2 = parse(data, size, slice, &cut);
        TM_ASSERT(r1 == r2);
        if (r1 == 0)
                TM_ASSERT(whole.hash == cut.hash && whole.entries == cut.entries &&
                          whole.bytes == cut.bytes);
        return 0;
}
