/*
 * Maintenance commands: check, forget, prune, repair, key.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/time.h>

#include "cli.h"

/* ---- check ---- */

int cli_cmd_check(void)
{
        struct tm_check_opts o = TM_CHECK_OPTS_INIT;
        struct tm_check_stats st = { 0 };
        struct cli_progress prog;
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL, ret;

        if (cli_opts.n_args > 0)
                return cli_error("check takes no arguments (got '%s')", cli_opts.args[0]);
        if (cli_repo_open(&repo) < 0)
                goto out;
        o.read_data = cli_opts.read_data;
        o.threads = cli_opts.threads;
        cli_progress_init(&prog);
        o.progress = cli_progress_update;
        o.userdata = &prog;
        ret = tm_check_run(repo, &o, &st);
        cli_progress_done(&prog);
        if (ret < 0 && ret != -EBADMSG) {
                cli_error_errno(ret, "check of '%s' could not run", tm_repo_location(repo));
                goto out;
        }
        if (cli_opts.json) {
                cli_json_print(
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "snapshots",
                                  (json_int_t)st.snapshots, "trees", (json_int_t)st.trees, "blobs",
                                  (json_int_t)st.blobs, "packs", (json_int_t)st.packs, "packs_read",
                                  (json_int_t)st.packs_read, "errors", (json_int_t)st.errors,
                                  "orphan_packs", (json_int_t)st.orphan_packs, "ok", ret == 0));
        } else {
                cli_out("checked %llu snapshots, %llu trees, %llu blobs, %llu packs",
                        (unsigned long long)st.snapshots, (unsigned long long)st.trees,
                        (unsigned long long)st.blobs, (unsigned long long)st.packs);
                if (cli_opts.read_data)
                        cli_out(" (%llu packs read)", (unsigned long long)st.packs_read);
                cli_out("\n");
                if (st.orphan_packs)
                        cli_out("%llu packs are not in any index (harmless; 'tidemark prune' "
                                "removes them)\n",
                                (unsigned long long)st.orphan_packs);
        }
        if (ret == -EBADMSG) {
                cli_error("%llu errors were found in '%s' (each is named above)",
                          (unsigned long long)st.errors, tm_repo_location(repo));
                goto out;
        }
        if (!cli_opts.json)
                cli_out("no errors were found\n");
        r = CLI_EXIT_OK;
out:
        tm_repo_free(repo);
        return r;
}

/* ---- prune ---- */

static int run_prune(tm_repo *repo)
{
        struct tm_prune_opts o = TM_PRUNE_OPTS_INIT;
        struct tm_prune_stats st = { 0 };
        char freed[32];
        int ret;

        o.dry_run = cli_opts.dry_run;
        if (cli_opts.max_unused >= 0)
                o.max_unused = cli_opts.max_unused;
        ret = tm_prune_run(repo, &o, &st);
        if (ret == -EBUSY) {
                cli_error("prune of '%s' failed: the repository is locked by another process",
                          tm_repo_location(repo));
                return ret;
        }
        if (ret < 0) {
                cli_error_errno(ret, "prune of '%s' failed", tm_repo_location(repo));
                return ret;
        }
        if (cli_opts.json) {
                cli_json_print(json_pack(
                        "{s:b, s:I, s:I, s:I, s:I, s:I, s:I}", "dry_run", cli_opts.dry_run,
                        "packs_deleted", (json_int_t)st.packs_deleted, "packs_repacked",
                        (json_int_t)st.packs_repacked, "packs_kept", (json_int_t)st.packs_kept,
                        "bytes_freed", (json_int_t)st.bytes_freed, "blobs_removed",
                        (json_int_t)st.blobs_removed, "index_files_rewritten",
                        (json_int_t)st.index_files_rewritten));
        } else {
                cli_format_bytes(st.bytes_freed, freed, sizeof(freed));
                cli_out("%s%llu packs deleted, %llu repacked, %llu kept; %llu blobs removed, "
                        "%s freed; %llu index files rewritten\n",
                        cli_opts.dry_run ? "dry run, would be: " : "",
                        (unsigned long long)st.packs_deleted, (unsigned long long)st.packs_repacked,
                        (unsigned long long)st.packs_kept, (unsigned long long)st.blobs_removed,
                        freed, (unsigned long long)st.index_files_rewritten);
        }
        return 0;
}

