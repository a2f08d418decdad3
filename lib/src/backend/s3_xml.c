/*
 * A small strict XML reader for S3 answers (ListObjectsV2, multipart
 * initiate/complete, errors). S3 sends flat, machine-made documents; a full
 * XML library would be a new dependency and a larger attack surface than the
 * subset read here. Anything outside that subset is -EBADMSG, so a proxy's
 * HTML error page or a truncated body is an error, never a partial listing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>

#include "s3_internal.h"

struct xml {
        const char *p, *end;
        char path[TM_S3_XML_MAX_DEPTH * (TM_S3_XML_MAX_NAME + 1) + 1];
        size_t plen[TM_S3_XML_MAX_DEPTH + 1]; /* path length at each depth */
        int has_child[TM_S3_XML_MAX_DEPTH + 1];
        int depth;
        tm_buf text;
};

static int is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int is_name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.' || c == ':';
}

static void skip_space(struct xml *x)
{
        while (x->p < x->end && is_space(*x->p))
                x->p++;
}

/* Append the UTF-8 encoding of code point cp. */
static int put_utf8(tm_buf *b, unsigned long cp)
{
        uint8_t u[4];
        size_t n;

        if (cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return -EBADMSG;
        if (cp < 0x80) {
                u[0] = (uint8_t)cp;
                n = 1;
        } else if (cp < 0x800) {
                u[0] = (uint8_t)(0xc0 | (cp >> 6));
                u[1] = (uint8_t)(0x80 | (cp & 0x3f));
                n = 2;
        } else if (cp < 0x10000) {
                u[0] = (uint8_t)(0xe0 | (cp >> 12));
                u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                u[2] = (uint8_t)(0x80 | (cp & 0x3f));
                n = 3;
        } else {
                u[0] = (uint8_t)(0xf0 | (cp >> 18));
                u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
                u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
                u[3] = (uint8_t)(0x80 | (cp & 0x3f));
                n = 4;
        }
        return tm_buf_append(b, u, n);
}

/* At '&': decode one entity into the text buffer. */
static int entity(struct xml *x)
{
        static const struct {
                const char *name;
                char c;
        } named[] = {
                { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' }
        };
        const char *s = x->p + 1;
        size_t left = (size_t)(x->end - s), i;

        for (i = 0; i < TM_ARRAY_SIZE(named); i++) {
                size_t n = strlen(named[i].name);

                if (left >= n && memcmp(s, named[i].name, n) == 0) {
                        x->p = s + n;
                        return tm_buf_append(&x->text, &named[i].c, 1);
                }
        }
        if (left >= 3 && s[0] == '#') {
                int hex = s[1] == 'x';
                unsigned long cp = 0;
                const char *q = s + 1 + hex;
                int digits = 0;

                for (; q < x->end && *q != ';'; q++, digits++) {
                        int v;

                        if (*q >= '0' && *q <= '9')
                                v = *q - '0';
                        else if (hex && *q >= 'a' && *q <= 'f')
                                v = *q - 'a' + 10;
                        else if (hex && *q >= 'A' && *q <= 'F')
                                v = *q - 'A' + 10;
                        else
                                return -EBADMSG;
                        if (digits >= 8)
                                return -EBADMSG;
                        cp = cp * (hex ? 16 : 10) + (unsigned long)v;
                }
                if (q >= x->end || digits == 0)
                        return -EBADMSG;
                x->p = q + 1;
                return put_utf8(&x->text, cp);
        }
        return -EBADMSG;
}

/* Read a name at p; returns its length (0: none). */
static size_t read_name(struct xml *x)
{
        const char *s = x->p;

        /* a name starts with a letter, '_' or ':' */
        if (x->p >= x->end || (*x->p >= '0' && *x->p <= '9') || *x->p == '-' || *x->p == '.')
                return 0;
        while (x->p < x->end && is_name_char(*x->p))
                x->p++;
        return (size_t)(x->p - s);
}

/* Skip attributes up to '>' or '/>'; sets *empty for '/>'. */
static int skip_attrs(struct xml *x, int *empty)
{
        for (;;) {
                skip_space(x);
                if (x->p >= x->end)
                        return -EBADMSG;
                if (*x->p == '>') {
                        x->p++;
                        *empty = 0;
                        return 0;
                }
                if (*x->p == '/') {
                        if (x->p + 1 >= x->end || x->p[1] != '>')
                                return -EBADMSG;
                        x->p += 2;
                        *empty = 1;
                        return 0;
                }
                if (read_name(x) == 0)
                        return -EBADMSG;
                skip_space(x);
                if (x->p >= x->end || *x->p != '=')
                        return -EBADMSG;
                x->p++;
                skip_space(x);
                if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
                        return -EBADMSG;
                {
                        char q = *x->p++;
                        const char *close = memchr(x->p, q, (size_t)(x->end - x->p));

                        if (!close)
                                return -EBADMSG;
                        x->p = close + 1;
                }
        }
}

static int open_element(struct xml *x, const char *name, size_t n)
{
        size_t at = x->plen[x->depth];

        if (x->depth >= TM_S3_XML_MAX_DEPTH || n > TM_S3_XML_MAX_NAME)
                return -EBADMSG;
        if (x->depth > 0) {
                x->has_child[x->depth] = 1;
                x->path[at++] = '/';
        }
        memcpy(x->path + at, name, n);
        at += n;
        x->path[at] = 0;
        x->depth++;
        x->plen[x->depth] = at;
        x->has_child[x->depth] = 0;
        tm_buf_clear(&x->text);
        return 0;
}

static int close_element(struct xml *x, tm_s3__xml_fn fn, void *userdata)
{
        int r;

        if (x->has_child[x->depth]) {
                r = fn(x->path, x->depth, NULL, 0, userdata);
        } else {
                r = tm_buf_reserve(&x->text, 1);
                if (r < 0)
                        return r;
                x->text.data[x->text.len] = 0;
                r = fn(x->path, x->depth, (const char *)x->text.data, x->text.len, userdata);
        }
        if (r != 0)
                return r;
        tm_buf_clear(&x->text);
        x->depth--;
        x->path[x->plen[x->depth]] = 0;
        return 0;
}

int tm_s3__xml_walk(const char *doc, size_t len, tm_s3__xml_fn fn, void *userdata)
{
        struct xml *x = NULL;
        int r, seen_root = 0;

        if (!doc || !fn)
                return -EINVAL;
        x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        x->p = doc;
        x->end = doc + len;
        x->text = TM_BUF_INIT(len + 1);

        skip_space(x);
        if ((size_t)(x->end - x->p) >= 5 && memcmp(x->p, "<?xml", 5) == 0) {
                const char *q = x->p;

                for (; q + 1 < x->end; q++)
                        if (q[0] == '?' && q[1] == '>')
                                break;
                if (q + 1 >= x->end) {
                        r = -EBADMSG;
                        goto out;
                }
                x->p = q + 2;
        }
        for (;;) {
                if (x->depth == 0) {
                        skip_space(x);
                        if (x->p >= x->end) {
                                r = seen_root ? 0 : -EBADMSG;
                                goto out;
                        }
                        if (seen_root || *x->p != '<') {
                                r = -EBADMSG;
                                goto out;
                        }
                }
                if (x->p >= x->end) {
                        r = -EBADMSG; /* unclosed element */
                        goto out;
                }
                if (*x->p == '&') {
                        r = entity(x);
                        if (r < 0)
                                goto out;
                        continue;
                }
                if (*x->p != '<') {
                        const char *s = x->p;

                        while (x->p < x->end && *x->p != '<' && *x->p != '&') {
                                if (*x->p == '>' || *x->p == 0) {
                                        r = -EBADMSG;
                                        goto out;
                                }
                                x->p++;
                        }
                        r = tm_buf_append(&x->text, s, (size_t)(x->p - s));
                        if (r < 0)
                                goto out;
                        continue;
                }
                x->p++;
                if (x->p < x->end && *x->p == '/') {
                        const char *name;
                        size_t n, cur;

                        x->p++;
                        name = x->p;
                        n = read_name(x);
                        /* a close tag with nothing open (fuzz_s3xml) */
                        if (x->depth == 0) {
                                r = -EBADMSG;
                                goto out;
                        }
                        cur = x->plen[x->depth] - x->plen[x->depth - 1] - (x->depth > 1);
                        if (n == 0 || n != cur ||
                            memcmp(name, x->path + x->plen[x->depth] - cur, n) != 0) {
                                r = -EBADMSG;
                                goto out;
                        }
                        skip_space(x);
                        if (x->p >= x->end || *x->p != '>') {
                                r = -EBADMSG;
                                goto out;
                        }
                        x->p++;
                        r = close_element(x, fn, userdata);
                        if (r != 0)
                                goto out;
                        if (x->depth == 0)
                                seen_root = 1;
                        continue;
                }
                {
                        const char *name = x->p;
                        size_t n = read_name(x);
                        int empty = 0;

                        if (n == 0) {
                                r = -EBADMSG; /* comments, CDATA, DTD, PI: not S3 */
                                goto out;
                        }
                        r = skip_attrs(x, &empty);
                        if (r < 0)
                                goto out;
                        r = open_element(x, name, n);
                        if (r < 0)
                                goto out;
                        if (empty) {
                                r = close_element(x, fn, userdata);
                                if (r != 0)
                                        goto out;
                                if (x->depth == 0)
                                        seen_root = 1;
                        }
                }
        }
out:
        if (x)
                tm_buf_dispose(&x->text);
        free(x);
        return r;
}
