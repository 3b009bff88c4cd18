"""sysinfo: the board, CPU and its active ISA level, load, memory, thermal zones, disks and network counters.

Everything is read from the live ``/proc`` and ``/sys`` at each call. What a
machine does not have (thermal zones in a VM, hwmon sensors, a device-tree
model, network attributes in a container) is an empty list or a null field,
never an error. Each tool returns structured content with an output schema;
the same data is offered as ``sysinfo://summary``, ``sysinfo://thermal``,
``sysinfo://disks`` and ``sysinfo://network`` (``application/json``).
"""

import asyncio
import os
import platform
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from mcp_edge.native import cpu
from mcp_edge.plugin import PluginBase, PluginContext, resource, tool
from mcp_edge.plugin.types import ToolAnnotations

__all__ = ["Sysinfo"]

PROC = Path("/proc")
SYS = Path("/sys")
_MODEL_FILES = (PROC / "device-tree/model", SYS / "firmware/devicetree/base/model", SYS / "class/dmi/id/product_name")
# Filesystems flagged "nodev" in /proc/filesystems that still hold real data.
_DATA_NODEV = {"overlay", "nfs", "nfs4", "cifs", "smb3", "9p", "virtiofs", "zfs", "ceph", "glusterfs"}
_READONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True, openWorldHint=False)


# -- results -------------------------------------------------------------------------------------------------

class BoardInfo(msgspec.Struct, kw_only=True):
    id: str | None  # the board profile in use
    description: str | None
    model: str | None  # device-tree model or DMI product name


class KernelInfo(msgspec.Struct, kw_only=True):
    sysname: str
    release: str
    version: str


class CpuInfo(msgspec.Struct, kw_only=True):
    model: str | None
    arch: str
    logical_cpus: int  # CPUs the kernel knows
    usable_cpus: int  # CPUs this process may run on
    features: list[str]  # the SIMD features mcp_edge detected (and the OS enabled)
    isa_levels: list[str]  # ISA levels this CPU can run, lowest first
    isa_active: str  # the level the native kernels run
    isa_forced: bool  # capped by MCP_EDGE_ISA


class LoadInfo(msgspec.Struct, kw_only=True):
    avg1: float
    avg5: float
    avg15: float
    runnable: int  # scheduling entities runnable now
    threads: int  # scheduling entities in all


class MemoryInfo(msgspec.Struct, kw_only=True):
    total: int  # bytes
    available: int
    free: int
    used: int  # total - available
    buffers: int
    cached: int
    swap_total: int
    swap_free: int


class Summary(msgspec.Struct, kw_only=True):
    board: BoardInfo
    hostname: str
    kernel: KernelInfo
    cpu: CpuInfo
    uptime_s: float
    boot_time: str  # ISO 8601, UTC
    load: LoadInfo
    memory: MemoryInfo


class ThermalZone(msgspec.Struct, kw_only=True):
    zone: str  # thermal_zoneN
    type: str | None
    temp_c: float | None  # None when the zone cannot be read now


class Sensor(msgspec.Struct, kw_only=True):
    chip: str  # hwmon name
    label: str
    temp_c: float


class Thermal(msgspec.Struct, kw_only=True):
    zones: list[ThermalZone]
    sensors: list[Sensor]  # hwmon temperature inputs


class Filesystem(msgspec.Struct, kw_only=True):
    mount: str
    source: str
    fstype: str
    read_only: bool
    total: int | None  # bytes; None when statvfs failed or timed out
    used: int | None
    available: int | None  # to unprivileged users
    used_pct: float | None
    error: str | None = None


class BlockDevice(msgspec.Struct, kw_only=True):
    name: str
    reads: int
    read_bytes: int
    writes: int
    written_bytes: int
    in_flight: int
    io_ms: int  # milliseconds spent doing I/O


class Disks(msgspec.Struct, kw_only=True):
    filesystems: list[Filesystem]
    devices: list[BlockDevice]  # /proc/diskstats, devices that did any I/O


class Interface(msgspec.Struct, kw_only=True):
    name: str
    rx_bytes: int
    rx_packets: int
    rx_errors: int
    rx_dropped: int
    tx_bytes: int
    tx_packets: int
    tx_errors: int
    tx_dropped: int
    operstate: str | None
    mtu: int | None
    mac: str | None


class Network(msgspec.Struct, kw_only=True):
    interfaces: list[Interface]


# -- readers -------------------------------------------------------------------------------------------------

