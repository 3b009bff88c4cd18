"""The ``[bridge]`` table of a plugin.toml: what it accepts, how it is filled in, and the clear error (naming the
file and the key) for what it refuses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcp_edge.errors import PluginLoadError
from mcp_edge.plugin.bridge import INHERITED_ENV, check_table, prefixed
from mcp_edge.plugin.bridge.stdio import child_environ
from mcp_edge.plugin.manifest import read_manifest


def manifest(tmp_path: Path, body: str, plugin: str = "") -> Path:
    (tmp_path / "plugin.toml").write_text(f'[plugin]\nid = "mounted"\nversion = "0.1.0"\n{plugin}\n{body}\n')
    return tmp_path


def test_a_stdio_server_is_filled_in(tmp_path: Path) -> None:
    (tmp_path / "srv").mkdir()
    m = read_manifest(manifest(tmp_path, '[bridge]\ncommand = ["python3", "server.py"]\nargs = ["--quiet"]\n'
                                          'env = { A = "1" }\npass_env = ["TOKEN"]\ncwd = "srv"'))
    assert m.kind == "bridge" and m.abi == 1 and m.isolation == "inproc"
    assert m.bridge is not None
    assert m.bridge["command"] == ["python3", "server.py", "--quiet"]
    assert m.bridge["env"] == {"A": "1"} and m.bridge["pass_env"] == ["TOKEN"]
    assert m.bridge["cwd"] == str((tmp_path / "srv").resolve())
    assert m.bridge["url"] is None and m.bridge["prefix"] is None
    assert m.bridge["protocol_version"] == "2025-11-25"


def test_a_url_server_and_a_string_command(tmp_path: Path) -> None:
    t = check_table({"url": "https://box.local:8443/mcp", "headers": {"Authorization": "Bearer x"},
                     "prefix": "", "protocol_version": "2025-03-26"}, "here", tmp_path)
    assert t["url"] == "https://box.local:8443/mcp" and t["command"] is None
    assert t["headers"] == {"Authorization": "Bearer x"} and t["prefix"] == ""
    assert t["protocol_version"] == "2025-03-26"
    t = check_table({"command": "my-server", "args": ["--stdio"]}, "here", tmp_path)
    assert t["command"] == ["my-server", "--stdio"] and t["cwd"] == str(tmp_path.resolve())


BAD_TABLES = [
    ("[bridge]\n", "exactly one of 'command'"),
    ('[bridge]\ncommand = ["a"]\nurl = "http://x/mcp"', "exactly one of 'command'"),
    ("[bridge]\ncommand = []", "'command' must be a non-empty list of strings"),
    ('[bridge]\ncommand = [""]', "'command' must start with the program"),
    ('[bridge]\ncommand = ["a", 3]', "'command' must be a non-empty list of strings"),
    ('[bridge]\ncommand = ["a"]\nargs = "x"', "'args' must be a list of strings"),
    ('[bridge]\ncommand = ["a"]\nenv = { A = 1 }', "'env' must be a table of string values"),
    ('[bridge]\ncommand = ["a"]\nenv = { "A B" = "1" }', "env key 'A B' is not a variable name"),
    ('[bridge]\ncommand = ["a"]\npass_env = ["1X"]', "pass_env name '1X' is not a variable name"),
    ('[bridge]\ncommand = ["a"]\ncwd = ""', "'cwd' must be a folder"),
    ('[bridge]\ncommand = ["a"]\nheaders = { A = "b" }', "'headers' goes with 'url'"),
    ('[bridge]\nurl = "ftp://x/mcp"', "'url' must be an http:// or https:// URL"),
    ('[bridge]\nurl = "http://x/mcp"\ncwd = "."', "'cwd' goes with 'command'"),
    ('[bridge]\nurl = "http://x/mcp"\nheaders = { "Bad Name" = "v" }', "header 'Bad Name' is not a valid"),
    ('[bridge]\nurl = "http://x/mcp"\nprotocol_version = "2030-01-01"', "'protocol_version' must be one of"),
    ('[bridge]\nurl = "http://x/mcp"\nprefix = "has.dot"', "'prefix' must be up to 32 letters"),
    ('[bridge]\nurl = "http://x/mcp"\nprefx = "p"', "unknown key(s) prefx"),
    ('[bridge]\ncommand = ["a"]\nprefix = 5', "'prefix' must be up to 32 letters"),
]


def _case_id(words: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", words.lower()).strip("-")[:40]


@pytest.mark.parametrize(("body", "words"), BAD_TABLES,
                         ids=[f"{i}-{_case_id(w)}" for i, (_, w) in enumerate(BAD_TABLES)])
def test_a_bad_table_is_refused_naming_the_key(tmp_path: Path, body: str, words: str) -> None:
    folder = manifest(tmp_path, body)
    with pytest.raises(PluginLoadError) as err:
        read_manifest(folder)
    assert words in str(err.value)
    assert str(folder / "plugin.toml") in str(err.value)


def test_a_bridge_with_a_module_too_is_refused(tmp_path: Path) -> None:
    folder = manifest(tmp_path, '[bridge]\ncommand = ["a"]', plugin='module = "plugin"')
    with pytest.raises(PluginLoadError, match="set exactly one of 'module'"):
        read_manifest(folder)


def test_names_and_environment() -> None:
    assert prefixed("gh", "list_issues") == "gh_list_issues"
    assert prefixed("", "list_issues") == "list_issues"
    env = child_environ({"B": "2", "PATH": "/opt/bin"}, ["NOT_SET_ANYWHERE_XYZ"])
    assert env["B"] == "2" and env["PATH"] == "/opt/bin"
    assert set(env) <= {*INHERITED_ENV, "B"}
