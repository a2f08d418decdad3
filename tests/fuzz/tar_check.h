#pragma once
/* The promises tm_pg_tar_feed makes of every member it hands out, checked
 * by both fuzz targets that feed it (fuzz_pgtar, fuzz_walhdr): a relative
 * name within the limit, no empty, "." or ".." component, no trailing
 * '/', and a regular file, directory or symlink. */
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/pg.h>

static inline void fuzz_tar_entry_check(const struct tm_pg_tar_entry *e)
{
        const char *c = e->name;

        TM_ASSERT(e->name[0] && e->name[0] != '/');
        TM_ASSERT(strlen(e->name) <= TM_PG_TAR_NAME_MAX);
        while (*c) {
                size_t len = strcspn(c, "/");

                TM_ASSERT(len > 0);
                TM_ASSERT(!(len == 1 && c[0] == '.'));
                TM_ASSERT(!(len == 2 && c[0] == '.' && c[1] == '.'));
                c += len;
                if (*c == '/')
                        c++;
                TM_ASSERT(*c || c[-1] != '/');
        }
        TM_ASSERT(e->type == '0' || e->type == '5' || e->type == '2');
}
