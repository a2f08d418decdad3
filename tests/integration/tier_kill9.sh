#!/usr/bin/env bash
# kill -9 during lifecycle moves, in a loop, loses nothing: a local hot
# repository with warm and cold (GLACIER) tiers in s3rver behind
# tests/fake/s3front.py; lifecycle passes moving ~30 packs are killed at
# random moments again and again, then one pass completes. Every pack is
# then in exactly one tier (an interrupted copy is finished or redone,
# never duplicated or lost), the snapshots thaw, check --read-data passes
# and a restore is byte-exact.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
. "$TM_SRC/tests/fake/s3env.sh"
s3_start --restore-delay 1
cat >"$T/tidemark.conf" <<CONF
[tier.hot]
age = 1s
[tier.warm]
location = s3:http://127.0.0.1:$PORT/backups/warm
age = 2s
[tier.cold]
location = s3:http://127.0.0.1:$PORT/backups/cold
age = 1y
thaw_poll = 1s
CONF
export TIDEMARK_CONFIG="$T/tidemark.conf"
tm_init
for i in $(seq 1 16); do
        mkdir -p "$T/src/d$i"
        random_file "$T/src/d$i/f.bin" $((300000 + RANDOM * 10))
        printf 'file %d\n' "$i" >"$T/src/d$i/note.txt"
        backup_ok "$T/src/d$i"
done
NTOTAL=$(find "$T/repo/data" -type f | wc -l)
log "$NTOTAL packs"
sleep 3

in_tiers() { echo $(($(find "$T/repo/data" -type f | wc -l) + $(s3_objects warm/data) + $(s3_objects cold/data))); }
kills=0 dups=0
for i in $(seq 1 10); do
        "$TM_EXE" tier run >"$T/run.out" 2>"$T/run.err" &
        pid=$!
        sleep "$(python3 -c "import random; random.seed($TM_SEED + $i); print(round(random.uniform(0.05, 0.45), 2))")"
        if kill -9 "$pid" 2>/dev/null; then
                kills=$((kills + 1))
        fi
        wait "$pid" 2>/dev/null || true
        # at every instant each pack is somewhere (maybe in two tiers mid-move)
        n=$(in_tiers)
        [[ $n -ge $NTOTAL ]] || fail "after kill $i: $n pack copies in the tiers, want at least $NTOTAL"
        [[ $n -eq $NTOTAL ]] || dups=$((dups + 1))
done
log "$kills passes killed mid-run, $dups of them between a copy and its delete"
[[ $kills -ge 3 ]] || fail "too few passes were interrupted ($kills): the test proves nothing"

run tm tier run --json
assert_rc 0 "the final lifecycle pass"
log "final pass: $RUN_OUT"
[[ $(in_tiers) -eq $NTOTAL ]] || fail "$(in_tiers) pack copies after the final pass, want $NTOTAL"
[[ $(find "$T/repo/data" -type f | wc -l) -eq 0 ]] || fail "packs left hot"
[[ $(s3_objects cold/data) -ge 16 ]] || fail "the data packs did not reach cold"
# the snapshots' data is in GLACIER: thaw it all (one batch), then read everything
run tm thaw $(snapshot_ids)
assert_rc 0 "thaw every snapshot"
check_ok --read-data
run tm restore latest --target "$T/out"
assert_rc 0 "restore"
cmp "$T/out/f.bin" "$T/src/d16/f.bin" || fail "restore after the kills is not byte-exact"
pass
