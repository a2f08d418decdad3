/* Fuzz the index plaintext parser; an accepted index must re-format to the
 * same bytes (the format has one byte form per index). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/index.h>

#include "index/index_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct tm_index idx = TM_INDEX_INIT;
        tm_buf again = TM_BUF_INIT(0);

        if (tm_index_parse(data, size, &idx) == 0) {
                if (tm_index__format(&idx, &again) < 0 || again.len != size ||
                    memcmp(again.data, data, size) != 0)
                        abort();
        }
        tm_buf_dispose(&again);
        tm_index_dispose(&idx);
        return 0;
}
