"""An install that read the index before another installer trusted a newer one (the CLI and the server's
auto-update at the same moment) is refused under the lock instead of installing from the older index, which
could undo the other's update."""

from __future__ import annotations

from pathlib import Path

import pytest
from index_helpers import PLUGIN_ID, installer, published_v1

from mcp_edge.errors import IndexRefused


def test_an_install_from_an_index_older_than_the_trusted_one_is_refused(tmp_path: Path) -> None:
    pub, trust = published_v1(tmp_path)
    index = str(pub.out / "index.json")
    slow = installer(tmp_path, index, trust)
    old = slow.refresh()  # version 1 read ...
    pub.publish("2.0.0", "v2")
    fast = installer(tmp_path, index, trust)
    fast.install(PLUGIN_ID)  # ... meanwhile another installer trusts version 2 and installs 2.0.0
    with pytest.raises(IndexRefused, match="trusts index version 2 now, this install read version 1: run it again"):
        slow.install(PLUGIN_ID, index=old)
    assert slow.state.installed()[PLUGIN_ID]["version"] == "2.0.0"
    assert slow.install(PLUGIN_ID) is None  # run again: it reads version 2, and 2.0.0 is there
