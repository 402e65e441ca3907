#!/usr/bin/env bash
# refuses.sh DIR EDGEMUXD — check.js must refuse broken manifests, each for
# the reason planted: a copy of DIR passes untouched, then each mutation
# below (a sed script on one file) must fail with the expected message.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=$1 edgemuxd=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() { node "$here/check.js" "$tmp/m" "$edgemuxd"; }
fresh() { rm -rf "$tmp/m"; cp -r "$dir" "$tmp/m"; }

fresh
check >/dev/null || { echo "FAIL: the untouched manifests do not pass"; exit 1; }

n=0
# file | sed expression | what check.js must say
while IFS='|' read -r file expr want; do
    [ -z "$file" ] && continue
    fresh
    sed -i -e "$expr" "$tmp/m/$file"
    cmp -s "$dir/$file" "$tmp/m/$file" && { echo "FAIL: '$expr' changed nothing in $file"; exit 1; }
    if out=$(check 2>&1); then
        echo "FAIL: check.js accepted $file with '$expr'"; exit 1
    fi
    grep -qF -- "$want" <<<"$out" || {
        echo "FAIL: $file with '$expr': expected '$want', got:"; echo "$out"; exit 1; }
    echo "ok: refused ($file: $expr): $(grep -F -- "$want" <<<"$out" | head -n 1)"
    n=$((n + 1))
done <<'CASES'
service.yaml|s/port: 8080/port: "eighty"/|Kubernetes schema
edgemuxd-daemonset.yaml|s/containerPort: 8080/containerPort: 8081/|which is no containerPort
edgemuxd-daemonset.yaml|s/"0.0.0.0:8080"/"8080"/|listens on loopback only
edgemuxd-daemonset.yaml|s/"--http"/"--htp"/|edgemuxd has no option --htp
edgemuxd-daemonset.yaml|s/squat.ai\/coral-usb: 1/squat.ai\/coral: 1/|no device plugin here advertises
service.yaml|s/targetPort: http/targetPort: web/|is no container port's name
service.yaml|0,/app.kubernetes.io\/name: edgemuxd/s//app.kubernetes.io\/name: edgemux/|matches no pod template
namespace.yaml|s/name: edgemux$/name: edgemux-system/|is not created by any manifest
kserve-servingruntime.yaml|s/protocolVersions:/protocolVersion:/|not a field KServe documents
kserve-servingruntime.yaml|s/name: kserve-container/name: server/|kserve-container
kserve-servingruntime.yaml|s/runtime: edgemux/runtime: triton/|is no ServingRuntime
kserve-servingruntime.yaml|s/    - v2/    - v3/|is not one of
kserve-servingruntime.yaml|s/apiVersion: serving.kserve.io\/v1beta1/apiVersion: serving.kserve.io\/v9/|neither a Kubernetes kind
edgemuxd-daemonset.yaml|s/"log_level": "info"/"log_level": "info",/|is not JSON
Containerfile|s/bookworm-slim/bookworm/|bookworm-slim
Containerfile|s/USER edgemux:edgemux/USER root/|USER edgemux
CASES
echo "refuses: $n broken variants refused"
