"""Every tool of the kubernetes plugin called once on its Podman backend against a private real Podman.

Run: ``.venv/bin/python tools/demo/kubernetes_calls.py``. It starts the tests' PodmanService (its own storage and
socket under build/, the local image localhost/busybox:latest; nothing is pulled), loads plugins/kubernetes
through a real plugin Registry (in this process, backend podman, allow_destructive on), calls each tool with real
arguments, reads and follows one ``k8s://`` watch resource, and prints ``tool -> short result``. Everything it
made is removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_common import ROOT, Demo, demo_settings, podman_service

from mcp_edge.plugin import DefaultPluginContext, Registry
from mcp_edge.plugin.types import TextResourceContents

IMAGE = podman_service.IMAGE
MANIFEST = f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: web-config}}
data: {{greeting: hello from the ConfigMap}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: web-data}}
spec: {{accessModes: [ReadWriteOnce], resources: {{requests: {{storage: 1Gi}}}}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, labels: {{app: web}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: main
        image: {IMAGE}
        command: ["sh", "-c", "echo $GREETING; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done"]
        env:
        - name: GREETING
          valueFrom: {{configMapKeyRef: {{name: web-config, key: greeting}}}}
        volumeMounts: [{{name: data, mountPath: /data}}]
      volumes: [{{name: data, persistentVolumeClaim: {{claimName: web-data}}}}]
"""




class Progress:
    """A request context for the demo: keeps progress notifications; cancelled after ``cancel_after`` of them."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.messages: list[str] = []
        self.cancel_after = cancel_after

    @property
    def cancelled(self) -> bool:
        return self.cancel_after is not None and len(self.messages) >= self.cancel_after

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.messages.append(message or "")

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        return None




def _pods(status: dict[str, Any]) -> str:
    return ", ".join(f"{p['name']} {p['phase']}" for p in status.get("pods", [])) or "no pod"


async def main() -> None:
    # the plugin runs in this process for the demo: the registry's note that its [sandbox] then does not apply
    logging.getLogger("mcp_edge.plugin").setLevel(logging.ERROR)
    service = podman_service.PodmanService().start()
    data_dir = service.dir / "mcp-edge-data"
    data_dir.mkdir()
    settings = demo_settings(data_dir)
    updates: list[str] = []

    async def updated(uri: str) -> None:
        updates.append(uri)

    config = {"kubernetes": {"backend": "podman", "host": service.host, "allow_destructive": True,
                             "stop_timeout_s": 0}}
    registry = Registry([ROOT / "plugins"], entry_points=False, config=config, enabled=["kubernetes"],
                        isolation={"kubernetes": "inproc"}, settings=settings,
                        context_factory=lambda pid, conf: DefaultPluginContext(
                            pid, settings=settings, config=conf, on_resource_updated=updated))
    await registry.start()
    d = Demo(registry, 220)
    try:
        await d.call("k8s.apply", {"manifest": MANIFEST}, lambda r: "; ".join(
            f"{o['kind']}/{o['name']} {o['action']} ({o['detail']})" for o in r["objects"]))
        await d.call("deployment.rollout_status", {"name": "web", "timeout_s": 60}, lambda r: (
            f"done {r['done']}, failed {r['failed']}: {r['message']}"))
        await d.call("k8s.get", {"kind": "Deployment", "name": "web"}, lambda r: (
            f"{r['uri']}: {r['object']['status']['readyReplicas']}/{r['object']['spec']['replicas']} ready, "
            f"{_pods(r['object']['status'])}"))
        await d.call("k8s.list", {"kind": "pods"}, lambda r: f"{len(r['items'])} pod(s): " + ", ".join(
            f"{i['name']} {i['summary']}" for i in r["items"]))
        for _ in range(100):  # the container writes its first lines as it starts
            got = await registry.call_tool("pod.logs", {"pod": "web"}, None)
            if got.structuredContent and len(got.structuredContent["lines"]) >= 2:
                break
            await asyncio.sleep(0.05)
        follow = Progress(cancel_after=4)
        await d.call("pod.logs", {"pod": "web", "follow": True, "tail": 2}, lambda r: (
            f"{r['pod']}: {r['lines']} (followed, {len(follow.messages)} progress notifications, ended: "
            f"{r['ended']})"), follow)

        contents = await registry.read_resource("k8s://default/Deployment/web", None)
        first = contents[0]
        assert isinstance(first, TextResourceContents)
        obj = json.loads(first.text)
        print(f"resource k8s://default/Deployment/web -> {obj['kind']}/{obj['metadata']['name']}, "
              f"{obj['status']['readyReplicas']} ready; watching Podman's events")
        updates.clear()

        patch = {"spec": {"template": {"spec": {"containers": [
            {"name": "main", "env": [{"name": "MODE", "value": "patched"}]}]}}}}
        await d.call("k8s.patch", {"kind": "Deployment", "name": "web", "patch": patch}, lambda r: (
            "env now " + ", ".join(e["name"] for e in r["object"]["spec"]["template"]["spec"]["containers"][0]["env"])
            + f"; running: MODE={service.podman('exec', 'web-pod-0-main', 'sh', '-c', 'echo $MODE').stdout.strip()}"))
        await d.call("deployment.scale", {"name": "web", "replicas": 0}, lambda r: r["result"])
        await d.call("deployment.scale", {"name": "web", "replicas": 1}, lambda r: r["result"])
        await d.call("deployment.scale", {"name": "web", "replicas": 3}, lambda r: r["result"])
        for _ in range(100):
            if "k8s://default/Deployment/web" in updates:
                break
            await asyncio.sleep(0.05)
        print(f"notifications/resources/updated -> {sorted(set(updates))}")
        await d.call("k8s.apply", {"manifest": MANIFEST.replace("image:", "imagee:")}, lambda r: r)
        await d.call("k8s.patch", {"kind": "Deployment", "name": "web", "patch_type": "merge", "patch": {
            "spec": {"template": {"spec": {"hostNetwork": True}}}}}, lambda r: r)  # refused: allow_host_access off
        await d.call("k8s.delete", {"kind": "Deployment", "name": "web"}, lambda r: (
            f"Deployment/web: {r['result']}; podman pod ps: "
            f"{service.podman('pod', 'ps', '--format', '{{.Name}}').stdout.split() or 'no pods'}"))
        await d.call("k8s.delete", {"kind": "pvc", "name": "web-data"}, lambda r: f"PVC/web-data {r['result']}")
        await d.call("k8s.delete", {"kind": "cm", "name": "web-config"}, lambda r: f"ConfigMap/web-config "
                                                                                   f"{r['result']}")
    finally:
        await registry.stop()
        service.stop()


if __name__ == "__main__":
    asyncio.run(main())
