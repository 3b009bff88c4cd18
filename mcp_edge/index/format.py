"""The plugin index document: an envelope of a ``signed`` object and its ``signatures`` (docs/plugin-index.md).

::

    {"signed": {"type": "mcp-edge-plugin-index", "spec": 1,
                "version": 7,                          # raised by every publication, never lowered
                "expires": "2026-12-31T00:00:00Z",     # RFC 3339, UTC
                "plugins": [{"id": "hello", "version": "1.2.0", "description": "...", "abi": 1,
                             "kind": "python", "arch": "any", "url": "hello-1.2.0.tar.gz",
                             "sha256": "<hex>", "size": 1234, "tree_sha256": "<hex>",
                             "signatures": [{"keyid": ..., "sig": ...}]}]},   # (the artifact's own, optional)
     "signatures": [{"keyid": "<sha256 of the raw public key>", "sig": "<base64 Ed25519>"}]}

Parsing checks every field's type and form and names the first bad one; it never trusts a value it did not check.
The JSON is read strictly, so no two readers can take one document two ways: a key given twice in an object,
``NaN`` or ``Infinity``, and text that cannot be put in the canonical form (a lone surrogate) are refused before
the signature is checked; the canonical bytes are made once, at parsing, and are what is verified and kept.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from mcp_edge.errors import IndexRefused
from mcp_edge.index.signing import canonical

__all__ = ["ARCHES", "INDEX_TYPE", "KINDS", "SPEC", "Entry", "Index", "format_time", "parse_document",
           "parse_time", "runtime_abi", "this_arch"]

INDEX_TYPE: Final = "mcp-edge-plugin-index"
SPEC: Final = 1
KINDS: Final = ("python", "native", "wasm", "bridge")
ARCHES: Final = ("any", "x86_64", "aarch64")
_ID = re.compile(r"^[a-z][a-z0-9_-]*$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,63}$")
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_time(text: object, where: str) -> dt.datetime:
    """An RFC 3339 timestamp as an aware UTC datetime; IndexRefused naming ``where``."""
    if not isinstance(text, str) or not _RFC3339.fullmatch(text):
        raise IndexRefused(f"{where}: expires must be an RFC 3339 time such as 2026-12-31T00:00:00Z, got {text!r}")
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)
    except (ValueError, OverflowError) as exc:  # (year 9999 with a negative offset overflows in UTC)
        raise IndexRefused(f"{where}: expires {text!r}: {exc}") from None


def format_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def this_arch() -> str:
    """This box's architecture as the index names it."""
    import platform

    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def runtime_abi(kind: str) -> int | None:
    """The ABI this runtime speaks for plugins of ``kind`` (None: it runs no such plugin)."""
    if kind == "python":
        from mcp_edge.plugin.api import PLUGIN_API_VERSION

        return PLUGIN_API_VERSION
    if kind == "native":
        from mcp_edge.plugin.manifest import NATIVE_ABI_VERSION

        return NATIVE_ABI_VERSION
    if kind == "wasm":
        try:
            from mcp_edge.plugin.wasm import WASM_ABI_VERSION
        except ImportError:
            return None
        return int(WASM_ABI_VERSION)
    if kind == "bridge":
        return 1
    return None


@dataclass(frozen=True)
class Entry:
    """One artifact the index lists: a version of a plugin, for one architecture."""

    id: str
    version: str
    description: str
    abi: int
    kind: str
    arch: str
    url: str
    sha256: str
    size: int
    tree_sha256: str | None = None
    signatures: tuple[Mapping[str, str], ...] = ()

    def fits(self, arch: str) -> bool:
        """Whether this box runs this artifact: its architecture and the ABI of its kind."""
        return self.arch in ("any", arch) and runtime_abi(self.kind) == self.abi

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "version": self.version, "description": self.description,
                               "abi": self.abi, "kind": self.kind, "arch": self.arch, "url": self.url,
                               "sha256": self.sha256, "size": self.size}
        if self.tree_sha256 is not None:
            out["tree_sha256"] = self.tree_sha256
        if self.signatures:
            out["signatures"] = [dict(s) for s in self.signatures]
        return out


@dataclass(frozen=True)
class Index:
    """A parsed (not yet trusted) index: the ``signed`` object, its signatures, and the exact bytes signed."""

    version: int
    expires: dt.datetime
    plugins: tuple[Entry, ...]
    signed: Mapping[str, Any] = field(repr=False)
    signatures: Sequence[Any] = field(repr=False)
    signed_bytes: bytes = field(repr=False, default=b"")  # canonical(signed): what a signature must cover

    def versions_of(self, plugin_id: str) -> list[Entry]:
        """The entries of ``plugin_id``, newest version first."""
        return sorted((e for e in self.plugins if e.id == plugin_id), key=lambda e: _version_key(e.version),
                      reverse=True)

    def pick(self, plugin_id: str, version: str | None, arch: str) -> Entry:
        """The entry to install: ``version`` (or the newest) of ``plugin_id`` that this box runs; IndexRefused
        saying what the index offers when none fits."""
        entries = self.versions_of(plugin_id)
        if not entries:
            raise IndexRefused(f"the index (version {self.version}) lists no plugin {plugin_id}")
        wanted = [e for e in entries if version is None or e.version == version]
        if not wanted:
            raise IndexRefused(f"the index lists plugin {plugin_id} in version(s) "
                               f"{', '.join(sorted({e.version for e in entries}))}, not {version}")
        for e in wanted:
            if e.fits(arch):
                return e
        offered = ", ".join(f"{e.version} ({e.kind} abi {e.abi}, {e.arch})" for e in wanted)
        raise IndexRefused(f"plugin {plugin_id}: nothing this box runs ({arch}; python abi "
                           f"{runtime_abi('python')}, native abi {runtime_abi('native')}): the index offers "
                           f"{offered}")


