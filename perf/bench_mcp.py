"""MCP servers end to end: the same echo tool served by mcp_edge, the official SDK's MCPServer and fastmcp.

Impls:

- ``mcp_edge``: ``<this python> -m mcp_edge.cli serve --stdio -q`` (``serve --http --host 127.0.0.1
  --port P -q`` for HTTP), serving only ``perf/plugins/echo`` (plus the built-in ``runtime`` plugin): a
  board profile written for the run (``MCP_EDGE_BOARDS_DIR`` + ``MCP_EDGE_BOARD``) whose
  ``plugin_dirs`` is ``perf/plugins`` alone; ``MCP_EDGE_PLUGIN_DIRS`` is dropped from its environment.
- ``mcp-sdk``: ``perf/peers/mcp_sdk_echo.py`` (``mcp.server.mcpserver.MCPServer``, mcp 2.3) and
- ``fastmcp``: ``perf/peers/fastmcp_echo.py`` (fastmcp 4.1.0, the newest that installs here), each in its
  own venv under ``build/perf/venvs/`` (``$MCP_EDGE_PERF_MCP_DIR/venvs``), created with pip on the first
  run and reused while its marker names the same requirement. A peer that cannot be installed or started
  is skipped with a note. Peers log at WARNING (so do we, ``-q``); their HTTP is their default
  Streamable HTTP (uvicorn, SSE responses, sessions).

Every server gets a clean environment: ``PYTHONUNBUFFERED`` and ``PYTHONDONTWRITEBYTECODE`` are removed
(they slow stdio writes and make every start compile from source, which no installed server does); our
modules' bytecode goes to ``<cache>/pycache`` (``PYTHONPYCACHEPREFIX``) so the checkout stays clean, and
one discarded warm-up start per server fills it and the page cache before anything is timed.

The load generator is ours, the same for every server, and speaks raw JSON-RPC:

- stdio: newline-delimited JSON-RPC on the child's pipes (``os.write``/``os.read``). The handshake era
  (protocol ``2025-11-25``): ``initialize`` + ``notifications/initialized``, then ``tools/call echo``.
- HTTP: HTTP/1.1 POSTs to ``/mcp`` on raw keep-alive sockets (``Accept: application/json,
  text/event-stream``; JSON and SSE responses, ``Content-Length`` and chunked bodies), with the
  ``Mcp-Session-Id`` from ``initialize``. A call ends when its whole HTTP response has arrived.
- ``-2026`` cases: the stateless ``2026-07-28`` revision (no handshake; ``_meta`` with protocol version and
  client capabilities on every request; on HTTP the ``MCP-Protocol-Version``, ``Mcp-Method`` and
  ``Mcp-Name`` headers, no session), on separate stdio processes since stdio latches the era.

Every stdio answer is parsed and checked (id, no error, the echoed text); on HTTP every response's status is
checked and every 64th body is parsed and checked, so the load generator's cost stays small and the same for
all servers.

CPU placement. A sequential call is a ping-pong between two processes, and in this VM waking a process on
the other vCPU costs tens of microseconds each way: unpinned, the same server measures about 13k calls/s
(p50 65 us) when the scheduler keeps client and server on one CPU and 7-8k (p50 110-140 us) when it splits
them, from run to run. So the throughput cases pin: the load generator on the first allowed CPU and every
server on the second (``$MCP_EDGE_PERF_MCP_PIN=split``, the default), or both on one (``same``), or neither
(``none``). Start-up cases are not pinned.

Cases (bench ``mcp``):

- ``stdio-seq``, ``stdio-pipelined``, ``http-seq``, ``http-pipelined`` and the same with ``-2026``:
  ``calls/s`` (best round), ``p50_ms`` and ``p99_ms`` (every call of every round pooled; the time from
  writing the request to reading its whole response, ``perf_counter_ns``). Sequential: one call in flight.
  Pipelined: 32 in flight; on stdio on the one pipe, on HTTP over 32 keep-alive connections with one
  request each (MCP clients do not use HTTP/1.1 pipelining). Rounds of ``ROUND_S`` seconds are interleaved
  across servers, in an order that rotates from round to round.
- ``import`` (``ms``): ``python -c "<the server's imports>"`` minus ``python -c pass`` with the same
  interpreter and environment, best of N each, interleaved.
- ``spawn-to-first-answer`` (``ms``, best of N spawns): from ``Popen`` (``initialize`` written right
  after it) to the ``initialize`` response on stdout.
- ``idle-rss`` (``MiB``, median of the same N spawns): ``VmRSS`` of the process tree after the handshake
  and ``IDLE_S`` of idleness.
- ``exit-after-eof`` (``ms``, best of the same N spawns): from closing the child's stdin to its exit
  (pidfd).
- ``rss-after-20k`` (``MiB``): ``VmRSS`` of the stdio server used for ``stdio-seq``/``-pipelined`` once it
  has answered 20,000 echo calls (``--quick``: 2,000, said in a note; the case name stays), and
  ``rss-growth`` (``MiB``): that minus its RSS after the warm-up calls (lazy imports on the first call do
  not count as growth).
- ``plugin-load-<id>`` and ``plugin-init-<id>`` (``ms``, impl ``mcp_edge``, best of N): ``load_ms`` and
  ``init_ms`` from ``mcp-edge plugins list --json --no-entry-points`` run with one plugin at a time
  (``fs``, ``sysinfo``, ``logs``, ``native_hello`` and the bench's ``echo``).
- ``plugin-call`` (``us``, impl ``mcp_edge``, best of N rounds of ``PLUGIN_CALLS``): one ``Registry.call_tool``
  of the bench's ``echo`` in process, without a transport: the plugin system's own cost per call (argument
  decoding, the handler, the result), in a child ``python -c`` with the same interpreter and environment.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import platform
import select
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_edge.perf import BenchContext, BenchError, Row

NAME = "mcp"

HANDSHAKE = "2025-11-25"
MODERN = "2026-07-28"
ECHO_TEXT = "hello from the mcp bench"
ID_DIGITS = 7  # HTTP ids in the timed rounds: 1,000,000 .. 9,999,999, so Content-Length is the same for all
DEPTH = 32  # calls in flight in the pipelined cases
ROUND_S = {True: 0.15, False: 0.6}  # seconds per round of one server in one throughput case: quick, full
SPAWNS = {True: 3, False: 7}  # spawns per server for spawn-to-first-answer, idle-rss, exit-after-eof
IMPORT_RUNS = {True: 3, False: 10}
PLUGIN_RUNS = {True: 3, False: 7}
PLUGIN_CALLS = 2000
# plugin-call: argv[1] the plugin folder, argv[2] rounds, argv[3] calls per round; prints the us per call of
# each round (after a warm-up round), space-separated.
PLUGIN_CALL_CODE = """
import asyncio, sys, time
from pathlib import Path
from mcp_edge.plugin import NullRequestContext, Registry
async def main():
    reg = Registry([Path(sys.argv[1])], entry_points=False)
    await reg.start()
    rctx, args, n, rounds = NullRequestContext(), {"text": "hi"}, int(sys.argv[3]), []
    for _ in range(int(sys.argv[2]) + 1):
        t0 = time.perf_counter()
        for _ in range(n):
            await reg.call_tool("echo", args, rctx)
        rounds.append((time.perf_counter() - t0) / n * 1e6)
    await reg.stop()
    print(" ".join(repr(us) for us in rounds[1:]))
