"""``plugin update ID`` updates what is installed and never installs: an id that the index did not install is
refused with the reason (``plugin install`` is the way), and nothing appears under <data_dir>/plugins."""

from __future__ import annotations

from pathlib import Path

import pytest
from index_helpers import PLUGIN_ID, installer, published_v1

from mcp_edge.errors import IndexRefused


def test_update_of_a_plugin_not_installed_is_refused(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    pub.publish("0.1.0", "o", plugin_id="other")
    box = installer(tmp_path, str(pub.out / "index.json"), trust)
    with pytest.raises(IndexRefused, match=f"{PLUGIN_ID}: not installed from the index \\(plugin install {PLUGIN_ID}"):
        box.update([PLUGIN_ID])
    assert not (tmp_path / "data" / "plugins" / PLUGIN_ID).exists() and box.state.installed() == {}
    box.install("other")
    assert box.update([PLUGIN_ID, "other"]) == []  # other is up to date; hello is refused, not installed
    assert sorted(box.state.installed()) == ["other"]
