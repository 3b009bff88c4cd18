"""Per-worker resource limits: RLIMIT_AS and RLIMIT_NOFILE, and cgroup v2 ``memory.max`` where it can be written.

A worker applies its rlimits to itself (they are per process and inherited). ``memory.max`` needs a cgroup of its
own: ``<service cgroup>/mcp-edge-worker-<id>``, made beside the runtime's, under a cgroup v2 hierarchy the service
may write (systemd's ``Delegate=yes``). cgroup v2 lets a cgroup with processes in it hand controllers to its
children only after those processes move into a leaf, so the runtime's own processes move to
``<service cgroup>/mcp-edge-main`` first.

Nothing here raises for a limit the system cannot give: each limit comes back as a :class:`LimitOutcome` that
says it was applied, or why not (no cgroup v2 mounted, not writable, no memory controller, ...). Every path root
(``/proc/self/mountinfo``, ``/proc/self/cgroup``) is a parameter, so tests run it against a fixture cgroupfs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import resource
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings

__all__ = ["MAIN_LEAF", "WORKER_PREFIX", "CgroupUnavailable", "LimitOutcome", "apply_rlimits",
           "apply_worker_limits", "find_service_cgroup", "remove_worker_cgroup", "worker_cgroup_name",
           "worker_memory_max"]

MOUNTINFO: Final = Path("/proc/self/mountinfo")
PROC_CGROUP: Final = Path("/proc/self/cgroup")
WORKER_PREFIX: Final = "mcp-edge-worker-"
MAIN_LEAF: Final = "mcp-edge-main"
_WORKER_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class CgroupUnavailable(Exception):
    """No writable cgroup v2 place for workers; the message says why."""


class LimitOutcome:
    """One limit: applied (with its value) or not, and why not."""

    __slots__ = ("applied", "name", "reason", "value")

    def __init__(self, name: str, value: int, applied: bool, reason: str = "") -> None:
        self.name = name
        self.value = value
        self.applied = applied
        self.reason = reason

    def __repr__(self) -> str:
        state = "applied" if self.applied else f"not applied because {self.reason}"
        return f"<{self.name}={self.value} {state}>"

    def as_dict(self) -> dict[str, object]:
        """Plain data, for logs and the worker's report to the runtime."""
        return {"name": self.name, "value": self.value, "applied": self.applied, "reason": self.reason}


# ------------------------------------------------------------------------------------------------- rlimits


def _lower(name: str, which: int, value: int) -> LimitOutcome:
    """Set soft and hard limit ``which`` to ``value`` (never above the current hard limit)."""
    if value <= 0:
        return LimitOutcome(name, value, False, "not configured (0)")
    hard = resource.getrlimit(which)[1]
    target = value if hard == resource.RLIM_INFINITY else min(value, hard)
    try:
        resource.setrlimit(which, (target, target))
    except (OSError, ValueError) as exc:
        return LimitOutcome(name, value, False, f"setrlimit refused {target}: {exc}")
    if target < value:
        return LimitOutcome(name, target, True, f"capped at the inherited hard limit {hard} (asked {value})")
    return LimitOutcome(name, target, True)


def apply_rlimits(*, address_space: int, nofile: int) -> list[LimitOutcome]:
    """Limit this process: RLIMIT_AS to ``address_space`` bytes and RLIMIT_NOFILE to ``nofile`` (0: leave it).

    Soft and hard are both set, so the worker cannot raise them again."""
    return [_lower("RLIMIT_AS", resource.RLIMIT_AS, address_space),
            _lower("RLIMIT_NOFILE", resource.RLIMIT_NOFILE, nofile)]


# ------------------------------------------------------------------------------------------------- cgroup v2


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _cgroup2_mounts(mountinfo: Path) -> list[tuple[str, Path]]:
    """(root within the hierarchy, mount point) of every cgroup2 mount."""
    mounts = []
    for line in mountinfo.read_text().splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        if right.split()[:1] == ["cgroup2"] and len(fields) >= 5:
            mounts.append((_unescape(fields[3]), Path(_unescape(fields[4]))))
    return mounts


