"""``mcp-edge bundle --board NAME -o DIR``: a root-filesystem overlay for a board's image, and its update artifact.

The overlay tarball (``mcp-edge-<version>-<board>-<arch>.tar.gz``) holds, with paths from the root:

- ``/opt/mcp-edge``: ``lib/python3.X/site-packages`` with mcp_edge's wheel for the board's architecture and
  the image's interpreter (``[firmware] python``) and its runtime dependencies, installed from wheels of that
  platform and ABI (pip ``--platform``, binary wheels only); ``lib/boot.py`` and the launcher
  ``bin/mcp-edge``, which runs the image's interpreter (``[firmware] interpreter``) and refuses, with the
  reason, one that is not the version, implementation or architecture the bundle was built for;
  ``plugins/`` (the Python plugins, the native ones compiled for the architecture and, on a board whose profile
  sets ``[firmware] wasm = true``, the WASM ones with their modules, and wasmtime's wheel for the architecture in
  site-packages); ``manifest.json``:
  versions and the SHA-256, size and mode of every other file;
- ``/etc/mcp-edge/board.toml``: the resolved profile (no ``extends``) with the bundle's plugin folders, which
  the runtime takes as its board; ``/etc/mcp-edge/boards/``: the shipped profiles (this one's chain among them),
  for ``board check`` and ``board list`` on the box;
- ``/etc/systemd/system/mcp-edge.service``: the hardened unit for the board, running the launcher.

Nothing depends on where it is unpacked but the unit's and the profile's paths, which name ``/opt/mcp-edge``.
With ``--sign-key`` and ``--sign-cert`` a signed SWUpdate image of the overlay is written beside it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mcp_edge.board.environ import process_environ
from mcp_edge.board.profiles import Board, resolve
from mcp_edge.errors import ConfigError

__all__ = ["PREFIX", "Bundle", "build_bundle"]

PREFIX = "/opt/mcp-edge"
_CHECKOUT = Path(__file__).resolve().parents[2]
_PLUGIN_DIRS = [f"{PREFIX}/plugins", "/etc/mcp-edge/plugins", "{data_dir}/plugins"]
_CC = {"x86_64": "x86_64-linux-gnu-gcc", "aarch64": "aarch64-linux-gnu-gcc"}


@dataclass(frozen=True)
class Bundle:
    tarball: Path
    manifest: dict[str, Any]
    swu: Path | None = None


def _say(text: str) -> None:
    print(f"mcp-edge bundle: {text}", file=sys.stderr, flush=True)


def _abi(python: str) -> str:
    return "cp" + python.replace(".", "")


def find_wheel(board: Board, wheel_dir: Path) -> Path:
    """The newest mcp_edge wheel in ``wheel_dir`` for the board's architecture and interpreter."""
    abi = _abi(board.firmware.python)
    found = sorted(wheel_dir.glob(f"mcp_edge-*-{abi}-{abi}-*_{board.arch}.whl"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ConfigError(f"no mcp_edge wheel for {abi} on {board.arch} in {wheel_dir} (make wheels builds them; "
                          "or pass --wheel)")
    return found[-1]


def _check_wheel(wheel: Path, board: Board) -> str:
    """The wheel's version; ConfigError if its tags are not the board's interpreter and architecture."""
    parts = wheel.name[:-4].split("-")
    if len(parts) < 5 or parts[0] != "mcp_edge":
        raise ConfigError(f"{wheel}: not an mcp_edge wheel")
    abi = _abi(board.firmware.python)
    if parts[-3] != abi or not parts[-1].endswith(f"_{board.arch}"):
        raise ConfigError(f"{wheel}: built for {parts[-3]} on {parts[-1]}, but board {board.id} runs {abi} on "
                          f"{board.arch} ([firmware] python = {board.firmware.python!r})")
    return parts[1]


def _runtime_requirements(wheel: Path, board: Board) -> list[str]:
    """The wheel's Requires-Dist that apply on the board (extras left out)."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        lines = zf.read(meta).decode().splitlines()
    env = {"platform_machine": board.arch, "python_version": board.firmware.python, "sys_platform": "linux",
           "platform_system": "Linux", "implementation_name": "cpython", "extra": ""}
    out = []
    for line in lines:
        if line.startswith("Requires-Dist:"):
            req = Requirement(line.partition(":")[2].strip())
            if req.marker is None or req.marker.evaluate(env):
                out.append(str(req))
    return out


def _install(wheel: Path, site: Path, board: Board) -> None:
    """mcp_edge's wheel and its dependencies' binary wheels for the board's platform, into ``site``; with
    ``[firmware] wasm`` the wheel's ``wasm`` extra too (wasmtime, its version pinned there)."""
    abi = _abi(board.firmware.python)
    platforms = [f"manylinux{tag}_{board.arch}" for tag in ("2014", "_2_17", "_2_28", "_2_31", "_2_34", "_2_36")]
    platforms.append(f"linux_{board.arch}")  # a wheel not repaired by auditwheel (it needs the image's libraries)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-compile",
           "--target", str(site), "--only-binary=:all:", "--python-version", board.firmware.python,
           "--implementation", "cp", "--abi", abi]
    for plat in platforms:
        cmd += ["--platform", plat]
    cmd.append(f"{wheel}[wasm]" if board.firmware.wasm else str(wheel))
    _say(f"pip install --target .../site-packages {wheel.name}{'[wasm]' if board.firmware.wasm else ''} and its "
         f"dependencies for {abi} {board.arch}")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"installing the wheels for {abi} on {board.arch} failed:\n{proc.stderr.strip()}")
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts name the build host's interpreter
    shutil.rmtree(site / "share", ignore_errors=True)  # the wheel's data: boards and plugins are placed below


