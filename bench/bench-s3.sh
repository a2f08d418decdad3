#!/usr/bin/env bash
# bench-s3.sh DATASET_DIR [options]
#
# Backup and restore throughput of tidemark and restic to the same s3rver on
# loopback, in the same run, on the same data (a dataset made by
# /work/shared/bench/make-dataset.sh: DIR/tree and DIR/big). Not a test: it
# prints a table with MB/s and the tidemark/restic ratios (target: 2x both
# ways) and writes OUT/results.json.
#
# One s3rver serves both tools over HTTPS (a throwaway self-signed
# certificate): restic 0.14 signs its uploads as aws-chunked streams, which
# s3rver only understands over TLS, so tidemark goes through the same TLS to
# the same server (AWS_CA_BUNDLE) rather than plain http.
#
# Phases, each tool in turn, page cache dropped before each measured command:
#   backup   first backup of the dataset (tree + big) into an empty bucket prefix
#   restore  full restore of that snapshot into an empty directory, then the
#            restored files are compared with the source (sha256 of every file)
#
# Options:
#   --out DIR        output dir (default ${TMPDIR:-/tmp}/tidemark-bench-s3-<UTC time>)
#   --tidemark PATH  tidemark binary (default /work/main/build/bin/tidemark or $TIDEMARK_BIN)
#   --subset PATH    back up only DATASET_DIR/PATH (e.g. big) for a quick run
#   --no-drop        do not drop the page cache
#   --keep           keep the restored trees and the bucket
# Exit status: 0 all good; 1 setup error or a tool command failed; 2 a tool
# restored wrong data.
set -uo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/.." && pwd)
OUT=
TIDEMARK=${TIDEMARK_BIN:-/work/main/build/bin/tidemark}
DROP=1
KEEP=0
SUBSET=
DATASET=

die() { echo "bench-s3: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-1}"; }

while [ $# -gt 0 ]; do
  case $1 in
    --out) OUT=${2:?}; shift 2 ;;
    --tidemark) TIDEMARK=${2:?}; shift 2 ;;
    --subset) SUBSET=${2:?}; shift 2 ;;
    --no-drop) DROP=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$DATASET" ] || die "one DATASET_DIR only"; DATASET=$1; shift ;;
  esac
done
[ -n "$DATASET" ] || usage 1
DATASET=$(cd "$DATASET" 2>/dev/null && pwd) || die "no such dataset dir"
[ -d "$DATASET/tree" ] || die "$DATASET is not a dataset (wants tree/ and big/)"
[ -x "$TIDEMARK" ] || die "tidemark binary $TIDEMARK not found (--tidemark PATH)"
command -v restic >/dev/null || die "restic not installed"
command -v node >/dev/null || die "node not installed (scripts/deps.sh)"
command -v openssl >/dev/null || die "openssl not installed"
bash "$SRC/tests/fake/setup.sh" || die "s3rver could not be installed (tests/fake/setup.sh)"
DATA=$DATASET
[ -z "$SUBSET" ] || DATA=$DATASET/$SUBSET
[ -e "$DATA" ] || die "no $DATA"
[ -n "$OUT" ] || OUT=${TMPDIR:-/tmp}/tidemark-bench-s3-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)

S3PID=
cleanup() {
  [ -z "$S3PID" ] || kill "$S3PID" 2>/dev/null
  [ "$KEEP" = 1 ] || rm -rf "$OUT/s3" "$OUT/restore-tidemark" "$OUT/restore-restic"
}
trap cleanup EXIT

# ---- the server
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$OUT/key.pem" -out "$OUT/cert.pem" -days 2 \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1 || die "openssl failed"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$OUT/s3"
node --openssl-legacy-provider "$SRC/tests/fake/node_modules/s3rver/bin/s3rver.js" -d "$OUT/s3" \
  -a 127.0.0.1 -p "$PORT" --silent --configure-bucket bench --key "$OUT/key.pem" \
  --cert "$OUT/cert.pem" >"$OUT/s3rver.log" 2>&1 &
S3PID=$!
for _ in $(seq 1 100); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),1)' "$PORT" 2>/dev/null && break
  sleep 0.1
