"""What the kubernetes plugin's tools need of a backend (the API server, or Podman's kube support), and the
kinds both know by name."""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["KINDS", "Applied", "Backend", "BackendError", "Kind", "LineCutter", "Notify", "Rollout", "Validate",
           "cut_note", "find_kind", "object_uri", "parse_selector"]

Notify = Callable[[str], Awaitable[None]]
Validate = Callable[[dict[str, Any]], None]


class BackendError(Exception):
    """The backend refused or failed (the message names the object and the backend)."""


def cut_note(max_line: int) -> str:
    """What ends a log line cut at ``max_line`` bytes."""
    return f" [line cut at {max_line} bytes (max_line): the rest of it is left out]"


class LineCutter:
    """A log's bytes as lines, split as they come: only the unfinished line is kept, and at most ``max_line`` bytes
    of it. A longer line is given at once, cut at ``max_line`` bytes and ending with ``cut_note``; the rest of it, up
    to its newline, is dropped (so memory stays bounded however long a line a container writes)."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max(1, max_line)
        self._tail = bytearray()
        self._cut = False  # the current line was cut (and given): drop the rest of it
        self.cut_lines = 0

    def _give(self) -> str:
        line = bytes(self._tail).decode("utf-8", "replace")
        self._tail.clear()
        return line

    def feed(self, data: bytes) -> list[str]:
        out: list[str] = []
        start = 0
        while start <= len(data):
            nl = data.find(b"\n", start)
            end = len(data) if nl < 0 else nl
            if not self._cut:
                room = self.max_line - len(self._tail)
                if end - start > room:
                    self._tail += data[start:start + room]
                    out.append(self._give() + cut_note(self.max_line))
                    self._cut = True
                    self.cut_lines += 1
                else:
                    self._tail += data[start:end]
            if nl < 0:
                break
            if self._cut:
                self._cut = False
            else:
                out.append(self._give())
            start = nl + 1
        return out

    def flush(self) -> list[str]:
        """The last line, when the log does not end with a newline."""
        if self._cut or not self._tail:
            self._cut = False
            return []
        return [self._give()]


@dataclass(frozen=True, slots=True)
class Kind:
    kind: str  # as in manifests: Deployment
    api_version: str  # apps/v1
    plural: str  # deployments
    namespaced: bool = True
    short: tuple[str, ...] = ()


KINDS: tuple[Kind, ...] = (
    Kind("Pod", "v1", "pods", short=("po",)),
    Kind("Deployment", "apps/v1", "deployments", short=("deploy",)),
    Kind("ConfigMap", "v1", "configmaps", short=("cm",)),
    Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", short=("pvc",)),
    Kind("Secret", "v1", "secrets"),
    Kind("Service", "v1", "services", short=("svc",)),
    Kind("ServiceAccount", "v1", "serviceaccounts", short=("sa",)),
    Kind("StatefulSet", "apps/v1", "statefulsets", short=("sts",)),
    Kind("DaemonSet", "apps/v1", "daemonsets", short=("ds",)),
    Kind("ReplicaSet", "apps/v1", "replicasets", short=("rs",)),
    Kind("Job", "batch/v1", "jobs"),
    Kind("CronJob", "batch/v1", "cronjobs", short=("cj",)),
    Kind("Ingress", "networking.k8s.io/v1", "ingresses", short=("ing",)),
    Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", short=("netpol",)),
    Kind("Role", "rbac.authorization.k8s.io/v1", "roles"),
    Kind("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings"),
    Kind("Namespace", "v1", "namespaces", namespaced=False, short=("ns",)),
    Kind("Node", "v1", "nodes", namespaced=False, short=("no",)),
    Kind("PersistentVolume", "v1", "persistentvolumes", namespaced=False, short=("pv",)),
    Kind("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", namespaced=False),
    Kind("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", namespaced=False),
)


def find_kind(name: str) -> Kind | None:
    """The kind called ``name`` (as in manifests, lower case, plural or short name), or None."""
    low = name.strip().lower()
    for k in KINDS:
        if low in (k.kind.lower(), k.plural, *k.short):
            return k
    return None


def parse_selector(selector: str | None) -> list[tuple[str, str, str]]:
    """``app=web,tier!=db,debug`` -> [(key, op, value)]: equality (=, ==), inequality (!=) and existence."""
    out: list[tuple[str, str, str]] = []
    for part in (selector or "").split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*))?", part)
        if m is None:
            raise BackendError(f"label selector {part!r}: the plugin understands key=value, key!=value, key "
                               f"and !key")
        neg, key, op, value = m.groups()
        if neg and op:
            raise BackendError(f"label selector {part!r}: '!' goes with a key alone")
        out.append((key, "!" if neg else ({"==": "="}.get(op, op) or "exists"), value or ""))
    return out


def object_uri(namespace: str, kind: str, name: str) -> str:
    """The watch resource of one object: ``k8s://{namespace}/{kind}/{name}`` (cluster-scoped: namespace ``_``)."""
    return f"k8s://{namespace or '_'}/{kind}/{name}"


@dataclass(slots=True)
class Applied:
    """What apply did to one object."""

    kind: str
    name: str
    namespace: str
    action: str  # created, configured, unchanged
    detail: str = ""


@dataclass(slots=True)
class Rollout:
    """One look at a Deployment's rollout."""

    done: bool
    failed: bool
    message: str
    replicas: int = 0
    ready: int = 0
    pods: list[dict[str, Any]] = field(default_factory=list)


class Backend(Protocol):
    """One place Kubernetes objects live. Kinds arrive canonical (``Deployment``); errors are BackendError."""

    name: str
    default_namespace: str  # for calls that name none (and the config names none)

    async def check(self, obj: dict[str, Any], namespace: str, batch: list[dict[str, Any]]) -> None:
        """BackendError if this backend cannot take ``obj`` (a valid manifest) as one of ``batch`` (every object of
        the apply); called for every document of an apply before any is sent."""
        ...
    async def apply(self, obj: dict[str, Any], namespace: str) -> Applied: ...
    async def get(self, kind: Kind, namespace: str, name: str, api_version: str | None) -> dict[str, Any]: ...
    async def list_objects(self, kind: Kind, namespace: str, selector: str | None, api_version: str | None,
                   limit: int) -> list[dict[str, Any]]: ...
    async def delete(self, kind: Kind, namespace: str, name: str, api_version: str | None) -> str: ...
    async def patch(self, kind: Kind, namespace: str, name: str, patch: Any, patch_type: str,
                    validate: Validate, api_version: str | None) -> dict[str, Any]: ...
    def logs(self, namespace: str, pod: str, container: str | None, tail: int | None,
             follow: bool, max_line: int, max_bytes: int) -> AsyncGenerator[str, None]:
        """The log's lines, each at most ``max_line`` bytes (cut by LineCutter); ``max_bytes`` is a hint of the most
        the caller keeps (the API server is asked for no more)."""
        ...
    async def scale(self, namespace: str, name: str, replicas: int) -> str: ...
    async def rollout(self, namespace: str, name: str) -> Rollout: ...
    async def watch(self, uri_kind: Kind, namespace: str, name: str, notify: Notify) -> None:
        """Make sure changes of this object are followed (and ``notify(uri)`` called for them)."""
        ...
    async def aclose(self) -> None: ...
