"""Plugins: the Python API (``PluginBase``, decorators), native plugins (C ABI), and the registry.

A Python plugin::

    from mcp_edge.plugin import PluginBase, RequestContext, tool

    class Hello(PluginBase):
        id = "hello"
        capabilities = frozenset({"tools"})

        @tool
        async def echo(self, text: str, times: int = 1, ctx: RequestContext | None = None) -> str:
            \"\"\"Echo text back.\"\"\"
            return text * times

The runtime drives a ``Registry``: ``discover()``, ``await start()``, then
``tools()`` / ``call_tool()`` / ``read_resource()`` / ``get_prompt()`` /
``complete()``, and ``await stop()``.
"""

from mcp_edge.plugin.api import (
    PLUGIN_API_VERSION,
    Plugin,
    PluginBase,
    completion,
    prompt,
    resource,
    resource_template,
    tool,
)
from mcp_edge.plugin.context import PluginContext, RequestContext
from mcp_edge.plugin.defaults import DefaultPluginContext, NullRequestContext
from mcp_edge.plugin.manifest import NATIVE_ABI_VERSION, Manifest, read_manifest
from mcp_edge.plugin.registry import (
    PLUGIN_DIRS_ENV,
    RUNTIME_PLUGIN_ID,
    STATUS_URI,
    PluginKind,
    PluginRecord,
    PluginState,
    Registry,
    default_plugin_dirs,
)
from mcp_edge.plugin.types import (
    Annotations,
    AudioContent,
    BlobResourceContents,
    Completion,
    Content,
    EmbeddedResource,
    GetPromptResult,
    ImageContent,
    LogLevel,
    PromptArgument,
    PromptDef,
    PromptMessage,
    ResourceContents,
    ResourceDef,
    ResourceLink,
    ResourceTemplateDef,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
    ToolDef,
    ToolResult,
)

__all__ = [
    "NATIVE_ABI_VERSION",
    "PLUGIN_API_VERSION",
    "PLUGIN_DIRS_ENV",
    "RUNTIME_PLUGIN_ID",
    "STATUS_URI",
    "Annotations",
    "AudioContent",
    "BlobResourceContents",
    "Completion",
    "Content",
    "DefaultPluginContext",
    "EmbeddedResource",
    "GetPromptResult",
    "ImageContent",
    "LogLevel",
    "Manifest",
    "NullRequestContext",
    "Plugin",
    "PluginBase",
    "PluginContext",
    "PluginKind",
    "PluginRecord",
    "PluginState",
    "PromptArgument",
    "PromptDef",
    "PromptMessage",
    "Registry",
    "RequestContext",
    "ResourceContents",
    "ResourceDef",
    "ResourceLink",
    "ResourceTemplateDef",
    "TextContent",
    "TextResourceContents",
    "ToolAnnotations",
    "ToolDef",
    "ToolResult",
    "completion",
    "default_plugin_dirs",
    "prompt",
    "read_manifest",
    "resource",
    "resource_template",
    "tool",
]
