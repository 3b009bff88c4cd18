"""Decorators, schemas from type hints, argument validation and result conversion (through a real Registry)."""

from __future__ import annotations

import base64
import dataclasses
import enum
import uuid
from collections.abc import Iterator
from typing import Annotated, Any, Literal, TypedDict

import msgspec
import pytest
from plugin_helpers import FIXTURES, run

from mcp_edge.errors import (
    InvalidArgumentsError,
    PluginError,
    PluginLoadError,
    PromptNotFoundError,
    ResourceNotFoundError,
    ToolNotFoundError,
)
from mcp_edge.plugin import (
    BlobResourceContents,
    Completion,
    EmbeddedResource,
    GetPromptResult,
    NullRequestContext,
    PluginBase,
    PluginState,
    PromptArgument,
    Registry,
    RequestContext,
    TextContent,
    TextResourceContents,
    ToolAnnotations,
    ToolResult,
    completion,
    prompt,
    resource,
    resource_template,
    tool,
)
from mcp_edge.plugin.handlers import handlers_of, to_tool_result
from mcp_edge.plugin.schema import doc_description, doc_params, is_structured, type_schema

RCTX = NullRequestContext(7)


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    reg = Registry([FIXTURES], entry_points=False, environ={})
    run(reg.start())
    rec = reg.get("hello")
    assert rec is not None and rec.state is PluginState.ACTIVE, rec
    yield reg
    run(reg.stop())


def call(reg: Registry, name: str, args: dict[str, Any] | None) -> ToolResult:
    return run(reg.call_tool(name, args, RCTX))


def tool_def(reg: Registry, name: str) -> Any:
    return next(t for t in reg.tools() if t.name == name)


# --- schemas from type hints -------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Pt(msgspec.Struct):
    x: int
    y: int


class TD(TypedDict):
    a: int


@dataclasses.dataclass
class DC:
    name: str
    age: int = 0


