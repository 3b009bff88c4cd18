"""kubernetes: Kubernetes workloads for an MCP client, on an API server or on Podman's kube support.

Tools: ``k8s.apply`` (server-side apply of one or many YAML/JSON documents), ``k8s.patch`` (strategic merge,
JSON merge or JSON patch), ``k8s.get``, ``k8s.list``, ``k8s.delete``, ``pod.logs`` (``follow``: each line as a
progress notification until cancelled), ``deployment.scale`` and ``deployment.rollout_status``; and the resource
template ``k8s://{namespace}/{kind}/{name}``: reading it gives the object, and a client subscribed to it gets
``notifications/resources/updated`` when it changes.

Every manifest, and every patched object, is checked offline against the Kubernetes schemas
(``kubernetes-validate``) before anything is sent: a whole apply is refused, with nothing sent, when one of its
documents is wrong. The backend (``kube_backend.Backend``) is chosen at the first call: the API server
(``kube_api``, lightkube) when a kubeconfig is configured or found, else Podman (``kube_podman``).

With no role policy configured, the tools that change things (apply, patch, delete, scale) are off unless the
config's ``allow_destructive`` is true; with a policy, the router already decided who may call them.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from kube_backend import Backend, BackendError, Kind, cut_note, find_kind, object_uri
from kube_manifests import (
    Document,
    ManifestError,
    admit,
    check,
    check_depth,
    describe,
    parse_documents,
    schema_versions,
)

from mcp_edge.plugin import PluginBase, PluginContext, RequestContext, resource_template, tool
from mcp_edge.plugin.types import ToolAnnotations

__all__ = ["Kubernetes", "KubernetesError"]

# Names as path segments of the API: what Kubernetes and Podman accept, never "", "." or ".." (which HTTP clients
# fold into the path), "/" or "%"; ":" for RBAC names such as system:auth-delegator.
# ("$(?!\n)": Python's "$" also matches before a final newline; the look-ahead refuses it, and means nothing to an
# ECMA-262 regex, which a client checks the schema's pattern with)
_NAME_RX = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}$(?!\n)"
Name = Annotated[str, msgspec.Meta(pattern=_NAME_RX, description="an object's name (metadata.name)")]
Namespace = Annotated[str, msgspec.Meta(pattern=r"^([a-z0-9][a-z0-9-]{0,62})?$(?!\n)",
                                        description="the namespace; empty: the configured one")]

_READ = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=True)
_CHANGE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=True, openWorldHint=True)
_DELETE = ToolAnnotations(readOnlyHint=False, destructiveHint=True, idempotentHint=False, openWorldHint=True)


class KubernetesError(Exception):
    """Bad input or a refused call; the message says what to do. It becomes a tool result with ``isError``."""


# -- results ---------------------------------------------------------------------------------------------------

class AppliedObject(msgspec.Struct, kw_only=True):
    kind: str
    name: str
    namespace: str
    action: str  # created, configured, unchanged
    detail: str
    uri: str  # the k8s:// resource to read or subscribe to


class ApplyResult(msgspec.Struct, kw_only=True):
    backend: str
    objects: list[AppliedObject]


class ObjectResult(msgspec.Struct, kw_only=True):
    backend: str
    uri: str
    object: dict[str, Any]


class ListItem(msgspec.Struct, kw_only=True):
    kind: str
    name: str
    namespace: str
    labels: dict[str, str]
    managed: bool  # Podman backend: created by this plugin (false: a pod Podman runs for something else)
    summary: str
    status: dict[str, Any]


class ListResult(msgspec.Struct, kw_only=True):
    backend: str
    kind: str
    namespace: str
    items: list[ListItem]
    truncated: bool


class DeleteResult(msgspec.Struct, kw_only=True):
    backend: str
    kind: str
    name: str
    namespace: str
    result: str


class LogsResult(msgspec.Struct, kw_only=True):
    backend: str
    pod: str
    container: str | None
    lines: list[str]
    dropped: int  # earlier lines left out (max_log_lines, max_log_bytes)
    cut_lines: int  # lines longer than max_line bytes, cut there (each ends with a note saying so)
    followed: bool
    ended: str  # "end of log", "cancelled", "max_log_lines", "max_log_bytes", "follow_timeout_s"


class ScaleResult(msgspec.Struct, kw_only=True):
    backend: str
    name: str
    namespace: str
    replicas: int
    result: str


class RolloutResult(msgspec.Struct, kw_only=True):
    backend: str
    name: str
    namespace: str
    done: bool
    failed: bool
    timed_out: bool
    message: str
    replicas: int
    ready: int
    pods: list[dict[str, Any]]


# -- the plugin ------------------------------------------------------------------------------------------------

class Kubernetes(PluginBase):
    """Kubernetes objects on an API server or on Podman."""

    id = "kubernetes"
    capabilities = frozenset({"tools", "resources"})

    async def initialize(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        await super().initialize(config, ctx)
        versions = schema_versions()
        wanted = str(config.get("kubernetes_version") or "")
        if wanted and ".".join(wanted.lstrip("v").split(".")[:2]) not in versions:
            raise KubernetesError(f"kubernetes_version {wanted!r}: no schemas for it here; known: "
                                  f"{', '.join(versions)}")
        self.version = ".".join(wanted.lstrip("v").split(".")[:2]) if wanted else versions[-1]
        self.strict = bool(config.get("strict", True))
        self.namespace = str(config.get("namespace") or "")
        self._backend: Backend | None = None
        self._backend_lock = asyncio.Lock()
        self._closed = False

    async def shutdown(self) -> None:
        async with self._backend_lock:
            self._closed = True  # no backend (an HTTP client, watch tasks) is made again after this
            if self._backend is not None:
                await self._backend.aclose()
                self._backend = None

    # -- helpers -------------------------------------------------------------------------------------------------

    def choose_backend(self) -> tuple[str, str]:
        """("api", where the config comes from) or ("podman", the engine host), by the ``backend`` key."""
        from kube_api import in_cluster, kubeconfig_path

        from mcp_edge.engine_api import engine_host

        environ = self.ctx.settings.environ
        want = str(self.config.get("backend") or "auto")
        path = kubeconfig_path(str(self.config.get("kubeconfig") or ""), environ)
        if want == "api" or (want == "auto" and (path is not None or in_cluster(environ))):
            if path is not None:
                return "api", str(path)
            if in_cluster(environ):
                return "api", "in-cluster service account"
            raise KubernetesError("backend is \"api\" but there is no kubeconfig: set the kubeconfig config key "
                                  "(or $KUBECONFIG in the runtime's environment), or use backend = \"podman\"")
        return "podman", engine_host(str(self.config.get("host") or ""), environ)

    async def backend(self) -> Backend:
        async with self._backend_lock:
            if self._closed:
                raise KubernetesError("the kubernetes plugin is shut down: its backend is closed (the runtime is "
                                      "stopping or reloading the plugin); call again once it is started")
            if self._backend is None:
                self._backend = self._make_backend()
            return self._backend

    def _make_backend(self) -> Backend:
        kind, where = self.choose_backend()
        timeout = float(self.config.get("request_timeout_s", 30))
        if kind == "api":
            from kube_api import ApiBackend, load_kubeconfig, service_account_config

            if where == "in-cluster service account":
                cfg = service_account_config(self.ctx.settings.environ)
            else:
                from pathlib import Path

                cfg = load_kubeconfig(Path(where), str(self.config.get("context") or ""))
            self.ctx.logger.info("kubernetes: API backend, %s", where)
            return ApiBackend(cfg, where, field_manager=str(self.config.get("field_manager") or "mcp-edge"),
                              force=bool(self.config.get("force_conflicts", False)),
                              max_watches=int(self.config.get("max_watches", 16)), timeout=timeout)
        from kube_podman import PodmanBackend

        self.ctx.logger.info("kubernetes: Podman backend at %s", where)
        return PodmanBackend(where, self.ctx.data_dir, namespace=self.namespace or "default",
                             max_objects=int(self.config.get("max_objects", 500)),
                             max_replicas=int(self.config.get("max_replicas", 1)),
                             stop_timeout=int(self.config.get("stop_timeout_s", 5)), timeout=timeout,
                             network=str(self.config.get("network") or ""),
                             min_ready=float(self.config.get("min_ready_s", 1.0)),
                             max_store_bytes=int(self.config.get("max_store_bytes", 16 << 20)))

    def _destructive(self, tool_name: str) -> None:
        if self.ctx.settings.auth_policy_file or self.config.get("allow_destructive"):
            return
        raise KubernetesError(
            f"{tool_name} changes workloads and is off: no role policy is configured and allow_destructive is false. "
            f"Turn it on with allow_destructive = true in the board profile's [plugins.kubernetes] table (or "
            f"MCP_EDGE_KUBERNETES_ALLOW_DESTRUCTIVE=true), or configure a role policy (auth_policy_file) that "
            f"grants it")

    def _kind(self, name: str) -> Kind:
        kind = find_kind(name)
        if kind is None:
            raise KubernetesError(f"unknown kind {name!r}; known: Pod, Deployment, ConfigMap, PersistentVolumeClaim, "
                                  f"Service, StatefulSet, ... (as in manifests, plural or short names such as deploy)")
        return kind

    def _parse_and_check(self, manifest: str) -> list[Document]:
        docs = parse_documents(manifest, int(self.config.get("max_documents", 100)),
                               int(self.config.get("max_depth", 64)))
        for doc in docs:
            check(doc, self.version, self.strict)
            admit(doc, bool(self.config.get("allow_host_access", False)))
        return docs

    def _validate(self, obj: dict[str, Any]) -> None:
        """The checks of k8s.apply, for a patched object: its size, depth, schema and host access."""
        doc = Document(0, obj)  # named "the patched object" in errors
        limit = int(self.config.get("max_manifest_bytes", 1 << 20))
        size = len(json.dumps(obj, separators=(",", ":"), default=str).encode())
        if size > limit:
            raise ManifestError(f"{describe(doc)} is {size} bytes (as JSON), more than "
                                f"max_manifest_bytes ({limit})")
        check_depth(doc, int(self.config.get("max_depth", 64)))
        check(doc, self.version, self.strict)
        admit(doc, bool(self.config.get("allow_host_access", False)))

    def _ns(self, backend: Backend, namespace: str) -> str:
        """The namespace of a call: its argument, else the config's, else the backend's default."""
        return namespace or self.namespace or backend.default_namespace

    # -- tools ---------------------------------------------------------------------------------------------------

    @tool(name="k8s.apply", title="Apply Kubernetes manifests", annotations=_CHANGE)
    async def apply(self, manifest: str, namespace: Namespace = "", ctx: RequestContext | None = None) -> ApplyResult:
        """Create or update objects from YAML or JSON manifests (one or many documents), by server-side apply.

        Every document is checked against the Kubernetes schemas first; if one is wrong nothing is sent and the
        error names the document, the object and the field.

        Args:
            manifest: YAML (documents separated by ---) or JSON (an object, an array, or a List).
            namespace: for objects whose metadata names none; default: the configured namespace.
        """
        self._destructive("k8s.apply")
        limit = int(self.config.get("max_manifest_bytes", 1 << 20))
        if len(manifest.encode()) > limit:
            raise KubernetesError(f"the manifest is {len(manifest.encode())} bytes, more than max_manifest_bytes "
                                  f"({limit}): apply it in parts")
        # parsing and schema checks take CPU time in proportion to the text: in a thread, so that the worker's
        # event loop (its heartbeats, other calls, cancellation) goes on meanwhile
        docs = await asyncio.to_thread(self._parse_and_check, manifest)
        backend = await self.backend()
        ns = self._ns(backend, namespace)
        for doc in docs:  # what this backend cannot take is refused before anything is sent, too
            try:
                await backend.check(doc.obj, ns, [d.obj for d in docs])
            except BackendError as exc:
                why = str(exc).removeprefix(f"{doc.kind}/{doc.name}: ")
                raise BackendError(f"{describe(doc)}: {why}") from None
        order = {"Namespace": 0, "ConfigMap": 1, "Secret": 1, "PersistentVolumeClaim": 2}
        out: list[AppliedObject] = []
        for n, doc in enumerate(sorted(docs, key=lambda d: order.get(d.kind, 3)), 1):
            try:
                done = await backend.apply(doc.obj, ns)
            except BackendError as exc:
                before = "; ".join(f"{o.kind}/{o.name} {o.action}" for o in out)
                raise BackendError(f"{describe(doc)}: {exc}" + (f" (applied before it: {before})" if before else
                                                                  " (nothing was applied)")) from None
            out.append(AppliedObject(kind=done.kind, name=done.name, namespace=done.namespace, action=done.action,
                                     detail=done.detail, uri=object_uri(done.namespace, done.kind, done.name)))
            if ctx is not None:
                await ctx.report_progress(n, len(docs), f"{done.kind}/{done.name} {done.action}")
        return ApplyResult(backend=backend.name, objects=out)

    @tool(name="k8s.patch", title="Patch a Kubernetes object", annotations=_CHANGE)
    async def patch(self, kind: str, name: Name, patch: dict[str, Any] | list[dict[str, Any]],
                    patch_type: Literal["strategic", "merge", "json"] = "strategic", namespace: Namespace = "",
                    api_version: str | None = None) -> ObjectResult:
        """Change an object with a patch; the patched object is checked against the schemas before it is sent.

        Args:
            kind: the object's kind (Deployment, deploy, pods...).
            name: its name.
            patch: strategic merge or JSON merge: an object; json: a list of RFC 6902 operations.
            patch_type: strategic (lists of containers, env, volumes... merged by name), merge (RFC 7386) or json.
            namespace: default: the configured namespace.
            api_version: for kinds outside the built-in table.
        """
        self._destructive("k8s.patch")
        k = self._kind(kind)
        if patch_type == "json" and not isinstance(patch, list):
            raise KubernetesError("a json patch is a list of operations, e.g. [{\"op\": \"replace\", \"path\": "
                                  "\"/spec/replicas\", \"value\": 1}]")
        if patch_type != "json" and not isinstance(patch, dict):
            raise KubernetesError(f"a {patch_type} patch is an object (a list is a json patch: patch_type=json)")
        backend = await self.backend()
        ns = self._ns(backend, namespace)
        obj = await backend.patch(k, ns, name, patch, patch_type, self._validate,
                                  api_version)
        return ObjectResult(backend=backend.name, uri=object_uri(ns if k.namespaced else "", k.kind, name), object=obj)

    @tool(name="k8s.get", title="Get a Kubernetes object", annotations=_READ)
    async def get(self, kind: str, name: Name, namespace: Namespace = "",
                  api_version: str | None = None) -> ObjectResult:
        """One object with its live status (Podman backend: its pods and containers as Podman runs them).

        Args:
            kind: the object's kind (Deployment, deploy, pods...).
            name: its name.
            namespace: default: the configured namespace.
            api_version: for kinds outside the built-in table.
        """
        k = self._kind(kind)
        backend = await self.backend()
        ns = self._ns(backend, namespace)
        obj = await backend.get(k, ns, name, api_version)
        return ObjectResult(backend=backend.name, uri=object_uri(ns if k.namespaced else "", k.kind, name), object=obj)

    @tool(name="k8s.list", title="List Kubernetes objects", annotations=_READ)
    async def list_objects(self, kind: str, namespace: Namespace = "", label_selector: str | None = None,
                           api_version: str | None = None) -> ListResult:
        """The objects of one kind, with a one-line summary and the live status of each.

        Args:
            kind: the kind (Deployment, pods, pvc...).
            namespace: default: the configured namespace.
            label_selector: e.g. app=web,tier!=db.
            api_version: for kinds outside the built-in table.
        """
        k = self._kind(kind)
        backend = await self.backend()
        ns = self._ns(backend, namespace)
        limit = int(self.config.get("max_list", 500))
        items = await backend.list_objects(k, ns, label_selector, api_version, limit + 1)
        return ListResult(backend=backend.name, kind=k.kind, namespace=ns,
                          items=[msgspec.convert(i, ListItem) for i in items[:limit]], truncated=len(items) > limit)

    @tool(name="k8s.delete", title="Delete a Kubernetes object", annotations=_DELETE)
    async def delete(self, kind: str, name: Name, namespace: Namespace = "",
                     api_version: str | None = None) -> DeleteResult:
        """Delete an object (Podman backend: its pods, or the volume of a PersistentVolumeClaim, are removed).

        Args:
            kind: the object's kind.
            name: its name.
            namespace: default: the configured namespace.
            api_version: for kinds outside the built-in table.
        """
        self._destructive("k8s.delete")
        k = self._kind(kind)
        backend = await self.backend()
        ns = self._ns(backend, namespace)
        result = await backend.delete(k, ns, name, api_version)
        return DeleteResult(backend=backend.name, kind=k.kind, name=name, namespace=ns,
                            result=result)

    @tool(name="pod.logs", title="Read a pod's logs", annotations=_READ)
    async def logs(self, pod: Name, container: Name | None = None, namespace: Namespace = "",
                   tail: Annotated[int, msgspec.Meta(ge=1)] | None = None, follow: bool = False,
                   ctx: RequestContext | None = None) -> LogsResult:
        """A pod's container log. With follow, each new line is also sent as a progress notification until the
        call is cancelled, the container stops, max_log_lines lines (or max_log_bytes bytes) were read or
        follow_timeout_s passed. A line longer than max_line bytes is cut there, with a note saying so; the result
        keeps the last lines that fit in max_log_lines and max_log_bytes (dropped counts the earlier ones).

        Args:
            pod: the pod's name (Podman backend: a Deployment's name stands for its first pod).
            container: which container; needed when the pod has more than one.
            namespace: default: the configured namespace.
            tail: only the last lines of the log so far.
            follow: go on reading as the container writes.
        """
        backend = await self.backend()
        ns = self._ns(backend, namespace)
        max_lines = int(self.config.get("max_log_lines", 5000))
        follow_s = float(self.config.get("follow_timeout_s", 600))
        max_line = int(self.config.get("max_line", 16384))
        max_bytes = int(self.config.get("max_log_bytes", 4 << 20))
        note = cut_note(max_line)
        lines: collections.deque[str] = collections.deque()
        dropped = read = kept_bytes = read_bytes = cut = 0
        ended = "end of log"
        # never more than max_log_lines of what was written so far: the engine or server sends only those
        stream = backend.logs(ns, pod, container, min(tail or max_lines, max_lines), follow, max_line, max_bytes)
        try:
            async with asyncio.timeout(follow_s if follow else None):
                async for line in stream:
                    read += 1
                    size = len(line.encode()) + 1
                    read_bytes += size
                    kept_bytes += size
                    cut += line.endswith(note)
                    lines.append(line)
                    while len(lines) > max_lines or (kept_bytes > max_bytes and len(lines) > 1):
                        kept_bytes -= len(lines.popleft().encode()) + 1
                        dropped += 1
                    if follow and ctx is not None:
                        await ctx.report_progress(read, None, line)
                    if ctx is not None and ctx.cancelled:
                        ended = "cancelled"
                        break
                    if follow and read >= max_lines:
                        ended = "max_log_lines"
                        break
                    if follow and read_bytes >= max_bytes:
                        ended = "max_log_bytes"
                        break
        except TimeoutError:
            ended = "follow_timeout_s"
        finally:
            await stream.aclose()
        return LogsResult(backend=backend.name, pod=pod, container=container, lines=list(lines), dropped=dropped,
                          cut_lines=cut, followed=follow, ended=ended)

    @tool(name="deployment.scale", title="Scale a Deployment", annotations=_CHANGE)
    async def scale(self, name: Name, replicas: Annotated[int, msgspec.Meta(ge=0)],
                    namespace: Namespace = "") -> ScaleResult:
        """Set a Deployment's replicas (Podman backend: 0 takes its pods down; more than max_replicas is refused).

        Args:
            name: the Deployment.
            replicas: how many pods to run.
            namespace: default: the configured namespace.
        """
        self._destructive("deployment.scale")
        backend = await self.backend()
        ns = self._ns(backend, namespace)
        result = await backend.scale(ns, name, replicas)
        return ScaleResult(backend=backend.name, name=name, namespace=ns,
                           replicas=replicas, result=result)

    @tool(name="deployment.rollout_status", title="Wait for a Deployment's rollout", annotations=_READ)
    async def rollout_status(self, name: Name, namespace: Namespace = "",
                             timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None,
                             ctx: RequestContext | None = None) -> RolloutResult:
        """Wait until a Deployment's pods run (progress notifications while waiting; cancellable), or report what
        failed (a container that exited, a progress deadline), or that the wait timed out.

        Args:
            name: the Deployment.
            namespace: default: the configured namespace.
            timeout_s: the longest wait; at most the rollout_timeout_s config key, which is the default.
        """
        cap = float(self.config.get("rollout_timeout_s", 300))
        wait = min(timeout_s, cap) if timeout_s is not None else cap
        interval = float(self.config.get("poll_interval_s", 0.5))
        backend = await self.backend()
        ns = self._ns(backend, namespace)
        deadline = time.monotonic() + wait
        polls = 0
        while True:
            state = await backend.rollout(ns, name)
            polls += 1
            if ctx is not None:
                await ctx.report_progress(state.ready, state.replicas or None, state.message)
            timed_out = not (state.done or state.failed) and time.monotonic() >= deadline
            cancelled = ctx is not None and ctx.cancelled
            if state.done or state.failed or timed_out or cancelled:
                message = state.message
                if timed_out:
                    message = f"not rolled out within {wait:g} s: {state.message}"
                elif cancelled and not (state.done or state.failed):
                    message = f"cancelled while waiting: {state.message}"
                return RolloutResult(backend=backend.name, name=name, namespace=ns, done=state.done,
                                     failed=state.failed, timed_out=timed_out, message=message,
                                     replicas=state.replicas, ready=state.ready, pods=state.pods)
            await asyncio.sleep(min(interval, max(0.0, deadline - time.monotonic())))

    # -- the watch resource --------------------------------------------------------------------------------------

    @resource_template("k8s://{namespace}/{kind}/{name}", name="k8s.watch", title="A Kubernetes object",
                       mime_type="application/json",
                       description="One object as k8s.get gives it; subscribe to be told when it changes "
                                   "(cluster-scoped objects: namespace _)")
    async def watch(self, namespace: str, kind: str, name: str) -> dict[str, Any]:
        k = self._kind(kind)
        if not re.fullmatch(_NAME_RX, name) or not (namespace == "_" or re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}",
                                                                                          namespace)):
            raise KubernetesError(f"k8s://{namespace}/{kind}/{name}: not an object's URI (k8s://<namespace or _>/"
                                  f"<kind>/<name>)")
        backend = await self.backend()
        ns = self._ns(backend, "" if namespace == "_" else namespace)
        obj = await backend.get(k, ns, name, None)
        await backend.watch(k, ns, name, self.ctx.notify_resource_updated)
        return obj
