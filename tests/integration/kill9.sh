#!/usr/bin/env bash
# kill -9 during backup, >= 20 times, at points spread over a backup's
# duration. After each kill: check --read-data passes, only complete
# snapshots are listed, and the newest restores byte-exact. A backup that
# completes after killed runs must not re-upload the packs they landed; a
# final backup completes.
#
# How the kill points are chosen: a stratified, shuffled list of fractions
# f_k in [0, 1) (one per stratum of 1/ITERS, from the seed) is applied to the
# duration D of the current kind of run: first a full backup measured in a
# scratch repository; after a run completes, that run's own duration (later
# runs dedup against what is stored and get shorter). When a run completes a
# snapshot, the source is partly rewritten (one large file and some small
# ones get new random bytes) so that the following runs have data to write.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

ITERS=${TM_KILL9_ITERS:-20}
MAX_RUNS=$((ITERS * 3))
S="$T/src"

# ~200 MiB: 2500 small files (1-40 KiB) in 50 dirs, and 6 large files.
python3 - "$S" "$TM_SEED" <<'EOF'
import os, random, sys
root, seed = sys.argv[1], int(sys.argv[2])
rnd = random.Random(seed)
for d in range(50):
    p = os.path.join(root, 'small', 'd%02d' % d)
    os.makedirs(p)
    for i in range(50):
        with open(os.path.join(p, 'f%03d' % i), 'wb') as f:
            f.write(os.urandom(rnd.randint(1024, 40 * 1024)))
os.makedirs(os.path.join(root, 'large'))
for i in range(6):
    with open(os.path.join(root, 'large', 'L%d.bin' % i), 'wb') as f:
        for _ in range(25):
            f.write(os.urandom(1 << 20))
EOF
src_bytes=$(du -sb --apparent-size "$S" | cut -f1)
log "source: $(find "$S" -type f | wc -l) files, $src_bytes bytes"
content_manifest "$S" "$T/src.manifest"

