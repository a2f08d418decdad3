#pragma once
/*
 * Internals of the S3 driver, visible to its tests: the bounded XML reader
 * for S3 answers and the parsing of "s3:" locations.
 */
#include <stddef.h>

#include <tidemark/backend.h>

/* Bounds of the XML reader: S3 documents are flat and small per element. */
#define TM_S3_XML_MAX_DEPTH 16
#define TM_S3_XML_MAX_NAME  64

/*
 * tm_s3__xml_fn - called for every element of the document, in document
 * order, when the element closes. path is the slash-joined element names
 * from the root ("ListBucketResult/Contents/Key"), depth counts them (1 for
 * the root). For an element without child elements text is its decoded text
 * (NUL-terminated, len bytes); for an element with children text is NULL.
 * A non-zero return stops the walk and is returned.
 */
typedef int (*tm_s3__xml_fn)(const char *path, int depth, const char *text, size_t len,
                             void *userdata);

/*
 * tm_s3__xml_walk() - a strict, bounded reader for the XML S3 answers with:
 * an optional <?xml ...?> prolog, elements with attributes (ignored), text
 * with the five predefined entities and numeric character references. No
 * DTD, comments, CDATA or processing instructions elsewhere; exactly one
 * root element; names up to TM_S3_XML_MAX_NAME bytes, depth up to
 * TM_S3_XML_MAX_DEPTH. Returns 0, -EBADMSG (malformed), -ENOMEM, or the
 * callback's non-zero value.
 */
int tm_s3__xml_walk(const char *doc, size_t len, tm_s3__xml_fn fn, void *userdata);

/*
 * tm_s3__parse_url() - split "http(s)://host[:port]/bucket[/prefix...]" (the
 * part after "s3:") into endpoint ("http(s)://host[:port]"), bucket and
 * prefix (no leading or trailing '/', may be ""). The three strings are
 * malloc'd and written only on success. Returns 0, -EINVAL, -ENOMEM.
 */
int tm_s3__parse_url(const char *url, char **ret_endpoint, char **ret_bucket, char **ret_prefix);

/*
 * tm_s3__uri_encode() - RFC 3986 percent-encoding as SigV4 wants it:
 * unreserved characters (A-Z a-z 0-9 - . _ ~) are kept, '/' is kept when
 * keep_slash, every other byte becomes %XX (uppercase). Appends to b.
 * Returns 0 or -ENOMEM/-E2BIG.
 */
int tm_s3__uri_encode(tm_buf *b, const char *s, int keep_slash);
