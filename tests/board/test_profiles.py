"""Board profiles: the typed schema, inheritance, the shipped profiles' facts, matching, clear errors."""

from __future__ import annotations

import platform
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from mcp_edge.board import DEFAULT_PLUGIN_DIRS, Board, detect, load, load_all
from mcp_edge.board.profiles import Facts, fits, resolve
from mcp_edge.errors import ConfigError
from mcp_edge.native import cpu

CHECKOUT = Path(__file__).resolve().parents[2]
SHIPPED = ("generic-x86_64", "generic-aarch64", "raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "intel-n100",
           "xeon-d-2100", "amd-epyc-embedded-zen3", "qemu-virt-aarch64")

BASE = """
[identity]
id = "base"
name = "A base board"
arch = "aarch64"
[match]
priority = -1
[cpu]
isa_required = ["asimd"]
expected_level = "scalar"
[storage]
data_dir = "/srv/mcp"
[runtime]
max_inflight = 9
page_size = 50
[plugins.fs]
read_only = true
max = 1
"""

CHILD = """
extends = "base"
[identity]
id = "child"
name = "A child board"
[match]
dt_model = ["Child Board"]
priority = 10
[cpu]
isa_required = ["asimd", "crc32"]
expected_level = "armv8crc"
[runtime]
max_inflight = 3
[plugins.fs]
max = 2
"""


@pytest.fixture
def boards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "child.toml").write_text(CHILD)
    monkeypatch.setenv("MCP_EDGE_BOARDS_DIR", str(tmp_path))
    monkeypatch.delenv("MCP_EDGE_BOARD", raising=False)
    monkeypatch.setenv("MCP_EDGE_BOARD_FILE", "")
    return tmp_path


# --------------------------------------------------------------------------- the shipped profiles


def test_every_shipped_profile_validates() -> None:
    found = {b.id: b for b in load_all({})}
    assert set(SHIPPED) <= set(found)
    for board_id in SHIPPED:
        b = found[board_id]
        assert b.sources, f"{board_id} cites no source for its facts"
        assert b.arch in ("x86_64", "aarch64")


@pytest.mark.parametrize("board_id", SHIPPED)
def test_expected_level_is_the_dispatchers_choice(board_id: str) -> None:
    """Each profile's feature set, fed to the C level logic, gives the level the profile expects."""
    b = resolve(board_id, {})
    features = (*b.cpu.isa_required, *b.cpu.isa_optional)
    assert cpu.best_level_for(b.arch, features) == b.cpu.expected_level


@pytest.mark.parametrize(
    ("board_id", "level", "page"),
    [("raspberry-pi-4", "armv8crc", 4096), ("raspberry-pi-5", "neon", 16384), ("jetson-orin-nano", "neon", 4096),
     ("intel-n100", "avx2", 4096), ("xeon-d-2100", "avx2", 4096), ("amd-epyc-embedded-zen3", "avx2", 4096),
     ("qemu-virt-aarch64", "neon", 4096), ("generic-x86_64", "scalar", 4096), ("generic-aarch64", "scalar", 4096)],
)
def test_profile_facts(board_id: str, level: str, page: int) -> None:
    b = resolve(board_id, {})
    assert (b.cpu.expected_level, b.cpu.page_size) == (level, page)


def test_cited_cpu_facts() -> None:
    pi4, xeon, qemu = resolve("raspberry-pi-4", {}), resolve("xeon-d-2100", {}), resolve("qemu-virt-aarch64", {})
    assert "crc32" in pi4.cpu.isa_required and "pmull" not in (*pi4.cpu.isa_required, *pi4.cpu.isa_optional)
    assert "avx512f" in xeon.cpu.isa_optional and "vpclmulqdq" not in xeon.cpu.isa_optional
    assert cpu.best_level_for("x86_64", [*xeon.cpu.isa_required, *xeon.cpu.isa_optional, "vpclmulqdq"]) == "avx512"
    assert qemu.storage.io_uring is False and qemu.settings["io_engine"] == "threads"
    assert qemu.chain == ("generic-aarch64", "qemu-virt-aarch64")
    assert qemu.firmware.python == "3.11" and qemu.interpreter == "/usr/bin/python3.11"


