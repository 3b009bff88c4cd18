"""Handlers built once per plugin class from its decorated methods.

For each method: a msgspec Struct of its parameters (``forbid_unknown_fields``)
that validates and converts a request's arguments in one C call, the JSON
Schema derived from it (built on first listing, then kept), and the conversion
of what the method returns into MCP results. A call costs a dict lookup, one
``msgspec.convert``, the method itself and the result conversion.
"""

from __future__ import annotations

import base64
import copy
import enum
import inspect
import logging
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from mcp_edge.errors import (
    InvalidArgumentsError,
    PluginError,
    PluginLoadError,
    PromptNotFoundError,
    ProtocolError,
    ResourceNotFoundError,
    ToolNotFoundError,
)
from mcp_edge.plugin.api import SPEC_ATTR, CompletionSpec, PromptSpec, ResourceSpec, TemplateSpec, ToolSpec
from mcp_edge.plugin.context import PluginContext, RequestContext
from mcp_edge.plugin.schema import doc_description, doc_params, is_structured, object_schema, type_schema
from mcp_edge.plugin.types import (
    AudioContent,
    BlobResourceContents,
    Completion,
    EmbeddedResource,
    GetPromptResult,
    ImageContent,
    InputRequired,
    PromptArgument,
    PromptDef,
    PromptMessage,
    ResourceContents,
    ResourceDef,
    ResourceLink,
    ResourceTemplateDef,
    TextContent,
    TextResourceContents,
    ToolDef,
    ToolResult,
)
from mcp_edge.plugin.uritemplate import UriTemplate

__all__ = [
    "CompletionHandler",
    "HandlerTable",
    "PromptHandler",
    "ResourceHandler",
    "TemplateHandler",
    "ToolHandler",
    "handlers_of",
    "to_completion",
    "to_prompt_result",
    "to_resource_contents",
    "to_tool_result",
]

log = logging.getLogger("mcp_edge.plugin")

_CONTENT = (TextContent, ImageContent, AudioContent, ResourceLink, EmbeddedResource)
_RESOURCE_CONTENTS = (TextResourceContents, BlobResourceContents)
# Errors a handler raises on purpose for the runtime to answer as JSON-RPC errors.
_PASS_THROUGH = (InvalidArgumentsError, ToolNotFoundError, ResourceNotFoundError, PromptNotFoundError, ProtocolError)
# Names a plugin may leave unimported at run time (under TYPE_CHECKING) in its hints.
_LOCALNS = {"RequestContext": RequestContext, "PluginContext": PluginContext}
_MAX_COMPLETIONS = 100

_convert = msgspec.convert
_asdict = msgspec.structs.asdict
_encode = msgspec.json.encode
_to_builtins = msgspec.to_builtins


# --- results ---------------------------------------------------------------------------------


def to_tool_result(value: Any, tool_name: str, structured: bool = True) -> ToolResult | InputRequired:
    """What a tool method returned, as a ToolResult.

    ``str`` is one text block; a ToolResult is kept; content blocks (one or a
    list) become the content; ``bytes`` become an embedded blob resource;
    ``None`` no content. Anything else is encoded with msgspec: a JSON text block,
    and when it is an object (Struct, dict, dataclass, TypedDict) and
    ``structured``, also the ``structuredContent``.
    """
    tp = type(value)
    if tp is str:
        return ToolResult(content=[TextContent(text=value)])
    if tp is ToolResult or tp is InputRequired:
        return value  # type: ignore[no-any-return]
    if value is None:
        return ToolResult()
    if isinstance(value, _CONTENT):
        return ToolResult(content=[value])
    if isinstance(value, str):
        return ToolResult(content=[TextContent(text=str(value))])
    if isinstance(value, bytes | bytearray | memoryview):
        blob = base64.b64encode(value).decode("ascii")
        res = BlobResourceContents(uri=f"mcp-edge://tool-result/{tool_name}", blob=blob,
                                   mimeType="application/octet-stream")
        return ToolResult(content=[EmbeddedResource(resource=res)])
    if isinstance(value, list) and value and all(isinstance(v, _CONTENT) for v in value):
        return ToolResult(content=list(value))
    data = _to_builtins(value)
    text = _encode(data).decode()
    if structured and isinstance(data, dict):
        return ToolResult(content=[TextContent(text=text)], structuredContent=data)
    return ToolResult(content=[TextContent(text=text)])


def error_result(exc: BaseException) -> ToolResult:
    """A tool-level failure the model sees: ``isError`` and ``"<Type>: <message>"``."""
    return ToolResult(content=[TextContent(text=f"{type(exc).__name__}: {exc}")], isError=True)


