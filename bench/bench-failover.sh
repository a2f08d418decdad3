#!/usr/bin/env bash
# bench-failover.sh [TRIALS]
#
# The RTO of an unplanned failover (issue 7): from kill -9 of the primary
# to the first successful write through pgbouncer, for tidemark-failoverd
# and for Patroni (Debian's patroni with etcd-server, default settings:
# ttl 30 s, loop_wait 10 s, retry_timeout 10 s), on the same machine, same
# PostgreSQL 15, same pgbouncer and the same pgbouncer hook
# (contrib/hooks/pgbouncer-switch.sh: failoverd's [hook.switch-traffic],
# Patroni's on_role_change callback), in the same run, TRIALS trials each
# (default 20). Everything listens on 127.0.0.1 with free ports.
#
# What "kill -9 of the primary" means for each:
#   tidemark  the primary's postmaster is killed; failoverd (which runs
#             elsewhere, as an orchestrator does) checks every 1 s and
#             promotes after 2 failed checks in a row, and only because the
#             standby lost its WAL stream too ([failover] check_interval =
#             1s, failure_threshold = 2, automatic = on).
#   Patroni   the primary node's Patroni agent and postmaster are both
#             killed (the node is gone: with its agent alive, Patroni would
#             restart PostgreSQL in place instead of failing over).
# A client writes one row per transaction through pgbouncer every 20 ms;
# the RTO is the time from the kill to its first acknowledged write.
# After each trial: exactly one writable primary among the running servers
# (no split brain) and no acknowledged row lost; then the topology is
# restored (tidemark: POST /api/v1/failback, which pg_rewinds the killed
# primary; Patroni: the agent restarts on the killed node and rejoins with
# pg_rewind) for the next trial.
#
# BENCH_SYSTEMS="tidemark patroni" (the default) picks what runs.
# Needs root (PostgreSQL runs as postgres), the tidemark build
# (TM_BIN, default ./build/bin), patroni, etcd, pgbouncer.
# Prints a table; writes $OUT/results.json (OUT default
# ${TMPDIR:-/tmp}/tidemark-bench-failover-<time>).
set -euo pipefail
TRIALS=${1:-20}
SRC=$(cd "$(dirname "$0")/.." && pwd)
export TM_SRC=$SRC TM_BIN=${TM_BIN:-$SRC/build/bin}
OUT=${OUT:-${TMPDIR:-/tmp}/tidemark-bench-failover-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$OUT"
command -v patroni >/dev/null || { echo "no patroni" >&2; exit 1; }
command -v etcd >/dev/null || { echo "no etcd" >&2; exit 1; }

# the integration tests' cluster helpers (fail/log/on_exit, alpha + beta,
# pgbouncer, the daemon, the write load)
. "$SRC/tests/integration/lib.sh"
TM_NAME=bench-failover
tm_setup
. "$SRC/tests/integration/failover_env.bash"
log "results in $OUT, work dir $T"

elapsed_since() { python3 -c "import time,sys; print('%.3f' % (time.time() - float(sys.argv[1])))" "$1"; }

# wait_first_ack N0 T0: seconds from T0 to the first ack after N0, or "timeout"
wait_first_ack() {
        local i
        for ((i = 0; i < 2400; i++)); do
                if (($(wc -l <"$T/acked") > $1)); then
                        elapsed_since "$2"
                        return 0
                fi
                sleep 0.025
        done
        echo timeout
}

# primaries PORT...: how many of the running servers are writable
primaries() {
        local n=0 p
        for p in "$@"; do
                [[ $(psql_at "$p" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]] && n=$((n + 1))
        done
        echo "$n"
}

# ================================================================ tidemark
declare -a TM_RTO=() TM_REPORTED=() PA_RTO=()
TM_SPLIT=0 PA_SPLIT=0 TM_LOST=0 PA_LOST=0
SYSTEMS=${BENCH_SYSTEMS:-tidemark patroni}
tm_trials=$TRIALS
[[ " $SYSTEMS " == *" tidemark "* ]] || tm_trials=0
if ((tm_trials)); then
        fo_cluster
        fo_start "automatic = on
failure_threshold = 2"
fi
next=1
for ((trial = 1; trial <= tm_trials; trial++)); do
        load_start "$next"
        sleep 1.5
        n0=$(wc -l <"$T/acked")
        pid=$(head -1 "$T/alpha/postmaster.pid")
        t0=$(date +%s.%N)
        kill -9 "$pid"
        rto=$(wait_first_ack "$n0" "$t0")
        sleep 0.5
        load_stop
        next=$(($(tail -1 "$T/acked") + 1000))
        # exactly one primary among the running servers, alpha dead
        np=$(primaries "$P_ALPHA" "$P_BETA")
        [[ $np == 1 ]] || TM_SPLIT=$((TM_SPLIT + 1))
        if ! psql_at "$P_BETA" -c "SELECT id FROM t" | LC_ALL=C sort >"$T/have" ||
                [[ -n $(LC_ALL=C sort "$T/acked" | LC_ALL=C comm -23 - "$T/have" | head -1) ]]; then
                TM_LOST=$((TM_LOST + 1))
        fi
        api GET /api/v1/status
        rep=$(jq_ "$BODY" 'd["last_failover"]["rto_seconds"]' 2>/dev/null || echo "?")
        TM_RTO+=("$rto")
        TM_REPORTED+=("$rep")
        log "tidemark trial $trial: kill -9 -> first write $rto s (failoverd reports RTO $rep s), primaries $np"
        api POST /api/v1/failback '{"reason": "bench"}'
        [[ $CODE == 202 ]] || fail "failback: $CODE $BODY"
        wait_job "$(jq_ "$BODY" 'd["job_id"]')" 180
        [[ $(jq_ "$JOB" 'd["state"]') == succeeded ]] || fail "failback failed: $JOB"
        # the daemon must see alpha as primary again before the next kill
        for _ in $(seq 1 50); do
                api GET /api/v1/status
                [[ $(jq_ "$BODY" 'd["active_site"]') == alpha &&
                        $(jq_ "$BODY" '[s["wal_receiver"] for s in d["sites"] if s["name"] == "beta"]') == "['streaming']" ]] && break
                sleep 0.2
        done
done
if ((tm_trials)); then
        fo_stop
        as_pg "$PGBIN/pg_ctl" -D "$T/alpha" -m immediate stop >/dev/null 2>&1 || true
        as_pg "$PGBIN/pg_ctl" -D "$T/beta" -m immediate stop >/dev/null 2>&1 || true
        kill "$(cat "$T/pgb/pgbouncer.pid")" 2>/dev/null || true
        sleep 1
fi
pa_trials=$TRIALS
[[ " $SYSTEMS " == *" patroni "* ]] || pa_trials=0

# ================================================================ Patroni
if ((pa_trials)); then
chown postgres: "$T"
chmod 755 "$T"
P=$T/patroni
as_pg mkdir -p "$P"
ETCD_C=$(free_port)
ETCD_P=$(free_port)
etcd --name bench --data-dir "$P/etcd" --listen-client-urls "http://127.0.0.1:$ETCD_C" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_C" --listen-peer-urls "http://127.0.0.1:$ETCD_P" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_P" \
        --initial-cluster "bench=http://127.0.0.1:$ETCD_P" >"$P/etcd.log" 2>&1 &
ETCD_PID=$!
on_exit "kill $ETCD_PID"
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$ETCD_C/health" >/dev/null && break; sleep 0.1; done

# pgbouncer again (same settings), pointing nowhere until a leader's
# callback points it there with the same hook
PGB_PORT=$(free_port)
chown postgres: "$T"
as_pg mkdir -p "$T/pgb"
printf '"postgres" ""\n' | as_pg tee "$T/pgb/users.txt" >/dev/null
as_pg tee "$T/pgb/pgbouncer.ini" >/dev/null <<EOC
[databases]
app = host=127.0.0.1 port=1 dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PGB_PORT
unix_socket_dir =
auth_type = trust
auth_file = $T/pgb/users.txt
admin_users = postgres
pool_mode = transaction
server_connect_timeout = 2
server_login_retry = 1
query_wait_timeout = 10
pidfile = $T/pgb/pgbouncer.pid
logfile = $T/pgb/pgbouncer.log
EOC
cat >"$T/switch.sh" <<EOC
#!/bin/sh
export PGBOUNCER_INI='$T/pgb/pgbouncer.ini' PGBOUNCER_DATABASE=app
export PGBOUNCER_ADMIN='host=127.0.0.1 port=$PGB_PORT user=postgres dbname=pgbouncer'
exec '$TM_SRC/contrib/hooks/pgbouncer-switch.sh'
EOC
chmod 755 "$T/switch.sh"
as_pg pgbouncer -d "$T/pgb/pgbouncer.ini" >/dev/null 2>&1 || fail "pgbouncer did not start"
on_exit "kill \$(cat '$T/pgb/pgbouncer.pid')"

declare -A PG_PORT REST_PORT
for n in node0 node1; do
        PG_PORT[$n]=$(free_port)
        REST_PORT[$n]=$(free_port)
        as_pg tee "$P/$n-callback.sh" >/dev/null <<EOC
#!/bin/sh
# Patroni on_role_change / on_start: ACTION ROLE SCOPE
case "\$2" in master | primary)
        export TM_DR_NEW_PRIMARY_HOST=127.0.0.1 TM_DR_NEW_PRIMARY_PORT=${PG_PORT[$n]}
        exec '$T/switch.sh' ;;
esac
EOC
        chmod 755 "$P/$n-callback.sh"
        as_pg tee "$P/$n.yml" >/dev/null <<EOC
scope: bench
name: $n
restapi:
  listen: 127.0.0.1:${REST_PORT[$n]}
  connect_address: 127.0.0.1:${REST_PORT[$n]}
etcd3:
  hosts: 127.0.0.1:$ETCD_C
bootstrap:
  dcs:
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_log_hints: 'on'
        wal_keep_size: 256MB
        fsync: 'off'
  initdb:
  - encoding: UTF8
  - data-checksums
  pg_hba:
  - host replication all 127.0.0.1/32 trust
  - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:${PG_PORT[$n]}
  connect_address: 127.0.0.1:${PG_PORT[$n]}
  data_dir: $P/$n
  bin_dir: $PGBIN
  pgpass: $P/$n.pgpass
  authentication:
    replication:
      username: postgres
    superuser:
      username: postgres
    rewind:
      username: postgres
  parameters:
    unix_socket_directories: '$P'
  callbacks:
    on_role_change: $P/$n-callback.sh
    on_start: $P/$n-callback.sh
EOC
done
pa_start() {
        as_pg sh -c 'echo $$ >"$1"; exec /usr/bin/patroni "$2"' sh "$P/$1.pid" "$P/$1.yml" \
                >>"$P/$1.log" 2>&1 &
        on_exit "kill -9 \$(cat '$P/$1.pid') 2>/dev/null; runuser -u postgres -- '$PGBIN/pg_ctl' -D '$P/$1' -m immediate stop"
}
# role N: primary, replica or down (Patroni's REST API)
role() {
        if curl -sf -o /dev/null "http://127.0.0.1:${REST_PORT[$1]}/primary"; then echo primary
        elif curl -sf -o /dev/null "http://127.0.0.1:${REST_PORT[$1]}/replica"; then echo replica
        else echo down; fi
}
pa_start node0
for _ in $(seq 1 300); do [[ $(role node0) == primary ]] && break; sleep 0.2; done
[[ $(role node0) == primary ]] || fail "patroni node0 did not become the leader: $(tail -5 "$P/node0.log")"
pa_start node1
for _ in $(seq 1 600); do [[ $(role node1) == replica ]] && break; sleep 0.2; done
[[ $(role node1) == replica ]] || fail "patroni node1 did not become a replica: $(tail -5 "$P/node1.log")"
psql_at "${PG_PORT[node0]}" -c "CREATE TABLE t (id bigint PRIMARY KEY, site_port int NOT NULL DEFAULT inet_server_port())"
leader=node0 other=node1
next=1
for ((trial = 1; trial <= TRIALS; trial++)); do
        # a healthy pair, pgbouncer on the leader, the replica streaming
        for _ in $(seq 1 600); do
                [[ $(role "$leader") == primary && $(role "$other") == replica &&
                        $(pgb -c "SELECT inet_server_port()" 2>/dev/null) == "${PG_PORT[$leader]}" &&
                        $(psql_at "${PG_PORT[$other]}" -c "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null) == streaming ]] && break
                sleep 0.2
        done
        load_start "$next"
        sleep 1.5
        n0=$(wc -l <"$T/acked")
        ppid=$(cat "$P/$leader.pid")
        pgpid=$(head -1 "$P/$leader/postmaster.pid")
        t0=$(date +%s.%N)
        kill -9 "$ppid" "$pgpid"
        rto=$(wait_first_ack "$n0" "$t0")
        sleep 0.5
        load_stop
        next=$(($(tail -1 "$T/acked") + 1000))
        np=$(primaries "${PG_PORT[node0]}" "${PG_PORT[node1]}")
        [[ $np == 1 ]] || PA_SPLIT=$((PA_SPLIT + 1))
        if ! psql_at "${PG_PORT[$other]}" -c "SELECT id FROM t" | LC_ALL=C sort >"$T/have" ||
                [[ -n $(LC_ALL=C sort "$T/acked" | LC_ALL=C comm -23 - "$T/have" | head -1) ]]; then
                PA_LOST=$((PA_LOST + 1))
        fi
        PA_RTO+=("$rto")
        log "patroni trial $trial: kill -9 -> first write $rto s, primaries $np"
        # the killed node's postmaster children may linger a moment
        sleep 1
        pa_start "$leader"
        tmp=$leader leader=$other other=$tmp
done
fi

# ================================================================ report
python3 - "$OUT/results.json" "$TRIALS" "$TM_SPLIT" "$PA_SPLIT" "$TM_LOST" "$PA_LOST" \
        "${TM_RTO[*]}" "${TM_REPORTED[*]}" "${PA_RTO[*]}" <<'PY'
import json, statistics, sys
out, trials, tms, pas, tml, pal = sys.argv[1], *map(int, sys.argv[2:7])
def nums(s):
    return [float(x) if x not in ("timeout", "?") else None for x in s.split()]
tm, tmrep, pa = nums(sys.argv[7]), nums(sys.argv[8]), nums(sys.argv[9])
def stats(a):
    v = sorted(x for x in a if x is not None)
    if not v:
        return {"n": 0}
    return {"n": len(v), "timeouts": len(a) - len(v), "min": v[0], "median": statistics.median(v),
            "mean": statistics.mean(v), "p90": v[min(len(v) - 1, int(0.9 * len(v)))], "max": v[-1]}
r = {"trials": trials, "tidemark": {"rto": stats(tm), "reported_rto": stats(tmrep), "split_brain": tms,
     "trials_losing_acked_rows": tml, "samples": tm},
     "patroni": {"rto": stats(pa), "split_brain": pas, "trials_losing_acked_rows": pal, "samples": pa}}
if r["tidemark"]["rto"].get("median") and r["patroni"]["rto"].get("median"):
    r["ratio_median"] = r["tidemark"]["rto"]["median"] / r["patroni"]["rto"]["median"]
json.dump(r, open(out, "w"), indent=1)
print("\nRTO of an unplanned failover, kill -9 of the primary -> first write through pgbouncer (s)")
print("%-10s %5s %7s %7s %7s %7s %7s %12s %10s" % ("", "n", "min", "median", "mean", "p90", "max", "split brain", "lost rows"))
for name, s, sb, lost in (("tidemark", r["tidemark"]["rto"], tms, tml), ("patroni", r["patroni"]["rto"], pas, pal)):
    if s["n"]:
        print("%-10s %5d %7.2f %7.2f %7.2f %7.2f %7.2f %12d %10d" % (name, s["n"], s["min"], s["median"], s["mean"], s["p90"], s["max"], sb, lost))
if "ratio_median" in r:
    print("tidemark / patroni (median): %.3f (target <= 0.333)" % r["ratio_median"])
PY
pass
