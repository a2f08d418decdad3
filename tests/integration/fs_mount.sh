#!/usr/bin/env bash
# The time-travel filesystem on a real FUSE mount: every file under @T/
# matches the source at T (bytes, mode, owner, mtime, symlinks, xattrs,
# fifos, devices); unlisted instants resolve to the earlier snapshot, one
# before the first is ENOENT; cp -a from the mount equals the original; 8
# concurrent readers; a backup taken while mounted appears without remount;
# allow_other + default_permissions refuse what the original refused;
# .history lists a file's versions; a corrupted pack is EIO for its file
# only; SIGTERM unmounts cleanly; a killed tidemark-fs is cleaned up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
fuse_skip_unless_usable
tm_setup
tm_init

S="$T/src"
M="$T/mnt"
mkdir -p "$S/sub/deeper" "$M"
chmod 0711 "$T" # other users must reach the mountpoint (allow_other test)

# instant_of SNAPSHOT_ID: "@YYYY-MM-DDTHH:MM:SSZ" of a snapshot (floored)
instant_of() {
        tm snapshots --json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    if s["id"] == sys.argv[1]:
        print("@" + s["time"][:19] + "Z")
' "$1"
}

# ---- three snapshots of a changing tree
printf 'one\n' >"$S/a.txt"
printf 'secret\n' >"$S/secret.txt"
chmod 0600 "$S/secret.txt"
random_file "$S/sub/data.bin" $((3 * 1024 * 1024 + 17))
printf '' >"$S/empty"
printf '#!/bin/sh\n' >"$S/sub/run.sh"
chmod 4755 "$S/sub/run.sh"
chown 1234:5678 "$S/sub/deeper"
printf 'x\n' >"$S/sub/deeper/owned.txt"
chown 1234:5678 "$S/sub/deeper/owned.txt"
ln -s a.txt "$S/link"
ln -s /nonexistent/target "$S/sub/dangling"
mkfifo "$S/fifo"
printf 'linked\n' >"$S/sub/hard1"
ln "$S/sub/hard1" "$S/hard2"
mknod "$S/null" c 1 3
setfattr -n user.color -v blue "$S/a.txt"
setfattr -n user.bin -v 0x00ff10 "$S/sub/data.bin"
touch -d '2001-02-03 04:05:06.123456789' "$S/empty"
backup_ok "$S"
snapshot_tree "$S" "$T/m1"
sleep 2.1 # leaves an unlisted second between the first two recovery points

printf 'two\n' >"$S/a.txt"
setfattr -n user.color -v red "$S/a.txt"
rm "$S/empty"
printf 'new\n' >"$S/sub/new.txt"
chmod 0750 "$S/sub"
ln -sfn sub/new.txt "$S/link"
backup_ok "$S"
snapshot_tree "$S" "$T/m2"
sleep 1.1

