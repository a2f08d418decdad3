#!/usr/bin/env bash
# The repository's filesystem fills up during a backup: exit 1 with a
# one-line "no space" error naming the repository; the repository stays
# consistent, earlier snapshots restore, and once the big files are gone a
# new backup succeeds.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
is_root || skip "needs root to mount a tmpfs"

MIB=$((1024 * 1024))
FS="$T/fs"
mkdir -p "$FS"
on_exit "umount -l '$FS'"
mount -t tmpfs -o size=30m tmpfs "$FS" 2>"$T/mount.err" || skip "cannot mount a tmpfs: $(cat "$T/mount.err")"
export TIDEMARK_REPOSITORY="$FS/repo"
export TIDEMARK_CATALOG="$T/catalog.db"
tm_init

S="$T/src"
mkdir -p "$S/small"
for i in 1 2 3; do random_file "$S/small/s$i" 300000; done
printf 'config\n' >"$S/conf.txt"
backup_ok "$S"
first=$(snapshot_ids | tail -n 1)
content_manifest "$S" "$T/m1"

for i in 1 2 3; do random_file "$S/big$i.bin" $((20 * MIB)); done
log "filesystem before the big backup: $(df -B1 --output=used,avail "$FS" | tail -n 1)"
run tm backup "$S"
log "big backup: exit $RUN_RC; stderr: $RUN_ERR"
log "filesystem after: $(df -B1 --output=used,avail "$FS" | tail -n 1)"
assert_rc 1 "backup of 60 MiB into a 30 MiB filesystem"
# The last line is the one-line summary (the lines before it, if any, are
# the library's log of the failed write).
err=$(tail -n 1 <<<"$RUN_ERR")
[[ $err == "tidemark: error: "* ]] || { show_run; fail "the last stderr line is not 'tidemark: error: ...'"; }
nerr=$(grep -c '' <<<"$RUN_ERR")
((nerr == 1)) || log "NOTE: $nerr lines on stderr, not one (spec: a one-line message)"
assert_contains "$err" "no space" "the error says the disk is full"
assert_contains "$err" "$FS" "the error names the repository location"
[[ $(snapshot_count) -eq 1 ]] || fail "a snapshot was committed by the failed backup"

check_ok --read-data
restore_ok "$first" "$T/r1"
content_manifest "$T/r1" "$T/r1.m"
assert_files_equal "$T/m1" "$T/r1.m" "earlier snapshot after the failed backup"
stray=$(repo_stray_files)
[[ -z $stray ]] || log "NOTE: non-pack files left in data/ by the failed backup: $stray"

rm "$S"/big*.bin
printf 'after\n' >"$S/after.txt"
run tm backup "$S"
if [[ $RUN_RC -ne 0 ]]; then
        show_run
        log "filesystem: $(df -B1 --output=used,avail "$FS" | tail -n 1)"
        fail "backup after removing the big files failed (the failed backup's leftovers fill the disk?)"
fi
content_manifest "$S" "$T/m2"
restore_ok latest "$T/r2"
content_manifest "$T/r2" "$T/r2.m"
assert_files_equal "$T/m2" "$T/r2.m" "snapshot after the disk-full failure"
check_ok --read-data
run tm prune
assert_rc 0 "prune after the disk-full failure"
log "prune: $RUN_OUT; filesystem: $(df -B1 --output=used,avail "$FS" | tail -n 1)"
check_ok --read-data
pass
