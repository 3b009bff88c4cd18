"""Results shaped to the protocol revision a handshake-era client negotiated.

The runtime builds every result for the newest revision. A client that
negotiated an older one must not get what later revisions added, so
``shape(method, result, version)`` leaves those members out, or maps them to
something the client's revision has. What each revision added comes from its
schema (``schema/<revision>/schema.ts`` of the MCP specification) and is the
one table ``_ADDED`` below; each older revision's rules are built from it once,
at import.

The newest revision needs no shaping: the caller skips ``shape`` for it, and
``shape`` itself returns the result untouched for any revision it has no rules
for. Pure functions over dicts and lists (no I/O), like the rest of the core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from mcp_edge.mcp import jsonrpc
from mcp_edge.mcp.versions import HANDSHAKE_VERSIONS

__all__ = ["client_capabilities", "shape", "shaped_versions"]

# What each revision added, per kind of object (from the revisions' schema.ts):
#
#   kind            object(s)                                 members (or content types)
#   tool            Tool (tools/list)                         annotations 03-26; title, outputSchema, _meta 06-18;
#                                                             icons, execution 11-25
#   resource        Resource, ResourceTemplate                title, _meta 06-18; icons 11-25
#   prompt          Prompt                                    title, _meta 06-18; icons 11-25
#   argument        PromptArgument                            title 06-18
#   implementation  serverInfo (Implementation)               title 06-18; icons, description, websiteUrl 11-25
#   capabilities    ServerCapabilities                        completions 03-26; tasks 11-25
#   call_result     CallToolResult                            structuredContent 06-18
#   block           content blocks, resource contents         _meta 06-18
#   annotations     Annotations                               lastModified 06-18
#   content         content block types                       audio 03-26; resource_link 06-18
#   client          ClientCapabilities (the client's offer)   elicitation 06-18; tasks 11-25
#
# 2024-11-05 already has Result._meta, Resource.annotations (Annotated), resources/templates/list,
# completion/complete (without the capability) and embedded resources, so those pass to every client.
# JSON-RPC batches (03-26 only) are a framing matter: see versions.BATCH_VERSIONS.
_ADDED: Final[tuple[tuple[str, str, frozenset[str]], ...]] = (
    ("2025-03-26", "tool", frozenset({"annotations"})),
    ("2025-03-26", "capabilities", frozenset({"completions"})),
    ("2025-03-26", "content", frozenset({"audio"})),
    ("2025-06-18", "tool", frozenset({"title", "outputSchema", "_meta"})),
    ("2025-06-18", "resource", frozenset({"title", "_meta"})),
    ("2025-06-18", "prompt", frozenset({"title", "_meta"})),
    ("2025-06-18", "argument", frozenset({"title"})),
    ("2025-06-18", "implementation", frozenset({"title"})),
    ("2025-06-18", "call_result", frozenset({"structuredContent"})),
    ("2025-06-18", "block", frozenset({"_meta"})),
    ("2025-06-18", "annotations", frozenset({"lastModified"})),
    ("2025-06-18", "content", frozenset({"resource_link"})),
    ("2025-06-18", "client", frozenset({"elicitation"})),
    ("2025-11-25", "tool", frozenset({"icons", "execution"})),
    ("2025-11-25", "resource", frozenset({"icons"})),
    ("2025-11-25", "prompt", frozenset({"icons"})),
    ("2025-11-25", "implementation", frozenset({"icons", "description", "websiteUrl"})),
    ("2025-11-25", "capabilities", frozenset({"tasks"})),
    ("2025-11-25", "client", frozenset({"tasks"})),
)


@dataclass(frozen=True, slots=True)
class _Rules:
    """What one older revision must not get: members to drop per kind, content types to map."""

    version: str
    drop: dict[str, frozenset[str]] = field(default_factory=dict)

    def keys(self, kind: str) -> frozenset[str]:
        return self.drop.get(kind, frozenset())


def _rules_for(version: str) -> _Rules:
    # Revision names are dates, so later revisions sort after earlier ones.
    drop: dict[str, set[str]] = {}
    for added, kind, members in _ADDED:
        if added > version:
            drop.setdefault(kind, set()).update(members)
    return _Rules(version, {kind: frozenset(members) for kind, members in drop.items()})


_RULES: Final[dict[str, _Rules]] = {
    v: rules for v in HANDSHAKE_VERSIONS if (rules := _rules_for(v)).drop
}


def shaped_versions() -> frozenset[str]:
    """The revisions whose results ``shape`` changes (every handshake revision but the newest)."""
    return frozenset(_RULES)


# -- one object at a time ----------------------------------------------------------------------------------


def _without(obj: Any, keys: frozenset[str]) -> Any:
    if not isinstance(obj, dict) or not keys or keys.isdisjoint(obj):
        return obj
    return {k: v for k, v in obj.items() if k not in keys}


def _annotated(obj: dict[str, Any], rules: _Rules) -> dict[str, Any]:
    """``obj`` with its Annotations shaped; an Annotations object left empty is dropped."""
    ann = obj.get("annotations")
    if not isinstance(ann, dict):
        return obj
    shaped = _without(ann, rules.keys("annotations"))
    if shaped is ann:
        return obj
    out = dict(obj)
    if shaped:
        out["annotations"] = shaped
    else:
        del out["annotations"]
    return out


def _content_note(block: dict[str, Any], rules: _Rules) -> dict[str, Any]:
    """A text block standing in for a content type the client's revision lacks."""
    kind = block.get("type")
    if kind == "resource_link":
        uri = block.get("uri")
        label = block.get("title") or block.get("name")
        text = f"Resource link: {uri}"
        if label and label != uri:
            text += f" ({label})"
        if block.get("mimeType"):
            text += f", {block['mimeType']}"
        if block.get("description"):
            text += f": {block['description']}"
        text += " (read it with resources/read)"
    elif kind == "audio":
        data = block.get("data")
        size = len(data) * 3 // 4 if isinstance(data, str) else 0
        text = (f"[audio content ({block.get('mimeType', 'unknown type')}, about {size} bytes) left out: "
                f"protocol {rules.version} has no audio content]")
    else:
        text = f"[{kind} content left out: protocol {rules.version} does not have it]"
    note: dict[str, Any] = {"type": "text", "text": text}
    ann = block.get("annotations")
    if isinstance(ann, dict):
        note["annotations"] = ann
    return _annotated(note, rules)


