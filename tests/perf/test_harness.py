"""Behaviour of the perf harness (mcp_edge.perf): discovery, selection, the result JSON, the table.

No timing assertions here: benchmarks measure, tests check behaviour.
"""

from __future__ import annotations

import io
import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import mcp_edge
from mcp_edge.errors import ConfigError, McpEdgeError
from mcp_edge.perf import (
    BENCH_DIR_ENV,
    BenchContext,
    BenchError,
    Call,
    Row,
    compare,
    discover,
    find_bench_dir,
    format_table,
    harness,
    machine_info,
    run,
    select,
    write_json,
)

CHECKOUT_PERF = Path(mcp_edge.__file__).resolve().parents[1] / "perf"

ROW_KEYS = {
    "bench": str,
    "case": str,
    "impl": str,
    "metric": str,
    "value": float,
    "higher_is_better": bool,
    "samples": list,
}

FAKE_BENCH = '''
"""A fake bench: no real work, a tiny timing budget."""
from mcp_edge.perf import Call, Row

NAME = {name!r}

def run(ctx):
    ctx.plan(2)
    timings = ctx.compare(
        {{"mcp_edge": Call(len, (b"abc",)), "peer": Call(sum, ((1, 2),))}},
        label="tiny", min_time=0.002, rounds=2,
    )
    for impl, t in timings.items():
        yield Row.from_samples("tiny", impl, "calls/s", t.per_second_samples())
    yield Row("fixed", "mcp_edge", "ms", 2, higher_is_better=False)
'''

EXPLODING_BENCH = '''
raise RuntimeError("this bench must not even be imported")
'''


def write_bench(directory: Path, name: str, source: str | None = None) -> Path:
    path = directory / f"bench_{name}.py"
    text = source if source is not None else FAKE_BENCH.format(name=name)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "benches"
    directory.mkdir()
    write_bench(directory, "alpha")
    write_bench(directory, "beta")
    return directory


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BENCH_DIR_ENV, raising=False)


def check_schema(result: dict[str, Any]) -> None:
    assert set(result) == {"date", "quick", "machine", "results", "notes"}
    machine = result["machine"]
    assert set(machine) == {"arch", "cpu", "cpu_flags", "isa", "cores", "kernel", "board", "python", "mcp_edge",
                            "mcp_edge_commit", "peers"}
    for key in ("arch", "cpu", "kernel", "board", "python", "mcp_edge"):
        assert isinstance(machine[key], str) and machine[key]
    assert isinstance(machine["cpu_flags"], list) and all(isinstance(x, str) for x in machine["cpu_flags"])
    assert machine["mcp_edge_commit"] is None or isinstance(machine["mcp_edge_commit"], str)
    assert isinstance(machine["peers"], dict) and all(isinstance(v, str) for v in machine["peers"].values())
    assert isinstance(machine["cores"], int) and machine["cores"] >= 1
    assert isinstance(machine["isa"], list) and all(isinstance(x, str) for x in machine["isa"])
    assert "scalar" not in machine["isa"]
    for row in result["results"]:
        assert set(row) == set(ROW_KEYS), row
        for key, kind in ROW_KEYS.items():
            assert type(row[key]) is kind, (key, row)
        assert all(type(v) is float for v in row["samples"]), row
    for note in result["notes"]:
        assert set(note) == {"bench", "impl", "text"}, note
        assert isinstance(note["bench"], str) and isinstance(note["text"], str) and note["text"]
        assert note["impl"] is None or isinstance(note["impl"], str)


# ----------------------------------------------------------------- discovery


def test_discover_finds_bench_files_only(bench_dir: Path) -> None:
    (bench_dir / "helper.py").write_text("")
    (bench_dir / "bench_.py").write_text("")
    (bench_dir / "bench_Upper.py").write_text("")
    (bench_dir / "bench_notes.txt").write_text("")
    (bench_dir / "bench_folder.py").mkdir()
    found = discover(bench_dir)
    assert list(found) == ["alpha", "beta"]
    assert found["alpha"] == bench_dir / "bench_alpha.py"


