# cython: language_level=3, boundscheck=False, wraparound=False
"""The 32-byte wire format (docs/wire-format.md): headers, TLV extensions, decoding, vectored I/O.

A frame is a 32-byte header, then its TLV extensions, then (inline kind only)
its payload; the payload of the other kinds lies in a shared-memory block or a
file the header points at. Decoding gives a ``Frame`` whose ``extensions`` and
``payload`` are memoryviews into the caller's buffer: nothing is copied.
"""

import select as _select
import socket as _socket

from cpython.buffer cimport (
    PyBUF_FORMAT,
    PyBUF_ND,
    PyBUF_SIMPLE,
    PyBUF_STRIDES,
    PyBUF_WRITABLE,
    PyBuffer_Release,
    PyObject_GetBuffer,
)
from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EAGAIN, EINTR, EMSGSIZE
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from mcp_edge.errors import FrameError, IsaLevelError
from mcp_edge.native._check cimport check
from mcp_edge.native._cpu import active as _active_level
from mcp_edge.native._cpu import level_number as _level_number
from mcp_edge.native.includes.me_crc32c cimport me_crc32c_set_level
from mcp_edge.native.includes.me_frame cimport (
    ME_FRAME_BAD_CRC,
    ME_FRAME_BAD_TLV,
    ME_FRAME_BLOCK,
    ME_FRAME_DEFAULT_MAX_EXT,
    ME_FRAME_DEFAULT_MAX_PAYLOAD,
    ME_FRAME_F_END,
    ME_FRAME_F_PAYLOAD_CRC,
    ME_FRAME_FILE,
    ME_FRAME_HAS_DEADLINE,
    ME_FRAME_HAS_PRINCIPAL,
    ME_FRAME_HAS_PRIORITY,
    ME_FRAME_HAS_TRACE,
    ME_FRAME_HEADER_SIZE,
    ME_FRAME_INLINE,
    ME_FRAME_KIND_COUNT,
    ME_FRAME_MAGIC,
    ME_FRAME_MAX_OFFSET,
    ME_FRAME_OVERLONG,
    ME_FRAME_PRINCIPAL_MAX,
    ME_FRAME_TLV_DEADLINE,
    ME_FRAME_TLV_HEADER,
    ME_FRAME_TLV_OPTIONAL,
    ME_FRAME_TLV_PRINCIPAL,
    ME_FRAME_TLV_PRIORITY,
    ME_FRAME_TLV_TRACE,
    ME_FRAME_TRACE_SIZE,
    ME_FRAME_TRUNCATED,
    ME_FRAME_VERSION,
    me_frame,
    me_frame_decode,
    me_frame_encode_header,
    me_frame_limits,
    me_frame_parse_header,
    me_frame_principal_check,
    me_frame_reason_name,
    me_frame_tlv_put,
    me_frame_verify_payload,
    me_json_check_value,
    me_json_check_message,
)
from mcp_edge.native.includes.me_frame_io cimport (
    ME_FRAME_IO_SOCKET,
    ME_FRAME_RD_BODY,
    ME_FRAME_RD_DEST,
    ME_FRAME_RD_DONE,
    ME_FRAME_RD_EOF,
    ME_FRAME_RD_FAILED,
    ME_FRAME_RD_HEADER,
    me_frame_read,
    me_frame_reader_advance,
    me_frame_reader_dest,
    me_frame_reader_init,
    me_frame_writer_advance,
    me_frame_writer_init,
    me_frame_writev,
)

# Payloads at least this long are checksummed with the GIL released.
DEF NOGIL_MIN = 16384

HEADER_SIZE = ME_FRAME_HEADER_SIZE
MAGIC = ME_FRAME_MAGIC
VERSION = ME_FRAME_VERSION
INLINE = ME_FRAME_INLINE
BLOCK = ME_FRAME_BLOCK
FILE = ME_FRAME_FILE
F_PAYLOAD_CRC = ME_FRAME_F_PAYLOAD_CRC
F_END = ME_FRAME_F_END
TLV_OPTIONAL = ME_FRAME_TLV_OPTIONAL
TLV_DEADLINE = ME_FRAME_TLV_DEADLINE
TLV_TRACE = ME_FRAME_TLV_TRACE
TLV_PRIORITY = ME_FRAME_TLV_PRIORITY
TLV_PRINCIPAL = ME_FRAME_TLV_PRINCIPAL
PRINCIPAL_MAX = ME_FRAME_PRINCIPAL_MAX
MAX_OFFSET = ME_FRAME_MAX_OFFSET
DEFAULT_MAX_PAYLOAD = ME_FRAME_DEFAULT_MAX_PAYLOAD
DEFAULT_MAX_EXTENSIONS = ME_FRAME_DEFAULT_MAX_EXT
KIND_NAMES = ("inline", "block", "file")


