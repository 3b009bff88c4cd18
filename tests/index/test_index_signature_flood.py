"""An index (or artifact) with a flood of signature entries is refused with a short message: each key id is tried
once, messages list a few ids, and an id is shown as hex only (no terminal escapes from the wire); a good
signature among many unknown ones still verifies."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from index_helpers import installer, published_v1

from mcp_edge.errors import IndexRefused
from mcp_edge.index.signing import key_id


def test_a_flood_of_signatures_is_refused_briefly(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    path = pub.out / "index.json"
    doc = json.loads(path.read_text())
    good = doc["signatures"][0]
    kid = key_id(bytes.fromhex(pub.public_hex))
    junk = base64.b64encode(b"\1" * 64).decode()
    flood = [{"keyid": kid, "sig": junk}] * 2000 + \
        [{"keyid": f"\x1b[31m{i:060x}", "sig": junk} for i in range(2000)]
    doc["signatures"] = flood
    path.write_text(json.dumps(doc))
    box = installer(tmp_path, str(path), trust)
    with pytest.raises(IndexRefused, match="bad signature by trusted key") as info:
        box.refresh()
    assert len(str(info.value)) < 600 and "\x1b" not in str(info.value)

    doc["signatures"] = flood[2000:]
    path.write_text(json.dumps(doc))
    with pytest.raises(IndexRefused, match=r"signed only by unknown key\(s\) \?\?31\?0+, .* and 1995 more") as info:
        box.refresh()
    assert len(str(info.value)) < 600 and "\x1b" not in str(info.value)

    doc["signatures"] = [*flood[2000:], good]  # the publisher's good one, after many by keys this box does not know
    path.write_text(json.dumps(doc))
    assert box.refresh().version == 1
