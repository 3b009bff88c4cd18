"""A mounted MCP server as a plugin (``[bridge]`` in its ``plugin.toml``, :mod:`mcp_edge.plugin.bridge`).

``load`` starts the server (a stdio child, or a session with a Streamable HTTP URL), does the handshake as a
client offering ``protocol_version`` (our newest handshake revision unless the manifest says), and lists
everything it offers, every page; the catalog names its tools and prompts ``<prefix>_<name>`` (the prefix is the
plugin id unless ``prefix`` says otherwise) and keeps its resource URIs and templates as they are (a URI
another plugin has already fails the load with the catalog's collision error; URIs travel inside results, and
rewriting them there would be guesswork). Calls go to the server under their own names.

Eras: the server speaks the revision it negotiated; clients of any revision reach it through the router,
which shapes each result for the client's revision as it does a Python plugin's (no ``structuredContent``,
``title`` or ``outputSchema`` for a client before 2025-06-18; a result with only structured content gets it as
text). A tool result for a client on our newest handshake revision is passed on as the server's bytes.

The server's ``list_changed`` notifications make the host list again and swap the plugin's catalog (clients get
``list_changed`` for what differs); ``resources/updated`` is passed on; a call's progress reaches its client
(our own progress token per call), and so do its log messages where the transport ties them to the call (an
HTTP response stream), the runtime's log otherwise. The server's requests (sampling, elicitation, roots) are
answered method-not-found: the bridge offers no client capabilities.

Supervision: a server that exits or cannot be reached is ``on_lost`` (``Registry.worker_lost``: restart with
backoff, ``restart()`` here); a call past its deadline is cancelled and the server sent
``notifications/cancelled``; the circuit breaker and bulkhead are the registry's, as for every plugin.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from mcp_edge.errors import (
    PluginError,
    PluginLoadError,
    PromptNotFoundError,
    ProtocolError,
    ResourceNotFoundError,
    ToolNotFoundError,
)
from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.versions import LATEST_HANDSHAKE
from mcp_edge.plugin.catalog import PluginCatalog
from mcp_edge.plugin.hosts.base import PluginHost
from mcp_edge.plugin.types import Completion, PromptDef, ResourceDef, ResourceTemplateDef, ToolDef

if TYPE_CHECKING:
    from mcp_edge.board import Settings
    from mcp_edge.plugin.bridge.client import McpClient
    from mcp_edge.plugin.manifest import Manifest
    from mcp_edge.plugin.registry import Registry

__all__ = ["BridgeHost", "catalog_changed"]

log = logging.getLogger("mcp_edge.bridge")
# A tool name as 2025-11-25 allows it (the runtime's own plugins use '.' too); one over 64 characters is kept but
# said (some clients want at most 64).
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")  # what a tool name may not hold: each becomes "_"
_LIST_CHANGED = {"notifications/tools/list_changed": "tools", "notifications/resources/list_changed": "resources",
                 "notifications/prompts/list_changed": "prompts"}

Lost = Callable[["BridgeHost", str], "Awaitable[None] | None"]
CatalogChanged = Callable[["BridgeHost", PluginCatalog], Awaitable[None]]


async def catalog_changed(registry: Registry, host: BridgeHost, catalog: PluginCatalog) -> None:
    """The server's lists changed: swap the plugin's catalog (if ``host`` still serves it) and tell clients what
    differs. A new name that collides with another plugin's keeps the old catalog (logged)."""
    from mcp_edge.plugin.lifecycle import PluginState

    rec = registry.get(host.plugin_id)
    if rec is None or rec.host is not host or rec.state is not PluginState.ACTIVE:
        return
    try:
        changed = registry.catalog.replace(rec.id, catalog)
    except PluginLoadError as exc:
        log.warning("plugin %s: the server's new lists are not taken: %s", rec.id, exc)
        return
    rec.catalog = catalog
    for kind in sorted(changed):
        if registry.on_list_changed is not None:
            await registry.on_list_changed(kind)


