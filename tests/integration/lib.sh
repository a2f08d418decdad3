# shellcheck shell=bash
#
# Shared helpers for the tidemark integration tests (tests/integration/*.sh).
# Each test does:
#
#     set -euo pipefail
#     . "$(dirname "$0")/lib.sh"
#     tm_setup            # private temp dir $T, env for repo/password/catalog
#     tm_init             # a repository with a cheap KDF
#
# and exits 0 on pass, 1 (via fail) on failure, 77 to skip.
#
# Environment: TM_BIN (directory holding the tidemark binary; default: the
# build/bin next to this checkout), TM_SRC (source dir), TM_KEEP=1 keeps the
# temp dir for debugging, TM_TEST_SEED seeds the randomised tests,
# TM_CMD_TIMEOUT bounds each tidemark invocation (seconds, default 600).

TM_SRC=${TM_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TM_BIN=${TM_BIN:-$TM_SRC/build/bin}
TM_EXE="$TM_BIN/tidemark"
TM_NAME=$(basename "$0" .sh)
TM_CMD_TIMEOUT=${TM_CMD_TIMEOUT:-600}

# Cheap key derivation so that every command opens the repository quickly.
TM_KDF_ARGS=(--kdf-memory 8192 --kdf-iterations 1)

# ---------------------------------------------------------------- messages

log() { printf '[%s] %s\n' "$TM_NAME" "$*" >&2; }

# fail MESSAGE...: print why the test failed and exit 1.
fail() {
        printf '[%s] FAIL: %s\n' "$TM_NAME" "$*" >&2
        exit 1
}

skip() {
        printf '[%s] SKIP: %s\n' "$TM_NAME" "$*" >&2
        exit 77
}

pass() {
        printf '[%s] PASS\n' "$TM_NAME" >&2
        exit 0
}

# ---------------------------------------------------------------- setup

declare -a TM_CLEANUP_HOOKS=()

# on_exit CMD: run CMD (a string, eval'd) at exit, before the temp dir goes.
on_exit() { TM_CLEANUP_HOOKS+=("$1"); }

tm_cleanup() {
        local rc=$? i
        set +e
        # Hooks run last-registered first (umount before rm, kill before rm).
        for ((i = ${#TM_CLEANUP_HOOKS[@]} - 1; i >= 0; i--)); do
                eval "${TM_CLEANUP_HOOKS[$i]}" >/dev/null 2>&1
        done
        if [[ -n ${T:-} && -d $T ]]; then
                if [[ ${TM_KEEP:-0} == 1 || ($rc -ne 0 && ${TM_KEEP:-0} == fail) ]]; then
                        log "kept temp dir $T"
                else
                        rm -rf "$T"
                fi
        fi
        exit "$rc"
}

# tm_setup: make the private temp dir $T and point the tidemark environment
# into it. Skips (77) when the binary is missing.
tm_setup() {
        [[ -x $TM_EXE ]] || skip "no tidemark binary at $TM_EXE (set TM_BIN)"
        command -v python3 >/dev/null || skip "python3 missing"
        T=$(mktemp -d "${TMPDIR:-/tmp}/tm-it-$TM_NAME.XXXXXX")
        trap tm_cleanup EXIT
        trap 'exit 130' INT TERM
        export TIDEMARK_REPOSITORY="$T/repo"
        export TIDEMARK_PASSWORD="correct horse battery staple"
        export TIDEMARK_CATALOG="$T/catalog.db"
        unset TIDEMARK_PASSWORD_FILE TIDEMARK_NEW_PASSWORD TIDEMARK_NEW_PASSWORD_FILE
        # Seed for the randomised parts; printed so a failure can be replayed.
        TM_SEED=${TM_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
        RANDOM=$((TM_SEED % 32768))
        log "temp dir $T, seed $TM_SEED (replay with TM_TEST_SEED=$TM_SEED)"
}

# tm ARGS...: run the tidemark binary (bounded by a timeout so that a hang
# fails the test instead of eating the ctest budget).
tm() {
        timeout -k 10 "$TM_CMD_TIMEOUT" "$TM_EXE" "$@"
}

# tm_init [ARGS...]: create the repository at $TIDEMARK_REPOSITORY.
tm_init() {
        run tm init "${TM_KDF_ARGS[@]}" "$@"
        assert_rc 0 "init"
        [[ $RUN_OUT =~ created\ tidemark\ repository\ [0-9a-f]{16}\ at\  ]] ||
                fail "init output not as specified: '$RUN_OUT'"
}

# ---------------------------------------------------------------- running

# run CMD...: run a command, never failing; sets RUN_RC, RUN_OUT, RUN_ERR,
# RUN_CMD. (Stdin is inherited.)
run() {
        local rc=0
        RUN_CMD="$*"
        "$@" >"$T/.run.out" 2>"$T/.run.err" || rc=$?
        RUN_RC=$rc
        RUN_OUT=$(cat "$T/.run.out")
        RUN_ERR=$(cat "$T/.run.err")
}

show_run() {
        printf '  command: %s\n  exit: %s\n  stdout:\n%s\n  stderr:\n%s\n' "$RUN_CMD" "$RUN_RC" \
                "$(printf '%s\n' "$RUN_OUT" | head -n 40 | sed 's/^/    | /')" \
                "$(printf '%s\n' "$RUN_ERR" | head -n 40 | sed 's/^/    | /')" >&2
}

# assert_rc EXPECTED WHAT: the last run exited with EXPECTED.
assert_rc() {
        if [[ $RUN_RC != "$1" ]]; then
                show_run
                fail "$2: expected exit $1, got $RUN_RC"
        fi
}

# assert_error_line WHAT: stderr of the last run is exactly one line starting
# with "tidemark: error: ".
assert_error_line() {
        local n
        n=$(printf '%s' "$RUN_ERR" | grep -c '' || true)
        if [[ $n -ne 1 || $RUN_ERR != "tidemark: error: "* ]]; then
                show_run
                fail "$1: expected one stderr line starting with 'tidemark: error: ', got $n line(s)"
        fi
}

# assert_fails_cleanly WHAT CMD...: CMD exits 1 with a one-line error.
assert_fails_cleanly() {
        local what=$1
        shift
        run "$@"
        assert_rc 1 "$what"
        assert_error_line "$what"
        log "ok: $what -> ${RUN_ERR}"
}

# assert_contains HAYSTACK NEEDLE WHAT  (fixed string, case-insensitive)
assert_contains() {
        if ! grep -qiF -- "$2" <<<"$1"; then
                printf '  text was:\n%s\n' "$(printf '%s\n' "$1" | head -n 40 | sed 's/^/    | /')" >&2
                fail "$3: expected to find '$2'"
        fi
}

assert_not_contains() {
        if grep -qiF -- "$2" <<<"$1"; then
                printf '  text was:\n%s\n' "$(printf '%s\n' "$1" | head -n 40 | sed 's/^/    | /')" >&2
                fail "$3: did not expect '$2'"
        fi
}

# assert_files_equal EXPECTED ACTUAL WHAT: diff two files, show the diff.
assert_files_equal() {
        if ! diff -u "$1" "$2" >"$T/.diff" 2>&1; then
                printf '  diff (- expected, + actual), first 60 lines:\n' >&2
                head -n 60 "$T/.diff" | sed 's/^/    /' >&2
                fail "$3: $1 and $2 differ"
        fi
}

# ---------------------------------------------------------------- trees

# snapshot_tree DIR MANIFEST: write the full state of the tree under DIR to
# MANIFEST, one sorted line per entry (DIR itself excluded): path, type,
# mode (incl. setuid/setgid/sticky), uid, gid, mtime (ns), size and sha256
# (regular files), symlink target, rdev (devices), every xattr (all
# namespaces, like getfattr -d -m -, so ACLs too; values hex) and the
# hard-link group (the smallest path sharing the inode, only when two or more
# paths inside DIR share it). Two trees are equal iff their manifests are.
snapshot_tree() {
        python3 - "$1" "$2" <<'EOF'
import hashlib, json, os, stat, sys
root, out = sys.argv[1], sys.argv[2]
entries = []
for dirpath, dirnames, filenames in os.walk(root):
    for name in dirnames + filenames:
        entries.append(os.path.join(dirpath, name))
entries.sort()
st_of = {p: os.lstat(p) for p in entries}
groups = {}
for p in entries:
    st = st_of[p]
    if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
        groups.setdefault((st.st_dev, st.st_ino), []).append(p)
link_of = {}
for paths in groups.values():
    if len(paths) > 1:
        for p in paths:
            link_of[p] = os.path.relpath(min(paths), root)
lines = []
for p in entries:
    st = st_of[p]
    m = st.st_mode
    if stat.S_ISREG(m):
        h = hashlib.sha256()
        with open(p, 'rb') as f:
            for b in iter(lambda: f.read(1 << 20), b''):
                h.update(b)
        kind, extra = 'file', 'size=%d sha256=%s' % (st.st_size, h.hexdigest())
    elif stat.S_ISDIR(m):
        kind, extra = 'dir', ''
    elif stat.S_ISLNK(m):
        kind, extra = 'symlink', 'target=' + json.dumps(os.readlink(p))
    elif stat.S_ISFIFO(m):
        kind, extra = 'fifo', ''
    elif stat.S_ISCHR(m) or stat.S_ISBLK(m):
        kind = 'chardev' if stat.S_ISCHR(m) else 'blockdev'
        extra = 'rdev=%d:%d' % (os.major(st.st_rdev), os.minor(st.st_rdev))
    elif stat.S_ISSOCK(m):
        kind, extra = 'socket', ''
    else:
        kind, extra = 'unknown', ''
    xattrs = []
    try:
        names = os.listxattr(p, follow_symlinks=False)
    except OSError:
        names = []
    for n in sorted(names):
        try:
            v = os.getxattr(p, n, follow_symlinks=False)
        except OSError as e:
            v = ('<error %d>' % e.errno).encode()
        xattrs.append('%s=%s' % (n, v.hex()))
    lines.append(' '.join(x for x in [
        json.dumps(os.path.relpath(p, root)), kind,
        'mode=%04o' % stat.S_IMODE(m), 'uid=%d' % st.st_uid, 'gid=%d' % st.st_gid,
        'mtime=%d' % st.st_mtime_ns, extra,
        'xattrs=[%s]' % ','.join(xattrs),
        'link=' + json.dumps(link_of[p]) if p in link_of else ''] if x))
with open(out, 'w') as f:
    f.write('\n'.join(lines) + ('\n' if lines else ''))
EOF
}

# assert_tree_matches MANIFEST DIR WHAT: DIR's state equals the recorded one.
assert_tree_matches() {
        local m="$T/.manifest.$$.$RANDOM"
        snapshot_tree "$2" "$m"
        assert_files_equal "$1" "$m" "$3"
        rm -f "$m"
}

# content_manifest DIR OUT: path, type, size and sha256 only (for tests that
# care about bytes but restore as another user or without metadata).
content_manifest() {
        snapshot_tree "$1" "$2.full"
        sed -E 's/ mode=[0-7]+ uid=[0-9]+ gid=[0-9]+ mtime=[0-9]+//; s/ xattrs=\[[^]]*\]//; s/ link=.*$//' \
                "$2.full" >"$2"
        rm -f "$2.full"
}

# ---------------------------------------------------------------- data

# random_file PATH BYTES
random_file() { head -c "$2" /dev/urandom >"$1"; }

# repo_data_bytes [REPO]: total size of the pack files (data/xx/<64 hex>)
# in the repository; temporary files of unfinished writes are not counted.
repo_data_bytes() {
        local r=${1:-$TIDEMARK_REPOSITORY}
        if [[ -d $r/data ]]; then
                find "$r/data" -type f -regextype posix-extended -regex '.*/[0-9a-f]{64}' -printf '%s\n' |
                        awk '{ s += $1 } END { printf "%d\n", s }'
        else
                echo 0
        fi
}

# repo_data_du [REPO]: du -sb of data/ (everything, temporary files too).
repo_data_du() {
        local r=${1:-$TIDEMARK_REPOSITORY}
        if [[ -d $r/data ]]; then du -sb "$r/data" | cut -f1; else echo 0; fi
}

# repo_stray_files [REPO]: files in data/ that are not packs.
repo_stray_files() {
        local r=${1:-$TIDEMARK_REPOSITORY}
        [[ -d $r/data ]] || return 0
        find "$r/data" -type f -regextype posix-extended ! -regex '.*/[0-9a-f]{2}/[0-9a-f]{64}'
}

# repo_fingerprint [DIR]: a hash of every path, size and mtime in the
# repository (detects any new, removed or rewritten file).
repo_fingerprint() {
        find "${1:-$TIDEMARK_REPOSITORY}" -printf '%p %s %T@ %m\n' | LC_ALL=C sort | sha256sum | cut -d' ' -f1
}

# json_get EXPR: evaluate a python expression with `d` = the JSON document
# read from stdin; prints the result (lists/dicts as JSON, one str per line
# when the result is a list of str).
json_get() {
        python3 -c '
import json, sys
d = json.load(sys.stdin)
r = eval(sys.argv[1])
if isinstance(r, list) and all(isinstance(x, str) for x in r):
    print("\n".join(r))
elif isinstance(r, (list, dict)):
    print(json.dumps(r))
else:
    print(r)
' "$1"
}

# snapshot_ids [ARGS...]: full ids from `snapshots --json`, oldest first.
snapshot_ids() {
        local out
        out=$(tm snapshots --json "$@") || fail "snapshots --json failed"
        printf '%s' "$out" | json_get '[s["id"] for s in d]' ||
                fail "snapshots --json: cannot parse: $out"
}

# snapshot_count: number of snapshots.
snapshot_count() {
        local out
        out=$(tm snapshots --json "$@") || fail "snapshots --json failed"
        printf '%s' "$out" | json_get 'len(d)' || fail "snapshots --json: cannot parse: $out"
}

# backup_ok ARGS...: run a backup that must succeed (exit 0); sets RUN_*.
backup_ok() {
        run tm backup "$@"
        assert_rc 0 "backup $*"
}

# check_ok [--read-data]: the repository passes check.
check_ok() {
        run tm check "$@"
        assert_rc 0 "check $*"
        assert_contains "$RUN_OUT$RUN_ERR" "no errors were found" "check $*"
}

# restore_ok SNAP TARGET [ARGS...]
restore_ok() {
        local snap=$1 target=$2
        shift 2
        run tm restore "$snap" --target "$target" "$@"
        assert_rc 0 "restore $snap"
}

# is_root: 0 when running as root.
is_root() { [[ $(id -u) -eq 0 ]]; }

# ---------------------------------------------------------------- FUSE

# fuse_skip_unless_usable: skip (77) unless a FUSE mount can work here
# (root, /dev/fuse, fusermount3, mountpoint, the tidemark-fs binary).
fuse_skip_unless_usable() {
        is_root || skip "FUSE mount tests need root"
        [[ -c /dev/fuse ]] || skip "no /dev/fuse"
        command -v fusermount3 >/dev/null || skip "fusermount3 missing"
        command -v mountpoint >/dev/null || skip "mountpoint missing"
        [[ -x $TM_BIN/tidemark-fs ]] || skip "no tidemark-fs binary at $TM_BIN"
}

# fuse_teardown M: unmount M even if its filesystem process died.
fuse_teardown() {
        fusermount3 -u "$1" 2>/dev/null || umount -l "$1" 2>/dev/null || true
}

# fuse_wait_mounted M PID: wait (up to 10 s) until M is a mountpoint; fail
# early when PID (the filesystem process) has exited.
fuse_wait_mounted() {
        local i
        for ((i = 0; i < 200; i++)); do
                mountpoint -q "$1" && return 0
                kill -0 "$2" 2>/dev/null || fail "the filesystem process for $1 exited before mounting"
                sleep 0.05
        done
        fail "$1 not mounted after 10 s"
}

# fuse_mount_bg M LOG CMD...: run CMD (a foreground filesystem) in the
# background with output in LOG, wait for M, register the teardown. Sets
# FUSE_PID.
fuse_mount_bg() {
        local m=$1 logf=$2
        shift 2
        "$@" >"$logf" 2>&1 &
        FUSE_PID=$!
        on_exit "fuse_teardown '$m'; kill -9 $FUSE_PID"
        fuse_wait_mounted "$m" "$FUSE_PID"
}

# ---------------------------------------------------------------- daemons

# bkd_start CONF [ARGS...]: start tidemark-backupd on 127.0.0.1 (a free
# port), wait until it listens; sets BKD_PID, BKD_PORT, BKD_URL. Its
# stderr (JSON log lines) goes to $T/backupd.log.
bkd_start() {
        local conf=$1 i
        shift
        [[ -x $TM_BIN/tidemark-backupd ]] || skip "no tidemark-backupd at $TM_BIN"
        rm -f "$T/backupd.port"
        "$TM_BIN/tidemark-backupd" -c "$conf" --listen 127.0.0.1:0 --port-file "$T/backupd.port" \
                "$@" 2>>"$T/backupd.log" &
        BKD_PID=$!
        on_exit "kill -9 $BKD_PID"
        for ((i = 0; i < 200; i++)); do
                [[ -s $T/backupd.port ]] && break
                kill -0 "$BKD_PID" 2>/dev/null || { tail -n 20 "$T/backupd.log" >&2; fail "backupd died at start"; }
                sleep 0.05
        done
        [[ -s $T/backupd.port ]] || fail "backupd did not start listening"
        BKD_PORT=$(cat "$T/backupd.port")
        BKD_URL="http://127.0.0.1:$BKD_PORT"
        log "backupd pid $BKD_PID on $BKD_URL"
}

# bkd_stop [SIGNAL]: stop the daemon (default TERM) and wait for it; sets
# BKD_RC to its exit status.
bkd_stop() {
        kill "-${1:-TERM}" "$BKD_PID" 2>/dev/null || true
        BKD_RC=0
        wait "$BKD_PID" 2>/dev/null || BKD_RC=$?
}

# http METHOD PATH [CURL ARGS...]: one request to $BKD_URL; sets HTTP_STATUS
# and HTTP_BODY, never fails.
http() {
        local method=$1 path=$2
        shift 2
        HTTP_STATUS=$(curl -s -o "$T/.http.body" -w '%{http_code}' -X "$method" "$@" \
                "$BKD_URL$path") || true
        HTTP_BODY=$(cat "$T/.http.body" 2>/dev/null || true)
}

# assert_http STATUS WHAT [NEEDLE]: the last http call answered STATUS (and
# its body contains NEEDLE, case-insensitive).
assert_http() {
        if [[ $HTTP_STATUS != "$1" ]]; then
                printf '  body: %s\n' "$HTTP_BODY" >&2
                fail "$2: expected HTTP $1, got $HTTP_STATUS"
        fi
        [[ -z ${3:-} ]] || assert_contains "$HTTP_BODY" "$3" "$2"
}

# wait_for SECONDS WHAT CMD...: poll CMD (every 0.2 s) until it succeeds.
wait_for() {
        local secs=$1 what=$2 i
        shift 2
        for ((i = 0; i < secs * 5; i++)); do
                "$@" && return 0
                sleep 0.2
        done
        fail "timed out after ${secs}s waiting for: $what"
}
