"""What the box remembers of the plugin index, under ``<data_dir>/plugin-index/``, and the rules an index must
pass to be trusted (the TUF ideas for one role, docs/plugin-index.md):

- ``trusted.json``: the version, expiry and SHA-256 of the last index trusted (the canonical ``signed`` bytes);
- ``index.json``: that index as it came, for ``search``/``info``/``verify`` without the network;
- ``installed.json``: each plugin installed from the index (id, version, sha256, tree_sha256, index version);
- ``lock``: held (``flock``) by whoever changes any of it or ``<data_dir>/plugins``.

An index is trusted when, in this order: it parses; a trusted key signed it; it has not expired (a frozen
mirror cannot keep a box on old versions past the expiry); its version is not below the kept one (rollback);
the same version carries the same content. Each refusal is an ``IndexRefused`` that says which rule failed.
Every file is replaced atomically (:func:`mcp_edge.atomic.replace_file`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from mcp_edge.atomic import replace_file
from mcp_edge.errors import IndexRefused
from mcp_edge.index.format import Index, format_time, parse_document
from mcp_edge.index.signing import TrustStore, verify_signatures

__all__ = ["IndexState", "accept"]

TRUSTED: Final = "trusted.json"
CACHED: Final = "index.json"
INSTALLED: Final = "installed.json"


def accept(data: bytes, source: str, trust: TrustStore, kept: dict[str, Any] | None, now: dt.datetime) -> Index:
    """The index in ``data`` if it passes every rule against the ``kept`` state; IndexRefused saying which
    rule it fails."""
    index = parse_document(data, f"index {source}")
    verify_signatures(index.signed_bytes, index.signatures, trust, f"index {source}")
    if index.expires <= now:
        raise IndexRefused(f"index {source} (version {index.version}) expired at {format_time(index.expires)}: "
                           "the publisher has not renewed it, or a mirror serves a frozen copy; refused")
    if kept is not None:
        kept_version: int = kept["version"]
        if index.version < kept_version:
            raise IndexRefused(f"index {source} is version {index.version}, older than version {kept_version} "
                               "this box already trusted: a rollback, refused")
        if index.version == kept_version and digest(index) != kept.get("sha256"):
            raise IndexRefused(f"index {source} is version {kept_version} again but with other content than the "
                               "version this box trusted: refused (a publisher raises the version on every change)")
    return index


def digest(index: Index) -> str:
    return hashlib.sha256(index.signed_bytes).hexdigest()


class IndexState:
    """The files of ``<data_dir>/plugin-index``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the index state and the plugins folder (another installer waits); IndexRefused saying
        why when the state folder cannot be made or locked (another user's data folder, say)."""
        try:
            self.folder.mkdir(mode=0o755, parents=True, exist_ok=True)
            fd = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise IndexRefused(f"cannot lock the plugin index state in {self.folder}: {exc.strerror or exc} (run "
                               "as the user that owns the data folder, or set data_dir)") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _read(self, name: str) -> Any:
        try:
            return json.loads((self.folder / name).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise IndexRefused(f"{self.folder / name}: unreadable ({exc}); remove it to start over") from None

    def kept(self) -> dict[str, Any] | None:
        """The record of the last index trusted (None: none yet); IndexRefused when the file is damaged, never
        None for it: that would drop the rollback protection without a word."""
        path = self.folder / TRUSTED
        if not path.exists():
            return None
        value = self._read(TRUSTED)
        if not isinstance(value, dict) or type(value.get("version")) is not int or value["version"] < 0 \
                or not isinstance(value.get("sha256"), str):
            raise IndexRefused(f"{path} is damaged (not the record of a trusted index version): restore it from a "
                               "backup, or remove it to trust the next index of any version (which gives up the "
                               "rollback protection once)")
        return value

    def keep(self, index: Index, data: bytes, source: str) -> None:
        """Remember ``index`` (its raw ``data``) as the last one trusted (both files again when they disagree)."""
        kept = self.kept()
        if kept is not None and kept["version"] == index.version and self.cached_version() == index.version:
            return
        replace_file(self.folder / CACHED, data, sync=True)
        replace_file(self.folder / TRUSTED, json.dumps({
            "version": index.version, "expires": format_time(index.expires), "sha256": digest(index),
            "source": source, "trusted_at": format_time(dt.datetime.now(dt.UTC)),
        }, indent=1).encode() + b"\n", sync=True)

    def cached_version(self) -> int | None:
        """The version of the kept ``index.json`` as it says (None: absent or unreadable)."""
        try:
            version = json.loads(self.cached() or b"null")["signed"]["version"]
        except (ValueError, TypeError, KeyError):
            return None
        return version if type(version) is int else None

    def cached(self) -> bytes | None:
        try:
            return (self.folder / CACHED).read_bytes()
        except FileNotFoundError:
            return None

    def installed(self) -> dict[str, dict[str, Any]]:
        value = self._read(INSTALLED)
        return value if isinstance(value, dict) else {}

    def record(self, plugin_id: str, entry: dict[str, Any] | None) -> None:
        """Set (or with None, drop) what is recorded of installed plugin ``plugin_id``."""
        installed = self.installed()
        if entry is None:
            installed.pop(plugin_id, None)
        else:
            installed[plugin_id] = entry
        replace_file(self.folder / INSTALLED, json.dumps(installed, indent=1, sort_keys=True).encode() + b"\n",
                     sync=True)
