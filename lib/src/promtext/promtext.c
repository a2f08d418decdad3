/*
 * A strict-enough reader of the Prometheus text format: what promtool
 * accepts parses here; anything else is -EBADMSG with the line number, so a
 * service that serves HTML on /metrics is reported, not silently read as
 * "no samples".
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/promtext.h>

#define MAX_SAMPLES 100000

struct family {
        char *name, *type, *help;
};

struct tm_promtext {
        struct tm_promtext_sample *s;
        size_t n, cap;
        struct family *f;
        size_t nf, capf;
};

static void sample_dispose(struct tm_promtext_sample *s)
{
        free(s->name);
        for (size_t i = 0; i < s->n_labels; i++) {
                free(s->labels[i].name);
                free(s->labels[i].value);
        }
}

void tm_promtext_free(tm_promtext *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->n; i++)
                sample_dispose(&p->s[i]);
        for (size_t i = 0; i < p->nf; i++) {
                free(p->f[i].name);
                free(p->f[i].type);
                free(p->f[i].help);
        }
        free(p->f);
        free(p->s);
        free(p);
}

static int is_name_start(int c)
{
        return isalpha(c) || c == '_' || c == ':';
}

static int is_name_char(int c)
{
        return isalnum(c) || c == '_' || c == ':';
}

static int parse_value(const char *p, const char *end, double *ret)
{
        char buf[64];
        size_t n = (size_t)(end - p);
        char *e;

        if (!n || n >= sizeof(buf))
                return -EBADMSG;
        memcpy(buf, p, n);
        buf[n] = '\0';
        if (!strcmp(buf, "+Inf") || !strcmp(buf, "Inf")) {
                *ret = INFINITY;
                return 0;
        }
        if (!strcmp(buf, "-Inf")) {
                *ret = -INFINITY;
                return 0;
        }
        if (!strcmp(buf, "NaN")) {
                *ret = NAN;
                return 0;
        }
        errno = 0;
        *ret = strtod(buf, &e);
        if (*e || errno == ERANGE)
                return -EBADMSG;
        return 0;
}

/* One sample line (no newline). Returns 0, -EBADMSG (why set), -ENOMEM. */
static int parse_line(const char *p, const char *end, struct tm_promtext_sample *s,
                      const char **why)
{
        const char *q = p;
        tm_buf v = TM_BUF_INIT(1 << 16);
        int r;

        if (!is_name_start((unsigned char)*q)) {
                *why = "a sample must start with a metric name";
                return -EBADMSG;
        }
        while (q < end && is_name_char((unsigned char)*q))
                q++;
        s->name = strndup(p, (size_t)(q - p));
        if (!s->name)
                return -ENOMEM;
        if (q < end && *q == '{') {
                q++;
                for (;;) {
                        const char *n0;

                        while (q < end && *q == ' ')
                                q++;
                        if (q < end && *q == '}') {
                                q++;
                                break;
                        }
                        /* v holds the previous label's value: every exit
                         * from here on goes through fail */
                        if (s->n_labels == TM_PROMTEXT_MAX_LABELS) {
                                *why = "too many labels";
                                r = -EBADMSG;
                                goto fail;
                        }
                        n0 = q;
                        while (q < end && is_name_char((unsigned char)*q) && *q != ':')
                                q++;
                        if (q == n0 || q + 1 >= end || q[0] != '=' || q[1] != '"') {
                                *why = "a label must be name=\"value\"";
                                r = -EBADMSG;
                                goto fail;
                        }
                        s->labels[s->n_labels].name = strndup(n0, (size_t)(q - n0));
                        if (!s->labels[s->n_labels].name) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        s->n_labels++;
                        q += 2;
                        tm_buf_clear(&v);
                        while (q < end && *q != '"') {
                                char c = *q++;

                                if (c == '\\' && q < end) {
                                        c = *q++;
                                        if (c == 'n')
                                                c = '\n';
                                }
                                r = tm_buf_append(&v, &c, 1);
                                if (r < 0)
                                        goto fail;
                        }
                        if (q >= end) {
                                *why = "unterminated label value";
                                r = -EBADMSG;
                                goto fail;
                        }
                        q++;
                        r = tm_buf_append(&v, "", 1);
                        if (r < 0)
                                goto fail;
                        s->labels[s->n_labels - 1].value = strdup((char *)v.data);
                        if (!s->labels[s->n_labels - 1].value) {
                                r = -ENOMEM;
                                goto fail;
                        }
                        while (q < end && *q == ' ')
                                q++;
                        if (q < end && *q == ',')
                                q++;
                        else if (q < end && *q != '}') {
                                *why = "expected ',' or '}' after a label";
                                r = -EBADMSG;
                                goto fail;
                        }
                }
        }
        tm_buf_dispose(&v);
        if (q >= end || (*q != ' ' && *q != '\t')) {
                *why = "expected a space before the value";
                return -EBADMSG;
        }
        while (q < end && (*q == ' ' || *q == '\t'))
                q++;
        p = q;
        while (q < end && *q != ' ' && *q != '\t')
                q++;
        if (parse_value(p, q, &s->value) < 0) {
                *why = "the value is not a number";
                return -EBADMSG;
        }
        return 0;
fail:
        tm_buf_dispose(&v);
        return r;
}

