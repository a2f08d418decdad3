/*
 * The S3 XML reader on arbitrary bytes: it must never read out of bounds,
 * and a document it accepts must give the callback NUL-terminated text of
 * the stated length.
 */
#include <stdint.h>
#include <string.h>

#include "backend/s3_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(const char *path, int depth, const char *text, size_t len, void *userdata)
{
        TM_ASSERT(depth >= 1 && depth <= TM_S3_XML_MAX_DEPTH);
        TM_ASSERT(strlen(path) > 0);
        if (text)
                TM_ASSERT(text[len] == 0);
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        (void)tm_s3__xml_walk((const char *)data, size, check, NULL);
        return 0;
}
