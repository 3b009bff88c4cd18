"""The one typed Settings: defaults, board profile, environment, command line; errors name file and key."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_edge.board import FIELDS, Settings, load
from mcp_edge.board.settings import env_setting, parse_value
from mcp_edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

PROFILE = """
[identity]
id = "testbox"
arch = "x86_64"
[storage]
data_dir = "{data}"
plugin_dirs = []
[runtime]
max_inflight = 7
[transport]
head_timeout_s = 2.5
allowed_origins = ["https://ops.example"]
[plugins]
disabled = ["logs"]
entry_points = false
[plugins.fs]
read_only = true
"""


def _board(tmp_path: Path, text: str = PROFILE) -> Path:
    path = tmp_path / "testbox.toml"
    path.write_text(text.format(data=tmp_path / "data"))
    return path


def test_defaults_and_every_limit_documented(tmp_path: Path) -> None:
    s = Settings.load(load(_board(tmp_path, PROFILE.split("[runtime]")[0])), environ={})
    assert s.max_frame == 4 * 1024 * 1024 and s.max_inflight == 256 and s.io_engine == "auto"
    for info in FIELDS:
        assert info.doc and info.env.startswith("MCP_EDGE_") and info.section


def test_profile_layer(tmp_path: Path) -> None:
    s = Settings.load(load(_board(tmp_path)), environ={})
    assert (s.max_inflight, s.head_timeout_s, s.allowed_origins) == (7, 2.5, ("https://ops.example",))
    assert s.disabled_plugins == frozenset({"logs"}) and s.entry_points is False
    assert s.plugin_config == {"fs": {"read_only": True}}
    assert s.data_dir == tmp_path / "data"


def test_environment_beats_profile_and_caller_beats_both(tmp_path: Path) -> None:
    board = load(_board(tmp_path))
    env = {"MCP_EDGE_MAX_INFLIGHT": "9", "MCP_EDGE_ALLOWED_ORIGINS": "a.example, b.example",
           "MCP_EDGE_ENTRY_POINTS": "yes", "MCP_EDGE_PLUGIN_DIRS": f"{tmp_path}:{tmp_path / 'x'}",
           "MCP_EDGE_FS_READ_ONLY": "0", "OTHER": "ignored"}
    s = Settings.load(board, environ=env)
    assert s.max_inflight == 9 and s.allowed_origins == ("a.example", "b.example") and s.entry_points is True
    assert s.plugin_dirs[:2] == (tmp_path, tmp_path / "x")
    assert s.environ == {k: v for k, v in env.items() if k.startswith("MCP_EDGE_")}  # plugin overrides come from it
    assert Settings.load(board, environ=env, max_inflight=3).max_inflight == 3


@pytest.mark.parametrize(("table", "needle"), [
    ("[runtime]\nmax_inflightt = 3\n", "[runtime] max_inflightt: unknown setting (did you mean 'max_inflight'?)"),
    ("[runtime]\nmax_inflight = \"lots\"\n", "[runtime] max_inflight: setting max_inflight must be an integer"),
    ("[runtime]\nmax_inflight = 0\n", "max_inflight must be at least 1"),
    ("[runtime]\nio_engine = \"spdk\"\n", "io_engine must be one of uring, threads, auto"),
    ("[runtime]\ndata_dir = \"/x\"\n", "set this in [storage], not in [runtime]"),
    ("[limitz]\nx = 1\n", "unknown table [limitz]"),
    ("[plugins]\nfs = 3\n",
     "[plugins] fs: expected enabled, disabled, entry_points, isolation or a [plugins.fs] table"),
])
def test_profile_errors_name_file_and_key(tmp_path: Path, table: str, needle: str) -> None:
    text = PROFILE.split("[runtime]")[0] + table
    path = _board(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        Settings.load(load(path), environ={})
    assert needle in str(exc.value)
    assert str(path) in str(exc.value) or "at least" in needle or "must be at least" in str(exc.value)


def test_unknown_key_in_paths_is_refused(tmp_path: Path) -> None:
    path = _board(tmp_path, PROFILE.replace("plugin_dirs = []", "plugin_dir = []"))
    with pytest.raises(ConfigError, match=r"unknown key 'plugin_dir' in \[storage\]"):
        load(path)


@pytest.mark.parametrize(("env", "needle"), [
    ({"MCP_EDGE_MAX_FRAME": "4M"}, "MCP_EDGE_MAX_FRAME: setting max_frame must be an integer, got '4M'"),
    ({"MCP_EDGE_ASYNCIO_TLS": "maybe"}, "MCP_EDGE_ASYNCIO_TLS: setting asyncio_tls must be a boolean"),
    ({"MCP_EDGE_HTTP_PORT": "70000"}, "http_port must be 0..65535"),
])
def test_environment_errors_name_the_variable(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.load(load(_board(tmp_path)), environ=env)
    assert needle in str(exc.value)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_timeouts_must_be_finite(tmp_path: Path, value: str) -> None:
    """NaN passes every `<` check and would make each deadline fire at once; infinity would make it unbounded."""
    with pytest.raises(ConfigError, match="drain_timeout_s must be a finite number"):
        Settings.load(load(_board(tmp_path)), environ={"MCP_EDGE_DRAIN_TIMEOUT_S": value})


def test_plugin_folder_under_data_dir_follows_data_dir(tmp_path: Path) -> None:
    text = PROFILE.replace("plugin_dirs = []", 'plugin_dirs = ["{{data_dir}}/plugins", "/opt/p"]')
    board = load(_board(tmp_path, text))
    assert board.plugin_dirs == (tmp_path / "data" / "plugins", Path("/opt/p"))
    moved = Settings.load(board, environ={"MCP_EDGE_DATA_DIR": str(tmp_path / "elsewhere")})
    assert moved.plugin_dirs == (tmp_path / "elsewhere" / "plugins", Path("/opt/p"))


def test_empty_variables_are_unset(tmp_path: Path) -> None:
    board = load(_board(tmp_path, PROFILE.split("[runtime]")[0]))
    s = Settings.load(board, environ={"MCP_EDGE_ENTRY_POINTS": "", "MCP_EDGE_MAX_FRAME": "",
                                      "MCP_EDGE_NO_EP_CACHE": "0"})
    assert s.entry_points is True  # the default, not "empty means false"
    assert s.max_frame == 4 * 1024 * 1024 and s.entry_point_cache is True
    assert Settings.load(load(_board(tmp_path)), environ={"MCP_EDGE_NO_EP_CACHE": "1"}).entry_point_cache is False


def test_caller_overrides_are_checked(tmp_path: Path) -> None:
    board = load(_board(tmp_path))
    with pytest.raises(ConfigError, match="unknown setting 'max_inflite'"):
        Settings.load(board, environ={}, max_inflite=3)
    assert parse_value("max_inflight", "12", "--set") == 12
    with pytest.raises(ConfigError, match="--set x: unknown setting 'nope'"):
        parse_value("nope", "1", "--set x")
    assert env_setting("io_engine", {"MCP_EDGE_IO": " Threads "}) == "threads"
    assert env_setting("io_engine", {}) == "auto"


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = Settings.load(load(_board(tmp_path)), environ={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.max_frame = 1  # type: ignore[misc]


def test_profile_plugin_config_reaches_the_plugin(tmp_path: Path) -> None:
    """[plugins.fs] read_only = true in the profile makes the real fs plugin refuse writes."""
    import asyncio

    from mcp_edge.server import Server

    board = load(_board(tmp_path, PROFILE.replace("plugin_dirs = []", f"plugin_dirs = [\"{ROOT / 'plugins'}\"]")))
    settings = Settings.load(board, environ={}, enabled_plugins=frozenset({"fs"}))

    async def main() -> str:
        running = await Server.configure(settings).start()
        try:
            result = await running.call_tool("fs_write", {"path": "a.txt", "content": "x"})
            return json.dumps(dataclasses.asdict(result) if dataclasses.is_dataclass(result) else
                              __import__("msgspec").to_builtins(result))
        finally:
            await running.stop()

    out = asyncio.run(main())
    assert "read" in out.lower() and "only" in out.lower()
    assert not (tmp_path / "data" / "plugin-data" / "fs" / "files" / "a.txt").exists()


def test_serve_set_flag_reaches_settings(tmp_path: Path) -> None:
    """`serve --set` with a bad value stops the start with exit 2 and one line naming the flag."""
    out = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "serve", "--stdio", "--set", "max_inflight=zero"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    assert "--set max_inflight=zero: setting max_inflight must be an integer" in out.stderr
    assert "Traceback" not in out.stderr


def test_doctor_lists_every_setting() -> None:
    out = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "doctor", "--json"], capture_output=True, text=True,
                         timeout=120, env={**__import__("os").environ, "MCP_EDGE_MAX_INFLIGHT": "5"})
    rows = {row["name"]: row for row in json.loads(out.stdout)["settings"]}
    assert {i.name for i in FIELDS} - {"environ", "plugin_config"} <= set(rows)
    assert rows["max_inflight"]["value"] == 5 and rows["max_inflight"]["default"] == 256
    assert rows["max_inflight"]["env"] == "MCP_EDGE_MAX_INFLIGHT"


def test_readme_settings_table_is_current() -> None:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- settings-table:[^\n]*-->\n(.*?)\n<!-- end settings-table -->", readme, re.S)
    assert block is not None
    want = subprocess.run([sys.executable, str(ROOT / "tools" / "settings_table.py")], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert block.group(1).strip() == want, "README settings table is stale: run python tools/settings_table.py"


def test_nothing_else_reads_the_environment() -> None:
    """One module reads the process environment: mcp_edge/board/environ.py (the settings loader's source)."""
    allowed = {"mcp_edge/board/environ.py"}
    offenders = []
    pattern = re.compile(r"os\.environ|os\.getenv|os\.environb")
    for path in sorted([*(ROOT / "mcp_edge").rglob("*.py"), *(ROOT / "mcp_edge").rglob("*.pyx"),
                        *(ROOT / "plugins").rglob("*.py")]):
        rel = path.relative_to(ROOT).as_posix()
        if rel not in allowed and pattern.search(path.read_text()):
            offenders.append(rel)
    assert offenders == []


def test_the_environment_module_is_the_live_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mcp_edge.board.environ import process_environ

    monkeypatch.setenv("MCP_EDGE_MAX_INFLIGHT", "9")
    assert process_environ()["MCP_EDGE_MAX_INFLIGHT"] == "9"
    assert Settings.load(load(_board(tmp_path))).max_inflight == 9  # no environ= given: the process's


def test_plugin_settings_carry_config_and_isolation(tmp_path: Path) -> None:
    text = PROFILE.replace("[plugins.fs]", 'isolation = {{ fs = "process", sysinfo = "INPROC" }}\n[plugins.fs]')
    s = Settings.load(load(_board(tmp_path, text)), environ={})
    fs = s.plugin("fs")
    assert (fs.id, dict(fs.config), fs.isolation) == ("fs", {"read_only": True}, "process")
    assert s.plugin("sysinfo").isolation == "inproc"
    other = s.plugin("nobody")
    assert (dict(other.config), other.isolation) == ({}, None)
    assert "isolation" not in s.plugin_config  # the reserved key is not a plugin's config table
    env = Settings.load(load(_board(tmp_path, text)), environ={"MCP_EDGE_PLUGIN_ISOLATION": "fs=inproc, logs=process"})
    assert env.plugin("fs").isolation == "inproc" and env.plugin("logs").isolation == "process"
    assert env.plugin("sysinfo").isolation == "inproc"  # the profile's entry stays where the variable is silent


@pytest.mark.parametrize(("where", "value", "needle"), [
    ("env", "fs=container", "MCP_EDGE_PLUGIN_ISOLATION: 'fs=container' must be <plugin id>=<mode>"),
    ("env", "fs", "'fs' must be <plugin id>=<mode>"),
    ("env", "=process", "'=process' must be <plugin id>=<mode>"),
    ("profile", '{{ fs = "vm" }}', "[plugins] isolation.fs: must be one of inproc, process, got 'vm'"),
    ("profile", '{{ fs = 1 }}', "[plugins] isolation.fs: must be one of inproc, process, got 1"),
    ("profile", '"process"', "[plugins] isolation: expected a table of <plugin id>"),
])
def test_bad_isolation_is_refused_naming_where(tmp_path: Path, where: str, value: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:  # a profile's is refused as it loads, the environment's at Settings.load
        if where == "env":
            Settings.load(load(_board(tmp_path)), environ={"MCP_EDGE_PLUGIN_ISOLATION": value})
        else:
            Settings.load(load(_board(tmp_path, PROFILE.replace("[plugins.fs]", f"isolation = {value}\n[plugins.fs]"))),
                          environ={})
    assert needle in str(err.value)


def test_isolation_set_by_the_caller_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="plugin fs: isolation must be one of inproc, process, got 'jail'"):
        Settings.load(load(_board(tmp_path)), environ={}, plugin_isolation={"fs": "jail"})


def test_max_read_must_fit_the_outgoing_frame(tmp_path: Path) -> None:
    board = load(_board(tmp_path))
    with pytest.raises(ConfigError, match=r"max_read .* does not fit max_out_frame"):
        Settings.load(board, environ={}, max_read=8 * 1024 * 1024)
    assert Settings.load(board, environ={}, max_read=8 * 1024 * 1024, max_out_frame=12 * 1024 * 1024).max_read


def test_ipc_lists_of_integers_from_profile_and_environment(tmp_path: Path) -> None:
    """Slab classes keep their order from a TOML array and from a comma-separated variable."""
    text = PROFILE.replace("[runtime]\n", "[runtime]\nslab_sizes = [128, 4096]\nslab_counts = [8, 2]\n")
    s = Settings.load(load(_board(tmp_path, text)), environ={})
    assert (s.slab_sizes, s.slab_counts) == ((128, 4096), (8, 2))
    s = Settings.load(load(_board(tmp_path, text)), environ={"MCP_EDGE_SLAB_SIZES": "64, 1024,65536",
                                                             "MCP_EDGE_SLAB_COUNTS": "3,2,1"})
    assert (s.slab_sizes, s.slab_counts) == ((64, 1024, 65536), (3, 2, 1))


@pytest.mark.parametrize(("env", "needle"), [
    ({"MCP_EDGE_SLAB_SIZES": "64,big"}, "MCP_EDGE_SLAB_SIZES: setting slab_sizes must be a list of integers"),
    ({"MCP_EDGE_SLAB_SIZES": "256,64,1024,4096,16384,65536"}, "slab_sizes must be distinct sizes in ascending"),
    ({"MCP_EDGE_SLAB_SIZES": "64,64,1024,4096,16384,65536"}, "slab_sizes must be distinct sizes in ascending"),
    ({"MCP_EDGE_SLAB_SIZES": "32,64,1024,4096,16384,65536"}, "slab_sizes: every item must be at least 64"),
    ({"MCP_EDGE_SLAB_SIZES": "64,100,1024,4096,16384,65536"}, "each size must be a multiple of 64 up to"),
    ({"MCP_EDGE_SLAB_SIZES": ",".join(str(64 * (i + 1)) for i in range(17)),
      "MCP_EDGE_SLAB_COUNTS": ",".join("1" * 17)}, "slab_sizes has 17 classes; at most 16"),
    ({"MCP_EDGE_SLAB_COUNTS": "1,2,3,16777217,5,6"}, "at most 16777216 blocks per class"),
    ({"MCP_EDGE_SLAB_COUNTS": "1,2"}, "slab_counts needs one count per slab size (6), got 2"),
    ({"MCP_EDGE_SLAB_COUNTS": "1,2,3,0,5,6"}, "slab_counts: every item must be at least 1"),
    ({"MCP_EDGE_RING_ENTRIES": "1000"}, "ring_entries must be a power of two, got 1000"),
    ({"MCP_EDGE_RING_SPIN_US": "-1"}, "ring_spin_us must be at least 0"),
])
def test_ipc_settings_refuse_bad_values(tmp_path: Path, env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.load(load(_board(tmp_path)), environ=env)
    assert needle in str(exc.value)


def test_ipc_profile_refuses_a_list_of_strings(tmp_path: Path) -> None:
    text = PROFILE.replace("[runtime]\n", '[runtime]\nslab_sizes = ["64"]\n')
    with pytest.raises(ConfigError, match="slab_sizes must be a list of integers"):
        Settings.load(load(_board(tmp_path, text)), environ={})


def test_default_slab_settings_make_a_pool_and_match_the_native_defaults() -> None:
    """The settings' slab classes are the ones a Pool takes, and the extension's own defaults do not drift."""
    from mcp_edge import ipc
    from mcp_edge.native import _slab

    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    assert (defaults["slab_sizes"], defaults["slab_counts"]) == (_slab.DEFAULT_SIZES, _slab.DEFAULT_COUNTS)
    assert defaults["ipc_connect_timeout_s"] == ipc.DEFAULT_CONNECT_TIMEOUT
    assert (defaults["ring_entries"], defaults["ring_spin_us"]) == (ipc.DEFAULT_RING_ENTRIES,
                                                                    ipc.DEFAULT_RING_SPIN_US)
    with _slab.Pool(defaults["slab_sizes"], defaults["slab_counts"], numa=defaults["slab_numa"]) as pool:
        stats = pool.stats()
        assert [c["size"] for c in stats] == list(defaults["slab_sizes"])
        assert [c["count"] for c in stats] == list(defaults["slab_counts"])
        block = pool.alloc(300)
        assert block.capacity == 1024
        block.release()


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"breaker_failure_ratio": 1.5}, "breaker_failure_ratio is a fraction: at most 1, got 1.5"),
    ({"restart_backoff_jitter": 2.0}, "restart_backoff_jitter is a fraction"),
    ({"restart_backoff_base_s": 5.0, "restart_backoff_cap_s": 1.0}, "restart_backoff_cap_s (1.0) must be at least"),
    ({"breaker_min_calls": 30, "breaker_window": 10}, "breaker_min_calls (30) cannot exceed breaker_window (10)"),
    ({"heartbeat_misses": 0}, "heartbeat_misses must be at least 1"),
])
def test_supervisor_settings_refuse_what_cannot_work(tmp_path: Path, overrides: dict[str, float], needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        Settings.load(load(_board(tmp_path)), environ={}, **overrides)
    assert needle in str(err.value)


def test_a_plugin_folder_named_twice_is_scanned_once(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    other = tmp_path / "more"
    s = Settings.load(environ={"MCP_EDGE_PLUGIN_DIRS": f"{plugins}:{other}:{tmp_path}/x/../plugins"},
                      data_dir=tmp_path)
    dirs = list(s.plugin_dirs)
    assert dirs[:2] == [plugins, other]
    assert sum(1 for d in dirs if d.resolve() == plugins.resolve()) == 1
