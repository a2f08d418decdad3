/*
 * tidemark restore SNAP --target DIR [--include PATH]...
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <tidemark/tier.h>

#include "cli.h"

/* "/a/b/" -> "a/b"; "/" -> "". Returns a pointer into a malloc'd copy. */
static char *snapshot_relative(const char *p)
{
        char *s;
        size_t n;

        while (*p == '/')
                p++;
        s = strdup(p);
        if (!s)
                return NULL;
        n = strlen(s);
        while (n > 0 && s[n - 1] == '/')
                s[--n] = '\0';
        return s;
}

int cli_cmd_restore(void)
{
        struct tm_restore_opts o = TM_RESTORE_OPTS_INIT;
        struct tm_restore_stats st = { 0 };
        struct tm_snapshot snap = { 0 };
        struct cli_progress prog;
        char **includes = NULL;
        size_t n_includes = 0;
        tm_repo *repo = NULL;
        int r = CLI_EXIT_FAIL, ret, whole = cli_opts.includes.n == 0;
        char id[9], bytes[32];

        if (cli_opts.n_args != 1)
                return cli_error("restore needs exactly one snapshot (SNAP --target DIR)");
        if (!cli_opts.target || !*cli_opts.target)
                return cli_error("restore needs --target DIR");
        if (cli_opts.includes.n) {
                includes = calloc(cli_opts.includes.n, sizeof(*includes));
                if (!includes)
                        return cli_error_errno(-ENOMEM, "restore");
        }
        for (size_t i = 0; i < cli_opts.includes.n; i++) {
                char *rel = snapshot_relative(cli_opts.includes.v[i]);

                if (!rel) {
                        cli_error_errno(-ENOMEM, "restore");
                        goto out;
                }
                if (!*rel) {
                        whole = 1; /* "/" includes everything */
                        free(rel);
                        continue;
                }
                includes[n_includes++] = rel;
        }

        if (cli_repo_open(&repo) < 0)
                goto out;
        if (cli_snapshot_find(repo, cli_opts.args[0], &snap) < 0)
                goto out;
        cli_short_id(&snap.id, id);
        /* name the missing path precisely instead of a bare -ENOENT later */
        for (size_t i = 0; i < n_includes; i++) {
                struct tm_node node = { 0 };

                ret = tm_repo_lookup_path(repo, &snap.tree, includes[i], &node);
                tm_node_dispose(&node);
                if (ret == -ENOENT) {
                        cli_error("'/%s' is not in snapshot %s", includes[i], id);
                        goto out;
                }
                if (ret < 0) {
                        cli_error_errno(ret, "cannot look up '/%s' in snapshot %s", includes[i],
                                        id);
                        goto out;
                }
        }
        /* every archived pack thaws at once: one wait, not one per pack */
        if (tm_repo_tiers(repo)->n_configured > 0 && cli_thaw_snapshots(repo, &snap, 1, 1) < 0)
                goto out;
        o.target = cli_opts.target;
        if (!whole) {
                o.includes = (const char *const *)includes;
                o.n_includes = n_includes;
        }
        o.threads = cli_opts.threads;
        cli_progress_init(&prog);
        o.progress = cli_progress_update;
        o.userdata = &prog;
        ret = tm_restore_run(repo, &snap, &o, &st);
        cli_progress_done(&prog);
        if (ret < 0 && ret != -EBADMSG) {
                if (ret == -ENOENT)
                        cli_error("restore of snapshot %s to '%s' failed: a path is not in the "
                                  "snapshot",
                                  id, cli_opts.target);
                else
                        cli_error_errno(ret, "restore of snapshot %s to '%s' failed", id,
                                        cli_opts.target);
                goto out;
        }
        if (cli_opts.json) {
                char hex[TM_ID_HEX_LEN + 1];

                tm_id_hex(&snap.id, hex);
                cli_json_print(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "snapshot", hex,
                                         "target", cli_opts.target, "files", (json_int_t)st.files,
                                         "dirs", (json_int_t)st.dirs, "others",
                                         (json_int_t)st.others, "bytes", (json_int_t)st.bytes,
                                         "files_failed", (json_int_t)st.files_failed));
        } else {
                cli_format_bytes(st.bytes, bytes, sizeof(bytes));
                cli_out("restored snapshot %s to %s: %llu files, %llu dirs, %llu others, %s\n", id,
                        cli_opts.target, (unsigned long long)st.files, (unsigned long long)st.dirs,
                        (unsigned long long)st.others, bytes);
        }
        if (ret == -EBADMSG) {
                cli_error("%llu files of snapshot %s failed verification and were not restored "
                          "to '%s' (each is named above)",
                          (unsigned long long)st.files_failed, id, cli_opts.target);
                goto out;
        }
        r = CLI_EXIT_OK;
out:
        tm_snapshot_dispose(&snap);
        tm_repo_free(repo);
        for (size_t i = 0; i < n_includes; i++)
                free(includes[i]);
        free(includes);
        return r;
}
