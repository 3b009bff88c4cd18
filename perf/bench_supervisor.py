"""The supervisor: a plugin in a worker process against the same plugin in process and behind a stdio relay,
and the time the supervisor takes to restart a killed worker, swap a reloaded plugin and drain at SIGTERM.

Servers (each ``<this python> -m mcp_edge.cli serve --stdio -q`` serving ``perf/plugins`` alone, through a
board profile written for the run, as in ``bench_mcp.py``; the tools are ``echo`` of ``perf/plugins/echo``
and ``blob``/``nap`` of ``perf/plugins/payload``):

- ``mcp_edge[inproc]``: both plugins in the server's process (``MCP_EDGE_PLUGIN_ISOLATION=echo=inproc,...``);
- ``mcp_edge[process]``: both plugins in worker processes the server starts and talks to over a ring pair
  in shared memory (``=process``);
- ``stdio-proxy``: ``python perf/peers/stdio_proxy.py -- <the inproc server's command>``: a relay process in
  front of an inproc server child, how MCP servers are isolated today (one stdio child per server).

Throughput cases (``calls/s``, best round): our raw JSON-RPC load generator (the handshake, then
``tools/call``) on the server's pipes; rounds of ``ROUND_S`` seconds interleaved across the three servers in
an order that rotates from round to round. Every answer is parsed and checked: the id, no error, and the
text (the echoed text in full; for ``blob`` its length and ``SAMPLES`` slices against the pattern).

- ``calls-small``: sequential ``echo`` of a short text, one call in flight;
- ``calls-1MiB``: sequential ``blob(1048576)``: a 1 MiB text result;
- ``calls-small-pipelined``, ``calls-1MiB-pipelined``: the same with ``DEPTH`` calls in flight on the pipe.

CPU placement as in ``bench_mcp.py`` (``$MCP_EDGE_PERF_MCP_PIN``, default ``split``): the load generator on
the first allowed CPU, every server-side process (the server, its workers, the relay and its child) on the
second; so on a two-CPU box a worker shares its CPU with the server, as the relay shares it with its child.

Supervisor cases (``ms``, impl ``mcp_edge``, median of ``EVENTS`` tries, each on a fresh or recovered server):

- ``restart-after-sigkill``: SIGKILL of the ``echo`` worker (its pid from the ``mcp-edge://plugins``
  resource) to the first successful ``echo`` call, polling with calls. The restart backoff is set to
  ``BACKOFF_S`` (base and cap) and the breaker kept from opening on the poll's failed calls, so the figure is
  the supervisor's detection + a new worker's start + the first call, not a configured wait.
- ``reload-swap``: the ``reload_ms`` the runtime reports for a plugin hot-reloaded (its file changed) while
  calls run, none failing (a runtime whose plugin rows carry no ``reload_ms`` gets a note, not a row).
- ``drain-under-load``: SIGTERM to the exit (pidfd) of a server with ``DRAIN_CALLS`` ``nap(NAP_MS)`` calls
  in flight in a ``process`` worker; every call must be answered with its result and the exit status be 0.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from mcp_edge.perf import BenchContext, BenchError, Row
from mcp_edge.perf.harness import load_bench

NAME = "supervisor"

PERF_DIR = Path(__file__).resolve().parent
CHECKOUT = PERF_DIR.parent
PLUGIN_IDS = ("echo", "payload")
PROXY_SCRIPT = PERF_DIR / "peers" / "stdio_proxy.py"

INPROC, PROCESS, PROXY = "mcp_edge[inproc]", "mcp_edge[process]", "stdio-proxy"
IMPLS = (INPROC, PROCESS, PROXY)
CALL_CASES = ("calls-small", "calls-1MiB")
PIPELINED_CASES = ("calls-small-pipelined", "calls-1MiB-pipelined")
EVENT_CASES = ("restart-after-sigkill", "reload-swap", "drain-under-load")

BIG = 1 << 20
PATTERN = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"  # perf/plugins/payload's
SAMPLES = 4  # slices of a blob checked per answer: its start, its end and two in between
SAMPLE_LEN = 64
DEPTH = {"small": 32, "1MiB": 8}
ROUND_S = {True: 0.25, False: 0.6}
WARMUP = {"small": 300, "1MiB": 20}
EVENTS = {True: 3, False: 7}
BACKOFF_S = 0.01
BREAKER_OFF = 1_000_000  # breaker window and min calls for the restart case: the poll's failures cannot open it
NAP_MS = 100
DRAIN_CALLS = 50
SHUTDOWN_TIMEOUT_S = 10.0
RESTART_LIMIT_S = 30.0  # no successful call this long after the kill: the worker did not come back
RELOAD_LIMIT_S = 10.0
RELOAD_ISOLATION = INPROC  # the swap target (100 ms) is for a Python plugin in process
IO_TIMEOUT_S = 60.0
STATUS_URI = "mcp-edge://plugins"
BOARD_ID = "perf-supervisor"


def _mcp_bench() -> ModuleType:
    """bench_mcp.py, for its JSON-RPC requests, answer checks, CPU placement and clean environment."""
    return load_bench("mcp", PERF_DIR / "bench_mcp.py")


_mcp = _mcp_bench()


# --------------------------------------------------------------------------- pure helpers


def rpc(req_id: int, method: str, params: Mapping[str, Any]) -> bytes:
    """A compact JSON-RPC request (no newline)."""
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params},
                      separators=(",", ":")).encode()


def call_request(req_id: int, tool: str, arguments: Mapping[str, Any]) -> bytes:
    return rpc(req_id, "tools/call", {"name": tool, "arguments": arguments})


def blob_text(offset: int, length: int) -> str:
    """The slice ``[offset, offset + length)`` of any blob long enough: the pattern from ``offset``."""
    n = len(PATTERN)
    start = offset % n
    return (PATTERN * ((start + length) // n + 1))[start:start + length]


def sample_offsets(size: int) -> list[int]:
    """Where the ``SAMPLES`` checked slices of a blob of ``size`` start (spread over it, the end included)."""
    if size <= SAMPLE_LEN:
        return [0]
    last = size - SAMPLE_LEN
    return sorted({last * k // (SAMPLES - 1) for k in range(SAMPLES)})


def _text_of(msg: Any, req_id: int) -> tuple[str | None, str | None]:
    """(the text content of a successful tools/call answer to ``req_id``, None) or (None, what is wrong)."""
    if not isinstance(msg, dict):
        return None, f"not a JSON object: {msg!r:.200}"
    if msg.get("id") != req_id:
        return None, f"answer to id {msg.get('id')!r}, expected {req_id}"
    if "error" in msg:
        return None, f"JSON-RPC error {msg['error']!r:.300}"
    result = msg.get("result")
    try:
        text = result["content"][0]["text"]  # type: ignore[index]
    except (TypeError, KeyError, IndexError):
        return None, f"no text content in {result!r:.200}"
    if not isinstance(text, str):
        return None, f"text content is a {type(text).__name__}"
    if result.get("isError"):  # type: ignore[union-attr]
        return None, f"tool error: {text!r:.300}"
    return text, None


def check_blob(msg: Any, req_id: int, size: int) -> str | None:
    """None when ``msg`` answers ``req_id`` with a blob of ``size`` characters whose samples match."""
    text, problem = _text_of(msg, req_id)
    if text is None:
        return problem
    if len(text) != size:
        return f"blob of {len(text)} characters, expected {size}"
    for off in sample_offsets(size):
        want = blob_text(off, min(SAMPLE_LEN, size - off))
        if text[off:off + len(want)] != want:
            return f"blob differs at offset {off}: {text[off:off + 16]!r}..., expected {want[:16]!r}..."
    return None


def check_text(msg: Any, req_id: int, expected: str) -> str | None:
    """None when ``msg`` answers ``req_id`` with exactly the text ``expected``."""
    text, problem = _text_of(msg, req_id)
    if text is None:
        return problem
    return None if text == expected else f"answered {text!r:.100}, expected {expected!r:.100}"


def plugin_rows(msg: Any) -> list[dict[str, Any]]:
    """The plugin rows of a ``resources/read mcp-edge://plugins`` answer; ValueError if it is not one."""
    try:
        text = msg["result"]["contents"][0]["text"]
        rows = json.loads(text)["plugins"]
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"not a {STATUS_URI} answer ({type(exc).__name__}): {msg!r:.300}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ValueError(f"{STATUS_URI}: 'plugins' is not a list of objects")
    return rows