done
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_CA_BUNDLE=$OUT/cert.pem
unset AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION TIDEMARK_S3_STORAGE_CLASS
export TIDEMARK_PASSWORD=bench-password RESTIC_PASSWORD=bench-password
export TIDEMARK_CATALOG=$OUT/tidemark-catalog.db
URL=https://127.0.0.1:$PORT/bench

drop_caches() {
  [ "$DROP" = 1 ] || return 0
  sync
  echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || DROP=0
}

# timed NAME CMD...: run, record the wall time in $OUT/NAME.time
timed() {
  local name=$1 t0 t1 rc
  shift
  drop_caches
  t0=$(date +%s.%N)
  "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  python3 -c "print(round($t1 - $t0, 3))" >"$OUT/$name.time"
  [ $rc -eq 0 ] || [ $rc -eq 3 ] || { tail -n 20 "$OUT/$name.log" >&2; die "$name failed (exit $rc)"; }
}

BYTES=$(du -sb "$DATA" | cut -f1)
echo "bench-s3: $(numfmt --to=iec "$BYTES") from $DATA to s3rver (HTTPS) at 127.0.0.1:$PORT; out $OUT" >&2

"$TIDEMARK" -r "s3:$URL/tidemark" init --kdf-memory 65536 --kdf-iterations 1 >"$OUT/tidemark-init.log" 2>&1 ||
  die "tidemark init failed: $(tail -n 3 "$OUT/tidemark-init.log")"
restic -r "s3:$URL/restic" --cacert "$OUT/cert.pem" --cache-dir "$OUT/cache-restic" init \
  --repository-version 2 >"$OUT/restic-init.log" 2>&1 || die "restic init failed: $(tail -n 3 "$OUT/restic-init.log")"

timed tidemark-backup "$TIDEMARK" -r "s3:$URL/tidemark" backup "$DATA"
timed restic-backup restic -r "s3:$URL/restic" --cacert "$OUT/cert.pem" --cache-dir "$OUT/cache-restic" \
  --compression auto backup "$DATA"
timed tidemark-restore "$TIDEMARK" -r "s3:$URL/tidemark" restore latest --target "$OUT/restore-tidemark"
timed restic-restore restic -r "s3:$URL/restic" --cacert "$OUT/cert.pem" --cache-dir "$OUT/cache-restic" \
  restore latest --target "$OUT/restore-restic"

# ---- verify: every restored file has the source's bytes
verify() { # TOOL DIR: the root of the restored copy of $DATA
  local root
  root=$(find "$2" -type d -path "*${DATA}" -print -quit)
  [ -n "$root" ] || root=$2
  (cd "$DATA" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$OUT/src.sha"
  (cd "$root" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$OUT/$1.sha"
  cmp -s "$OUT/src.sha" "$OUT/$1.sha"
}
status=0
for t in tidemark restic; do
  if verify "$t" "$OUT/restore-$t"; then echo "bench-s3: $t restore verified" >&2
  else echo "bench-s3: $t restored WRONG data" >&2; status=2; fi
done

python3 - "$OUT" "$BYTES" <<'PY'
import json, sys
out, nbytes = sys.argv[1], int(sys.argv[2])
t = {n: float(open(f"{out}/{n}.time").read()) for n in
     ("tidemark-backup", "restic-backup", "tidemark-restore", "restic-restore")}
mbs = {n: nbytes / 1e6 / v for n, v in t.items()}
rows = []
for phase in ("backup", "restore"):
    tm, rs = mbs[f"tidemark-{phase}"], mbs[f"restic-{phase}"]
    rows.append((phase, t[f"tidemark-{phase}"], tm, t[f"restic-{phase}"], rs, tm / rs))
lines = ["phase     tidemark s   MB/s   restic s   MB/s   ratio (target 2.00)"]
for p, a, b, c, d, r in rows:
    lines.append(f"{p:8} {a:10.2f} {b:6.1f} {c:10.2f} {d:6.1f}   {r:5.2f}x {'met' if r >= 2 else 'MISSED'}")
print("\n".join(lines))
open(f"{out}/table.txt", "w").write("\n".join(lines) + "\n")
json.dump({"bytes": nbytes, "seconds": t, "mb_per_s": mbs,
           "ratio": {r[0]: r[5] for r in rows}}, open(f"{out}/results.json", "w"), indent=1)
PY
exit $status
