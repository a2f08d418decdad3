#!/usr/bin/env bash
# tidemark-monitord end to end, with a real backupd and loopback receivers
# (an HTTP endpoint for the webhook, Slack and PagerDuty channels, an SMTP
# sink from Debian's aiosmtpd):
#   1. of two components, plugins is backed up and database never is:
#      exactly one critical freshness alert, for database (alerts are per
#      label set, as in Prometheus), reaches every channel within seconds
#      with its labels (Slack text, PagerDuty dedup key and custom details,
#      webhook JSON, email subject), and opens an incident by itself; a
#      channel that is down is retried and its failure is visible in the
#      API and the metrics;
#   2. a runbook started on that incident triggers a real backup of
#      database through backupd, waits for it, and its step log lands on
#      the incident;
#   3. with database fresh the alert resolves on every channel (PagerDuty
#      "resolve" with the same key);
#   4. the incident lifecycle through the API, incident_response_time_seconds;
#      SLA figures; silences; the test alert; the compliance report (JSON
#      and HTML); /metrics passes promtool; bad requests get 4xx and a reason.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init
command -v curl >/dev/null || skip "curl missing"
[[ -x $TM_BIN/tidemark-monitord ]] || skip "no tidemark-monitord at $TM_BIN"
/usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || skip "python3-aiosmtpd missing"

mkdir -p "$T/plugins" "$T/bstate" "$T/mstate" "$T/sinks"
printf 'plugin\n' >"$T/plugins/p.txt"

/usr/bin/python3 "$TM_SRC/tests/integration/monitor_sinks.py" "$T/sinks" 2>"$T/sinks.log" &
SINK_PID=$!
on_exit "kill $SINK_PID"
wait_for 20 "the receivers" test -s "$T/sinks/smtp.port"
HP=$(cat "$T/sinks/http.port")
SP=$(cat "$T/sinks/smtp.port")

COMPONENTS="
[component.database]
type = command
command = printf 'CREATE TABLE t (x int);\\\\n'
tier = critical
schedule.full = none
schedule.differential = none
schedule.incremental = none
[component.plugins]
type = files
paths = $T/plugins
tier = high
schedule.full = none
schedule.differential = none
schedule.incremental = none
"
cat >"$T/backupd.conf" <<CONF
[repository]
location = $TIDEMARK_REPOSITORY
catalog = $TIDEMARK_CATALOG
capacity = 1G
[server]
state_dir = $T/bstate
access_log = none
$COMPONENTS
CONF
bkd_start "$T/backupd.conf"
# plugins is fresh from the start, database is not
run curl -s -X POST "$BKD_URL/api/v1/backup" -H 'Content-Type: application/json' \
        -d '{"strategy": "full", "components": ["plugins"]}'
PJOB=$(printf '%s' "$RUN_OUT" | json_get 'd["jobs"][0]["job_id"]')
pjob_done() { [[ $(curl -s "$BKD_URL/api/v1/jobs/$PJOB" | json_get 'd["state"]') == succeeded ]]; }
wait_for 30 "the plugins backup" pjob_done

cat >"$T/monitor.conf" <<CONF
[monitor]
state_dir = $T/mstate
scrape_interval = 1s
access_log = $T/monitor-access.log
audit_logs = $T/bstate/audit.log
$COMPONENTS
[service.backupd]
url = $BKD_URL
tier = critical
[check.backupd_health]
type = http
service = backupd
interval = 1s
timeout = 2s
[check.backup_freshness]
type = freshness
service = backupd
interval = 1s
timeout = 5s
[check.failed_jobs]
type = jobs
service = backupd
interval = 1s
[check.queue]
type = metric
service = backupd
metric = backup_jobs_queued
op = >
threshold = 100
interval = 2s
[alert.backup_stale]
check = backup_freshness
severity = critical
summary = a component has no backup within its RPO
channels = hook slack pagerduty email down
runbook = backup_failing
[alert.backupd_down]
check = backupd_health
severity = high
for = 5s
[alert.storage]
service = backupd
metric = backup_storage_utilization_percent
op = >
threshold = 90
severity = warning
[channel.hook]
type = webhook
url = http://127.0.0.1:$HP/hook
[channel.slack]
type = slack
url = http://127.0.0.1:$HP/slack
[channel.pagerduty]
type = pagerduty
url = http://127.0.0.1:$HP/pd
routing_key = R0UT1NGKEY
[channel.email]
type = email
url = smtp://127.0.0.1:$SP
from = tidemark@example.org
to = oncall@example.org, boss@example.org
[channel.down]
type = webhook
url = http://127.0.0.1:$HP/down
attempts = 2
[incidents]
channels = hook
[runbook.backup_failing]
description = back up the database again and check freshness
step = http POST backupd /api/v1/backup {"strategy": "full", "components": ["database"]}
step = wait_jobs 60s
step = command echo "handled {incident_id}"
CONF

