"""A command that cannot keep the index state (the data folder is not a folder it can write: another user's, or
here a file) exits 2 with the reason, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from index_helpers import published_v1

from mcp_edge.commands import cli


@pytest.mark.parametrize("command", [["plugin", "search"], ["plugin", "info", "hello"], ["plugin", "update"]])
def test_an_unusable_data_folder_is_a_clear_refusal(tmp_path: Path, command: list[str]) -> None:
    pub, trust = published_v1(tmp_path)
    data = tmp_path / "data"
    data.write_text("a file where the data folder should be\n")
    env = {"MCP_EDGE_DATA_DIR": str(data), "MCP_EDGE_TRUST_DIR": str(trust),
           "MCP_EDGE_PLUGIN_INDEX": str(pub.out / "index.json"), "MCP_EDGE_PLUGIN_DIRS": ""}
    result = CliRunner().invoke(cli, command, env=env)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (result.exception, result.output)
    assert "cannot lock the plugin index state in" in result.output and "Not a directory" in result.output
