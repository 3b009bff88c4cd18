"""Worker confinement: the [sandbox] policy, its tightening by the board, and apply() in real child processes."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ci_honesty import require_or_skip

from mcp_edge.errors import ConfigError
from mcp_edge.native import _sys
from mcp_edge.system.confine import (
    SandboxPolicy,
    board_policies,
    landlock_status,
    policy_for,
    seccomp_status,
    tighten,
)

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("confine_child.py")


def _kernel_landlock() -> int:
    return landlock_status()[0]


def _run(tree: dict[str, Path], policy: dict[str, Any], probes: list[Any], **extra: Any) -> dict[str, Any]:
    spec = {"policy": policy, "plugin_dir": str(tree["plugin"]), "data_dir": str(tree["data"]), "probes": probes,
            **extra}
    out = subprocess.run([sys.executable, str(CHILD), json.dumps(spec)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    return result


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, Path]:
    """plugin/ (its code), data/ (its data), shared/ (a path it asks to read), outside/ (nothing to do with it)."""
    names = ("plugin", "data", "shared", "outside")
    dirs = {n: tmp_path / n for n in names}
    for n, d in dirs.items():
        d.mkdir()
        (d / "f").write_text(n)
    return dirs


@pytest.fixture
def tcp_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


# -- the policy ---------------------------------------------------------------------------------------------


def test_policy_from_a_sandbox_table() -> None:
    p = SandboxPolicy.from_mapping({"read": ["/etc/ssl/", "{plugin_dir}/assets"], "write": ["{data_dir}"],
                                    "deny_syscalls": ["socket", "mkdir", "socket"], "network": False})
    assert p.read == ("/etc/ssl", "{plugin_dir}/assets") and p.write == ("{data_dir}",)
    assert p.deny_syscalls == ("mkdir", "socket") and p.network is False
    assert SandboxPolicy.from_mapping({}) == SandboxPolicy()  # a plugin: nothing beyond the defaults
    board = SandboxPolicy.from_mapping({"deny_syscalls": ["ptrace"]}, missing_paths=None)
    assert board.read is None and board.write is None  # a board that does not narrow paths
    r = p.resolve("/opt/plug", "/var/lib/me/plugin-data/x")
    assert r.read == ("/etc/ssl", "/opt/plug/assets") and r.write == ("/var/lib/me/plugin-data/x",)


@pytest.mark.parametrize(("table", "needle"), [
    ({"reed": []}, "[sandbox]: unknown key 'reed' (known: read, write, deny_syscalls, network)"),
    ({"read": "/etc"}, "[sandbox] read must be a list of paths"),
    ({"write": ["data"]}, "[sandbox] write: 'data' must be an absolute path or start with {plugin_dir} or "
                          "{data_dir}"),
    ({"read": [""]}, "[sandbox] read: '' must be an absolute path"),
    ({"deny_syscalls": "mkdir"}, "[sandbox] deny_syscalls must be a list of syscall names"),
    ({"deny_syscalls": ["mkdir", "frobnicate"]}, "[sandbox] deny_syscalls: unknown syscall 'frobnicate'"),
    ({"network": "no"}, "[sandbox] network must be true or false, got 'no'"),
])
def test_policy_errors_name_the_key(table: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        SandboxPolicy.from_mapping(table)
    assert needle in str(info.value)


def test_policy_errors_name_where_it_came_from() -> None:
    with pytest.raises(ConfigError, match=r"plugins/fs/plugin.toml \[sandbox\] network"):
        SandboxPolicy.from_mapping({"network": 1}, where="plugins/fs/plugin.toml [sandbox]")
    with pytest.raises(ConfigError, match="must be a table"):
        SandboxPolicy.from_mapping(["read"], where="[sandbox]")  # type: ignore[arg-type]


def test_a_board_only_narrows() -> None:
    plugin = SandboxPolicy(read=["/etc", "/usr/share/zoneinfo", "/opt/models"], write=["/var/lib/me/x", "/srv/out"],
                           deny_syscalls=["mkdir"], network=True)
    board = SandboxPolicy(read=["/etc/ssl", "/usr/share", "/srv"], write=["/var/lib/me"],
                          deny_syscalls=["ptrace"], network=False)
    t = tighten(plugin, board)
    # /etc narrowed to /etc/ssl, /usr/share/zoneinfo kept, /opt/models dropped; /srv/out only readable.
    assert t.read == ("/etc/ssl", "/usr/share/zoneinfo", "/srv/out")
    assert t.write == ("/var/lib/me/x",)
    assert t.deny_syscalls == ("mkdir", "ptrace") and t.network is False
    # A board that narrows nothing leaves the plugin's policy as it is; narrowing twice changes nothing more.
    assert tighten(plugin, SandboxPolicy.unrestricted()) == plugin
    assert tighten(t, board) == t
    # An unlimited plugin gets the board's limits; a plugin never gains what it did not ask for.
    assert tighten(SandboxPolicy.unrestricted(), board).write == ("/var/lib/me",)
    assert tighten(SandboxPolicy(read=[], write=[]), board) == SandboxPolicy(read=[], write=[],
                                                                            deny_syscalls=["ptrace"],
                                                                            network=False)
    assert tighten(SandboxPolicy(network=False), SandboxPolicy.unrestricted()).network is False


def test_a_board_sandbox_table_has_a_common_part_and_one_per_plugin() -> None:
    common, per = board_policies({"deny_syscalls": ["ptrace"], "network": False,
                                  "logs": {"read": ["/var/log"], "write": []}})
    assert common == SandboxPolicy(read=None, write=None, deny_syscalls=["ptrace"], network=False)
    assert per == {"logs": SandboxPolicy(read=["/var/log"], write=[])}
    with pytest.raises(ConfigError, match=r"\[sandbox\]: unknown key 'raed'"):
        board_policies({"raed": 1})
    with pytest.raises(ConfigError, match=r"\[sandbox\]\.logs deny_syscalls: unknown syscall 'nope'"):
        board_policies({"logs": {"deny_syscalls": ["nope"]}})


def test_the_policy_a_worker_gets_from_its_manifest_and_its_board() -> None:
    # Neither asks: no sandbox at all (the worker still drops privileges and keeps its rlimits).
    assert policy_for("fs", None, {}, "/p", "/d") is None
    # Only the plugin asks: its own, placeholders filled.
    own = policy_for("fs", {"read": ["{plugin_dir}/models"], "deny_syscalls": ["mkdir"]}, {}, "/p", "/d")
    assert own == SandboxPolicy(read=["/p/models"], write=[], deny_syscalls=["mkdir"])
    # Only the board asks: its limits, for a plugin that declared none.
    board = {"write": ["{data_dir}"], "deny_syscalls": ["ptrace"], "fs": {"network": False}}
    only_board = policy_for("fs", None, board, "/p", "/d")
    assert only_board == SandboxPolicy(read=None, write=["/d"], deny_syscalls=["ptrace"], network=False)
    assert policy_for("logs", None, board, "/p", "/d") == SandboxPolicy(read=None, write=["/d"],
                                                                       deny_syscalls=["ptrace"])
    # Both: the plugin's narrowed by the board's common table and then by its own table.
    both = policy_for("fs", {"read": ["/etc"], "write": ["/d/out", "/srv"], "deny_syscalls": ["mkdir"]},
                      {"read": ["/etc/ssl"], "write": ["/d"], "fs": {"deny_syscalls": ["ptrace"]}}, "/p", "/d")
    assert both is not None
    assert both.write == ("/d/out",) and both.read == ("/etc/ssl",)
    assert both.deny_syscalls == ("mkdir", "ptrace")


# -- apply, in real child processes --------------------------------------------------------------------------


def test_apply_confines_the_filesystem_and_tcp(tree: dict[str, Path], tcp_port: int) -> None:
    probes = [["read", str(tree["plugin"] / "f")], ["read", str(tree["shared"] / "f")],
              ["read", str(tree["outside"] / "f")], ["listdir", str(tree["outside"])],
              ["write", str(tree["data"] / "f")], ["write", str(tree["plugin"] / "f")],
              ["mkdir", str(tree["data"] / "sub")], ["unix"], ["tcp", tcp_port], ["getpid"]]
    got = _run(tree, {"read": [str(tree["shared"])], "network": False}, probes)
    c = got["confinement"]
    assert c["no_new_privs"] is True
    abi, why = landlock_status()
    if not abi:
        assert (c["landlock"], c["landlock_abi"]) == (False, 0) and why in c["lacking"]
        assert got["probes"][2] == "ok"  # nothing pretended: the outside is still readable
        return
    assert (c["landlock"], c["landlock_abi"]) == (True, abi)
    assert str(tree["plugin"]) in c["read_paths"] and str(tree["shared"]) in c["read_paths"]
    assert c["write_paths"] == [str(tree["data"])]
    tcp = "EACCES" if abi >= 4 else "ok"
    assert got["probes"] == ["ok", "ok", "EACCES", "EACCES", "ok", "EACCES", "ok", "ok", tcp, "ok"]
    assert c["network_restricted"] is (abi >= 4)
    if abi < 4:
        assert any("TCP rules need Landlock ABI 4" in line for line in c["lacking"])
    else:
        assert c["lacking"] == []


def test_apply_with_network_allowed_keeps_tcp(tree: dict[str, Path], tcp_port: int) -> None:
    got = _run(tree, {}, [["tcp", tcp_port], ["read", str(tree["outside"] / "f")]])
    assert got["probes"] == ["ok", "EACCES" if _kernel_landlock() else "ok"]
    assert got["confinement"]["network_restricted"] is False


def test_apply_denies_syscalls_with_eperm(tree: dict[str, Path], tcp_port: int) -> None:
    names = ["mkdir", "mkdirat", "socket"]
    got = _run(tree, {"write": ["/"], "deny_syscalls": names},
               [["mkdir", str(tree["data"] / "d")], ["unix"], ["write", str(tree["outside"] / "f")],
                ["getpid"], ["tcp", tcp_port]])
    c = got["confinement"]
    why = seccomp_status()
    if why:
        assert c["seccomp"] is False and why in c["lacking"]
        return
    on_arch = [n for n in names if _sys.syscall_number(n) is not None]
    assert c["seccomp"] is True and c["denied_syscalls"] == on_arch
    if len(on_arch) < len(names):  # aarch64 has no mkdir: said so, not an error
        assert any("mkdir does not exist on aarch64" in n for n in c["notes"])
    # socketpair is a syscall of its own: only the named calls fail.
    assert got["probes"] == ["EPERM", "ok", "ok", "ok", "EPERM"]


def test_apply_says_what_the_kernel_lacks(tree: dict[str, Path]) -> None:
    """A kernel (or container runtime) without Landlock answers ENOSYS or EOPNOTSUPP; apply reports it and
    confines what it still can. Played here by a seccomp filter in front of the Landlock calls, which is how
    container runtimes hide it."""
    if seccomp_status():
        require_or_skip("seccomp", "no seccomp here to hide Landlock with (this kernel's own answer is tested "
                                   "above)")
    for err, words in (("ENOSYS", "landlock not available (ABI 0: ENOSYS)"),
                       ("EOPNOTSUPP", "landlock not available (ABI 0: EOPNOTSUPP): built in but not enabled")):
        got = _run(tree, {"network": False}, [["read", str(tree["outside"] / "f")]],
                   hide={"syscalls": ["landlock_create_ruleset"], "errno": err})
        c = got["confinement"]
        assert (c["landlock"], c["landlock_abi"], c["no_new_privs"]) == (False, 0, True)
        assert len(c["lacking"]) == 1 and c["lacking"][0].startswith(words)
        assert got["probes"] == ["ok"]  # unconfined, and said so
    got = _run(tree, {"deny_syscalls": ["mkdir", "mkdirat"]}, [["mkdir", str(tree["data"] / "d")]],
               hide={"syscalls": ["seccomp"], "errno": "ENOSYS"})
    c = got["confinement"]
    assert c["seccomp"] is False and c["denied_syscalls"] == []
    assert any(line.startswith("seccomp not available (ENOSYS)") for line in c["lacking"])
    assert got["probes"] == ["ok"]


def test_apply_notes_missing_paths_and_running_threads(tree: dict[str, Path]) -> None:
    if not _kernel_landlock():
        require_or_skip("landlock", "this kernel has no Landlock: the notes are about its rules")
    got = _run(tree, {"read": [str(tree["outside"] / "nope")]}, [], threads=2)
    notes = got["confinement"]["notes"]
    assert any(f"{tree['outside'] / 'nope'} does not exist" in n for n in notes)
    assert any("2 other thread(s)" in n for n in notes)


def test_apply_with_nothing_to_restrict(tree: dict[str, Path]) -> None:
    got = _run(tree, {"write": ["/"]}, [["write", str(tree["outside"] / "f")]])
    c = got["confinement"]
    assert got["probes"] == ["ok"] and c["no_new_privs"] is True and c["landlock"] is False
    assert c["notes"] == ["landlock: nothing to restrict (every path writable, network allowed)"]
    assert c["lacking"] == []
