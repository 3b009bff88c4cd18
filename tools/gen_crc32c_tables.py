#!/usr/bin/env python3
"""Generate csrc/crc32c/crc32c_tables.h: the constant tables of the CRC32C kernels.

Run ``python tools/gen_crc32c_tables.py`` after changing a block size or a
folding distance; ``tests/native/test_crc_tables.py`` checks the committed header
matches this script's output.

Conventions: polynomials are the reflected CRC32C (Castagnoli) ones.  A 32-bit
*reflected* value ``r`` stands for sum(r_i x^(31-i)); a *normal* value ``c`` for
sum(c_d x^d).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

POLY_REFLECTED = 0x82F63B78
POLY_NORMAL = 0x11EDC6F41  # with the x^32 term

ROOT = Path(__file__).resolve().parent.parent
# Stream counts and block sizes, chosen by measurement, live in one header: this
# script reads them from there to derive the constants each block size needs.
TUNE_HEADER = ROOT / "csrc" / "crc32c" / "crc32c_tune.h"
# Folding distances, in bytes, used by the carry-less multiply kernels.
FOLD_DISTANCES = (16, 32, 48, 64, 80, 96, 112, 128, 192, 256)
# The fused kernels (crc32c_fuse_tpl.h): name in crc32c_tune.h -> bytes per vector register.
FUSED = {"V512": 64, "V256": 32, "V128": 16, "NEON": 16}


def multmodp(a: int, b: int) -> int:
    """a * b mod P, both reflected 32-bit values."""
    m = 1 << 31
    p = 0
    while True:
        if a & m:
            p ^= b
            if (a & (m - 1)) == 0:
                break
        m >>= 1
        b = (b >> 1) ^ POLY_REFLECTED if b & 1 else b >> 1
    return p


def xpow_reflected(n: int) -> int:
    """x^n mod P as a reflected 32-bit value."""
    result = 1 << 31  # x^0
    base = 1 << 30  # x^1
    while n:
        if n & 1:
            result = multmodp(result, base)
        base = multmodp(base, base)
        n >>= 1
    return result


def xpow_normal(n: int) -> int:
    """x^n mod P as a normal value (bit d is the coefficient of x^d)."""
    r = xpow_reflected(n)
    return int(f"{r:032b}"[::-1], 2)


def fold_constant(exponent: int) -> int:
    """64-bit clmul operand K with K * x == x^exponent (mod P), reflected lanes.

    In a reflected 64-bit lane bit j stands for x^(63-j), and a carry-less
    product of two such lanes, read as a 128-bit reflected value, is A*B*x.
    """
    c = xpow_normal(exponent - 1)
    k = 0
    for d in range(32):
        if (c >> d) & 1:
            k |= 1 << (63 - d)
    return k


def read_tune(path: Path) -> dict[str, int]:
    """The integer #defines of crc32c_tune.h, without their ME_CRC32C_ prefix."""
    found = re.findall(r"^#define ME_CRC32C_(\w+)\s+(\d+)\b", path.read_text(), re.MULTILINE)
    return {name: int(value) for name, value in found}


def fused_distances(tune: dict[str, int], kind: str, vbytes: int) -> dict[str, int]:
    """The folding distances, by name, of fused kernel `kind` (see crc32c_fuse_tpl.h).

    A block is three crc32 streams of `sb` bytes each, then `iters` vector spans:
    JUMP carries the vector accumulators over the next block's streams, BLOCK
    carries the streams' running sum over one block, C1..C3 move each stream's
    final state (a 16-byte lane at the stream's end) to the block's last 16 bytes.
    """
    span = tune[f"{kind}_LANES"] * vbytes
    out = {"SPAN": span, "VEC": vbytes}
    for lane in range(1, tune[f"{kind}_LANES"]):
        out[f"LANE{lane}"] = lane * vbytes
    for size in ("LONG", "SHORT"):
        iters = tune[f"{kind}_{size}_ITERS"]
        sb = iters * 8 * tune[f"{kind}_WORDS"]
        vb = iters * span
        out[f"{size}_JUMP"] = 3 * sb + span
        out[f"{size}_BLOCK"] = 3 * sb + vb
        out[f"{size}_C1"] = vb + 2 * sb - 16
        out[f"{size}_C2"] = vb + sb - 16
        out[f"{size}_C3"] = vb - 16
    return out


def byte_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ POLY_REFLECTED if c & 1 else c >> 1
        table.append(c)
    return table


def slicing_tables() -> list[list[int]]:
    t0 = byte_table()
    tables = [t0]
    for _ in range(7):
        prev = tables[-1]
        tables.append([(prev[n] >> 8) ^ t0[prev[n] & 0xFF] for n in range(256)])
    return tables


