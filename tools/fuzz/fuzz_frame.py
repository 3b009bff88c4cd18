"""atheris target: the wire-format decoder (``mcp_edge.native._frame.decode``, C in csrc/frame/frame.c).

    python tools/fuzz/fuzz_frame.py [libFuzzer flags: -runs=N -max_total_time=S ...] [corpus dirs]

Seeds and the crashes kept as regression inputs are in tests/data/fuzz/frame/ (what each byte means:
``check_frame`` in tools/fuzz/harness.py). The C decoder is not instrumented (a gcc build has no
libFuzzer coverage): atheris is guided by the oracle's Python branches (which reason, which kind, which
TLVs), and a read past the input's end shows under the ASan build (``MCP_EDGE_SANITIZE=1``).
tools/fuzz/run.py runs it with the flags ``make test`` and ``make fuzz`` use. x86_64 only.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["harness"]):
    import harness

    harness.preload("frame")


def main() -> None:
    atheris.Setup(sys.argv, harness.check_frame)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
