"""A real ``mcp-edge serve --stdio`` for the fuzz tests: one process, respawned when an input killed it."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import select
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from transport_helpers import initialize, notification, probe_command, server_env

# Bounded waits, never timing assertions: how long one example may take before it counts as a hang.
ANSWER_S = 10.0
MAX_FRAME = 4096


class StdioServer:
    """One server process, its stderr drained in the background, its stdout read line by line."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None
        self.buf = b""
        self.stderr: list[bytes] = []
        self.ids = itertools.count()
        self.spawned = 0

    def ensure(self) -> subprocess.Popen[bytes]:
        if self.proc is None or self.proc.poll() is not None:
            self.close()
            self.proc = subprocess.Popen(probe_command("--stdio"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=server_env(self.tmp, {"max_frame": MAX_FRAME}),
                                         cwd=self.tmp)
            self.spawned += 1
            self.buf = b""
            self.stderr = []
            threading.Thread(target=self._drain, args=(self.proc,), daemon=True).start()
            self.send(json.dumps(initialize("fuzz-init")).encode() + b"\n")
            self.until("fuzz-init")
            self.send(json.dumps(notification("notifications/initialized")).encode() + b"\n")
        return self.proc

    def _drain(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.stderr.append(line)
            del self.stderr[:-50]

    def send(self, data: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _line(self, deadline: float) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                state = "alive" if self.proc.poll() is None else f"exited {self.proc.returncode}"
                raise AssertionError(f"no answer within {ANSWER_S} s (the server is {state}); stderr:\n"
                                     + b"".join(self.stderr).decode(errors="replace")[-3000:])
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    raise AssertionError(f"the server closed stdout (exit {self.proc.wait(ANSWER_S)}); stderr:\n"
                                         + b"".join(self.stderr).decode(errors="replace")[-3000:])
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def until(self, rid: str) -> list[Any]:
        """Every message on stdout up to the response with id ``rid``; each must be JSON-RPC."""
        deadline = time.monotonic() + ANSWER_S
        seen: list[Any] = []
        while True:
            line = self._line(deadline)
            try:
                msg = json.loads(line)
            except ValueError:
                raise AssertionError(f"a non-protocol line on stdout: {line[:300]!r}") from None
            for m in msg if isinstance(msg, list) and msg else [msg]:
                assert isinstance(m, dict) and m.get("jsonrpc") == "2.0", f"not a JSON-RPC message: {line[:300]!r}"
            seen.append(msg)
            if isinstance(msg, dict) and msg.get("id") == rid and "method" not in msg:
                return seen

    def close(self) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        try:
            if proc.stdin is not None and proc.poll() is None:
                proc.stdin.close()
            return proc.wait(ANSWER_S)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            proc.kill()
            proc.wait()
            return None
        finally:
            for pipe in (proc.stdin, proc.stdout, proc.stderr):
                if pipe is not None:
                    with contextlib.suppress(BrokenPipeError):
                        pipe.close()


def replay(server: StdioServer, payload: bytes) -> None:
    """Send ``payload`` and a ping after it: the ping must be answered, every line on stdout JSON-RPC."""
    server.ensure()
    rid = f"fuzz-ping-{next(server.ids)}"
    # The newline ends whatever line the payload left open, so that the ping is a line of its own.
    server.send(payload + b"\n" + json.dumps({"jsonrpc": "2.0", "id": rid, "method": "ping"}).encode() + b"\n")
    server.until(rid)
    assert server.proc is not None and server.proc.poll() is None
