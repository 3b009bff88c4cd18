"""Board profiles: loading (typed, with inheritance), finding by name, and matching this box.

A profile is a TOML file of typed tables (:mod:`mcp_edge.board.schema` lists them). ``extends = "<id>"``
names a base profile: the base's tables are merged under this one's key by key (arrays and values are
replaced, tables merged), and :attr:`Board.chain` shows the ids from the first base to this profile. The base
is looked for beside the extending file first, then in the boards folders. Each file is checked on its own,
so an error names the file, the table, the key and the problem.

Profiles are searched in ``$MCP_EDGE_BOARDS_DIR``, the checkout's ``boards/``,
``<prefix>/share/mcp-edge/boards`` and ``/etc/mcp-edge/boards``; a later file with the same id does not
replace an earlier one.

Which profile a process runs with: ``MCP_EDGE_BOARD=<id>`` (or ``serve --board``) if set, else the profile
file ``$MCP_EDGE_BOARD_FILE`` or ``/etc/mcp-edge/board.toml`` if present (a firmware bundle installs it), else
the best match for this box (:func:`detect`; ``mcp-edge board detect`` says why).
"""

from __future__ import annotations

import datetime
import json
import math
import platform
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgspec

from mcp_edge.board import schema
from mcp_edge.board.environ import process_environ
from mcp_edge.errors import ConfigError

__all__ = ["BOARD_ENV", "BOARD_FILE", "BOARD_FILE_ENV", "DEFAULT_PLUGIN_DIRS", "Board", "Facts", "Fit",
           "boards_dirs", "detect", "fits", "load", "load_all", "resolve"]

BOARD_ENV = "MCP_EDGE_BOARD"
BOARDS_DIR_ENV = "MCP_EDGE_BOARDS_DIR"
BOARD_FILE_ENV = "MCP_EDGE_BOARD_FILE"
BOARD_FILE = Path("/etc/mcp-edge/board.toml")
DEFAULT_PLUGIN_DIRS = (
    "{checkout}/plugins",
    "{prefix}/share/mcp-edge/plugins",
    "/etc/mcp-edge/plugins",
    "{data_dir}/plugins",
)
_CHECKOUT = Path(__file__).resolve().parents[2]
_MAX_CHAIN = 16


@dataclass(frozen=True)
class Board:
    """One resolved board profile (its bases merged in)."""

    id: str
    name: str = ""
    vendor: str = ""
    arch: str = ""
    path: Path = Path("/dev/null")  # the profile's own file
    data_dir: Path = Path("/var/lib/mcp-edge")
    plugin_dirs: tuple[Path, ...] = ()
    # [runtime], [transport] and [limits] together, by setting name (checked at load; Settings.load parses).
    settings: Mapping[str, Any] = field(default_factory=dict)
    plugins: Mapping[str, Any] = field(default_factory=dict)  # the [plugins] table
    # The [sandbox] table: what every process plugin's sandbox is narrowed to (read, write, deny_syscalls,
    # network), and [sandbox.<plugin id>] sub-tables narrowing one plugin further (mcp_edge.system.confine).
    sandbox: Mapping[str, Any] = field(default_factory=dict)
    match: schema.Match = field(default_factory=schema.Match)
    cpu: schema.Cpu = field(default_factory=schema.Cpu)
    memory: schema.Memory = field(default_factory=schema.Memory)
    storage: schema.Storage = field(default_factory=schema.Storage)
    firmware: schema.Firmware = field(default_factory=schema.Firmware)
    sources: tuple[str, ...] = ()
    chain: tuple[str, ...] = ()  # ids from the first base to this profile
    files: tuple[Path, ...] = ()  # their files, in the same order
    tables: Mapping[str, Any] = field(default_factory=dict)  # the merged TOML tables (to_toml)
    picked: str = ""  # why this profile was chosen (detect), "" when it was named

    @property
    def description(self) -> str:
        return self.name or self.id

    @property
    def interpreter(self) -> str:
        """The image's Python a bundle for this board runs on (``firmware.interpreter``, filled in at load)."""
        return self.firmware.interpreter or f"/usr/bin/python{self.firmware.python}"

    def to_toml(self) -> str:
        """The resolved profile as TOML, with no ``extends``: what a bundle installs as /etc/mcp-edge/board.toml."""
        head = [f"# Board profile {self.id}, resolved from {' -> '.join(self.chain or (self.id,))} "
                "by mcp-edge; edit the source profiles, not this file."]
        return "\n".join(head) + "\n" + dump_toml({k: self.tables[k] for k in schema.TABLES if k in self.tables})


