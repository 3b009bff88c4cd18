"""Hypothesis strategies: JSON values, JSON-RPC-shaped messages, byte streams, HTTP requests, TOML manifests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from mcp_edge.mcp.versions import HANDSHAKE_VERSIONS, SUPPORTED_VERSIONS

META_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CAPS = "io.modelcontextprotocol/clientCapabilities"
METHODS = (
    "ping", "initialize", "notifications/initialized", "notifications/cancelled", "notifications/progress",
    "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list", "resources/read",
    "resources/templates/list", "resources/subscribe", "resources/unsubscribe", "logging/setLevel",
    "completion/complete", "server/discover", "subscriptions/listen", "roots/list", "",
)

# Any JSON value: scalars at their edges (huge integers, -0.0, lone surrogates) and some nesting.
scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.sampled_from([0, -1, 2**53, 2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**40]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20), st.sampled_from(["", "2.0", "\ud800", "\x00", "\ufeff", "a" * 300]),
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=12,
)
ids = st.one_of(st.integers(min_value=-3, max_value=3), st.sampled_from(["a", "", 2**63, 10**40, 1.5]), json_values)
methods = st.one_of(st.sampled_from(METHODS), st.text(max_size=12), json_values)
metas = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={
        META_VERSION: st.one_of(st.sampled_from(SUPPORTED_VERSIONS), json_values),
        META_CAPS: st.one_of(st.just({}), json_values),
        "progressToken": ids,
    }),
)
params = st.one_of(
    st.none(), json_values,
    st.fixed_dictionaries({}, optional={
        "_meta": metas,
        "protocolVersion": st.one_of(st.sampled_from(HANDSHAKE_VERSIONS), json_values),
        "capabilities": json_values, "clientInfo": json_values,
        "name": st.one_of(st.sampled_from(["echo", "slow", "nope"]), json_values),
        "arguments": json_values, "requestId": ids, "reason": json_values, "level": json_values,
        "uri": json_values, "cursor": json_values,
    }),
)
errors = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={"code": st.one_of(st.integers(), json_values), "message": json_values,
                                        "data": json_values}),
)
messages: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries({}, optional={
    "jsonrpc": st.one_of(st.just("2.0"), json_values),
    "id": ids,
    "method": methods,
    "params": params,
    "result": json_values,
    "error": errors,
})
# A message, or a batch of them (the revision 2025-03-26 has batches), or any JSON value at all.
message_values = st.one_of(messages, st.lists(messages, max_size=4), json_values)


def encode(value: Any) -> bytes:
    """JSON text as a client might send it (huge integers, lone surrogates and all)."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    """Arrays/objects nested thousands deep, alone or as a message's params (case 1 of the issue)."""
    depth = draw(st.integers(min_value=1, max_value=5000))
    opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
    core = opener * depth + b"1" + closer * depth
    if draw(st.booleans()):
        return b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":' + core + b"}}"
    return core


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[bytes]) -> bytes:
    """Bytes of ``base`` with a few bytes flipped, cut or inserted."""
    data = bytearray(draw(base))
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        if not data:
            break
        i = draw(st.integers(min_value=0, max_value=len(data) - 1))
        op = draw(st.integers(min_value=0, max_value=2))
        if op == 0:
            data[i] = draw(st.integers(min_value=0, max_value=255))
        elif op == 1:
            del data[i:]
        else:
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
    return bytes(data)


one_line = st.one_of(
    st.builds(encode, message_values),
    deep_nesting(),
    mutated(st.builds(encode, messages)),
    st.binary(max_size=200),
)


@st.composite
def line_streams(draw: st.DrawFn) -> bytes:
    """Lines (messages, junk, blank, CRLF) joined by newlines, maybe without the last one."""
    lines = draw(st.lists(one_line, max_size=6))
    seps = [draw(st.sampled_from([b"\n", b"\r\n", b"\n\n"])) for _ in lines]
    data = b"".join(line.replace(b"\n", b"") + sep for line, sep in zip(lines, seps, strict=True))
    if data and draw(st.booleans()):
        data = data.rstrip(b"\r\n")
    return data


