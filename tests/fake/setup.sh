#!/usr/bin/env bash
# Install the npm test doubles (s3rver) from the committed lock file into
# tests/fake/node_modules. Exit 77 (skip) when node/npm are missing or the
# install is impossible (offline), so the tests that need s3rver skip.
set -euo pipefail
cd "$(dirname "$0")"
if [[ -f node_modules/s3rver/bin/s3rver.js ]]; then
        exit 0
fi
command -v node >/dev/null && command -v npm >/dev/null || {
        echo "setup.sh: node/npm missing (scripts/deps.sh installs nodejs npm)" >&2
        exit 77
}
if ! timeout 600 npm ci --no-audit --no-fund >&2; then
        echo "setup.sh: npm ci failed (offline?)" >&2
        exit 77
fi
[[ -f node_modules/s3rver/bin/s3rver.js ]] || exit 77
