#pragma once
/* Shared by the dr module's files only. */
#include <stddef.h>

/* The host and port a libpq conninfo points at ("" when absent). Returns 0
 * or -EINVAL (not a conninfo). */
int tm_dr__conninfo_hostport(const char *conninfo, char *host, size_t hn, char *port, size_t pn);
