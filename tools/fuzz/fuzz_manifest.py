"""atheris target: the plugin manifest and config loader (read_manifest, check_schema, validate, resolve_config).

    python tools/fuzz/fuzz_manifest.py [libFuzzer flags: -runs=N -max_total_time=S ...] [corpus dirs]

Seeds and the crashes kept as regression inputs are in tests/data/fuzz/manifest/ (what each byte means:
``check_manifest`` in tools/fuzz/harness.py). tools/fuzz/run.py runs it with the flags ``make test`` and
``make fuzz`` use. x86_64 only: atheris has no aarch64 wheel.
"""

from __future__ import annotations

import logging
import sys

import atheris

with atheris.instrument_imports(include=["harness", "mcp_edge.plugin.manifest", "mcp_edge.plugin.config", "tomllib"]):
    import harness

    harness.preload("manifest")


def main() -> None:
    logging.getLogger().addHandler(logging.NullHandler())  # the runtime's log lines would drown the fuzzer's
    atheris.Setup(sys.argv, harness.check_manifest)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
