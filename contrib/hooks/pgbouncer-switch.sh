#!/bin/sh
# [hook.switch-traffic] for pgbouncer: point one pgbouncer database at the
# new primary and make pgbouncer use it now.
#
#   [hook.switch-traffic]
#   command = PGBOUNCER_INI=/etc/pgbouncer/pgbouncer.ini PGBOUNCER_DATABASE=app \
#             PGBOUNCER_ADMIN='host=127.0.0.1 port=6432 user=pgbouncer dbname=pgbouncer' \
#             /usr/share/tidemark/hooks/pgbouncer-switch.sh
#
# Needs: write access to the ini file, an admin_users login for psql.
# From tidemark-failoverd: TM_DR_NEW_PRIMARY_HOST, TM_DR_NEW_PRIMARY_PORT.
# Optional: PGBOUNCER_DBNAME (the server-side database; default: keep the
# dbname= of the current line, else the pgbouncer database's name),
# PGBOUNCER_EXTRA (more key=value pairs for the line, e.g. "user=app").
#
# The ini line is rewritten in place (through a temporary file and rename,
# so pgbouncer never reads half a file); RELOAD reads it, and RECONNECT
# closes the server connections to the old primary as soon as each is
# released, so the next transaction goes to the new one.
set -eu
: "${PGBOUNCER_INI:?set PGBOUNCER_INI}" "${PGBOUNCER_DATABASE:?set PGBOUNCER_DATABASE}"
: "${PGBOUNCER_ADMIN:?set PGBOUNCER_ADMIN (a libpq conninfo for the admin console)}"
: "${TM_DR_NEW_PRIMARY_HOST:?run me from tidemark-failoverd}" "${TM_DR_NEW_PRIMARY_PORT:?}"

db=$PGBOUNCER_DATABASE
old=$(sed -n "s/^[[:space:]]*$db[[:space:]]*=[[:space:]]*//p" "$PGBOUNCER_INI" | head -n 1)
[ -n "$old" ] || { echo "no '$db =' line in $PGBOUNCER_INI" >&2; exit 1; }
dbname=${PGBOUNCER_DBNAME:-$(printf '%s\n' "$old" | sed -n 's/.*dbname=\([^ ]*\).*/\1/p')}
line="$db = host=$TM_DR_NEW_PRIMARY_HOST port=$TM_DR_NEW_PRIMARY_PORT dbname=${dbname:-$db}${PGBOUNCER_EXTRA:+ $PGBOUNCER_EXTRA}"
tmp="$PGBOUNCER_INI.tm-$$"
awk -v db="$db" -v line="$line" '
        $0 ~ "^[ \t]*" db "[ \t]*=" && !done { print line; done = 1; next }
        { print }' "$PGBOUNCER_INI" >"$tmp"
chmod --reference="$PGBOUNCER_INI" "$tmp" 2>/dev/null || true
mv "$tmp" "$PGBOUNCER_INI"
psql -X -q -d "$PGBOUNCER_ADMIN" -c "RELOAD" >/dev/null
psql -X -q -d "$PGBOUNCER_ADMIN" -c "RECONNECT $db" >/dev/null 2>&1 || true
echo "pgbouncer database '$db' -> $TM_DR_NEW_PRIMARY_HOST:$TM_DR_NEW_PRIMARY_PORT"