asyncio.run(main())
"""
RSS_CALLS = {True: 2_000, False: 20_000}
WARMUP_CALLS = 300
IDLE_S = 0.5
IO_TIMEOUT_S = 30.0  # no answer for this long: the server is hung
START_TIMEOUT_S = 60.0
BUILTIN_PLUGINS = ("fs", "sysinfo", "logs", "native_hello")
BENCH_PLUGIN = "echo"
CACHE_DIR_ENV = "MCP_EDGE_PERF_MCP_DIR"
PIN_ENV = "MCP_EDGE_PERF_MCP_PIN"
BOARD_ID = "perf-mcp"
STRIP_ENV = ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP",
             "PYTHONPYCACHEPREFIX", "VIRTUAL_ENV", "MCP_EDGE_PLUGIN_DIRS", "MCP_EDGE_BOARD", "MCP_EDGE_BOARDS_DIR")

PERF_DIR = Path(__file__).resolve().parent
CHECKOUT = PERF_DIR.parent

THROUGHPUT_CASES = ("stdio-seq", "stdio-pipelined", "http-seq", "http-pipelined")
MODERN_CASES = tuple(f"{c}-2026" for c in THROUGHPUT_CASES)


# --------------------------------------------------------------------------- pure helpers


def echo_request(req_id: int, protocol: str = HANDSHAKE, text: str = ECHO_TEXT) -> bytes:
    """The JSON-RPC ``tools/call echo`` request (no newline); 2026-07-28 adds the per-request ``_meta``."""
    params: dict[str, Any] = {"name": "echo", "arguments": {"text": text}}
    if protocol == MODERN:
        params["_meta"] = modern_meta()
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "tools/call", "params": params},
                      separators=(",", ":")).encode()


def modern_meta() -> dict[str, Any]:
    """The ``_meta`` every 2026-07-28 request carries (protocol version and client capabilities)."""
    return {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "mcp-edge-perf", "version": "1"}}


def initialize_request(req_id: int = 0) -> bytes:
    """The handshake-era ``initialize`` request (no newline)."""
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "initialize",
                       "params": {"protocolVersion": HANDSHAKE, "capabilities": {},
                                  "clientInfo": {"name": "mcp-edge-perf", "version": "1"}}},
                      separators=(",", ":")).encode()


INITIALIZED = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'


def discover_request(req_id: int = 0) -> bytes:
    """The 2026-07-28 ``server/discover`` request (no newline)."""
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "method": "server/discover",
                       "params": {"_meta": modern_meta()}}, separators=(",", ":")).encode()


class RequestTemplate:
    """Fast ``id -> request bytes`` for the timed loops: the request split around its id, joined per call."""

    def __init__(self, make: Callable[[int], bytes], suffix: bytes = b"") -> None:
        marker = 987_654_321_123
        whole = make(marker)
        head, sep, tail = whole.partition(str(marker).encode())
        if not sep or str(marker).encode() in tail:
            raise ValueError("the request must hold its id exactly once")
        self._head = head
        self._tail = tail + suffix

    def __call__(self, req_id: int) -> bytes:
        return self._head + str(req_id).encode() + self._tail


def check_echo(msg: Any, req_id: int, text: str = ECHO_TEXT) -> str | None:
    """None when ``msg`` is the successful echo answer to ``req_id``, else what is wrong with it."""
    if not isinstance(msg, dict):
        return f"not a JSON object: {msg!r:.200}"
    if msg.get("id") != req_id:
        return f"answer to id {msg.get('id')!r}, expected {req_id}"
    if "error" in msg:
        return f"JSON-RPC error {msg['error']!r:.200}"
    result = msg.get("result")
    try:
        got = result["content"][0]["text"]  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        return f"no text content in {result!r:.200}"
    if result.get("isError"):  # type: ignore[union-attr]
        return f"tool error: {got!r:.200}"
    if got != text:
        return f"echoed {got!r:.100}, expected {text!r}"
    return None


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-quantile (0 < q <= 1) of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    if not 0 < q <= 1:
        raise ValueError(f"quantile {q} is outside (0, 1]")
    rank = max(1, math.ceil(round(q * len(sorted_values), 9)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def parse_vmrss_kib(status: str) -> int | None:
    """``VmRSS`` in KiB from the text of ``/proc/<pid>/status`` (None for a zombie or kernel thread)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1])
    return None


def import_ms(bare_ns: Sequence[int], import_ns: Sequence[int]) -> float:
    """Import cost: best ``python -c <imports>`` minus best ``python -c pass``, in ms (never below 0)."""
    return max(0.0, (min(import_ns) - min(bare_ns)) / 1e6)


def rotate(items: Sequence[str], n: int) -> list[str]:
    """``items`` started at position ``n`` (mod its length): round ``n``'s order, so no server always goes first."""
    if not items:
        return []
    k = n % len(items)
    return [*items[k:], *items[:k]]


def split_lines(buf: bytearray) -> list[bytes]:
    """Remove and return the complete newline-terminated lines at the front of ``buf`` (empty lines dropped)."""
    end = buf.rfind(b"\n")
    if end < 0:
        return []
    chunk = bytes(buf[:end])
    del buf[: end + 1]
    return [line for line in chunk.split(b"\n") if line.strip()]


def placement(mode: str, cpus: Sequence[int]) -> tuple[set[int], set[int]] | None:
    """(load generator CPUs, server CPUs) for ``split``, ``same`` or ``none`` (None: leave it to the scheduler).

    ``split`` puts them on two different CPUs (needs two), ``same`` on one; ValueError for another mode.
    """
    if mode not in ("split", "same", "none"):
        raise ValueError(f"{PIN_ENV}={mode!r}: expected split, same or none")
    ordered = sorted(cpus)
    if mode == "none" or not ordered or (mode == "split" and len(ordered) < 2):
        return None
    return {ordered[0]}, {ordered[1] if mode == "split" else ordered[0]}


def board_profile(plugin_dir: Path, data_dir: Path, arch: str) -> str:
    """The TOML of the bench's board profile: only ``plugin_dir`` is searched for plugins."""
    return (
        "# Written by perf/bench_mcp.py: serve the bench's echo plugin and nothing else.\n"
        f'[identity]\nid = "{BOARD_ID}"\nname = "mcp bench: perf/plugins only"\narch = "{arch}"\n\n'
        f'[match]\npriority = -1000\n\n'
        f"[storage]\ndata_dir = {json.dumps(str(data_dir))}\nplugin_dirs = [{json.dumps(str(plugin_dir))}]\n"
    )


