"""Authorization and rate limits, enforced by the router before dispatch, for every transport.

**The policy file** (``auth_policy_file``, TOML; unknown keys refused, naming the file and the key)::

    [roles.operator]
    tools = ["sysinfo_*", "logs_*"]        # glob patterns of tool names
    resources = ["sysinfo://*"]            # of resource URIs (and templates)
    prompts = ["*"]                        # of prompt names
    plugins = ["fs"]                       # every tool, resource and prompt of these plugins
    classes = ["read", "write"]            # tool classes allowed (default: all three)
    metrics = true                         # may scrape GET /metrics (default: false)

    [principals]
    "token:alice" = ["operator"]           # a bearer token's subject
    "api-key:robot" = ["viewer"]           # an API key's id
    "uid:1000" = ["operator"]              # a unix-socket peer or stdio parent by uid
    "anonymous" = ["viewer"]               # HTTP without authentication

A principal matches a key equal to its id or to ``kind:id``; its roles are those keys' roles and any its
credential carried. **A principal with no role gets nothing.** A tool's class comes from its annotations:
``readOnlyHint`` makes it ``read``, ``destructiveHint`` (or no hint, as MCP defaults it) ``destructive``,
a tool that says it is neither ``write``. ``tools/list``, ``resources/list``, ``resources/templates/list`` and
``prompts/list`` show only what the caller may use; with a policy, ``GET /metrics`` needs a role with
``metrics = true`` (unless ``metrics_public``); a denied call gets the forbidden refusal (JSON-RPC
-32012, HTTP 403 in 2026-07-28) and a log line at warning.

**Rate limits** (token buckets): ``rate_limit_rps``/``rate_limit_burst`` per principal (every request),
``tool_rate_limit_rps``/``tool_rate_limit_burst`` per principal and tool (``tools/call``); past them the
rate-limited refusal (JSON-RPC -32011 with ``data.retryAfterMs``, HTTP 429 with ``Retry-After``). At most
``rate_limit_keys`` buckets are kept (the least recently used go first: bounded memory).
"""

from __future__ import annotations

import fnmatch
import logging
import time
import tomllib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from mcp_edge.errors import ConfigError

if TYPE_CHECKING:
    from mcp_edge.board.settings import Settings
    from mcp_edge.plugin.types import ToolDef
    from mcp_edge.runtime.principal import Principal

__all__ = ["CLASSES", "Policy", "RateLimits", "Role", "tool_class"]

log = logging.getLogger("mcp_edge.policy")

CLASSES: Final = ("read", "write", "destructive")
_ROLE_KEYS: Final = frozenset({"tools", "resources", "prompts", "plugins", "classes", "metrics"})
_DECISIONS: Final = 4096


def tool_class(tool: ToolDef | None) -> str:
    """read, write or destructive, from the tool's annotations (MCP's defaults: destructive, not read-only)."""
    ann = tool.annotations if tool is not None else None
    if ann is not None and ann.readOnlyHint:
        return "read"
    if ann is not None and ann.destructiveHint is False:
        return "write"
    return "destructive"


