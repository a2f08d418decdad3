#!/usr/bin/env bash
# bench-failover.sh [TRIALS]
#
# The RTO of an unplanned failover (issue 7): from kill -9 of the primary
# to the first successful write through pgbouncer, for tidemark-failoverd
# and for Patroni (Debian's patroni with etcd-server, default timing:
# ttl 30 s, loop_wait 10 s, retry_timeout 10 s), on the same machine, same
# PostgreSQL 15, same pgbouncer and the same pgbouncer hook
# (contrib/hooks/pgbouncer-switch.sh), in the same run, TRIALS trials each
# (default 20). Everything listens on 127.0.0.1 with free ports.
#
# How traffic follows the primary (part of the measured path, and the
# same mechanism class for both): an event hook run by the HA software
# right after it promotes, which rewrites pgbouncer's [databases] line and
# sends RELOAD + RECONNECT. tidemark: [hook.switch-traffic]. Patroni:
# postgresql.callbacks.on_role_change (Patroni runs it right after
# `pg_ctl promote -W`, without waiting for it), the usual way a Patroni
# site without a proxy moves pgbouncer. No polling by the harness.
#
# What "kill -9 of the primary" means for each:
#   tidemark  the primary's postmaster is killed; failoverd (which runs
#             elsewhere, as an orchestrator does) checks every 1 s and
#             promotes after 2 failed checks in a row, and only because the
#             standby lost its WAL stream too ([failover] check_interval =
#             1s, failure_threshold = 2, automatic = on).
#   Patroni   before every trial the harness asks Patroni's REST API
#             (GET /cluster on every member; they must agree) which member
#             is the leader, then kills exactly that member's postmaster
#             and its Patroni agent (the node is gone: with its agent
#             alive, Patroni restarts PostgreSQL in place instead of
#             failing over, which is not the failover measured here).
#             After the last trial the harness still waits for the killed
#             node's rejoin, so every trial's split brain check covers it.
# A client writes one row per transaction through pgbouncer every 20 ms
# (INSERT ... RETURNING the server's port); the RTO is the time from the
# kill to the first acknowledged write that the new primary executed.
# Split brain: the number of servers where pg_is_in_recovery() is false,
# checked after the first write and at every poll while the killed node
# rejoins; more than 1 at any of them counts. Lost rows: any acknowledged
# id missing on the new primary.
# Between trials the killed node comes back as a standby (tidemark: POST
# /api/v1/failback, which pg_rewinds it and switches back; Patroni: its
# agent restarts and rejoins with pg_rewind, use_pg_rewind = true, its
# only non-default setting besides the bench's fsync = off), and the next
# trial starts only once the pair is healthy: one primary, the other
# streaming, pgbouncer on the primary (and for Patroni, /cluster showing
# one leader and one running replica). A pair that does not get healthy
# ends that system's trials early, and the table says how many ran.
#
# BENCH_SYSTEMS="tidemark patroni" (the default) picks what runs.
# BENCH_TM_FAILOVER replaces failoverd's extra [failover] lines (default
# "automatic = on" alone: failoverd's own defaults, check_interval = 1s and
# failure_threshold = 3; check_interval = 1s comes before them, a later
# line wins). The first 20-trial runs used "failure_threshold = 2", and one
# with the old defaults BENCH_TM_FAILOVER=$'automatic = on\ncheck_interval = 5s'.
# Needs root (PostgreSQL runs as postgres), the tidemark build
# (TM_BIN, default ./build/bin), patroni, etcd, pgbouncer.
# Prints a table; writes $OUT/results.json, $OUT/trials.tsv and the
# daemons' logs (OUT default ${TMPDIR:-/tmp}/tidemark-bench-failover-<time>).
set -euo pipefail
TRIALS=${1:-20}
SRC=$(cd "$(dirname "$0")/.." && pwd)
export TM_SRC=$SRC TM_BIN=${TM_BIN:-$SRC/build/bin}
OUT=${OUT:-${TMPDIR:-/tmp}/tidemark-bench-failover-$(date -u +%Y%m%dT%H%M%S)}
mkdir -p "$OUT"
command -v patroni >/dev/null || { echo "no patroni" >&2; exit 1; }
command -v etcd >/dev/null || { echo "no etcd" >&2; exit 1; }