def boards_dirs(environ: Mapping[str, str] | None = None) -> list[Path]:
    """The folders searched for profiles, in order, those that exist (``$MCP_EDGE_BOARDS_DIR`` first)."""
    candidates: list[Path] = []
    env = (process_environ() if environ is None else environ).get(BOARDS_DIR_ENV)
    if env:
        candidates.append(Path(env))
    candidates.append(_CHECKOUT / "boards")
    candidates.append(Path(sys.prefix) / "share" / "mcp-edge" / "boards")
    candidates.append(Path("/etc/mcp-edge/boards"))
    return [p for p in candidates if p.is_dir()]


# --------------------------------------------------------------------------- one file


_PARSED: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _parse(path: Path) -> dict[str, Any]:
    """A profile file's TOML, parsed once per process while the file is unchanged (detection reads every
    profile and each base once per profile that extends it); OSError, UnicodeDecodeError, TOMLDecodeError."""
    st = path.stat()
    stamp = (st.st_mtime_ns, st.st_size)
    hit = _PARSED.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    data = tomllib.loads(path.read_text())
    _PARSED[path] = (stamp, data)
    return data


def _read(path: Path, check: bool = True) -> dict[str, Any]:
    """One profile file's tables, each checked (unless ``check`` is false: detection looks at [identity] and
    [match] alone, and checks the profile it picks); ConfigError naming the file, table and key."""
    try:
        data = _parse(path)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read board profile: {exc}") from None
    for key, value in data.items() if check else ():
        if key == "extends":
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{path}: 'extends' must name a base profile (a string), got {value!r}")
            continue
        if key in schema.RENAMED:
            raise ConfigError(f"{path}: [{key}] is not a table of this profile format: its keys are now in "
                              f"{schema.RENAMED[key]} (see docs/boards.md)")
        if key not in schema.TABLES:
            raise ConfigError(f"{path}: unknown table [{key}] (known: extends, "
                              f"{', '.join(f'[{k}]' for k in schema.TABLES)})")
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: '{key}' must be a table ([{key}]), got {value!r}")
        _check_table(path, key, value)
    return data


def _check_table(path: Path, name: str, table: dict[str, Any]) -> None:
    kind = schema.TABLES[name]
    if kind is not None:
        known = kind.__struct_fields__
        for key in table:
            if key not in known:
                raise ConfigError(f"{path}: unknown key '{key}' in [{name}] (known: {', '.join(known)})")
        partial = dict(table)
        if name == "identity":
            partial.setdefault("id", "x")  # required, and checked by _read; here the others are
        try:
            schema.decode(name, partial)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"{path}: [{name}] {_validation_text(exc)}") from None
        if name in ("cpu", "match"):
            _check_features(path, name, table)
        return
    if name in schema.SETTINGS_TABLES:
        _check_settings(path, name, table)
    elif name == "plugins":
        from mcp_edge.board.settings import plugin_layer

        plugin_layer(table, f"{path}: [plugins]")
    elif name == "sandbox":
        from mcp_edge.system.confine import board_policies

        board_policies(table, where=f"{path}: [sandbox]")


def _validation_text(exc: msgspec.ValidationError) -> str:
    """msgspec's ``Expected `int`, got `str` - at `$.cores``` as ``cores: expected int, got str``."""
    text = str(exc)
    message, _, where = text.partition(" - at `$")
    key = where.rstrip("`").lstrip(".")
    message = message.replace("`", "")
    return f"{key}: {message[0].lower()}{message[1:]}" if key else message


def _check_features(path: Path, name: str, table: Mapping[str, Any]) -> None:
    """Feature and level names must be ones the level logic knows (the arch is checked once resolved)."""
    from mcp_edge.native import cpu

    known = set(cpu.feature_names("x86_64")) | set(cpu.feature_names("aarch64"))
    for key in ("isa_required", "isa_optional", "cpu_features"):
        for feature in table.get(key, ()):
            if feature not in known:
                raise ConfigError(f"{path}: [{name}] {key}: unknown CPU feature {feature!r} "
                                  f"(known: {', '.join(sorted(known))})")