@dataclass(frozen=True)
class Role:
    name: str
    tools: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    plugins: frozenset[str] = frozenset()
    classes: frozenset[str] = frozenset(CLASSES)
    metrics: bool = False  # may scrape GET /metrics

    def allows(self, kind: str, name: str, plugin: str | None, cls: str | None) -> bool:
        if kind == "tool" and cls is not None and cls not in self.classes:
            return False
        if plugin is not None and plugin in self.plugins:
            return True
        patterns = {"tool": self.tools, "resource": self.resources, "prompt": self.prompts}.get(kind, ())
        return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _flag(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false")
    return value


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of non-empty strings")
    return tuple(value)


class Policy:
    """Roles and who has them (see the module docstring)."""

    def __init__(self, roles: Mapping[str, Role], principals: Mapping[str, frozenset[str]], source: str = "") -> None:
        self.roles = dict(roles)
        self.principals = dict(principals)
        self.source = source
        self._decisions: dict[tuple[Any, ...], bool] = {}

    @classmethod
    def load(cls, path: Path) -> Policy:
        where = str(path)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as exc:
            raise ConfigError(f"{where}: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not TOML ({exc})") from None
        return cls.from_dict(data, where)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "policy") -> Policy:
        unknown = set(data) - {"roles", "principals"}
        if unknown:
            raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r} (a policy has [roles.*] and [principals])")
        roles: dict[str, Role] = {}
        for name, table in (data.get("roles") or {}).items():
            at = f"{where}: roles.{name}"
            if not isinstance(table, dict):
                raise ConfigError(f"{at} must be a table")
            bad = set(table) - _ROLE_KEYS
            if bad:
                raise ConfigError(f"{at}: unknown key {sorted(bad)[0]!r} (allowed: {', '.join(sorted(_ROLE_KEYS))})")
            classes = frozenset(_strings(f"{at}.classes", table["classes"])) if "classes" in table \
                else frozenset(CLASSES)
            if classes - set(CLASSES):
                raise ConfigError(f"{at}.classes: {sorted(classes - set(CLASSES))[0]!r} is not one of "
                                  f"{', '.join(CLASSES)}")
            roles[name] = Role(name, tools=_strings(f"{at}.tools", table.get("tools", [])),
                               resources=_strings(f"{at}.resources", table.get("resources", [])),
                               prompts=_strings(f"{at}.prompts", table.get("prompts", [])),
                               plugins=frozenset(_strings(f"{at}.plugins", table.get("plugins", []))),
                               classes=classes, metrics=_flag(f"{at}.metrics", table.get("metrics", False)))
        principals: dict[str, frozenset[str]] = {}
        for key, names in (data.get("principals") or {}).items():
            given = _strings(f"{where}: principals.{key}", names)
            missing = [n for n in given if n not in roles]
            if missing:
                raise ConfigError(f"{where}: principals.{key} names role {missing[0]!r}, which no [roles.*] "
                                  "defines")
            principals[key] = frozenset(given)
        return cls(roles, principals, where)

    def roles_of(self, principal: Principal) -> frozenset[str]:
        names = set(principal.roles) & set(self.roles)
        for key in (principal.id, f"{principal.kind}:{principal.id}"):
            names |= self.principals.get(key, frozenset())
        return frozenset(names)

    def may_scrape(self, principal: Principal) -> bool:
        """Whether one of ``principal``'s roles has ``metrics = true``."""
        return any(self.roles[r].metrics for r in self.roles_of(principal))

    def allows(self, principal: Principal, kind: str, name: str, plugin: str | None,
               cls: str | None = None) -> bool:
        """Whether one of ``principal``'s roles allows ``kind`` (tool, resource, prompt) ``name``."""
        key = (principal, kind, name, plugin, cls)
        found = self._decisions.get(key)
        if found is None:
            found = any(self.roles[r].allows(kind, name, plugin, cls) for r in self.roles_of(principal))
            if len(self._decisions) >= _DECISIONS:
                self._decisions.clear()
            self._decisions[key] = found
        return found


class RateLimits:
    """Token buckets per principal and per (principal, tool)."""

    def __init__(self, rps: float, burst: int, tool_rps: float, tool_burst: int, keys: int) -> None:
        self.rps, self.burst = rps, max(1, burst)
        self.tool_rps, self.tool_burst = tool_rps, max(1, tool_burst)
        self.keys = max(1, keys)
        self._buckets: OrderedDict[Any, list[float]] = OrderedDict()  # key -> [tokens, at]

    @classmethod
    def from_settings(cls, s: Settings) -> RateLimits | None:
        if s.rate_limit_rps <= 0 and s.tool_rate_limit_rps <= 0:
            return None
        return cls(s.rate_limit_rps, s.rate_limit_burst, s.tool_rate_limit_rps, s.tool_rate_limit_burst,
                   s.rate_limit_keys)

    def _take(self, key: Any, rate: float, burst: int, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = [float(burst), now]
            self._buckets[key] = bucket
            if len(self._buckets) > self.keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(float(burst), bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / rate

    def take(self, principal_id: str, tool: str | None, now: float | None = None) -> float:
        """0 when the request may go on (a token taken from each bucket it draws on), else the seconds to
        wait before retrying."""
        now = time.monotonic() if now is None else now
        wait = 0.0
        if self.rps > 0:
            wait = self._take(("p", principal_id), self.rps, self.burst, now)
        if wait == 0.0 and tool is not None and self.tool_rps > 0:
            wait = self._take(("t", principal_id, tool), self.tool_rps, self.tool_burst, now)
        return wait