# the integration tests' cluster helpers (fail/log/on_exit, alpha + beta,
# pgbouncer, the daemon)
. "$SRC/tests/integration/lib.sh"
TM_NAME=bench-failover
tm_setup
. "$SRC/tests/integration/failover_env.bash"
log "results in $OUT, work dir $T"
printf 'system\ttrial\tkilled\tnew_primary\trto_s\treported_rto_s\tprimaries_after\tsplit\tlost\tload1\n' >"$OUT/trials.tsv"
on_exit "cp -r '$T/failoverd.log' '$T/pgb' '$T/patroni' '$OUT/' 2>/dev/null; rm -rf '$OUT/patroni/node0' '$OUT/patroni/node1' '$OUT/patroni/etcd'"

load1() { cut -d' ' -f1 /proc/loadavg; }

# The write load: one row per transaction through pgbouncer. $T/acked
# gets each acknowledged id (for the loss check), $T/acked.ts
# "id server_port ack_time" (for the RTO).
bload_start() {
        rm -f "$T/stop"
        : >"$T/acked"
        : >"$T/acked.ts"
        (
                i=$1
                while [[ ! -e $T/stop ]]; do
                        if port=$(pgb -c "INSERT INTO t (id) VALUES ($i) RETURNING site_port" 2>/dev/null); then
                                echo "$i" >>"$T/acked"
                                echo "$i $port $EPOCHREALTIME" >>"$T/acked.ts"
                        fi
                        i=$((i + 1))
                        sleep 0.02
                done
        ) &
        LOAD_PID=$!
        on_exit "touch '$T/stop'; kill $LOAD_PID 2>/dev/null"
}
bload_stop() {
        touch "$T/stop"
        wait "$LOAD_PID" || true
}

# wait_new_primary_ack PORT T0 [SECONDS]: seconds from T0 to the first
# write acknowledged after T0 by the server on PORT, or "timeout"
wait_new_primary_ack() {
        local i r
        for ((i = 0; i < ${3:-180} * 20; i++)); do
                r=$(awk -v p="$1" -v t0="$2" '$2 == p && $3 > t0 { printf "%.3f", $3 - t0; exit }' "$T/acked.ts")
                if [[ -n $r ]]; then
                        echo "$r"
                        return 0
                fi
                sleep 0.05
        done
        echo timeout
}

# primaries PORT...: how many of the servers answer and are writable
primaries() {
        local n=0 p
        for p in "$@"; do
                [[ $(psql_at "$p" -c "SELECT pg_is_in_recovery()" 2>/dev/null) == f ]] && n=$((n + 1))
        done
        echo "$n"
}

# lost PORT: how many acknowledged ids are missing on the server at PORT
# (they go to $T/missing); "?" if it does not answer
lost() {
        : >"$T/missing"
        if ! psql_at "$1" -c "SELECT id FROM t" | LC_ALL=C sort >"$T/have"; then
                echo "?"
                return 0
        fi
        LC_ALL=C sort "$T/acked" | LC_ALL=C comm -23 - "$T/have" >"$T/missing"
        wc -l <"$T/missing"
}

# streaming PORT: whether the standby on PORT streams WAL
streaming() { [[ $(psql_at "$1" -c "SELECT status FROM pg_stat_wal_receiver" 2>/dev/null) == streaming ]]; }

declare -a TM_RTO=() TM_REPORTED=() PA_RTO=()
TM_SPLIT=0 PA_SPLIT=0 TM_LOST=0 PA_LOST=0 PA_REINIT=0
declare -a TM_LOAD=() PA_LOAD=()
SYSTEMS=${BENCH_SYSTEMS:-tidemark patroni}

# ================================================================ tidemark
tm_trials=$TRIALS
[[ " $SYSTEMS " == *" tidemark "* ]] || tm_trials=0
if ((tm_trials)); then
        fo_cluster
        fo_start "${BENCH_TM_FAILOVER:-automatic = on}"
