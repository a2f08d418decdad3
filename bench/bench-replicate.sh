#!/usr/bin/env bash
# bench-replicate.sh [--size MiB] [--out DIR] [--tidemark-bin DIR]
#
# Replication throughput: `tidemark replicate --once` of one repository
# against the plain tools an operator would otherwise use for the same
# bytes, in the same run, on loopback:
#   dir   tidemark replicate --to DIR (verify = full: every object read back
#         and hashed)                   vs  cp -a of the repository directory
#   s3    tidemark replicate --to s3:... on s3rver (verify = full)
#                                        vs  aws s3 sync of the directory
# The repository holds one backup of SIZE MiB (default 256) of random data in
# 64 files. s3rver runs directly (no signature-checking front: aws-cli's
# uploads are not what that front tests). Prints seconds, MiB/s and the ratio
# peer/tidemark (above 1: tidemark is faster).
set -euo pipefail
export LC_ALL=C
SIZE=256
OUT="${TMPDIR:-/tmp}/tidemark-bench-replicate-$(date -u +%Y%m%dT%H%M%SZ)"
BIN="${TIDEMARK_BIN_DIR:-/work/main/build/bin}"
while (($#)); do
        case $1 in
        --size) SIZE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --tidemark-bin) BIN=$2; shift 2 ;;
        *) echo "usage: $0 [--size MiB] [--out DIR] [--tidemark-bin DIR]" >&2; exit 1 ;;
        esac
done
SRC="$(cd "$(dirname "$0")/.." && pwd)"
TM="$BIN/tidemark"
[[ -x $TM ]] || { echo "no tidemark at $TM" >&2; exit 1; }
mkdir -p "$OUT"
export TIDEMARK_PASSWORD=bench TIDEMARK_CATALOG="$OUT/catalog.db"
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1
now() { date +%s.%N; }
secs() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"; }
report() { # WHAT SECONDS BYTES
        python3 -c 'import sys; s=float(sys.argv[2]); print("%-34s %7.2f s %8.1f MiB/s" % (sys.argv[1], s, int(sys.argv[3]) / s / 2**20))' "$@"
}

# ---- the repository
mkdir -p "$OUT/data"
for i in $(seq 1 64); do head -c $((SIZE * 1024 * 16)) /dev/urandom >"$OUT/data/f$i"; done
"$TM" init --repo "$OUT/repo" --kdf-memory 8192 --kdf-iterations 1 >/dev/null
"$TM" backup --repo "$OUT/repo" -q "$OUT/data"
BYTES=$(du -sb "$OUT/repo" | cut -f1)
echo "repository: $BYTES bytes ($(find "$OUT/repo" -type f | wc -l) objects)"
sync

# ---- directory
t0=$(now); "$TM" replicate --repo "$OUT/repo" --once -q --to "$OUT/dir-tm"; t1=$(now)
t2=$(now); cp -a "$OUT/repo" "$OUT/dir-cp"; sync; t3=$(now)
report "dir: tidemark replicate" "$(secs "$t0" "$t1")" "$BYTES"
report "dir: cp -a" "$(secs "$t2" "$t3")" "$BYTES"
echo "dir ratio cp/tidemark: $(python3 -c "print('%.2f' % ($(secs "$t2" "$t3") / $(secs "$t0" "$t1")))")"

# ---- s3rver
bash "$SRC/tests/fake/setup.sh" >/dev/null 2>&1 || { echo "no s3rver (tests/fake/setup.sh)" >&2; exit 1; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$OUT/s3"
node --openssl-legacy-provider "$SRC/tests/fake/node_modules/s3rver/bin/s3rver.js" -d "$OUT/s3" \
        -a 127.0.0.1 -p "$PORT" --silent --configure-bucket backups >"$OUT/s3rver.log" 2>&1 &
S3PID=$!
trap 'kill $S3PID 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -s "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.1; done
t0=$(now); "$TM" replicate --repo "$OUT/repo" --once -q --to "s3:http://127.0.0.1:$PORT/backups/tm"; t1=$(now)
report "s3: tidemark replicate" "$(secs "$t0" "$t1")" "$BYTES"
if command -v aws >/dev/null; then
        t2=$(now)
        aws s3 sync --only-show-errors --endpoint-url "http://127.0.0.1:$PORT" "$OUT/repo" s3://backups/aws
        t3=$(now)
        report "s3: aws s3 sync" "$(secs "$t2" "$t3")" "$BYTES"
        echo "s3 ratio aws/tidemark: $(python3 -c "print('%.2f' % ($(secs "$t2" "$t3") / $(secs "$t0" "$t1")))")"
else
        echo "s3: aws-cli missing, no peer figure"
fi
