#!/usr/bin/env bash
# The real drill of tidemark-failoverd with a real PostgreSQL 15: POST
# /api/v1/test/failover {"dry_run": false} answers 202 with a job; while it
# runs a second one gets 409. The drill restores the newest base backup and
# its archived WAL into a scratch instance, starts a scratch PostgreSQL on
# a free loopback port, measures the RTO and RPO it achieved, stops and
# removes the instance, and stores a report listed at
# /api/v1/test/failover/reports. A drill before any backup exists fails
# cleanly, naming the step and the reason. The achieved figures show in
# /metrics.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
. "$(dirname "$0")/failover_env.bash"
chown postgres: "$T"
chmod 755 "$T"

fo_archiving_primary "failover drill passphrase"

cat >"$T/tidemark.conf" <<EOC
[repository]
location = $T/repo
password_file = $T/pass

[server]
access_log = none

[failover]
primary = alpha
service_tier = critical
pg_bin = $PGBIN
state_dir = $T/state
catchup_timeout = 120s

[site.alpha]
conninfo = host=127.0.0.1 port=$P_ALPHA user=postgres dbname=postgres
EOC
chown postgres: "$T/tidemark.conf"
# a scratch server a failed test leaves behind
on_exit "runuser -u postgres -- '$PGBIN/pg_ctl' -D '$T/state/drill-scratch/database' -m immediate stop"
as_pg sh -c 'echo $$ >"$1"; exec "$2" -c "$3" --listen 127.0.0.1:0 --port-file "$4"' sh \
        "$T/state/fod.pid" "$FOD" "$T/tidemark.conf" "$T/state/port" >"$T/failoverd.log" 2>&1 &
on_exit "kill \$(cat '$T/state/fod.pid'); sleep 0.5"
for _ in $(seq 1 100); do [[ -s $T/state/port ]] && break; sleep 0.1; done
[[ -s $T/state/port ]] || fail "failoverd did not start: $(tail -5 "$T/failoverd.log")"
API="http://127.0.0.1:$(cat "$T/state/port")"

# ---------------------------------------------------------- no backup yet
api POST /api/v1/test/failover '{"scope": "database_failover", "dry_run": false}'
expect_code 202 "a drill with nothing to restore starts"
job=$(jq_ "$BODY" 'd["job_id"]')
wait_job "$job" 120
python3 - "$JOB" <<'PY' || fail "a drill without a backup: $JOB"
import json, sys
d = json.loads(sys.argv[1])
assert d["state"] == "failed" and d["kind"] == "drill" and d["component"] == "database", d
assert d["error"].startswith("restore latest backup: "), d
assert "database" in d["error"] and "base backup" in d["error"], d
r = d["report"]
assert r["succeeded"] is False and r["failed_step"] == "restore latest backup", r
assert r["rto_seconds"] is None and r["reached"] is None, r
assert r["scratch"]["stopped"] is True and r["scratch"]["removed"] is True, r
PY
log "ok: without a backup the drill fails: $(jq_ "$JOB" 'd["error"]')"
api GET "/api/v1/test/failover/reports/$job"
expect_code 200 "the failed drill's report"
[[ $(jq_ "$BODY" 'd["failed_step"]') == "restore latest backup" ]] || fail "report: $BODY"
[[ ! -e $T/state/drill-scratch/database ]] || fail "the failed drill left its scratch instance"

# ---------------------------------------------------------- a backup and WAL after it
for i in 1 2 3; do psql_at "$P_ALPHA" -c "INSERT INTO t (id) VALUES ($i)"; done
run as_pg "$TMW" backup --component database --postgres "host=127.0.0.1 port=$P_ALPHA user=postgres"
assert_rc 0 "base backup"
for i in $(seq 4 20); do psql_at "$P_ALPHA" -c "INSERT INTO t (id) VALUES ($i)"; done
last_ts=$(psql_at "$P_ALPHA" -c "SELECT extract(epoch FROM max(ts)) FROM t")
seg=$(psql_at "$P_ALPHA" -c "SELECT pg_walfile_name(pg_current_wal_lsn())")
psql_at "$P_ALPHA" -c "SELECT pg_switch_wal()" >/dev/null
for _ in $(seq 1 300); do
        a=$(psql_at "$P_ALPHA" -c "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")
        [[ $a == "$seg" || $a > "$seg" ]] && break
        sleep 0.2
