"""The machine fingerprint of a perf result, ``perf run --board``, and a real quick bench end to end with samples."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import mcp_edge
from mcp_edge.commands import cli
from mcp_edge.perf.harness import MIN_SAMPLES, cpu_flags, machine_info, peer_versions

CHECKOUT = Path(mcp_edge.__file__).resolve().parents[1]

X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu vme sse4_2 pclmulqdq avx avx2 avx512f avx512bw avx512vl vpclmulqdq hypervisor lahf_lm

processor\t: 1
flags\t\t: fpu
"""

ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
"""


def test_cpu_flags_keeps_the_relevant_ones_of_the_first_cpu() -> None:
    assert cpu_flags(X86_CPUINFO) == ["avx", "avx2", "avx512bw", "avx512f", "avx512vl", "hypervisor", "pclmulqdq",
                                      "sse4_2", "vpclmulqdq"]
    assert cpu_flags(ARM_CPUINFO) == ["asimd", "crc32"]
    assert cpu_flags("") == []


def test_machine_info_names_the_software() -> None:
    machine = machine_info()
    assert machine["python"] == platform.python_version()
    assert machine["mcp_edge"] and machine["mcp_edge"] != "unknown"
    if (CHECKOUT / ".git").exists():
        assert machine["mcp_edge_commit"] is not None
        assert len(machine["mcp_edge_commit"].removesuffix("+dirty")) == 12
    peers = machine["peers"]
    assert "fio" in peers and "mcp" in peers and "fastmcp" in peers
    assert all(isinstance(v, str) and v for v in peers.values())


def test_peer_versions_come_from_the_perf_extra() -> None:
    peers = peer_versions()
    assert "google-crc32c" in peers and "crc32c" in peers and "numpy" in peers
    assert "pytest" not in peers  # the test extra is not a peer


def test_machine_info_board_from_the_profiles() -> None:
    assert machine_info("generic-x86_64")["board"] == "generic-x86_64"


def test_perf_run_unknown_board_exits_2(tmp_path: Path) -> None:
    got = CliRunner().invoke(cli, ["perf", "run", "--only", "crc32c", "--quick", "--board", "no-such-board",
                                   "--json", str(tmp_path / "r.json")])
    assert got.exit_code == 2
    assert "no-such-board" in got.output
    assert not (tmp_path / "r.json").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="the slab bench's peers and counters are Linux-only")
def test_quick_run_of_a_real_bench_has_samples(tmp_path: Path) -> None:
    out = tmp_path / "quick.json"
    done = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "perf", "run", "--quick", "--only", "slab",
                           "--board", "generic-x86_64", "--json", str(out)],
                          cwd=CHECKOUT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["machine"]["board"] == "generic-x86_64"
    rows = result["results"]
    assert rows and {r["bench"] for r in rows} == {"slab"}
    for r in rows:
        if r["metric"] == "count":  # a count: one sample, said in a note
            assert len(r["samples"]) == 1
            continue
        assert len(r["samples"]) >= MIN_SAMPLES, r
        assert min(r["samples"]) <= r["value"] <= max(r["samples"]), r
    compared = subprocess.run([sys.executable, "-m", "mcp_edge.cli", "perf", "compare", str(out), str(out)],
                              cwd=CHECKOUT, capture_output=True, text=True, timeout=120)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert "no regression" in compared.stdout
