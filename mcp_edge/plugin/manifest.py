"""``plugin.toml``: what a plugin folder declares, read without importing the plugin.

::

    [plugin]
    id = "hello"                  # lowercase letters, digits, _ and -; unique among plugins
    version = "1.2.0"
    description = "Says hello"
    abi = 1                       # Python plugin API (module) or native ABI (library) it speaks
    module = "plugin"             # plugin.py or plugin/__init__.py in this folder ...
    class = "Hello"               # ... and the class in it (optional when the module has one plugin class)
    # library = "hello.so"        # ... or a native shared object, relative to this folder
    # wasm = "hello.wasm"         # ... or a WebAssembly module (abi: the WASM ABI, docs/wasm-plugins.md)
    capabilities = ["tools", "greetings"]

    [requires]
    other = ">=1.2,<2"            # plugin id = PEP 440 version specifiers ("" or "*": any version)

    # [wasm]                      # a wasm plugin's limits and capabilities (mcp_edge.plugin.wasm)
    # [bridge]                    # ... or, with none of module/library/wasm: an existing MCP server mounted as
    #                             # this plugin, a stdio command or a Streamable HTTP URL (mcp_edge.plugin.bridge)

    [config.schema]               # JSON Schema of the config (the subset in mcp_edge.plugin.config)
    type = "object"
    [config.schema.properties.greeting]
    type = "string"
    default = "hello"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from mcp_edge.errors import AbiMismatchError, PluginLoadError

__all__ = ["MANIFEST", "NATIVE_ABI_VERSION", "Manifest", "check_id", "read_manifest"]

MANIFEST = "plugin.toml"
NATIVE_ABI_VERSION = 1
"""The native plugin ABI this runtime speaks: ``MCP_EDGE_PLUGIN_ABI`` in ``plugins/include/mcp_edge_plugin.h``."""

_ID = re.compile(r"^[a-z][a-z0-9_-]*$")
_TABLES = frozenset({"plugin", "requires", "config", "sandbox", "wasm", "bridge"})


class Manifest(NamedTuple):
    """A parsed ``plugin.toml``."""

    id: str
    version: str
    kind: Literal["python", "native", "wasm", "bridge"]
    folder: Path
    description: str = ""
    abi: int = 1
    module: str | None = None
    class_name: str | None = None
    library: str | None = None
    capabilities: frozenset[str] = frozenset()
    requires: Mapping[str, str] = MappingProxyType({})
    config_schema: Mapping[str, Any] | None = None
    isolation: Literal["inproc", "process"] = "inproc"
    sandbox: Mapping[str, Any] | None = None  # the [sandbox] table: applied in the plugin's worker
    wasm: str | None = None  # a wasm plugin's module, relative to the folder
    wasm_policy: Mapping[str, Any] | None = None  # the [wasm] table (checked by mcp_edge.plugin.wasm.check_table)
    bridge: Mapping[str, Any] | None = None  # the [bridge] table (checked by mcp_edge.plugin.bridge.check_table)

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST


def check_id(plugin_id: object, where: str) -> str:
    """``plugin_id`` if it is a valid plugin id, else PluginLoadError naming ``where``."""
    if not isinstance(plugin_id, str) or not _ID.match(plugin_id):
        raise PluginLoadError(
            f"{where}: plugin id {plugin_id!r} is not valid (lowercase letters, digits, '_' and '-', "
            "starting with a letter)"
        )
    return plugin_id


def check_requires(requires: object, where: str) -> dict[str, str]:
    """A ``requires`` table as {id: specifier}, else PluginLoadError naming ``where``."""
    if requires is None:
        return {}
    if not isinstance(requires, Mapping):
        raise PluginLoadError(f"{where}: 'requires' must be a table of plugin id = version specifiers")
    out: dict[str, str] = {}
    for dep, spec in requires.items():
        check_id(dep, f"{where}: requires")
        if not isinstance(spec, str):
            raise PluginLoadError(f"{where}: requires.{dep} must be a string of version specifiers, got {spec!r}")
        out[dep] = spec.strip()
    return out


def check_capabilities(caps: object, where: str) -> frozenset[str]:
    if caps is None:
        return frozenset()
    if isinstance(caps, str) or not isinstance(caps, list | tuple | set | frozenset) or not all(
        isinstance(c, str) and c for c in caps
    ):
        raise PluginLoadError(f"{where}: 'capabilities' must be a list of strings, got {caps!r}")
    return frozenset(caps)


def read_manifest(folder: Path) -> Manifest:
    """Parse ``folder/plugin.toml``; PluginLoadError (or AbiMismatchError) naming the file and the field."""
    path = folder / MANIFEST
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise PluginLoadError(f"{path}: cannot read plugin manifest: {exc}") from None
    except RecursionError:  # tomllib recurses per nesting level of arrays and inline tables
        raise PluginLoadError(f"{path}: cannot read plugin manifest: nested too deeply") from None
    unknown = set(data) - _TABLES
    if unknown:
        tables = ", ".join(sorted(unknown))
        raise PluginLoadError(f"{path}: unknown table(s) {tables} (known: {', '.join(sorted(_TABLES))})")
    table = data.get("plugin")
    if not isinstance(table, dict):
        raise PluginLoadError(f"{path}: needs a [plugin] table with id, version, abi and module or library")
    known = {"id", "version", "description", "abi", "module", "class", "library", "wasm", "capabilities",
             "isolation"}
    unknown = set(table) - known
    if unknown:
        raise PluginLoadError(f"{path}: unknown key(s) {', '.join(sorted(unknown))} in [plugin]")
    plugin_id = check_id(table.get("id"), str(path))

    def text(key: str, required: bool = False) -> str | None:
        value = table.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            raise PluginLoadError(f"{path}: '{key}' must be a {'non-empty ' if required else ''}string, got {value!r}")
        return value

    version = str(text("version", required=True))
    module, class_name, library, wasm = text("module"), text("class"), text("library"), text("wasm")
    bridge = data.get("bridge")
    chosen = [k for k, v in (("module", module), ("library", library), ("wasm", wasm)) if v is not None]
    if bridge is not None:
        chosen.append("[bridge]")
    if len(chosen) != 1:
        raise PluginLoadError(
            f"{path}: set exactly one of 'module' (a Python plugin), 'library' (a native one), 'wasm' (a WebAssembly "
            f"one) or a [bridge] table (a mounted MCP server); got {', '.join(chosen) or 'none'}"
        )
    if class_name is not None and module is None:
        raise PluginLoadError(f"{path}: 'class' goes with 'module', not with 'library'")
    if data.get("wasm") is not None and wasm is None:
        raise PluginLoadError(f"{path}: a [wasm] table goes with 'wasm = \"<module>.wasm\"' in [plugin]")
    kind: Literal["python", "native", "wasm", "bridge"] = (
        "python" if module is not None else "native" if library is not None else "wasm" if wasm is not None
        else "bridge"
    )
    abi = table.get("abi", 1 if kind == "bridge" else None)
    if not isinstance(abi, int) or isinstance(abi, bool):
        raise PluginLoadError(f"{path}: 'abi' must be an integer (the plugin API version it speaks), got {abi!r}")
    if kind == "python":
        from mcp_edge.plugin.api import PLUGIN_API_VERSION

        if abi != PLUGIN_API_VERSION:
            raise AbiMismatchError(
                f"plugin {plugin_id} ({path}) speaks Python plugin API version {abi}, "
                f"this runtime speaks version {PLUGIN_API_VERSION}",
                plugin_abi=abi, runtime_abi=PLUGIN_API_VERSION,
            )
    elif kind == "native" and abi != NATIVE_ABI_VERSION:
        raise AbiMismatchError(
            f"plugin {plugin_id} ({path}) declares native plugin ABI {abi}, "
            f"this runtime speaks native ABI {NATIVE_ABI_VERSION}",
            plugin_abi=abi, runtime_abi=NATIVE_ABI_VERSION,
        )
    wasm_policy: Mapping[str, Any] | None = None
    if kind == "wasm":
        from mcp_edge.plugin.wasm import WASM_ABI_VERSION
        from mcp_edge.plugin.wasm import check_table as check_wasm

        if abi != WASM_ABI_VERSION:
            raise AbiMismatchError(
                f"plugin {plugin_id} ({path}) declares WASM plugin ABI {abi}, "
                f"this runtime speaks WASM ABI {WASM_ABI_VERSION}",
                plugin_abi=abi, runtime_abi=WASM_ABI_VERSION,
            )
        wasm_policy = check_wasm(data.get("wasm", {}), f"{path}: [wasm]")
    elif kind == "bridge":
        from mcp_edge.plugin.bridge import check_table as check_bridge

        bridge = check_bridge(bridge, f"{path}: [bridge]", folder)
    # Native code defaults to a worker of its own: a crash in C then ends the worker, not the runtime.
    isolation = table.get("isolation", "process" if kind == "native" else "inproc")
    if isolation not in ("inproc", "process"):
        raise PluginLoadError(f"{path}: 'isolation' must be \"inproc\" or \"process\", got {isolation!r}")
    config = data.get("config", {})
    if not isinstance(config, dict) or set(config) - {"schema"}:
        raise PluginLoadError(f"{path}: [config] holds one key, 'schema' (a JSON Schema object)")
    schema = config.get("schema")
    if schema is not None:
        from mcp_edge.plugin.config import check_schema

        check_schema(schema, f"{path}: [config.schema]")
    sandbox = data.get("sandbox")
    if sandbox is not None:
        from mcp_edge.errors import ConfigError
        from mcp_edge.system.confine import SandboxPolicy

        try:
            SandboxPolicy.from_mapping(sandbox, where=f"{path}: [sandbox]")
        except ConfigError as exc:
            raise PluginLoadError(str(exc)) from None
    return Manifest(
        id=plugin_id,
        version=version,
        kind=kind,
        folder=folder,
        description=text("description") or "",
        abi=abi,
        module=module,
        class_name=class_name,
        library=library,
        capabilities=check_capabilities(table.get("capabilities"), str(path)),
        requires=check_requires(data.get("requires"), str(path)),
        config_schema=schema,
        isolation=isolation,
        sandbox=sandbox,
        wasm=wasm,
        wasm_policy=wasm_policy,
        bridge=bridge,
    )
