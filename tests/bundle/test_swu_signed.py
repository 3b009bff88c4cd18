"""The signed SWUpdate image of an overlay, checked and installed by Debian's swupdate itself.

swupdate verifies the CMS signature of sw-description against the CA (-k), the board section against the
hardware revision (-H), and the payload's SHA-256 (also in check mode, -c). A real install extracts the
overlay into the image's install path (a temporary folder here).
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest
from ci_honesty import require_or_skip

from mcp_edge.bundle.swupdate import (
    SigningKey,
    build_swu,
    cpio_members,
    cpio_newc_crc,
    make_signing_key,
    sw_description,
)
from mcp_edge.errors import ConfigError

if shutil.which("swupdate") is None or shutil.which("openssl") is None:
    require_or_skip("swupdate", "the SWUpdate tests need Debian's swupdate and openssl (make setup installs them)")

BOARD = "test-board"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return make_signing_key(tmp_path_factory.mktemp("keys"), "swu test")


@pytest.fixture
def overlay(tmp_path: Path) -> Path:
    path = tmp_path / "overlay.tar.gz"
    files = {"opt/mcp-edge/bin/mcp-edge": b"#!/bin/sh\necho hi\n", "etc/mcp-edge/board.toml": b'[identity]\nid = "x"\n',
             "opt/mcp-edge/lib/data.bin": bytes(range(256)) * 64}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755 if name.endswith("mcp-edge") else 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def swupdate(*args: str) -> subprocess.CompletedProcess[str]:
    """swupdate with its control sockets in a folder of its own (they are $TMPDIR/sockinstctrl and
    $TMPDIR/swupdateprog: two runs sharing /tmp would talk to each other).

    Debian 12's swupdate 2022.12 now and then, on a loaded machine, exits 1 after printing "SWUPDATE successful !"
    and no error, or never exits (its exit races its own progress and IPC threads). Such a run is killed with its
    process group and repeated, twice at most; a refusal prints an [ERROR] line and is never repeated."""
    out = subprocess.CompletedProcess(["swupdate", *args], 1, "", "")
    for _ in range(3):
        with tempfile.TemporaryDirectory(prefix="swupdate-") as tmp:
            proc = subprocess.Popen(["swupdate", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    env={**os.environ, "TMPDIR": tmp}, start_new_session=True)
            try:
                stdout, stderr = proc.communicate(timeout=45)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                continue
        out = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
        text = stdout + stderr
        if out.returncode == 0 or "SWUPDATE successful" not in text or "[ERROR]" in text:
            return out
    return out


def test_swupdate_check_accepts_the_signed_image(keys: SigningKey, overlay: Path, tmp_path: Path) -> None:
    swu = build_swu(overlay, tmp_path / "x.swu", key=keys.key, cert=keys.cert, version="1.2.3", board=BOARD)
    out = swupdate("-c", "-i", str(swu), "-k", str(keys.ca), "-H", f"{BOARD}:1.0")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SWUPDATE successful" in out.stdout + out.stderr


def test_a_flipped_payload_byte_is_refused(keys: SigningKey, overlay: Path, tmp_path: Path) -> None:
    swu = build_swu(overlay, tmp_path / "x.swu", key=keys.key, cert=keys.cert, version="1", board=BOARD)
    data = bytearray(swu.read_bytes())
    data[-2048] ^= 0xFF  # inside the payload, before the trailer: the cpio checksum no longer holds
    swu.write_bytes(data)
    out = swupdate("-c", "-i", str(swu), "-k", str(keys.ca), "-H", f"{BOARD}:1.0")
    assert out.returncode != 0
    assert "Checksum WRONG" in out.stdout + out.stderr


def test_a_repacked_tampered_payload_is_refused_by_its_signed_hash(keys: SigningKey, overlay: Path,
                                                                   tmp_path: Path) -> None:
    """The cpio checksums made right again: the signed SHA-256 of the payload still catches it."""
    swu = build_swu(overlay, tmp_path / "x.swu", key=keys.key, cert=keys.cert, version="1", board=BOARD)
    members = cpio_members(swu.read_bytes())
    assert [name for name, _ in members] == ["sw-description", "sw-description.sig", overlay.name]
    payload = bytearray(members[2][1])
    payload[len(payload) // 2] ^= 0xFF
    swu.write_bytes(cpio_newc_crc([members[0], members[1], (overlay.name, bytes(payload))]))
    out = swupdate("-c", "-i", str(swu), "-k", str(keys.ca), "-H", f"{BOARD}:1.0")
    assert out.returncode != 0
    assert "HASH mismatch" in out.stdout + out.stderr


def test_another_signer_is_refused(keys: SigningKey, overlay: Path, tmp_path: Path) -> None:
    other = make_signing_key(tmp_path / "other", "somebody else")
    swu = build_swu(overlay, tmp_path / "x.swu", key=other.key, cert=other.cert, version="1", board=BOARD)
    out = swupdate("-c", "-i", str(swu), "-k", str(keys.ca), "-H", f"{BOARD}:1.0")
    assert out.returncode != 0
    assert "SWUPDATE successful" not in out.stdout + out.stderr


def test_another_board_is_refused(keys: SigningKey, overlay: Path, tmp_path: Path) -> None:
    swu = build_swu(overlay, tmp_path / "x.swu", key=keys.key, cert=keys.cert, version="1", board=BOARD)
    out = swupdate("-c", "-i", str(swu), "-k", str(keys.ca), "-H", "some-other-board:1.0")
    assert out.returncode != 0


def test_install_extracts_the_overlay(keys: SigningKey, overlay: Path, tmp_path: Path) -> None:
    target = tmp_path / "rootfs"
    target.mkdir()
    swu = build_swu(overlay, tmp_path / "x.swu", key=keys.key, cert=keys.cert, version="1", board=BOARD,
                    install_path=str(target))
    out = swupdate("-i", str(swu), "-k", str(keys.ca), "-H", f"{BOARD}:1.0")
    assert out.returncode == 0, out.stdout + out.stderr
    with tarfile.open(overlay) as tar:
        for member in tar.getmembers():
            extracted = tar.extractfile(member)
            assert extracted is not None
            assert (target / member.name).read_bytes() == extracted.read(), member.name
    assert (target / "opt/mcp-edge/bin/mcp-edge").stat().st_mode & 0o777 == 0o755


def test_cpio_format() -> None:
    data = cpio_newc_crc([("a", b"xyz"), ("bb", b"")])
    assert data.startswith(b"070702")
    header = data[:110]
    assert int(header[54:62], 16) == 3  # filesize
    assert int(header[102:110], 16) == sum(b"xyz")  # the checksum of the crc format
    assert b"TRAILER!!!\0" in data and len(data) % 4 == 0


def test_bad_input(keys: SigningKey, overlay: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such overlay tarball"):
        build_swu(tmp_path / "missing.tar.gz", tmp_path / "x.swu", key=keys.key, cert=keys.cert, version="1",
                  board=BOARD)
    with pytest.raises(ConfigError, match="no such signing key"):
        build_swu(overlay, tmp_path / "x.swu", key=tmp_path / "nokey", cert=keys.cert, version="1", board=BOARD)
    with pytest.raises(ConfigError, match="cannot go into sw-description"):
        sw_description(name="x", version='1"; evil', payload="p", sha256="0", install_path="/", board=BOARD)
    with pytest.raises(ConfigError, match="a board name in sw-description"):
        sw_description(name="x", version="1", payload="p", sha256="0", install_path="/", board="a b")
    assert not (tmp_path / "x.swu").exists()
    digest = hashlib.sha256(b"").hexdigest()
    assert f'sha256 = "{digest}"' in sw_description(name="x", version="1", payload="p", sha256=digest,
                                                     install_path="/", board=BOARD)
