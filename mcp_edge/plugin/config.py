"""Plugin configuration: schema defaults, then board/user config, then ``MCP_EDGE_<PLUGIN>_<KEY>``; validated.

The schema is JSON Schema, the subset a config needs, checked by this small
validator: ``type`` (one or a list of ``object``, ``array``, ``string``,
``integer``, ``number``, ``boolean``, ``null``), ``properties``, ``required``,
``additionalProperties`` (boolean or schema), ``items``, ``enum``, ``const``,
``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum``,
``minLength``, ``maxLength``, ``pattern``, ``minItems``, ``maxItems``,
``uniqueItems``, ``default``, and the annotations ``title``, ``description``,
``examples``, ``format``, ``$schema``, ``$comment``, ``deprecated``. A schema
using any other keyword is refused when the plugin is read, so nothing is
silently unchecked. (A validator of the full standard — jsonschema,
fastjsonschema — costs 10-100 ms of import or code generation per start for
checks that run once; this one imports nothing and checks a config in
microseconds.)

Environment overrides exist for the top-level properties: ``MCP_EDGE_HELLO_TIMES=3``
sets ``times`` of plugin ``hello`` (id and key upper-cased, other characters
``_``). The text is parsed per the property's type: integer, number, boolean
(``1/0/true/false/yes/no/on/off``), string, array (JSON, or comma-separated
items parsed per ``items``), object (JSON).
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from collections.abc import Mapping
from typing import Any

from mcp_edge.errors import PluginConfigError, PluginLoadError

__all__ = ["check_schema", "env_name", "env_prefix", "resolve_config", "validate"]

_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")
_VALIDATING = {
    "type", "properties", "required", "additionalProperties", "items", "enum", "const", "minimum", "maximum",
    "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems",
    "uniqueItems", "default",
}
_ANNOTATIONS = {"title", "description", "examples", "format", "$schema", "$comment", "deprecated", "readOnly"}
_BOUNDS = (("minimum", "at least"), ("maximum", "at most"), ("exclusiveMinimum", "more than"),
           ("exclusiveMaximum", "less than"))
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


_REPR = reprlib.Repr()
_REPR.maxlevel = 6
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = 200
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 30


def _show(value: object) -> str:
    """``repr(value)`` for a message: a few levels deep and cut short, so any value (however nested) can be shown."""
    return _REPR.repr(value)


def _name(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "_", text.upper())


def env_prefix(plugin_id: str) -> str:
    """``MCP_EDGE_<PLUGIN>_``: the prefix of a plugin's environment overrides."""
    return f"MCP_EDGE_{_name(plugin_id)}_"


def env_name(plugin_id: str, key: str) -> str:
    """The environment variable that overrides ``key`` of plugin ``plugin_id``."""
    return env_prefix(plugin_id) + _name(key)


# --- the schema itself -------------------------------------------------------------------------


MAX_SCHEMA_DEPTH = 32
"""How deep a schema may nest (subschemas in ``properties``/``items``/``additionalProperties``) and how deep a
JSON value in it (``default``, ``enum``, ``const``, ``examples``) or an environment override may nest: a config
needs a few levels; the limit keeps every recursive walk here far from Python's recursion limit."""

_COUNTS = ("minLength", "maxLength", "minItems", "maxItems")


def _too_deep(value: object, limit: int = MAX_SCHEMA_DEPTH) -> bool:
    """Whether ``value`` nests lists/tables more than ``limit`` deep; iterative, so any depth is safe to ask about."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _not_json(value: object) -> object | None:
    """The first part of ``value`` (known not too deep) that is no JSON value (a TOML date, a set...), else None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, str | bool | int):
            continue
        if isinstance(item, float):
            if math.isnan(item):
                return item
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, Mapping):
            if not all(isinstance(k, str) for k in item):
                return item
            stack.extend(item.values())
        else:
            return item
    return None


