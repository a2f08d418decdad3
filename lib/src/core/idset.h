#pragma once
/* A thread-safe set of 32-byte ids (open addressing), used by backup for
 * deduplication: every blob the repository holds plus every blob this
 * backup has claimed. Full ids are kept: a truncated key would turn a rare
 * collision into silently missing data. */
#include <pthread.h>
#include <stddef.h>

#include <tidemark/core.h>

struct tm_idset {
        tm_id *slots;
        uint8_t *used;
        size_t cap, n;
        pthread_mutex_t mu;
};

int tm_idset_init(struct tm_idset *s, size_t expect);
void tm_idset_dispose(struct tm_idset *s);
/* 1 if inserted (the caller now owns storing it), 0 if present, -ENOMEM. */
int tm_idset_insert(struct tm_idset *s, const tm_id *id);
int tm_idset_has(struct tm_idset *s, const tm_id *id);
