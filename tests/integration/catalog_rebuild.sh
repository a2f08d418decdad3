#!/usr/bin/env bash
# The catalog is a cache: deleted, overwritten with garbage or truncated, it
# is rebuilt by itself and every snapshot is still listed; `repair catalog`
# rebuilds it on request.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

C=$TIDEMARK_CATALOG
S="$T/src"
mkdir -p "$S"
for i in 1 2 3; do
        printf 'version %d\n' "$i" >"$S/file"
        random_file "$S/r$i" 100000
        backup_ok "$S"
done
backup_ok --component other "$S"
[[ -f $C ]] || fail "no catalog at TIDEMARK_CATALOG=$C after backups"
snapshot_ids >"$T/ids.expected"
[[ $(wc -l <"$T/ids.expected") -eq 4 ]] || fail "expected 4 snapshots: $(cat "$T/ids.expected")"
tm ls latest --component src | LC_ALL=C sort >"$T/ls.expected"

# expect_all WHAT: every snapshot is listed, latest resolves and restores.
expect_all() {
        run tm snapshots --json
        assert_rc 0 "snapshots after: $1"
        printf '%s' "$RUN_OUT" | json_get '[s["id"] for s in d]' >"$T/ids.actual" ||
                fail "$1: snapshots --json unparsable: $RUN_OUT"
        assert_files_equal "$T/ids.expected" "$T/ids.actual" "snapshots after: $1"
        run tm ls latest --component src
        assert_rc 0 "ls latest after: $1"
        printf '%s\n' "$RUN_OUT" | LC_ALL=C sort >"$T/ls.actual"
        assert_files_equal "$T/ls.expected" "$T/ls.actual" "ls latest after: $1"
        rm -rf "$T/r"
        restore_ok latest "$T/r" --component src
        cmp "$S/r3" "$T/r/r3" || fail "restore after $1: r3 differs"
        log "ok: $1"
}

log "catalog files: $(cd "$(dirname "$C")" && echo catalog*)"
rm -f "$C"
expect_all "catalog.db deleted"
[[ -f $C ]] || fail "the catalog was not recreated at $C"

head -c 4096 /dev/urandom >"$C"
rm -f "$C-wal" "$C-shm"
expect_all "catalog.db overwritten with 4 KiB of garbage"

size=$(stat -c %s "$C")
truncate -s $((size / 2)) "$C"
expect_all "catalog.db truncated from $size to $((size / 2)) bytes"

# Garbage with a valid SQLite header (the file looks like a database).
python3 - "$C" <<'EOF'
import os, sys
p = sys.argv[1]
with open(p, 'r+b') as f:
    f.seek(0, 2)
    size = f.tell()
    f.seek(4096)
    f.write(os.urandom(max(0, size - 4096)))
EOF
expect_all "catalog.db pages after the first overwritten with garbage"

# A stale catalog: a snapshot the catalog does not know about (taken with
# another catalog file) and one it knows but that was forgotten elsewhere.
cp "$C" "$T/stale.db"
printf 'version 4\n' >"$S/file"
TIDEMARK_CATALOG="$T/other.db" tm backup -q "$S" || fail "backup with another catalog"
id_new=$(TIDEMARK_CATALOG="$T/other.db" snapshot_ids | tail -n 1)
first=$(head -n 1 "$T/ids.expected")
TIDEMARK_CATALOG="$T/other.db" tm forget "$first" >/dev/null || fail "forget $first with another catalog"
# expected: oldest first, without the forgotten one, the new one last
tail -n +2 "$T/ids.expected" >"$T/ids.tmp"
printf '%s\n' "$id_new" >>"$T/ids.tmp"
mv "$T/ids.tmp" "$T/ids.expected"
cp "$T/stale.db" "$C"
rm -f "$C-wal" "$C-shm"
run tm snapshots --json
assert_rc 0 "snapshots with a stale catalog"
printf '%s' "$RUN_OUT" | json_get '[s["id"] for s in d]' >"$T/ids.actual"
assert_files_equal "$T/ids.expected" "$T/ids.actual" "snapshots with a stale catalog (one new, one forgotten elsewhere)"

run tm repair catalog
assert_rc 0 "repair catalog"
log "repair catalog: $RUN_OUT"
expect_all "repair catalog"

# repair catalog on a garbage file works too.
head -c 4096 /dev/urandom >"$C"
run tm repair catalog
assert_rc 0 "repair catalog over garbage"
expect_all "repair catalog over garbage"
check_ok --read-data
pass
