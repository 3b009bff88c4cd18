"""mcp-edge doctor: the probes and the command, text and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mcp_edge.doctor import probe_hugepages, probe_io_uring, probe_numa, probe_odirect
from mcp_edge.native import cpu

ROOT = Path(__file__).resolve().parents[1]


def mcp_edge(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mcp_edge.cli", *args],
        capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT,
    )


def test_odirect_on_the_work_tree(tmp_path: Path) -> None:
    # The work tree is on ext4 (O_DIRECT works there); the probe leaves nothing behind.
    target = ROOT / "build"
    target.mkdir(exist_ok=True)
    before = set(os.listdir(target))
    result = probe_odirect(target)
    assert result["probed"] == str(target)
    if result["fs"] in ("ext4", "xfs", "btrfs"):
        assert result["supported"] is True, result
    assert set(os.listdir(target)) == before


def test_odirect_probes_nearest_existing_parent(tmp_path: Path) -> None:
    result = probe_odirect(tmp_path / "not" / "there")
    assert result["probed"] == str(tmp_path)
    assert result["data_dir"] == str(tmp_path / "not" / "there")


def test_odirect_where_no_file_can_be_created() -> None:
    result = probe_odirect(Path("/proc/sys"))
    assert result["supported"] is False
    assert "cannot create a file there" in result["reason"]


def test_other_probes_shape() -> None:
    uring = probe_io_uring()
    assert isinstance(uring["available"], bool) and uring["reason"]
    huge = probe_hugepages()
    assert huge["size_kib"] >= 0 and huge["thp"]
    assert probe_numa()["nodes"] >= 1


def test_doctor_text_report() -> None:
    out = mcp_edge("doctor")
    assert out.returncode == 0, out.stderr
    for label in ("board", "isa levels", "isa active", "io_uring", "O_DIRECT", "hugepages", "NUMA nodes",
                  "io engine", "dio align", "buffer pool"):
        assert label in out.stdout
    assert f"isa active   {cpu.active()}" in out.stdout


def test_doctor_json_report() -> None:
    out = mcp_edge("doctor", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["isa"]["levels"] == cpu.levels()
    assert report["isa"]["active"] == report["isa"]["crc32c_kernel"]
    assert set(report) >= {"arch", "kernel", "board", "io_uring", "odirect", "hugepages", "numa", "io"}
    io = report["io"]
    assert io["engine"]["name"] == ("uring" if report["io_uring"]["available"] else "threads")
    assert io["engine"]["requested"] == "auto"
    assert io["alignment"]["offset"] >= 1 and io["alignment"]["source"] in ("statx", "blockdev", "default")
    assert io["pool"]["pages"] in ("4k", "thp", "hugetlb")


def test_doctor_shows_the_storage_engine_alignment_and_pages() -> None:
    (ROOT / "build").mkdir(exist_ok=True)
    out = mcp_edge("doctor", "--data-dir", str(ROOT / "build"), MCP_EDGE_IO="threads")
    assert out.returncode == 0, out.stderr
    assert "io engine    threads (io_engine=threads asks for it): 32 workers" in out.stdout
    report = json.loads(mcp_edge("doctor", "--json", "--data-dir", str(ROOT / "build"), MCP_EDGE_IO="threads").stdout)
    align = report["io"]["alignment"]
    assert align["probed"] == str(ROOT / "build")
    line = next(x for x in out.stdout.splitlines() if x.startswith("  dio align"))
    assert f"memory {align['mem']} B, offset {align['offset']} B ({align['source']})" in line
    pages = next(x for x in out.stdout.splitlines() if x.startswith("  buffer pool"))
    assert pages.split()[2] == report["io"]["pool"]["pages"]


def test_doctor_bad_io_engine_is_exit_2() -> None:
    out = mcp_edge("doctor", MCP_EDGE_IO="spdk")
    assert out.returncode == 2
    assert out.stderr.startswith("mcp-edge: MCP_EDGE_IO: setting io_engine must be one of uring, threads, auto")
    assert "Traceback" not in out.stderr


def test_doctor_shows_forced_level() -> None:
    out = mcp_edge("doctor", "--json", MCP_EDGE_ISA="scalar")
    report = json.loads(out.stdout)
    assert (report["isa"]["active"], report["isa"]["forced"], report["isa"]["crc32c_kernel"]) == (
        "scalar", True, "scalar")


def test_bad_isa_is_exit_2_with_message() -> None:
    out = mcp_edge("doctor", MCP_EDGE_ISA="avx9")
    assert out.returncode == 2
    assert out.stderr.startswith("mcp-edge: MCP_EDGE_ISA=avx9: unknown ISA level")
    assert "Traceback" not in out.stderr


def test_unknown_board_is_exit_2() -> None:
    out = mcp_edge("doctor", MCP_EDGE_BOARD="no-such-board")
    assert out.returncode == 2
    assert "MCP_EDGE_BOARD=no-such-board: no board profile 'no-such-board' (known: " in out.stderr


NUMA = Path(__file__).resolve().parent / "data" / "numa"


@pytest.mark.parametrize(("fixture", "arenas", "bound", "needle"), [
    ("one-node", 1, False, "one node: one arena, not bound"),
    ("two-nodes", 2, True, "one arena per node with memory, bound with mbind"),
    ("four-nodes-memoryless", 3, True, "one arena per node with memory"),
    ("bad-cpulist", 1, False, "cannot be read"),
])
def test_doctor_says_what_a_slab_pool_does_on_a_topology(fixture: str, arenas: int, bound: bool,
                                                        needle: str) -> None:
    """No silent fallback: the arenas, their binding and the memory they pre-fault are shown for the box."""
    from mcp_edge.doctor import probe_slab

    got = probe_slab((64, 4096), (16, 4), True, topology=str(NUMA / fixture))
    assert (got["arenas"], got["bound"]) == (arenas, bound)
    assert needle in got["reason"]
    assert got["total_bytes"] == got["arena_bytes"] * arenas >= 16 * 64 + 4 * 4096
    off = probe_slab((64,), (1,), False, topology=str(NUMA / fixture))
    assert (off["arenas"], off["bound"]) == (1, False) and "slab_numa off" in off["reason"]


def test_doctor_shows_the_slab_pools() -> None:
    out = mcp_edge("doctor", MCP_EDGE_SLAB_COUNTS="1,1,1,1,1,1")
    assert out.returncode == 0, out.stderr
    assert "slab pools" in out.stdout and "MiB pre-faulted" in out.stdout
    data = json.loads(mcp_edge("doctor", "--json", MCP_EDGE_SLAB_COUNTS="1,1,1,1,1,1").stdout)["slab"]
    assert data["arena_bytes"] >= 64 + 256 + 1024 + 4096 + 16384 + 65536
