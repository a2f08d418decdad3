#!/usr/bin/env bash
# bench-mount.sh DATASET_DIR [options]
#
# The mount side of the benchmark: tidemark's time-travel filesystem against
# `restic mount` and `borg mount`, on the same dataset, in the same run (see
# bench/README.md, "Mount benchmark").
#
# DATASET_DIR is a dataset made by /work/shared/bench/make-dataset.sh (DIR/tree,
# DIR/big/bigfile.bin).  It is only read: each tool backs up DIR/tree and
# DIR/big once (relative paths, run from DIR).  Then, tool by tool, in one
# mount per tool, page cache dropped before every measured step:
#   open      (the floor of visible) opening the repository and listing its
#             snapshots without mounting: key derivation and index loading
#   visible   seconds from starting the filesystem process until the snapshot
#             directory is visible and its root lists tree/ (polled every ~5 ms)
#   find      find over every entry of the snapshot, with sizes (a stat each)
#   tar       tar of the whole snapshot through the mount, piped to wc -c
#             (GNU tar skips reading file data when its output is /dev/null)
#   cat       cat of the 500 MiB big/bigfile.bin, piped to wc -c
#   rss       the filesystem process's peak RSS (VmHWM) and CPU, just before
#             unmounting
# and last `tidemark restore` of the same snapshot (the "within 1.5x of
# tidemark's own restore" target).
#
# Options:
#   --tools LIST         comma-separated, from tidemark,restic,borg (default all
#                        three; ratios need tidemark)
#   --out DIR            output dir (default: ${TMPDIR:-/tmp}/tidemark-bench-mount-<UTC time>);
#                        must be empty or absent unless --reuse
#   --tidemark-bin DIR   directory holding tidemark and tidemark-fs (default:
#                        /work/main/build/bin, or $TIDEMARK_BIN_DIR)
#   --reuse              OUT may hold the repositories of an earlier run of this
#                        script: a tool whose repository exists is not backed up again
#   --borg-compression C (default: zstd,3 — the same algorithm and level as tidemark)
#   --timeout SECS       kill a tool command after SECS (default 3600; exit 124)
#   --no-drop            do not drop the page cache
# Exit status: 0 all good; 1 usage/setup error or a tool command failed, or a
# mount showed a different number of files or bytes than the dataset.
set -uo pipefail
export LC_ALL=C

TOOLS=tidemark,restic,borg
OUT=
BIN_DIR=${TIDEMARK_BIN_DIR:-/work/main/build/bin}
BORG_COMPRESSION=zstd,3
DROP=1
REUSE=0
TIMEOUT=3600
DATASET=
VISIBLE_TIMEOUT=600

die() { echo "bench-mount: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-1}"; }

while [ $# -gt 0 ]; do
  case $1 in
    --tools) TOOLS=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --tidemark-bin) BIN_DIR=${2:?}; shift 2 ;;
    --reuse) REUSE=1; shift ;;
    --borg-compression) BORG_COMPRESSION=${2:?}; shift 2 ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --no-drop) DROP=0; shift ;;
    -h|--help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$DATASET" ] || die "one DATASET_DIR only"; DATASET=$1; shift ;;
  esac
done
[ -n "$DATASET" ] || usage 1
DATASET=$(cd "$DATASET" 2>/dev/null && pwd) || die "no such dataset dir"
[ -d "$DATASET/tree" ] && [ -f "$DATASET/big/bigfile.bin" ] \
  || die "$DATASET is not a dataset (wants tree/ and big/bigfile.bin)"
BIN_DIR=$(cd "$BIN_DIR" 2>/dev/null && pwd) || die "no such directory: --tidemark-bin"
TIDEMARK=$BIN_DIR/tidemark

IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
  case $t in
    tidemark) [ -x "$TIDEMARK" ] && [ -x "$BIN_DIR/tidemark-fs" ] \
                || die "tidemark and tidemark-fs not found in $BIN_DIR (--tidemark-bin DIR)" ;;
    restic) command -v restic >/dev/null || die "restic not installed (apt-get install restic)" ;;
    borg) command -v borg >/dev/null || die "borg not installed (apt-get install borgbackup)"
          # borg mount needs a FUSE binding for borg's own python
          "$(head -n1 "$(command -v borg)" | sed 's/^#! *//; s/ .*//')" -c 'import llfuse' 2>/dev/null \
            || "$(head -n1 "$(command -v borg)" | sed 's/^#! *//; s/ .*//')" -c 'import pyfuse3' 2>/dev/null \
            || die "borg mount needs llfuse or pyfuse3 (apt-get install python3-llfuse)" ;;
    *) die "unknown tool $t" ;;
  esac
done
command -v fusermount3 >/dev/null || die "fusermount3 missing (apt-get install fuse3)"
if [ ! -x /usr/bin/time ]; then
  echo "bench-mount: installing GNU time" >&2
  apt-get install -y time >/dev/null 2>&1 || die "/usr/bin/time missing (apt-get install time)"
fi

[ -n "$OUT" ] || OUT=${TMPDIR:-/tmp}/tidemark-bench-mount-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)
if [ "$REUSE" = 0 ]; then
  [ -z "$(ls -A "$OUT")" ] || die "$OUT is not empty (--reuse to keep its repositories)"
fi
mkdir -p "$OUT"/{repo,cache,logs,home,tmp,mnt}
RAW=$OUT/raw.jsonl
# with --reuse, the backups of the earlier run stay in the results
if [ "$REUSE" = 1 ] && [ -f "$RAW" ]; then
  grep -E '"step":"(init|backup)"' "$RAW" >"$RAW.old" || true
  mv "$RAW.old" "$RAW"
else
  : >"$RAW"
fi

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

repo_of() { echo "$OUT/repo/$1"; }
mnt_of() { echo "$OUT/mnt/$1"; }
# the snapshot's root (holding tree/ and big/) inside the mount
snapdir_of() {
  case $1 in
    tidemark) echo "$(mnt_of tidemark)/latest/ds" ;;
    restic) echo "$(mnt_of restic)/snapshots/latest" ;;
    borg) echo "$(mnt_of borg)/bench" ;;
  esac
}

# The filesystem process still running, by PID, and its mountpoint: the trap
# unmounts it and kills it whatever happens.
FS_PID=
FS_MNT=
unmount_fs() {
  [ -n "$FS_MNT" ] || return 0
  if mountpoint -q "$FS_MNT"; then
    fusermount3 -u "$FS_MNT" 2>/dev/null || fusermount -u "$FS_MNT" 2>/dev/null \
      || umount -l "$FS_MNT" 2>/dev/null || true
  fi
  if [ -n "$FS_PID" ]; then
    for _ in $(seq 100); do kill -0 "$FS_PID" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$FS_PID" 2>/dev/null; then
      log "!! filesystem process $FS_PID still running 10 s after unmount: killing it"
      kill "$FS_PID" 2>/dev/null; sleep 1; kill -9 "$FS_PID" 2>/dev/null
    fi
    wait "$FS_PID" 2>/dev/null
  fi
  FS_PID=
  FS_MNT=
}
trap 'unmount_fs' EXIT
trap 'unmount_fs; exit 130' INT TERM

FAILED=0
# record TOOL STEP key=json-value...: one JSON line in raw.jsonl
record() {
  local tool=$1 step=$2 kv s
  shift 2
  s=$(printf '"tool":"%s","step":"%s"' "$tool" "$step")
  for kv in "$@"; do s+=$(printf ',"%s":%s' "${kv%%=*}" "${kv#*=}"); done
  printf '{%s}\n' "$s" >>"$RAW"
}

