#!/usr/bin/env bash
# Back up a tree with every kind of entry and metadata, change it, back up
# again; both snapshots restore to exactly what the source was at each time
# (bytes, modes, owners, mtimes, symlinks, hard links, fifos, xattrs, ACLs).
# Also restore --include, ls, snapshots --json, diff.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init
is_root || skip "needs root (chown, setuid, devices)"
command -v setfattr >/dev/null || skip "setfattr (attr) missing"

S="$T/src"
mkdir -p "$S"
cd "$S"

# ---- regular files
: >empty
printf 'hello\n' >small.txt
random_file rand3m.bin $((3 * 1024 * 1024))
# 20 MiB: a 4 MiB random block three times (dedup inside the file) between
# random parts.
random_file "$T/block" $((4 * 1024 * 1024))
{
        head -c 1000003 /dev/urandom
        cat "$T/block" "$T/block"
        head -c 2500000 /dev/urandom
        cat "$T/block"
        head -c $((20 * 1024 * 1024 - 12 * 1024 * 1024 - 3500003)) /dev/urandom
} >big20m.bin
[[ $(stat -c %s big20m.bin) -eq $((20 * 1024 * 1024)) ]] || fail "test setup: big20m size"

# ---- nested dirs
mkdir -p a/b/c/d/e emptydir
printf 'deep\n' >a/b/c/d/e/deep.txt
for i in $(seq 1 30); do printf 'file %d\n' "$i" >"a/b/f$i.txt"; done
mkdir sub
printf 'in sub\n' >sub/one.txt
random_file sub/two.bin 70000
mkdir sub/inner
printf 'inner\n' >sub/inner/x

# ---- symlinks
ln -s small.txt link-rel
ln -s ../../small.txt a/b/link-up
ln -s /etc/hostname link-abs
ln -s does/not/exist link-dangling
ln -s sub link-dir
ln -s "$S/a" link-abs-dir
chown -h 1234:5678 link-rel

# ---- hard links (a 3-way group across dirs, and a pair)
printf 'linked content\n' >hl1
ln hl1 a/hl2
ln hl1 sub/hl3
random_file pair1 10000
ln pair1 pair2
setfattr -n user.on_inode -v shared pair1

# ---- special files
mkfifo fifo
chmod 0640 fifo
mknod chardev c 1 3 2>/dev/null || log "mknod not permitted here; no device in the tree"

# ---- odd names
printf 'space\n' >"with space.txt"
printf 'unicode\n' >"ünïcødé-文件-😀.txt"
printf 'dash\n' >"-leading-dash"
printf 'quotes\n' >"quo\"te's \\ back*slash?"
printf 'tab\n' >"$(printf 'tab\there')"
mkdir "dir with space"
printf 'x\n' >"dir with space/ä ö ü"
printf 'long\n' >"$(printf 'L%.0s' $(seq 1 250))"

# ---- modes and owners
printf 'secret\n' >m0600
chmod 0600 m0600
printf '#!/bin/sh\n' >m0755
chmod 0755 m0755
printf 'suid\n' >suid
chmod 04755 suid
printf 'ro\n' >m0444
chmod 0444 m0444
printf 'owned\n' >owned
chown 1234:5678 owned
printf 'owned suid\n' >owned-sgid
chown 1234:5678 owned-sgid
chmod 02750 owned-sgid
mkdir sticky && chmod 01777 sticky
mkdir -p locked/inner && printf 'in a read-only dir\n' >locked/inner/f && chmod 0555 locked/inner && chmod 0500 locked
mkdir ownerdir && printf 'x\n' >ownerdir/f && chown -R 4321:8765 ownerdir

# ---- xattrs and ACLs
setfattr -n user.comment -v "hello world" small.txt
setfattr -n user.bin -v 0x00ff10fe80 small.txt
setfattr -n user.empty small.txt
setfattr -n user.dir -v "on a dir" sub
setfattr -n user.big -v "$(printf 'v%.0s' $(seq 1 2000))" rand3m.bin
if command -v setfacl >/dev/null; then
        setfacl -m u:1234:rw,g:5678:r m0600
        setfacl -d -m u:1234:rwx sub
