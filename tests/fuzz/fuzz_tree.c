/* Fuzz the tree decoder; an accepted tree must re-encode to exactly the
 * input bytes (the encoding is canonical). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/tree.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct tm_tree t = TM_TREE_INIT;
        tm_buf again = TM_BUF_INIT(0);

        if (tm_tree_decode(data, size, &t) == 0) {
                for (size_t i = 0; i < t.n; i++)
                        if (tm_tree_find(&t, t.nodes[i].name) != &t.nodes[i])
                                abort();
                if (tm_tree_encode(&t, &again) < 0 || again.len != size ||
                    memcmp(again.data, data, size) != 0)
                        abort();
        }
        tm_buf_dispose(&again);
        tm_tree_dispose(&t);
        return 0;
}
