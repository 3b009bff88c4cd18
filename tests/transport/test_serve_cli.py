"""``mcp-edge serve``: modes, flags, what it prints, and one-line errors with exit status 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from transport_helpers import WAIT, HttpClient, probe_command, running_server, server_env


def _fails(tmp_path: Path, *args: str) -> str:
    proc = subprocess.run(probe_command(*args), stdin=subprocess.DEVNULL, capture_output=True,
                          env=server_env(tmp_path), cwd=tmp_path, timeout=WAIT)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stdout == b""
    last = proc.stderr.decode().strip().splitlines()[-1]
    assert last.startswith("mcp-edge: ")
    return last


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--stdio", "--http"), "choose one of"),
        (("--stdio", "--unix", "/tmp/x.sock"), "choose one of"),
        (("--stdio", "--port", "1"), "--http only"),
        (("--port", "http"), "expected a number"),
        (("--port", "70000"), "0..65535"),
    ],
)
def test_bad_flags_fail_with_one_line(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    assert words in _fails(tmp_path, *args)


def test_port_in_use_fails_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "cannot serve" in _fails(tmp_path, "--port", str(port))


def test_http_is_the_default_and_says_where(tmp_path: Path) -> None:
    with running_server(tmp_path, "--port", "0") as srv:
        assert srv.where == f"http://127.0.0.1:{srv.port}/mcp"
        assert any("board " in line and "plugins: " in line and "probe" in line for line in srv.stderr_lines)
        c = HttpClient(srv.port)
        assert c.handshake().status == 200
        c.close()


def test_host_flag(tmp_path: Path) -> None:
    with running_server(tmp_path, "--http", "--host", "localhost", "--port", "0") as srv:
        assert srv.where.startswith("http://127.0.0.1:") or srv.where.startswith("http://[::1]:")


def test_stdio_path_does_not_load_the_http_stack() -> None:
    code = (
        "import sys\n"
        "import mcp_edge.cli, mcp_edge.server, mcp_edge.transport, mcp_edge.transport.stdio\n"
        "loaded = [m for m in ('httptools', 'mcp_edge.transport.http_wire') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=WAIT)


@pytest.mark.parametrize(("tls", "loaded"), [("0", False), ("1", True)])
def test_stdio_serve_leaves_openssl_out_unless_asked(tmp_path: Path, tls: str, loaded: bool) -> None:
    """`serve --stdio` does not load OpenSSL (4.5 MiB of RSS) unless the asyncio_tls setting asks for it."""
    env = {**server_env(tmp_path), "MCP_EDGE_ASYNCIO_TLS": tls}
    proc = subprocess.run([sys.executable, "-X", "importtime", *probe_command("--stdio")[1:]],
                          stdin=subprocess.DEVNULL, capture_output=True, env=env, cwd=tmp_path, timeout=WAIT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.decode().splitlines()
               if line.startswith("import time:")}
    assert "asyncio" in modules  # the probe really served
    assert ("_ssl" in modules) is loaded
