#!/usr/bin/env bash
# check_packages.sh DEB_DIR — the Debian packages on this machine, end to
# end: dpkg -i; the sysusers/tmpfiles postinst made user+group edgemux and
# /run/edgemux; systemd-analyze verify passes on the installed units; the
# unit's own command line, run as the unit's User=/Group= (setpriv, no
# systemd), serves a client of another user in group edgemux like the
# direct TFLite oracle (CLI and Python) and refuses a user outside it;
# the engine finds the installed edgemux-devhost; then dpkg --purge leaves
# no file behind. The edgemux user and group stay after the purge, as
# Debian policy has it; this test removes them afterwards only when it was
# the one that created them, to leave the machine as it found it.
#
# Root only. Refuses to run when an edgemux package is already installed
# (it would remove it); runs one at a time (flock).
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
debs=$(cd "$1" && pwd)
oracle=${EMX_ORACLE:-$here/../../build/bin/emx-oracle-infer}
model=${EMX_MODELS_DIR:-$here/../../.deps/models}/face_detection_short_range.tflite

[ "$(id -u)" -eq 0 ] || fail "run as root: it installs packages with dpkg"
[ -x "$oracle" ] || fail "no oracle program $oracle (build the tree first: make build)"
exec 8>/run/lock/edgemux-check-packages.lock
flock -w 600 8 || fail "another check_packages.sh holds /run/lock/edgemux-check-packages.lock"

pkgs=(edgemuxd libedgemux0 libedgemux-dev python3-edgemux)
[ -n "$(ls "$debs"/libedgemux-client0_*.deb 2>/dev/null)" ] && pkgs+=(libedgemux-client0)
for p in "${pkgs[@]}"; do
    if dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qv '^not-installed$'; then
        fail "$p is already on this machine; this test would remove it (dpkg --purge $p first)"
    fi
done
files=()
for p in "${pkgs[@]}"; do files+=("$(ls "$debs/${p}_"*.deb)"); done

# What existed before, among the paths the packages and their scripts touch.
paths() {
    local f
    for f in "${files[@]}"; do dpkg-deb -c "$f" | awk '{print $6}' | sed 's|^\.||; s|/$||'; done
    printf '%s\n' /run/edgemux /var/lib/edgemux /etc/edgemux \
        /etc/systemd/system/sockets.target.wants/edgemuxd.socket \
        /var/lib/systemd/deb-systemd-helper-enabled/edgemuxd.socket.dsh-also \
        /var/lib/systemd/deb-systemd-helper-enabled/sockets.target.wants/edgemuxd.socket
}
exists() {
    local p
    while IFS= read -r p; do
        if [ -n "$p" ] && { [ -e "$p" ] || [ -L "$p" ]; }; then echo "$p"; fi
    done | sort -u
}
paths | exists >"$tmp/before"
if ! getent passwd edgemux >/dev/null; then
    at_exit "userdel edgemux 2>/dev/null; groupdel edgemux 2>/dev/null"
fi

test_users=(emxtest-in emxtest-out)
for u in "${test_users[@]}"; do
    getent passwd "$u" >/dev/null && fail "user $u exists: left by an earlier run? (userdel $u)"
done
at_exit "for u in ${test_users[*]}; do userdel \$u 2>/dev/null; done"
at_exit "dpkg --purge ${pkgs[*]} >/dev/null 2>&1"

dpkg -i "${files[@]}" >"$tmp/dpkg-i.log" 2>&1 || { cat "$tmp/dpkg-i.log" >&2; fail "dpkg -i"; }
ok "installed: ${pkgs[*]}"
getent passwd edgemux >/dev/null || fail "postinst did not create user edgemux (sysusers.d)"
getent group edgemux >/dev/null || fail "postinst did not create group edgemux"
[ "$(stat -c %U:%G /run/edgemux)" = edgemux:edgemux ] || fail "/run/edgemux is $(stat -c %U:%G /run/edgemux) (tmpfiles.d)"
[ -d /var/lib/edgemux/models ] || fail "no /var/lib/edgemux/models"
ok "user and group edgemux, /run/edgemux, /var/lib/edgemux/models"