def plugin_row(rows: Sequence[Mapping[str, Any]], plugin_id: str) -> Mapping[str, Any]:
    for row in rows:
        if row.get("id") == plugin_id:
            return row
    raise ValueError(f"plugin {plugin_id} is not in {STATUS_URI}")


def isolation_env(mode: str) -> str:
    """``MCP_EDGE_PLUGIN_ISOLATION`` putting every bench plugin in ``mode``."""
    return ",".join(f"{p}={mode}" for p in PLUGIN_IDS)


def board_profile(plugin_dir: Path, data_dir: Path, arch: str) -> str:
    """The TOML of the bench's board profile: only ``plugin_dir`` is searched for plugins."""
    return (
        "# Written by perf/bench_supervisor.py: serve the bench's plugins and nothing else.\n"
        f'[identity]\nid = "{BOARD_ID}"\nname = "supervisor bench: perf/plugins only"\narch = "{arch}"\n\n'
        f'[match]\npriority = -1000\n\n'
        f"[storage]\ndata_dir = {json.dumps(str(data_dir))}\nplugin_dirs = [{json.dumps(str(plugin_dir))}]\n"
    )


# --------------------------------------------------------------------------- a server on pipes


class ServerFailed(Exception):
    """A server died, hung or answered wrongly; the message says what."""