def plugin_times(rows: Any, plugin_id: str) -> tuple[float, float]:
    """(load_ms, init_ms) of ``plugin_id`` from ``mcp-edge plugins list --json``; ValueError if it is not active."""
    if not isinstance(rows, list):
        raise ValueError("plugins list --json did not print a list")
    for row in rows:
        if isinstance(row, dict) and row.get("id") == plugin_id:
            if row.get("state") != "active":
                raise ValueError(f"plugin {plugin_id} is {row.get('state')}: {row.get('reason')}")
            load, init = row.get("load_ms"), row.get("init_ms")
            if not isinstance(load, int | float) or not isinstance(init, int | float):
                raise ValueError(f"plugin {plugin_id} reports no load_ms/init_ms: {row!r}")
            return float(load), float(init)
    raise ValueError(f"plugin {plugin_id} is not in the list")


# --------------------------------------------------------------------------- HTTP/1.1 responses


@dataclass(slots=True)
class HttpResponse:
    """One HTTP response: status, headers (lower-case names; repeated ones joined with ", "), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


class HttpResponseParser:
    """Incremental HTTP/1.1 response parser: ``feed(bytes)`` returns the responses completed by those bytes.

    Bodies by ``Content-Length``, ``Transfer-Encoding: chunked`` (extensions and trailers skipped), none for
    1xx/204/304, or up to the end of the connection (``feed_eof``) when neither is given.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._head: tuple[int, dict[str, str]] | None = None
        self._length: int | None = None  # bytes of body still expected (Content-Length mode)
        self._chunked = False
        self._until_close = False
        self._body = bytearray()
        self._chunk_left = -1  # -1: expecting a chunk-size line; -2: in the trailer section

    @property
    def idle(self) -> bool:
        """True between responses, with nothing buffered."""
        return self._head is None and not self._buf

    def feed(self, data: bytes) -> list[HttpResponse]:
        self._buf += data
        out: list[HttpResponse] = []
        while True:
            if self._head is None and not self._parse_head():
                return out
            done = self._parse_body()
            if done is None:
                return out
            out.append(done)

    def feed_eof(self) -> list[HttpResponse]:
        """The connection closed: the response read until close ends; anything else unfinished is an error."""
        if self._head is not None and self._until_close:
            self._body += self._buf
            self._buf.clear()
            return [self._finish()]
        if self._head is not None or self._buf:
            raise ValueError("connection closed in the middle of a response")
        return []

    def _parse_head(self) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > 1 << 16:
                raise ValueError("response head larger than 64 KiB")
            return False
        lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
        del self._buf[: end + 4]
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1.") or not status_line[1].isdigit():
            raise ValueError(f"bad status line {lines[0]!r:.100}")
        status = int(status_line[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(f"bad header line {line!r:.100}")
            key = name.strip().lower()
            value = value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        if 100 <= status < 200:  # interim response: ignore it, parse the next head
            return self._parse_head()
        self._head = (status, headers)
        self._body = bytearray()
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        self._until_close = False
        self._chunk_left = -1
        if status in (204, 304):
            self._length = 0
        elif self._chunked:
            self._length = None
        elif "content-length" in headers:
            try:
                self._length = int(headers["content-length"])
            except ValueError:
                raise ValueError(f"bad Content-Length {headers['content-length']!r}") from None
        else:
            self._length = None
            self._until_close = True
        return True

    def _parse_body(self) -> HttpResponse | None:
        if self._until_close:
            return None
        if not self._chunked:
            assert self._length is not None
            if len(self._buf) < self._length:
                return None
            self._body = self._buf[: self._length]
            del self._buf[: self._length]
            return self._finish()
        while True:
            if self._chunk_left == -1:  # chunk-size line
                eol = self._buf.find(b"\r\n")
                if eol < 0:
                    return None
                size_text = bytes(self._buf[:eol]).split(b";", 1)[0].strip()
                del self._buf[: eol + 2]
                try:
                    size = int(size_text, 16)
                except ValueError:
                    raise ValueError(f"bad chunk size {size_text!r:.40}") from None
                self._chunk_left = size if size else -2
            elif self._chunk_left == -2:  # trailer lines, up to an empty one
                eol = self._buf.find(b"\r\n")
                if eol < 0:
                    return None
                empty = eol == 0
                del self._buf[: eol + 2]
                if empty:
                    return self._finish()
            else:
                if len(self._buf) < self._chunk_left + 2:
                    return None
                self._body += self._buf[: self._chunk_left]
                if self._buf[self._chunk_left : self._chunk_left + 2] != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
                del self._buf[: self._chunk_left + 2]
                self._chunk_left = -1

    def _finish(self) -> HttpResponse:
        assert self._head is not None
        status, headers = self._head
        self._head = None
        body, self._body = bytes(self._body), bytearray()
        return HttpResponse(status, headers, body)


def sse_data(body: bytes) -> list[bytes]:
    """The ``data`` of each event of a ``text/event-stream`` body (multi-line data joined with newlines)."""
    events: list[bytes] = []
    data: list[bytes] = []
    for raw in body.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"):
        if not raw:
            if data:
                events.append(b"\n".join(data))
                data = []
            continue
        if raw.startswith(b":"):
            continue
        name, _, value = raw.partition(b":")
        if name == b"data":
            data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        events.append(b"\n".join(data))
    return events


def rpc_messages(resp: HttpResponse) -> list[Any]:
    """The JSON-RPC messages in an HTTP response: one JSON body (object or batch) or the events of an SSE body."""
    ctype = resp.header("content-type").split(";", 1)[0].strip().lower()
    if not resp.body:
        return []
    if ctype == "text/event-stream":
        return [json.loads(d) for d in sse_data(resp.body) if d.strip()]
    if ctype == "application/json":
        msg = json.loads(resp.body)
        return msg if isinstance(msg, list) else [msg]
    raise ValueError(f"unexpected Content-Type {ctype!r} (HTTP {resp.status})")


def http_head(host: str, port: int, length: int, headers: Mapping[str, str], path: str = "/mcp") -> bytes:
    """The head of one keep-alive HTTP/1.1 POST of a ``length``-byte JSON body."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
             "Accept: application/json, text/event-stream"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def http_post(host: str, port: int, body: bytes, headers: Mapping[str, str], path: str = "/mcp") -> bytes:
    """The bytes of one keep-alive HTTP/1.1 POST of a JSON body."""
    return http_head(host, port, len(body), headers, path) + body


# --------------------------------------------------------------------------- processes


class ServerFailed(Exception):
    """A server did something wrong (died, hung, answered wrongly); the message says what."""


def _now() -> int:
    return time.perf_counter_ns()


def tree_rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and all its descendants, in KiB."""
    total = 0
    todo = [pid]
    seen: set[int] = set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            total += parse_vmrss_kib(Path(f"/proc/{p}/status").read_text()) or 0
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            continue
    return total


def _wait_exit_ns(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """Nanoseconds until ``proc`` exits (pidfd + poll, so no sleep-loop granularity); None on timeout."""
    t0 = _now()
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return _now() - t0
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout * 1000):
            return None
        elapsed = _now() - t0
    finally:
        os.close(pidfd)
    proc.wait()
    return elapsed


@dataclass
class Impl:
    """One server: how to start it over stdio and HTTP and what its import cost covers."""

    name: str
    python: str
    stdio: list[str]
    http: Callable[[int], list[str]]
    imports: str
    env: dict[str, str]
    logs: Path
    spawns: int = 0
    cpus: set[int] | None = None  # pin throughput servers here (None: no pinning)

    def stderr_file(self, what: str) -> Path:
        self.spawns += 1
        return self.logs / f"{self.name}-{what}-{self.spawns}.log"


def _tail(path: Path | None, n: int = 600) -> str:
    if path is None:
        return ""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return f"; its stderr ends: {text[-n:]}" if text else ""


class StdioServer:
    """A server child on pipes, with the raw newline-delimited JSON-RPC load generator."""

    def __init__(self, impl: Impl, protocol: str = HANDSHAKE, *, pin: bool = False) -> None:
        self.impl = impl
        self.protocol = protocol
        self.err_path = impl.stderr_file("stdio")
        self.next_id = 1
        self.calls = 0
        self._buf = bytearray()
        self._req = RequestTemplate(lambda i: echo_request(i, protocol), b"\n")
        with open(self.err_path, "wb") as err:
            self.t_spawn = _now()
            self.proc = subprocess.Popen(impl.stdio, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         env=impl.env, cwd=CHECKOUT, bufsize=0, close_fds=True)
        if pin:
            _pin(self.proc.pid, impl.cpus)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.w = self.proc.stdin.fileno()
        self.r = self.proc.stdout.fileno()
        self._poll = select.poll()
        self._poll.register(self.r, select.POLLIN)

    # -- I/O

    def fail(self, what: str) -> ServerFailed:
        code = self.proc.poll()
        state = f"it exited with status {code}" if code is not None else "it is still running"
        return ServerFailed(f"{self.impl.name} (stdio): {what}; {state}{_tail(self.err_path)}")

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.w, view):]
        except BrokenPipeError:
            raise self.fail("stdin closed") from None

    def _read(self, timeout: float = IO_TIMEOUT_S) -> None:
        if not self._poll.poll(timeout * 1000):
            raise self.fail(f"no output for {timeout:.0f} s")
        data = os.read(self.r, 1 << 16)
        if not data:
            raise self.fail("stdout closed")
        self._buf += data

    def message(self, timeout: float = IO_TIMEOUT_S) -> Any:
        """The next JSON-RPC message with an id (notifications are skipped)."""
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                self._read(timeout)
                continue
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if not line.strip():
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                raise self.fail(f"wrote a line that is not JSON: {line[:200]!r}") from None
            if isinstance(msg, dict) and "id" not in msg:
                continue
            return msg

    # -- protocol

    def handshake(self) -> int:
        """initialize (+ initialized), or server/discover for 2026; returns ns from Popen to the first answer."""
        self.send((initialize_request(0) if self.protocol == HANDSHAKE else discover_request(0)) + b"\n")
        msg = self.message(START_TIMEOUT_S)
        t = _now() - self.t_spawn
        if not isinstance(msg, dict) or msg.get("id") != 0 or "result" not in msg:
            raise self.fail(f"bad answer to {'initialize' if self.protocol == HANDSHAKE else 'server/discover'}: "
                            f"{msg!r:.300}")
        if self.protocol == HANDSHAKE:
            self.send(INITIALIZED + b"\n")
        return t

    def call(self) -> None:
        """One echo call, checked."""
        i = self.next_id
        self.next_id += 1
        self.send(self._req(i))
        problem = check_echo(self.message(), i)
        if problem:
            raise self.fail(problem)
        self.calls += 1

    def seq_round(self, seconds: float, lat: array[int]) -> tuple[int, int]:
        """Sequential calls for ``seconds``; latencies appended to ``lat``; returns (calls, ns)."""
        req, send, message, now = self._req, self.send, self.message, _now
        i = self.next_id
        start = now()
        end = start + int(seconds * 1e9)
        n = 0
        t1 = start
        while t1 < end:
            t0 = now()
            send(req(i))
            msg = message()
            t1 = now()
            if type(msg) is not dict or msg.get("id") != i or "result" not in msg:
                problem = check_echo(msg, i)
                raise self.fail(problem or f"unexpected answer {msg!r:.200}")
            lat.append(t1 - t0)
            i += 1
            n += 1
        elapsed = t1 - start
        problem = check_echo(msg, i - 1)
        if problem:
            raise self.fail(problem)
        self.next_id = i
        self.calls += n
        return n, elapsed

    def pipelined_round(self, seconds: float, depth: int, lat: array[int] | None) -> tuple[int, int]:
        """``depth`` calls in flight for ``seconds`` (then drained); returns (calls, ns)."""
        req, now, buf, r = self._req, _now, self._buf, self.r
        sent: dict[int, int] = {}
        i = self.next_id
        start = now()
        end = start + int(seconds * 1e9)
        for _ in range(depth):
            sent[i] = start
            i += 1
        self.send(b"".join(req(k) for k in sent))
        n = 0
        last: Any = None
        t = start
        while sent:
            if not self._poll.poll(IO_TIMEOUT_S * 1000):
                raise self.fail(f"no output for {IO_TIMEOUT_S:.0f} s with {len(sent)} calls in flight")
            data = os.read(r, 1 << 16)
            if not data:
                raise self.fail("stdout closed")
            buf += data
            t = now()
            out: list[bytes] = []
            for line in split_lines(buf):
                msg = json.loads(line)
                rid = msg.get("id") if isinstance(msg, dict) else None
                if rid is None:
                    continue
                t0 = sent.pop(rid, None)
                if t0 is None or "result" not in msg:
                    raise self.fail(check_echo(msg, rid if isinstance(rid, int) else -1)
                                    or f"answer to an id not in flight: {msg!r:.200}")
                if lat is not None:
                    lat.append(t - t0)
                n += 1
                last = msg
                if t < end:
                    sent[i] = t
                    out.append(req(i))
                    i += 1
            if out:
                self.send(b"".join(out))
        last_id = last.get("id") if isinstance(last, dict) else None
        problem = check_echo(last, last_id if isinstance(last_id, int) else -1)
        if problem:
            raise self.fail(problem)
        self.next_id = i
        self.calls += n
        return n, t - start

    def calls_until(self, total: int, depth: int = DEPTH) -> None:
        """Pipelined, untimed calls until this server has answered ``total`` calls."""
        while self.calls < total:
            left = total - self.calls
            if left < depth:
                for _ in range(left):
                    self.call()
                return
            self.pipelined_round(0.0, depth, None)  # one wave of ``depth`` calls
            continue

    def rss_mib(self) -> float:
        return tree_rss_kib(self.proc.pid) / 1024

    def close_stdin(self) -> int | None:
        """Close stdin; ns until the process exits (None: not within 10 s, then killed)."""
        t = None
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            t = _wait_exit_ns(self.proc, 10.0)
        self.kill()
        return t

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