def _packages(site: Path) -> dict[str, str]:
    out = {}
    for info in sorted(site.glob("*.dist-info")):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        out[name] = version
    return out


# A WASM plugin's module, built from its C sources as setup.py builds it (WASM_CFLAGS there).
_WASM_CFLAGS = ["--target=wasm32-wasi", "-O2", "-mexec-model=reactor", "-Wall", "-Wextra", "-Werror",
                "-Wl,--strip-debug"]
_WASI_DEBS = "clang lld wasi-libc libclang-rt-dev-wasm32"


def _wasm_module(folder: Path, module: str, source: Path) -> Path:
    """``folder/module``, built first with clang for wasm32-wasi when it is missing or older than its sources."""
    out = folder / module
    sources = sorted(folder.glob("*.c"))
    inputs = [*sources, source / "include" / "mcp_edge_wasm.h"]
    if out.is_file() and all(p.stat().st_mtime <= out.stat().st_mtime for p in inputs if p.is_file()):
        return out
    if not sources:
        raise ConfigError(f"plugin {folder.name} is WASM: {out} is missing and there are no C sources to build it")
    clang = shutil.which("clang")
    if clang is None:
        raise ConfigError(f"plugin {folder.name} is WASM: building {out.name} needs clang for wasm32-wasi "
                          f"(Debian: {_WASI_DEBS}); or build it first (make build)")
    cmd = [clang, *_WASM_CFLAGS, "-I", str(source / "include"), "-o", str(out), *map(str, sources)]
    _say(f"building {out} with clang for wasm32-wasi")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ConfigError(f"building plugin {folder.name}'s {out.name} failed (the WASI toolchain is Debian's "
                          f"{_WASI_DEBS}):\n{proc.stderr}")
    return out


