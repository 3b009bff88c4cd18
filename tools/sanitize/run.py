"""Build the C stress programs tests/csrc/*.c under ThreadSanitizer and under AddressSanitizer+UBSan, run them.

Called by tools/sanitize/run.sh (``make test-sanitize``) with the venv's Python:

    python tools/sanitize/run.py [--only NAME[,NAME]] [--variants tsan,asan] [--python] [-j N] [FILE.c ...]

Each program names what it links in its first lines::

    // sources: csrc/slab/slab.c ext:mcp_edge.native._frame
    // libs: -lpthread

``ext:NAME`` stands for the project C that extension links (setup.c_sources:
the portable files and this architecture's ISA kernels). Every source is
compiled on its own with its setup.ISA_SOURCES flags (an AVX-512 kernel gets
its -m flags and no other file does), then linked with the program. Variants:

    tsan  -fsanitize=thread -O1 -g
    asan  -fsanitize=address,undefined -fno-sanitize-recover=all -O1 -g -fno-omit-frame-pointer

both with -std=c11 -Wall -Wextra -Werror -Icsrc -pthread. A program fails on a
non-zero exit, a sanitizer report in its output (halt_on_error=1 everywhere),
or its time limit. ``--python`` also runs the native pytest suites against
extensions built with MCP_EDGE_SANITIZE=1, in a copy of the tree under
build/sanitize/ that is removed afterwards (see ``python_suite``).

Under CI=true, finding no program, or a compiler whose ThreadSanitizer or
AddressSanitizer cannot build and run a program, is a failure; elsewhere it
is a skip, said out loud. Exit status: 0 when everything ran clean, 1 on any
failure, 2 on a usage or set-up error.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.dont_write_bytecode = True  # no __pycache__ for setup.py in the source tree

import setup  # noqa: E402  (the build's tables; its setup() call is under __main__)

OUT = ROOT / "build" / "sanitize"
ARCH = platform.machine()
COMMON = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Icsrc", "-pthread"]
VARIANTS = {
    "tsan": ["-fsanitize=thread", "-O1", "-g"],
    "asan": ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-O1", "-g", "-fno-omit-frame-pointer"],
}
RUNTIME_OPTIONS = {
    "TSAN_OPTIONS": "halt_on_error=1 second_deadlock_stack=1",
    "ASAN_OPTIONS": "halt_on_error=1:abort_on_error=0:detect_leaks=1:detect_stack_use_after_return=1"
                    ":strict_string_checks=1:check_initialization_order=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}
# What a sanitizer prints when it reports; a run showing one fails even if it exited 0.
REPORT = re.compile(r"WARNING: ThreadSanitizer|ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|"
                    r"SUMMARY: (Address|Thread|UndefinedBehavior|Leak)Sanitizer")
HEADER_LINES = 12  # the sources/libs lines are looked for this far into a program
PROGRAM_TIMEOUT = 900  # seconds a program may run under a sanitizer (TSan slows threads 5-15x)


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def say(msg: str) -> None:
    print(f"== sanitize: {msg}", flush=True)


class SetupError(Exception):
    """A program or the toolchain cannot be used as it stands: exit status 2."""


@dataclass
class Program:
    path: Path
    sources: list[tuple[str, list[str]]]  # (source, its ISA flags)
    libs: list[str]

    @property
    def name(self) -> str:
        return self.path.stem


def isa_flags(src: str) -> list[str]:
    return list(setup.ISA_SOURCES.get(ARCH, {}).get(src, []))


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse(path: Path) -> Program:
    """The program's sources and libs from its first lines; SetupError naming what is wrong."""
    head = path.read_text(errors="replace").splitlines()[:HEADER_LINES]
    fields: dict[str, list[str]] = {}
    for line in head:
        m = re.match(r"\s*//\s*(sources|libs)\s*:(.*)$", line)
        if m:
            fields[m.group(1)] = shlex.split(m.group(2))
    if "sources" not in fields:
        raise SetupError(f"{rel(path)}: no '// sources: ...' line in its first {HEADER_LINES} lines "
                         f"(name the csrc files it links, or ext:<extension> for an extension's)")
    sources: dict[str, list[str]] = {}
    for token in fields["sources"]:
        if token.startswith("ext:"):
            name = token[4:]
            if name not in setup.EXTENSIONS:
                raise SetupError(f"{rel(path)}: {token}: no such extension in setup.EXTENSIONS "
                                 f"({', '.join(sorted(setup.EXTENSIONS))})")
            for src, flags in setup.c_sources(name, ARCH):
                sources.setdefault(src, flags)
        else:
            if not (ROOT / token).is_file():
                raise SetupError(f"{rel(path)}: source {token} does not exist")
            sources.setdefault(token, isa_flags(token))
    return Program(path, list(sources.items()), fields.get("libs", []))


