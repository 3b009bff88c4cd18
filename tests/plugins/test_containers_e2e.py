"""The containers plugin end to end: ``python -m mcp_edge.cli serve --http`` as a subprocess with the plugin in
its worker process (its manifest's ``isolation = "process"``, its [sandbox] applied), configured through
``MCP_EDGE_CONTAINERS_*``, driven by the official ``mcp`` SDK client against the session's real Podman: tool
calls with structured results and progress, resources/list with the published containers, and resource
updates fed by the engine's events through ``resources/subscribe`` (handshake era) and ``subscriptions/listen``
(2026-07-28)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from ci_honesty import importorskip
from plugin_host import BUILD
from podman_service import IMAGE, PodmanService

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "transport"))
from transport_helpers import ServerProcess

importorskip("mcp", "interop", "the end-to-end test needs the mcp SDK (pip install -e '.[test]')")
anyio = importorskip("anyio", "interop", "the end-to-end test needs anyio (a dependency of the mcp SDK)")

from mcp import Client, MCPError  # noqa: E402
from mcp.client.subscriptions import ResourceUpdated  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # only to end a broken test, never a timing assertion
MODERN = "2026-07-28"
TOOLS = {"container.list", "container.inspect", "container.create", "container.start", "container.stop",
         "container.restart", "container.remove", "container.logs", "container.stats", "container.exec",
         "image.list", "image.inspect", "image.pull", "image.remove", "image.prune", "network.list",
         "network.inspect", "network.create", "network.remove", "network.connect"}


@contextmanager
def serving(podman: PodmanService, **extra: str) -> Iterator[str]:
    """``mcp-edge serve --http`` with only the containers plugin, pointed at the test engine; its URL."""
    BUILD.mkdir(parents=True, exist_ok=True)
    data = BUILD / f"containers-e2e-{uuid.uuid4().hex[:8]}"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_EDGE_", "DOCKER_"))}
    # the board profile's plugin folders hold the repository's plugins/ already
    env.update({"MCP_EDGE_DATA_DIR": str(data), "MCP_EDGE_ENABLED_PLUGINS": "containers",
                "MCP_EDGE_ENTRY_POINTS": "0", "MCP_EDGE_CONTAINERS_HOST": podman.host,
                "MCP_EDGE_CONTAINERS_EVENTS_BACKOFF_MIN_S": "0.1", "PYTHONUNBUFFERED": "1", **extra})
    proc = subprocess.Popen([sys.executable, "-m", "mcp_edge.cli", "serve", "--http", "--host", "127.0.0.1",
                             "--port", "0"], env=env, cwd=ROOT, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = ServerProcess(proc)  # tests/transport/transport_helpers.py: stderr read, kept and drained
    try:
        yield server.wait_ready("serving MCP over Streamable HTTP at ")
    finally:
        server.stop()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="module")
def server(podman: PodmanService) -> Iterator[str]:
    """The server with allow_destructive on (no role policy)."""
    with serving(podman, MCP_EDGE_CONTAINERS_ALLOW_DESTRUCTIVE="true") as url:
        yield url


def run(fn: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        with anyio.fail_after(3 * WAIT):
            await fn()

    anyio.run(bounded)


def unique() -> str:
    return f"mcpe2e-{uuid.uuid4().hex[:10]}"


def _status(podman: PodmanService, name: str) -> str:
    return podman.podman("inspect", "-f", "{{.State.Status}}", name).stdout.strip()


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")  # the handshake era is tested on purpose
def test_handshake_era_tools_resources_and_subscribe(server: str, podman: PodmanService) -> None:
    name = unique()
    uri = f"docker://containers/{name}"

    async def main() -> None:
        updated: list[str] = []
        got_update = anyio.Event()

        async def on_message(message: Any) -> None:
            note = getattr(message, "root", message)
            if getattr(note, "method", None) == "notifications/resources/updated":
                updated.append(str(note.params.uri))
                if str(note.params.uri) == uri:
                    got_update.set()

        async with Client(server, mode="legacy", message_handler=on_message, read_timeout_seconds=WAIT) as c:
            assert c.protocol_version != MODERN
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert set(tools) >= TOOLS
            assert tools["container.list"].output_schema is not None
            assert tools["container.stop"].annotations is not None and tools["container.stop"].annotations \
                .destructive_hint is True

            # the plugin runs in its worker, sandboxed (no new privileges, seccomp), and still reaches the socket
            status = await c.read_resource("mcp-edge://plugins")
            plugins = {p["id"]: p for p in json.loads(status.contents[0].text)["plugins"]}
            assert plugins["containers"]["isolation"] == "process" and plugins["containers"]["state"] == "active"
            pid = plugins["containers"]["pid"]
            proc_status = Path(f"/proc/{pid}/status").read_text()
            assert "NoNewPrivs:\t1" in proc_status and "Seccomp:\t2" in proc_status

            made = await c.call_tool("container.create", {"image": IMAGE, "name": name, "start": True,
                                                          "command": ["sh", "-c", "echo hello-e2e; sleep 600"]})
            assert not made.is_error, made
            assert made.structured_content is not None and made.structured_content["name"] == name

            listed = await c.call_tool("container.list", {"name": name})
            assert [x["name"] for x in (listed.structured_content or {})["containers"]] == [name]

            ran = await c.call_tool("container.exec", {"container": name, "command": ["sh", "-c", "echo ok; exit 7"]})
            assert (ran.structured_content or {}).get("exit_code") == 7
            assert (ran.structured_content or {}).get("stdout") == "ok\n"

            pulled = await c.call_tool("image.pull", {"image": "localhost:1/nothing:latest"})
            assert pulled.is_error and "pulling localhost:1/nothing:latest failed" in pulled.content[0].text

            with anyio.fail_after(WAIT):
                while uri not in {str(r.uri) for r in (await c.list_resources()).resources}:
                    await anyio.sleep(0.05)

            await c.subscribe_resource(uri)
            await anyio.to_thread.run_sync(lambda: podman.podman("stop", "-t", "0", name))
            with anyio.fail_after(WAIT):
                await got_update.wait()
            read = await c.read_resource(uri)
            assert json.loads(read.contents[0].text)["state"]["Running"] is False

            # follow a log to its container's end, with the lines as progress notifications: the container is
            # stopped once the first line arrived
            restarted = await c.call_tool("container.start", {"container": name})
            assert (restarted.structured_content or {})["running"] is True
            lines: list[str] = []

            async def on_line(p: float, total: float | None, message: str | None) -> None:
                lines.append(message or "")
                if len(lines) == 1:
                    threading.Thread(target=podman.podman, args=("stop", "-t", "0", name),
                                     kwargs={"check": False}, daemon=True).start()

            followed = await c.call_tool("container.logs", {"container": name, "follow": True, "tail": 1},
                                         progress_callback=on_line)
            assert (followed.structured_content or {})["ended"] == "stopped"
            assert lines[0] == "[stdout] hello-e2e", lines

            gone = await c.call_tool("container.remove", {"container": name, "force": True})
            assert not gone.is_error

    try:
        run(main)
    finally:
        podman.podman("rm", "-f", "-t", "0", name, check=False)


def test_2026_listen_gets_resource_updates(server: str, podman: PodmanService) -> None:
    name = unique()
    uri = f"docker://containers/{name}"
    podman.podman("create", "--name", name, IMAGE, "sleep", "600")

    async def main() -> None:
        async with Client(server, mode="auto", read_timeout_seconds=WAIT) as c:
            assert c.protocol_version == MODERN
            async with c.listen(resource_subscriptions=[uri]) as sub:
                await anyio.to_thread.run_sync(lambda: podman.podman("start", name))
                with anyio.fail_after(WAIT):
                    async for event in sub:
                        if isinstance(event, ResourceUpdated) and event.uri == uri:
                            break
            assert _status(podman, name) == "running"
            read = await c.read_resource(uri)
            assert json.loads(read.contents[0].text)["state"]["Running"] is True

    try:
        run(main)
    finally:
        podman.podman("rm", "-f", "-t", "0", name, check=False)


def test_role_policy_decides_destructive(podman: PodmanService) -> None:
    """With a role policy and allow_destructive off, the policy decides: the router refuses a tool the role
    lacks, and the plugin runs a destructive tool the role grants."""
    name = unique()
    BUILD.mkdir(parents=True, exist_ok=True)
    policy = BUILD / f"containers-policy-{uuid.uuid4().hex[:8]}.toml"
    policy.write_text('[roles.ops]\ntools = ["container.*"]\nclasses = ["read", "write", "destructive"]\n\n'
                      '[principals]\n"anonymous" = ["ops"]\n')
    podman.podman("run", "-d", "--name", name, IMAGE, "sleep", "600")

    async def main(url: str) -> None:
        async with Client(url, mode="legacy", read_timeout_seconds=WAIT) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert "container.stop" in tools and "image.remove" not in tools  # only what the role may use
            stopped = await c.call_tool("container.stop", {"container": name, "timeout_s": 0})
            assert not stopped.is_error, stopped
            assert (stopped.structured_content or {})["running"] is False
            with pytest.raises(MCPError) as refused:
                await c.call_tool("image.remove", {"image": IMAGE})
            assert refused.value.error.code == -32012
        assert _status(podman, name) == "exited"
        assert podman.podman("image", "exists", IMAGE, check=False).returncode == 0

    try:
        with serving(podman, MCP_EDGE_AUTH_POLICY_FILE=str(policy)) as url:
            run(lambda: main(url))
    finally:
        podman.podman("rm", "-f", "-t", "0", name, check=False)
        policy.unlink(missing_ok=True)


def test_cancel_over_the_wire_closes_the_engine_stream(podman: PodmanService) -> None:
    """A client that gives up on a followed log (notifications/cancelled) ends the handler in the worker, which
    closes its stream to the engine: seen through a recording proxy in front of the engine's socket."""
    from test_containers_podman import SocketProxy

    name = unique()
    BUILD.mkdir(parents=True, exist_ok=True)
    folder = BUILD / f"containers-proxy-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    proxy = SocketProxy(folder / "engine.sock", podman.sock)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(WAIT)
    podman.podman("run", "-d", "--name", name, IMAGE, "sh", "-c",
                  "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.05; done")

    def follows() -> list[Any]:
        return [c for c in list(proxy.conns) if b"/logs?" in c.sent and b"follow=1" in c.sent]

    async def main(url: str) -> None:
        async with Client(url, mode="legacy", read_timeout_seconds=WAIT) as c:
            first = anyio.Event()
            scopes: list[anyio.CancelScope] = []

            async def on_line(p: float, total: float | None, message: str | None) -> None:
                first.set()

            async def follow() -> None:
                with anyio.CancelScope() as scope:
                    scopes.append(scope)
                    await c.call_tool("container.logs", {"container": name, "follow": True, "tail": 0},
                                      progress_callback=on_line)
                    raise AssertionError("the follow ended by itself")

            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                with anyio.fail_after(WAIT):
                    await first.wait()
                streams = follows()
                assert len(streams) == 1 and not streams[0].closed
                scopes[0].cancel()
            with anyio.fail_after(WAIT):
                while not streams[0].closed:
                    await anyio.sleep(0.05)
            after = await c.call_tool("container.logs", {"container": name, "tail": 1})
            assert (after.structured_content or {}).get("lines") == 1

    try:
        with serving(podman, MCP_EDGE_CONTAINERS_HOST=f"unix://{proxy.path}") as url:
            run(lambda: main(url))
    finally:
        podman.podman("rm", "-f", "-t", "0", name, check=False)
        asyncio.run_coroutine_threadsafe(proxy.stop(), loop).result(WAIT)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(WAIT)
        shutil.rmtree(folder, ignore_errors=True)
