/*
 * The view: an immutable copy of the snapshot list, its recovery points and
 * components, plus the pure logic over it (instant names, resolution of an
 * instant to one snapshot per component, grouping a file's history into
 * versions). Pure so that it is unit-tested without a kernel or repository.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/pg.h>
#include <tidemark/time.h>

#include "fs.h"

static int cmp_i64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

        return x < y ? -1 : x > y;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Floor to the second (times before 1970 do not occur: snapshots reject them). */
static int64_t floor_sec(int64_t ns)
{
        return ns - ns % TM_NSEC_PER_SEC;
}

void fs_view_free(struct fs_view *v)
{
        if (!v)
                return;
        for (size_t i = 0; i < v->n_snaps; i++)
                free(v->snaps[i].component);
        free(v->snaps);
        free(v->instants);
        free(v->components); /* borrowed from snaps */
        free(v);
}

int fs_view_new(const struct tm_snapshot *a, size_t n, struct fs_view **ret)
{
        struct fs_view *v = calloc(1, sizeof(*v));
        size_t k;
        int r = -ENOMEM;

        if (!v)
                return -ENOMEM;
        v->refs = 1;
        if (n) {
                v->snaps = calloc(n, sizeof(*v->snaps));
                v->instants = calloc(n, sizeof(*v->instants));
                v->components = calloc(n, sizeof(*v->components));
                if (!v->snaps || !v->instants || !v->components)
                        goto out;
        }
        for (size_t i = 0; i < n; i++) {
                v->snaps[i].id = a[i].id;
                v->snaps[i].tree = a[i].tree;
                v->snaps[i].time = a[i].time;
                v->snaps[i].is_pg = tm_pg_snapshot_is_base_backup(&a[i]);
                v->snaps[i].component = strdup(a[i].component ? a[i].component : "");
                if (!v->snaps[i].component)
                        goto out;
                v->n_snaps++;
                v->instants[i] = floor_sec(a[i].time);
                v->components[i] = v->snaps[i].component;
        }
        /* the list comes oldest first, but a stable order matters for
         * resolution: keep the input order and sort only the derived sets */
        if (n) {
                qsort(v->instants, n, sizeof(*v->instants), cmp_i64);
                qsort(v->components, n, sizeof(*v->components), cmp_str);
        }
        for (size_t i = k = 0; i < n; i++)
                if (k == 0 || v->instants[k - 1] != v->instants[i])
                        v->instants[k++] = v->instants[i];
        v->n_instants = k;
        for (size_t i = k = 0; i < n; i++)
                if (k == 0 || strcmp(v->components[k - 1], v->components[i]) != 0)
                        v->components[k++] = v->components[i];
        v->n_components = k;
        *ret = v;
        v = NULL;
        r = 0;
out:
        fs_view_free(v);
        return r;
}

int fs_instant_parse(const char *name, int64_t *ret_bound)
{
        int64_t t, prec;

        if (!name || name[0] != '@' || tm_time_parse(name + 1, &t, &prec) < 0)
                return -ENOENT;
        if (prec < 1)
                prec = 1;
        *ret_bound = t + prec - 1;
        return 0;
}

void fs_instant_format(int64_t ns, char *out, size_t n)
{
        char buf[40];

        tm_time_format(ns, buf, sizeof(buf));
        snprintf(out, n, "@%s", buf);
}

size_t fs_view_resolve(const struct fs_view *v, int64_t bound, size_t *ret_idx)
{
        size_t found = 0;

        for (size_t c = 0; c < v->n_components; c++) {
                size_t best = SIZE_MAX;

                /* snaps are oldest first: the last match is the latest; on a
                 * tie in time the later one in the list wins */
                for (size_t i = 0; i < v->n_snaps; i++)
                        if (v->snaps[i].time <= bound &&
                            strcmp(v->snaps[i].component, v->components[c]) == 0 &&
                            (best == SIZE_MAX || v->snaps[i].time >= v->snaps[best].time))
                                best = i;
                if (best != SIZE_MAX)
                        ret_idx[found++] = best;
        }
        return found;
}

int fs_view_find_id(const struct fs_view *v, const tm_id *id, size_t *ret)
{
        for (size_t i = 0; i < v->n_snaps; i++)
                if (tm_id_cmp(&v->snaps[i].id, id) == 0) {
                        *ret = i;
                        return 0;
                }
        return -ENOENT;
}

int fs_view_has_component(const struct fs_view *v, const char *component)
{
        return v->n_components && bsearch(&component, v->components, v->n_components,
                                          sizeof(*v->components), cmp_str) != NULL;
}

static int same_content(const struct tm_node *a, const struct tm_node *b)
{
        if (a->n_content != b->n_content)
                return 0;
        for (size_t i = 0; i < a->n_content; i++)
                if (a->content[i].size != b->content[i].size ||
                    tm_id_cmp(&a->content[i].id, &b->content[i].id) != 0)
                        return 0;
        return 1;
}

size_t fs_history_group(const struct fs_hist_in *in, size_t n, size_t *ret_idx)
{
        size_t k = 0;

        for (size_t i = 0; i < n; i++) {
                if (k > 0 && same_content(in[ret_idx[k - 1]].node, in[i].node))
                        continue;
                if (k > 0 && floor_sec(in[ret_idx[k - 1]].time) == floor_sec(in[i].time))
                        k--; /* same name: the later version wins */
                ret_idx[k++] = i;
        }
        return k;
}
