/*
 * tidemark tier status | tier run [--dry-run] | thaw SNAP... [--no-wait]
 *
 * The storage tiers of the [tier.*] sections of --config: where the packs
 * are, one lifecycle pass, and thawing what a restore will need.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include <tidemark/tier.h>

#include "cli.h"

static json_t *usage_json(const struct tm_tier_set *set, const struct tm_tier_stats *st)
{
        json_t *tiers = json_array();

        for (unsigned i = 0; tiers && i < TM_TIER_LEVELS; i++) {
                const struct tm_tier_conf *t = &set->t[i];

                if (!t->configured)
                        continue;
                json_array_append_new(
                        tiers, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}", "tier",
                                         tm_tier_level_name(i), "location",
                                         t->location ? t->location : cli_opts.repo,
                                         "storage_class",
                                         t->storage_class ? t->storage_class : "local",
                                         "age_seconds", (json_int_t)(t->age_ns / 1000000000),
                                         "packs", (json_int_t)st->packs[i], "bytes",
                                         (json_int_t)st->bytes[i]));
        }
        return tiers;
}

static void usage_print(const struct tm_tier_set *set, const struct tm_tier_stats *st)
{
        char bytes[32];

        cli_out("%-8s %-14s %8s %10s  %s\n", "tier", "class", "packs", "size", "location");
        for (unsigned i = 0; i < TM_TIER_LEVELS; i++) {
                const struct tm_tier_conf *t = &set->t[i];

                if (!t->configured)
                        continue;
                cli_format_bytes(st->bytes[i], bytes, sizeof(bytes));
                cli_out("%-8s %-14s %8" PRIu64 " %10s  %s\n", tm_tier_level_name(i),
                        t->storage_class ? t->storage_class : "local", st->packs[i], bytes,
                        t->location ? t->location : cli_opts.repo);
        }
}

static int tier_status(tm_repo *repo)
{
        struct tm_tier_stats st;
        int r = tm_tier_usage(repo, &st);

        if (r < 0)
                return cli_error_errno(r, "cannot list the tiers");
        if (cli_opts.json)
                cli_json_print(json_pack("{s:o}", "tiers", usage_json(tm_repo_tiers(repo), &st)));
        else
                usage_print(tm_repo_tiers(repo), &st);
        return CLI_EXIT_OK;
}

static int tier_run(tm_repo *repo)
{
        struct tm_tier_opts o = { .dry_run = cli_opts.dry_run };
        struct tm_tier_stats st;
        char bytes[32];
        int r;

        if (tm_repo_tiers(repo)->n_configured == 0)
                return cli_error("no tier below hot is configured: add [tier.warm] (and cold, "
                                 "archive) sections to the file given with --config");
        r = tm_tier_run(repo, &o, &st);
        if (r < 0 && r != -EAGAIN)
                return cli_error_errno(r, "lifecycle pass failed");
        if (cli_opts.json) {
                cli_json_print(json_pack(
                        "{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "dry_run", cli_opts.dry_run,
                        "moved", (json_int_t)st.moved, "moved_bytes", (json_int_t)st.moved_bytes,
                        "thawing", (json_int_t)st.thawing, "finished", (json_int_t)st.finished,
                        "unreferenced", (json_int_t)st.unreferenced, "failed",
                        (json_int_t)st.failed, "tiers", usage_json(tm_repo_tiers(repo), &st)));
        } else {
                cli_format_bytes(st.moved_bytes, bytes, sizeof(bytes));
                cli_out("%s %" PRIu64 " packs (%s); %" PRIu64 " waiting for a thaw, %" PRIu64
                        " interrupted moves finished, %" PRIu64 " failed\n",
                        cli_opts.dry_run ? "would move" : "moved", st.moved, bytes, st.thawing,
                        st.finished, st.failed);
                usage_print(tm_repo_tiers(repo), &st);
        }
        if (r == -EAGAIN)
                return cli_error("%" PRIu64 " packs could not be moved (named above); they stay "
                                 "where they are and the next run tries again",
                                 st.failed);
        return CLI_EXIT_OK;
}

int cli_cmd_tier(void)
{
        tm_repo *repo = NULL;
        int r;

        if (cli_opts.n_args != 1 ||
            (strcmp(cli_opts.args[0], "status") != 0 && strcmp(cli_opts.args[0], "run") != 0))
                return cli_error("tier needs 'status' or 'run'");
        if (cli_opts.dry_run && strcmp(cli_opts.args[0], "run") != 0)
                return cli_error("--dry-run is for 'tier run'");
        if (cli_repo_open(&repo) < 0)
                return CLI_EXIT_FAIL;
        r = strcmp(cli_opts.args[0], "run") == 0 ? tier_run(repo) : tier_status(repo);
        tm_repo_free(repo);
        return r;
}

int cli_thaw_snapshots(tm_repo *repo, const struct tm_snapshot *snaps, size_t n, int wait)
{
        struct tm_thaw_stats st = { 0 };
        tm_id *trees = calloc(n ? n : 1, sizeof(*trees));
        int r;

        if (!trees)
                return cli_error_errno(-ENOMEM, "thaw");
        for (size_t i = 0; i < n; i++)
                trees[i] = snaps[i].tree;
        r = tm_tier_thaw(repo, trees, n, wait, 0, &st);
        free(trees);
        if (st.archived) {
                const struct tm_tier_set *set = tm_repo_tiers(repo);
                unsigned lvl = TM_TIER_ARCHIVE;

                while (lvl > TM_TIER_COLD && !set->t[lvl].configured)
                        lvl--;
                cli_out("%" PRIu64 " of %" PRIu64 " packs are archived: restore requested (%s "
                        "retrieval, expected %s)%s\n",
                        st.archived, st.packs, set->t[lvl].retrieval,
                        tm_tier_thaw_eta(lvl, set->t[lvl].retrieval),
                        r == 0 ? "; all readable now" : "");
        }
        if (r < 0 && r != -EAGAIN) {
                cli_error_errno(r, "thaw failed");
                return r;
        }
        if (cli_opts.json && !wait)
                cli_json_print(json_pack("{s:I, s:I, s:I, s:b}", "packs", (json_int_t)st.packs,
                                         "archived", (json_int_t)st.archived, "requested",
                                         (json_int_t)st.requested, "ready", r == 0));
        return r;
}

int cli_cmd_thaw(void)
{
        struct tm_snapshot *snaps = NULL;
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL;
        size_t n = 0;

        if (cli_opts.n_args == 0)
                return cli_error("thaw needs at least one snapshot (SNAP...)");
        snaps = calloc(cli_opts.n_args, sizeof(*snaps));
        if (!snaps)
                return cli_error_errno(-ENOMEM, "thaw");
        if (cli_repo_open(&repo) < 0)
                goto out;
        for (; n < cli_opts.n_args; n++)
                if (cli_snapshot_find(repo, cli_opts.args[n], &snaps[n]) < 0)
                        goto out;
        r = cli_thaw_snapshots(repo, snaps, n, !cli_opts.no_wait);
        if (r == -EAGAIN) {
                cli_out("thaw requested; not readable yet (run again, or without --no-wait "
                        "to wait)\n");
                r = CLI_EXIT_PARTIAL;
        } else if (r < 0) {
                r = CLI_EXIT_FAIL;
        } else {
                if (!cli_opts.json || !cli_opts.no_wait)
                        cli_out("everything the snapshot%s need%s is readable\n",
                                n > 1 ? "s" : "", n > 1 ? "" : "s");
                r = CLI_EXIT_OK;
        }
out:
        for (size_t i = 0; i < n; i++)
                tm_snapshot_dispose(&snaps[i]);
        free(snaps);
        tm_repo_free(repo);
        return r;
}
