"""update --auto inside a real server process: while concurrent clients (the official ``mcp`` SDK client, both
protocol eras) call the plugin's tool non-stop, the index publishes v2, the server's auto-update task installs
it and hot-reloads the plugin. Every call succeeds, and the tool answers with v2 afterwards."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from ci_honesty import importorskip
from index_helpers import PLUGIN_ID, Publisher, base_url, installer, published_v1, serve_folder

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transport"))

from transport_helpers import WAIT, running_server

anyio = importorskip("anyio", "interop", "the auto-update test needs anyio (with the mcp SDK)")
mcp = importorskip("mcp", "interop", "the auto-update test drives the server with the mcp SDK client")

TOOL = f"{PLUGIN_ID}_version"
CLIENTS = (("legacy", 3), ("2026-07-28", 3))  # (era, clients)
CALLS_AFTER = 25  # calls each client makes once it has seen v2


def _answer(client: Any) -> str:
    """What the tool answers ``client`` (a transport_helpers.HttpClient): its text, or the error's message."""
    from transport_helpers import request

    reply = client.post(request(2, "tools/call", {"name": TOOL, "arguments": {}}))
    body = reply.events()[-1] if reply.headers["content-type"].startswith("text/event-stream") else reply.json()
    return str(body["result"]["content"][0]["text"]) if "result" in body else str(body["error"]["message"])


def _await_answer(client: Any, text: str, server: Any) -> None:
    """Asks until the tool answers ``text`` (WAIT seconds at most); fails with the server's stderr if not."""
    deadline = time.monotonic() + WAIT
    while _answer(client) != text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _answer(client) == text, server.stderr()


