#!/usr/bin/env bash
# PostgreSQL point-in-time recovery with a real PostgreSQL 15 on loopback:
# archive_command = tidemark wal-push, a base backup over the replication
# protocol, timestamped inserts, restore @T, start the server on the
# restored PGDATA and check it holds exactly the rows committed at or before
# T. Then the recovered server, promoted to timeline 2, archives into the
# same archive, and a restore (as root) to an instant on timeline 2 holds
# exactly the rows of timeline 1 up to the fork plus those of timeline 2 up
# to that instant. Also: a second base backup (as root) adds under a quarter
# of its size, wal-fetch of a missing file is a quiet exit 1, a re-push of
# the same bytes succeeds and of other bytes fails, history files
# round-trip, an instant outside the recoverable window is refused with
# the window in the message, and a gap in the archived WAL is refused naming
# the missing segment.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[[ -x $PGBIN/initdb ]] || skip "no PostgreSQL 15 at $PGBIN"
[[ $(id -u) -eq 0 ]] || skip "needs root to run PostgreSQL as the postgres user"
id postgres >/dev/null 2>&1 || skip "no postgres user"
command -v runuser >/dev/null || skip "no runuser"
tm_setup
chown postgres: "$T"
chmod 755 "$T"

as_pg() { runuser -u postgres -- "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Everything tidemark does here runs as postgres (the archive_command does),
# with the repository options on its command line, as a site would set it.
printf '%s' "pg pitr test passphrase" >"$T/pass"
chown postgres: "$T/pass"
chmod 600 "$T/pass"
TMW="$T/tm.sh"
cat >"$TMW" <<EOF
#!/bin/sh
exec env -u TIDEMARK_PASSWORD -u TIDEMARK_REPOSITORY -u TIDEMARK_CATALOG TMPDIR="$T" \\
    "$TM_EXE" -r "$T/repo" --password-file "$T/pass" --catalog "$T/catalog-pg.db" "\$@"
EOF
chmod 755 "$TMW"
run as_pg "$TMW" init "${TM_KDF_ARGS[@]}"
assert_rc 0 "init"

PORT=$(free_port)
as_pg mkdir "$T/sock"
as_pg "$PGBIN/initdb" -D "$T/primary" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
        >"$T/initdb.log" 2>&1 || fail "initdb: $(tail -5 "$T/initdb.log")"
cat >>"$T/primary/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$T/sock'
wal_level = replica
max_wal_senders = 4
archive_mode = on
archive_command = '$TMW -q wal-push %p'
EOF
on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$T/primary' -m immediate stop"
as_pg "$PGBIN/pg_ctl" -D "$T/primary" -l "$T/primary.log" -w -t 60 start >/dev/null ||
        fail "primary did not start: $(tail -5 "$T/primary.log")"

psql_at() {
        local port=$1
        shift
        as_pg "$PGBIN/psql" -X -A -t -q -h "$T/sock" -p "$port" -U postgres -d postgres \
                -v ON_ERROR_STOP=1 "$@"
}
psql1() { psql_at "$PORT" "$@"; }

psql1 -c "CREATE TABLE t (id int PRIMARY KEY, ts timestamptz NOT NULL DEFAULT clock_timestamp())"
for i in 1 2 3; do psql1 -c "INSERT INTO t (id) VALUES ($i)"; done

# -------------------------------------------------------- base backup
run as_pg "$TMW" backup --component database --postgres "host=$T/sock port=$PORT user=postgres"
assert_rc 0 "base backup"
log "base backup: $RUN_OUT"
run as_pg "$TMW" snapshots --component database --json
assert_rc 0 "snapshots"
python3 - "$RUN_OUT" <<'EOF' || fail "base backup manifest lacks its PostgreSQL fields: $RUN_OUT"
import json, sys
s = json.loads(sys.argv[1])
assert len(s) == 1, s
pg = s[0]["extra"]["postgres"]
assert pg["timeline"] == 1 and "/" in pg["start_lsn"] and "/" in pg["stop_lsn"], pg
assert "START WAL LOCATION" in pg["backup_label"], pg
EOF
# a second base backup, as root: staged files keep the server's owners, and
# it deduplicates against the first
run env -u TIDEMARK_PASSWORD TIDEMARK_CATALOG="$T/catalog-root.db" TMPDIR="$T" "$TM_EXE" \
        -r "$T/repo" --password-file "$T/pass" --json backup --component database \
        --postgres "host=$T/sock port=$PORT user=postgres"
assert_rc 0 "second base backup, as root"
chown -R postgres: "$T/repo" # root wrote into postgres's repository
python3 - "$RUN_OUT" <<'EOF2' || fail "second base backup: $RUN_OUT"
import json, sys
s = json.loads(sys.argv[1])
sm = s["summary"]
print("second base backup: %d files, %d bytes, %d bytes new" % (sm["files"], sm["bytes"], sm["bytes_added"]), file=sys.stderr)
assert s["extra"]["postgres"]["timeline"] == 1
assert sm["bytes_added"] * 4 < sm["bytes"], sm
EOF2
run as_pg "$TMW" ls -l latest --component database
assert_contains "$RUN_OUT" "postgres postgres" "root's base backup keeps the server's owners"
run as_pg "$TMW" ls latest --component database
assert_contains "$RUN_OUT" "/PG_VERSION" "the base backup holds PG_VERSION"
assert_contains "$RUN_OUT" "/backup_label" "the base backup holds backup_label"

# -------------------------------------------------------- timestamped inserts
for i in $(seq 4 16); do
        psql1 -c "INSERT INTO t (id) VALUES ($i)"
        sleep 0.2
done
K=10
ts_k=$(psql1 -c "SELECT extract(epoch FROM ts) FROM t WHERE id = $K")
# T: 100 ms after row K's insert; row K+1 came 200 ms after it
TARGET=$(python3 -c "import datetime,sys; print(datetime.datetime.fromtimestamp(float(sys.argv[1]) + 0.1, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ'))" "$ts_k")
log "target time $TARGET (row $K at epoch $ts_k)"
expect=$(psql1 -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE ts <= '$TARGET'")
[[ $expect == "$(seq -s, 1 $K)" ]] || fail "test setup: rows at or before T are '$expect'"

# archive everything written so far
seg=$(psql1 -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
psql1 -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 150); do
        [[ $(psql1 -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") > "$seg" ||
                $(psql1 -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") == "$seg" ]] && break
        sleep 0.2
done
arch=$(psql1 -c "SELECT coalesce(last_archived_wal, '') || ' failed=' || failed_count FROM pg_stat_archiver")
log "archiver: $arch"
[[ $arch == "$seg failed=0" || $arch > "$seg" ]] || fail "segment $seg not archived: $arch; $(grep -i archive "$T/primary.log" | tail -5)"

# -------------------------------------------------------- wal-fetch / wal-push
run as_pg "$TMW" wal-fetch 0000000900000000000000AA "$T/nothing"
assert_rc 1 "wal-fetch of a missing segment"
[[ -z $RUN_ERR && ! -e $T/nothing ]] || fail "wal-fetch of a missing segment must be quiet: '$RUN_ERR'"
as_pg mkdir "$T/w"
run as_pg "$TMW" wal-fetch "$seg" "$T/w/$seg"
assert_rc 0 "wal-fetch $seg"
[[ $(stat -c %s "$T/w/$seg") -eq 16777216 ]] || fail "fetched segment has the wrong size"
run as_pg "$TMW" wal-push "$T/w/$seg"
assert_rc 0 "re-push of the same segment"
printf 'X' | as_pg dd of="$T/w/$seg" bs=1 seek=100000 conv=notrunc status=none
run as_pg "$TMW" wal-push "$T/w/$seg"
assert_rc 1 "re-push of different bytes"
assert_contains "$RUN_ERR" "different contents" "re-push of different bytes"
as_pg mkdir "$T/w2"
as_pg cp "$T/w/$seg" "$T/w2/000000010000000000000077"
run as_pg "$TMW" wal-push "$T/w2/000000010000000000000077"
assert_rc 1 "push of a segment whose name does not match its header"
printf '1\t0/3000000\tno recovery target specified\n' >"$T/w2/00000002.history"
chown postgres: "$T/w2/00000002.history"
# (into another component's archive: a made-up timeline 2 in this one would
# be followed by recovery_target_timeline = 'latest')
run as_pg "$TMW" wal-push --component scratch "$T/w2/00000002.history"
assert_rc 0 "push of a history file"
run as_pg "$TMW" wal-fetch 00000002.history "$T/w2/fetched.history"
assert_rc 1 "fetch of a history file from another component's archive"
run as_pg "$TMW" wal-fetch --component scratch 00000002.history "$T/w2/fetched.history"
assert_rc 0 "fetch of a history file"
cmp "$T/w2/00000002.history" "$T/w2/fetched.history" || fail "history file differs"

# -------------------------------------------------------- the window
run as_pg "$TMW" restore --component database "@2000-01-01T00:00:00Z" --target "$T/nope"
assert_rc 1 "restore before the first base backup"
assert_contains "$RUN_ERR" "outside the recoverable window" "restore before the window"
future=$(python3 -c "import datetime; print((datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ'))")
run as_pg "$TMW" restore --component database "@$future" --target "$T/nope"
assert_rc 1 "restore after the window"
assert_contains "$RUN_ERR" "outside the recoverable window" "restore after the window"
assert_contains "$RUN_ERR" "from " "the window is in the message"
[[ ! -e $T/nope ]] || fail "a refused restore wrote $T/nope"

# -------------------------------------------------------- restore @T and recover
run as_pg "$TMW" restore --component database "@$TARGET" --target "$T/restored"
assert_rc 0 "restore @T"
log "restore: $RUN_OUT"
[[ -f $T/restored/recovery.signal ]] || fail "no recovery.signal"
grep -q "recovery_target_time = '" "$T/restored/postgresql.auto.conf" || fail "no recovery_target_time"
grep -q "wal-fetch %f %p" "$T/restored/postgresql.auto.conf" || fail "no restore_command"
PORT2=$(free_port)
on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$T/restored' -m immediate stop"
# it keeps archiving into the same archive: after its promotion that is
# timeline 2
as_pg "$PGBIN/pg_ctl" -D "$T/restored" -l "$T/restored.log" -w -t 120 \
        -o "-p $PORT2" start >/dev/null ||
        fail "restored server did not start: $(tail -20 "$T/restored.log")"
for _ in $(seq 1 300); do
        [[ $(psql_at "$PORT2" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]] && break
        sleep 0.2
done
[[ $(psql_at "$PORT2" -c "SELECT pg_is_in_recovery()") == f ]] ||
        fail "restored server never promoted: $(tail -20 "$T/restored.log")"
got=$(psql_at "$PORT2" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
[[ $got == "$expect" ]] || fail "restored @T has rows '$got', expected '$expect'; $(tail -20 "$T/restored.log")"
log "restored @T has exactly rows $got"

# -------------------------------------------------------- timeline 2
[[ $(psql_at "$PORT2" -c "SELECT timeline_id FROM pg_control_checkpoint()") == 2 ]] ||
        psql_at "$PORT2" -c "CHECKPOINT"
[[ $(psql_at "$PORT2" -c "SELECT timeline_id FROM pg_control_checkpoint()") == 2 ]] ||
        fail "the promoted server is not on timeline 2"
for i in $(seq 101 106); do
        psql_at "$PORT2" -c "INSERT INTO t (id) VALUES ($i)"
        sleep 0.2
done
ts_2=$(psql_at "$PORT2" -c "SELECT extract(epoch FROM ts) FROM t WHERE id = 103")
TARGET2=$(python3 -c "import datetime,sys; print(datetime.datetime.fromtimestamp(float(sys.argv[1]) + 0.1, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ'))" "$ts_2")
expect2=$(psql_at "$PORT2" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE ts <= '$TARGET2'")
[[ $expect2 == "$expect,101,102,103" ]] || fail "test setup: timeline 2 rows at or before T2 are '$expect2'"
seg2=$(psql_at "$PORT2" -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
psql_at "$PORT2" -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 150); do
        a2=$(psql_at "$PORT2" -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        [[ $a2 == "$seg2" || $a2 > "$seg2" ]] && break
        sleep 0.2
done
[[ $a2 == "$seg2" || $a2 > "$seg2" ]] || fail "timeline 2 segment $seg2 not archived: '$a2'"
run as_pg "$TMW" snapshots --component database-wal --json
assert_contains "$RUN_OUT" '"00000002.history"' "the timeline 2 history file is archived"
log "timeline 2: target $TARGET2, archived up to $a2"
as_pg "$PGBIN/pg_ctl" -D "$T/restored" -m fast stop >/dev/null

# -------------------------------------------------------- @T2 on timeline 2, as root
# The files go back to their owner (postgres); the restore_command then
# leaves out root's catalog, and the server's wal-fetch uses its own
# (under its HOME).
expect=$expect2
run env -u TIDEMARK_PASSWORD TIDEMARK_CATALOG="$T/catalog-root.db" TMPDIR="$T" "$TM_EXE" \
        -r "$T/repo" --password-file "$T/pass" restore --component database "@$TARGET2" \
        --target "$T/restored-root"
assert_rc 0 "restore @T2 as root"
[[ $(stat -c %U:%a "$T/restored-root") == postgres:700 ]] ||
        fail "restored PGDATA is $(stat -c %U:%a "$T/restored-root"), expected postgres:700"
[[ $(stat -c %U "$T/restored-root/PG_VERSION" "$T/restored-root/postgresql.auto.conf" "$T/restored-root/recovery.signal" | sort -u) == postgres ]] ||
        fail "restored files are not all owned by postgres"
grep -q -- "--catalog" "$T/restored-root/postgresql.auto.conf" &&
        fail "restore_command names root's catalog: $(grep restore_command "$T/restored-root/postgresql.auto.conf")"
as_pg mkdir "$T/pghome"
PORT3=$(free_port)
on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$T/restored-root' -m immediate stop"
as_pg env HOME="$T/pghome" "$PGBIN/pg_ctl" -D "$T/restored-root" -l "$T/restored-root.log" -w -t 120 \
        -o "-p $PORT3 -c archive_mode=off" start >/dev/null ||
        fail "server on the root-restored PGDATA did not start: $(tail -20 "$T/restored-root.log")"
for _ in $(seq 1 300); do
        [[ $(psql_at "$PORT3" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]] && break
        sleep 0.2
done
got=$(psql_at "$PORT3" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
[[ $got == "$expect" ]] || fail "root-restored @T has rows '$got', expected '$expect'; $(tail -20 "$T/restored-root.log")"
log "root-restored @T2 (timeline 2) has exactly rows $got"

# -------------------------------------------------------- a gap in the archive
run as_pg "$TMW" snapshots --component database-wal --json
gap_id=$(python3 -c 'import json,sys; print([s["id"] for s in json.loads(sys.argv[1]) if s.get("tags") == ["000000010000000000000003"]][0])' "$RUN_OUT")
run as_pg "$TMW" forget "$gap_id"
assert_rc 0 "forget one WAL segment"
run as_pg "$TMW" restore --component database "@$TARGET" --target "$T/gap"
assert_rc 1 "restore across a gap in the WAL"
assert_contains "$RUN_ERR" "000000010000000000000003 is missing" "the gap is named"
[[ ! -e $T/gap ]] || fail "a refused restore wrote $T/gap"
pass