def cc() -> list[str]:
    return shlex.split(os.environ.get("CC", "gcc"))


PROBE = r"""
#include <pthread.h>
#include <stdlib.h>
static int x;
static void *bump(void *a) { (void)a; __atomic_fetch_add(&x, 1, __ATOMIC_SEQ_CST); return NULL; }
int main(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, bump, NULL)) return 1;
    bump(NULL);
    pthread_join(t, NULL);
    char *p = malloc(4); p[0] = 0; free(p);
    return __atomic_load_n(&x, __ATOMIC_SEQ_CST) == 2 ? 0 : 1;
}
"""


def probe(variant: str, work: Path) -> tuple[list[str] | None, str]:
    """Whether ``variant`` builds and runs here: (the command prefix its programs run with, "") or (None, why).

    ThreadSanitizer of older compilers cannot map its shadow memory under the
    large ASLR ranges of newer kernels (vm.mmap_rnd_bits > 28: "unexpected
    memory mapping"); such programs run with ASLR off (setarch -R), which is
    tried when the plain run fails that way."""
    src, exe = work / "probe.c", work / f"probe-{variant}"
    src.write_text(PROBE)
    proc = subprocess.run([*cc(), *COMMON, *VARIANTS[variant], str(src), "-o", str(exe)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        why = proc.stderr.strip()[-400:]
        return None, f"{' '.join(cc())} cannot build with {VARIANTS[variant][0]}: {why}"
    prefixes: list[list[str]] = [[]]
    if shutil.which("setarch"):
        prefixes.append(["setarch", ARCH, "-R"])
    why = ""
    for prefix in prefixes:
        run = subprocess.run([*prefix, str(exe)], capture_output=True, text=True, env=run_env(), timeout=60)
        if run.returncode == 0 and not REPORT.search(run.stdout + run.stderr):
            if prefix:
                say(f"{variant}: programs run with ASLR off ({' '.join(prefix)}): {why}")
            return prefix, ""
        why = (run.stderr.strip() or f"exit status {run.returncode}").splitlines()[-1][:300]
    return None, f"a {variant} program does not run here: {why}"


def run_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(RUNTIME_OPTIONS)
    env.pop("LD_PRELOAD", None)
    return env


def build(prog: Program, variant: str) -> Path:
    """Compile each source on its own (its ISA flags only), then link; the executable. SetupError with the
    compiler's output when it fails."""
    objdir = OUT / variant / "obj" / prog.name  # per program: parallel jobs never write one object
    objdir.mkdir(parents=True, exist_ok=True)
    objects = []
    for src, flags in [(rel(prog.path), []), *prog.sources]:
        obj = objdir / (src.replace("/", "_").removesuffix(".c") + ".o")
        cmd = [*cc(), *COMMON, *VARIANTS[variant], *flags, "-c", src, "-o", str(obj)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SetupError(f"{prog.name} [{variant}]: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        objects.append(str(obj))
    exe = OUT / variant / prog.name
    cmd = [*cc(), *COMMON, *VARIANTS[variant], *objects, *prog.libs, "-o", str(exe)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SetupError(f"{prog.name} [{variant}]: link failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    return exe


@dataclass
class Result:
    name: str
    variant: str
    ok: bool
    seconds: float
    detail: str


def run_one(prog: Program, variant: str, prefix: list[str]) -> Result:
    start = time.monotonic()
    try:
        exe = build(prog, variant)
    except SetupError as exc:
        return Result(prog.name, variant, False, time.monotonic() - start, f"build failed\n{exc}")
    log = OUT / variant / f"{prog.name}.log"
    try:
        proc = subprocess.run([*prefix, str(exe)], cwd=ROOT, capture_output=True, text=True, env=run_env(),
                              timeout=PROGRAM_TIMEOUT)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")
        out += f"\n(killed after {PROGRAM_TIMEOUT} s)"
        rc = -1
    log.write_text(out)
    report = REPORT.search(out)
    ok = rc == 0 and report is None
    why = "" if ok else (f"exit status {rc}" + (f", sanitizer report: {report.group(0)}" if report else ""))
    return Result(prog.name, variant, ok, time.monotonic() - start, why + ("" if ok else f"\n{tail(out)}"))


def tail(text: str, lines: int = 60) -> str:
    """The first sanitizer report of ``text`` and what follows it, or else its last lines; ``lines`` at most."""
    all_lines = text.splitlines()
    for i, line in enumerate(all_lines):
        if REPORT.search(line):
            start = max(0, i - 1)
            return "\n".join(all_lines[start:start + lines])
    return "\n".join(all_lines[-lines:])


# Run in the tree copy: every mcp_edge extension comes from the copy and links libasan.
CHECK_IMPORT = """
import importlib, pathlib, sys
tree = pathlib.Path(sys.argv[1]).resolve()
import setup
for name in setup.EXTENSIONS:
    mod = importlib.import_module(name)
    so = pathlib.Path(mod.__file__).resolve()
    assert so.is_relative_to(tree), f"{name} imported from {so}, not from {tree}"
    assert b"__asan_init" in so.read_bytes(), f"{so} is not built with AddressSanitizer"
print("ok")
"""


def python_suite(tests: list[str]) -> Result:
    """The native pytest suites against extensions built with MCP_EDGE_SANITIZE=1 (ASan+UBSan).

    The build happens in a copy of the tree (git's tracked and untracked,
    non-ignored files) under build/sanitize/, never in the checkout (whose
    extensions stay the optimised ones), and the copy is removed afterwards.
    The interpreter is not built with ASan, so libasan is preloaded; leak
    checking is off (the interpreter keeps memory until exit by design)."""
    start = time.monotonic()
    lib = subprocess.run([*cc(), "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not lib or not os.path.isabs(lib) or not os.path.exists(lib):
        return Result("pytest", "asan", False, 0.0, f"the compiler names no libasan.so to preload ({lib!r})")
    OUT.mkdir(parents=True, exist_ok=True)
    tree = Path(tempfile.mkdtemp(prefix="tree-", dir=OUT))
    try:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                               capture_output=True, check=True).stdout.split(b"\0")
        for name in filter(None, files):
            src = ROOT / os.fsdecode(name)
            if src.is_file():
                dest = tree / os.fsdecode(name)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dest)
        env = dict(os.environ, MCP_EDGE_SANITIZE="1")
        env.pop("LD_PRELOAD", None)
        build_log = OUT / "pytest-build.log"
        jobs = str(os.cpu_count() or 1)
        proc = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace", "-j", jobs],
                              cwd=tree, env=env, capture_output=True, text=True)
        build_log.write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            return Result("pytest", "asan", False, time.monotonic() - start,
                          f"the ASan build failed (log {build_log.relative_to(ROOT)})\n{tail(proc.stderr)}")
        env.update(RUNTIME_OPTIONS)
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
        env["LD_PRELOAD"] = lib
        env["PYTHONPATH"] = str(tree)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        # The suite must import the copy's extensions, and they must be the ASan build: checked, not assumed
        # (the venv's editable install points at the checkout).
        where = subprocess.run([sys.executable, "-c", CHECK_IMPORT, str(tree)], cwd=tree, env=env,
                               capture_output=True, text=True)
        if where.returncode != 0:
            return Result("pytest", "asan", False, time.monotonic() - start,
                          f"the suite would not test the ASan build: {where.stdout}{where.stderr}")
        tests = [t for t in tests if (tree / t).exists()]
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *tests]
        proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, timeout=PROGRAM_TIMEOUT)
        out = proc.stdout + proc.stderr
        (OUT / "pytest-asan.log").write_text(out)
        report = REPORT.search(out)
        ok = proc.returncode == 0 and report is None
        detail = "" if ok else f"exit status {proc.returncode}{', ' + report.group(0) if report else ''}\n{tail(out)}"
        if ok:
            detail = out.strip().splitlines()[-1] if out.strip() else ""
        return Result("pytest " + " ".join(tests), "asan", ok, time.monotonic() - start, detail)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default="", help="comma-separated program names (file stems) to run")
    ap.add_argument("--variants", default="tsan,asan", help="comma-separated: tsan, asan")
    ap.add_argument("--python", action="store_true", help="also run the native pytest suites under ASan+UBSan")
    ap.add_argument("--python-tests", default="tests/native tests/ipc tests/io/test_frame_io.py",
                    help="what --python runs: space-separated pytest paths (those that exist); "
                         "default tests/native tests/ipc tests/io/test_frame_io.py")
    ap.add_argument("-j", "--jobs", type=int, default=1, help="programs built and run at once (default 1)")
    ap.add_argument("files", nargs="*", type=Path, help="C programs to run instead of tests/csrc/*.c")
    args = ap.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    if unknown := set(variants) - set(VARIANTS):
        print(f"tools/sanitize: unknown variant(s) {', '.join(sorted(unknown))}; use tsan, asan", file=sys.stderr)
        return 2
    ci = under_ci()
    paths = [p.resolve() for p in args.files] or sorted((ROOT / "tests" / "csrc").glob("*.c"))
    if args.only:
        wanted = set(args.only.split(","))
        paths = [p for p in paths if p.stem in wanted]
        if missing := wanted - {p.stem for p in paths}:
            print(f"tools/sanitize: no tests/csrc/{{{','.join(sorted(missing))}}}.c", file=sys.stderr)
            return 2
    failures: list[str] = []
    if not paths:
        msg = "no C stress programs in tests/csrc/*.c"
        if ci:
            failures.append(f"{msg} (CI=true: a sanitizer run that tests nothing fails)")
        else:
            say(f"{msg}: nothing to run")
    programs = []
    for path in paths:  # a program whose header is wrong fails; the others still run
        try:
            programs.append(parse(path))
        except SetupError as exc:
            say(f"FAIL {path.stem}: {exc}")
            failures.append(path.stem)
    OUT.mkdir(parents=True, exist_ok=True)
    prefixes: dict[str, list[str]] = {}
    for variant in variants:
        prefix, why = probe(variant, OUT)
        if prefix is None:
            if ci:
                failures.append(f"{variant}: {why} (CI=true: a missing sanitizer fails)")
            else:
                say(f"SKIPPED {variant}: {why}")
            continue
        prefixes[variant] = prefix
    jobs = [(p, v) for p in programs for v in variants if v in prefixes]
    say(f"{len(programs)} program(s) x {len(prefixes)} variant(s) with {' '.join(cc())}: "
        + ", ".join(f"{p.name}[{v}]" for p, v in jobs))
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run_one, p, v, prefixes[v]) for p, v in jobs]
        results = []
        for fut in futures:
            res = fut.result()
            results.append(res)
            say(f"{'ok  ' if res.ok else 'FAIL'} {res.name} [{res.variant}] {res.seconds:.1f} s"
                + (f" (log build/sanitize/{res.variant}/{res.name}.log)" if not res.ok else ""))
            if not res.ok:
                print(res.detail, flush=True)
                failures.append(f"{res.name} [{res.variant}]")
    if args.python:
        res = python_suite(args.python_tests.split())
        say(f"{'ok  ' if res.ok else 'FAIL'} {res.name} [ASan+UBSan extensions] {res.seconds:.1f} s: "
            f"{res.detail if res.ok else ''}")
        if not res.ok:
            print(res.detail, flush=True)
            failures.append(res.name)
    if failures:
        say("FAILED: " + "; ".join(failures))
        return 1
    say("clean: no sanitizer report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
