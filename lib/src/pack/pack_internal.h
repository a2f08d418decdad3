#pragma once
/*
 * pack internals shared with the index module (index files repeat the
 * trailer's entry encoding) and with the tests (which need plaintext
 * trailers for the fuzz corpus).
 */
#include <stddef.h>
#include <stdint.h>

#include <tidemark/core.h>
#include <tidemark/pack.h>

/* Smallest encoded entry: type, flags, id, and three one-byte varints. */
#define TM_PACK__ENTRY_MIN_LEN (1 + 1 + TM_ID_LEN + 1 + 1 + 1)

/* Read a varint and reject non-minimal encodings (a trailing 0x00 group), so
 * every value has exactly one byte form. Returns 0 or -EBADMSG. */
int tm_pack__read_varint(tm_reader *r, uint64_t *ret);

/* Append one entry in the trailer/index form. Returns 0, -E2BIG, -ENOMEM. */
int tm_pack__entry_put(tm_buf *b, const struct tm_pack_entry *e);

/* Read and validate one entry on its own (type, flags, lengths; not its
 * position). Returns 0 or -EBADMSG. */
int tm_pack__entry_get(tm_reader *r, struct tm_pack_entry *ret);

/* Check that e lies after prev_end and inside [0, area_len); advances
 * *prev_end. Returns 0 or -EBADMSG. */
int tm_pack__entry_place(const struct tm_pack_entry *e, uint64_t area_len, uint64_t *prev_end);

/* The trailer plaintext for entries[0..n) (appended to out). */
int tm_pack__trailer_format(const struct tm_pack_entry *entries, size_t n, tm_buf *out);
