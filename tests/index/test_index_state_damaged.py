"""The kept state is never taken lightly: a damaged trusted.json is refused with what to do (not read as "none
yet", which would drop the rollback protection, nor a traceback); a kept index.json that disagrees with
trusted.json (a write cut short) is set right by fetching the index again."""

from __future__ import annotations

from pathlib import Path

import pytest
from index_helpers import PLUGIN_ID, installer, published_v1

from mcp_edge.errors import IndexRefused


@pytest.mark.parametrize("content", ["null\n", '{"version": "x", "sha256": "0"}\n', '{"version": 2}\n', "[]\n"])
def test_a_damaged_trusted_record_is_refused(tmp_path: Path, content: str) -> None:
    pub, trust = published_v1(tmp_path)
    old = (pub.out / "index.json").read_bytes()
    pub.publish("2.0.0", "v2")
    box = installer(tmp_path, str(pub.out / "index.json"), trust)
    box.refresh()
    trusted = box.state.folder / "trusted.json"
    trusted.write_text(content)
    (pub.out / "index.json").write_bytes(old)  # a rollback to version 1 while the record is damaged
    with pytest.raises(IndexRefused, match=r"trusted.json is damaged .* restore it from a backup, or remove it"):
        box.refresh()
    with pytest.raises(IndexRefused, match=r"trusted\.json is damaged"):
        box.verify()
    assert trusted.read_text() == content


def test_a_kept_index_that_disagrees_is_set_right_by_the_next_fetch(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    old = (pub.out / "index.json").read_bytes()
    pub.publish("2.0.0", "v2")
    box = installer(tmp_path, str(pub.out / "index.json"), trust)
    box.install(PLUGIN_ID)
    (box.state.folder / "index.json").write_bytes(old)  # the kept copy is version 1, the record says 2
    with pytest.raises(IndexRefused, match=r"kept index \(version 1\) and trusted.json \(version 2\) disagree .* "
                                           r"fetch the index again"):
        box.verify()
    box.refresh()
    assert [r["ok"] for r in box.verify()] == [True]
