#include "core/idset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t slot_of(const tm_id *id, size_t cap)
{
        uint64_t h;

        memcpy(&h, id->b, sizeof(h)); /* ids are HMAC/SHA outputs: uniformly spread */
        return (size_t)(h & (cap - 1));
}

int tm_idset_init(struct tm_idset *s, size_t expect)
{
        size_t cap = 1024;

        while (cap < expect * 2)
                cap <<= 1;
        memset(s, 0, sizeof(*s));
        s->slots = malloc(cap * sizeof(*s->slots));
        s->used = calloc(cap, 1);
        if (!s->slots || !s->used) {
                free(s->slots);
                free(s->used);
                return -ENOMEM;
        }
        s->cap = cap;
        pthread_mutex_init(&s->mu, NULL);
        return 0;
}

void tm_idset_dispose(struct tm_idset *s)
{
        if (!s || !s->slots)
                return;
        free(s->slots);
        free(s->used);
        pthread_mutex_destroy(&s->mu);
        memset(s, 0, sizeof(*s));
}

static int grow(struct tm_idset *s)
{
        size_t ncap = s->cap * 2;
        tm_id *slots = malloc(ncap * sizeof(*slots));
        uint8_t *used = calloc(ncap, 1);

        if (!slots || !used) {
                free(slots);
                free(used);
                return -ENOMEM;
        }
        for (size_t i = 0; i < s->cap; i++) {
                size_t k;

                if (!s->used[i])
                        continue;
                k = slot_of(&s->slots[i], ncap);
                while (used[k])
                        k = (k + 1) & (ncap - 1);
                used[k] = 1;
                slots[k] = s->slots[i];
        }
        free(s->slots);
        free(s->used);
        s->slots = slots;
        s->used = used;
        s->cap = ncap;
        return 0;
}

int tm_idset_insert(struct tm_idset *s, const tm_id *id)
{
        size_t k;
        int r = 1;

        pthread_mutex_lock(&s->mu);
        if ((s->n + 1) * 10 > s->cap * 7 && grow(s) < 0) {
                r = -ENOMEM;
                goto out;
        }
        for (k = slot_of(id, s->cap); s->used[k]; k = (k + 1) & (s->cap - 1)) {
                if (memcmp(s->slots[k].b, id->b, TM_ID_LEN) == 0) {
                        r = 0;
                        goto out;
                }
        }
        s->used[k] = 1;
        s->slots[k] = *id;
        s->n++;
out:
        pthread_mutex_unlock(&s->mu);
        return r;
}

int tm_idset_has(struct tm_idset *s, const tm_id *id)
{
        int r = 0;

        if (!s->slots)
                return 0;
        pthread_mutex_lock(&s->mu);
        for (size_t k = slot_of(id, s->cap); s->used[k]; k = (k + 1) & (s->cap - 1)) {
                if (memcmp(s->slots[k].b, id->b, TM_ID_LEN) == 0) {
                        r = 1;
                        break;
                }
        }
        pthread_mutex_unlock(&s->mu);
        return r;
}
