"""The Podman backend: Kubernetes objects run by ``podman kube play`` on a box without a cluster.

Podman's libpod REST API (on the engine socket) plays a YAML (``POST /libpod/play/kube``), takes it down
(``DELETE /libpod/play/kube``) and writes YAML for a running pod (``GET /libpod/generate/kube``). What Podman
4.3.1 does with each kind, seen on the test engine:

- **Pod** ``<name>``: a pod ``<name>`` with an infra container and one container ``<name>-<container>`` each.
- **Deployment** ``<name>``: ``spec.replicas`` pods ``<name>-pod-0``, ``<name>-pod-1``... (0 replicas: none).
- **PersistentVolumeClaim** ``<name>``: a named volume ``<name>``; playing it again fails ("volume already
  exists") and ``kube down`` leaves it: it is removed here with ``DELETE /libpod/volumes/<name>``.
- **ConfigMap**: refused when played alone ("not a standalone object"); Podman reads it only from the same YAML
  as a workload that references it. So ConfigMaps are kept here and sent with every workload played.
- Anything else (Service, StatefulSet, Job, ...): "YAML document does not contain any supported kube kind";
  Secret is played as a Podman secret, which this backend does not do (it would keep secrets in its folder).
  Such kinds are refused here, before anything is sent.

Podman keeps no Kubernetes objects, so the backend keeps the last-applied manifest of each object it applied
(``podman-objects.json`` in the plugin's data folder, written atomically, bounded by ``max_objects``); state is
always read live from Podman. Podman has no namespaces: only the configured namespace (``default``) exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import AsyncGenerator
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from kube_backend import (
    Applied,
    BackendError,
    Kind,
    LineCutter,
    Notify,
    Rollout,
    Validate,
    object_uri,
    parse_selector,
)
from kube_patch import PatchError, json_patch, merge_patch, strategic_merge

from mcp_edge.engine_api import Conflict, EngineClient, EngineError, FrameDecoder, JsonLines, NotFound, normalize_event

__all__ = ["PODMAN_KINDS", "PodmanBackend", "Store"]

log = logging.getLogger("mcp_edge.plugins.kubernetes")

PODMAN_KINDS = ("Pod", "Deployment", "ConfigMap", "PersistentVolumeClaim")
STORE_VERSION = 1


class Store:
    """The last-applied manifests, by ``Kind/name``, in one JSON file replaced atomically on each change.

    The file is at most ``max_store_bytes`` (a put that would pass it is refused); it is written in a thread, one
    write at a time and in the order of the changes (a write that a later one makes stale is skipped)."""

    def __init__(self, path: Path, max_objects: int, max_store_bytes: int = 16 << 20) -> None:
        self.path = path
        self.max_objects = max_objects
        self.max_store_bytes = max_store_bytes
        self.objects: dict[str, dict[str, Any]] = {}
        self._sizes: dict[str, int] = {}  # the JSON size of each entry, for the file's size without writing it
        self._changes = 0  # changes made, and those written
        self._written = 0
        self._save_lock = asyncio.Lock()
        self._writing: asyncio.Future[None] | None = None
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as exc:
            bad = self.path.with_suffix(".bad")
            with contextlib.suppress(OSError):
                os.replace(self.path, bad)
            log.warning("kubernetes: %s is unreadable (%s); moved to %s, starting with no stored manifests",
                        self.path, exc, bad)
            return
        if isinstance(data, dict) and data.get("version") == STORE_VERSION and isinstance(data.get("objects"), dict):
            self.objects = {str(k): v for k, v in data["objects"].items() if isinstance(v, dict)}
            self._sizes = {k: _entry_size(k, v) for k, v in self.objects.items()}

    @property
    def size(self) -> int:
        """About the size of the file in bytes (the entries' JSON and the frame around them)."""
        return 64 + sum(self._sizes.values())

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        entry = self.objects.get(f"{kind}/{name}")
        return copy.deepcopy(entry["manifest"]) if entry else None

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(e["manifest"]) for k, e in sorted(self.objects.items()) if k.startswith(kind + "/")]

    def room_for(self, kind: str, name: str, batch: list[tuple[str, str]] | None = None) -> None:
        """BackendError unless ``Kind/name`` can be kept, with the other new objects of ``batch`` kept too."""
        new = {f"{k}/{n}" for k, n in (batch or [(kind, name)])} | {f"{kind}/{name}"}
        new -= self.objects.keys()
        if f"{kind}/{name}" in new and len(self.objects) + len(new) > self.max_objects:
            raise BackendError(f"the Podman backend keeps at most {self.max_objects} objects (max_objects): it keeps "
                               f"{len(self.objects)} and this apply adds {len(new)}; delete some, or raise "
                               f"max_objects")

    def bytes_for(self, manifests: list[dict[str, Any]]) -> None:
        """BackendError unless the store, with ``manifests`` kept (replacing those of the same Kind/name), stays
        within max_store_bytes."""
        sizes = dict(self._sizes)
        for m in manifests:
            key = f"{m['kind']}/{m['metadata']['name']}"
            sizes[key] = _entry_size(key, {"manifest": m, "applied_at": 0.0})
        total = 64 + sum(sizes.values())
        if total > self.max_store_bytes:
            raise BackendError(f"the Podman backend's manifest store would grow to about {total} bytes, more than "
                               f"max_store_bytes ({self.max_store_bytes}; it holds {self.size} now): delete objects "
                               f"it keeps, or raise max_store_bytes")

    async def put(self, kind: str, name: str, manifest: dict[str, Any]) -> None:
        key = f"{kind}/{name}"
        entry = {"manifest": copy.deepcopy(manifest), "applied_at": time.time()}
        size = _entry_size(key, entry)
        total = self.size - self._sizes.get(key, 0) + size
        if total > self.max_store_bytes:
            raise BackendError(f"{key}: the Podman backend's manifest store would grow to about {total} bytes, more "
                               f"than max_store_bytes ({self.max_store_bytes}): delete objects it keeps, or raise "
                               f"max_store_bytes")
        self.objects[key] = entry
        self._sizes[key] = size
        await self._save()

    async def drop(self, kind: str, name: str) -> None:
        key = f"{kind}/{name}"
        if self.objects.pop(key, None) is not None:
            self._sizes.pop(key, None)
            await self._save()

    async def _save(self) -> None:
        """Write the store as it is now, in a thread; writes never overlap and land in the order of the changes."""
        self._changes += 1
        async with self._save_lock:
            if self._writing is not None and not self._writing.done():  # one whose caller was cancelled
                await asyncio.wait([self._writing])
            if self._written >= self._changes:
                return  # a write that began after this change already holds it
            upto = self._changes
            snapshot = dict(self.objects)  # entries are replaced, never changed: a shallow copy is a snapshot
            self._writing = asyncio.ensure_future(asyncio.to_thread(self._write, snapshot))
            await asyncio.shield(self._writing)
            self._written = max(self._written, upto)

    def _write(self, objects: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"version": STORE_VERSION, "objects": objects}, sort_keys=True)
        fd, tmp = tempfile.mkstemp(prefix=".objects-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _entry_size(key: str, entry: dict[str, Any]) -> int:
    """The bytes ``"key": entry,`` takes in the store's file."""
    return len(json.dumps(key)) + len(json.dumps(entry, sort_keys=True).encode()) + 4


def _dump(*objs: dict[str, Any]) -> bytes:
    return yaml.safe_dump_all(list(objs), sort_keys=False).encode()


def _replicas(obj: dict[str, Any]) -> int:
    spec = obj.get("spec") or {}
    r = spec.get("replicas")
    return 1 if r is None else int(r)


class PodmanBackend:
    """Kubernetes objects on Podman (see the module docstring)."""

    name = "podman"

    def __init__(self, host: str, data_dir: Path, *, namespace: str, max_objects: int, max_replicas: int,
                 stop_timeout: int, timeout: float, network: str = "", min_ready: float = 1.0,
                 max_store_bytes: int = 16 << 20) -> None:
        self.host = host
        self.min_ready = min_ready
        self.network = network
        self.namespace = namespace
        self.default_namespace = namespace
        self.max_replicas = max_replicas
        self.stop_timeout = stop_timeout
        self.client = EngineClient(host, timeout=timeout)
        self.store = Store(data_dir / "podman-objects.json", max_objects, max_store_bytes)
        self._connected = False
        self._lock = asyncio.Lock()  # one change at a time: a play and a down of the same pod must not interleave
        self._watch: asyncio.Task[None] | None = None
        self._following = asyncio.Event()  # set while the event stream is open
        self._notify: Notify | None = None

    # -- plumbing ------------------------------------------------------------------------------------------------

    async def _engine(self) -> EngineClient:
        if not self._connected:
            try:
                await self.client.connect()
            except EngineError as exc:
                raise BackendError(f"the Podman backend cannot reach Podman at {self.host}: {exc}") from None
            if self.client.flavor != "podman":
                raise BackendError(f"{self.host} is {self.client.flavor}, not Podman: the Podman backend needs "
                                   f"Podman's libpod API (kube play); set host to Podman's socket")
            self._connected = True
        return self.client

    def _ns(self, namespace: str) -> None:
        if namespace and namespace != self.namespace:
            raise BackendError(f"namespace {namespace!r}: Podman has no namespaces; the Podman backend serves only "
                               f"{self.namespace!r} (the namespace config key)")

    def _supported(self, kind: str) -> None:
        if kind not in PODMAN_KINDS:
            raise BackendError(f"kind {kind} cannot run on the Podman backend: Podman's kube play runs "
                               f"{', '.join(PODMAN_KINDS)} only (use a Kubernetes API server for {kind})")

    async def _play(self, obj: dict[str, Any]) -> Any:
        engine = await self._engine()
        body = _dump(obj, *self.store.of_kind("ConfigMap")) if obj["kind"] != "PersistentVolumeClaim" \
            else _dump(obj)
        try:
            report = await engine.request("POST", "/play/kube", content=body, libpod=True,
                                          headers={"Content-Type": "application/yaml"},
                                          params={"start": True, "network": self.network or None})
        except EngineError as exc:
            raise BackendError(f"Podman refused {obj['kind']}/{obj['metadata']['name']}: {exc.message}") from None
        for pod in (report or {}).get("Pods") or []:
            errs = pod.get("ContainerErrors")
            if errs:
                raise BackendError(f"Podman played {obj['kind']}/{obj['metadata']['name']} but containers failed: "
                                   f"{'; '.join(map(str, errs))}")
        return report

    async def _pod_names(self, kind: str, name: str) -> list[str]:
        """The Podman pods of a Pod or Deployment that exist now."""
        engine = await self._engine()
        pods = await engine.request("GET", "/pods/json", libpod=True) or []
        if kind == "Pod":
            return [p["Name"] for p in pods if p.get("Name") == name]
        rx = re.compile(rf"^{re.escape(name)}-pod-\d+$")
        return sorted((p["Name"] for p in pods if rx.match(str(p.get("Name")))), key=lambda n: int(n.rsplit("-", 1)[1]))

    async def _down(self, kind: str, name: str, manifest: dict[str, Any] | None) -> None:
        """Take the pods of a workload down: stopped within ``stop_timeout``, ``kube down`` with its manifest, then
        any pod of it left over removed."""
        engine = await self._engine()
        pods = await self._pod_names(kind, name)
        for pod in pods:
            with contextlib.suppress(NotFound, Conflict):
                if self.stop_timeout > 0:
                    await engine.request("POST", f"/pods/{engine.quote(pod)}/stop", libpod=True,
                                         params={"t": self.stop_timeout})
                else:  # Podman 4.3 reads t=0 as "the default" (10 s): kill instead
                    await engine.request("POST", f"/pods/{engine.quote(pod)}/kill", libpod=True,
                                         params={"signal": "KILL"})
        if manifest is not None and pods:
            try:
                await engine.request("DELETE", "/play/kube", content=_dump(manifest), libpod=True,
                                     headers={"Content-Type": "application/yaml"})
            except EngineError as exc:
                log.info("kubernetes: kube down of %s/%s: %s (removing its pods one by one)", kind, name, exc)
        for pod in await self._pod_names(kind, name):
            try:
                await engine.request("DELETE", f"/pods/{engine.quote(pod)}", libpod=True, params={"force": True})
            except NotFound:
                pass
            except EngineError as exc:
                raise BackendError(f"Podman could not remove pod {pod} of {kind}/{name}: {exc.message}") from None

    # -- apply ---------------------------------------------------------------------------------------------------

    async def check(self, obj: dict[str, Any], namespace: str, batch: list[dict[str, Any]] | None = None) -> None:
        """BackendError for what this backend cannot run (checked for every document before any is sent)."""
        kind, name = obj["kind"], obj["metadata"]["name"]
        self._supported(kind)
        self._ns(namespace)
        self._ns(str(obj["metadata"].get("namespace") or ""))
        if kind == "Deployment" and _replicas(obj) > self.max_replicas:
            raise BackendError(f"Deployment/{name}: {_replicas(obj)} replicas; the Podman backend runs at most "
                               f"{self.max_replicas} (max_replicas): Podman plays each replica as a pod on this one "
                               f"box")
        self.store.room_for(kind, name, [(o["kind"], o["metadata"]["name"]) for o in batch or [obj]])
        self.store.bytes_for(batch or [obj])
        if kind in ("Pod", "Deployment") and self.store.get(kind, name) is None:
            pods = await self._pod_names(kind, name)
            if pods:
                raise BackendError(f"{kind}/{name}: Podman already runs pod {pods[0]}, which this plugin did not "
                                   f"create; delete it first (k8s.delete kind=Pod name={pods[0]})")

    async def apply(self, obj: dict[str, Any], namespace: str) -> Applied:
        await self.check(obj, namespace)
        obj = copy.deepcopy(obj)
        obj["metadata"].pop("namespace", None)
        kind, name = obj["kind"], obj["metadata"]["name"]
        async with self._lock:
            prev = self.store.get(kind, name)
            ns = self.namespace
            if kind == "ConfigMap":
                await self.store.put(kind, name, obj)
                action = "created" if prev is None else ("unchanged" if prev == obj else "configured")
                detail = "kept for the workloads that reference it (Podman reads ConfigMaps only with a workload)"
                if action == "configured":  # the workloads that read it start again with the new values
                    users = [(k, m) for k in ("Deployment", "Pod") for m in self.store.of_kind(k)
                             if _references(m, name)]
                    for k, m in users:
                        await self._run(k, m["metadata"]["name"], m, m)
                    if users:
                        detail = "re-played " + ", ".join(f"{k}/{m['metadata']['name']}" for k, m in users)
                return Applied(kind, name, ns, action, detail)
            if kind == "PersistentVolumeClaim":
                engine = await self._engine()
                try:
                    await engine.request("GET", f"/volumes/{engine.quote(name)}/json", libpod=True)
                    exists = True
                except NotFound:
                    exists = False
                if not exists:
                    await self._play(obj)
                await self.store.put(kind, name, obj)
                if exists:
                    return Applied(kind, name, ns, "unchanged" if prev == obj else "configured",
                                   f"volume {name} exists (Podman volumes cannot be resized)")
                return Applied(kind, name, ns, "created", f"volume {name}")
            pods = await self._pod_names(kind, name)
            if prev == obj and len(pods) == (_replicas(obj) if kind == "Deployment" else 1):
                return Applied(kind, name, ns, "unchanged", self._pods_text(pods))
            pods = await self._run(kind, name, obj, prev)
        await self._notify_object(kind, name)
        return Applied(kind, name, ns, "created" if prev is None else "configured", self._pods_text(pods))

    async def _run(self, kind: str, name: str, obj: dict[str, Any], prev: dict[str, Any] | None) -> list[str]:
        """Replace what runs for a workload (``prev``, None if nothing) by ``obj`` and keep it; when Podman refuses
        ``obj``, what it left is removed and ``prev`` is played again before the error is raised."""
        await self._down(kind, name, prev)
        if kind == "Pod" or _replicas(obj) > 0:
            try:
                await self._play(obj)
            except BackendError:
                with contextlib.suppress(BackendError):
                    await self._down(kind, name, obj)
                    if prev is not None and (prev["kind"] == "Pod" or _replicas(prev) > 0):
                        await self._play(prev)
                raise
        await self.store.put(kind, name, obj)
        return await self._pod_names(kind, name)

    @staticmethod
    def _pods_text(pods: list[str]) -> str:
        return f"pod{'s' if len(pods) != 1 else ''} {', '.join(pods)}" if pods else "no pod (0 replicas)"

    # -- read ----------------------------------------------------------------------------------------------------

    async def _pod_status(self, pod: str, min_ready: float | None = None) -> dict[str, Any]:
        """A pod's live state: phase, Podman's status and each container's state, exit code, restarts and how
        long it has run; ``ready`` once every container has run for ``min_ready`` seconds (default: the
        ``min_ready_s`` key), so that a container that exits at once is not counted ready while it starts."""
        wait = self.min_ready if min_ready is None else min_ready
        engine = await self._engine()
        try:
            info = await engine.request("GET", f"/pods/{engine.quote(pod)}/json", libpod=True)
        except NotFound:
            return {"name": pod, "phase": "Missing", "podmanStatus": "missing", "containers": []}
        containers: list[dict[str, Any]] = []
        infra = info.get("InfraContainerID")
        for c in info.get("Containers") or []:
            if c.get("Id") == infra:
                continue
            try:
                ci = await engine.request("GET", f"/containers/{c['Id']}/json", libpod=True)
                state = ci.get("State") or {}
            except NotFound:
                state = {}
            cname = str(c.get("Name") or "")
            containers.append({
                "name": cname[len(pod) + 1:] if cname.startswith(pod + "-") else cname,
                "podmanName": cname,
                "state": str(state.get("Status") or c.get("State") or "unknown"),
                "exitCode": int(state.get("ExitCode") or 0),
                "restarts": int(ci.get("RestartCount") or 0) if state else 0,
                "error": str(state.get("Error") or ""),
                "runningFor": _age(str(state.get("StartedAt") or "")) if state.get("Status") == "running" else None,
            })
        status = str(info.get("State") or "")
        running = bool(containers) and all(c["state"] == "running" for c in containers)
        ready = running and all((c["runningFor"] or 0.0) >= wait for c in containers)
        if running:
            phase = "Running"
        elif containers and all(c["state"] in ("exited", "stopped") for c in containers):
            phase = "Succeeded" if all(c["exitCode"] == 0 for c in containers) else "Failed"
        else:
            phase = "Pending"
        return {"name": pod, "phase": phase, "podmanStatus": status, "id": info.get("Id", ""),
                "containers": containers, "ready": ready}

    async def _status(self, kind: str, name: str, manifest: dict[str, Any]) -> dict[str, Any]:
        engine = await self._engine()
        if kind == "Pod":
            st = await self._pod_status(name)
            return {"phase": st["phase"], "podman": st}
        if kind == "Deployment":
            pods = [await self._pod_status(p) for p in await self._pod_names(kind, name)]
            ready = sum(1 for p in pods if p["ready"])
            return {"replicas": len(pods), "readyReplicas": ready, "availableReplicas": ready,
                    "desiredReplicas": _replicas(manifest), "pods": pods}
        if kind == "PersistentVolumeClaim":
            try:
                vol = await engine.request("GET", f"/volumes/{engine.quote(name)}/json", libpod=True)
                return {"phase": "Bound", "volume": {"name": vol.get("Name"), "mountpoint": vol.get("Mountpoint"),
                                                     "driver": vol.get("Driver")}}
            except NotFound:
                return {"phase": "Lost", "volume": None}
        return {}

    async def get(self, kind: Kind, namespace: str, name: str, api_version: str | None) -> dict[str, Any]:
        self._ns(namespace)
        self._supported(kind.kind)
        manifest = self.store.get(kind.kind, name)
        managed = manifest is not None
        if manifest is None and kind.kind == "Pod":
            manifest = await self._generate(name)
        if manifest is None and kind.kind == "PersistentVolumeClaim":
            engine = await self._engine()
            with contextlib.suppress(NotFound):
                await engine.request("GET", f"/volumes/{engine.quote(name)}/json", libpod=True)
                manifest = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}}
        if manifest is None:
            raise BackendError(f"{kind.kind}/{name} not found on the Podman backend (namespace {self.namespace})")
        manifest.setdefault("metadata", {})["namespace"] = self.namespace
        manifest["metadata"].setdefault("annotations", {})["mcp-edge/managed"] = "true" if managed else "false"
        status = await self._status(kind.kind, name, manifest)
        if status:
            manifest["status"] = status
        return manifest

    async def _generate(self, pod: str) -> dict[str, Any] | None:
        """``kube generate`` of a pod this backend did not create (None if there is no such pod)."""
        engine = await self._engine()
        try:
            raw = await engine.request("GET", "/generate/kube", libpod=True, params={"names": pod}, raw=True)
        except NotFound:
            return None
        except EngineError as exc:
            if "no such" in exc.message.lower():
                return None
            raise BackendError(f"Podman could not generate YAML for pod {pod}: {exc.message}") from None
        for doc in yaml.safe_load_all(raw):
            if isinstance(doc, dict) and doc.get("kind") == "Pod":
                doc.pop("status", None)
                return doc
        return None

    async def list_objects(self, kind: Kind, namespace: str, selector: str | None, api_version: str | None,
                   limit: int) -> list[dict[str, Any]]:
        self._ns(namespace)
        self._supported(kind.kind)
        want = parse_selector(selector)
        out: list[dict[str, Any]] = []
        names = {m["metadata"]["name"] for m in self.store.of_kind(kind.kind)}
        for m in self.store.of_kind(kind.kind):
            if _labels_match(m, want):
                out.append(m)
        if kind.kind == "Pod":  # and the pods Podman runs that are not objects of ours: Deployment pods, others
            engine = await self._engine()
            deployments = {m["metadata"]["name"] for m in self.store.of_kind("Deployment")}
            for p in await engine.request("GET", "/pods/json", libpod=True) or []:
                pname = str(p.get("Name"))
                if pname in names:
                    continue
                owner = next((d for d in deployments if re.fullmatch(rf"{re.escape(d)}-pod-\d+", pname)), None)
                labels = {str(k): str(v) for k, v in (p.get("Labels") or {}).items()}
                m = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": pname, "labels": labels}}
                if owner:
                    m["metadata"]["ownerReferences"] = [{"kind": "Deployment", "name": owner}]
                if _labels_match(m, want):
                    out.append(m)
        items = []
        for m in out[:limit]:
            name = m["metadata"]["name"]
            status = await self._status(kind.kind, name, m)
            items.append({"kind": kind.kind, "name": name, "namespace": self.namespace,
                          "labels": m["metadata"].get("labels") or {}, "managed": name in names,
                          "summary": _summary(kind.kind, status), "status": status})
        return items

    # -- delete / patch / scale ----------------------------------------------------------------------------------

    async def delete(self, kind: Kind, namespace: str, name: str, api_version: str | None) -> str:
        self._ns(namespace)
        self._supported(kind.kind)
        async with self._lock:
            prev = self.store.get(kind.kind, name)
            engine = await self._engine()
            if kind.kind == "ConfigMap":
                if prev is None:
                    raise BackendError(f"ConfigMap/{name} not found on the Podman backend")
                await self.store.drop(kind.kind, name)
                what = "forgotten (pods already running keep the values they started with)"
            elif kind.kind == "PersistentVolumeClaim":
                try:
                    await engine.request("DELETE", f"/volumes/{engine.quote(name)}", libpod=True)
                except NotFound:
                    if prev is None:
                        raise BackendError(f"PersistentVolumeClaim/{name} not found on the Podman backend") from None
                except EngineError as exc:
                    raise BackendError(f"Podman could not remove volume {name} of PersistentVolumeClaim/{name}: "
                                       f"{exc.message} (delete the workloads that mount it first)") from None
                await self.store.drop(kind.kind, name)
                what = f"volume {name} removed"
            else:
                pods = await self._pod_names(kind.kind, name)
                if prev is None and not pods:
                    raise BackendError(f"{kind.kind}/{name} not found on the Podman backend")
                await self._down(kind.kind, name, prev)
                await self.store.drop(kind.kind, name)
                what = f"{self._pods_text(pods)} removed" if pods else "removed (it ran no pod)"
        await self._notify_object(kind.kind, name)
        return what

    async def patch(self, kind: Kind, namespace: str, name: str, patch: Any, patch_type: str,
                    validate: Validate, api_version: str | None) -> dict[str, Any]:
        self._ns(namespace)
        self._supported(kind.kind)
        current = self.store.get(kind.kind, name)
        if current is None and kind.kind == "Pod":
            current = await self._generate(name)
            if current is not None:
                raise BackendError(f"Pod/{name} was not created by this plugin: apply it first (k8s.get shows the "
                                   f"YAML Podman generates for it)")
        if current is None:
            raise BackendError(f"{kind.kind}/{name} not found on the Podman backend")
        try:
            if patch_type == "json":
                patched = json_patch(current, patch)
            elif patch_type == "merge":
                patched = merge_patch(current, patch)
            else:
                patched = strategic_merge(current, patch)
        except PatchError as exc:
            raise BackendError(f"{kind.kind}/{name}: the {patch_type} patch cannot be applied: {exc}") from None
        if not isinstance(patched, dict) or patched.get("kind") != kind.kind or \
                (patched.get("metadata") or {}).get("name") != name:
            raise BackendError(f"{kind.kind}/{name}: a patch may not change the kind or the name")
        validate(patched)
        await self.apply(patched, namespace)
        return patched

    async def scale(self, namespace: str, name: str, replicas: int) -> str:
        self._ns(namespace)
        if replicas < 0:
            raise BackendError(f"replicas must be 0 or more, got {replicas}")
        if replicas > self.max_replicas:
            raise BackendError(f"Deployment/{name}: {replicas} replicas; the Podman backend runs at most "
                               f"{self.max_replicas} (max_replicas; Podman plays each replica as one more pod on "
                               f"this box)")
        current = self.store.get("Deployment", name)
        if current is None:
            raise BackendError(f"Deployment/{name} not found on the Podman backend")
        before = _replicas(current)
        current.setdefault("spec", {})["replicas"] = replicas
        applied = await self.apply(current, namespace)
        return f"Deployment/{name} scaled from {before} to {replicas} ({applied.detail})"

    async def rollout(self, namespace: str, name: str) -> Rollout:
        self._ns(namespace)
        manifest = self.store.get("Deployment", name)
        if manifest is None:
            raise BackendError(f"Deployment/{name} not found on the Podman backend")
        want = _replicas(manifest)
        wait = max(self.min_ready, float((manifest.get("spec") or {}).get("minReadySeconds") or 0))
        pods = [await self._pod_status(p, wait) for p in await self._pod_names("Deployment", name)]
        ready = sum(1 for p in pods if p["ready"])
        failed = [(p["name"], c) for p in pods for c in p["containers"]
                  if (c["state"] in ("exited", "stopped") and c["exitCode"] != 0) or c["error"] or c["restarts"]]
        if failed:
            pod, c = failed[0]
            if c["restarts"]:
                why = (f"container {c['name']} of pod {pod} keeps exiting: restarted {c['restarts']} times (now "
                       f"{c['state']}" + (f", exit code {c['exitCode']})" if c["exitCode"] else ")"))
            else:
                why = f"container {c['name']} of pod {pod} {c['state']} with exit code {c['exitCode']}"
            if c["error"]:
                why += f": {c['error']}"
            return Rollout(False, True, why, want, ready, pods)
        stopped = [(p["name"], c) for p in pods for c in p["containers"] if c["state"] in ("exited", "stopped")]
        if want == 0 and not pods:
            return Rollout(True, False, f"Deployment/{name} is scaled to 0: no pod runs", 0, 0, pods)
        if ready >= want and len(pods) == want:
            return Rollout(True, False, f"Deployment/{name}: {ready} of {want} pods running", want, ready, pods)
        if stopped and all(p["phase"] in ("Succeeded", "Failed") for p in pods):
            pod, c = stopped[0]
            return Rollout(False, True, f"container {c['name']} of pod {pod} exited with code {c['exitCode']} "
                                        f"(a Deployment's containers must keep running)", want, ready, pods)
        return Rollout(False, False, f"Deployment/{name}: {ready} of {want} pods running", want, ready, pods)

    # -- logs ----------------------------------------------------------------------------------------------------

    async def _container_of(self, pod: str, container: str | None) -> tuple[str, str, str]:
        """(pod, container id, container name) for logs; a Deployment's name stands for its first pod."""
        engine = await self._engine()
        try:
            info = await engine.request("GET", f"/pods/{engine.quote(pod)}/json", libpod=True)
        except NotFound:
            names = await self._pod_names("Deployment", pod) if self.store.get("Deployment", pod) else []
            if not names:
                raise BackendError(f"pod {pod} not found on the Podman backend") from None
            pod = names[0]
            info = await engine.request("GET", f"/pods/{engine.quote(pod)}/json", libpod=True)
        infra = info.get("InfraContainerID")
        found = []
        for c in info.get("Containers") or []:
            if c.get("Id") == infra:
                continue
            cname = str(c.get("Name") or "")
            found.append((c["Id"], cname[len(pod) + 1:] if cname.startswith(pod + "-") else cname, cname))
        if container is not None:
            for cid, short, full in found:
                if container in (short, full):
                    return pod, cid, short
            raise BackendError(f"pod {pod} has no container {container!r}; it has "
                               f"{', '.join(s for _, s, _ in found) or 'none'}")
        if len(found) != 1:
            raise BackendError(f"pod {pod} has {len(found)} containers ({', '.join(s for _, s, _ in found)}): "
                               f"name one with container=")
        return pod, found[0][0], found[0][1]

    async def logs(self, namespace: str, pod: str, container: str | None, tail: int | None,
                   follow: bool, max_line: int, max_bytes: int) -> AsyncGenerator[str, None]:
        self._ns(namespace)
        engine = await self._engine()
        _, cid, _ = await self._container_of(pod, container)
        params: dict[str, Any] = {"stdout": True, "stderr": True, "follow": follow}
        if tail is not None:
            params["tail"] = tail
        decoder = FrameDecoder()
        lines = LineCutter(max_line)  # split as the bytes come; a line without end is cut at max_line
        try:
            async with engine.stream("GET", f"/containers/{cid}/logs", params=params) as resp:
                async for chunk in resp.aiter_raw():
                    for _, payload in decoder.feed(chunk):
                        for line in lines.feed(payload):
                            yield line
        except EngineError as exc:
            raise BackendError(f"Podman could not read the logs of pod {pod}: {exc.message}") from None
        for line in lines.flush():
            yield line

    # -- watch ---------------------------------------------------------------------------------------------------

    async def watch(self, uri_kind: Kind, namespace: str, name: str, notify: Notify) -> None:
        self._ns(namespace)
        self._notify = notify
        if self._watch is None or self._watch.done():
            await self._engine()
            self._following.clear()
            self._watch = asyncio.create_task(self._follow_events(), name="kubernetes-podman-events")
        # changes from now on reach subscribers: wait until the stream is open (or give up at the timeout)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._following.wait(), self.client.timeout)

    async def _notify_object(self, kind: str, name: str) -> None:
        if self._notify is not None:
            await self._notify(object_uri(self.namespace, kind, name))

    def _owners(self, pod: str) -> list[tuple[str, str]]:
        """The objects a Podman pod (or a container name) belongs to."""
        out = []
        for m in self.store.of_kind("Pod"):
            n = m["metadata"]["name"]
            if pod == n or pod.startswith(n + "-"):
                out.append(("Pod", n))
        for m in self.store.of_kind("Deployment"):
            d = m["metadata"]["name"]
            hit = re.match(rf"^({re.escape(d)}-pod-\d+)(-|$)", pod)
            if hit:
                out += [("Deployment", d), ("Pod", hit.group(1))]
        return out

    async def _follow_events(self) -> None:
        """Podman's event stream, for ever: each pod or container event notifies the objects it belongs to."""
        delay = 1.0
        while True:
            try:
                engine = await self._engine()
                lines = JsonLines()
                async with engine.stream("GET", "/events", libpod=True,
                                         params={"stream": True,
                                                 "filters": {"type": ["pod", "container"]}}) as resp:
                    delay = 1.0
                    self._following.set()
                    async for chunk in resp.aiter_raw():
                        seen: set[tuple[str, str]] = set()
                        for raw in lines.feed(chunk):
                            try:
                                ev = normalize_event(raw)
                            except EngineError:
                                continue
                            seen.update(self._owners(ev.name))
                        for kind, name in sorted(seen):
                            await self._notify_object(kind, name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the engine went away: follow again once it is back
                log.info("kubernetes: Podman's event stream ended (%s); following again in %.0f s", exc, delay)
            self._following.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def aclose(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch
            self._watch = None
        await self.client.aclose()


def _age(started: str) -> float | None:
    """Seconds since an RFC 3339 time as Podman writes it (nanoseconds, Z or an offset); None if unreadable."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", started.strip())
    if m is None:
        return None
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        when = datetime.fromisoformat(f"{m.group(1)}{frac}{zone}")
    except ValueError:
        return None
    return max(0.0, time.time() - when.timestamp())


def _references(obj: Any, configmap: str) -> bool:
    """Whether a workload's manifest reads ConfigMap ``configmap`` (env, envFrom or a volume)."""
    if isinstance(obj, dict):
        for key in ("configMapKeyRef", "configMapRef", "configMap"):
            ref = obj.get(key)
            if isinstance(ref, dict) and ref.get("name") == configmap:
                return True
        return any(_references(v, configmap) for v in obj.values())
    if isinstance(obj, list):
        return any(_references(v, configmap) for v in obj)
    return False


def _labels_match(obj: dict[str, Any], want: list[tuple[str, str, str]]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for key, op, value in want:
        have = labels.get(key)
        if (op == "=" and have != value) or (op == "!=" and have == value) or (op == "exists" and have is None) \
                or (op == "!" and have is not None):
            return False
    return True


def _summary(kind: str, status: dict[str, Any]) -> str:
    if kind == "Deployment":
        return f"{status['readyReplicas']}/{status['desiredReplicas']} ready"
    if kind == "Pod":
        return str(status.get("phase", ""))
    if kind == "PersistentVolumeClaim":
        return str(status.get("phase", ""))
    return "stored"
