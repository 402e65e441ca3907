# tests/packages/lib.sh — shared by the shell tests of installed trees and
# packages. Source it; it sets -eu and `tmp`, cleaned at exit.
set -euo pipefail

tmp=$(mktemp -d /tmp/emx-pkgtest.XXXXXX)
chmod 0755 "$tmp"
cleanups=()
cleanup() {
    local i
    for ((i = ${#cleanups[@]} - 1; i >= 0; i--)); do eval "${cleanups[i]}" || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
at_exit() { cleanups+=("$1"); }

fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf 'ok: %s\n' "$*"; }

# start_daemon LOG CMD... : runs CMD (an edgemuxd command line) with its
# stderr into a fifo and returns once it logs "listening on" (its ready
# line), not after a guessed delay; the rest of its log drains into LOG.
# Sets daemon_pid.
start_daemon() {
    local log=$1 line
    shift
    rm -f "$tmp/daemon.fifo"
    mkfifo "$tmp/daemon.fifo"
    "$@" 2>"$tmp/daemon.fifo" &
    daemon_pid=$!
    at_exit "kill $daemon_pid 2>/dev/null; wait $daemon_pid 2>/dev/null"
    exec 9<"$tmp/daemon.fifo"
    while IFS= read -r -t 60 line <&9; do
        printf '%s\n' "$line" >>"$log"
        case $line in *"listening on"*)
            cat <&9 >>"$log" &
            exec 9<&-
            return 0 ;;
        esac
    done
    exec 9<&-
    cat "$log" >&2
    fail "edgemuxd did not get ready: $*"
}

# stop_daemon: SIGTERM, and edgemuxd must exit 0 (it finishes in-flight work).
stop_daemon() {
    kill -TERM "$daemon_pid"
    local rc=0
    wait "$daemon_pid" || rc=$?
    [ "$rc" -eq 0 ] || fail "edgemuxd exited $rc on SIGTERM"
}

# oracle_compare ORACLE MODEL_FILE MODEL_NAME SEED CLI... : the oracle's
# outputs for seeded inputs, against `CLI infer MODEL_NAME` on the same
# inputs, byte for byte.
oracle_compare() {
    local oracle=$1 file=$2 name=$3 seed=$4 dir i
    shift 4
    dir=$(mktemp -d "$tmp/oracle.XXXXXX")
    chmod 0777 "$dir" # the client may run as another user
    local counts nin nout
    counts=$("$oracle" "$file" "$seed" "$dir" | grep '^inputs ')
    nin=$(echo "$counts" | cut -d' ' -f2)
    nout=$(echo "$counts" | cut -d' ' -f4)
    local args=()
    for ((i = 0; i < nin; i++)); do args+=(--input "$dir/in$i"); done
    for ((i = 0; i < nout; i++)); do args+=(--output "$dir/got$i"); done
    "$@" infer "$name" "${args[@]}" >/dev/null || fail "infer $name failed: $*"
    for ((i = 0; i < nout; i++)); do
        cmp -s "$dir/want$i" "$dir/got$i" || fail "$name output $i differs from the oracle"
    done
    ok "$name: $nout outputs equal the direct TFLite oracle"
}