def _plugins(dest: Path, board: Board, source: Path) -> list[str]:
    """The checkout's plugins into ``dest``: Python ones copied, native ones compiled for the board's arch, WASM
    ones (modules are the same on every arch) with their module where the profile sets ``[firmware] wasm``."""
    from mcp_edge.errors import PluginLoadError
    from mcp_edge.plugin.manifest import read_manifest as read_plugin_manifest

    made = []
    for folder in sorted(p for p in source.iterdir() if (p / "plugin.toml").is_file()):
        try:
            plugin = read_plugin_manifest(folder)
        except PluginLoadError as exc:
            raise ConfigError(f"plugin {folder.name} cannot be bundled: {exc}") from None
        if plugin.kind == "wasm":
            if not board.firmware.wasm:
                continue
            assert plugin.wasm is not None
            module = _wasm_module(folder, plugin.wasm, source)
            target = dest / folder.name
            target.mkdir(parents=True)
            shutil.copy2(folder / "plugin.toml", target / "plugin.toml")
            (target / plugin.wasm).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(module, target / plugin.wasm)
            made.append(folder.name)
            continue
        target = dest / folder.name
        target.mkdir(parents=True)
        shutil.copy2(folder / "plugin.toml", target / "plugin.toml")
        for module in sorted(folder.glob("*.py")):  # plugin.py and the modules it imports beside it
            shutil.copy2(module, target / module.name)
        sources = sorted(folder.glob("*.c"))
        if sources:
            cc = process_environ().get("CC", "cc") if board.arch == platform.machine() else _CC.get(board.arch, "")
            if not cc:
                raise ConfigError(f"plugin {folder.name} is native: no cross compiler is known for {board.arch}")
            if shutil.which(cc) is None:
                raise ConfigError(f"plugin {folder.name} is native: building it for {board.arch} needs {cc} "
                                  f"(Debian: gcc-{board.arch.replace('_', '-')}-linux-gnu)")
            out = target / f"{folder.name}.so"
            cmd = [cc, "-shared", "-fPIC", "-O2", "-Wall", "-I", str(source / "include"), *map(str, sources),
                   "-o", str(out)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise ConfigError(f"compiling plugin {folder.name} for {board.arch} failed:\n{proc.stderr}")
        made.append(folder.name)
    return made


def _launcher(board: Board) -> str:
    site = f"lib/python{board.firmware.python}/site-packages"
    return f"""#!/bin/sh
# mcp-edge launcher of a firmware bundle (mcp-edge bundle, board {board.id}): runs the image's own Python on
# lib/boot.py, which checks the interpreter against manifest.json first. MCP_EDGE_PYTHON overrides the path.
self=$(readlink -f "$0" 2>/dev/null) || self=$0  # through a symlink such as /usr/bin/mcp-edge too
here=$(cd "$(dirname "$self")/.." && pwd -P)
py=${{MCP_EDGE_PYTHON:-{shlex.quote(board.interpreter)}}}
if ! [ -x "$py" ]; then
    echo "mcp-edge: this bundle runs on $py (CPython {board.firmware.python}, the board profile's [firmware])," \
         "which is not on this image" >&2
    exit 2
fi
PYTHONPATH="$here/{site}${{PYTHONPATH:+:$PYTHONPATH}}"
export PYTHONPATH
exec "$py" -s "$here/lib/boot.py" "$@"
"""


def _board_toml(board: Board) -> str:
    tables = {**board.tables, "storage": {**board.tables.get("storage", {}), "plugin_dirs": _PLUGIN_DIRS}}
    return replace(board, tables=tables).to_toml()


def _unit(board: Board, toml_text: str, tmp: Path) -> str:
    from mcp_edge.board.profiles import load
    from mcp_edge.board.settings import Settings
    from mcp_edge.system.unit import unit_text

    path = tmp / "board.toml"
    path.write_text(toml_text)
    settings = Settings.load(load(path, {}), environ={})
    return unit_text(settings, exec_path=f"{PREFIX}/bin/mcp-edge")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _manifest(root: Path, board: Board, version: str, packages: dict[str, str], plugins: list[str],
              wheel: Path) -> dict[str, Any]:
    files = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = "/" + path.relative_to(root).as_posix()
        st = path.stat()
        files[rel] = {"sha256": _digest(path), "size": st.st_size, "mode": f"{st.st_mode & 0o7777:04o}"}
    return {
        "format": 1, "name": "mcp-edge", "version": version, "board": board.id, "chain": list(board.chain),
        "arch": board.arch, "python": board.firmware.python, "abi": _abi(board.firmware.python),
        "implementation": "cpython", "interpreter": board.interpreter, "prefix": PREFIX, "wheel": wheel.name,
        "packages": packages, "plugins": plugins,
        "built": {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_epoch())), "host": platform.machine(),
                  "python": platform.python_version()},
        "files": files,
    }


def _epoch() -> int:
    return int(process_environ().get("SOURCE_DATE_EPOCH") or time.time())


# Folders every root filesystem has: left out of the overlay, so that unpacking it never changes their modes.
_SYSTEM_DIRS = frozenset({"etc", "opt", "etc/systemd", "etc/systemd/system"})


