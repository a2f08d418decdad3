/* Fuzz the pack trailer parser and the tail parser. The first 8 bytes of the
 * input (LE) give the blob area length for one parse of the rest; the whole
 * input is also parsed against a fixed, large area, and its first and last 8
 * bytes go to the tail parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/pack.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whatever the parser accepts must satisfy the documented invariants. */
static void check(const struct tm_pack_entry *e, size_t n, uint64_t area)
{
        uint64_t end = 0;

        for (size_t i = 0; i < n; i++) {
                if (e[i].offset < end || e[i].offset + e[i].length > area ||
                    e[i].type != e[0].type || e[i].raw_length > TM_BLOB_MAX)
                        abort();
                end = e[i].offset + e[i].length;
        }
}

static void parse(const uint8_t *p, size_t n, uint64_t area)
{
        struct tm_pack_entry *e = NULL;
        size_t count = 0;

        if (tm_pack_trailer_parse(p, n, area, &e, &count) == 0) {
                check(e, count, area);
                free(e);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        uint32_t len;

        if (size >= 8) {
                parse(data + 8, size - 8, tm_get_u64le(data));
                (void)tm_pack_tail_parse(data, &len);
                (void)tm_pack_tail_parse(data + size - 8, &len);
        }
        parse(data, size, UINT64_C(1) << 40);
        return 0;
}