def to_resource_contents(value: Any, uri: str, mime_type: str | None) -> list[ResourceContents] | InputRequired:
    """What a resource method returned, as resource contents of ``uri``.

    ``str``: text (``text/plain`` unless the resource says); bytes: a base64 blob
    (``application/octet-stream`` unless it says); resource contents (one or a
    list) as they are; anything else: JSON text (``application/json``).
    """
    if isinstance(value, str):
        return [TextResourceContents(uri=uri, text=value, mimeType=mime_type or "text/plain")]
    if isinstance(value, InputRequired):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return [BlobResourceContents(uri=uri, blob=base64.b64encode(value).decode("ascii"),
                                     mimeType=mime_type or "application/octet-stream")]
    if isinstance(value, _RESOURCE_CONTENTS):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, _RESOURCE_CONTENTS) for v in value):
        return list(value)
    return [TextResourceContents(uri=uri, text=_encode(value).decode(), mimeType=mime_type or "application/json")]


def to_prompt_result(value: Any, description: str | None) -> GetPromptResult | InputRequired:
    """What a prompt method returned, as a GetPromptResult (a ``str`` is one user message)."""
    if isinstance(value, GetPromptResult | InputRequired):
        return value
    items = value if isinstance(value, list | tuple) else [value]
    messages: list[PromptMessage] = []
    for item in items:
        if isinstance(item, PromptMessage):
            messages.append(item)
        elif isinstance(item, str):
            messages.append(PromptMessage(role="user", content=TextContent(text=item)))
        elif isinstance(item, _CONTENT):
            messages.append(PromptMessage(role="user", content=item))
        else:
            raise TypeError(f"a prompt returns str, PromptMessage, a list of them or GetPromptResult, not {item!r}")
    return GetPromptResult(messages=messages, description=description)


def to_completion(value: Any) -> Completion:
    """A list of strings (or a Completion) as a Completion of at most 100 values."""
    if isinstance(value, Completion):
        if len(value.values) <= _MAX_COMPLETIONS:
            return value
        values = list(value.values)
    else:
        values = [str(v) for v in value]
    if len(values) > _MAX_COMPLETIONS:
        return Completion(values=values[:_MAX_COMPLETIONS], total=len(values), hasMore=True)
    return Completion(values=values, total=len(values), hasMore=False)


# --- parameters ------------------------------------------------------------------------------


