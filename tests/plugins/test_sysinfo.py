"""The sysinfo plugin against the live /proc and /sys of this machine."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest
from plugin_host import FakePluginContext, Host, run

from mcp_edge.native import cpu
from mcp_edge.plugin.types import TextContent, TextResourceContents

TOOLS = {"sysinfo_summary": "Summary", "sysinfo_thermal": "Thermal", "sysinfo_disks": "Disks",
         "sysinfo_network": "Network"}
RESOURCES = {"sysinfo://summary": "Summary", "sysinfo://thermal": "Thermal", "sysinfo://disks": "Disks",
             "sysinfo://network": "Network"}


@pytest.fixture
def engine() -> None:
    """sysinfo does no file I/O through the engine: one run per test, not one per engine."""
    return None


def host(workdir: Path, engine: Any) -> Host:
    return Host("sysinfo", {}, FakePluginContext("sysinfo", workdir, engine))


async def structured(h: Host, name: str, args: dict[str, Any] | None = None) -> Any:
    """The tool's structuredContent, checked against its own Struct (what the outputSchema was made from)
    and against the JSON text beside it."""
    r = await h.call(name, args or {})
    assert not r.isError, r
    assert r.structuredContent is not None
    first = r.content[0]
    assert isinstance(first, TextContent) and msgspec.json.decode(first.text) == r.structuredContent
    return msgspec.convert(r.structuredContent, getattr(h.module, TOOLS[name]))


def meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        out[key] = int(rest.split()[0]) * 1024
    return out


def test_summary_matches_proc(workdir: Path, engine: Any) -> None:
    async def main() -> None:
        h = await host(workdir, engine).start()
        up_before = float(Path("/proc/uptime").read_text().split()[0])
        s = await structured(h, "sysinfo_summary")
        up_after = float(Path("/proc/uptime").read_text().split()[0])
        uname = os.uname()
        assert s.kernel.release == uname.release and s.kernel.sysname == "Linux"
        assert s.hostname == uname.nodename
        assert s.board.id == h.ctx.board.id
        assert s.cpu.arch == uname.machine
        assert s.cpu.isa_active == cpu.active() and s.cpu.isa_levels == cpu.levels()
        assert s.cpu.isa_active in s.cpu.isa_levels
        assert set(s.cpu.features) == {k for k, v in cpu.features().items() if v}
        assert s.cpu.logical_cpus == os.cpu_count() and 1 <= s.cpu.usable_cpus <= s.cpu.logical_cpus
        assert up_before <= s.uptime_s <= up_after
        mem = meminfo()
        assert s.memory.total == mem["MemTotal"] and s.memory.swap_total == mem["SwapTotal"]
        assert 0 < s.memory.available <= s.memory.total and s.memory.used == s.memory.total - s.memory.available
        assert min(s.load.avg1, s.load.avg5, s.load.avg15) >= 0 and 1 <= s.load.runnable <= s.load.threads
        if Path("/proc/cpuinfo").read_text().count("model name"):
            assert s.cpu.model
        await h.stop()

    run(main())


def test_thermal_matches_sys(workdir: Path, engine: Any) -> None:
    async def main() -> None:
        h = await host(workdir, engine).start()
        t = await structured(h, "sysinfo_thermal")
        zones = sorted(p.name for p in Path("/sys/class/thermal").glob("thermal_zone*"))
        assert sorted(z.zone for z in t.zones) == zones  # empty in most VMs, and that is not an error
        for z in t.zones:
            assert z.temp_c is None or -60 < z.temp_c < 200
        for sensor in t.sensors:
            assert sensor.chip and sensor.label and -60 < sensor.temp_c < 200
        await h.stop()

    run(main())


def test_missing_sys_gives_empty_lists(workdir: Path, engine: Any) -> None:
    """A machine without /sys/class/thermal, hwmon or net attributes (a container): empty lists, nulls."""
    empty = workdir / "empty-sys"
    empty.mkdir()

    async def main() -> None:
        h = await host(workdir, engine).start()
        mp = pytest.MonkeyPatch()
        mp.setattr(h.module, "SYS", empty)
        try:
            t = await structured(h, "sysinfo_thermal")
            assert t.zones == [] and t.sensors == []
            n = await structured(h, "sysinfo_network")
            assert n.interfaces and all(i.operstate is None and i.mtu is None and i.mac is None
                                        for i in n.interfaces)
            s = await structured(h, "sysinfo_summary")
            assert s.memory.total > 0
        finally:
            mp.undo()
        await h.stop()

    run(main())


def test_disks_match_statvfs(workdir: Path, engine: Any) -> None:
    async def main() -> None:
        h = await host(workdir, engine).start()
        d = await structured(h, "sysinfo_disks")
        mounts = {f.mount: f for f in d.filesystems}
        assert len(mounts) == len(d.filesystems)  # one row per mount point
        root_dev = os.stat("/").st_dev
        shown = [f for f in d.filesystems if f.total is not None and os.stat(f.mount).st_dev == root_dev]
        if shown:  # the root filesystem is real here (not overlay-on-nothing): its sizes agree with statvfs
            f = shown[0]
            st = os.statvfs(f.mount)
            assert f.total == st.f_blocks * st.f_frsize
            assert f.used is not None and f.available is not None and 0 <= f.used <= f.total
            assert f.used_pct is not None and 0 <= f.used_pct <= 100
        for f in d.filesystems:
            assert f.fstype not in ("proc", "sysfs", "cgroup", "cgroup2", "devpts", "tmpfs")
        every = await structured(h, "sysinfo_disks", {"include_all": True})
        assert {f.mount for f in d.filesystems} <= {f.mount for f in every.filesystems}
        assert any(f.fstype == "proc" for f in every.filesystems)
        stats = {line.split()[2]: line.split() for line in Path("/proc/diskstats").read_text().splitlines()}
        for dev in d.devices:
            raw = stats[dev.name]
            assert dev.reads <= int(raw[3]) and dev.read_bytes <= int(raw[5]) * 512  # counters only grow
            assert dev.reads + dev.writes > 0
        await h.stop()

    run(main())


def test_network_matches_proc(workdir: Path, engine: Any) -> None:
    async def main() -> None:
        h = await host(workdir, engine).start()
        before = {}
        for line in Path("/proc/net/dev").read_text().splitlines()[2:]:
            name, _, rest = line.partition(":")
            before[name.strip()] = [int(x) for x in rest.split()]
        n = await structured(h, "sysinfo_network")
        assert {i.name for i in n.interfaces} == set(before)
        for i in n.interfaces:
            assert i.rx_bytes >= before[i.name][0] and i.tx_packets >= before[i.name][9]
            if Path(f"/sys/class/net/{i.name}/mtu").exists():
                assert i.mtu == int(Path(f"/sys/class/net/{i.name}/mtu").read_text())
        if "lo" in before:
            lo = next(i for i in n.interfaces if i.name == "lo")
            assert lo.mac == "00:00:00:00:00:00"
        await h.stop()

    run(main())


def test_resources_and_schemas(workdir: Path, engine: Any) -> None:
    async def main() -> None:
        h = await host(workdir, engine).start()
        defs = h.tool_defs()
        assert set(defs) == set(TOOLS)
        for name, d in defs.items():
            assert d.outputSchema is not None and d.outputSchema["type"] == "object", name
            assert d.annotations is not None and d.annotations.readOnlyHint is True
            assert d.description
        assert "include_all" in defs["sysinfo_disks"].inputSchema["properties"]
        listed = {r.uri: r for r in h.registry.resources()}
        for uri, struct in RESOURCES.items():
            assert listed[uri].mimeType == "application/json"
            (c,) = await h.read(uri)
            assert isinstance(c, TextResourceContents) and c.mimeType == "application/json" and c.uri == uri
            msgspec.json.decode(c.text, type=getattr(h.module, struct))
        await h.stop()

    run(main())
