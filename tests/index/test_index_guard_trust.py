"""The fs root may not overlap what the index's trust rests on either: the trusted keys (a client would add its
own key and sign its own index) and <data_dir>/plugin-index (a client would reset the last trusted version and
open the door to a rollback); refused at start with the reason, like a root over <data_dir>/plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcp_edge.board.settings import Settings
from mcp_edge.errors import ConfigError
from mcp_edge.index.guard import check_file_roots
from mcp_edge.plugin.registry import Registry

FS = Path(__file__).resolve().parents[2] / "plugins" / "fs"


def _check(tmp_path: Path, root: str) -> None:
    data, trust = tmp_path / "data", tmp_path / "etc" / "trust"
    settings = Settings.load(environ={}, data_dir=data, trust_dir=str(trust), plugin_dirs=(FS,), entry_points=False)
    registry = Registry([FS], entry_points=False, config={"fs": {"root": root.format(data=data, trust=trust)}},
                        settings=settings)
    registry.discover()
    check_file_roots(settings, registry)


@pytest.mark.parametrize(("root", "reason"), [
    ("{data}/plugin-index", r"is .*plugin-index, where the box keeps the plugin index it last trusted: a client "
                            "could reset it and roll the index back"),
    ("../../plugin-index/sub", "lies inside .*plugin-index"),
    ("{trust}", "is .*trust, the folder of the keys the box trusts: a client could add its own key"),
    ("{trust}/..", "contains .*trust, the folder of the keys"),
])
def test_fs_root_over_the_trust_state_is_refused(tmp_path: Path, root: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=rf"plugin fs: its root .*{reason}"):
        _check(tmp_path, root)


def test_fs_root_beside_them_starts(tmp_path: Path) -> None:
    _check(tmp_path, "{data}/plugin-data/shared")
    _check(tmp_path, str(tmp_path / "etc" / "trusted-not"))  # a name that starts the same is another folder
