#!/usr/bin/env bash
# exec_wrapper.sh BIN_DIR ORACLE MODELS REPO — EMX_EXEC_WRAPPER (how
# make check-arm64 runs device hosts under qemu-aarch64): edgemuxd with an
# isolated device starts edgemux-devhost through the wrapper's words (a
# script that records its arguments, then runs them), and serves like the
# oracle; a wrapper that does not exist fails the device instead of being
# ignored.
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
bin=$1 oracle=$2 models=$3 repo=$4

cat >"$tmp/wrap" <<'SH'
#!/bin/sh
marker=$1; shift
printf '%s\n' "$*" >>"$marker"
exec "$@"
SH
chmod +x "$tmp/wrap"

EMX_EXEC_WRAPPER="$tmp/wrap $tmp/marker" start_daemon "$tmp/d.log" \
    "$bin/edgemuxd" --socket "$tmp/s" --models "$repo" --device cpu:isolate=1
oracle_compare "$oracle" "$models/face_detection_short_range.tflite" \
    face_detection_short_range 5 "$bin/edgemux" --socket "$tmp/s"
stop_daemon
[ -s "$tmp/marker" ] || fail "the wrapper never ran"
grep -q "/edgemux-devhost" "$tmp/marker" ||
    fail "the wrapper ran, but not the device host: $(cat "$tmp/marker")"
ok "device host started through EMX_EXEC_WRAPPER: $(grep -m1 edgemux-devhost "$tmp/marker")"

# A wrapper that is not there: the isolated device cannot start.
rm -f "$tmp/s"
if EMX_EXEC_WRAPPER="$tmp/no-such-wrapper" "$bin/edgemuxd" --socket "$tmp/s" \
        --models "$repo" --device cpu:isolate=1 >"$tmp/bad.log" 2>&1 &
then :; fi
bad=$!
for _ in $(seq 100); do [ -S "$tmp/s" ] && break; sleep 0.1; done
if [ -S "$tmp/s" ] && "$bin/edgemux" --socket "$tmp/s" infer --random \
        face_detection_short_range >/dev/null 2>&1; then
    kill "$bad"; fail "an isolated device ran with EMX_EXEC_WRAPPER naming no program"
fi
kill "$bad" 2>/dev/null || true
wait "$bad" 2>/dev/null || true
ok "a missing wrapper fails the device: $(grep -m1 -i -E 'wrapper|no such|cannot' "$tmp/bad.log" || tail -n 1 "$tmp/bad.log")"
echo "exec_wrapper: passed"
