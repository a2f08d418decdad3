/*
 * The DR sections of the configuration file. The core loader keeps them
 * raw; this module owns their keys, defaults and errors.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/core.h>
#include <tidemark/dr.h>
#include <tidemark/time.h>

static const char *const hook_names[TM_DR_HOOK_COUNT] = { "fence", "switch-traffic", "notify" };

const char *tm_dr_hook_name(enum tm_dr_hook_kind k)
{
        return k < TM_DR_HOOK_COUNT ? hook_names[k] : "?";
}

void tm_dr_conf_free(struct tm_dr_conf *c)
{
        if (!c)
                return;
        for (size_t i = 0; i < c->n_sites; i++) {
                free(c->sites[i].name);
                free(c->sites[i].conninfo);
                free(c->sites[i].replication_conninfo);
                free(c->sites[i].pgdata);
                free(c->sites[i].repository);
        }
        free(c->sites);
        for (size_t i = 0; i < c->n_tiers; i++)
                free(c->tiers[i].name);
        free(c->tiers);
        for (int i = 0; i < TM_DR_HOOK_COUNT; i++)
                free(c->hooks[i].command);
        for (size_t i = 0; i < c->n_targets; i++) {
                free(c->targets[i].name);
                free(c->targets[i].path);
        }
        free(c->targets);
        free(c->primary);
        free(c->service_tier);
        free(c->pg_bin);
        free(c->state_dir);
        free(c->component);
        free(c->tidemark);
        free(c);
}

const struct tm_dr_site *tm_dr_site_find(const struct tm_dr_conf *c, const char *name)
{
        for (size_t i = 0; name && i < c->n_sites; i++)
                if (!strcmp(c->sites[i].name, name))
                        return &c->sites[i];
        return NULL;
}

const struct tm_dr_tier *tm_dr_tier_find(const struct tm_dr_conf *c, const char *name)
{
        for (size_t i = 0; name && i < c->n_tiers; i++)
                if (!strcmp(c->tiers[i].name, name))
                        return &c->tiers[i];
        return NULL;
}

const struct tm_dr_target *tm_dr_target_find(const struct tm_dr_conf *c, const char *name)
{
        for (size_t i = 0; name && i < c->n_targets; i++)
                if (!strcmp(c->targets[i].name, name))
                        return &c->targets[i];
        return NULL;
}

static int valid_name(const char *s)
{
        size_t n = strlen(s);

        return n > 0 && n < TM_DR_NAME_MAX &&
               strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static int set_str(char **dst, const char *v)
{
        char *s = tm_strdup(v);

        if (!s)
                return -ENOMEM;
        free(*dst);
        *dst = s;
        return 0;
}

/* Parse one key of a section into the right field; r < 0 leaves err set. */
struct ctx {
        const struct tm_config *cfg;
        const struct tm_config_section *s;
        char *err;
        size_t errlen;
};

static int dur(struct ctx *x, const struct tm_config_kv *kv, int64_t *ret)
{
        if (tm_config_parse_duration(kv->value, ret) < 0 || *ret <= 0)
                return tm_config_section_error(x->cfg, x->s, kv->key, x->err, x->errlen,
                                               "%s = '%s': expected a positive duration like "
                                               "5s, 30m or 4h",
                                               kv->key, kv->value);
        return 0;
}

static int boolean(struct ctx *x, const struct tm_config_kv *kv, int *ret)
{
        if (tm_config_parse_bool(kv->value, ret) < 0)
                return tm_config_section_error(x->cfg, x->s, kv->key, x->err, x->errlen,
                                               "%s = '%s': expected on or off", kv->key,
                                               kv->value);
        return 0;
}

static int unknown(struct ctx *x, const struct tm_config_kv *kv)
{
        return tm_config_section_error(x->cfg, x->s, kv->key, x->err, x->errlen,
                                       "unknown key '%s' in [%s]", kv->key, x->s->name);
}

