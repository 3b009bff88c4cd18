"""Peers in child processes: a peer that crashes, hangs or raises costs its own rows, not the run.

A bench runs an impl that loads foreign native code (a PyPI wheel, a system
library through ctypes) in a :class:`Child`: a fresh interpreter
(``python -m mcp_edge.perf._child``, started with :mod:`subprocess`, not
forked, so it inherits no threads, locks or rings of the parent) that builds
one object from a factory (``factory(*args)``, found by file path or module
name) and answers the parent's requests on two pipes:

- ``call(method, *args)``: a method of that object, its (picklable) result back;
- ``timer(key)``: a :class:`RemoteTimer` for :func:`mcp_edge.perf.timing.compare`.
  The child times ``obj.timed_call(key)`` (a :class:`~mcp_edge.perf.timing.Call`)
  with the same calibrated, unrolled loop as in-process impls, garbage collector
  off, and sends the nanoseconds back: the pipe round trip is outside the timed
  region, and the parent sleeps in ``poll`` while a child runs.

Every request has a deadline. :class:`PeerFailed` (peer name and a reason) is
raised when the child is killed by a signal (``killed by SIGILL``), exits,
misses the deadline (``timed out after 5 s``; it is then killed with its
process group) or raises (``raised ValueError: ...``); the child is gone
afterwards. A factory or method that raises :class:`PeerSkipped` says the peer
cannot run here (not installed, no such CPU feature): a skip with that reason,
not a failure. The child's stdout and stderr go to a temporary file whose last
line is quoted in the reason of a crash.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from mcp_edge.board.environ import process_environ
from mcp_edge.errors import BenchError

__all__ = ["DEFAULT_TIMEOUT", "Child", "PeerFailed", "PeerSkipped", "RemoteTimer", "signal_name"]

DEFAULT_TIMEOUT = 120.0
"""Seconds a child gets to start or to answer one request, unless told otherwise."""

_HEADER = struct.Struct("<Q")
_KILL_WAIT = 5.0  # seconds to reap a child after its pipe closed or it was killed


class PeerFailed(BenchError):
    """A peer crashed, hung or raised: its rows are left out and the run goes on (the harness notes why)."""

    def __init__(self, peer: str, reason: str) -> None:
        super().__init__(f"{peer}: {reason}")
        self.peer = peer
        self.reason = reason


class PeerSkipped(BenchError):
    """Raised by a peer's factory or method (in the child or in-process): it cannot run here; the message says why."""


def signal_name(signum: int) -> str:
    """``SIGILL`` for 4, ``signal 77`` for a number with no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _package_root() -> str:
    import mcp_edge

    return str(Path(mcp_edge.__file__).resolve().parents[1])


# --------------------------------------------------------------------------- parent side


class Child:
    """A child process hosting one object, ``factory(*args)``, for the peer named ``peer``.

    Parameters
    ----------
    peer:
        The impl name that notes and :class:`PeerFailed` carry.
    factory:
        ``"path/to/file.py:name"`` (a bench file, under the module name
        :func:`~mcp_edge.perf.harness.load_bench` gives it) or ``"package.module:name"``;
        ``name`` is called with ``args`` in the child.
    args:
        Picklable arguments for the factory.
    timeout:
        Seconds for the child to start and build the object, and the default
        deadline of each request.

    Raises
    ------
    PeerFailed
        The child died, hung or raised while starting.
    PeerSkipped
        The factory raised PeerSkipped.
    """

    def __init__(self, peer: str, factory: str, args: Sequence[object] = (), *,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.peer = peer
        self.timeout = timeout
        self._closed = False
        self._log: BinaryIO = tempfile.TemporaryFile(prefix="mcp-edge-perf-peer-")  # noqa: SIM115 - closed in close()
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        env = dict(process_environ())
        root = _package_root()
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "mcp_edge.perf._child", str(req_r), str(resp_w)],
                pass_fds=(req_r, resp_w),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env=env,
                start_new_session=True,  # its own process group: a timeout kills whatever it started too
            )
        except BaseException:
            for fd in (req_r, req_w, resp_r, resp_w):
                os.close(fd)
            self._log.close()
            raise
        os.close(req_r)
        os.close(resp_w)
        self._wfd, self._rfd = req_w, resp_r
        os.set_blocking(self._wfd, False)
        self._request(("build", factory, tuple(args)), timeout, "while starting")

    # -- requests

    def call(self, method: str, *args: object, timeout: float | None = None) -> Any:
        """``obj.method(*args)`` in the child; its result. PeerFailed / PeerSkipped as for the constructor."""
        return self._request(("call", method, args), timeout, f"in {method}()")

    def timer(self, key: object) -> RemoteTimer:
        """A timer for :func:`~mcp_edge.perf.timing.compare` of ``obj.timed_call(key)`` in the child."""
        return RemoteTimer(self, key)

    def close(self) -> None:
        """Ask the child to exit; kill it if it does not within a few seconds. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError, TimeoutError):
            self._send(("exit",), time.monotonic() + 1.0)
        for fd in (self._wfd, self._rfd):
            with contextlib.suppress(OSError):
                os.close(fd)
        try:
            self._proc.wait(timeout=_KILL_WAIT)
        except subprocess.TimeoutExpired:
            self._kill()
        self._log.close()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing

    def _request(self, message: tuple[object, ...], timeout: float | None, during: str) -> Any:
        if self._closed:
            raise PeerFailed(self.peer, f"its process is gone (asked {during})")
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        try:
            self._send(message, deadline)
            reply = self._receive(deadline)
        except TimeoutError:
            self._fail_and_close()
            raise PeerFailed(self.peer, f"timed out after {limit:g} s {during}") from None
        except (EOFError, BrokenPipeError, ConnectionResetError):
            raise PeerFailed(self.peer, self._death(during)) from None
        status = reply[0]
        if status == "ok":
            return reply[1]
        if status == "skip":
            self.close()
            raise PeerSkipped(str(reply[1]))
        _, kind, text = reply
        self.close()
        raise PeerFailed(self.peer, f"raised {kind}: {text}" if text else f"raised {kind}")

    def _send(self, message: tuple[object, ...], deadline: float) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(_HEADER.pack(len(data)) + data) if len(data) < 1 << 16 else None
        chunks = [view] if view is not None else [memoryview(_HEADER.pack(len(data))), memoryview(data)]
        poller = select.poll()
        poller.register(self._wfd, select.POLLOUT)
        for chunk in chunks:
            while chunk:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                if not poller.poll(max(1, int(left * 1000))):
                    continue
                try:
                    chunk = chunk[os.write(self._wfd, chunk) :]
                except BlockingIOError:
                    continue

    def _read_exact(self, n: int, deadline: float, poller: select.poll) -> bytes:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if not poller.poll(max(1, int(left * 1000))):
                continue
            k = os.readv(self._rfd, [view[got:]])
            if k == 0:
                raise EOFError
            got += k
        return bytes(buf)

    def _receive(self, deadline: float) -> tuple[Any, ...]:
        poller = select.poll()
        poller.register(self._rfd, select.POLLIN)
        (size,) = _HEADER.unpack(self._read_exact(_HEADER.size, deadline, poller))
        reply = pickle.loads(self._read_exact(size, deadline, poller))
        assert isinstance(reply, tuple)
        return reply

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, signal.SIGKILL)  # the group this child leads (start_new_session)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=_KILL_WAIT)

    def _fail_and_close(self) -> None:
        self._kill()
        self.close()

    def _death(self, during: str) -> str:
        """Why the pipe closed: the signal or exit status, and the child's last line of output."""
        try:
            rc = self._proc.wait(timeout=_KILL_WAIT)
        except subprocess.TimeoutExpired:
            self._kill()
            rc = self._proc.returncode
        tail = self._tail()
        self.close()
        if rc is not None and rc < 0:
            what = f"killed by {signal_name(-rc)}"
        elif rc is not None:
            what = f"exited with status {rc}"
        else:
            what = "closed its pipe"
        return f"{what} {during}" + (f" (last output: {tail})" if tail else "")

    def _tail(self) -> str:
        try:
            self._log.seek(0)
            text = self._log.read()[-4096:].decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1][:200] if lines else ""


