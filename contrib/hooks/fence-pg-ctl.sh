#!/bin/sh
# [hook.fence]: make sure the old primary can no longer accept writes by
# stopping its server (immediate mode: it may be hung). Local sites only;
# for a remote site wrap the same in ssh, or power the machine off through
# its management interface. Exit 0 only when the server is certainly down.
#
#   [hook.fence]
#   command = /usr/share/tidemark/hooks/fence-pg-ctl.sh
#
# From tidemark-failoverd: TM_DR_SITE_PGDATA (the site's pgdata), TM_DR_PG_BIN.
set -u
: "${TM_DR_SITE_PGDATA:?the site to fence has no pgdata}"
bin=${TM_DR_PG_BIN:-/usr/lib/postgresql/15/bin}
"$bin/pg_ctl" -D "$TM_DR_SITE_PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1
# pg_ctl status: 3 = not running
"$bin/pg_ctl" -D "$TM_DR_SITE_PGDATA" status >/dev/null 2>&1
rc=$?
if [ "$rc" -eq 3 ]; then
        echo "fenced: no server runs on $TM_DR_SITE_PGDATA"
        exit 0
fi
echo "cannot fence: pg_ctl status says $rc for $TM_DR_SITE_PGDATA" >&2
exit 1