cdef str _why(me_frame *f, Py_ssize_t have, uint32_t max_payload, uint32_t max_ext):
    """What is wrong with the frame `f` was refused for, for people."""
    cdef int r = f.reason
    if r == ME_FRAME_TRUNCATED:
        return f"the frame needs {f.needed} bytes, {have} are there"
    if r == ME_FRAME_OVERLONG:
        return (f"{f.ext_len} bytes of extensions (limit {max_ext}) and {f.payload_len} bytes of "
                f"{KIND_NAMES[f.kind]} payload (limit {max_payload})")
    if r == ME_FRAME_BAD_CRC:
        return f"the header says CRC32C {f.crc:#010x}, the bytes do not match it"
    if r == ME_FRAME_BAD_TLV:
        return f"the {f.ext_len} bytes of TLV extensions are malformed or hold an unknown required type"
    return {
        3: f"the frame does not start with the magic bytes {ME_FRAME_MAGIC & 0xff:#04x} {ME_FRAME_MAGIC >> 8:#04x}",
        4: f"this receiver speaks wire format version {ME_FRAME_VERSION} only",
        5: "unknown payload kind, a reserved flag bit, or a locator on an inline frame",
    }.get(r, "malformed frame")


cdef object _refused(me_frame *f, Py_ssize_t have, uint32_t max_payload, uint32_t max_ext):
    return FrameError(me_frame_reason_name(f.reason).decode(), _why(f, have, max_payload, max_ext),
                      f.needed if f.reason == ME_FRAME_TRUNCATED else 0)


cdef me_frame_limits _limits(uint32_t max_payload, uint32_t max_extensions) except *:
    cdef me_frame_limits lim
    if max_extensions > 0xFFFF:
        raise ValueError(f"limits out of range: max_extensions {max_extensions} (the field holds 65535 at most)")
    lim.max_payload = max_payload
    lim.max_ext = max_extensions
    return lim


cdef int _get(object data, Py_buffer *view, int flags, str what) except -1:
    try:
        PyObject_GetBuffer(data, view, flags)
    except (BufferError, ValueError) as exc:
        raise BufferError(f"{what} must be a C-contiguous{' writable' if flags & PyBUF_WRITABLE else ''} "
                          f"buffer ({exc})") from None
    return 0


cdef int _fill(me_frame *f, int type, uint64_t id, object payload, int kind, object length, int segment,
               uint64_t offset, Py_ssize_t ext_len, bint end, bint payload_crc) except -1:
    """Header fields of `f` from encode_header's arguments; ValueError for a bad combination."""
    if not 0 <= type <= 0xFF:
        raise ValueError(f"type {type} does not fit the header's byte")
    if not 0 <= kind < ME_FRAME_KIND_COUNT:
        raise ValueError(f"kind {kind} is none of INLINE (0), BLOCK (1), FILE (2)")
    if ext_len > 0xFFFF:
        raise ValueError(f"{ext_len} bytes of extensions: the header's field holds 65535 at most")
    if kind == ME_FRAME_INLINE:
        if segment or offset or payload_crc:
            raise ValueError("an inline frame has no segment, offset or payload_crc (its CRC covers the payload)")
        if payload is None and length:
            raise ValueError("an inline frame with a payload length needs the payload")
    else:
        if length is None:
            raise ValueError(f"a {KIND_NAMES[kind]} frame needs the payload's length")
        if not 0 <= segment <= 0xFFFF:
            raise ValueError(f"segment/fd index {segment} does not fit 16 bits")
        if offset > ME_FRAME_MAX_OFFSET:
            raise ValueError(f"offset {offset} does not fit 48 bits")
        if payload_crc and payload is None:
            raise ValueError("payload_crc needs the payload's bytes to checksum")
    f.type = <uint8_t>type
    f.id = id
    f.kind = <uint8_t>kind
    f.flags = (ME_FRAME_F_END if end else 0) | (ME_FRAME_F_PAYLOAD_CRC if payload_crc else 0)
    f.ext_len = <uint16_t>ext_len
    f.segment = <uint16_t>segment
    f.offset = offset
    return 0


cdef int _encode(unsigned char *out, int type, uint64_t id, object payload, int kind, object length, int segment,
                 uint64_t offset, object extensions, bint end, bint payload_crc) except -1:
    cdef me_frame f
    cdef Py_buffer ext, pay
    cdef int rc
    cdef bint have_pay = payload is not None
    _get(extensions, &ext, PyBUF_SIMPLE, "extensions")
    try:
        _fill(&f, type, id, payload, kind, length, segment, offset, ext.len, end, payload_crc)
        if have_pay:
            _get(payload, &pay, PyBUF_SIMPLE, "payload")
        try:
            size = pay.len if have_pay else length or 0
            if not 0 <= size <= 0xFFFFFFFF or (length is not None and length != size):
                raise ValueError(f"payload length {size} (length={length}) does not fit the header's 32 bits")
            f.payload_len = <uint32_t>size
            if have_pay and pay.len >= NOGIL_MIN and (kind == ME_FRAME_INLINE or payload_crc):
                with nogil:
                    rc = me_frame_encode_header(out, &f, ext.buf, pay.buf)
            else:
                rc = me_frame_encode_header(out, &f, ext.buf, pay.buf if have_pay else NULL)
        finally:
            if have_pay:
                PyBuffer_Release(&pay)
    finally:
        PyBuffer_Release(&ext)
    if rc < 0:
        raise ValueError("the header fields are out of range")  # _fill checked them: not reached
    return rc