byte_streams = st.one_of(line_streams(), st.binary(max_size=2000), mutated(line_streams()))


# --- HTTP -----------------------------------------------------------------------------------------------

HTTP_METHODS = ("POST", "GET", "DELETE", "OPTIONS", "HEAD", "PUT", "CONNECT", "PRI", "TRACE")
TARGETS = ("/mcp", "/mcp?x=1", "/", "*", "http://127.0.0.1/mcp", "127.0.0.1:80", "/mcp/../mcp", "/%00")
VERSIONS = ("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/0.9", "HTTP/1.1 ", "http/1.1")
HEADER_VALUES = {
    "Host": ("127.0.0.1", "localhost:8080", "[::1]", "[::1]evil.com", "evil.com", "", "127.0.0.1:x"),
    "Accept": ("application/json, text/event-stream", "application/json;q=0, text/event-stream;q=0", "*/*", ""),
    "Content-Type": ("application/json", "text/plain", "application/json; charset=latin-1", ""),
    "Origin": ("http://127.0.0.1", "http://evil.com", "null", ""),
    "Mcp-Session-Id": ("x", "", "0" * 200),
    "MCP-Protocol-Version": (*SUPPORTED_VERSIONS, "1999-01-01", ""),
    "Mcp-Method": ("tools/list", "ping", ""),
    "Expect": ("100-continue", "nothing"),
    "Upgrade": ("websocket", "h2c"),
    "Connection": ("close", "keep-alive", "Upgrade", "upgrade, close"),
    "Transfer-Encoding": ("chunked", "gzip, chunked", "identity"),
    "Content-Length": ("0", "5", "100000000", "-1", "1 1", "x"),
}


@st.composite
def http_requests(draw: st.DrawFn) -> bytes:
    """One request: a mostly plausible head (random where it matters) and a body, maybe chunked."""
    method = draw(st.one_of(st.sampled_from(HTTP_METHODS), st.text("ABCXYZ-", max_size=8)))
    target = draw(st.one_of(st.sampled_from(TARGETS), st.text(max_size=20).map(lambda t: "/" + t)))
    version = draw(st.sampled_from(VERSIONS))
    body = draw(st.one_of(st.builds(encode, message_values), st.binary(max_size=300), st.just(b"")))
    names = draw(st.lists(st.one_of(st.sampled_from(sorted(HEADER_VALUES)), st.text(max_size=10)), max_size=8))
    headers: list[tuple[str, str]] = []
    for name in names:
        options = HEADER_VALUES.get(name, ())
        value = draw(st.one_of(st.sampled_from(options), st.text(max_size=30)) if options else st.text(max_size=30))
        headers.append((name, value))
    chunked = any(n.lower() == "transfer-encoding" and "chunked" in v for n, v in headers)
    if not chunked and not any(n.lower() == "content-length" for n, _ in headers) and body:
        headers.append(("Content-Length", str(len(body))))
    if chunked and body:
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    head = f"{method} {target} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    return head.encode("utf-8", "surrogatepass") + body


@st.composite
def http_streams(draw: st.DrawFn) -> tuple[list[bytes], int | None]:
    """What a client sends on one connection, in the pieces it arrives in; and how many requests it holds."""
    requests: int | None
    kind = draw(st.integers(min_value=0, max_value=3))
    if kind == 0:
        reqs = draw(st.lists(http_requests(), min_size=1, max_size=3))
        data, requests = b"".join(reqs), len(reqs)
    elif kind == 1:
        data, requests = draw(mutated(http_requests())), None
    elif kind == 2:
        data, requests = draw(st.binary(max_size=500)), None
    else:  # a big head or body, around the limits
        filler = b"a" * draw(st.integers(min_value=0, max_value=80_000))
        where = draw(st.sampled_from(["url", "header", "body"]))
        if where == "url":
            data = b"GET /" + filler + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        elif where == "header":
            data = b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + filler + b"\r\n\r\n"
        else:
            data = (b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Accept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(filler) + filler)
        requests = 1
    size = draw(st.one_of(st.just(0), st.integers(min_value=1, max_value=64)))
    chunks = [data[i:i + size] for i in range(0, len(data), size)] if size else [data]
    return chunks, requests