def _strip(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _is_request_context(tp: Any) -> bool:
    tp = _strip(tp)
    if tp is RequestContext:
        return True
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return len(args) == 1 and _strip(args[0]) is RequestContext
    return False


def _choices(tp: Any) -> tuple[str, ...] | None:
    """The values of a Literal or Enum parameter (for completion), else None."""
    tp = _strip(tp)
    if typing.get_origin(tp) is typing.Literal:
        return tuple(str(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tuple(str(m.value) for m in tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        out: list[str] = []
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            sub = _choices(arg)
            if sub is None:
                return None
            out += sub
        return tuple(out)
    return None


class _Params:
    """A method's parameters: the fields of its arguments Struct and the injected context parameter."""

    def __init__(self, owner: type, fn: Callable[..., Any], what: str) -> None:
        self.where = f"{owner.__qualname__}.{fn.__name__} ({what})"
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError) as exc:
            raise PluginLoadError(f"{self.where}: cannot read its signature: {exc}") from None
        try:
            hints = typing.get_type_hints(fn, localns=_LOCALNS, include_extras=True)
        except Exception as exc:
            raise PluginLoadError(f"{self.where}: cannot resolve its type hints: {type(exc).__name__}: {exc}") from None
        params = list(sig.parameters.values())
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            raise PluginLoadError(f"{self.where}: must be a method taking self")
        self.ctx_param: str | None = None
        self.fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
        self.names: list[str] = []
        self.required: set[str] = set()
        self.hints = hints
        for p in params[1:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                raise PluginLoadError(f"{self.where}: parameter {p.name!r} must be an ordinary or keyword parameter")
            ann = hints.get(p.name, Any)
            if _is_request_context(ann):
                self.ctx_param = p.name
                continue
            self.names.append(p.name)
            if p.default is p.empty:
                self.fields.append((p.name, ann))
                self.required.add(p.name)
            elif isinstance(p.default, list | dict | set | bytearray):
                self.fields.append((p.name, ann, msgspec.field(default_factory=_copier(p.default))))
            else:
                self.fields.append((p.name, ann, p.default))
        self.returns = hints.get("return", Any)

    def struct(self, name: str) -> type[msgspec.Struct]:
        """The arguments Struct, its types checked now (an unsupported type fails at load, not per call)."""
        try:
            struct = msgspec.defstruct(name, self.fields, kw_only=True, forbid_unknown_fields=True)
            _convert({}, struct)
        except msgspec.ValidationError:
            pass  # required fields missing: expected, the types resolved
        except TypeError as exc:
            raise PluginLoadError(f"{self.where}: unsupported parameter type: {exc}") from None
        return struct


def _copier(value: Any) -> Callable[[], Any]:
    """A default factory giving a fresh copy of a mutable default each call."""
    return lambda: copy.deepcopy(value)


def _bad_args(what: str, exc: msgspec.ValidationError) -> InvalidArgumentsError:
    return InvalidArgumentsError(f"invalid arguments for {what}: {exc}")


# --- handlers --------------------------------------------------------------------------------


class ToolHandler:
    """One tool: ``call(instance, arguments, rctx)`` validates, calls and converts."""

    __slots__ = ("_def", "args_type", "ctx_param", "fn", "is_async", "name", "structured", "what")

    def __init__(self, owner: type, fn: Callable[..., Any], spec: ToolSpec) -> None:
        self.name = spec.name or fn.__name__
        self.what = f"tool '{self.name}'"
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        params = _Params(owner, fn, self.what)
        self.args_type = params.struct(f"{self.name}_arguments")
        self.ctx_param = params.ctx_param
        returns_structured = is_structured(params.returns)
        if spec.structured and not returns_structured and spec.output_schema is None:
            raise PluginLoadError(
                f"{params.where}: structured=True needs a return annotation that is a msgspec Struct, "
                f"TypedDict, dataclass or dict[str, X], not {params.returns!r}"
            )
        self.structured = spec.structured is not False
        output: dict[str, Any] | None = None
        try:
            if spec.output_schema is not None:
                output = dict(spec.output_schema)
            elif self.structured and returns_structured:
                output = type_schema(params.returns)
                output.pop("title", None)
            input_schema = object_schema(self.args_type, doc_params(fn.__doc__))
        except (TypeError, ValueError) as exc:
            text = " ".join(str(exc).split())
            raise PluginLoadError(f"{params.where}: no JSON Schema for its types: {text}") from None
        self._def = ToolDef(
            name=self.name,
            inputSchema=input_schema,
            title=spec.title,
            description=spec.description or doc_description(fn.__doc__),
            outputSchema=output,
            annotations=spec.annotations,
        )

    def definition(self) -> ToolDef:
        """The ToolDef of ``tools/list`` (built when the class was loaded)."""
        return self._def

    async def call(
        self, instance: Any, arguments: Mapping[str, Any] | None, rctx: RequestContext | None
    ) -> ToolResult | InputRequired:
        try:
            args = _convert({} if arguments is None else arguments, self.args_type)
        except msgspec.ValidationError as exc:
            raise _bad_args(self.what, exc) from None
        kwargs = _asdict(args)
        if self.ctx_param is not None:
            kwargs[self.ctx_param] = rctx
        try:
            value = await self.fn(instance, **kwargs) if self.is_async else self.fn(instance, **kwargs)
            return to_tool_result(value, self.name, self.structured)
        except _PASS_THROUGH:
            raise
        except Exception as exc:
            log.debug("%s failed", self.what, exc_info=True)
            return error_result(exc)


class ResourceHandler:
    """One fixed resource: ``read(instance, uri, rctx)``."""

    __slots__ = ("ctx_param", "definition", "fn", "is_async", "mime_type", "uri", "what")

    def __init__(self, owner: type, fn: Callable[..., Any], spec: ResourceSpec) -> None:
        self.uri = spec.uri
        self.what = f"resource {spec.uri}"
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        params = _Params(owner, fn, self.what)
        if params.required:
            raise PluginLoadError(
                f"{params.where}: a fixed resource takes no arguments; "
                f"{', '.join(sorted(params.required))} would need a resource template"
            )
        self.ctx_param = params.ctx_param
        self.mime_type = spec.mime_type
        self.definition = ResourceDef(
            uri=spec.uri,
            name=spec.name or fn.__name__,
            title=spec.title,
            description=spec.description or doc_description(fn.__doc__),
            mimeType=spec.mime_type,
            size=spec.size,
        )

    async def read(
        self, instance: Any, uri: str, rctx: RequestContext | None
    ) -> list[ResourceContents] | InputRequired:
        kwargs: dict[str, Any] = {} if self.ctx_param is None else {self.ctx_param: rctx}
        value = await self.fn(instance, **kwargs) if self.is_async else self.fn(instance, **kwargs)
        return to_resource_contents(value, uri, self.mime_type)


class TemplateHandler:
    """One resource template: ``match(uri)`` then ``read(instance, uri, variables, rctx)``."""

    __slots__ = ("args_type", "choices", "ctx_param", "definition", "fn", "is_async", "mime_type", "template",
                 "what")

    def __init__(self, owner: type, fn: Callable[..., Any], spec: TemplateSpec) -> None:
        self.what = f"resource template {spec.uri_template}"
        try:
            self.template = UriTemplate(spec.uri_template)
        except ValueError as exc:
            raise PluginLoadError(f"{owner.__qualname__}.{fn.__name__}: {exc}") from None
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        params = _Params(owner, fn, self.what)
        variables = set(self.template.variables)
        missing = variables - set(params.names)
        extra = params.required - variables
        if missing or extra:
            raise PluginLoadError(
                f"{params.where}: the template's variables ({', '.join(self.template.variables)}) and the "
                f"method's parameters must match: "
                + "; ".join(
                    part for part in (
                        f"no parameter for {', '.join(sorted(missing))}" if missing else "",
                        f"no variable for {', '.join(sorted(extra))}" if extra else "",
                    ) if part
                )
            )
        self.args_type = params.struct(f"{fn.__name__}_variables")
        self.ctx_param = params.ctx_param
        self.mime_type = spec.mime_type
        self.choices = {n: c for n in params.names if (c := _choices(params.hints.get(n, Any))) is not None}
        self.definition = ResourceTemplateDef(
            uriTemplate=spec.uri_template,
            name=spec.name or fn.__name__,
            title=spec.title,
            description=spec.description or doc_description(fn.__doc__),
            mimeType=spec.mime_type,
        )

    def match(self, uri: str) -> dict[str, str] | None:
        return self.template.match(uri)

    async def read(
        self, instance: Any, uri: str, variables: Mapping[str, str], rctx: RequestContext | None
    ) -> list[ResourceContents] | InputRequired:
        try:
            kwargs = _asdict(_convert(variables, self.args_type, strict=False))
        except msgspec.ValidationError as exc:
            raise _bad_args(f"{self.what} (uri {uri})", exc) from None
        if self.ctx_param is not None:
            kwargs[self.ctx_param] = rctx
        value = await self.fn(instance, **kwargs) if self.is_async else self.fn(instance, **kwargs)
        return to_resource_contents(value, uri, self.mime_type)


class PromptHandler:
    """One prompt: ``get(instance, arguments, rctx)``."""

    __slots__ = ("args_type", "choices", "ctx_param", "definition", "fn", "is_async", "name", "what")

    def __init__(self, owner: type, fn: Callable[..., Any], spec: PromptSpec) -> None:
        self.name = spec.name or fn.__name__
        self.what = f"prompt '{self.name}'"
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        params = _Params(owner, fn, self.what)
        self.args_type = params.struct(f"{self.name}_arguments")
        self.ctx_param = params.ctx_param
        self.choices = {n: c for n in params.names if (c := _choices(params.hints.get(n, Any))) is not None}
        docs = doc_params(fn.__doc__)
        arguments = [
            PromptArgument(name=n, description=_meta_description(params.hints.get(n)) or docs.get(n),
                           required=n in params.required)
            for n in params.names
        ]
        self.definition = PromptDef(
            name=self.name,
            title=spec.title,
            description=spec.description or doc_description(fn.__doc__),
            arguments=arguments or None,
        )

    async def get(
        self, instance: Any, arguments: Mapping[str, Any] | None, rctx: RequestContext | None
    ) -> GetPromptResult | InputRequired:
        try:
            kwargs = _asdict(_convert({} if arguments is None else arguments, self.args_type, strict=False))
        except msgspec.ValidationError as exc:
            raise _bad_args(self.what, exc) from None
        if self.ctx_param is not None:
            kwargs[self.ctx_param] = rctx
        value = await self.fn(instance, **kwargs) if self.is_async else self.fn(instance, **kwargs)
        return to_prompt_result(value, self.definition.description)


class CompletionHandler:
    """Completes one argument of a prompt or template: ``complete(instance, value, context)``."""

    __slots__ = ("argument", "fn", "is_async", "nargs", "target")

    def __init__(self, owner: type, fn: Callable[..., Any], spec: CompletionSpec) -> None:
        self.argument = spec.argument
        if spec.prompt is not None:
            self.target = ("prompt", spec.prompt)
        else:
            self.target = ("resource", str(spec.resource_template))
        self.fn = fn
        self.is_async = inspect.iscoroutinefunction(fn)
        n = len(inspect.signature(fn).parameters) - 1
        if n not in (1, 2):
            raise PluginLoadError(
                f"{owner.__qualname__}.{fn.__name__} (completion): takes (self, value) or (self, value, context)"
            )
        self.nargs = n

    async def complete(self, instance: Any, value: str, context: Mapping[str, str]) -> Completion:
        args = (value,) if self.nargs == 1 else (value, context)
        result = await self.fn(instance, *args) if self.is_async else self.fn(instance, *args)
        return to_completion(result)


def _meta_description(tp: Any) -> str | None:
    if typing.get_origin(tp) is typing.Annotated:
        for meta in typing.get_args(tp)[1:]:
            if isinstance(meta, msgspec.Meta) and meta.description:
                return meta.description
    return None


# --- the table of a class --------------------------------------------------------------------


class HandlerTable:
    """The handlers of one plugin class, keyed as the registry looks them up."""

    __slots__ = ("completions", "prompts", "resources", "templates", "tools")

    def __init__(self) -> None:
        self.tools: dict[str, ToolHandler] = {}
        self.resources: dict[str, ResourceHandler] = {}
        self.templates: dict[str, TemplateHandler] = {}
        self.prompts: dict[str, PromptHandler] = {}
        self.completions: dict[tuple[str, str, str], CompletionHandler] = {}

    def kinds(self) -> set[str]:
        """The MCP capabilities these handlers provide: tools, resources, prompts, completions."""
        out = set()
        if self.tools:
            out.add("tools")
        if self.resources or self.templates:
            out.add("resources")
        if self.prompts:
            out.add("prompts")
        if self.completions or any(h.choices for h in self.prompts.values()) or any(
            h.choices for h in self.templates.values()
        ):
            out.add("completions")
        return out


def _build(cls: type) -> HandlerTable:
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        members.update(vars(klass))
    table = HandlerTable()
    completions: list[tuple[str, CompletionHandler]] = []
    for attr, value in members.items():
        spec = getattr(value, SPEC_ATTR, None) if inspect.isfunction(value) else None
        if spec is None:
            continue
        if isinstance(spec, ToolSpec):
            tool = ToolHandler(cls, value, spec)
            _put(table.tools, tool.name, tool, cls, "tool")
        elif isinstance(spec, ResourceSpec):
            res = ResourceHandler(cls, value, spec)
            _put(table.resources, res.uri, res, cls, "resource")
        elif isinstance(spec, TemplateSpec):
            tmpl = TemplateHandler(cls, value, spec)
            _put(table.templates, tmpl.template.template, tmpl, cls, "resource template")
        elif isinstance(spec, PromptSpec):
            pr = PromptHandler(cls, value, spec)
            _put(table.prompts, pr.name, pr, cls, "prompt")
        elif isinstance(spec, CompletionSpec):
            completions.append((attr, CompletionHandler(cls, value, spec)))
    for attr, comp in completions:
        kind, ref = comp.target
        if kind == "prompt":
            prompt = table.prompts.get(ref)
            known = prompt is not None and comp.argument in prompt.args_type.__struct_fields__
        else:
            target = table.templates.get(ref)
            known = target is not None and comp.argument in target.template.variables
        if not known:
            raise PluginLoadError(
                f"{cls.__qualname__}.{attr} (completion): this plugin has no {kind} {ref!r} "
                f"with an argument {comp.argument!r}"
            )
        table.completions[(kind, ref, comp.argument)] = comp
    return table


def _put(into: dict[str, Any], key: str, handler: Any, cls: type, kind: str) -> None:
    if key in into:
        raise PluginLoadError(f"{cls.__qualname__}: two methods declare {kind} {key!r}")
    into[key] = handler


def handlers_of(cls: type) -> HandlerTable:
    """The handlers of a plugin class, built anew for each call: the host that loads a plugin keeps its own
    table, and nothing is left on the class (a reloaded class, or one loaded by two registries, shares no
    state)."""
    return _build(cls)


def wrap_handler_error(what: str, plugin_id: str, exc: Exception) -> PluginError:
    """A PluginError for an unexpected failure of a resource, prompt or completion method."""
    return PluginError(f"{what} of plugin {plugin_id} failed: {type(exc).__name__}: {exc}")
