"""Loading and matching of board profiles.

A profile is a TOML file::

    [board]
    id = "generic-x86_64"
    description = "..."
    [match]
    arch = "x86_64"            # platform.machine() of the box
    model = ["Raspberry Pi 5"]  # optional: substrings of the device-tree model or DMI product name
    priority = 0               # the highest-priority match wins
    [paths]
    data_dir = "/var/lib/mcp-edge"
    plugin_dirs = ["{checkout}/plugins", "{prefix}/share/mcp-edge/plugins", "/etc/mcp-edge/plugins"]

``plugin_dirs`` are the folders searched for plugins, in order; ``{checkout}``
(the source checkout holding this package), ``{prefix}`` (``sys.prefix``) and
``{data_dir}`` are expanded, and so is ``~``. Left out, it is
``DEFAULT_PLUGIN_DIRS``: the checkout's ``plugins/``,
``<prefix>/share/mcp-edge/plugins``, ``/etc/mcp-edge/plugins`` and
``{data_dir}/plugins``.

Profiles are searched in ``$MCP_EDGE_BOARDS_DIR``, the checkout's ``boards/``,
``<prefix>/share/mcp-edge/boards`` and ``/etc/mcp-edge/boards``; a later file
with the same id does not replace an earlier one. ``MCP_EDGE_BOARD=<id>`` picks
a board by id instead of matching.
"""

from __future__ import annotations

import platform
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcp_edge.board.environ import process_environ
from mcp_edge.errors import ConfigError

__all__ = ["BOARD_ENV", "DEFAULT_PLUGIN_DIRS", "Board", "boards_dirs", "detect", "load", "load_all"]

BOARD_ENV = "MCP_EDGE_BOARD"
BOARDS_DIR_ENV = "MCP_EDGE_BOARDS_DIR"
DEFAULT_PLUGIN_DIRS = (
    "{checkout}/plugins",
    "{prefix}/share/mcp-edge/plugins",
    "/etc/mcp-edge/plugins",
    "{data_dir}/plugins",
)
_CHECKOUT = Path(__file__).resolve().parents[2]
# The tables of a profile and the keys each may hold ([settings] and [plugins] are checked by board.settings).
_KEYS: dict[str, tuple[str, ...]] = {
    "board": ("id", "description"),
    "match": ("arch", "model", "priority"),
    "paths": ("data_dir", "plugin_dirs"),
    "settings": (),
    "plugins": (),
    "sandbox": (),
}
_MODEL_FILES = ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model", "/sys/class/dmi/id/product_name")


@dataclass(frozen=True)
class Board:
    """One board profile."""

    id: str
    description: str
    arch: str
    models: tuple[str, ...]
    priority: int
    data_dir: Path
    path: Path
    plugin_dirs: tuple[Path, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)  # the [settings] table, checked by board.settings
    plugins: Mapping[str, Any] = field(default_factory=dict)  # the [plugins] table
    # The [sandbox] table: what every process plugin's sandbox is narrowed to (read, write, deny_syscalls,
    # network), and [sandbox.<plugin id>] sub-tables narrowing one plugin further (mcp_edge.system.confine).
    sandbox: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, arch: str, model: str) -> bool:
        """True when this profile fits a box of ``arch`` whose model string is ``model``."""
        if self.arch != arch:
            return False
        return not self.models or any(m in model for m in self.models)


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


def _field(table: dict[str, object], key: str, kind: type, path: Path, default: object = None) -> object:
    value = table.get(key, default)
    if value is None or not isinstance(value, kind):
        raise ConfigError(f"{path}: '{key}' must be a {kind.__name__}, got {value!r}")
    return value