run "$TM_BIN/tidemark-monitord" -c "$T/monitor.conf" --check-config
assert_rc 0 "check-config"
run "$TM_BIN/tidemark-monitord" --version
assert_contains "$RUN_OUT" "tidemark-monitord" "--version"

rm -f "$T/mon.port"
T0=$(date +%s.%N)
"$TM_BIN/tidemark-monitord" -c "$T/monitor.conf" --listen 127.0.0.1:0 --port-file "$T/mon.port" \
        2>>"$T/monitord.log" &
MON_PID=$!
on_exit "kill -9 $MON_PID"
wait_for 10 "monitord listening" test -s "$T/mon.port"
MON_URL="http://127.0.0.1:$(cat "$T/mon.port")"
mhttp() { # METHOD PATH [CURL ARGS]
        local method=$1 path=$2
        shift 2
        HTTP_STATUS=$(curl -s -o "$T/.m.body" -w '%{http_code}' -X "$method" "$@" "$MON_URL$path") || true
        HTTP_BODY=$(cat "$T/.m.body" 2>/dev/null || true)
}
count_http() { # PATH-PREFIX PYTHON-COND: number of recorded POSTs matching
        [[ -s $T/sinks/http.jsonl ]] || { echo 0; return; }
        python3 -c '
import json, sys
n = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    b = r["body"]
    if r["path"].startswith(sys.argv[2]) and eval(sys.argv[3]):
        n += 1
print(n)' "$T/sinks/http.jsonl" "$1" "$2"
}
has_http() { [[ $(count_http "$1" "$2") -ge 1 ]]; }
count_mail() { # NEEDLE
        [[ -s $T/sinks/smtp.jsonl ]] || { echo 0; return; }
        grep -cF -- "$1" "$T/sinks/smtp.jsonl" || true
}
has_mail() { [[ $(count_mail "$1") -ge 1 ]]; }

mhttp GET /health
assert_http 200 "own health" '"healthy"'

# ------------------------------------------------------------ 1. stale -> alert
KEY='tidemark/alert/backup_stale{component="database"}'
wait_for 15 "the stale alert on the webhook" has_http /hook 'b["kind"] == "alert" and b["name"] == "backup_stale" and b["status"] == "firing" and b["details"]["labels"] == {"component": "database"} and b["dedup_key"] == '"'$KEY'"
T1=$(python3 -c 'import json,sys; print(min(json.loads(l)["received"] for l in open(sys.argv[1]) if "backup_stale" in l))' "$T/sinks/http.jsonl")
log "first alert $(python3 -c "print(round($T1 - $T0, 2))") s after monitord started"
wait_for 10 "slack" has_http /slack '"backup_stale{component=\"database\"}" in b["text"] and b["attachments"][0]["color"] == "danger"'
wait_for 10 "pagerduty trigger" has_http /pd 'b["event_action"] == "trigger" and b["dedup_key"] == '"'$KEY'"' and b["routing_key"] == "R0UT1NGKEY" and b["payload"]["severity"] == "critical" and b["payload"]["custom_details"]["labels"] == {"component": "database"}'
wait_for 10 "the email" has_mail 'backup_stale{component=\"database\"}'
assert_contains "$(cat "$T/sinks/smtp.jsonl")" "oncall@example.org" "email recipients"
assert_contains "$(cat "$T/sinks/smtp.jsonl")" "no successful backup" "email text says why"
python3 -c '
import json, sys
subjects = [h for l in open(sys.argv[1]) for h in json.loads(l)["data"].splitlines() if h.startswith("Subject:")]
assert any("backup_stale{component=\"database\"}" in s for s in subjects), subjects' "$T/sinks/smtp.jsonl" ||
        fail "the email subject does not name the component"
# give a plugins alert, were there one, time to show up
sleep 3
[[ $(count_http /hook 'b["kind"] == "alert" and b["name"] == "backup_stale"') -eq 1 ]] ||
        fail "expected exactly one backup_stale alert (database), got $(count_http /hook 'b["kind"] == "alert" and b["name"] == "backup_stale"')"
