"""Per-worker limits: rlimits for real in child processes, cgroup v2 memory.max against a fixture cgroupfs (and the
honest "not applied because ..." on this machine's real hierarchy)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mcp_edge.board import Settings, load
from mcp_edge.system.limits import (
    MAIN_LEAF,
    CgroupUnavailable,
    find_service_cgroup,
    remove_worker_cgroup,
    worker_cgroup_name,
    worker_memory_max,
)

ROOT = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def _child(code: str) -> Any:
    """Run ``code`` in a fresh interpreter (limits cannot be undone) and decode the JSON it prints last."""
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_rlimits_bind_a_real_child() -> None:
    got = _child("""
        import errno, json, os, resource
        from mcp_edge.system.limits import apply_rlimits
        outcomes = apply_rlimits(address_space=1024 << 20, nofile=32)
        fds, err = [], None
        try:
            for _ in range(64):
                fds.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as e:
            err = errno.errorcode[e.errno]
        for fd in fds:
            os.close(fd)
        try:
            block = bytearray(2048 << 20)
            big = "allocated"
        except MemoryError:
            big = "MemoryError"
        print(json.dumps({"outcomes": [o.as_dict() for o in outcomes], "nofile": resource.getrlimit(
            resource.RLIMIT_NOFILE), "as": resource.getrlimit(resource.RLIMIT_AS), "open": err, "big": big}))
        """)
    assert got["outcomes"] == [
        {"name": "RLIMIT_AS", "value": 1024 * MiB, "applied": True, "reason": ""},
        {"name": "RLIMIT_NOFILE", "value": 32, "applied": True, "reason": ""},
    ]
    assert got["nofile"] == [32, 32] and got["as"] == [1024 * MiB, 1024 * MiB]
    assert got["open"] == "EMFILE" and got["big"] == "MemoryError"


def test_rlimits_zero_is_none_and_a_lower_inherited_hard_limit_wins() -> None:
    got = _child("""
        import json, resource
        from mcp_edge.system.limits import apply_rlimits
        before = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
        outcomes = apply_rlimits(address_space=0, nofile=4096)
        print(json.dumps({"outcomes": [o.as_dict() for o in outcomes], "as_same": resource.getrlimit(
            resource.RLIMIT_AS) == before, "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)}))
        """)
    assert got["outcomes"] == [
        {"name": "RLIMIT_AS", "value": 0, "applied": False, "reason": "not configured (0)"},
        {"name": "RLIMIT_NOFILE", "value": 40, "applied": True,
         "reason": "capped at the inherited hard limit 40 (asked 4096)"},
    ]
    assert got["as_same"] is True and got["nofile"] == [40, 40]


# -- cgroup v2, against a fixture -----------------------------------------------------------------------------


class Fixture:
    """A cgroup2 'mount' in tmp: mountinfo and /proc/self/cgroup files pointing at a folder tree."""

    def __init__(self, tmp: Path, own: str = "/system.slice/mcp-edge.service", root: str = "/",
                 mount_name: str = "cg", controllers: str = "cpu io memory pids", procs: str = "100\n") -> None:
        self.mount = tmp / mount_name
        rel = os.path.relpath(own.removesuffix("/" + MAIN_LEAF), root)
        self.service = self.mount / rel
        self.service.mkdir(parents=True)
        (self.service / "cgroup.controllers").write_text(controllers + "\n")
        (self.service / "cgroup.subtree_control").write_text("")
        (self.service / "cgroup.procs").write_text(procs)
        if own.endswith(MAIN_LEAF):
            (self.service / MAIN_LEAF).mkdir()
        point = str(self.mount).replace(" ", "\\040")
        self.mountinfo = tmp / "mountinfo"
        self.mountinfo.write_text(
            "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
            f"31 23 0:28 {root} {point} rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n")
        self.proc_cgroup = tmp / "cgroup"
        self.proc_cgroup.write_text(f"0::{own}\n")

    @property
    def paths(self) -> dict[str, Path]:
        return {"mountinfo": self.mountinfo, "proc_cgroup": self.proc_cgroup}


def test_memory_max_in_a_new_worker_cgroup(tmp_path: Path) -> None:
    fx = Fixture(tmp_path)
    assert find_service_cgroup(**fx.paths) == fx.service
    out = worker_memory_max("fs-1", 256 * MiB, 4242, **fx.paths)
    assert (out.applied, out.value, out.reason) == (True, 256 * MiB, "")
    # The service's own process moved to a leaf first, then the memory controller went to its children.
    assert (fx.service / MAIN_LEAF / "cgroup.procs").read_text() == "100"
    assert (fx.service / "cgroup.subtree_control").read_text() == "+memory"
    group = fx.service / "mcp-edge-worker-fs-1"
    assert (group / "memory.max").read_text() == str(256 * MiB)
    assert (group / "cgroup.procs").read_text() == "4242"


def test_runtime_already_in_its_leaf_and_controller_on(tmp_path: Path) -> None:
    fx = Fixture(tmp_path, own=f"/system.slice/mcp-edge.service/{MAIN_LEAF}", procs="")
    (fx.service / "cgroup.subtree_control").write_text("memory pids\n")
    assert find_service_cgroup(**fx.paths) == fx.service  # the leaf's parent: workers go beside the runtime
    out = worker_memory_max("w2", 64 * MiB, 77, **fx.paths)
    assert out.applied
    assert (fx.service / "cgroup.subtree_control").read_text() == "memory pids\n"  # left as it was
    assert (fx.service / "mcp-edge-worker-w2" / "cgroup.procs").read_text() == "77"
    assert remove_worker_cgroup("w2", **fx.paths) is False  # not empty (a real cgroup would be once it exits)
    (fx.service / "mcp-edge-worker-empty").mkdir()
    assert remove_worker_cgroup("empty", **fx.paths) is True
    assert not (fx.service / "mcp-edge-worker-empty").exists()
    assert remove_worker_cgroup("never-made", **fx.paths) is True


def test_mount_of_a_subtree_with_an_escaped_mount_point(tmp_path: Path) -> None:
    """A container's view: the mount shows the hierarchy from /system.slice, its mount point has a space."""
    fx = Fixture(tmp_path, own="/system.slice/box.service", root="/system.slice", mount_name="c g")
    assert find_service_cgroup(**fx.paths) == tmp_path / "c g" / "box.service"
    assert worker_memory_max("a", MiB, 5, **fx.paths).applied


def test_not_applied_reasons(tmp_path: Path) -> None:
    assert worker_memory_max("a", 0).reason == "not configured (0)"
    fx = Fixture(tmp_path / "nomem", controllers="cpu pids")
    out = worker_memory_max("a", MiB, 5, **fx.paths)
    assert not out.applied and "memory controller is not available" in out.reason
    v1 = tmp_path / "v1"
    v1.mkdir()
    (v1 / "mountinfo").write_text("32 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n")
    (v1 / "cgroup").write_text("4:memory:/x\n0::/\n")
    out = worker_memory_max("a", MiB, 5, mountinfo=v1 / "mountinfo", proc_cgroup=v1 / "cgroup")
    assert not out.applied and "no cgroup2 filesystem" in out.reason and "cgroup v1" in out.reason
    (v1 / "cgroup").write_text("4:memory:/x\n")
    with pytest.raises(CgroupUnavailable, match=r"no cgroup v2 entry \(0::\)"):
        find_service_cgroup(mountinfo=v1 / "mountinfo", proc_cgroup=v1 / "cgroup")
    out = worker_memory_max("a", MiB, 5, mountinfo=v1 / "absent", proc_cgroup=v1 / "cgroup")
    assert not out.applied and out.reason.startswith("cannot read") and "absent" in out.reason
    fx = Fixture(tmp_path / "elsewhere", own="/user.slice/other.scope", root="/system.slice")
    out = worker_memory_max("a", MiB, 5, **fx.paths)
    assert not out.applied and "not visible under any cgroup2 mount" in out.reason
    with pytest.raises(ValueError, match="worker id"):
        worker_cgroup_name("../escape")


def test_a_cgroup_the_worker_may_not_write_is_reported_not_raised() -> None:
    """Real permissions: the fixture belongs to root, the worker is nobody (as root) or the folder is read-only."""
    top = Path(tempfile.mkdtemp(prefix="me-cg-", dir="/tmp"))  # pytest's own tmp folders are 0700: nobody's way in
    fx = Fixture(top)
    try:
        (fx.service / "cgroup.subtree_control").write_text("memory\n")
        for d in (top, fx.mount, fx.service.parent, fx.service):
            d.chmod(0o755)
        for f in (fx.mountinfo, fx.proc_cgroup, *fx.service.iterdir()):
            f.chmod(0o644)  # readable by all, writable by root alone: a cgroup not delegated to the worker
        if os.geteuid() != 0:
            fx.service.chmod(0o555)
        got = _child(f"""
            import json, os
            from pathlib import Path
            from mcp_edge.system.limits import worker_memory_max
            if os.geteuid() == 0:
                os.setgroups([]); os.setgid(65534); os.setuid(65534)
            out = worker_memory_max("w", 1 << 20, 9, mountinfo=Path({str(fx.mountinfo)!r}),
                                    proc_cgroup=Path({str(fx.proc_cgroup)!r}))
            print(json.dumps(out.as_dict()))
            """)
        reason = str(got["reason"])
        assert got["applied"] is False
        assert reason.startswith("the cgroup is not writable:") and "Permission denied" in reason
        assert "mcp-edge-worker-w" in reason and "Delegate=yes" in reason
    finally:
        fx.service.chmod(0o755)
        shutil.rmtree(top)


def test_this_machine_says_why_or_applies(tmp_path: Path) -> None:
    """The real /proc: applied where a writable cgroup v2 exists, else a reason (cgroup v1 here), never a crash."""
    board = tmp_path / "b.toml"
    board.write_text(f'[identity]\nid = "b"\narch = "x86_64"\n[storage]\ndata_dir = "{tmp_path}"\n'
                     "[limits]\nworker_memory_max = 268435456\nworker_rlimit_nofile = 512\n")
    settings = Settings.load(load(board), environ={})
    got = _child(f"""
        import json
        from mcp_edge.board import Settings, load
        from mcp_edge.system.limits import apply_worker_limits, remove_worker_cgroup
        s = Settings.load(load(__import__("pathlib").Path({str(board)!r})), environ={{}})
        out = [o.as_dict() for o in apply_worker_limits(s, "probe")]
        print(json.dumps(out))
        """)
    assert settings.worker_memory_max == 256 * MiB
    outcomes = {o["name"]: o for o in got}
    assert outcomes["RLIMIT_NOFILE"]["applied"] is True
    memory = outcomes["memory.max"]
    has_v2 = any(" - cgroup2 " in line for line in Path("/proc/self/mountinfo").read_text().splitlines())
    if not has_v2:
        assert memory["applied"] is False and "no cgroup2 filesystem" in memory["reason"]
    elif memory["applied"]:
        remove_worker_cgroup("probe")
    else:
        assert memory["reason"]
