/*
 * The public backend API: name validation in one place, then dispatch to the
 * driver. Drivers never see a name that could escape their root.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "backend_internal.h"

int tm_backend__name_valid(const char *name)
{
        const char *c;
        size_t len;

        if (!name || !*name)
                return 0;
        len = strnlen(name, PATH_MAX);
        if (len >= PATH_MAX)
                return 0;
        /* Walk component by component: each must be non-empty and must not
         * start with '.', which rules out ".", "..", "//", a leading or
         * trailing '/', and names that look like our temp files. */
        c = name;
        for (;;) {
                const char *slash = strchr(c, '/');
                size_t n = slash ? (size_t)(slash - c) : strlen(c);

                if (n == 0 || c[0] == '.')
                        return 0;
                if (!slash)
                        return 1;
                c = slash + 1;
        }
}

static int check(const tm_backend *b, const char *name)
{
        if (!b || !tm_backend__name_valid(name))
                return -EINVAL;
        return 0;
}

void tm_backend_free(tm_backend *b)
{
        if (!b)
                return;
        b->ops->free(b);
}

const char *tm_backend_location(const tm_backend *b)
{
        if (!b)
                return "";
        return b->ops->location(b);
}

int tm_backend_is_remote(tm_backend *b)
{
        if (!b)
                return 0;
        if (tm_backend_is_tiered(b)) {
                for (unsigned i = 0; i < TM_BACKEND_TIERS; i++) {
                        tm_backend *t = tm_backend_tier(b, i);

                        if (t && t != b && tm_backend_is_remote(t))
                                return 1;
                }
                return 0;
        }
        return strcmp(b->ops->kind, "local") != 0;
}

int tm_backend_put(tm_backend *b, const char *name, const void *p, size_t n)
{
        int r = check(b, name);

        if (r < 0)
                return r;
        if (!p && n)
                return -EINVAL;
        return b->ops->put(b, name, p, n);
}

int tm_backend_put_new(tm_backend *b, const char *name, const void *p, size_t n)
{
        int r = check(b, name);

        if (r < 0)
                return r;
        if (!p && n)
                return -EINVAL;
        return b->ops->put_new(b, name, p, n);
}

int tm_backend_get(tm_backend *b, const char *name, size_t limit, tm_buf *ret)
{
        int r = check(b, name);

        if (r < 0)
                return r;
        if (!ret)
                return -EINVAL;
        return b->ops->get(b, name, limit, ret);
}

int tm_backend_get_range(tm_backend *b, const char *name, uint64_t off, size_t len, tm_buf *ret)
{
        int r = check(b, name);

        if (r < 0)
                return r;
        if (!ret || off > INT64_MAX || len > INT64_MAX - off)
                return -EINVAL;
        return b->ops->get_range(b, name, off, len, ret);
}

int tm_backend_head(tm_backend *b, const char *name, uint64_t *ret_size)
{
        int r = check(b, name);

        if (r < 0)
                return r;
        return b->ops->head(b, name, ret_size);
}

int tm_backend_list(tm_backend *b, const char *prefix, tm_backend_list_fn fn, void *userdata)
{
        char *p = NULL;
        size_t n;
        int r;

        if (!b || !fn)
                return -EINVAL;
        if (!prefix)
                prefix = "";
        if (prefix[0] == '/')
                return -EINVAL;
        /* "data/" and "data" both mean the directory data; "" means everything */
        n = strnlen(prefix, PATH_MAX);
        if (n >= PATH_MAX)
                return -EINVAL;
        while (n > 0 && prefix[n - 1] == '/')
                n--;
        p = strndup(prefix, n);
        if (!p)
                return -ENOMEM;
        if (n > 0 && !tm_backend__name_valid(p)) {
                r = -EINVAL;
                goto out;
        }
        r = b->ops->list(b, p, fn, userdata);
out:
        free(p);
        return r;
}

int tm_backend_remove(tm_backend *b, const char *name)
{
        int r = check(b, name);

        if (r < 0)
                return r;
        return b->ops->remove(b, name);
}

int tm_backend_clean_temp(tm_backend *b, int64_t age_s)
{
        if (!b || age_s < 0)
                return -EINVAL;
        return b->ops->clean_temp(b, age_s);
}

int tm_backend_thaw(tm_backend *b, const char *name, const char *retrieval, int days)
{
        int r = check(b, name);

        if (r < 0)
                return r;
        if (!retrieval)
                retrieval = "Standard";
        if (strcmp(retrieval, "Expedited") != 0 && strcmp(retrieval, "Standard") != 0 &&
            strcmp(retrieval, "Bulk") != 0)
                return -EINVAL;
        if (days <= 0)
                days = 1;
        if (!b->ops->thaw)
                return 0;
        return b->ops->thaw(b, name, retrieval, days);
}