def encode_header(int type, uint64_t id, payload=None, *, int kind=ME_FRAME_INLINE, length=None, int segment=0,
                  uint64_t offset=0, extensions=b"", bint end=False, bint payload_crc=False):
    """encode_header(type, id, payload=None, *, kind=INLINE, length=None, segment=0, offset=0, extensions=b"",
    end=False, payload_crc=False) -> bytes

    int me_frame_encode_header(void *out, struct me_frame *f, const void *ext, const void *payload)

    The 32-byte header of a frame, its CRC32C computed over the header, the
    ``extensions`` (the TLV bytes ``encode_extensions`` gives) and the payload.
    Send it, the extensions and the payload as three separate buffers
    (``write_frame`` does).

    Parameters
    ----------
    type, id
        The message type (0-255) and the request/stream id (u64).
    payload
        The inline payload (any C-contiguous buffer), or for ``BLOCK``/``FILE``
        with ``payload_crc`` the block's or file range's bytes to checksum.
    kind
        ``INLINE``, ``BLOCK`` (a shared-memory block: ``segment``, ``offset``,
        ``length``) or ``FILE`` (``segment`` is the fd index).
    length
        The payload's length; needed for ``BLOCK``/``FILE``, else taken from ``payload``.
    end
        Sets ``F_END``: the last frame of its id.
    payload_crc
        ``BLOCK``/``FILE`` only: the CRC covers the out-of-line payload too (off by
        default: a 1 MiB CRC costs tens of microseconds).

    Raises
    ------
    ValueError
        A field out of range, or a combination the format has no encoding for.
    """
    cdef bytearray out = bytearray(ME_FRAME_HEADER_SIZE)
    _encode(out, type, id, payload, kind, length, segment, offset, extensions, end, payload_crc)
    return bytes(out)


def encode_header_into(out, int type, uint64_t id, payload=None, *, int kind=ME_FRAME_INLINE, length=None,
                       int segment=0, uint64_t offset=0, extensions=b"", bint end=False, bint payload_crc=False):
    """encode_header_into(out, type, id, payload=None, **fields) -> int

    int me_frame_encode_header(void *out, struct me_frame *f, const void *ext, const void *payload)

    ``encode_header`` writing into the first 32 bytes of the caller's writable
    buffer ``out`` (a ring slot, a preallocated send buffer). Returns 32.
    ValueError when ``out`` holds fewer than 32 bytes.
    """
    cdef Py_buffer view
    _get(out, &view, PyBUF_WRITABLE, "out")
    try:
        if view.len < ME_FRAME_HEADER_SIZE:
            raise ValueError(f"out holds {view.len} bytes; a header needs {ME_FRAME_HEADER_SIZE}")
        return _encode(<unsigned char *>view.buf, type, id, payload, kind, length, segment, offset, extensions,
                       end, payload_crc)
    finally:
        PyBuffer_Release(&view)


def encode_extensions(*, deadline_ns=None, priority=None, trace=None, principal=None, extra=()):
    """encode_extensions(*, deadline_ns=None, priority=None, trace=None, principal=None, extra=()) -> bytes

    int me_frame_tlv_put(void *out, size_t cap, size_t *used, uint16_t type, const void *value, size_t len)

    The TLV extension bytes for a frame: each TLV is a u16 type, a u16 length
    and the value.

    Parameters
    ----------
    deadline_ns
        Absolute deadline on this box's ``CLOCK_MONOTONIC`` (``time.monotonic_ns()``), u64.
    priority
        0-255, higher is more urgent.
    trace
        W3C trace context: ``(trace_id, parent_id, trace_flags)``, 16 bytes, 8 bytes, 0-255.
    principal
        The value of a principal TLV (``mcp_edge.runtime.principal.Principal.to_tlv()``), checked with
        ``int me_frame_principal_check(const void *value, size_t len)``: ValueError when it is not
        well formed, as a receiver would refuse the frame (bad TLV).
    extra
        Further ``(type, value)`` pairs, written as given; set ``TLV_OPTIONAL``
        in the type when a receiver that does not know it may skip it.
    """
    tlvs = []
    if deadline_ns is not None:
        tlvs.append((ME_FRAME_TLV_DEADLINE, int(deadline_ns).to_bytes(8, "little")))
    if trace is not None:
        trace_id, parent_id, trace_flags = trace
        if len(trace_id) != 16 or len(parent_id) != 8:
            raise ValueError("trace is (trace_id: 16 bytes, parent_id: 8 bytes, trace_flags: 0-255)")
        tlvs.append((ME_FRAME_TLV_TRACE, bytes(trace_id) + bytes(parent_id) + int(trace_flags).to_bytes(1, "little")))
    if priority is not None:
        tlvs.append((ME_FRAME_TLV_PRIORITY, int(priority).to_bytes(1, "little")))
    cdef bytes who
    if principal is not None:
        who = bytes(principal)
        if me_frame_principal_check(<const unsigned char *>who, <size_t>len(who)) < 0:
            raise ValueError(f"principal: {len(who)} bytes that are not a well-formed principal TLV value "
                             f"(at most {ME_FRAME_PRINCIPAL_MAX} bytes; Principal.to_tlv() makes one)")
        tlvs.append((ME_FRAME_TLV_PRINCIPAL, who))
    for tlv_type, value in extra:
        if not 0 <= tlv_type <= 0xFFFF:
            raise ValueError(f"TLV type {tlv_type} does not fit 16 bits")
        tlvs.append((tlv_type, bytes(value)))
    cdef Py_ssize_t total = sum(ME_FRAME_TLV_HEADER + len(v) for _, v in tlvs)
    if total > 0xFFFF:
        raise ValueError(f"{total} bytes of extensions: the header's field holds 65535 at most")
    cdef bytearray out = bytearray(total)
    cdef size_t used = 0
    cdef bytes b
    for tlv_type, b in tlvs:
        check(me_frame_tlv_put(<unsigned char *>out, <size_t>total, &used, tlv_type, <const unsigned char *>b,
                               <size_t>len(b)), "me_frame_tlv_put")
    return bytes(out)


