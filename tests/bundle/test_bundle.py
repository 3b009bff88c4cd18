"""``mcp-edge bundle``: the overlay's layout and manifest, the launcher's interpreter check, bad input.

The bundle is built for this machine's architecture from a wheel of the checkout (pip wheel), unpacked into a
folder, and its launcher run with this machine's Python 3.11, as an image would run it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
from ci_honesty import require_or_skip

from mcp_edge.board.profiles import load
from mcp_edge.bundle.boot import mismatch
from mcp_edge.bundle.build import PREFIX, build_bundle
from mcp_edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
ARCH = platform.machine()
BOARD = f"generic-{ARCH}"
BASE_PYTHON = Path(getattr(sys, "_base_executable", sys.executable))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, timeout=600)
    (found,) = out.glob("mcp_edge-*.whl")
    return found


@pytest.fixture(scope="module")
def unpacked(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("bundle")
    result = build_bundle(BOARD, out, wheel=wheel)
    root = tmp_path_factory.mktemp("root")
    with tarfile.open(result.tarball) as tar:
        members = tar.getmembers()
        assert {m.uid for m in members} == {0} and {m.uname for m in members} == {"root"}
        assert {m.mode for m in members if m.isdir()} == {0o755}  # whatever the build host's umask
        assert {m.mode for m in members if m.isfile()} <= {0o644, 0o755}
        names = {m.name for m in members}
        assert not names & {"etc", "opt", "etc/systemd", "etc/systemd/system"}  # the system's own folders
        tar.extractall(root, filter="tar")
    return result.tarball, root


def launcher(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_EDGE_", "PYTHON"))}
    full.update({"MCP_EDGE_PYTHON": str(BASE_PYTHON), "MCP_EDGE_BOARD_FILE": str(root / "etc/mcp-edge/board.toml"),
                 "MCP_EDGE_BOARDS_DIR": str(root / "etc/mcp-edge/boards"), "MCP_EDGE_ENTRY_POINTS": "0", **env})
    return subprocess.run([str(root / "opt/mcp-edge/bin/mcp-edge"), *args], capture_output=True, text=True,
                          env=full, timeout=120, cwd="/")


def test_layout_and_manifest_hashes(unpacked: tuple[Path, Path]) -> None:
    _, root = unpacked
    manifest = json.loads((root / "opt/mcp-edge/manifest.json").read_text())
    assert (manifest["board"], manifest["arch"], manifest["python"], manifest["abi"]) == (BOARD, ARCH, "3.11",
                                                                                          "cp311")
    assert {"mcp_edge", "msgspec", "click"} <= set(manifest["packages"])
    on_disk = {"/" + p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert on_disk - set(manifest["files"]) == {"/opt/mcp-edge/manifest.json"}
    assert set(manifest["files"]) <= on_disk
    for name, entry in manifest["files"].items():
        data = (root / name.lstrip("/")).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["size"], name
    for must in ("/opt/mcp-edge/bin/mcp-edge", "/opt/mcp-edge/lib/boot.py", "/etc/mcp-edge/board.toml",
                 f"/etc/mcp-edge/boards/{BOARD}.toml", "/etc/systemd/system/mcp-edge.service",
                 "/opt/mcp-edge/plugins/fs/plugin.py", "/opt/mcp-edge/plugins/native_hello/native_hello.so"):
        assert must in manifest["files"], must
    assert manifest["files"]["/opt/mcp-edge/bin/mcp-edge"]["mode"] == "0755"
    site = root / "opt/mcp-edge/lib/python3.11/site-packages"
    assert (site / "mcp_edge" / "native").is_dir() and not (site / "bin").exists()
    assert any(p.name.startswith("_cpu.") and p.suffix == ".so" for p in (site / "mcp_edge/native").iterdir())


def test_installed_profile_and_unit(unpacked: tuple[Path, Path]) -> None:
    _, root = unpacked
    text = (root / "etc/mcp-edge/board.toml").read_text()
    assert "extends" not in tomllib.loads(text)
    b = load(root / "etc/mcp-edge/board.toml", {})
    assert b.id == BOARD and b.plugin_dirs[0] == Path(f"{PREFIX}/plugins")
    unit = (root / "etc/systemd/system/mcp-edge.service").read_text()
    assert f"ExecStart={PREFIX}/bin/mcp-edge serve" in unit and "NoNewPrivileges=yes" in unit


def test_launcher_runs_the_bundles_package(unpacked: tuple[Path, Path]) -> None:
    _, root = unpacked
    out = launcher(root, "doctor", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["board"]["id"] == BOARD
    assert report["board"]["profile"] == str(root / "etc/mcp-edge/board.toml")
    where = launcher(root, "board", "check", BOARD, "--json")
    assert json.loads(where.stdout)["board"] == BOARD
    # The package imported is the bundle's, not the checkout's.
    probe = subprocess.run([str(BASE_PYTHON), "-s", "-c", "import mcp_edge; print(mcp_edge.__file__)"],
                           env={"PYTHONPATH": str(root / "opt/mcp-edge/lib/python3.11/site-packages")},
                           capture_output=True, text=True, cwd="/")
    assert probe.stdout.strip().startswith(str(root))


def test_launcher_refuses_another_interpreter_with_the_reason(unpacked: tuple[Path, Path], tmp_path: Path) -> None:
    _, root = unpacked
    manifest_path = root / "opt/mcp-edge/manifest.json"
    original = manifest_path.read_text()
    try:
        manifest = json.loads(original)
        manifest["python"], manifest["abi"] = "3.13", "cp313"
        manifest_path.write_text(json.dumps(manifest))
        out = launcher(root, "doctor")
        assert out.returncode == 2
        assert "it is Python 3.11, the bundle's extensions are for 3.13 (cp313)" in out.stderr
        assert "Install python3.13" in out.stderr
    finally:
        manifest_path.write_text(original)
    missing = launcher(root, "doctor", MCP_EDGE_PYTHON=str(tmp_path / "python3.11"))
    assert missing.returncode == 2
    assert "which is not on this image" in missing.stderr


def test_mismatch_rules() -> None:
    manifest = {"python": "3.11", "abi": "cp311", "arch": "aarch64", "board": "b", "implementation": "cpython"}
    assert mismatch(manifest, (3, 11, 2), "aarch64", "cpython") is None
    reason = mismatch(manifest, (3, 11, 2), "x86_64", "cpython")
    assert reason is not None and "this machine is x86_64, the bundle is for aarch64" in reason
    reason = mismatch(manifest, (3, 12, 0), "aarch64", "pypy")
    assert reason is not None and "it is pypy, not CPython" in reason and "it is Python 3.12" in reason


def test_bad_input(wheel: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no board profile 'nope'"):
        build_bundle("nope", tmp_path, wheel=wheel)
    other = "raspberry-pi-5" if ARCH == "x86_64" else "intel-n100"
    with pytest.raises(ConfigError, match=rf"built for cp311 on .*{ARCH}, but board {other} runs cp311 on"):
        build_bundle(other, tmp_path, wheel=wheel)
    with pytest.raises(ConfigError, match="no such wheel"):
        build_bundle(BOARD, tmp_path, wheel=tmp_path / "mcp_edge-0.1.0-cp311-cp311-linux_x86_64.whl")
    with pytest.raises(ConfigError, match="signing needs both --sign-key and --sign-cert"):
        build_bundle(BOARD, tmp_path, wheel=wheel, sign_key=tmp_path / "k.pem")
    with pytest.raises(ConfigError, match=r"no mcp_edge wheel for cp311 on .* \(make wheels builds them"):
        build_bundle(BOARD, tmp_path, wheel_dir=tmp_path)
    assert not list(tmp_path.glob("*.tar.gz"))


def test_launcher_through_a_symlink(unpacked: tuple[Path, Path], tmp_path: Path) -> None:
    """As /usr/bin/mcp-edge -> /opt/mcp-edge/bin/mcp-edge: the bundle is found from the link's target."""
    _, root = unpacked
    link = tmp_path / "bin" / "mcp-edge"
    link.parent.mkdir()
    link.symlink_to(root / "opt/mcp-edge/bin/mcp-edge")
    full = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_EDGE_", "PYTHON"))}
    full.update({"MCP_EDGE_PYTHON": str(BASE_PYTHON), "MCP_EDGE_BOARD_FILE": str(root / "etc/mcp-edge/board.toml")})
    out = subprocess.run([str(link), "doctor", "--json"], capture_output=True, text=True, env=full, timeout=120,
                         cwd="/")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["board"]["id"] == BOARD


