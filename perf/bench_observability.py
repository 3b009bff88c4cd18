"""Observability's cost: what metrics, tracing and authentication add to each request and to the served
server's memory, against the same runtime with them off, in the same run.

Impls: ``mcp_edge[off]`` (metrics, tracing and authentication off: the defaults), ``mcp_edge[metrics]``
(``metrics``), ``mcp_edge[tracing]`` (``tracing``, every request sampled, spans exported as JSON lines to a file
in the bench's temporary folder by the SDK's batch processor, whose thread's work counts too) and
``mcp_edge[auth]`` (``auth_required`` with a bearer JWT: RS256, a local JWKS file, a base scope and a
tools/call scope).

- ``per-request`` (``us``, lower is better): in this process, one running server an impl on the bench's ``echo``
  plugin (``perf/plugins/echo``, in process); each round drives ``ROUND_CALLS`` ``tools/call`` requests
  through its router (``Router.handle``: the dispatch, the plugin's bulkhead and breaker, the call, the
  response's encoding) with no transport around it, and for ``mcp_edge[auth]`` also what the HTTP transport
  asks of the authenticator for each request (the token checked, its scopes against the method's; the same
  token each time, as a client sends it: verified once, then remembered). So the differences between the
  rows are what each feature adds to a request; rounds alternate between the impls, best round each. Every
  answer is checked (the echoed text).
- ``idle-rss`` (``MiB``, lower is better): ``VmRSS`` of ``mcp-edge serve --http --port 0 -q`` (and any workers)
  once it has served one ``tools/call`` over HTTP (with its token for ``mcp_edge[auth]``) and, with metrics
  on, answered one ``GET /metrics`` (prometheus-client loads at the first scrape), median of ``SPAWNS`` spawns
  an impl.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from mcp_edge.perf import BenchContext, BenchError, Row
from mcp_edge.perf.harness import load_bench

NAME = "observability"

PERF_DIR = Path(__file__).resolve().parent
OFF, METRICS, TRACING, AUTH = "mcp_edge[off]", "mcp_edge[metrics]", "mcp_edge[tracing]", "mcp_edge[auth]"
IMPLS = (OFF, METRICS, TRACING, AUTH)
ROUND_CALLS = {True: 5_000, False: 20_000}
SPAWNS = {True: 3, False: 5}
WARMUP = 500
TEXT = "hello from the observability bench"
IO_TIMEOUT_S = 30.0
ISSUER = "https://issuer.bench.invalid"
RESOURCE = "https://box.bench.invalid/mcp"
SCOPES = ("mcp:access",)
METHOD_SCOPES = ("tools/call=mcp:tools",)


def _mcp_bench() -> ModuleType:
    """bench_mcp.py: its board profile, clean environment, JSON-RPC requests and RSS reading."""
    return load_bench("mcp", PERF_DIR / "bench_mcp.py")


_mcp = _mcp_bench()


def per_call_us(ns: int, calls: int) -> float:
    """Microseconds a call from a round of ``calls`` that took ``ns``."""
    if calls <= 0:
        raise ValueError("a round needs at least one call")
    return ns / calls / 1000


class Issuer:
    """An RS256 key, its JWKS file and a token for the bench's server (pyjwt and cryptography: the perf extra)."""

    def __init__(self, work: Path) -> None:
        try:
            import jwt
            from cryptography.hazmat.primitives.asymmetric import rsa
        except ImportError as exc:
            raise BenchError(f"{AUTH} needs pyjwt[crypto] (pip install -e '.[perf]'): {exc}") from None
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        public.update({"kid": "bench", "alg": "RS256", "use": "sig"})
        self.jwks = work / "jwks.json"
        self.jwks.write_text(json.dumps({"keys": [public]}))
        now = int(time.time())
        self.token = jwt.encode({"sub": "bench", "iss": ISSUER, "aud": RESOURCE, "iat": now, "exp": now + 3600,
                                 "scope": "mcp:access mcp:tools"}, key, algorithm="RS256", headers={"kid": "bench"})

    def settings(self) -> dict[str, Any]:
        return {"auth_required": True, "auth_resource": RESOURCE, "auth_servers": (ISSUER,),
                "auth_jwks_file": str(self.jwks), "auth_scopes": SCOPES, "auth_method_scopes": METHOD_SCOPES}


def impl_settings(impl: str, data: Path, issuer: Issuer) -> dict[str, Any]:
    """The settings that turn ``impl``'s feature on (nothing for off)."""
    if impl == METRICS:
        return {"metrics": True}
    if impl == TRACING:
        return {"tracing": True, "tracing_exporter": "jsonl", "tracing_file": str(data / "spans.jsonl")}
    if impl == AUTH:
        return issuer.settings()
    return {}


