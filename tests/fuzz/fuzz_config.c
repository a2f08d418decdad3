/* Fuzz the whole configuration file: the core loader (inih, every known
 * section and key, the value parsers) and then every module's loader of the
 * raw sections it owns ([tier.*], [replica], [service.*]/[check.*],
 * [channel.*], [alert.*], [runbook.*], the DR sections), in the order the
 * daemons run them. The input goes through a memfd so tm_config_load() reads
 * it by path like a real file. Invariant: a loaded configuration has every
 * default the header promises. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <tidemark/alert.h>
#include <tidemark/config.h>
#include <tidemark/core.h>
#include <tidemark/dr.h>
#include <tidemark/notify.h>
#include <tidemark/probe.h>
#include <tidemark/replica.h>
#include <tidemark/runbook.h>
#include <tidemark/tier.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int mfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
        /* a *_file key naming stdin must not block the fuzzer */
        if (!freopen("/dev/null", "r", stdin))
                abort();
        mfd = memfd_create("fuzz-config", 0);
        if (mfd < 0)
                abort();
        return 0;
}

static void modules(const struct tm_config *c)
{
        char err[512];
        struct tm_tier_set ts;
        struct tm_replica_conf rc;
        struct tm_probe_config *pc = NULL;
        struct tm_runbooks *rbs = NULL;
        struct tm_dr_conf *dr = NULL;
        tm_notify *n = NULL;
        tm_alerts *a = NULL;

        memset(&ts, 0, sizeof(ts));
        (void)tm_tier_set_load(c, &ts, err, sizeof(err));
        tm_tier_set_dispose(&ts);
        memset(&rc, 0, sizeof(rc));
        if (tm_replica_conf_load(c, &rc, err, sizeof(err)) == 0)
                TM_ASSERT(rc.name && rc.location);
        tm_replica_conf_dispose(&rc);
        if (tm_dr_conf_load(c, &dr, err, sizeof(err)) == 0)
                tm_dr_conf_free(dr);
        if (tm_probe_config_load(c, &pc, err, sizeof(err)) == 0) {
                if (tm_runbooks_load(c, pc, &rbs, err, sizeof(err)) == 0)
                        tm_runbooks_free(rbs);
                if (tm_notify_new(c, &n, err, sizeof(err)) == 0) {
                        if (tm_alerts_new(c, pc, tm_notify_names(n), &a, err, sizeof(err)) == 0)
                                tm_alerts_free(a);
                        tm_notify_free(n, 0);
                }
                tm_probe_config_free(pc);
        }
        for (size_t i = 0; i < c->n_sections; i++) {
                const struct tm_config_section *s = &c->sections[i];

                TM_ASSERT(tm_config_section(c, s->name) != NULL);
                for (size_t k = 0; k < s->n_kv; k++)
                        TM_ASSERT(tm_config_section_get(s, s->kv[k].key) != NULL);
                (void)tm_config_section_check_keys(c, s, NULL, 0, err, sizeof(err));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char path[64], err[512];
        struct tm_config *c = NULL;

        if (ftruncate(mfd, 0) < 0 || pwrite(mfd, data, size, 0) != (ssize_t)size)
                abort();
        snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
        err[0] = '\0';
        if (tm_config_load(path, &c, err, sizeof(err)) == 0) {
                TM_ASSERT(c->listen && c->access_log && c->workers > 0);
                for (size_t i = 0; i < c->n_components; i++)
                        TM_ASSERT(tm_config_component(c, c->components[i].name) ==
                                  &c->components[i]);
                modules(c);
                tm_config_free(c);
        } else {
                /* bad input gets a message that says what and where */
                TM_ASSERT(err[0] != '\0');
        }
        return 0;
}
