"""The plugin manifest and config loader under arbitrary input: only the project's own errors come out.

``read_manifest`` on any ``plugin.toml`` text gives a Manifest or PluginLoadError; ``check_schema`` on any
value refuses it with PluginLoadError or accepts it; with an accepted schema, ``validate`` returns None or a
(path, message) pair for any value, and ``resolve_config`` (config and an environment override) returns a
dict or raises PluginConfigError. Never TypeError, KeyError, RecursionError...
"""

from __future__ import annotations

from typing import Any

from fuzzing import examples
from harness import check_manifest_parts, check_schema_value
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import json_values, manifests, schema_values

env_texts = st.one_of(st.none(), st.text(max_size=20), st.sampled_from(["1", "0x10", "yes", "[1, 2]", "a, b",
                                                                         '{"a": 1}', "null", "1e400", "[" * 5000]))


@settings(max_examples=examples(2.0))
@given(manifest=manifests(), env_text=env_texts)
def test_any_manifest(manifest: tuple[bytes, Any, Any], env_text: str | None) -> None:
    text, value, _schema = manifest
    check_manifest_parts(text, value, env_text)


@settings(max_examples=examples(2.0))
@given(schema=st.one_of(schema_values, json_values), value=json_values, env_text=env_texts)
def test_any_schema_and_config(schema: Any, value: Any, env_text: str | None) -> None:
    check_schema_value(schema, value, env_text)


@settings(max_examples=examples(0.2))
@given(depth=st.integers(min_value=1, max_value=3000), kind=st.sampled_from(["array", "table", "schema"]))
def test_deep_manifest(depth: int, kind: str) -> None:
    """Nesting deeper than the recursion limit in plugin.toml or in a schema."""
    head = b'[plugin]\nid = "p"\nversion = "1"\nabi = 1\nmodule = "m"\n'
    if kind == "array":
        text = head + b"[config.schema]\ndefault = " + b"[" * depth + b"]" * depth + b"\n"
    elif kind == "table":
        text = head + b"[config.schema]\nx = " + b"{a = " * depth + b"1" + b"}" * depth + b"\n"
    else:
        text = head + b"[config.schema" + b".properties.a" * depth + b"]\ntype = \"string\"\n"
    check_manifest_parts(text, {"a": "b"}, None)
