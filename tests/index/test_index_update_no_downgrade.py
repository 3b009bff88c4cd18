"""``update`` moves only forward in PEP 440 order: when the newest version the index offers cannot be ordered
against the installed one (not a PEP 440 version), it is not taken for an upgrade (it could be a downgrade); the
reason is logged and ``install ID==VERSION`` still installs it on request."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from index_helpers import PLUGIN_ID, Publisher, installer

from mcp_edge.index.format import newer


def test_newer_orders_pep440_and_refuses_to_guess() -> None:
    assert newer("2.0.0", "1.10.0") and newer("1.10.0", "1.9") and newer("1.0", "1.0rc1")
    assert not newer("1.0.0", "1.0") and not newer("1.9", "1.10.0")
    assert not newer("1.5-custom", "2.0.0") and not newer("2.0.0", "nightly") and not newer("r6", "r5")


def test_update_does_not_take_an_unorderable_version_for_an_upgrade(tmp_path: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    pub = Publisher(tmp_path / "pub")
    trust = pub.trust_into(tmp_path / "trust")
    pub.publish("2.0.0", "v2")
    index = str(pub.out / "index.json")
    box = installer(tmp_path, index, trust)
    box.install(PLUGIN_ID)
    (pub.out / f"{PLUGIN_ID}-2.0.0.tar.gz").unlink()  # the publisher drops 2.0.0 ...
    pub.publish("1.5-custom", "custom")  # ... and offers a version that is not PEP 440: index version 2
    with caplog.at_level(logging.WARNING, logger="mcp_edge.index"):
        assert box.update() == []
    assert box.state.installed()[PLUGIN_ID]["version"] == "2.0.0"
    assert any("not both PEP 440 versions" in r.getMessage() for r in caplog.records)
    change = box.install(PLUGIN_ID, "1.5-custom")  # by name, on request
    assert change is not None and (change.old, change.new) == ("2.0.0", "1.5-custom")
