"""The systemd notify client against a fake manager: a real datagram socket, by path and by abstract name."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mcp_edge.system.notify import Notifier, Watchdog

ROOT = Path(__file__).resolve().parents[2]


class Manager:
    """The service manager's end: a bound AF_UNIX datagram socket that records who sent what."""

    def __init__(self, address: str) -> None:
        self.address = address  # what NOTIFY_SOCKET says
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(b"\0" + address[1:].encode() if address.startswith("@") else address)
        self.sock.settimeout(10)

    def recv(self) -> tuple[str, int]:
        """One message and the sender's pid (from the kernel's credentials, as systemd reads them)."""
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = next(struct.unpack("iII", d)[0] for level, kind, d in anc
                   if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS)
        return data.decode(), pid

    def messages(self, n: int) -> list[str]:
        return [self.recv()[0] for _ in range(n)]

    def pending(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(4096)
            return True
        except BlockingIOError:
            return False
        finally:
            self.sock.settimeout(10)


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest) -> Iterator[Manager]:
    folder = tempfile.mkdtemp(prefix="me-notify-", dir="/tmp")  # short: sun_path holds 108 bytes
    address = (f"{folder}/notify" if request.param == "path"
               else f"@mcp-edge-test/{os.getpid()}/{secrets.token_hex(4)}")
    m = Manager(address)
    try:
        yield m
    finally:
        m.sock.close()
        if request.param == "path":
            os.unlink(address)
        os.rmdir(folder)


def test_ready_watchdog_status_stopping_in_order(manager: Manager) -> None:
    n = Notifier.from_environ({"NOTIFY_SOCKET": manager.address})
    assert n.enabled
    assert n.ready("serving 3 plugins")
    assert n.watchdog()
    assert n.status("draining: 2 calls in flight\nsecond line")
    assert n.stopping()
    assert manager.messages(4) == ["READY=1\nSTATUS=serving 3 plugins", "WATCHDOG=1",
                                   "STATUS=draining: 2 calls in flight second line", "STOPPING=1"]
    n.close()


def test_reloading_carries_the_monotonic_clock_then_ready(manager: Manager) -> None:
    n = Notifier(manager.address)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.reloading("reloading plugins")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert n.ready()
    assert n.main_pid(4242) and n.extend_timeout(2.5) and n.watchdog_trigger()
    first, ready, pid, extend, trigger = manager.messages(5)
    lines = first.split("\n")
    assert lines[0] == "RELOADING=1" and lines[2] == "STATUS=reloading plugins"
    key, _, usec = lines[1].partition("=")
    assert key == "MONOTONIC_USEC" and before <= int(usec) <= after
    assert (ready, pid, extend, trigger) == ("READY=1", "MAINPID=4242", "EXTEND_TIMEOUT_USEC=2500000",
                                             "WATCHDOG=trigger")


def test_without_a_notify_socket_everything_is_a_no_op() -> None:
    n = Notifier.from_environ({})
    assert not n.enabled and "NOTIFY_SOCKET unset" in n.reason
    assert n.ready() is False and n.stopping() is False and n.watchdog() is False
    w = Watchdog.from_environ(n, {"WATCHDOG_USEC": "1000000"})
    assert not w.enabled and w.start() is None and w.ping() is False


def test_an_unsupported_address_disables_with_a_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "mcp_edge.system"):
        n = Notifier("vsock:2:1234")
    assert not n.enabled and "vsock addresses are not supported" in n.reason
    assert "systemd notify disabled" in caplog.text


def test_a_vanished_manager_never_raises_and_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    folder = tempfile.mkdtemp(prefix="me-notify-", dir="/tmp")
    address = f"{folder}/notify"
    n = Notifier(address)
    with caplog.at_level(logging.WARNING, "mcp_edge.system"):
        assert n.ready() is False and n.watchdog() is False  # nobody bound there
    assert caplog.text.count("cannot send") == 1
    m = Manager(address)
    try:
        assert n.watchdog() is True  # back once the manager is
        assert m.messages(1) == ["WATCHDOG=1"]
    finally:
        m.sock.close()
        os.unlink(address)
        os.rmdir(folder)
    with pytest.raises(ValueError, match="newline"):
        n.send("A=1\nB=2")


def test_watchdog_settings_from_the_environment() -> None:
    n = Notifier("@unused")
    w = Watchdog.from_environ(n, {"WATCHDOG_USEC": "200000"})
    assert (w.timeout_s, w.interval_s) == (0.2, 0.1)
    assert Watchdog.from_environ(n, {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": str(os.getpid())}).enabled
    assert not Watchdog.from_environ(n, {"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}).enabled
    assert not Watchdog.from_environ(n, {"WATCHDOG_USEC": "soon"}).enabled
    assert not Watchdog.from_environ(n, {"WATCHDOG_USEC": "0"}).enabled
    assert not Watchdog.from_environ(n, {}).enabled


def test_watchdog_task_pings_and_a_sick_service_does_not(manager: Manager) -> None:
    healthy = [True]
    w = Watchdog(Notifier(manager.address), 0.05, healthy=lambda: healthy[0])
    assert w.interval_s == 0.025

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = w.start()
        assert task is not None and w.start() is task
        for _ in range(3):
            msg, pid = await loop.run_in_executor(None, manager.recv)
            assert (msg, pid) == ("WATCHDOG=1", os.getpid())
        await w.stop()
        assert task.done()

    asyncio.run(main())
    assert w.pings >= 3
    while manager.pending():  # pings sent before stop() returned
        pass
    healthy[0] = False
    assert w.ping() is False and not manager.pending()


def test_a_service_process_notifies_from_its_environment(manager: Manager) -> None:
    """A real child reads NOTIFY_SOCKET and WATCHDOG_USEC from its process environment."""
    code = textwrap.dedent("""
        import asyncio
        from mcp_edge.system.notify import Notifier, Watchdog

        async def main():
            n = Notifier.from_environ()
            w = Watchdog.from_environ(n)
            n.status("starting")
            w.start()
            await asyncio.sleep(0)  # the first ping goes out when the task first runs
            n.ready("serving")
            while w.pings < 3:
                await asyncio.sleep(w.interval_s)
            await w.stop()
            n.stopping("bye")

        asyncio.run(main())
        """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
    env.update(NOTIFY_SOCKET=manager.address, WATCHDOG_USEC="40000")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)
    got: list[tuple[str, int]] = []
    try:
        while not got or (not got[-1][0].startswith("STOPPING=1") and len(got) < 100):
            got.append(manager.recv())
    finally:
        assert proc.wait(timeout=60) == 0
    messages = [m for m, _ in got]
    assert messages[:3] == ["STATUS=starting", "WATCHDOG=1", "READY=1\nSTATUS=serving"]
    assert messages[-1] == "STOPPING=1\nSTATUS=bye"
    assert set(messages[3:-1]) == {"WATCHDOG=1"} and len(messages[3:-1]) >= 2
    assert {pid for _, pid in got} == {proc.pid}  # what NotifyAccess=main checks
