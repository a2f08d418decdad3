#!/usr/bin/env bash
# Installs the Debian packages tidemark needs to build, test and run its demo,
# only those that are missing (so a prepared machine pays nothing).
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev libfuse3-dev fuse3 libpq-dev
      libcurl4-openssl-dev libssl-dev libzstd-dev libsqlite3-dev libmicrohttpd-dev libjansson-dev
      libcmocka-dev libargon2-dev libinih-dev sqlite3 attr acl util-linux procps psmisc xxd
      python3 curl openssl prometheus nodejs npm postgresql pgbouncer python3-aiosmtpd yamllint)
missing=()
for p in "${PKGS[@]}"; do
  # A machine may carry Node.js from another packaging (with npm built in,
  # which conflicts with Debian's npm): a working command is enough.
  case $p in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "deps: missing packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=600 "${missing[@]}"