def test_level_logic_follows_the_c_rule() -> None:
    assert cpu.best_level_for("aarch64", []) == "scalar"
    assert cpu.best_level_for("aarch64", ["crc32"]) == "armv8crc"
    assert cpu.best_level_for("aarch64", ["asimd", "pmull"]) == "scalar"
    assert cpu.best_level_for("x86_64", ["sse42", "avx2"]) == "sse42"  # avx2 needs pclmulqdq too
    with pytest.raises(ValueError, match="unknown aarch64 CPU feature 'avx2'"):
        cpu.best_level_for("aarch64", ["avx2"])
    with pytest.raises(ValueError, match="unknown architecture 'riscv64'"):
        cpu.best_level_for("riscv64", [])


# --------------------------------------------------------------------------- inheritance


def test_extends_merges_and_shows_the_chain(boards: Path) -> None:
    b = load(boards / "child.toml")
    assert b.chain == ("base", "child")
    assert b.files == (boards / "base.toml", boards / "child.toml")
    assert (b.id, b.name, b.arch, b.data_dir) == ("child", "A child board", "aarch64", Path("/srv/mcp"))
    assert b.cpu.expected_level == "armv8crc" and b.cpu.isa_required == ("asimd", "crc32")
    assert b.settings == {"max_inflight": 3, "page_size": 50}
    assert b.plugins == {"fs": {"read_only": True, "max": 2}}