# timed TOOL STEP CWD CMD...: runs CMD under /usr/bin/time with a cold page
# cache; sets SECS (null on failure) and RC, appends one record.
timed() {
  local tool=$1 step=$2 cwd=$3 tf lf line rss usr sys l0 l1
  shift 3
  tf=$OUT/logs/$tool.$step.time
  lf=$OUT/logs/$tool.$step.log
  drop_caches
  log "$tool $step: $*"
  read -r l0 _ </proc/loadavg
  (cd "$cwd" && /usr/bin/time -f '%e %M %U %S' -o "$tf" \
    timeout -k 10 "$TIMEOUT" "$@") >"$lf" 2>"$lf.err" </dev/null
  RC=$?
  read -r l1 _ </proc/loadavg
  line=$(tail -n 1 "$tf" 2>/dev/null)
  read -r SECS rss usr sys <<<"$line"
  case $SECS in ''|*[!0-9.]*) SECS=null; rss=null; usr=null; sys=null ;; esac
  if [ "$RC" -ne 0 ]; then
    log "!! $tool $step exited $RC; last lines of $lf.err:"
    tail -n 5 "$lf.err" | sed 's/^/   /' | tee -a "$OUT/bench.log" >&2
    FAILED=1
    SECS=null
  fi
  record "$tool" "$step" "exit=$RC" "seconds=$SECS" "rss_kib=$rss" "user_s=$usr" \
    "sys_s=$sys" "load_before=$l0" "load_after=$l1" \
    "cache_dropped=$([ "$DROP_OK" = 1 ] && echo true || echo false)"
  log "$tool $step: exit=$RC ${SECS}s load=$l0->$l1"
  return "$RC"
}

# the regular files of the dataset: count and bytes
read -r SRC_FILES SRC_BYTES < <(find "$DATASET/tree" "$DATASET/big" -type f -printf '%s\n' \
  | awk '{s+=$1; n++} END {printf "%d %d\n", n, s}')
BIG_BYTES=$(stat -c %s "$DATASET/big/bigfile.bin")

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
log "bench-mount: dataset $DATASET ($SRC_FILES files, $SRC_BYTES bytes) -> $OUT; tools ${TOOL_LIST[*]}"
drop_caches
[ "$DROP" = 0 ] || [ "$DROP_OK" = 1 ] \
  || log "WARNING: cannot drop the page cache (not root?): timings are warm-cache"
printf '{"date":"%s","host":"%s","nproc":%d,"mem_kib":%d,"kernel":"%s","dataset":"%s","out":"%s","tools":"%s","src_files":%d,"src_bytes":%d,"big_bytes":%d,"borg_compression":"%s","cache_drop":%s,"versions":{%s"bench_mount":"1"}}\n' \
  "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(hostname)" "$(nproc)" \
  "$(awk '/MemTotal/ {print $2}' /proc/meminfo)" "$(uname -r)" "$DATASET" "$OUT" "$TOOLS" \
  "$SRC_FILES" "$SRC_BYTES" "$BIG_BYTES" "$BORG_COMPRESSION" \
  "$([ "$DROP_OK" = 1 ] && echo true || echo false)" "$(versions)" >"$OUT/meta.json"

# --- backups: once per tool (skipped with --reuse when the repository exists)
declare -A BROKEN=()
for t in "${TOOL_LIST[@]}"; do
  repo=$(repo_of "$t")
  if [ "$REUSE" = 1 ] && [ -e "$repo" ]; then
    log "$t: reusing $repo"
    continue
  fi
  rm -rf "$repo"
  case $t in
    tidemark)
      timed "$t" init "$DATASET" "$TIDEMARK" -r "$repo" init \
        && timed "$t" backup "$DATASET" "$TIDEMARK" -r "$repo" backup --component ds --host bench tree big ;;
    restic)
      timed "$t" init "$DATASET" restic -r "$repo" --cache-dir "$OUT/cache/restic" init --repository-version 2 \
        && timed "$t" backup "$DATASET" restic -r "$repo" --cache-dir "$OUT/cache/restic" \
             --compression auto backup --host bench tree big ;;
    borg)
      timed "$t" init "$DATASET" borg init -e repokey-blake2 "$repo" \
        && timed "$t" backup "$DATASET" borg create --compression "$BORG_COMPRESSION" "$repo::bench" tree big ;;
  esac
  [ "$RC" -eq 0 ] || BROKEN[$t]=1
