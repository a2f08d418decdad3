#!/usr/bin/env bash
# One flipped byte in a data pack: check --read-data fails naming the pack,
# a blob, the snapshots and the file affected; restore fails naming the file,
# never leaves wrong bytes, and restores every other file.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

S="$T/src"
mkdir -p "$S"
for i in $(seq -w 1 20); do
        random_file "$S/f$i.bin" $((1536 * 1024 + RANDOM))
done
backup_ok "$S"
printf 'later\n' >"$S/later.txt"
backup_ok "$S" # shares every blob with the first snapshot
mapfile -t ids < <(snapshot_ids)
[[ ${#ids[@]} -eq 2 ]] || fail "expected 2 snapshots"

mapfile -t packs < <(find "$TIDEMARK_REPOSITORY/data" -type f -regextype posix-extended \
        -regex '.*/[0-9a-f]{64}' -printf '%s %p\n' | sort -rn | cut -d' ' -f2-)
log "${#packs[@]} pack files"
((${#packs[@]} >= 3)) || fail "expected several packs for 30 MiB of data, got ${#packs[@]}"
check_ok --read-data

# Flip one byte in the middle of the largest pack (a data pack: trees are
# tiny and never share a pack with data).
pack=${packs[0]}
pack_id=$(basename "$pack")
python3 - "$pack" <<'EOF'
import os, sys
p = sys.argv[1]
size = os.path.getsize(p)
with open(p, 'r+b') as f:
    f.seek(size // 2)
    b = f.read(1)
    f.seek(size // 2)
    f.write(bytes([b[0] ^ 0x5a]))
print('flipped byte at %d of %d' % (size // 2, size), file=sys.stderr)
EOF

# ---- check --read-data
run tm check --read-data
log "check --read-data after corruption: exit $RUN_RC"$'\n'"$RUN_OUT"$'\n'"$RUN_ERR"
[[ $RUN_RC -ne 0 ]] || fail "check --read-data passed on a corrupted pack"
all="$RUN_OUT"$'\n'"$RUN_ERR"
assert_contains "$all" "${pack_id:0:16}" "check names the corrupted pack"
# a blob id: a hex id (>= 8 digits) on a line that says blob, not the pack's
blob_ids=$( (grep -i 'blob' <<<"$all" || true) | grep -oE '[0-9a-f]{8,64}' | grep -v "^${pack_id:0:8}" |
        grep -vE "^(${ids[0]:0:8}|${ids[1]:0:8})" || true)
[[ -n $blob_ids ]] || fail "check does not name a blob id"
log "check names blob id(s): $(tr '\n' ' ' <<<"$blob_ids")"
assert_contains "$all" "${ids[0]:0:8}" "check names the first snapshot affected"
assert_contains "$all" "${ids[1]:0:8}" "check names the second snapshot affected"
mapfile -t check_files < <(printf '%s\n' "$all" | grep -oE 'f[0-9]{2}\.bin' | sort -u)
((${#check_files[@]} >= 1)) || fail "check does not name the affected file"
log "check names file(s): ${check_files[*]}"
((${#check_files[@]} <= 2)) || fail "one flipped byte should affect one file (two if on a blob boundary), check names ${check_files[*]}"

# ---- restore
run tm restore "${ids[1]}" --target "$T/r"
log "restore after corruption: exit $RUN_RC"$'\n'"$RUN_ERR"
assert_rc 1 "restore of a snapshot with a corrupted blob"
mapfile -t restore_files < <(printf '%s\n' "$RUN_OUT$RUN_ERR" | grep -oE 'f[0-9]{2}\.bin' | sort -u)
[[ "${restore_files[*]}" == "${check_files[*]}" ]] ||
        fail "restore names '${restore_files[*]}' but check named '${check_files[*]}'"
[[ -d $T/r ]] || fail "restore left no target at all"
# Nothing but source files in the target (no temporary leftovers) ...
while IFS= read -r -d '' f; do
        rel=${f#"$T/r/"}
        [[ -e $S/$rel ]] || fail "restore left an unexpected file: $rel"
done < <(find "$T/r" -mindepth 1 -print0)
# ... every file present is byte-exact, the failed ones are absent, every
# other one is present.
for src in "$S"/*; do
        name=$(basename "$src")
        failed=0
        for x in "${restore_files[@]}"; do [[ $x == "$name" ]] && failed=1; done
        if ((failed)); then
                [[ ! -e $T/r/$name ]] || cmp -s "$src" "$T/r/$name" ||
                        fail "restore left wrong bytes in $name"
                [[ ! -e $T/r/$name ]] || log "NOTE: $name reported failed but present with correct bytes"
        else
                [[ -f $T/r/$name ]] || fail "$name was not restored (only ${restore_files[*]} should fail)"
                cmp "$src" "$T/r/$name" || fail "restored $name differs from the source"
        fi
done
pass