def _check_settings(path: Path, name: str, table: Mapping[str, Any]) -> None:
    from mcp_edge.board.settings import FIELDS, parse_value

    by_name = {info.name: info for info in FIELDS}
    for key, raw in table.items():
        where = f"{path}: [{name}] {key}"
        if key in schema.ELSEWHERE:
            raise ConfigError(f"{where}: set this in {schema.ELSEWHERE[key]}, not in [{name}]")
        info = by_name.get(key)
        if info is None:
            import difflib

            near = difflib.get_close_matches(key, list(by_name), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else " (mcp-edge doctor lists every setting)"
            raise ConfigError(f"{where}: unknown setting{hint}")
        home = schema.table_of(key, info.section)
        if home != name:
            raise ConfigError(f"{where}: this setting belongs in [{home}], not in [{name}]")
        parse_value(key, raw, where)


# --------------------------------------------------------------------------- inheritance


def _merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``: tables merged key by key, everything else replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")


def _find_file(board_id: str, near: Path | None, environ: Mapping[str, str] | None) -> Path | None:
    if not _ID.fullmatch(board_id):  # never a path: "../x" or "a/b" name no profile
        return None
    folders = ([near] if near is not None else []) + boards_dirs(environ)
    for folder in folders:
        candidate = folder / f"{board_id}.toml"
        if candidate.is_file():
            try:
                if _parse(candidate).get("identity", {}).get("id") == board_id:
                    return candidate
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                pass
        for other in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
            try:
                if _parse(other).get("identity", {}).get("id") == board_id:
                    return other
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
    return None


def load(path: Path, environ: Mapping[str, str] | None = None) -> Board:
    """Parse one profile and the bases it extends; ConfigError naming the file, table, key and problem."""
    path = Path(path)
    merged, ids, files = _resolve(path, environ, check=True)
    return _board(path, merged, ids, files)


def _resolve(path: Path, environ: Mapping[str, str] | None, check: bool
             ) -> tuple[dict[str, Any], tuple[str, ...], tuple[Path, ...]]:
    """The merged tables of ``path`` and its bases, the chain's ids and files (base first)."""
    chain: list[tuple[str, Path, dict[str, Any]]] = []
    current: Path | None = path
    while current is not None:
        data = _read(current, check)
        identity = data.get("identity")
        board_id = identity.get("id") if isinstance(identity, dict) else None
        if not isinstance(board_id, str):
            raise ConfigError(f"{current}: [identity] id is missing: every profile names itself")
        if any(board_id == seen for seen, _, _ in chain):
            ids = " extends ".join([seen for seen, _, _ in chain] + [board_id])
            raise ConfigError(f"{path}: 'extends' goes round in a circle: {ids}")
        chain.append((board_id, current, data))
        if len(chain) > _MAX_CHAIN:
            raise ConfigError(f"{path}: more than {_MAX_CHAIN} profiles in the 'extends' chain")
        base = data.get("extends")
        if base is None:
            current = None
            continue
        found = _find_file(base, current.parent, environ)
        if found is None:
            where = ", ".join(str(d) for d in [current.parent, *boards_dirs(environ)])
            raise ConfigError(f"{current}: extends {base!r}, but no profile has that id (searched {where})")
        current = found
    chain.reverse()  # base first
    merged: dict[str, Any] = {}
    for _, _, data in chain:
        merged = _merge(merged, {k: v for k, v in data.items() if k != "extends"})
    merged["identity"] = {**merged.get("identity", {}), "id": chain[-1][0]}
    return merged, tuple(c[0] for c in chain), tuple(c[1] for c in chain)


def _sketches(environ: Mapping[str, str] | None) -> list[Board]:
    """Every profile found (first of each id) with its id, arch and [match] alone, unchecked: what detection
    ranks. One that cannot even be read that far is left out with a warning, not the start stopped."""
    seen: dict[str, Board] = {}
    for folder in boards_dirs(environ):
        for file in sorted(folder.glob("*.toml")):
            try:
                merged, ids, files = _resolve(file, environ, check=False)
                match = msgspec.convert(merged.get("match", {}), schema.Match)
                arch = merged["identity"].get("arch", "")
            except (ConfigError, msgspec.ValidationError) as exc:
                import logging

                logging.getLogger("mcp_edge.board").warning("board profile %s left out of detection: %s", file, exc)
                continue
            seen.setdefault(ids[-1], Board(id=ids[-1], arch=str(arch), path=file, match=match, chain=ids,
                                           files=files))
    return list(seen.values())


def _board(path: Path, merged: dict[str, Any], chain: tuple[str, ...], files: tuple[Path, ...]) -> Board:
    shown = " -> ".join(chain)
    typed = {name: schema.decode(name, merged.get(name, {}) if name != "identity" else merged["identity"])
             for name, kind in schema.TABLES.items() if kind is not None}
    identity: schema.Identity = typed["identity"]
    if identity.arch not in schema.ARCHES:
        raise ConfigError(f"{path}: [identity] arch must be one of {', '.join(schema.ARCHES)} "
                          f"(here or in a base: {shown}), got {identity.arch or 'nothing'!r}")
    cpu_table: schema.Cpu = typed["cpu"]
    _check_level(path, identity.arch, cpu_table, shown)
    storage: schema.Storage = typed["storage"]
    firmware: schema.Firmware = typed["firmware"]
    if not firmware.interpreter:
        firmware = msgspec.structs.replace(firmware, interpreter=f"/usr/bin/python{firmware.python}")
    data_dir = Path(storage.data_dir).expanduser()
    dirs = storage.plugin_dirs if storage.plugin_dirs is not None else DEFAULT_PLUGIN_DIRS
    settings: dict[str, Any] = {}
    for table in schema.SETTINGS_TABLES:
        settings.update(merged.get(table, {}))
    return Board(
        id=identity.id, name=identity.name, vendor=identity.vendor, arch=identity.arch, path=path,
        data_dir=data_dir, plugin_dirs=tuple(_expand_dir(d, data_dir, path) for d in dirs), settings=settings,
        plugins=merged.get("plugins", {}), sandbox=merged.get("sandbox", {}), match=typed["match"],
        cpu=cpu_table, memory=typed["memory"], storage=storage, firmware=firmware,
        sources=identity.sources, chain=chain, files=files, tables=merged,
    )


def _check_level(path: Path, arch: str, cpu_table: schema.Cpu, shown: str) -> None:
    """The profile's expected level must be the one the dispatcher picks for its features."""
    from mcp_edge.native import cpu

    known = cpu.feature_names(arch)
    for key in ("isa_required", "isa_optional"):
        foreign = [f for f in getattr(cpu_table, key) if f not in known]
        if foreign:
            raise ConfigError(f"{path}: [cpu] {key}: {', '.join(foreign)} is not a feature of {arch} "
                              f"(known: {', '.join(known)})")
    picked = cpu.best_level_for(arch, (*cpu_table.isa_required, *cpu_table.isa_optional))
    if picked != cpu_table.expected_level:
        raise ConfigError(f"{path}: [cpu] expected_level is {cpu_table.expected_level!r}, but the dispatcher "
                          f"picks {picked!r} on a {arch} CPU with {_features(cpu_table) or 'no features'} "
                          f"(resolved: {shown})")


def _features(cpu_table: schema.Cpu) -> str:
    return ", ".join((*cpu_table.isa_required, *cpu_table.isa_optional))


def _expand_dir(template: str, data_dir: Path, path: Path) -> Path:
    """One ``plugin_dirs`` entry with ``{checkout}``, ``{prefix}``, ``{data_dir}`` and ``~`` expanded."""
    try:
        text = template.format(checkout=_CHECKOUT, prefix=sys.prefix, data_dir=data_dir)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{path}: [storage] plugin_dirs entry {template!r}: unknown placeholder {exc} "
            "(known: {checkout}, {prefix}, {data_dir})"
        ) from None
    return Path(text).expanduser()