done

# --- the floor of "visible": opening the repository (key derivation included)
# and listing its snapshots, without mounting
for t in "${TOOL_LIST[@]}"; do
  [ -z "${BROKEN[$t]:-}" ] || continue
  repo=$(repo_of "$t")
  case $t in
    tidemark) timed "$t" open "$OUT" "$TIDEMARK" -r "$repo" snapshots ;;
    restic) timed "$t" open "$OUT" restic -r "$repo" --cache-dir "$OUT/cache/restic" snapshots ;;
    borg) timed "$t" open "$OUT" borg list "$repo" ;;
  esac
done

# --- the mounts, tool by tool
now() { echo "$EPOCHREALTIME"; }
for t in "${TOOL_LIST[@]}"; do
  [ -z "${BROKEN[$t]:-}" ] || continue
  repo=$(repo_of "$t")
  mnt=$(mnt_of "$t")
  snap=$(snapdir_of "$t")
  mkdir -p "$mnt"
  mountpoint -q "$mnt" && { fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; }
  case $t in
    tidemark) CMD=("$TIDEMARK" -r "$repo" mount "$mnt" -f) ;;
    restic) CMD=(restic -r "$repo" --cache-dir "$OUT/cache/restic" mount "$mnt") ;;
    borg) CMD=(borg mount -f "$repo" "$mnt") ;;
  esac
  drop_caches
  log "$t mount: ${CMD[*]}"
  read -r l0 _ </proc/loadavg
  t0=$(now)
  # exec: the PID is the filesystem process itself (tidemark mount execs tidemark-fs)
  (cd "$OUT" && exec "${CMD[@]}") >"$OUT/logs/$t.mount.log" 2>&1 </dev/null &
  FS_PID=$!
  FS_MNT=$mnt
  vis=null
  while :; do
    if [ -d "$snap/tree" ]; then
      t1=$(now)
      vis=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')
      break
    fi
    kill -0 "$FS_PID" 2>/dev/null || break
    t1=$(now)
    awk -v a="$t0" -v b="$t1" -v m="$VISIBLE_TIMEOUT" 'BEGIN {exit !(b - a > m)}' && break
    sleep 0.005
  done
  read -r l1 _ </proc/loadavg
  record "$t" visible "seconds=$vis" "load_before=$l0" "load_after=$l1"
  if [ "$vis" = null ]; then
    log "!! $t: the snapshot directory $snap never appeared; last lines of the mount log:"
    tail -n 5 "$OUT/logs/$t.mount.log" | sed 's/^/   /' | tee -a "$OUT/bench.log" >&2
    FAILED=1
    unmount_fs
    continue
  fi
  log "$t visible after ${vis}s ($snap)"

  # find: every entry, with its size (so every file is stat'ed through the mount)
  if timed "$t" find "$snap" find . -type f -printf '%s\n'; then
    read -r n b < <(awk '{s+=$1; n++} END {printf "%d %d\n", n, s}' "$OUT/logs/$t.find.log")
    record "$t" find_count "files=$n" "bytes=$b"
    if [ "$n" != "$SRC_FILES" ] || [ "$b" != "$SRC_BYTES" ]; then
      log "!! $t: the mount shows $n files, $b bytes; the dataset has $SRC_FILES files, $SRC_BYTES bytes"
      FAILED=1
    fi
  fi
  : >"$OUT/logs/$t.find.log" # 45k lines: the count is in raw.jsonl

  # tar of the whole snapshot: to a pipe, since GNU tar does not read the files
  # when its output is /dev/null
  if timed "$t" tar "$snap" bash -c 'tar cf - . | wc -c'; then
    record "$t" tar_bytes "bytes=$(cat "$OUT/logs/$t.tar.log")"
  fi

  if timed "$t" cat "$snap" bash -c 'cat big/bigfile.bin | wc -c'; then
    b=$(cat "$OUT/logs/$t.cat.log")
    record "$t" cat_bytes "bytes=$b"
    [ "$b" = "$BIG_BYTES" ] || { log "!! $t: read $b bytes of bigfile.bin, want $BIG_BYTES"; FAILED=1; }
  fi

  # the filesystem process's peak memory and CPU, just before unmounting
  hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$FS_PID/status" 2>/dev/null)
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$FS_PID/stat" 2>/dev/null)
  record "$t" fs_process "peak_rss_kib=${hwm:-null}" "cpu_s=${cpu:-null}"
  log "$t filesystem process: peak RSS ${hwm:-?} KiB, CPU ${cpu:-?} s"
  unmount_fs
