"""A mounted MCP server's calls through the bridge, against the same server called directly.

The mounted server is the MCP bench's echo server on the official SDK (``perf/peers/mcp_sdk_echo.py``,
``MCPServer``, mcp 2.3) in the MCP bench's venv for it (``build/perf/venvs/mcp-sdk``, made by
``perf/bench_mcp.py``'s code on the first run). Impls:

- ``mcp-sdk``: that server over stdio, called directly;
- ``mcp_edge[bridge]``: ``<this python> -m mcp_edge.cli serve --stdio -q`` with one plugin only, a
  ``[bridge]`` mounting that same server over stdio with ``prefix = ""`` (so the tool is ``echo`` on both
  sides and the requests are the same bytes); the bridge speaks the 2025-11-25 handshake era to it.

The load generator is the MCP bench's (raw newline-delimited JSON-RPC on the child's pipes, every answer
parsed and checked), the same for both. Cases: ``stdio-seq`` (one call in flight) and ``stdio-pipelined``
(32 in flight), with the client in the handshake era, and ``-2026`` the same with the client in the stateless
2026-07-28 revision (the SDK server serves that era itself; the bridge still speaks the handshake era to it).
Rounds of ``ROUND_S`` seconds are interleaved between the two impls, alternating who goes first.
``calls/s`` rows are the best round; ``ratio`` rows (impl ``mcp_edge[bridge]``) are the bridge's calls/s over
the direct server's, per round, median. Nothing is pinned: the bridged case has three processes (client,
runtime, server) on this machine's CPUs, the direct one two.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from mcp_edge.perf import BenchContext, Row

NAME = "bridge"
ROUND_S = {True: 0.3, False: 1.0}
CASES = ("stdio-seq", "stdio-pipelined", "stdio-seq-2026", "stdio-pipelined-2026")
PERF_DIR = Path(__file__).resolve().parent


def _bench_mcp() -> ModuleType:
    """perf/bench_mcp.py (its load generator, peer venvs and board profile), loaded under a name of its own."""
    spec = importlib.util.spec_from_file_location("_mcp_edge_bench_mcp_for_bridge", PERF_DIR / "bench_mcp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _plugin(folder: Path, python: str, script: Path) -> None:
    folder.mkdir(parents=True)
    argv = ", ".join(json.dumps(a) for a in (python, str(script), "--stdio"))  # (a JSON string is a TOML one)
    (folder / "plugin.toml").write_text(
        f'[plugin]\nid = "sdk"\nversion = "1.0.0"\n\n[bridge]\ncommand = [{argv}]\nprefix = ""\n')


def run(ctx: BenchContext) -> Iterator[Row]:
    if sys.platform != "linux":
        ctx.note("the bridge bench uses the MCP bench's Linux-only load generator; skipped")
        return
    bm = _bench_mcp()
    cache = bm._cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    peer = bm.PEERS[0]
    python = bm._peer_python(ctx, peer, cache / "venvs")
    if python is None:
        ctx.note("no venv with the official SDK for the mounted server: the bridge bench is skipped")
        return
    script = PERF_DIR / "peers" / peer.script
    with tempfile.TemporaryDirectory(prefix="mcp-edge-bench-bridge-") as tmp:
        work = Path(tmp)
        for sub in ("boards", "data", "logs", "plugins"):
            (work / sub).mkdir()
        _plugin(work / "plugins" / "sdk", python, script)
        (work / "boards" / f"{bm.BOARD_ID}.toml").write_text(
            bm.board_profile(work / "plugins", work / "data", platform.machine()))
        ours_env = bm._clean_env({"MCP_EDGE_BOARDS_DIR": str(work / "boards"), "MCP_EDGE_BOARD": bm.BOARD_ID,
                                  "MCP_EDGE_DATA_DIR": str(work / "data"),
                                  "PYTHONPYCACHEPREFIX": str(cache / "pycache")})
        ours_env.pop("MCP_EDGE_PLUGIN_DIRS", None)
        py = sys.executable
        logs = work / "logs"
        direct = bm.Impl("mcp-sdk", python, [python, str(script), "--stdio"], bm._peer_http(python, str(script)),
                         peer.imports, bm._clean_env(peer.env), logs)
        bridged = bm.Impl("mcp_edge[bridge]", py, [py, "-m", "mcp_edge.cli", "serve", "--stdio", "-q"],
                          lambda port: [], "", ours_env, logs)
        ctx.plan(len(CASES) * 2)
        for case in CASES:
            yield from _case(ctx, bm, case, (direct, bridged))


def _case(ctx: BenchContext, bm: ModuleType, case: str, impls: tuple[Any, Any]) -> Iterator[Row]:
    protocol = bm.MODERN if case.endswith("-2026") else bm.HANDSHAKE
    pipelined = "pipelined" in case
    servers = {}
    try:
        for impl in impls:
            server = bm.StdioServer(impl, protocol)
            server.handshake()
            if impl.name.startswith("mcp_edge"):
                _wait_for_tool(server)
            server.calls_until(bm.WARMUP_CALLS)
            servers[impl.name] = server
        seconds = ROUND_S[ctx.quick]
        per_s: dict[str, list[float]] = {impl.name: [] for impl in impls}
        ratios: list[float] = []
        from array import array

        for r in range(ctx.rounds):
            order = list(impls) if r % 2 == 0 else list(reversed(impls))
            got: dict[str, float] = {}
            for impl in order:
                server = servers[impl.name]
                lat = array("q")
                n, ns = (server.pipelined_round(seconds, bm.DEPTH, lat) if pipelined
                         else server.seq_round(seconds, lat))
                got[impl.name] = n / (ns / 1e9)
                per_s[impl.name].append(got[impl.name])
            ratios.append(got[impls[1].name] / got[impls[0].name])
        for impl in impls:
            ctx.advance(1, f"{case} {impl.name}")
            yield Row.from_samples(case, impl.name, "calls/s", per_s[impl.name], value="best")
        yield Row.from_samples(f"{case}-ratio", impls[1].name, "ratio", ratios)
    finally:
        for server in servers.values():
            server.close_stdin()


def _wait_for_tool(server: Any) -> None:
    """Our runtime answers before a bridge plugin's server is up only with unknown-tool errors: wait for it."""
    import time

    deadline = time.monotonic() + 60.0
    while True:
        i = server.next_id
        server.next_id += 1
        server.send(server._req(i))
        msg = server.message()
        if isinstance(msg, dict) and "result" in msg and not msg["result"].get("isError"):
            server.calls += 1
            return
        if time.monotonic() > deadline:
            raise server.fail(f"the mounted echo tool never answered: {msg!r:.300}")
        time.sleep(0.05)
