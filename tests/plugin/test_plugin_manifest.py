"""plugin.toml parsing and RFC 6570 template matching."""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_helpers import FIXTURES, NATIVE_HELLO

from mcp_edge.errors import AbiMismatchError, PluginLoadError
from mcp_edge.plugin import read_manifest
from mcp_edge.plugin.uritemplate import UriTemplate


def test_fixture_manifest() -> None:
    m = read_manifest(FIXTURES / "hello")
    assert (m.id, m.version, m.kind, m.module, m.class_name, m.abi) == (
        "hello", "1.4.0", "python", "plugin", "Hello", 1)
    assert m.capabilities == {"greetings"}
    assert m.config_schema is not None and m.config_schema["properties"]["times"]["maximum"] == 10
    native = read_manifest(NATIVE_HELLO)
    assert (native.kind, native.library) == ("native", "native_hello.so")


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "plugin.toml").write_text(text)
    return tmp_path


GOOD = '[plugin]\nid = "p"\nversion = "1.0"\nabi = 1\nmodule = "plugin"\n'


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("[plugin\n", PluginLoadError, "cannot read plugin manifest"),
        ("x = 1\n", PluginLoadError, "unknown table(s) x"),
        ('[plugin]\nid = "P Q"\n', PluginLoadError, "plugin id 'P Q' is not valid"),
        (GOOD.replace('version = "1.0"\n', ""), PluginLoadError, "'version' must be a non-empty string"),
        (GOOD.replace('module = "plugin"', 'library = "x.so"\nmodule = "m"'), PluginLoadError, "exactly one of"),
        (GOOD.replace('module = "plugin"', ""), PluginLoadError, "exactly one of"),
        (GOOD + "colour = 1\n", PluginLoadError, "unknown key(s) colour in [plugin]"),
        (GOOD.replace("abi = 1", 'abi = "1"'), PluginLoadError, "'abi' must be an integer"),
        (GOOD.replace("abi = 1", "abi = 2"), AbiMismatchError,
         "speaks Python plugin API version 2, this runtime speaks version 1"),
        (GOOD.replace('module = "plugin"', 'library = "x.so"').replace("abi = 1", "abi = 3"), AbiMismatchError,
         "declares native plugin ABI 3, this runtime speaks native ABI 1"),
        (GOOD + "[requires]\nother = 2\n", PluginLoadError, "requires.other must be a string"),
        (GOOD + "capabilities = \"tools\"\n", PluginLoadError, "'capabilities' must be a list of strings"),
        (GOOD + "[config]\nfoo = 1\n", PluginLoadError, "[config] holds one key, 'schema'"),
        (GOOD + "[config.schema]\noneOf = []\n", PluginLoadError, "unsupported JSON Schema keyword(s) oneOf"),
    ],
)
def test_bad_manifest_names_file_and_field(tmp_path: Path, text: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error) as info:
        read_manifest(write(tmp_path, text))
    assert message in str(info.value)
    assert str(tmp_path / "plugin.toml") in str(info.value)


def test_abi_mismatch_names_both_versions(tmp_path: Path) -> None:
    with pytest.raises(AbiMismatchError) as info:
        read_manifest(write(tmp_path, GOOD.replace("abi = 1", "abi = 2")))
    assert (info.value.plugin_abi, info.value.runtime_abi) == (2, 1)


@pytest.mark.parametrize(
    ("template", "uri", "expected"),
    [
        ("x://items/{id}", "x://items/42", {"id": "42"}),
        ("x://items/{id}", "x://items/a%20b", {"id": "a b"}),
        ("x://items/{id}", "x://items/a/b", None),
        ("x://items/{id}", "x://items/", None),
        ("x://items/{id}", "y://items/1", None),
        ("x://{a}/{b}.json", "x://one/two.json", {"a": "one", "b": "two"}),
        ("file://{+path}", "file:///etc/hosts", {"path": "/etc/hosts"}),
        ("file://{+path}", "file:///a%20b/c", {"path": "/a b/c"}),
        ("x://{+p}/end", "x://a/b/end", {"p": "a/b"}),
        ("x://a.b/{v}", "x://aXb/1", None),
    ],
)
def test_uri_template(template: str, uri: str, expected: dict[str, str] | None) -> None:
    assert UriTemplate(template).match(uri) == expected


@pytest.mark.parametrize("template", ["x://{a,b}", "x://{?q}", "x://{a}/{a}", "x://{a", "x://a}"])
def test_uri_template_refused(template: str) -> None:
    with pytest.raises(ValueError, match="URI template"):
        UriTemplate(template)
