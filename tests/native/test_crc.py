"""CRC32C: test vectors, every ISA level against an independent implementation, the dispatch, API contract.

Per-kernel tests run once for every kernel of this build; a kernel this CPU
cannot run is skipped with a reason naming it and the features missing (see
``pytest -rs``), and the run ends with a line listing the kernels that ran and
those skipped (tests/native/conftest.py).
"""

from __future__ import annotations

import array
import json
import mmap
import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import crc32c as reference
import pytest
from ci_honesty import importorskip

from mcp_edge.errors import IsaLevelError
from mcp_edge.native import cpu, crc32c, crc32c_combine, crc32c_variant
from mcp_edge.native._crc import (
    _active_kernel,
    _kernel_addresses,
    kernel_description,
    kernel_level,
    kernel_name,
    kernels,
    level_kernels,
    runnable_kernels,
)

LEVELS = cpu.levels()  # the levels this CPU runs
KERNELS = kernels()  # the kernels of this build (this architecture's), lowest level first
RUNNABLE = runnable_kernels()  # those this CPU runs

# Each kernel's level and the CPU features it needs (csrc/cpu/cpu.c NEED_*, plus the kernel's own
# needs in csrc/crc32c/crc32c.c), to name what a skipped kernel lacks.
AVX2 = ("sse42", "pclmulqdq", "avx2")
KERNEL_TABLE = {
    "scalar": ("scalar", ()),
    "sse42": ("sse42", ("sse42",)),
    "avx2-pclmul": ("avx2", AVX2),
    "avx2-vpclmul": ("avx2", (*AVX2, "vpclmulqdq")),
    "avx512": ("avx512", (*AVX2, "avx512f", "avx512bw", "avx512vl", "vpclmulqdq")),
    "avx512-fused": ("avx512", (*AVX2, "avx512f", "avx512bw", "avx512vl", "vpclmulqdq")),
    "armv8crc": ("armv8crc", ("crc32",)),
    "neon": ("neon", ("asimd", "crc32", "pmull")),
}


@pytest.fixture(params=KERNELS)
def level(request: pytest.FixtureRequest) -> str:
    """Each kernel of this build; one this CPU cannot run is skipped, the skip naming the kernel."""
    name: str = request.param
    request.node.user_properties.append(("crc32c_kernel", name))
    if name not in RUNNABLE:
        feats = cpu.features()
        missing = [f for f in KERNEL_TABLE[name][1] if not feats.get(f)]
        lacks = f"lacks {', '.join(missing)}" if missing else "or its OS does not enable what it needs"
        pytest.skip(f"{name} kernel built but this CPU {lacks} (it runs {', '.join(RUNNABLE)})")
    return name

# RFC 3720 (iSCSI), appendix B.4, plus the common check value.
ISCSI_READ_PDU = bytes.fromhex(
    "01c00000" "00000000" "00000000" "00000000" "14000000" "00000400"
    "00000014" "00000018" "28000000" "00000000" "02000000" "00000000"
)
VECTORS = [
    (b"", 0x00000000),
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (ISCSI_READ_PDU, 0xD9963A56),
]


def test_rfc3720_vectors_dispatched() -> None:
    for data, expected in VECTORS:
        assert crc32c(data) == expected, data


def test_rfc3720_vectors_each_level(level: str) -> None:
    for data, expected in VECTORS:
        assert crc32c_variant(level, data) == expected, (level, data)


@pytest.fixture(scope="module")
def pool() -> bytes:
    return random.Random(20261121).randbytes(70_000 + 64 + 16)


def test_random_lengths_every_offset(level: str, pool: bytes, rng: random.Random) -> None:
    view = memoryview(pool)
    for offset in range(64):
        for _ in range(12):
            n = rng.randrange(0, 70_001)
            value = rng.randrange(2**32)
            data = view[offset : offset + n]
            assert crc32c_variant(level, data, value) == reference.crc32c(data, value), (level, offset, n)


def test_every_short_length(level: str, pool: bytes) -> None:
    """Lengths 0..1200 at a few offsets: every head/tail and threshold path of each kernel."""
    view = memoryview(pool)
    for offset in (0, 1, 7, 13, 63):
        for n in range(1201):
            data = view[offset : offset + n]
            assert crc32c_variant(level, data, 0x5A5A5A5A) == reference.crc32c(data, 0x5A5A5A5A), (offset, n)


def _fused_block_sizes() -> set[int]:
    """Bytes per block of the fused kernels (csrc/crc32c/crc32c_tune.h): three streams, then the vector span."""
    tune_h = Path(__file__).resolve().parents[2] / "csrc" / "crc32c" / "crc32c_tune.h"
    tune = {k: int(v) for k, v in re.findall(r"^#define ME_CRC32C_(\w+)\s+(\d+)\b", tune_h.read_text(), re.M)}
    sizes = {tune[f"{tier}_BLOCK"] * 3 for tier in ("LONG", "MID", "SHORT", "TINY")}
    for kind, vbytes in (("V512", 64), ("V256", 32), ("V128", 16), ("NEON", 16)):
        span = tune[f"{kind}_LANES"] * vbytes
        sizes.add(span)
        sizes.add(tune[f"{kind}_MIN"])
        for size in ("LONG", "SHORT"):
            iters = tune[f"{kind}_{size}_ITERS"]
            sizes.add(3 * iters * 8 * tune[f"{kind}_WORDS"] + iters * span)
    return sizes