# mutate N: give L0.bin and 60 small files new random bytes; prints
# the number of new bytes.
mutate() {
        python3 - "$S" "$1" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
r = random.Random(n)
new = 0
p = os.path.join(root, 'large', 'L0.bin')  # the first file read: its packs land early
with open(p, 'wb') as f:
    for _ in range(25):
        f.write(os.urandom(1 << 20))
new += 25 << 20
for _ in range(60):
    p = os.path.join(root, 'small', 'd%02d' % r.randrange(50), 'f%03d' % r.randrange(50))
    size = os.path.getsize(p)
    with open(p, 'wb') as f:
        f.write(os.urandom(size))
    new += size
print(new)
EOF
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Measure one full backup in a scratch repository (same source).
t0=$(now_ms)
TIDEMARK_REPOSITORY="$T/scratch" TIDEMARK_CATALOG="$T/scratch.db" tm init "${TM_KDF_ARGS[@]}" >/dev/null ||
        fail "init scratch repo"
TIDEMARK_REPOSITORY="$T/scratch" TIDEMARK_CATALOG="$T/scratch.db" tm backup -q "$S" >/dev/null ||
        fail "measuring backup failed"
D=$(($(now_ms) - t0))
rm -rf "$T/scratch" "$T/scratch.db"*
log "one full backup takes $D ms"

mapfile -t fracs < <(python3 -c '
import random, sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
r = random.Random(seed)
f = [(i + r.random()) / n for i in range(n)]
r.shuffle(f)
print("\n".join("%.4f" % x for x in f))
' "$ITERS" "$TM_SEED")
log "kill points (fractions of the current run duration): ${fracs[*]}"

# alive PID: the process exists and is not a zombie
alive() { [[ -e /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

pending=$src_bytes        # source bytes not yet in any snapshot
base=$(repo_data_bytes)   # data/ when the source last changed
verified=""
kills=0
commits=0
asserted=0
k=0
for ((run_no = 0; run_no < MAX_RUNS && kills < ITERS; run_no++)); do
        f=${fracs[$k]}
        delay_ms=$(python3 -c "print(int($D * $f))")
        before_run=$(repo_data_bytes)
        n_before=$(snapshot_count)
        start=$(now_ms)
        "$TM_EXE" backup -q --strategy full "$S" >"$T/bg.out" 2>"$T/bg.err" &
        pid=$!
        while alive "$pid" && (($(now_ms) - start < delay_ms)); do sleep 0.01; done
        if alive "$pid" && kill -9 "$pid" 2>/dev/null; then
                state=killed
                kills=$((kills + 1))
                k=$((k + 1))
        else
                state=finished
        fi
        rc=0
        wait "$pid" || rc=$?
        elapsed=$(($(now_ms) - start))
        if [[ $state == finished && $rc -ne 0 ]]; then
                cat "$T/bg.err" >&2
                fail "run $run_no: backup exited $rc on its own"
        fi
        stored=$(repo_data_bytes)
        n=$(snapshot_count)
        log "run $run_no: kill at ${delay_ms} ms ($f of $D) -> $state after $elapsed ms (rc $rc);" \
                "data/ +$((stored - before_run)) bytes, $n snapshot(s)"

        run tm check --read-data
        if [[ $RUN_RC -ne 0 ]] || ! grep -qi 'no errors were found' <<<"$RUN_OUT$RUN_ERR"; then
                show_run
                fail "run $run_no: check --read-data after kill -9 at ${delay_ms} ms failed"
        fi
        ((n == n_before || n == n_before + 1)) || fail "run $run_no: snapshots went from $n_before to $n"

        if ((n > n_before)); then
                # This run committed. Every listed snapshot must be complete:
                # the new one restores exactly the source as it is now.
                latest=$(snapshot_ids | tail -n 1)
                [[ $latest != "$verified" ]] || fail "run $run_no: snapshot count grew but latest is unchanged"
                rm -rf "$T/restore"
                restore_ok "$latest" "$T/restore"
                content_manifest "$T/restore" "$T/restore.manifest"
                assert_files_equal "$T/src.manifest" "$T/restore.manifest" \
                        "run $run_no: snapshot ${latest:0:8} listed after kill -9 does not restore the source"
                verified=$latest
                commits=$((commits + 1))
                # No re-upload: what killed runs landed since the source
                # changed must not be written again.
                landed=$((before_run - base))
                added=$((stored - before_run))
                log "run $run_no: committed ${latest:0:8} (restores byte-exact); pending $pending bytes:" \
                        "killed runs had landed $landed ($((100 * landed / pending))%), this run added $added" \
                        "($((100 * added / pending))%)"
                if ((landed * 10 > pending * 6)); then
                        asserted=$((asserted + 1))
                        ((added * 2 < pending)) ||
                                fail "run $run_no re-uploaded: added $added bytes although killed runs had landed $landed of $pending"
                fi
                # New data for the following runs; their duration is this one's.
                pending=$(mutate "$run_no")
                content_manifest "$S" "$T/src.manifest"
                base=$(repo_data_bytes)
                D=$elapsed
        elif [[ $state == finished ]]; then
                fail "run $run_no: backup exited 0 but no new snapshot is listed"
        fi
        if [[ $state == finished ]]; then
                D=$elapsed
        fi
done
((kills >= ITERS)) || fail "only $kills of $MAX_RUNS runs could be killed mid-way"
log "$kills runs killed, $commits commits; no-re-upload assertion applied $asserted time(s)"

# Before the final backup, let killed runs land most of the pending data
# (kills late in the run; a few tries), so that the no-re-upload check
# applies to it.
for late in 0.80 0.90 0.95 0.97 0.99; do
        landed=$(($(repo_data_bytes) - base))
        ((landed * 10 > pending * 6)) && break
        n_before=$(snapshot_count)
        delay_ms=$(python3 -c "print(int($D * $late))")
        start=$(now_ms)
        "$TM_EXE" backup -q --strategy full "$S" >"$T/bg.out" 2>"$T/bg.err" &
        pid=$!
        while alive "$pid" && (($(now_ms) - start < delay_ms)); do sleep 0.01; done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" || true
        if (($(snapshot_count) > n_before)); then
                # it committed: restart from a new change
                log "late kill at $late of $D ms came after the commit; changing the source again"
                pending=$(mutate "$RANDOM")
                content_manifest "$S" "$T/src.manifest"
                base=$(repo_data_bytes)
                D=$(($(now_ms) - start))
        else
                log "late kill at $late of $D ms: data/ now +$(($(repo_data_bytes) - base)) bytes over $pending pending"
        fi
done

# Final backup: must complete and add only what is missing.
before=$(repo_data_bytes)
landed=$((before - base))
backup_ok "$S"
log "final backup: $RUN_OUT"
after=$(repo_data_bytes)
added=$((after - before))
log "figures: source $src_bytes bytes, pending (not in a snapshot) $pending; killed runs landed $landed" \
        "($((100 * landed / pending))%); final backup added $added bytes ($((100 * added / pending))%)"
if ((landed * 10 > pending * 6)); then
        ((added * 2 < pending)) ||
                fail "final backup re-uploaded: added $added bytes although killed runs had landed $landed of $pending"
else
        log "killed runs landed < 60% of the pending data: the no-re-upload assertion does not apply to the final backup"
fi
check_ok --read-data
rm -rf "$T/restore"
restore_ok latest "$T/restore"
content_manifest "$T/restore" "$T/restore.manifest"
assert_files_equal "$T/src.manifest" "$T/restore.manifest" "final snapshot does not restore the source"

# What the killed runs left behind is garbage that prune can remove.
stray=$(repo_stray_files)
[[ -z $stray ]] || log "non-pack files in data/ after the kills: $(grep -c '' <<<"$stray")"
run tm prune
assert_rc 0 "prune after the kills"
log "prune: $RUN_OUT"
check_ok --read-data
stray=$(repo_stray_files)
[[ -z $stray ]] || log "NOTE: prune left $(grep -c '' <<<"$stray") non-pack file(s) in data/, e.g. $(head -n 1 <<<"$stray")"
pass
