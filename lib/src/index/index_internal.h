#pragma once
/*
 * index internals for the tests: the plaintext form, which the fuzz corpus
 * needs without a key.
 */
#include <tidemark/core.h>
#include <tidemark/index.h>

/* Append the plaintext serialization of idx to out (before compression and
 * sealing). Returns 0, -EINVAL (an invalid entry), -E2BIG, -ENOMEM. */
int tm_index__format(const struct tm_index *idx, tm_buf *out);
