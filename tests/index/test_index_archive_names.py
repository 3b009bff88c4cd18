"""Names with control characters are kept out of artifacts: a newline would let one file name pass for several
lines of tree_sha256, so two different trees could share it. Unpacking refuses such a member; packing refuses
such a file."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from mcp_edge.errors import ConfigError, IndexRefused
from mcp_edge.index.archive import pack, unpack


@pytest.mark.parametrize("name", ["a\nF b 0 1 x", "tab\there", "esc\x1b[31m", "del\x7f"])
def test_a_member_with_a_control_character_is_refused(tmp_path: Path, name: str) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    art = tmp_path / "a.tar.gz"
    art.write_bytes(gzip.compress(raw.getvalue()))
    (tmp_path / "out").mkdir()
    with pytest.raises(IndexRefused, match="control character"):
        unpack(art, tmp_path / "out", max_members=10, max_bytes=1024)
    assert list((tmp_path / "out").iterdir()) == []


def test_packing_a_name_with_a_newline_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "plugin.toml").write_text("")
    (src / "two\nlines").write_text("x")
    with pytest.raises(ConfigError, match="control character"):
        pack(src, io.BytesIO())
