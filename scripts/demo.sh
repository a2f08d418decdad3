#!/usr/bin/env bash
# The main job on the embedded default: a local repository and SQLite catalog
# under ./demo/. Backs up a sample tree, changes it, backs it up again, then
# shows the snapshots, what changed, a restore and a verification, and ends
# with the time-travel filesystem mounted at ./demo/mnt: it stays mounted until
# Ctrl-C (or SIGTERM), then unmounts. With DEMO_NO_WAIT=1, or when stdin is
# not a terminal, it unmounts right after showing the mount.
set -euo pipefail
BIN=${1:-build/bin}
TM="$BIN/tidemark"
DEMO=${DEMO_DIR:-$PWD/demo}
MNT="$DEMO/mnt"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# The filesystem process (tidemark mount -f, which becomes tidemark-fs) by
# PID: whatever ends the demo, the mount goes with it.
FS_PID=
unmount() {
  if mountpoint -q "$MNT" 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if [ -n "$FS_PID" ]; then
    for _ in $(seq 50); do kill -0 "$FS_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$FS_PID" 2>/dev/null || true
    wait "$FS_PID" 2>/dev/null || true
    FS_PID=
  fi
}
trap unmount EXIT
trap 'echo; unmount; echo "unmounted ${MNT#"$PWD"/}"; exit 0' INT TERM

# a mount left over from an earlier demo would stop rm -rf
if mountpoint -q "$MNT" 2>/dev/null; then
  fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
fi
rm -rf "$DEMO"
mkdir -p "$DEMO"
export TIDEMARK_REPOSITORY="$DEMO/repo"
export TIDEMARK_CATALOG="$DEMO/catalog.db"
export TIDEMARK_PASSWORD_FILE="$DEMO/passphrase"
head -c 24 /dev/urandom | base64 > "$TIDEMARK_PASSWORD_FILE"
chmod 600 "$TIDEMARK_PASSWORD_FILE"

say "a sample platform: plugins and configuration"
SRC="$DEMO/source/plugins"
mkdir -p "$SRC"
for p in auth billing search; do
  mkdir -p "$SRC/$p/lib" "$SRC/$p/conf"
  cp -r /usr/share/doc/bash "$SRC/$p/docs" 2>/dev/null || true
  head -c $((2 * 1024 * 1024)) /dev/urandom > "$SRC/$p/lib/$p.so"
  printf 'name = %s\nversion = 1.0\n' "$p" > "$SRC/$p/conf/plugin.toml"
done
ln -s auth/conf/plugin.toml "$SRC/default.toml"
cp "$SRC/auth/lib/auth.so" "$SRC/auth/lib/auth-copy.so" # deduplicated
find "$SRC" -type f | wc -l | xargs printf '%s files\n'

say "create the repository"
run "$TM" init

say "first backup"
run "$TM" backup --component plugins --tag demo "$SRC"
cp -a "$SRC" "$DEMO/source-at-first-backup"

say "the plugins change: an upgrade, a removal, a new plugin"
sleep 1
printf 'name = auth\nversion = 2.0\n' > "$SRC/auth/conf/plugin.toml"
head -c 65536 /dev/urandom >> "$SRC/billing/lib/billing.so"
rm -rf "$SRC/search"
mkdir -p "$SRC/metrics/conf" && printf 'name = metrics\n' > "$SRC/metrics/conf/plugin.toml"

say "second backup (incremental: only changed files are read)"
run "$TM" backup --component plugins "$SRC"

say "the snapshots"
run "$TM" snapshots

FIRST=$("$TM" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"][:8])')
say "what changed between them"
run "$TM" diff "$FIRST" latest

say "restore the first snapshot and compare it with the tree as it was"
run "$TM" restore "$FIRST" --target "$DEMO/restore"
if diff -r "$DEMO/source-at-first-backup" "$DEMO/restore" >/dev/null; then
  echo "restored tree is identical to the source at the first backup"
else
  echo "restored tree differs from the source!" >&2
  exit 1
fi

say "restore one file at an instant: the state of the first snapshot's time"
T=$("$TM" snapshots --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["time"][:19])')
run "$TM" restore "@$T" --include auth/conf/plugin.toml --target "$DEMO/one-file"
cat "$DEMO/one-file/auth/conf/plugin.toml"

say "verify every byte in the repository"
run "$TM" check --read-data

say "statistics"
run "$TM" stats

say "every instant as a directory: the time-travel filesystem at ${MNT#"$PWD"/}"
mkdir -p "$MNT"
printf '$ %s\n' "$TM mount ${MNT#"$PWD"/} -f &"
"$TM" mount "$MNT" -f </dev/null &
FS_PID=$!
for _ in $(seq 100); do
  [ -e "$MNT/latest" ] && break
  kill -0 "$FS_PID" 2>/dev/null || { echo "tidemark mount failed" >&2; exit 1; }
  sleep 0.1
done
[ -e "$MNT/latest" ] || { echo "the mount did not come up in 10 s" >&2; exit 1; }
M=${MNT#"$PWD"/}
run ls "$M"
INSTANTS=()
for e in "$MNT"/@*; do INSTANTS+=("${e##*/}"); done
run ls "$M/${INSTANTS[0]}/plugins"
run ls "$M/${INSTANTS[${#INSTANTS[@]} - 1]}/plugins"
run cat "$M/${INSTANTS[0]}/plugins/auth/conf/plugin.toml"
run cat "$M/${INSTANTS[${#INSTANTS[@]} - 1]}/plugins/auth/conf/plugin.toml"

say "done: repository in $TIDEMARK_REPOSITORY, catalog in $TIDEMARK_CATALOG"
if [ "${DEMO_NO_WAIT:-0}" = 1 ] || [ ! -t 0 ]; then
  unmount
  echo "unmounted $M"
  exit 0
fi
echo "the repository stays mounted at $M (try: ls $M/latest/plugins, ls $M/.history/plugins);"
echo "press Ctrl-C to unmount and stop"
# wait returns early on a signal; the INT/TERM trap unmounts and exits
while kill -0 "$FS_PID" 2>/dev/null; do wait "$FS_PID" || true; done
FS_PID=
echo "the filesystem stopped (unmounted from outside)"
