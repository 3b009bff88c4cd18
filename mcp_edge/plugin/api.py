"""The Python plugin API: the ``Plugin`` protocol, ``PluginBase`` and the handler decorators.

A plugin class declares its tools, resources, resource templates, prompts and
completions with decorators on ``async`` methods. The decorators only attach a
spec to the function; the JSON Schemas and argument converters are built once
per class when the registry loads it (``mcp_edge.plugin.handlers``), never per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, TypeVar, overload, runtime_checkable

from mcp_edge.plugin.types import ToolAnnotations

if TYPE_CHECKING:
    from mcp_edge.plugin.context import PluginContext

__all__ = [
    "PLUGIN_API_VERSION",
    "CompletionSpec",
    "Plugin",
    "PluginBase",
    "PromptSpec",
    "ResourceSpec",
    "TemplateSpec",
    "ToolSpec",
    "completion",
    "prompt",
    "resource",
    "resource_template",
    "tool",
]

PLUGIN_API_VERSION = 1
"""The Python plugin API this runtime speaks: ``abi`` in a Python plugin's ``plugin.toml`` (and ``Plugin.abi``)."""

SPEC_ATTR = "__mcp_edge_spec__"

F = TypeVar("F", bound=Callable[..., Any])


@runtime_checkable
class Plugin(Protocol):
    """What the registry needs of a plugin object. ``PluginBase`` gives defaults for all of it.

    Metadata the registry also reads when present, as class attributes:
    ``version``, ``description``, ``abi``, ``requires``, ``config_schema``
    (for entry-point plugins, which have no ``plugin.toml``).
    """

    @property
    def id(self) -> str: ...
    @property
    def capabilities(self) -> AbstractSet[str]: ...
    async def initialize(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        """Called once, in dependency order, with the merged and validated config."""
        ...
    async def shutdown(self) -> None:
        """Called once at stop, in reverse dependency order; release what initialize took."""
        ...


class PluginBase:
    """Convenience base of Python plugins: metadata defaults, ``config`` and ``ctx`` kept by ``initialize``."""

    id: str = ""
    version: str = "0.0.0"
    description: str = ""
    abi: int = PLUGIN_API_VERSION
    requires: Mapping[str, str] = MappingProxyType({})
    capabilities: AbstractSet[str] = frozenset()
    config_schema: Mapping[str, Any] | None = None

    config: Mapping[str, Any]
    ctx: PluginContext

    async def initialize(self, config: Mapping[str, Any], ctx: PluginContext) -> None:
        self.config = config
        self.ctx = ctx

    async def shutdown(self) -> None:
        return None


# --- specs the decorators attach (NamedTuples: a tenth of a dataclass's creation cost at import) ---


class ToolSpec(NamedTuple):
    name: str | None
    title: str | None
    description: str | None
    annotations: ToolAnnotations | None
    output_schema: Mapping[str, Any] | None
    structured: bool | None


class ResourceSpec(NamedTuple):
    uri: str
    name: str | None
    title: str | None
    description: str | None
    mime_type: str | None
    size: int | None


class TemplateSpec(NamedTuple):
    uri_template: str
    name: str | None
    title: str | None
    description: str | None
    mime_type: str | None


class PromptSpec(NamedTuple):
    name: str | None
    title: str | None
    description: str | None


class CompletionSpec(NamedTuple):
    prompt: str | None
    resource_template: str | None
    argument: str


Spec = ToolSpec | ResourceSpec | TemplateSpec | PromptSpec | CompletionSpec


def _attach(fn: F, spec: Spec) -> F:
    if not callable(fn):
        raise TypeError(f"@{type(spec).__name__} decorates a function, not {fn!r}")
    existing = getattr(fn, SPEC_ATTR, None)
    if existing is not None:
        raise TypeError(f"{fn.__qualname__} is already a {type(existing).__name__}; one decorator per method")
    setattr(fn, SPEC_ATTR, spec)
    return fn


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    annotations: ToolAnnotations | None = None,
    output_schema: Mapping[str, Any] | None = None,
    structured: bool | None = None,
) -> Callable[[F], F]: ...
def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    annotations: ToolAnnotations | None = None,
    output_schema: Mapping[str, Any] | None = None,
    structured: bool | None = None,
) -> F | Callable[[F], F]:
    """Declare a method as an MCP tool (``@tool`` or ``@tool(name=..., ...)``).

    The input schema comes from the parameters' type hints (a ``RequestContext``
    parameter is injected, not part of it); the description from the docstring's
    first paragraph unless given. A return annotation that is a msgspec Struct,
    TypedDict, dataclass or ``dict[str, X]`` gives an ``outputSchema`` and
    ``structuredContent``; ``structured=False`` turns that off, ``output_schema``
    sets the schema by hand.
    """
    spec = ToolSpec(name, title, description, annotations, output_schema, structured)
    if fn is not None:
        return _attach(fn, spec)
    return lambda f: _attach(f, spec)


def resource(
    uri: str,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    mime_type: str | None = None,
    size: int | None = None,
) -> Callable[[F], F]:
    """Declare a method as the reader of the fixed resource ``uri``.

    It returns ``str`` (text), ``bytes`` (a base64 blob), anything msgspec encodes
    (JSON text, ``application/json``), or a list of resource contents.
    """
    spec = ResourceSpec(uri, name, title, description, mime_type, size)
    return lambda f: _attach(f, spec)


def resource_template(
    uri_template: str,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    mime_type: str | None = None,
) -> Callable[[F], F]:
    """Declare a method as the reader of every URI matching an RFC 6570 template.

    ``{var}`` matches one path segment (percent-decoded), ``{+var}`` any text
    including ``/``; each variable is passed as the keyword argument of that
    name, converted to its type hint.
    """
    spec = TemplateSpec(uri_template, name, title, description, mime_type)
    return lambda f: _attach(f, spec)


@overload
def prompt(fn: F, /) -> F: ...
@overload
def prompt(
    *, name: str | None = None, title: str | None = None, description: str | None = None
) -> Callable[[F], F]: ...
def prompt(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
) -> F | Callable[[F], F]:
    """Declare a method as an MCP prompt; its parameters are the prompt's (string) arguments.

    It returns ``str`` (one user message), a ``PromptMessage``, a list of them (or
    of strings), or a ``GetPromptResult``.
    """
    spec = PromptSpec(name, title, description)
    if fn is not None:
        return _attach(fn, spec)
    return lambda f: _attach(f, spec)


def completion(
    *,
    argument: str,
    prompt: str | None = None,
    resource_template: str | None = None,
) -> Callable[[F], F]:
    """Declare a method completing ``argument`` of a prompt (by name) or a resource template (by template).

    It is called as ``method(value, context)`` — the partial value and the
    arguments already resolved — and returns a list of strings or a ``Completion``.
    Arguments typed ``Literal[...]`` or an ``Enum`` complete by themselves.
    """
    if (prompt is None) == (resource_template is None):
        raise TypeError("@completion needs exactly one of prompt= or resource_template=")
    spec = CompletionSpec(prompt, resource_template, argument)
    return lambda f: _attach(f, spec)