def _version_key(text: str) -> tuple[int, Any]:
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(text))
    except InvalidVersion:
        return (0, text)


def comparable(a: str, b: str) -> bool:
    """Whether versions ``a`` and ``b`` can be ordered (both PEP 440)."""
    return bool(_version_key(a)[0] and _version_key(b)[0])


def newer(a: str, b: str) -> bool:
    """Whether version ``a`` is newer than ``b`` in PEP 440 order; False when either is not a PEP 440 version (no
    one can tell which is newer, so ``update`` never takes it for an upgrade: it could be a downgrade)."""
    ka, kb = _version_key(a), _version_key(b)
    return bool(ka[0] and kb[0] and ka[1] > kb[1])


def parse_document(data: bytes, where: str) -> Index:
    """The index in ``data`` (JSON), every field checked; IndexRefused naming ``where`` and the field."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(items)
        if len(out) != len(items):
            import collections

            twice = sorted(k for k, n in collections.Counter(k for k, _ in items).items() if n > 1)
            raise IndexRefused(f"{where}: key(s) {', '.join(map(repr, twice[:5]))} given twice in one object: "
                               "readers could take it two ways; refused")
        return out

    def constant(name: str) -> Any:
        raise IndexRefused(f"{where}: {name} is not a JSON number; refused")

    try:
        doc = json.loads(data, object_pairs_hook=pairs, parse_constant=constant)
    except (ValueError, RecursionError) as exc:
        raise IndexRefused(f"{where}: not JSON: {exc}") from None
    if not isinstance(doc, dict) or set(doc) != {"signed", "signatures"}:
        raise IndexRefused(f"{where}: an index is an object of exactly 'signed' and 'signatures'")
    signed = doc["signed"]
    if not isinstance(signed, dict):
        raise IndexRefused(f"{where}: 'signed' must be an object")
    if not isinstance(signed.get("type"), str) or signed.get("type") != INDEX_TYPE:
        raise IndexRefused(f"{where}: signed.type must be {INDEX_TYPE!r}, got {signed.get('type')!r}")
    if type(signed.get("spec")) is not int or signed.get("spec") != SPEC:
        raise IndexRefused(f"{where}: index spec {signed.get('spec')!r}; this runtime reads spec {SPEC}")
    unknown = set(signed) - {"type", "spec", "version", "expires", "plugins"}
    if unknown:
        raise IndexRefused(f"{where}: unknown field(s) in signed: {', '.join(sorted(unknown))}")
    version = signed.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise IndexRefused(f"{where}: signed.version must be a positive integer, got {version!r}")
    expires = parse_time(signed.get("expires"), where)
    plugins = signed.get("plugins")
    if not isinstance(plugins, list):
        raise IndexRefused(f"{where}: signed.plugins must be a list")
    entries = tuple(_entry(p, f"{where}: plugins[{i}]") for i, p in enumerate(plugins))
    seen: set[tuple[str, str, str]] = set()
    for e in entries:
        key = (e.id, e.version, e.arch)
        if key in seen:
            raise IndexRefused(f"{where}: plugin {e.id} {e.version} for {e.arch} is listed twice")
        seen.add(key)
    try:
        signed_bytes = canonical(signed)
    except ValueError as exc:  # a lone surrogate has no UTF-8
        raise IndexRefused(f"{where}: the signed object has no canonical form ({exc}); refused") from None
    return Index(version, expires, entries, signed, doc["signatures"], signed_bytes)


def _entry(raw: object, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise IndexRefused(f"{where}: must be an object")
    known = {"id", "version", "description", "abi", "kind", "arch", "url", "sha256", "size", "tree_sha256",
             "signatures"}
    unknown = set(raw) - known
    if unknown:
        raise IndexRefused(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")

    def text(key: str, pattern: re.Pattern[str] | None = None, optional: bool = False) -> str:
        value = raw.get(key)
        if optional and value is None:
            return ""
        if not isinstance(value, str) or (pattern is not None and not pattern.fullmatch(value)):
            raise IndexRefused(f"{where}: {key} is missing or malformed: {value!r}")
        return value

    plugin_id = text("id", _ID)
    abi, size = raw.get("abi"), raw.get("size")
    if not isinstance(abi, int) or isinstance(abi, bool) or abi < 0:
        raise IndexRefused(f"{where}: abi must be a non-negative integer, got {abi!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise IndexRefused(f"{where}: size must be a non-negative integer, got {size!r}")
    kind, arch = text("kind"), text("arch")
    if kind not in KINDS:
        raise IndexRefused(f"{where}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if arch not in ARCHES:
        raise IndexRefused(f"{where}: arch must be one of {', '.join(ARCHES)}, got {arch!r}")
    url = text("url")
    if not url or len(url) > 2048 or any(c in url for c in "\r\n\0"):
        raise IndexRefused(f"{where}: url is empty, too long or holds control characters")
    sigs = raw.get("signatures", [])
    if not isinstance(sigs, list) or not all(isinstance(s, dict) for s in sigs):
        raise IndexRefused(f"{where}: signatures must be a list of objects")
    tree = raw.get("tree_sha256")
    if tree is not None and (not isinstance(tree, str) or not _HEX64.fullmatch(tree)):
        raise IndexRefused(f"{where}: tree_sha256 must be 64 lowercase hex characters")
    return Entry(plugin_id, text("version", _VERSION), text("description", optional=True), abi, kind, arch, url,
                 text("sha256", _HEX64), size, tree, tuple(sigs))
