"""``mcp-edge board list/show/detect/check`` and ``serve --board``, run as a user runs them; the checks' rules."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from mcp_edge.board.check import Machine, check
from mcp_edge.board.profiles import load, resolve

ROOT = Path(__file__).resolve().parents[2]
ARCH = platform.machine()
OTHER_ARCH = "aarch64" if ARCH == "x86_64" else "x86_64"


def mcp_edge(*args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    full.update({"MCP_EDGE_ENTRY_POINTS": "0", "MCP_EDGE_RELOAD_WATCH": "0", "MCP_EDGE_BOARD_FILE": "", **env})
    return subprocess.run([sys.executable, "-m", "mcp_edge.cli", *args], capture_output=True, text=True, env=full,
                          timeout=120, input=stdin, cwd=ROOT)


def test_list_shows_every_profile_with_level_and_base() -> None:
    out = mcp_edge("board", "list")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines()[1:]}
    assert rows["raspberry-pi-4"][:4] == ["raspberry-pi-4", "aarch64", "armv8crc", "generic-aarch64"]
    assert rows["xeon-d-2100"][:4] == ["xeon-d-2100", "x86_64", "avx2", "generic-x86_64"]
    assert len(rows) >= 9
    data = json.loads(mcp_edge("board", "list", "--json").stdout)
    assert {d["id"] for d in data} >= set(rows)


def test_show_resolves_the_chain_and_prints_valid_toml() -> None:
    out = mcp_edge("board", "show", "raspberry-pi-5")
    assert out.returncode == 0, out.stderr
    assert "# resolved: generic-aarch64 -> raspberry-pi-5" in out.stdout
    tables = tomllib.loads(out.stdout)
    assert tables["cpu"]["page_size"] == 16384
    assert tables["storage"]["data_dir"] == "/var/lib/mcp-edge"  # inherited from the base
    data = json.loads(mcp_edge("board", "show", "raspberry-pi-5", "--json").stdout)
    assert data["chain"] == ["generic-aarch64", "raspberry-pi-5"]
    assert data["derived"]["slab_arena_bytes"] == sum(
        s * c for s, c in zip([64, 256, 1024, 4096, 16384, 65536], [512, 256, 128, 64, 32, 8], strict=True))


def test_show_unknown_board_is_exit_2_naming_the_known_ones() -> None:
    out = mcp_edge("board", "show", "no-such-board")
    assert out.returncode == 2
    assert "no board profile 'no-such-board' (known: " in out.stderr and "raspberry-pi-5" in out.stderr


def test_detect_says_which_and_why() -> None:
    out = mcp_edge("board", "detect", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["facts"]["arch"] == ARCH
    assert data["candidates"][0]["id"] == data["picked"] and data["candidates"][0]["fits"]
    assert data["why"].startswith(f"arch {ARCH}")
    other = next(c for c in data["candidates"] if c["id"] == f"generic-{OTHER_ARCH}")
    assert not other["fits"] and other["reasons"] == [f"arch is {ARCH}, the profile's is {OTHER_ARCH}"]
    text = mcp_edge("board", "detect").stdout
    assert f"picked {data['picked']}: " in text


def test_check_generic_profile_of_this_arch_passes(tmp_path: Path) -> None:
    out = mcp_edge("board", "check", f"generic-{ARCH}", "--json", "--data-dir", str(tmp_path))
    data = json.loads(out.stdout)
    assert out.returncode == 0, out.stdout
    assert data["ok"] is True
    statuses = {c["check"]: c["status"] for c in data["checks"]}
    assert statuses["arch"] == "pass" and statuses["isa level"] == "pass" and statuses["page size"] == "pass"
    assert "fail" not in statuses.values()


def test_check_a_profile_of_the_other_arch_fails_on_arch_here() -> None:
    """On x86-64 the Pi 5's profile (the issue's case), on aarch64 the N100's: exit 1, the arch named."""
    other = "raspberry-pi-5" if ARCH == "x86_64" else "intel-n100"
    want = f"this machine is {ARCH}; the profile is for {OTHER_ARCH}"
    out = mcp_edge("board", "check", other)
    assert out.returncode == 1
    assert f"FAIL  arch  {want}" in out.stdout
    data = json.loads(mcp_edge("board", "check", other, "--json").stdout)
    assert data["checks"] == [{"check": "arch", "status": "fail", "detail": want}]


# --------------------------------------------------------------------------- the rules, on made-up machines


def _machine(**changes: object) -> Machine:
    base = Machine(arch="aarch64", features=frozenset({"asimd", "crc32", "pmull"}), best_level="neon",
                   active_level="neon", capped_by="", cores=4, mem_mib=8000, page_size=16384, hugepages=0,
                   numa_nodes=1, io_uring=(True, "io_uring_setup works"),
                   odirect={"data_dir": "/d", "probed": "/d", "fs": "ext4", "supported": True, "reason": "works"})
    return replace(base, **changes)  # type: ignore[arg-type]


