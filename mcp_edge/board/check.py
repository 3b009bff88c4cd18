"""``mcp-edge board check``: does this machine satisfy a board profile? One line per fact, pass, warn or fail.

A fail is something the runtime cannot do as the profile says (wrong architecture, an ISA floor the CPU lacks,
a level below the expected one, another page size, io_uring or O_DIRECT the profile counts on but cannot get);
a warn is something that works but differs (fewer cores or less memory than planned for, hugepages not
reserved, another NUMA layout, the level capped by MCP_EDGE_ISA, a data_dir not made yet).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcp_edge.board.profiles import Board

__all__ = ["Check", "Status", "check", "render"]

Status = Literal["pass", "warn", "fail"]
_LEVEL_ORDER = {"x86_64": ("scalar", "sse42", "avx2", "avx512"), "aarch64": ("scalar", "armv8crc", "neon")}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "detail": self.detail}


@dataclass(frozen=True)
class Machine:
    """What a check compares the profile with; ``here()`` reads this machine."""

    arch: str
    features: frozenset[str]
    best_level: str
    active_level: str
    capped_by: str  # "MCP_EDGE_ISA=..." when the active level was capped, else ""
    cores: int
    mem_mib: int
    page_size: int
    hugepages: int
    numa_nodes: int
    io_uring: tuple[bool, str]
    odirect: dict[str, Any]

    @classmethod
    def here(cls, data_dir: Path) -> Machine:
        from mcp_edge import doctor
        from mcp_edge.native import cpu

        levels = cpu.levels()
        active = cpu.active()
        mem_kib = 0
        for line in (Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else "").splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
        uring = doctor.probe_io_uring()
        return cls(
            arch=platform.machine(),
            features=frozenset(name for name, on in cpu.features().items() if on),
            best_level=levels[-1], active_level=active,
            capped_by=f"{cpu.ISA_ENV}={active}" if cpu.forced() else "",
            cores=len(os.sched_getaffinity(0)), mem_mib=mem_kib // 1024, page_size=os.sysconf("SC_PAGE_SIZE"),
            hugepages=doctor.probe_hugepages()["total"], numa_nodes=doctor.probe_numa()["nodes"],
            io_uring=(bool(uring["available"]), str(uring["reason"])), odirect=doctor.probe_odirect(data_dir),
        )


def check(board: Board, machine: Machine) -> list[Check]:
    """Every check of ``board`` against ``machine``, in a fixed order."""
    out: list[Check] = []
    add = out.append
    if machine.arch != board.arch:
        add(Check("arch", "fail", f"this machine is {machine.arch}; the profile is for {board.arch}"))
        return out  # nothing else can be compared across architectures
    add(Check("arch", "pass", machine.arch))
    cpu = board.cpu
    missing = [f for f in cpu.isa_required if f not in machine.features]
    if missing:
        add(Check("isa floor", "fail", f"the CPU lacks {', '.join(missing)}, which the profile requires"))
    else:
        add(Check("isa floor", "pass", ", ".join(cpu.isa_required) or "nothing required"))
    lacking = [f for f in cpu.isa_optional if f not in machine.features]
    if cpu.isa_optional:
        add(Check("isa optional", "warn" if lacking else "pass",
                  f"the CPU lacks {', '.join(lacking)}" if lacking else ", ".join(cpu.isa_optional)))
    add(_level(board, machine))
    if cpu.cores:
        status: Status = "pass" if machine.cores >= cpu.cores else "warn"
        add(Check("cores", status, f"{machine.cores} usable, the profile plans for {cpu.cores}"))
    if board.memory.size_mib:
        enough = machine.mem_mib >= board.memory.size_mib * 0.9  # the kernel and firmware keep a share
        add(Check("memory", "pass" if enough else "warn",
                  f"{machine.mem_mib} MiB, the profile plans for {board.memory.size_mib} MiB"))
    if machine.page_size == cpu.page_size:
        add(Check("page size", "pass", f"{machine.page_size} bytes"))
    else:
        add(Check("page size", "fail", f"the kernel's pages are {machine.page_size} bytes; the profile's are "
                                        f"{cpu.page_size} (buffers and the slab arena are aligned to it)"))
    want = board.memory.hugepages
    if want:
        got = machine.hugepages
        add(Check("hugepages", "pass" if got >= want else "warn",
                  f"{got} reserved, the profile asks for {want}"
                  + ("" if got >= want else f" (echo {want} > /proc/sys/vm/nr_hugepages)")))
    else:
        add(Check("hugepages", "pass", f"none asked for ({machine.hugepages} reserved)"))
    works, reason = machine.io_uring
    if board.storage.io_uring:
        add(Check("io_uring", "pass" if works else "fail",
                  reason if works else f"the profile counts on io_uring, but {reason}"))
    else:
        engine = board.settings.get("io_engine", "auto")
        add(Check("io_uring", "pass", f"not expected ({'works' if works else reason}); engine {engine}"))
    od = machine.odirect
    where = od["data_dir"] if od["probed"] == od["data_dir"] else f"{od['probed']} (for {od['data_dir']})"
    if not board.storage.o_direct:
        add(Check("o_direct", "pass", f"not expected on {where}"))
    else:
        add(Check("o_direct", "pass" if od.get("supported") else "fail",
                  f"{where} on {od.get('fs') or '?'}: {od.get('reason')}"))
    if od["probed"] != od["data_dir"]:
        add(Check("data dir", "warn", f"{od['data_dir']} does not exist yet (probed {od['probed']})"))
    fs = od.get("fs") or "unknown"
    if board.storage.filesystem and fs == "unknown":
        add(Check("filesystem", "warn", f"cannot tell the filesystem of {od['data_dir']} here (no mount of it in "
                                         f"/proc/self/mountinfo); the profile expects {board.storage.filesystem}"))
    elif board.storage.filesystem and fs != board.storage.filesystem:
        add(Check("filesystem", "warn", f"{od['data_dir']} is on {fs}, the profile expects "
                                         f"{board.storage.filesystem}"))
    numa = board.memory.numa_nodes
    add(Check("numa", "pass" if machine.numa_nodes == numa else "warn",
              f"{machine.numa_nodes} node(s), the profile plans for {numa}"))
    return out


def _level(board: Board, machine: Machine) -> Check:
    order = _LEVEL_ORDER[board.arch]
    expected = board.cpu.expected_level
    best, active = machine.best_level, machine.active_level
    if order.index(best) < order.index(expected):
        return Check("isa level", "fail", f"this CPU runs {best} at best; the profile expects {expected}")
    if order.index(active) < order.index(expected):
        return Check("isa level", "warn", f"{machine.capped_by} caps the kernels at {active}, below the "
                                          f"profile's {expected} (the CPU runs {best})")
    if active == expected:
        return Check("isa level", "pass", f"{active}" + (f" ({machine.capped_by})" if machine.capped_by else ""))
    return Check("isa level", "pass", f"{active}, above the profile's {expected}: the faster kernels run")


def render(board: Board, checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = [f"board {board.id} ({' -> '.join(board.chain)}) on this machine:"]
    lines += [f"  {c.status.upper():4}  {c.name:<{width}}  {c.detail}" for c in checks]
    fails = sum(c.status == "fail" for c in checks)
    warns = sum(c.status == "warn" for c in checks)
    lines.append(f"{'FAIL' if fails else 'PASS'}: {fails} failed, {warns} warned, "
                 f"{len(checks) - fails - warns} passed")
    return "\n".join(lines)