[[ $(count_http /hook 'b["kind"] == "alert" and "plugins" in json.dumps(b)') -eq 0 ]] ||
        fail "the fresh component plugins alerted"

mhttp GET /api/v1/alerts/active
assert_http 200 "active alerts" '"backup_stale"'
[[ $(printf '%s' "$HTTP_BODY" | json_get '[(a["name"], a["labels"], a["dedup_key"]) for a in d["alerts"]] == [("backup_stale", {"component": "database"}, "'"$(printf '%s' "$KEY" | sed 's/"/\\"/g')"'")]') == True ]] ||
        fail "active alerts: expected backup_stale for database only: $HTTP_BODY"
INC=$(printf '%s' "$HTTP_BODY" | json_get '[a["incident_id"] for a in d["alerts"] if a["name"] == "backup_stale"][0]')
log "the alert opened $INC"
mhttp GET "/api/v1/incidents/$INC"
assert_http 200 "auto incident" '"source":"alert:backup_stale{component=\"database\"}"'
assert_contains "$HTTP_BODY" '"severity":"critical"' "auto incident severity"
assert_contains "$HTTP_BODY" 'backup_stale{component=\"database\"}: a component has no backup' "auto incident title"
wait_for 10 "the incident notification" has_http /hook "b['kind'] == 'incident' and b['name'] == '$INC'"

# the down channel: retried (attempts = 2), then counted as failed
wait_for 15 "the down channel failure" has_http /down 'True'
down_failed() {
        mhttp GET /api/v1/channels
        [[ $(printf '%s' "$HTTP_BODY" | json_get '[c for c in d["channels"] if c["name"] == "down"][0]["failed"]') -ge 1 ]]
}
wait_for 15 "the down channel counted as failed" down_failed
assert_contains "$HTTP_BODY" '"status":"down"' "down channel visible"
assert_contains "$HTTP_BODY" 'HTTP 500' "down channel reason"
[[ $(count_http /down 'True') -ge 2 ]] || fail "the down channel was not retried"
mhttp GET /metrics
assert_contains "$HTTP_BODY" 'monitor_channel_up{channel="down",type="webhook"} 0' "channel metric"

# ------------------------------------------------------------ 2. runbook on the incident
mhttp POST /api/v1/runbooks/execute -H 'Content-Type: application/json' \
        -d "{\"runbook\": \"backup_failing\", \"context\": {\"incident_id\": \"$INC\"}}"
assert_http 202 "runbook execute"
EXE=$(printf '%s' "$HTTP_BODY" | json_get 'd["execution_id"]')
exe_final() {
        mhttp GET "/api/v1/runbooks/executions/$EXE"
        [[ $(printf '%s' "$HTTP_BODY" | json_get 'd["state"]') =~ ^(succeeded|failed|interrupted)$ ]]
}
wait_for 60 "the runbook" exe_final
[[ $(printf '%s' "$HTTP_BODY" | json_get 'd["state"]') == succeeded ]] || fail "runbook: $HTTP_BODY"
assert_contains "$HTTP_BODY" "handled $INC" "runbook command output"
mhttp GET "/api/v1/incidents/$INC"
[[ $(printf '%s' "$HTTP_BODY" | json_get 'len([e for e in d["timeline"] if e["kind"] == "runbook"])') -ge 4 ]] ||
        fail "the runbook's step log is not on the incident: $HTTP_BODY"
assert_contains "$HTTP_BODY" "job(s) succeeded" "wait_jobs step on the incident"

# ------------------------------------------------------------ 3. database fresh -> resolved
wait_for 30 "the resolution on the webhook" has_http /hook 'b["kind"] == "alert" and b["name"] == "backup_stale" and b["status"] == "resolved" and b["details"]["labels"] == {"component": "database"}'
wait_for 10 "pagerduty resolve" has_http /pd 'b["event_action"] == "resolve" and b["dedup_key"] == '"'$KEY'"
wait_for 10 "the resolution email" has_mail "tidemark resolved"
mhttp GET /api/v1/alerts/active
[[ $(printf '%s' "$HTTP_BODY" | json_get 'd["count"]') -eq 0 ]] || fail "alerts still active: $HTTP_BODY"
mhttp POST /api/v1/health/check/backup_freshness
assert_http 200 "run a check now" '"status":"ok"'
mhttp GET /api/v1/health
assert_http 200 "aggregate health" '"backupd"'
[[ $(printf '%s' "$HTTP_BODY" | json_get 'd["checks"]["backupd_health"]["status"]') == ok ]] || fail "health: $HTTP_BODY"
mhttp POST /api/v1/health/check/failed_jobs
assert_http 200 "jobs check" '"status":"ok"'
assert_contains "$HTTP_BODY" "recent jobs, none failed" "jobs check"