done

# --- tidemark's own restore of the same snapshot
for t in "${TOOL_LIST[@]}"; do
  [ "$t" = tidemark ] && [ -z "${BROKEN[$t]:-}" ] || continue
  target=$OUT/restore-tidemark
  rm -rf "$target"
  mkdir -p "$target"
  timed tidemark restore "$OUT" "$TIDEMARK" -r "$(repo_of tidemark)" restore latest --target "$target"
  rm -rf "$target"
done

log "total bench time $(( $(date +%s) - T0 ))s"

# --- results.json and the table
python3 - "$OUT" <<'EOF' | tee "$OUT/table.txt"
import json, sys, os
out = sys.argv[1]
meta = json.load(open(os.path.join(out, "meta.json")))
res = {}
for line in open(os.path.join(out, "raw.jsonl")):
    r = json.loads(line)
    res.setdefault(r.pop("tool"), {})[r.pop("step")] = r
tools = [t for t in meta["tools"].split(",") if t in res]

def g(t, step, key="seconds"):
    v = res.get(t, {}).get(step, {}).get(key)
    return v if isinstance(v, (int, float)) else None

mb = lambda nbytes, s: nbytes / 1e6 / s if nbytes and s else None
summary = {}
for t in tools:
    s = {
        "backup_s": g(t, "backup"),
        "open_s": g(t, "open"),
        "visible_s": g(t, "visible"),
        "find_s": g(t, "find"),
        "find_files": g(t, "find_count", "files"),
        "tar_s": g(t, "tar"),
        "tar_mb_per_s": mb(meta["src_bytes"], g(t, "tar")),
        "cat_s": g(t, "cat"),
        "cat_mb_per_s": mb(meta["big_bytes"], g(t, "cat")),
        "fs_peak_rss_kib": g(t, "fs_process", "peak_rss_kib"),
        "fs_cpu_s": g(t, "fs_process", "cpu_s"),
    }
    if t == "tidemark":
        s["restore_s"] = g(t, "restore")
        s["restore_mb_per_s"] = mb(meta["src_bytes"], g(t, "restore"))
    summary[t] = s

def ratio(a, b):
    return a / b if a is not None and b else None

# speed-ups: other's seconds / tidemark's seconds (> 1: tidemark faster);
# memory: tidemark / other (< 1: tidemark uses less)
ratios, targets = {}, {}
tm = summary.get("tidemark")
if tm:
    for o in tools:
        if o == "tidemark":
            continue
        so = summary[o]
        ratios["tidemark/" + o] = {
            "visible_speedup": ratio(so["visible_s"], tm["visible_s"]),
            "find_speedup": ratio(so["find_s"], tm["find_s"]),
            "tar_speedup": ratio(so["tar_s"], tm["tar_s"]),
            "cat_speedup": ratio(so["cat_s"], tm["cat_s"]),
            "peak_rss_ratio": ratio(tm["fs_peak_rss_kib"], so["fs_peak_rss_kib"]),
        }
    def check(v, ok):
        return None if v is None else bool(ok(v))
    r = ratios.get("tidemark/restic", {})
    targets = {
        "tar >= 5x faster than restic mount": check(r.get("tar_speedup"), lambda v: v >= 5),
        "tar within 1.5x of tidemark restore": check(ratio(tm["tar_s"], tm.get("restore_s")), lambda v: v <= 1.5),
        "find >= 2x faster than restic mount": check(r.get("find_speedup"), lambda v: v >= 2),
        "visible in < 0.1 s": check(tm["visible_s"], lambda v: v < 0.1),
        "peak RSS <= 1/3 of restic mount": check(r.get("peak_rss_ratio"), lambda v: v <= 1 / 3),
    }