def shift_tables(nbytes: int) -> list[list[int]]:
    """Tables that multiply a raw state by x^(8*nbytes): four byte lanes."""
    op = xpow_reflected(8 * nbytes)
    return [[multmodp(op, n << (8 * k)) for n in range(256)] for k in range(4)]


def c_table(name: str, rows: list[list[int]]) -> str:
    out = [f"static const uint32_t {name}[{len(rows)}][256] = {{"]
    for row in rows:
        out.append("    {")
        for i in range(0, 256, 6):
            out.append("        " + ", ".join(f"0x{v:08x}" for v in row[i : i + 6]) + ",")
        out.append("    },")
    out.append("};")
    return "\n".join(out)


# Block sizes (bytes per stream) of the three-stream crc32 kernel, largest first.
HW_TIERS = ("LONG", "MID", "SHORT", "TINY")


def render(tune: dict[str, int]) -> str:
    parts = [
        "/* crc32c_tables.h - constant tables of the CRC32C kernels (generated). */",
        "/* SPDX-License-Identifier: Apache-2.0 */",
        "/* Generated by tools/gen_crc32c_tables.py; do not edit by hand. */",
        "#ifndef MCP_EDGE_CRC32C_TABLES_H",
        "#define MCP_EDGE_CRC32C_TABLES_H",
        "",
        "#include <stdint.h>",
        "",
        '#include "crc32c_tune.h"',
        "",
        "/* Slicing-by-8 tables of the scalar kernel. */",
        c_table("me_crc32c_slice8", slicing_tables()),
        "",
        "/* Multiply a raw state by x^(8*ME_CRC32C_<tier>_BLOCK) (shift_<tier>) and by",
        "   x^(16*ME_CRC32C_<tier>_BLOCK) (shift2_<tier>), for each tier of crc32c_tune.h. */",
    ]
    for tier in HW_TIERS:
        block = tune[f"{tier}_BLOCK"]
        parts += [c_table(f"me_crc32c_shift_{tier.lower()}", shift_tables(block)), ""]
        parts += [c_table(f"me_crc32c_shift2_{tier.lower()}", shift_tables(2 * block)), ""]
    parts += [
        "/* x^(2^(k+3)) mod P, reflected: the operator of 2^k zero bytes (combine). */",
        "static const uint32_t me_crc32c_x2n_bytes[64] = {",
    ]
    vals = [xpow_reflected(8 << k) for k in range(64)]
    for i in range(0, 64, 6):
        parts.append("    " + ", ".join(f"0x{v:08x}" for v in vals[i : i + 6]) + ",")
    parts.append("};")
    parts.append("")
    parts.append("/* Folding constants: ME_CRC32C_FOLD_<n>_LO/HI fold a 16-byte lane forward")
    parts.append("   by n bytes. LO multiplies the lane's first 8 bytes, HI its last 8. */")
    for dist in FOLD_DISTANCES:
        bits = 8 * dist
        lo = fold_constant(64 + bits)
        hi = fold_constant(bits)
        parts.append(f"#define ME_CRC32C_FOLD_{dist}_LO 0x{lo:016x}ULL")
        parts.append(f"#define ME_CRC32C_FOLD_{dist}_HI 0x{hi:016x}ULL")
    for kind, vbytes in FUSED.items():
        parts.append("")
        parts.append(f"/* Folding constants of the fused {kind} kernel, from crc32c_tune.h (distance in bytes). */")
        for name, dist in fused_distances(tune, kind, vbytes).items():
            bits = 8 * dist
            parts.append(f"#define ME_CRC32C_{kind}_{name}_LO 0x{fold_constant(64 + bits):016x}ULL /* {dist} */")
            parts.append(f"#define ME_CRC32C_{kind}_{name}_HI 0x{fold_constant(bits):016x}ULL")
    parts += ["", "#endif /* MCP_EDGE_CRC32C_TABLES_H */", ""]
    return "\n".join(parts)


def main() -> int:
    args = sys.argv[1:]
    tune_path, target = TUNE_HEADER, ROOT / "csrc" / "crc32c" / "crc32c_tables.h"
    if "--tune" in args:  # tuning runs: another tune header, the tables beside it
        tune_path = Path(args[args.index("--tune") + 1])
        target = tune_path.parent / "crc32c_tables.h"
    text = render(read_tune(tune_path))
    if "--check" in args:
        if target.read_text() != text:
            print(f"{target} is out of date: run python tools/gen_crc32c_tables.py", file=sys.stderr)
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
