"""The messages between the runtime and a plugin worker: frame types and their msgpack bodies.

Every body is a msgspec Struct encoded as a msgpack array (field order is the format: append fields at the
end, with defaults, and a worker of the last minor release still reads it). Who asks and the deadline travel
as frame TLVs (``principal``, ``deadline``, ``priority``), not in the body, so the runtime's policy and the
worker read them the same way for every kind of call.

A worker's life: it attaches to its rings and sends HELLO; the runtime sends INIT (which plugin, the runtime's
settings); the worker loads the plugin and answers READY with the plugin's catalog, or FAILED with the reason;
START (the plugin's config, and the state of the generation it replaces) makes it initialize the plugin:
STARTED, or FAILED. Then CALLs (each answered by exactly one RESULT or ERROR with
the call's id; NOTEs and ASKs may come before the answer), CANCELs, EVENTs (the plugin's notifications),
HEARTBEATs from the worker every ``heartbeat_interval_s``, and at the end STOP -> STOPPED.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from mcp_edge.native import _frame

__all__ = [
    "ANSWER",
    "ASK",
    "CALL",
    "CANCEL",
    "ERROR",
    "EVENT",
    "EXPORT",
    "FAILED",
    "HEARTBEAT",
    "HELLO",
    "IMPORT",
    "INIT",
    "NOTE",
    "PROTOCOL_VERSION",
    "READY",
    "RESULT",
    "RESULT_INPUT_REQUIRED",
    "RESULT_JSON",
    "RESULT_JSON_ERROR",
    "START",
    "STARTED",
    "STATE",
    "STOP",
    "STOPPED",
    "Answer",
    "Ask",
    "Call",
    "Event",
    "Failure",
    "Hello",
    "Init",
    "Note",
    "Ready",
    "Start",
    "Started",
    "Stop",
    "decode",
    "decode_result",
    "encode",
    "encode_result",
]

PROTOCOL_VERSION = 1

# Frame types, runtime -> worker
INIT = 2
START = 5
CALL = 10
CANCEL = 13
ANSWER = 17
STOP = 21
EXPORT = 23
IMPORT = 25
# Frame types, worker -> runtime
HELLO = 1
READY = 3
FAILED = 4
STARTED = 6
RESULT = 11
ERROR = 12
NOTE = 14
EVENT = 15
ASK = 16
HEARTBEAT = 20
STOPPED = 22
STATE = 24

NAMES = {INIT: "INIT", START: "START", STARTED: "STARTED", CALL: "CALL", CANCEL: "CANCEL", ANSWER: "ANSWER",
         STOP: "STOP", EXPORT: "EXPORT",
         IMPORT: "IMPORT", HELLO: "HELLO", READY: "READY", FAILED: "FAILED", RESULT: "RESULT", ERROR: "ERROR",
         NOTE: "NOTE", EVENT: "EVENT", ASK: "ASK", HEARTBEAT: "HEARTBEAT", STOPPED: "STOPPED", STATE: "STATE"}


class _Body(msgspec.Struct, array_like=True, forbid_unknown_fields=False):
    pass


class Hello(_Body):
    pid: int
    protocol: int = PROTOCOL_VERSION


class Init(_Body):
    """Which plugin to load: ``source`` is the plugin folder (or ``module:attr`` of an entry point), ``kind``
    python | native | entry_point; ``settings`` the runtime's settings as ``Settings.load`` overrides (so the
    worker sees exactly the runtime's, ``--set`` included) and ``board`` the board profile's file."""

    plugin_id: str
    kind: str
    source: str
    settings: dict[str, Any]
    board: str = ""
    log_level: int = 30  # the runtime's (logging.WARNING with --quiet, INFO otherwise): its plugins log alike


class Start(_Body):
    """Initialize the loaded plugin with its resolved ``config``; ``state``: export_state of the generation
    this one replaces (hot reload), for import_state."""

    config: dict[str, Any]
    state: bytes | None = None


class Started(_Body):
    init_ms: float = 0.0


class Ready(_Body):
    """The plugin is loaded: its catalog (``PluginCatalog`` as msgpack), version and capabilities."""

    catalog: msgspec.Raw
    version: str
    capabilities: list[str]
    load_ms: float = 0.0


class Failure(_Body):
    """Why INIT or a call failed: the JSON-RPC ``code`` (None: not a protocol error), the message, ``data``,
    and the name of the runtime's exception class to raise (``PluginError`` when unknown)."""

    message: str
    code: int | None = None
    data: Any = None
    error: str = "PluginError"