cdef class Frame:
    """Frame: a decoded frame, from ``decode`` or ``read_frame``.

    Header fields as attributes; ``extensions`` and (inline) ``payload`` are
    memoryviews into the buffer the frame was decoded from, so that buffer must
    not be reused while they are in use.
    """

    def __init__(self):
        raise TypeError("Frame objects come from decode() or read_frame()")

    def __dealloc__(self):
        if self._held:
            PyBuffer_Release(&self._view)

    cdef int _make_views(self) except -1:
        """The memoryviews of a decoded frame, made on first use: a ring consumer that never looks at them
        does not pay for them. Until then the held buffer export keeps the bytes where they are."""
        if self._obj is None:
            return 0
        mv = memoryview(self._obj).cast("B")
        start = ME_FRAME_HEADER_SIZE + self.f.ext_len
        self._ext = mv[ME_FRAME_HEADER_SIZE:start]
        self._payload = mv[start:start + self.f.payload_len] if self.f.kind == ME_FRAME_INLINE else None
        self._obj = None
        PyBuffer_Release(&self._view)
        self._held = False
        return 0

    @property
    def version(self):
        return self.f.version

    @property
    def type(self):
        return self.f.type

    @property
    def kind(self):
        return self.f.kind

    @property
    def flags(self):
        return self.f.flags

    @property
    def end(self):
        return bool(self.f.flags & ME_FRAME_F_END)

    @property
    def id(self):
        return self.f.id

    @property
    def payload_length(self):
        return self.f.payload_len

    @property
    def segment(self):
        """The shared-memory segment (``BLOCK``), the fd index (``FILE``), 0 (``INLINE``)."""
        return self.f.segment

    @property
    def fd_index(self):
        """The fd index of a ``FILE`` payload (the same field as ``segment``)."""
        return self.f.segment

    @property
    def offset(self):
        return self.f.offset

    @property
    def crc(self):
        return self.f.crc

    @property
    def crc_checked(self):
        """False only for a ``BLOCK``/``FILE`` frame whose CRC covers its payload: call ``verify_payload``."""
        return bool(self.f.crc_checked)

    @property
    def size(self):
        """Bytes of the frame in its buffer: header, extensions and inline payload."""
        return self.f.size

    @property
    def extensions(self):
        self._make_views()
        return self._ext

    @property
    def payload(self):
        """The inline payload (a memoryview into the decoded buffer); None for ``BLOCK``/``FILE``."""
        self._make_views()
        return self._payload

    @property
    def deadline_ns(self):
        return self.f.deadline_ns if self.f.present & ME_FRAME_HAS_DEADLINE else None

    @property
    def priority(self):
        return self.f.priority if self.f.present & ME_FRAME_HAS_PRIORITY else None

    @property
    def principal(self):
        """The principal TLV's value (bytes; ``Principal.from_tlv`` reads it) or None. The decoder checked
        its structure and bounds."""
        if not self.f.present & ME_FRAME_HAS_PRINCIPAL:
            return None
        self._make_views()
        return bytes(self._ext[self.f.principal_off:self.f.principal_off + self.f.principal_len])

    @property
    def trace(self):
        """``(trace_id, parent_id, trace_flags)`` or None."""
        if not self.f.present & ME_FRAME_HAS_TRACE:
            return None
        raw = bytes(self.f.trace[:ME_FRAME_TRACE_SIZE])
        return raw[:16], raw[16:24], raw[24]

    def tlvs(self):
        """tlvs() -> list[tuple[int, memoryview]]

        Every TLV of the extensions in order, known or skipped, as (type, value).
        """
        out = []
        self._make_views()
        ext = self._ext
        cdef Py_ssize_t at = 0, n = len(ext)
        while at + ME_FRAME_TLV_HEADER <= n:
            vlen = ext[at + 2] | ext[at + 3] << 8
            out.append((ext[at] | ext[at + 1] << 8, ext[at + 4:at + 4 + vlen]))
            at += ME_FRAME_TLV_HEADER + vlen
        return out

    def verify_payload(self, data):
        """verify_payload(data) -> None

        int me_frame_verify_payload(struct me_frame *f, const void *payload, size_t len)

        For a ``BLOCK``/``FILE`` frame sent with ``payload_crc``: check the CRC
        against the payload's bytes, once the block or file range is at hand.
        FrameError("bad CRC") on a mismatch; ValueError when the frame has no
        such CRC or ``data`` is not ``payload_length`` long.
        """
        cdef Py_buffer view
        cdef int rc
        _get(data, &view, PyBUF_SIMPLE, "data")
        try:
            if view.len >= NOGIL_MIN:
                with nogil:
                    rc = me_frame_verify_payload(&self.f, view.buf, <size_t>view.len)
            else:
                rc = me_frame_verify_payload(&self.f, view.buf, <size_t>view.len)
        finally:
            PyBuffer_Release(&view)
        if rc == 0:
            return None
        if self.f.reason == ME_FRAME_BAD_CRC:
            raise _refused(&self.f, 0, 0, 0)
        if self.crc_checked or self.f.kind == ME_FRAME_INLINE or not self.f.flags & ME_FRAME_F_PAYLOAD_CRC:
            raise ValueError("this frame's CRC does not cover an out-of-line payload: nothing to verify")
        raise ValueError(f"data holds {len(memoryview(data))} bytes, the frame's payload {self.f.payload_len}")

    def __repr__(self):
        where = (f"{self.f.payload_len} B inline" if self.f.kind == ME_FRAME_INLINE else
                 f"{self.f.payload_len} B at {KIND_NAMES[self.f.kind]} {self.f.segment}+{self.f.offset}")
        return (f"<Frame type={self.f.type} id={self.f.id} {where}, {self.f.ext_len} B extensions"
                f"{', end' if self.end else ''}>")


