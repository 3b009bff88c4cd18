"""One installed plugin that fails to update with an OS error (here a real ENAMETOOLONG: a 250-character id
leaves no room for its staging folder's name) is logged and skipped; the other plugins still update."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest
from index_helpers import PLUGIN_ID, installer, published_v1

from mcp_edge.index.signing import canonical, load_private_key, sign

LONG_ID = "a" * 250


def test_an_os_error_of_one_plugin_does_not_stop_the_others(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pub, trust = published_v1(tmp_path)
    index = pub.out / "index.json"
    box = installer(tmp_path, str(index), trust)
    box.install(PLUGIN_ID)

    pub.publish("2.0.0", "v2")
    doc = json.loads(index.read_text())
    blob = b"not really an archive"
    (pub.out / "long.tar.gz").write_bytes(blob)
    doc["signed"]["plugins"].insert(0, {
        "id": LONG_ID, "version": "2.0.0", "description": "", "abi": 1, "kind": "python", "arch": "any",
        "url": "long.tar.gz", "sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)})
    doc["signatures"] = [sign(load_private_key(pub.key), canonical(doc["signed"]))]
    index.write_text(json.dumps(doc))
    folder = tmp_path / "data" / "plugins" / LONG_ID  # installed earlier (as the record says)
    folder.mkdir()
    (folder / "plugin.toml").write_text("# 1.0.0\n")
    box.state.record(LONG_ID, {"version": "1.0.0", "sha256": "0" * 64, "tree_sha256": "0" * 64})

    with caplog.at_level(logging.WARNING, logger="mcp_edge.index"):
        changes = box.update()
    assert [(c.id, c.old, c.new) for c in changes] == [(PLUGIN_ID, "1.0.0", "2.0.0")]
    assert box.state.installed()[PLUGIN_ID]["version"] == "2.0.0"
    assert box.state.installed()[LONG_ID]["version"] == "1.0.0" and folder.is_dir()
    assert any(f"{LONG_ID} not updated" in r.getMessage() and "File name too long" in r.getMessage()
               for r in caplog.records)
