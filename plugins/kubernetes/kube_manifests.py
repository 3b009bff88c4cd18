"""Manifests of the kubernetes plugin: parsed from YAML or JSON text and checked offline, before anything is sent.

``parse_documents`` reads one or many documents (YAML ``---`` streams, a JSON object, a JSON array, or a ``List``
kind's ``items``). ``check`` then refuses what a server would refuse, against the Kubernetes OpenAPI schemas that
``kubernetes-validate`` ships: a missing ``apiVersion``/``kind``/``metadata.name``, an unknown kind, a field of the
wrong type, and (strict, the default) a field the schema does not have. Each error names the document (1-based,
as written), the object as ``Kind/name`` and the dotted path of the bad field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Document", "ManifestError", "admit", "check", "check_depth", "describe", "field_path", "parse_documents",
           "schema_versions"]


_SEGMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,252}")  # a name that is one path segment of the API


class ManifestError(ValueError):
    """A manifest that cannot be sent (the message names the document, the object and the field)."""


@dataclass(frozen=True, slots=True)
class Document:
    """One object of the input: its place (1-based) and its content."""

    index: int
    obj: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def name(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("name") or "") if isinstance(meta, dict) else ""

    @property
    def namespace(self) -> str:
        meta = self.obj.get("metadata")
        return str(meta.get("namespace") or "") if isinstance(meta, dict) else ""


def describe(doc: Document) -> str:
    """``document 2 (Deployment/web)`` as errors name it; index 0 is the result of a patch."""
    what = f"{doc.kind or '?'}/{doc.name or '?'}"
    return f"the patched object ({what})" if doc.index == 0 else f"document {doc.index} ({what})"


def field_path(parts: Any) -> str:
    """``spec.template.spec.containers[0].image`` from a jsonschema path (keys and indexes)."""
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(the object itself)"


_TOO_DEEP = "is nested too deeply"


def parse_documents(text: str, max_documents: int, max_depth: int = 64) -> list[Document]:
    """The objects of ``text`` (YAML or JSON, one or many documents); ManifestError naming the document.

    Objects and lists nested more than ``max_depth`` levels are refused (the parsers and the schema check recurse:
    ``[[[[...`` would otherwise end in a RecursionError)."""
    if not text.strip():
        raise ManifestError("the manifest is empty: give one or more YAML or JSON documents")
    raw: list[Any]
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ManifestError(f"the manifest is not valid JSON: {exc}") from None
        except RecursionError:
            raise ManifestError(f"document 1 {_TOO_DEEP} for the JSON parser: objects and lists may be nested "
                                f"at most {max_depth} levels (max_depth)") from None
        raw = loaded if isinstance(loaded, list) else [loaded]
    else:
        raw = []
        try:
            for i, item in enumerate(yaml.safe_load_all(text), 1):
                if i > max_documents + 1:
                    break
                raw.append(item)
        except yaml.YAMLError as exc:
            where = ""
            mark = getattr(exc, "problem_mark", None)
            if mark is not None:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(exc, "problem", None) or str(exc)
            raise ManifestError(f"document {len(raw) + 1}: not valid YAML{where}: {problem}") from None
        except RecursionError:
            raise ManifestError(f"document {len(raw) + 1} {_TOO_DEEP} for the YAML parser: mappings and lists may "
                                f"be nested at most {max_depth} levels (max_depth)") from None
    budget = [max(len(text), 1024)]  # values one text of this size can hold, unless YAML aliases repeat them
    for i, item in enumerate(raw, 1):
        if not _within(item, budget):
            raise ManifestError(f"document {i}: holds far more values than its text (YAML aliases repeating "
                                f"others?): refused")
        depth = _depth(item, max_depth)
        if depth > max_depth:
            raise ManifestError(f"document {i} {_TOO_DEEP}: more than {max_depth} levels of objects and lists "
                                f"(max_depth)")
    docs: list[Document] = []
    for i, item in enumerate(raw, 1):
        if item is None:  # an empty document (a trailing ---)
            continue
        if not isinstance(item, dict):
            raise ManifestError(f"document {i}: a manifest must be an object (a mapping), not "
                                f"{type(item).__name__}")
        if isinstance(item.get("kind"), str) and item["kind"].endswith("List") and "items" in item:
            items = item["items"]
            if not isinstance(items, list):
                raise ManifestError(f"document {i} ({item['kind']}): items must be a list")
            for j, sub in enumerate(items):
                if not isinstance(sub, dict):
                    raise ManifestError(f"document {i} ({item['kind']}): items[{j}] must be an object")
                docs.append(Document(i, sub))
        else:
            docs.append(Document(i, item))
    if not docs:
        raise ManifestError("the manifest holds no object (only empty documents)")
    if len(docs) > max_documents:
        raise ManifestError(f"the manifest holds more than {max_documents} objects (max_documents): apply it in "
                            f"parts")
    return docs


def _depth(obj: Any, limit: int) -> int:
    """How deeply ``obj`` nests objects and lists (a scalar: 0), counted without recursion, up to ``limit + 1``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(obj, 0)]
    while stack:
        cur, level = stack.pop()
        if isinstance(cur, (dict, list)):
            level += 1
            deepest = max(deepest, level)
            if level > limit:
                return level
            stack.extend((v, level) for v in (cur.values() if isinstance(cur, dict) else cur))
    return deepest


def check_depth(doc: Document, max_depth: int) -> None:
    """ManifestError if ``doc`` nests more than ``max_depth`` levels (a patched object, say)."""
    if _depth(doc.obj, max_depth) > max_depth:
        raise ManifestError(f"{describe(doc)} {_TOO_DEEP}: more than {max_depth} levels of objects and lists "
                            f"(max_depth)")


def _within(obj: Any, budget: list[int]) -> bool:
    """Walk ``obj`` (shared parts counted each time they are reached) while ``budget[0]`` lasts."""
    stack = [obj]
    while stack:
        cur = stack.pop()
        budget[0] -= 1
        if budget[0] < 0:
            return False
        if isinstance(cur, dict):
            stack.extend(cur.keys())
            stack.extend(cur.values())
        elif isinstance(cur, list):
            stack.extend(cur)
    return True


def schema_versions() -> list[str]:
    """The Kubernetes versions whose schemas kubernetes-validate ships (``1.25`` ...)."""
    import kubernetes_validate  # type: ignore[import-untyped]

    out: list[str] = []
    for v in kubernetes_validate.utils.all_versions():
        mm = ".".join(str(v).split(".")[:2])
        if mm not in out:
            out.append(mm)
    return out


def check(doc: Document, version: str, strict: bool) -> None:
    """ManifestError unless ``doc`` is a valid object of Kubernetes ``version`` (see the module docstring)."""
    import kubernetes_validate
    from kubernetes_validate.utils import (  # type: ignore[import-untyped]
        SchemaNotFoundError,
        ValidationError,
        VersionNotSupportedError,
    )

    obj = doc.obj
    where = describe(doc)
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            raise ManifestError(f"{where}: {key} is missing (every object needs apiVersion and kind, e.g. "
                                f"apiVersion: apps/v1, kind: Deployment)")
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise ManifestError(f"{where}: metadata.name is missing (generateName is not supported: the object must "
                            f"be found again by its name)")
    for key in ("name", "namespace"):
        value = meta.get(key)
        if value is not None and (not isinstance(value, str) or not _SEGMENT.fullmatch(value)):
            raise ManifestError(f"{where}: metadata.{key} {value!r} is not a valid name (letters, digits, '-', '.', "
                                f"'_' or ':', starting with a letter or digit, at most 253)")
    try:
        kubernetes_validate.validate(obj, version, strict)
    except ValidationError as exc:
        raise ManifestError(f"{where}: {field_path(exc.path)}: {_message(exc)} (Kubernetes {version} "
                            f"schema{', strict: unknown fields refused' if strict else ''})") from None
    except SchemaNotFoundError:
        raise ManifestError(f"{where}: unknown kind {obj['kind']!r} of apiVersion {obj['apiVersion']!r} in the "
                            f"Kubernetes {version} schemas (check the spelling, or the apiVersion)") from None
    except VersionNotSupportedError:
        raise ManifestError(f"Kubernetes version {version!r} has no schemas here; known: "
                            f"{', '.join(schema_versions())}") from None


def _message(exc: Any) -> str:
    msg = str(exc.message)
    if len(msg) > 300:
        msg = msg[:300] + "..."
    return msg


# -- host access -----------------------------------------------------------------------------------------------------

_HOST_KEY = "allow_host_access"
_CONFINED_TYPES = ("container_t", "container_init_t")  # the SELinux types a container may ask for (spc_t may not)


def _pod_specs(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path, pod spec) of the pod templates an object holds (Pod, workloads, CronJob)."""
    kind = obj.get("kind")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return []
    if kind == "Pod":
        return [("spec", spec)]
    if kind == "CronJob":
        job = spec.get("jobTemplate")
        spec = job.get("spec") if isinstance(job, dict) else None
        prefix = "spec.jobTemplate.spec.template.spec"
    else:
        prefix = "spec.template.spec"
    template = spec.get("template") if isinstance(spec, dict) else None
    pod = template.get("spec") if isinstance(template, dict) else None
    return [(prefix, pod)] if isinstance(pod, dict) else []


def _security(path: str, sc: Any) -> list[str]:
    """The fields of a (pod or container) securityContext that give host access."""
    if not isinstance(sc, dict):
        return []
    bad: list[str] = []
    if sc.get("privileged") is True:
        bad.append(f"{path}.privileged")
    caps = sc.get("capabilities")
    if isinstance(caps, dict) and caps.get("add"):
        bad.append(f"{path}.capabilities.add")
    if sc.get("procMount") == "Unmasked":
        bad.append(f"{path}.procMount")
    for key in ("seccompProfile", "appArmorProfile"):
        prof = sc.get(key)
        if isinstance(prof, dict) and prof.get("type") == "Unconfined":
            bad.append(f"{path}.{key}.type")
    selinux = sc.get("seLinuxOptions")
    if isinstance(selinux, dict) and selinux.get("type") not in (None, "", *_CONFINED_TYPES):
        bad.append(f"{path}.seLinuxOptions.type")
    windows = sc.get("windowsOptions")
    if isinstance(windows, dict) and windows.get("hostProcess") is True:
        bad.append(f"{path}.windowsOptions.hostProcess")
    return bad


_PROFILE_ANNOTATIONS = ("seccomp.security.alpha.kubernetes.io/pod", "container.seccomp.security.alpha.kubernetes.io/",
                        "container.apparmor.security.beta.kubernetes.io/")  # read by kube play too


def _annotations(obj: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(path, annotations) of the object and of its pod templates."""
    out: list[tuple[str, dict[str, Any]]] = []
    raw = obj.get("spec")
    spec: dict[str, Any] = raw if isinstance(raw, dict) else {}
    template = spec.get("template")
    places = [("metadata", obj.get("metadata")),
              ("spec.template.metadata", template.get("metadata") if isinstance(template, dict) else None)]
    job = spec.get("jobTemplate")
    if isinstance(job, dict) and isinstance(job.get("spec"), dict) and isinstance(job["spec"].get("template"), dict):
        places.append(("spec.jobTemplate.spec.template.metadata", job["spec"]["template"].get("metadata")))
    for path, meta in places:
        if isinstance(meta, dict) and isinstance(meta.get("annotations"), dict):
            out.append((f"{path}.annotations", meta["annotations"]))
    return out


def host_access(obj: dict[str, Any]) -> list[str]:
    """The field paths of ``obj`` that reach the host: host namespaces, hostPath volumes, privileged containers,
    added capabilities, unconfined seccomp/AppArmor, an SELinux type other than a container's, an unmasked /proc,
    a Windows host process."""
    bad: list[str] = []
    for path, notes in _annotations(obj):
        for key, value in notes.items():
            if str(key).startswith(_PROFILE_ANNOTATIONS) and str(value).strip().lower() == "unconfined":
                bad.append(f"{path}[{key}]")
    for prefix, pod in _pod_specs(obj):
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if pod.get(key) is True:
                bad.append(f"{prefix}.{key}")
        volumes = pod.get("volumes")
        for i, vol in enumerate(volumes if isinstance(volumes, list) else []):
            if isinstance(vol, dict) and vol.get("hostPath") is not None:
                bad.append(f"{prefix}.volumes[{i}].hostPath")
        bad += _security(f"{prefix}.securityContext", pod.get("securityContext"))
        for group in ("initContainers", "containers", "ephemeralContainers"):
            cs = pod.get(group)
            for i, c in enumerate(cs if isinstance(cs, list) else []):
                if isinstance(c, dict):
                    bad += _security(f"{prefix}.{group}[{i}].securityContext", c.get("securityContext"))
    return bad


def admit(doc: Document, allow_host_access: bool) -> None:
    """ManifestError if ``doc`` asks for access to the host (see ``host_access``) and ``allow_host_access`` is off:
    on the Podman backend kube play runs it with the Podman socket's rights (often root's)."""
    if allow_host_access:
        return
    bad = host_access(doc.obj)
    if bad:
        more = f" (and {len(bad) - 1} more: {', '.join(bad[1:4])}{', ...' if len(bad) > 4 else ''})" \
            if len(bad) > 1 else ""
        raise ManifestError(f"{describe(doc)}: {bad[0]}{more}: access to the host (host namespaces, hostPath "
                            f"volumes, privileged containers, added capabilities, unconfined profiles) is refused; "
                            f"set {_HOST_KEY} = true in [plugins.kubernetes] (MCP_EDGE_KUBERNETES_ALLOW_HOST_ACCESS"
                            f"=true) to allow it")
