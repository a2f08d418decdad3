#!/usr/bin/env bash
# Bad input: exit 1 and one line on stderr starting "tidemark: error: ".
# And @TIME resolution.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup

run tm --version
assert_rc 0 "--version"
[[ $RUN_OUT == "tidemark 0.1.0" ]] || fail "--version printed '$RUN_OUT'"
run tm version
assert_rc 0 "version"
[[ $RUN_OUT == "tidemark 0.1.0" ]] || fail "version printed '$RUN_OUT'"
run tm help
assert_rc 0 "help"
[[ -n $RUN_OUT$RUN_ERR ]] || fail "help printed nothing"

# ---- no repository
assert_fails_cleanly "no repository there" tm snapshots
assert_contains "$RUN_ERR" "$TIDEMARK_REPOSITORY" "the error names the location"
[[ ! -e $TIDEMARK_REPOSITORY ]] || fail "snapshots on a missing repository created $TIDEMARK_REPOSITORY"
assert_fails_cleanly "no repository given" env -u TIDEMARK_REPOSITORY "$TM_EXE" snapshots
mkdir -p "$T/emptydir"
assert_fails_cleanly "an empty directory is no repository" tm -r "$T/emptydir" snapshots

tm_init
# ---- init twice
assert_fails_cleanly "init over an existing repository" tm init "${TM_KDF_ARGS[@]}"

# ---- no passphrase, stdin not a terminal
assert_fails_cleanly "no passphrase" env -u TIDEMARK_PASSWORD "$TM_EXE" snapshots </dev/null
assert_contains "$RUN_ERR" "no passphrase: set TIDEMARK_PASSWORD, TIDEMARK_PASSWORD_FILE or --password-file" "no passphrase message"
assert_fails_cleanly "missing password file" env -u TIDEMARK_PASSWORD "$TM_EXE" --password-file "$T/nope" snapshots </dev/null

# ---- commands and options
assert_fails_cleanly "unknown command" tm frobnicate
assert_fails_cleanly "unknown option" tm snapshots --no-such-option
assert_fails_cleanly "an option of another command" tm snapshots --no-wait
assert_contains "$RUN_ERR" "option '--no-wait' is not valid for 'snapshots'" "the option is named"
run tm
[[ $RUN_RC -eq 1 ]] || { show_run; fail "no command: expected exit 1"; }
assert_fails_cleanly "backup without a path" tm backup
assert_fails_cleanly "backup of a missing path" tm backup "$T/does-not-exist"
assert_fails_cleanly "bad strategy" tm backup --strategy sideways "$T/emptydir"
assert_fails_cleanly "bad --threads" tm --threads many snapshots

# ---- two snapshots, a few seconds apart
mkdir -p "$T/src"
printf 'one\n' >"$T/src/a"
backup_ok "$T/src"
sleep 2.2
printf 'two\n' >"$T/src/b"
backup_ok "$T/src"
json=$(tm snapshots --json)
mapfile -t ids < <(printf '%s' "$json" | json_get '[s["id"] for s in d]')
mapfile -t times < <(printf '%s' "$json" | json_get '[s["time"] for s in d]')
log "snapshots: ${ids[0]:0:8} ${times[0]}, ${ids[1]:0:8} ${times[1]}"

