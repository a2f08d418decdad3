#!/usr/bin/env bash
# tidemark-failoverd against a real PostgreSQL 15 primary + streaming standby
# + pgbouncer: bad requests get a 4xx with the reason and the daemon keeps
# serving; a planned switchover under a steady write load through pgbouncer
# loses no acknowledged row, and clients write to the new primary after it;
# a second failover while one runs gets 409; the metrics parse; failback
# returns the original topology with every row; the dry-run drill passes
# with the standby up and reports it as a failed precondition once it is
# gone.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
. "$(dirname "$0")/failover_env.bash"

fo_cluster
# a notify hook that takes its time keeps the job running long enough to
# send a second failover into it
fo_start "" "[hook.notify]
command = sleep 3"

api GET /health
expect_code 200 "health"
api GET /api/v1/status
expect_code 200 "status"
[[ $(jq_ "$BODY" 'd["active_site"]') == alpha ]] || fail "active site is not alpha: $BODY"
[[ $(jq_ "$BODY" '[s["role"] for s in d["sites"]]') == "['primary', 'standby']" ]] || fail "roles: $BODY"
[[ $(jq_ "$BODY" '[t["rto_target_seconds"] for t in d["tiers"]]') == "[1800.0, 3600.0, 14400.0, 28800.0]" ]] ||
        fail "tier targets are not the spec's: $BODY"
api GET /api/v1/replication/status
expect_code 200 "replication status"
[[ $(jq_ "$BODY" 'd["receivers"][0]["state"]') == streaming ]] || fail "beta is not streaming: $BODY"
[[ $(jq_ "$BODY" 'len(d["senders"])') == 1 ]] || fail "alpha has no sender: $BODY"

# ---------------------------------------------------------- bad requests
api POST /api/v1/failover '{"target_site": "gamma", "reason": "x"}'
expect_code 404 "failover to an unknown site"
assert_contains "$BODY" "unknown site 'gamma'" "unknown site"
api POST /api/v1/failover '{"target_site": "alpha", "reason": "x"}'
expect_code 400 "failover to the current primary"
assert_contains "$BODY" "already the primary" "current primary"
api POST /api/v1/failover '{"target": "beta"}'
expect_code 400 "failover without target_site"
api POST /api/v1/failover '{"target_site": "beta"'
expect_code 400 "malformed JSON"
api POST /api/v1/failback '{"reason": "x"}'
expect_code 409 "failback while on the original site"
api POST /api/v1/test/failover '{"scope": "everything", "dry_run": true}'
expect_code 400 "unknown drill scope"
api GET /api/v1/jobs/999
expect_code 404 "unknown job"

# ---------------------------------------------------------- dry run, standby up
api POST /api/v1/test/failover '{"scope": "database_failover", "dry_run": true}'
expect_code 200 "dry run"
[[ $(jq_ "$BODY" 'd["ready"]') == True ]] || fail "dry run with a healthy standby is not ready: $BODY"
[[ -s $T/state/drill-latest.json ]] || fail "no stored drill report"

# ---------------------------------------------------------- planned switchover
load_start 1
sleep 1.5
api POST /api/v1/failover '{"target_site": "beta", "reason": "planned_maintenance"}'
expect_code 202 "planned failover"
job=$(jq_ "$BODY" 'd["job_id"]')
api POST /api/v1/failover '{"target_site": "beta", "reason": "again"}'
expect_code 409 "a second failover while one runs"
wait_job "$job"
[[ $(jq_ "$JOB" 'd["state"]') == succeeded ]] || fail "switchover failed: $JOB"
[[ $(jq_ "$JOB" 'd["outcome"]["type"]') == planned ]] || fail "not planned: $JOB"
[[ $(jq_ "$JOB" 'd["outcome"]["rpo_bytes"]') == 0 ]] || fail "a planned switchover lost data: $JOB"
[[ $(jq_ "$JOB" '[s["step"] for s in d["steps"]]') == "['check-sites', 'fence', 'stop-old-primary', 'wait-replay', 'promote', 'checkpoint', 'switch-traffic', 'notify']" ]] ||
        fail "unexpected steps: $JOB"