units=(/lib/systemd/system/edgemuxd.service /lib/systemd/system/edgemuxd.socket)
verify=$(systemd-analyze verify "${units[@]}" 2>&1) || fail "systemd-analyze verify: $verify"
[ -z "$verify" ] || fail "systemd-analyze verify: $verify"
ok "systemd-analyze verify: units clean"

useradd --system --no-create-home --shell /usr/sbin/nologin --groups edgemux emxtest-in
useradd --system --no-create-home --shell /usr/sbin/nologin emxtest-out
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --init-groups -- "$@"; }

# The model repository is the administrator's: a model for this test,
# removed again before the purge.
mkdir -p /var/lib/edgemux/models/face
cp "$model" /var/lib/edgemux/models/face/model.tflite
chmod -R a+rX /var/lib/edgemux/models/face
at_exit "rm -rf /var/lib/edgemux/models/face"

unit=${units[0]}
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
user=$(sed -n 's/^User=//p' "$unit")
group=$(sed -n 's/^Group=//p' "$unit")
read -ra cmd <<<"$exec_start"
start_daemon "$tmp/daemon.log" setpriv --reuid="$user" --regid="$group" \
    --init-groups -- env -i PATH=/usr/bin:/bin "${cmd[@]}"
sock=/run/edgemux/edgemux.sock
[ "$(stat -c %U:%G:%a $sock)" = edgemux:edgemux:660 ] || fail "$sock is $(stat -c %U:%G:%a $sock)"
ok "ExecStart as $user:$group: $exec_start"

oracle_compare "$oracle" "$model" face 11 as emxtest-in env -i /usr/bin/edgemux --socket "$sock"
as emxtest-in env -i /usr/bin/python3 - "$sock" <<'PY' || fail "python3-edgemux as emxtest-in"
import sys
import edgemux._client as c
conn = c.Connection(socket=sys.argv[1])
assert conn.models() == ["face"], conn.models()
conn.ping()
print("ok: python3-edgemux as emxtest-in lists", conn.models())
PY
if out=$(as emxtest-out env -i /usr/bin/edgemux --socket "$sock" models 2>&1); then
    fail "a user outside group edgemux was served: $out"
fi
ok "emxtest-out (not in group edgemux) refused: $(echo "$out" | head -n 1)"
stop_daemon

# Isolated devices run the installed /usr/libexec/edgemux/edgemux-devhost,
# found with no EMX_DEVHOST and not on PATH.
install -d -o "$user" -g "$group" "$tmp/iso"
start_daemon "$tmp/iso.log" setpriv --reuid="$user" --regid="$group" \
    --init-groups -- env -i PATH=/usr/bin:/bin /usr/sbin/edgemuxd \
    --socket "$tmp/iso/s" --models /var/lib/edgemux/models --device cpu:isolate=1
oracle_compare "$oracle" "$model" face 12 env -i /usr/bin/edgemux --socket "$tmp/iso/s"
stop_daemon
ok "isolated device through the installed edgemux-devhost"

rm -rf /var/lib/edgemux/models/face
for u in "${test_users[@]}"; do userdel "$u"; done
dpkg --purge "${pkgs[@]}" >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; fail "dpkg --purge"; }
paths | exists >"$tmp/after"
left=$(comm -13 "$tmp/before" "$tmp/after")
[ -z "$left" ] || fail "left behind after dpkg --purge: $left"
ok "dpkg --purge: nothing left behind ($(wc -l <"$tmp/before") of the paths existed before)"
getent passwd edgemux >/dev/null ||
    fail "dpkg --purge removed user edgemux (Debian keeps system users)"
ok "user edgemux stays after the purge (Debian policy)"
echo "check_packages: passed"
