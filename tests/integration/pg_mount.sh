#!/usr/bin/env bash
# @T/database/ in the mount is a PGDATA that recovers to T: with a real
# PostgreSQL 15 on loopback, WAL streamed by tidemark wal-stream, a base
# backup and timestamped inserts over several seconds, the directory of a
# second between two commits holds recovery.signal and a
# postgresql.auto.conf with restore_command and recovery_target_time, is
# private and the server's; `cp -a` of it out of the mount and
# `pg_ctl start` recover exactly the rows committed by the end of that
# second.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_common.bash"
fuse_skip_unless_usable

pg_setup
PORT=$(free_port)
pg_primary "$T/primary" "$PORT"
psql1() { psql_at "$PORT" "$@"; }
CONN="host=$T/sock port=$PORT user=postgres"
stream_start "$CONN"
psql1 -c "CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())"
psql1 -c "INSERT INTO t (id) VALUES (1)"
run as_pg "$TMW" backup --component database --postgres "$CONN"
assert_rc 0 "base backup"
sleep 1.1 # the base backup's second is not the target's
for i in $(seq 2 14); do
        psql1 -c "INSERT INTO t (id) VALUES ($i)"
        sleep 0.3
done
last=$(psql1 -c "SELECT extract(epoch FROM max(ts)) FROM t")
wait_for 30 "the WAL up to the last commit" wal_stored_until "$last"
# the second of row 7: rows after it come in the next seconds
sec=$(psql1 -c "SELECT to_char(date_trunc('second', ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM t WHERE id = 7")
expect=$(psql1 -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE ts < '$sec'::timestamptz + interval '1 second'")
[[ $expect == 1,* && $expect != "$(seq -s, 1 14)" ]] || fail "test setup: rows by the end of $sec are '$expect'"
log "target @$sec: rows $expect"

M=$T/mnt
mkdir -p "$M"
TIDEMARK_CATALOG=$T/catalog-fs.db fuse_mount_bg "$M" "$T/fs.log" "$TM_BIN/tidemark-fs" "$M" -f \
        -o "repo=$T/repo,password_file=$T/pass"
D=$M/@$sec/database
[[ -f $D/recovery.signal && -f $D/PG_VERSION ]] || fail "@$sec/database is not a recovering PGDATA: $(ls "$D" 2>&1 | head -20)"
[[ $(stat -c %U:%a "$D") == postgres:700 ]] || fail "@$sec/database is $(stat -c %U:%a "$D"), expected postgres:700"
[[ $(stat -c %U "$D/recovery.signal") == postgres ]] || fail "recovery.signal is not the server's"
conf=$(cat "$D/postgresql.auto.conf")
assert_contains "$conf" "recovery_target_time = '" "postgresql.auto.conf sets the target"
assert_contains "$conf" "wal-fetch %f %p" "postgresql.auto.conf has the restore_command"
assert_contains "$conf" "recovery_target_action = 'promote'" "postgresql.auto.conf promotes"
# the same file, read twice, is the same (a stable made-up blob)
[[ $(cat "$D/postgresql.auto.conf") == "$conf" ]] || fail "postgresql.auto.conf changed between reads"
# the base backup itself (.snapshots) is shown as it is
id=$(as_pg "$TMW" --json snapshots --component database | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["id"])')
[[ ! -e $M/.snapshots/$id/recovery.signal ]] || fail ".snapshots/$id has a recovery.signal"

cp -a "$D" "$T/r1"
pg_recovers "$T/r1" "$expect" "cp -a of @$sec/database"
kill "$STREAM_PID"
wait "$STREAM_PID" || true
STREAM_PID=
pass