class BridgeHost(PluginHost):
    """A mounted MCP server (see the module docstring)."""

    kind = "bridge"

    def __init__(self, manifest: Manifest, settings: Settings, *, on_lost: Lost | None = None,
                 on_catalog: CatalogChanged | None = None) -> None:
        super().__init__(manifest.id)
        assert manifest.bridge is not None
        if manifest.sandbox is not None:  # refused rather than ignored: nobody should think the server confined
            raise PluginLoadError(f"plugin {manifest.id} ({manifest.path}): a [sandbox] table does not apply to a "
                                  "mounted server (it confines a worker running Python or native plugin code); "
                                  "remove it, and confine the server by its own means")
        self.table = manifest.bridge
        self.folder = manifest.folder
        self.version = manifest.version
        prefix = self.table.get("prefix")
        self.prefix: str = manifest.id if prefix is None else prefix
        self.settings = settings
        self.on_lost = on_lost
        self.on_catalog = on_catalog
        self.client: McpClient | None = None
        self.restarts = 0
        self.server_version = ""
        self._tools: dict[str, str] = {}
        self._prompts: dict[str, str] = {}
        self._config: dict[str, Any] = {}
        self._relisting: asyncio.Task[None] | None = None
        self._relist_again = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._uris: list[str] = []  # the server's fixed resources
        self._subscribed: set[str] = set()  # ... subscribed to at the server (this session)
        self._listening: list[str] | None = None  # ... in the listen stream (2026-07-28 with the server)

    def _transport(self) -> Any:
        t = self.table
        if t.get("url"):
            from mcp_edge.plugin.bridge.http import HttpTransport

            return HttpTransport(t["url"], dict(t["headers"]), plugin_id=self.plugin_id, settings=self.settings)
        from mcp_edge.plugin.bridge.stdio import StdioTransport, child_environ

        return StdioTransport(list(t["command"]), child_environ(t["env"], list(t["pass_env"])), t["cwd"],
                              plugin_id=self.plugin_id, settings=self.settings)

    # -- life -----------------------------------------------------------------------------------------------

    async def load(self) -> PluginCatalog:
        from mcp_edge.plugin.bridge.client import McpClient

        client = McpClient(self._transport(), self.plugin_id, on_notification=self._notification,
                           on_lost=self._lost, notify_timeout=self.settings.init_timeout_s,
                           max_pending=self.settings.bridge_max_pending)
        self.client = client
        self._subscribed = set()
        self._listening = None
        limit = self.settings.init_timeout_s
        try:
            try:
                async with asyncio.timeout(limit):  # the whole load: a server dripping pages must not hold it
                    await client.connect(self.table["protocol_version"], limit)
                    catalog = await self._list(client)
            except TimeoutError:
                what = "finish its listings" if client.ready else \
                    f"answer {'server/discover' if client.stateless else 'initialize'}"
                raise PluginLoadError(f"plugin {self.plugin_id}: the server ({client.transport.describe()}) did "
                                      f"not {what} within {limit:g} s (init_timeout_s)") from None
        except BaseException:
            await client.close(0.5)
            self.client = None
            raise
        self.server_version = client.version
        self.pid = client.transport.pid
        self.capabilities = frozenset(catalog.kinds())
        return catalog

    async def start(self, config: Mapping[str, Any], ctx: Any) -> None:
        """Nothing to initialize (the server was at ``load``); ``ctx`` receives its resource updates. A server
        that offers subscriptions is subscribed to each of its fixed resources (in the background), so its
        ``resources/updated`` reach the clients subscribed here."""
        self.context = ctx
        self._config = dict(config)
        self._subscribe()

    def _subscribe(self) -> None:
        client = self.client
        if client is not None and client.stateless:  # 2026-07-28: one subscriptions/listen stream for it all
            if self._listening != self._uris:
                self._listening = list(self._uris)
                client.listen(self._uris)
            return
        resources = client.capabilities.get("resources") if client is not None else None
        if client is None or not isinstance(resources, dict) or resources.get("subscribe") is not True:
            return
        wanted = [uri for uri in self._uris if uri not in self._subscribed]

        async def run() -> None:
            for uri in wanted:
                try:
                    await client.request("resources/subscribe", {"uri": uri}, timeout=self.settings.init_timeout_s)
                except Exception as exc:
                    log.info("plugin %s: subscribing to %s at the server failed: %s", self.plugin_id, uri, exc)
                    continue
                self._subscribed.add(uri)

        if wanted:
            self._spawn(run())

    async def stop(self, timeout: float) -> None:
        for task in list(self._tasks):
            task.cancel()
        client, self.client = self.client, None
        if client is not None:
            await client.close(max(timeout, 0.2))

    async def restart(self) -> PluginCatalog:
        """A new server in place of a lost one (the supervisor's backoff loop calls it): its catalog."""
        client, self.client = self.client, None
        if client is not None:
            await client.close(1.0)
        self.restarts += 1
        catalog = await self.load()
        await self.start(self._config, self.context)
        return catalog

    def _lost(self, reason: str) -> None:
        log.warning("plugin %s: its mounted server %s", self.plugin_id, reason)
        if self.on_lost is not None:
            result = self.on_lost(self, reason)
            if result is not None:
                self._spawn(result)

    # -- lists ----------------------------------------------------------------------------------------------

    async def _all(self, client: McpClient, method: str, key: str) -> list[Any]:
        """Every page of ``method``'s ``key`` list (at most ``bridge_max_list_pages`` pages)."""
        out: list[Any] = []
        cursor: str | None = None
        for _ in range(self.settings.bridge_max_list_pages):
            raw = await client.request(method, {"cursor": cursor} if cursor else None,
                                       timeout=self.settings.init_timeout_s)
            page = msgspec.json.decode(raw) if raw else {}
            items = page.get(key) if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise PluginLoadError(f"plugin {self.plugin_id}: the server's {method} result has no {key} list")
            out += items
            nxt = page.get("nextCursor")
            if not isinstance(nxt, str) or not nxt:
                return out
            cursor = nxt
        raise PluginLoadError(f"plugin {self.plugin_id}: the server's {method} went on past "
                              f"bridge_max_list_pages ({self.settings.bridge_max_list_pages}) pages")

    async def _list(self, client: McpClient) -> PluginCatalog:
        from mcp_edge.plugin.bridge import prefixed
        from mcp_edge.plugin.uritemplate import UriTemplate

        caps = client.capabilities
        tools: list[ToolDef] = []
        names: dict[str, str] = {}
        for item in await self._all(client, "tools/list", "tools") if "tools" in caps else []:
            own = item.get("name") if isinstance(item, dict) else None
            if not isinstance(own, str):
                log.warning("plugin %s: a tool without a name is left out: %.200r", self.plugin_id, item)
                continue
            name = _UNSAFE.sub("_", prefixed(self.prefix, own))  # ("ns/tool" -> "<prefix>_ns_tool")
            if not _TOOL_NAME.match(name) or name in names:
                log.warning("plugin %s: tool %r is left out: %r is longer than 128 characters or given twice",
                            self.plugin_id, own, name)
                continue
            if len(name) > 64:
                log.warning("plugin %s: tool name %r is longer than 64 characters: some clients refuse it (a "
                            "shorter prefix helps)", self.plugin_id, name)
            try:
                tools.append(msgspec.convert({**item, "name": name}, ToolDef))
            except msgspec.ValidationError as exc:
                log.warning("plugin %s: tool %r is left out: %s", self.plugin_id, own, exc)
                continue
            names[name] = own
        resources = self._convert(await self._all(client, "resources/list", "resources")
                                  if "resources" in caps else [], ResourceDef, "resource")
        templates = self._convert(await self._all(client, "resources/templates/list", "resourceTemplates")
                                  if "resources" in caps else [], ResourceTemplateDef, "resource template")
        prompts: list[PromptDef] = []
        prompt_names: dict[str, str] = {}
        for item in await self._all(client, "prompts/list", "prompts") if "prompts" in caps else []:
            own = item.get("name") if isinstance(item, dict) else None
            if not isinstance(own, str) or prefixed(self.prefix, own) in prompt_names:
                log.warning("plugin %s: a prompt without a name, or given twice, is left out: %.200r",
                            self.plugin_id, item)
                continue
            try:
                prompts.append(msgspec.convert({**item, "name": prefixed(self.prefix, own)}, PromptDef))
            except msgspec.ValidationError as exc:
                log.warning("plugin %s: prompt %r is left out: %s", self.plugin_id, own, exc)
                continue
            prompt_names[prefixed(self.prefix, own)] = own
        completions: set[tuple[str, str, str]] = set()
        if "completions" in caps or client.version == "2024-11-05":  # (2024-11-05 had no capability for it)
            for pr in prompts:
                completions.update(("prompt", pr.name, arg.name) for arg in pr.arguments or ())
            for tmpl in templates:
                try:
                    variables = UriTemplate(tmpl.uriTemplate).variables
                except Exception:
                    continue
                completions.update(("resource", tmpl.uriTemplate, var) for var in variables)
        self._tools, self._prompts = names, prompt_names
        self._uris = [r.uri for r in resources]
        return PluginCatalog(tools=tools, resources=resources, templates=templates, prompts=prompts,
                             completions=sorted(completions))

    def _convert(self, items: list[Any], kind: type[Any], what: str) -> list[Any]:
        out = []
        for item in items:
            try:
                out.append(msgspec.convert(item, kind))
            except msgspec.ValidationError as exc:
                log.warning("plugin %s: a %s is left out (%s): %.200r", self.plugin_id, what, exc, item)
        return out

    def _notification(self, method: str, params: dict[str, Any]) -> Awaitable[None] | None:
        if method in _LIST_CHANGED:
            self._relist()
            return None
        if method == "notifications/resources/updated":
            uri = params.get("uri")
            ctx = self.context
            if isinstance(uri, str) and ctx is not None:
                result: Awaitable[None] = ctx.notify_resource_updated(uri)
                return result
        return None

    def _relist(self) -> None:
        """List again after a list_changed (one listing at a time; changes meanwhile list once more)."""
        if self._relisting is not None and not self._relisting.done():
            self._relist_again = True
            return

        async def run() -> None:
            while True:
                self._relist_again = False
                client = self.client
                if client is None or not client.alive:
                    return
                try:
                    catalog = await self._list(client)
                except Exception as exc:
                    log.warning("plugin %s: listing the server's offer again failed: %s", self.plugin_id, exc)
                    return
                self.capabilities = frozenset(catalog.kinds())
                if self.on_catalog is not None:
                    await self.on_catalog(self, catalog)
                self._subscribe()
                if not self._relist_again:
                    return

        self._relisting = asyncio.get_running_loop().create_task(run(), name=f"bridge-{self.plugin_id}-relist")
        self._tasks.add(self._relisting)
        self._relisting.add_done_callback(self._tasks.discard)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        async def run() -> None:
            await coro

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- calls ----------------------------------------------------------------------------------------------

    def _client(self) -> McpClient:
        client = self.client
        if client is None:
            from mcp_edge.plugin.bridge.client import BridgeLost

            raise BridgeLost(f"plugin {self.plugin_id}: its mounted server is not running; retry shortly")
        return client

    async def call_tool(self, name: str, arguments: Mapping[str, Any] | None, rctx: Any) -> Any:
        own = self._tools.get(name)
        if own is None:
            raise ToolNotFoundError(f"unknown tool: {name}")
        params = _named(own, arguments)
        client = self._client()
        raw = await client.request("tools/call", params, rctx=rctx, progress=_wants_progress(rctx))
        if client.stateless:
            return self._complete_result(raw, "tools/call")
        if bytes(memoryview(raw)[:1]) != b"{":  # (a value's raw JSON starts at its first byte: no blank before it)
            raise PluginError(f"plugin {self.plugin_id}: the server's tools/call result is not an object: "
                              f"{bytes(memoryview(raw)[:100]).decode(errors='replace') or 'none'}")
        version = getattr(rctx, "protocol_version", None)
        if version is None or version == LATEST_HANDSHAKE or getattr(rctx, "stateless", False):
            return raw  # embedded as the server sent it (the router decodes it for a stateless client's envelope)
        return msgspec.json.decode(raw)  # shaped by the router for the client's older revision

    async def read_resource(self, uri: str, template: str | None, rctx: Any) -> Any:
        try:
            raw = await self._client().request("resources/read", {"uri": uri}, rctx=rctx)
        except ProtocolError as exc:
            if exc.code == jsonrpc.RESOURCE_NOT_FOUND:
                raise ResourceNotFoundError(exc.message) from None
            raise
        result = self._complete_result(raw, "resources/read")
        contents = result.get("contents")
        if not isinstance(contents, list):
            raise PluginError(f"plugin {self.plugin_id}: the server's resources/read result has no contents list")
        return contents

    async def get_prompt(self, name: str, arguments: Mapping[str, str] | None, rctx: Any) -> Any:
        own = self._prompts.get(name)
        if own is None:
            raise PromptNotFoundError(f"unknown prompt: {name}")
        params = _named(own, arguments)
        raw = await self._client().request("prompts/get", params, rctx=rctx)
        return self._complete_result(raw, "prompts/get")

    def _complete_result(self, raw: msgspec.Raw, method: str) -> dict[str, Any]:
        """The server's result as data; a 2026-07-28 result without its envelope (``resultType``, cache hints,
        the server's info in ``_meta``: the router adds the runtime's own for a client of that revision).
        PluginError for an input-required result (not passed on) or one that is not an object."""
        result = msgspec.json.decode(raw) if raw else None
        if not isinstance(result, dict):
            raise PluginError(f"plugin {self.plugin_id}: the server's {method} result is not an object")
        kind = result.get("resultType")
        if kind is not None and kind != "complete":
            raise PluginError(f"plugin {self.plugin_id}: the server answered {method} with resultType {kind!r} "
                              "(it asks the client for input), which the bridge does not pass on")
        for key in _ENVELOPE:
            result.pop(key, None)
        meta = result.get("_meta")
        if isinstance(meta, dict) and "io.modelcontextprotocol/serverInfo" in meta:
            rest = {k: v for k, v in meta.items() if k != "io.modelcontextprotocol/serverInfo"}
            if rest:
                result["_meta"] = rest
            else:
                del result["_meta"]
        return result

    async def complete(self, kind: str, ref: str, argument: str, value: str, context: Mapping[str, Any]) -> Any:
        if kind == "prompt":
            own = self._prompts.get(ref)
            if own is None:
                raise PromptNotFoundError(f"unknown prompt: {ref}")
            target = {"type": "ref/prompt", "name": own}
        else:
            target = {"type": "ref/resource", "uri": ref}
        params: dict[str, Any] = {"ref": target, "argument": {"name": argument, "value": value}}
        if context:
            params["context"] = {"arguments": dict(context)}
        raw = await self._client().request("completion/complete", params, timeout=self.settings.tool_timeout_s)
        result = msgspec.json.decode(raw) if raw else None
        try:
            return msgspec.convert(result.get("completion") if isinstance(result, dict) else None, Completion)
        except msgspec.ValidationError:
            return Completion(values=[], total=0, hasMore=False)


_ENVELOPE = ("resultType", "ttlMs", "cacheScope")


def _named(name: str, arguments: Mapping[str, Any] | None) -> dict[str, Any]:
    """The params of a tools/call or prompts/get to the server: its own name, and the arguments when given."""
    params: dict[str, Any] = {"name": name}
    if arguments is not None:
        params["arguments"] = dict(arguments)
    return params


def _wants_progress(rctx: Any) -> bool:
    req = getattr(rctx, "_req", None)
    return getattr(req, "progress_token", None) is not None
