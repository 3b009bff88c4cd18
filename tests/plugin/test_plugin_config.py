"""Plugin config: defaults <- board/user config <- MCP_EDGE_<PLUGIN>_<KEY>, the schema subset, clear refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mcp_edge.errors import ConfigError, PluginConfigError, PluginLoadError
from mcp_edge.plugin.config import MAX_SCHEMA_DEPTH, check_schema, env_name, resolve_config, validate

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "greeting": {"type": "string", "default": "hello", "minLength": 1},
        "times": {"type": "integer", "default": 1, "minimum": 1, "maximum": 10},
        "ratio": {"type": "number", "default": 0.5, "exclusiveMaximum": 1},
        "loud": {"type": "boolean", "default": False},
        "tags": {"type": "array", "items": {"type": "string"}, "default": []},
        "ports": {"type": "array", "items": {"type": "integer"}, "default": [80]},
        "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
        "limits": {"type": "object", "properties": {"cpu": {"type": "integer", "default": 2}}, "default": {}},
        "name": {"type": ["string", "null"], "default": None},
    },
}


def test_defaults() -> None:
    assert resolve_config("hello", SCHEMA, {}, {}) == {
        "greeting": "hello", "times": 1, "ratio": 0.5, "loud": False, "tags": [], "ports": [80], "mode": "safe",
        "limits": {"cpu": 2}, "name": None,
    }


def test_defaults_are_copies() -> None:
    first = resolve_config("hello", SCHEMA, {}, {})
    first["tags"].append("x")
    assert resolve_config("hello", SCHEMA, {}, {})["tags"] == []


def test_supplied_config_over_defaults() -> None:
    cfg = resolve_config("hello", SCHEMA, {"times": 3, "limits": {"cpu": 4}}, {})
    assert (cfg["times"], cfg["limits"], cfg["greeting"]) == (3, {"cpu": 4}, "hello")


@pytest.mark.parametrize(
    ("var", "text", "key", "value"),
    [
        ("MCP_EDGE_HELLO_TIMES", "7", "times", 7),
        ("MCP_EDGE_HELLO_TIMES", " 0x8 ", "times", 8),
        ("MCP_EDGE_HELLO_RATIO", "0.25", "ratio", 0.25),
        ("MCP_EDGE_HELLO_LOUD", "yes", "loud", True),
        ("MCP_EDGE_HELLO_LOUD", "0", "loud", False),
        ("MCP_EDGE_HELLO_LOUD", "TRUE", "loud", True),
        ("MCP_EDGE_HELLO_GREETING", "hi there", "greeting", "hi there"),
        ("MCP_EDGE_HELLO_TAGS", "a, b,c", "tags", ["a", "b", "c"]),
        ("MCP_EDGE_HELLO_TAGS", '["x,y", "z"]', "tags", ["x,y", "z"]),
        ("MCP_EDGE_HELLO_TAGS", "", "tags", []),
        ("MCP_EDGE_HELLO_PORTS", "80,443", "ports", [80, 443]),
        ("MCP_EDGE_HELLO_LIMITS", '{"cpu": 8}', "limits", {"cpu": 8}),
        ("MCP_EDGE_HELLO_NAME", "box", "name", "box"),
    ],
)
def test_env_overrides(var: str, text: str, key: str, value: Any) -> None:
    assert resolve_config("hello", SCHEMA, {"times": 2}, {var: text})[key] == value


def test_env_beats_config() -> None:
    assert resolve_config("hello", SCHEMA, {"times": 2}, {"MCP_EDGE_HELLO_TIMES": "5"})["times"] == 5


def test_env_name_and_other_plugins_ignored() -> None:
    assert env_name("native-hello", "max.size") == "MCP_EDGE_NATIVE_HELLO_MAX_SIZE"
    assert resolve_config("hello", SCHEMA, {}, {"MCP_EDGE_OTHER_TIMES": "x", "MCP_EDGE_HELLO_NOPE": "1"})["times"] == 1


@pytest.mark.parametrize(
    ("supplied", "env", "message"),
    [
        ({}, {"MCP_EDGE_HELLO_TIMES": "many"},
         "plugin hello: config key 'times' from MCP_EDGE_HELLO_TIMES='many': not an integer"),
        ({}, {"MCP_EDGE_HELLO_LOUD": "maybe"}, "config key 'loud' from MCP_EDGE_HELLO_LOUD='maybe': not a boolean"),
        ({}, {"MCP_EDGE_HELLO_PORTS": "80,http"},
         "config key 'ports' from MCP_EDGE_HELLO_PORTS='80,http': not an integer"),
        ({}, {"MCP_EDGE_HELLO_TIMES": "11"}, "plugin hello: config key 'times' must be at most 10, got 11 "
                                              "(from MCP_EDGE_HELLO_TIMES)"),
        ({"times": "3"}, {}, "config key 'times' expected integer, got string '3' (from config)"),
        ({"mode": "slow"}, {}, "config key 'mode' must be one of 'fast', 'safe', got 'slow' (from config)"),
        ({"ratio": 1}, {}, "config key 'ratio' must be less than 1, got 1"),
        ({"greeting": ""}, {}, "config key 'greeting' must be at least 1 characters long"),
        ({"tags": ["a", 2]}, {}, "config key 'tags[1]' expected string, got integer 2"),
        ({"limits": {"cpu": "x"}}, {}, "config key 'limits.cpu' expected integer"),
        ({"colour": "red"}, {}, "config key 'colour' is not a known key (known: greeting, limits,"),
    ],
)
def test_bad_config_names_plugin_key_and_problem(supplied: dict[str, Any], env: dict[str, str], message: str) -> None:
    with pytest.raises(PluginConfigError) as info:
        resolve_config("hello", SCHEMA, supplied, env)
    assert message in str(info.value)
    assert isinstance(info.value, ConfigError)


def test_no_schema_passes_config_through() -> None:
    assert resolve_config("x", None, {"a": 1}, {"MCP_EDGE_X_A": "2"}) == {"a": 1}


def test_validate_subset() -> None:
    assert validate(3, {"type": "integer", "minimum": 0}) is None
    assert validate(3.0, {"type": "integer"}) is None
    assert validate(True, {"type": "integer"}) is not None
    assert validate([1, 1], {"type": "array", "uniqueItems": True}) == ("", "items must be unique")
    assert validate({"a": 1}, {"required": ["b"]}) == ("b", "is required")
    assert validate("abc", {"pattern": "^a", "maxLength": 3}) is None
    assert validate(5, {"const": 4}) == ("", "must be 4, got 5")
    assert validate({"x": "s"}, {"additionalProperties": {"type": "integer"}}) == (
        "x", "expected integer, got string 's'")


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "anyOf": []}, "unsupported JSON Schema keyword(s) anyOf"),
        ({"type": "text"}, "'type' must be one of"),
        ({"properties": {"a": {"$ref": "#/x"}}}, "at a: unsupported JSON Schema keyword(s) $ref"),
        ({"properties": {"a": {"type": "integer", "default": "x"}}}, "at a: its default 'x' breaks its own schema"),
        ({"pattern": "("}, "is not a regular expression"),
        ({"required": "a"}, "'required' must be a list"),
        ([], "a schema must be a table"),
        # Keyword values of the wrong kind, refused when read (validate/resolve_config used to raise TypeError).
        ({"properties": {"a": {"minimum": "1"}}}, "at a: 'minimum' must be a number, got '1'"),
        ({"exclusiveMaximum": True}, "'exclusiveMaximum' must be a number, got True"),
        ({"properties": {"a": {"items": {"minLength": "2"}}}}, "at a[items]: 'minLength' must be a non-negative"),
        ({"minItems": None}, "'minItems' must be a non-negative integer, got None"),
        ({"maxLength": -1}, "'maxLength' must be a non-negative integer, got -1"),
        ({"required": None}, "'required' must be a list of property names, got None"),
        ({"required": ["a", 1]}, "'required' must be a list of property names"),
        ({"uniqueItems": "yes"}, "'uniqueItems' must be true or false"),
        ({"enum": None}, "'enum' must be a list"),
        ({"pattern": 3}, "'pattern' must be a string"),
        ({"properties": None}, "'properties' must be a table"),
        ({"type": ["string", 1]}, "'type' must be one of"),
        ({"default": float("nan")}, "'default' holds nan, which is not a JSON value"),
        ({"default": json.loads("[" * 40 + "]" * 40)}, "'default' is nested too deeply"),
    ],
)
def test_unsupported_schema_refused(schema: Any, message: str) -> None:
    with pytest.raises(PluginLoadError) as info:
        check_schema(schema, "plugin.toml: [config.schema]")
    assert message in str(info.value)
    assert str(info.value).startswith("plugin.toml: [config.schema]")


def test_deep_schema_refused() -> None:
    """Properties nested past MAX_SCHEMA_DEPTH are refused, named, without walking (or recursing) further."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(1500):
        schema = {"properties": {"a": schema}}
    with pytest.raises(PluginLoadError, match="nested too deeply"):
        check_schema(schema, "here")
    shallow: dict[str, Any] = {"type": "string"}
    for _ in range(MAX_SCHEMA_DEPTH):
        shallow = {"properties": {"a": shallow}}
    check_schema(shallow, "here")


def test_deep_env_json_refused() -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array"}, "opts": {"type": "object"}}}
    deep = ("[" * 5000, "[" * 40 + "]" * 40)
    cases = (("tags", "MCP_EDGE_HELLO_TAGS", deep), ("opts", "MCP_EDGE_HELLO_OPTS", (*deep, '{"a":' * 5000)))
    for key, var, texts in cases:
        for text in texts:
            with pytest.raises(PluginConfigError, match=f"config key '{key}' from {var}=.*nested too deeply"):
                resolve_config("hello", schema, {}, {var: text})


def test_supported_schema_accepted() -> None:
    check_schema(SCHEMA, "here")
