"""A configuration whose fs root would contain (or lie inside) <data_dir>/plugins is refused at start, so no
client can plant a plugin through fs_write; the installed-plugins folder is scanned by the runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_edge.board.settings import Settings
from mcp_edge.errors import ConfigError
from mcp_edge.index.guard import check_file_roots
from mcp_edge.plugin.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
FS = ROOT / "plugins" / "fs"


def _registry(settings: Settings, fs_config: dict[str, object], disabled: tuple[str, ...] = ()) -> Registry:
    registry = Registry([FS], entry_points=False, config={"fs": fs_config}, disabled=disabled, settings=settings)
    registry.discover()
    return registry


@pytest.mark.parametrize(("root", "word"), [("{data}", "contains"), ("{data}/plugins", "is"),
                                            ("{data}/plugins/hello", "lies inside"), ("/", "contains"),
                                            ("../..", "contains")])
def test_fs_root_over_the_plugins_folder_is_refused(tmp_path: Path, root: str, word: str) -> None:
    data = tmp_path / "data"
    settings = Settings.load(environ={}, data_dir=data, plugin_dirs=(FS,), entry_points=False)
    registry = _registry(settings, {"root": root.format(data=data)})  # ../.. from plugin-data/fs/ is data_dir
    with pytest.raises(ConfigError, match=rf"plugin fs: its root .* {word} .*plugins, the folder plugins are "
                                          r"installed into: a client could plant"):
        check_file_roots(settings, registry)


def test_fs_root_apart_from_it_or_fs_disabled_starts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    settings = Settings.load(environ={}, data_dir=data, plugin_dirs=(FS,), entry_points=False)
    check_file_roots(settings, _registry(settings, {}))  # the default: <data_dir>/plugin-data/fs/files
    check_file_roots(settings, _registry(settings, {"root": str(tmp_path / "shared")}))
    check_file_roots(settings, _registry(settings, {"root": str(data)}, disabled=("fs",)))
    env_root = _registry(settings, {})
    env_root.environ = {"MCP_EDGE_FS_ROOT": str(data)}  # the MCP_EDGE_FS_ROOT override counts too
    with pytest.raises(ConfigError, match="contains"):
        check_file_roots(settings, env_root)


def test_serve_refuses_to_start(tmp_path: Path) -> None:
    """The real ``mcp-edge serve``: exit 2 before any plugin starts, the reason on stderr."""
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    env.update(MCP_EDGE_DATA_DIR=str(data), MCP_EDGE_PLUGIN_DIRS=str(FS), MCP_EDGE_FS_ROOT=str(data),
               MCP_EDGE_ENTRY_POINTS="0", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "serve", "--http", "--port", "0"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    assert f"its root {data.resolve()} contains {data.resolve() / 'plugins'}" in proc.stderr
    assert "serving MCP" not in proc.stderr


def test_installed_plugins_folder_is_scanned_when_it_exists(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert data / "plugins" not in Settings.load(environ={}, data_dir=data, plugin_dirs=()).plugin_dirs
    (data / "plugins").mkdir(parents=True)
    dirs = Settings.load(environ={}, data_dir=data, plugin_dirs=(FS, data / "plugins")).plugin_dirs
    assert dirs == (FS, data / "plugins")  # named twice, scanned once
    assert Settings.load(environ={}, data_dir=data, plugin_dirs=(FS,)).plugin_dirs == (FS, data / "plugins")