static int load_failover(struct ctx *x, struct tm_dr_conf *c)
{
        for (size_t i = 0; i < x->s->n_kv; i++) {
                const struct tm_config_kv *kv = &x->s->kv[i];
                const char *k = kv->key;
                int r = 0;

                if (!strcmp(k, "primary"))
                        r = set_str(&c->primary, kv->value);
                else if (!strcmp(k, "service_tier"))
                        r = set_str(&c->service_tier, kv->value);
                else if (!strcmp(k, "pg_bin"))
                        r = set_str(&c->pg_bin, kv->value);
                else if (!strcmp(k, "state_dir"))
                        r = set_str(&c->state_dir, kv->value);
                else if (!strcmp(k, "component"))
                        r = set_str(&c->component, kv->value);
                else if (!strcmp(k, "tidemark"))
                        r = set_str(&c->tidemark, kv->value);
                else if (!strcmp(k, "automatic"))
                        r = boolean(x, kv, &c->automatic);
                else if (!strcmp(k, "check_interval"))
                        r = dur(x, kv, &c->check_interval_ns);
                else if (!strcmp(k, "connect_timeout"))
                        r = dur(x, kv, &c->connect_timeout_ns);
                else if (!strcmp(k, "catchup_timeout"))
                        r = dur(x, kv, &c->catchup_timeout_ns);
                else if (!strcmp(k, "failure_threshold")) {
                        char *end = NULL;
                        long v = strtol(kv->value, &end, 10);

                        if (!end || *end || v < 1 || v > 1000)
                                return tm_config_section_error(
                                        x->cfg, x->s, k, x->err, x->errlen,
                                        "failure_threshold = '%s': expected 1 to 1000",
                                        kv->value);
                        c->failure_threshold = (int)v;
                } else
                        return unknown(x, kv);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int load_site(struct ctx *x, struct tm_dr_conf *c, const char *name)
{
        struct tm_dr_site *s, *a = realloc(c->sites, (c->n_sites + 1) * sizeof(*a));

        if (!a)
                return -ENOMEM;
        c->sites = a;
        s = &a[c->n_sites++];
        memset(s, 0, sizeof(*s));
        s->line = x->s->line;
        if (set_str(&s->name, name) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < x->s->n_kv; i++) {
                const struct tm_config_kv *kv = &x->s->kv[i];
                const char *k = kv->key;
                int r = 0;

                if (!strcmp(k, "conninfo"))
                        r = set_str(&s->conninfo, kv->value);
                else if (!strcmp(k, "replication_conninfo"))
                        r = set_str(&s->replication_conninfo, kv->value);
                else if (!strcmp(k, "pgdata"))
                        r = set_str(&s->pgdata, kv->value);
                else if (!strcmp(k, "repository"))
                        r = set_str(&s->repository, kv->value);
                else if (!strcmp(k, "auto_failover"))
                        r = boolean(x, kv, &s->auto_failover);
                else
                        return unknown(x, kv);
                if (r < 0)
                        return r;
        }
        if (!s->conninfo)
                return tm_config_section_error(x->cfg, x->s, NULL, x->err, x->errlen,
                                               "[%s] needs conninfo (a libpq connection string)",
                                               x->s->name);
        if (s->pgdata && s->pgdata[0] != '/')
                return tm_config_section_error(x->cfg, x->s, "pgdata", x->err, x->errlen,
                                               "pgdata = '%s': expected an absolute path",
                                               s->pgdata);
        return 0;
}

static int load_tier(struct ctx *x, struct tm_dr_conf *c, const char *name)
{
        struct tm_dr_tier *t = (struct tm_dr_tier *)tm_dr_tier_find(c, name);

        if (!t) {
                struct tm_dr_tier *a = realloc(c->tiers, (c->n_tiers + 1) * sizeof(*a));

                if (!a)
                        return -ENOMEM;
                c->tiers = a;
                t = &a[c->n_tiers++];
                memset(t, 0, sizeof(*t));
                if (set_str(&t->name, name) < 0)
                        return -ENOMEM;
        }
        for (size_t i = 0; i < x->s->n_kv; i++) {
                const struct tm_config_kv *kv = &x->s->kv[i];
                int r;

                if (!strcmp(kv->key, "rto"))
                        r = dur(x, kv, &t->rto_ns);
                else if (!strcmp(kv->key, "rpo"))
                        r = dur(x, kv, &t->rpo_ns);
                else
                        return unknown(x, kv);
                if (r < 0)
                        return r;
        }
        if (!t->rto_ns || !t->rpo_ns)
                return tm_config_section_error(x->cfg, x->s, NULL, x->err, x->errlen,
                                               "[%s] needs rto and rpo", x->s->name);
        return 0;
}

static int load_hook(struct ctx *x, struct tm_dr_conf *c, const char *name)
{
        struct tm_dr_hook *h = NULL;

        for (int i = 0; i < TM_DR_HOOK_COUNT; i++)
                if (!strcmp(name, hook_names[i]))
                        h = &c->hooks[i];
        if (!h)
                return tm_config_section_error(x->cfg, x->s, NULL, x->err, x->errlen,
                                               "unknown hook [hook.%s]: expected fence, "
                                               "switch-traffic or notify",
                                               name);
        for (size_t i = 0; i < x->s->n_kv; i++) {
                const struct tm_config_kv *kv = &x->s->kv[i];
                int r;

                if (!strcmp(kv->key, "command"))
                        r = set_str(&h->command, kv->value);
                else if (!strcmp(kv->key, "timeout"))
                        r = dur(x, kv, &h->timeout_ns);
                else
                        return unknown(x, kv);
                if (r < 0)
                        return r;
        }
        if (!h->command || !h->command[0])
                return tm_config_section_error(x->cfg, x->s, NULL, x->err, x->errlen,
                                               "[%s] needs command", x->s->name);
        return 0;
}

static int load_target(struct ctx *x, struct tm_dr_conf *c, const char *name)
{
        struct tm_dr_target *t, *a = realloc(c->targets, (c->n_targets + 1) * sizeof(*a));

        if (!a)
                return -ENOMEM;
        c->targets = a;
        t = &a[c->n_targets++];
        memset(t, 0, sizeof(*t));
        if (set_str(&t->name, name) < 0)
                return -ENOMEM;
        for (size_t i = 0; i < x->s->n_kv; i++) {
                const struct tm_config_kv *kv = &x->s->kv[i];
                int r = 0;

                if (!strcmp(kv->key, "path"))
                        r = set_str(&t->path, kv->value);
                else if (!strcmp(kv->key, "port")) {
                        char *end = NULL;
                        long v = strtol(kv->value, &end, 10);

                        if (!end || *end || v < 0 || v > 65535)
                                return tm_config_section_error(x->cfg, x->s, "port", x->err,
                                                               x->errlen,
                                                               "port = '%s': expected 0 to 65535",
                                                               kv->value);
                        t->port = (int)v;
                } else
                        return unknown(x, kv);
                if (r < 0)
                        return r;
        }
        if (!t->path || t->path[0] != '/')
                return tm_config_section_error(x->cfg, x->s, "path", x->err, x->errlen,
                                               "[%s] needs path, an absolute directory",
                                               x->s->name);
        return 0;
}

int tm_dr_conf_load(const struct tm_config *cfg, struct tm_dr_conf **ret, char *err, size_t errlen)
{
        struct tm_dr_conf *c = calloc(1, sizeof(*c));
        int r = -ENOMEM;

        if (!c)
                goto out;
        /* 3 failed checks a second apart: a dead primary is promoted away
         * from in ~4 s (Patroni's defaults take ~27 s here, bench/README).
         * Checking this often is safe because a promotion also needs the
         * standby to see the primary gone; a check is one libpq connect. */
        c->failure_threshold = 3;
        c->check_interval_ns = 1 * TM_NSEC_PER_SEC;
        c->connect_timeout_ns = 2 * TM_NSEC_PER_SEC;
        c->catchup_timeout_ns = 120 * TM_NSEC_PER_SEC;
        /* the spec's tiers first; [service_tier.*] sections adjust them */
        c->tiers = calloc(TM_TIER_COUNT, sizeof(*c->tiers));
        if (!c->tiers)
                goto out;
        for (int t = 0; t < TM_TIER_COUNT; t++) {
                c->tiers[t].name = tm_strdup(tm_tier_name((enum tm_tier)t));
                if (!c->tiers[t].name)
                        goto out;
                c->tiers[t].rto_ns = tm_tier_rto((enum tm_tier)t);
                c->tiers[t].rpo_ns = tm_tier_rpo((enum tm_tier)t);
                c->n_tiers++;
        }
        for (size_t i = 0; i < cfg->n_sections; i++) {
                struct ctx x = { cfg, &cfg->sections[i], err, errlen };
                const char *n = x.s->name, *dot = strchr(n, '.');
                const char *sub = dot ? dot + 1 : "";

                if (dot && !valid_name(sub)) {
                        r = tm_config_section_error(cfg, x.s, NULL, err, errlen,
                                                    "[%s]: a name is 1 to 63 letters, digits, "
                                                    "'-' or '_'",
                                                    n);
                        goto out;
                }
                if (!strcmp(n, "failover"))
                        r = load_failover(&x, c);
                else if (!strncmp(n, "site.", 5)) {
                        if (tm_dr_site_find(c, sub)) {
                                r = tm_config_section_error(cfg, x.s, NULL, err, errlen,
                                                            "[%s] is defined twice", n);
                                goto out;
                        }
                        r = load_site(&x, c, sub);
                } else if (!strncmp(n, "service_tier.", 13))
                        r = load_tier(&x, c, sub);
                else if (!strncmp(n, "hook.", 5))
                        r = load_hook(&x, c, sub);
                else if (!strncmp(n, "target.", 7))
                        r = load_target(&x, c, sub);
                else
                        continue; /* another module's section */
                if (r < 0)
                        goto out;
        }
        r = -ENOMEM;
        for (int i = 0; i < TM_DR_HOOK_COUNT; i++)
                if (c->hooks[i].command && !c->hooks[i].timeout_ns)
                        c->hooks[i].timeout_ns = 60 * TM_NSEC_PER_SEC;
        if (!c->service_tier && set_str(&c->service_tier, "critical") < 0)
                goto out;
        if (!c->pg_bin && set_str(&c->pg_bin, "/usr/lib/postgresql/15/bin") < 0)
                goto out;
        if (!c->state_dir && set_str(&c->state_dir, "/var/lib/tidemark-failoverd") < 0)
                goto out;
        if (!c->component && set_str(&c->component, "database") < 0)
                goto out;
        r = 0;
        if (!tm_dr_tier_find(c, c->service_tier)) {
                const struct tm_config_section *s = tm_config_section(cfg, "failover");

                r = tm_config_section_error(cfg, s, "service_tier", err, errlen,
                                            "service_tier = '%s': no such tier (critical, "
                                            "high, standard, development or a "
                                            "[service_tier.NAME])",
                                            c->service_tier);
        } else if (c->primary && !tm_dr_site_find(c, c->primary)) {
                const struct tm_config_section *s = tm_config_section(cfg, "failover");

                r = tm_config_section_error(cfg, s, "primary", err, errlen,
                                            "primary = '%s': no [site.%s]", c->primary,
                                            c->primary);
        }
out:
        if (r < 0) {
                if (r == -ENOMEM)
                        snprintf(err, errlen, "out of memory");
                tm_dr_conf_free(c);
                return r;
        }
        *ret = c;
        return 0;
}