fi

# ---- mtimes in the past (directories last, deepest first)
touch -d '2001-02-03 04:05:06.123456789' small.txt
touch -d '1999-12-31 23:59:59' empty rand3m.bin
touch -d '2010-06-15 12:00:00.5' big20m.bin
touch -h -d '2005-05-05 05:05:05' link-rel
touch -d '2003-03-03 03:03:03' fifo
find "$S" -mindepth 1 -type d -printf '%d %p\n' | sort -rn | cut -d' ' -f2- | while IFS= read -r d; do
        touch -d '2012-12-12 12:12:12.121212121' "$d"
done
cd "$T"

# ---- first backup
snapshot_tree "$S" "$T/m1.before"
backup_ok "$S"
log "backup 1: $RUN_OUT"
[[ $RUN_OUT =~ ^snapshot\ [0-9a-f]{8}\ saved: ]] || fail "backup output not as specified: '$RUN_OUT'"
snapshot_tree "$S" "$T/m1"
assert_files_equal "$T/m1.before" "$T/m1" "backup 1 changed the source tree"

# ---- change the tree
sleep 1.1 # so that second-resolution mtimes could not hide the changes
cd "$S"
printf 'HELLO\n' >small.txt.new && cat small.txt.new >small.txt && rm small.txt.new # same size, new bytes
touch -d '2001-02-03 04:05:06.123456789' small.txt  # and the old mtime: only ctime tells
head -c 12345 /dev/urandom >>big20m.bin                  # append
rm rand3m.bin                                            # delete
rm -r a/b/c                                              # delete a subtree
printf 'new file\n' >new.txt                             # add
mkdir newdir && random_file newdir/n.bin 200000
chmod 0700 m0755                                         # mode
setfattr -n user.comment -v "changed" small.txt          # xattr value
setfattr -x user.bin small.txt                           # xattr removed
setfattr -n user.added -v "yes" m0444                    # xattr added
chown 2222:3333 m0444                                    # owner
rm sub/hl3 && printf 'no longer linked\n' >sub/hl3       # break a hard link
rm link-rel && printf 'now a file\n' >link-rel           # type change
printf 'sub changed\n' >>sub/one.txt
cd "$T"

snapshot_tree "$S" "$T/m2.before"
backup_ok "$S"
log "backup 2: $RUN_OUT"
snapshot_tree "$S" "$T/m2"
snapshot_tree "$S/sub" "$T/m2.sub"
assert_files_equal "$T/m2.before" "$T/m2" "backup 2 changed the source tree"

# ---- snapshots --json
json=$(tm snapshots --json) || fail "snapshots --json failed"
n=$(printf '%s' "$json" | json_get 'len(d)') || fail "snapshots --json not a JSON array: $json"
[[ $n -eq 2 ]] || fail "expected 2 snapshots, got $n: $json"
mapfile -t ids < <(printf '%s' "$json" | json_get '[s["id"] for s in d]')
for id in "${ids[@]}"; do
        [[ $id =~ ^[0-9a-f]{64}$ ]] || fail "snapshot id '$id' is not 64 hex"
done
comp=$(printf '%s' "$json" | json_get '",".join(s["component"] for s in d)')
[[ $comp == "src,src" ]] || fail "component should default to the basename 'src', got '$comp'"
ordered=$(printf '%s' "$json" | json_get 'd[0]["time"] < d[1]["time"]')
[[ $ordered == True ]] || fail "snapshots --json not oldest first: $json"
run tm snapshots
assert_rc 0 "snapshots"
assert_contains "$RUN_OUT" "${ids[0]:0:8}" "snapshots table lists the first"
assert_contains "$RUN_OUT" "${ids[1]:0:8}" "snapshots table lists the second"