def test_auto_update_under_load_fails_no_call(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    with serve_folder(pub.out) as http:
        index_url = base_url(http) + "index.json"
        assert installer(tmp_path, index_url, trust).install(PLUGIN_ID) is not None  # v1, before the server starts
        settings = {"plugin_index": index_url, "trust_dir": str(trust), "plugin_update_interval_s": 0.3}
        with running_server(tmp_path, "--http", "--host", "127.0.0.1", "--port", "0", settings=settings) as server:
            url = f"http://127.0.0.1:{server.port}/mcp"
            stats = anyio.run(_load, url, pub)
            stderr = server.stderr()
    print("\n".join(line for line in stderr.splitlines() if "reload" in line or "index" in line))
    calls, failures, sequences = stats["calls"], stats["failures"], stats["sequences"]
    print(f"update under load: {calls} calls from {sum(n for _, n in CLIENTS)} clients, "
          f"{len(failures)} failed")
    assert failures == [], failures[:5]
    for seq in sequences:
        assert seq[0] == "v1", seq[:3]  # every client started on v1 ...
        first_v2 = seq.index("v2")
        assert set(seq[first_v2:]) == {"v2"}  # ... and once v2 answered, only v2 did
        assert len(seq) - first_v2 >= CALLS_AFTER
    assert f"plugin {PLUGIN_ID}: reloaded (version 2.0.0)" in stderr
    assert installer(tmp_path, index_url, trust).state.installed()[PLUGIN_ID]["version"] == "2.0.0"


async def _load(url: str, pub: Publisher) -> dict[str, Any]:
    from mcp import Client

    failures: list[str] = []
    sequences: list[list[str]] = []
    started = anyio.Event()
    ready = [0]
    total = sum(n for _, n in CLIENTS)

    async def client(mode: str) -> None:
        seq: list[str] = []
        sequences.append(seq)
        async with Client(url, mode=mode, read_timeout_seconds=WAIT) as c:
            after = 0
            while after < CALLS_AFTER:
                try:
                    result = await c.call_tool(TOOL)
                except Exception as exc:  # every failure counts: a refused call, a lost session, a timeout
                    failures.append(f"{mode}: {type(exc).__name__}: {exc}")
                    await anyio.sleep(0.01)
                    continue
                if result.is_error:
                    failures.append(f"{mode}: error result: {result.content}")
                    continue
                text = str(result.content[0].text)
                seq.append(text)
                if len(seq) == 20:
                    ready[0] += 1
                    if ready[0] == total:
                        started.set()
                if text == "v2":
                    after += 1

    async def publish_v2() -> None:
        await started.wait()  # every client is calling v1: now the publisher releases v2
        await anyio.to_thread.run_sync(lambda: pub.publish("2.0.0", "v2"))

    with anyio.fail_after(6 * WAIT):
        async with anyio.create_task_group() as tg:
            for mode, count in CLIENTS:
                for _ in range(count):
                    tg.start_soon(client, mode)
            tg.start_soon(publish_v2)
    return {"calls": sum(len(s) for s in sequences) + len(failures), "failures": failures,
            "sequences": sequences}


def test_auto_update_skips_a_refused_index(tmp_path: Path) -> None:
    """A tampered index published under the running server: the auto-update round refuses it, logs why, and
    the plugin keeps answering v1."""
    import json

    pub, trust = published_v1(tmp_path)
    with serve_folder(pub.out) as http:
        index_url = base_url(http) + "index.json"
        installer(tmp_path, index_url, trust).install(PLUGIN_ID)
        settings = {"plugin_index": index_url, "trust_dir": str(trust), "plugin_update_interval_s": 0.2}
        with running_server(tmp_path, "--http", "--host", "127.0.0.1", "--port", "0", settings=settings) as server:
            pub.publish("2.0.0", "v2")
            doc = json.loads((pub.out / "index.json").read_text())
            doc["signed"]["plugins"][-1]["description"] = "tampered after signing"
            (pub.out / "index.json").write_text(json.dumps(doc))
            deadline = time.monotonic() + WAIT
            while "bad signature" not in server.stderr() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert "plugin index: no update: index" in server.stderr() and "bad signature" in server.stderr()
            from transport_helpers import HttpClient

            client = HttpClient(server.port)
            client.handshake()
            said = _answer(client)
            client.close()
            assert said == "v1"


def test_timer_update_is_reloaded_by_the_folder_watcher(tmp_path: Path) -> None:
    """``mcp-edge plugin update --auto`` run by a timer in its own process: the server (no auto-update task of
    its own) sees the swapped folder through its watcher and reloads; twice, so the watch follows the new
    folder."""
    import os
    import subprocess

    from transport_helpers import ROOT, HttpClient

    pub, trust = published_v1(tmp_path)
    with serve_folder(pub.out) as http:
        index_url = base_url(http) + "index.json"
        installer(tmp_path, index_url, trust).install(PLUGIN_ID)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
        env.update(MCP_EDGE_DATA_DIR=str(tmp_path / "data"), MCP_EDGE_PLUGIN_INDEX=index_url,
                   MCP_EDGE_TRUST_DIR=str(trust), PYTHONPATH=str(ROOT))
        with running_server(tmp_path, "--http", "--host", "127.0.0.1", "--port", "0") as server:
            client = HttpClient(server.port)
            client.handshake()
            assert _answer(client) == "v1"
            for version, text in (("2.0.0", "v2"), ("3.0.0", "v3")):
                pub.publish(version, text)
                timer = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "plugin", "update", "--auto"],
                                       env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
                assert timer.returncode == 0, timer.stderr
                assert f"{PLUGIN_ID}: " in timer.stdout and f"-> {version}" in timer.stdout
                _await_answer(client, text, server)
            client.close()


def test_auto_update_mends_a_plugin_that_failed(tmp_path: Path) -> None:
    """v1 installed but broken (it fails to load, the server serves on without it): the auto-update round
    installs v2 and brings the plugin up in the running server, no restart."""
    from index_helpers import write_plugin
    from transport_helpers import HttpClient

    from mcp_edge.index.build import build_index

    pub = Publisher(tmp_path / "pub")
    trust = pub.trust_into(tmp_path / "trust")
    src = write_plugin(tmp_path / "pub" / "src-broken" / PLUGIN_ID, "1.0.0", "v1")
    with (src / "plugin.py").open("a") as f:
        f.write("\nraise RuntimeError('v1 is broken')\n")
    build_index(src.parent, pub.out, pub.key)
    with serve_folder(pub.out) as http:
        index_url = base_url(http) + "index.json"
        installer(tmp_path, index_url, trust).install(PLUGIN_ID)
        settings = {"plugin_index": index_url, "trust_dir": str(trust), "plugin_update_interval_s": 0.2}
        with running_server(tmp_path, "--http", "--host", "127.0.0.1", "--port", "0", settings=settings) as server:
            client = HttpClient(server.port)
            client.handshake()
            assert "v1" not in _answer(client)  # failed at start: no such tool
            pub.publish("2.0.0", "v2")
            _await_answer(client, "v2", server)
            client.close()
