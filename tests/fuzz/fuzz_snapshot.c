/* Fuzz the snapshot decoder. An accepted manifest must re-encode, and the
 * canonical form must be a fixed point: decode(encode(s)) encodes to the same
 * bytes (the input itself need not be canonical: unknown keys are dropped). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/snapshot.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct tm_snapshot s = { 0 }, s2 = { 0 };
        tm_buf enc = TM_BUF_INIT(0), enc2 = TM_BUF_INIT(0);

        if (tm_snapshot_decode(data, size, &s) == 0) {
                if (tm_snapshot_encode(&s, &enc) < 0)
                        abort();
                if (tm_snapshot_decode(enc.data, enc.len, &s2) < 0 ||
                    tm_snapshot_encode(&s2, &enc2) < 0)
                        abort();
                if (enc.len != enc2.len || memcmp(enc.data, enc2.data, enc.len) != 0)
                        abort();
        }
        tm_buf_dispose(&enc2);
        tm_buf_dispose(&enc);
        tm_snapshot_dispose(&s2);
        tm_snapshot_dispose(&s);
        return 0;
}
