#pragma once
/* Entry points for the fuzz target of the REST bodies (tests/fuzz/fuzz_rest.c)
 * and the unit tests: the body parse every route's handler gets, and a
 * request without a connection on which tm_http_unpack(), tm_http_fail()
 * and the answer cache work. */
#include <stddef.h>

#include <jansson.h>

#include <tidemark/http.h>

/* Parse a request body as finish() does: 0 and *ret (NULL for an empty
 * body), or -EINVAL with msg "malformed JSON: ... (line L, column C)". */
int tm_http__body_parse(const void *p, size_t n, json_t **ret, char *msg, size_t msglen);
/* A bare request (no server, no connection); NULL when out of memory. */
struct tm_http_req *tm_http__req_new(void);
void tm_http__req_free(struct tm_http_req *rq);
/* What tm_http_fail() last wrote ("" if nothing). */
const char *tm_http__req_msg(const struct tm_http_req *rq);
/* The text answer set on it (tm_http_set_text_take, the cache), or NULL. */
const char *tm_http__req_text(const struct tm_http_req *rq);