def test_block_boundaries(level: str, pool: bytes) -> None:
    view = memoryview(pool)
    blocks = {16, 64, 128, 256, 768, 12288} | _fused_block_sizes()
    sizes = {k * b + d for b in blocks for k in (1, 2, 3, 4, 5) for d in (-1, 0, 1)}
    sizes |= {b + span + d for b in blocks for span in (16, 32, 96, 128, 960) for d in (-17, -1, 0, 1, 15)}
    for n in sorted(s for s in sizes if 0 <= s <= 70_000):
        for offset in (0, 5, 32):
            data = view[offset : offset + n]
            assert crc32c_variant(level, data) == reference.crc32c(data), (offset, n)


def test_large_inputs_around_the_fused_kernels_upper_bound(level: str) -> None:
    """Inputs around 8 MiB, where avx512-fused hands over to folding alone (ME_CRC32C_V512_MAX), agree with
    the scalar kernel, at an odd offset too."""
    data = memoryview(random.Random(8).randbytes((8 << 20) + 64))
    for n in ((8 << 20) - 1, 8 << 20, (8 << 20) + 7):
        for offset in (0, 3):
            piece = data[offset : offset + n]
            assert crc32c_variant(level, piece) == crc32c_variant("scalar", piece), (offset, n)


def test_streaming_matches_one_shot(level: str, pool: bytes, rng: random.Random) -> None:
    for _ in range(200):
        n = rng.randrange(0, 20_000)
        cut = rng.randrange(0, n + 1)
        whole = pool[:n]
        first = crc32c_variant(level, whole[:cut])
        assert crc32c_variant(level, whole[cut:], first) == crc32c_variant(level, whole)


def test_dispatched_matches_active_level(pool: bytes) -> None:
    assert kernel_level() == cpu.active()
    assert kernel_name() == level_kernels()[cpu.active()]
    for n in (0, 63, 64, 4096, 70_000):
        assert crc32c(pool[:n]) == crc32c_variant(cpu.active(), pool[:n])
        assert crc32c(pool[:n]) == crc32c_variant(kernel_name(), pool[:n])


def test_kernel_table() -> None:
    """Every kernel of this build is known here (level, needs), lowest level first; each runnable level runs
    its best runnable kernel; a kernel runs here exactly when this CPU has all it needs."""
    assert set(KERNELS) <= set(KERNEL_TABLE), KERNELS
    order = list(KERNEL_TABLE)
    assert sorted(KERNELS, key=order.index) == KERNELS
    feats = cpu.features()
    for name in KERNELS:
        level, needs = KERNEL_TABLE[name]
        assert (name in RUNNABLE) == (level in LEVELS and all(feats.get(f) for f in needs)), name
    chosen = level_kernels()
    assert list(chosen) == LEVELS
    for lvl, name in chosen.items():
        ours = [k for k in RUNNABLE if KERNEL_TABLE[k][0] == lvl]
        assert name == ours[-1], (lvl, ours)
    if "avx2" in chosen:
        assert chosen["avx2"] == ("avx2-vpclmul" if feats["vpclmulqdq"] else "avx2-pclmul")
    if "avx512" in chosen:
        assert chosen["avx512"] == "avx512-fused"


def test_description_names_the_kernel_in_use() -> None:
    detail = {"avx2-pclmul": "pclmulqdq + crc32 x3", "avx2-vpclmul": "vpclmulqdq-256 + crc32 x3",
              "avx512-fused": "vpclmulqdq-512 + crc32 x3",
              "armv8crc": "crc32c x3", "neon": "pmull + crc32c x3", "sse42": "crc32 x3"}
    expected = detail.get(kernel_name())
    assert kernel_description().startswith(f"{kernel_level()} (")
    if expected:
        assert kernel_description() == f"{kernel_level()} ({expected})"


def test_each_level_has_its_own_kernel() -> None:
    """The dispatch test below tells kernels apart by address: they must all differ."""
    addresses = _kernel_addresses()
    assert list(addresses) == KERNELS
    assert "scalar" in KERNELS and set(RUNNABLE) <= set(KERNELS)
    assert set(level_kernels().values()) <= set(RUNNABLE)
    assert len(set(addresses.values())) == len(addresses), addresses


def test_reported_level_is_the_kernel_in_use() -> None:
    names = {addr: name for name, addr in _kernel_addresses().items()}
    assert names[_active_kernel()] == kernel_name()
    assert KERNEL_TABLE[kernel_name()][0] == kernel_level()


_DISPATCH_PROBE = (
    "import json, sys\n"
    "from mcp_edge.native import _crc, cpu, crc32c\n"
    "crc32c(b'x')\n"
    "json.dump({'active': cpu.active(), 'reported': _crc.kernel_level(), 'name': _crc.kernel_name(),\n"
    "    'in_use': _crc._active_kernel(), 'kernels': _crc._kernel_addresses()}, sys.stdout)\n"
)