# --- plugin.toml ----------------------------------------------------------------------------------------


def toml_key(key: str) -> str:
    return json.dumps(key)


def toml_value(value: Any) -> str:
    """A TOML inline value for a JSON value (None has no TOML form: an empty inline table)."""
    if value is None:
        return "{}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if not isinstance(value, float) or value == value else "nan"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


SCHEMA_KEYS = ("type", "properties", "required", "additionalProperties", "items", "enum", "const", "minimum",
               "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems",
               "maxItems", "uniqueItems", "default", "title", "description", "format", "oneOf", "$ref")
TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")

schema_values: st.SearchStrategy[Any] = st.recursive(
    st.fixed_dictionaries({}, optional={
        "type": st.one_of(st.sampled_from(TYPES), st.lists(st.sampled_from(TYPES), max_size=3), json_values),
        "minimum": st.one_of(st.integers(-5, 5), json_values), "maximum": st.one_of(st.integers(-5, 5), json_values),
        "exclusiveMinimum": json_values, "exclusiveMaximum": json_values,
        "minLength": st.one_of(st.integers(0, 5), json_values), "maxLength": st.one_of(st.integers(0, 5), json_values),
        "minItems": st.one_of(st.integers(0, 3), json_values), "maxItems": st.one_of(st.integers(0, 3), json_values),
        "pattern": st.one_of(st.sampled_from(["^a", "[", "a{2}", "(?P<x>", ""]), json_values),
        "enum": st.one_of(st.lists(json_values, max_size=3), json_values), "const": json_values,
        "uniqueItems": json_values, "default": json_values, "required": st.one_of(st.lists(st.text(max_size=3)),
                                                                                json_values),
        "title": json_values, "format": json_values,
    }),
    lambda inner: st.fixed_dictionaries({}, optional={
        "type": st.sampled_from(TYPES), "properties": st.dictionaries(st.text(max_size=5), inner, max_size=3),
        "items": st.one_of(inner, st.booleans()), "additionalProperties": st.one_of(inner, st.booleans()),
        "default": json_values,
    }),
    max_leaves=6,
)


@st.composite
def manifests(draw: st.DrawFn) -> tuple[bytes, Any, Any]:
    """plugin.toml text (well-formed TOML of plausible and implausible tables, or mangled), a config, a schema."""
    plugin = draw(st.fixed_dictionaries({}, optional={
        "id": st.one_of(st.sampled_from(["hello", "a-b_1", "Bad", "", "1x"]), json_values),
        "version": st.one_of(st.sampled_from(["1.0.0", "", " "]), json_values),
        "abi": st.one_of(st.sampled_from([1, 2, 0]), json_values),
        "module": st.one_of(st.just("plugin"), json_values),
        "library": st.one_of(st.just("x.so"), json_values),
        "class": json_values, "description": json_values, "capabilities": json_values,
        "extra": json_values,
    }))
    top: dict[str, Any] = {}
    if draw(st.booleans()) or plugin:
        top["plugin"] = plugin
    if draw(st.booleans()):
        top["requires"] = draw(st.one_of(st.dictionaries(st.text(max_size=6), st.one_of(st.just(">=1"), json_values),
                                                         max_size=3), json_values))
    schema = draw(st.one_of(schema_values, json_values))
    if draw(st.booleans()):
        top["config"] = {"schema": schema} if draw(st.booleans()) else draw(json_values)
    if draw(st.integers(0, 9)) == 0:
        top[draw(st.text(max_size=5))] = draw(json_values)
    text = "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in top.items())
    raw = text.encode("utf-8", "surrogatepass")
    if draw(st.integers(0, 4)) == 0:
        raw = draw(mutated(st.just(raw)))
    return raw, draw(json_values), schema
