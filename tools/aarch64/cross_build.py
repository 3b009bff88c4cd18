"""Cross-build of mcp_edge's extensions for aarch64, into a staging copy of the package.

Called by tools/aarch64/test.sh with the host (venv) Python, which has Cython:

    python tools/aarch64/cross_build.py SYSROOT BUILD_DIR STAGE_DIR
    python tools/aarch64/cross_build.py --system-packages

Reuses setup.py's tables (EXTENSIONS, c_sources, STRICT_CFLAGS, SYSTEM_LIBS and
system_lib_flags, whose pkg-config is pointed at the sysroot), cythonizes on the
host into BUILD_DIR (never beside the .pyx files), compiles with
aarch64-linux-gnu-gcc and copies mcp_edge/'s Python sources plus the aarch64 .so
files to STAGE_DIR/mcp_edge. Nothing is written into the source tree.
--system-packages prints the Debian -dev packages of setup.SYSTEM_LIBS, which
test.sh puts into the sysroot.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.dont_write_bytecode = True  # no __pycache__ for setup.py in the source tree

import setup  # noqa: E402  (the build's tables; its setup() call is under __main__)

CC = os.environ.get("CC_AARCH64", "aarch64-linux-gnu-gcc")
ARCH = "aarch64"
EXT_SUFFIX = ".cpython-311-aarch64-linux-gnu.so"
PROJECT_CFLAGS = [*setup.STRICT_CFLAGS, "-O3", "-fPIC"]
CYTHON_CFLAGS = ["-O2", "-fPIC", "-DNDEBUG", "-fwrapv"]
CYTHON_DIRECTIVES = "language_level=3,linetrace=False,embedsignature=False"


def run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"aarch64 build failed: {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")


def system_libs(name: str) -> list[str]:
    """The pkg-config names of the system libraries extension `name` links."""
    entry = setup.EXTENSIONS[name]
    return list(entry[3]) if len(entry) > 3 else []


def inputs_digest(sysroot: Path) -> str:
    """Hash of everything the .so files depend on, to skip an up-to-date build."""
    h = hashlib.sha256()
    files = [ROOT / "setup.py", Path(__file__).resolve()]
    files += sorted((ROOT / "csrc").rglob("*.[ch]"))
    files += sorted((ROOT / "mcp_edge").rglob("*.pyx")) + sorted((ROOT / "mcp_edge").rglob("*.pxd"))
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    h.update(" ".join([CC, *PROJECT_CFLAGS, *CYTHON_CFLAGS, CYTHON_DIRECTIVES]).encode())
    stamp = sysroot / ".stamp"
    h.update(stamp.read_bytes() if stamp.is_file() else b"")
    return h.hexdigest()


def use_sysroot_pkgconfig(sysroot: Path) -> None:
    """Point pkg-config (which setup.pkgconfig runs) at the sysroot's arm64 .pc files."""
    os.environ["PKG_CONFIG_SYSROOT_DIR"] = str(sysroot)
    os.environ["PKG_CONFIG_PATH"] = ""
    os.environ["PKG_CONFIG_LIBDIR"] = ":".join(
        str(sysroot / d) for d in ("usr/lib/aarch64-linux-gnu/pkgconfig", "usr/lib/pkgconfig", "usr/share/pkgconfig")
    )


