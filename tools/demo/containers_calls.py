"""Every tool of the containers plugin called once against a private real Podman, one line per tool.

Run: ``.venv/bin/python tools/demo/containers_calls.py``. It starts the tests' PodmanService (its own storage
and socket under build/, the local image localhost/busybox:latest; nothing is pulled), loads plugins/containers
through a real plugin Registry (in this process, allow_destructive on), calls each tool with real arguments,
reads one container's resource, and prints ``tool -> short result``. Everything it made is removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_common import ROOT, Demo, demo_settings, podman_service

from mcp_edge.plugin import DefaultPluginContext, Registry
from mcp_edge.plugin.types import TextResourceContents

WEB, NET, COPY = "demo-web", "demo-net", "localhost/busybox-copy:demo"




def _mib(n: int | None) -> str:
    return "?" if n is None else f"{n / (1 << 20):.1f} MiB"




async def main() -> None:
    # the plugin runs in this process for the demo: the registry's note that its [sandbox] then does not apply
    logging.getLogger("mcp_edge.plugin").setLevel(logging.ERROR)
    service = podman_service.PodmanService().start()
    data_dir = service.dir / "mcp-edge-data"
    data_dir.mkdir()
    settings = demo_settings(data_dir)
    config = {"containers": {"host": service.host, "allow_destructive": True}}
    registry = Registry([ROOT / "plugins"], entry_points=False, config=config, enabled=["containers"],
                        isolation={"containers": "inproc"}, settings=settings,
                        context_factory=lambda pid, conf: DefaultPluginContext(pid, settings=settings, config=conf))
    await registry.start()
    d = Demo(registry, 200)
    try:
        await d.call("image.list", {}, lambda r: f"{r['total']} image(s): " + ", ".join(
            f"{', '.join(i['tags'])} ({_mib(i['size'])})" for i in r["images"]))
        await d.call("image.inspect", {"image": podman_service.IMAGE}, lambda r: (
            f"{r['RepoTags'][0]} {r['Id'][:19]} {r.get('Os')}/{r.get('Architecture')} cmd {r['Config'].get('Cmd')}"))
        await d.call("image.pull", {"image": "localhost:1/nothing:latest"}, lambda r: r)
        await d.call("network.create", {"name": NET, "labels": {"demo": "1"}}, lambda r: f"{r['name']} {r['id'][:12]}")
        await d.call("container.create", {
            "image": podman_service.IMAGE, "name": WEB, "labels": {"demo": "1"},
            "command": ["sh", "-c", "echo serving on :8080; echo 'no config, using defaults' >&2; exec sleep 600"]},
            lambda r: f"{r['name']} {r['id'][:12]} (started: {r['started']})")
        await d.call("container.start", {"container": WEB}, lambda r: f"{r['name']} {r['state']}")
        await d.call("container.list", {}, lambda r: f"{r['total']} container(s): " + ", ".join(
            f"{c['name']} {c['state']} {c['image']}" for c in r["containers"]))
        await d.call("container.inspect", {"container": WEB}, lambda r: (
            f"{r['Name'].lstrip('/')}: {r['State']['Status']}, pid {r['State']['Pid']}, cmd {r['Config']['Cmd']}"))
        for _ in range(100):  # the container writes its two lines as it starts
            got = await registry.call_tool("container.logs", {"container": WEB}, None)
            if got.structuredContent and got.structuredContent["stdout"] and got.structuredContent["stderr"]:
                break
            await asyncio.sleep(0.05)
        await d.call("container.logs", {"container": WEB}, lambda r: f"stdout {r['stdout']}, stderr {r['stderr']}")
        await d.call("container.exec", {"container": WEB, "command": ["sh", "-c", "echo $((6 * 7)); ls /bin | wc -l"]},
                     lambda r: f"exit {r['exit_code']}, stdout {r['stdout']!r}, stderr {r['stderr']!r}")
        await d.call("container.stats", {"container": WEB}, lambda r: (
            f"cpu {r.get('cpu_percent')}%, memory {_mib(r.get('memory_usage'))} of {_mib(r.get('memory_limit'))}, "
            f"pids {r.get('pids')}, net rx/tx {r.get('net_rx_bytes')}/{r.get('net_tx_bytes')} B, "
            f"not given: {', '.join(r['missing']) or 'none'}"))
        await d.call("network.connect", {"network": NET, "container": WEB},
                     lambda r: f"{r['container']} on {r['network']}")
        await d.call("network.inspect", {"network": NET}, lambda r: (
            f"{r['Name']} {r['Driver']} subnet {r['IPAM']['Config'][0].get('Subnet')}, containers "
            f"{[c['Name'] for c in (r.get('Containers') or {}).values()]}"))
        await d.call("network.list", {}, lambda r: f"{r['total']} network(s): " + ", ".join(
            f"{n['name']} ({len(n['containers'])} connected)" for n in r["networks"]))
        contents = await registry.read_resource(f"docker://containers/{WEB}", None)
        first = contents[0]
        assert isinstance(first, TextResourceContents)
        res = json.loads(first.text)
        print(f"resource docker://containers/{WEB} -> state {res['state']['Status']}, image {res['image']}, "
              f"cmd {res['config']['Cmd']}")
        await d.call("container.stop", {"container": WEB, "timeout_s": 1}, lambda r: (
            f"{r['name']} {r['state']} (exit {r['exit_code']})"))
        await d.call("container.restart", {"container": WEB, "timeout_s": 1}, lambda r: f"{r['name']} {r['state']}")
        await d.call("container.remove", {"container": WEB, "force": True}, lambda r: f"removed {r['removed']}")
        await d.call("network.remove", {"network": NET}, lambda r: f"removed {r['removed']}")
        service.podman("tag", podman_service.IMAGE, COPY)
        await d.call("image.remove", {"image": COPY}, lambda r: f"untagged {r['untagged']}, deleted {r['deleted']}")
        service.podman("create", "--name", "demo-scratch", podman_service.IMAGE, "true")
        service.podman("commit", "-q", "demo-scratch")  # an untagged (dangling) image for prune
        service.podman("rm", "demo-scratch")
        await d.call("image.prune", {}, lambda r: (
            f"deleted {len(r['deleted'])} image(s) {[x[:12] for x in r['deleted']]}, "
            f"reclaimed {_mib(r['space_reclaimed'])}"))
    finally:
        await registry.stop()
        service.stop()


if __name__ == "__main__":
    asyncio.run(main())