log "switchover took $(jq_ "$JOB" 'd["outcome"]["duration_seconds"]') s"
# writes resume through pgbouncer, on beta
n0=$(wc -l <"$T/acked")
for _ in $(seq 1 100); do (($(wc -l <"$T/acked") > n0 + 20)) && break; sleep 0.1; done
load_stop
(($(wc -l <"$T/acked") > n0 + 20)) || fail "writes through pgbouncer did not resume"
[[ $(pgb -c "SELECT inet_server_port()") == "$P_BETA" ]] || fail "pgbouncer does not reach beta"
check_no_loss "$P_BETA" "after the switchover"
[[ $(psql_at "$P_BETA" -c "SELECT count(*) FROM t WHERE site_port = $P_BETA") -gt 0 ]] ||
        fail "no row was written on beta"
api GET /api/v1/status
[[ $(jq_ "$BODY" 'd["active_site"]') == beta ]] || fail "active site is not beta: $BODY"
[[ $(jq_ "$BODY" 'd["last_failover"]["to_site"]') == beta ]] || fail "no last failover: $BODY"
api POST /api/v1/failover '{"target_site": "beta"}'
expect_code 400 "failover to the new current primary"

# ---------------------------------------------------------- metrics
curl -sf "$API/metrics" >"$T/metrics.txt" || fail "metrics"
for m in dr_failover_duration_seconds 'dr_rto_seconds{tier="critical",kind="measured"}' \
        'dr_rpo_seconds{tier="critical",kind="target"} 300' 'dr_site_up{site="alpha"}'; do
        grep -qF "$m" "$T/metrics.txt" || fail "metric $m missing: $(cat "$T/metrics.txt")"
done
if command -v promtool >/dev/null; then
        promtool check metrics <"$T/metrics.txt" || fail "promtool rejects the metrics"
fi

# ---------------------------------------------------------- failback
load_start 100000
sleep 1
api POST /api/v1/failback '{"reason": "primary_site_restored"}'
expect_code 202 "failback"
wait_job "$(jq_ "$BODY" 'd["job_id"]')"
[[ $(jq_ "$JOB" 'd["state"]') == succeeded ]] || fail "failback failed: $JOB"
n0=$(wc -l <"$T/acked")
for _ in $(seq 1 100); do (($(wc -l <"$T/acked") > n0 + 20)) && break; sleep 0.1; done
load_stop
check_no_loss "$P_ALPHA" "after the failback"
[[ $(pgb -c "SELECT inet_server_port()") == "$P_ALPHA" ]] || fail "pgbouncer does not reach alpha"
[[ $(psql_at "$P_BETA" -c "SELECT pg_is_in_recovery()") == t ]] || fail "beta is not a standby"
for _ in $(seq 1 50); do
        [[ $(psql_at "$P_BETA" -c "SELECT status FROM pg_stat_wal_receiver") == streaming ]] && break
        sleep 0.2
done
[[ $(psql_at "$P_BETA" -c "SELECT status FROM pg_stat_wal_receiver") == streaming ]] ||
        fail "beta does not stream from alpha"
psql_at "$P_ALPHA" -c "INSERT INTO t (id) VALUES (-1)"
for _ in $(seq 1 50); do
        [[ $(psql_at "$P_BETA" -c "SELECT count(*) FROM t WHERE id = -1") == 1 ]] && break
        sleep 0.1
done
[[ $(psql_at "$P_BETA" -c "SELECT count(*) FROM t WHERE id = -1") == 1 ]] || fail "beta does not replay alpha"
check_no_loss "$P_BETA" "the standby after the failback"

# ---------------------------------------------------------- dry run, standby gone
as_pg "$PGBIN/pg_ctl" -D "$T/beta" -m fast -w stop >/dev/null
api POST /api/v1/test/failover '{"scope": "database_failover", "dry_run": true}'
expect_code 200 "dry run without a standby"
[[ $(jq_ "$BODY" 'd["ready"]') == False ]] || fail "dry run without a standby says ready: $BODY"
[[ $(jq_ "$BODY" '[c["ok"] for c in d["checks"] if c["check"] == "standby_reachable"]') == "[False]" ]] ||
        fail "the missing standby is not a failed precondition: $BODY"
api GET /health
expect_code 200 "still serving"
fo_stop
pass
