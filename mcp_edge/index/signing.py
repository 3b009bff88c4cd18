"""Ed25519 keys and signatures of the plugin index and its artifacts (``cryptography``, imported on first use).

A key id is the SHA-256 (hex) of the raw 32-byte public key, so a publisher and a box name a key the same way
without agreeing on file names. What is signed is always bytes this module makes itself:

- an index: the canonical JSON of its ``signed`` object (keys sorted, no spaces, UTF-8);
- an artifact: the line ``mcp-edge-artifact-v1 sha256:<hex> size:<n>``, so a signature covers the exact
  bytes of the archive without reading them twice.

Trusted public keys come from the trust folder (``Settings.trust_dir``: one key a file, 64 hex characters or a
PEM ``PUBLIC KEY``) and from the board profile (``Settings.trusted_keys``, ``NAME=HEX``).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mcp_edge.errors import ConfigError, IndexRefused

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = ["ARTIFACT_TAG", "TrustStore", "artifact_message", "board_key", "canonical", "file_digest", "generate_key",
           "key_id", "load_private_key", "public_hex", "sign", "verify_signatures"]

ARTIFACT_TAG: Final = "mcp-edge-artifact-v1"
_RAW_LEN: Final = 32
_SIG_LEN: Final = 64
# Trust-folder files larger than this are not keys (a PEM public key is about 113 bytes).
_KEY_FILE_MAX: Final = 4096


def _crypto_missing() -> ConfigError:
    return ConfigError("the plugin index needs the cryptography package: pip install 'mcp-edge[index]'")


def canonical(value: Any) -> bytes:
    """The bytes a signature covers: JSON with sorted keys, no spaces, UTF-8 (no NaN or infinities)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def artifact_message(sha256: str, size: int) -> bytes:
    """What an artifact signature signs: its SHA-256 and its size, tagged so no other message can stand for it."""
    return f"{ARTIFACT_TAG} sha256:{sha256} size:{size}".encode("ascii")


def file_digest(path: Path) -> tuple[str, int]:
    """The SHA-256 (hex) and size of file ``path``, read in pieces; OSError as it comes (the caller words it)."""
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(256 * 1024):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def key_id(raw_public: bytes) -> str:
    return hashlib.sha256(raw_public).hexdigest()


def generate_key(path: Path) -> str:
    """A new Ed25519 private key written to ``path`` (PEM PKCS8, mode 0600, never over an existing file), its
    public half as hex to ``path.pub``; the new key's id."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:
        raise _crypto_missing() from None
    import os

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, pem)
    finally:
        os.close(fd)
    raw = public_raw(key)
    path.with_name(path.name + ".pub").write_text(raw.hex() + "\n")
    return key_id(raw)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The Ed25519 private key in PEM file ``path``; ConfigError saying what is wrong with it."""
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    except ImportError:
        raise _crypto_missing() from None
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"signing key {path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"signing key {path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"signing key {path}: not an Ed25519 key")
    return key