def find_service_cgroup(*, mountinfo: Path = MOUNTINFO, proc_cgroup: Path = PROC_CGROUP) -> Path:
    """The directory of this process's cgroup v2 (the service's; its parent when this process already sits in the
    MAIN_LEAF). CgroupUnavailable saying why when there is none."""
    try:
        lines = proc_cgroup.read_text().splitlines()
        mounts = _cgroup2_mounts(mountinfo)
    except OSError as exc:
        raise CgroupUnavailable(f"cannot read {exc.filename}: {exc.strerror}") from None
    own = next((line[3:] for line in lines if line.startswith("0::")), None)
    if own is None:
        raise CgroupUnavailable(f"no cgroup v2 entry (0::) in {proc_cgroup}: cgroup v1 only")
    if not mounts:
        raise CgroupUnavailable(f"no cgroup2 filesystem in {mountinfo} (this system mounts cgroup v1)")
    for root, point in mounts:
        rel = os.path.relpath(own, root)
        if rel == ".." or rel.startswith("../"):
            continue  # this mount shows another part of the hierarchy
        place = point if rel == "." else point / rel
        if place.name == MAIN_LEAF:
            place = place.parent
        if place.is_dir():
            return place
    raise CgroupUnavailable(f"this process's cgroup {own} is not visible under any cgroup2 mount "
                            f"({', '.join(str(p) for _, p in mounts)})")


def worker_cgroup_name(worker_id: str) -> str:
    """The cgroup folder name of worker ``worker_id`` (ValueError for an id that is not a plain name)."""
    if not _WORKER_ID.fullmatch(worker_id):
        raise ValueError(f"worker id {worker_id!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return WORKER_PREFIX + worker_id


def _write(path: Path, text: str) -> None:
    """One write() call: cgroupfs takes one value (one pid) per write."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC | (os.O_CREAT if not path.exists() else 0), 0o644)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except FileNotFoundError:
        return []


def _enable_memory(service: Path) -> None:
    """Make ``memory`` available to the service's child cgroups (moving its own processes to MAIN_LEAF first)."""
    if "memory" not in _words(service / "cgroup.controllers"):
        raise CgroupUnavailable(f"the memory controller is not available in {service} (cgroup.controllers: "
                                f"{' '.join(_words(service / 'cgroup.controllers')) or 'empty'})")
    if "memory" in _words(service / "cgroup.subtree_control"):
        return
    pids = _words(service / "cgroup.procs")
    if pids:  # cgroup v2: no controllers for children while processes sit in the parent itself
        leaf = service / MAIN_LEAF
        leaf.mkdir(exist_ok=True)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # it exited meanwhile
                _write(leaf / "cgroup.procs", pid)
    _write(service / "cgroup.subtree_control", "+memory")


def worker_memory_max(worker_id: str, memory_max: int, pid: int | None = None, *,
                      mountinfo: Path = MOUNTINFO, proc_cgroup: Path = PROC_CGROUP) -> LimitOutcome:
    """Put process ``pid`` (default: this one) in ``<service cgroup>/mcp-edge-worker-<id>`` with ``memory.max``
    = ``memory_max`` bytes (0: not configured)."""
    name = "memory.max"
    if memory_max <= 0:
        return LimitOutcome(name, memory_max, False, "not configured (0)")
    try:
        service = find_service_cgroup(mountinfo=mountinfo, proc_cgroup=proc_cgroup)
        _enable_memory(service)
        group = service / worker_cgroup_name(worker_id)
        group.mkdir(exist_ok=True)
        _write(group / "memory.max", str(memory_max))
        _write(group / "cgroup.procs", str(os.getpid() if pid is None else pid))
    except CgroupUnavailable as exc:
        return LimitOutcome(name, memory_max, False, str(exc))
    except OSError as exc:
        hint = " (the service needs Delegate=yes)" if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) else ""
        where = f" {exc.filename}" if exc.filename else ""
        return LimitOutcome(name, memory_max, False, f"the cgroup is not writable:{where} {exc.strerror}{hint}")
    return LimitOutcome(name, memory_max, True)


def remove_worker_cgroup(worker_id: str, *, mountinfo: Path = MOUNTINFO, proc_cgroup: Path = PROC_CGROUP) -> bool:
    """Remove a dead worker's cgroup (it must be empty); True when it is gone."""
    try:
        group = find_service_cgroup(mountinfo=mountinfo, proc_cgroup=proc_cgroup) / worker_cgroup_name(worker_id)
    except CgroupUnavailable:
        return True
    try:
        group.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def apply_worker_limits(settings: Settings, worker_id: str, *, mountinfo: Path = MOUNTINFO,
                        proc_cgroup: Path = PROC_CGROUP) -> list[LimitOutcome]:
    """In a worker, before it loads its plugin: every per-worker limit ``settings`` asks for, on this process."""
    outcomes = apply_rlimits(address_space=settings.worker_rlimit_as, nofile=settings.worker_rlimit_nofile)
    outcomes.append(worker_memory_max(worker_id, settings.worker_memory_max, mountinfo=mountinfo,
                                      proc_cgroup=proc_cgroup))
    return outcomes
