#!/usr/bin/env bash
# tidemark-backupd end to end, over real HTTP on 127.0.0.1:
#   1. every curl of the spec's backup orchestrator, as written (host and
#      port replaced): backup, status, list, validate, utilization, health;
#      validation reports a damaged blob by file;
#   2. a schedule of "every 2s" produces snapshots on time, and retention
#      (keep_last = 3) keeps exactly three; a retention schedule thins
#      snapshots made by hand;
#   3. with tokens: a table of bad requests, each with the right 4xx and a
#      message, the daemon still serving after each; the audit log verifies
#      and a hand-edited line is detected; /metrics passes promtool;
#   4. a kill -9 in the middle of a job: at the restart the job is marked
#      interrupted and retried, and the retry succeeds; SIGTERM lets a
#      running job finish;
#   5. TLS from a certificate and key.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init
command -v curl >/dev/null || skip "curl missing"

mkdir -p "$T/plugins/sub" "$T/state"
printf 'plugin one\n' >"$T/plugins/one.txt"
random_file "$T/plugins/sub/blob.bin" 200000

job_field() { # ID EXPR
        curl -s "${AUTH[@]}" "$BKD_URL/api/v1/jobs/$1" | json_get "$2"
}
job_final() { # ID: the job reached a final state
        local s
        s=$(job_field "$1" 'd["state"]' 2>/dev/null) || return 1
        [[ $s == succeeded || $s == failed || $s == partial || $s == interrupted ]]
}
AUTH=()

# ------------------------------------------------------------ 1. the spec's curls
cat >"$T/open.conf" <<CONF
# no [auth] tokens: the API is open (the spec's curls carry no token)
[repository]
location = $TIDEMARK_REPOSITORY
catalog = $TIDEMARK_CATALOG
capacity = 1G
[server]
state_dir = $T/state
access_log = $T/access.log
[component.database]
type = command
command = printf 'CREATE TABLE t (x int);\\n'
tier = critical
schedule.full = none
schedule.differential = none
schedule.incremental = none
[component.plugins]
type = files
paths = $T/plugins
exclude = *.tmp
tier = high
schedule.full = none
schedule.differential = none
schedule.incremental = none
CONF
bkd_start "$T/open.conf"

run curl -X POST "$BKD_URL/api/v1/backup" \
        -H "Content-Type: application/json" \
        -d '{"strategy": "full", "components": ["database", "plugins"]}'