@pytest.mark.parametrize(
    ("hint", "schema"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (bytes, {"type": "string", "contentEncoding": "base64"}),
        (list[str], {"type": "array", "items": {"type": "string"}}),
        (dict[str, int], {"type": "object", "additionalProperties": {"type": "integer"}}),
        (Literal["a", "b"], {"enum": ["a", "b"]}),
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        (uuid.UUID, {"type": "string", "format": "uuid"}),
        (Annotated[int, msgspec.Meta(ge=1, le=9, description="d")],
         {"type": "integer", "minimum": 1, "maximum": 9, "description": "d"}),
        (Annotated[str, msgspec.Meta(min_length=2, pattern="^a")], {"type": "string", "minLength": 2, "pattern": "^a"}),
        (Any, {}),
        (Pt, {"title": "Pt", "type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
              "required": ["x", "y"]}),
        (TD, {"title": "TD", "type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}),
        (DC, {"title": "DC", "type": "object",
              "properties": {"name": {"type": "string"}, "age": {"type": "integer", "default": 0}},
              "required": ["name"]}),
        (list[Color], {"type": "array", "items": {"$ref": "#/$defs/Color"},
                       "$defs": {"Color": {"title": "Color", "enum": ["green", "red"]}}}),
    ],
    ids=lambda v: getattr(v, "__name__", None) or str(v)[:30],
)
def test_type_hint_to_schema(hint: Any, schema: dict[str, Any]) -> None:
    assert type_schema(hint) == schema


def test_input_schema_is_an_inlined_object(registry: Registry) -> None:
    echo = tool_def(registry, "echo")
    assert echo.inputSchema == {
        "type": "object",
        "properties": {"text": {"type": "string"}, "times": {"type": "integer", "default": 1}},
        "required": ["text"],
        "additionalProperties": False,
    }
    assert echo.description == "Echo text back"
    assert echo.annotations == ToolAnnotations(readOnlyHint=True)
    paint = tool_def(registry, "paint")
    assert "$ref" not in paint.inputSchema and paint.inputSchema["type"] == "object"
    assert paint.inputSchema["properties"]["color"] == {"$ref": "#/$defs/Color"}
    assert paint.inputSchema["$defs"]["Color"]["enum"] == ["green", "red"]
    assert paint.inputSchema["properties"]["shade"] == {"enum": ["dark", "light"], "default": "light"}


def test_context_parameter_is_injected_not_in_schema(registry: Registry) -> None:
    assert "ctx" not in tool_def(registry, "echo").inputSchema["properties"]
    assert tool_def(registry, "whoami").inputSchema["properties"] == {}
    assert call(registry, "whoami", {}).content == [TextContent(text="request 7")]


def test_descriptions_from_docstrings(registry: Registry) -> None:
    greet = tool_def(registry, "greet")
    assert greet.description == "Greet someone with the configured greeting."
    assert greet.inputSchema["properties"]["name"] == {"description": "Who to greet.", "type": "string", "minLength": 1}
    assert tool_def(registry, "point").description == "Make a point."
    assert tool_def(registry, "stats").description is None


def test_docstring_parsing() -> None:
    google = """Do a thing.

    Longer text.

    Args:
        path: Where it is,
            on two lines.
        count (int): How many.

    Returns:
        Something.
    """
    numpy = """Sum things
    over lines.

    Parameters
    ----------
    values : list of float
        The values.
    scale : float
        Multiplier.

    Returns
    -------
    float
    """
    assert doc_description(google) == "Do a thing."
    assert doc_params(google) == {"path": "Where it is, on two lines.", "count": "How many."}
    assert doc_description(numpy) == "Sum things over lines."
    assert doc_params(numpy) == {"values": "The values.", "scale": "Multiplier."}
    assert doc_description(None) is None and doc_params("") == {}


# --- argument validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "message"),
    [
        ("echo", {"text": "a", "times": "2"}, "Expected `int`, got `str` - at `$.times`"),
        ("echo", {"times": 2}, "Object missing required field `text`"),
        ("echo", {"text": "a", "extra": 1}, "Object contains unknown field `extra`"),
        ("echo", None, "Object missing required field `text`"),
        ("greet", {"name": ""}, "Expected `str` of length >= 1 - at `$.name`"),
        ("paint", {"color": "blue"}, "Invalid enum value 'blue' - at `$.color`"),
        ("stats", {"values": [1, "x"]}, "Expected `float`, got `str` - at `$.values[1]`"),
        ("nothing", {"x": 1}, "Object contains unknown field `x`"),
    ],
)
def test_invalid_arguments(registry: Registry, name: str, args: Any, message: str) -> None:
    with pytest.raises(InvalidArgumentsError) as info:
        call(registry, name, args)
    assert message in str(info.value)
    assert f"tool '{name}'" in str(info.value)
    assert info.value.code == -32602


def test_unknown_tool(registry: Registry) -> None:
    with pytest.raises(ToolNotFoundError, match="unknown tool: nope"):
        call(registry, "nope", {})


def test_arguments_are_converted(registry: Registry) -> None:
    assert call(registry, "sync_add", {"a": 1, "b": 2.5}).content == [TextContent(text="3.5")]
    assert call(registry, "paint", {"color": "green", "shade": "dark"}).content == [TextContent(text="dark green 1")]
    # a mutable default is fresh per call
    assert call(registry, "paint", {"color": "red"}).content == [TextContent(text="light red 1")]
    assert call(registry, "paint", {"color": "red"}).content == [TextContent(text="light red 1")]


# --- results -----------------------------------------------------------------------------------


def test_return_conversions(registry: Registry) -> None:
    assert call(registry, "echo", {"text": "ab", "times": 2}) == ToolResult(content=[TextContent(text="abab")])
    assert call(registry, "rich", {}).content == [TextContent(text="a"), TextContent(text="b")]
    assert call(registry, "raw", {}) == ToolResult(content=[TextContent(text="raw")], isError=True)
    assert call(registry, "nothing", {}) == ToolResult()
    assert call(registry, "number", {}) == ToolResult(content=[TextContent(text="7")])
    blob = call(registry, "blob", {"size": 3}).content[0]
    assert isinstance(blob, EmbeddedResource) and isinstance(blob.resource, BlobResourceContents)
    assert base64.b64decode(blob.resource.blob) == b"\x00\x01\x02"
    assert blob.resource.mimeType == "application/octet-stream"


def test_exception_becomes_error_result(registry: Registry) -> None:
    assert call(registry, "boom", {"message": "disk on fire"}) == ToolResult(
        content=[TextContent(text="RuntimeError: disk on fire")], isError=True)


def test_to_tool_result_table() -> None:
    assert to_tool_result("x", "t") == ToolResult(content=[TextContent(text="x")])
    assert to_tool_result([1, 2], "t") == ToolResult(content=[TextContent(text="[1,2]")])
    assert to_tool_result({"a": 1}, "t") == ToolResult(
        content=[TextContent(text='{"a":1}')], structuredContent={"a": 1})
    assert to_tool_result({"a": 1}, "t", structured=False) == ToolResult(content=[TextContent(text='{"a":1}')])
    assert to_tool_result(TextContent(text="c"), "t") == ToolResult(content=[TextContent(text="c")])


@pytest.mark.parametrize(
    ("name", "args", "structured", "schema"),
    [
        ("point", {"x": 1, "y": 2}, {"x": 1, "y": 2},
         {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}},
          "required": ["x", "y"]}),
        ("stats", {"values": [1, 2]}, {"count": 2, "mean": 1.5},
         {"type": "object", "properties": {"count": {"type": "integer"}, "mean": {"type": "number"}},
          "required": ["count", "mean"]}),
        ("person", {"name": "al"}, {"name": "al", "age": 42},
         {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "default": 0}},
          "required": ["name"]}),
        ("counts", {"words": ["a", "b", "a"]}, {"a": 2, "b": 1},
         {"type": "object", "additionalProperties": {"type": "integer"}}),
    ],
)
def test_structured_output(registry: Registry, name: str, args: dict[str, Any], structured: dict[str, Any],
                           schema: dict[str, Any]) -> None:
    result = call(registry, name, args)
    assert result.structuredContent == structured
    assert result.content == [TextContent(text=msgspec.json.encode(structured).decode())]
    assert tool_def(registry, name).outputSchema == schema


