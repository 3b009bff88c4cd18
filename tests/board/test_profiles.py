"""Board profiles: parsing, matching, the MCP_EDGE_BOARD override, clear errors."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest

from mcp_edge.board import DEFAULT_PLUGIN_DIRS, Board, detect, load, load_all
from mcp_edge.errors import ConfigError

PI5 = """
[board]
id = "rpi5"
description = "Raspberry Pi 5"
[match]
arch = "aarch64"
model = ["Raspberry Pi 5"]
priority = 10
[paths]
data_dir = "/srv/mcp"
"""


@pytest.fixture
def boards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "rpi5.toml").write_text(PI5)
    monkeypatch.setenv("MCP_EDGE_BOARDS_DIR", str(tmp_path))
    monkeypatch.delenv("MCP_EDGE_BOARD", raising=False)
    return tmp_path


def test_shipped_profiles_load() -> None:
    ids = {b.id for b in load_all()}
    assert {"generic-x86_64", "generic-aarch64"} <= ids


def test_detect_this_machine() -> None:
    board = detect()
    assert isinstance(board, Board)
    assert board.arch == platform.machine()


def test_model_match_beats_generic(boards: Path) -> None:
    assert detect(arch="aarch64", model="Raspberry Pi 5 Model B Rev 1.0").id == "rpi5"
    assert detect(arch="aarch64", model="Some other board").id == "generic-aarch64"


def test_loaded_fields(boards: Path) -> None:
    b = load(boards / "rpi5.toml")
    assert (b.id, b.arch, b.models, b.priority, b.data_dir) == (
        "rpi5", "aarch64", ("Raspberry Pi 5",), 10, Path("/srv/mcp"))


def test_env_forces_board(boards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_EDGE_BOARD", "rpi5")
    assert detect(arch="x86_64", model="").id == "rpi5"


def test_env_unknown_board_names_known_ones(boards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_EDGE_BOARD", "nope")
    with pytest.raises(ConfigError, match=r"MCP_EDGE_BOARD=nope: no such board profile.*rpi5"):
        detect()


def test_no_match_is_a_clear_error(boards: Path) -> None:
    with pytest.raises(ConfigError, match="no board profile matches this riscv64 box"):
        detect(arch="riscv64", model="")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[board\nid=", "cannot read board profile"),
        ('[board]\nid = 3\n[match]\narch = "x86_64"\n', "'id' must be a str"),
        ('[board]\nid = "x"\n', "'arch' must be a str"),
        ('[board]\nid = "x"\n[match]\narch = "x86_64"\nmodel = 5\n', "'model' must be a string or a list"),
    ],
)
def test_bad_profile_names_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


CHECKOUT = Path(__file__).resolve().parents[2]


def test_plugin_dirs_default(boards: Path) -> None:
    b = load(boards / "rpi5.toml")
    assert len(DEFAULT_PLUGIN_DIRS) == 4
    assert b.plugin_dirs == (
        CHECKOUT / "plugins",
        Path(sys.prefix) / "share/mcp-edge/plugins",
        Path("/etc/mcp-edge/plugins"),
        Path("/srv/mcp/plugins"),
    )


def test_shipped_profiles_list_plugin_dirs() -> None:
    for b in load_all():
        if b.id.startswith("generic-"):
            assert b.plugin_dirs[0] == CHECKOUT / "plugins"
            assert Path("/var/lib/mcp-edge/plugins") in b.plugin_dirs


def test_plugin_dirs_placeholders(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[board]\nid = "b"\n[match]\narch = "x86_64"\n[paths]\ndata_dir = "/d"\n'
                    'plugin_dirs = ["{data_dir}/p", "~/p", "{prefix}/x", "/abs"]\n')
    assert load(path).plugin_dirs == (Path("/d/p"), Path("~/p").expanduser(), Path(sys.prefix) / "x", Path("/abs"))


@pytest.mark.parametrize(
    ("value", "message"),
    [('"plugins"', "'plugin_dirs' must be a list of strings"), ('["{nope}/x"]', "unknown placeholder 'nope'")],
)
def test_bad_plugin_dirs(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "b.toml"
    path.write_text(f'[board]\nid = "b"\n[match]\narch = "x86_64"\n[paths]\nplugin_dirs = {value}\n')
    with pytest.raises(ConfigError, match=message):
        load(path)
