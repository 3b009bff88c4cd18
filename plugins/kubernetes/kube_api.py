"""The API-server backend: a Kubernetes cluster reached from a kubeconfig, through lightkube (imported here only).

``load_kubeconfig`` reads the kubeconfig itself, so that a missing file, a file that is not YAML, or one with no
current context gives an error naming the file and what to fix, before lightkube is involved. In a pod, with no
kubeconfig, the service account is used (its token and CA in ``/var/run/secrets/kubernetes.io/serviceaccount``
and ``KUBERNETES_SERVICE_HOST``/``_PORT`` from the runtime's environment).

Apply is server-side apply with the configured field manager (``force`` on request); patch sends the patch
(strategic merge, JSON merge or JSON patch) after the plugin checked its result offline; watch is a lightkube
watch per (kind, namespace) asked for, at most ``max_watches``, each notifying the URI of every object event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Mapping
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

__all__ = ["SERVICE_ACCOUNT", "ApiBackend", "KubeconfigError", "in_cluster", "kubeconfig_path", "load_kubeconfig"]

log = logging.getLogger("mcp_edge.plugins.kubernetes")

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeconfigError(BackendError):
    """The kubeconfig cannot be used (the message names the file and what to fix)."""


def kubeconfig_path(configured: str, environ: Mapping[str, str]) -> Path | None:
    """The kubeconfig to use: the ``kubeconfig`` config key, else ``$KUBECONFIG`` (its first file), else
    ``~/.kube/config`` when it exists (``$HOME`` from the runtime's environment); None if there is none."""
    if configured:
        return Path(configured).expanduser()
    env = environ.get("KUBECONFIG", "")
    if env:
        return Path(env.split(":")[0]).expanduser()
    home = environ.get("HOME", "")
    if home and (Path(home) / ".kube" / "config").is_file():
        return Path(home) / ".kube" / "config"
    return None


def in_cluster(environ: Mapping[str, str], account: Path = SERVICE_ACCOUNT) -> bool:
    """Whether this runs in a pod with a service account."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and (account / "token").is_file()


def load_kubeconfig(path: Path, context: str = "") -> Any:
    """A lightkube ``SingleConfig`` from the kubeconfig at ``path`` (its current context, or ``context``)."""
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.core.exceptions import ConfigError

    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KubeconfigError(f"kubeconfig {path}: no such file (set the kubeconfig config key, or $KUBECONFIG, "
                              f"to a kubeconfig file)") from None
    except OSError as exc:
        raise KubeconfigError(f"kubeconfig {path}: cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise KubeconfigError(f"kubeconfig {path}: not valid YAML{where}: "
                              f"{getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(data, dict):
        raise KubeconfigError(f"kubeconfig {path}: must be a mapping with clusters, contexts and users")
    for key in ("clusters", "contexts"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise KubeconfigError(f"kubeconfig {path}: has no {key}")
    want = context or data.get("current-context") or ""
    if not want:
        names = [str(c.get("name")) for c in data["contexts"] if isinstance(c, dict)]
        raise KubeconfigError(f"kubeconfig {path}: no current context (current-context is not set); set it, or the "
                              f"context config key to one of: {', '.join(names)}")
    try:
        config = KubeConfig.from_dict(data, fname=path)
        return config.get(want)
    except ConfigError as exc:
        raise KubeconfigError(f"kubeconfig {path}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise KubeconfigError(f"kubeconfig {path}: context {want!r} is incomplete or names a missing cluster or "
                              f"user ({type(exc).__name__}: {exc})") from None


def service_account_config(environ: Mapping[str, str], account: Path = SERVICE_ACCOUNT) -> Any:
    """A lightkube ``SingleConfig`` for the pod's service account."""
    from lightkube.config.kubeconfig import KubeConfig
    from lightkube.config.models import Cluster, User

    host = environ["KUBERNETES_SERVICE_HOST"]
    port = environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    token = (account / "token").read_text().strip()
    ns_file = account / "namespace"
    namespace = ns_file.read_text().strip() if ns_file.is_file() else "default"
    cfg = KubeConfig.from_one(cluster=Cluster(server=f"https://{host}:{port}",
                                              certificate_auth=str(account / "ca.crt")),
                              user=User(token=token, token_file=str(account / "token")), namespace=namespace)
    return cfg.get()


def _resource(api_version: str, kind: str) -> Any:
    from lightkube.core.resource_registry import resource_registry

    try:
        return resource_registry.load(api_version, kind)
    except Exception:
        raise BackendError(f"kind {kind} of apiVersion {api_version} is not known to the API backend (lightkube "
                           f"knows the built-in kinds)") from None


def _api_error(exc: Exception, what: str) -> BackendError:
    status = getattr(exc, "status", None)
    if status is None:
        # lightkube's HTTP client (httpx, or its fork httpx2 in lightkube 1.x): a transport error is no answer
        if any(c.__name__ == "TransportError" for c in type(exc).__mro__):
            return BackendError(f"{what}: cannot reach the Kubernetes API server: {type(exc).__name__}: {exc}")
        return BackendError(f"{what} failed: {type(exc).__name__}: {exc}")
    code = getattr(status, "code", None)
    message = getattr(status, "message", None) or str(exc)
    return BackendError(f"the API server refused {what}: {message}" + (f" (HTTP {code})" if code else ""))


class ApiBackend:
    """A Kubernetes API server (see the module docstring)."""

    name = "api"

    def __init__(self, config: Any, where: str, *, field_manager: str, force: bool, max_watches: int,
                 timeout: float) -> None:
        from lightkube import AsyncClient

        self.where = where
        self.field_manager = field_manager
        self.force = force
        self.max_watches = max_watches
        self.client = AsyncClient(config, field_manager=field_manager, trust_env=False)
        self.default_namespace = str(getattr(getattr(config, "context", None), "namespace", None) or "default")
        self._watches: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._timeout = timeout

    def _ns(self, kind: Kind | None, namespace: str) -> str | None:
        if kind is not None and not kind.namespaced:
            return None
        return namespace or self.default_namespace

    def _call(self, what: str) -> Any:
        return _Guard(what)

    async def check(self, obj: dict[str, Any], namespace: str, batch: list[dict[str, Any]]) -> None:
        _resource(obj["apiVersion"], obj["kind"])

    async def apply(self, obj: dict[str, Any], namespace: str) -> Applied:
        from lightkube import codecs
        from lightkube.core.resource import NamespacedResource

        kind, name = obj["kind"], obj["metadata"]["name"]
        res = _resource(obj["apiVersion"], kind)
        try:
            resource = codecs.from_dict(obj)
        except Exception as exc:
            raise BackendError(f"{kind}/{name}: {exc}") from None
        namespaced = issubclass(res, NamespacedResource)
        ns = (obj["metadata"].get("namespace") or namespace or self.default_namespace) if namespaced else None
        async with self._call(f"apply of {kind}/{name}"):
            before = None
            with contextlib.suppress(Exception):
                before = await self.client.get(res, name, namespace=ns) if ns else await self.client.get(res, name)
            kwargs: dict[str, Any] = {"field_manager": self.field_manager, "force": self.force}
            if ns:
                kwargs["namespace"] = ns
            after = await self.client.apply(resource, **kwargs)
        rv_before = getattr(getattr(before, "metadata", None), "resourceVersion", None)
        rv_after = getattr(getattr(after, "metadata", None), "resourceVersion", None)
        action = "created" if before is None else ("unchanged" if rv_before == rv_after else "configured")
        return Applied(kind, name, ns or "", action, f"resourceVersion {rv_after}")

    async def get(self, kind: Kind, namespace: str, name: str, api_version: str | None) -> dict[str, Any]:
        res = _resource(api_version or kind.api_version, kind.kind)
        ns = self._ns(kind, namespace)
        async with self._call(f"get of {kind.kind}/{name}"):
            obj = await self.client.get(res, name, namespace=ns) if ns else await self.client.get(res, name)
        out: dict[str, Any] = obj.to_dict()
        (out.get("metadata") or {}).pop("managedFields", None)
        return out

    async def list_objects(self, kind: Kind, namespace: str, selector: str | None, api_version: str | None,
                   limit: int) -> list[dict[str, Any]]:
        res = _resource(api_version or kind.api_version, kind.kind)
        ns = self._ns(kind, namespace)
        items = []
        async with self._call(f"list of {kind.plural}"):
            kwargs: dict[str, Any] = {"labels": _lightkube_selector(selector)} if selector else {}
            if ns:
                kwargs["namespace"] = ns
            async for obj in self.client.list(res, **kwargs):
                d = obj.to_dict()
                meta = d.get("metadata") or {}
                status = d.get("status") or {}
                items.append({"kind": kind.kind, "name": meta.get("name", ""), "namespace": meta.get("namespace", ""),
                              "labels": meta.get("labels") or {}, "managed": True,
                              "summary": _summary(kind.kind, d), "status": status})
                if len(items) >= limit:
                    break
        return items

    async def delete(self, kind: Kind, namespace: str, name: str, api_version: str | None) -> str:
        res = _resource(api_version or kind.api_version, kind.kind)
        ns = self._ns(kind, namespace)
        async with self._call(f"delete of {kind.kind}/{name}"):
            if ns:
                await self.client.delete(res, name, namespace=ns)
            else:
                await self.client.delete(res, name)
        return "deleted (the API server removes it and what it owns)"

    async def patch(self, kind: Kind, namespace: str, name: str, patch: Any, patch_type: str,
                    validate: Validate, api_version: str | None) -> dict[str, Any]:
        from lightkube.types import PatchType

        current = await self.get(kind, namespace, name, api_version)
        try:
            if patch_type == "json":
                local = json_patch(current, patch)
            elif patch_type == "merge":
                local = merge_patch(current, patch)
            else:
                local = strategic_merge(current, patch)
        except PatchError as exc:
            raise BackendError(f"{kind.kind}/{name}: the {patch_type} patch cannot be applied: {exc}") from None
        local.pop("status", None)
        validate(local)
        res = _resource(api_version or kind.api_version, kind.kind)
        ns = self._ns(kind, namespace)
        ptype = {"json": PatchType.JSON, "merge": PatchType.MERGE}.get(patch_type, PatchType.STRATEGIC)
        async with self._call(f"patch of {kind.kind}/{name}"):
            kwargs: dict[str, Any] = {"patch_type": ptype, "field_manager": self.field_manager}
            if ns:
                kwargs["namespace"] = ns
            obj = await self.client.patch(res, name, patch, **kwargs)
        out: dict[str, Any] = obj.to_dict()
        (out.get("metadata") or {}).pop("managedFields", None)
        return out

    async def logs(self, namespace: str, pod: str, container: str | None, tail: int | None,
                   follow: bool, max_line: int, max_bytes: int) -> AsyncGenerator[str, None]:
        # lightkube's client.log reads a whole answer (or whole lines, however long) into memory: the request is
        # lightkube's, the reading ours, streamed and split by LineCutter; the server sends at most max_bytes
        import httpx2
        from lightkube.resources.core_v1 import Pod

        inner: Any = self.client._client
        br = inner.prepare_request("get", Pod.Log, name=pod, namespace=namespace or self.default_namespace,
                                   params={"container": container, "follow": follow, "tailLines": tail,
                                           "limitBytes": max_bytes})
        br.timeout = httpx2.Timeout(self._timeout)
        if follow:
            br.timeout.read = None
        lines = LineCutter(max_line)
        async with self._call(f"logs of pod {pod}"):
            resp = await inner.send(inner.build_adapter_request(br), stream=True)
            try:
                if resp.is_error:
                    await resp.aread()
                inner.raise_for_status(resp)
                async for chunk in resp.aiter_bytes():
                    for line in lines.feed(chunk):
                        yield line
            finally:
                await resp.aclose()
        for line in lines.flush():
            yield line

    async def scale(self, namespace: str, name: str, replicas: int) -> str:
        from lightkube.resources.apps_v1 import Deployment

        if replicas < 0:
            raise BackendError(f"replicas must be 0 or more, got {replicas}")
        ns = namespace or self.default_namespace
        async with self._call(f"scale of Deployment/{name}"):
            before = await self.client.get(Deployment, name, namespace=ns)
            await self.client.patch(Deployment, name, {"spec": {"replicas": replicas}}, namespace=ns)
        was = before.spec.replicas if before.spec is not None else None
        return f"Deployment/{name} scaled from {was} to {replicas}"

    async def rollout(self, namespace: str, name: str) -> Rollout:
        from lightkube.resources.apps_v1 import Deployment

        ns = namespace or self.default_namespace
        async with self._call(f"get of Deployment/{name}"):
            d = await self.client.get(Deployment, name, namespace=ns)
        want = d.spec.replicas if d.spec is not None and d.spec.replicas is not None else 1
        st = d.status
        gen = d.metadata.generation if d.metadata is not None else None
        observed = st.observedGeneration if st is not None else None
        updated = (st.updatedReplicas or 0) if st is not None else 0
        available = (st.availableReplicas or 0) if st is not None else 0
        for cond in (st.conditions or []) if st is not None else []:
            if cond.type == "Progressing" and cond.reason == "ProgressDeadlineExceeded":
                return Rollout(False, True, f"Deployment/{name} exceeded its progress deadline: {cond.message}",
                               want, available)
        if gen is not None and observed is not None and observed < gen:
            return Rollout(False, False, "waiting for the controller to see the new spec", want, available)
        if updated < want:
            return Rollout(False, False, f"{updated} of {want} replicas updated", want, available)
        if available < want:
            return Rollout(False, False, f"{available} of {want} updated replicas available", want, available)
        return Rollout(True, False, f"Deployment/{name} rolled out: {available} of {want} available", want, available)

    async def watch(self, uri_kind: Kind, namespace: str, name: str, notify: Notify) -> None:
        key = (uri_kind.kind, namespace)
        task = self._watches.get(key)
        if task is not None and not task.done():
            return
        if len([t for t in self._watches.values() if not t.done()]) >= self.max_watches:
            raise BackendError(f"the API backend follows at most {self.max_watches} (kind, namespace) pairs "
                               f"(max_watches)")
        _resource(uri_kind.api_version, uri_kind.kind)  # an unknown kind is the caller's error, before any task
        self._watches[key] = asyncio.create_task(self._follow(uri_kind, namespace, notify),
                                                 name=f"kubernetes-watch-{uri_kind.kind}-{namespace}")

    async def _follow(self, kind: Kind, namespace: str, notify: Notify) -> None:
        try:  # in the task's own try: a failure is logged and the task ends, not left with an unretrieved error
            res = _resource(kind.api_version, kind.kind)
        except BackendError as exc:
            log.warning("kubernetes: no watch of %s: %s", kind.kind, exc)
            return
        ns = self._ns(kind, namespace)
        delay = 1.0
        while True:
            try:
                kwargs: dict[str, Any] = {"namespace": ns} if ns else {}
                async for _event, obj in self.client.watch(res, **kwargs):
                    meta = obj.metadata
                    if meta is not None and meta.name:
                        await notify(object_uri(meta.namespace or "", kind.kind, meta.name))
                    delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.info("kubernetes: watch of %s in %s ended (%s); again in %.0f s", kind.plural, ns, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def aclose(self) -> None:
        for task in self._watches.values():
            task.cancel()
        for task in self._watches.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._watches.clear()
        with contextlib.suppress(Exception):
            await self.client.close()


class _Guard:
    """``async with``: lightkube's and httpx's errors become BackendError naming the operation."""

    def __init__(self, what: str) -> None:
        self.what = what

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, typ: Any, exc: Any, tb: Any) -> bool:
        if exc is None or isinstance(exc, (BackendError, asyncio.CancelledError)):
            return False
        if not isinstance(exc, Exception):
            return False
        raise _api_error(exc, self.what) from None


def _lightkube_selector(selector: str) -> list[tuple[str, Any]]:
    """A label selector (``app=web,tier!=db,debug,!old``) as lightkube's pairs."""
    from lightkube import operators

    pairs: list[tuple[str, Any]] = []
    for key, op, value in parse_selector(selector):
        if op == "=":
            pairs.append((key, value))
        elif op == "!=":
            pairs.append((key, operators.not_equal(value)))
        elif op == "exists":
            pairs.append((key, operators.exists()))
        else:
            pairs.append((key, operators.not_exists()))
    return pairs


def _summary(kind: str, obj: dict[str, Any]) -> str:
    status = obj.get("status") or {}
    if kind == "Deployment":
        want = (obj.get("spec") or {}).get("replicas", 1)
        return f"{status.get('readyReplicas', 0)}/{want} ready"
    if kind == "Pod":
        return str(status.get("phase", ""))
    if kind == "PersistentVolumeClaim":
        return str(status.get("phase", ""))
    return ""