# --------------------------------------------------------------------------- finding


def load_all(environ: Mapping[str, str] | None = None) -> list[Board]:
    """Every profile found, first of each id, resolved."""
    seen: dict[str, Board] = {}
    for folder in boards_dirs(environ):
        for file in sorted(folder.glob("*.toml")):
            b = load(file, environ)
            seen.setdefault(b.id, b)
    return list(seen.values())


def resolve(name: str, environ: Mapping[str, str] | None = None) -> Board:
    """The profile whose id is ``name`` (or the profile file ``name`` when it is a path to one)."""
    if name.endswith(".toml") and Path(name).is_file():
        return load(Path(name), environ)
    found = _find_file(name, None, environ)
    if found is None:
        known = ", ".join(sorted(b.id for b in load_all(environ))) or "none"
        raise ConfigError(f"no board profile {name!r} (known: {known})")
    return load(found, environ)


@dataclass(frozen=True)
class Facts:
    """What detection looks at on a box."""

    arch: str
    dt_model: str = ""
    dmi_product: str = ""
    cpu_model: str = ""
    features: frozenset[str] = frozenset()

    @classmethod
    def here(cls) -> Facts:
        from mcp_edge.native import cpu

        return cls(arch=platform.machine(), dt_model=_first_line(("/proc/device-tree/model",
                                                                    "/sys/firmware/devicetree/base/model")),
                   dmi_product=_first_line(("/sys/class/dmi/id/product_name",)), cpu_model=cpu_model(),
                   features=frozenset(name for name, on in cpu.features().items() if on))


