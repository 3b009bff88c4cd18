from collections.abc import Callable, Iterable
from typing import Final, Protocol

from typing_extensions import Buffer

from mcp_edge.errors import FrameError as FrameError

HEADER_SIZE: Final[int]
MAGIC: Final[int]
VERSION: Final[int]
INLINE: Final[int]
BLOCK: Final[int]
FILE: Final[int]
F_PAYLOAD_CRC: Final[int]
F_END: Final[int]
TLV_OPTIONAL: Final[int]
TLV_DEADLINE: Final[int]
TLV_TRACE: Final[int]
TLV_PRIORITY: Final[int]
TLV_PRINCIPAL: Final[int]
PRINCIPAL_MAX: Final[int]
MAX_OFFSET: Final[int]
DEFAULT_MAX_PAYLOAD: Final[int]
DEFAULT_MAX_EXTENSIONS: Final[int]
KIND_NAMES: Final[tuple[str, str, str]]

Trace = tuple[bytes, bytes, int]

class _HasFileno(Protocol):
    def fileno(self) -> int: ...

# A frame's destination: a writable buffer, a callable given the byte count (a slab allocator), or None.
Destination = Buffer | Callable[[int], Buffer] | None

class Frame:
    @property
    def version(self) -> int: ...
    @property
    def type(self) -> int: ...
    @property
    def kind(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def end(self) -> bool: ...
    @property
    def id(self) -> int: ...
    @property
    def payload_length(self) -> int: ...
    @property
    def segment(self) -> int: ...
    @property
    def fd_index(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def crc(self) -> int: ...
    @property
    def crc_checked(self) -> bool: ...
    @property
    def size(self) -> int: ...
    @property
    def extensions(self) -> memoryview: ...
    @property
    def payload(self) -> memoryview | None: ...
    @property
    def deadline_ns(self) -> int | None: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def trace(self) -> Trace | None: ...
    @property
    def principal(self) -> bytes | None: ...
    def tlvs(self) -> list[tuple[int, memoryview]]: ...
    def verify_payload(self, data: Buffer) -> None: ...

def encode_header(
    type: int,
    id: int,
    payload: Buffer | None = None,
    *,
    kind: int = ...,
    length: int | None = None,
    segment: int = 0,
    offset: int = 0,
    extensions: Buffer = b"",
    end: bool = False,
    payload_crc: bool = False,
) -> bytes: ...
def encode_header_into(
    out: Buffer,
    type: int,
    id: int,
    payload: Buffer | None = None,
    *,
    kind: int = ...,
    length: int | None = None,
    segment: int = 0,
    offset: int = 0,
    extensions: Buffer = b"",
    end: bool = False,
    payload_crc: bool = False,
) -> int: ...
def encode_extensions(
    *,
    deadline_ns: int | None = None,
    priority: int | None = None,
    trace: Trace | None = None,
    principal: Buffer | None = None,
    extra: Iterable[tuple[int, Buffer]] = (),
) -> bytes: ...
def decode(buf: Buffer, *, max_payload: int = ..., max_extensions: int = ...) -> Frame: ...
def frame_size(header: Buffer, *, max_payload: int = ..., max_extensions: int = ...) -> int: ...
def check_json_value(data: Buffer) -> None: ...
def write_frame(
    fd: int | _HasFileno,
    type: int,
    id: int,
    payload: Buffer = b"",
    *,
    kind: int = ...,
    length: int | None = None,
    segment: int = 0,
    offset: int = 0,
    end: bool = False,
    payload_crc: bool = False,
    deadline_ns: int | None = None,
    priority: int | None = None,
    trace: Trace | None = None,
    extensions: Buffer | None = None,
    at: int | None = None,
    principal: Buffer | None = None,
) -> int: ...
def read_frame(
    fd: int | _HasFileno,
    payload: Destination = None,
    extensions: Destination = None,
    *,
    max_payload: int = ...,
    max_extensions: int = ...,
    at: int | None = None,
) -> Frame | None: ...

class FrameWriter:
    def __init__(
        self,
        type: int,
        id: int,
        payload: Buffer = b"",
        *,
        kind: int = ...,
        length: int | None = None,
        segment: int = 0,
        offset: int = 0,
        end: bool = False,
        payload_crc: bool = False,
        deadline_ns: int | None = None,
        priority: int | None = None,
        trace: Trace | None = None,
        extensions: Buffer | None = None,
        principal: Buffer | None = None,
    ) -> None: ...
    @property
    def header(self) -> bytes: ...
    @property
    def total(self) -> int: ...
    @property
    def written(self) -> int: ...
    @property
    def done(self) -> bool: ...
    def write_to(self, fd: int | _HasFileno, *, at: int | None = None) -> bool: ...
    def buffers(self) -> list[memoryview]: ...
    def advance(self, n: int) -> None: ...

class FrameReader:
    def __init__(
        self,
        payload: Destination = None,
        extensions: Destination = None,
        *,
        max_payload: int = ...,
        max_extensions: int = ...,
    ) -> None: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    @property
    def done(self) -> bool: ...
    @property
    def eof(self) -> bool: ...
    @property
    def finished(self) -> bool: ...
    @property
    def read(self) -> int: ...
    def read_from(self, fd: int | _HasFileno, *, at: int | None = None) -> bool: ...
    def buffers(self) -> list[memoryview]: ...
    def advance(self, n: int) -> None: ...
    def frame(self) -> Frame | None: ...
