"""Folders unpacked from an artifact are 0755 whatever the installer's umask (files already were 0644/0755), so
a plugin installed by root with umask 077 is still readable by the runtime's own user."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from pathlib import Path

from mcp_edge.index.archive import unpack


def test_folders_are_0755_under_a_strict_umask(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("lib/deep/mod.py", "plugin.toml"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    art = tmp_path / "a.tar.gz"
    art.write_bytes(gzip.compress(raw.getvalue()))
    out = tmp_path / "out"
    out.mkdir()
    old = os.umask(0o077)
    try:
        unpack(art, out, max_members=10, max_bytes=1024)
    finally:
        os.umask(old)
    for folder in (out / "lib", out / "lib" / "deep"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
    assert stat.S_IMODE((out / "lib" / "deep" / "mod.py").stat().st_mode) == 0o644
