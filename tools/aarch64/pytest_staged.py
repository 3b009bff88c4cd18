"""pytest plugin of tools/aarch64/test.sh: says which ISA level a run tests, and checks
that mcp_edge came from the aarch64 staging copy, not the source tree's x86 build."""

from __future__ import annotations

import os
import platform
import sys

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    import mcp_edge
    from mcp_edge.native import _crc, cpu

    staged = os.path.realpath(os.environ["MCP_EDGE_STAGED"])
    used = [os.path.realpath(m.__file__ or "") for m in (mcp_edge, _crc)]
    if platform.machine() != "aarch64" or any(not f.startswith(staged + os.sep) for f in used):
        pytest.exit(
            f"aarch64 run imported the wrong mcp_edge ({', '.join(used)}, on {platform.machine()}): "
            f"expected the staging copy under {staged}; sys.path = {sys.path}",
            returncode=3,
        )
    cap = os.environ.get("MCP_EDGE_ISA") or "unset"
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = (
        f"aarch64 run: ISA level {cpu.active()} (MCP_EDGE_ISA={cap}; this CPU runs "
        f"{', '.join(cpu.levels())}); mcp_edge from {os.path.dirname(used[0])}"
    )
    if reporter is not None:
        reporter.write_line(line, bold=True)
    else:
        print(line)
