/* Fuzz target for tm_chunker_cut() with tiny parameters (so short inputs
 * make many chunks) and a fixed seed. The first input byte picks one of a
 * few parameter sets; the rest is the stream. Invariants: every chunk but
 * the last is in (min, max], the last in [1, max]; the chunks cover the
 * input exactly; cutting is deterministic and does not depend on how far
 * past max the caller's window reaches. */
#include <stdint.h>
#include <string.h>

#include <tidemark/chunker.h>
#include <tidemark/core.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const struct tm_chunker_params sets[] = {
                { .min = 64, .avg = 256, .max = 1024 },
                { .min = 64, .avg = 128, .max = 129 },
                { .min = 200, .avg = 512, .max = 4096 },
        };
        static const uint8_t seed[32] = "tidemark fuzz chunker seed 0001";
        const struct tm_chunker_params *p;
        tm_chunker *c = NULL;
        size_t off = 0;

        if (size < 1)
                return 0;
        p = &sets[data[0] % TM_ARRAY_SIZE(sets)];
        data++;
        size--;
        TM_ASSERT(tm_chunker_new(p, seed, &c) == 0);
        while (off < size) {
                size_t left = size - off, l = tm_chunker_cut(c, data + off, left);

                TM_ASSERT(l >= 1 && l <= left && l <= p->max);
                if (l < left)
                        TM_ASSERT(l > p->min);
                TM_ASSERT(tm_chunker_cut(c, data + off, left) == l);
                if (left > p->max)
                        TM_ASSERT(tm_chunker_cut(c, data + off, p->max) == l);
                off += l;
        }
        TM_ASSERT(off == size);
        tm_chunker_free(c);
        return 0;
}
