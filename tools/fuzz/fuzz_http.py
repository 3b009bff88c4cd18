"""atheris target: HTTP head/body parsing and framing: ``http_wire.HttpConnection`` in front of the real ``McpHttpApp``.

    python tools/fuzz/fuzz_http.py [libFuzzer flags: -runs=N -max_total_time=S ...] [corpus dirs]

Seeds and the crashes kept as regression inputs are in tests/data/fuzz/http/ (what each byte means:
``check_http`` in tools/fuzz/harness.py). tools/fuzz/run.py runs it with the flags ``make test`` and
``make fuzz`` use. x86_64 only: atheris has no aarch64 wheel.
"""

from __future__ import annotations

import logging
import sys

import atheris

with atheris.instrument_imports(include=["harness", "mcp_edge.transport", "mcp_edge.runtime", "mcp_edge.mcp"]):
    import harness

    harness.preload("http")


def main() -> None:
    logging.getLogger().addHandler(logging.NullHandler())  # the runtime's log lines would drown the fuzzer's
    atheris.Setup(sys.argv, harness.check_http)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
