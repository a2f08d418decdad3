#!/usr/bin/env bash
# tidemark-failoverd on the embedded default: a local repository and no
# [site.NAME] at all (no PostgreSQL replication). It starts, says once that
# failover is disabled for lack of sites, and serves what needs no site:
# /health, /metrics (promtool-clean), /api/v1/status (no sites, the tiers'
# targets), the recovery timeline and a real point-in-time recovery of a
# files component from the repository, a dry-run drill that reports the
# missing standby as a failed precondition. Failover and failback answer a
# 400 that says no sites are configured. SIGTERM stops it with status 0.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init
command -v curl >/dev/null || skip "curl missing"
FOD="$TM_BIN/tidemark-failoverd"
[[ -x $FOD ]] || skip "no tidemark-failoverd at $TM_BIN"

# two backups of a files component, an instant between them
mkdir -p "$T/plugins/auth"
printf 'version = 1\n' >"$T/plugins/auth/plugin.toml"
run tm backup --component plugins "$T/plugins"
assert_rc 0 "first backup"
sleep 1.1
BETWEEN=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
sleep 1.1
printf 'version = 2\n' >"$T/plugins/auth/plugin.toml"
run tm backup --component plugins "$T/plugins"
assert_rc 0 "second backup"

cat >"$T/failoverd.conf" <<CONF
[repository]
location = $TIDEMARK_REPOSITORY
[failover]
state_dir = $T/fstate
[server]
access_log = none
CONF

run "$FOD" -c "$T/failoverd.conf" --check-config
assert_rc 0 "--check-config"
assert_contains "$RUN_OUT" "(0 sites)" "--check-config"

"$FOD" -c "$T/failoverd.conf" --listen 127.0.0.1:0 --port-file "$T/fod.port" 2>"$T/fod.log" &
FOD_PID=$!
on_exit "kill -9 $FOD_PID"
for ((i = 0; i < 200; i++)); do
        [[ -s $T/fod.port ]] && break
        kill -0 "$FOD_PID" 2>/dev/null || { tail -n 20 "$T/fod.log" >&2; fail "failoverd died at start"; }
        sleep 0.05
done
[[ -s $T/fod.port ]] || fail "failoverd did not start listening"
# the http helpers of lib.sh talk to $BKD_URL
BKD_URL="http://127.0.0.1:$(cat "$T/fod.port")"
log "failoverd pid $FOD_PID on $BKD_URL"

n=$(grep -c 'no \[site.NAME\] section: failover and failback are disabled' "$T/fod.log" || true)
[[ $n == 1 ]] || { cat "$T/fod.log" >&2; fail "expected one start-up line saying failover is disabled, got $n"; }

http GET /health
assert_http 200 "/health"
[[ $(json_get 'd["status"], d["active_site"], d["checks"]["primary"]' <<<"$HTTP_BODY") == "('healthy', None, 'no_sites')" ]] ||
        fail "/health without sites: $HTTP_BODY"

http GET /metrics
assert_http 200 "/metrics" 'dr_rto_seconds{tier="critical",kind="target"} 1800'
assert_contains "$HTTP_BODY" 'dr_rpo_seconds{tier="critical",kind="target"} 300' "/metrics"
if command -v promtool >/dev/null; then
        printf '%s\n' "$HTTP_BODY" | promtool check metrics >"$T/promtool.out" 2>&1 ||
                { cat "$T/promtool.out" >&2; fail "promtool check metrics on failoverd's /metrics"; }
fi

http GET /api/v1/status
assert_http 200 "/api/v1/status"
got=$(json_get '(d["active_site"], d["sites"], d["failover_running"], sorted((t["tier"], t["rto_target_seconds"], t["rpo_target_seconds"]) for t in d["tiers"]))' <<<"$HTTP_BODY")
want="(None, [], False, [('critical', 1800.0, 300.0), ('development', 28800.0, 14400.0), ('high', 3600.0, 900.0), ('standard', 14400.0, 3600.0)])"
[[ $got == "$want" ]] || fail "/api/v1/status without sites: got $got, want $want"

http GET /api/v1/replication/status
assert_http 200 "/api/v1/replication/status"

http GET /api/v1/recovery/timeline
assert_http 200 "/api/v1/recovery/timeline"
n=$(json_get 'len(d["components"]["plugins"]["points"])' <<<"$HTTP_BODY") ||
        fail "timeline without the plugins component: $HTTP_BODY"
[[ $n == 2 ]] || fail "timeline lists $n backups of plugins, expected 2: $HTTP_BODY"

# a real recovery from the repository: the instant between the backups
# gives the first one's file
http POST /api/v1/recovery/point-in-time -H 'Content-Type: application/json' \
        -d "{\"target_timestamp\": \"$BETWEEN\", \"components\": [\"plugins\"], \"destination\": \"$T/pitr\"}"
assert_http 200 "point-in-time recovery without sites"
f=$(find "$T/pitr" -name plugin.toml -path '*auth*' | head -n 1)
[[ -n $f && $(cat "$f") == "version = 1" ]] || fail "the recovery to $BETWEEN did not restore version 1 ($f): $HTTP_BODY"
http POST /api/v1/recovery/point-in-time -H 'Content-Type: application/json' \
        -d "{\"target_timestamp\": \"yesterday\", \"destination\": \"$T/pitr2\"}"
assert_http 400 "malformed target_timestamp" "malformed target_timestamp"

http POST /api/v1/test/failover -H 'Content-Type: application/json' -d '{"dry_run": true}'
assert_http 200 "dry-run drill without sites"
got=$(json_get '(d["ready"], d["standby_site"], [c["ok"] for c in d["checks"] if c["check"] == "standby_configured"])' <<<"$HTTP_BODY")
[[ $got == "(False, None, [False])" ]] || fail "the drill should report the missing standby as a failed precondition: $HTTP_BODY"

http POST /api/v1/failover -H 'Content-Type: application/json' -d '{"target_site": "beta"}'
assert_http 400 "failover without sites" "no sites configured"
http POST /api/v1/failback
assert_http 400 "failback without sites" "no sites configured"

kill -TERM "$FOD_PID"
rc=0
wait "$FOD_PID" || rc=$?
[[ $rc == 0 ]] || fail "failoverd exited $rc on SIGTERM"
pass