static int family_index(tm_promtext *p, const char *name, size_t len, size_t *ret)
{
        for (size_t i = p->nf; i-- > 0;)
                if (strlen(p->f[i].name) == len && !strncmp(p->f[i].name, name, len)) {
                        *ret = i;
                        return 0;
                }
        if (p->nf == p->capf) {
                size_t cap = p->capf ? p->capf * 2 : 32;
                void *n = realloc(p->f, cap * sizeof(*p->f));

                if (!n)
                        return -ENOMEM;
                p->f = n;
                p->capf = cap;
        }
        memset(&p->f[p->nf], 0, sizeof(p->f[p->nf]));
        p->f[p->nf].name = strndup(name, len);
        if (!p->f[p->nf].name)
                return -ENOMEM;
        *ret = p->nf++;
        return 0;
}

/* "# HELP name text" and "# TYPE name type": remember them per family. */
static int parse_comment(tm_promtext *p, const char *cur, const char *le)
{
        const char *q = cur + 1, *n0;
        int is_help;
        size_t fi;
        char **dst;
        int r;

        while (q < le && *q == ' ')
                q++;
        if (le - q > 5 && !strncmp(q, "HELP ", 5))
                is_help = 1;
        else if (le - q > 5 && !strncmp(q, "TYPE ", 5))
                is_help = 0;
        else
                return 0;
        q += 5;
        n0 = q;
        while (q < le && is_name_char((unsigned char)*q))
                q++;
        if (q == n0)
                return 0;
        r = family_index(p, n0, (size_t)(q - n0), &fi);
        if (r < 0)
                return r;
        while (q < le && *q == ' ')
                q++;
        dst = is_help ? &p->f[fi].help : &p->f[fi].type;
        free(*dst);
        *dst = strndup(q, (size_t)(le - q));
        return *dst ? 0 : -ENOMEM;
}

/* The family a sample belongs to: the last TYPE'd one whose name it
 * extends by a histogram/summary suffix, else its own name. */
static int sample_family(tm_promtext *p, struct tm_promtext_sample *s)
{
        static const char *suffixes[] = { "_bucket", "_sum", "_count", "" };
        size_t len = strlen(s->name);

        for (size_t k = 0; k < TM_ARRAY_SIZE(suffixes); k++) {
                size_t sl = strlen(suffixes[k]);

                if (len <= sl || strcmp(s->name + len - sl, suffixes[k]))
                        continue;
                for (size_t i = p->nf; i-- > 0;)
                        if (strlen(p->f[i].name) == len - sl &&
                            !strncmp(p->f[i].name, s->name, len - sl) &&
                            (sl == 0 || (p->f[i].type && (!strcmp(p->f[i].type, "histogram") ||
                                                          !strcmp(p->f[i].type, "summary"))))) {
                                s->family = i;
                                return 0;
                        }
        }
        return family_index(p, s->name, len, &s->family);
}