int cli_cmd_prune(void)
{
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL;

        if (cli_opts.n_args > 0)
                return cli_error("prune takes no arguments (got '%s')", cli_opts.args[0]);
        if (cli_repo_open(&repo) < 0)
                goto out;
        if (run_prune(repo) < 0)
                goto out;
        r = CLI_EXIT_OK;
out:
        tm_repo_free(repo);
        return r;
}

/* ---- forget ---- */

static void print_snapshot_row(const struct tm_snapshot *s, const char *reason)
{
        char id[9], time[32];

        cli_short_id(&s->id, id);
        tm_time_format(s->time, time, sizeof(time));
        cli_out("  %-8s  %-20s  %-16s  %s\n", id, time, s->host ? s->host : "",
                reason ? reason : "");
}

/* Remove one snapshot (or say it would be). Returns 0 or -errno (reported). */
static int forget_one(tm_repo *repo, const struct tm_snapshot *s)
{
        char id[9];
        int ret;

        cli_short_id(&s->id, id);
        if (cli_opts.dry_run)
                return 0;
        ret = tm_repo_snapshot_remove(repo, &s->id);
        if (ret < 0)
                cli_error_errno(ret, "cannot remove snapshot %s from '%s'", id,
                                tm_repo_location(repo));
        return ret;
}

static int forget_named(tm_repo *repo)
{
        int failed = 0;

        for (size_t i = 0; i < cli_opts.n_args; i++) {
                struct tm_snapshot s = { 0 };
                char id[9];

                if (cli_snapshot_find(repo, cli_opts.args[i], &s) < 0) {
                        failed = 1;
                        continue;
                }
                cli_short_id(&s.id, id);
                if (forget_one(repo, &s) < 0) {
                        failed = 1;
                } else if (cli_opts.json) {
                        json_t *o = cli_snapshot_json(&s);

                        if (o)
                                json_object_set_new(o, "removed", json_boolean(!cli_opts.dry_run));
                        cli_json_print(o);
                } else {
                        cli_out("%s snapshot %s\n", cli_opts.dry_run ? "would remove" : "removed",
                                id);
                }
                tm_snapshot_dispose(&s);
        }
        return failed ? -EIO : 0;
}

/* Apply the policy to one component's snapshots (group[] are shallow copies). */
static int forget_group(tm_repo *repo, const char *component, const struct tm_snapshot *group,
                        size_t n, json_t *out)
{
        int *keep = calloc(n ? n : 1, sizeof(*keep));
        const char **reasons = calloc(n ? n : 1, sizeof(*reasons));
        size_t n_keep = 0;
        int ret, failed = 0;
        json_t *jk = NULL, *jr = NULL;

        if (!keep || !reasons) {
                ret = -ENOMEM;
                cli_error_errno(ret, "forget");
                goto out;
        }
        ret = tm_forget_plan(group, n, &cli_opts.policy, keep, reasons);
        if (ret < 0) {
                cli_error_errno(ret, "invalid retention policy");
                goto out;
        }
        for (size_t i = 0; i < n; i++)
                n_keep += (size_t)keep[i];
        if (cli_opts.json) {
                jk = json_array();
                jr = json_array();
        } else {
                cli_out("component '%s': keep %zu snapshot%s:\n", component, n_keep,
                        n_keep == 1 ? "" : "s");
                for (size_t i = 0; i < n; i++)
                        if (keep[i])
                                print_snapshot_row(&group[i], reasons[i]);
                cli_out("component '%s': %s %zu snapshot%s:\n", component,
                        cli_opts.dry_run ? "would remove" : "remove", n - n_keep,
                        n - n_keep == 1 ? "" : "s");
                for (size_t i = 0; i < n; i++)
                        if (!keep[i])
                                print_snapshot_row(&group[i], NULL);
        }
        for (size_t i = 0; i < n; i++) {
                if (jk && keep[i]) {
                        json_t *o = cli_snapshot_json(&group[i]);

                        if (o)
                                json_object_set_new(o, "reasons", json_string(reasons[i]));
                        json_array_append_new(jk, o);
                }
                if (keep[i])
                        continue;
                if (forget_one(repo, &group[i]) < 0)
                        failed = 1;
                else if (jr)
                        json_array_append_new(jr, cli_snapshot_json(&group[i]));
        }
        if (out && jk && jr) {
                json_array_append_new(out, json_pack("{s:s, s:o, s:o}", "component", component,
                                                     "keep", jk, "remove", jr));
                jk = jr = NULL;
        }
        ret = failed ? -EIO : 0;
out:
        json_decref(jk);
        json_decref(jr);
        free(keep);
        free(reasons);
        return ret;
}

