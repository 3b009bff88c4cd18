"""The box's own secrets, in one place: ``<data_dir>/keys/`` (0700), each file 0600 and made once, by the first
process that needs it (a temporary file, synced, then linked into place: concurrent starters end up with the
same key). ``mcp-edge keys list|create|rotate`` manages them and lists the public keys this box trusts
(``/etc/mcp-edge/trust/``, where later issues put the keys that verify plugins, the plugin index and updates).

- ``request-state.key``: 32 random bytes, the HMAC key of 2026-07-28 ``requestState`` (the router's); a key
  left at the data dir's top by an earlier version is moved here.
- ``audit-ed25519.pem``: the Ed25519 key that signs each audit file's final hash (``audit_sign``); its public
  half is ``audit-ed25519.pub`` (hex of the 32 raw bytes), what ``mcp-edge audit verify --key`` takes.

No component keeps a private key anywhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["KEYS", "TRUST_DIR", "audit_public_key", "audit_signing_key", "key_dir", "list_keys", "rotate",
           "secret_once"]

TRUST_DIR: Final = Path("/etc/mcp-edge/trust")
STATE_KEY: Final = "request-state.key"
AUDIT_KEY: Final = "audit-ed25519.pem"
AUDIT_PUB: Final = "audit-ed25519.pub"
KEYS: Final = {"request-state": STATE_KEY, "audit": AUDIT_KEY}
_STATE_BYTES: Final = 32


def key_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "keys"


def _once(path: Path, make: Callable[[], bytes]) -> bytes:
    """The bytes of ``path``, written first (0600, synced, linked into place) when it does not exist."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.write(fd, make())
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def secret_once(data_dir: Path) -> bytes:
    """The requestState HMAC key (OSError when the data dir cannot hold it)."""
    keys = key_dir(data_dir)
    old = Path(data_dir) / STATE_KEY
    if old.exists() and not (keys / STATE_KEY).exists():
        keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(old, 0o600)
            os.replace(old, keys / STATE_KEY)
    key = _once(keys / STATE_KEY, lambda: os.urandom(_STATE_BYTES))
    if len(key) != _STATE_BYTES:
        raise OSError(f"{keys / STATE_KEY} holds {len(key)} bytes, not a {_STATE_BYTES}-byte key: remove it")
    return key


def _new_audit_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                      serialization.NoEncryption())


def audit_signing_key(keys: Path) -> Ed25519PrivateKey:
    """The audit signing key under ``keys`` (made once), its public half written beside it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(_once(keys / AUDIT_KEY, _new_audit_key), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{keys / AUDIT_KEY} is not an Ed25519 key")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub = keys / AUDIT_PUB
    if not pub.exists() or pub.read_text().strip() != raw.hex():
        pub.write_text(raw.hex() + "\n")
    return key


def audit_public_key(keys: Path) -> bytes:
    """The raw public audit key (ValueError without one)."""
    try:
        return bytes.fromhex((keys / AUDIT_PUB).read_text().strip())
    except FileNotFoundError:
        raise ValueError(f"no audit key in {keys}: audit_sign makes one") from None


def list_keys(data_dir: Path, trust_dir: Path = TRUST_DIR, board_keys: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The box's keys (name, path, mode, made, fingerprint of the public part or of the secret's SHA-256: never
    the secret) and the trusted public keys: files in ``trust_dir`` and the board profile's ``NAME=HEX``."""
    out: list[dict[str, Any]] = []
    keys = key_dir(data_dir)
    for name, file in KEYS.items():
        path = keys / file
        row: dict[str, Any] = {"name": name, "path": str(path), "kind": "own", "exists": path.exists()}
        if path.exists():
            st = path.stat()
            row["mode"] = f"{st.st_mode & 0o777:04o}"
            row["made"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime))
            public = keys / AUDIT_PUB if name == "audit" and (keys / AUDIT_PUB).exists() else path
            row["fingerprint"] = "sha256:" + hashlib.sha256(public.read_bytes()).hexdigest()[:32]
        out.append(row)
    if trust_dir.is_dir():
        for path in sorted(trust_dir.iterdir()):
            if path.is_file():
                out.append({"name": path.name, "path": str(path), "kind": "trusted", "exists": True,
                            "fingerprint": "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:32]})
    from mcp_edge.index.signing import board_key

    for item in board_keys:
        name, raw = board_key(item)
        out.append({"name": name, "path": "board profile", "kind": "trusted", "exists": True,
                    "fingerprint": "sha256:" + hashlib.sha256(raw).hexdigest()[:32]})
    return out


def rotate(data_dir: Path, name: str) -> Path:
    """Replace key ``name`` with a new one (the old one is gone: outstanding requestStates fail their check;
    files signed before keep verifying only with the old public key). The new key's path."""
    if name not in KEYS:
        raise ValueError(f"no key {name!r}: the keys are {', '.join(KEYS)}")
    keys = key_dir(data_dir)
    path = keys / KEYS[name]
    path.unlink(missing_ok=True)
    if name == "audit":
        (keys / AUDIT_PUB).unlink(missing_ok=True)
        audit_signing_key(keys)
    else:
        secret_once(data_dir)
    return path
