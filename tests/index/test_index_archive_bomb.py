"""The decompressed tar stream of an artifact is bounded, not only its files: bytes that no file holds (a folder
member that carries data, a huge PAX header) are refused once they pass what plugin_max_unpacked and
plugin_max_members allow, instead of being read (or held in memory) to the end; an artifact at its limits, long
names and all, still unpacks."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from mcp_edge.errors import IndexRefused
from mcp_edge.index.archive import pack, unpack

MANIFEST = b'[plugin]\nid = "hello"\nversion = "1.0.0"\nabi = 1\nmodule = "plugin"\n'
LIMITS = {"max_members": 10, "max_bytes": 4096}


def _write(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, None if data is None else io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue(), compresslevel=1))
    return path


def _file(name: str, data: bytes, **pax: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.pax_headers = dict(pax)
    return info, data


def test_a_huge_gnu_long_name_is_refused(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:  # 8 MiB of name (8 kB gzip'd)
        info, data = _file("a" * (8 * 1024 * 1024), b"x")
        tar.addfile(info, io.BytesIO(data))
    art = tmp_path / "a.tar.gz"
    art.write_bytes(gzip.compress(raw.getvalue(), compresslevel=1))
    (tmp_path / "out").mkdir()
    with pytest.raises(IndexRefused, match=r"artifact a.tar.gz: its tar stream is longer than \d+ bytes.*bomb"):
        unpack(art, tmp_path / "out", **LIMITS)


def test_a_huge_pax_header_is_refused(tmp_path: Path) -> None:
    art = _write(tmp_path / "b.tar.gz", [_file("plugin.toml", MANIFEST, comment="x" * (8 * 1024 * 1024))])
    (tmp_path / "out").mkdir()
    with pytest.raises(IndexRefused, match="its tar stream is longer than"):
        unpack(art, tmp_path / "out", **LIMITS)
    assert not (tmp_path / "out" / "plugin.toml").exists()


def test_an_artifact_at_its_limits_still_unpacks(tmp_path: Path) -> None:
    src = tmp_path / "src"
    deep = src / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    (src / "plugin.toml").write_bytes(MANIFEST)
    for i in range(7):  # 10 members: plugin.toml, 2 folders, 7 files with names past 100 characters (PAX)
        (deep / f"{i}-{'f' * 110}").write_bytes(bytes([i]) * 500)
    buf = io.BytesIO()
    pack(src, buf)
    art = tmp_path / "ok.tar.gz"
    art.write_bytes(buf.getvalue())
    (tmp_path / "out").mkdir()
    assert unpack(art, tmp_path / "out", **LIMITS) == len(MANIFEST) + 7 * 500
    assert (tmp_path / "out" / deep.relative_to(src) / f"6-{'f' * 110}").read_bytes() == b"\6" * 500
