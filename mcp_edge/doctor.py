"""``mcp-edge doctor``: what this box offers the runtime, and what the runtime picked.

Each probe returns plain data (for ``--json``) and never raises for a missing
capability: a fallback is reported, not hidden.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["collect", "probe_hugepages", "probe_io_uring", "probe_numa", "probe_odirect", "probe_slab", "render"]


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's marketing name, or the best the kernel tells (Arm kernels name no model: the part, the board)."""
    from mcp_edge.board.profiles import cpu_model as model_name

    name = model_name()
    if name:
        return name
    info = _read("/proc/cpuinfo") or ""
    for key in ("Model", "Hardware", "CPU part"):
        for line in info.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def probe_io_uring() -> dict[str, Any]:
    """Whether an io_uring ring can be set up here, and why not when it cannot."""
    from mcp_edge.io.engines import uring_unavailable_reason

    disabled = _read("/proc/sys/kernel/io_uring_disabled")
    try:
        from mcp_edge.native._uring import Ring

        Ring(4).close()
    except (OSError, ImportError) as exc:
        return {"available": False, "reason": uring_unavailable_reason(exc), "io_uring_disabled": disabled}
    return {"available": True, "reason": "io_uring_setup works", "io_uring_disabled": disabled}


def probe_odirect(data_dir: Path) -> dict[str, Any]:
    """Whether O_DIRECT works on the data dir's filesystem (probed on its nearest existing folder)."""
    probe_dir = data_dir
    while not probe_dir.is_dir() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    from mcp_edge.io.alignment import mount_of

    fs = mount_of(os.stat(probe_dir).st_dev)[1]
    result: dict[str, Any] = {"data_dir": str(data_dir), "probed": str(probe_dir), "fs": fs}
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_DIRECT", 0)
    try:
        fd_tmp, name = tempfile.mkstemp(prefix=".mcp-edge-odirect-", dir=probe_dir)
    except OSError as exc:
        result.update(supported=False, reason=f"cannot create a file there: {exc.strerror}")
        return result
    os.close(fd_tmp)
    os.unlink(name)
    buf = mmap.mmap(-1, 4096)  # page-aligned
    try:
        fd = os.open(name, flags, 0o600)
    except OSError as exc:
        result.update(supported=False, reason=f"open(O_DIRECT) refused: {exc.strerror}")
        return result
    try:
        os.write(fd, buf)
        result.update(supported=True, reason="aligned 4 KiB O_DIRECT write works")
    except OSError as exc:
        result.update(supported=False, reason=f"O_DIRECT write refused: {exc.strerror}")
    finally:
        os.close(fd)
        os.unlink(name)
        buf.close()
    return result


def probe_hugepages() -> dict[str, Any]:
    """Reserved hugepages and the transparent-hugepage mode."""
    meminfo: dict[str, str] = {}
    for line in (_read("/proc/meminfo") or "").splitlines():
        key, _, value = line.partition(":")
        meminfo[key] = value.strip()
    thp = _read("/sys/kernel/mm/transparent_hugepage/enabled") or ""
    mode = thp[thp.find("[") + 1 : thp.find("]")] if "[" in thp else "unavailable"
    return {
        "total": int(meminfo.get("HugePages_Total", "0") or 0),
        "free": int(meminfo.get("HugePages_Free", "0") or 0),
        "size_kib": int((meminfo.get("Hugepagesize", "0 kB").split() or ["0"])[0]),
        "thp": mode,
    }


def probe_numa() -> dict[str, Any]:
    """NUMA nodes and their CPUs, from sysfs."""
    base = Path("/sys/devices/system/node")
    nodes = {}
    for node in sorted(base.glob("node[0-9]*"), key=lambda p: int(p.name[4:])):
        nodes[node.name] = _read(str(node / "cpulist")) or ""
    return {"nodes": len(nodes) or 1, "cpus": nodes}


def probe_slab(sizes: tuple[int, ...], counts: tuple[int, ...], numa: bool, topology: str | None = None
               ) -> dict[str, Any]:
    """What a slab pool made from these settings does here: arenas, NUMA binding, memory it pre-faults."""
    from mcp_edge.native import _slab

    per_arena = _slab.arena_bytes(sizes, counts)
    memory_nodes = [0]
    reason = "slab_numa off: one arena"
    if numa:
        try:
            topo = _slab.numa_topology(topology or _slab.NUMA_DIR)
        except FileNotFoundError:
            reason = "no NUMA topology in sysfs (a kernel without NUMA): one arena"
        except (OSError, ValueError) as exc:
            reason = f"the NUMA topology cannot be read ({exc}): a pool refuses to start until it can"
        else:
            memory_nodes = list(topo["memory"]) or [0]
            reason = (f"one arena per node with memory, bound with mbind (libnuma "
                      f"{'present' if _slab.numa_available() else 'MISSING: pools refuse to start'})"
                      if len(memory_nodes) > 1 else "one node: one arena, not bound")
    return {"arenas": len(memory_nodes), "nodes": memory_nodes, "bound": len(memory_nodes) > 1,
            "arena_bytes": per_arena, "total_bytes": per_arena * len(memory_nodes), "reason": reason}


