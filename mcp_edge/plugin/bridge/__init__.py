"""Mounted MCP servers: an existing MCP server, named by a plugin folder's ``[bridge]`` table, served as a plugin.

::

    [plugin]
    id = "weather"
    version = "1.0.0"

    [bridge]
    command = ["python3", "server.py", "--quiet"]   # a stdio server: argv (or command = "python3" + args)
    env = { API_REGION = "eu" }                      # set in its environment (see below)
    pass_env = ["WEATHER_TOKEN"]                     # copied from the runtime's environment when set there
    cwd = "."                                        # its working folder, relative to the plugin folder
    # url = "http://127.0.0.1:9000/mcp"              # ... or a Streamable HTTP server
    # headers = { Authorization = "Bearer ..." }     # ... sent with each of its requests
    protocol_version = "2025-11-25"                  # the revision offered (default: our newest handshake one;
                                                     # "2026-07-28": the stateless revision, server/discover)
    prefix = "weather"                               # tools and prompts become weather_<name> (default: the id)

A stdio server's environment is small on purpose: ``PATH``, ``HOME`` and ``LANG`` from the runtime's, then the
``pass_env`` names the runtime has, then ``env``; nothing else of the runtime's environment (its secrets, its
``MCP_EDGE_*``, systemd's notify socket) reaches it.

``check_table`` reads the table (the manifest calls it); the host is :mod:`mcp_edge.plugin.hosts.bridge`, the MCP
client it speaks with :mod:`.client` over :mod:`.stdio` or :mod:`.http`. docs/bridge.md is the reference.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mcp_edge.errors import PluginLoadError
from mcp_edge.mcp.versions import HANDSHAKE_VERSIONS, LATEST_HANDSHAKE, STATELESS_VERSIONS

__all__ = ["INHERITED_ENV", "PREFIX_SEPARATOR", "check_table", "prefixed"]

#: What a stdio server gets of the runtime's environment without asking (``pass_env`` asks for more).
INHERITED_ENV = ("PATH", "HOME", "LANG")
#: Between the prefix and a server's own tool or prompt name: ``_`` is valid in a tool name of every revision
#: and every client (``.`` and ``/`` are not: many clients accept only ``[A-Za-z0-9_-]{1,64}``).
PREFIX_SEPARATOR = "_"

_KEYS = frozenset({"command", "args", "env", "pass_env", "cwd", "url", "headers", "protocol_version", "prefix"})
_STDIO_ONLY = ("args", "env", "pass_env", "cwd")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{0,32}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def prefixed(prefix: str, name: str) -> str:
    """The name a client sees for the server's ``name`` (``name`` itself when the prefix is empty)."""
    return f"{prefix}{PREFIX_SEPARATOR}{name}" if prefix else name


def _strings(value: object, what: str, where: str, *, empty: bool = False) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or (not value and not empty):
        raise PluginLoadError(f"{where}: '{what}' must be a {'' if empty else 'non-empty '}list of strings, "
                              f"got {value!r}")
    return list(value)


def _table(value: object, what: str, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise PluginLoadError(f"{where}: '{what}' must be a table of string values, got {value!r}")
    return dict(value)


def check_table(table: object, where: str, folder: Path) -> Mapping[str, Any]:
    """The ``[bridge]`` table checked and filled in: ``command`` (argv list) or ``url``, ``env``, ``pass_env``,
    ``cwd`` (absolute), ``headers``, ``protocol_version``, ``prefix`` (None: the plugin id). PluginLoadError naming
    ``where`` and the key when it is wrong."""
    if not isinstance(table, dict):
        raise PluginLoadError(f"{where}: must be a table (command = [...] or url = \"http://.../mcp\")")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise PluginLoadError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})")
    command, url = table.get("command"), table.get("url")
    if (command is None) == (url is None):
        raise PluginLoadError(f"{where}: set exactly one of 'command' (a stdio server) or 'url' (a Streamable HTTP "
                              "server)")
    out: dict[str, Any] = {"command": None, "url": None, "env": {}, "pass_env": [], "cwd": str(folder),
                           "headers": {}}
    if command is not None:
        if isinstance(command, str):
            if not command.strip():
                raise PluginLoadError(f"{where}: 'command' must not be empty")
            argv = [command]
        else:
            argv = _strings(command, "command", where)
            if not argv[0].strip():
                raise PluginLoadError(f"{where}: 'command' must start with the program to run, got {argv[0]!r}")
        if "args" in table:
            argv += _strings(table["args"], "args", where, empty=True)
        out["command"] = argv
        env = _table(table.get("env", {}), "env", where)
        bad = [k for k in env if not _ENV_NAME.match(k)]
        if bad:
            raise PluginLoadError(f"{where}: env key {bad[0]!r} is not a variable name")
        out["env"] = env
        names = _strings(table.get("pass_env", []), "pass_env", where, empty=True)
        bad = [k for k in names if not _ENV_NAME.match(k)]
        if bad:
            raise PluginLoadError(f"{where}: pass_env name {bad[0]!r} is not a variable name")
        out["pass_env"] = names
        cwd = table.get("cwd", ".")
        if not isinstance(cwd, str) or not cwd:
            raise PluginLoadError(f"{where}: 'cwd' must be a folder (relative to {folder}), got {cwd!r}")
        out["cwd"] = str((folder / cwd).resolve())
        if "headers" in table:
            raise PluginLoadError(f"{where}: 'headers' goes with 'url', not with 'command'")
    else:
        if not isinstance(url, str) or not re.match(r"^https?://[^/\s]+(/\S*)?$", url):
            raise PluginLoadError(f"{where}: 'url' must be an http:// or https:// URL (the server's MCP endpoint), "
                                  f"got {url!r}")
        out["url"] = url
        for key in _STDIO_ONLY:
            if key in table:
                raise PluginLoadError(f"{where}: '{key}' goes with 'command' (a stdio server), not with 'url'")
        headers = _table(table.get("headers", {}), "headers", where)
        bad = [k for k in headers if not _HEADER.match(k) or "\n" in headers[k] or "\r" in headers[k]]
        if bad:
            raise PluginLoadError(f"{where}: header {bad[0]!r} is not a valid HTTP header")
        out["headers"] = headers
    version = table.get("protocol_version", LATEST_HANDSHAKE)
    if version not in HANDSHAKE_VERSIONS and version not in STATELESS_VERSIONS:
        raise PluginLoadError(f"{where}: 'protocol_version' must be one of "
                              f"{', '.join(STATELESS_VERSIONS + HANDSHAKE_VERSIONS)}, got {version!r}")
    out["protocol_version"] = version
    prefix = table.get("prefix")
    if prefix is not None and (not isinstance(prefix, str) or not _PREFIX.match(prefix)):
        raise PluginLoadError(f"{where}: 'prefix' must be up to 32 letters, digits, '_' or '-' (\"\" for none), "
                              f"got {prefix!r}")
    out["prefix"] = prefix
    return MappingProxyType(out)
