"""A worker rebuilds exactly the runtime's Settings from what INIT carries (msgpack), --set overrides included."""

from __future__ import annotations

from pathlib import Path

import msgspec

from mcp_edge.board import Settings, load
from mcp_edge.worker import protocol as p
from mcp_edge.worker.main import settings_from_overrides, settings_overrides

PROFILE = """
[identity]
id = "workerbox"
arch = "x86_64"
[storage]
data_dir = "{data}"
plugin_dirs = ["{data}/plugins"]
[runtime]
max_inflight = 9
slab_sizes = [128, 4096]
slab_counts = [8, 4]
[plugins]
disabled = ["logs"]
isolation = {{ fs = "process" }}
[plugins.fs]
read_only = true
roots = ["/srv", "/data"]
"""


def test_settings_survive_the_trip_to_a_worker(tmp_path: Path) -> None:
    board_file = tmp_path / "workerbox.toml"
    board_file.write_text(PROFILE.format(data=tmp_path / "data"))
    env = {"MCP_EDGE_FS_READ_ONLY": "0", "MCP_EDGE_HEAD_TIMEOUT_S": "3.5"}
    runtime = Settings.load(load(board_file), environ=env, page_size=17, enabled_plugins=frozenset({"fs", "echo"}))
    init = p.Init("fs", "python", "/x", settings_overrides(runtime), str(board_file))
    wire = p.decode(p.encode(init), p.Init)  # what really crosses: msgpack
    worker = settings_from_overrides(wire.settings, wire.board)
    assert worker == runtime
    assert worker.plugin("fs").isolation == "process" and dict(worker.plugin("fs").config)["roots"] == ["/srv", "/data"]
    assert worker.environ == env


def test_an_init_body_is_a_msgpack_array_in_field_order() -> None:
    body = p.encode(p.Init("a", "python", "/src", {"k": 1}, "/b.toml", 20))
    assert msgspec.msgpack.decode(body) == ["a", "python", "/src", {"k": 1}, "/b.toml", 20]
