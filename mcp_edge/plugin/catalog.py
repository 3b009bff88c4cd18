"""What the plugins offer, as plain data, and the runtime's routing index over it.

``PluginCatalog`` is one plugin's tools, resources, resource templates, prompts and completion keys: msgspec
Structs with nothing executable in them, so a worker process sends its plugin's catalog to the runtime as
msgpack. ``Catalog`` is the runtime's index over every active plugin's catalog: a name, URI or template ->
the id of the plugin that owns it (the registry then asks that plugin's host), collision checks, the cached
lists clients page through, and the most specific template for a URI.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from mcp_edge.errors import PluginError, PluginLoadError
from mcp_edge.plugin.types import PromptDef, ResourceDef, ResourceTemplateDef, ToolDef
from mcp_edge.plugin.uritemplate import UriTemplate

__all__ = ["Catalog", "PluginCatalog"]

log = logging.getLogger("mcp_edge.plugin")


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
        self._published: dict[str, list[ResourceDef]] = {}
        self._staged: dict[str, tuple[list[ResourceDef], int]] = {}  # published during initialize, before add
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
        staged = self._staged.pop(plugin_id, None)
        if staged is not None:
            try:
                self.publish(plugin_id, *staged)
            except PluginError as exc:
                log.warning("%s", exc)

    def remove(self, plugin_id: str) -> PluginCatalog | None:
        """Stop routing to ``plugin_id``; its catalog, if it had one."""
        self._staged.pop(plugin_id, None)
        cat = self._offers.pop(plugin_id, None)
        if cat is None:
            return None
        self._published.pop(plugin_id, None)
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
        kept = self._published.get(plugin_id, [])
        old = self.remove(plugin_id) or PluginCatalog()
        self.add(plugin_id, cat)
        if kept:  # what the plugin published goes on, less what the new templates no longer match
            own = [t for owner, t in self._template_order if owner == plugin_id]
            self._published[plugin_id] = [r for r in kept if r.uri not in self._resources
                                          and any(t.match(r.uri) is not None for t in own)]
            self._lists.pop("resources", None)
        changed = set()
        if self._published.get(plugin_id, []) != kept:
            changed.add("resources")
        if old.tools != cat.tools:
            changed.add("tools")
        if old.resources != cat.resources or old.templates != cat.templates:
            changed.add("resources")
        if old.prompts != cat.prompts:
            changed.add("prompts")
        return changed

    def publish(self, plugin_id: str, resources: list[ResourceDef], limit: int) -> bool:
        """Set the concrete resources ``plugin_id`` lists besides its fixed ones (see
        ``PluginContext.publish_resources``); whether the list changed. PluginError, nothing changed, when one is
        not a match of the plugin's own templates, is a fixed resource, is given twice or they are over ``limit``.
        A plugin not in the index yet (publishing from its initialize) has its list kept until ``add``."""
        if len(resources) > limit:
            raise PluginError(f"plugin {plugin_id} published {len(resources)} resources, over the "
                              f"max_published_resources limit of {limit}")
        if plugin_id not in self._offers:
            self._staged[plugin_id] = (list(resources), limit)
            return False
        own = [t for owner, t in self._template_order if owner == plugin_id]
        seen: set[str] = set()
        for res in resources:
            if not isinstance(res, ResourceDef):
                raise PluginError(f"plugin {plugin_id} published {type(res).__name__}, not a ResourceDef")
            if res.uri in seen or res.uri in self._resources:
                raise PluginError(f"plugin {plugin_id} published {res.uri!r} twice, or it is a fixed resource")
            if not any(t.match(res.uri) is not None for t in own):
                raise PluginError(f"plugin {plugin_id} published {res.uri!r}, which none of its resource templates "
                                  "matches (a published resource is read through its template)")
            seen.add(res.uri)
        if self._published.get(plugin_id, []) == resources:
            return False
        if resources:
            self._published[plugin_id] = list(resources)
        else:
            self._published.pop(plugin_id, None)
        self._lists.pop("resources", None)
        return True

    def drop_staged(self, plugin_id: str) -> None:
        """Forget what ``plugin_id`` published before it was indexed (its initialize failed)."""
        self._staged.pop(plugin_id, None)

    def published(self, plugin_id: str) -> list[ResourceDef]:
        return list(self._published.get(plugin_id, ()))

    def published_owner(self, uri: str) -> str | None:
        """The plugin that published ``uri`` (the owner of the template it is read through), or None."""
        found = self.match(uri)
        if found is None or not any(r.uri == uri for r in self._published.get(found[0], ())):
            return None
        return found[0]

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
        """The fixed resources, then the published ones, plugin by plugin."""
        out = self._lists.get("resources")
        if out is None:
            out = self._lists["resources"] = [item for cat in self._offers.values() for item in cat.resources] + \
                [item for pid in self._offers for item in self._published.get(pid, ())]
        return list(out)

    def resource_templates(self) -> list[ResourceTemplateDef]:
        return self._list("templates")

    def prompts(self) -> list[PromptDef]:
        return self._list("prompts")
