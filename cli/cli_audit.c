/*
 * tidemark audit verify FILE: check a daemon's audit log (the hash chain and
 * its head file, see tidemark/audit.h). Exit 0 when intact, 1 with the first
 * line that breaks the chain otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <tidemark/audit.h>

#include "cli.h"

/* declared here and in main.c's command table (cli.h belongs to the core) */
int cli_cmd_audit(void);

int cli_cmd_audit(void)
{
        char why[512];
        uint64_t lines = 0;
        const char *path;
        int r;

        if (cli_opts.n_args != 2 || strcmp(cli_opts.args[0], "verify") != 0)
                return cli_error("usage: tidemark audit verify FILE");
        path = cli_opts.args[1];
        r = tm_audit_verify(path, &lines, why, sizeof(why));
        if (r == -EBADMSG)
                return cli_error("audit log '%s' has been tampered with: %s", path, why);
        if (r < 0)
                return cli_error_errno(r, "cannot read audit log '%s'", path);
        if (cli_opts.json)
                cli_json_print(json_pack("{s:s, s:b, s:I}", "file", path, "intact", 1, "entries",
                                         (json_int_t)lines));
        else
                cli_out("audit log '%s' is intact: %llu entries\n", path,
                        (unsigned long long)lines);
        return CLI_EXIT_OK;
}