def _first_line(names: Iterable[str]) -> str:
    for name in names:
        try:
            return Path(name).read_text(errors="replace").strip("\x00\n ")
        except OSError:
            continue
    return ""


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where it has none, as on most Arm kernels)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("model name", "cpu model"):
            return value.strip()
    return ""


@dataclass(frozen=True)
class Fit:
    """How one profile fares against a box's facts."""

    board: Board
    fits: bool
    reasons: tuple[str, ...]  # why it fits, or why not

    @property
    def rank(self) -> tuple[int, int]:
        m = self.board.match
        return (m.priority, sum(1 for rule in (m.dt_model, m.dmi_product, m.cpu_model, m.cpu_features) if rule))


def _fit(board: Board, facts: Facts) -> Fit:
    m = board.match
    if board.arch != facts.arch:
        return Fit(board, False, (f"arch is {facts.arch}, the profile's is {board.arch}",))
    reasons = [f"arch {facts.arch}"]
    for label, rule, seen in (("device-tree model", m.dt_model, facts.dt_model),
                              ("DMI product", m.dmi_product, facts.dmi_product),
                              ("CPU model", m.cpu_model, facts.cpu_model)):
        if not rule:
            continue
        hit = next((s for s in rule if s in seen), None)
        if hit is None:
            return Fit(board, False, (f"{label} {seen or '(none)'!r} contains none of {', '.join(map(repr, rule))}",))
        reasons.append(f"{label} {seen!r} contains {hit!r}")
    if m.cpu_features:
        missing = [f for f in m.cpu_features if f not in facts.features]
        if missing:
            return Fit(board, False, (f"the CPU lacks {', '.join(missing)}",))
        reasons.append(f"the CPU has {', '.join(m.cpu_features)}")
    if len(reasons) == 1:
        reasons.append(f"no other rule: the fallback for {facts.arch} boxes")
    return Fit(board, True, tuple(reasons))


def fits(facts: Facts, boards: Iterable[Board]) -> list[Fit]:
    """Every profile against ``facts``, the chosen one first, then the other fits, then the rest."""
    rated = [_fit(b, facts) for b in boards]
    return sorted(rated, key=lambda f: (not f.fits, tuple(-x for x in f.rank), f.board.id))


def detect(arch: str | None = None, model: str | None = None, environ: Mapping[str, str] | None = None,
           facts: Facts | None = None) -> Board:
    """The profile of this box (see the module docstring for the order); ``picked`` says why."""
    env = process_environ() if environ is None else environ
    forced = env.get(BOARD_ENV)
    if forced:
        try:
            return replace(resolve(forced, env), picked=f"named by {BOARD_ENV}")
        except ConfigError as exc:
            raise ConfigError(f"{BOARD_ENV}={forced}: {exc}") from None
    file_env = env.get(BOARD_FILE_ENV)
    board_file = Path(file_env) if file_env else BOARD_FILE
    if file_env or board_file.is_file():
        return replace(load(board_file, env), picked=f"the installed profile {board_file}")
    if facts is None:
        facts = Facts.here()
        if arch or model is not None:
            facts = replace(facts, arch=arch or facts.arch, dt_model=model or "", dmi_product=model or "")
    ranked = fits(facts, _sketches(env))
    if not ranked or not ranked[0].fits:
        where = ", ".join(str(d) for d in boards_dirs(env)) or "no board folder found"
        raise ConfigError(f"no board profile matches this {facts.arch} box (searched {where}); set {BOARD_ENV}")
    best = ranked[0]
    return replace(load(best.board.path, env), picked="; ".join(best.reasons))


# --------------------------------------------------------------------------- TOML out


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value).replace("\x7f", "\\u007f")  # a JSON string is a TOML basic string (DEL escaped)
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()  # TOML's own date and time forms
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def dump_toml(tables: Mapping[str, Any], prefix: str = "") -> str:
    """``tables`` (each a mapping) as TOML text: values first, then sub-tables."""
    out: list[str] = []
    for name, table in tables.items():
        header = f"{prefix}{_toml_key(name)}"
        plain = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
        nested = {k: v for k, v in table.items() if isinstance(v, Mapping)}
        out.append(f"\n[{header}]")
        out.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in plain.items())
        if nested:
            out.append(dump_toml(nested, header + ".").rstrip("\n"))
    return "\n".join(out).lstrip("\n") + "\n"
