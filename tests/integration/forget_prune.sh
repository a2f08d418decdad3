#!/usr/bin/env bash
# forget --keep-last 2 --prune over 5 snapshots: 2 remain (the newest), the
# data only the removed ones had is gone, check passes, the kept restore.
# (The CLI has no option to set a snapshot's time, so the calendar policies
# are covered by the unit tests of tm_forget_plan, not here.)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

MIB=$((1024 * 1024))
S="$T/src"
mkdir -p "$S"
random_file "$S/common.bin" $((1 * MIB))
for i in 1 2 3 4 5; do
        rm -f "$S"/uniq*.bin
        random_file "$S/uniq$i.bin" $((3 * MIB))
        backup_ok "$S"
        content_manifest "$S" "$T/m$i"
        # another component that the policy must leave alone (per component)
        if ((i <= 3)); then
                mkdir -p "$T/other"
                printf 'other %d\n' "$i" >"$T/other/f"
                backup_ok "$T/other"
        fi
done
mapfile -t ids < <(snapshot_ids --component src)
[[ ${#ids[@]} -eq 5 ]] || fail "expected 5 snapshots of src, got ${#ids[@]}"

# --dry-run changes nothing.
fp=$(repo_fingerprint)
run tm forget --keep-last 2 --dry-run
assert_rc 0 "forget --dry-run"
log "forget --dry-run:"$'\n'"$RUN_OUT"
[[ $(repo_fingerprint) == "$fp" ]] || fail "forget --dry-run changed the repository"
for id in "${ids[@]:0:3}"; do assert_contains "$RUN_OUT" "${id:0:8}" "dry-run lists ${id:0:8}"; done

before=$(repo_data_bytes)
run tm forget --keep-last 2 --prune
assert_rc 0 "forget --keep-last 2 --prune"
log "forget --prune:"$'\n'"$RUN_OUT"
after=$(repo_data_bytes)
log "data/: $before -> $after bytes (freed $((before - after)))"

mapfile -t left < <(snapshot_ids --component src)
[[ ${#left[@]} -eq 2 ]] || fail "expected 2 snapshots of src left, got ${#left[@]}: ${left[*]}"
[[ ${left[0]} == "${ids[3]}" && ${left[1]} == "${ids[4]}" ]] ||
        fail "kept ${left[*]}, expected the newest two ${ids[3]} ${ids[4]}"
[[ $(snapshot_count --component other) -eq 2 ]] ||
        fail "forget --keep-last 2 is per component: 'other' should keep 2 of 3"
# uniq1..3 (9 MiB) are gone; common + uniq4 + uniq5 (7 MiB) remain
((before - after >= 9 * MIB - MIB / 2)) || fail "prune freed only $((before - after)) bytes; expected ~9 MiB"
((after >= 7 * MIB && after < 8 * MIB)) || fail "data/ holds $after bytes after prune; expected ~7 MiB"

check_ok --read-data
for k in 0 1; do
        rm -rf "$T/r"
        restore_ok "${left[$k]}" "$T/r"
        content_manifest "$T/r" "$T/r.m"
        assert_files_equal "$T/m$((k + 4))" "$T/r.m" "kept snapshot $((k + 4)) after forget --prune"
done
run tm ls "${ids[0]}"
[[ $RUN_RC -eq 1 ]] || fail "ls of a forgotten snapshot exited $RUN_RC"
pass