cdef Frame _new_frame(me_frame *f, object ext, object payload):
    cdef Frame fr = Frame.__new__(Frame)
    memcpy(&fr.f, f, sizeof(me_frame))
    fr._ext = ext
    fr._payload = payload
    return fr


def decode(buf, *, uint32_t max_payload=ME_FRAME_DEFAULT_MAX_PAYLOAD,
           uint32_t max_extensions=ME_FRAME_DEFAULT_MAX_EXT):
    """decode(buf, *, max_payload=DEFAULT_MAX_PAYLOAD, max_extensions=DEFAULT_MAX_EXTENSIONS) -> Frame

    int me_frame_decode(const void *buf, size_t len, const struct me_frame_limits *lim, struct me_frame *f)

    The frame at the start of ``buf`` (any C-contiguous buffer), checked: magic,
    version, fields, limits, length, CRC, TLVs. Bytes after the frame are left
    alone (``Frame.size`` says where the next one starts). Never reads past the
    end of ``buf``; copies nothing.

    Raises
    ------
    FrameError
        With ``reason`` ``truncated`` (and ``needed``), ``overlong``, ``bad magic``,
        ``bad version``, ``bad field``, ``bad CRC`` or ``bad TLV``.
    """
    cdef me_frame_limits lim = _limits(max_payload, max_extensions)
    cdef Frame fr = Frame.__new__(Frame)
    cdef int rc
    _get(buf, &fr._view, PyBUF_SIMPLE, "buf")
    fr._held = True  # released when the views are made, or with the Frame
    if fr._view.len >= NOGIL_MIN:
        with nogil:
            rc = me_frame_decode(fr._view.buf, <size_t>fr._view.len, &lim, &fr.f)
    else:
        rc = me_frame_decode(fr._view.buf, <size_t>fr._view.len, &lim, &fr.f)
    if rc < 0:
        raise _refused(&fr.f, fr._view.len, lim.max_payload, lim.max_ext)
    fr._obj = buf
    return fr


def frame_size(header, *, uint32_t max_payload=ME_FRAME_DEFAULT_MAX_PAYLOAD,
               uint32_t max_extensions=ME_FRAME_DEFAULT_MAX_EXT):
    """frame_size(header, *, max_payload=..., max_extensions=...) -> int

    int me_frame_parse_header(const void *buf, size_t len, const struct me_frame_limits *lim, struct me_frame *f)

    The size in all (header, extensions, inline payload) of the frame whose
    header starts ``header``: how much a stream reader reads before ``decode``.
    Checks the header only (not the CRC); FrameError as ``decode``, ``truncated``
    with ``needed`` 32 when fewer than 32 bytes are given.
    """
    cdef me_frame_limits lim = _limits(max_payload, max_extensions)
    cdef me_frame f
    cdef Py_buffer view
    cdef int rc
    _get(header, &view, PyBUF_SIMPLE, "header")
    rc = me_frame_parse_header(view.buf, <size_t>view.len, &lim, &f)
    have = view.len
    PyBuffer_Release(&view)
    if rc < 0:
        raise _refused(&f, have, lim.max_payload, lim.max_ext)
    return rc


def check_json_value(data):
    """check_json_value(data) -> None

    int me_json_check_value(const uint8_t *buf, size_t len, size_t *where)

    ValueError unless ``data`` (a bytes-like object) is one JSON object or
    array that can be embedded as a value in a JSON-RPC line: no raw line
    break, strings closed with JSON escapes and UTF-8, brackets matched, only
    spaces or tabs after it (numbers and literals are checked for their
    characters only). The message says what is wrong and at which offset.
    Reads at memory speed (AVX2 / NEON over string runs), without the GIL.
    """
    cdef Py_buffer view
    cdef size_t where = 0
    cdef int rc
    _get(data, &view, PyBUF_SIMPLE, "data")
    try:
        with nogil:
            rc = me_json_check_value(<const uint8_t *>view.buf, <size_t>view.len, &where)
    finally:
        PyBuffer_Release(&view)
    if rc:
        raise ValueError(f"not one JSON value: {me_json_check_message(rc).decode()} at offset {where}")


# --- vectored I/O -----------------------------------------------------------------------------------


cdef int _fileno(object fd) except -1:
    return fd if isinstance(fd, int) else fd.fileno()


cdef unsigned _io_flags(object fd):
    """ME_FRAME_IO_SOCKET for a socket object (sendmsg/recvmsg); a bare fd number gets writev/readv, which
    work on sockets too (Python ignores SIGPIPE, so a closed peer is EPIPE either way)."""
    return ME_FRAME_IO_SOCKET if isinstance(fd, _socket.socket) else 0


