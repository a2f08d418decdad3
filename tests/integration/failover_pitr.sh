#!/usr/bin/env bash
# Point-in-time recovery through tidemark-failoverd with a real PostgreSQL
# 15: WAL archived with tidemark wal-push and a base backup, timestamped
# inserts, then POST /api/v1/recovery/point-in-time to the named target
# test-environment starts a scratch PostgreSQL holding exactly the rows
# committed by the target instant, and says which instant it reached.
# A malformed timestamp, an instant outside the recoverable window and an
# unknown destination get a 400 with the reason. GET
# /api/v1/recovery/timeline lists the base backup with a confidence score
# and the recoverable window.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
. "$(dirname "$0")/failover_env.bash"
chown postgres: "$T"
chmod 755 "$T"

fo_archiving_primary "failover pitr passphrase"
for i in 1 2 3; do psql_at "$P_ALPHA" -c "INSERT INTO t (id) VALUES ($i)"; done
run as_pg "$TMW" backup --component database --postgres "host=127.0.0.1 port=$P_ALPHA user=postgres"
assert_rc 0 "base backup"
for i in $(seq 4 12); do
        psql_at "$P_ALPHA" -c "INSERT INTO t (id) VALUES ($i)"
        sleep 0.2
done
K=8
ts_k=$(psql_at "$P_ALPHA" -c "SELECT extract(epoch FROM ts) FROM t WHERE id = $K")
TARGET=$(python3 -c "import datetime,sys; print(datetime.datetime.fromtimestamp(float(sys.argv[1]) + 0.1, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ'))" "$ts_k")
expect=$(psql_at "$P_ALPHA" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t WHERE ts <= '$TARGET'")
[[ $expect == "$(seq -s, 1 $K)" ]] || fail "test setup: rows at or before T are '$expect'"
seg=$(psql_at "$P_ALPHA" -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
psql_at "$P_ALPHA" -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 150); do
        a=$(psql_at "$P_ALPHA" -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        [[ $a == "$seg" || $a > "$seg" ]] && break
        sleep 0.2
done
[[ $a == "$seg" || $a > "$seg" ]] || fail "segment $seg not archived: '$a'"

cat >"$T/tidemark.conf" <<EOC
[repository]
location = $T/repo
password_file = $T/pass

[server]
access_log = none

[failover]
primary = alpha
state_dir = $T/state
catchup_timeout = 60s

[site.alpha]
conninfo = host=127.0.0.1 port=$P_ALPHA user=postgres dbname=postgres

[target.test-environment]
path = $T/testenv
EOC
chown postgres: "$T/tidemark.conf"
as_pg mkdir "$T/testenv"
on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$T/testenv/database' -m immediate stop"
as_pg sh -c 'echo $$ >"$1"; exec "$2" -c "$3" --listen 127.0.0.1:0 --port-file "$4"' sh \
        "$T/state/fod.pid" "$FOD" "$T/tidemark.conf" "$T/state/port" >"$T/failoverd.log" 2>&1 &
on_exit "kill \$(cat '$T/state/fod.pid'); sleep 0.5"
for _ in $(seq 1 100); do [[ -s $T/state/port ]] && break; sleep 0.1; done
[[ -s $T/state/port ]] || fail "failoverd did not start: $(tail -5 "$T/failoverd.log")"
API="http://127.0.0.1:$(cat "$T/state/port")"

# ---------------------------------------------------------- bad requests
api POST /api/v1/recovery/point-in-time '{"target_timestamp": "yesterday noon", "components": ["database"], "destination": "test-environment"}'
expect_code 400 "malformed timestamp"
assert_contains "$BODY" "malformed target_timestamp" "malformed timestamp"
api POST /api/v1/recovery/point-in-time '{"target_timestamp": "2000-01-01T00:00:00Z", "components": ["database"], "destination": "test-environment"}'
expect_code 400 "target outside the window"
assert_contains "$BODY" "outside the recoverable window" "outside the window"
api POST /api/v1/recovery/point-in-time "{\"target_timestamp\": \"$TARGET\", \"components\": [\"database\"], \"destination\": \"staging\"}"
expect_code 400 "unknown destination"
api POST /api/v1/recovery/point-in-time "{\"target_timestamp\": \"$TARGET\", \"components\": [\"../x\"], \"destination\": \"test-environment\"}"
expect_code 400 "bad component name"
api GET "/api/v1/recovery/timeline?start=soon"
expect_code 400 "malformed timeline start"

# ---------------------------------------------------------- PITR to test-environment
api POST /api/v1/recovery/point-in-time "{\"target_timestamp\": \"$TARGET\", \"components\": [\"database\"], \"destination\": \"test-environment\"}"
expect_code 200 "point-in-time recovery"
port=$(jq_ "$BODY" 'd["database"]["port"]')
[[ $(jq_ "$BODY" 'd["database"]["status"]') == running ]] || fail "scratch server not running: $BODY"
got=$(psql_at "$port" -c "SELECT string_agg(id::text, ',' ORDER BY id) FROM t")
[[ $got == "$expect" ]] || fail "the scratch server has rows '$got', expected '$expect'"
log "the scratch server on port $port holds exactly rows $got"
reached=$(jq_ "$BODY" 'd["database"]["reached"]')
python3 - "$reached" "$TARGET" "$ts_k" <<'PY' || fail "reached instant $reached is not row $K's commit (<= $TARGET)"
import datetime, sys
p = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
reached, target, ts_k = p(sys.argv[1]), p(sys.argv[2]), float(sys.argv[3])
assert ts_k <= reached <= target, (reached, target, ts_k)
PY
log "reached $reached (target $TARGET)"
# again: the scratch server is replaced, not duplicated
api POST /api/v1/recovery/point-in-time "{\"target_timestamp\": \"$TARGET\", \"destination\": \"test-environment\"}"
expect_code 200 "a second recovery into the same target"
port=$(jq_ "$BODY" 'd["database"]["port"]')
[[ $(psql_at "$port" -c "SELECT count(*) FROM t") == "$K" ]] || fail "second recovery"

# ---------------------------------------------------------- the timeline
api GET "/api/v1/recovery/timeline?start=2000-01-01T00:00:00Z&end=2100-01-01"
expect_code 200 "timeline"
python3 - "$BODY" <<'PY' || fail "timeline: $BODY"
import json, sys
d = json.loads(sys.argv[1])
db = d["components"]["database"]
assert len(db["points"]) == 1, db
p = db["points"][0]
assert 0 < p["confidence"] <= 1 and p["factors"]["completeness"] == 1.0, p
assert len(db["windows"]) == 1 and 0 < db["windows"][0]["confidence"] <= 1, db
assert "database-wal" not in d["components"], d
PY
api GET "/api/v1/recovery/timeline?start=2000-01-01T00:00:00Z&end=2000-01-02T00:00:00Z"
expect_code 200 "timeline of an empty range"
[[ $(jq_ "$BODY" 'len(d["components"]["database"]["points"])') == 0 ]] || fail "empty range: $BODY"
fo_stop
pass
