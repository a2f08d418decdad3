#!/usr/bin/env bash
# Cheap gates that need no build: banned functions in our C.
set -euo pipefail
cd "$(dirname "$0")/.."
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|localtime|gmtime|ctime|system|rand)\s*\('
if git ls-files '*.c' '*.h' | xargs grep -nE "$banned" ; then
  echo "ci-checks: banned function used (see STYLE.md 3.9)" >&2
  exit 1
fi
echo "ci-checks: ok"
