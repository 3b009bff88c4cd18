"""``mcp-edge perf compare``: the regression rule on constructed results, the exit status, bad input.

The results are built here, not measured: the rule is checked on known samples.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mcp_edge.commands import cli
from mcp_edge.errors import ConfigError
from mcp_edge.perf.regression import RULE, compare_results, format_comparison, load_result, mad

MACHINE = {"arch": "x86_64", "cpu": "Test CPU", "isa": ["sse42"], "cores": 2, "kernel": "6.1",
           "board": "generic-x86_64"}


def row(impl: str, samples: list[float] | None, *, metric: str = "GB/s", higher: bool = True,
        case: str = "1MiB", bench: str = "crc32c") -> dict[str, Any]:
    out: dict[str, Any] = {"bench": bench, "case": case, "impl": impl, "metric": metric,
                           "value": sorted(samples)[len(samples) // 2] if samples else 1.0,
                           "higher_is_better": higher}
    if samples is not None:
        out["samples"] = samples
    return out


def result(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"machine": dict(MACHINE), "results": list(rows), "notes": []}


def verdict(base: dict[str, Any], new: dict[str, Any]) -> str:
    changes = compare_results(base, new).changes
    assert len(changes) == 1
    return changes[0].verdict


def run_cli(tmp_path: Path, base: object, new: object, *extra: str) -> tuple[int, str]:
    b, n = tmp_path / "base.json", tmp_path / "new.json"
    b.write_text(json.dumps(base) if not isinstance(base, str) else base)
    n.write_text(json.dumps(new) if not isinstance(new, str) else new)
    got = CliRunner().invoke(cli, ["perf", "compare", str(b), str(n), *extra])
    return got.exit_code, got.output


def test_mad() -> None:
    assert mad([1.0, 2.0, 3.0, 4.0, 100.0]) == 1.0
    assert mad([5.0]) == 0.0


def test_planted_regression_beyond_5_percent_and_3_mad_fails(tmp_path: Path) -> None:
    base = result(row("mcp_edge", [10.0, 10.1, 9.9]))
    new = result(row("mcp_edge", [8.0, 8.1, 7.9]))  # 20% worse, MAD 0.1
    assert verdict(base, new) == "REGRESSION"
    code, out = run_cli(tmp_path, base, new)
    assert code == 1
    assert RULE in out and "REGRESSION" in out and "1 regression" in out


def test_change_inside_the_noise_passes(tmp_path: Path) -> None:
    # 10% worse, but the rounds scatter: MAD 1.0, 3 x MAD = 3.0 > the 1.0 drop
    base = result(row("mcp_edge", [10.0, 11.0, 9.0, 12.0, 8.0]))
    new = result(row("mcp_edge", [9.0, 10.0, 8.0, 11.0, 7.0]))
    assert verdict(base, new) == "worse-within-noise"
    code, out = run_cli(tmp_path, base, new)
    assert code == 0
    assert "no regression" in out and RULE in out


def test_small_change_below_5_percent_passes_even_without_noise() -> None:
    base = result(row("mcp_edge", [100.0, 100.0, 100.0]))
    new = result(row("mcp_edge", [96.0, 96.0, 96.0]))  # 4% worse, MAD 0
    assert verdict(base, new) == "worse-within-noise"


def test_lower_is_better_rows_regress_upwards() -> None:
    base = result(row("mcp_edge", [10.0, 10.0, 10.1], metric="p99_us", higher=False))
    slower = result(row("mcp_edge", [12.0, 12.1, 12.0], metric="p99_us", higher=False))
    faster = result(row("mcp_edge", [8.0, 8.1, 8.0], metric="p99_us", higher=False))
    assert verdict(base, slower) == "REGRESSION"
    assert verdict(base, faster) == "better"


def test_higher_is_better_rows_regress_downwards() -> None:
    base = result(row("mcp_edge[avx2]", [10.0, 10.0, 10.1]))
    assert verdict(base, result(row("mcp_edge[avx2]", [12.0, 12.0, 12.1]))) == "better"
    assert verdict(base, result(row("mcp_edge[avx2]", [8.0, 8.0, 8.1]))) == "REGRESSION"


def test_identical_runs_are_the_same(tmp_path: Path) -> None:
    base = result(row("mcp_edge", [10.0, 10.1, 9.9]), row("peer", [5.0, 5.0, 5.1]))
    code, out = run_cli(tmp_path, base, base)
    assert code == 0
    assert "2 same" in out


def test_peers_are_context_never_a_failure(tmp_path: Path) -> None:
    base = result(row("google-crc32c", [10.0, 10.0, 10.0]))
    new = result(row("google-crc32c", [5.0, 5.0, 5.0]))
    assert verdict(base, new) == "worse (peer)"
    code, _ = run_cli(tmp_path, base, new)
    assert code == 0


def test_too_few_samples_is_never_a_regression() -> None:
    base = result(row("mcp_edge", [10.0], metric="count", higher=False))
    new = result(row("mcp_edge", [50.0], metric="count", higher=False))
    assert verdict(base, new) == "too few samples"


def test_old_json_without_samples_is_shown_not_judged(tmp_path: Path) -> None:
    base = result(row("mcp_edge", None))
    new = result(row("mcp_edge", [0.1, 0.1, 0.1]))
    assert verdict(base, new) == "no samples"
    code, out = run_cli(tmp_path, base, new)
    assert code == 0
    assert "base result has no samples" in out


def test_new_and_gone_rows() -> None:
    base = result(row("mcp_edge", [1.0, 1.0, 1.0], case="old"))
    new = result(row("mcp_edge", [1.0, 1.0, 1.0], case="fresh"))
    got = {(c.case, c.verdict) for c in compare_results(base, new).changes}
    assert got == {("fresh", "new"), ("old", "gone")}


def test_different_machines_are_warned_about() -> None:
    base = result(row("mcp_edge", [1.0, 1.0, 1.0]))
    new = result(row("mcp_edge", [1.0, 1.0, 1.0]))
    new["machine"]["cpu"] = "Other CPU"
    text = format_comparison(compare_results(base, new))
    assert "different machines" in text and "Other CPU" in text


def test_json_output(tmp_path: Path) -> None:
    base = result(row("mcp_edge", [10.0, 10.1, 9.9]))
    new = result(row("mcp_edge", [8.0, 8.1, 7.9]))
    code, out = run_cli(tmp_path, base, new, "--json")
    assert code == 1
    data = json.loads(out)
    assert data["rule"] == RULE and data["regressions"] == 1
    assert data["changes"][0]["verdict"] == "REGRESSION"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "invalid JSON"),
        ('{"machine": {}}', "no \"results\" list"),
        ('{"results": [{"bench": "x"}]}', "results[0]"),
        ('{"results": [{"bench": "b", "case": "c", "impl": "i", "metric": "m", "value": 1, '
         '"higher_is_better": true, "samples": ["x"]}]}', "samples"),
        ("[1, 2]", "not a perf result"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path: Path, text: str, message: str) -> None:
    good = result(row("mcp_edge", [1.0, 1.0, 1.0]))
    code, out = run_cli(tmp_path, good, text)
    assert code == 2
    assert "mcp-edge:" in out and message in out and "new.json" in out


def test_missing_file_exits_2(tmp_path: Path) -> None:
    got = CliRunner().invoke(cli, ["perf", "compare", str(tmp_path / "nope.json"), str(tmp_path / "nope2.json")])
    assert got.exit_code == 2
    assert "cannot read" in got.output


def test_load_result_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match=r"x\.json"):
        load_result(path)