class Routers:
    """One running server an impl for the per-request case, and the request to drive them with."""

    def __init__(self, work: Path, issuer: Issuer) -> None:
        self.work = work
        self.issuer = issuer
        self.servers: dict[str, Any] = {}
        self.auth: Any = None

    async def start(self) -> None:
        from mcp_edge.board.settings import Settings
        from mcp_edge.runtime.auth import Auth
        from mcp_edge.server import Server

        for impl in IMPLS:
            data = self.work / impl.replace("[", "-").rstrip("]")
            data.mkdir()
            settings = Settings.load(data_dir=data, plugin_dirs=(PERF_DIR / "plugins",), entry_points=False,
                                     enabled_plugins=frozenset({"echo"}), reload_watch=False,
                                     plugin_isolation={"echo": "inproc"},
                                     **impl_settings(impl, data, self.issuer))
            self.servers[impl] = await Server.configure(settings).start()
            if impl == AUTH:
                self.auth = Auth(settings, RESOURCE)

    async def stop(self) -> None:
        for running in self.servers.values():
            await running.stop()

    async def round(self, impl: str, calls: int) -> int:
        """``calls`` checked requests through ``impl``'s router; the nanoseconds they took."""
        from mcp_edge.mcp.connection import Request, ServerConnection
        from mcp_edge.runtime.outcome import Result
        from mcp_edge.runtime.principal import EMBEDDED
        from mcp_edge.runtime.router import Session

        router = self.servers[impl].router
        session = Session(ServerConnection(router.info), principal=EMBEDDED)
        req = Request(1, "tools/call", {"name": "echo", "arguments": {"text": TEXT}}, "2025-11-25", False)
        handle = router.handle
        auth = self.auth if impl == AUTH else None
        headers = {"authorization": f"Bearer {self.issuer.token}"}
        start = time.perf_counter_ns()
        for _ in range(calls):
            if auth is not None:
                who = auth.authenticate(headers)
                if auth.forbidden(who, "tools/call") is not None:
                    raise BenchError(f"{AUTH}: the bench's token was refused: {who!r}")
            outcome = await handle(req, session, None)
        took = time.perf_counter_ns() - start
        if not isinstance(outcome, Result) or outcome.encoded is None or \
                f'"text":"{TEXT}"'.encode() not in outcome.encoded:
            raise BenchError(f"{impl}: echo answered {outcome!r:.300}, expected the text {TEXT!r}")
        return took


def per_request_rows(ctx: BenchContext, work: Path, issuer: Issuer) -> Iterator[Row]:
    calls = ROUND_CALLS[ctx.quick]
    routers = Routers(work, issuer)

    async def measure() -> dict[str, list[float]]:
        await routers.start()
        rounds: dict[str, list[float]] = {impl: [] for impl in IMPLS}
        try:
            for impl in IMPLS:
                await routers.round(impl, WARMUP)
            for r in range(ctx.rounds):
                for impl in _mcp.rotate(list(IMPLS), r):
                    rounds[impl].append(per_call_us(await routers.round(impl, calls), calls))
            metrics = routers.servers[METRICS].registry.metrics
            counted = sum(row[0] for _, row in metrics.rows()) if metrics is not None else 0
            if counted != WARMUP + ctx.rounds * calls:
                raise BenchError(f"{METRICS}: the meter counted {counted} calls of "
                                 f"{WARMUP + ctx.rounds * calls} made")
        finally:
            await routers.stop()
        return rounds

    rounds = asyncio.run(measure())
    best = {impl: min(rounds[impl]) for impl in IMPLS}
    ctx.note(f"per-request: {calls} tools/call echo a round through Router.handle (no transport; for {AUTH} also "
             f"the authenticator's check of the request's token and scopes), {ctx.rounds} rounds alternating, best "
             "round each; " + "; ".join(f"{impl} adds {best[impl] - best[OFF]:+.3f} us a request "
                                         f"({best[impl] / best[OFF]:.3f}x of off)" for impl in IMPLS[1:]))
    for impl in IMPLS:
        yield Row.from_samples("per-request", impl, "us", rounds[impl], higher_is_better=False, value="best")
    ctx.advance(len(IMPLS))


