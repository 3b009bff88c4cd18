"""Process policy: the supervisor turns signals into the stop token; transports install no handlers.

Real ``mcp-edge serve`` processes and real signals: the first SIGTERM/SIGINT drains (an in-flight call is
answered, exit 0), a second exits at once with status 1 after one log line, SIGHUP reloads the plugins and serving
goes on (tests/worker/test_sighup.py: what a changed profile does). In-process: the supervisor's handlers against
the test's own process, and an embedder's own token. Waits are bounded; nothing asserts on timing.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest
from test_stdio import StdioClient, _spawn
from test_unix import UnixClient, _short_path
from transport_helpers import PROBE_PLUGINS, WAIT, ServerProcess, request, running_server

from mcp_edge.runtime.stop import StopToken
from mcp_edge.supervisor import EXIT_SECOND_SIGNAL, Supervisor

STOPPING = "stopping (in-flight requests"  # the supervisor's line for a first signal


def _wait_stderr(proc: subprocess.Popen[bytes], marker: str, seen: list[str]) -> None:
    """Read the server's stderr until a line holds ``marker`` (the server acted on what we did)."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    deadline = time.monotonic() + WAIT
    buf = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            seen += [line.decode(errors="replace") for line in lines]
            if any(marker in line for line in seen):
                return
    raise AssertionError(f"the server never logged {marker!r}:\n" + "\n".join(seen))


def _wait_lines(server: ServerProcess, marker: str) -> None:
    for _ in range(int(WAIT / 0.02)):  # a bounded wait, not a measurement
        if any(marker in line for line in list(server.stderr_lines)):
            return
        time.sleep(0.02)
    raise AssertionError(f"the server never logged {marker!r}:\n{server.stderr()}")


def _stdio_with_a_call_in_flight(tmp_path: Path) -> tuple[subprocess.Popen[bytes], StdioClient]:
    proc = _spawn(tmp_path, {"drain_timeout_s": 60.0})
    client = StdioClient(proc)
    client.handshake()
    client.send(request(2, "tools/call", {"name": "slow", "arguments": {"seconds": 600}}))
    assert client.call(3, "ping")["result"] == {}  # the slow call is running
    return proc, client


def _close(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(WAIT)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


@pytest.mark.parametrize(("first", "second"), [(signal.SIGTERM, signal.SIGTERM), (signal.SIGINT, signal.SIGTERM),
                                               (signal.SIGTERM, signal.SIGINT)])
def test_a_second_signal_exits_at_once_with_status_1(tmp_path: Path, first: signal.Signals,
                                                     second: signal.Signals) -> None:
    proc, _ = _stdio_with_a_call_in_flight(tmp_path)
    seen: list[str] = []
    try:
        proc.send_signal(first)
        _wait_stderr(proc, STOPPING, seen)  # draining: the 600 s call would hold it for drain_timeout_s (60 s)
        proc.send_signal(second)
        assert proc.wait(WAIT) == EXIT_SECOND_SIGNAL == 1
        assert proc.stderr is not None
        seen += proc.stderr.read().decode(errors="replace").splitlines()
    finally:
        _close(proc)
    last = [line for line in seen if "second stop signal" in line]
    assert len(last) == 1 and second.name in last[0] and "status 1" in last[0]


def test_a_unix_server_answers_its_in_flight_call_on_sigterm_then_exits_0(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    with running_server(tmp_path, "--unix", str(path)) as srv:
        c = UnixClient(path)
        try:
            c.handshake()
            c.send(request(2, "tools/call", {"name": "slow", "arguments": {"seconds": 0.5}}))
            assert c.call(3, "ping")["result"] == {}  # the slow call is running
            srv.proc.send_signal(signal.SIGTERM)
            reply = c.recv()
            assert reply["id"] == 2 and reply["result"]["content"][0]["text"] == "slept"
            assert srv.proc.wait(WAIT) == 0
        finally:
            c.close()
    assert not path.exists()  # a drained stop cleans up its socket


def test_a_second_signal_stops_a_unix_server_with_status_1(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    with running_server(tmp_path, "--unix", str(path), settings={"drain_timeout_s": 60.0}) as srv:
        c = UnixClient(path)
        try:
            c.handshake()
            c.send(request(2, "tools/call", {"name": "slow", "arguments": {"seconds": 600}}))
            assert c.call(3, "ping")["result"] == {}
            srv.proc.send_signal(signal.SIGINT)
            _wait_lines(srv, STOPPING)
            srv.proc.send_signal(signal.SIGINT)
            assert srv.proc.wait(WAIT) == 1
        finally:
            c.close()


def test_sighup_reloads_the_plugins_and_serving_goes_on(tmp_path: Path) -> None:
    path = _short_path(tmp_path)
    with running_server(tmp_path, "--unix", str(path)) as srv:
        srv.proc.send_signal(signal.SIGHUP)
        _wait_lines(srv, "SIGHUP: reading the board profile")
        _wait_lines(srv, "reloaded (version")
        c = UnixClient(path)
        try:
            c.handshake()
            assert c.call(2, "ping")["result"] == {}
        finally:
            c.close()
        assert srv.stop() == 0


# -- in this process ----------------------------------------------------------------------------------------------


class _Exited(Exception):
    pass


def test_the_supervisor_feeds_its_token_and_removes_its_handlers() -> None:
    exits: list[int] = []

    def fake_exit(status: int) -> NoReturn:
        exits.append(status)
        raise _Exited

    before = signal.getsignal(signal.SIGTERM)

    async def main() -> tuple[str | None, bool, bool]:
        sup = Supervisor(exit=fake_exit)
        loop = asyncio.get_running_loop()
        with sup as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stop.wait(), WAIT)
            second_before = stop.second.is_set()
            failed: list[BaseException] = []
            loop.set_exception_handler(lambda _loop, ctx: failed.append(ctx.get("exception")))  # type: ignore
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.wait_for(stop.second.wait(), WAIT)
            await asyncio.sleep(0)
        return stop.reason, second_before, stop.second.is_set()

    reason, second_before, second_after = asyncio.run(main())
    assert (reason, second_before, second_after) == ("SIGTERM", False, True)
    assert exits == [1]
    assert signal.getsignal(signal.SIGTERM) == before  # removed with the block


def test_an_embedders_token_gets_no_signal_handlers(tmp_path: Path) -> None:
    from mcp_edge.board.settings import Settings
    from mcp_edge.server import Server

    path = _short_path(tmp_path)
    handlers: list[object] = []
    before: list[object] = []
    sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    async def main() -> str | None:
        settings = Settings.load(plugin_dirs=[PROBE_PLUGINS], entry_points=False, data_dir=tmp_path / "data")
        running = await Server.configure(settings).start()
        token = StopToken()
        ready = asyncio.Event()
        before.extend(signal.getsignal(s) for s in sigs)  # (asyncio.run has its own SIGINT handler)
        try:
            serving = asyncio.create_task(running.serve_unix(path, on_ready=lambda _: ready.set(), stop=token))
            await asyncio.wait_for(ready.wait(), WAIT)
            handlers.extend(signal.getsignal(s) for s in sigs)
            token.set("the embedder is done")
            await asyncio.wait_for(serving, WAIT)
        finally:
            await running.stop()
        return token.reason

    assert asyncio.run(main()) == "the embedder is done"
    assert handlers == before  # nothing was installed while it served
    assert not path.exists()


def test_a_stop_token_keeps_its_first_reason() -> None:
    token = StopToken()
    assert not token.is_set() and token.reason is None
    token.set("first")
    token.set("second")
    assert token.is_set() and token.reason == "first"
    assert asyncio.run(token.wait()) == "first"