int tm_promtext_parse(const char *text, size_t len, tm_promtext **ret, char *msg, size_t msg_len)
{
        tm_promtext *p = calloc(1, sizeof(*p));
        /* an empty scrape body may come as (NULL, 0): NULL + 0 is undefined */
        const char *cur = text, *end = len ? text + len : text;
        unsigned line = 0;
        int r = 0;

        if (!p)
                return -ENOMEM;
        while (cur < end) {
                const char *nl = memchr(cur, '\n', (size_t)(end - cur));
                const char *le = nl ? nl : end, *why = "";

                line++;
                while (cur < le && (*cur == ' ' || *cur == '\t'))
                        cur++;
                if (le > cur && le[-1] == '\r')
                        le--;
                if (cur < le && *cur == '#') {
                        r = parse_comment(p, cur, le);
                        if (r < 0)
                                goto out;
                } else if (cur < le) {
                        if (p->n == MAX_SAMPLES) {
                                r = -E2BIG;
                                goto out;
                        }
                        if (p->n == p->cap) {
                                size_t cap = p->cap ? p->cap * 2 : 64;
                                void *n = realloc(p->s, cap * sizeof(*p->s));

                                if (!n) {
                                        r = -ENOMEM;
                                        goto out;
                                }
                                p->s = n;
                                p->cap = cap;
                        }
                        memset(&p->s[p->n], 0, sizeof(p->s[p->n]));
                        r = parse_line(cur, le, &p->s[p->n], &why);
                        p->n++;
                        if (r >= 0)
                                r = sample_family(p, &p->s[p->n - 1]);
                        if (r < 0) {
                                if (r == -EBADMSG && msg)
                                        snprintf(msg, msg_len, "line %u: %s", line, why);
                                goto out;
                        }
                }
                cur = nl ? nl + 1 : end;
        }
out:
        if (r < 0) {
                tm_promtext_free(p);
                return r;
        }
        *ret = p;
        return 0;
}

const struct tm_promtext_sample *tm_promtext_samples(const tm_promtext *p, size_t *ret_n)
{
        *ret_n = p->n;
        return p->s;
}

const char *tm_promtext_label(const struct tm_promtext_sample *s, const char *name)
{
        for (size_t i = 0; i < s->n_labels; i++)
                if (!strcmp(s->labels[i].name, name))
                        return s->labels[i].value;
        return NULL;
}

static int matches(const struct tm_promtext_sample *s, const char *const *m)
{
        for (; m && *m; m++) {
                const char *eq = strchr(*m, '='), *v;
                char name[128];
                size_t n = eq ? (size_t)(eq - *m) : 0;

                if (!eq || n >= sizeof(name))
                        return 0;
                memcpy(name, *m, n);
                name[n] = '\0';
                v = tm_promtext_label(s, name);
                if (!v || strcmp(v, eq + 1))
                        return 0;
        }
        return 1;
}

int tm_promtext_match(const struct tm_promtext_sample *s, const char *name,
                      const char *const *matchers)
{
        return !strcmp(s->name, name) && matches(s, matchers);
}

int tm_promtext_select(const tm_promtext *p, const char *name, const char *const *matchers,
                       enum tm_promtext_agg agg, double *ret)
{
        double acc = 0;
        size_t found = 0;

        for (const char *const *m = matchers; m && *m; m++)
                if (!strchr(*m, '='))
                        return -EINVAL;
        for (size_t i = 0; i < p->n; i++) {
                const struct tm_promtext_sample *s = &p->s[i];

                if (strcmp(s->name, name) || !matches(s, matchers))
                        continue;
                if (!found)
                        acc = agg == TM_PROMTEXT_COUNT ? 0 : s->value;
                else if (agg == TM_PROMTEXT_MAX)
                        acc = s->value > acc ? s->value : acc;
                else if (agg == TM_PROMTEXT_MIN)
                        acc = s->value < acc ? s->value : acc;
                else if (agg == TM_PROMTEXT_SUM)
                        acc += s->value;
                found++;
        }
        if (agg == TM_PROMTEXT_COUNT) {
                *ret = (double)found;
                return 0;
        }
        if (!found)
                return -ENOENT;
        *ret = acc;
        return 0;
}