def _block(block: Any, rules: _Rules) -> Any:
    """One content block (tool result, prompt message) as the client's revision has it."""
    if not isinstance(block, dict):
        return block
    if block.get("type") in rules.keys("content"):
        return _content_note(block, rules)
    out = _annotated(_without(block, rules.keys("block")), rules)
    inner = out.get("resource")
    if isinstance(inner, dict):  # an embedded resource: its contents shaped as well
        shaped = _without(inner, rules.keys("block"))
        if shaped is not inner:
            out = {**out, "resource": shaped}
    return out


def _each(items: Any, fn: Callable[[Any], Any]) -> Any:
    return [fn(item) for item in items] if isinstance(items, list) else items


# -- one result per method ---------------------------------------------------------------------------------


def _initialize(result: dict[str, Any], rules: _Rules) -> dict[str, Any]:
    result["capabilities"] = _without(result.get("capabilities"), rules.keys("capabilities"))
    result["serverInfo"] = _without(result.get("serverInfo"), rules.keys("implementation"))
    return result


def _tools_list(result: dict[str, Any], rules: _Rules) -> dict[str, Any]:
    keys = rules.keys("tool")
    result["tools"] = _each(result.get("tools"), lambda t: _without(t, keys))
    return result


def _tools_call(result: dict[str, Any], rules: _Rules) -> dict[str, Any]:
    structured = result.get("structuredContent")
    out: dict[str, Any] = _without(result, rules.keys("call_result"))
    out["content"] = _each(out.get("content", []), lambda b: _block(b, rules))
    if "structuredContent" not in out and structured is not None and not out["content"]:
        # Tools should carry structured output as text too (2025-06-18); one that did not still says it.
        out["content"] = [{"type": "text", "text": jsonrpc.encode(structured).decode()}]
    return out


def _resources_list(key: str) -> Callable[[dict[str, Any], _Rules], dict[str, Any]]:
    def shape_list(result: dict[str, Any], rules: _Rules) -> dict[str, Any]:
        keys = rules.keys("resource")
        result[key] = _each(result.get(key), lambda r: _annotated(_without(r, keys), rules)
                            if isinstance(r, dict) else r)
        return result

    return shape_list


def _resources_read(result: dict[str, Any], rules: _Rules) -> dict[str, Any]:
    keys = rules.keys("block")
    result["contents"] = _each(result.get("contents"), lambda c: _without(c, keys))
    return result


def _prompt(prompt: Any, rules: _Rules) -> Any:
    out = _without(prompt, rules.keys("prompt"))
    if isinstance(out, dict) and isinstance(out.get("arguments"), list):
        keys = rules.keys("argument")
        out = {**out, "arguments": [_without(a, keys) for a in out["arguments"]]}
    return out


def _prompts_list(result: dict[str, Any], rules: _Rules) -> dict[str, Any]:
    result["prompts"] = _each(result.get("prompts"), lambda p: _prompt(p, rules))
    return result


def _prompts_get(result: dict[str, Any], rules: _Rules) -> dict[str, Any]:
    def message(msg: Any) -> Any:
        if not isinstance(msg, dict) or "content" not in msg:
            return msg
        return {**msg, "content": _block(msg["content"], rules)}

    result["messages"] = _each(result.get("messages"), message)
    return result


_SHAPERS: Final[dict[str, Callable[[dict[str, Any], _Rules], dict[str, Any]]]] = {
    "initialize": _initialize,
    "tools/list": _tools_list,
    "tools/call": _tools_call,
    "resources/list": _resources_list("resources"),
    "resources/templates/list": _resources_list("resourceTemplates"),
    "resources/read": _resources_read,
    "prompts/list": _prompts_list,
    "prompts/get": _prompts_get,
}


def shape(method: str, result: Any, version: str) -> Any:
    """``result`` of ``method`` as a client of protocol ``version`` may receive it.

    The result may be a msgspec Struct or plain data; a shaped result is a new
    dict (the caller's objects are never changed). Results of methods and
    revisions with nothing to shape come back as they are.
    """
    rules = _RULES.get(version)
    shaper = _SHAPERS.get(method) if rules is not None else None
    if shaper is None or rules is None:
        return result
    built = msgspec.to_builtins(result)  # fresh dicts and lists: shaping never touches the registry's objects
    if not isinstance(built, dict):
        return result
    return shaper(built, rules)


def client_capabilities(caps: dict[str, Any], version: str) -> dict[str, Any]:
    """The capabilities a client of ``version`` declared, less those its revision does not have.

    A 2024-11-05 or 2025-03-26 client has no elicitation, whatever it sends: a handler that requires it
    gets the missing-capability error instead of sending the client a request it cannot know.
    """
    rules = _RULES.get(version)
    out: dict[str, Any] = caps if rules is None else _without(caps, rules.keys("client"))
    return out