def _now() -> int:
    return time.perf_counter_ns()


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
    return out


def pin_tree(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of ``pid`` and of its descendants (workers, the relay's child) to ``cpus``."""
    if cpus is None:
        return
    for p in _descendants(pid):
        _mcp._pin(p, cpus)


class Server:
    """One server child on pipes and the load generator that drives it; counts the answers it checked."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path,
                 cpus: set[int] | None = None) -> None:
        self.name = name
        self.log = log
        self.cpus = cpus
        self.next_id = 1
        self.checked = 0
        self._buf = bytearray()
        self._scan = 0
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         env=dict(env), cwd=CHECKOUT, bufsize=0, close_fds=True)
        pin_tree(self.proc.pid, cpus)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.w = self.proc.stdin.fileno()
        self.r = self.proc.stdout.fileno()
        self._poll = select.poll()
        self._poll.register(self.r, select.POLLIN)

    def fail(self, what: str) -> ServerFailed:
        code = self.proc.poll()
        state = f"it exited with status {code}" if code is not None else "it is still running"
        try:
            tail = self.log.read_text(errors="replace").strip()[-600:]
        except OSError:
            tail = ""
        return ServerFailed(f"{self.name}: {what}; {state}" + (f"; its stderr ends: {tail}" if tail else ""))

    def send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.w, view):]
        except BrokenPipeError:
            raise self.fail("stdin closed") from None

    def message(self, timeout: float = IO_TIMEOUT_S) -> Any:
        """The next JSON-RPC message with an id (notifications skipped); the scan for a newline resumes where
        the last one stopped, so a 1 MiB line costs one pass."""
        buf = self._buf
        while True:
            nl = buf.find(b"\n", self._scan)
            if nl < 0:
                self._scan = len(buf)
                if not self._poll.poll(timeout * 1000):
                    raise self.fail(f"no output for {timeout:.0f} s")
                data = os.read(self.r, 1 << 20)
                if not data:
                    raise self.fail("stdout closed")
                buf += data
                continue
            line = buf[:nl]
            del buf[:nl + 1]
            self._scan = 0
            if not line.strip(b" \r\t"):
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                raise self.fail(f"wrote a line that is not JSON: {bytes(line[:200])!r}") from None
            if isinstance(msg, dict) and "id" not in msg:
                continue
            return msg

    def request(self, method: str, params: Mapping[str, Any]) -> Any:
        i = self.next_id
        self.next_id += 1
        self.send(rpc(i, method, params) + b"\n")
        msg = self.message()
        if not isinstance(msg, dict) or msg.get("id") != i:
            raise self.fail(f"answer {msg!r:.200} to request {i}")
        return msg

    def handshake(self) -> None:
        self.send(_mcp.initialize_request(0) + b"\n")
        msg = self.message()
        if not isinstance(msg, dict) or msg.get("id") != 0 or "result" not in msg:
            raise self.fail(f"bad answer to initialize: {msg!r:.300}")
        self.send(_mcp.INITIALIZED + b"\n")
        pin_tree(self.proc.pid, self.cpus)  # workers and the relay's child exist now

    def plugins(self) -> list[dict[str, Any]]:
        msg = self.request("resources/read", {"uri": STATUS_URI})
        try:
            return plugin_rows(msg)
        except ValueError as exc:
            raise self.fail(str(exc)) from None

    def call(self, tool: str, arguments: Mapping[str, Any], check: Callable[[Any, int], str | None]) -> None:
        """One call, checked."""
        i = self.next_id
        self.next_id += 1
        self.send(call_request(i, tool, arguments) + b"\n")
        problem = check(self.message(), i)
        if problem:
            raise self.fail(problem)
        self.checked += 1

    def seq_round(self, req: Callable[[int], bytes], check: Callable[[Any, int], str | None],
                  seconds: float) -> tuple[int, int]:
        """Sequential checked calls for ``seconds``; returns (calls, ns)."""
        send, message, now = self.send, self.message, _now
        i = self.next_id
        start = now()
        end = start + int(seconds * 1e9)
        n, t = 0, start
        while t < end:
            send(req(i))
            problem = check(message(), i)
            t = now()
            if problem:
                raise self.fail(problem)
            i += 1
            n += 1
        self.next_id = i
        self.checked += n
        return n, t - start

    def pipelined_round(self, req: Callable[[int], bytes], check: Callable[[Any, int], str | None],
                        seconds: float, depth: int) -> tuple[int, int]:
        """``depth`` checked calls in flight for ``seconds``, then drained; returns (calls, ns)."""
        now = _now
        i = self.next_id
        in_flight: set[int] = set(range(i, i + depth))
        i += depth
        start = now()
        end = start + int(seconds * 1e9)
        self.send(b"".join(req(k) for k in sorted(in_flight)))
        n, t = 0, start
        while in_flight:
            msg = self.message()
            t = now()
            rid = msg.get("id") if isinstance(msg, dict) else None
            if rid not in in_flight:
                raise self.fail(f"answer to an id not in flight: {msg!r:.200}")
            problem = check(msg, rid)
            if problem:
                raise self.fail(problem)
            in_flight.discard(rid)
            n += 1
            if t < end:
                in_flight.add(i)
                self.send(req(i))
                i += 1
        self.next_id = i
        self.checked += n
        return n, t - start

    def close(self, timeout: float = 10.0) -> int | None:
        """Close stdin and wait for the exit (killed after ``timeout``); the exit status."""
        with contextlib.suppress(OSError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def kill(self) -> None:
        for pid in reversed(_descendants(self.proc.pid)[1:]):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                with contextlib.suppress(OSError):
                    f.close()


# --------------------------------------------------------------------------- the bench


class Workload:
    """One kind of call: its request template and its check."""

    def __init__(self, size: str) -> None:
        self.size = size
        if size == "small":
            text = _mcp.ECHO_TEXT
            self.tool, self.args = "echo", {"text": text}
            self.check: Callable[[Any, int], str | None] = lambda msg, i: check_text(msg, i, text)
        else:
            self.tool, self.args = "blob", {"size": BIG}
            self.check = lambda msg, i: check_blob(msg, i, BIG)
        tool, args = self.tool, self.args
        self.req: Callable[[int], bytes] = _mcp.RequestTemplate(lambda i: call_request(i, tool, args), b"\n")


class Bench:
    def __init__(self, ctx: BenchContext, work: Path) -> None:
        self.ctx = ctx
        self.work = work
        self.logs = work / "logs"
        self.logs.mkdir()
        mode = os.environ.get(_mcp.PIN_ENV) or "split"
        try:
            where = _mcp.placement(mode, sorted(os.sched_getaffinity(0)))
        except ValueError as exc:
            raise BenchError(str(exc)) from None
        self.client_cpus: set[int] | None = where[0] if where else None
        self.server_cpus: set[int] | None = where[1] if where else None
        self.pin_mode = mode
        self.spawns = 0
        self.best: dict[str, dict[str, float]] = {}  # case -> impl -> best calls/s
        plugins = work / "plugins"
        plugins.mkdir()
        for pid in PLUGIN_IDS:  # a copy: the reload case changes a file of it
            shutil.copytree(PERF_DIR / "plugins" / pid, plugins / pid,
                            ignore=shutil.ignore_patterns("__pycache__"))
        self.plugin_dir = plugins
        boards, data = work / "boards", work / "data"
        boards.mkdir()
        data.mkdir()
        (boards / f"{BOARD_ID}.toml").write_text(board_profile(plugins, data, platform.machine()))
        self.base_env = _mcp._clean_env({
            "MCP_EDGE_BOARDS_DIR": str(boards),
            "MCP_EDGE_BOARD": BOARD_ID,
            "MCP_EDGE_DATA_DIR": str(data),
            "PYTHONPYCACHEPREFIX": str(_mcp._cache_dir() / "pycache"),
        })

    # -- servers

    def argv(self, impl: str) -> list[str]:
        py = sys.executable
        serve = [py, "-m", "mcp_edge.cli", "serve", "--stdio", "-q"]
        return [py, str(PROXY_SCRIPT), "--", *serve] if impl == PROXY else serve

    def env(self, impl: str, **extra: str) -> dict[str, str]:
        env = dict(self.base_env)
        env["MCP_EDGE_PLUGIN_ISOLATION"] = isolation_env("process" if impl == PROCESS else "inproc")
        env.update(extra)
        return env

    def start(self, impl: str, *, pin: bool = False, **extra: str) -> Server:
        self.spawns += 1
        log = self.logs / f"{impl.replace('[', '-').rstrip(']')}-{self.spawns}.log"
        srv = Server(impl, self.argv(impl), self.env(impl, **extra), log, self.server_cpus if pin else None)
        try:
            srv.handshake()
        except BaseException:
            srv.kill()
            raise
        return srv

    def failed(self, exc: BaseException, where: str) -> BenchError:
        return BenchError(f"{where}: {exc}")

    def warm(self) -> None:
        """One start of each server, discarded: bytecode written (to the cache), files in the page cache."""
        for impl in IMPLS:
            try:
                srv = self.start(impl)
                srv.call("echo", {"text": "warm"}, lambda m, i: check_text(m, i, "warm"))
                srv.close()
            except ServerFailed as exc:
                raise self.failed(exc, f"{impl} warm-up start") from exc

    # -- throughput

    def call_rows(self) -> Iterator[Row]:
        if self.client_cpus:
            self.ctx.note(f"calls cases: load generator on CPU {min(self.client_cpus)}, every server-side process "
                          f"(server, workers, relay and its child) on CPU {min(self.server_cpus or {0})} "
                          f"({_mcp.PIN_ENV}={self.pin_mode})")
        else:
            self.ctx.note(f"calls cases: CPUs left to the scheduler ({_mcp.PIN_ENV}={self.pin_mode})")
        self.ctx.note(f"{INPROC}: echo and payload run in the server's process", INPROC)
        self.ctx.note(f"{PROCESS}: echo and payload each run in a worker process, calls and results over its "
                      "shared-memory ring pair", PROCESS)
        self.ctx.note(f"{PROXY}: perf/peers/stdio_proxy.py relays JSON-RPC lines to a child `mcp-edge serve "
                      "--stdio` running the plugins in process (two extra pipe hops per call, no parsing)", PROXY)
        servers: dict[str, Server] = {}
        try:
            for impl in IMPLS:
                try:
                    servers[impl] = self.start(impl, pin=True)
                except ServerFailed as exc:
                    raise self.failed(exc, f"{impl} start") from exc
            with _mcp._pinned_self(self.client_cpus):
                for size in ("small", "1MiB"):
                    load = Workload(size)
                    for srv in servers.values():
                        self._warm_calls(srv, load, WARMUP[size])
                    yield from self._rounds(f"calls-{size}", servers, load, None)
                    yield from self._rounds(f"calls-{size}-pipelined", servers, load, DEPTH[size])
        finally:
            for srv in servers.values():
                srv.close()
        ratios = []
        for case in (*CALL_CASES, *PIPELINED_CASES):
            got = self.best.get(case, {})
            if got.get(INPROC) and got.get(PROXY) and PROCESS in got:
                ratios.append(f"{case}: process/inproc {got[PROCESS] / got[INPROC]:.2f}, "
                              f"process/stdio-proxy {got[PROCESS] / got[PROXY]:.2f}")
        self.ctx.note("ratios (targets: process/inproc >= 0.7 small, >= 0.95 at 1 MiB; process >= 3x stdio-proxy): "
                      + "; ".join(ratios))

    def _warm_calls(self, srv: Server, load: Workload, n: int) -> None:
        for _ in range(n):
            self._do(srv, lambda s: s.call(load.tool, load.args, load.check), f"{srv.name} warm-up")

    def _do(self, srv: Server, fn: Callable[[Server], Any], where: str) -> Any:
        try:
            return fn(srv)
        except ServerFailed as exc:
            raise self.failed(exc, where) from exc

    def _rounds(self, case: str, servers: Mapping[str, Server], load: Workload, depth: int | None) -> Iterator[Row]:
        seconds = ROUND_S[self.ctx.quick]
        rates: dict[str, list[float]] = {name: [] for name in servers}
        before = {name: srv.checked for name, srv in servers.items()}
        for r in range(self.ctx.rounds):
            for name in _mcp.rotate(list(servers), r):
                srv = servers[name]
                gc.disable()
                try:
                    if depth is None:
                        n, ns = self._do(srv, lambda s: s.seq_round(load.req, load.check, seconds), case)
                    else:
                        n, ns = self._do(srv, lambda s: s.pipelined_round(load.req, load.check, seconds, depth),
                                         case)
                finally:
                    gc.enable()
                rates[name].append(n * 1e9 / max(ns, 1))
        best = {name: max(rates[name]) for name in servers}
        self.ctx.advance(len(servers))
        self.best.setdefault(case, {}).update(best)
        checked = ", ".join(f"{name} {servers[name].checked - before[name]:,}" for name in servers)
        how = "sequential" if depth is None else f"{depth} in flight"
        self.ctx.note(f"{case}: {load.tool}({json.dumps(load.args)[1:-1]}), {how}; answers checked: {checked}")
        for name in servers:
            yield Row.from_samples(case, name, "calls/s", rates[name], value="best")

    # -- supervisor events

    def restart_rows(self) -> Iterator[Row]:
        tries = EVENTS[self.ctx.quick]
        small = Workload("small")
        srv = self.start(PROCESS, MCP_EDGE_RESTART_BACKOFF_BASE_S=str(BACKOFF_S),
                         MCP_EDGE_RESTART_BACKOFF_CAP_S=str(BACKOFF_S), MCP_EDGE_RESTART_BACKOFF_JITTER="0",
                         MCP_EDGE_BREAKER_WINDOW=str(BREAKER_OFF), MCP_EDGE_BREAKER_MIN_CALLS=str(BREAKER_OFF))
        times: list[float] = []
        polls = 0
        try:
            self._do(srv, lambda s: s.call(small.tool, small.args, small.check), "restart-after-sigkill")
            for _ in range(tries):
                row = self._status(srv, "echo")
                pid, restarts = row.get("pid"), row.get("restarts")
                if row.get("state") != "active" or not isinstance(pid, int) or not isinstance(restarts, int):
                    raise BenchError(f"restart-after-sigkill: echo is not an active worker: {dict(row)!r}")
                os.kill(pid, signal.SIGKILL)
                t0 = _now()
                n = self._first_success(srv, small, restarts)
                times.append((_now() - t0) / 1e6)
                polls += n
                after = self._status(srv, "echo")
                if after.get("pid") == pid or after.get("restarts") != restarts + 1:
                    raise BenchError(f"restart-after-sigkill: after killing pid {pid} the echo row is "
                                     f"{dict(after)!r}: expected a new pid and restarts {restarts + 1}")
        finally:
            srv.close()
        self.ctx.advance(1)
        self.ctx.note(f"restart-after-sigkill: median of {tries} kills (min {min(times):.1f}, "
                      f"max {max(times):.1f} ms); restart backoff base and cap {BACKOFF_S} s, no jitter "
                      "(MCP_EDGE_RESTART_BACKOFF_*), breaker kept closed for the poll (MCP_EDGE_BREAKER_WINDOW "
                      f"and _MIN_CALLS {BREAKER_OFF:,}); the poll reads mcp-edge://plugins until echo is active "
                      f"again, then calls it ({polls} calls in all; a call made while the worker restarts is "
                      "refused at once with a retryable error)", "mcp_edge")
        yield Row.from_samples("restart-after-sigkill", "mcp_edge", "ms", times, higher_is_better=False)

    def _status(self, srv: Server, plugin_id: str) -> Mapping[str, Any]:
        try:
            return plugin_row(self._do(srv, Server.plugins, STATUS_URI), plugin_id)
        except ValueError as exc:
            raise BenchError(str(exc)) from None

    def _first_success(self, srv: Server, load: Workload, restarts: int) -> int:
        """Poll until a call succeeds; the calls made (failed ones must be answered with an error).

        The poll reads the plugin rows until echo is active again after restart ``restarts + 1``, then calls
        it (a call made while its worker restarts is refused at once: the row says when calling makes sense)."""
        limit = _now() + int(RESTART_LIMIT_S * 1e9)
        n = 0
        while True:
            row = self._status(srv, "echo")
            if row.get("state") == "active" and row.get("restarts") == restarts + 1:
                i = srv.next_id
                srv.next_id += 1
                srv.send(load.req(i))
                msg = self._do(srv, Server.message, "restart-after-sigkill")
                n += 1
                if load.check(msg, i) is None:
                    srv.checked += 1
                    return n
                if not isinstance(msg, dict) or msg.get("id") != i or "error" not in msg:
                    raise BenchError(f"restart-after-sigkill: answer {msg!r:.200} to call {i}")
            if _now() > limit:
                raise BenchError(f"restart-after-sigkill: echo not back {RESTART_LIMIT_S:.0f} s after the kill; "
                                 f"its row: {dict(row)!r:.300}")
            time.sleep(0.0005)

    def reload_rows(self) -> Iterator[Row]:
        srv = self.start(RELOAD_ISOLATION)
        try:
            row = self._status(srv, "echo")
            if "reload_ms" not in row:
                self.ctx.note("reload-swap: not measured: the runtime's plugin rows carry no reload_ms; the row "
                              "is left out", "mcp_edge")
                self.ctx.advance(1)
                return
            got = self._reload(srv, row.get("reload_ms"), row.get("reloads"))
        finally:
            srv.close()
        self.ctx.advance(1)
        if got is not None:
            ms, calls = got
            self.ctx.note(f"reload-swap: the reload_ms the runtime reports for echo ({RELOAD_ISOLATION}) "
                          f"reloaded after its plugin.py changed, with {calls} echo calls made during the "
                          "reload, none failed; one reload, one sample (each reload rewrites the plugin and waits for "
                          "the watcher: perf compare shows it as too few samples, never as a regression)", "mcp_edge")
            yield Row("reload-swap", "mcp_edge", "ms", ms, higher_is_better=False, samples=(ms,))

    def _reload(self, srv: Server, before: Any, reloads: Any) -> tuple[float, int] | None:
        """Change echo's plugin.py and call echo until its row shows a new reload_ms; (it, calls made)."""
        small = Workload("small")
        source = self.plugin_dir / "echo" / "plugin.py"
        source.write_text(source.read_text() + "\n# changed by the supervisor bench to trigger a reload\n")
        limit = time.monotonic() + RELOAD_LIMIT_S
        calls = 0
        hup = False
        while time.monotonic() < limit:
            for _ in range(20):
                self._do(srv, lambda s: s.call(small.tool, small.args, small.check), "reload-swap")
                calls += 1
            row = self._status(srv, "echo")
            now_ms = row.get("reload_ms")
            counted = row.get("reloads") != reloads if isinstance(reloads, int) else now_ms != before
            if isinstance(now_ms, int | float) and counted and row.get("state") == "active":
                return float(now_ms), calls
            if not hup and time.monotonic() > limit - RELOAD_LIMIT_S / 2:
                hup = True
                srv.proc.send_signal(signal.SIGHUP)
        self.ctx.note(f"reload-swap: not measured: echo's row showed no new reload_ms within {RELOAD_LIMIT_S:.0f} s "
                      f"of its plugin.py changing (and a SIGHUP); {calls} calls made meanwhile, none failed",
                      "mcp_edge")
        return None

    def drain_rows(self) -> Iterator[Row]:
        tries = EVENTS[self.ctx.quick]
        times: list[float] = []
        last: list[float] = []
        flying: list[int] = []
        for _ in range(tries):
            srv = self.start(PROCESS, MCP_EDGE_SHUTDOWN_TIMEOUT_S=str(SHUTDOWN_TIMEOUT_S),
                             MCP_EDGE_PLUGIN_CONCURRENCY=str(2 * DRAIN_CALLS))
            try:
                exit_ms, last_ms, in_flight = self._drain_once(srv)
            finally:
                srv.kill()
            times.append(exit_ms)
            last.append(last_ms)
            flying.append(in_flight)
        self.ctx.advance(1)
        self.ctx.note(f"drain-under-load: median of {tries} servers, each SIGTERMed once an echo sent behind "
                      f"{DRAIN_CALLS} nap({NAP_MS} ms) calls (to a process worker) was answered: "
                      f"{min(flying)} to {max(flying)} naps in flight at SIGTERM, every one answered, exit "
                      f"status 0; the last answer came {statistics.median(last):.1f} ms after SIGTERM (median); "
                      f"MCP_EDGE_SHUTDOWN_TIMEOUT_S={SHUTDOWN_TIMEOUT_S:g}", "mcp_edge")
        yield Row.from_samples("drain-under-load", "mcp_edge", "ms", times, higher_is_better=False)

    def _drain_once(self, srv: Server) -> tuple[float, float, int]:
        """SIGTERM with the naps in flight; (ms to the exit, ms to the last answer, calls in flight)."""
        first = srv.next_id
        ids = list(range(first, first + DRAIN_CALLS))
        barrier = first + DRAIN_CALLS
        srv.next_id = barrier + 1
        srv.send(b"".join(call_request(i, "nap", {"ms": NAP_MS}) + b"\n" for i in ids)
                 + call_request(barrier, "echo", {"text": "barrier"}) + b"\n")
        answers: dict[int, Any] = {}
        while True:  # the echo after the naps is answered once the server has read (and started) them all
            msg = self._do(srv, Server.message, "drain-under-load")
            rid = msg.get("id") if isinstance(msg, dict) else None
            if rid == barrier:
                break
            answers[rid] = msg  # type: ignore[index]
        if len(answers) == DRAIN_CALLS:
            raise BenchError(f"drain-under-load: all {DRAIN_CALLS} naps of {NAP_MS} ms were answered before the "
                             "echo behind them: nothing was in flight at SIGTERM")
        in_flight = DRAIN_CALLS - len(answers)
        pidfd = os.pidfd_open(srv.proc.pid)
        try:
            t0 = _now()
            srv.proc.send_signal(signal.SIGTERM)
            t_last = t0
            while len(answers) < DRAIN_CALLS:
                msg = self._do(srv, lambda s: s.message(SHUTDOWN_TIMEOUT_S + 10), "drain-under-load")
                t_last = _now()
                rid = msg.get("id") if isinstance(msg, dict) else None
                if rid not in ids or rid in answers:
                    raise BenchError(f"drain-under-load: unexpected answer {msg!r:.300}")
                answers[rid] = msg
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            if not poller.poll((SHUTDOWN_TIMEOUT_S + 10) * 1000):
                raise BenchError(f"drain-under-load: the server did not exit {SHUTDOWN_TIMEOUT_S + 10:g} s after "
                                 "SIGTERM")
            t_exit = _now()
        finally:
            os.close(pidfd)
        code = srv.proc.wait()
        problems = [p for i in ids if (p := check_text(answers[i], i, f"slept {NAP_MS}"))]
        if problems:
            raise BenchError(f"drain-under-load: {len(problems)} of {DRAIN_CALLS} calls failed, e.g. {problems[0]}")
        srv.checked += DRAIN_CALLS
        if code != 0:
            raise BenchError(f"drain-under-load: the server exited with status {code} after SIGTERM")
        return (t_exit - t0) / 1e6, (t_last - t0) / 1e6, in_flight


def run(ctx: BenchContext) -> Iterator[Row]:
    if sys.platform != "linux":
        ctx.note("the supervisor bench uses pidfds and /proc: Linux only; skipped")
        return
    with tempfile.TemporaryDirectory(prefix="mcp-edge-bench-supervisor-") as tmp:
        bench = Bench(ctx, Path(tmp))
        ctx.plan(len(IMPLS) * (len(CALL_CASES) + len(PIPELINED_CASES)) + len(EVENT_CASES))
        bench.warm()
        yield from bench.call_rows()
        yield from bench.restart_rows()
        yield from bench.reload_rows()
        yield from bench.drain_rows()
