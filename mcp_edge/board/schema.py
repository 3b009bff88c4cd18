"""The typed tables of a board profile (``boards/*.toml``), decoded with msgspec; unknown keys are refused.

A profile, every table optional but ``[identity]``::

    extends = "generic-aarch64"      # inherit a base profile (tables merge key by key, arrays are replaced)

    [identity]    id, name, vendor, arch (x86_64 | aarch64), sources (where the facts come from)
    [match]       dt_model, dmi_product, cpu_model (substrings), cpu_features (all present), priority
    [cpu]         cores, isa_required, isa_optional, expected_level, l1d_kib, l2_kib, l3_kib, page_size
    [memory]      size_mib, hugepages (2 MiB pages to reserve), numa_nodes
    [storage]     data_dir, plugin_dirs, o_direct, filesystem, io_uring
    [firmware]    python (the image's interpreter, "3.11"), interpreter (its path)
    [runtime]     any runtime setting (``mcp-edge doctor`` lists them) not in the two tables below
    [transport]   the transport settings: transport_mode, unix_path, http_*, tls_*, max_frame...
    [limits]      resource limits: service_memory_max, worker_memory_max, worker_rlimit_as, worker_rlimit_nofile
    [plugins]     enabled, disabled, entry_points, isolation = {id = "process"}, [plugins.<id>] config
    [sandbox]     what process plugins' sandboxes are narrowed to (mcp_edge.system.confine)

The tables [runtime], [transport] and [limits] hold ``Settings`` fields by name; each field has one home
table (:func:`table_of`), so a key in the wrong table is refused with the right one named.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import msgspec

__all__ = ["ARCHES", "LIMIT_FIELDS", "SETTINGS_TABLES", "TABLES", "Cpu", "Firmware", "Identity", "Match",
           "Memory", "Storage", "table_of"]

ARCHES: Final = ("x86_64", "aarch64")
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class Identity(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """What the box is."""

    id: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9._-]*$")]
    name: str = ""
    vendor: str = ""
    arch: str = ""
    sources: tuple[str, ...] = ()  # where the profile's facts come from (datasheets, vendor pages)


class Match(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """How ``board detect`` recognises the box: every rule given must hold (any item of a list)."""

    dt_model: tuple[str, ...] = ()  # substrings of the device-tree model (/proc/device-tree/model)
    dmi_product: tuple[str, ...] = ()  # substrings of /sys/class/dmi/id/product_name
    cpu_model: tuple[str, ...] = ()  # substrings of the CPU model name (/proc/cpuinfo)
    cpu_features: tuple[str, ...] = ()  # features this CPU must have (names of mcp_edge.native.cpu)
    priority: int = 0  # among profiles that fit, the highest wins, then the one with more rules


class Cpu(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """The processor: the ISA floor the runtime needs, the features the fast paths use, the level they give."""

    cores: NonNegative = 0  # 0: not stated
    isa_required: tuple[str, ...] = ()
    isa_optional: tuple[str, ...] = ()
    expected_level: str = "scalar"  # what the dispatcher picks for isa_required + isa_optional (checked at load)
    l1d_kib: NonNegative = 0
    l2_kib: NonNegative = 0
    l3_kib: NonNegative = 0
    page_size: Annotated[int, msgspec.Meta(ge=4096)] = 4096


class Memory(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    size_mib: NonNegative = 0  # the smallest memory the board ships with; 0: not stated
    hugepages: NonNegative = 0  # 2 MiB huge pages the box should reserve for the slab arena
    numa_nodes: Annotated[int, msgspec.Meta(ge=1)] = 1


class Storage(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    data_dir: str = "/var/lib/mcp-edge"
    # Searched in order for plugin folders; {checkout}, {prefix} and {data_dir} are expanded. None: the default.
    plugin_dirs: tuple[str, ...] | None = None
    o_direct: bool = True  # O_DIRECT is expected to work on data_dir (not tmpfs, overlayfs...)
    filesystem: str = ""  # the data_dir's filesystem type ("" not stated)
    io_uring: bool = True  # the kernel is expected to run io_uring (false: the threads engine, and why)


class Firmware(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """What a firmware bundle (``mcp-edge bundle``) is built for: the image's own interpreter."""

    python: Annotated[str, msgspec.Meta(pattern=r"^3\.(1[1-9]|[2-9][0-9])$")] = "3.11"  # mcp_edge needs >= 3.11
    # "": /usr/bin/python<python>; an absolute path of plain characters (the launcher's shell text names it)
    interpreter: Annotated[str, msgspec.Meta(pattern=r"^(/[A-Za-z0-9._+-]+)*$")] = ""
    # The WASM plugins and wasmtime's wheel for the arch in the bundle (about 8 MiB more, 25 MiB unpacked): opt-in
    wasm: bool = False


# The tables, in the order ``board show`` prints them; the typed ones decode into these structs.
TABLES: Final[dict[str, type[msgspec.Struct] | None]] = {
    "identity": Identity, "match": Match, "cpu": Cpu, "memory": Memory, "storage": Storage,
    "firmware": Firmware, "runtime": None, "transport": None, "limits": None, "plugins": None, "sandbox": None,
}
# Tables of the old layout, and where their keys went.
RENAMED: Final = {"board": "[identity] (id, name)", "paths": "[storage] (data_dir, plugin_dirs)",
                  "settings": "[runtime], [transport] or [limits]"}
SETTINGS_TABLES: Final = ("runtime", "transport", "limits")
LIMIT_FIELDS: Final = frozenset({"service_memory_max", "worker_memory_max", "worker_rlimit_as",
                                 "worker_rlimit_nofile"})
_TRANSPORT_SECTIONS: Final = frozenset({"transport", "http", "tls"})
# Settings set by other tables of the profile, never by [runtime]/[transport]/[limits].
ELSEWHERE: Final = {"data_dir": "[storage]", "plugin_dirs": "[storage]", "plugin_config": "[plugins.<id>]",
                    "enabled_plugins": "[plugins] enabled", "disabled_plugins": "[plugins] disabled",
                    "entry_points": "[plugins] entry_points", "plugin_isolation": "[plugins] isolation",
                    "environ": "the environment", "board": "the profile itself"}


def table_of(name: str, section: str) -> str:
    """The profile table that holds setting ``name`` (of Settings section ``section``)."""
    if name in LIMIT_FIELDS:
        return "limits"
    if section in _TRANSPORT_SECTIONS:
        return "transport"
    return "runtime"


def decode(table: str, raw: Any) -> Any:
    """One typed table from its TOML value; msgspec.ValidationError on a bad one."""
    kind = TABLES[table]
    assert kind is not None
    return msgspec.convert(raw, kind)
