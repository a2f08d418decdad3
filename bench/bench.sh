#!/usr/bin/env bash
# bench.sh DATASET_DIR [options]
#
# Compares tidemark with restic and borg on the same data, in the same run, on
# the same machine, and prints a table of ratios (see bench/README.md).
#
# DATASET_DIR is a dataset made by /work/shared/bench/make-dataset.sh (DIR/tree,
# DIR/big).  It is never modified: it is copied (cp -a) into OUT/work first, and
# the copy is mutated with mutate-dataset.sh before the third backup.
#
# Phases, each tool in turn within a phase, page cache dropped before every
# measured command:
#   init      create the repository
#   backup1   first backup of work/tree + work/big
#   backup2   backup again, nothing changed
#   backup3   backup after mutate-dataset.sh
#   restore   full restore of the latest snapshot into an empty dir, then the
#             restored tree is compared with the source (sha256 of every file,
#             types, symlink targets; metadata reported separately)
#
# Options:
#   --tools LIST         comma-separated, from tidemark,restic,borg (default: all
#                        three).  The first one is the base of the ratios.
#   --out DIR            output dir (default: ${TMPDIR:-/tmp}/tidemark-bench-<UTC time>);
#                        holds repos, caches, logs, results.json, table.txt
#   --tidemark PATH      tidemark binary (default: /work/main/build/bin/tidemark,
#                        or $TIDEMARK_BIN)
#   --mutate PATH        mutate script (default: /work/shared/bench/mutate-dataset.sh)
#   --seed N             mutate seed (default: the script's own)
#   --borg-compression C (default: zstd,3 — the same algorithm and level as tidemark)
#   --timeout SECS       kill a tool command after SECS (default 3600; exit 124)
#   --no-drop            do not drop the page cache
#   --keep               keep the work copy and the restored trees
# Exit status: 0 all good; 1 usage/setup error or a tool command failed;
# 2 some tool restored wrong data.
set -uo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
TOOLS=tidemark,restic,borg
OUT=
TIDEMARK=${TIDEMARK_BIN:-/work/main/build/bin/tidemark}
MUTATE=/work/shared/bench/mutate-dataset.sh
SEED=
BORG_COMPRESSION=zstd,3
DROP=1
KEEP=0
TIMEOUT=3600
DATASET=

die() { echo "bench: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-1}"; }

while [ $# -gt 0 ]; do
  case $1 in
    --tools) TOOLS=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --tidemark) TIDEMARK=${2:?}; shift 2 ;;
    --mutate) MUTATE=${2:?}; shift 2 ;;
    --seed) SEED=${2:?}; shift 2 ;;
    --borg-compression) BORG_COMPRESSION=${2:?}; shift 2 ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --no-drop) DROP=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$DATASET" ] || die "one DATASET_DIR only"; DATASET=$1; shift ;;
  esac
done
[ -n "$DATASET" ] || usage 1
DATASET=$(cd "$DATASET" 2>/dev/null && pwd) || die "no such dataset dir"
[ -d "$DATASET/tree" ] && [ -f "$DATASET/big/bigfile.bin" ] \
  || die "$DATASET is not a dataset (wants tree/ and big/bigfile.bin)"
[ -x "$MUTATE" ] || die "mutate script $MUTATE not executable"

IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
  case $t in
    tidemark) [ -x "$TIDEMARK" ] || die "tidemark binary $TIDEMARK not found (--tidemark PATH)" ;;
    restic) command -v restic >/dev/null || die "restic not installed (apt-get install restic)" ;;
    borg) command -v borg >/dev/null || die "borg not installed (apt-get install borgbackup)" ;;
    *) die "unknown tool $t" ;;
  esac
done
if [ ! -x /usr/bin/time ]; then
  echo "bench: installing GNU time" >&2
  apt-get install -y time >/dev/null 2>&1 || die "/usr/bin/time missing (apt-get install time)"
fi

[ -n "$OUT" ] || OUT=${TMPDIR:-/tmp}/tidemark-bench-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
[ -z "$(ls -A "$OUT")" ] || die "$OUT is not empty"
mkdir -p "$OUT"/{repo,cache,logs,home,tmp,manifest}
WORK=$OUT/work
RAW=$OUT/raw.jsonl
: >"$RAW"

# Everything a tool might write goes under OUT: nothing in the real $HOME.
export HOME=$OUT/home XDG_CACHE_HOME=$OUT/home/.cache XDG_CONFIG_HOME=$OUT/home/.config
export TMPDIR=$OUT/tmp
export RESTIC_PASSWORD=bench-passphrase BORG_PASSPHRASE=bench-passphrase \
  TIDEMARK_PASSWORD=bench-passphrase
export BORG_BASE_DIR=$OUT/cache/borg-base BORG_CACHE_DIR=$OUT/cache/borg \
  BORG_CONFIG_DIR=$OUT/cache/borg-config BORG_RELOCATED_REPO_ACCESS_IS_OK=yes \
  BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no