def test_base_found_in_the_boards_folder(boards: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    elsewhere = tmp_path_factory.mktemp("other") / "kid.toml"
    elsewhere.write_text('extends = "child"\n[identity]\nid = "kid"\n')
    assert load(elsewhere).chain == ("base", "child", "kid")


def test_extends_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "b"\n[identity]\nid = "a"\narch = "x86_64"\n')
    (tmp_path / "b.toml").write_text('extends = "a"\n[identity]\nid = "b"\n')
    with pytest.raises(ConfigError, match=r"a.toml: 'extends' goes round in a circle: a extends b extends a"):
        load(tmp_path / "a.toml", {})


def test_extends_unknown_base(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('extends = "nowhere"\n[identity]\nid = "a"\narch = "x86_64"\n')
    with pytest.raises(ConfigError, match=r"a.toml: extends 'nowhere', but no profile has that id"):
        load(tmp_path / "a.toml", {})


def test_to_toml_round_trips(tmp_path: Path) -> None:
    for board_id in SHIPPED:
        b = resolve(board_id, {})
        text = b.to_toml()
        assert "extends" not in text.split("\n", 1)[1]
        assert " -> ".join(b.chain) in text.splitlines()[0]
        path = tmp_path / f"{board_id}.toml"
        path.write_text(text)
        again = load(path, {})
        assert again.chain == (board_id,)
        for name in ("id", "name", "arch", "match", "cpu", "memory", "storage", "firmware", "settings", "plugins",
                     "sandbox", "sources", "plugin_dirs", "data_dir"):
            assert getattr(again, name) == getattr(b, name), (board_id, name)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[identity\nid=", "cannot read board profile"),
        ('[identity]\nid = 3\narch = "x86_64"\n', r"\[identity\] id: expected str, got int"),
        ('[identity]\nname = "x"\narch = "x86_64"\n', r"\[identity\] id is missing"),
        ('[identity]\nid = "x"\n', r"\[identity\] arch must be one of x86_64, aarch64 .*got 'nothing'"),
        ('[identity]\nid = "x"\narch = "mips"\n', r"arch must be one of x86_64, aarch64 .*got 'mips'"),
        ('[identity]\nid = "x"\narch = "x86_64"\ncolour = "red"\n',
         r"unknown key 'colour' in \[identity\] \(known: id, name, vendor, arch, sources\)"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[cpu]\ncores = "four"\n', r"\[cpu\] cores: expected int, got str"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[cpu]\ncores = -1\n', r"\[cpu\] cores: expected int >= 0"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[memory]\nnuma_nodes = true\n',
         r"\[memory\] numa_nodes: expected int, got bool"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[cpu]\nisa_required = ["mmx"]\n',
         r"\[cpu\] isa_required: unknown CPU feature 'mmx'"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[cpu]\nisa_required = ["crc32"]\n',
         r"\[cpu\] isa_required: crc32 is not a feature of x86_64"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[cpu]\nisa_required = ["sse42"]\nexpected_level = "avx2"\n',
         r"expected_level is 'avx2', but the dispatcher picks 'sse42' on a x86_64 CPU with sse42"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[gpu]\ncores = 1\n', r"unknown table \[gpu\]"),
        ('[board]\nid = "x"\n', r"\[board\] is not a table of this profile format: .*\[identity\]"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[runtime]\nmax_inflightt = 3\n',
         r"\[runtime\] max_inflightt: unknown setting \(did you mean 'max_inflight'\?\)"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[runtime]\nhttp_port = 1\n',
         r"\[runtime\] http_port: this setting belongs in \[transport\], not in \[runtime\]"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[transport]\nworker_memory_max = 1\n',
         r"\[transport\] worker_memory_max: this setting belongs in \[limits\]"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[runtime]\ndata_dir = "/x"\n',
         r"\[runtime\] data_dir: set this in \[storage\], not in \[runtime\]"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[runtime]\nmax_inflight = "lots"\n',
         r"\[runtime\] max_inflight: setting max_inflight must be an integer"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[firmware]\npython = "2.7"\n', r"\[firmware\] python: expected str"),
        ('extends = 5\n[identity]\nid = "x"\n', r"'extends' must name a base profile"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[firmware]\ninterpreter = "/usr/bin/python3}; rm -rf /opt #"\n',
         r"\[firmware\] interpreter: expected str matching"),
        ('[identity]\nid = "x"\narch = "x86_64"\n[plugins]\nfs = 3\n',
         r"\[plugins\] fs: expected enabled, disabled, entry_points, isolation or a \[plugins.fs\] table"),
    ],
)
def test_bad_profile_names_file_table_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        load(path, {})
    assert str(path) in str(info.value)


def test_error_in_a_base_names_the_base_file(boards: Path) -> None:
    (boards / "base.toml").write_text(BASE.replace("max_inflight = 9", "max_inflight = 0.5"))
    with pytest.raises(ConfigError, match=r"base.toml: \[runtime\] max_inflight") as info:
        load(boards / "child.toml")
    assert "child.toml" not in str(info.value)


# --------------------------------------------------------------------------- matching


def test_detect_by_device_tree_model_says_why(boards: Path) -> None:
    facts = Facts(arch="aarch64", dt_model="Child Board rev 2", features=frozenset({"asimd"}))
    b = detect(facts=facts)
    assert b.id == "child"
    assert "device-tree model 'Child Board rev 2' contains 'Child Board'" in b.picked
    other = detect(facts=replace(facts, dt_model="Another board"))
    assert other.id == "generic-aarch64"
    assert "fallback" in other.picked


def test_shipped_rules_pick_the_right_board() -> None:
    boards = load_all({})
    cases = [
        (Facts("aarch64", dt_model="Raspberry Pi 5 Model B Rev 1.0"), "raspberry-pi-5"),
        (Facts("aarch64", dt_model="Raspberry Pi 4 Model B Rev 1.4"), "raspberry-pi-4"),
        (Facts("aarch64", dt_model="NVIDIA Jetson Orin Nano Developer Kit"), "jetson-orin-nano"),
        (Facts("aarch64", dt_model="linux,dummy-virt"), "qemu-virt-aarch64"),
        (Facts("aarch64"), "generic-aarch64"),
        (Facts("x86_64", cpu_model="Intel(R) N100"), "intel-n100"),
        (Facts("x86_64", cpu_model="Intel(R) Xeon(R) D-2123IT CPU @ 2.20GHz"), "xeon-d-2100"),
        (Facts("x86_64", cpu_model="AMD EPYC"), "generic-x86_64"),
    ]
    for facts, want in cases:
        ranked = fits(facts, boards)
        assert ranked[0].fits and ranked[0].board.id == want, (facts, ranked[0])
    ranked = fits(Facts("x86_64", cpu_model="Intel(R) N100"), boards)
    pi5 = next(f for f in ranked if f.board.id == "raspberry-pi-5")
    assert not pi5.fits and pi5.reasons == ("arch is x86_64, the profile's is aarch64",)


def test_detect_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MCP_EDGE_BOARD", raising=False)
    board = detect(environ={})
    assert isinstance(board, Board)
    assert board.arch == platform.machine()
    assert board.picked.startswith(f"arch {platform.machine()}")


def test_env_forces_board(boards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_EDGE_BOARD", "child")
    b = detect(arch="x86_64", model="")
    assert (b.id, b.picked) == ("child", "named by MCP_EDGE_BOARD")


def test_env_unknown_board_names_known_ones(boards: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_EDGE_BOARD", "nope")
    with pytest.raises(ConfigError, match=r"MCP_EDGE_BOARD=nope: no board profile 'nope' \(known: .*child"):
        detect()


def test_installed_board_file_wins_over_detection(boards: Path, tmp_path_factory: pytest.TempPathFactory,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    installed = tmp_path_factory.mktemp("etc") / "board.toml"
    installed.write_text(load(boards / "child.toml").to_toml())
    monkeypatch.setenv("MCP_EDGE_BOARD_FILE", str(installed))
    b = detect()
    assert (b.id, b.picked) == ("child", f"the installed profile {installed}")


def test_no_match_is_a_clear_error(boards: Path) -> None:
    with pytest.raises(ConfigError, match="no board profile matches this riscv64 box"):
        detect(facts=Facts("riscv64"))


# --------------------------------------------------------------------------- plugin folders


def test_plugin_dirs_default(boards: Path) -> None:
    b = load(boards / "child.toml")
    assert len(DEFAULT_PLUGIN_DIRS) == 4
    assert b.plugin_dirs == (
        CHECKOUT / "plugins",
        Path(sys.prefix) / "share/mcp-edge/plugins",
        Path("/etc/mcp-edge/plugins"),
        Path("/srv/mcp/plugins"),
    )


def test_shipped_profiles_list_plugin_dirs() -> None:
    for b in load_all({}):
        assert b.plugin_dirs[0] == CHECKOUT / "plugins"
        assert Path("/var/lib/mcp-edge/plugins") in b.plugin_dirs


def test_plugin_dirs_placeholders(tmp_path: Path) -> None:
    path = tmp_path / "b.toml"
    path.write_text('[identity]\nid = "b"\narch = "x86_64"\n[storage]\ndata_dir = "/d"\n'
                    'plugin_dirs = ["{data_dir}/p", "~/p", "{prefix}/x", "/abs"]\n')
    assert load(path).plugin_dirs == (Path("/d/p"), Path("~/p").expanduser(), Path(sys.prefix) / "x", Path("/abs"))


@pytest.mark.parametrize(
    ("value", "message"),
    [('"plugins"', r"\[storage\] plugin_dirs: expected array \| null, got str"),
     ('["{nope}/x"]', "unknown placeholder 'nope'")],
)
def test_bad_plugin_dirs(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "b.toml"
    path.write_text(f'[identity]\nid = "b"\narch = "x86_64"\n[storage]\nplugin_dirs = {value}\n')
    with pytest.raises(ConfigError, match=message):
        load(path)


def test_a_broken_profile_of_another_board_does_not_stop_detection(boards: Path, caplog: pytest.LogCaptureFixture
                                                                   ) -> None:
    (boards / "broken.toml").write_text('[identity]\nid = "broken"\narch = "aarch64"\n[cpu]\ncores = "many"\n')
    (boards / "garbled.toml").write_text("[identity\n")
    b = detect(facts=Facts(arch="aarch64", dt_model="Child Board"))
    assert b.id == "child"
    assert any("garbled.toml left out of detection" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError, match=r"broken.toml: \[cpu\] cores: expected int, got str"):
        resolve("broken")  # named, it is checked
    with pytest.raises(ConfigError, match=r"broken\.toml: \[cpu\] cores"):
        load_all()  # board list shows every problem


@pytest.mark.parametrize("name", ["../boards/generic-x86_64", "boards/generic-x86_64", "..", "/etc/passwd", "A"])
def test_a_name_is_never_a_path(name: str) -> None:
    with pytest.raises(ConfigError, match="no board profile"):
        resolve(name, {})