class RemoteTimer:
    """The timer protocol of :func:`~mcp_edge.perf.timing.compare` for a call made in a :class:`Child`."""

    def __init__(self, child: Child, key: object) -> None:
        self._child = child
        self._key = key

    def calibrate(self, round_ns: float) -> int:
        calls = self._child._request(("calibrate", self._key, round_ns), None, "while calibrating")
        assert isinstance(calls, int)
        return calls

    def run(self, n: int) -> tuple[int, int]:
        made, ns = self._child._request(("run", self._key, n), None, "while timed")
        return int(made), int(ns)


# --------------------------------------------------------------------------- child side


def _load_factory(spec: str) -> Any:
    import importlib
    import importlib.util

    target, _, name = spec.rpartition(":")
    if not target.endswith(".py"):
        return getattr(importlib.import_module(target), name)
    path = Path(target)
    # A bench file gets the module name load_bench gives it, so that both sides agree on its classes.
    stem = path.stem.removeprefix("bench_") if path.stem.startswith("bench_") else f"peer_{path.stem}"
    module_name = f"mcp_edge_perf_bench_{stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    module_spec.loader.exec_module(module)
    return getattr(module, name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact_blocking(fd: int, n: int) -> bytes | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = os.readv(fd, [view[got:]])
        if k == 0:
            return None
        got += k
    return bytes(buf)


def _serve(rfd: int, wfd: int) -> None:
    from mcp_edge.perf import timing

    obj: Any = None
    calls: dict[object, timing.Call] = {}

    def reply(message: tuple[object, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        _write_all(wfd, _HEADER.pack(len(data)) + data)

    while True:
        head = _read_exact_blocking(rfd, _HEADER.size)
        if head is None:
            return
        body = _read_exact_blocking(rfd, _HEADER.unpack(head)[0])
        if body is None:
            return
        message = pickle.loads(body)
        del body
        op = message[0]
        if op == "exit":
            return
        try:
            result: object = None
            if op == "build":
                obj = _load_factory(message[1])(*message[2])
            elif op == "call":
                result = getattr(obj, message[1])(*message[2])
            elif op == "calibrate":
                call = calls[message[1]] = obj.timed_call(message[1])
                with timing.gc_off():
                    result = timing.calibrate(call, message[2])
            elif op == "run":
                with timing.gc_off():
                    result = timing.run_calls(calls[message[1]], message[2])
            else:
                raise ValueError(f"unknown request {op!r}")
        except PeerSkipped as exc:
            reply(("skip", str(exc)))
            continue
        except Exception as exc:  # every failure goes back to the parent, named
            traceback.print_exc()
            reply(("error", type(exc).__name__, str(exc)))
            continue
        reply(("ok", result))


def main(argv: Sequence[str]) -> int:
    """The child's main (see :mod:`mcp_edge.perf._child`): serve the parent on the two pipe fds."""
    rfd, wfd = int(argv[0]), int(argv[1])
    _serve(rfd, wfd)
    return 0