def test_find_bench_dir_prefers_explicit_then_env(
    bench_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.setenv(BENCH_DIR_ENV, str(other))
    assert find_bench_dir(bench_dir) == bench_dir
    assert find_bench_dir(None) == other


def test_find_bench_dir_explicit_must_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        find_bench_dir(tmp_path / "missing")
    monkeypatch.setenv(BENCH_DIR_ENV, str(tmp_path / "missing-too"))
    with pytest.raises(ConfigError, match=BENCH_DIR_ENV):
        find_bench_dir(None)


def test_find_bench_dir_searches_cwd_perf_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "perf"
    local.mkdir()
    write_bench(local, "local")
    monkeypatch.chdir(tmp_path)
    assert find_bench_dir(None) == local


def test_find_bench_dir_falls_back_to_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not (CHECKOUT_PERF / "bench_crc32c.py").is_file():
        pytest.skip("not running from a checkout with perf/")
    (tmp_path / "perf").mkdir()  # a ./perf without benches is passed over
    monkeypatch.chdir(tmp_path)
    assert find_bench_dir(None) == CHECKOUT_PERF


def test_find_bench_dir_nothing_found_says_what_to_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness, "_candidate_dirs", lambda: [("./perf", tmp_path / "nope")])
    with pytest.raises(ConfigError) as info:
        find_bench_dir(None)
    message = str(info.value)
    assert "--bench-dir" in message and BENCH_DIR_ENV in message


# ----------------------------------------------------------------- selection


def test_select_all_by_default(bench_dir: Path) -> None:
    benches = discover(bench_dir)
    assert list(select(benches, None)) == ["alpha", "beta"]
    assert list(select(benches, [])) == ["alpha", "beta"]


def test_select_only_and_comma_lists(bench_dir: Path) -> None:
    write_bench(bench_dir, "gamma")
    benches = discover(bench_dir)
    assert list(select(benches, ["beta"])) == ["beta"]
    assert list(select(benches, ["gamma,alpha"])) == ["alpha", "gamma"]
    assert list(select(benches, ["gamma", " beta "])) == ["beta", "gamma"]