# --- WASM plugins: bundled on a board whose profile sets [firmware] wasm ------------------------------------------


@pytest.fixture(scope="module")
def wasm_unpacked(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    boards = tmp_path_factory.mktemp("boards")
    (boards / "wasm-box.toml").write_text(f'extends = "{BOARD}"\n[identity]\nid = "wasm-box"\nname = "WASM box"\n'
                                          '[firmware]\nwasm = true\n')
    patch = pytest.MonkeyPatch()
    patch.setenv("MCP_EDGE_BOARDS_DIR", str(boards))
    try:
        result = build_bundle("wasm-box", tmp_path_factory.mktemp("wasm-bundle"), wheel=wheel)
    finally:
        patch.undo()
    root = tmp_path_factory.mktemp("wasm-root")
    with tarfile.open(result.tarball) as tar:
        tar.extractall(root, filter="tar")
    return root


def test_wasm_plugins_stay_out_unless_the_profile_asks(unpacked: tuple[Path, Path]) -> None:
    _, root = unpacked
    manifest = json.loads((root / "opt/mcp-edge/manifest.json").read_text())
    assert "wasm_hello" not in manifest["plugins"] and "wasmtime" not in manifest["packages"]
    assert not (root / "opt/mcp-edge/plugins/wasm_hello").exists()
    # a WASM plugin's C source is not a native plugin's: nothing compiled from it for the host either
    assert not [f for f in manifest["files"] if "wasm_hello" in f]


def test_python_plugins_come_with_their_own_modules(unpacked: tuple[Path, Path]) -> None:
    _, root = unpacked
    for module in (ROOT / "plugins").glob("*/*.py"):
        if (module.parent / "plugin.toml").is_file():
            bundled = root / "opt/mcp-edge/plugins" / module.parent.name / module.name
            assert bundled.read_bytes() == module.read_bytes(), module  # containers' shapes.py, say


def test_a_wasm_board_carries_the_module_and_wasmtime_and_runs_it(wasm_unpacked: Path, tmp_path: Path) -> None:
    root = wasm_unpacked
    manifest = json.loads((root / "opt/mcp-edge/manifest.json").read_text())
    assert "wasm_hello" in manifest["plugins"] and manifest["packages"]["wasmtime"].startswith("50.")
    bundled = root / "opt/mcp-edge/plugins/wasm_hello"
    assert sorted(p.name for p in bundled.iterdir()) == ["plugin.toml", "wasm_hello.wasm"]
    assert (bundled / "wasm_hello.wasm").read_bytes() == (ROOT / "plugins/wasm_hello/wasm_hello.wasm").read_bytes()
    assert (root / f"opt/mcp-edge/lib/python3.11/site-packages/wasmtime/linux-{ARCH}/_libwasmtime.so").is_file()
    # The bundle's own wasmtime compiles and starts the module: the plugin's state and tools, from the launcher
    # (the profile's plugin folder is /opt/mcp-edge/plugins, which this test's unpacked root is not).
    out = launcher(root, "plugins", "list", "--json", "--plugin-dir", str(root / "opt/mcp-edge/plugins"),
                   MCP_EDGE_DATA_DIR=str(tmp_path), MCP_EDGE_ENABLED_PLUGINS="wasm_hello")
    assert out.returncode == 0, out.stderr
    (plugin,) = [p for p in json.loads(out.stdout) if p["id"] == "wasm_hello"]
    assert (plugin["kind"], plugin["state"]) == ("wasm", "active"), plugin


def _wasm_source(tmp_path: Path) -> Path:
    """A plugins folder with wasm_hello's manifest and C source but no module (a fresh checkout)."""
    source = tmp_path / "plugins"
    (source / "wasm_hello").mkdir(parents=True)
    for name in ("plugin.toml", "wasm_hello.c"):
        (source / "wasm_hello" / name).write_bytes((ROOT / "plugins/wasm_hello" / name).read_bytes())
    (source / "include").mkdir()
    (source / "include/mcp_edge_wasm.h").write_bytes((ROOT / "plugins/include/mcp_edge_wasm.h").read_bytes())
    return source


def test_a_missing_module_is_built_with_clang_or_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import msgspec

    from mcp_edge.board.profiles import resolve
    from mcp_edge.bundle.build import _plugins

    board = resolve(BOARD)
    board = dataclasses.replace(board, firmware=msgspec.structs.replace(board.firmware, wasm=True))
    source = _wasm_source(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-compilers"))  # a build host without clang
    with pytest.raises(ConfigError, match=r"wasm_hello is WASM: building wasm_hello.wasm needs clang for "
                                          r"wasm32-wasi \(Debian: clang lld wasi-libc libclang-rt-dev-wasm32\)"):
        _plugins(tmp_path / "out1", board, source)
    assert not (source / "wasm_hello/wasm_hello.wasm").exists()
    monkeypatch.undo()
    if shutil.which("clang") is None:
        require_or_skip("clang", "building a WASM module needs clang (apt-get install clang lld wasi-libc "
                                 "libclang-rt-dev-wasm32)")
    assert _plugins(tmp_path / "out2", board, source) == ["wasm_hello"]
    module = (tmp_path / "out2/wasm_hello/wasm_hello.wasm").read_bytes()
    assert module[:4] == b"\0asm" and module == (source / "wasm_hello/wasm_hello.wasm").read_bytes()