def public_raw(key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_hex(key: Ed25519PrivateKey) -> str:
    return public_raw(key).hex()


def sign(key: Ed25519PrivateKey, message: bytes) -> dict[str, str]:
    """One signature entry: ``{"keyid": <hex>, "sig": <base64>}``."""
    return {"keyid": key_id(public_raw(key)), "sig": base64.b64encode(key.sign(message)).decode("ascii")}


@dataclass(frozen=True)
class TrustStore:
    """The public keys this box trusts, by key id (each with where it came from, for messages)."""

    keys: Mapping[str, tuple[bytes, str]]

    @classmethod
    def load(cls, trust_dir: Path, board_keys: Iterable[str] = ()) -> TrustStore:
        """Keys from ``trust_dir`` (absent: none) and the profile's ``NAME=HEX`` items; ConfigError naming a
        file or item that is not an Ed25519 public key."""
        keys: dict[str, tuple[bytes, str]] = {}
        if trust_dir.is_dir():
            for path in sorted(trust_dir.iterdir()):
                if not path.is_file() or path.name.startswith("."):
                    continue
                raw = _read_public(path)
                keys[key_id(raw)] = (raw, str(path))
        for item in board_keys:
            name, raw = board_key(item)
            keys[key_id(raw)] = (raw, f"board profile key {name}")
        return cls(keys)

    @classmethod
    def of(cls, *raw_keys: bytes) -> TrustStore:
        return cls({key_id(raw): (raw, "given") for raw in raw_keys})


def board_key(item: str) -> tuple[str, bytes]:
    """A board profile's ``trusted_keys`` item ``NAME=HEX``: its name and raw Ed25519 public key; ConfigError (a
    ValueError) when it is not one."""
    name, sep, value = item.partition("=")
    try:
        raw = bytes.fromhex(value.strip()) if sep else b""
    except ValueError:
        raw = b""
    if len(raw) != _RAW_LEN:
        raise ConfigError(f"trusted_keys: {item!r} is not NAME=HEX of a 32-byte Ed25519 public key")
    return name.strip(), raw


def _read_public(path: Path) -> bytes:
    """The raw public key of a trust-folder file: 64 hex characters (``mcp-edge index keygen``'s ``.pub``) or a
    PEM ``PUBLIC KEY``."""
    try:
        if path.stat().st_size > _KEY_FILE_MAX:
            raise ConfigError(f"trusted key {path}: larger than {_KEY_FILE_MAX} bytes, not a public key")
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"trusted key {path}: {exc.strerror or exc}") from None
    text = data.decode("ascii", "replace").strip()
    if len(text) == 2 * _RAW_LEN:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    if text.startswith("-----BEGIN PUBLIC KEY-----"):
        try:
            from cryptography.hazmat.primitives import serialization
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            raise _crypto_missing() from None
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigError(f"trusted key {path}: not a PEM public key ({exc})") from None
        if isinstance(key, Ed25519PublicKey):
            return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    raise ConfigError(f"trusted key {path}: not an Ed25519 public key (64 hex characters or a PEM PUBLIC KEY)")


def verify_signatures(message: bytes, signatures: object, trust: TrustStore, what: str) -> str:
    """The id of a trusted key with a good signature of ``message`` among ``signatures``; IndexRefused saying
    why there is none (no signature, only unknown keys, a bad signature)."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    except ImportError:
        raise _crypto_missing() from None
    if not isinstance(signatures, list) or not signatures:
        raise IndexRefused(f"{what} is not signed: it carries no signatures")
    if not trust.keys:
        raise IndexRefused(f"{what}: this box trusts no key (put the publisher's public key in the trust folder "
                           "or the board profile's trusted_keys)")
    unknown: list[str] = []
    bad: list[str] = []
    tried: set[str] = set()
    for entry in signatures:
        if not isinstance(entry, dict) or not isinstance(entry.get("keyid"), str) \
                or not isinstance(entry.get("sig"), str):
            raise IndexRefused(f"{what}: a signature entry is not {{\"keyid\": ..., \"sig\": ...}}")
        kid: str = entry["keyid"]
        if kid in tried:  # one signature per key: a list of thousands by one key costs one check, not thousands
            continue
        tried.add(kid)
        known = trust.keys.get(kid)
        if known is None:
            unknown.append(_shown(kid))
            continue
        try:
            sig = base64.b64decode(entry["sig"], validate=True)
        except ValueError:
            sig = b""
        if len(sig) != _SIG_LEN:
            bad.append(_shown(kid))
            continue
        try:
            Ed25519PublicKey.from_public_bytes(known[0]).verify(sig, message)
        except InvalidSignature:
            bad.append(_shown(kid))
            continue
        return kid
    if bad:
        raise IndexRefused(f"{what}: bad signature by trusted key {_listed(bad)}: the content was changed "
                           "after it was signed, or the signature belongs to other content")
    raise IndexRefused(f"{what}: signed only by unknown key(s) {_listed(unknown)}; trusted: "
                       f"{_listed([k[:16] for k in trust.keys])}")


def _shown(kid: str) -> str:
    """A key id as a message shows it: its first 16 characters, anything but hex digits replaced."""
    return "".join(c if c in "0123456789abcdef" else "?" for c in kid[:16])


def _listed(ids: list[str], most: int = 5) -> str:
    return ", ".join(ids[:most]) + (f" and {len(ids) - most} more" if len(ids) > most else "")
