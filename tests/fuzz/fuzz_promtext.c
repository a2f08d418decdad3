/* Fuzz the Prometheus text reader monitord runs on every scraped /metrics
 * (untrusted: whatever answers on a configured target's port). Invariants:
 * a parsed exposition renders (tm_promtext_render_merged, what monitord
 * re-exports) to text that parses again with the same number of samples, and
 * every sample can be selected by its own name and labels. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/promtext.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void select_one(const tm_promtext *p, const struct tm_promtext_sample *s)
{
        char kv[TM_PROMTEXT_MAX_LABELS][256];
        const char *m[TM_PROMTEXT_MAX_LABELS + 1];
        size_t n = 0;
        double v;

        for (size_t i = 0; i < s->n_labels; i++) {
                /* a repeated label name: lookups see its first value only */
                if (tm_promtext_label(s, s->labels[i].name) != s->labels[i].value)
                        return;
                /* matchers name labels of at most 127 bytes (promtext.c) */
                if (strlen(s->labels[i].name) >= 128)
                        return;
                if ((size_t)snprintf(kv[n], sizeof(kv[n]), "%s=%s", s->labels[i].name,
                                     s->labels[i].value) >= sizeof(kv[n]))
                        return;
                m[n] = kv[n];
                n++;
        }
        m[n] = NULL;
        TM_ASSERT(tm_promtext_select(p, s->name, m, TM_PROMTEXT_COUNT, &v) == 0 && v >= 1);
        TM_ASSERT(tm_promtext_select(p, s->name, m, TM_PROMTEXT_MAX, &v) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        tm_promtext *p = NULL, *again = NULL;
        const struct tm_promtext_sample *s, *s2;
        const char *names[1] = { "t" };
        tm_buf out = TM_BUF_INIT(0);
        char msg[256];
        size_t n, n2;

        if (tm_promtext_parse((const char *)data, size, &p, msg, sizeof(msg)) < 0)
                return 0;
        s = tm_promtext_samples(p, &n);
        for (size_t i = 0; i < n && i < 64; i++)
                select_one(p, &s[i]);
        if (tm_promtext_render_merged((const tm_promtext *const *)&p, names, 1, "instance", NULL,
                                      NULL, &out) == 0) {
                /* samples that already have 16 labels cannot take one more */
                int full = 0;

                for (size_t i = 0; i < n; i++)
                        full |= s[i].n_labels >= TM_PROMTEXT_MAX_LABELS ||
                                tm_promtext_label(&s[i], "instance") != NULL;
                if (!full) {
                        if (tm_promtext_parse((const char *)out.data, out.len, &again, msg,
                                              sizeof(msg)) != 0) {
                                fprintf(stderr, "re-rendered exposition does not parse: %s\n", msg);
                                abort();
                        }
                        s2 = tm_promtext_samples(again, &n2);
                        TM_ASSERT(n2 == n);
                        (void)s2;
                        tm_promtext_free(again);
                }
        }
        tm_buf_dispose(&out);
        tm_promtext_free(p);
        return 0;
}
