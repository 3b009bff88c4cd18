"""JSON Schemas from type hints (through msgspec), and descriptions from docstrings.

MCP wants a tool's ``inputSchema`` and ``outputSchema`` to be a plain object
schema at the top (``{"type": "object", "properties": ..., "required": ...}``),
not a ``$ref``; types referenced from inside (nested Structs, Enums) stay in the
schema's own ``$defs``.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from typing import Any

import msgspec

__all__ = ["doc_description", "doc_params", "is_structured", "object_schema", "type_schema"]

_REF_TEMPLATE = "#/$defs/{name}"
_REF_PREFIX = "#/$defs/"


def _refs(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            out.add(ref[len(_REF_PREFIX):])
        for v in node.values():
            _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)


def _with_defs(schema: dict[str, Any], components: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` plus a ``$defs`` holding every component it reaches (transitively), if any."""
    needed: set[str] = set()
    _refs(schema, needed)
    todo = list(needed)
    while todo:
        found: set[str] = set()
        _refs(components[todo.pop()], found)
        for name in found - needed:
            needed.add(name)
            todo.append(name)
    if needed:
        schema["$defs"] = {name: components[name] for name in sorted(needed)}
    return schema


def type_schema(tp: Any) -> dict[str, Any]:
    """The JSON Schema of one type, with the top ``$ref`` (Structs, TypedDicts, dataclasses) inlined."""
    (top,), components = msgspec.json.schema_components([tp], ref_template=_REF_TEMPLATE)
    ref = top.get("$ref")
    if isinstance(ref, str) and len(top) == 1 and ref.startswith(_REF_PREFIX):
        name = ref[len(_REF_PREFIX):]
        top = dict(components[name])
        self_referencing: set[str] = set()
        _refs(top, self_referencing)
        if name not in self_referencing:
            components = {k: v for k, v in components.items() if k != name}
    return _with_defs(dict(top), components)


def object_schema(struct: type[msgspec.Struct], descriptions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The input schema of a handler's arguments Struct: an inlined object schema without its synthetic title."""
    schema = type_schema(struct)
    schema.pop("title", None)
    schema.setdefault("properties", {})
    for name, text in (descriptions or {}).items():
        prop = schema["properties"].get(name)
        if isinstance(prop, dict) and "description" not in prop:
            schema["properties"][name] = {"description": text, **prop}
    return schema


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def is_structured(tp: Any) -> bool:
    """True for a return annotation that makes ``structuredContent``: Struct, TypedDict, dataclass, dict[str, X]."""
    tp = _strip(tp)
    if isinstance(tp, type):
        if tp.__module__ == "mcp_edge.plugin.types":
            return False  # ToolResult, content blocks: results of their own, not structured output
        if issubclass(tp, msgspec.Struct):
            return not tp.__struct_config__.array_like
        if typing.is_typeddict(tp) or dataclasses.is_dataclass(tp):
            return True
        return tp is dict
    origin = typing.get_origin(tp)
    if origin in (dict, Mapping):
        args = typing.get_args(tp)
        return not args or _strip(args[0]) is str
    return False


# --- docstrings ------------------------------------------------------------------------------

_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params)\s*:?\s*$")
_NUMPY_RULE = re.compile(r"^\s*-{3,}\s*$")
_OTHER_SECTION = re.compile(
    r"^\s*(Returns?|Yields?|Raises?|Examples?|Notes?|See Also|Attributes|References|Warns?)\s*:?\s*$"
)
_GOOGLE_PARAM = re.compile(r"^(\*{0,2}\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_PARAM = re.compile(r"^(\w+)\s*(?::.*)?$")


def doc_description(doc: str | None) -> str | None:
    """The first paragraph of a docstring, lines joined, or None."""
    if not doc:
        return None
    import inspect

    text = inspect.cleandoc(doc)
    para = text.split("\n\n", 1)[0].strip()
    if _SECTION.match(para.splitlines()[0] if para else ""):
        return None
    return " ".join(line.strip() for line in para.splitlines()) or None


def doc_params(doc: str | None) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` or numpydoc ``Parameters`` section."""
    if not doc:
        return {}
    import inspect

    lines = inspect.cleandoc(doc).splitlines()
    out: dict[str, str] = {}
    i = 0
    while i < len(lines):
        if not _SECTION.match(lines[i]):
            i += 1
            continue
        numpy = i + 1 < len(lines) and bool(_NUMPY_RULE.match(lines[i + 1]))
        i += 2 if numpy else 1
        current: str | None = None
        base_indent: int | None = None
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            if _OTHER_SECTION.match(line) or _SECTION.match(line):
                break
            if not stripped:
                i += 1
                if numpy and i < len(lines) and _NUMPY_RULE.match(lines[i]):
                    break
                continue
            indent = len(line) - len(line.lstrip())
            if base_indent is None:
                base_indent = indent
            if indent <= base_indent:
                m = (_NUMPY_PARAM if numpy else _GOOGLE_PARAM).match(stripped)
                if m is None:
                    break
                current = m.group(1).lstrip("*")
                first = "" if numpy else m.group(2).strip()
                out[current] = first
            elif current is not None:
                out[current] = f"{out[current]} {stripped}".strip()
            i += 1
        break
    return {k: v for k, v in out.items() if v}
