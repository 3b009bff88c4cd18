"""Patches applied by the plugin itself (the Podman backend keeps the manifests, so it patches them here).

- ``merge_patch``: JSON merge patch, RFC 7386 (objects merged, ``null`` deletes, anything else replaces).
- ``json_patch``: JSON patch, RFC 6902 (add, remove, replace, move, copy, test; paths are RFC 6901 pointers).
- ``strategic_merge``: Kubernetes' strategic merge patch for the fields Pods and Deployments use: lists of
  containers, initContainers, env, volumes, volumeMounts, ports, imagePullSecrets and hostAliases merged by their
  merge keys; ``$patch: delete`` (an element or a map), ``$patch: replace`` (a map, or a list holding
  ``{"$patch": "replace"}``); ``$deleteFromPrimitiveList/<field>``; other lists replaced, as the API server does
  for lists without a merge key.

Every function returns a new document and leaves its inputs as they were; PatchError names the operation.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["MERGE_KEYS", "PatchError", "json_patch", "merge_patch", "strategic_merge"]

# field -> merge key, from the Kubernetes API's x-kubernetes-patch-merge-key of the kinds the Podman backend runs
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "tolerations": "key",
}


class PatchError(ValueError):
    """A patch that cannot be applied (the message says which operation and why)."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: ``target`` with ``patch`` merged into it."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# -- RFC 6902 --------------------------------------------------------------------------------------------------

def _pointer(path: str, op: int) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"operation {op}: path {path!r} must be empty or start with '/' (RFC 6901)")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, op: int, path: str, adding: bool) -> int:
    if adding and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise PatchError(f"operation {op}: {path!r}: {token!r} is not an array index")
    i = int(token)
    if i > len(container) or (i == len(container) and not adding):
        raise PatchError(f"operation {op}: {path!r}: index {i} is out of range (the array has {len(container)})")
    return i


def _parent(doc: Any, tokens: list[str], op: int, path: str) -> Any:
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict):
            if t not in cur:
                raise PatchError(f"operation {op}: {path!r}: {t!r} does not exist")
            cur = cur[t]
        elif isinstance(cur, list):
            cur = cur[_index(cur, t, op, path, False)]
        else:
            raise PatchError(f"operation {op}: {path!r}: {t!r} is inside a {type(cur).__name__}, not a container")
    return cur


def _get(doc: Any, path: str, op: int) -> Any:
    tokens = _pointer(path, op)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"operation {op}: {path!r} does not exist")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, op, path, False)]
    raise PatchError(f"operation {op}: {path!r}: not inside an object or an array")


def _remove(doc: Any, path: str, op: int) -> Any:
    tokens = _pointer(path, op)
    if not tokens:
        raise PatchError(f"operation {op}: cannot remove the whole document")
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"operation {op}: {path!r} does not exist")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, op, path, False))
    raise PatchError(f"operation {op}: {path!r}: not inside an object or an array")


def _add(doc: Any, path: str, value: Any, op: int, replace: bool = False) -> Any:
    tokens = _pointer(path, op)
    if not tokens:
        return value
    parent = _parent(doc, tokens, op, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"operation {op}: {path!r} does not exist (replace needs an existing value)")
        parent[last] = value
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, last, op, path, False)] = value
        else:
            parent.insert(_index(parent, last, op, path, True), value)
    else:
        raise PatchError(f"operation {op}: {path!r}: not inside an object or an array")
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902: ``doc`` with ``operations`` (a list of {op, path, ...}) applied in order, all or nothing."""
    if not isinstance(operations, list):
        raise PatchError("a JSON patch is a list of operations ({\"op\": ..., \"path\": ...})")
    out = copy.deepcopy(doc)
    for n, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise PatchError(f"operation {n}: must be an object, not {type(operation).__name__}")
        kind, path = operation.get("op"), operation.get("path")
        if not isinstance(path, str):
            raise PatchError(f"operation {n}: 'path' (a string) is missing")
        if kind in ("add", "replace", "test") and "value" not in operation:
            raise PatchError(f"operation {n} ({kind}): 'value' is missing")
        if kind in ("move", "copy") and not isinstance(operation.get("from"), str):
            raise PatchError(f"operation {n} ({kind}): 'from' (a string) is missing")
        if kind == "add":
            out = _add(out, path, copy.deepcopy(operation["value"]), n)
        elif kind == "remove":
            _remove(out, path, n)
        elif kind == "replace":
            out = _add(out, path, copy.deepcopy(operation["value"]), n, replace=True)
        elif kind == "move":
            src = operation["from"]
            if path.startswith(src + "/"):
                raise PatchError(f"operation {n} (move): cannot move {src!r} into its own child {path!r}")
            out = _add(out, path, _remove(out, src, n), n)
        elif kind == "copy":
            out = _add(out, path, copy.deepcopy(_get(out, operation["from"], n)), n)
        elif kind == "test":
            if _get(out, path, n) != operation["value"]:
                raise PatchError(f"operation {n} (test): {path!r} is not {operation['value']!r}; nothing applied")
        else:
            raise PatchError(f"operation {n}: unknown op {kind!r} (add, remove, replace, move, copy or test)")
    return out


# -- strategic merge -------------------------------------------------------------------------------------------

def strategic_merge(target: Any, patch: Any) -> Any:
    """Kubernetes' strategic merge patch of ``target`` (see the module docstring)."""
    if not isinstance(patch, dict):
        raise PatchError("a strategic merge patch is an object")
    return _smp_map(target if isinstance(target, dict) else {}, patch, "")


def _smp_map(target: dict[str, Any], patch: dict[str, Any], where: str) -> dict[str, Any]:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive not in (None, "merge"):
        raise PatchError(f"{where or 'the patch'}: unknown $patch directive {directive!r} in a map "
                         f"(replace, merge or delete)")
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if key == "$patch":
            continue
        here = f"{where}.{key}" if where else key
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(out.get(field), list) and isinstance(value, list):
                out[field] = [v for v in out[field] if v not in value]
            continue
        if key.startswith("$setElementOrder/") or key == "$retainKeys":
            continue  # ordering hints: the merged order is the target's, then new elements
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                out.pop(key, None)
            else:
                cur = out.get(key)
                out[key] = _smp_map(cur if isinstance(cur, dict) else {}, value, here)
        elif isinstance(value, list) and key in MERGE_KEYS:
            cur = out.get(key)
            out[key] = _smp_list(cur if isinstance(cur, list) else [], value, MERGE_KEYS[key], here)
        elif isinstance(value, list):
            out[key] = [copy.deepcopy(v) for v in value if not (isinstance(v, dict) and "$patch" in v)]
        else:
            out[key] = copy.deepcopy(value)
    return out


def _smp_list(target: list[Any], patch: list[Any], key: str, where: str) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [copy.deepcopy(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    out = copy.deepcopy(target)
    for n, item in enumerate(patch):
        if not isinstance(item, dict):
            raise PatchError(f"{where}[{n}]: the elements of {where.rsplit('.', 1)[-1]} are objects merged by "
                             f"{key!r}")
        if key not in item:
            raise PatchError(f"{where}[{n}]: {key!r} is missing (the merge key of "
                             f"{where.rsplit('.', 1)[-1]})")
        at = next((i for i, cur in enumerate(out) if isinstance(cur, dict) and cur.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if at is not None:
                out.pop(at)
            continue
        if at is None:
            out.append(_smp_map({}, item, f"{where}[{n}]"))
        else:
            out[at] = _smp_map(out[at], item, f"{where}[{n}]")
    return out