class HttpConn:
    """One keep-alive connection of the HTTP load generator."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sock = self._connect()
        self.parser = HttpResponseParser()
        self.req_id = -1
        self.t0 = 0

    def _connect(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=IO_TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def reopen_if_closed(self) -> None:
        """Reconnect when the server closed this idle connection (keep-alive timeout)."""
        r, _, _ = select.select([self.sock], [], [], 0)
        if r:
            try:
                data = self.sock.recv(1 << 16, socket.MSG_PEEK)
            except OSError:
                data = b""
            if not data:
                self.close()
                self.sock = self._connect()
                self.parser = HttpResponseParser()

    def roundtrip(self, data: bytes) -> HttpResponse:
        self.sock.sendall(data)
        while True:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                done = self.parser.feed_eof()
                if done:
                    self.sock = self._connect()
                    self.parser = HttpResponseParser()
                    return done[0]
                raise ConnectionError("the server closed the connection")
            done = self.parser.feed(chunk)
            if done:
                if len(done) > 1 or not self.parser.idle:
                    raise ValueError("more than one response to one request")
                return done[0]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class HttpServer:
    """A server child listening on 127.0.0.1:<port>, with the raw HTTP/1.1 load generator."""

    HOST = "127.0.0.1"

    def __init__(self, impl: Impl) -> None:
        self.impl = impl
        self.port = _free_port()
        self.err_path = impl.stderr_file("http")
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(impl.http(self.port), stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         env=impl.env, cwd=CHECKOUT, close_fds=True)
        _pin(self.proc.pid, impl.cpus)
        self.session: str | None = None
        self.next_id = 1
        self.conns: list[HttpConn] = []
        try:
            self._wait_listening()
        except BaseException:
            self.stop()
            raise

    def fail(self, what: str) -> ServerFailed:
        code = self.proc.poll()
        state = f"it exited with status {code}" if code is not None else "it is still running"
        return ServerFailed(f"{self.impl.name} (http :{self.port}): {what}; {state}{_tail(self.err_path)}")

    def _wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise self.fail("did not start")
            try:
                socket.create_connection((self.HOST, self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise self.fail(f"not listening after {START_TIMEOUT_S:.0f} s") from None
                time.sleep(0.01)

    def headers(self, protocol: str) -> dict[str, str]:
        if protocol == MODERN:
            return {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "echo"}
        assert self.session is not None
        return {"Mcp-Session-Id": self.session, "MCP-Protocol-Version": HANDSHAKE}

    def template(self, protocol: str) -> Callable[[int], bytes]:
        """``id -> request bytes`` for ids of ``ID_DIGITS`` digits (the head, Content-Length included, is fixed)."""
        body = RequestTemplate(lambda i: echo_request(i, protocol))
        head = http_head(self.HOST, self.port, len(body(10 ** (ID_DIGITS - 1))), self.headers(protocol))

        def make(i: int) -> bytes:
            return head + body(i)

        return make

    def _post(self, conn: HttpConn, body: bytes, headers: Mapping[str, str]) -> HttpResponse:
        try:
            return conn.roundtrip(http_post(self.HOST, self.port, body, headers))
        except (OSError, ValueError) as exc:
            raise self.fail(f"{type(exc).__name__}: {exc}") from None

    def handshake(self) -> None:
        """initialize + notifications/initialized; keeps the session id."""
        conn = HttpConn(self.HOST, self.port)
        self.conns.append(conn)
        resp = self._post(conn, initialize_request(0), {})
        msgs = self._messages(resp)
        if resp.status != 200 or not msgs or "result" not in msgs[-1]:
            raise self.fail(f"initialize answered HTTP {resp.status}: {resp.body[:300]!r}")
        self.session = resp.header("mcp-session-id") or None
        if self.session is None:
            raise self.fail("initialize gave no Mcp-Session-Id")
        resp = self._post(conn, INITIALIZED, self.headers(HANDSHAKE))
        if resp.status not in (200, 202, 204):
            raise self.fail(f"notifications/initialized answered HTTP {resp.status}: {resp.body[:300]!r}")

    def _messages(self, resp: HttpResponse) -> list[Any]:
        try:
            return rpc_messages(resp)
        except ValueError as exc:
            raise self.fail(f"unreadable response body ({exc}): {resp.body[:300]!r}") from None

    def _check(self, resp: HttpResponse, req_id: int) -> None:
        if resp.status != 200:
            raise self.fail(f"tools/call answered HTTP {resp.status}: {resp.body[:300]!r}")
        msgs = [m for m in self._messages(resp) if isinstance(m, dict) and "id" in m]
        problem = check_echo(msgs[-1], req_id) if msgs else "no JSON-RPC answer in the response"
        if problem:
            raise self.fail(problem)

    def ensure_conns(self, n: int) -> list[HttpConn]:
        while len(self.conns) < n:
            try:
                self.conns.append(HttpConn(self.HOST, self.port))
            except OSError as exc:
                raise self.fail(f"cannot connect: {exc}") from None
        for c in self.conns[:n]:
            c.reopen_if_closed()
        return self.conns[:n]

    def _ids(self) -> tuple[int, int]:
        """The next id and the end of the range of ids with ``ID_DIGITS`` digits (one template fits them all)."""
        self.next_id = max(self.next_id, 10 ** (ID_DIGITS - 1))
        return self.next_id, 10**ID_DIGITS

    def warmup(self, protocol: str, calls: int) -> None:
        conn = self.ensure_conns(1)[0]
        for _ in range(calls):
            i = self.next_id
            self.next_id += 1
            self._check(self._post(conn, echo_request(i, protocol), self.headers(protocol)), i)

    def seq_round(self, protocol: str, seconds: float, lat: array[int]) -> tuple[int, int]:
        conn = self.ensure_conns(1)[0]
        req = self.template(protocol)
        i, top = self._ids()
        now = _now
        start = now()
        end = start + int(seconds * 1e9)
        n = 0
        t1 = start
        try:
            while t1 < end and i < top:
                t0 = now()
                resp = conn.roundtrip(req(i))
                t1 = now()
                if resp.status != 200 or (n & 63) == 0:
                    self._check(resp, i)
                lat.append(t1 - t0)
                i += 1
                n += 1
        except (OSError, ValueError) as exc:
            raise self.fail(f"{type(exc).__name__}: {exc}") from None
        self._check(resp, i - 1)
        self.next_id = i
        return n, t1 - start

    def pipelined_round(self, protocol: str, seconds: float, depth: int, lat: array[int]) -> tuple[int, int]:
        conns = self.ensure_conns(depth)
        req = self.template(protocol)
        i, top = self._ids()
        now = _now
        sel = selectors.DefaultSelector()
        start = now()
        end = start + int(seconds * 1e9)
        n = 0
        t = start
        in_flight = 0
        try:
            for c in conns:
                c.req_id, c.t0 = i, start
                c.sock.sendall(req(i))
                sel.register(c.sock, selectors.EVENT_READ, c)
                i += 1
                in_flight += 1
            while in_flight:
                ready = sel.select(IO_TIMEOUT_S)
                if not ready:
                    raise self.fail(f"no answer for {IO_TIMEOUT_S:.0f} s with {in_flight} calls in flight")
                t = now()
                for key, _ in ready:
                    c = key.data
                    data = c.sock.recv(1 << 16)
                    if not data:
                        raise self.fail("the server closed a connection with a call in flight")
                    for resp in c.parser.feed(data):
                        if resp.status != 200 or (n & 63) == 0:
                            self._check(resp, c.req_id)
                        lat.append(t - c.t0)
                        n += 1
                        in_flight -= 1
                        if t < end and i < top:
                            c.req_id, c.t0 = i, t
                            c.sock.sendall(req(i))
                            i += 1
                            in_flight += 1
        except (OSError, ValueError) as exc:
            raise self.fail(f"{type(exc).__name__}: {exc}") from None
        finally:
            sel.close()
        self.next_id = i
        return n, t - start

    def stop(self) -> None:
        for c in self.conns:
            c.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _pin(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of ``pid`` to ``cpus`` (right after Popen; threads started later inherit it)."""
    if cpus is None:
        return
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        tids = [pid]
    for tid in tids:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(tid, cpus)


