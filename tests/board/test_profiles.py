"""Board profiles: parsing, matching, the MCP_EDGE_BOARD override, clear errors."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from mcp_edge.board import Board, detect, load, load_all
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
