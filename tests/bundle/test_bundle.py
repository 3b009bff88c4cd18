"""``mcp-edge bundle``: the overlay's layout and manifest, the launcher's interpreter check, bad input.

The bundle is built for this machine's architecture from a wheel of the checkout (pip wheel), unpacked into a
folder, and its launcher run with this machine's Python 3.11, as an image would run it.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest

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
