"""``plugin install ID`` over a plugin whose files changed since it was installed (what ``plugin verify`` reports)
installs the same artifact again instead of saying "already installed"; ``update`` leaves local edits alone."""

from __future__ import annotations

from pathlib import Path

from index_helpers import PLUGIN_ID, installer, published_v1


def test_install_repairs_a_changed_plugin(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    box = installer(tmp_path, str(pub.out / "index.json"), trust)
    box.install(PLUGIN_ID)
    code = tmp_path / "data" / "plugins" / PLUGIN_ID / "plugin.py"
    pristine = code.read_text()
    code.write_text(pristine + "# changed on the box\n")
    assert not box.verify(PLUGIN_ID)[0]["ok"]
    assert box.update() == []  # update changes versions, not local edits
    assert code.read_text().endswith("# changed on the box\n")
    change = box.install(PLUGIN_ID)
    assert change is not None and (change.old, change.new) == ("1.0.0", "1.0.0")
    assert code.read_text() == pristine and box.verify(PLUGIN_ID)[0]["ok"]
    assert box.install(PLUGIN_ID) is None  # intact now: nothing to do
