"""CPU features, ISA levels and the MCP_EDGE_ISA cap."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from mcp_edge.native import cpu

X86 = platform.machine() in ("x86_64", "AMD64")


def run_with_isa(level: str, code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MCP_EDGE_ISA=level)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)


def test_levels_lowest_first_and_active_is_best() -> None:
    levels = cpu.levels()
    assert levels[0] == "scalar"
    order = ["scalar", "sse42", "avx2", "avx512"] if X86 else ["scalar", "armv8crc", "neon"]
    assert levels == [lvl for lvl in order if lvl in levels]
    if not os.environ.get("MCP_EDGE_ISA"):
        assert cpu.active() == levels[-1]
    assert cpu.active() in levels


def test_features_of_this_arch() -> None:
    feats = cpu.features()
    expected = (
        {"sse42", "pclmulqdq", "avx2", "avx512f", "avx512bw", "avx512vl", "vpclmulqdq"}
        if X86
        else {"asimd", "crc32", "pmull", "sve"}
    )
    assert set(feats) == expected
    assert all(isinstance(v, bool) for v in feats.values())


@pytest.mark.skipif(not X86, reason="x86-64 cpuid flags")
def test_features_agree_with_proc_cpuinfo() -> None:
    with open("/proc/cpuinfo") as f:
        flags = next(line for line in f if line.startswith("flags")).split()
    names = {"sse42": "sse4_2", "pclmulqdq": "pclmulqdq", "avx2": "avx2", "avx512f": "avx512f",
             "avx512bw": "avx512bw", "avx512vl": "avx512vl", "vpclmulqdq": "vpclmulqdq"}
    for feature, on in cpu.features().items():
        assert on == (names[feature] in flags), feature


def test_levels_follow_features() -> None:
    f = cpu.features()
    levels = cpu.levels()
    if X86:
        assert ("sse42" in levels) == f["sse42"]
        assert ("avx512" in levels) == all(
            f[k] for k in ("avx512f", "avx512bw", "avx512vl", "vpclmulqdq", "avx2", "pclmulqdq")
        )
    else:
        assert ("armv8crc" in levels) == f["crc32"]
        assert ("neon" in levels) == (f["asimd"] and f["crc32"] and f["pmull"])


@pytest.mark.parametrize("level", cpu.levels())
def test_cap_selects_each_runnable_level(level: str) -> None:
    out = run_with_isa(
        level,
        "from mcp_edge.native import cpu, crc32c; from mcp_edge.native._crc import kernel_level;"
        "print(cpu.active(), kernel_level(), cpu.forced(), crc32c(b'123456789'))",
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [level, level, "True", str(0xE3069283)]


def test_unknown_level_is_an_import_error_naming_levels() -> None:
    out = run_with_isa("avx9", "import mcp_edge.native")
    assert out.returncode != 0
    assert "MCP_EDGE_ISA=avx9: unknown ISA level 'avx9'" in out.stderr
    assert "this CPU runs " + ", ".join(cpu.levels()) in out.stderr


def test_level_this_cpu_lacks_is_an_import_error() -> None:
    lacking = "neon" if X86 else "avx512"
    out = run_with_isa(lacking, "import mcp_edge.native")
    assert out.returncode != 0
    assert f"cannot run ISA level '{lacking}'; it runs " + ", ".join(cpu.levels()) in out.stderr



def test_best_level_for_this_cpus_features_is_its_best_level() -> None:
    """The rule fed another CPU's features (board profiles) is the one that picked this CPU's level."""
    arch = "x86_64" if X86 else "aarch64"
    mine = [name for name, on in cpu.features().items() if on]
    assert cpu.best_level_for(arch, mine) == cpu.levels()[-1]


@pytest.mark.parametrize(
    ("arch", "features", "level"),
    [
        ("aarch64", ["asimd", "crc32"], "armv8crc"),  # Cortex-A72 without the crypto extension (Pi 4)
        ("aarch64", ["asimd", "crc32", "pmull"], "neon"),
        ("aarch64", ["asimd", "pmull"], "scalar"),
        ("x86_64", ["sse42", "pclmulqdq", "avx2", "avx512f", "avx512bw", "avx512vl"], "avx2"),  # no VPCLMULQDQ
        ("x86_64", ["sse42", "pclmulqdq", "avx2", "avx512f", "avx512bw", "avx512vl", "vpclmulqdq"], "avx512"),
        ("x86_64", ["sse42", "avx2"], "sse42"),
        ("x86_64", [], "scalar"),
    ],
)
def test_best_level_for_either_arch_on_any_host(arch: str, features: list[str], level: str) -> None:
    assert cpu.best_level_for(arch, features) == level
    assert set(features) <= set(cpu.feature_names(arch))