/* The WAL archive of a PostgreSQL component (see docs/format.md section
 * 10): component "<name>-wal", one continuous snapshot per archived file. */
static int is_wal_archive(const char *comp, const struct tm_snapshot *group, size_t n)
{
        size_t len = strlen(comp);

        if (len < 4 || strcmp(comp + len - 4, "-wal") != 0)
                return 0;
        for (size_t i = 0; i < n; i++)
                if (!group[i].strategy || strcmp(group[i].strategy, "continuous") != 0)
                        return 0;
        return 1;
}

static int forget_policy(tm_repo *repo)
{
        struct tm_snapshot *snaps = NULL, *group = NULL;
        size_t n = 0;
        int ret, failed = 0;
        json_t *out = cli_opts.json ? json_array() : NULL;
        char *done = NULL;

        ret = tm_repo_snapshot_list(repo, cli_opts.component, &snaps, &n);
        if (ret < 0) {
                cli_error_errno(ret, "cannot list snapshots in '%s'", tm_repo_location(repo));
                goto out;
        }
        group = calloc(n ? n : 1, sizeof(*group));
        done = calloc(n ? n : 1, 1);
        if (!group || !done) {
                ret = -ENOMEM;
                cli_error_errno(ret, "forget");
                goto out;
        }
        /* one group per component, in order of first appearance */
        for (size_t i = 0; i < n; i++) {
                const char *comp = snaps[i].component ? snaps[i].component : "";
                size_t k = 0;

                if (done[i])
                        continue;
                for (size_t j = i; j < n; j++) {
                        const char *cj = snaps[j].component ? snaps[j].component : "";

                        if (!done[j] && strcmp(cj, comp) == 0) {
                                done[j] = 1;
                                group[k++] = snaps[j]; /* shallow: read-only use */
                        }
                }
                if (is_wal_archive(comp, group, k) &&
                    !(cli_opts.component && strcmp(cli_opts.component, comp) == 0)) {
                        /* a keep-last policy over WAL files would break
                         * recovery of the base backups that need them */
                        if (!cli_opts.json)
                                cli_out("component '%s': a PostgreSQL WAL archive, left alone "
                                        "(name it with --component to apply a policy)\n",
                                        comp);
                        continue;
                }
                if (forget_group(repo, comp, group, k, out) < 0 ||
                    cli_pg_wal_retention(repo, comp, group, k) < 0)
                        failed = 1;
        }
        if (n == 0 && !cli_opts.json)
                cli_out("no snapshots%s%s%s\n", cli_opts.component ? " for component '" : "",
                        cli_opts.component ? cli_opts.component : "",
                        cli_opts.component ? "'" : "");
        if (out) {
                cli_json_print(out);
                out = NULL;
        }
        ret = failed ? -EIO : 0;
out:
        json_decref(out);
        free(done);
        free(group);
        tm_snapshot_array_free(snaps, n);
        return ret;
}

int cli_cmd_forget(void)
{
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL, ret;

        if (cli_opts.n_args > 0 && cli_opts.has_policy)
                return cli_error("give either snapshots to remove or --keep-* options, not both");
        if (cli_opts.n_args == 0 && !cli_opts.has_policy)
                return cli_error("no policy given: use at least one of --keep-last, "
                                 "--keep-hourly, --keep-daily, --keep-weekly, --keep-monthly, "
                                 "--keep-yearly (or name the snapshots to remove)");
        if (cli_repo_open(&repo) < 0)
                goto out;
        ret = cli_opts.n_args ? forget_named(repo) : forget_policy(repo);
        if (ret < 0)
                goto out;
        if (cli_opts.prune && run_prune(repo) < 0)
                goto out;
        r = CLI_EXIT_OK;
out:
        tm_repo_free(repo);
        return r;
}

