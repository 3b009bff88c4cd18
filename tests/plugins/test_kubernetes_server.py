"""The kubernetes plugin served by the real server (``python -m mcp_edge.cli serve --stdio``, the plugin in a worker
process as its manifest says) and called with the official MCP SDK client, on the Podman backend."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from ci_honesty import importorskip
from plugin_host import ROOT
from podman_service import IMAGE, PodmanService

mcp = importorskip("mcp", "interop", "the end-to-end test needs the mcp SDK (pip install -e '.[test]')")

from mcp import Client, StdioServerParameters  # noqa: E402

WAIT = 60.0  # only to avoid hangs, never a timing assertion


def server_env(podman: PodmanService, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_EDGE_", "KUBECONFIG", "DOCKER_"))}
    env.update({
        "MCP_EDGE_DATA_DIR": str(data),
        "MCP_EDGE_ENABLED_PLUGINS": "kubernetes",
        "MCP_EDGE_KUBERNETES_BACKEND": "podman",
        "MCP_EDGE_KUBERNETES_HOST": podman.host,
        "MCP_EDGE_KUBERNETES_ALLOW_DESTRUCTIVE": "true",
        "MCP_EDGE_KUBERNETES_STOP_TIMEOUT_S": "0",
        "MCP_EDGE_KUBERNETES_MIN_READY_S": "0.5",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def updated_uri(message: Any) -> str | None:
    """The URI of a notifications/resources/updated the client received, else None."""
    root = getattr(message, "root", message)
    if getattr(root, "method", None) != "notifications/resources/updated":
        return None
    params = getattr(root, "params", None)
    return str(getattr(params, "uri", "")) or None


@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")  # resources/subscribe: handshake era, still served
def test_served_in_a_worker_with_the_sdk(podman: PodmanService, workdir: Path) -> None:
    name = f"srv-{uuid.uuid4().hex[:8]}"
    uri = f"k8s://default/Deployment/{name}"
    manifest = f"""apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - {{name: main, image: {IMAGE}, command: ["sh", "-c", "echo served; sleep 1000"]}}
"""
    updates: list[str] = []

    async def on_message(message: Any) -> None:
        u = updated_uri(message)
        if u is not None:
            updates.append(u)

    async def main() -> None:
        params = StdioServerParameters(command=sys.executable, args=["-m", "mcp_edge.cli", "serve", "--stdio", "-q"],
                                       env=server_env(podman, workdir), cwd=str(ROOT))
        async with Client(params, mode="legacy", read_timeout_seconds=WAIT, message_handler=on_message) as c:
            status = json.loads((await c.read_resource("mcp-edge://plugins")).contents[0].text)  # type: ignore[union-attr]
            mine = [p for p in (status["plugins"] if isinstance(status, dict) else status) if p["id"] == "kubernetes"]
            assert mine[0]["isolation"] == "process" and mine[0]["state"] == "active", mine
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert {"k8s.apply", "k8s.get", "k8s.list", "k8s.patch", "k8s.delete", "pod.logs", "deployment.scale",
                    "deployment.rollout_status"} <= set(tools)
            assert tools["k8s.get"].annotations is not None and tools["k8s.get"].annotations.read_only_hint
            assert tools["k8s.delete"].annotations is not None and tools["k8s.delete"].annotations.destructive_hint
            assert tools["k8s.apply"].output_schema is not None

            applied = await c.call_tool("k8s.apply", {"manifest": manifest})
            assert not applied.is_error, applied
            assert applied.structured_content is not None
            assert applied.structured_content["objects"][0]["action"] == "created"
            rollout = await c.call_tool("deployment.rollout_status", {"name": name, "timeout_s": WAIT})
            assert rollout.structured_content is not None and rollout.structured_content["done"], rollout

            templates = (await c.list_resource_templates()).resource_templates
            assert "k8s://{namespace}/{kind}/{name}" in {t.uri_template for t in templates}
            read = await c.read_resource(uri)
            obj = json.loads(read.contents[0].text)  # type: ignore[union-attr]
            assert obj["status"]["readyReplicas"] == 1
            await c.subscribe_resource(uri)

            lines: list[str] = []
            with anyio.fail_after(WAIT):
                while not lines:  # the container writes its line as it starts
                    logs = await c.call_tool("pod.logs", {"pod": name})
                    assert logs.structured_content is not None, logs
                    lines = logs.structured_content["lines"]
            assert lines == ["served"]

            # follow: the line comes as a progress notification; the client then cancels the call
            seen: list[str | None] = []
            got_line = anyio.Event()

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                seen.append(message)
                got_line.set()

            async def follow() -> None:
                await c.call_tool("pod.logs", {"pod": name, "follow": True}, progress_callback=on_progress)

            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(follow)
                    await got_line.wait()
                    tg.cancel_scope.cancel()
            assert seen[0] == "served"

            # a change made outside (the container stopped with the CLI) reaches the subscriber from the worker's
            # event-following task
            updates.clear()
            podman.podman("stop", "-t", "0", f"{name}-pod-0-main")
            with anyio.fail_after(WAIT):
                while uri not in updates:
                    await anyio.sleep(0.02)
            updates.clear()
            scaled = await c.call_tool("deployment.scale", {"name": name, "replicas": 0})
            assert not scaled.is_error, scaled
            with anyio.fail_after(WAIT):
                while uri not in updates:
                    await anyio.sleep(0.02)
            assert f"{name}-pod-0" not in podman.podman("pod", "ps", "--format", "{{.Name}}").stdout.split()

            bad = await c.call_tool("k8s.apply", {"manifest": manifest.replace("image:", "imag:")})
            assert bad.is_error and "document 1 (Deployment/" in bad.content[0].text  # type: ignore[union-attr]
            deleted = await c.call_tool("k8s.delete", {"kind": "Deployment", "name": name})
            assert not deleted.is_error, deleted

    async def bounded() -> None:
        with anyio.fail_after(3 * WAIT):
            await main()

    anyio.run(bounded)