# ------------------------------------------------------------ 4. incident lifecycle
mhttp POST /api/v1/incidents -H "Content-Type: application/json" -d '{
    "title": "Database connectivity issues",
    "severity": "high",
    "affected_services": ["user-management", "authentication"]
  }'
assert_http 201 "spec: report incident" '"status":"open"'
ID=$(printf '%s' "$HTTP_BODY" | json_get 'd["id"]')
sleep 1
mhttp POST "/api/v1/incidents/$ID/acknowledge" -H 'Content-Type: application/json' -d '{"message": "on it"}'
assert_http 200 "acknowledge" '"acknowledged"'
RT=$(printf '%s' "$HTTP_BODY" | json_get 'd["response_time_seconds"]')
python3 -c "import sys; sys.exit(0 if 0.9 < $RT < 30 else 1)" || fail "response time $RT"
mhttp POST "/api/v1/incidents/$ID/acknowledge"
assert_http 409 "acknowledge twice" "already"
mhttp POST "/api/v1/incidents/$ID/updates" -H 'Content-Type: application/json' -d '{"message": "failover started", "status": "identified"}'
assert_http 200 "update" '"identified"'
mhttp POST "/api/v1/incidents/$ID/resolve" -H 'Content-Type: application/json' -d '{"message": "fixed"}'
assert_http 200 "resolve" '"resolved"'
[[ $(printf '%s' "$HTTP_BODY" | json_get 'len(d["timeline"])') -eq 4 ]] || fail "timeline: $HTTP_BODY"
wait_for 10 "incident updates on the channel" has_http /hook "b['kind'] == 'incident' and b['name'] == '$ID' and b['status'] == 'resolved'"
mhttp GET "/api/v1/incidents?status=active"
assert_http 200 "active incidents" "$INC"
assert_not_contains "$HTTP_BODY" "\"$ID\"" "resolved incident not active"
mhttp GET /metrics
assert_contains "$HTTP_BODY" 'incident_response_time_seconds_count{severity="high"} 1' "response time metric"
assert_contains "$HTTP_BODY" 'active_incidents_count{severity="critical"} 1' "active incidents metric"
assert_contains "$HTTP_BODY" 'runbook_execution_success_rate{runbook="backup_failing"} 100' "runbook metric"
assert_contains "$HTTP_BODY" 'sla_availability_percent{service="backupd",tier="critical",window="1h"} 100' "sla metric"
assert_contains "$HTTP_BODY" 'backup_last_success_timestamp_seconds{service="backupd"' "re-exported"
printf '%s\n' "$HTTP_BODY" >"$T/metrics.txt"
if command -v promtool >/dev/null; then
        # the spec names a gauge active_incidents_count, which promtool's
        # lint flags (rc 3, "_count" suffix); parse errors are rc 1, and any
        # other lint finding fails too
        rc=0
        promtool check metrics <"$T/metrics.txt" >"$T/promtool.out" 2>&1 || rc=$?
        if [[ $rc -ne 0 ]] && { [[ $rc -ne 3 ]] || grep -v '^active_incidents_count non-histogram' "$T/promtool.out" | grep -q .; }; then
                cat "$T/promtool.out" >&2
                fail "promtool check metrics (rc $rc)"
        fi
fi