printf 'three\n' >"$S/a.txt"
setfattr -x user.color "$S/a.txt"
chown 42:43 "$S/secret.txt"
random_file "$S/sub/data.bin" $((2 * 1024 * 1024 + 5))
backup_ok "$S"
snapshot_tree "$S" "$T/m3"
mapfile -t ids < <(snapshot_ids)
[[ ${#ids[@]} -eq 3 ]] || fail "expected 3 snapshots, got ${#ids[@]}"
I1=$(instant_of "${ids[0]}")
I2=$(instant_of "${ids[1]}")
I3=$(instant_of "${ids[2]}")
log "recovery points $I1 $I2 $I3"

# ---- eight large files in another component, for the concurrent readers
B="$T/big"
mkdir -p "$B"
for i in 1 2 3 4 5 6 7 8; do
        random_file "$B/f$i" $((6 * 1024 * 1024 + i * 4099))
done
backup_ok "$B"

# ---- mount through the CLI, in the foreground, allow_other
start=$(date +%s.%N)
# (the binary itself, not the tm wrapper: $! must be the filesystem process)
fuse_mount_bg "$M" "$T/fs.log" "$TM_EXE" mount "$M" -f -o allow_other
FS_PID=$FUSE_PID
log "mounted in $(python3 -c "print('%.3f s' % ($(date +%s.%N) - $start))")"

run ls -A "$M"
assert_rc 0 "ls of the mount root"
for want in latest .snapshots .history "$I1" "$I2" "$I3"; do
        grep -qxF -- "$want" <<<"$RUN_OUT" || fail "root listing lacks '$want': $RUN_OUT"
done
[[ -L $M/latest ]] || fail "latest is not a symlink"

# ---- every file under @T/ matches the source at T
assert_tree_matches "$T/m1" "$M/$I1/src" "tree at $I1"
assert_tree_matches "$T/m2" "$M/$I2/src" "tree at $I2"
assert_tree_matches "$T/m3" "$M/$I3/src" "tree at $I3"
assert_tree_matches "$T/m3" "$M/latest/src" "tree at latest"
assert_tree_matches "$T/m1" "$M/.snapshots/${ids[0]}" "tree of .snapshots/<id>"
[[ $(readlink "$M/$I1/src/link") == a.txt ]] || fail "symlink target at $I1"
[[ -p $M/$I1/src/fifo ]] || fail "fifo is not a fifo"
[[ -c $M/$I1/src/null ]] || fail "device is not a character device"
[[ $(getfattr --absolute-names --only-values -n user.color "$M/$I2/src/a.txt") == red ]] || fail "xattr at $I2"
log "ok: three recovery points match the source (bytes, modes, owners, mtimes, links, xattrs)"

# ---- unlisted instants
between=$(python3 -c '
import datetime, sys
t = datetime.datetime.strptime(sys.argv[1], "@%Y-%m-%dT%H:%M:%SZ")
print((t + datetime.timedelta(seconds=1)).strftime("@%Y-%m-%dT%H:%M:%SZ"))' "$I1")
[[ $between != "$I2" ]] || fail "no unlisted second between $I1 and $I2"
assert_tree_matches "$T/m1" "$M/$between/src" "unlisted instant $between (between $I1 and $I2)"
log "ok: unlisted $between shows $I1"
minute=${I3:0:17} # @YYYY-MM-DDTHH:MM: the end of that minute
assert_tree_matches "$T/m3" "$M/$minute/src" "minute instant $minute"
day=${I3:0:11}
assert_tree_matches "$T/m3" "$M/$day/src" "day instant $day"
run ls "$M/@2000-01-01T00:00:00Z"
[[ $RUN_RC -ne 0 ]] || fail "an instant before every snapshot exists"
assert_contains "$RUN_ERR" "No such file or directory" "instant before the first snapshot"
run stat "$M/@not-a-time"
assert_contains "$RUN_ERR" "No such file or directory" "invalid instant name"
log "ok: before the first snapshot and invalid names are ENOENT"

# ---- read-only
run sh -c "echo x >'$M/latest/src/a.txt'"
[[ $RUN_RC -ne 0 ]] || fail "a write into the mount succeeded"
assert_contains "$RUN_ERR" "Read-only file system" "write into the mount"
run mkdir "$M/latest/src/newdir"
[[ $RUN_RC -ne 0 ]] || fail "mkdir in the mount succeeded"

# ---- cp -a restores an equal tree
cp -a "$M/$I2/src" "$T/copy"
assert_tree_matches "$T/m2" "$T/copy" "cp -a from $I2"
log "ok: cp -a from the mount equals the original"

# ---- eight concurrent readers of different large files
for i in 1 2 3 4 5 6 7 8; do
        sha256sum <"$M/latest/big/f$i" >"$T/sum$i" &
done
wait_fail=0
for job in $(jobs -p); do
        [[ $job == "$FS_PID" ]] && continue
        wait "$job" || wait_fail=1
done
((wait_fail == 0)) || fail "a concurrent reader failed"
for i in 1 2 3 4 5 6 7 8; do
        [[ $(cat "$T/sum$i") == $(sha256sum <"$B/f$i") ]] || fail "concurrent reader $i got wrong bytes"
done
log "ok: 8 concurrent readers got the right bytes"

# ---- history of a file
run ls "$M/.history/src/a.txt"
assert_rc 0 "ls .history/src/a.txt"
[[ $(wc -l <<<"$RUN_OUT") -eq 3 ]] || fail "a.txt should have 3 versions: $RUN_OUT"
[[ $(cat "$M/.history/src/a.txt/$I1") == one ]] || fail "history version $I1 of a.txt"
[[ $(cat "$M/.history/src/a.txt/$I3") == three ]] || fail "history version $I3 of a.txt"
run ls "$M/.history/src/sub/run.sh"
[[ $(wc -l <<<"$RUN_OUT") -eq 1 ]] || fail "run.sh should have 1 version: $RUN_OUT"
log "ok: .history lists one entry per version"

# ---- allow_other + default_permissions
if id nobody >/dev/null 2>&1 && command -v runuser >/dev/null; then
        run runuser -u nobody -- cat "$M/latest/src/a.txt"
        assert_rc 0 "nobody reads a world-readable file"
        run runuser -u nobody -- cat "$M/latest/src/secret.txt"
        [[ $RUN_RC -ne 0 ]] || fail "nobody read a 0600 file through the mount"
        assert_contains "$RUN_ERR" "Permission denied" "nobody reading a 0600 file"
        run runuser -u nobody -- ls "$M/$I2/src/sub"
        [[ $RUN_RC -ne 0 ]] || fail "nobody listed a 0750 directory through the mount"
        log "ok: allow_other with default_permissions refuses what the original refused"
else
        log "NOTE: no 'nobody' user or runuser: permission check skipped"
fi

# ---- a backup taken while mounted appears without remount
sleep 1.1
printf 'four\n' >"$S/a.txt"
backup_ok "$S"
mapfile -t ids < <(snapshot_ids --component src)
I4=$(instant_of "${ids[3]}")
seen=0
for ((i = 0; i < 100; i++)); do
        if [[ -d $M/$I4 && $(readlink "$M/latest") == "$I4" ]]; then
                seen=1
                break
        fi
        sleep 0.1
done
((seen)) || fail "the new snapshot $I4 did not appear within 10 s"
[[ $(cat "$M/latest/src/a.txt") == four ]] || fail "latest does not show the new backup"
log "ok: a backup taken while mounted appeared after $((i * 100)) ms"

# ---- a corrupted pack: EIO for that file only
C="$T/c"
mkdir -p "$C"
random_file "$C/victim.bin" $((3 * 1024 * 1024))
printf 'fine\n' >"$C/fine.txt"
touch "$T/before-c"
sleep 0.01
backup_ok "$C"
pack=$(find "$TIDEMARK_REPOSITORY/data" -type f -newer "$T/before-c" -regextype posix-extended \
        -regex '.*/[0-9a-f]{64}' -printf '%s %p\n' | sort -rn | head -n1 | cut -d' ' -f2-)
[[ -n $pack ]] || fail "no new pack for the victim"
python3 - "$pack" <<'EOF'
import os, sys
p = sys.argv[1]
size = os.path.getsize(p)
with open(p, 'r+b') as f:
    f.seek(size // 2)
    b = f.read(1)
    f.seek(size // 2)
    f.write(bytes([b[0] ^ 0x5a]))
EOF
for ((i = 0; i < 100; i++)); do
        [[ -d $M/latest/c ]] && break
        sleep 0.1
done
[[ -d $M/latest/c ]] || fail "component c did not appear"
run sh -c "cat '$M/latest/c/victim.bin' >/dev/null"
[[ $RUN_RC -ne 0 ]] || fail "reading a file with a corrupted blob succeeded"
assert_contains "$RUN_ERR" "Input/output error" "read of the corrupted file"
[[ $(cat "$M/latest/c/fine.txt") == fine ]] || fail "the other file of the snapshot does not read"
cmp "$M/$I1/src/sub/data.bin" <(tm restore "${ids[0]}" --target "$T/r1" -q >/dev/null && cat "$T/r1/sub/data.bin") ||
        fail "another snapshot no longer reads"
for i in 1 2 3 4 5 6 7 8; do
        cmp -s "$M/latest/big/f$i" "$B/f$i" || fail "big/f$i differs after the corruption"
done
log "ok: the corrupted blob gives EIO for its file only"

# ---- SIGTERM unmounts cleanly
kill -TERM "$FS_PID"
rc=0
wait "$FS_PID" || rc=$?
mountpoint -q "$M" && fail "still mounted after SIGTERM"
((rc == 0)) || fail "tidemark-fs exited $rc after SIGTERM: $(cat "$T/fs.log")"
grep -q "blob [0-9a-f]\{64\} failed verification" "$T/fs.log" ||
        fail "the corrupted blob was not logged with its id: $(cat "$T/fs.log")"
[[ $(grep -c "failed verification" "$T/fs.log") -le 2 ]] ||
        fail "the corrupted blob was logged more than once: $(cat "$T/fs.log")"
log "ok: SIGTERM unmounted cleanly"

# ---- as a mount helper (/sbin/mount.fuse.tidemark -> tidemark-fs): called
# like mount(8) calls it, source first, options from fstab, no environment;
# it daemonizes and returns once mounted
M3="$T/mnt3"
mkdir -p "$M3"
printf '%s\n' "$TIDEMARK_PASSWORD" >"$T/pwfile"
chmod 0600 "$T/pwfile"
ln -s "$TM_BIN/tidemark-fs" "$T/mount.fuse.tidemark"
on_exit "fuse_teardown '$M3'"
run env -u TIDEMARK_PASSWORD -u TIDEMARK_REPOSITORY -u TIDEMARK_CATALOG \
        "$T/mount.fuse.tidemark" "$TIDEMARK_REPOSITORY" "$M3" \
        -o "rw,nosuid,nodev,nofail,password_file=$T/pwfile,catalog=$T/catalog-helper.db"
assert_rc 0 "mount helper"
mountpoint -q "$M3" || fail "the mount helper returned without a mount"
grep -q " $M3 fuse.tidemark ro," /proc/mounts || fail "not mounted read-only as fuse.tidemark: $(grep "$M3" /proc/mounts)"
assert_tree_matches "$T/m1" "$M3/$I1/src" "tree at $I1 through the mount helper"
fusermount3 -u "$M3" || fail "fusermount3 -u of the helper mount"
for ((i = 0; i < 100; i++)); do
        pgrep -f "mount.fuse.tidemark $TIDEMARK_REPOSITORY" >/dev/null || break
        sleep 0.05
done
pgrep -f "mount.fuse.tidemark $TIDEMARK_REPOSITORY" >/dev/null && fail "the daemon did not exit after fusermount3 -u"
log "ok: mount helper invocation, daemon mode, fusermount3 -u"

# ---- a killed tidemark-fs leaves a stale mount that the teardown removes
M2="$T/mnt2"
mkdir -p "$M2"
fuse_mount_bg "$M2" "$T/fs2.log" "$TM_BIN/tidemark-fs" "$M2" -f
kill -9 "$FUSE_PID"
wait "$FUSE_PID" 2>/dev/null || true
run ls "$M2"
[[ $RUN_RC -ne 0 ]] || fail "a killed filesystem still answers"
fuse_teardown "$M2"
mountpoint -q "$M2" && fail "teardown left $M2 mounted"
log "ok: a killed tidemark-fs is cleaned up by the teardown"
pass
