#!/usr/bin/env bash
# WAL streamed from a replication slot (tidemark wal-stream) into the
# repository, with a real PostgreSQL 15 on loopback and no archive_command:
# a base backup, timestamped inserts, the streamer killed with -9 in the
# middle of a segment while inserts go on, restarted: no gap (the slot kept
# the WAL), and a restore to an instant whose commit happened while the
# streamer was down holds exactly the rows committed at or before it. An
# instant after the last commit replays everything; one in the future is
# refused with the window in the message.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_common.bash"

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

insert() { for i in $(seq "$1" "$2"); do psql1 -c "INSERT INTO t (id) VALUES ($i)"; sleep 0.1; done; }
insert 2 8
# kill -9 mid-segment: what was received but not stored is lost here, the
# slot still has it
sleep 1.5
kill -9 "$STREAM_PID"
wait "$STREAM_PID" 2>/dev/null || true
STREAM_PID=
restart=$(psql1 -c "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'tidemark_test'")
log "streamer killed; the slot holds WAL from $restart"
# the server notices the broken connection and frees the slot
slot_free() { [[ $(psql1 -c "SELECT active FROM pg_replication_slots WHERE slot_name = 'tidemark_test'") == f ]]; }
wait_for 20 "the slot to be released" slot_free
insert 9 16
ts_k=$(psql1 -c "SELECT extract(epoch FROM ts) FROM t WHERE id = 12")
TARGET=$(epoch_iso "$ts_k" 0.05)
expect=$(psql1 -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE ts <= '$TARGET'")
[[ $expect == "$(seq -s, 1 12)" ]] || fail "test setup: rows at or before T are '$expect'"
stream_start "$CONN"
insert 17 18
last=$(psql1 -c "SELECT extract(epoch FROM max(ts)) FROM t")
# everything is stored once the window reaches the last commit
ok=
for _ in $(seq 1 100); do
        run as_pg "$TMW" --json wal-status --component database
        if [[ $RUN_RC -eq 0 ]] && python3 - "$RUN_OUT" "$last" <<'EOF'; then ok=1; break; fi
import datetime, json, sys
w = json.loads(sys.argv[1])["windows"]
latest = datetime.datetime.strptime(w[-1]["latest"][:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ")
latest = latest.replace(tzinfo=datetime.timezone.utc).timestamp()
sys.exit(0 if latest >= float(sys.argv[2]) - 1e-6 else 1)
EOF
        sleep 0.2
done
[[ -n $ok ]] || fail "the stored WAL never reached the last commit: $RUN_OUT $RUN_ERR; $(tail -5 "$T/stream$N_STARTS.log")"
python3 - "$RUN_OUT" <<'EOF' || fail "after the kill -9: a gap or several windows: $RUN_OUT"
import json, sys
s = json.loads(sys.argv[1])
assert s["gaps"] == [] and len(s["windows"]) == 1, s
EOF
slot=$(psql1 -c "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'tidemark_test'")
log "window: $RUN_OUT; slot at $slot"

run as_pg "$TMW" restore --component database "@$TARGET" --target "$T/r1"
assert_rc 0 "restore @T"
grep -q "recovery_target_time = '" "$T/r1/postgresql.auto.conf" || fail "no recovery_target_time"
pg_recovers "$T/r1" "$expect" "restored @T (committed while the streamer was down)"

# after the last commit: nothing to stop before, everything is replayed.
# While the server is idle the streamer keeps storing that it is caught up,
# so the window follows the clock.
sleep 1.2
now=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
now_epoch=$(date +%s.%N)
ok=
for _ in $(seq 1 100); do
        run as_pg "$TMW" --json wal-status --component database
        if [[ $RUN_RC -eq 0 ]] && python3 - "$RUN_OUT" "$now_epoch" <<'EOF'; then ok=1; break; fi
import datetime, json, sys
w = json.loads(sys.argv[1])["windows"]
latest = datetime.datetime.strptime(w[-1]["latest"][:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ")
latest = latest.replace(tzinfo=datetime.timezone.utc).timestamp()
sys.exit(0 if latest >= float(sys.argv[2]) else 1)
EOF
        sleep 0.2
done
[[ -n $ok ]] || fail "the window never reached $now on an idle server: $RUN_OUT"
run as_pg "$TMW" restore --component database "@$now" --target "$T/r2"
assert_rc 0 "restore @now"
pg_recovers "$T/r2" "$(seq -s, 1 18)" "restored @now"

future=$(python3 -c "import datetime; print((datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)).strftime('%Y-%m-%dT%H:%M:%SZ'))")
run as_pg "$TMW" restore --component database "@$future" --target "$T/nope"
assert_rc 1 "restore after the window"
assert_contains "$RUN_ERR" "outside the recoverable window of component 'database': from " "the window in the refusal"
[[ ! -e $T/nope ]] || fail "a refused restore wrote $T/nope"
kill "$STREAM_PID"
wait "$STREAM_PID" || fail "wal-stream did not stop cleanly on SIGTERM: $(tail -5 "$T/stream$N_STARTS.log")"
STREAM_PID=
pass