fi
# tm_healthy: alpha the primary and the daemon's active site, beta
# streaming from it, pgbouncer on alpha
tm_healthy() {
        [[ $(primaries "$P_ALPHA") == 1 && $(primaries "$P_BETA") == 0 ]] || return 1
        streaming "$P_BETA" || return 1
        [[ $(pgb -c "SELECT inet_server_port()" 2>/dev/null) == "$P_ALPHA" ]] || return 1
        api GET /api/v1/status
        [[ $(jq_ "$BODY" 'd["active_site"]') == alpha ]]
}
next=1
for ((trial = 1; trial <= tm_trials; trial++)); do
        ok=0
        for _ in $(seq 1 300); do
                if tm_healthy; then ok=1; break; fi
                sleep 0.2
        done
        if ((!ok)); then
                log "tidemark: the pair did not get healthy before trial $trial; stopping tidemark trials"
                break
        fi
        bload_start "$next"
        sleep 1.5
        l1=$(load1)
        pid=$(head -1 "$T/alpha/postmaster.pid")
        t0=$EPOCHREALTIME
        kill -9 "$pid"
        rto=$(wait_new_primary_ack "$P_BETA" "$t0")
        sleep 0.5
        bload_stop
        next=$(($(tail -1 "$T/acked") + 1000))
        np=$(primaries "$P_ALPHA" "$P_BETA")
        split=0
        [[ $np == 1 ]] || split=1
        lo=$(lost "$P_BETA")
        TM_SPLIT=$((TM_SPLIT + split))
        [[ $lo == 0 ]] || TM_LOST=$((TM_LOST + 1))
        api GET /api/v1/status
        rep=$(jq_ "$BODY" 'd["last_failover"]["rto_seconds"]' 2>/dev/null || echo "?")
        TM_RTO+=("$rto")
        TM_REPORTED+=("$rep")
        TM_LOAD+=("$l1")
        log "tidemark trial $trial: kill -9 alpha -> first write on beta $rto s (failoverd reports RTO $rep s), primaries $np, acked rows lost $lo $(tr '\n' ' ' <"$T/missing"), load $l1"
        printf 'tidemark\t%d\talpha\tbeta\t%s\t%s\t%s\t%d\t%s\t%s\n' "$trial" "$rto" "$rep" "$np" "$split" "$lo" "$l1" >>"$OUT/trials.tsv"
        api POST /api/v1/failback '{"reason": "bench"}'
        [[ $CODE == 202 ]] || fail "failback: $CODE $BODY"
        wait_job "$(jq_ "$BODY" 'd["job_id"]')" 180
        [[ $(jq_ "$JOB" 'd["state"]') == succeeded ]] || fail "failback failed: $JOB"
        # a failback that left two primaries behind is a split brain too
        np=$(primaries "$P_ALPHA" "$P_BETA")
        if [[ $np != 1 ]]; then
                log "tidemark trial $trial: $np primaries after the failback"
                TM_SPLIT=$((TM_SPLIT + 1))
        fi
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

# pgbouncer again (same settings), pointing nowhere until the leader is
# known
PGB_PORT=$(free_port)
as_pg mkdir -p "$T/pgb"
fo_pgbouncer_conf 1
fo_switch_hook
as_pg pgbouncer -d "$T/pgb/pgbouncer.ini" >/dev/null 2>&1 || fail "pgbouncer did not start"
on_exit "kill \$(cat '$T/pgb/pgbouncer.pid')"

NODES=(node0 node1)
declare -A PG_PORT REST_PORT
for n in "${NODES[@]}"; do
        PG_PORT[$n]=$(free_port)
        REST_PORT[$n]=$(free_port)
        # Patroni calls it as: CMD ACTION ROLE SCOPE (ROLE "master" in 3.0)
        as_pg tee "$P/$n-callback.sh" >/dev/null <<EOC
#!/bin/sh
echo "\$(date -u +%T.%N) \$*" >>'$P/$n-callback.log'
case "\$1:\$2" in on_role_change:master | on_role_change:primary)
        export TM_DR_NEW_PRIMARY_HOST=127.0.0.1 TM_DR_NEW_PRIMARY_PORT=${PG_PORT[$n]}
        exec '$T/switch.sh' >>'$P/$n-callback.log' 2>&1 ;;
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
EOC
        on_exit "kill -9 \$(cat '$P/$n.pid') 2>/dev/null; runuser -u postgres -- '$PGBIN/pg_ctl' -D '$P/$n' -m immediate stop"
