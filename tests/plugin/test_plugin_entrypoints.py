"""Entry-point plugins: a fake distribution on sys.path, the scan cached on disk and invalidated by mtimes."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_helpers import FIXTURES, run

from mcp_edge.plugin import NullRequestContext, PluginState, Registry, TextContent, entrypoints

EP_MODULE = '''
from mcp_edge.plugin import PluginBase, tool

class EpPlugin(PluginBase):
    id = "{id}"
    version = "{version}"
    description = "installed with pip"
    abi = {abi}
    requires = {requires}
    capabilities = frozenset({{"weather"}})
    config_schema = {{"type": "object", "properties": {{"unit": {{"type": "string", "default": "C"}}}}}}

    @tool
    async def {id}_unit(self) -> str:
        return self.config["unit"]
'''


def fake_dist(site: Path, name: str, plugin_id: str, *, version: str = "2.0.0", abi: int = 1,
              requires: str = "{}", value: str | None = None) -> None:
    """A distribution ``name`` in ``site``: a module and a dist-info with METADATA and entry_points.txt."""
    module = f"{name}_mod"
    (site / f"{module}.py").write_text(EP_MODULE.format(id=plugin_id, version=version, abi=abi, requires=requires))
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[mcp_edge.plugins]\n{plugin_id} = {value or module + ':EpPlugin'}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "site"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.endswith("_mod"):
            del sys.modules[name]


def bump_mtime(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def ids(eps: list[entrypoints.EntryPointInfo]) -> list[str]:
    return sorted(e.name for e in eps if e.name.startswith("ep"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache" / "mcp-edge"


def test_scan_is_cached_and_invalidated(site: Path, cache_dir: Path) -> None:
    fake_dist(site, "weather", "epweather")
    count = entrypoints.scan_count()
    first = entrypoints.scan(cache_dir)
    assert ids(first) == ["epweather"]
    assert entrypoints.scan_count() == count + 1
    cache = entrypoints.cache_file(cache_dir)
    assert cache.is_file() and cache.parent == cache_dir
    data = json.loads(cache.read_text())
    assert data["fingerprint"] == entrypoints.fingerprint()
    ep = next(e for e in data["entry_points"] if e["name"] == "epweather")
    assert ep == {"name": "epweather", "value": "weather_mod:EpPlugin", "dist": "weather", "version": "2.0.0"}

    # same process: the memo; a new process (memo dropped): the file; no new scan either way
    assert ids(entrypoints.scan(cache_dir)) == ["epweather"]
    entrypoints.forget()
    assert ids(entrypoints.scan(cache_dir)) == ["epweather"]
    assert entrypoints.scan_count() == count + 1

    # installing another distribution changes the folder's mtime: scanned again
    fake_dist(site, "tides", "eptides")
    bump_mtime(site)
    entrypoints.forget()
    assert ids(entrypoints.scan(cache_dir)) == ["eptides", "epweather"]
    assert entrypoints.scan_count() == count + 2

    # a stale or corrupt file is rescanned, never trusted
    cache.write_text("{not json")
    entrypoints.forget()
    assert ids(entrypoints.scan(cache_dir)) == ["eptides", "epweather"]
    assert entrypoints.scan_count() == count + 3


def test_cache_off_scans_every_time(site: Path, cache_dir: Path) -> None:
    fake_dist(site, "weather", "epweather")
    count = entrypoints.scan_count()
    entrypoints.scan(cache_dir, use_cache=False)
    entrypoints.scan(cache_dir, use_cache=False)
    entrypoints.scan(None)
    assert entrypoints.scan_count() == count + 3
    assert not cache_dir.exists()


def test_cache_settings_come_from_settings(tmp_path: Path) -> None:
    from mcp_edge.board import Settings

    s = Settings.load(environ={"XDG_CACHE_HOME": str(tmp_path), "MCP_EDGE_NO_EP_CACHE": "1"})
    assert (s.cache_dir, s.entry_point_cache) == (tmp_path / "mcp-edge", False)
    reg = Registry([FIXTURES], entry_points=True, cache_dir=s.cache_dir, use_cache=s.entry_point_cache)
    count = entrypoints.scan_count()
    reg.discover()
    assert entrypoints.scan_count() == count + 1 and not (tmp_path / "mcp-edge").exists()


def test_unwritable_cache_still_scans(site: Path, tmp_path: Path) -> None:
    fake_dist(site, "weather", "epweather")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert ids(entrypoints.scan(blocker / "mcp-edge")) == ["epweather"]  # a file: mcp-edge/ cannot be made under it


def test_entry_point_plugin_runs_with_class_metadata(site: Path) -> None:
    fake_dist(site, "weather", "epweather", version="2.1.0", requires='{"hello": ">=1.4"}')
    reg = Registry([FIXTURES], entry_points=True, environ={"MCP_EDGE_EPWEATHER_UNIT": "F"})
    recs = {r.id: r for r in reg.discover()}
    rec = recs["epweather"]
    assert (rec.kind, rec.state, rec.version) == ("entry_point", PluginState.DISCOVERED, "2.1.0")
    assert rec.source == "weather_mod:EpPlugin [weather 2.1.0]"
    run(reg.start())
    assert rec.state is PluginState.ACTIVE, rec.reason
    assert rec.requires == {"hello": ">=1.4"}
    assert {"weather", "tools"} <= rec.capabilities
    assert rec.description == "installed with pip"
    result = run(reg.call_tool("epweather_unit", {}, NullRequestContext()))
    assert result.content == [TextContent(text="F")]
    run(reg.stop())


def test_entry_point_failures(site: Path) -> None:
    fake_dist(site, "old", "epold", abi=0)
    fake_dist(site, "picky", "eppicky", requires='{"hello": ">=9"}')
    fake_dist(site, "wrongid", "epwrong", value="nowhere_mod:Nothing")
    fake_dist(site, "Bad", "Bad-Name")
    reg = Registry([FIXTURES], entry_points=True, environ={})
    run(reg.start())
    reasons = {r.id: r.reason for r in reg.records}
    assert "speaks Python plugin API version 0, this runtime speaks version 1" in str(reasons["epold"])
    assert reasons["eppicky"] == "plugin eppicky requires hello >=9, but hello is version 1.4.0"
    assert "ModuleNotFoundError" in str(reasons["epwrong"])
    assert "plugin id 'Bad-Name' is not valid" in str(reasons["Bad-Name"])


def test_entry_point_shadowed_by_folder_plugin(site: Path) -> None:
    fake_dist(site, "hello_again", "hello")
    reg = Registry([FIXTURES], entry_points=True, environ={})
    dupes = [r for r in reg.discover() if r.id == "hello"]
    assert [r.kind for r in dupes] == ["python", "entry_point"]
    assert dupes[1].state is PluginState.FAILED
    assert "duplicate plugin id hello" in str(dupes[1].reason)