def check_schema(schema: object, where: str, path: str = "", depth: int = 0) -> None:
    """PluginLoadError naming ``where`` and the place, unless ``schema`` is in the supported subset.

    Every keyword's value is checked to be of the kind ``validate`` and ``resolve_config`` rely on, so an
    accepted schema never makes them fail with anything but a (path, message) problem or PluginConfigError.
    """
    at = f"{where}{' at ' + path if path else ''}"
    if depth > MAX_SCHEMA_DEPTH:
        raise PluginLoadError(f"{at}: the schema is nested too deeply (more than {MAX_SCHEMA_DEPTH} levels)")
    if not isinstance(schema, Mapping):
        raise PluginLoadError(f"{at}: a schema must be a table (object), got {_show(schema)}")
    if not all(isinstance(k, str) for k in schema):
        raise PluginLoadError(f"{at}: schema keywords must be strings")
    unknown = set(schema) - _VALIDATING - _ANNOTATIONS
    if unknown:
        raise PluginLoadError(
            f"{at}: unsupported JSON Schema keyword(s) {', '.join(sorted(unknown))} "
            f"(supported: {', '.join(sorted(_VALIDATING))})"
        )
    types = schema.get("type")
    if types is not None:
        listed = [types] if isinstance(types, str) else types
        if not isinstance(listed, list) or not listed or any(
            not isinstance(t, str) or t not in _TYPES for t in listed
        ):
            raise PluginLoadError(
                f"{at}: 'type' must be one of {', '.join(_TYPES)} or a list of them, got {_show(types)}"
            )
    for key in ("default", "enum", "const", "examples"):
        if key not in schema:
            continue
        if _too_deep(schema[key]):
            raise PluginLoadError(f"{at}: '{key}' is nested too deeply (more than {MAX_SCHEMA_DEPTH} levels)")
        odd = _not_json(schema[key])
        if odd is not None:
            raise PluginLoadError(f"{at}: '{key}' holds {_show(odd)}, which is not a JSON value")
    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = schema.get(key, 0)
        if not isinstance(bound, int | float) or isinstance(bound, bool) or (
            isinstance(bound, float) and math.isnan(bound)
        ):
            raise PluginLoadError(f"{at}: '{key}' must be a number, got {_show(bound)}")
    for key in _COUNTS:
        count = schema.get(key, 0)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise PluginLoadError(f"{at}: '{key}' must be a non-negative integer, got {_show(count)}")
    if not isinstance(schema.get("uniqueItems", False), bool):
        raise PluginLoadError(f"{at}: 'uniqueItems' must be true or false, got {_show(schema['uniqueItems'])}")
    if "required" in schema:
        required = schema["required"]
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise PluginLoadError(f"{at}: 'required' must be a list of property names, got {_show(required)}")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise PluginLoadError(f"{at}: 'enum' must be a list, got {_show(schema['enum'])}")
    if "pattern" in schema:
        pattern = schema["pattern"]
        if not isinstance(pattern, str):
            raise PluginLoadError(f"{at}: 'pattern' must be a string (a regular expression), got {_show(pattern)}")
        try:
            re.compile(pattern)
        except (re.error, RecursionError, OverflowError, ValueError) as exc:
            raise PluginLoadError(f"{at}: 'pattern' {_show(pattern)} is not a regular expression: {exc}") from None
    if "properties" in schema:
        props = schema["properties"]
        if not isinstance(props, Mapping):
            raise PluginLoadError(f"{at}: 'properties' must be a table, got {_show(props)}")
        for key, sub in props.items():
            if not isinstance(key, str):
                raise PluginLoadError(f"{at}: property names must be strings, got {_show(key)}")
            check_schema(sub, where, f"{path}.{key}" if path else key, depth + 1)
    for key in ("items", "additionalProperties"):
        if key in schema and not isinstance(schema[key], bool):
            check_schema(schema[key], where, f"{path}[{key}]", depth + 1)
    if "default" in schema:
        problem = validate(schema["default"], schema)
        if problem:
            raise PluginLoadError(
                f"{at}: its default {_show(schema['default'])} breaks its own schema: {problem[1]}"
            )


# --- validation --------------------------------------------------------------------------------


def _type_ok(value: Any, name: str) -> bool:
    if name == "object":
        return isinstance(value, Mapping)
    if name == "array":
        return isinstance(value, list | tuple)
    if name == "string":
        return isinstance(value, str)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and not (
            isinstance(value, float) and math.isnan(value)
        )
    if name == "boolean":
        return isinstance(value, bool)
    return value is None


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "array", "object"):
        if _type_ok(value, name):
            return name
    return type(value).__name__