def load(path: Path) -> Board:
    """Parse one profile; ConfigError naming the file and the field on bad input."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read board profile: {exc}") from None
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown table [{unknown[0]}] (known: {', '.join(f'[{k}]' for k in _KEYS)})")
    board = data.get("board", {})
    match = data.get("match", {})
    paths = data.get("paths", {})
    settings = data.get("settings", {})
    plugins = data.get("plugins", {})
    sandbox = data.get("sandbox", {})
    if not all(isinstance(t, dict) for t in (board, match, paths, settings, plugins, sandbox)):
        raise ConfigError(f"{path}: [board], [match], [paths], [settings], [plugins] and [sandbox] must be tables")
    if sandbox:
        from mcp_edge.system.confine import board_policies

        board_policies(sandbox, where=f"{path}: [sandbox]")  # checked now: a bad profile fails at start
    for name, table in (("board", board), ("match", match), ("paths", paths)):
        extra = sorted(set(table) - set(_KEYS[name]))
        if extra:
            raise ConfigError(f"{path}: unknown key '{extra[0]}' in [{name}] (known: {', '.join(_KEYS[name])})")
    models = match.get("model", [])
    if isinstance(models, str):
        models = [models]
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise ConfigError(f"{path}: 'model' must be a string or a list of strings")
    data_dir = Path(str(_field(paths, "data_dir", str, path, "/var/lib/mcp-edge")))
    dirs = paths.get("plugin_dirs", list(DEFAULT_PLUGIN_DIRS))
    if not isinstance(dirs, list) or not all(isinstance(d, str) for d in dirs):
        raise ConfigError(f"{path}: 'plugin_dirs' must be a list of strings, got {dirs!r}")
    return Board(
        id=str(_field(board, "id", str, path)),
        description=str(_field(board, "description", str, path, "")),
        arch=str(_field(match, "arch", str, path)),
        models=tuple(models),
        priority=int(_field(match, "priority", int, path, 0)),  # type: ignore[call-overload]
        data_dir=data_dir,
        path=path,
        plugin_dirs=tuple(_expand_dir(d, data_dir, path) for d in dirs),
        settings=settings,
        plugins=plugins,
        sandbox=sandbox,
    )


def _expand_dir(template: str, data_dir: Path, path: Path) -> Path:
    """One ``plugin_dirs`` entry with ``{checkout}``, ``{prefix}``, ``{data_dir}`` and ``~`` expanded."""
    try:
        text = template.format(checkout=_CHECKOUT, prefix=sys.prefix, data_dir=data_dir)
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"{path}: plugin_dirs entry {template!r}: unknown placeholder {exc} "
            "(known: {checkout}, {prefix}, {data_dir})"
        ) from None
    return Path(text).expanduser()


def load_all(environ: Mapping[str, str] | None = None) -> list[Board]:
    """Every profile found, first of each id."""
    seen: dict[str, Board] = {}
    for folder in boards_dirs(environ):
        for file in sorted(folder.glob("*.toml")):
            b = load(file)
            seen.setdefault(b.id, b)
    return list(seen.values())


def _model_string() -> str:
    for name in _MODEL_FILES:
        try:
            return Path(name).read_text(errors="replace").strip("\x00\n ")
        except OSError:
            continue
    return ""


def detect(arch: str | None = None, model: str | None = None, environ: Mapping[str, str] | None = None) -> Board:
    """The profile of this box: ``$MCP_EDGE_BOARD`` if set, else the best match (``environ``: the process's)."""
    env = process_environ() if environ is None else environ
    boards = load_all(env)
    forced = env.get(BOARD_ENV)
    if forced:
        for b in boards:
            if b.id == forced:
                return b
        known = ", ".join(sorted(b.id for b in boards)) or "none"
        raise ConfigError(f"{BOARD_ENV}={forced}: no such board profile (known: {known})")
    arch = arch or platform.machine()
    model = _model_string() if model is None else model
    fits = [b for b in boards if b.matches(arch, model)]
    if not fits:
        where = ", ".join(str(d) for d in boards_dirs(env)) or "no board folder found"
        raise ConfigError(f"no board profile matches this {arch} box (searched {where}); set {BOARD_ENV}")
    return max(fits, key=lambda b: (b.priority, len(b.models)))