/* ---- repair ---- */

int cli_cmd_repair(void)
{
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL, ret;
        const char *what;

        if (cli_opts.n_args != 1 ||
            (strcmp(cli_opts.args[0], "catalog") != 0 && strcmp(cli_opts.args[0], "index") != 0))
                return cli_error("repair needs what to repair: 'repair catalog' or "
                                 "'repair index'");
        what = cli_opts.args[0];
        if (cli_repo_open(&repo) < 0)
                goto out;
        if (strcmp(what, "catalog") == 0) {
                ret = tm_repo_catalog_rebuild(repo);
                if (ret < 0) {
                        cli_error_errno(ret, "cannot rebuild the catalog '%s'",
                                        tm_repo_catalog_path(repo));
                        goto out;
                }
                if (cli_opts.json)
                        cli_json_print(json_pack("{s:s?}", "catalog", tm_repo_catalog_path(repo)));
                else
                        cli_out("rebuilt the catalog %s\n", tm_repo_catalog_path(repo));
        } else {
                ret = tm_repo_index_rebuild(repo);
                if (ret < 0 && ret != -EBADMSG) {
                        cli_error_errno(ret, "cannot rebuild the index of '%s'",
                                        tm_repo_location(repo));
                        goto out;
                }
                if (ret == -EBADMSG) {
                        cli_error("some packs of '%s' have unreadable trailers and were left "
                                  "out of the index (named above); run 'tidemark check "
                                  "--read-data'",
                                  tm_repo_location(repo));
                        goto out;
                }
                if (cli_opts.json)
                        cli_json_print(json_pack("{s:i}", "packs_indexed", ret));
                else
                        cli_out("rebuilt the index from %d pack%s\n", ret, ret == 1 ? "" : "s");
        }
        r = CLI_EXIT_OK;
out:
        tm_repo_free(repo);
        return r;
}

/* ---- key ---- */

static int key_list(tm_repo *repo)
{
        struct tm_key_info *keys = NULL;
        size_t n = 0;
        int ret;

        ret = tm_repo_key_list(repo, &keys, &n);
        if (ret < 0) {
                cli_error_errno(ret, "cannot list the keys of '%s'", tm_repo_location(repo));
                return ret;
        }
        if (cli_opts.json) {
                json_t *a = json_array();

                for (size_t i = 0; a && i < n; i++) {
                        char hex[TM_ID_HEX_LEN + 1], created[32];

                        tm_id_hex(&keys[i].id, hex);
                        tm_time_format(keys[i].created, created, sizeof(created));
                        json_array_append_new(
                                a, json_pack("{s:s, s:b, s:s, s:s, s:s, s:s}", "id", hex, "current",
                                             keys[i].current, "username", keys[i].username, "host",
                                             keys[i].host, "created", created, "alg", keys[i].alg));
                }
                cli_json_print(a);
        } else {
                cli_out(" %-8s  %-16s  %-20s  %-20s  %s\n", "ID", "USER", "HOST", "CREATED", "KDF");
                for (size_t i = 0; i < n; i++) {
                        char id[9], created[32];

                        cli_short_id(&keys[i].id, id);
                        tm_time_format(keys[i].created, created, sizeof(created));
                        cli_out("%c%-8s  %-16s  %-20s  %-20s  %s\n", keys[i].current ? '*' : ' ',
                                id, keys[i].username, keys[i].host, created, keys[i].alg);
                }
        }
        free(keys);
        return 0;
}