cdef int64_t _at(object at) except? -2:
    if at is None:
        return -1
    if at < 0:
        raise ValueError(f"file offset {at} is negative")
    return at


cdef int _retry(int rc, str what) except -1:
    """After a C read/write step: 1 to call again (EINTR, once Python's signal handlers ran), 0 when the fd
    would block, or the OSError."""
    if rc == -EINTR:
        PyErr_CheckSignals()
        return 1
    if rc == -EAGAIN:
        return 0
    check(rc, what)
    return 0


cdef void *_addr(object view):
    """The address of a C-contiguous memoryview's bytes, which stay put while the view lives (it holds an
    export of its object)."""
    cdef Py_buffer b
    PyObject_GetBuffer(view, &b, PyBUF_SIMPLE)
    cdef void *p = b.buf
    PyBuffer_Release(&b)
    return p


cdef list _unfinished(parts, Py_ssize_t skip):
    """The pieces of ``parts`` (memoryviews, in order) past their first ``skip`` bytes, empty ones left out."""
    cdef Py_ssize_t at = 0, n
    out = []
    for part in parts:
        n = len(part)
        if n and at + n > skip:
            out.append(part[skip - at:] if skip > at else part)
        at += n
    return out


cdef class FrameWriter:
    """FrameWriter(type, id, payload=b"", **fields): one frame on its way out, and how far it got.

    The header (encoded here), the extensions and the inline payload stay three
    separate buffers: ``write_to`` hands them to one ``writev`` (``sendmsg`` on a
    socket object) as three iovecs and resumes where a short write stopped;
    ``buffers``/``advance`` let another engine (``Engine.writev``) do the writes.
    The fields are ``write_frame``'s. The extensions and payload must not change
    until the frame is out (they are held, not copied).
    """

    def __init__(self, int type, uint64_t id, payload=b"", *, int kind=ME_FRAME_INLINE, length=None,
                 int segment=0, uint64_t offset=0, bint end=False, bint payload_crc=False, deadline_ns=None,
                 priority=None, trace=None, extensions=None, principal=None):
        if extensions is None:
            extensions = encode_extensions(deadline_ns=deadline_ns, priority=priority, trace=trace,
                                           principal=principal)
        elif deadline_ns is not None or priority is not None or trace is not None or principal is not None:
            raise ValueError("pass either extensions= or deadline_ns/priority/trace/principal, not both")
        body = payload if kind == ME_FRAME_INLINE or payload_crc else None
        if body is not None and len(memoryview(body)) == 0 and kind != ME_FRAME_INLINE:
            body = None
        self._header = bytearray(ME_FRAME_HEADER_SIZE)
        _encode(self._header, type, id, body, kind, length, segment, offset, extensions, end, payload_crc)
        self._parts = (memoryview(self._header), memoryview(extensions).cast("B"),
                       memoryview(payload).cast("B") if kind == ME_FRAME_INLINE else memoryview(b""))
        ext_mv, pay_mv = self._parts[1], self._parts[2]
        me_frame_writer_init(&self.w, _addr(self._parts[0]), _addr(ext_mv), len(ext_mv), _addr(pay_mv),
                             len(pay_mv), -1, 0)

    @property
    def header(self):
        """The frame's 32-byte header."""
        return bytes(self._header)

    @property
    def total(self):
        """Bytes of the frame: header, extensions, inline payload."""
        return self.w.total

    @property
    def written(self):
        """Bytes written so far."""
        return self.w.done

    @property
    def done(self):
        return self.w.done == self.w.total

    def write_to(self, fd, *, at=None):
        """write_to(fd, *, at=None) -> bool

        int me_frame_writev(int fd, struct me_frame_writer *w)

        Write what is left of the frame to ``fd`` (a descriptor or anything with
        ``fileno()``; a socket object gets ``sendmsg``), resuming short writes:
        True once the whole frame is out; False when a non-blocking ``fd`` is full
        (call again when it is writable). ``at``: write with ``pwritev`` at this
        file offset (where the frame starts) instead of at the fd's position.
        OSError from the write (BrokenPipeError when the reader is gone).
        """
        cdef int n = _fileno(fd), rc
        self.w.flags = _io_flags(fd)
        self.w.offset = _at(at)
        while True:
            with nogil:
                rc = me_frame_writev(n, &self.w)
            if rc == 0:
                return True
            if not _retry(rc, f"writev of a {self.w.total}-byte frame to fd {n}"):
                return False

    def buffers(self):
        """buffers() -> list[memoryview]

        int me_frame_writer_iov(const struct me_frame_writer *w, struct iovec iov[3])

        What is left to write, as memoryviews of the header, extensions and payload
        (no copies; empty pieces left out): for ``Engine.writev``, then ``advance``.
        """
        return _unfinished(self._parts, self.w.done)

    def advance(self, size_t n):
        """advance(n) -> None: record ``n`` bytes written by other means (ValueError past the end)."""
        if me_frame_writer_advance(&self.w, n) < 0:
            raise ValueError(f"{n} bytes written, but only {self.w.total - self.w.done} were left of the frame")

    def __repr__(self):
        return f"<FrameWriter {self.w.done}/{self.w.total} bytes written>"


