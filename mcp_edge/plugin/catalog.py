"""What the plugins offer, as plain data, and the runtime's routing index over it.

``PluginCatalog`` is one plugin's tools, resources, resource templates, prompts and completion keys: msgspec
Structs with nothing executable in them, so a worker process sends its plugin's catalog to the runtime as
msgpack. ``Catalog`` is the runtime's index over every active plugin's catalog: a name, URI or template ->
the id of the plugin that owns it (the registry then asks that plugin's host), collision checks, the cached
lists clients page through, and the most specific template for a URI.
"""

from __future__ import annotations

from typing import Any

import msgspec

from mcp_edge.errors import PluginLoadError
from mcp_edge.plugin.types import PromptDef, ResourceDef, ResourceTemplateDef, ToolDef
from mcp_edge.plugin.uritemplate import UriTemplate

__all__ = ["Catalog", "PluginCatalog"]


class PluginCatalog(msgspec.Struct, kw_only=True):
    """One plugin's offer. ``completions``: (kind, ref, argument) keys with a completion handler, kind
    ``prompt`` or ``resource`` (ref: the prompt's name or the template's text)."""

    tools: list[ToolDef] = msgspec.field(default_factory=list)
    resources: list[ResourceDef] = msgspec.field(default_factory=list)
    templates: list[ResourceTemplateDef] = msgspec.field(default_factory=list)
    prompts: list[PromptDef] = msgspec.field(default_factory=list)
    completions: list[tuple[str, str, str]] = msgspec.field(default_factory=list)
    stateful: bool = False  # the plugin exports its state for the version that replaces it (hot reload)

    def kinds(self) -> set[str]:
        """The MCP capabilities this offer provides."""
        out = set()
        if self.tools:
            out.add("tools")
        if self.resources or self.templates:
            out.add("resources")
        if self.prompts:
            out.add("prompts")
        if self.completions:
            out.add("completions")
        return out

    def encode(self) -> bytes:
        return msgspec.msgpack.encode(self)

    @classmethod
    def decode(cls, data: Any) -> PluginCatalog:
        """A catalog from msgpack; msgspec.ValidationError naming the bad field when malformed."""
        result: PluginCatalog = msgspec.msgpack.decode(data, type=cls)
        return result


class Catalog:
    """The routing index of the active plugins (see the module docstring)."""

    def __init__(self) -> None:
        self._offers: dict[str, PluginCatalog] = {}
        self._tools: dict[str, str] = {}
        self._resources: dict[str, str] = {}
        self._templates: dict[str, tuple[str, UriTemplate]] = {}
        self._template_order: list[tuple[str, UriTemplate]] = []
        self._prompts: dict[str, str] = {}
        self._lists: dict[str, list[Any]] = {}

    def __contains__(self, plugin_id: str) -> bool:
        return plugin_id in self._offers

    def offer(self, plugin_id: str) -> PluginCatalog | None:
        return self._offers.get(plugin_id)

    def check(self, plugin_id: str, cat: PluginCatalog) -> None:
        """PluginLoadError when a name of ``cat`` is another plugin's already (the error names both)."""
        for kind, names, taken in (
            ("tool", [t.name for t in cat.tools], self._tools),
            ("resource", [r.uri for r in cat.resources], self._resources),
            ("resource template", [t.uriTemplate for t in cat.templates],
             {k: v[0] for k, v in self._templates.items()}),
            ("prompt", [p.name for p in cat.prompts], self._prompts),
        ):
            for name in names:
                other = taken.get(name)
                if other is not None and other != plugin_id:
                    raise PluginLoadError(f"{kind} {name!r} of plugin {plugin_id} collides with plugin {other}'s")

    def add(self, plugin_id: str, cat: PluginCatalog) -> None:
        """Route ``cat``'s names to ``plugin_id`` (after ``check``)."""
        self.check(plugin_id, cat)
        self._offers[plugin_id] = cat
        for t in cat.tools:
            self._tools[t.name] = plugin_id
        for r in cat.resources:
            self._resources[r.uri] = plugin_id
        for tmpl in cat.templates:
            self._templates[tmpl.uriTemplate] = (plugin_id, UriTemplate(tmpl.uriTemplate))
        for pr in cat.prompts:
            self._prompts[pr.name] = plugin_id
        self._reindex()

    def remove(self, plugin_id: str) -> PluginCatalog | None:
        """Stop routing to ``plugin_id``; its catalog, if it had one."""
        cat = self._offers.pop(plugin_id, None)
        if cat is None:
            return None
        for table in (self._tools, self._resources, self._prompts):
            for key in [k for k, v in table.items() if v == plugin_id]:
                del table[key]
        for key in [k for k, v in self._templates.items() if v[0] == plugin_id]:
            del self._templates[key]
        self._reindex()
        return cat

    def replace(self, plugin_id: str, cat: PluginCatalog) -> set[str]:
        """Swap ``plugin_id``'s catalog for ``cat`` (a reload or a restarted worker); which lists changed
        (``tools``, ``resources``, ``prompts``), for list_changed notifications. Nothing changes on a
        collision (PluginLoadError)."""
        self.check(plugin_id, cat)
        old = self.remove(plugin_id) or PluginCatalog()
        self.add(plugin_id, cat)
        changed = set()
        if old.tools != cat.tools:
            changed.add("tools")
        if old.resources != cat.resources or old.templates != cat.templates:
            changed.add("resources")
        if old.prompts != cat.prompts:
            changed.add("prompts")
        return changed

    def _reindex(self) -> None:
        self._lists.clear()
        # The most specific template first: the longest literal prefix, then registration order.
        self._template_order = sorted(self._templates.values(), key=lambda e: -len(e[1].literal_prefix))

    # -- lookups ----------------------------------------------------------------------------------------

    def tool_owner(self, name: str) -> str | None:
        return self._tools.get(name)

    def prompt_owner(self, name: str) -> str | None:
        return self._prompts.get(name)

    def resource_owner(self, uri: str) -> str | None:
        return self._resources.get(uri)

    def template_owner(self, template: str) -> str | None:
        entry = self._templates.get(template)
        return entry[0] if entry else None

    def match(self, uri: str) -> tuple[str, str] | None:
        """(owner, template text) of the most specific template matching ``uri``, or None."""
        for owner, tmpl in self._template_order:
            if tmpl.match(uri) is not None:
                return owner, tmpl.template
        return None

    def _list(self, key: str) -> list[Any]:
        out = self._lists.get(key)
        if out is None:
            out = self._lists[key] = [item for cat in self._offers.values() for item in getattr(cat, key)]
        return list(out)

    def tools(self) -> list[ToolDef]:
        return self._list("tools")

    def tool_def(self, name: str) -> ToolDef | None:
        """The definition of tool ``name`` (its annotations say its class: read, write, destructive)."""
        owner = self._tools.get(name)
        offer = self._offers.get(owner) if owner is not None else None
        if offer is None:
            return None
        for tool in offer.tools:
            if tool.name == name:
                return tool
        return None

    def resources(self) -> list[ResourceDef]:
        return self._list("resources")

    def resource_templates(self) -> list[ResourceTemplateDef]:
        return self._list("templates")

    def prompts(self) -> list[PromptDef]:
        return self._list("prompts")