json.dump({"meta": meta, "results": summary, "ratios": ratios, "targets": targets,
           "raw": res}, open(os.path.join(out, "results.json"), "w"), indent=1)

def f(v, fmt):
    return "-" if v is None else format(v, fmt)
others = [t for t in tools if t != "tidemark"] if tm else []
head = ["metric"] + tools + ["tm vs " + o for o in others]
rows = []
def row(label, key, fmt, rkey=None, rfmt=".2f"):
    rows.append([label] + [f(summary[t].get(key), fmt) for t in tools]
                + [(f(ratios["tidemark/" + o].get(rkey), rfmt) + "x") if rkey and ratios["tidemark/" + o].get(rkey) else ""
                   for o in others])
print(f"mount benchmark: {meta['src_files']} files, {meta['src_bytes']:,} bytes; "
      f"{meta['date']}, {meta['nproc']} cores; page cache dropped: {meta['cache_drop']}")
print("speed-ups are other's seconds / tidemark's (> 1: tidemark faster); "
      "RSS ratio is tidemark / other (< 1: tidemark uses less)\n")
row("backup (s, not a mount figure)", "backup_s", ".1f")
row("open + list snapshots (s)", "open_s", ".2f")
row("visible (s)", "visible_s", ".3f", "visible_speedup")
row("find every file (s)", "find_s", ".2f", "find_speedup")
row("tar whole snapshot (s)", "tar_s", ".1f", "tar_speedup")
row("  MB/s", "tar_mb_per_s", ".1f")
row("cat 500 MiB file (s)", "cat_s", ".2f", "cat_speedup")
row("  MB/s", "cat_mb_per_s", ".1f")
rows.append(["fs peak RSS (MiB)"] + [f(summary[t]["fs_peak_rss_kib"] and summary[t]["fs_peak_rss_kib"] / 1024, ".0f") for t in tools]
            + [(f(ratios["tidemark/" + o]["peak_rss_ratio"], ".2f") + "x") if ratios["tidemark/" + o]["peak_rss_ratio"] else "" for o in others])
row("fs process CPU (s)", "fs_cpu_s", ".1f")
if tm:
    rows.append(["tidemark restore (s)", f(tm.get("restore_s"), ".1f")] + [""] * (len(head) - 2))
    rows.append(["  MB/s", f(tm.get("restore_mb_per_s"), ".1f")] + [""] * (len(head) - 2))
w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
print("  ".join(h.ljust(w[0]) if i == 0 else h.rjust(w[i]) for i, h in enumerate(head)))
for r in rows:
    print("  ".join(c.ljust(w[0]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)))
if targets:
    print("\ntargets (issue 3):")
    for k, v in targets.items():
        print(f"  {'n/a ' if v is None else 'PASS' if v else 'FAIL'}  {k}")
    rs = tm.get("restore_s")
    if rs and tm["tar_s"]:
        print(f"  (tar through the mount / tidemark restore = {tm['tar_s'] / rs:.2f})")
EOF
log "raw numbers: $OUT/results.json; table: $OUT/table.txt; logs: $OUT/logs/"
[ "$FAILED" = 0 ] || { echo "bench-mount: some tool commands failed (see $OUT/logs)" >&2; exit 1; }
exit 0
