#!/usr/bin/env bash
# Storage tiers end to end: a local hot repository with warm (STANDARD_IA),
# cold (GLACIER) and archive (DEEP_ARCHIVE) tiers in s3rver behind
# tests/fake/s3front.py, which answers InvalidObjectState for archived
# objects until a restore request and a delay. With ages of seconds, packs
# move hot -> warm -> cold -> archive as their snapshots age; a pack that a
# new snapshot uses stays hot; tree packs stop at warm (listing an archived
# snapshot asks for no thaw); index files and manifests stay hot; a cold ->
# archive move waits for its thaw; restore of an archived snapshot thaws in
# one batch, waits and is byte-exact; thaw --no-wait; through the mount, a
# read of a cold pack is EAGAIN, starts the thaw and works once it is done;
# check --read-data; the catalog rebuilds from the tiers.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
. "$TM_SRC/tests/fake/s3env.sh"
s3_start --restore-delay 2

HOT=7 WARM=17 COLD=27
cat >"$T/tidemark.conf" <<CONF
[tier.hot]
age = ${HOT}s
[tier.warm]
location = s3:http://127.0.0.1:$PORT/backups/warm
age = ${WARM}s
[tier.cold]
location = s3:http://127.0.0.1:$PORT/backups/cold
age = ${COLD}s
thaw_poll = 1s
[tier.archive]
location = s3:http://127.0.0.1:$PORT/backups/archive
thaw_poll = 1s
retrieval = Bulk
CONF
export TIDEMARK_CONFIG="$T/tidemark.conf"

# tier_packs TIER: packs in a tier, from tier status --json
tier_packs() {
        run tm tier status --json
        assert_rc 0 "tier status"
        printf '%s' "$RUN_OUT" | json_get "[t['packs'] for t in d['tiers'] if t['tier']=='$1'][0]"
}
hot_packs() { find "$T/repo/data" -type f | wc -l; }
# wait_age SECONDS: until SECONDS after the first snapshot
wait_age() {
        local now
        now=$(date +%s.%N)
        python3 -c 'import sys,time; d=float(sys.argv[1])+float(sys.argv[2])-float(sys.argv[3]); time.sleep(max(0,d))' "$T0" "$1" "$now"
}
tier_run() {
        run tm tier run --json
        assert_rc 0 "tier run"
        log "tier run: $(printf '%s' "$RUN_OUT" | json_get '{k: d[k] for k in ("moved","thawing","finished","failed")}')"
}

tm_init
mkdir -p "$T/a/sub" "$T/c"
random_file "$T/a/big.bin" 3000000
random_file "$T/a/sub/mid.bin" 200000
printf 'hello a\n' >"$T/a/sub/small.txt"
random_file "$T/c/c.bin" 2500000
printf 'hello c\n' >"$T/c/note.txt"

T0=$(date +%s.%N)
backup_ok "$T/a"
NA=$(hot_packs)
backup_ok "$T/c"
NTOTAL=$(hot_packs)
NC=$((NTOTAL - NA))
C1=$(snapshot_ids | tail -n 1)
META=$(find "$T/repo/index" "$T/repo/snapshots" -type f | wc -l)
log "a: $NA packs, c: $NC packs"
[[ $NA -ge 2 && $NC -ge 2 ]] || fail "expected data and tree packs for each snapshot"

tier_run
[[ $(hot_packs) -eq $NTOTAL ]] || fail "young packs moved"

# ---- after the hot age: c goes warm; a, used again by a new snapshot, stays hot
wait_age $((HOT + 2))
backup_ok "$T/a"
tier_run
[[ $(hot_packs) -eq $NA ]] || fail "hot holds $(hot_packs) packs, want a's $NA"
[[ $(s3_objects warm/data) -eq $NC ]] || fail "warm holds $(s3_objects warm/data) packs, want c's $NC"
[[ $(tier_packs warm) -eq $NC ]] || fail "tier status disagrees with the store"

# ---- after warm's age: c's data goes cold, its trees stay warm; a goes warm
wait_age $((WARM + 2))
tier_run
[[ $(hot_packs) -eq 0 ]] || fail "a's packs stayed hot"
NCOLD=$(s3_objects cold/data)
[[ $NCOLD -ge 1 && $NCOLD -lt $NC ]] || fail "cold holds $NCOLD packs: want c's data packs only"
[[ $(s3_objects warm/data) -eq $((NTOTAL - NCOLD)) ]] || fail "warm does not hold the rest"

