"""The commands end to end (click's runner, the real Settings from the environment): index keygen and build,
plugin sign, search, info, install, update, verify, remove; refusals exit non-zero with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from index_helpers import PLUGIN_ID, base_url, serve_folder, write_plugin

from mcp_edge.commands import cli


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"MCP_EDGE_DATA_DIR": str(tmp_path / "data"), "MCP_EDGE_TRUST_DIR": str(tmp_path / "trust"),
            "MCP_EDGE_PLUGIN_INDEX": "", "MCP_EDGE_PLUGIN_DIRS": ""}


def _run(env: dict[str, str], *args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == code, (args, result.output)
    return result.output


def test_publish_install_update_verify_remove(tmp_path: Path, env: dict[str, str]) -> None:
    key = tmp_path / "publisher.pem"
    assert "key id" in _run(env, "index", "keygen", str(key))
    assert "never overwritten" in _run(env, "index", "keygen", str(key), code=2)
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "publisher.pub").write_text(Path(f"{key}.pub").read_text())
    src, www = tmp_path / "src", tmp_path / "www"
    write_plugin(src / PLUGIN_ID, "1.0.0", "v1")
    write_plugin(src / "other", "0.1.0", "o", plugin_id="other")
    assert "index version 1" in _run(env, "index", "build", str(src), "-o", str(www), "--key", str(key))
    with serve_folder(www) as http:
        env["MCP_EDGE_PLUGIN_INDEX"] = base_url(http) + "index.json"
        found = json.loads(_run(env, "plugin", "search", "--json"))
        assert [e["id"] for e in found] == ["hello", "other"]
        assert "hello" in _run(env, "plugin", "search", "which version")
        assert "installed: no" in _run(env, "plugin", "info", PLUGIN_ID)
        assert "hello: installed 1.0.0" in _run(env, "plugin", "install", f"{PLUGIN_ID}==1.0.0")
        assert "already installed" in _run(env, "plugin", "install", PLUGIN_ID)
        assert "lists no plugin nothere" in _run(env, "plugin", "install", "nothere", code=2)
        assert "OK" in _run(env, "plugin", "verify", PLUGIN_ID)

        write_plugin(src / PLUGIN_ID, "1.1.0", "v1.1")
        assert "index version 2" in _run(env, "index", "build", str(src), "-o", str(www), "--key", str(key))
        assert "1.0.0 -> 1.1.0" in _run(env, "plugin", "update", "--auto")
        assert "up to date" in _run(env, "plugin", "update", PLUGIN_ID)
        info = json.loads(_run(env, "plugin", "info", PLUGIN_ID, "--json"))
        assert [v["version"] for v in info["versions"]] == ["1.1.0", "1.0.0"] and info["index_version"] == 2
        assert info["installed"]["version"] == "1.1.0"

        installed = tmp_path / "data" / "plugins" / PLUGIN_ID / "plugin.py"
        installed.write_text(installed.read_text() + "# planted\n")
        assert "FAILED" in _run(env, "plugin", "verify", code=1)
        assert "hello: removed (was 1.1.0)" in _run(env, "plugin", "remove", PLUGIN_ID)
        assert "no plugin installed from the index" in _run(env, "plugin", "verify")
        # a publisher that lowers the version: the box refuses it
        assert "is not above the version already" in _run(env, "index", "build", str(src), "-o", str(www),
                                                          "--key", str(key), "--version", "1", code=2)


def test_sign_and_verify_an_artifact(tmp_path: Path, env: dict[str, str]) -> None:
    key = tmp_path / "publisher.pem"
    _run(env, "index", "keygen", str(key))
    (tmp_path / "trust").mkdir()
    (tmp_path / "trust" / "publisher.pub").write_text(Path(f"{key}.pub").read_text())
    artifact = tmp_path / "mine.tar.gz"
    artifact.write_bytes(b"an artifact's bytes")
    assert "nothing vouches for it" in _run(env, "plugin", "verify", str(artifact), code=1)
    assert _run(env, "plugin", "sign", str(artifact), "--key", str(key)).strip() == f"{artifact}.sig"
    assert "OK (signed_by" in _run(env, "plugin", "verify", str(artifact))
    artifact.write_bytes(b"an artifact's bytes, changed")
    assert "bad signature" in _run(env, "plugin", "verify", str(artifact), code=1)


def test_update_auto_without_an_index_does_nothing(env: dict[str, str]) -> None:
    assert "nothing to update" in _run(env, "plugin", "update", "--auto")
    assert "no plugin index: set plugin_index" in _run(env, "plugin", "update", code=2)


def test_plugins_list_is_still_there(tmp_path: Path, env: dict[str, str]) -> None:
    write_plugin(tmp_path / "dirs" / PLUGIN_ID, "1.0.0", "v1")
    rows = json.loads(_run(env, "plugins", "list", "--json", "--no-entry-points", "--plugin-dir",
                           str(tmp_path / "dirs")))
    assert PLUGIN_ID in {r["id"] for r in rows}


def test_timer_units(tmp_path: Path, env: dict[str, str]) -> None:
    env["MCP_EDGE_PLUGIN_UPDATE_INTERVAL_S"] = "3600"
    out = tmp_path / "units"
    _run(env, "plugin", "timer-units", "-o", str(out), "--exec", "/usr/bin/mcp-edge", "--user", "mcp")
    service = (out / "mcp-edge-plugin-update.service").read_text()
    timer = (out / "mcp-edge-plugin-update.timer").read_text()
    assert "ExecStart=/usr/bin/mcp-edge plugin update --auto" in service
    assert "User=mcp" in service and f"ReadWritePaths={tmp_path / 'data'}" in service
    assert "ProtectSystem=strict" in service and "Type=oneshot" in service
    assert "OnUnitActiveSec=3600" in timer and "WantedBy=timers.target" in timer
    assert "absolute path" in _run(env, "plugin", "timer-units", "-o", str(out), "--exec", "mcp-edge", code=2)
