"""The publisher's side: ``mcp-edge index build`` packs each plugin folder of a source folder into
``<out>/<id>-<version>[-<arch>].tar.gz``, records its size, SHA-256 and ``tree_sha256``, signs each artifact and
the index with the publisher's Ed25519 key, and writes ``<out>/index.json``; ``mcp-edge plugin sign`` signs
one artifact (``<artifact>.sig``).

An index already in ``<out>`` is carried over: its entries stay (unless rebuilt, or their artifact file is gone)
and the new index's version is one above it, so publishing v2 of a plugin keeps v1 downloadable and every box
sees a higher version. Any static HTTP server (or a file path) then serves ``<out>``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from pathlib import Path
from typing import Any

from mcp_edge.atomic import replace_file
from mcp_edge.errors import ConfigError, McpEdgeError
from mcp_edge.index.archive import pack, tree_digest
from mcp_edge.index.format import INDEX_TYPE, SPEC, format_time, parse_document, this_arch
from mcp_edge.index.signing import artifact_message, canonical, file_digest, load_private_key, sign

__all__ = ["build_index", "sign_artifact"]


def build_index(source: Path, out: Path, key_path: Path, *, version: int | None = None,
                expires: dt.datetime | None = None, expires_days: float = 30.0,
                arch: str | None = None) -> dict[str, Any]:
    """Build and sign the index of every plugin folder under ``source`` (or ``source`` itself when it holds a
    ``plugin.toml``) into ``out``; the index document written."""
    from mcp_edge.plugin.loader import manifest_folders
    from mcp_edge.plugin.manifest import read_manifest

    key = load_private_key(key_path)
    folders = manifest_folders([source])
    if not folders:
        raise ConfigError(f"{source}: no plugin folder (a folder with a plugin.toml) in it")
    out.mkdir(parents=True, exist_ok=True)
    previous: dict[tuple[str, str, str], dict[str, Any]] = {}
    old_version = 0
    existing = out / "index.json"
    if existing.exists():
        try:
            old = parse_document(existing.read_bytes(), str(existing))
        except McpEdgeError as exc:
            raise ConfigError(f"{existing}: the index already there cannot be carried over ({exc}); move it "
                              "away to start a new one") from None
        old_version = old.version
        for e in old.plugins:
            if (out / e.url).is_file():
                previous[(e.id, e.version, e.arch)] = e.as_dict()
    new_version = version if version is not None else old_version + 1
    if new_version <= old_version:
        raise ConfigError(f"index version {new_version} is not above the version already in {out} "
                          f"({old_version}): boxes that trusted it would refuse the new one as a rollback")
    entries = dict(previous)
    for folder in folders:
        try:
            m = read_manifest(folder)
        except McpEdgeError as exc:
            raise ConfigError(f"{folder}: {exc}") from None
        entry_arch = (arch or this_arch()) if m.kind == "native" else "any"
        name = f"{m.id}-{m.version}.tar.gz" if entry_arch == "any" else f"{m.id}-{m.version}-{entry_arch}.tar.gz"
        buf = io.BytesIO()
        pack(folder, buf)
        data = buf.getvalue()
        replace_file(out / name, data)
        sha = hashlib.sha256(data).hexdigest()
        sig = sign(key, artifact_message(sha, len(data)))
        replace_file(out / (name + ".sig"), _sig_file(sha, len(data), sig))
        entries[(m.id, m.version, entry_arch)] = {
            "id": m.id, "version": m.version, "description": m.description, "abi": m.abi, "kind": m.kind,
            "arch": entry_arch, "url": name, "sha256": sha, "size": len(data), "tree_sha256": tree_digest(folder),
            "signatures": [sig],
        }
    when = expires or dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_days)
    signed = {"type": INDEX_TYPE, "spec": SPEC, "version": new_version, "expires": format_time(when),
              "plugins": [entries[k] for k in sorted(entries)]}
    doc = {"signed": signed, "signatures": [sign(key, canonical(signed))]}
    body = json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"
    parse_document(body, "the new index")  # what we publish parses as a box reads it
    replace_file(out / "index.json", body)
    return doc


def _sig_file(sha: str, size: int, sig: dict[str, str]) -> bytes:
    return json.dumps({"sha256": sha, "size": size, "signatures": [sig]}, indent=1).encode() + b"\n"


def sign_artifact(artifact: Path, key_path: Path) -> Path:
    """Write ``<artifact>.sig``: a signature of its SHA-256 and size by the key in ``key_path`` (other keys'
    signatures already there are kept)."""
    key = load_private_key(key_path)
    try:
        sha, size = file_digest(artifact)
    except OSError as exc:
        raise ConfigError(f"cannot read {artifact}: {exc.strerror or exc}") from None
    sig = sign(key, artifact_message(sha, size))
    path = artifact.with_name(artifact.name + ".sig")
    sigs = [sig]
    if path.exists():
        try:
            old = json.loads(path.read_bytes())
            if old.get("sha256") == sha and old.get("size") == size:
                sigs += [s for s in old.get("signatures", []) if s.get("keyid") != sig["keyid"]]
        except (OSError, ValueError, AttributeError):
            pass
    replace_file(path, json.dumps({"sha256": sha, "size": size, "signatures": sigs}, indent=1).encode() + b"\n")
    return path