def test_structured_off_and_plain_returns_have_no_output_schema(registry: Registry) -> None:
    assert call(registry, "plain_point", {"x": 3}) == ToolResult(content=[TextContent(text='{"x":3,"y":3}')])
    for name in ("plain_point", "echo", "raw", "rich", "number", "blob"):
        assert tool_def(registry, name).outputSchema is None, name


def test_is_structured() -> None:
    assert all(is_structured(t) for t in (Pt, TD, DC, dict[str, int], dict))
    assert not any(is_structured(t) for t in (str, int, list[int], ToolResult, TextContent, dict[int, int], Any))


# --- resources, templates ----------------------------------------------------------------------


def read(reg: Registry, uri: str) -> list[Any]:
    return run(reg.read_resource(uri, RCTX))


def test_resources(registry: Registry) -> None:
    assert read(registry, "hello://greeting") == [
        TextResourceContents(uri="hello://greeting", text="hello", mimeType="text/plain")]
    assert read(registry, "hello://data") == [
        BlobResourceContents(uri="hello://data", blob="AAEC", mimeType="application/octet-stream")]
    [cfg] = read(registry, "hello://config")
    assert cfg.mimeType == "application/json"
    assert msgspec.json.decode(cfg.text) == {"greeting": "hello", "times": 1, "loud": False, "tags": []}
    defs = {r.uri: r for r in registry.resources()}
    assert defs["hello://greeting"].name == "greeting"
    assert defs["hello://greeting"].description == "The configured greeting."
    assert defs["hello://greeting"].mimeType == "text/plain"


