"""A signed SWUpdate image (.swu) of a bundle's overlay tarball, and a signing key pair for it.

The image is a cpio archive in the "new ASCII with CRC" format (magic ``070702``) that SWUpdate reads:
``sw-description`` first, then its CMS signature ``sw-description.sig``, then the overlay tarball. The
description (libconfig syntax) lists the tarball as a ``files`` entry of ``type = "archive"``: SWUpdate's
archive handler extracts it into ``path`` ("/" on a device) after checking its ``sha256``, which the signed
description carries, so the signature covers the payload too. Signing uses the openssl command line
(``openssl cms -sign ... -outform DER -nosmimecap -binary``), as SWUpdate's documentation describes; a device
verifies with ``swupdate -k <CA certificate>`` (the signer's certificate must chain to it and carry the
emailProtection purpose, SWUpdate's default ``--cert-purpose``).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mcp_edge.errors import ConfigError

__all__ = ["SigningKey", "build_swu", "cpio_members", "cpio_newc_crc", "make_signing_key", "sw_description"]

_TRAILER = "TRAILER!!!"


@dataclass(frozen=True)
class SigningKey:
    key: Path  # the signer's private key (PEM)
    cert: Path  # the signer's certificate (PEM), issued by ca
    ca: Path  # the CA certificate a device is given (swupdate -k)


def _openssl() -> str:
    tool = shutil.which("openssl")
    if tool is None:
        raise ConfigError("signing an SWUpdate image needs the openssl command (Debian: openssl)")
    return tool


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"{what} failed: {proc.stderr.strip() or proc.stdout.strip()}")


def make_signing_key(folder: Path, cn: str = "mcp-edge update signer") -> SigningKey:
    """A CA and a signer certificate issued by it (EC P-256, emailProtection), for tests and for a first
    device fleet without a PKI of its own. Writes ca.pem, ca-key.pem, signer.pem and signer-key.pem."""
    openssl = _openssl()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_key, ca, key, cert = (folder / n for n in ("ca-key.pem", "ca.pem", "signer-key.pem", "signer.pem"))
    csr, ext = folder / "signer.csr", folder / "signer.ext"
    for k in (ca_key, key):
        k.touch(mode=0o600)  # private from the start: openssl writes into the existing file
        k.chmod(0o600)
        _run([openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(k)],
             "making a key")
    _run([openssl, "req", "-x509", "-new", "-key", str(ca_key), "-subj", f"/CN={cn} CA", "-days", "3650",
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
          "-out", str(ca)], "making the CA certificate")
    _run([openssl, "req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr)], "making the request")
    ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=emailProtection\n")
    _run([openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
          "-days", "3650", "-extfile", str(ext), "-out", str(cert)], "issuing the signer certificate")
    csr.unlink()
    ext.unlink()
    return SigningKey(key=key, cert=cert, ca=ca)


def check_board_name(board: str) -> None:
    """ConfigError unless ``board`` can name a libconfig setting (the image's board section)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]*", board):
        raise ConfigError(f"{board!r}: a board name in sw-description starts with a letter and holds letters, "
                          "digits, - and _ (rename the profile to sign its bundle)")


def sw_description(*, name: str, version: str, payload: str, sha256: str, install_path: str, board: str,
                   revisions: tuple[str, ...] = ("1.0",)) -> str:
    """The libconfig text of the image's description: one archive extracted into ``install_path``, in a section
    of its own for ``board``, so that SWUpdate installs it only on a device whose hardware revision (the
    boardname and revision of /etc/hwrevision, or ``swupdate -H board:rev``) names that board and one of
    ``revisions``."""
    def quoted(text: str) -> str:
        if any(c in text for c in '"\\\n'):
            raise ConfigError(f"{text!r}: quotes, backslashes and newlines cannot go into sw-description")
        return f'"{text}"'

    check_board_name(board)
    lines = ["software =", "{", f"\tversion = {quoted(version)};", f"\tdescription = {quoted(name + ' ' + version)};",
             f"\t{board} = {{",
             f"\t\thardware-compatibility: [ {', '.join(quoted(r) for r in revisions)} ];",
             "\t\tfiles: (",
             "\t\t\t{",
             f"\t\t\t\tfilename = {quoted(payload)};",
             '\t\t\t\ttype = "archive";',
             f"\t\t\t\tpath = {quoted(install_path)};",
             "\t\t\t\tpreserve-attributes = true;",
             f"\t\t\t\tsha256 = {quoted(sha256)};",
             "\t\t\t}",
             "\t\t);",
             "\t};",
             "}"]
    return "\n".join(lines) + "\n"


def cpio_newc_crc(members: list[tuple[str, bytes]]) -> bytes:
    """A cpio archive in the new ASCII format with checksums (070702), as SWUpdate reads it."""
    out = bytearray()

    def pad() -> None:
        out.extend(b"\0" * (-len(out) % 4))

    def entry(ino: int, name: str, data: bytes, mode: int) -> None:
        raw = name.encode() + b"\0"
        check = sum(data) & 0xFFFFFFFF
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw), check)
        out.extend(b"070702" + "".join(f"{v:08X}" for v in fields).encode() + raw)
        pad()
        out.extend(data)
        pad()

    for ino, (name, data) in enumerate(members, start=1):
        entry(ino, name, data, 0o100644)
    entry(0, _TRAILER, b"", 0)
    return bytes(out)