def validate(value: Any, schema: Mapping[str, Any], path: str = "") -> tuple[str, str] | None:
    """The first problem of ``value`` against ``schema`` as (path, message), or None when it conforms."""
    types = schema.get("type")
    if types is not None:
        listed = [types] if isinstance(types, str) else types
        if not any(_type_ok(value, t) for t in listed):
            return path, f"expected {' or '.join(listed)}, got {_json_type(value)} {_show(value)}"
    if "const" in schema and not _json_equal(value, schema["const"]):
        return path, f"must be {_show(schema['const'])}, got {_show(value)}"
    enum = schema.get("enum")
    if enum is not None and not any(_json_equal(value, e) for e in enum):
        return path, f"must be one of {', '.join(_show(e) for e in enum)}, got {_show(value)}"
    if isinstance(value, int | float) and not isinstance(value, bool):
        for key, words in _BOUNDS:
            bound = schema.get(key)
            if bound is None:
                continue
            if (value < bound if key == "minimum" else value > bound if key == "maximum"
                    else value <= bound if key == "exclusiveMinimum" else value >= bound):
                return path, f"must be {words} {bound}, got {_show(value)}"
    if isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            return path, f"must be at least {schema['minLength']} characters long, got {_show(value)}"
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return path, f"must be at most {schema['maxLength']} characters long, got {_show(value)}"
        if "pattern" in schema and re.search(schema["pattern"], value) is None:
            return path, f"must match the pattern {schema['pattern']!r}, got {_show(value)}"
    if isinstance(value, list | tuple):
        if len(value) < schema.get("minItems", 0):
            return path, f"must have at least {schema['minItems']} items, got {len(value)}"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return path, f"must have at most {schema['maxItems']} items, got {len(value)}"
        if schema.get("uniqueItems"):
            try:
                distinct = len({json.dumps(v, sort_keys=True, default=str) for v in value})
            except RecursionError:  # items nested deeper than the encoder goes (a caller's value, not JSON text)
                return path, "items are nested too deeply to compare"
            if distinct < len(value):
                return path, "items must be unique"
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                problem = validate(item, items, f"{path}[{i}]")
                if problem:
                    return problem
        elif items is False and value:
            return path, "must be empty"
    if isinstance(value, Mapping):
        for key in schema.get("required", ()):
            if key not in value:
                return _join(path, key), "is required"
        props: Mapping[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = props.get(key)
            if sub is not None:
                problem = validate(item, sub, _join(path, key))
                if problem:
                    return problem
            elif extra is False:
                known = ", ".join(sorted(props)) or "none"
                return _join(path, key), f"is not a known key (known: {known})"
            elif isinstance(extra, Mapping):
                problem = validate(item, extra, _join(path, key))
                if problem:
                    return problem
    return None


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``true`` is not ``1`` (Python's ``True == 1`` is), numbers compare by value (``1 == 1.0``)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and bool(a == b)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _with_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` with the defaults of the schema's properties filled in, recursively (a copy)."""
    if not isinstance(value, Mapping):
        return value
    out = dict(value)
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = json.loads(json.dumps(sub["default"]))
        if key in out:
            out[key] = _with_defaults(out[key], sub)
    return out


# --- environment -------------------------------------------------------------------------------


def _parse_env(text: str, schema: Mapping[str, Any]) -> Any:
    """``text`` as a value of ``schema``'s type; ValueError with the reason if it is not one."""
    types = schema.get("type")
    listed = ([types] if isinstance(types, str) else list(types)) if types is not None else ["string"]
    problems: list[str] = []
    for name in listed:
        try:
            return _parse_as(text, name, schema)
        except ValueError as exc:
            problems.append(str(exc))
    raise ValueError("; ".join(problems))


def _env_json(text: str, what: str) -> Any:
    """``text`` parsed as JSON; ValueError if it is not JSON or nests deeper than MAX_SCHEMA_DEPTH."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not a JSON {what}: {exc}") from None
    except RecursionError:  # json.loads recurses per level: "[[[[..." thousands deep
        value = None
        deep = True
    else:
        deep = _too_deep(value)
    if deep:
        raise ValueError(f"not a JSON {what}: nested too deeply (more than {MAX_SCHEMA_DEPTH} levels)")
    return value


def _parse_as(text: str, name: str, schema: Mapping[str, Any]) -> Any:
    stripped = text.strip()
    if name == "string":
        return text
    if name == "integer":
        try:
            return int(stripped, 0) if stripped[:2].lower() in ("0x", "0o", "0b") else int(stripped)
        except ValueError:
            raise ValueError("not an integer") from None
    if name == "number":
        try:
            return float(stripped)
        except ValueError:
            raise ValueError("not a number") from None
    if name == "boolean":
        low = stripped.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("not a boolean (1/0, true/false, yes/no, on/off)")
    if name == "null":
        if stripped.lower() in ("", "null", "none"):
            return None
        raise ValueError("not null")
    if name == "array":
        if stripped.startswith("["):
            value = _env_json(stripped, "array")
            if not isinstance(value, list):
                raise ValueError("not a JSON array")
            return value
        if not stripped:
            return []
        items = schema.get("items")
        parts = [p.strip() for p in stripped.split(",")]
        return [_parse_env(p, items) if isinstance(items, Mapping) else p for p in parts]
    if name == "object":
        value = _env_json(stripped, "object")
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value
    raise ValueError(f"unknown type {name}")


def resolve_config(
    plugin_id: str,
    schema: Mapping[str, Any] | None,
    supplied: Mapping[str, Any] | None,
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """A plugin's config: schema defaults <- ``supplied`` (board/user) <- ``environ``; validated.

    ``environ`` is the runtime's (``settings.environ``), never read here from the process.
    PluginConfigError naming the plugin, the key, the problem and where the value came from.
    """
    supplied = dict(supplied or {})
    if schema is None:
        return supplied
    sources = dict.fromkeys(supplied, "config")
    props: Mapping[str, Any] = schema.get("properties", {})
    prefix = env_prefix(plugin_id)
    by_env = {prefix + _name(key): key for key in props}
    merged = dict(supplied)
    for var, text in environ.items():
        key = by_env.get(var)
        if key is None:
            continue
        try:
            merged[key] = _parse_env(text, props[key])
        except ValueError as exc:
            raise PluginConfigError(
                f"plugin {plugin_id}: config key '{key}' from {var}={_show(text)}: {exc}"
            ) from None
        sources[key] = var
    merged = dict(_with_defaults(merged, schema))
    problem = validate(merged, schema)
    if problem is not None:
        where, message = problem
        top = where.split(".", 1)[0].split("[", 1)[0]
        source = sources.get(top, "the default" if top in props else "config")
        raise PluginConfigError(f"plugin {plugin_id}: config key '{where or '(root)'}' {message} (from {source})")
    return merged