def test_resource_templates(registry: Registry) -> None:
    assert read(registry, "hello://items/5") == [
        TextResourceContents(uri="hello://items/5", text='{"id":5}', mimeType="application/json")]
    assert read(registry, "hello://files/a/b%20c.txt")[0].text == "file a/b c.txt"
    assert read(registry, "hello://colors/red")[0].text == "red"
    templates = {t.uriTemplate: t for t in registry.resource_templates()}
    assert templates["hello://items/{item_id}"].name == "item"
    assert templates["hello://items/{item_id}"].mimeType == "application/json"


def test_resource_errors(registry: Registry) -> None:
    with pytest.raises(ResourceNotFoundError, match="resource not found: hello://nope") as info:
        read(registry, "hello://nope")
    assert info.value.code == -32002
    with pytest.raises(InvalidArgumentsError, match=r"Expected `int`, got `str` - at `\$.item_id`"):
        read(registry, "hello://items/x")
    with pytest.raises(PluginError, match="resource hello://broken of plugin hello failed: ValueError: no luck"):
        read(registry, "hello://broken")


# --- prompts, completion -----------------------------------------------------------------------


def test_prompts(registry: Registry) -> None:
    defs = {p.name: p for p in registry.prompts()}
    assert defs["greet"].description == "Greet someone"
    assert defs["greet"].arguments == [PromptArgument(name="name", required=True),
                                       PromptArgument(name="style", required=False)]
    assert defs["dialogue"].description == "A short dialogue."
    result = run(registry.get_prompt("greet", {"name": "Ann"}, RCTX))
    assert result.description == "Greet someone"
    assert [(m.role, m.content) for m in result.messages] == [
        ("user", TextContent(text="Say hello to Ann in a plain style"))]
    dialogue = run(registry.get_prompt("dialogue", {"topic": "t", "turns": "3"}, RCTX))
    assert [m.content for m in dialogue.messages] == [TextContent(text=f"t {i}") for i in range(3)]
    full = run(registry.get_prompt("full", {"mood": "sad"}, RCTX))
    assert full == GetPromptResult(description="custom", messages=full.messages)
    assert full.messages[0].role == "assistant"


def test_prompt_errors(registry: Registry) -> None:
    with pytest.raises(PromptNotFoundError):
        run(registry.get_prompt("nope", {}, RCTX))
    with pytest.raises(InvalidArgumentsError, match="missing required field `name`"):
        run(registry.get_prompt("greet", {}, RCTX))
    with pytest.raises(InvalidArgumentsError, match="Invalid enum value 'angry'"):
        run(registry.get_prompt("full", {"mood": "angry"}, RCTX))


def test_completion(registry: Registry) -> None:
    prompt_ref = {"type": "ref/prompt", "name": "greet"}
    got = run(registry.complete(prompt_ref, {"name": "style", "value": "p"}, {"arguments": {"name": "pat"}}))
    assert got == Completion(values=["plain", "pirate", "poem", "pat"], total=4, hasMore=False)
    # Literal and Enum arguments complete by themselves
    got = run(registry.complete({"type": "ref/prompt", "name": "full"}, {"name": "mood", "value": "h"}))
    assert got.values == ["happy", "hungry"]
    got = run(registry.complete({"type": "ref/resource", "uri": "hello://colors/{color}"},
                                {"name": "color", "value": "g"}))
    assert got.values == ["green"]
    # at most 100 values, with the total
    got = run(registry.complete({"type": "ref/resource", "uri": "hello://items/{item_id}"},
                                {"name": "item_id", "value": ""}))
    assert len(got.values) == 100 and got.total == 150 and got.hasMore is True
    # nothing to complete: empty
    got = run(registry.complete(prompt_ref, {"name": "name", "value": "x"}))
    assert got.values == []
    with pytest.raises(PromptNotFoundError):
        run(registry.complete({"type": "ref/prompt", "name": "nope"}, {"name": "a", "value": ""}))
    with pytest.raises(ResourceNotFoundError):
        run(registry.complete({"type": "ref/resource", "uri": "x://{y}"}, {"name": "y", "value": ""}))
    with pytest.raises(InvalidArgumentsError):
        run(registry.complete({"type": "ref/other"}, {"name": "y", "value": ""}))


