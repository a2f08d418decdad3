#!/usr/bin/env bash
# Replication to a directory replica killed with -9 at random moments, round
# after round, while backups, forget and prune go on at the primary: after
# every kill both the primary and the replica pass check --read-data; the
# pass after the last kill copies exactly what had not landed (nothing
# twice) and leaves the replica object for object equal to the primary; with
# the primary gone, snapshots, restore (byte-exact) and mount work from the
# replica.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

S="$T/src"
R="$T/replica"
RCAT="$T/replica-catalog.db"
mkdir -p "$S/d"
for i in 1 2 3 4 5 6; do random_file "$S/d/f$i.bin" $((300000 + RANDOM * 10)); done
printf 'config v0\n' >"$S/app.conf"

# slow enough (1 MiB/s) that the kills land in every phase of a pass
cat >"$T/tidemark.conf" <<CONF
[repository]
location = $TIDEMARK_REPOSITORY
[replica]
location = $R
interval = 1s
bandwidth = 1M
parallel = 2
CONF

# bad input: one clear line, exit 1
assert_fails_cleanly "replicate without a location" tm replicate --once
assert_fails_cleanly "replicate into the repository itself" tm replicate --once --to "$TIDEMARK_REPOSITORY"
assert_fails_cleanly "--once with --status" tm replicate --once --status --to "$R"
assert_fails_cleanly "replicate with an argument" tm replicate --once "$R"
mkdir -p "$T/other"
printf 'not a repository\n' >"$T/other/config"
assert_fails_cleanly "a location holding something else" tm replicate --once --to "$T/other"
[[ $(cat "$T/other/config") == "not a repository" && $(find "$T/other" -type f | wc -l) -eq 1 ]] ||
        fail "replicate wrote into a location that holds something else"

replica_checks() { # WHAT
        if [[ ! -f $R/config ]]; then
                # killed before the config landed: not a repository yet, and
                # nothing but keys may be there
                [[ -z $(find "$R" -type f ! -path "$R/keys/*" ! -name '.*' 2>/dev/null) ]] ||
                        fail "$1: replica has objects but no config"
                return 0
        fi
        run tm --repo "$R" --catalog "$RCAT" check --read-data
        assert_rc 0 "$1: check --read-data on the replica"
        assert_contains "$RUN_OUT$RUN_ERR" "no errors were found" "$1: replica check"
}

objects() { # DIR: "name size" of every object but locks and temp files
        (cd "$1" && find config keys data index snapshots -type f ! -name '.*' -printf '%p %s\n' 2>/dev/null | LC_ALL=C sort)
}

behind_rounds=0
for round in 1 2 3 4 5 6; do
        random_file "$S/d/new$round.bin" $((300000 + RANDOM * 20))
        printf 'config v%d\n' "$round" >"$S/app.conf"
        backup_ok "$S"
        if ((round % 3 == 0)); then
                run tm forget --keep-last 2 --prune
                assert_rc 0 "forget --prune in round $round"
        fi
        # the binary itself, not the tm wrapper: $! must be the replicator
        "$TM_EXE" replicate --config "$T/tidemark.conf" >"$T/rep.log" 2>&1 &
        pid=$!
        on_exit "kill -9 $pid"
        sleep "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
        kill -9 "$pid" 2>/dev/null || fail "round $round: replicate exited by itself: $(cat "$T/rep.log")"
        wait "$pid" 2>/dev/null || true
        run tm replicate --config "$T/tidemark.conf" --status --json
        assert_rc 0 "status after the kill in round $round"
        b=$(json_get 'd["objects_behind"], d["snapshots_behind"], d["objects_to_delete"]' <<<"$RUN_OUT")
        [[ $b == "(0, 0, 0)" ]] || behind_rounds=$((behind_rounds + 1))
        log "round $round: killed with (objects, snapshots, deletions) $b behind"
        replica_checks "round $round"
        check_ok --read-data
done
((behind_rounds >= 3)) || fail "only $behind_rounds of 6 kills landed before the pass was done"

# ---- the pass after a kill in the middle of a pack copies exactly what is
# missing: nothing twice, nothing lost
random_file "$S/d/last.bin" $((1536 * 1024))
backup_ok "$S"
"$TM_EXE" replicate --config "$T/tidemark.conf" >"$T/rep.log" 2>&1 &
pid=$!
on_exit "kill -9 $pid"
sleep 0.5
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
run tm replicate --config "$T/tidemark.conf" --status --json
assert_rc 0 "status before the last pass"
behind=$(json_get 'd["objects_behind"]' <<<"$RUN_OUT")
bytes=$(json_get 'd["bytes_behind"]' <<<"$RUN_OUT")
((behind > 0 && bytes > 500000)) || fail "the kill did not land mid-pass: $RUN_OUT"
replica_checks "after the last kill"
run tm replicate --config "$T/tidemark.conf" --once --json
assert_rc 0 "the last pass"
copied=$(json_get 'd["objects_copied"], d["bytes_copied"]' <<<"$RUN_OUT")
[[ $copied == "($behind, $bytes)" ]] ||
        fail "the last pass copied $copied, but ($behind, $bytes) was behind (re-copied or lost something)"
[[ $(json_get 'd["status"]["objects_behind"], d["status"]["objects_to_delete"], d["status"]["lag_seconds"]' <<<"$RUN_OUT") == "(0, 0, 0.0)" ]] ||
        fail "not caught up after the last pass: $RUN_OUT"
log "last pass: $copied objects/bytes were behind"
objects "$TIDEMARK_REPOSITORY" >"$T/primary.objects"
objects "$R" >"$T/replica.objects"
assert_files_equal "$T/primary.objects" "$T/replica.objects" "replica holds exactly the primary's objects"
run tm replicate --config "$T/tidemark.conf" --once
assert_rc 0 "an idle pass"
assert_contains "$RUN_OUT" "replicated 0 objects" "an idle pass copies nothing"

# ---- the primary is gone: everything from the replica
content_manifest "$S" "$T/want"
nsnap=$(snapshot_count)
mv "$TIDEMARK_REPOSITORY" "$T/primary.gone"
export TIDEMARK_REPOSITORY="$R" TIDEMARK_CATALOG="$T/dr-catalog.db"
[[ $(snapshot_count) -eq $nsnap ]] || fail "the replica lists $(snapshot_count) snapshots, the primary had $nsnap"
restore_ok latest "$T/out"
content_manifest "$T/out" "$T/got"
assert_files_equal "$T/want" "$T/got" "restore from the replica is byte-exact"
check_ok --read-data
if is_root && [[ -c /dev/fuse ]] && command -v fusermount3 >/dev/null && command -v mountpoint >/dev/null; then
        M="$T/mnt"
        mkdir -p "$M"
        fuse_mount_bg "$M" "$T/fs.log" "$TM_EXE" mount "$M" -f
        content_manifest "$M/latest/src" "$T/got-mnt"
        assert_files_equal "$T/want" "$T/got-mnt" "the mount of the replica shows the latest snapshot"
        fuse_teardown "$M"
        log "mount of the replica: ok"
else
        log "mount of the replica not tried (needs root and FUSE)"
fi
pass