done
pa_start() {
        as_pg sh -c 'echo $$ >"$1"; exec /usr/bin/patroni "$2"' sh "$P/$1.pid" "$P/$1.yml" \
                >>"$P/$1.log" 2>&1 &
}
# pa_cluster: "LEADER RUNNING_REPLICAS" from GET /cluster, or "- -" if
# the members that answer disagree or none does. A leader counts only
# in state running; a replica only in state running or streaming.
pa_cluster() {
        local n views=()
        for n in "${NODES[@]}"; do
                views+=("$(curl -s -m 2 "http://127.0.0.1:${REST_PORT[$n]}/cluster" 2>/dev/null || true)")
        done
        python3 - "${views[@]}" <<'PY'
import json, sys
seen = set()
for v in sys.argv[1:]:
    try:
        ms = json.loads(v)["members"]
    except Exception:
        continue
    lead = [m["name"] for m in ms if m.get("role") == "leader" and m.get("state") == "running"]
    reps = [m["name"] for m in ms if m.get("role") in ("replica", "sync_standby")
            and m.get("state") in ("running", "streaming")]
    seen.add(("+".join(lead) or "-", len(reps)))
print("%s %d" % seen.pop() if len(seen) == 1 else "- -")
PY
}
# pa_healthy: "NP LEADER": NP the number of writable servers, LEADER the
# leader's name if the pair is healthy (one leader, the other a streaming
# replica, pgbouncer on the leader), else "-"
pa_healthy() {
        local c lead reps other np
        np=$(primaries "${PG_PORT[node0]}" "${PG_PORT[node1]}")
        c=$(pa_cluster)
        lead=${c% *} reps=${c#* }
        other=node0
        [[ $lead == node0 ]] && other=node1
        if [[ ($lead == node0 || $lead == node1) && $reps == 1 && $np == 1 ]] &&
                [[ $(primaries "${PG_PORT[$lead]}") == 1 ]] && streaming "${PG_PORT[$other]}" &&
                [[ $(pgb -c "SELECT inet_server_port()" 2>/dev/null) == "${PG_PORT[$lead]}" ]]; then
                echo "$np $lead"
        else
                echo "$np -"
        fi
}
pa_start node0
for _ in $(seq 1 300); do [[ $(pa_cluster) == "node0 0" ]] && break; sleep 0.2; done
[[ $(pa_cluster) == "node0 0" ]] || fail "patroni node0 did not become the leader: $(tail -5 "$P/node0.log")"
# bootstrap runs no callbacks: point pgbouncer at the first leader once
# (set-up, not measured); every later move is the callback's
TM_DR_NEW_PRIMARY_HOST=127.0.0.1 TM_DR_NEW_PRIMARY_PORT=${PG_PORT[node0]} as_pg "$T/switch.sh" >/dev/null
psql_at "${PG_PORT[node0]}" -c "CREATE TABLE t (id bigint PRIMARY KEY, site_port int NOT NULL DEFAULT inet_server_port())"
pa_start node1
next=1
for ((trial = 1; trial <= pa_trials + 1; trial++)); do
        # the killed node rejoins (or node1 joins for the first time); a
        # rejoin that Patroni does not finish in 4 min gets one
        # POST /reinitialize (counted), then 4 more minutes
        leader=- split=0 reinit=0 since=$SECONDS
        while ((SECONDS - since < 480)); do
                h=$(pa_healthy)
                leader=${h#* }
                [[ $leader != - ]] && break
                ((${h% *} <= 1)) || split=1
                if ((!reinit && SECONDS - since >= 240 && trial > 1)); then
                        log "patroni: $killed did not rejoin in 4 min; POST /reinitialize"
                        curl -s -m 10 -X POST -d '{"force": true}' "http://127.0.0.1:${REST_PORT[$killed]}/reinitialize" >&2 || true
                        PA_REINIT=$((PA_REINIT + 1)) reinit=1
                fi
                sleep 0.2
        done
        if ((trial > 1)); then
                log "patroni: $killed rejoined as a replica in $((SECONDS - since)) s (healthy: $([[ $leader != - ]] && echo yes || echo no))"
                # the previous trial's split brain check covers its rejoin
                if ((split)); then
                        PA_SPLIT=$((PA_SPLIT + 1))
                        log "patroni trial $((trial - 1)): two writable servers while $killed rejoined"
                fi
        fi
        if [[ $leader == - ]]; then
                log "patroni: the pair did not get healthy before trial $trial: $(pa_cluster); stopping patroni trials"
                break
        fi
        # one more round only to check the last trial's rejoin
        ((trial <= pa_trials)) || break
        other=node0
        [[ $leader == node0 ]] && other=node1
        bload_start "$next"
        sleep 1.5
        l1=$(load1)
        # the leader again, straight before the kill: it must not have moved
        for _ in $(seq 1 25); do [[ $(pa_cluster) == "$leader 1" ]] && break; sleep 0.2; done
        [[ $(pa_cluster) == "$leader 1" ]] || fail "patroni leader moved before the kill: $(pa_cluster)"
        apid=$(cat "$P/$leader.pid")
        pgpid=$(head -1 "$P/$leader/postmaster.pid")
        t0=$EPOCHREALTIME
        kill -9 "$apid" "$pgpid"
        killed=$leader
        rto=$(wait_new_primary_ack "${PG_PORT[$other]}" "$t0")
        sleep 0.5
        bload_stop
        next=$(($(tail -1 "$T/acked") + 1000))
        np=$(primaries "${PG_PORT[node0]}" "${PG_PORT[node1]}")
        split=0
        [[ $np == 1 ]] || split=1
        lo=$(lost "${PG_PORT[$other]}")
        PA_SPLIT=$((PA_SPLIT + split))
        [[ $lo == 0 ]] || PA_LOST=$((PA_LOST + 1))
        PA_RTO+=("$rto")
        PA_LOAD+=("$l1")
        log "patroni trial $trial: kill -9 leader $killed (agent $apid, postmaster $pgpid) -> first write on $other $rto s, primaries $np, acked rows lost $lo $(tr '\n' ' ' <"$T/missing"), load $l1"
        printf 'patroni\t%d\t%s\t%s\t%s\t-\t%s\t%d\t%s\t%s\n' "$trial" "$killed" "$other" "$rto" "$np" "$split" "$lo" "$l1" >>"$OUT/trials.tsv"
        # the killed postmaster's children leave when they notice it gone;
        # Patroni itself waits for a stale postmaster.pid's owner
        for _ in $(seq 1 50); do kill -0 "$pgpid" 2>/dev/null || break; sleep 0.1; done
        pa_start "$killed"
done
fi

# ================================================================ report
python3 - "$OUT/results.json" "$TRIALS" "$TM_SPLIT" "$PA_SPLIT" "$TM_LOST" "$PA_LOST" \
        "${TM_RTO[*]}" "${TM_REPORTED[*]}" "${PA_RTO[*]}" "${TM_LOAD[*]}" "${PA_LOAD[*]}" "$PA_REINIT" <<'PY'
import json, statistics, sys
out, trials, tms, pas, tml, pal = sys.argv[1], *map(int, sys.argv[2:7])
def nums(s):
    return [float(x) if x not in ("timeout", "?", "None") else None for x in s.split()]
tm, tmrep, pa = nums(sys.argv[7]), nums(sys.argv[8]), nums(sys.argv[9])
tmload, paload, reinit = nums(sys.argv[10]), nums(sys.argv[11]), int(sys.argv[12])
def stats(a):
    v = sorted(x for x in a if x is not None)
    if not v:
        return {"n": 0}
    # p90: nearest rank
    return {"n": len(v), "timeouts": len(a) - len(v), "min": v[0], "median": statistics.median(v),
            "mean": statistics.mean(v), "p90": v[max(0, -(-9 * len(v) // 10) - 1)], "max": v[-1]}
r = {"trials": trials,
     "tidemark": {"rto": stats(tm), "reported_rto": stats(tmrep), "split_brain": tms,
                  "trials_losing_acked_rows": tml, "samples": tm, "load1": stats(tmload)},
     "patroni": {"rto": stats(pa), "split_brain": pas, "trials_losing_acked_rows": pal, "samples": pa,
                 "load1": stats(paload), "reinitialize_requests": reinit}}
for k in ("median", "p90", "min", "max"):
    if r["tidemark"]["rto"].get(k) and r["patroni"]["rto"].get(k):
        r["ratio_" + k] = r["tidemark"]["rto"][k] / r["patroni"]["rto"][k]
json.dump(r, open(out, "w"), indent=1)
print("\nRTO of an unplanned failover, kill -9 of the primary -> first write through pgbouncer (s)")
print("%-10s %5s %8s %7s %7s %7s %7s %7s %12s %12s %11s" % ("", "n", "timeouts", "min", "median", "mean", "p90", "max", "split brain", "lossy trials", "load1 mean"))
for name in ("tidemark", "patroni"):
    s, l = r[name]["rto"], r[name]["load1"]
    if s["n"]:
        print("%-10s %5d %8d %7.2f %7.2f %7.2f %7.2f %7.2f %12d %12d %11.2f" % (name, s["n"], s["timeouts"], s["min"], s["median"], s["mean"], s["p90"], s["max"], r[name]["split_brain"], r[name]["trials_losing_acked_rows"], l["mean"]))
if "ratio_median" in r:
    print("tidemark / patroni: median %.3f, p90 %.3f, min %.3f, max %.3f (target <= 0.333)" % tuple(r["ratio_" + k] for k in ("median", "p90", "min", "max")))
if r["tidemark"]["reported_rto"]["n"]:
    print("failoverd's own reported RTO (median): %.2f s" % r["tidemark"]["reported_rto"]["median"])
if reinit:
    print("patroni rejoins that needed POST /reinitialize: %d" % reinit)
PY
pass