int tm_promtext_agg_parse(const char *s, enum tm_promtext_agg *ret)
{
        static const char *names[] = { "max", "min", "sum", "count" };

        for (size_t i = 0; i < TM_ARRAY_SIZE(names); i++)
                if (!strcmp(s, names[i])) {
                        *ret = (enum tm_promtext_agg)i;
                        return 0;
                }
        return -EINVAL;
}

static int render_value(tm_buf *out, double v)
{
        if (isnan(v))
                return tm_buf_printf(out, "NaN\n");
        if (isinf(v))
                return tm_buf_printf(out, v > 0 ? "+Inf\n" : "-Inf\n");
        return tm_buf_printf(out, "%.17g\n", v);
}

static int render_escaped(tm_buf *out, const char *v)
{
        int r = 0;

        for (; *v && r >= 0; v++) {
                if (*v == '\\' || *v == '"')
                        r = tm_buf_printf(out, "\\%c", *v);
                else if (*v == '\n')
                        r = tm_buf_printf(out, "\\n");
                else
                        r = tm_buf_append(out, v, 1);
        }
        return r;
}

int tm_promtext_render_merged(const tm_promtext *const *sets, const char *const *names, size_t n,
                              const char *label, int (*skip)(const char *family, void *ud),
                              void *ud, tm_buf *out)
{
        int r = 0;

        for (size_t si = 0; si < n && r >= 0; si++) {
                const tm_promtext *p = sets[si];

                for (size_t fi = 0; p && fi < p->nf && r >= 0; fi++) {
                        const struct family *f = &p->f[fi];
                        int seen = 0;

                        /* a family an earlier set had was written with it */
                        for (size_t sj = 0; sj < si && !seen; sj++)
                                for (size_t k = 0; sets[sj] && k < sets[sj]->nf && !seen; k++)
                                        seen = !strcmp(sets[sj]->f[k].name, f->name);
                        if (seen || (skip && skip(f->name, ud)))
                                continue;
                        if (f->help)
                                r = tm_buf_printf(out, "# HELP %s %s\n", f->name, f->help);
                        if (r >= 0 && f->type)
                                r = tm_buf_printf(out, "# TYPE %s %s\n", f->name, f->type);
                        for (size_t sk = si; sk < n && r >= 0; sk++) {
                                const tm_promtext *q = sets[sk];
                                size_t qf;

                                if (!q)
                                        continue;
                                for (qf = 0; qf < q->nf; qf++)
                                        if (!strcmp(q->f[qf].name, f->name))
                                                break;
                                if (qf == q->nf)
                                        continue;
                                for (size_t i = 0; i < q->n && r >= 0; i++) {
                                        const struct tm_promtext_sample *s = &q->s[i];

                                        if (s->family != qf)
                                                continue;
                                        r = tm_buf_printf(out, "%s{%s=\"", s->name, label);
                                        if (r >= 0)
                                                r = render_escaped(out, names[sk]);
                                        if (r >= 0)
                                                r = tm_buf_append(out, "\"", 1);
                                        for (size_t l = 0; l < s->n_labels && r >= 0; l++) {
                                                if (!strcmp(s->labels[l].name, label))
                                                        continue;
                                                r = tm_buf_printf(out, ",%s=\"", s->labels[l].name);
                                                if (r >= 0)
                                                        r = render_escaped(out, s->labels[l].value);
                                                if (r >= 0)
                                                        r = tm_buf_append(out, "\"", 1);
                                        }
                                        if (r >= 0)
                                                r = tm_buf_append(out, "} ", 2);
                                        if (r >= 0)
                                                r = render_value(out, s->value);
                                }
                        }
                }
        }
        return r;
}