def build(sysroot: Path, build_dir: Path) -> list[Path]:
    """Cythonize and compile every extension; the .so paths, named as in the package."""
    inc = sysroot / "usr/include"
    if not (inc / "aarch64-linux-gnu/python3.11/pyconfig.h").is_file():
        sys.exit(f"aarch64 build: no arm64 Python headers under {inc} (libpython3.11-dev:arm64)")
    # The sysroot's headers (Python, liburing, numa) after the cross toolchain's own libc;
    # pyconfig.h includes <aarch64-linux-gnu/python3.11/pyconfig.h>.
    sys_inc = ["-idirafter", str(inc)]
    py_inc = ["-I", str(inc / "python3.11"), *sys_inc]
    libdirs = [sysroot / "usr/lib/aarch64-linux-gnu", sysroot / "lib/aarch64-linux-gnu"]
    link_dirs = [f for d in libdirs for f in (f"-L{d}", f"-Wl,-rpath-link,{d}")]
    use_sysroot_pkgconfig(sysroot)
    flags_of = {name: setup.system_lib_flags(name) for name in setup.EXTENSIONS}
    obj_dir = build_dir / "obj"
    obj_dir.mkdir(parents=True, exist_ok=True)

    # Project C: each (source, flags) once, even when several extensions link it.
    project: dict[str, list[str]] = {}
    for name in setup.EXTENSIONS:
        for src, flags in setup.c_sources(name, ARCH):
            project[src] = [*project.get(src, []), *flags, *flags_of[name][0]]

    def obj_of(src: str) -> Path:
        return obj_dir / (src.replace("/", "_").removesuffix(".c") + ".o")

    def compile_project(src: str) -> None:
        flags = list(dict.fromkeys(project[src]))
        run([CC, *PROJECT_CFLAGS, *flags, *sys_inc, "-c", src, "-o", str(obj_of(src))])

    def cython_and_compile(name: str) -> None:
        pyx = setup.EXTENSIONS[name][0]
        c_file = build_dir / (name.replace(".", "_") + ".c")
        run([sys.executable, "-m", "cython", "-X", CYTHON_DIRECTIVES, "-I", ".",
             "--module-name", name, "-o", str(c_file), pyx])
        run([CC, *CYTHON_CFLAGS, *flags_of[name][0], *py_inc, "-I", "csrc", "-c", str(c_file),
             "-o", str(c_file.with_suffix(".o"))])

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        jobs = [pool.submit(compile_project, src) for src in project]
        jobs += [pool.submit(cython_and_compile, name) for name in setup.EXTENSIONS]
        for job in jobs:
            job.result()

    out = []
    for name in setup.EXTENSIONS:
        so = build_dir / "lib" / (name.replace(".", "/") + EXT_SUFFIX)
        so.parent.mkdir(parents=True, exist_ok=True)
        objs = [str(build_dir / (name.replace(".", "_") + ".o"))]
        objs += [str(obj_of(src)) for src, _ in setup.c_sources(name, ARCH)]
        run([CC, "-shared", "-Wl,-z,relro,-z,now", "-o", str(so), *objs, *link_dirs, *flags_of[name][1]])
        out.append(so)
    return out


def stage(build_dir: Path, stage_dir: Path) -> None:
    """STAGE_DIR/mcp_edge: the package's Python sources plus the aarch64 extensions."""
    dest = stage_dir / "mcp_edge"
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(
        ROOT / "mcp_edge", dest,
        ignore=shutil.ignore_patterns("*.so", "*.c", "*.o", "__pycache__", "*.pyc"),
    )
    lib = build_dir / "lib"
    for so in lib.rglob("*" + EXT_SUFFIX):
        shutil.copy2(so, stage_dir / so.relative_to(lib))


def main() -> None:
    if sys.argv[1:] == ["--system-packages"]:
        used = {lib for name in setup.EXTENSIONS for lib in system_libs(name)} | set(setup.SYSTEM_LIBS)
        print(" ".join(sorted({setup.SYSTEM_LIBS[lib] for lib in used})))
        return
    sysroot, build_dir, stage_dir = (Path(a).resolve() for a in sys.argv[1:4])
    stamp = build_dir / "inputs.sha256"
    digest = inputs_digest(sysroot)
    if stamp.is_file() and stamp.read_text() == digest:
        print("aarch64 build: extensions up to date")
    else:
        shutil.rmtree(build_dir, ignore_errors=True)
        for so in build(sysroot, build_dir):
            print(f"aarch64 build: {so.relative_to(build_dir / 'lib')}")
        stamp.write_text(digest)
    stage(build_dir, stage_dir)


if __name__ == "__main__":
    main()
