#!/usr/bin/env bash
# Concurrency: two backups into one repository at once both commit; a prune
# started during a backup does not delete what the backup writes; forget +
# prune after deleting files shrinks the repository.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

MIB=$((1024 * 1024))
mk_source() { # DIR MIB: random files of 1..8 MiB and some small ones
        python3 - "$1" "$2" "$TM_SEED" <<'EOF'
import os, random, sys
root, mib, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = random.Random('%d:%s' % (seed, os.path.basename(root)))
os.makedirs(os.path.join(root, 'small'))
for i in range(100):
    with open(os.path.join(root, 'small', 's%03d' % i), 'wb') as f:
        f.write(os.urandom(r.randint(100, 20000)))
left, i = mib << 20, 0
while left > 0:
    n = min(left, r.randint(1, 8) << 20)
    with open(os.path.join(root, 'big%02d.bin' % i), 'wb') as f:
        for _ in range(n >> 20):
            f.write(os.urandom(1 << 20))
        f.write(os.urandom(n & ((1 << 20) - 1)))
    left -= n
    i += 1
EOF
}

# ---- 1. two backups of different components at the same time
mk_source "$T/alpha" 40
mk_source "$T/beta" 40
content_manifest "$T/alpha" "$T/alpha.manifest"
content_manifest "$T/beta" "$T/beta.manifest"
tm backup "$T/alpha" >"$T/a.out" 2>"$T/a.err" &
pa=$!
tm backup "$T/beta" >"$T/b.out" 2>"$T/b.err" &
pb=$!
ra=0 rb=0
wait $pa || ra=$?
wait $pb || rb=$?
[[ $ra -eq 0 ]] || fail "concurrent backup of alpha exited $ra: $(cat "$T/a.err")"
[[ $rb -eq 0 ]] || fail "concurrent backup of beta exited $rb: $(cat "$T/b.err")"
log "alpha: $(cat "$T/a.out")"
log "beta: $(cat "$T/b.out")"
comps=$(tm snapshots --json | json_get '",".join(sorted(s["component"] for s in d))')
[[ $comps == "alpha,beta" ]] || fail "expected snapshots of alpha and beta, got '$comps'"
for c in alpha beta; do
        restore_ok latest "$T/r-$c" --component "$c"
        content_manifest "$T/r-$c" "$T/r-$c.manifest"
        assert_files_equal "$T/$c.manifest" "$T/r-$c.manifest" "restore of $c after concurrent backups"
done
check_ok --read-data
log "part 1 ok: concurrent backups"

# ---- 2. prune while a backup runs
# Give prune something to delete: forget alpha.
alpha_id=$(snapshot_ids --component alpha)
run tm forget "$alpha_id"
assert_rc 0 "forget alpha"
mk_source "$T/gamma" 300
content_manifest "$T/gamma" "$T/gamma.manifest"
t0=$(date +%s%N)
tm backup "$T/gamma" >"$T/g.out" 2>"$T/g.err" &
pg=$!
sleep 1
if kill -0 $pg 2>/dev/null; then overlap=yes; else overlap=no; fi
tm prune >"$T/p.out" 2>"$T/p.err" &
pp=$!
rg=0 rp=0
wait $pg || rg=$?
tg=$(date +%s%N)
wait $pp || rp=$?
tp=$(date +%s%N)
log "backup of gamma: $((($tg - t0) / 1000000)) ms, exit $rg: $(cat "$T/g.out") $(cat "$T/g.err")"
log "prune (started at 1 s, backup still running: $overlap): done at $((($tp - t0) / 1000000)) ms, exit $rp:"$'\n'"$(cat "$T/p.out" "$T/p.err")"
[[ $overlap == yes ]] || log "NOTE: the backup finished within 1 s; prune did not overlap it"
[[ $rg -eq 0 ]] || fail "backup during prune exited $rg: $(cat "$T/g.err")"
[[ $rp -eq 0 ]] || fail "prune during backup exited $rp: $(cat "$T/p.err")"
check_ok --read-data
restore_ok latest "$T/r-gamma" --component gamma
content_manifest "$T/r-gamma" "$T/r-gamma.manifest"
assert_files_equal "$T/gamma.manifest" "$T/r-gamma.manifest" "restore of the backup that ran during prune"
rm -rf "$T/r-beta"
restore_ok latest "$T/r-beta" --component beta
content_manifest "$T/r-beta" "$T/r-beta.manifest"
assert_files_equal "$T/beta.manifest" "$T/r-beta.manifest" "restore of beta after prune"
run tm snapshots --json --component alpha
assert_rc 0 "snapshots --component alpha"
[[ $(printf '%s' "$RUN_OUT" | json_get 'len(d)') -eq 0 ]] || fail "alpha still listed after forget"
rm -rf "$T/gamma" "$T/r-gamma" "$T/alpha" "$T/r-alpha"
log "part 2 ok: prune during backup"

# ---- 3. forget + prune after deleting files shrinks the repository
mkdir -p "$T/delta"
random_file "$T/delta/keep.bin" $((2 * MIB))
random_file "$T/delta/drop.bin" $((20 * MIB))
backup_ok "$T/delta"
first=$(snapshot_ids --component delta)
rm "$T/delta/drop.bin"
backup_ok "$T/delta"
before=$(repo_data_bytes)
run tm forget "$first"
assert_rc 0 "forget the snapshot that had drop.bin"
mid=$(repo_data_bytes)
[[ $mid -eq $before ]] || fail "forget without --prune changed data/ ($before -> $mid)"
run tm prune
assert_rc 0 "prune"
log "prune: $RUN_OUT"
after=$(repo_data_bytes)
log "data/ before prune $before, after $after: freed $((before - after)) bytes"
((before - after >= 19 * MIB)) || fail "prune freed only $((before - after)) bytes after deleting a 20 MiB file"
check_ok --read-data
rm -rf "$T/r-delta"
restore_ok latest "$T/r-delta" --component delta
[[ ! -e $T/r-delta/drop.bin ]] || fail "drop.bin restored from the later snapshot"
cmp "$T/delta/keep.bin" "$T/r-delta/keep.bin" || fail "keep.bin differs after prune"
pass