# ------------------------------------------------------------ SLA, silences, test alert, compliance
mhttp GET /api/v1/sla/metrics
assert_http 200 "sla" '"availability_percent"'
[[ $(printf '%s' "$HTTP_BODY" | json_get 'd["services"]["backupd"]["windows"]["1h"]["probes"]') -ge 3 ]] || fail "sla: $HTTP_BODY"
[[ $(printf '%s' "$HTTP_BODY" | json_get 'd["services"]["backupd"]["target_percent"]') == 99.95 ]] || fail "sla target"
[[ $(printf '%s' "$HTTP_BODY" | json_get 'd["targets"]["high"]') == 99.9 ]] || fail "sla targets: $HTTP_BODY"
mhttp POST /api/v1/alerts/silences -H 'Content-Type: application/json' -d '{"alert": "backupd_down", "duration": "1h", "comment": "maintenance"}'
assert_http 201 "silence"
mhttp GET /api/v1/alerts/silences
assert_http 200 "silences" '"maintenance"'
mhttp POST /api/v1/test/alert
assert_http 200 "spec: test alert delivery" '"delivered":4'
wait_for 10 "the test alert" has_http /hook 'b["kind"] == "test"'
wait_for 10 "the test email" has_mail "test alert"
mhttp GET "/api/v1/reports/compliance?from=2020-01-01T00:00:00Z"
assert_http 200 "compliance json" '"audit_logs"'
[[ $(printf '%s' "$HTTP_BODY" | json_get 'd["backups"]["succeeded"]') -ge 2 ]] || fail "compliance backups: $HTTP_BODY"
[[ $(printf '%s' "$HTTP_BODY" | json_get 'all(a["verified"] for a in d["audit_logs"])') == True ]] || fail "audit: $HTTP_BODY"
[[ $(printf '%s' "$HTTP_BODY" | json_get 'd["incidents"]["total"]') -eq 2 ]] || fail "compliance incidents: $HTTP_BODY"
mhttp GET "/api/v1/reports/compliance?format=html"
assert_http 200 "compliance html" "compliance report"
assert_contains "$HTTP_BODY" "Database connectivity issues" "html lists the incident"

# ------------------------------------------------------------ bad requests
J=(-H 'Content-Type: application/json')
while IFS='|' read -r method path body code needle; do
        [[ -n $method ]] || continue
        if [[ -n $body ]]; then mhttp "$method" "$path" "${J[@]}" -d "$body"; else mhttp "$method" "$path"; fi
        assert_http "$code" "$method $path $body" "$needle"
        assert_contains "$HTTP_BODY" '"error"' "$method $path: JSON error"
done <<'TABLE'
POST|/api/v1/health/check/nope||404|no check
POST|/api/v1/incidents|{"title": "x"}|400|severity
POST|/api/v1/incidents|{"title": "x", "severity": "huge"}|400|severity must be
POST|/api/v1/incidents|{"title": "x", "severity": "low", "affected_services": "db"}|400|affected_services
POST|/api/v1/incidents|{"title": "x", "severity": "low", "bogus": 1}|400|bogus
POST|/api/v1/incidents|not json|400|
GET|/api/v1/incidents/INC-999||404|no incident
POST|/api/v1/incidents/INC-999/acknowledge||404|no incident
POST|/api/v1/incidents/INC-1/updates|{"message": "x", "status": "bogus"}|400|status must be
POST|/api/v1/incidents/INC-2/resolve||409|already resolved
GET|/api/v1/incidents?status=weird||400|status must be
POST|/api/v1/runbooks/execute|{"runbook": "nope"}|404|no runbook
POST|/api/v1/runbooks/execute|{"runbook": "backup_failing", "context": {"incident_id": "INC-999"}}|404|no incident
POST|/api/v1/runbooks/execute|{"runbook": "backup_failing", "context": {"incident_id": "x; rm -rf /"}}|400|context.incident_id
GET|/api/v1/runbooks/executions/abc||400|number
GET|/api/v1/runbooks/executions/999||404|no runbook execution
POST|/api/v1/alerts/silences|{"alert": "nope", "duration": "1h"}|404|no alert rule
POST|/api/v1/alerts/silences|{"alert": "backupd_down", "duration": "soon"}|400|duration
DELETE|/api/v1/alerts/silences/77||404|no silence
GET|/api/v1/alerts/active?pending=maybe||400|pending
GET|/api/v1/reports/compliance?from=yesterday||400|from must be
GET|/api/v1/reports/compliance?from=2025-02-01&to=2025-01-01||400|after
GET|/api/v1/reports/compliance?format=pdf||400|format
POST|/api/v1/test/alert|{"nope": 1}|400|nope
TABLE
mhttp GET /health
assert_http 200 "still serving after bad requests"

# bad configuration: one clear line naming the file and line
printf '[check.x]\ntype = metric\nservice = nowhere\n' >"$T/bad.conf"
run "$TM_BIN/tidemark-monitord" -c "$T/bad.conf" --check-config
assert_rc 2 "bad config"
assert_contains "$RUN_ERR" "bad.conf:3: no [service.nowhere]" "bad config message"

kill -TERM "$MON_PID"
wait "$MON_PID" || fail "monitord did not stop cleanly"
pass
