#!/usr/bin/env bash
# `make install` stages a complete, correct tree (issue 9, item 3):
#   - with DESTDIR and PREFIX, as packagers call it: the programs, the
#     mount helper, a man page for every program plus tidemark.conf(5), a
#     systemd unit for every daemon, the sysusers entry, the example
#     configuration; nothing lands outside DESTDIR;
#   - every installed program answers --version with the project's version;
#   - every man page formats without a warning (man --warnings);
#   - every unit passes systemd-analyze verify and its sandbox scores at most
#     2.0 in systemd-analyze security (0 = locked down, 10 = exposed).
# usage: check-install.sh SRC_DIR BUILD_DIR VERSION
set -euo pipefail
SRC=${1:?source dir}
BUILD=${2:?build dir}
VERSION=${3:?version}
T=$(mktemp -d "${TMPDIR:-/tmp}/tm-check-install.XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# the Makefile hands DESTDIR and PREFIX to cmake --install
dry=$(make -s -n -C "$SRC" install BUILD="$BUILD" DESTDIR=/stage/x PREFIX=/opt/y 2>/dev/null |
      grep 'cmake --install' || true)
[[ $dry == *'DESTDIR="/stage/x"'* && $dry == *'--prefix "/opt/y"'* ]] ||
        fail "make install does not pass DESTDIR and PREFIX: '$dry'"

for prefix in /usr /opt/tidemark; do
        S=$T/stage$prefix
        DESTDIR=$S cmake --install "$BUILD" --prefix "$prefix" >"$T/install.log" 2>&1 ||
                { cat "$T/install.log" >&2; fail "cmake --install --prefix $prefix"; }
        R=$S$prefix
        outside=$(cd "$S" && find . -mindepth 1 \( -type f -o -type l \) ! -path ".$prefix/*")
        [[ -z $outside ]] || fail "files outside the prefix $prefix: $outside"
        for f in bin/tidemark bin/tidemark-fs bin/tidemark-backupd sbin/mount.fuse.tidemark \
                share/man/man1/tidemark.1 share/man/man1/tidemark-fs.1 share/man/man5/tidemark.conf.5 \
                share/man/man8/tidemark-backupd.8 lib/systemd/system/tidemark-backupd.service \
                lib/sysusers.d/tidemark.conf share/doc/tidemark/examples/tidemark.conf; do
                [[ -e $R/$f ]] || fail "prefix $prefix: $f not installed"
        done
        for unit in "$R"/lib/systemd/system/*.service; do
                grep -q "^ExecStart=$prefix/bin/" "$unit" || fail "$unit: ExecStart is not under $prefix/bin"
        done
        echo "install --prefix $prefix: ok ($(find "$R" -type f | wc -l) files)"
done
R=$T/stage/usr/usr

for exe in "$R"/bin/*; do
        name=$(basename "$exe")
        out=$("$exe" --version 2>&1) || fail "$name --version failed: $out"
        [[ $out == "$name $VERSION"* ]] || fail "$name --version says '$out', want '$name $VERSION'"
        case $name in
        tidemark | tidemark-fs) sec=1 ;;
        *) sec=8 ;;
        esac
        [[ -f $R/share/man/man$sec/$name.$sec ]] || fail "$name has no man page $name($sec)"
        if [[ $name == tidemark-*d ]]; then
                [[ -f $R/lib/systemd/system/$name.service ]] || fail "$name has no systemd unit"
        fi
        echo "$out"
done
out=$("$R/bin/tidemark" version)
[[ $out == "tidemark $VERSION" ]] || fail "tidemark version says '$out'"

if command -v man >/dev/null; then
        for page in "$R"/share/man/man*/*; do
                w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l -Tutf8 "$page" 2>&1 >/dev/null)
                [[ -z $w ]] || fail "$(basename "$page"): $w"
                grep -q "tidemark $VERSION" "$page" || fail "$(basename "$page") does not carry version $VERSION"
        done
        echo "man pages: $(ls "$R"/share/man/man*/* | wc -l) format without warnings"
else
        echo "man absent: man page check skipped"
fi

if command -v systemd-analyze >/dev/null; then
        mkdir -p "$T/units"
        for unit in "$R"/lib/systemd/system/*.service; do
                u=$T/units/$(basename "$unit")
                # verify checks that ExecStart exists: point it at the staged binary
                sed "s#^ExecStart=/usr/bin/#ExecStart=$R/bin/#" "$unit" >"$u"
                out=$(MANPATH=$R/share/man systemd-analyze verify "$u" 2>&1) || true
                [[ -z $out ]] || fail "systemd-analyze verify $(basename "$unit"): $out"
                systemd-analyze security --offline=true --threshold=20 "$u" >"$T/sec.out" 2>&1 ||
                        { tail -n 3 "$T/sec.out" >&2; fail "$(basename "$unit"): sandbox exposure above 2.0"; }
                echo "$(basename "$unit"): verify ok, $(grep -o 'exposure level.*' "$T/sec.out")"
        done
else
        echo "systemd-analyze absent: unit checks skipped"
fi
echo PASS