def cpio_members(data: bytes) -> list[tuple[str, bytes]]:
    """The members of a newc/crc cpio archive, in order (the trailer left out); ConfigError on a bad one."""
    out: list[tuple[str, bytes]] = []
    pos = 0
    while True:
        header = data[pos:pos + 110]
        if len(header) < 110 or header[:6] not in (b"070701", b"070702"):
            raise ConfigError(f"not a newc cpio archive at offset {pos}")
        try:
            size, namesize = int(header[54:62], 16), int(header[94:102], 16)
            name = data[pos + 110:pos + 110 + namesize - 1].decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"bad cpio header at offset {pos}: {exc}") from None
        if namesize < 1:
            raise ConfigError(f"bad cpio header at offset {pos}: empty name")
        pos += 110 + namesize
        pos += -pos % 4
        if name == _TRAILER:
            return out
        if pos + size > len(data):
            raise ConfigError(f"cpio member {name!r} is cut short ({size} bytes declared)")
        out.append((name, data[pos:pos + size]))
        pos += size
        pos += -pos % 4


def build_swu(overlay: Path, out: Path, *, key: Path, cert: Path, version: str, board: str, name: str = "mcp-edge",
              revisions: tuple[str, ...] = ("1.0",), install_path: str = "/") -> Path:
    """Write the signed image of ``overlay`` to ``out`` (atomically); ConfigError on a missing input."""
    for path, what in ((overlay, "overlay tarball"), (key, "signing key"), (cert, "signing certificate")):
        if not path.is_file():
            raise ConfigError(f"{path}: no such {what}")
    openssl = _openssl()
    payload = overlay.read_bytes()
    text = sw_description(name=name, version=version, payload=overlay.name,
                          sha256=hashlib.sha256(payload).hexdigest(), install_path=install_path, board=board,
                          revisions=revisions)
    work = out.with_name(f".{out.name}.d")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        desc, sig = work / "sw-description", work / "sw-description.sig"
        desc.write_text(text)
        _run([openssl, "cms", "-sign", "-in", str(desc), "-out", str(sig), "-signer", str(cert), "-inkey", str(key),
              "-outform", "DER", "-nosmimecap", "-binary"], "signing sw-description")
        image = cpio_newc_crc([("sw-description", desc.read_bytes()), ("sw-description.sig", sig.read_bytes()),
                               (overlay.name, payload)])
        tmp = work / "image.swu"
        tmp.write_bytes(image)
        tmp.replace(out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
