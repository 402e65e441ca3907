#!/usr/bin/env bash
# check_man.sh BIN_DIR MAN_DIR — every option that `edgemuxd --help`,
# `edgemux --help` and each `edgemux COMMAND --help` print is documented in
# edgemuxd(8) / edgemux(1), so the pages cannot fall behind the programs.
set -euo pipefail
bin=$1 man=$2
# Every FAIL line goes to this file: check runs at the end of pipelines,
# in subshells, where a variable set would be lost.
fails=$(mktemp); trap 'rm -f "$fails"' EXIT
# opts_of TEXT: the --long and -s options a help text names.
opts_of() { grep -oE '(^|[ [(|])--?[a-z][a-z0-9-]*' | sed 's/^[ [(|]//' | sort -u; }
check() { # page, help text on stdin
    local page=$1 o
    local body
    body=$(sed 's/\\-/-/g' "$man/$page")
    for o in $(opts_of); do
        grep -qe "$o\b" <<<"$body" || echo "FAIL: $page does not document $o" | tee -a "$fails"
    done
}
# $EMX_EXEC_WRAPPER: the emulator a cross build's programs run under.
run() { ${EMX_EXEC_WRAPPER:-} "$@"; }
run "$bin/edgemuxd" --help | check edgemuxd.8
run "$bin/edgemux" --help | check edgemux.1
cmds=$(run "$bin/edgemux" --help | sed -n '/^Commands:/,/^$/p' | awk 'NF && !/Commands:/ {print $1}')
[ -n "$cmds" ] || { echo "FAIL: no commands in edgemux --help"; exit 1; }
for c in $cmds; do
    grep -qE "^\.(B|BI|BR) $c\b" "$man/edgemux.1" || echo "FAIL: edgemux.1 lacks command $c" | tee -a "$fails"
    run "$bin/edgemux" "$c" --help | check edgemux.1
done
if [ -s "$fails" ]; then
    echo "check_man: $(sort -u "$fails" | wc -l) undocumented option(s) or command(s)"
    exit 1
fi
echo "ok: man pages document every option of edgemuxd and edgemux ($(echo $cmds | wc -w) commands)"
