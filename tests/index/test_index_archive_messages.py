"""Unpacking refusals name what is wrong with the member: a name given as a folder and then as a file, a name
the filesystem cannot hold; a gzip stream that is corrupt inside is "not a tar.gz", not a traceback."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from mcp_edge.errors import IndexRefused
from mcp_edge.index.archive import unpack

LIMITS = {"max_members": 10, "max_bytes": 1 << 20}


def _art(path: Path, *members: tuple[str, bytes | None]) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    path.write_bytes(gzip.compress(raw.getvalue()))
    return path


@pytest.mark.parametrize(("members", "reason"), [
    ((("lib", None), ("lib", b"x")), "member 'lib' names a folder already there"),
    ((("n" * 300, b"x"),), "cannot be created: File name too long"),
])
def test_member_refusals_say_what_is_wrong(tmp_path: Path, members: tuple[tuple[str, bytes | None], ...],
                                           reason: str) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(IndexRefused, match=reason):
        unpack(_art(tmp_path / "a.tar.gz", *members), tmp_path / "out", **LIMITS)


def test_a_corrupt_deflate_stream_is_not_a_tar_gz(tmp_path: Path) -> None:
    good = _art(tmp_path / "a.tar.gz", ("plugin.toml", b"x" * 5000)).read_bytes()
    bad = bytearray(good)
    for i in range(12, 40):  # the deflate data, past the 10-byte gzip header
        bad[i] ^= 0x5A
    (tmp_path / "b.tar.gz").write_bytes(bytes(bad))
    (tmp_path / "out").mkdir()
    with pytest.raises(IndexRefused, match=r"b.tar.gz: cannot unpack it \(a tar.gz is expected\)"):
        unpack(tmp_path / "b.tar.gz", tmp_path / "out", **LIMITS)
