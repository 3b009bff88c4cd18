"""The containers plugin's result shapes and the pure conversions from the engine's JSON to them.

Nothing here does I/O: each function takes what the Engine API answered (Docker's or Podman's compatible API)
and gives the small structured result a tool returns, so each is tested on its own with both engines' shapes.
"""

import math
import re
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = [
    "Connected",
    "ContainerList",
    "ContainerSummary",
    "Created",
    "ExecResult",
    "ImageList",
    "ImageSummary",
    "LineSplitter",
    "LogsResult",
    "NetworkCreated",
    "NetworkList",
    "NetworkSummary",
    "Port",
    "PruneResult",
    "PullResult",
    "Removed",
    "StateResult",
    "Stats",
    "container_name",
    "container_summary",
    "container_uri",
    "image_summary",
    "list_filters",
    "mapping",
    "network_summary",
    "parse_port",
    "parse_since",
    "stats_of",
]


class Port(msgspec.Struct, kw_only=True, omit_defaults=True):
    container_port: int
    protocol: str = "tcp"
    host_ip: str | None = None
    host_port: int | None = None


class ContainerSummary(msgspec.Struct, kw_only=True):
    id: str
    name: str
    image: str
    state: str  # created, running, paused, exited, ...
    status: str  # the engine's words ("Up 2 seconds")
    created: str  # ISO 8601, UTC
    ports: list[Port]
    labels: dict[str, str]
    uri: str  # the container's resource (docker://containers/<name>)


class ContainerList(msgspec.Struct, kw_only=True):
    containers: list[ContainerSummary]
    total: int  # how many the engine listed (containers holds at most list_max of them)
    truncated: bool


class Created(msgspec.Struct, kw_only=True):
    id: str
    name: str
    started: bool
    warnings: list[str]
    uri: str


class StateResult(msgspec.Struct, kw_only=True):
    id: str
    name: str
    state: str
    running: bool
    exit_code: int | None = None
    note: str | None = None


class Removed(msgspec.Struct, kw_only=True):
    removed: str
    kind: str  # container, image, network
    deleted: list[str] = msgspec.field(default_factory=list)
    untagged: list[str] = msgspec.field(default_factory=list)


class LogsResult(msgspec.Struct, kw_only=True):
    container: str
    tty: bool  # with a TTY the engine sends one stream: every line is in stdout
    stdout: list[str]
    stderr: list[str]
    lines: int
    truncated: bool
    followed: bool = False
    ended: str | None = None  # why a follow ended: stopped, max_lines, timeout
    note: str | None = None


class ExecResult(msgspec.Struct, kw_only=True):
    container: str
    command: list[str]
    exit_code: int | None  # None when it did not end within exec_timeout_s
    stdout: str
    stderr: str
    truncated: bool
    timed_out: bool = False
    note: str | None = None


class Stats(msgspec.Struct, kw_only=True, omit_defaults=True):
    id: str
    name: str
    cpu_percent: float | None = None
    online_cpus: int | None = None
    memory_usage: int | None = None
    memory_limit: int | None = None
    memory_percent: float | None = None
    pids: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None
    blk_read_bytes: int | None = None
    blk_write_bytes: int | None = None
    missing: list[str] = msgspec.field(default_factory=list)  # the fields this engine did not give


class ImageSummary(msgspec.Struct, kw_only=True):
    id: str
    tags: list[str]
    size: int
    created: str
    containers: int | None
    labels: dict[str, str]


class ImageList(msgspec.Struct, kw_only=True):
    images: list[ImageSummary]
    total: int


class PullResult(msgspec.Struct, kw_only=True):
    image: str
    status: str  # the engine's last status line
    id: str | None = None
    progress_lines: int = 0


class PruneResult(msgspec.Struct, kw_only=True):
    deleted: list[str]
    space_reclaimed: int