# --- declaration errors, found when the class is loaded ----------------------------------------


def _table_error(cls: type) -> str:
    with pytest.raises(PluginLoadError) as info:
        handlers_of(cls)
    return str(info.value)


def test_declaration_errors() -> None:
    class VarArgs(PluginBase):
        @tool
        async def t(self, *args: int) -> str:
            return ""

    class BadType(PluginBase):
        @tool
        async def t(self, x: RCTX.__class__) -> str:  # type: ignore[valid-type]
            return ""

    class FixedWithArg(PluginBase):
        @resource("x://a")
        async def r(self, a: str) -> str:
            return a

    class TemplateMismatch(PluginBase):
        @resource_template("x://{a}")
        async def r(self, b: str) -> str:
            return b

    class BadTemplate(PluginBase):
        @resource_template("x://{?q}")
        async def r(self, q: str) -> str:
            return q

    class Twice(PluginBase):
        @tool(name="same")
        async def a(self) -> str:
            return ""

        @tool(name="same")
        async def b(self) -> str:
            return ""

    class OrphanCompletion(PluginBase):
        @completion(prompt="missing", argument="a")
        async def c(self, value: str) -> list[str]:
            return []

    class StructuredNeedsType(PluginBase):
        @tool(structured=True)
        async def t(self) -> str:
            return ""

    assert "parameter 'args'" in _table_error(VarArgs)
    assert "no JSON Schema for its types" in _table_error(BadType)
    assert "a fixed resource takes no arguments; a would need a resource template" in _table_error(FixedWithArg)
    assert "no parameter for a; no variable for b" in _table_error(TemplateMismatch)
    assert "unsupported expression {?q}" in _table_error(BadTemplate)
    assert "two methods declare tool 'same'" in _table_error(Twice)
    assert "no prompt 'missing'" in _table_error(OrphanCompletion)
    assert "structured=True needs" in _table_error(StructuredNeedsType)


def test_one_decorator_per_method() -> None:
    with pytest.raises(TypeError, match="one decorator per method"):
        @tool
        @prompt
        async def both(self: Any) -> str:
            return ""
    with pytest.raises(TypeError, match="exactly one of prompt= or resource_template="):
        completion(argument="a")


def test_subclass_overrides_and_inherits() -> None:
    class Base(PluginBase):
        @tool
        async def a(self) -> str:
            return "a"

        @tool
        async def b(self) -> str:
            return "b"

    class Child(Base):
        async def b(self) -> str:  # not a tool any more
            return "b2"

        @tool
        async def c(self, ctx: RequestContext) -> str:
            return "c"

    assert sorted(handlers_of(Child).tools) == ["a", "c"]
    assert sorted(handlers_of(Base).tools) == ["a", "b"]
    assert handlers_of(Child).kinds() == {"tools"}


def test_prompt_decorator_forms() -> None:
    class P(PluginBase):
        @prompt
        async def bare(self) -> str:
            return ""

        @prompt(name="named", title="T")
        async def other(self, topic: Annotated[str, msgspec.Meta(description="What about")]) -> str:
            return topic

    table = handlers_of(P)
    assert sorted(table.prompts) == ["bare", "named"]
    assert table.prompts["named"].definition.title == "T"
    assert table.prompts["named"].definition.arguments == [
        PromptArgument(name="topic", description="What about", required=True)]