def _tar(root: Path, out: Path) -> None:
    """A gzip tarball of ``root``'s tree: owned by root, modes 0755 (folders, executables) or 0644 whatever the
    build host's umask, the system's own folders left out, entries sorted, times from SOURCE_DATE_EPOCH or now."""
    mtime = _epoch()
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(root.rglob("*")):
                name = path.relative_to(root).as_posix()
                if name in _SYSTEM_DIRS:
                    continue
                info = tar.gettarinfo(str(path), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = mtime
                info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
                if info.isfile():
                    with path.open("rb") as fh:
                        tar.addfile(info, fh)
                else:
                    tar.addfile(info)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def build_bundle(board_name: str, out_dir: Path, *, wheel: Path | None = None, wheel_dir: Path | None = None,
                 sign_key: Path | None = None, sign_cert: Path | None = None) -> Bundle:
    """Build the overlay tarball (and, with a key and certificate, its signed SWUpdate image) into ``out_dir``."""
    board = resolve(board_name)
    if (sign_key is None) != (sign_cert is None):
        raise ConfigError("signing needs both --sign-key and --sign-cert")
    if sign_key is not None and sign_cert is not None:
        from mcp_edge.bundle.swupdate import check_board_name

        check_board_name(board.id)  # before any work: the image's board section is named after it
        for path, what in ((sign_key, "signing key"), (sign_cert, "signing certificate")):
            if not path.is_file():
                raise ConfigError(f"{path}: no such {what}")
    wheel = wheel or find_wheel(board, wheel_dir or _CHECKOUT / "dist")
    if not wheel.is_file():
        raise ConfigError(f"{wheel}: no such wheel")
    version = _check_wheel(wheel, board)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mcp-edge-bundle-") as tmp_name:
        tmp = Path(tmp_name)
        root = tmp / "root"
        opt = root / PREFIX.lstrip("/")
        site = opt / "lib" / f"python{board.firmware.python}" / "site-packages"
        site.mkdir(parents=True)
        _install(wheel, site, board)
        packages = _packages(site)
        if board.firmware.wasm and "wasmtime" not in packages:  # pip only warns of an extra the wheel lacks
            raise ConfigError(f"{wheel.name} has no wasm extra (wasmtime) for board {board.id}'s [firmware] wasm: "
                              "rebuild it (make wheels)")
        (opt / "lib" / "boot.py").write_text((Path(__file__).parent / "boot.py").read_text())
        bin_dir = opt / "bin"
        bin_dir.mkdir()
        (bin_dir / "mcp-edge").write_text(_launcher(board))
        (bin_dir / "mcp-edge").chmod(0o755)
        plugins = _plugins(opt / "plugins", board, _CHECKOUT / "plugins")
        etc = root / "etc" / "mcp-edge"
        (etc / "boards").mkdir(parents=True)
        toml_text = _board_toml(board)
        (etc / "board.toml").write_text(toml_text)
        # Every shipped profile (board check/list of any board), then the board's own chain, which wins a name clash.
        for source in [*sorted((_CHECKOUT / "boards").glob("*.toml")), *board.files]:
            shutil.copy2(source, etc / "boards" / source.name)
        unit_dir = root / "etc" / "systemd" / "system"
        unit_dir.mkdir(parents=True)
        (unit_dir / "mcp-edge.service").write_text(_unit(board, toml_text, tmp))
        manifest = _manifest(root, board, version, packages, plugins, wheel)
        (opt / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
        stem = f"mcp-edge-{version}-{board.id}-{board.arch}"
        tarball = out_dir / f"{stem}.tar.gz"
        _tar(root, tarball)
        (out_dir / f"{stem}.manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    _say(f"{tarball} ({tarball.stat().st_size // 1024} KiB, {len(manifest['files'])} files)")
    swu = None
    if sign_key is not None and sign_cert is not None:
        from mcp_edge.bundle.swupdate import build_swu

        swu = build_swu(tarball, out_dir / f"{stem}.swu", key=sign_key, cert=sign_cert, version=version,
                        board=board.id)
        _say(f"{swu} (signed SWUpdate image)")
    return Bundle(tarball=tarball, manifest=manifest, swu=swu)


def read_manifest(tarball: Path) -> dict[str, Any]:
    """The manifest inside an overlay tarball."""
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(f"{PREFIX.lstrip('/')}/manifest.json")
        if member is None:
            raise ConfigError(f"{tarball}: no manifest")
        data: dict[str, Any] = json.load(io.TextIOWrapper(member, encoding="utf-8"))
    return data
