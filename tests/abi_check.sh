#!/bin/sh
# abi_check.sh BUILD_DIR SOURCE_DIR — what the shared libraries and the CLI
# show the outside world:
#   - libedgemux-client and the edgemux CLI do not need TensorFlow Lite
#     (ldd, so nothing pulls it in indirectly either);
#   - both libraries carry their SONAME (lib<name>.so.0);
#   - each exports only public emx_ names that a header in
#     include/edgemux/ declares (no emx__ internals, no stray helpers), and
#     the client library none of the engine's.
# Prints what it checked; exits 1 at the first broken rule, naming it.
set -eu
build=$1
src=$2
fail() { echo "abi_check: FAIL: $*" >&2; exit 1; }
# $EMX_LDD: the target's loader listing what a program needs, in a cross
# build (tests/CMakeLists.txt); the build machine's ldd cannot read an arm64
# file ("not a dynamic executable").
lddx() { if [ -n "${EMX_LDD:-}" ]; then $EMX_LDD "$1"; else ldd "$1"; fi; }

for f in "$build"/lib/libedgemux-client.so.0 "$build"/bin/edgemux; do
  [ -e "$f" ] || fail "$f is missing"
  out=$(lddx "$f")
  echo "ldd $f:"; echo "$out"
  if echo "$out" | grep -q tensorflowlite; then
    fail "$f links TensorFlow Lite; the client side must not"
  fi
done
lddx "$build"/lib/libedgemux.so.0 | grep -q tensorflowlite ||
  fail "libedgemux.so.0 does not link TensorFlow Lite: is the engine in it?"

headers="$src"/include/edgemux/*.h
for lib in edgemux edgemux-client; do
  so="$build/lib/lib$lib.so.0"
  soname=$(readelf -d "$so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
  [ "$soname" = "lib$lib.so.0" ] || fail "$so has SONAME '$soname'"
  syms=$(nm -D --defined-only "$so" | awk '{print $3}' | sort)
  echo "$so (SONAME $soname) exports $(echo "$syms" | wc -l) symbols:"
  echo "$syms" | tr '\n' ' '; echo
  for s in $syms; do
    case $s in
    emx__*) fail "$so exports the internal $s" ;;
    emx_*) ;;
    *) fail "$so exports $s, which is not an emx_ name" ;;
    esac
    grep -Eq "EMX_EXPORT [^(]*\\b$s\\(" $headers ||
      fail "$so exports $s, which no EMX_EXPORT declaration in include/edgemux/ names"
  done
  if [ "$lib" = edgemux-client ]; then
    eng=$(echo "$syms" | grep -E '^emx_(engine|model|stream|request|submit$|infer$)' || true)
    [ -z "$eng" ] || fail "$so exports engine functions: $eng"
  fi
done
echo "abi_check: ok"