@pytest.mark.parametrize("forced", LEVELS)
def test_forcing_a_level_switches_the_kernel(forced: str) -> None:
    """MCP_EDGE_ISA=<level>: crc32c() then calls that level's kernel (its address, not a recorded level
    number: results are identical on every kernel, so only the pointer shows which one runs)."""
    expected = level_kernels()[forced]
    env = dict(os.environ, MCP_EDGE_ISA=forced)
    out = subprocess.run([sys.executable, "-c", _DISPATCH_PROBE], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    names = {addr: name for name, addr in got["kernels"].items()}
    assert got["active"] == forced
    assert names.get(got["in_use"]) == expected, f"MCP_EDGE_ISA={forced} runs the {names.get(got['in_use'])} kernel"
    assert (got["reported"], got["name"]) == (forced, expected)


def test_combine_identities(pool: bytes, rng: random.Random) -> None:
    for _ in range(200):
        n = rng.randrange(0, 30_000)
        cut = rng.randrange(0, n + 1)
        a, b = pool[:cut], pool[cut:n]
        assert crc32c_combine(crc32c(a), crc32c(b), len(b)) == crc32c(a + b)
    x, y, z = (rng.randrange(2**32) for _ in range(3))
    n, m = 2**40 + 3, 2**33 + 5  # lengths far beyond any buffer here
    left = crc32c_combine(crc32c_combine(x, y, n), z, m)
    right = crc32c_combine(x, crc32c_combine(y, z, m), n + m)
    assert left == right
    assert crc32c_combine(x, 0, 0) == x


def test_buffer_types_read_in_place() -> None:
    data = bytes(range(256)) * 64
    expected = reference.crc32c(data)
    with mmap.mmap(-1, len(data)) as mm:
        mm.write(data)
        assert crc32c(mm) == expected
    assert crc32c(bytearray(data)) == expected
    assert crc32c(memoryview(data)) == expected
    assert crc32c(array.array("B", data)) == expected
    assert crc32c(memoryview(data).cast("I")) == expected


def test_numpy_arrays() -> None:
    np = importorskip("numpy", "numpy", "numpy is a test dependency (pip install -e '.[test]')")
    arr = np.arange(10_000, dtype=np.float64)
    assert crc32c(arr) == reference.crc32c(arr.tobytes())
    with pytest.raises(BufferError, match="contiguous"):
        crc32c(arr[::2])


def test_non_contiguous_memoryview_is_a_clear_error() -> None:
    with pytest.raises(BufferError, match="C-contiguous"):
        crc32c(memoryview(bytes(100))[::2])


@pytest.mark.parametrize("bad", ["text", None, 12, [1, 2]])
def test_non_buffer_is_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        crc32c(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [-1, 2**32])
def test_value_out_of_range(value: int) -> None:
    with pytest.raises(OverflowError):
        crc32c(b"x", value)


def test_variant_unknown_level() -> None:
    with pytest.raises(IsaLevelError, match=r"unknown ISA level 'avx9'.*this CPU runs scalar.*kernels of this build"):
        crc32c_variant("avx9", b"x")


def test_variant_level_this_cpu_lacks() -> None:
    other = "neon" if "avx2" in cpu.features() else "sse42"
    with pytest.raises(IsaLevelError, match=f"cannot run ISA level '{other}'"):
        crc32c_variant(other, b"x")


def test_variant_kernel_this_cpu_lacks() -> None:
    """A kernel of this build that this CPU cannot run is refused by name, with what it needs."""
    lacking = [k for k in KERNELS if k not in RUNNABLE]
    if not lacking:
        pytest.skip(f"this CPU runs every CRC32C kernel of this build ({', '.join(KERNELS)})")
    with pytest.raises(IsaLevelError, match=f"cannot run CRC32C kernel '{lacking[-1]}' .*needs"):
        crc32c_variant(lacking[-1], b"x")


def test_level_name_runs_the_level_kernel(pool: bytes) -> None:
    """crc32c_variant(<level>) is the kernel that level dispatches to here."""
    for lvl, name in level_kernels().items():
        assert crc32c_variant(lvl, pool[:5000], 7) == crc32c_variant(name, pool[:5000], 7)


def test_large_input_releases_the_gil() -> None:
    """While one thread checksums 192 MiB (scalar kernel: slow), another keeps running Python."""
    code = textwrap.dedent(
        """
        import sys, threading
        from mcp_edge.native import crc32c
        sys.setswitchinterval(1e-4)
        data = bytes(192 << 20)
        started = threading.Event()
        def work():
            started.set()
            crc32c(data)
        t = threading.Thread(target=work)
        t.start()
        started.wait()
        spins = 0
        while t.is_alive():
            spins += 1
        t.join()
        print(spins)
        """
    )
    env = dict(os.environ, MCP_EDGE_ISA="scalar")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    # Held for the whole call, the GIL would let the main thread spin only around the
    # call's edges (a few 0.1 ms switch intervals: ~1,000 spins); released, all through it.
    assert int(out.stdout) > 10_000, out.stdout
