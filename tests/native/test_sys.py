"""Process controls of mcp_edge.native._sys."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_parent_death_signal_round_trip() -> None:
    from mcp_edge.native._sys import parent_death_signal, set_parent_death_signal

    code = (
        "from mcp_edge.native._sys import parent_death_signal as g, set_parent_death_signal as s\n"
        "s(15); a = g(); s(0); print(a, g())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["15", "0"]
    with pytest.raises(OSError, match="PR_SET_PDEATHSIG"):
        set_parent_death_signal(999)
    assert parent_death_signal() >= 0