class Call(_Body):
    """One tools/call, resources/read, prompts/get or completion/complete for the plugin."""

    op: str  # tool | resource | prompt | complete
    name: str  # the tool or prompt name, the resource uri, or the completion's ref
    arguments: dict[str, Any] | None = None
    template: str | None = None  # resources: the template the runtime matched (None: a fixed resource)
    request_id: str | int | None = None
    protocol_version: str = ""
    stateless: bool = False
    client_capabilities: dict[str, Any] = msgspec.field(default_factory=dict)
    input_responses: dict[str, Any] | None = None
    request_state: str | None = None
    progress: bool = False  # the client asked for progress (a progress token)
    completion: dict[str, Any] | None = None  # complete: {"kind", "argument", "value", "context"}


class Note(_Body):
    """A notification that belongs to a call: progress or a log message."""

    kind: str  # progress | log
    progress: float = 0.0
    total: float | None = None
    message: str | None = None
    level: str = "info"
    data: Any = None
    logger: str | None = None


class Event(_Body):
    """A notification of the plugin's own: ``resource_updated`` (value: the uri), ``list_changed`` (value:
    tools | resources | prompts) or ``published`` (value: the JSON list of the ResourceDefs it publishes)."""

    kind: str
    value: str


class Ask(_Body):
    """The plugin asks the client (handshake era: sampling, elicitation, roots) within call ``call_id``."""

    call_id: int
    method: str
    params: dict[str, Any]


class Answer(_Body):
    """The client's answer to an ASK: its result, or the protocol error it gave."""

    result: Any = None
    error: Failure | None = None


class Stop(_Body):
    timeout: float


_encoder = msgspec.msgpack.Encoder()
_decoders: dict[type, msgspec.msgpack.Decoder[Any]] = {}


def encode(body: Any) -> bytes:
    """A message body as msgpack."""
    return _encoder.encode(body)


T = TypeVar("T")


def decode(data: Any, kind: type[T]) -> T:
    """A message body of type ``kind``; msgspec.DecodeError / ValidationError on a malformed one."""
    dec = _decoders.get(kind)
    if dec is None:
        dec = _decoders[kind] = msgspec.msgpack.Decoder(kind)
    result: T = dec.decode(data)
    return result


# A RESULT body: one tag byte, then the value. The value goes as the JSON the client will get, already shaped
# for the request's protocol revision (the worker encodes it, once); an InputRequired as msgpack (the runtime
# acts on it). The runtime takes the JSON as one copy out of the worker's block, checks that copy is one JSON
# object or array it can embed (no raw line break, closed strings, UTF-8, matched brackets, nothing after it:
# _frame.check_json_value; a worker is not trusted to frame the runtime's output) and embeds those bytes in
# its response without decoding them.
RESULT_JSON = 0
RESULT_INPUT_REQUIRED = 1
RESULT_JSON_ERROR = 2  # JSON as RESULT_JSON, of a tool result with isError true (the runtime's metrics count it)
_json_encoder = msgspec.json.Encoder()


def encode_result(result: Any) -> bytearray:
    from mcp_edge.plugin.types import InputRequired

    out = bytearray(1)
    if isinstance(result, InputRequired):
        out[0] = RESULT_INPUT_REQUIRED
        _encoder.encode_into(result, out, 1)
    else:
        if (result.get("isError") if isinstance(result, dict) else getattr(result, "isError", False)) is True:
            out[0] = RESULT_JSON_ERROR
        _json_encoder.encode_into(result, out, 1)  # the tag and the JSON in one buffer: no second copy
    return out


def decode_result(body: Any) -> Any:
    """The value of a RESULT body: ``msgspec.Raw`` JSON (a copy, independent of the block, checked to be one
    JSON value with no raw line break), or InputRequired. msgspec.DecodeError when it is not."""
    from mcp_edge.plugin.types import InputRequired

    view = memoryview(body)
    if len(view) < 1 or view[0] not in (RESULT_JSON, RESULT_INPUT_REQUIRED, RESULT_JSON_ERROR):
        raise msgspec.DecodeError("a RESULT body must start with its tag byte (0: JSON, 1: InputRequired, "
                                  "2: JSON of an error result)")
    if view[0] == RESULT_INPUT_REQUIRED:
        return decode(view[1:], InputRequired)
    data = bytes(view[1:])  # the copy is checked, not the block: the worker can still write there
    try:
        _frame.check_json_value(data)  # one object or array, no raw line break, UTF-8 (memory speed, in C)
    except ValueError as exc:
        raise msgspec.DecodeError(f"a RESULT is {exc}") from None
    return msgspec.Raw(data)