assert_fails_cleanly "restore without --target" tm restore latest
assert_fails_cleanly "restore without a snapshot" tm restore --target "$T/x"
assert_fails_cleanly "a snapshot id that does not exist" tm ls 00000000deadbeef
other=0000
[[ ${ids[0]:0:4} == 0000 || ${ids[1]:0:4} == 0000 ]] && other=ffff
assert_fails_cleanly "a 4-hex prefix that matches nothing" tm ls "$other"
assert_fails_cleanly "a prefix shorter than 4" tm ls "${ids[0]:0:3}"
assert_fails_cleanly "a garbage selector" tm ls 'not-a-snapshot!'
assert_fails_cleanly "an empty selector" tm ls ''
assert_fails_cleanly "@ with no time" tm ls @
assert_fails_cleanly "@2025-02-30" tm ls @2025-02-30
assert_fails_cleanly "@2025-13-01" tm ls @2025-13-01
assert_fails_cleanly "@2025-01-07T25:00" tm ls @2025-01-07T25:00
assert_fails_cleanly "@yesterday" tm ls @yesterday
assert_fails_cleanly "@1999-01-01 (before every snapshot)" tm ls @1999-01-01
assert_fails_cleanly "--keep-last abc" tm forget --keep-last abc
assert_fails_cleanly "--keep-last -1" tm forget --keep-last -1
assert_fails_cleanly "forget with no policy" tm forget
assert_fails_cleanly "forget --prune with no policy" tm forget --prune
assert_fails_cleanly "restore of a path not in the snapshot" tm restore latest --target "$T/x" --include /nope
assert_fails_cleanly "ls of a path not in the snapshot" tm ls latest /nope
assert_fails_cleanly "diff with one snapshot" tm diff latest
assert_fails_cleanly "latest of an unknown component" tm ls latest --component nosuch
[[ $(snapshot_count) -eq 2 ]] || fail "the failed commands changed the snapshots"
[[ ! -e $T/x ]] || [[ -z $(ls -A "$T/x") ]] || fail "a failed restore wrote into the target"

# ---- ambiguous prefix: only testable when the two ids share 4 hex digits
if [[ ${ids[0]:0:4} == "${ids[1]:0:4}" ]]; then
        assert_fails_cleanly "an ambiguous prefix" tm ls "${ids[0]:0:4}"
fi
# full ids and 8-hex prefixes work
run tm ls "${ids[0]}"
assert_rc 0 "ls full id"
[[ $RUN_OUT == "/a" ]] || fail "ls ${ids[0]:0:8} should list /a, got: $RUN_OUT"
run tm ls "${ids[1]:0:8}"
assert_rc 0 "ls 8-hex prefix"

# ---- @TIME: a second strictly between the two snapshots
read -r between after2 < <(python3 -c '
import sys
from datetime import datetime, timedelta, timezone
def parse(s):
    s = s.rstrip("Z")
    base, _, frac = s.partition(".")
    t = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return t, int((frac + "000000000")[:9]) if frac else 0
(t1, n1), (t2, n2) = parse(sys.argv[1]), parse(sys.argv[2])
# the second after t1 (so >= t1 even if seconds are a bound), ending before t2
b = t1 + timedelta(seconds=1)
if b + timedelta(seconds=1) > t2:
    sys.exit("snapshots too close: %s %s" % (sys.argv[1], sys.argv[2]))
print(b.strftime("%Y-%m-%dT%H:%M:%SZ"), (t2 + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
' "${times[0]}" "${times[1]}" || echo FAIL)
[[ $between =~ ^[0-9-]+T[0-9:]+Z$ ]] || fail "cannot compute a time between ${times[*]}"
log "@$between should resolve to ${ids[0]:0:8}"
run tm ls "@$between"
assert_rc 0 "ls @$between"
[[ $RUN_OUT == "/a" ]] || fail "ls @$between should list the first snapshot (/a only), got: $RUN_OUT"
run tm ls "@$after2"
assert_rc 0 "ls @<a second after the second snapshot>"
[[ $(printf '%s\n' "$RUN_OUT" | sort | tr '\n' ' ') == "/a /b " ]] || fail "ls @$after2 should be the second snapshot: $RUN_OUT"
today=$(date -u +%Y-%m-%d)
run tm ls "@$today"
assert_rc 0 "ls @$today"
[[ $(printf '%s\n' "$RUN_OUT" | sort | tr '\n' ' ') == "/a /b " ]] || fail "ls @$today (end of today) should be the second snapshot: $RUN_OUT"
minute=${between:0:16}
run tm ls "@$minute"
assert_rc 0 "ls @$minute"
run tm ls "@$between" --component src
assert_rc 0 "ls @TIME --component src"
[[ $RUN_OUT == "/a" ]] || fail "ls @$between --component src: $RUN_OUT"
assert_fails_cleanly "@TIME of an unknown component" tm ls "@$between" --component nosuch
pass
