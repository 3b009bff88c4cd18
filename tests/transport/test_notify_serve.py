"""systemd notify from a real ``mcp-edge serve``: a fake service manager (a real AF_UNIX datagram socket) hears
READY=1 (with its STATUS=), WATCHDOG=1 and, after SIGTERM, STOPPING=1, in that order; the process exits 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_unix import _short_path
from transport_helpers import WAIT, ServerProcess, probe_command, server_env


@pytest.fixture
def manager() -> Iterator[tuple[socket.socket, str]]:
    folder = Path(tempfile.mkdtemp(prefix="mcp-edge-notify-"))  # short: AF_UNIX paths have 107 bytes
    path = str(folder / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(WAIT)
    try:
        yield sock, path
    finally:
        sock.close()
        Path(path).unlink(missing_ok=True)
        folder.rmdir()


def _until(sock: socket.socket, got: list[list[str]], wanted: str) -> None:
    """Collect messages (each a list of KEY=VALUE lines) until one holds ``wanted``."""
    while not any(wanted in msg for msg in got):  # each recv waits at most WAIT (the socket's timeout)
        try:
            got.append(sock.recv(4096).decode().split("\n"))
        except TimeoutError:
            raise AssertionError(f"no {wanted} from the server; got {got}") from None


@pytest.mark.parametrize("mode", ["--unix", "--http"])
def test_ready_watchdog_stopping_in_order_from_a_served_process(tmp_path: Path, manager: tuple[socket.socket, str],
                                                                mode: str) -> None:
    sock, address = manager
    args = [mode, str(_short_path(tmp_path))] if mode == "--unix" else [mode, "--port", "0"]
    env = server_env(tmp_path)
    env.update(NOTIFY_SOCKET=address, WATCHDOG_USEC="200000")  # pings every 0.1 s
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(probe_command(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    server = ServerProcess(proc)
    got: list[list[str]] = []
    try:
        server.wait_ready("serving MCP over")
        _until(sock, got, "READY=1")
        _until(sock, got, "WATCHDOG=1")
        proc.send_signal(signal.SIGTERM)
        _until(sock, got, "STOPPING=1")
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    first = {key: next(i for i, msg in enumerate(got) if key in msg) for key in ("READY=1", "WATCHDOG=1", "STOPPING=1")}
    assert first["READY=1"] < first["WATCHDOG=1"] < first["STOPPING=1"], got
    ready = got[first["READY=1"]]
    what = "a unix socket" if mode == "--unix" else "Streamable HTTP"
    assert f"STATUS=serving 1 plugin over {what}" in ready, ready
    assert any(line.startswith("STATUS=stopping on SIGTERM") for line in got[first["STOPPING=1"]])
    assert not any("READY=1" in msg for msg in got[first["STOPPING=1"]:])  # never ready again after stopping


def test_no_notify_socket_no_messages_and_serving_as_usual(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    env.pop("NOTIFY_SOCKET", None)
    proc = subprocess.Popen(probe_command("--http", "--port", "0"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    server = ServerProcess(proc)
    try:
        server.wait_ready("serving MCP over")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "systemd notify" not in server.stderr()