cdef class FrameReader:
    """FrameReader(payload=None, extensions=None, *, max_payload=..., max_extensions=...): one frame on its way in.

    ``read_from`` reads the 32-byte header on its own (checking it on every
    partial read, so a wrong magic is refused on its first byte), then the
    extensions and the inline payload with one vectored read straight into their
    destinations, and never a byte past the frame's end. ``payload`` and
    ``extensions`` are writable buffers, or callables given the byte count once
    the header is read (``lambda n: pool.alloc(n)``: the payload lands in a slab
    block), or None (a bytearray for this frame). ``buffers``/``advance`` let
    another engine (``Engine.readv``) do the reads. The object's own buffer is
    its 32 header bytes.
    """

    def __init__(self, payload=None, extensions=None, *, uint32_t max_payload=ME_FRAME_DEFAULT_MAX_PAYLOAD,
                 uint32_t max_extensions=ME_FRAME_DEFAULT_MAX_EXT):
        cdef me_frame_limits lim = _limits(max_payload, max_extensions)
        me_frame_reader_init(&self.r, &lim, -1, 0)
        self._pay_arg = payload
        self._ext_arg = extensions

    def __getbuffer__(self, Py_buffer *view, int flags):
        view.buf = self.r.hdr
        view.obj = self
        view.len = ME_FRAME_HEADER_SIZE
        view.readonly = 0
        view.itemsize = 1
        view.format = NULL
        if flags & PyBUF_FORMAT:
            view.format = "B"
        view.ndim = 1
        view.shape = &view.len if flags & PyBUF_ND else NULL
        view.strides = &view.itemsize if flags & PyBUF_STRIDES else NULL
        view.suboffsets = NULL
        view.internal = NULL

    def __releasebuffer__(self, Py_buffer *view):
        pass

    @property
    def done(self):
        """The frame is read and checked: ``frame()`` gives it."""
        return self.r.phase == ME_FRAME_RD_DONE

    @property
    def eof(self):
        """The stream ended before the first byte of a frame: ``frame()`` gives None."""
        return self.r.phase == ME_FRAME_RD_EOF

    @property
    def finished(self):
        """``done`` or ``eof``."""
        return self.r.phase == ME_FRAME_RD_DONE or self.r.phase == ME_FRAME_RD_EOF

    @property
    def read(self):
        """Bytes of the frame read so far, header included."""
        return self.r.got

    cdef int _raise(self, int rc) except -1:
        if self.r.phase == ME_FRAME_RD_FAILED:
            raise _refused(&self.r.f, self.r.got, self.r.lim.max_payload, self.r.lim.max_ext)
        check(rc, "reading a frame")
        return 0

    cdef object _dest(self, object arg, Py_ssize_t n):
        if arg is None:
            arg = bytearray(n)
        elif callable(arg):
            arg = arg(n)
        mv = memoryview(arg)
        if mv.readonly:
            raise BufferError("a frame's destination must be a writable buffer")
        return mv.cast("B") if mv.format != "B" or mv.ndim != 1 else mv

    cdef int _choose(self) except -1:
        """Phase DEST: pick the destinations of the extensions and the inline payload."""
        cdef Py_ssize_t ext_len = self.r.f.ext_len
        cdef Py_ssize_t pay_len = self.r.f.payload_len if self.r.f.kind == ME_FRAME_INLINE else 0
        ext_mv = self._dest(self._ext_arg, ext_len)
        pay_mv = self._dest(self._pay_arg, pay_len)
        cdef int rc = me_frame_reader_dest(&self.r, _addr(ext_mv), len(ext_mv), _addr(pay_mv), len(pay_mv))
        if rc == -EMSGSIZE:
            raise FrameError("overlong", f"the frame has {ext_len} bytes of extensions and {pay_len} of payload; "
                                         f"the buffers hold {len(ext_mv)} and {len(pay_mv)}")
        check(rc, "me_frame_reader_dest")
        self._ext = ext_mv[:ext_len]
        self._payload = pay_mv[:pay_len]
        return 0

    def read_from(self, fd, *, at=None):
        """read_from(fd, *, at=None) -> bool

        int me_frame_read(int fd, struct me_frame_reader *r)

        Read the frame from ``fd`` (a descriptor or anything with ``fileno()``; a
        socket object gets ``recvmsg``): True when it is read and checked
        (``done``) or the stream ended cleanly before it (``eof``); False when a
        non-blocking ``fd`` has nothing more now (call again when readable; what
        was read is kept). ``at``: read with ``preadv`` at this file offset (where
        the frame starts) instead of at the fd's position.

        Raises
        ------
        FrameError
            As ``decode`` (``truncated`` when the stream ends inside the frame,
            ``overlong`` also when a destination is too small), raised on the
            header before any byte after it is read.
        """
        cdef int n = _fileno(fd), rc
        self.r.flags = _io_flags(fd)
        self.r.offset = _at(at)
        while True:
            with nogil:
                rc = me_frame_read(n, &self.r)
            if rc < 0:
                if self.r.phase == ME_FRAME_RD_FAILED:
                    self._raise(rc)
                if not _retry(rc, f"reading a frame from fd {n}"):
                    return False
            elif self.r.phase == ME_FRAME_RD_DEST:
                self._choose()
            else:
                return True

    def buffers(self):
        """buffers() -> list[memoryview]

        int me_frame_reader_iov(const struct me_frame_reader *r, struct iovec iov[2])

        What the next read fills (the rest of the header, or of the extensions and
        payload, picking their destinations once the header is in): for
        ``Engine.readv``, then ``advance``. Empty when the frame is finished.
        """
        if self.r.phase == ME_FRAME_RD_DEST:
            self._choose()
        if self.r.phase == ME_FRAME_RD_HEADER:
            return [memoryview(self)[self.r.got:]]
        if self.r.phase != ME_FRAME_RD_BODY:
            if self.r.phase == ME_FRAME_RD_FAILED:
                raise ValueError("this frame was refused: close the stream")
            return []
        return _unfinished((self._ext, self._payload), self.r.got - ME_FRAME_HEADER_SIZE)

    def advance(self, size_t n):
        """advance(n) -> None

        int me_frame_reader_advance(struct me_frame_reader *r, size_t n)

        Record ``n`` bytes read into ``buffers()``; 0 is the end of the stream.
        FrameError as ``read_from``; ValueError for more than was asked for.
        """
        cdef int rc = me_frame_reader_advance(&self.r, n)
        if rc < 0:
            if self.r.phase == ME_FRAME_RD_FAILED:
                self._raise(rc)
            raise ValueError(f"{n} bytes read, more than the frame's next piece needs, or the frame is over")
        if self.r.phase == ME_FRAME_RD_DEST:
            self._choose()

    def frame(self):
        """frame() -> Frame | None: the frame once ``done``; None after ``eof``."""
        if self.r.phase == ME_FRAME_RD_EOF:
            return None
        if self.r.phase != ME_FRAME_RD_DONE:
            raise ValueError("the frame is not read yet")
        return _new_frame(&self.r.f, self._ext, self._payload if self.r.f.kind == ME_FRAME_INLINE else None)

    def __repr__(self):
        return f"<FrameReader {('header', 'dest', 'body', 'done', 'eof', 'failed')[self.r.phase]}, {self.r.got} B>"


