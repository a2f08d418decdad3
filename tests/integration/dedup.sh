#!/usr/bin/env bash
# One 4 MiB random file in 10 places is stored once: the repository's data/
# grows by about 4 MiB, not 40, and `stats --json` agrees.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

MIB=$((1024 * 1024))
S="$T/src"
mkdir -p "$S"
random_file "$T/blob" $((4 * MIB))
for i in $(seq 1 10); do
        mkdir -p "$S/copy$i/deeper"
        cp "$T/blob" "$S/copy$i/deeper/file$i.bin"
done

before=$(repo_data_bytes)
backup_ok "$S"
log "backup: $RUN_OUT"
after=$(repo_data_bytes)
added=$((after - before))
log "data/ before $before, after $after, added $added bytes (source: 10 x $((4 * MIB)))"
((added >= 4 * MIB)) || fail "data/ grew by only $added bytes: less than the 4 MiB of unique data?"
((added < 5 * MIB)) || fail "data/ grew by $added bytes for 4 MiB of unique data: not deduplicated"

# A second backup of the same tree (full: re-read everything) adds nothing
# but metadata.
backup_ok --strategy full "$S"
after2=$(repo_data_bytes)
log "full re-backup added $((after2 - after)) bytes"
((after2 - after < 256 * 1024)) || fail "full re-backup of unchanged data added $((after2 - after)) bytes"

# A copy with a different name in a different component dedups too.
mkdir -p "$T/other"
cp "$T/blob" "$T/other/again.bin"
backup_ok --component other "$T/other"
after3=$(repo_data_bytes)
((after3 - after2 < 256 * 1024)) || fail "same content in another component added $((after3 - after2)) bytes"

run tm stats --json
assert_rc 0 "stats --json"
log "stats --json: $RUN_OUT"
printf '%s' "$RUN_OUT" | python3 -c '
import json, sys
MIB = 1 << 20
d = json.load(sys.stdin)
def find(*words):
    for k, v in d.items():
        if isinstance(v, (int, float)) and all(w in k.lower() for w in words):
            return k, v
    return None, None
k, snaps = find("snapshot")
if snaps != 3:
    sys.exit("stats: snapshots %r != 3" % snaps)
# logical size: 3 snapshots: 10 + 10 + 1 copies of 4 MiB
k, restore = find("restore", "byte")
if restore is None:
    k, restore = find("restore", "size")
if restore is None or not (21 * 4 * MIB <= restore < 21 * 4 * MIB + MIB):
    sys.exit("stats: total restore size %s=%r, expected 84 MiB" % (k, restore))
# unique plaintext
k, raw = find("raw", "byte")
if raw is None:
    k, raw = find("unique", "byte")
if raw is None or not (4 * MIB <= raw < 4 * MIB + 256 * 1024):
    sys.exit("stats: unique/raw blob bytes %s=%r, expected about 4 MiB" % (k, raw))
k, packb = find("pack", "byte")
if packb is None or not (4 * MIB <= packb < 5 * MIB):
    sys.exit("stats: pack bytes %s=%r, expected about 4 MiB" % (k, packb))
print("stats ok: restore %d, unique %d, packs %d bytes" % (restore, raw, packb))
' || fail "stats --json does not show the data stored once"

# And everything restores.
restore_ok latest "$T/r"
cmp "$T/blob" "$T/r/again.bin" || fail "restored copy differs"
restore_ok latest "$T/r2" --component src
for i in $(seq 1 10); do
        cmp "$T/blob" "$T/r2/copy$i/deeper/file$i.bin" || fail "restored copy $i differs"
done
pass
