"""Plugins installed as distributions: the ``mcp_edge.plugins`` entry-point group, scanned once and cached.

Scanning entry points (``importlib.metadata``) costs tens of milliseconds at
start: it imports email, zipfile and csv and reads every distribution's
metadata. The result is kept in the folder the caller names (the runtime
passes ``settings.cache_dir``: ``$XDG_CACHE_HOME/mcp-edge/``, default
``~/.cache/mcp-edge/``), one JSON file per interpreter, with a fingerprint of
``sys.path``: each entry and its modification time. Installing or removing a
distribution changes the mtime of the folder it lives in, so the next start
scans again; otherwise the cache is read (well under a millisecond) and
``importlib.metadata`` is never imported. Without a folder, or with
``use_cache=False`` (``settings.entry_point_cache``, ``MCP_EDGE_NO_EP_CACHE=1``),
every call scans.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import NamedTuple

try:  # CPython's own BLAKE2: hashlib would load OpenSSL's libcrypto (about 3.5 MiB of RSS) for one digest
    from _blake2 import blake2b as _digest
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import blake2b as _digest

__all__ = ["GROUP", "EntryPointInfo", "cache_file", "fingerprint", "forget", "scan", "scan_count"]

GROUP = "mcp_edge.plugins"
_FORMAT = 1
log = logging.getLogger("mcp_edge.plugin")


class EntryPointInfo(NamedTuple):
    """One entry point of the group: ``name`` (the plugin id), ``value`` (``module:Class``), its distribution."""

    name: str
    value: str
    dist: str
    version: str


_scans = 0
_memo: tuple[str, str, list[EntryPointInfo]] | None = None


def forget() -> None:
    """Drop this process's memo: the next ``scan`` reads the cache file (or scans)."""
    global _memo
    _memo = None


def scan_count() -> int:
    """How many times this process scanned the installed distributions (for tests of the cache)."""
    return _scans


def cache_file(cache_dir: Path) -> Path:
    """This interpreter's cache file in ``cache_dir``."""
    key = _digest(f"{sys.executable}\0{sys.prefix}".encode(), digest_size=8).hexdigest()
    return cache_dir / f"entry-points-{key}.json"


def fingerprint() -> str:
    """A digest of the Python version, ``sys.path`` and each of its entries' mtime."""
    h = _digest(f"{_FORMAT}\0{sys.version}\0{sys.executable}".encode())
    for entry in sys.path:
        path = entry or os.getcwd()
        try:
            mtime = os.stat(path).st_mtime_ns
        except OSError:
            mtime = -1
        h.update(f"\0{path}\0{mtime}".encode())
    return h.hexdigest()


def _scan() -> list[EntryPointInfo]:
    global _scans
    from importlib.metadata import entry_points

    _scans += 1
    out: list[EntryPointInfo] = []
    for ep in entry_points(group=GROUP):
        dist = ep.dist
        out.append(EntryPointInfo(
            name=ep.name,
            value=ep.value,
            dist=dist.name if dist is not None else "",
            version=dist.version if dist is not None else "",
        ))
    return out


def _read_cache(path: Path, fp: str) -> list[EntryPointInfo] | None:
    try:
        data = json.loads(path.read_bytes())
        if data.get("fingerprint") != fp:
            return None
        return [EntryPointInfo(**item) for item in data["entry_points"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: Path, fp: str, eps: list[EntryPointInfo]) -> None:
    from mcp_edge.atomic import replace_file

    try:
        replace_file(path, json.dumps({"fingerprint": fp, "entry_points": [e._asdict() for e in eps]}).encode())
    except OSError as exc:
        log.info("entry-point cache not written (%s): %s; every start will scan", path, exc)


def scan(cache_dir: Path | None, use_cache: bool = True) -> list[EntryPointInfo]:
    """The entry points of ``mcp_edge.plugins``: from this process's memo, the cache file in ``cache_dir``, or a scan.

    ``cache_dir`` None or ``use_cache`` false: a scan, every call.
    """
    global _memo
    if cache_dir is None or not use_cache:
        return _scan()
    fp = fingerprint()
    path = cache_file(cache_dir)
    if _memo is not None and _memo[0] == fp and _memo[1] == str(path):
        return list(_memo[2])
    eps = _read_cache(path, fp)
    if eps is None:
        eps = _scan()
        _write_cache(path, fp, eps)
    _memo = (fp, str(path), eps)
    return list(eps)
