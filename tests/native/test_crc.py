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
import subprocess
import sys
import textwrap

import crc32c as reference
import pytest
from ci_honesty import importorskip

from mcp_edge.errors import IsaLevelError
from mcp_edge.native import cpu, crc32c, crc32c_combine, crc32c_variant
from mcp_edge.native._crc import _active_kernel, _kernel_addresses, kernel_level, kernels

LEVELS = cpu.levels()  # the levels this CPU runs
KERNELS = kernels()  # the levels this build has a kernel for (this architecture's)

# The CPU features each kernel needs (csrc/cpu/cpu.c, NEED_*), to name what a skipped kernel lacks.
NEEDS = {
    "scalar": (),
    "sse42": ("sse42",),
    "avx2": ("sse42", "pclmulqdq", "avx2"),
    "avx512": ("sse42", "pclmulqdq", "avx2", "avx512f", "avx512bw", "avx512vl", "vpclmulqdq"),
    "neon": ("asimd", "crc32", "pmull"),
}


@pytest.fixture(params=KERNELS)
def level(request: pytest.FixtureRequest) -> str:
    """Each kernel of this build; one this CPU cannot run is skipped, the skip naming the kernel."""
    name: str = request.param
    request.node.user_properties.append(("crc32c_kernel", name))
    if name not in LEVELS:
        feats = cpu.features()
        missing = [f for f in NEEDS.get(name, ()) if not feats.get(f)]
        lacks = f"lacks {', '.join(missing)}" if missing else "or its OS does not enable what it needs"
        pytest.skip(f"{name} kernel built but this CPU {lacks} (it runs {', '.join(LEVELS)})")
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


def test_block_boundaries(level: str, pool: bytes) -> None:
    view = memoryview(pool)
    sizes = {k * b + d for b in (16, 64, 128, 256, 768, 12288) for k in (1, 2, 3, 4, 5) for d in (-1, 0, 1)}
    for n in sorted(s for s in sizes if 0 <= s <= 70_000):
        for offset in (0, 5, 32):
            data = view[offset : offset + n]
            assert crc32c_variant(level, data) == reference.crc32c(data), (offset, n)


def test_streaming_matches_one_shot(level: str, pool: bytes, rng: random.Random) -> None:
    for _ in range(200):
        n = rng.randrange(0, 20_000)
        cut = rng.randrange(0, n + 1)
        whole = pool[:n]
        first = crc32c_variant(level, whole[:cut])
        assert crc32c_variant(level, whole[cut:], first) == crc32c_variant(level, whole)


def test_dispatched_matches_active_level(pool: bytes) -> None:
    assert kernel_level() == cpu.active()
    for n in (0, 63, 64, 4096, 70_000):
        assert crc32c(pool[:n]) == crc32c_variant(cpu.active(), pool[:n])


def test_each_level_has_its_own_kernel() -> None:
    """The dispatch test below tells kernels apart by address: they must all differ."""
    addresses = _kernel_addresses()
    assert list(addresses) == KERNELS
    assert "scalar" in KERNELS and set(LEVELS) <= set(KERNELS)
    assert len(set(addresses.values())) == len(addresses), addresses


def test_reported_level_is_the_kernel_in_use() -> None:
    assert _active_kernel() == _kernel_addresses()[kernel_level()]


_DISPATCH_PROBE = (
    "import json, sys\n"
    "from mcp_edge.native import _crc, cpu, crc32c\n"
    "crc32c(b'x')\n"
    "json.dump({'active': cpu.active(), 'reported': _crc.kernel_level(),\n"
    "    'in_use': _crc._active_kernel(), 'kernels': _crc._kernel_addresses()}, sys.stdout)\n"
)


def test_forcing_a_level_switches_the_kernel(level: str) -> None:
    """MCP_EDGE_ISA=<level>: crc32c() then calls that level's kernel (its address, not a recorded level
    number: results are identical on every kernel, so only the pointer shows which one runs)."""
    env = dict(os.environ, MCP_EDGE_ISA=level)
    out = subprocess.run([sys.executable, "-c", _DISPATCH_PROBE], env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    names = {addr: name for name, addr in got["kernels"].items()}
    assert got["active"] == level
    assert names.get(got["in_use"]) == level, f"MCP_EDGE_ISA={level} runs the {names.get(got['in_use'])} kernel"
    assert got["reported"] == level


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
    with pytest.raises(IsaLevelError, match=r"unknown ISA level 'avx9'.*this CPU runs scalar"):
        crc32c_variant("avx9", b"x")


def test_variant_level_this_cpu_lacks() -> None:
    other = "neon" if "avx2" in cpu.features() else "sse42"
    with pytest.raises(IsaLevelError, match=f"cannot run ISA level '{other}'"):
        crc32c_variant(other, b"x")


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
