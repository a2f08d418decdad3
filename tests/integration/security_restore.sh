#!/usr/bin/env bash
# Restore is safe against symlink and `..` tricks (issue 9, item 7), end to
# end through the CLI. Hand-made hostile trees (entries named "..", "a/b" or
# "/tmp/x", links under directories) cannot exist on a filesystem; those are
# built through the lib API in tests/unit/test_restore.c
# (test_restore_hostile_names, test_restore_hostile_links). Here, what an
# attacker who controls the backed-up tree can do with real files:
#   1. snapshot A holds symlinks where snapshot B holds directories with
#      files (d -> outside dir, rel -> ../../outside, abs -> /etc): restoring
#      A and then B into the same target must not write through A's links;
#   2. --include with `..` components and absolute escapes writes nothing
#      outside the target;
#   3. symlinks are restored as links with their exact targets, never
#      followed, and a snapshot's links into the target's parents stay links.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
tm_setup
tm_init

OUT=$T/outside
mkdir -p "$OUT" "$T/a" "$T/b/d" "$T/b/rel" "$T/b/abs" "$T/target"
canary="/etc/tidemark-restore-canary-$$"
ln -s "$OUT" "$T/a/d"
ln -s ../outside "$T/a/rel"
ln -s /etc "$T/a/abs"
printf 'through d\n' >"$T/b/d/pwned"
printf 'through rel\n' >"$T/b/rel/pwned"
printf 'through abs\n' >"$T/b/abs/${canary##*/}"
(cd "$T/a" && tm backup --component evil .) >/dev/null || fail "backup A"
(cd "$T/b" && tm backup --component evil .) >/dev/null || fail "backup B"
mapfile -t ids < <(snapshot_ids)
[[ ${#ids[@]} -eq 2 ]] || fail "expected 2 snapshots"

outside_clean() {
        [[ -z $(ls -A "$OUT") ]] || { ls -la "$OUT" >&2; fail "$1: something was written in $OUT"; }
        [[ ! -e $canary ]] || { rm -f "$canary"; fail "$1: restore wrote $canary"; }
}

restore_ok "${ids[0]}" "$T/target"
[[ -L $T/target/d && $(readlink "$T/target/d") == "$OUT" ]] || fail "A: d is not the symlink it was"
[[ $(readlink "$T/target/rel") == ../outside ]] || fail "A: rel -> $(readlink "$T/target/rel")"
[[ $(readlink "$T/target/abs") == /etc ]] || fail "A: abs -> $(readlink "$T/target/abs")"
log "ok: A restored its links as links"

run tm restore "${ids[1]}" --target "$T/target"
log "restore of B over A: exit $RUN_RC ${RUN_ERR:0:200}"
outside_clean "B over A"
if [[ $RUN_RC == 0 ]]; then
        for x in d rel abs; do
                [[ -d $T/target/$x && ! -L $T/target/$x ]] || fail "B over A: $x is not B's directory"
        done
        [[ $(cat "$T/target/d/pwned") == "through d" ]] || fail "B over A: d/pwned content"
fi
log "ok: B over A never wrote through A's links"

for inc in ../outside /../outside "/../../${OUT#/}" "../../../../../../${canary#/}" "d/../../outside"; do
        rm -rf "$T/t2"
        mkdir -p "$T/t2"
        ln -s "$OUT" "$T/t2/d"
        run tm restore "${ids[1]}" --target "$T/t2" --include "$inc"
        outside_clean "--include $inc"
done
log "ok: --include with .. or absolute escapes wrote nothing outside"

# the other order, into a fresh target
rm -rf "$T/t3"
restore_ok "${ids[1]}" "$T/t3"
# links where the target has directories: replacing them or refusing are
# both safe
run tm restore "${ids[0]}" --target "$T/t3"
log "restore of A over B: exit $RUN_RC ${RUN_ERR:0:200}"
outside_clean "A over B"
[[ -L $T/t3/d || -d $T/t3/d ]] || fail "A over B: d vanished"
outside_clean "final"
check_ok
pass