def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _clean(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.strip("\x00\n ")
    return text or None


def _cpu_model() -> str | None:
    text = _read(PROC / "cpuinfo") or ""
    found: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            found.setdefault(key.strip(), value.strip())
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        if found.get(key):
            return found[key]
    return platform.processor() or None


def _meminfo() -> MemoryInfo:
    values: dict[str, int] = {}
    for line in (_read(PROC / "meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    total = values.get("MemTotal", 0)
    available = values.get("MemAvailable", values.get("MemFree", 0))
    return MemoryInfo(total=total, available=available, free=values.get("MemFree", 0), used=total - available,
                      buffers=values.get("Buffers", 0), cached=values.get("Cached", 0),
                      swap_total=values.get("SwapTotal", 0), swap_free=values.get("SwapFree", 0))


def _load() -> LoadInfo:
    parts = (_read(PROC / "loadavg") or "0 0 0 0/0 0").split()
    runnable, _, threads = parts[3].partition("/")
    return LoadInfo(avg1=float(parts[0]), avg5=float(parts[1]), avg15=float(parts[2]),
                    runnable=int(runnable or 0), threads=int(threads or 0))


def _uptime() -> float:
    text = _read(PROC / "uptime")
    return float(text.split()[0]) if text else time.monotonic()


def read_summary(board: Any) -> Summary:
    """The summary of this box; ``board`` is the runtime's Board profile (or None)."""
    uname = os.uname()
    up = _uptime()
    model = next((m for m in (_clean(_read(p)) for p in _MODEL_FILES) if m), None)
    feats = cpu.features()
    try:
        usable = len(os.sched_getaffinity(0))
    except OSError:
        usable = os.cpu_count() or 1
    return Summary(
        board=BoardInfo(id=getattr(board, "id", None), description=getattr(board, "description", None), model=model),
        hostname=socket.gethostname(),
        kernel=KernelInfo(sysname=uname.sysname, release=uname.release, version=uname.version),
        cpu=CpuInfo(model=_cpu_model(), arch=platform.machine(), logical_cpus=os.cpu_count() or 1, usable_cpus=usable,
                    features=sorted(k for k, on in feats.items() if on), isa_levels=cpu.levels(),
                    isa_active=cpu.active(), isa_forced=cpu.forced()),
        uptime_s=up,
        boot_time=datetime.fromtimestamp(time.time() - up, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        load=_load(),
        memory=_meminfo(),
    )


def _millidegrees(text: str | None) -> float | None:
    try:
        return int((text or "").strip()) / 1000.0
    except ValueError:
        return None


def _zone_number(p: Path) -> int:
    digits = "".join(c for c in p.name if c.isdigit())
    return int(digits) if digits else 0


def read_thermal() -> Thermal:
    zones = []
    for zone in sorted((SYS / "class/thermal").glob("thermal_zone*"), key=_zone_number):
        zones.append(ThermalZone(zone=zone.name, type=_clean(_read(zone / "type")),
                                 temp_c=_millidegrees(_read(zone / "temp"))))
    sensors = []
    for chip in sorted((SYS / "class/hwmon").glob("hwmon*"), key=_zone_number):
        name = _clean(_read(chip / "name")) or chip.name
        for inp in sorted(chip.glob("temp*_input"), key=lambda p: _zone_number(Path(p.name.split("_")[0]))):
            value = _millidegrees(_read(inp))
            if value is None:
                continue
            prefix = inp.name[: -len("_input")]
            label = _clean(_read(chip / f"{prefix}_label")) or prefix
            sensors.append(Sensor(chip=name, label=label, temp_c=value))
    return Thermal(zones=zones, sensors=sensors)


def _unescape(field: str) -> str:
    """A mountinfo field with its octal escapes (``\\040`` for a space) undone."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 4 <= len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _nodev() -> set[str]:
    out = set()
    for line in (_read(PROC / "filesystems") or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "nodev":
            out.add(parts[1])
    return out - _DATA_NODEV


def read_mounts(include_all: bool = False) -> list[tuple[str, str, str, bool]]:
    """(mount point, source, fs type, read-only) of the real filesystems (all with ``include_all``), one per
    device: the first mount of each (bind mounts and repeats left out)."""
    nodev = _nodev()
    seen: set[str] = set()
    out = []
    for line in (_read(PROC / "self/mountinfo") or "").splitlines():
        left, sep, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if not sep or len(fields) < 6 or len(rfields) < 2:
            continue
        fstype, source = rfields[0], _unescape(rfields[1])
        if not include_all and (fstype in nodev or (fstype.startswith("fuse.") and not source.startswith("/dev/"))):
            continue
        dev = fields[2]
        if dev in seen and not include_all:
            continue
        seen.add(dev)
        out.append((_unescape(fields[4]), source, fstype, "ro" in fields[5].split(",")))
    return out


def _statvfs(mount: str, source: str, fstype: str, ro: bool) -> Filesystem:
    try:
        st = os.statvfs(mount)
    except OSError as exc:
        return Filesystem(mount=mount, source=source, fstype=fstype, read_only=ro, total=None, used=None,
                          available=None, used_pct=None, error=exc.strerror)
    total = st.f_blocks * st.f_frsize
    free = st.f_bfree * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    used = total - free
    pct = round(100.0 * used / (used + avail), 1) if used + avail else None
    return Filesystem(mount=mount, source=source, fstype=fstype, read_only=ro, total=total, used=used,
                      available=avail, used_pct=pct)


def read_diskstats() -> list[BlockDevice]:
    out = []
    for line in (_read(PROC / "diskstats") or "").splitlines():
        f = line.split()
        if len(f) < 14:
            continue
        reads, writes = int(f[3]), int(f[7])
        if reads == 0 and writes == 0:
            continue
        out.append(BlockDevice(name=f[2], reads=reads, read_bytes=int(f[5]) * 512, writes=writes,
                               written_bytes=int(f[9]) * 512, in_flight=int(f[11]), io_ms=int(f[12])))
    return out


async def read_disks(timeout: float, include_all: bool = False) -> Disks:
    """Filesystems with their sizes (statvfs in threads, so a hung network mount costs ``timeout``, not the
    process) and block-device counters."""

    async def one(m: tuple[str, str, str, bool]) -> Filesystem:
        try:
            return await asyncio.wait_for(asyncio.to_thread(_statvfs, *m), timeout)
        except TimeoutError:
            return Filesystem(mount=m[0], source=m[1], fstype=m[2], read_only=m[3], total=None, used=None,
                              available=None, used_pct=None, error=f"statvfs did not answer within {timeout} s")

    filesystems = list(await asyncio.gather(*(one(m) for m in read_mounts(include_all))))
    return Disks(filesystems=filesystems, devices=read_diskstats())


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def read_network() -> Network:
    out = []
    for line in (_read(PROC / "net/dev") or "").splitlines()[2:]:
        name, sep, rest = line.partition(":")
        f = rest.split()
        if not sep or len(f) < 16:
            continue
        name = name.strip()
        n = [int(x) for x in f[:16]]
        base = SYS / "class/net" / name
        out.append(Interface(name=name, rx_bytes=n[0], rx_packets=n[1], rx_errors=n[2], rx_dropped=n[3],
                             tx_bytes=n[8], tx_packets=n[9], tx_errors=n[10], tx_dropped=n[11],
                             operstate=_clean(_read(base / "operstate")), mtu=_int(_read(base / "mtu")),
                             mac=_clean(_read(base / "address"))))
    return Network(interfaces=sorted(out, key=lambda i: i.name))


# -- the plugin ----------------------------------------------------------------------------------------------

class Sysinfo(PluginBase):
    """What the box is and how it is doing."""

    id = "sysinfo"
    capabilities = frozenset({"tools", "resources"})

    async def initialize(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        await super().initialize(config, ctx)
        self.statvfs_timeout = float(config.get("statvfs_timeout", 2.0))

    @tool(name="sysinfo_summary", title="System summary", annotations=_READONLY)
    async def summary(self) -> Summary:
        """The board profile and model, kernel, CPU model with its SIMD features and the ISA level mcp_edge's
        native kernels run, uptime, load averages and memory (bytes)."""
        return read_summary(self.ctx.board)

    @tool(name="sysinfo_thermal", title="Temperatures", annotations=_READONLY)
    async def thermal(self) -> Thermal:
        """Temperatures in degrees Celsius: the kernel's thermal zones and hwmon sensors (empty lists where the
        machine exposes none, as in most VMs)."""
        return read_thermal()

    @tool(name="sysinfo_disks", title="Disks and filesystems", annotations=_READONLY)
    async def disks(self, include_all: bool = False) -> Disks:
        """Mounted filesystems with size, used and available bytes, and per-device I/O counters.

        Args:
            include_all: also list pseudo filesystems (proc, sysfs, tmpfs...) and bind mounts.
        """
        return await read_disks(self.statvfs_timeout, include_all)

    @tool(name="sysinfo_network", title="Network counters", annotations=_READONLY)
    async def network(self) -> Network:
        """Per-interface byte, packet, error and drop counters since boot, with state, MTU and MAC address."""
        return read_network()

    @resource("sysinfo://summary", name="summary", title="System summary", mime_type="application/json",
              description="Board, kernel, CPU and ISA level, uptime, load and memory")
    async def summary_resource(self) -> Summary:
        return read_summary(self.ctx.board)

    @resource("sysinfo://thermal", name="thermal", title="Temperatures", mime_type="application/json",
              description="Thermal zones and hwmon temperatures (degrees Celsius)")
    async def thermal_resource(self) -> Thermal:
        return read_thermal()

    @resource("sysinfo://disks", name="disks", title="Disks and filesystems", mime_type="application/json",
              description="Mounted filesystems with sizes, block-device I/O counters")
    async def disks_resource(self) -> Disks:
        return await read_disks(self.statvfs_timeout)

    @resource("sysinfo://network", name="network", title="Network counters", mime_type="application/json",
              description="Per-interface counters, state, MTU and MAC address")
    async def network_resource(self) -> Network:
        return read_network()
