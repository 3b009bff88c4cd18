"""Artifacts: packing is reproducible; unpacking refuses absolute names, '..', links, devices, FIFOs, names given
twice, too many members and too many bytes, writing nothing outside its folder; the installer refuses such an
artifact even when the index signed it."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from index_helpers import PLUGIN_ID, Publisher, installer, write_plugin

from mcp_edge.errors import ConfigError, IndexRefused
from mcp_edge.index.archive import pack, tree_digest, unpack
from mcp_edge.index.format import INDEX_TYPE, SPEC, format_time
from mcp_edge.index.signing import canonical, load_private_key, sign

MANIFEST = (f'[plugin]\nid = "{PLUGIN_ID}"\nversion = "9.0.0"\nabi = 1\nmodule = "plugin"\n').encode()


def _tar(add: Callable[[tarfile.TarFile], None]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        add(tar)
    return raw.getvalue()


def _file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _special(kind: bytes, name: str, linkname: str = "") -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        _file(tar, "plugin.toml", MANIFEST)
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, linkname
        tar.addfile(info)
    return add


UNSAFE: dict[str, tuple[Callable[[tarfile.TarFile], None], str]] = {
    "dotdot": (lambda t: _file(t, "../escaped.txt", b"x"), "climbs out with '..'"),
    "nested-dotdot": (lambda t: _file(t, "lib/../../escaped.txt", b"x"), "climbs out"),
    "absolute": (lambda t: _file(t, "/tmp/escaped.txt", b"x"), "absolute path"),
    "symlink": (_special(tarfile.SYMTYPE, "lib", "/etc"), "is a symbolic link"),
    "hardlink": (_special(tarfile.LNKTYPE, "passwd", "/etc/passwd"), "is a hard link"),
    "device": (_special(tarfile.CHRTYPE, "null"), "is a device"),
    "fifo": (_special(tarfile.FIFOTYPE, "pipe"), "is a FIFO"),
    "twice": (lambda t: (_file(t, "a.txt", b"1"), _file(t, "./a.txt", b"2")), "named twice"),
    "too-many": (lambda t: [_file(t, f"f{i}", b"") for i in range(20)], "more than 10 members"),
    "too-big": (lambda t: _file(t, "big", b"\0" * 5000), "more than 4096 bytes"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_are_refused(tmp_path: Path, case: str) -> None:
    add, reason = UNSAFE[case]
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar(add))
    dest = tmp_path / "deep" / "dest"
    dest.mkdir(parents=True)
    with pytest.raises(IndexRefused, match=reason):
        unpack(archive, dest, max_members=10, max_bytes=4096)
    assert list(tmp_path.rglob("escaped.txt")) == []
    assert [p for p in dest.rglob("*") if p.is_symlink()] == []


def test_not_a_tarball_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(b"PK\x03\x04 a zip or anything else")
    (tmp_path / "d").mkdir()
    with pytest.raises(IndexRefused, match="cannot unpack it"):
        unpack(archive, tmp_path / "d", max_members=10, max_bytes=4096)


def test_pack_is_reproducible_and_round_trips(tmp_path: Path) -> None:
    src = write_plugin(tmp_path / "src" / PLUGIN_ID, "1.0.0", "v1")
    (src / "lib").mkdir()
    (src / "lib" / "tool.sh").write_text("#!/bin/sh\n")
    (src / "lib" / "tool.sh").chmod(0o755)
    (src / "__pycache__").mkdir()
    (src / "__pycache__" / "plugin.cpython-311.pyc").write_bytes(b"cache")
    first, second = io.BytesIO(), io.BytesIO()
    pack(src, first)
    (src / "plugin.py").touch()  # a new mtime changes nothing
    pack(src, second)
    assert first.getvalue() == second.getvalue()
    (tmp_path / "a.tar.gz").write_bytes(first.getvalue())
    dest = tmp_path / "dest"
    dest.mkdir()
    unpack(tmp_path / "a.tar.gz", dest, max_members=100, max_bytes=1 << 20)
    assert tree_digest(dest) == tree_digest(src)  # __pycache__ left out of both
    assert (dest / "lib" / "tool.sh").stat().st_mode & 0o111
    assert not (dest / "__pycache__").exists()
    (src / "link").symlink_to("/etc/passwd")
    with pytest.raises(ConfigError, match="not a symbolic link"):
        pack(src, io.BytesIO())


def test_installer_refuses_a_signed_but_unsafe_artifact(tmp_path: Path) -> None:
    """The publisher's key signed it, yet a member climbs out: refused, nothing written outside, nothing kept."""
    pub = Publisher(tmp_path / "pub")
    trust = pub.trust_into(tmp_path / "trust")
    pub.out.mkdir(parents=True)
    data = _tar(lambda t: (_file(t, "plugin.toml", MANIFEST), _file(t, "../../planted.txt", b"x")))
    (pub.out / "evil.tar.gz").write_bytes(data)
    signed = {"type": INDEX_TYPE, "spec": SPEC, "version": 1,
              "expires": format_time(dt.datetime.now(dt.UTC) + dt.timedelta(days=1)),
              "plugins": [{"id": PLUGIN_ID, "version": "9.0.0", "description": "", "abi": 1, "kind": "python",
                           "arch": "any", "url": "evil.tar.gz", "sha256": hashlib.sha256(data).hexdigest(),
                           "size": len(data)}]}
    doc = {"signed": signed, "signatures": [sign(load_private_key(pub.key), canonical(signed))]}
    (pub.out / "index.json").write_text(json.dumps(doc))
    box = installer(tmp_path, str(pub.out / "index.json"), trust)
    with pytest.raises(IndexRefused, match="climbs out"):
        box.install(PLUGIN_ID)
    plugins = tmp_path / "data" / "plugins"
    assert not (plugins / PLUGIN_ID).exists() and not (plugins / "planted.txt").exists()
    assert not (tmp_path / "data" / "planted.txt").exists()
    assert list((plugins / ".staging").iterdir()) == []
    assert PLUGIN_ID not in box.state.installed()
