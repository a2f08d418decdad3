#!/usr/bin/env bash
# Automated failover against a real PostgreSQL 15 primary + streaming
# standby + pgbouncer: with [failover] automatic = on, kill -9 of the
# primary under a steady write load through pgbouncer gets the standby
# promoted (after failure_threshold failed checks, and only because the
# standby also lost its WAL stream), traffic switched by the pgbouncer hook,
# the RTO and RPO measured and reported (job, status, metrics), and a client
# writes through pgbouncer again. Then failback: pg_rewind of the killed
# primary (crash recovery first), re-attached as a standby, switched back:
# the original topology with no acknowledged row lost.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
. "$(dirname "$0")/failover_env.bash"

fo_cluster
fo_start "automatic = on
failure_threshold = 2"

api GET /api/v1/status
[[ $(jq_ "$BODY" 'd["automatic_failover"]["enabled"]') == True ]] || fail "automatic is off: $BODY"

load_start 1
sleep 2
# the standby must be streaming for the kill to be seen by both
[[ $(psql_at "$P_BETA" -c "SELECT status FROM pg_stat_wal_receiver") == streaming ]] ||
        fail "beta is not streaming"
pid=$(head -1 "$T/alpha/postmaster.pid")
n0=$(wc -l <"$T/acked")
t0=$(date +%s.%N)
kill -9 "$pid"
log "killed alpha's postmaster ($pid) after $n0 acknowledged rows"
# the first acknowledged write after the kill, through pgbouncer
rto=""
for _ in $(seq 1 600); do
        if (($(wc -l <"$T/acked") > n0)); then
                rto=$(python3 -c "import time,sys; print('%.2f' % (time.time() - float(sys.argv[1])))" "$t0")
                break
        fi
        sleep 0.05
done
[[ -n $rto ]] || fail "no write succeeded through pgbouncer within 30 s: $(tail -20 "$T/failoverd.log")"
log "kill -9 to the first write through pgbouncer: $rto s"
sleep 1
load_stop
[[ $(pgb -c "SELECT inet_server_port()") == "$P_BETA" ]] || fail "pgbouncer does not reach beta"
[[ $(psql_at "$P_BETA" -c "SELECT pg_is_in_recovery()") == f ]] || fail "beta was not promoted"
check_no_loss "$P_BETA" "after the automated failover"

api GET /api/v1/status
[[ $(jq_ "$BODY" 'd["active_site"]') == beta ]] || fail "active site is not beta: $BODY"
lf=$(jq_ "$BODY" 'd["last_failover"]')
[[ $(jq_ "$BODY" 'd["last_failover"]["trigger"]') == automatic ]] || fail "not automatic: $lf"
[[ $(jq_ "$BODY" 'd["last_failover"]["type"]') == unplanned ]] || fail "not unplanned: $lf"
[[ $(jq_ "$BODY" 'd["last_failover"]["traffic_switched"]') == True ]] || fail "traffic not switched: $lf"
[[ $(jq_ "$BODY" '"rpo_bytes" in d["last_failover"] and "rpo_seconds" in d["last_failover"]') == True ]] ||
        fail "no RPO: $lf"
rto_rep=$(jq_ "$BODY" 'd["last_failover"]["rto_seconds"]')
python3 -c "import sys; r=float(sys.argv[1]); sys.exit(0 if 0 < r < 30 else 1)" "$rto_rep" ||
        fail "reported RTO $rto_rep s is not plausible"
[[ $(jq_ "$BODY" '[t["rto_met"] for t in d["tiers"] if t["database"]]') == "[True]" ]] ||
        fail "the critical tier's RTO is not met: $BODY"
log "reported: rto $rto_rep s, rpo $(jq_ "$BODY" 'd["last_failover"]["rpo_seconds"]') s / $(jq_ "$BODY" 'd["last_failover"]["rpo_bytes"]') bytes"
job=$(jq_ "$BODY" 'd["last_failover"]["job_id"]')
api GET "/api/v1/jobs/$job"
[[ $(jq_ "$BODY" '[s["step"] for s in d["steps"]]') == "['check-sites', 'fence', 'promote', 'checkpoint', 'switch-traffic', 'notify']" ]] ||
        fail "unexpected steps: $BODY"
assert_contains "$BODY" "confirmed it gone" "the fence step names the standby's confirmation"
curl -sf "$API/metrics" >"$T/metrics.txt" || fail "metrics"
grep -q '^dr_rto_seconds{tier="critical",kind="measured"} [0-9]' "$T/metrics.txt" || fail "no measured RTO metric"
grep -q '^dr_rpo_seconds{tier="critical",kind="measured"} [0-9]' "$T/metrics.txt" || fail "no measured RPO metric"
grep -q '^dr_failover_duration_seconds [0-9]' "$T/metrics.txt" || fail "no duration metric"

# ---------------------------------------------------------- failback with pg_rewind
load_start 100000
sleep 1
api POST /api/v1/failback '{"reason": "primary_site_restored"}'
expect_code 202 "failback"
wait_job "$(jq_ "$BODY" 'd["job_id"]')" 120
[[ $(jq_ "$JOB" 'd["state"]') == succeeded ]] || fail "failback failed: $JOB"
[[ $(jq_ "$JOB" '[s["state"] for s in d["steps"] if s["step"] == "rewind"][0]') == succeeded ]] || fail "the failback did not rewind: $JOB"
n0=$(wc -l <"$T/acked")
for _ in $(seq 1 100); do (($(wc -l <"$T/acked") > n0 + 20)) && break; sleep 0.1; done
load_stop
[[ $(pgb -c "SELECT inet_server_port()") == "$P_ALPHA" ]] || fail "pgbouncer does not reach alpha"
[[ $(psql_at "$P_ALPHA" -c "SELECT pg_is_in_recovery()") == f ]] || fail "alpha is not the primary"
check_no_loss "$P_ALPHA" "after the failback"
[[ $(psql_at "$P_ALPHA" -c "SELECT count(*) FROM t WHERE site_port = $P_BETA") -gt 0 ]] ||
        fail "the rows written on beta are not on alpha"
psql_at "$P_ALPHA" -c "INSERT INTO t (id) VALUES (-1)"
for _ in $(seq 1 50); do
        [[ $(psql_at "$P_BETA" -c "SELECT count(*) FROM t WHERE id = -1" 2>/dev/null) == 1 ]] && break
        sleep 0.1
done
[[ $(psql_at "$P_BETA" -c "SELECT count(*) FROM t WHERE id = -1") == 1 ]] || fail "beta does not follow alpha"
api GET /api/v1/status
[[ $(jq_ "$BODY" 'd["active_site"]') == alpha ]] || fail "active site is not alpha: $BODY"
fo_stop
pass