class HttpServer:
    """``mcp-edge serve --http --port 0 -q`` and what it takes to make it serve one call."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        argv = [sys.executable, "-m", "mcp_edge.cli", "serve", "--http", "--port", "0", "-q"]
        self.log = log
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        self.port = self._port()

    def _port(self) -> int:
        assert self.proc.stderr is not None
        fd, buf = self.proc.stderr.fileno(), b""
        deadline = time.monotonic() + IO_TIMEOUT_S
        while b"serving MCP over" not in buf or not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise BenchError(f"the server did not listen within {IO_TIMEOUT_S:.0f} s: {buf[-300:]!r}")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise BenchError(f"the server exited (status {self.proc.poll()}): {buf[-300:]!r}")
            buf += chunk
        line = next(x for x in buf.decode(errors="replace").splitlines() if "serving MCP over" in x)
        return int(line.rsplit(":", 1)[1].split("/", 1)[0])

    def call(self, token: str | None) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=IO_TIMEOUT_S)
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            conn.request("POST", "/mcp", _mcp.initialize_request(0), headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200:
                raise BenchError(f"initialize answered {resp.status}: {body[:300]!r}")
            headers["Mcp-Session-Id"] = resp.getheader("mcp-session-id") or ""
            conn.request("POST", "/mcp", _mcp.INITIALIZED, headers)
            conn.getresponse().read()
            conn.request("POST", "/mcp", _mcp.echo_request(1, text=TEXT), headers)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status != 200 or TEXT.encode() not in body:
                raise BenchError(f"tools/call echo answered {resp.status}: {body[:300]!r}")
        finally:
            conn.close()

    def scrape(self, token: str | None) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=IO_TIMEOUT_S)
        try:
            conn.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"} if token else {})
            resp = conn.getresponse()
            if resp.status != 200 or b"mcp_edge_calls_total" not in resp.read():
                raise BenchError(f"GET /metrics answered {resp.status}")
        finally:
            conn.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def idle_rss_rows(ctx: BenchContext, work: Path, issuer: Issuer) -> Iterator[Row]:
    boards, data = work / "boards", work / "rss-data"
    for d in (boards, data):
        d.mkdir(exist_ok=True)
    board = "perf-observability"
    (boards / f"{board}.toml").write_text(
        _mcp.board_profile(PERF_DIR / "plugins", data, platform.machine()).replace('"perf-mcp"', f'"{board}"'))
    base = _mcp._clean_env({"MCP_EDGE_BOARDS_DIR": str(boards), "MCP_EDGE_BOARD": board,
                            "MCP_EDGE_DATA_DIR": str(data), "MCP_EDGE_RELOAD_WATCH": "0",
                            "PYTHONPYCACHEPREFIX": str(_mcp._cache_dir() / "pycache")})

    def env_of(impl: str) -> dict[str, str]:
        env = dict(base)
        for key, value in impl_settings(impl, data, issuer).items():
            shown = ",".join(value) if isinstance(value, tuple) else "1" if value is True else str(value)
            env[f"MCP_EDGE_{key.upper()}"] = shown
        return env

    def spawn(impl: str) -> int:
        srv = HttpServer(env_of(impl), work / "rss.log")
        try:
            token = issuer.token if impl == AUTH else None
            srv.call(token)
            if impl == METRICS:
                srv.scrape(token)
            time.sleep(0.2)  # settled: the batch exporter's first wake, the loop idle
            return int(_mcp.tree_rss_kib(srv.proc.pid))
        finally:
            srv.stop()

    spawn(OFF)  # bytecode cached, files in the page cache
    got: dict[str, list[int]] = {impl: [] for impl in IMPLS}
    for r in range(SPAWNS[ctx.quick]):
        for impl in _mcp.rotate(list(IMPLS), r):
            got[impl].append(spawn(impl))
    ctx.note(f"idle-rss: VmRSS of `mcp-edge serve --http` with perf/plugins after one tools/call over HTTP (and, "
             f"with metrics on, one GET /metrics), median of {SPAWNS[ctx.quick]} spawns each, alternating")
    for impl in IMPLS:
        yield Row.from_samples("idle-rss", impl, "MiB", [kib / 1024 for kib in got[impl]], higher_is_better=False)
    ctx.advance(len(IMPLS))


def run(ctx: BenchContext) -> Iterator[Row]:
    if sys.platform != "linux":
        ctx.note("the observability bench reads /proc: Linux only; skipped")
        return
    ctx.plan(2 * len(IMPLS))
    with tempfile.TemporaryDirectory(prefix="mcp-edge-bench-observability-") as tmp:
        work = Path(tmp)
        issuer = Issuer(work)
        yield from per_request_rows(ctx, work, issuer)
        yield from idle_rss_rows(ctx, work, issuer)