cdef int _wait(int fd, short events) except -1:
    """Block until a non-blocking fd is ready (poll: signals are handled, PEP 475)."""
    p = _select.poll()
    p.register(fd, events)
    p.poll()
    return 0


def write_frame(fd, int type, uint64_t id, payload=b"", *, int kind=ME_FRAME_INLINE, length=None, int segment=0,
                uint64_t offset=0, bint end=False, bint payload_crc=False, deadline_ns=None, priority=None,
                trace=None, extensions=None, at=None, principal=None):
    """write_frame(fd, type, id, payload=b"", **fields) -> int

    int me_frame_writev(int fd, struct me_frame_writer *w)

    Write one frame to ``fd`` (a socket, pipe or file: a descriptor, or anything
    with ``fileno()``): the header, the extensions and the inline payload go as
    three iovecs of one ``writev`` (``sendmsg`` for a socket object, ``pwritev``
    at the file offset ``at``), never joined into one buffer; a short write
    resumes where it stopped, and on a non-blocking ``fd`` the call waits
    (``poll``) until it can go on. The frame's fields are ``encode_header``'s;
    the extensions are ``encode_extensions``'s (``deadline_ns``, ``priority``,
    ``trace``, ``principal``) or the ready TLV bytes ``extensions``. Returns the bytes written.
    For ``BLOCK``/``FILE`` frames the payload (given only for ``payload_crc``)
    is not written. Asyncio: ``mcp_edge.io.frames``.
    """
    cdef FrameWriter w = FrameWriter(type, id, payload, kind=kind, length=length, segment=segment, offset=offset,
                                     end=end, payload_crc=payload_crc, deadline_ns=deadline_ns, priority=priority,
                                     trace=trace, extensions=extensions, principal=principal)
    while not w.write_to(fd, at=at):
        _wait(_fileno(fd), _select.POLLOUT)
    return w.w.total


def read_frame(fd, payload=None, extensions=None, *, uint32_t max_payload=ME_FRAME_DEFAULT_MAX_PAYLOAD,
               uint32_t max_extensions=ME_FRAME_DEFAULT_MAX_EXT, at=None):
    """read_frame(fd, payload=None, extensions=None, *, max_payload=..., max_extensions=..., at=None) -> Frame | None

    int me_frame_read(int fd, struct me_frame_reader *r)

    Read one frame from ``fd`` (a socket, pipe or file): the header into 32
    bytes of its own, checked as it arrives, then the extensions and the inline
    payload with one ``readv`` (``recvmsg`` for a socket object, ``preadv`` at
    the file offset ``at``) straight into their destinations: ``payload`` and
    ``extensions`` are writable buffers, callables given the byte count (a slab
    block's allocator), or None (a bytearray for this frame). Then the frame is
    checked as ``decode`` does; its ``extensions``/``payload`` are memoryviews
    into the destinations. Never reads past the frame's end; on a non-blocking
    ``fd`` the call waits (``poll``) for more. None at a clean end of stream (no
    byte of a next frame). Asyncio: ``mcp_edge.io.frames``.

    Raises
    ------
    FrameError
        As ``decode``, for a bad header before anything after it is read;
        ``overlong`` also when the frame's extensions or payload are longer than
        the caller's buffer; ``truncated`` when the stream ends inside a frame.
    """
    cdef FrameReader r = FrameReader(payload, extensions, max_payload=max_payload, max_extensions=max_extensions)
    while not r.read_from(fd, at=at):
        _wait(_fileno(fd), _select.POLLIN)
    return r.frame()


cdef int _rc = me_crc32c_set_level(_level_number(_active_level()))
if _rc < 0:
    raise IsaLevelError(f"this build of mcp_edge has no CRC32C kernel for level {_active_level()!r}")
