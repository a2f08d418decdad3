#!/usr/bin/env bash
# Every symbol libtidemark.a defines for others starts with tm_ (STYLE.md 3.5).
set -euo pipefail
LIB=${1:?libtidemark.a}
bad=$(nm -g --defined-only "$LIB" | awk 'NF==3 {print $3}' | grep -v '^tm_' | sort -u || true)
if [ -n "$bad" ]; then
  echo "symbols without the tm_ prefix in $LIB:"; echo "$bad"; exit 1
fi
echo "all exported symbols carry the tm_ prefix"