def collect(data_dir: Path | None = None) -> dict[str, Any]:
    """Every probe, as one JSON-able dict."""
    from mcp_edge.board import Settings
    from mcp_edge.clock import clock_state
    from mcp_edge.io.engines import probe_storage
    from mcp_edge.native import cpu
    from mcp_edge.native._crc import kernel_description, kernel_level

    settings = Settings.load()
    board = settings.board
    data_dir = data_dir or settings.data_dir
    return {
        "arch": platform.machine(),
        "kernel": platform.release(),
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "board": {"id": board.id, "description": board.description, "profile": str(board.path),
                  "chain": list(board.chain), "picked": board.picked, "expected_level": board.cpu.expected_level},
        "isa": {
            "features": cpu.features(),
            "levels": cpu.levels(),
            "active": cpu.active(),
            "forced": cpu.forced(),
            "crc32c_kernel": kernel_level(),
            "crc32c_kernel_detail": kernel_description(),
        },
        "io_uring": probe_io_uring(),
        "odirect": probe_odirect(data_dir),
        "hugepages": probe_hugepages(),
        "numa": probe_numa(),
        "slab": probe_slab(settings.slab_sizes, settings.slab_counts, settings.slab_numa),
        "io": probe_storage(data_dir, settings.io_engine, settings.io_uring_entries),
        "clock": clock_state(),
        "settings": _settings_report(settings),
    }


def _settings_report(settings: Any) -> list[dict[str, Any]]:
    """Every setting with its value, default, section, environment variable and meaning."""
    from mcp_edge.board.settings import Settings

    defaults = {f.name: f.default_factory() if f.default is dataclasses.MISSING
                and f.default_factory is not dataclasses.MISSING else f.default for f in dataclasses.fields(Settings)}
    out = []
    for info, value in settings.limits():
        if info.name == "environ":
            continue
        default = defaults.get(info.name)
        if info.name in ("data_dir", "plugin_dirs"):
            default = None  # taken from the board profile
        out.append({"name": info.name, "section": info.section, "value": _shown(info.kind, value),
                    "default": None if default is dataclasses.MISSING else _shown(info.kind, default),
                    "env": info.env, "doc": info.doc})
    return out


def _shown(kind: str, value: Any) -> Any:
    """A setting's value as JSON: lists of integers keep their order, other collections are sorted strings."""
    if kind == "ints":
        return list(value)
    if kind == "idmap":
        return dict(sorted(value.items()))
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, frozenset, list)):
        return sorted(str(v) for v in value)
    return value


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _render_io(io: dict[str, Any]) -> list[str]:
    engine, align, pool = io["engine"], io["alignment"], io["pool"]
    if engine.get("name") is None:
        eng = f"none: {engine['error']}"
    elif engine["name"] == "uring":
        eng = (f"uring ({engine['reason']}): ring {engine['entries']} SQ / {engine['cq_entries']} CQ entries, "
               f"{' '.join(engine['setup_flags']) or 'no setup flags'}")
    else:
        eng = f"threads ({engine['reason']}): {engine['workers']} workers"
    if "error" in align:
        dio = f"unknown on {align['probed']}: {align['error']}"
    else:
        dio = (f"memory {align['mem']} B, offset {align['offset']} B ({align['source']}) on {align['probed']} "
               f"({align['fs']}), {'O_DIRECT' if align['direct'] else 'buffered: O_DIRECT refused'}")
    if "error" in pool:
        pages = f"unknown: {pool['error']}"
    else:
        pages = (f"{pool['pages']} pages for {pool['count']} x {pool['buffer_size'] // 1024} KiB "
                 f"(hugepage {pool['hugepage_kib']} KiB)")
    return [f"  io engine    {eng}", f"  dio align    {dio}", f"  buffer pool  {pages}"]


def render(report: dict[str, Any]) -> str:
    """The report as text for a person."""
    isa = report["isa"]
    feats = " ".join(f"{k}{'' if v else '(no)'}" for k, v in isa["features"].items()) or "none"
    uring, odirect, huge, numa = report["io_uring"], report["odirect"], report["hugepages"], report["numa"]
    lines = [
        "mcp-edge doctor",
        f"  board        {report['board']['id']} ({report['board']['profile']}; "
        f"{report['board']['picked'] or 'named'}; expects {report['board']['expected_level']})",
        f"  arch         {report['arch']}, kernel {report['kernel']}, {report['cores']} cores",
        f"  cpu          {report['cpu']}",
        f"  isa features {feats}",
        f"  isa levels   {', '.join(isa['levels'])}",
        f"  isa active   {isa['active']}{' (forced by MCP_EDGE_ISA)' if isa['forced'] else ''}; "
        f"crc32c kernel {isa['crc32c_kernel_detail']}",
        f"  io_uring     {_yes(uring['available'])}: {uring['reason']}",
        f"  O_DIRECT     {_yes(odirect['supported'])} on {odirect['probed']} ({odirect['fs']}): {odirect['reason']}",
        f"  hugepages    {huge['total']} x {huge['size_kib']} KiB reserved, {huge['free']} free; THP {huge['thp']}",
        f"  NUMA nodes   {numa['nodes']}",
    ]
    if "clock" in report:
        clock = report["clock"]
        lines.append(f"  clock        {_yes(bool(clock['set']))}: {clock['reason']}")
    if "slab" in report:
        slab = report["slab"]
        lines.append(f"  slab pools   {slab['arenas']} x {slab['arena_bytes'] / 2**20:.1f} MiB pre-faulted "
                     f"(nodes {', '.join(map(str, slab['nodes']))}): {slab['reason']}")
    if "io" in report:
        lines += _render_io(report["io"])
    if "settings" in report:
        lines.append("  settings     (by section: the board profile's [runtime], [transport] and [limits], then "
                     "MCP_EDGE_<NAME>, then serve --set NAME=VALUE)")
        section = None
        order = [row["section"] for row in report["settings"]]
        for row in sorted(report["settings"], key=lambda r: order.index(r["section"])):
            if row["section"] != section:
                section = row["section"]
                lines.append(f"    {section}:")
            mark = "" if row["default"] is None or row["value"] == row["default"] else "  (changed)"
            lines.append(f"      {row['name']:<20} {row['value']!s:<24}{mark}")
    return "\n".join(lines)