def test_select_unknown_lists_known(bench_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        select(discover(bench_dir), ["alpha", "nosuch"])
    message = str(info.value)
    assert "nosuch" in message and "alpha, beta" in message


def test_select_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no bench"):
        select(discover(tmp_path), None)


# ----------------------------------------------------------------- run and JSON


def test_run_writes_result_json(bench_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    result = run(None, True, out, bench_dir, False)
    written = json.loads(out.read_text())
    assert written == result
    check_schema(written)
    rows = written["results"]
    assert [(r["bench"], r["case"], r["impl"]) for r in rows] == [
        ("alpha", "tiny", "mcp_edge"),
        ("alpha", "tiny", "peer"),
        ("alpha", "fixed", "mcp_edge"),
        ("beta", "tiny", "mcp_edge"),
        ("beta", "tiny", "peer"),
        ("beta", "fixed", "mcp_edge"),
    ]
    fixed = rows[2]
    assert fixed["value"] == 2.0 and fixed["metric"] == "ms" and fixed["higher_is_better"] is False
    assert fixed["samples"] == []  # a row given no samples keeps none (perf compare: too few samples)
    assert all(r["value"] > 0 for r in rows)
    tiny = rows[0]
    assert len(tiny["samples"]) == 2 and tiny["value"] == statistics.median(tiny["samples"])  # one per round


def test_run_only_runs_selected(bench_dir: Path, tmp_path: Path) -> None:
    write_bench(bench_dir, "boom", EXPLODING_BENCH)
    out = tmp_path / "result.json"
    result = run(["beta"], True, out, bench_dir, False)
    assert {r["bench"] for r in result["results"]} == {"beta"}


def test_run_unknown_bench_writes_nothing(bench_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    with pytest.raises(ConfigError, match="known: alpha, beta"):
        run(["delta"], True, out, bench_dir, False)
    assert not out.exists()


def test_run_uses_env_dir(bench_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BENCH_DIR_ENV, str(bench_dir))
    result = run(["alpha"], True, tmp_path / "r.json", None, False)
    assert {r["bench"] for r in result["results"]} == {"alpha"}


def test_run_missing_json_directory_fails_before_benches(bench_dir: Path, tmp_path: Path) -> None:
    write_bench(bench_dir, "boom", EXPLODING_BENCH)
    with pytest.raises(ConfigError, match="does not exist"):
        run(None, True, tmp_path / "no" / "r.json", bench_dir, False)


def test_failing_bench_keeps_previous_json(bench_dir: Path, tmp_path: Path) -> None:
    write_bench(bench_dir, "boom", EXPLODING_BENCH)
    out = tmp_path / "result.json"
    out.write_text('{"previous": true}\n')
    with pytest.raises(BenchError, match="boom"):
        run(None, True, out, bench_dir, False)
    assert json.loads(out.read_text()) == {"previous": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["benches", "result.json"]


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("def run(ctx):\n    yield {'case': 'x'}\n", "yield mcp_edge.perf.Row"),
        ("from mcp_edge.perf import Row\ndef run(ctx):\n    yield Row('x', 'y', 'GB/s', float('nan'))\n",
         "finite"),
        ("from mcp_edge.perf import Row\ndef run(ctx):\n    yield Row('', 'y', 'GB/s', 1.0)\n", "case"),
        ("from mcp_edge.perf import Row\ndef run(ctx):\n    yield Row('x', 'y', 'GB/s', True)\n", "finite"),
        ("def run(ctx):\n    raise ValueError('kaput')\n    yield\n", "kaput"),
        ("NAME = 'other'\ndef run(ctx):\n    return []\n", "must match"),
        ("RUN = None\n", "no run"),
        ("this is not python\n", "cannot load"),
    ],
)
def test_bad_bench_is_a_bench_error(tmp_path: Path, body: str, match: str) -> None:
    directory = tmp_path / "b"
    directory.mkdir()
    write_bench(directory, "bad", body)
    with pytest.raises(BenchError, match=match) as info:
        run(None, True, tmp_path / "r.json", directory, False)
    assert "bad" in str(info.value)
    assert not (tmp_path / "r.json").exists()


def test_project_errors_from_a_bench_pass_through(tmp_path: Path) -> None:
    write_bench(tmp_path, "cfg", "from mcp_edge.errors import ConfigError\n"
                "def run(ctx):\n    raise ConfigError('set X')\n")
    with pytest.raises(ConfigError, match="set X"):
        run(None, True, tmp_path / "r.json", tmp_path, False)


def test_write_json_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "r.json"
    write_json(out, {"a": 1})
    assert json.loads(out.read_text()) == {"a": 1}
    assert out.stat().st_mode & 0o777 == 0o666 & ~harness._umask()  # as open() makes it, not 0600

    def broken_dump(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="No space"):
        write_json(out, {"a": 2})
    assert json.loads(out.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_machine_info_shape() -> None:
    check_schema({"date": "2026-12-04T00:00:00+00:00", "quick": True, "machine": machine_info(), "results": [],
                  "notes": []})


# ----------------------------------------------------------------- context and timing


def test_compare_interleaves_rounds() -> None:
    order: list[str] = []
    timings = compare(
        {"a": Call(len, (b"x",)), "b": Call(abs, (-1,))}, min_time=0.003, rounds=3, on_step=order.append
    )
    assert order == ["a", "b", "a", "b", "a", "b"]
    for timing in timings.values():
        assert len(timing.round_ns) == 3 and timing.calls >= 1
        assert timing.best_ns <= timing.median_ns
        assert timing.per_second() > 0


def test_compare_rejects_bad_budget() -> None:
    with pytest.raises(ValueError, match="rounds"):
        compare({"a": Call(len, (b"",))}, min_time=0.01, rounds=0)


def test_context_budget_and_notes(capsys: pytest.CaptureFixture[str]) -> None:
    quick, full = BenchContext("x", quick=True), BenchContext("x", quick=False)
    assert quick.min_time < full.min_time and quick.rounds <= full.rounds
    quick.note("peer foo is not installed; skipped")
    assert "perf x: peer foo is not installed" in capsys.readouterr().err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal() -> None:
    stream = _Tty()
    ctx = BenchContext("fake", quick=True, reporter=harness._Reporter(True, stream))
    ctx.plan(1)
    ctx.measure(Call(len, (b"",)), label="case", min_time=0.002)
    ctx.note("a note")
    harness._Reporter.finish(ctx._reporter)
    text = stream.getvalue()
    assert "perf fake" in text and "perf fake: a note\n" in text


def test_no_progress_output_off_a_terminal(
    bench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run(["alpha"], True, tmp_path / "r.json", bench_dir, True)
    assert capsys.readouterr().err == ""


def test_import_is_light() -> None:
    code = (
        "import sys, mcp_edge.perf; "
        "heavy = [m for m in ('numpy', 'click', 'crc32c', 'google_crc32c', 'ctypes') if m in sys.modules]; "
        "print(heavy)"
    )
    root = str(Path(mcp_edge.__file__).resolve().parents[1])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "PYTHONPATH": root},
    )
    assert out.stdout.strip() == "[]"


# ----------------------------------------------------------------- table


def _result(rows: list[tuple[str, str, str, float, bool]]) -> dict[str, Any]:
    return {
        "machine": {"arch": "x86_64", "cpu": "Test CPU", "isa": ["sse42"], "cores": 2,
                    "kernel": "6.1", "board": "generic-x86_64"},
        "results": [
            {"bench": "crc32c", "case": case, "impl": impl, "metric": metric, "value": value,
             "higher_is_better": hib}
            for case, impl, metric, value, hib in rows
        ],
    }


def _line(table: str, case_header: str, impl: str) -> list[str]:
    block = table.split(case_header, 1)[1]
    for line in block.splitlines():
        if line.split() and line.split()[0] == impl:
            return line.split()
    raise AssertionError(f"{impl} not under {case_header}")


def test_format_table_ratios_to_best_peer() -> None:
    table = format_table(_result([
        ("1MiB", "mcp_edge", "GB/s", 40.0, True),
        ("1MiB", "mcp_edge[sse42]", "GB/s", 10.0, True),
        ("1MiB", "crc32c", "GB/s", 10.0, True),
        ("1MiB", "google-crc32c", "GB/s", 20.0, True),
        ("1MiB", "memcpy", "GB/s", 80.0, True),  # a yardstick, never the best peer
        ("64B", "mcp_edge", "latency", 5.0, False),
        ("64B", "isa-l", "latency", 10.0, False),
        ("64B", "crc32c", "latency", 20.0, False),
    ]))
    assert "Test CPU" in table and "== crc32c" in table
    head = "-- 1MiB  GB/s (higher is better)"
    assert "vs google-crc32c" in table.split(head, 1)[1].splitlines()[1]
    assert _line(table, head, "mcp_edge") == ["mcp_edge", "40", "2.00x"]
    assert _line(table, head, "mcp_edge[sse42]")[-1] == "0.50x"
    assert _line(table, head, "google-crc32c")[-1] == "1.00x"
    assert _line(table, head, "memcpy")[-1] == "4.00x"
    low = "-- 64B  latency (lower is better)"
    assert "vs isa-l" in table
    assert _line(table, low, "mcp_edge")[-1] == "2.00x"
    assert _line(table, low, "crc32c")[-1] == "0.50x"


def test_format_table_without_peers_has_no_ratios() -> None:
    table = format_table(_result([("4KiB", "mcp_edge", "GB/s", 3.5, True), ("4KiB", "memcpy", "GB/s", 9, True)]))
    assert _line(table, "-- 4KiB", "mcp_edge") == ["mcp_edge", "3.5"]
    assert "x" not in "".join(_line(table, "-- 4KiB", "memcpy"))


def test_format_table_empty() -> None:
    assert "(no results)" in format_table({"machine": {}, "results": []})


# ----------------------------------------------------------------- the shipped crc32c bench


def test_crc32c_bench_runs_on_small_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    path = CHECKOUT_PERF / "bench_crc32c.py"
    if not path.is_file():
        pytest.skip("not running from a checkout with perf/")
    module = harness.load_bench("crc32c", path)
    monkeypatch.setattr(module, "SIZES", {"64B": 64, "4KiB": 4096})
    ctx = BenchContext("crc32c", quick=True)
    ctx.min_time, ctx.rounds = 0.002, 1
    rows = list(module.run(ctx))
    impls = {r.impl for r in rows}
    from mcp_edge.native import cpu

    assert {"mcp_edge", *(f"mcp_edge[{lvl}]" for lvl in cpu.levels())} <= impls
    assert {(r.case, r.metric) for r in rows} == {("64B", "GB/s"), ("64B", "calls/s"), ("4KiB", "GB/s")}
    assert all(r.value > 0 and r.higher_is_better for r in rows)


def test_every_error_is_a_project_error() -> None:
    assert issubclass(BenchError, McpEdgeError)
    assert issubclass(ConfigError, McpEdgeError)
    assert Row("c", "i", "m", 1.0).higher_is_better is True