@contextlib.contextmanager
def _pinned_self(cpus: set[int] | None) -> Iterator[None]:
    """The load generator on ``cpus`` for the duration (no-op for None)."""
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- --profile


def start_profile(ctx: BenchContext, pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    """``--profile``: py-spy attached to our stdio server ``pid`` for the handshake-era stdio cases.

    py-spy samples (100 Hz, pausing the process for each sample) until the server exits, then writes a flame
    graph to ``out``. None, with a note saying why, when py-spy is not installed or cannot attach.
    """
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).is_file():
        ctx.note("--profile: py-spy is not installed (pip install 'mcp-edge[perf]'); no flame graph", "mcp_edge")
        return None
    log = out.with_name(out.name + ".log")
    with open(log, "wb") as err:
        proc = subprocess.Popen([exe, "record", "--pid", str(pid), "--output", str(out), "--format", "flamegraph",
                                 "--rate", "100"], stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    time.sleep(0.5)  # attached before the timed rounds (an attach failure shows here, not at the end)
    if proc.poll() is not None:
        ctx.note(f"--profile: py-spy could not attach to our server (exit {proc.returncode}): "
                 f"{_spy_reason(log)}; no flame graph", "mcp_edge")
        return None
    ctx.note(f"--profile: py-spy samples our stdio server (pid {pid}) through stdio-seq, stdio-pipelined and "
             "rss-after-20k; those mcp_edge figures are taken under the profiler (slower than a plain run)",
             "mcp_edge")
    return proc


def finish_profile(ctx: BenchContext, proc: subprocess.Popen[bytes], out: Path) -> None:
    """Wait for py-spy to write the flame graph once our server has exited; a note says where it is, or why not."""
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.wait(10)
    log = out.with_name(out.name + ".log")
    if proc.returncode == 0 and out.is_file() and out.stat().st_size > 0:
        ctx.note(f"--profile: flame graph of our stdio server written to {out}", "mcp_edge")
        log.unlink(missing_ok=True)
    else:
        ctx.note(f"--profile: py-spy wrote no flame graph (exit {proc.returncode}): {_spy_reason(log)}", "mcp_edge")


def _spy_reason(log: Path) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        text = ""
    if "Permission denied" in text or "Operation not permitted" in text:
        return ("ptrace is not permitted here (run as root, or set kernel.yama.ptrace_scope=0, or give py-spy "
                f"CAP_SYS_PTRACE); py-spy said: {text[-300:]}")
    return text[-300:] or "no output"


# --------------------------------------------------------------------------- set-up


@dataclass(frozen=True)
class Peer:
    name: str
    requirement: str
    script: str
    imports: str
    env: Mapping[str, str] = field(default_factory=dict)


PEERS = (
    Peer("mcp-sdk", "mcp==2.3.*", "mcp_sdk_echo.py", "from mcp.server.mcpserver import MCPServer"),
    Peer("fastmcp", "fastmcp==4.1.0", "fastmcp_echo.py", "from fastmcp import FastMCP",
         {"FASTMCP_LOG_LEVEL": "WARNING", "FASTMCP_CHECK_FOR_UPDATES": "off", "FASTMCP_SHOW_SERVER_BANNER": "false"}),
)
OUR_IMPORTS = "import mcp_edge.cli, mcp_edge.server, mcp_edge.transport.stdio"


def _cache_dir() -> Path:
    given = os.environ.get(CACHE_DIR_ENV)
    if given:
        return Path(given).expanduser()
    if (CHECKOUT / "setup.py").is_file() and (CHECKOUT / "mcp_edge").is_dir():
        return CHECKOUT / "build" / "perf"
    return Path.cwd() / "build" / "perf"


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STRIP_ENV}
    env.update(extra)
    return env


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _peer_python(ctx: BenchContext, peer: Peer, venvs: Path) -> str | None:
    """The peer venv's python, creating the venv (once) if needed; None with a note if it cannot be made."""
    venv = venvs / peer.name
    marker = venv / ".mcp-edge-perf"
    python = _venv_python(venv)
    try:
        if marker.read_text().strip() == peer.requirement and python.exists():
            return str(python)
    except OSError:
        pass
    ctx.note(f"creating the {peer.name} venv in {venv} (pip install {peer.requirement}); done once")
    shutil.rmtree(venv, ignore_errors=True)
    env = _clean_env({"PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    steps = ([sys.executable, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "-q", peer.requirement])
    for cmd in steps:
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            ctx.note(f"peer {peer.name}: {' '.join(cmd[:4])} failed ({exc}); skipped")
            return None
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-3:]
            ctx.note(f"peer {peer.name}: cannot install {peer.requirement} ({' | '.join(last)}); skipped")
            return None
    marker.write_text(peer.requirement + "\n")
    return str(python)


def _peer_http(python: str, script: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return [python, script, "--http", "--port", str(port)]

    return argv


def _impls(ctx: BenchContext, cache: Path, work: Path) -> list[Impl]:
    boards = work / "boards"
    boards.mkdir()
    data = work / "data"
    data.mkdir()
    logs = work / "logs"
    logs.mkdir()
    (boards / f"{BOARD_ID}.toml").write_text(board_profile(PERF_DIR / "plugins", data, platform.machine()))
    ours_env = _clean_env({
        "MCP_EDGE_BOARDS_DIR": str(boards),
        "MCP_EDGE_BOARD": BOARD_ID,
        "MCP_EDGE_DATA_DIR": str(data),
        "PYTHONPYCACHEPREFIX": str(cache / "pycache"),
    })
    py = sys.executable
    impls = [Impl(
        "mcp_edge", py,
        [py, "-m", "mcp_edge.cli", "serve", "--stdio", "-q"],
        lambda port: [py, "-m", "mcp_edge.cli", "serve", "--http", "--host", "127.0.0.1", "--port", str(port), "-q"],
        OUR_IMPORTS, ours_env, logs,
    )]
    for peer in PEERS:
        python = _peer_python(ctx, peer, cache / "venvs")
        if python is None:
            continue
        script = str(PERF_DIR / "peers" / peer.script)
        impls.append(Impl(
            peer.name, python, [python, script, "--stdio"],
            _peer_http(python, script), peer.imports, _clean_env(peer.env), logs,
        ))
    return impls


class Bench:
    """One run: the servers, the rows so far, and the bookkeeping for servers that fail."""

    def __init__(self, ctx: BenchContext, impls: list[Impl], work: Path) -> None:
        self.ctx = ctx
        self.impls = {i.name: i for i in impls}
        self.work = work
        self.dropped: set[str] = set()
        mode = os.environ.get(PIN_ENV) or "split"
        try:
            where = placement(mode, sorted(os.sched_getaffinity(0)))
        except ValueError as exc:
            raise BenchError(str(exc)) from None
        self.client_cpus = where[0] if where else None
        for impl in impls:
            impl.cpus = where[1] if where else None
        if where:
            ctx.note(f"throughput cases: load generator on CPU {min(where[0])}, servers on CPU {min(where[1])} "
                     f"({PIN_ENV}={mode}; split, same or none)")
        else:
            ctx.note(f"throughput cases: CPUs left to the scheduler ({PIN_ENV}={mode}); sequential figures vary "
                     "by placement")

    def live(self) -> list[Impl]:
        return [i for name, i in self.impls.items() if name not in self.dropped]

    def failed(self, impl: Impl, exc: BaseException, where: str) -> None:
        """A peer that fails is dropped with a note; mcp_edge failing stops the bench."""
        if impl.name == "mcp_edge":
            raise BenchError(f"mcp_edge failed in {where}: {exc}") from exc
        self.ctx.note(f"peer {impl.name} failed in {where} and is left out from here on: {exc}")
        self.dropped.add(impl.name)

    # -- warm-up, import, spawn

    def warm(self) -> None:
        """One start of each server, discarded: bytecode written, files in the page cache."""
        for impl in self.live():
            srv = StdioServer(impl)
            try:
                srv.handshake()
                srv.call()
                srv.close_stdin()
            except ServerFailed as exc:
                srv.kill()
                self.failed(impl, exc, "its first start")

    def import_rows(self) -> Iterator[Row]:
        runs = IMPORT_RUNS[self.ctx.quick]
        bare: dict[str, list[int]] = {i.name: [] for i in self.live()}
        imp: dict[str, list[int]] = {i.name: [] for i in self.live()}
        for r in range(runs):
            for name in rotate(list(bare), r):
                impl = self.impls[name]
                if name in self.dropped:
                    continue
                try:
                    bare[name].append(self._time_python(impl, "pass"))
                    imp[name].append(self._time_python(impl, impl.imports))
                except ServerFailed as exc:
                    self.failed(impl, exc, "the import case")
        self.ctx.advance(len(bare))
        for name in bare:
            if name not in self.dropped:
                # value: best import minus best bare start; samples: each run's import minus its own bare start
                samples = [max(0.0, (i - b) / 1e6) for b, i in zip(bare[name], imp[name], strict=True)]
                yield Row("import", name, "ms", import_ms(bare[name], imp[name]), higher_is_better=False,
                          samples=samples)

    def _time_python(self, impl: Impl, code: str) -> int:
        t0 = _now()
        done = subprocess.run([impl.python, "-c", code], env=impl.env, cwd=CHECKOUT,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t = _now() - t0
        if done.returncode != 0:
            raise ServerFailed(f"python -c {code!r} failed: {done.stderr.decode(errors='replace')[-400:]}")
        return t

    def startup_rows(self) -> Iterator[Row]:
        spawns = SPAWNS[self.ctx.quick]
        first: dict[str, list[int]] = {i.name: [] for i in self.live()}
        rss: dict[str, list[float]] = {i.name: [] for i in self.live()}
        exits: dict[str, list[int]] = {i.name: [] for i in self.live()}
        for r in range(spawns):
            for name in rotate(list(first), r):
                if name in self.dropped:
                    continue
                impl = self.impls[name]
                srv = StdioServer(impl)
                try:
                    first[name].append(srv.handshake())
                    time.sleep(IDLE_S)
                    rss[name].append(srv.rss_mib())
                    t = srv.close_stdin()
                    if t is None:
                        self.ctx.note(f"{name} did not exit within 10 s of stdin EOF (killed)")
                    else:
                        exits[name].append(t)
                except ServerFailed as exc:
                    self.failed(impl, exc, "the start-up cases")
                finally:
                    srv.kill()
        self.ctx.advance(len(first))
        for name in first:
            if name in self.dropped:
                continue
            yield Row.from_samples("spawn-to-first-answer", name, "ms", [t / 1e6 for t in first[name]],
                                   higher_is_better=False, value="best")
            yield Row.from_samples("idle-rss", name, "MiB", rss[name], higher_is_better=False)
            if exits[name]:
                yield Row.from_samples("exit-after-eof", name, "ms", [t / 1e6 for t in exits[name]],
                                       higher_is_better=False, value="best")

    # -- throughput

    def _rounds(self, cases: Sequence[str], servers: Mapping[str, Any],
                run_one: Callable[[Any, str, float, array[int]], tuple[int, int]]) -> Iterator[Row]:
        """Interleaved rounds of each case over ``servers``; rows for calls/s, p50 and p99.

        calls/s: the best round, samples each round's; p50/p99: over every call of every round, samples each
        round's own percentile.
        """
        seconds = ROUND_S[self.ctx.quick]
        for case in cases:
            rates: dict[str, list[float]] = {n: [] for n in servers}
            per_round: dict[str, list[array[int]]] = {n: [] for n in servers}
            lat: dict[str, array[int]] = {n: array("q") for n in servers}
            for r in range(self.ctx.rounds):
                for name in rotate(list(servers), r):
                    if name in self.dropped:
                        continue
                    gc.disable()
                    this_round: array[int] = array("q")
                    try:
                        n, ns = run_one(servers[name], case, seconds, this_round)
                    except ServerFailed as exc:
                        self.failed(self.impls[name], exc, f"case {case}")
                        continue
                    finally:
                        gc.enable()
                    lat[name].extend(this_round)
                    if this_round:
                        per_round[name].append(array("q", sorted(this_round)))
                    rates[name].append(n * 1e9 / max(ns, 1))
            self.ctx.advance(len(servers))
            for name in servers:
                if name in self.dropped or not lat[name]:
                    continue
                values = sorted(lat[name])
                yield Row.from_samples(case, name, "calls/s", rates[name], value="best")
                for metric, q in (("p50_ms", 0.50), ("p99_ms", 0.99)):
                    yield Row(case, name, metric, percentile(values, q) / 1e6, higher_is_better=False,
                              samples=[percentile(r, q) / 1e6 for r in per_round[name]])

    @staticmethod
    def _stdio_one(srv: StdioServer, case: str, seconds: float, lat: array[int]) -> tuple[int, int]:
        if "-pipelined" in case:
            return srv.pipelined_round(seconds, DEPTH, lat)
        return srv.seq_round(seconds, lat)

    @staticmethod
    def _http_one(srv: HttpServer, case: str, seconds: float, lat: array[int]) -> tuple[int, int]:
        protocol = MODERN if case.endswith("-2026") else HANDSHAKE
        if "-pipelined" in case:
            return srv.pipelined_round(protocol, seconds, DEPTH, lat)
        return srv.seq_round(protocol, seconds, lat)

    def _start_stdio(self, protocol: str) -> dict[str, StdioServer]:
        servers: dict[str, StdioServer] = {}
        for impl in self.live():
            srv = StdioServer(impl, protocol, pin=True)
            try:
                srv.handshake()
                for _ in range(WARMUP_CALLS):
                    srv.call()
            except ServerFailed as exc:
                srv.kill()
                self.failed(impl, exc, f"the stdio warm-up ({protocol})")
                continue
            servers[impl.name] = srv
        return servers

    def stdio_rows(self) -> Iterator[Row]:
        servers = self._start_stdio(HANDSHAKE)
        spy = None
        if self.ctx.profile_path is not None and "mcp_edge" in servers:
            spy = start_profile(self.ctx, servers["mcp_edge"].proc.pid, self.ctx.profile_path)
        try:
            warm_rss = {name: srv.rss_mib() for name, srv in servers.items()}
            yield from self._rounds(THROUGHPUT_CASES[:2], servers, self._stdio_one)
            target = RSS_CALLS[self.ctx.quick]
            if self.ctx.quick:
                self.ctx.note(f"--quick: rss-after-20k is measured after {target:,} calls, not 20,000")
            self.ctx.note("rss-after-20k and rss-growth are one long run per server, one sample each: perf compare "
                          "shows them as too few samples, never as a regression")
            for name, srv in servers.items():
                if name in self.dropped:
                    continue
                try:
                    srv.calls_until(target)
                    time.sleep(IDLE_S)
                    after = srv.rss_mib()
                except ServerFailed as exc:
                    self.failed(self.impls[name], exc, "rss-after-20k")
                    continue
                # one sample each: one long run of calls per server (repeating it would double the bench)
                yield Row("rss-after-20k", name, "MiB", after, higher_is_better=False, samples=(after,))
                growth = after - warm_rss[name]
                yield Row("rss-growth", name, "MiB", growth, higher_is_better=False, samples=(growth,))
            self.ctx.advance(len(servers))
        finally:
            for srv in servers.values():
                srv.close_stdin()
            if spy is not None and self.ctx.profile_path is not None:
                finish_profile(self.ctx, spy, self.ctx.profile_path)
        servers = self._start_stdio(MODERN)
        try:
            yield from self._rounds(MODERN_CASES[:2], servers, self._stdio_one)
        finally:
            for srv in servers.values():
                srv.close_stdin()

    def http_rows(self) -> Iterator[Row]:
        servers: dict[str, HttpServer] = {}
        try:
            for impl in self.live():
                try:
                    srv = HttpServer(impl)
                except ServerFailed as exc:
                    self.failed(impl, exc, "the HTTP start")
                    continue
                servers[impl.name] = srv
                try:
                    srv.handshake()
                    srv.warmup(HANDSHAKE, WARMUP_CALLS)
                    srv.warmup(MODERN, 50)
                except ServerFailed as exc:
                    self.failed(impl, exc, "the HTTP warm-up")
            yield from self._rounds(THROUGHPUT_CASES[2:] + MODERN_CASES[2:], servers, self._http_one)
        finally:
            for srv in servers.values():
                srv.stop()

    # -- plugins

    def plugin_rows(self) -> Iterator[Row]:
        ours = self.impls["mcp_edge"]
        runs = PLUGIN_RUNS[self.ctx.quick]
        sources = {p: CHECKOUT / "plugins" / p for p in BUILTIN_PLUGINS}
        sources[BENCH_PLUGIN] = PERF_DIR / "plugins" / BENCH_PLUGIN
        solo: dict[str, Path] = {}
        for pid, src in sources.items():
            if not (src / "plugin.toml").is_file():
                self.ctx.note(f"plugin {pid} is not in this checkout ({src}); plugin-load-{pid} skipped")
                continue
            folder = self.work / "solo" / pid
            folder.mkdir(parents=True)
            (folder / pid).symlink_to(src, target_is_directory=True)
            solo[pid] = folder
        times: dict[str, list[tuple[float, float]]] = {p: [] for p in solo}
        for r in range(runs + 1):  # the first run of each is a warm-up (bytecode), not counted
            for pid in rotate(list(solo), r):
                cmd = [ours.python, "-m", "mcp_edge.cli", "plugins", "list", "--json", "--no-entry-points",
                       "--plugin-dir", str(solo[pid])]
                done = subprocess.run(cmd, env=ours.env, cwd=CHECKOUT, capture_output=True, text=True, timeout=120)
                try:
                    if done.returncode != 0:
                        raise ValueError(f"exit status {done.returncode}: {done.stderr.strip()[-400:]}")
                    got = plugin_times(json.loads(done.stdout), pid)
                except ValueError as exc:
                    raise BenchError(f"mcp-edge plugins list for plugin {pid}: {exc}") from exc
                if r:
                    times[pid].append(got)
        self.ctx.advance(1)
        for pid, values in times.items():
            yield Row.from_samples(f"plugin-load-{pid}", "mcp_edge", "ms", [v[0] for v in values],
                                   higher_is_better=False, value="best")
            yield Row.from_samples(f"plugin-init-{pid}", "mcp_edge", "ms", [v[1] for v in values],
                                   higher_is_better=False, value="best")
        if BENCH_PLUGIN in solo:
            cmd = [ours.python, "-c", PLUGIN_CALL_CODE, str(solo[BENCH_PLUGIN]), str(runs), str(PLUGIN_CALLS)]
            done = subprocess.run(cmd, env=ours.env, cwd=CHECKOUT, capture_output=True, text=True, timeout=120)
            try:
                if done.returncode != 0:
                    raise ValueError(f"exit status {done.returncode}: {done.stderr.strip()[-400:]}")
                per_round = [float(v) for v in done.stdout.strip().splitlines()[-1].split()]
                if not per_round:
                    raise ValueError("no rounds printed")
            except (ValueError, IndexError) as exc:
                raise BenchError(f"plugin-call: {exc}") from exc
            yield Row.from_samples("plugin-call", "mcp_edge", "us", per_round, higher_is_better=False, value="best")


def run(ctx: BenchContext) -> Iterator[Row]:
    if sys.platform != "linux":
        ctx.note("the mcp bench reads /proc and uses pidfds: Linux only; skipped")
        return
    cache = _cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"cannot create the bench cache {cache}: {exc}; set {CACHE_DIR_ENV}") from exc
    with tempfile.TemporaryDirectory(prefix="mcp-edge-bench-mcp-") as tmp:
        work = Path(tmp)
        impls = _impls(ctx, cache, work)
        bench = Bench(ctx, impls, work)
        n = len(impls)
        # progress: import, start-up, 2 stdio cases, rss, 2 stdio 2026 cases, 4 http cases (per server); plugins
        ctx.plan(n * 11 + 1)
        bench.warm()
        yield from bench.import_rows()
        yield from bench.startup_rows()
        with _pinned_self(bench.client_cpus):
            yield from bench.stdio_rows()
            yield from bench.http_rows()
        yield from bench.plugin_rows()