def _statuses(board_id: str, **changes: object) -> dict[str, str]:
    return {c.name: c.status for c in check(resolve(board_id, {}), _machine(**changes))}


def test_a_real_pi5_passes_its_profile() -> None:
    got = _statuses("raspberry-pi-5")
    assert set(got.values()) == {"pass"}, got


@pytest.mark.parametrize(
    ("changes", "name", "status"),
    [
        ({"page_size": 4096}, "page size", "fail"),
        ({"features": frozenset({"asimd", "crc32"}), "best_level": "armv8crc", "active_level": "armv8crc"},
         "isa floor", "fail"),
        ({"features": frozenset({"asimd", "crc32"}), "best_level": "armv8crc", "active_level": "armv8crc"},
         "isa level", "fail"),
        ({"active_level": "armv8crc", "capped_by": "MCP_EDGE_ISA=armv8crc"}, "isa level", "warn"),
        ({"cores": 2}, "cores", "warn"),
        ({"mem_mib": 1000}, "memory", "warn"),
        ({"io_uring": (False, "the kernel has no io_uring (ENOSYS)")}, "io_uring", "fail"),
        ({"odirect": {"data_dir": "/d", "probed": "/d", "fs": "tmpfs", "supported": False, "reason": "EINVAL"}},
         "o_direct", "fail"),
        ({"odirect": {"data_dir": "/d", "probed": "/d", "fs": "xfs", "supported": True, "reason": "works"}},
         "filesystem", "warn"),
        ({"odirect": {"data_dir": "/d/x", "probed": "/d", "fs": "ext4", "supported": True, "reason": "works"}},
         "data dir", "warn"),
        ({"numa_nodes": 2}, "numa", "warn"),
    ],
)
def test_each_difference_is_reported(changes: dict[str, object], name: str, status: str) -> None:
    assert _statuses("raspberry-pi-5", **changes)[name] == status


def test_pi4_profile_on_a_pi5_cpu_runs_above_its_level() -> None:
    got = {c.name: c for c in check(resolve("raspberry-pi-4", {}), _machine(page_size=4096))}
    assert got["isa level"].status == "pass" and "above the profile's armv8crc" in got["isa level"].detail


def test_qemu_profile_passes_without_io_uring() -> None:
    got = _statuses("qemu-virt-aarch64", page_size=4096, io_uring=(False, "the kernel has no io_uring (ENOSYS)"))
    assert got["io_uring"] == "pass"


def test_hugepages_asked_for_but_not_reserved_warns() -> None:
    x86 = _machine(arch="x86_64", features=frozenset({"sse42", "pclmulqdq", "avx2"}), best_level="avx2",
                   active_level="avx2", page_size=4096, mem_mib=20000)
    got = {c.name: c for c in check(resolve("xeon-d-2100", {}), x86)}
    assert got["hugepages"].status == "warn" and "echo 64 > /proc/sys/vm/nr_hugepages" in got["hugepages"].detail
    assert got["isa optional"].status == "warn"


# --------------------------------------------------------------------------- serve --board


def _profile(folder: Path, board_id: str, extra: str = "") -> None:
    folder.mkdir(exist_ok=True)
    (folder / f"{board_id}.toml").write_text(
        f'extends = "generic-{ARCH}"\n[identity]\nid = "{board_id}"\n[match]\npriority = -100\n'
        f'[storage]\ndata_dir = {json.dumps(str(folder / "data"))}\nplugin_dirs = []\n{extra}')


INIT = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                   "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                              "clientInfo": {"name": "t", "version": "1"}}}) + "\n"


def test_serve_board_names_the_profile_and_its_transport_mode(tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    _profile(boards, "stdio-box", '[transport]\ntransport_mode = "stdio"\n')
    out = mcp_edge("serve", "--board", "stdio-box", stdin=INIT, MCP_EDGE_BOARDS_DIR=str(boards))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[0])["id"] == 1  # no --stdio: the profile's transport_mode
    assert "board stdio-box (named by --board)" in out.stderr


def test_serve_without_board_says_which_and_why(tmp_path: Path) -> None:
    out = mcp_edge("serve", "--stdio", stdin=INIT)
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stderr.splitlines() if "board " in x)
    assert f"(arch {ARCH}" in line


def test_serve_unknown_board_is_exit_2(tmp_path: Path) -> None:
    out = mcp_edge("serve", "--stdio", "--board", "nope", stdin="")
    assert out.returncode == 2
    assert "no board profile 'nope'" in out.stderr


def test_installed_profile_is_used_and_named(tmp_path: Path) -> None:
    boards = tmp_path / "boards"
    _profile(boards, "installed-box")
    installed = tmp_path / "board.toml"
    installed.write_text(load(boards / "installed-box.toml").to_toml())
    out = mcp_edge("serve", "--stdio", stdin=INIT, MCP_EDGE_BOARD_FILE=str(installed))
    assert out.returncode == 0, out.stderr
    assert f"board installed-box (the installed profile {installed})" in out.stderr