assert_rc 0 "spec: trigger manual backup"
assert_contains "$RUN_OUT" '"state":"queued"' "spec: trigger manual backup"
mapfile -t JOBS < <(printf '%s' "$RUN_OUT" | json_get '[str(j["job_id"]) for j in d["jobs"]]')
[[ ${#JOBS[@]} -eq 2 ]] || fail "expected one job per component, got: $RUN_OUT"
for j in "${JOBS[@]}"; do wait_for 30 "job $j" job_final "$j"; done
for j in "${JOBS[@]}"; do
        [[ $(job_field "$j" 'd["state"]') == succeeded ]] || fail "job $j: $(job_field "$j" 'd')"
done

run curl "$BKD_URL/api/v1/backups/status"
assert_rc 0 "spec: check backup status"
[[ $(printf '%s' "$RUN_OUT" | json_get 'len(d["recent"])') -ge 2 ]] || fail "status: $RUN_OUT"
assert_contains "$RUN_OUT" '"progress"' "status shows progress"

run curl "$BKD_URL/api/v1/backups"
assert_rc 0 "spec: list available backups"
[[ $(printf '%s' "$RUN_OUT" | json_get 'd["count"]') == 2 ]] || fail "list: $RUN_OUT"
NAME=$(printf '%s' "$RUN_OUT" | json_get '[b["name"] for b in d["backups"] if b["component"]=="plugins"][0]')
[[ $NAME =~ ^backup-[0-9]{8}-full-[0-9]+$ ]] || fail "name not in the spec's form: $NAME"
printf '%s' "$RUN_OUT" | json_get '[b for b in d["backups"] if b["component"]=="plugins"][0]' >"$T/b.json"
python3 - "$T/b.json" <<'PY' || fail "backup entry incomplete: $(cat "$T/b.json")"
import json, sys
b = json.load(open(sys.argv[1]))
assert len(b["id"]) == 64 and b["size"] == 200011 and b["tier"] == "high", b
assert b["stats"]["files"] == 2, b
PY

# filters: component, time range
http GET "/api/v1/backups?component=database"
assert_http 200 "filter by component"
[[ $(printf '%s' "$HTTP_BODY" | json_get '[b["component"] for b in d["backups"]]') == database ]] ||
        fail "component filter: $HTTP_BODY"
http GET "/api/v1/backups?from=2000-01-01&to=2000-12-31"
assert_http 200 "filter by time" '"count":0'
http GET "/api/v1/backups?from=2000-01-01"
assert_http 200 "filter from" '"count":2'
http GET "/api/v1/backups/$NAME"
assert_http 200 "get by name" "\"name\":\"$NAME\""
ID=$(printf '%s' "$HTTP_BODY" | json_get 'd["id"]')
http GET "/api/v1/backups/${ID:0:12}"
assert_http 200 "get by id prefix" "\"id\":\"$ID\""
# the (cached) list follows snapshots made and forgotten outside the daemon
count_api() { curl -s "$BKD_URL/api/v1/backups" | json_get 'd["count"]'; }
[[ $(count_api) == 2 ]] || fail "count before"
printf 'from the cli\n' | tm backup -q --stdin --stdin-filename cli.txt --component cli >/dev/null
[[ $(count_api) == 3 ]] || fail "a CLI snapshot is not listed"
run tm forget "$(snapshot_ids --component cli)"
assert_rc 0 "forget the CLI snapshot"
[[ $(count_api) == 2 ]] || fail "a forgotten snapshot is still listed: $RUN_OUT $(ls -la --time-style=full-iso "$TIDEMARK_REPOSITORY/snapshots")"

# validate, as written: that name does not exist here
run curl -X POST "$BKD_URL/api/v1/backup/validate" \
        -H "Content-Type: application/json" \
        -d '{"backup_id": "backup-20250107-full-123"}'
assert_rc 0 "spec: validate specific backup"
assert_contains "$RUN_OUT" "no backup named 'backup-20250107-full-123'" "validate unknown name"
# and with one that does
run curl -X POST "$BKD_URL/api/v1/backup/validate" \
        -H "Content-Type: application/json" \
        -d "{\"backup_id\": \"$NAME\"}"
VJOB=$(printf '%s' "$RUN_OUT" | json_get 'd["job_id"]') || fail "validate: $RUN_OUT"
wait_for 30 "validate job" job_final "$VJOB"
[[ $(job_field "$VJOB" 'd["result"]["ok"]') == True ]] || fail "validate: $(job_field "$VJOB" 'd')"
[[ $(job_field "$VJOB" 'd["result"]["blobs"]') -ge 2 ]] || fail "validate read no blobs"

run curl "$BKD_URL/api/v1/storage/utilization"
assert_rc 0 "spec: check storage utilization"
python3 -c '
import json, sys
d = json.loads(sys.argv[1])
assert d["bytes"] > 200000 and d["packs"] >= 1, d
assert abs(d["percent"] - 100.0 * d["bytes"] / (1 << 30)) < 1e-9, d
assert d["tiers"]["hot"]["bytes"] == d["bytes"], d
' "$RUN_OUT" || fail "utilization: $RUN_OUT"

run curl -f "$BKD_URL/health"
assert_rc 0 "spec: health"
assert_contains "$RUN_OUT" '"status":"healthy"' "health"

http GET /docs/openapi.json
assert_http 200 "openapi" '"openapi":"3.0.3"'
http GET /docs
assert_http 200 "docs page" "/docs/openapi.json"

# a damaged blob is reported with its file: corrupt the packs written by a
# backup of one new file
touch "$T/marker"
sleep 1.1
random_file "$T/plugins/victim.bin" 100000
http POST /api/v1/backup -d '{"strategy":"incremental","components":["plugins"]}'
assert_http 202 "incremental backup"
J=$(printf '%s' "$HTTP_BODY" | json_get 'd["jobs"][0]["job_id"]')
wait_for 30 "incremental" job_final "$J"
SNAP=$(job_field "$J" 'd["snapshot"]')
mapfile -t NEWPACKS < <(find "$TIDEMARK_REPOSITORY/data" -type f -newer "$T/marker")
[[ ${#NEWPACKS[@]} -ge 1 ]] || fail "no new pack"
# the largest new pack holds the new file's data (trees are small)
VICTIM=$(find "$TIDEMARK_REPOSITORY/data" -type f -newer "$T/marker" -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2)
sz=$(stat -c %s "$VICTIM")
printf 'XXXXXXXXXXXXXXXX' | dd of="$VICTIM" bs=1 seek=$((sz / 3)) conv=notrunc 2>/dev/null
http POST /api/v1/backup/validate -d "{\"backup_id\": \"$SNAP\"}"
assert_http 202 "validate damaged"
VJOB=$(printf '%s' "$HTTP_BODY" | json_get 'd["job_id"]')
wait_for 30 "validate damaged" job_final "$VJOB"
job_field "$VJOB" 'd' >"$T/v.json"
python3 - "$T/v.json" <<'PY' || fail "damage not reported: $(cat "$T/v.json")"
import json, sys
j = json.load(open(sys.argv[1]))
assert j["state"] == "failed" and j["result"]["ok"] is False, j
assert j["result"]["damaged_count"] >= 1, j
assert any(x["path"].endswith("victim.bin") for x in j["result"]["damaged"]), j
PY
log "ok: validation names the damaged file"
bkd_stop TERM
[[ $BKD_RC == 0 ]] || fail "backupd exited $BKD_RC on SIGTERM"

# repair the repository for what follows: drop that snapshot and the packs
rm -f "${NEWPACKS[@]}"
tm forget "$SNAP" >/dev/null 2>&1 || true
tm repair index >/dev/null 2>&1 || true

# ------------------------------------------------------------ 2. schedule + retention
cat >"$T/sched.conf" <<CONF
[repository]
location = $TIDEMARK_REPOSITORY
catalog = $TIDEMARK_CATALOG
[server]
state_dir = $T/state
access_log = none
[component.ticker]
type = command
command = date +%s.%N
schedule.full = none
schedule.differential = none
schedule.incremental = every 2s
keep_last = 3
CONF
bkd_start "$T/sched.conf"
sleep 9.3
bkd_stop TERM
python3 - "$T/state/jobs.jsonl" <<'PY' || fail "schedule not kept"
import json, sys
jobs = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    jobs[j["id"]] = j
t = sorted(j["created"] for j in jobs.values() if j["component"] == "ticker" and j["trigger"] == "schedule")
assert len(t) >= 4, "only %d scheduled jobs in 9 s" % len(t)
gaps = [(b - a) / 1e9 for a, b in zip(t, t[1:])]
assert all(1.5 < g < 3.0 for g in gaps), gaps
ok = [j for j in jobs.values() if j["component"] == "ticker" and j["state"] == "succeeded"]
assert len(ok) >= 4, ok
print("scheduled gaps", gaps, file=sys.stderr)
PY
[[ $(snapshot_count --component ticker) == 3 ]] || fail "retention: $(tm snapshots --component ticker)"
log "ok: every 2s schedule, keep_last = 3 kept exactly 3"

# retention on a schedule: snapshots made by hand are thinned to keep_last
for i in 1 2 3; do
        printf 'v%s\n' "$i" | tm backup --stdin --stdin-filename x --component manual >/dev/null
done
[[ $(snapshot_count --component manual) == 3 ]] || fail "manual snapshots"
cat >"$T/ret.conf" <<CONF
[repository]
location = $TIDEMARK_REPOSITORY
catalog = $TIDEMARK_CATALOG
[server]
state_dir = $T/state
access_log = none
[retention]
schedule = every 1s
[component.manual]
type = command
command = true
schedule.full = none
schedule.differential = none
schedule.incremental = none
keep_last = 1
CONF
bkd_start "$T/ret.conf"
manual_thinned() { [[ $(snapshot_count --component manual) == 1 ]]; }
wait_for 20 "scheduled retention" manual_thinned
bkd_stop TERM
log "ok: scheduled retention kept exactly keep_last = 1"

# ------------------------------------------------------------ 3. tokens, bad requests, audit, metrics
VIEWER=viewer-token-1234
OPERATOR=operator-token-5678
vh=$(printf '%s' "$VIEWER" | sha256sum | cut -d' ' -f1)
oh=$(printf '%s' "$OPERATOR" | sha256sum | cut -d' ' -f1)
sed -e 's/^\[server\]/[auth]\ntoken.grafana = viewer:'"$vh"'\ntoken.ci = operator:'"$oh"'\n[server]/' \
        -e 's/^command = printf.*/command = printf "dump\\n"; sleep 0.3/' \
        "$T/open.conf" >"$T/auth.conf"
bkd_start "$T/auth.conf"
AUTH=(-H "Authorization: Bearer $VIEWER")
OP=(-H "Authorization: Bearer $OPERATOR")
head -c $((10 * 1024 * 1024)) /dev/zero | tr '\0' ' ' >"$T/big.json"

bad() { # STATUS NEEDLE WHAT METHOD PATH CURL-ARGS...
        local status=$1 needle=$2 what=$3
        shift 3
        http "$@"
        assert_http "$status" "$what" "$needle"
        python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert list(d)==["error"] and d["error"]' \
                "$HTTP_BODY" || fail "$what: not a JSON error: $HTTP_BODY"
        http GET /health
        assert_http 200 "still serving after: $what"
        log "ok: $what -> $status $(printf '%s' "$HTTP_BODY" | head -c 0)"
}
bad 400 "malformed JSON" "malformed JSON" POST /api/v1/backup "${OP[@]}" -d '{"strategy": "full",'
bad 400 "colour" "unknown field" POST /api/v1/backup "${OP[@]}" -d '{"strategy":"full","colour":"red"}'
bad 400 "strategy" "wrong type" POST /api/v1/backup "${OP[@]}" -d '{"strategy":5}'
bad 400 "components" "wrong type (list)" POST /api/v1/backup "${OP[@]}" -d '{"components":"database"}'
bad 400 "invalid strategy" "unknown strategy" POST /api/v1/backup "${OP[@]}" -d '{"strategy":"sometimes"}'
bad 400 "unknown component 'nope'" "unknown component" POST /api/v1/backup "${OP[@]}" \
        -d '{"strategy":"full","components":["database","nope"]}'
bad 400 "duplicate" "duplicate key" POST /api/v1/backup "${OP[@]}" -d '{"strategy":"full","strategy":"full"}'
bad 413 "too large" "10 MB body" POST /api/v1/backup "${OP[@]}" --data-binary "@$T/big.json"
bad 404 "no backup named" "unknown backup name" GET /api/v1/backups/backup-20990101-full-999 "${AUTH[@]}"
bad 404 "no backup with id" "unknown backup id" GET /api/v1/backups/abcdef0123 "${AUTH[@]}"
bad 400 "invalid backup id" "not an id" GET /api/v1/backups/zz%20top "${AUTH[@]}"
bad 404 "no backup named" "validate unknown" POST /api/v1/backup/validate "${OP[@]}" \
        -d '{"backup_id":"backup-20990101-full-999"}'
bad 400 "backup_id" "validate without backup_id" POST /api/v1/backup/validate "${OP[@]}" -d '{}'
bad 400 "'..'" "path with .." GET /api/v1/backups/../../etc/passwd --path-as-is "${AUTH[@]}"
bad 400 "'..'" "escaped .." GET /api/v1/backups/%2e%2e "${AUTH[@]}"
bad 400 "invalid 'from'" "bad time" GET "/api/v1/backups?from=yesterday" "${AUTH[@]}"
bad 404 "no such endpoint" "unknown endpoint" GET /api/v1/nothing "${AUTH[@]}"
bad 405 "not allowed" "wrong method" DELETE /api/v1/backups "${AUTH[@]}"
bad 404 "no job" "unknown job" GET /api/v1/jobs/999999 "${AUTH[@]}"
bad 401 "token is required" "missing token" GET /api/v1/backups
bad 401 "invalid bearer token" "wrong token" GET /api/v1/backups -H "Authorization: Bearer nope"
bad 401 "token is required" "missing token on an action" POST /api/v1/backup -d '{"strategy":"full"}'
bad 403 "role 'viewer'" "viewer token on an action" POST /api/v1/backup "${AUTH[@]}" -d '{"strategy":"full"}'
# what is allowed
http GET /api/v1/backups "${AUTH[@]}"
assert_http 200 "viewer reads"
http POST /api/v1/backup "${OP[@]}" -H "Content-Type: application/json" -d '{"components":["database"]}'
assert_http 202 "operator acts" '"strategy":"incremental"'
J=$(printf '%s' "$HTTP_BODY" | json_get 'd["jobs"][0]["job_id"]')
wait_for 30 "operator job" job_final "$J"
http GET /health
assert_http 200 "health open"
http GET /metrics
assert_http 200 "metrics open"
printf '%s\n' "$HTTP_BODY" >"$T/metrics.txt"
for m in backup_job_success_rate backup_job_duration_seconds_bucket backup_size_bytes \
        backup_storage_utilization_percent backup_last_success_timestamp_seconds; do
        grep -q "^$m{" "$T/metrics.txt" || fail "metric $m missing: $(cat "$T/metrics.txt")"
done
grep -q 'backup_job_success_rate{component="database",strategy="incremental",tier="critical"} 100' \
        "$T/metrics.txt" || fail "success rate: $(grep success_rate "$T/metrics.txt")"
if command -v promtool >/dev/null; then
        run promtool check metrics <"$T/metrics.txt"
        assert_rc 0 "promtool check metrics"
        log "ok: promtool check metrics"
else
        log "promtool missing (install Debian's prometheus): metrics lint not run"
fi

# the access log has one JSON line per request
python3 - "$T/access.log" <<'PY' || fail "access log"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
assert any(l["status"] == 413 for l in lines) and any(l["status"] == 403 for l in lines)
assert all({"ts", "method", "path", "status", "duration_ms", "req_id"} <= set(l) for l in lines)
PY

AUDIT="$T/state/audit.log"
run tm audit verify "$AUDIT"
assert_rc 0 "audit verify"
assert_contains "$RUN_OUT" "intact" "audit verify"
grep -q '"principal":"ci"' "$AUDIT" || fail "audit lacks the operator's name"
grep -q '"status":403' "$AUDIT" || fail "audit lacks the refused action"
cp "$AUDIT" "$T/audit.orig"
# hand-edit line 2: make a refused request look accepted
python3 - "$AUDIT" <<'PY'
import sys
p = sys.argv[1]
lines = open(p).read().split("\n")
lines[1] = lines[1].replace('"status":', '"status":1', 1)
open(p, "w").write("\n".join(lines))
PY
assert_fails_cleanly "edited audit line" tm audit verify "$AUDIT"
assert_contains "$RUN_ERR" "line 3" "edited line located"
# remove a line
cp "$T/audit.orig" "$AUDIT"
sed -i '2d' "$AUDIT"
assert_fails_cleanly "removed audit line" tm audit verify "$AUDIT"
# reorder two lines
cp "$T/audit.orig" "$AUDIT"
python3 - "$AUDIT" <<'PY'
import sys
p = sys.argv[1]
l = open(p).read().splitlines(True)
l[1], l[2] = l[2], l[1]
open(p, "w").write("".join(l))
PY
assert_fails_cleanly "reordered audit lines" tm audit verify "$AUDIT"
cp "$T/audit.orig" "$AUDIT"
run tm audit verify "$AUDIT"
assert_rc 0 "restored audit log"
bkd_stop TERM

# ------------------------------------------------------------ 4. restart mid-job, SIGTERM
# the command waits for a gate file (at most 30 s), so the test decides when
# the job may end, whatever the machine's load
GATE="$T/gate"
sed 's|^command = printf.*|command = for i in $(seq 300); do [ -e '"$GATE"' ] \&\& break; sleep 0.1; done; printf "late dump\\n"|' \
        "$T/auth.conf" >"$T/slow.conf"
bkd_start "$T/slow.conf"
http POST /api/v1/backup "${OP[@]}" -d '{"strategy":"full","components":["database"]}'
assert_http 202 "slow backup"
J=$(printf '%s' "$HTTP_BODY" | json_get 'd["jobs"][0]["job_id"]')
job_running() { [[ $(job_field "$J" 'd["state"]') == running ]]; }
wait_for 10 "job running" job_running
kill -9 "$BKD_PID"
wait "$BKD_PID" 2>/dev/null || true
bkd_start "$T/slow.conf"
[[ $(job_field "$J" 'd["state"]') == interrupted ]] || fail "job $J after restart: $(job_field "$J" 'd')"
R=$(job_field "$J" 'd["retried_by"]') || fail "job $J not retried: $(job_field "$J" 'd')"
[[ $(job_field "$R" 'd["retry_of"]') == "$J" && $(job_field "$R" 'd["trigger"]') == retry ]] ||
        fail "retry job: $(job_field "$R" 'd')"
touch "$GATE"
wait_for 30 "retry" job_final "$R"
[[ $(job_field "$R" 'd["state"]') == succeeded ]] || fail "retry: $(job_field "$R" 'd')"
log "ok: job $J interrupted by kill -9, retried as job $R, which succeeded"

# SIGTERM while a job runs: the job finishes, then the daemon exits 0
http POST /api/v1/backup "${OP[@]}" -d '{"strategy":"full","components":["database"]}'
rm -f "$GATE"
J=$(printf '%s' "$HTTP_BODY" | json_get 'd["jobs"][0]["job_id"]')
wait_for 10 "job running" job_running
kill -TERM "$BKD_PID"
sleep 1
kill -0 "$BKD_PID" || fail "backupd exited with a job running"
touch "$GATE"
bkd_stop TERM
[[ $BKD_RC == 0 ]] || fail "backupd exited $BKD_RC"
python3 - "$T/state/jobs.jsonl" "$J" <<'PY' || fail "job $J did not finish before the exit"
import json, sys
last = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["id"] == int(sys.argv[2])][-1]
assert last["state"] == "succeeded", last
PY

# ------------------------------------------------------------ 5. TLS
if command -v openssl >/dev/null; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
                -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
                -keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null
        sed 's|^\[server\]|[server]\ntls_cert = '"$T"'/cert.pem\ntls_key = '"$T"'/key.pem|' \
                "$T/open.conf" >"$T/tls.conf"
        bkd_start "$T/tls.conf"
        run curl -s --cacert "$T/cert.pem" "https://127.0.0.1:$BKD_PORT/health"
        assert_rc 0 "https health"
        assert_contains "$RUN_OUT" '"status":"healthy"' "https health"
        run curl -s "http://127.0.0.1:$BKD_PORT/health"
        [[ $RUN_RC != 0 ]] || fail "plain http answered on a TLS port: $RUN_OUT"
        bkd_stop TERM
        log "ok: TLS"
else
        log "openssl missing: TLS not tested"
fi

check_ok
# sanitizer builds: the daemon reported nothing
if grep -E "ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:" "$T/backupd.log" >&2; then
        fail "sanitizer reports in backupd.log"
fi
pass