# ---- after cold's age: archived objects must be thawed before they move
wait_age $((COLD + 2))
tier_run
THAWING=$(printf '%s' "$RUN_OUT" | json_get 'd["thawing"]')
[[ $THAWING -ge 1 ]] || fail "a cold -> archive move did not wait for a thaw"
# checked now: on a loaded machine the thaw loop below can outlast a's own
# cold age, and a's data then (rightly) moves on to the archive too
# (c's NCOLD data packs are still there, waiting for their thaw)
[[ $(s3_objects cold/data) -gt $NCOLD ]] || fail "a's data did not reach cold"
for _ in 1 2 3 4; do
        sleep 2.5
        tier_run
        [[ $(printf '%s' "$RUN_OUT" | json_get 'd["thawing"]') -eq 0 ]] && break
done
[[ $(s3_objects archive/data) -ge 1 ]] || fail "nothing reached the archive"
[[ $(s3_objects warm/data) -ge 2 ]] || fail "tree packs left warm"
N=$(($(hot_packs) + $(s3_objects warm/data) + $(s3_objects cold/data) + $(s3_objects archive/data)))
[[ $N -eq $NTOTAL ]] || fail "$N packs in all tiers, want $NTOTAL (lost or duplicated)"
[[ $(find "$T/repo/index" "$T/repo/snapshots" -type f | wc -l) -eq $((META + 1)) ]] ||
        fail "index files or manifests left the hot tier"

# ---- listing an archived snapshot never waits on a thaw
R0=$(front_stat restores)
run tm ls "$C1"
assert_rc 0 "ls of an archived snapshot"
assert_contains "$RUN_OUT" "c.bin" "ls"
[[ $(front_stat restores) -eq $R0 ]] || fail "listing asked for a thaw"

# ---- thaw --no-wait, then restore (thaws in one batch, waits, byte-exact)
run tm thaw "$C1" --no-wait
assert_rc 3 "thaw --no-wait of an archived snapshot"
assert_contains "$RUN_OUT" "expected up to 48 hours" "thaw message names the expected delay"
run tm restore "$C1" --target "$T/out" -v
assert_rc 0 "restore of an archived snapshot"
assert_contains "$RUN_OUT$RUN_ERR" "restore requested" "restore thaws first"
content_manifest "$T/c" "$T/want"
content_manifest "$T/out" "$T/got"
assert_files_equal "$T/want" "$T/got" "restore from the archive tier"

# ---- the filesystem: a read of an archived (cold) pack is EAGAIN and starts the thaw
if [[ $(id -u) -eq 0 && -c /dev/fuse ]] && command -v fusermount3 >/dev/null &&
        [[ -x $TM_BIN/tidemark-fs ]]; then
        A1=$(snapshot_ids | sed -n 1p)
        M="$T/mnt"
        mkdir -p "$M"
        fuse_mount_bg "$M" "$T/fs.log" "$TM_EXE" mount "$M" -f
        F=$(find "$M/.snapshots/$A1" -name big.bin)
        [[ -n $F ]] || fail "browsing an archived snapshot in the mount"
        R0=$(front_stat restores)
        if err=$(cat "$F" 2>&1 >/dev/null); then
                fail "a read of a cold pack through the mount succeeded before any thaw"
        fi
        assert_contains "$err" "Resource temporarily unavailable" "mount read of a cold pack"
        [[ $(front_stat restores) -gt $R0 ]] || fail "the mount did not request a thaw"
        assert_contains "$(cat "$T/fs.log")" "thaw requested" "the mount logs the thaw"
        thawed() { cmp -s "$F" "$T/a/big.bin"; }
        wait_for 15 "a read through the mount after the thaw" thawed
        fuse_teardown "$M"
        log "mount: EAGAIN, thaw requested, readable after the thaw"
else
        log "mount part not run (needs root, /dev/fuse, fusermount3)"
fi
run tm thaw latest
assert_rc 0 "thaw (wait) of the latest snapshot"
check_ok --read-data

# ---- the catalog is a cache: gone, it rebuilds from the tiers
rm -f "$TIDEMARK_CATALOG"*
check_ok --read-data
# without the tier config the packs are missing, and check says so
run env -u TIDEMARK_CONFIG "$TM_EXE" check
[[ $RUN_RC -ne 0 ]] || fail "check without the tiers passed"
pass