class NetworkSummary(msgspec.Struct, kw_only=True):
    id: str
    name: str
    driver: str
    scope: str
    internal: bool
    created: str
    labels: dict[str, str]
    containers: list[str]  # names of the connected containers (where the engine lists them)


class NetworkList(msgspec.Struct, kw_only=True):
    networks: list[NetworkSummary]
    total: int


class NetworkCreated(msgspec.Struct, kw_only=True):
    id: str
    name: str
    warning: str | None = None


class Connected(msgspec.Struct, kw_only=True):
    network: str
    container: str
    connected: bool


def iso(value: Any) -> str:
    """The engine's ``Created`` (unix seconds, or RFC 3339 text) as ISO 8601 UTC; "" when absent."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, str):
        return value
    return ""


def _labels(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}  # Podman answers "Labels": null for an image without labels
    return {str(k): str(v) for k, v in value.items()}


def mapping(value: Any) -> Mapping[str, Any]:
    """``value`` when it is a JSON object, else an empty one (engines send null for an empty object)."""
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def container_uri(name_or_id: str) -> str:
    from urllib.parse import quote

    return f"docker://containers/{quote(name_or_id, safe='')}"


def container_name(raw: Mapping[str, Any]) -> str:
    """A container's name without Docker's leading ``/`` (``Names`` in a list, ``Name`` in an inspect)."""
    names = raw.get("Names")
    if isinstance(names, list) and names:
        return str(names[0]).lstrip("/")
    return str(raw.get("Name") or "").lstrip("/")


def _ports(value: Any) -> list[Port]:
    out: list[Port] = []
    if not isinstance(value, list):
        return out  # Podman 4.3 gives [] where Docker gives null
    for p in value:
        if not isinstance(p, Mapping) or _int(p.get("PrivatePort")) is None:
            continue
        out.append(Port(container_port=int(p["PrivatePort"]), protocol=str(p.get("Type") or "tcp"),
                        host_ip=str(p["IP"]) if p.get("IP") else None, host_port=_int(p.get("PublicPort"))))
    return out


def container_summary(raw: Mapping[str, Any]) -> ContainerSummary:
    """One entry of ``GET /containers/json``."""
    name = container_name(raw)
    ident = str(raw.get("Id") or raw.get("ID") or "")
    return ContainerSummary(
        id=ident, name=name, image=str(raw.get("Image") or ""), state=str(raw.get("State") or ""),
        status=str(raw.get("Status") or ""), created=iso(raw.get("Created")), ports=_ports(raw.get("Ports")),
        labels=_labels(raw.get("Labels")), uri=container_uri(name or ident))


def image_summary(raw: Mapping[str, Any]) -> ImageSummary:
    tags = raw.get("RepoTags")
    # Docker lists an untagged image with RepoTags ["<none>:<none>"] (old) or [] (new); Podman 4.3 with null
    shown = [str(t) for t in tags if t != "<none>:<none>"] if isinstance(tags, list) else []
    containers = _int(raw.get("Containers"))
    return ImageSummary(id=str(raw.get("Id") or ""), tags=shown, size=_int(raw.get("Size")) or 0,
                        created=iso(raw.get("Created")),
                        containers=containers if containers is not None and containers >= 0 else None,
                        labels=_labels(raw.get("Labels")))


def network_summary(raw: Mapping[str, Any]) -> NetworkSummary:
    members = raw.get("Containers")
    names = sorted(str(v.get("Name") or k) for k, v in members.items() if isinstance(v, Mapping)) \
        if isinstance(members, Mapping) else []
    return NetworkSummary(id=str(raw.get("Id") or raw.get("ID") or ""), name=str(raw.get("Name") or ""),
                          driver=str(raw.get("Driver") or ""), scope=str(raw.get("Scope") or ""),
                          internal=bool(raw.get("Internal")), created=iso(raw.get("Created")),
                          labels=_labels(raw.get("Labels")), containers=names)


_LABEL = re.compile(r"^[^=\s]+(=.*)?\Z", re.S)


def list_filters(status: Iterable[str] = (), label: Iterable[str] = (), name: str | None = None,
                 extra: Mapping[str, Iterable[str]] | None = None) -> dict[str, list[str]]:
    """The Engine API's ``filters`` (a JSON map of lists) from tool arguments; ValueError naming a bad one.

    ``status``: created, restarting, running, removing, paused, exited, dead; ``label``: ``key`` or
    ``key=value``; ``name``: a part of the name (the engine matches it as a regular expression)."""
    out: dict[str, list[str]] = {}
    states = {"created", "restarting", "running", "removing", "paused", "exited", "dead"}
    for s in status:
        if s not in states:
            raise ValueError(f"status {s!r} is not one of {', '.join(sorted(states))}")
        out.setdefault("status", []).append(s)
    for lab in label:
        if not _LABEL.match(lab):
            raise ValueError(f"label filter {lab!r} must be key or key=value")
        out.setdefault("label", []).append(lab)
    if name:
        out["name"] = [name]
    for key, values in (extra or {}).items():
        out[key] = list(values)
    return out


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$")


def parse_since(value: str, now: float | None = None) -> str:
    """``since`` for the logs endpoint (unix seconds as text) from unix seconds, RFC 3339 or a duration before
    now (``10m``, ``1h30m``, ``45s``); ValueError saying what is accepted."""
    text = value.strip()
    try:
        seconds = float(text)
        if math.isfinite(seconds) and seconds >= 0:
            return f"{seconds:.9f}".rstrip("0").rstrip(".")
    except ValueError:
        pass
    m = _DURATION.match(text)
    if text and m is not None and any(m.groups()):
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        at = (time.time() if now is None else now) - (h * 3600 + mi * 60 + s)
        return f"{max(at, 0.0):.3f}"
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"since {value!r}: give unix seconds (1700000000), an RFC 3339 time "
                         f"(2024-05-01T12:00:00Z) or a duration before now (10m, 1h30m, 45s)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return f"{dt.timestamp():.3f}"


_PORT = re.compile(r"^(?:(?:(?P<ip>[0-9.]+|\[[0-9a-fA-F:]+\]):)?(?P<host>\d{1,5})?:)?(?P<cport>\d{1,5})"
                   r"(?:/(?P<proto>tcp|udp|sctp))?$")


def parse_port(spec: str) -> tuple[str, dict[str, str] | None]:
    """``[ip:][host_port:]container_port[/proto]`` -> (``"80/tcp"``, a PortBindings entry or None);
    ValueError for anything else."""
    m = _PORT.match(spec.strip())
    if m is None:
        raise ValueError(f"port {spec!r}: use container_port[/tcp|udp], host_port:container_port or "
                         f"ip:host_port:container_port")
    cport = int(m["cport"])
    host = int(m["host"]) if m["host"] else None
    if not 0 < cport < 65536 or (host is not None and not 0 <= host < 65536):
        raise ValueError(f"port {spec!r}: port numbers go from 1 to 65535")
    key = f"{cport}/{m['proto'] or 'tcp'}"
    if host is None and not m["ip"]:
        return key, None
    binding = {"HostPort": str(host) if host is not None else ""}
    if m["ip"]:
        binding["HostIp"] = m["ip"].strip("[]")
    return key, binding


def _cpu_percent(cur: Mapping[str, Any], pre: Mapping[str, Any]) -> float | None:
    """Docker's formula: (container CPU delta / system CPU delta) x online CPUs x 100; None without both."""
    try:
        cpu_delta = cur["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        sys_delta = cur["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    if not isinstance(cpu_delta, int | float) or not isinstance(sys_delta, int | float) or sys_delta <= 0:
        return None
    cpus = cur.get("online_cpus") or len((cur.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    return round(max(cpu_delta, 0) / sys_delta * cpus * 100.0, 2)


def stats_of(raw: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> Stats:
    """A ``Stats`` from one ``GET /containers/{id}/stats?stream=false`` answer; ``previous``: an earlier sample
    to take the CPU delta from when the answer's ``precpu_stats`` is empty (Podman 4.3 sends it zeroed).
    Fields the engine leaves out are None and named in ``missing``."""
    missing: list[str] = []
    cpu = mapping(raw.get("cpu_stats"))
    pre = mapping(raw.get("precpu_stats"))
    pct = _cpu_percent(cpu, pre)
    if pct is None and previous is not None:
        pct = _cpu_percent(cpu, mapping(previous.get("cpu_stats")))
    if pct is None:
        missing.append("cpu_percent")
    mem = mapping(raw.get("memory_stats"))
    usage = _int(mem.get("usage"))
    detail = mapping(mem.get("stats"))
    # What `docker stats` shows: usage less the page cache (cgroup v2 inactive_file, v1 total_inactive_file)
    cache = _int(detail.get("inactive_file")) or _int(detail.get("total_inactive_file")) or 0
    if usage is not None and cache <= usage:
        usage -= cache
    limit = _int(mem.get("limit"))
    pids = _int(mapping(raw.get("pids_stats")).get("current"))
    rx = tx = None
    nets = raw.get("networks")
    if isinstance(nets, Mapping) and nets:
        rx = sum(_int(n.get("rx_bytes")) or 0 for n in nets.values() if isinstance(n, Mapping))
        tx = sum(_int(n.get("tx_bytes")) or 0 for n in nets.values() if isinstance(n, Mapping))
    rd = wr = None
    blk = raw.get("blkio_stats")
    entries = blk.get("io_service_bytes_recursive") if isinstance(blk, Mapping) else None
    if isinstance(entries, list) and entries:
        rd = sum(_int(e.get("value")) or 0 for e in entries
                 if isinstance(e, Mapping) and str(e.get("op", "")).lower() == "read")
        wr = sum(_int(e.get("value")) or 0 for e in entries
                 if isinstance(e, Mapping) and str(e.get("op", "")).lower() == "write")
    for key, value in (("memory_usage", usage), ("memory_limit", limit), ("pids", pids), ("net_rx_bytes", rx),
                       ("net_tx_bytes", tx), ("blk_read_bytes", rd), ("blk_write_bytes", wr)):
        if value is None:
            missing.append(key)
    mem_pct = round(usage / limit * 100.0, 2) if usage is not None and limit else None
    return Stats(id=str(raw.get("id") or raw.get("Id") or ""), name=str(raw.get("name") or "").lstrip("/"),
                 cpu_percent=pct, online_cpus=_int(cpu.get("online_cpus")), memory_usage=usage,
                 memory_limit=limit, memory_percent=mem_pct, pids=pids, net_rx_bytes=rx, net_tx_bytes=tx,
                 blk_read_bytes=rd, blk_write_bytes=wr, missing=missing)


class LineSplitter:
    """Bytes of one stream (stdout or stderr) into lines; an unfinished line waits for the next chunk (or
    ``flush``). Lines longer than ``max_line`` characters are cut, with a note."""

    def __init__(self, max_line: int = 16384) -> None:
        self._buf = bytearray()
        self.max_line = max_line

    def _text(self, raw: bytes) -> str:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if len(text) > self.max_line:
            return f"{text[:self.max_line]}… [{len(text) - self.max_line} more characters]"
        return text

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        out: list[str] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > 4 * self.max_line:  # a line with no end in sight: cut it now
                    out.append(self._text(bytes(self._buf)))
                    self._buf.clear()
                return out
            out.append(self._text(bytes(self._buf[:nl])))
            del self._buf[:nl + 1]

    def flush(self) -> list[str]:
        if not self._buf:
            return []
        line = self._text(bytes(self._buf))
        self._buf.clear()
        return [line]
