#!/usr/bin/env bash
# install_tree.sh BUILD_DIR ORACLE MODELS REPO — `cmake --install` into a
# DESTDIR, then check what landed where: SONAMEs, the private TFLite found
# through $ORIGIN RUNPATHs only, headers + pkg-config usable by a compiler,
# man pages, the Python package; and the installed edgemuxd + edgemux,
# with no LD_LIBRARY_PATH, answer like the direct TFLite oracle.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
build=$1 oracle=$2 models=$3 repo=$4

DESTDIR=$tmp/dest cmake --install "$build" >"$tmp/install.log"
prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$build/CMakeCache.txt")
pydir=$(sed -n 's/^EMX_INSTALL_PYTHONDIR:STRING=//p' "$build/CMakeCache.txt")
root=$tmp/dest$prefix
lib=$root/$libdir

for f in sbin/edgemuxd bin/edgemux libexec/edgemux/edgemux-devhost \
         "$libdir/libedgemux.so.0" "$libdir/libedgemux.so" \
         "$libdir/edgemux/libtensorflowlite_c.so" include/edgemux/edgemux.h \
         include/edgemux/client.h "$libdir/pkgconfig/edgemux.pc" \
         share/man/man1/edgemux.1 share/man/man8/edgemuxd.8 \
         "$pydir/edgemux/__init__.py" "$pydir/edgemux/_lib.py" \
         lib/systemd/system/edgemuxd.service lib/systemd/system/edgemuxd.socket \
         lib/udev/rules.d/60-edgemux-coral.rules lib/sysusers.d/edgemux.conf \
         lib/tmpfiles.d/edgemux.conf; do
    [ -e "$root/$f" ] || fail "not installed: $prefix/$f"
done
sysconf=$(sed -n 's/^CMAKE_INSTALL_SYSCONFDIR:PATH=//p' "$build/CMakeCache.txt")
case $sysconf in /*) conf=$tmp/dest$sysconf ;; *) conf=$root/$sysconf ;; esac
[ -e "$conf/edgemux/edgemuxd.json" ] || fail "no $sysconf/edgemux/edgemuxd.json"
grep -q "^ExecStart=$prefix/sbin/edgemuxd " "$root/lib/systemd/system/edgemuxd.service" \
    || fail "edgemuxd.service does not run $prefix/sbin/edgemuxd"
[ ! -e "$lib/libtensorflowlite_c.so" ] || fail "TFLite is on the library path ($libdir)"
soname=$(readelf -d "$lib/libedgemux.so.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = libedgemux.so.0 ] || fail "libedgemux SONAME is '$soname'"
if [ -e "$lib/libedgemux-client.so.0" ]; then
    soname=$(readelf -d "$lib/libedgemux-client.so.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
    [ "$soname" = libedgemux-client.so.0 ] || fail "libedgemux-client SONAME is '$soname'"
    ! readelf -d "$lib/libedgemux-client.so.0" | grep -q tensorflowlite \
        || fail "libedgemux-client needs TFLite"
    [ -e "$lib/pkgconfig/edgemux-client.pc" ] || fail "no edgemux-client.pc"
fi
ok "layout under $prefix (libdir $libdir)"

# Every installed ELF finds its libraries relative to itself: no build tree
# path, no absolute path at all.
while IFS= read -r elf; do
    rp=$(readelf -d "$elf" | sed -n 's/.*R\(UN\)\{0,1\}PATH.*\[\(.*\)\]/\2/p')
    IFS=: read -ra parts <<<"$rp"
    for p in ${parts[@]+"${parts[@]}"}; do
        case $p in '$ORIGIN'*) ;; *) fail "$elf has RUNPATH entry '$p'" ;; esac
    done
done < <(find "$root" -type f \( -perm -u+x -o -name '*.so*' \) -exec sh -c \
         'head -c4 "$1" | grep -q ELF && echo "$1"' _ {} \;)
ok "RUNPATHs are \$ORIGIN-relative"

# The headers and edgemux.pc are enough to build and run a program.
cat >"$tmp/hello.c" <<'C'
#include <stdio.h>
#include <edgemux/edgemux.h>
int main(void) { printf("%s\n", emx_version()); return 0; }
C
sed -i "s|^prefix=.*|prefix=$root|" "$lib/pkgconfig/edgemux.pc"
flags=$(PKG_CONFIG_PATH=$lib/pkgconfig pkg-config --cflags --libs edgemux)
# shellcheck disable=SC2086
cc -o "$tmp/hello" "$tmp/hello.c" $flags -Wl,-rpath,"$lib"
version=$(env -u LD_LIBRARY_PATH "$tmp/hello")
[ -n "$version" ] || fail "a program built with pkg-config edgemux printed nothing"
ok "pkg-config edgemux builds a program (emx_version $version)"

for page in "$root/share/man/man1/edgemux.1" "$root/share/man/man8/edgemuxd.8"; do
    warn=$(LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
    [ -z "$warn" ] || fail "man $page: $warn"
done
ok "man pages format without warnings"

start_daemon "$tmp/daemon.log" env -i PATH=/usr/bin:/bin \
    "$root/sbin/edgemuxd" --socket "$tmp/s" --models "$repo" --device cpu
oracle_compare "$oracle" "$models/face_detection_short_range.tflite" \
    face_detection_short_range 7 env -i "$root/bin/edgemux" --socket "$tmp/s"
stop_daemon
ok "installed tree serves like the oracle"
