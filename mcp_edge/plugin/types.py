"""MCP content, results and definitions shared by plugins, the registry and the protocol core.

They are msgspec Structs named and spelled as on the wire (camelCase fields,
``type`` tags), so results encode straight to JSON with no conversion step;
unset optional fields are left out.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

__all__ = [
    "Annotations",
    "AudioContent",
    "BlobResourceContents",
    "Completion",
    "Content",
    "EmbeddedResource",
    "GetPromptResult",
    "ImageContent",
    "InputRequired",
    "LogLevel",
    "PromptArgument",
    "PromptDef",
    "PromptMessage",
    "ResourceContents",
    "ResourceDef",
    "ResourceLink",
    "ResourceTemplateDef",
    "TextContent",
    "TextResourceContents",
    "ToolAnnotations",
    "ToolDef",
    "ToolResult",
]

LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


class _Wire(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Base: optional fields left at their default are not encoded."""


class Annotations(_Wire):
    audience: list[Literal["user", "assistant"]] | None = None
    priority: float | None = None
    lastModified: str | None = None


class TextContent(_Wire, tag_field="type", tag="text"):
    text: str
    annotations: Annotations | None = None


class ImageContent(_Wire, tag_field="type", tag="image"):
    data: str  # base64
    mimeType: str
    annotations: Annotations | None = None


class AudioContent(_Wire, tag_field="type", tag="audio"):
    data: str  # base64
    mimeType: str
    annotations: Annotations | None = None


class ResourceLink(_Wire, tag_field="type", tag="resource_link"):
    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    mimeType: str | None = None
    size: int | None = None
    annotations: Annotations | None = None


class TextResourceContents(_Wire):
    uri: str
    text: str
    mimeType: str | None = None


class BlobResourceContents(_Wire):
    uri: str
    blob: str  # base64
    mimeType: str | None = None


ResourceContents = TextResourceContents | BlobResourceContents


class EmbeddedResource(_Wire, tag_field="type", tag="resource"):
    resource: TextResourceContents | BlobResourceContents
    annotations: Annotations | None = None


Content = TextContent | ImageContent | AudioContent | ResourceLink | EmbeddedResource


class ToolResult(_Wire):
    """The result of tools/call. ``isError`` marks a tool-level failure the model should see."""

    content: list[Content] = msgspec.field(default_factory=list)
    structuredContent: dict[str, Any] | None = None
    isError: bool = False


class ToolAnnotations(_Wire):
    title: str | None = None
    readOnlyHint: bool | None = None
    destructiveHint: bool | None = None
    idempotentHint: bool | None = None
    openWorldHint: bool | None = None


class ToolDef(_Wire):
    name: str
    inputSchema: dict[str, Any]
    title: str | None = None
    description: str | None = None
    outputSchema: dict[str, Any] | None = None
    annotations: ToolAnnotations | None = None


class ResourceDef(_Wire):
    uri: str
    name: str
    title: str | None = None
    description: str | None = None
    mimeType: str | None = None
    size: int | None = None


class ResourceTemplateDef(_Wire):
    uriTemplate: str
    name: str
    title: str | None = None
    description: str | None = None
    mimeType: str | None = None


class PromptArgument(_Wire):
    name: str
    description: str | None = None
    required: bool = False


class PromptDef(_Wire):
    name: str
    title: str | None = None
    description: str | None = None
    arguments: list[PromptArgument] | None = None


class PromptMessage(_Wire):
    role: Literal["user", "assistant"]
    content: Content


class GetPromptResult(_Wire):
    messages: list[PromptMessage]
    description: str | None = None


class Completion(_Wire):
    """The ``completion`` member of a completion/complete result (at most 100 values)."""

    values: list[str]
    total: int | None = None
    hasMore: bool | None = None


class InputRequired(_Wire):
    """Returned by a tool, prompt or resource handler (protocol 2026-07-28) that needs input from the client.

    ``inputRequests`` maps keys of the handler's choosing to ``{"method": "elicitation/create" |
    "sampling/createMessage" | "roots/list", "params": {...}}``; the client retries the request with
    ``inputResponses`` under the same keys, and the handler sees them as ``ctx.input_responses``.
    ``requestState`` comes back verbatim as ``ctx.request_state``: the runtime signs it on the way out
    and refuses a retry whose state was tampered with.
    """

    inputRequests: dict[str, dict[str, Any]] | None = None
    requestState: str | None = None