export TIDEMARK_CATALOG=$OUT/cache/tidemark/catalog.db
mkdir -p "$OUT/cache/tidemark"
unset RESTIC_REPOSITORY BORG_REPO TIDEMARK_REPOSITORY TIDEMARK_PASSWORD_FILE \
  RESTIC_PASSWORD_FILE BORG_PASSCOMMAND 2>/dev/null || true

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$OUT/bench.log" >&2; }

DROP_OK=0
drop_caches() {
  [ "$DROP" = 1 ] || return 0
  sync
  if echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then DROP_OK=1; else DROP_OK=0; fi
}

# size of the regular files under work/{tree,big}, and how many
src_stats() {
  find "$WORK/tree" "$WORK/big" -type f -printf '%s\n' \
    | awk '{s+=$1; n++} END {printf "%d %d\n", s, n}'
}
dir_bytes() { [ -e "$1" ] && du -sb "$1" | cut -f1 || echo 0; }

repo_of() { echo "$OUT/repo/$1"; }
cache_of() {
  case $1 in
    restic) echo "$OUT/cache/restic" ;;
    borg) echo "$OUT/cache/borg" ;;
    tidemark) echo "$OUT/cache/tidemark" ;;
  esac
}

# Sets CMD (argv) and CWD for TOOL PHASE [TARGET].
build_cmd() {
  local tool=$1 phase=$2 target=${3:-} repo
  repo=$(repo_of "$tool")
  CWD=$WORK
  case $tool/$phase in
    restic/init) CMD=(restic -r "$repo" --cache-dir "$OUT/cache/restic" init --repository-version 2) ;;
    restic/backup*) CMD=(restic -r "$repo" --cache-dir "$OUT/cache/restic" --compression auto
                         backup --host bench tree big) ;;
    restic/restore) CMD=(restic -r "$repo" --cache-dir "$OUT/cache/restic" restore latest --target "$target") ;;
    borg/init) CMD=(borg init -e repokey-blake2 "$repo") ;;
    borg/backup*) CMD=(borg create --compression "$BORG_COMPRESSION" "$repo::$phase" tree big) ;;
    # borg extracts into the cwd; borg 1.2 has no "latest", the last archive is backup3
    borg/restore) CMD=(borg extract "$repo::backup3"); CWD=$target ;;
    tidemark/init) CMD=("$TIDEMARK" -r "$repo" init) ;;
    tidemark/backup*) CMD=("$TIDEMARK" -r "$repo" backup --component ds --host bench tree big) ;;
    tidemark/restore) CMD=("$TIDEMARK" -r "$repo" restore latest --target "$target") ;;
    *) die "internal: no command for $tool/$phase" ;;
  esac
}

FAILED=0
WRONG=0
# measure TOOL PHASE [TARGET]: runs the tool's command for PHASE under
# /usr/bin/time with a cold page cache, appends one JSON record to raw.jsonl.
measure() {
  local tool=$1 phase=$2 target=${3:-} tf lf rc line secs rss usr sys repo_b cache_b l0 l1
  build_cmd "$tool" "$phase" "$target"
  tf=$OUT/logs/$tool.$phase.time
  lf=$OUT/logs/$tool.$phase.log
  drop_caches
  log "$tool $phase: ${CMD[*]}"
  # the 1-minute load average around the command: > nproc means a noisy neighbour
  read -r l0 _ </proc/loadavg
  (cd "$CWD" && /usr/bin/time -f '%e %M %U %S' -o "$tf" \
    timeout -k 10 "$TIMEOUT" "${CMD[@]}") >"$lf" 2>&1 </dev/null
  rc=$?
  read -r l1 _ </proc/loadavg
  # with a non-zero exit, GNU time writes "Command exited ..." first: take the last line
  line=$(tail -n 1 "$tf" 2>/dev/null)
  read -r secs rss usr sys <<<"$line"
  case $secs in ''|*[!0-9.]*) secs=null; rss=null; usr=null; sys=null ;; esac
  repo_b=$(dir_bytes "$(repo_of "$tool")")
  cache_b=$(dir_bytes "$(cache_of "$tool")")
  # restic and tidemark use 3 for "snapshot saved, some files unreadable"
  if [ "$rc" -ne 0 ]; then
    log "!! $tool $phase exited $rc; last lines of $lf:"
    tail -n 5 "$lf" | sed 's/^/   /' | tee -a "$OUT/bench.log" >&2
    FAILED=1
  fi
  printf '{"tool":"%s","phase":"%s","exit":%d,"seconds":%s,"rss_kib":%s,"user_s":%s,"sys_s":%s,"repo_bytes":%s,"cache_bytes":%s,"src_bytes":%s,"src_files":%s,"cache_dropped":%s,"load_before":%s,"load_after":%s}\n' \
    "$tool" "$phase" "$rc" "$secs" "$rss" "$usr" "$sys" "$repo_b" "$cache_b" \
    "$SRC_BYTES" "$SRC_FILES" "$([ "$DROP_OK" = 1 ] && echo true || echo false)" \
    "$l0" "$l1" >>"$RAW"
  log "$tool $phase: exit=$rc ${secs}s rss=${rss}KiB repo=${repo_b}B load=$l0->$l1"
  return "$rc"
}