done
[[ $a == "$seg" || $a > "$seg" ]] || fail "segment $seg not archived: '$a'"

# ---------------------------------------------------------- the drill, and a second one meanwhile
api POST /api/v1/test/failover '{"scope": "database_failover", "dry_run": false}'
expect_code 202 "the real drill"
job=$(jq_ "$BODY" 'd["job_id"]')
api POST /api/v1/test/failover '{"scope": "database_failover", "dry_run": false}'
second=$CODE
second_body=$BODY
api GET "/api/v1/jobs/$job"
state=$(jq_ "$BODY" 'd["state"]')
# the second request came while the first ran: 409 (a restore of a base
# backup and a PostgreSQL start take longer than one HTTP round trip)
[[ $state == running || $second == 409 ]] || fail "drill $job finished before the second request"
[[ $second == 409 ]] || fail "a second drill while one runs: HTTP $second $second_body"
assert_contains "$second_body" "already running" "409 says why"
log "ok: a second drill meanwhile -> 409 $second_body"
# the step log while it runs or after
wait_job "$job" 300
python3 - "$JOB" "$last_ts" <<'PY' || fail "the drill: $JOB"
import datetime, json, math, sys
d = json.loads(sys.argv[1])
assert d["state"] == "succeeded", d
r = d["report"]
# nanoseconds: strptime takes at most six digits
p = lambda s: datetime.datetime.strptime(s[:26] + "Z", "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()
for k in ("rto_seconds", "rpo_seconds"):
    assert isinstance(r[k], float) and math.isfinite(r[k]) and r[k] >= 0, (k, r)
assert 0 < r["rto_seconds"] < 300, r
# everything archived was replayed: it reached the last row's commit
reached = p(r["reached"])
assert reached >= float(sys.argv[2]), (r["reached"], sys.argv[2])
assert r["rpo_seconds"] < 5, r
assert r["scratch"]["stopped"] is True and r["scratch"]["removed"] is True, r
steps = [s["step"] for s in d["steps"]]
assert steps == ["restore latest backup", "start scratch server", "measure",
                 "stop and remove scratch instance"], steps
assert all(s["state"] == "succeeded" for s in d["steps"]), d["steps"]
PY
rep_port=$(jq_ "$JOB" 'd["report"]["scratch"]["port"]')
log "ok: drill $job: RTO $(jq_ "$JOB" 'd["report"]["rto_seconds"]') s, RPO $(jq_ "$JOB" 'd["report"]["rpo_seconds"]') s, reached $(jq_ "$JOB" 'd["report"]["reached"]'), scratch port $rep_port"
# the scratch server is gone: nothing answers on its port, no files left
if as_pg "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$rep_port" -t 2; then
        fail "the scratch server on port $rep_port still answers"
fi
[[ ! -e $T/state/drill-scratch/database ]] || fail "the scratch instance was not removed"
pgrep -u postgres -f "drill-scratch/database" >/dev/null && fail "a scratch postgres still runs"

# ---------------------------------------------------------- the reports
api GET /api/v1/test/failover/reports
expect_code 200 "reports"
python3 - "$BODY" "$job" <<'PY' || fail "report list: $BODY"
import json, sys
d = json.loads(sys.argv[1])["reports"]
assert len(d) == 2, d
assert d[0]["id"] == int(sys.argv[2]) and d[0]["succeeded"] is True, d
assert d[1]["succeeded"] is False, d
assert "steps" not in d[0], d
PY
api GET "/api/v1/test/failover/reports/$job"
expect_code 200 "the drill's report"
snap=$(jq_ "$BODY" 'd["snapshot"]')
python3 - "$BODY" <<'PY' || fail "report: $BODY"
import json, sys
r = json.loads(sys.argv[1])
assert r["kind"] == "drill" and r["dry_run"] is False and len(r["snapshot"]) == 64, r
assert r["rto_target_seconds"] == 1800 and r["rto_met"] is True, r
assert len(r["steps"]) == 4, r
PY
api GET /api/v1/test/failover/reports/999
expect_code 404 "an unknown report"
api GET /api/v1/test/failover/reports/x1
expect_code 400 "a malformed report id"

# ---------------------------------------------------------- the timeline takes the drill as validation
api GET "/api/v1/recovery/timeline?start=2000-01-01T00:00:00Z&end=2100-01-01"
expect_code 200 "timeline"
python3 - "$BODY" "$snap" "$job" <<'PY' || fail "timeline after the drill: $BODY"
import json, sys
d = json.loads(sys.argv[1])["components"]["database"]
p = [p for p in d["points"] if p["snapshot"] == sys.argv[2]]
assert len(p) == 1, d
p = p[0]
assert p["validated_by"] == "drill " + sys.argv[3] and p["factors"]["validation"] == 1.0, p
assert p["tier"] == "hot" and p["factors"]["tier"] == 1.0, p
assert len(d["windows"]) == 1 and d["windows"][0]["base_backup"] == sys.argv[2], d
assert d["windows"][0]["factors"]["validation"] == 1.0 and d["gaps"] == [], d
PY

api GET /api/v1/status
expect_code 200 "status"
python3 - "$BODY" "$job" <<'PY' || fail "status after the drill: $BODY"
import json, sys
d = json.loads(sys.argv[1])
assert d["last_drill"]["id"] == int(sys.argv[2]) and d["last_drill"]["rto_seconds"] > 0, d
assert d["drill_running"] is False, d
PY

# ---------------------------------------------------------- metrics
api GET /metrics
expect_code 200 "metrics"
grep -q '^dr_drill_last_success_timestamp_seconds [0-9]' <<<"$BODY" || fail "no last-success metric: $BODY"
grep -q '^dr_rto_seconds{tier="critical",kind="drill"} [0-9]' <<<"$BODY" || fail "no drill RTO: $BODY"
grep -q '^dr_drills_total{result="failed"} 1' <<<"$BODY" || fail "drill counter: $BODY"
if command -v promtool >/dev/null; then
        promtool check metrics <<<"$BODY" || fail "promtool"
fi
# the dry run still works next to it
api POST /api/v1/test/failover '{"scope": "database_failover", "dry_run": true}'
expect_code 200 "dry run"

# ---------------------------------------------------------- stopping the daemon mid-drill
# SIGTERM right after the 202 (the restore takes a while): the drill gives
# up before or while the scratch server recovers, still removes it, and
# stores its report; the daemon does not wait for a whole drill
api POST /api/v1/test/failover '{"scope": "database_failover", "dry_run": false}'
expect_code 202 "a drill to interrupt"
job=$(jq_ "$BODY" 'd["job_id"]')
pid=$(cat "$T/state/fod.pid")
kill "$pid"
for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$pid" 2>/dev/null || fail "failoverd did not stop within 60 s of SIGTERM during a drill"
if grep -q "Sanitizer" "$T/failoverd.log"; then
        fail "sanitizer report: $(grep -A30 Sanitizer "$T/failoverd.log" | head -40)"
fi
python3 - "$T/state/drills/drill-$job.json" <<'PY' || fail "the interrupted drill's report: $(cat "$T/state/drills/drill-$job.json" 2>&1)"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["succeeded"] is False and r["failed_step"] == "start scratch server", r
assert "cancelled" in r["error"], r
assert r["scratch"]["stopped"] is True and r["scratch"]["removed"] is True, r
PY
[[ ! -e $T/state/drill-scratch/database ]] || fail "the interrupted drill left its scratch instance"
log "ok: SIGTERM during a drill: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["error"])' "$T/state/drills/drill-$job.json")"
pass
