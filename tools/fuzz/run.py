"""Run the atheris targets one after another and report the executions each reached.

    python tools/fuzz/run.py --time 15 --runs 20000      # the short run of `make test`
    python tools/fuzz/run.py --time 300                  # `make fuzz`: 5 minutes a target
    python tools/fuzz/run.py --time 60 --targets http    # one target

Each target (tools/fuzz/fuzz_<target>.py) starts from its seeds (tests/data/fuzz/<target>/seed-*) and from
the corpus it grew before under build/fuzz/corpus/<target>/ (not committed); the inputs kept there from
earlier findings are replayed by tests/fuzz/test_fuzz_regressions.py, not here. A crash, a timeout or
running out of memory copies the input to tests/data/fuzz/<target>/crash-* (timeout-*, oom-*; unless the same
bytes are kept there already, e.g. a known regression not fixed yet), where
tests/fuzz/test_fuzz_regressions.py replays it from then on, and makes this exit 1. The summary is printed
and written to build/fuzz/summary.json.

atheris has wheels for x86_64 only: there a missing atheris is an error; on other machines nothing runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tools" / "fuzz"
DATA = ROOT / "tests" / "data" / "fuzz"
WORK = ROOT / "build" / "fuzz"
TARGETS = ("jsonrpc", "http", "manifest", "frame")
MAX_LEN = {"jsonrpc": 8192, "http": 8192, "manifest": 4096, "frame": 4096}
TIMEOUT_S = 30  # one input running longer than this is a finding (a hang), kept as timeout-*


@dataclass
class Result:
    target: str
    executions: int
    seconds: float
    corpus: int
    exit_code: int
    finding: str | None  # the file the crashing input was written to


def have_atheris() -> bool:
    return importlib.util.find_spec("atheris") is not None


def run_target(target: str, runs: int, seconds: int, log: Path) -> Result:
    corpus = WORK / "corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = DATA / target
    findings = WORK / "findings" / target
    findings.mkdir(parents=True, exist_ok=True)
    # The fuzzer starts from the seed-* inputs; the kept findings (regress-*, crash-*...) are the replay test's,
    # so that one open finding does not stop every run before it starts.
    start_dir = WORK / "seeds" / target
    start_dir.mkdir(parents=True, exist_ok=True)
    for old in start_dir.iterdir():
        old.unlink()
    for seed in seeds.glob("seed-*"):
        (start_dir / seed.name).write_bytes(seed.read_bytes())
    cmd = [
        sys.executable, str(HERE / f"fuzz_{target}.py"),
        f"-runs={runs}", f"-max_total_time={seconds}", f"-timeout={TIMEOUT_S}", "-rss_limit_mb=2048",
        f"-max_len={MAX_LEN[target]}", "-print_final_stats=1", f"-artifact_prefix={findings}/",
        str(corpus), str(start_dir),
    ]
    tokens = HERE / f"{target}.dict"
    if tokens.exists():
        cmd.insert(2, f"-dict={tokens}")
    start = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    took = time.monotonic() - start
    text = log.read_text(errors="replace")
    # stat::number_of_executed_units is printed at the end of a run, a crash's included.
    execs = [int(m) for m in re.findall(r"stat::number_of_executed_units: (\d+)", text)]
    done = [int(m) for m in re.findall(r"^#(\d+)\s", text, re.M)]
    written = re.findall(r"Test unit written to (\S+)", text)
    finding = keep(Path(written[-1]), seeds) if written else None
    return Result(target, execs[-1] if execs else (done[-1] if done else 0), round(took, 1),
                  sum(1 for _ in corpus.iterdir()), proc.returncode, finding)


def keep(found: Path, seeds: Path) -> str:
    """Copy a crashing input into the regression inputs, unless one with the same bytes is there already."""
    data = found.read_bytes()
    for old in seeds.iterdir():
        if old.is_file() and old.read_bytes() == data:
            return str(old.relative_to(ROOT))
    kept = seeds / found.name
    kept.write_bytes(data)
    return str(kept.relative_to(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", type=int, default=300, help="seconds per target at most (default 300)")
    parser.add_argument("--runs", type=int, default=-1, help="executions per target at most (default: no limit)")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(TARGETS)}")
    args = parser.parse_args(argv)
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown target(s) {', '.join(sorted(unknown))}")
    machine = platform.machine()
    if not have_atheris():
        if machine == "x86_64":
            print("fuzz: atheris is not installed (it is a test dependency on x86_64): "
                  "run `make setup`, or `pip install -e '.[test]'`", file=sys.stderr)
            return 1
        print(f"fuzz: atheris has no wheels for {machine}: the atheris targets do not run here")
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    for target in targets:
        log = WORK / f"{target}.log"
        res = run_target(target, args.runs, args.time, log)
        results.append(res)
        rate = res.executions / res.seconds if res.seconds else 0.0
        status = "ok" if res.exit_code == 0 else f"FAILED (exit {res.exit_code})"
        print(f"fuzz {target}: {res.executions} executions in {res.seconds} s ({rate:.0f}/s), "
              f"corpus {res.corpus}: {status}", flush=True)
        if res.exit_code != 0:
            tail = log.read_text(errors="replace").splitlines()
            shown = [line for line in tail if not line.startswith("INFO: Instrumenting")][-40:]
            print("\n".join(f"    {line}" for line in shown))
            if res.finding:
                print(f"    the input is kept in {res.finding}: replayed by tests/fuzz/test_fuzz_regressions.py")
    (WORK / "summary.json").write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    total = sum(r.executions for r in results)
    print(f"fuzz: {total} executions in all ({', '.join(f'{r.target} {r.executions}' for r in results)})")
    return 0 if all(r.exit_code == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
