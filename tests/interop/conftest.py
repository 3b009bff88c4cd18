"""Fixtures of the interop tests (the helpers are in interop_helpers.py)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from interop_helpers import MODERN, PLUGIN_DIRS, SERVE, WAIT, Target, wait_for_url


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    data = tmp_path_factory.mktemp("interop-data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    env["MCP_EDGE_DATA_DIR"] = str(data)
    env["MCP_EDGE_PLUGIN_DIRS"] = os.pathsep.join(str(d) for d in PLUGIN_DIRS)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def http_url(server_env: dict[str, str]) -> Iterator[str]:
    """One ``mcp-edge serve --http`` on a free port for the whole session."""
    proc = subprocess.Popen([*SERVE, "--http", "--host", "127.0.0.1", "--port", "0"], env=server_env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        url = wait_for_url(proc, lines)
        drain = threading.Thread(target=lambda: lines.extend(line.decode(errors="replace") for line in proc.stderr),
                                 daemon=True)
        drain.start()
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stderr.close()


TARGETS = [("stdio", "legacy"), ("stdio", MODERN), ("http", "legacy"), ("http", MODERN)]


@pytest.fixture(params=TARGETS, ids=[f"{t}-{m}" for t, m in TARGETS])
def target(request: pytest.FixtureRequest, server_env: dict[str, str]) -> Target:
    transport, mode = request.param
    url = request.getfixturevalue("http_url") if transport == "http" else None
    return Target(transport, mode, server_env, url, Path(server_env["MCP_EDGE_DATA_DIR"]))