# ---- restore both, compare everything
restore_ok "${ids[0]}" "$T/r1"
assert_tree_matches "$T/m1" "$T/r1" "restore of snapshot 1 differs from the source at backup 1"
restore_ok "${ids[1]:0:8}" "$T/r2"
assert_tree_matches "$T/m2" "$T/r2" "restore of snapshot 2 differs from the source at backup 2"
restore_ok latest "$T/r3"
assert_tree_matches "$T/m2" "$T/r3" "restore of latest differs from the source at backup 2"

# ---- restore --include one subdir
restore_ok "${ids[1]}" "$T/rsub" --include /sub
[[ -d $T/rsub/sub ]] || fail "restore --include /sub did not create TARGET/sub: $(ls -la "$T/rsub")"
extra=$(find "$T/rsub" -mindepth 1 -maxdepth 1 ! -name sub)
[[ -z $extra ]] || fail "restore --include /sub restored more than /sub: $extra"
assert_tree_matches "$T/m2.sub" "$T/rsub/sub" "restore --include /sub differs"

# ---- ls lists every path
python3 - "$S" >"$T/ls.expected" <<'EOF'
import os, sys
root = sys.argv[1]
out = []
for dp, dn, fn in os.walk(root):
    for n in dn + fn:
        out.append('/' + os.path.relpath(os.path.join(dp, n), root))
print('\n'.join(sorted(out)))
EOF
run tm ls latest
assert_rc 0 "ls latest"
printf '%s\n' "$RUN_OUT" | grep -vx '/' | LC_ALL=C sort >"$T/ls.actual"
LC_ALL=C sort -o "$T/ls.expected" "$T/ls.expected"
assert_files_equal "$T/ls.expected" "$T/ls.actual" "ls latest does not list exactly the source paths"
run tm ls "${ids[0]}" /sub
assert_rc 0 "ls SNAP /sub"
assert_contains "$RUN_OUT" "/sub/inner/x" "ls SNAP /sub"
assert_not_contains "$RUN_OUT" "/small.txt" "ls SNAP /sub lists only /sub"
run tm ls -l "${ids[0]}"
assert_rc 0 "ls -l"
run tm ls --json "${ids[0]}"
assert_rc 0 "ls --json"
printf '%s\n' "$RUN_OUT" | python3 -c '
import json, sys
seen = {}
for line in sys.stdin:
    if line.strip():
        o = json.loads(line)
        seen[o["path"]] = o
e = seen.get("/suid") or sys.exit("ls --json: no /suid entry")
if e["type"] not in ("file", "regular") or e["size"] != 5 or (e["mode"] & 0o7777) != 0o4755:
    sys.exit("ls --json /suid wrong: %r" % e)
o = seen.get("/owned") or sys.exit("ls --json: no /owned")
if (o["uid"], o["gid"]) != (1234, 5678):
    sys.exit("ls --json /owned owner wrong: %r" % o)
' || fail "ls --json content"

# ---- diff shows the changed paths
run tm diff "${ids[0]}" "${ids[1]}"
assert_rc 0 "diff"
log "diff output:"$'\n'"$RUN_OUT"
expect_diff() { # CHAR PATH
        grep -qE "^[$1][[:space:]]+$(printf '%s' "$2" | sed 's/[.[\*^$()+?{|]/\\&/g')\$" <<<"$RUN_OUT" ||
                fail "diff: expected a line '$1    $2'"
}
expect_diff + /new.txt
expect_diff + /newdir
expect_diff - /rand3m.bin
expect_diff - /a/b/c
expect_diff M /small.txt
expect_diff M /big20m.bin
expect_diff M /m0755
expect_diff M /m0444
expect_diff M /sub/one.txt
expect_diff T /link-rel
if grep -qE '^[-+MT][[:space:]]+/empty$' <<<"$RUN_OUT"; then
        fail "diff lists the unchanged /empty"
fi

check_ok --read-data
pass