versions() {
  local t
  for t in "${TOOL_LIST[@]}"; do
    case $t in
      restic) printf '"restic":"%s",' "$(restic version 2>&1 | head -n1)" ;;
      borg) printf '"borg":"%s",' "$(borg --version 2>&1 | head -n1)" ;;
      tidemark) printf '"tidemark":"%s",' "$("$TIDEMARK" --version 2>&1 | head -n1 | tr -d '"\\')" ;;
    esac
  done
}

T0=$(date +%s)
log "bench: dataset $DATASET -> $OUT; tools ${TOOL_LIST[*]}"
log "copying the dataset to $WORK (cp -a; mutate-dataset.sh later modifies the copy in place)"
mkdir -p "$WORK"
cp -a "$DATASET/tree" "$DATASET/big" "$WORK/" || die "copy failed"
read -r SRC_BYTES SRC_FILES < <(src_stats)
log "work copy: $SRC_FILES files, $SRC_BYTES bytes"
drop_caches
[ "$DROP" = 0 ] || [ "$DROP_OK" = 1 ] \
  || log "WARNING: cannot drop the page cache (not root?): timings are warm-cache"

printf '{"meta":{"date":"%s","host":"%s","nproc":%d,"mem_kib":%d,"kernel":"%s","dataset":"%s","out":"%s","tools":"%s","borg_compression":"%s","restic_compression":"auto","mutate":"%s","seed":"%s","cache_drop":%s,"versions":{%s"bench":"1"}}}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(hostname)" "$(nproc)" \
  "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" "$(uname -r)" "$DATASET" "$OUT" "$TOOLS" \
  "$BORG_COMPRESSION" "$MUTATE" "$SEED" "$([ "$DROP_OK" = 1 ] && echo true || echo false)" \
  "$(versions)" >"$OUT/meta.json"

declare -A BROKEN=()   # tool -> 1 once init or the first backup failed
for phase in init backup1 backup2; do
  for t in "${TOOL_LIST[@]}"; do
    [ -z "${BROKEN[$t]:-}" ] || continue
    measure "$t" "$phase" || { [ "$phase" = backup2 ] || BROKEN[$t]=1; }
  done
done

log "mutating the work copy: $MUTATE $WORK $SEED"
# shellcheck disable=SC2086
"$MUTATE" "$WORK" $SEED 2>&1 | tee -a "$OUT/bench.log" || die "mutate failed"
read -r SRC_BYTES SRC_FILES < <(src_stats)
log "mutated work copy: $SRC_FILES files, $SRC_BYTES bytes"

for t in "${TOOL_LIST[@]}"; do
  [ -z "${BROKEN[$t]:-}" ] || continue
  measure "$t" backup3 || BROKEN[$t]=1
done

log "manifest of the source (sha256 of every file)"
python3 "$HERE/lib/manifest.py" make "$WORK" "$OUT/manifest/source.json" tree big \
  | tee -a "$OUT/bench.log" || die "source manifest failed"

for t in "${TOOL_LIST[@]}"; do
  [ -z "${BROKEN[$t]:-}" ] || continue
  target=$OUT/restore-$t
  mkdir -p "$target"
  measure "$t" restore "$target"
  log "$t: verifying the restored tree"
  python3 "$HERE/lib/manifest.py" make "$target" "$OUT/manifest/$t.json" >/dev/null
  python3 "$HERE/lib/manifest.py" compare "$OUT/manifest/source.json" "$OUT/manifest/$t.json" \
    --label "$t" --json "$OUT/manifest/$t.verify.json" 2>&1 | tee -a "$OUT/bench.log" >&2
  [ "${PIPESTATUS[0]}" -eq 0 ] || WRONG=1
  [ "$KEEP" = 1 ] || rm -rf "$target"
done
[ "$KEEP" = 1 ] || rm -rf "$WORK"

log "total bench time $(( $(date +%s) - T0 ))s"
python3 "$HERE/lib/report.py" "$OUT" | tee "$OUT/table.txt"
log "raw numbers: $OUT/results.json; table: $OUT/table.txt; logs: $OUT/logs/"
if [ "$WRONG" = 1 ]; then
  echo "bench: !!!!! AT LEAST ONE TOOL RESTORED WRONG DATA (see above) !!!!!" >&2
  exit 2
fi
[ "$FAILED" = 0 ] || { echo "bench: some tool commands failed (see $OUT/logs)" >&2; exit 1; }
exit 0