/* Find a key by (unique) hex id prefix. */
static int key_find(tm_repo *repo, const char *prefix, tm_id *ret)
{
        struct tm_key_info *keys = NULL;
        size_t n = 0, len = strlen(prefix), hits = 0;
        int r;

        for (size_t i = 0; i < len; i++)
                if (!isxdigit((unsigned char)prefix[i]))
                        len = 0;
        if (len == 0 || len > TM_ID_HEX_LEN) {
                cli_error("invalid key id '%s': expected a hex id prefix", prefix);
                return -EINVAL;
        }
        r = tm_repo_key_list(repo, &keys, &n);
        if (r < 0) {
                cli_error_errno(r, "cannot list the keys of '%s'", tm_repo_location(repo));
                return r;
        }
        for (size_t i = 0; i < n; i++) {
                char hex[TM_ID_HEX_LEN + 1];

                tm_id_hex(&keys[i].id, hex);
                if (strncasecmp(hex, prefix, len) == 0) {
                        *ret = keys[i].id;
                        hits++;
                }
        }
        free(keys);
        if (hits == 0) {
                cli_error("no key '%s' in '%s'", prefix, tm_repo_location(repo));
                return -ENOENT;
        }
        if (hits > 1) {
                cli_error("key id prefix '%s' is ambiguous: give more digits", prefix);
                return -EEXIST;
        }
        return 0;
}

int cli_cmd_key(void)
{
        struct cli_secret pw = { 0 };
        tm_repo *repo = NULL;
        const char *sub;
        int r = CLI_EXIT_FAIL, ret;
        tm_id id;
        char hex[TM_ID_HEX_LEN + 1];

        if (cli_opts.n_args == 0)
                return cli_error("key needs a subcommand: list, add, remove ID or passwd");
        sub = cli_opts.args[0];
        if (strcmp(sub, "list") && strcmp(sub, "add") && strcmp(sub, "remove") &&
            strcmp(sub, "passwd"))
                return cli_error("unknown key subcommand '%s': expected list, add, remove ID or "
                                 "passwd",
                                 sub);
        if (strcmp(sub, "remove") == 0 && cli_opts.n_args != 2)
                return cli_error("'key remove' needs exactly one key id");
        if (strcmp(sub, "remove") != 0 && cli_opts.n_args != 1)
                return cli_error("'key %s' takes no arguments (got '%s')", sub, cli_opts.args[1]);
        if (cli_opts.new_password_file && strcmp(sub, "add") && strcmp(sub, "passwd"))
                return cli_error("--new-password-file is only for 'key add' and 'key passwd'");
        if (cli_repo_open(&repo) < 0)
                goto out;
        if (strcmp(sub, "list") == 0) {
                if (key_list(repo) < 0)
                        goto out;
        } else if (strcmp(sub, "remove") == 0) {
                if (key_find(repo, cli_opts.args[1], &id) < 0)
                        goto out;
                tm_id_hex(&id, hex);
                ret = tm_repo_key_remove(repo, &id);
                if (ret == -EBUSY) {
                        cli_error("cannot remove key %.8s: it is the key this passphrase opened "
                                  "(use another passphrase to remove it)",
                                  hex);
                        goto out;
                }
                if (ret < 0) {
                        cli_error_errno(ret, "cannot remove key %.8s from '%s'", hex,
                                        tm_repo_location(repo));
                        goto out;
                }
                if (cli_opts.json)
                        cli_json_print(json_pack("{s:s}", "removed", hex));
                else
                        cli_out("removed key %.8s\n", hex);
        } else {
                int add = strcmp(sub, "add") == 0;

                if (cli_new_password_get(&pw) < 0)
                        goto out;
                ret = add ? tm_repo_key_add(repo, pw.p, pw.len, &id)
                          : tm_repo_key_passwd(repo, pw.p, pw.len, &id);
                if (ret < 0) {
                        cli_error_errno(ret, "cannot %s in '%s'",
                                        add ? "add a key" : "change the passphrase",
                                        tm_repo_location(repo));
                        goto out;
                }
                tm_id_hex(&id, hex);
                if (cli_opts.json)
                        cli_json_print(json_pack("{s:s}", "id", hex));
                else if (add)
                        cli_out("saved new key %.8s\n", hex);
                else
                        cli_out("changed the passphrase: new key %.8s\n", hex);
        }
        r = CLI_EXIT_OK;
out:
        cli_secret_dispose(&pw);
        tm_repo_free(repo);
        return r;
}
