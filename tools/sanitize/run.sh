#!/usr/bin/env bash
# tools/sanitize/run.sh - the C stress programs (tests/csrc/*.c) under ThreadSanitizer and ASan+UBSan.
# SPDX-License-Identifier: Apache-2.0
#
# Usage (`make test-sanitize`): PYTHON=.venv/bin/python tools/sanitize/run.sh [--only NAME[,NAME]]
#     [--variants tsan,asan] [--python [--python-tests "tests/native tests/ipc"]] [-j N]
# Each tests/csrc/*.c names its csrc sources and libraries in its first lines
# (`// sources: ...`, `// libs: ...`); tools/sanitize/run.py builds each one
# twice (-fsanitize=thread; -fsanitize=address,undefined) under build/sanitize/,
# runs it with halt_on_error=1 and fails on any report. --python also runs the
# native pytest suites against extensions built with MCP_EDGE_SANITIZE=1 in a
# throw-away copy of the tree. Under CI=true a missing sanitizer or an empty
# tests/csrc fails. Exit status 0 clean, 1 a failure, 2 a set-up error.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-.venv/bin/python}
[[ -x $PYTHON ]] || command -v "$PYTHON" >/dev/null || {
    echo "tools/sanitize/run.sh: PYTHON=$PYTHON not found (make setup creates .venv)" >&2
    exit 2
}
exec "$PYTHON" tools/sanitize/run.py "$@"
