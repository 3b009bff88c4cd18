"""A mounted server over stdio: the child process, its newline-delimited JSON, its stderr, its end.

The child runs in a process group of its own (``start_new_session``), so stopping it ends whatever it started
too: SIGTERM to the group after its stdin closes and a grace period, then SIGKILL. It dies with the runtime
(``PR_SET_PDEATHSIG``: SIGKILL when the runtime ends, even by SIGKILL). It gets the supervisor's
per-worker limits (``worker_rlimit_as``, ``worker_rlimit_nofile`` set in the child before it execs;
``worker_memory_max`` as a cgroup of its own where the service's cgroup is writable), and the small environment
:mod:`mcp_edge.plugin.bridge` describes. Its stderr goes to the runtime's log line by line (each cut at
``bridge_stderr_line_max``), and the last lines are kept to say why it failed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from mcp_edge.errors import PluginLoadError
from mcp_edge.plugin.bridge.client import Closed, Deliver, decode

if TYPE_CHECKING:
    from mcp_edge.board import Settings

__all__ = ["StdioTransport", "child_environ"]

log = logging.getLogger("mcp_edge.bridge")
_KEPT_LINES = 5


def child_environ(env: Mapping[str, str], pass_env: list[str]) -> dict[str, str]:
    """The server's environment: PATH, HOME and LANG of the runtime's, the ``pass_env`` names it has, ``env``."""
    from mcp_edge.board.environ import process_environ
    from mcp_edge.plugin.bridge import INHERITED_ENV

    parent = process_environ()
    out = {k: parent[k] for k in (*INHERITED_ENV, *pass_env) if k in parent}
    out.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    out.update(env)
    return out


class StdioTransport:
    """One child process speaking MCP on its stdin and stdout (see the module docstring)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: str, *, plugin_id: str, settings: Settings
                 ) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.plugin_id = plugin_id
        self.settings = settings
        self.pid = 0
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=_KEPT_LINES)
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._closed: Closed | None = None
        self._cgroup = False

    def describe(self) -> str:
        return " ".join(self.argv)

    async def open(self, deliver: Deliver, closed: Closed) -> None:
        from mcp_edge.native._sys import set_parent_death_signal  # imported here: the child must import nothing
        from mcp_edge.system.limits import apply_rlimits

        s = self.settings
        limit_as, limit_nofile = s.worker_rlimit_as, s.worker_rlimit_nofile
        parent = os.getpid()

        def limits() -> None:  # in the child, after fork, before exec: prctl and setrlimit calls only
            # SIGKILLed with the runtime (its own session keeps it from the runtime's signals, and a server that
            # ignores its stdin's end would outlive it); a runtime already gone before this: end here
            set_parent_death_signal(signal.SIGKILL)
            if os.getppid() != parent:
                os._exit(1)
            apply_rlimits(address_space=limit_as, nofile=limit_nofile)

        if not os.path.isdir(self.cwd):
            raise PluginLoadError(f"plugin {self.plugin_id}: the server's working folder {self.cwd} does not exist")
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=self.env, cwd=self.cwd, start_new_session=True,
                preexec_fn=limits, limit=s.bridge_max_message + 1)
        except OSError as exc:
            raise PluginLoadError(f"plugin {self.plugin_id}: cannot start its server {self.argv[0]!r}: "
                                  f"{exc.strerror or exc}") from None
        self.pid = self._proc.pid
        if s.worker_memory_max > 0:
            from mcp_edge.system.limits import worker_memory_max

            outcome = worker_memory_max(f"bridge-{self.plugin_id}", s.worker_memory_max, self.pid)
            self._cgroup = outcome.applied
            if not outcome.applied:
                log.warning("plugin %s: the server's memory.max is not applied: %s", self.plugin_id, outcome.reason)
        self._closed = closed
        loop = asyncio.get_running_loop()
        reader = loop.create_task(self._read(deliver), name=f"bridge-{self.plugin_id}-stdout")
        self._tasks = [reader, loop.create_task(self._stderr(), name=f"bridge-{self.plugin_id}-stderr"),
                       loop.create_task(self._exited(reader), name=f"bridge-{self.plugin_id}-exit")]

    async def _exited(self, reader: asyncio.Task[None]) -> None:
        """The server's process ended but its stdout did not (something it started holds it open): lost all
        the same, and the rest of its group killed. (asyncio's ``wait()`` waits for the pipes too: the exit is
        seen on a pidfd.)"""
        proc = self._proc
        assert proc is not None
        try:
            fd = os.pidfd_open(proc.pid)
        except OSError:  # (gone already: the reader sees its end; or a kernel before 5.3)
            return
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ended.done():
                ended.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await ended
        except asyncio.CancelledError:
            return
        finally:
            loop.remove_reader(fd)
            os.close(fd)
        with contextlib.suppress(asyncio.CancelledError):
            done, _ = await asyncio.wait([reader], timeout=2.0)  # (its stdout ends with it, as a rule)
            if done:
                return
            reader.cancel()
            self._signal(signal.SIGKILL)
            code = proc.returncode
            reason = f"{_exit_reason(code) if code is not None else 'exited'}, and what it started kept its " \
                     "stdout open (killed)"
            tail = "; ".join(self.stderr_tail)
            if tail:
                reason += f" (stderr: {tail[-400:]})"
            if self._closed is not None:
                self._closed(reason)

    async def send(self, data: bytes, call: int | None = None, head: dict[str, str] | None = None) -> None:
        from mcp_edge.plugin.bridge.client import BridgeLost

        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            raise BridgeLost(f"plugin {self.plugin_id}: its mounted server is not running", "is not running")
        try:
            if proc.stdin.transport.get_write_buffer_size():  # room first: a server that stops reading holds
                await proc.stdin.drain()  # one message of each caller in our memory, not one per call made since
            proc.stdin.write(data + b"\n")
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            raise BridgeLost(f"plugin {self.plugin_id}: its mounted server closed its stdin", "closed its stdin") \
                from None

    def initialized(self, result: dict[str, Any], version: str) -> None:
        pass

    def abandon(self, call: int) -> None:
        pass  # (the request is in the pipe; notifications/cancelled follows it)

    async def _read(self, deliver: Deliver) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None
        reason = "closed its stdout"
        overrun = False
        bad = 0
        try:
            while True:
                try:
                    line = await proc.stdout.readline()
                except ValueError:  # a line past the limit (asyncio's LimitOverrunError becomes ValueError)
                    reason = (f"sent a message over bridge_max_message ({self.settings.bridge_max_message} bytes); "
                              "it was stopped")
                    overrun = True
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                try:
                    msg = decode(line)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    bad += 1
                    if bad <= 10:  # a server that prints to stdout: said a few times, not at every line
                        log.warning("plugin %s: the server wrote a line that is not a JSON-RPC message (%s): %.200s",
                                    self.plugin_id, exc, line.decode(errors="replace").rstrip())
                    continue
                deliver(msg, None)
        except asyncio.CancelledError:
            return
        except Exception as exc:  # never silent: the server is treated as lost, with the reason
            log.exception("plugin %s: reading the server's output failed", self.plugin_id)
            reason = f"could not be read ({type(exc).__name__}: {exc})"
        if overrun:  # said before the kill: its exit (seen by the pidfd watch too) must not word the loss instead
            tail = "; ".join(self.stderr_tail)
            if self._closed is not None:
                self._closed(reason + (f" (stderr: {tail[-400:]})" if tail else ""))
            self._signal(signal.SIGKILL)
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(proc.wait(), 2.0)
        if proc.returncode is not None:
            reason = _exit_reason(proc.returncode)
        tail = "; ".join(self.stderr_tail)
        if tail:
            reason += f" (stderr: {tail[-400:]})"
        if self._closed is not None:
            self._closed(reason)

    async def _stderr(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        cut = self.settings.bridge_stderr_line_max
        pending = b""
        try:
            while True:
                chunk = await proc.stderr.read(65536)
                if not chunk:
                    break
                pending += chunk
                *lines, pending = pending.split(b"\n")
                if len(pending) > cut:  # one endless line: shown in pieces, never held whole
                    lines.append(pending)
                    pending = b""
                for raw in lines:
                    text = raw[:cut].decode(errors="replace").rstrip()
                    if text:
                        self.stderr_tail.append(text)
                        log.info("plugin %s: server: %s%s", self.plugin_id, text, " [cut]" if len(raw) > cut else "")
        except asyncio.CancelledError:
            return
        except Exception:
            log.debug("plugin %s: reading the server's stderr failed", self.plugin_id, exc_info=True)

    def _signal(self, sig: int) -> None:
        if self.pid:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)

    async def close(self, grace: float) -> None:
        """Close its stdin (a stdio server ends on EOF), then SIGTERM its group after half of ``grace``, then
        SIGKILL; the group's stragglers are killed too."""
        proc, self._proc = self._proc, None
        self._closed = None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        try:
            for sig, wait in ((None, grace / 2), (signal.SIGTERM, grace / 2), (signal.SIGKILL, 5.0)):
                if sig is not None:
                    self._signal(sig)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), max(wait, 0.05))
                    break
        finally:
            self._signal(signal.SIGKILL)  # what the server started and left behind in its group
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._tasks = []
            if self._cgroup:
                from mcp_edge.system.limits import remove_worker_cgroup

                remove_worker_cgroup(f"bridge-{self.plugin_id}")


def _exit_reason(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with status {code}"
