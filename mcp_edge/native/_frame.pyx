# cython: language_level=3, boundscheck=False, wraparound=False
"""The 32-byte wire format (docs/wire-format.md): headers, TLV extensions, decoding, vectored I/O.

A frame is a 32-byte header, then its TLV extensions, then (inline kind only)
its payload; the payload of the other kinds lies in a shared-memory block or a
file the header points at. Decoding gives a ``Frame`` whose ``extensions`` and
``payload`` are memoryviews into the caller's buffer: nothing is copied.
"""

import os

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
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
    ME_FRAME_HAS_PRIORITY,
    ME_FRAME_HAS_TRACE,
    ME_FRAME_HEADER_SIZE,
    ME_FRAME_INLINE,
    ME_FRAME_KIND_COUNT,
    ME_FRAME_MAGIC,
    ME_FRAME_MAX_OFFSET,
    ME_FRAME_OVERLONG,
    ME_FRAME_TLV_DEADLINE,
    ME_FRAME_TLV_HEADER,
    ME_FRAME_TLV_OPTIONAL,
    ME_FRAME_TLV_PRIORITY,
    ME_FRAME_TLV_TRACE,
    ME_FRAME_TRACE_SIZE,
    ME_FRAME_TRUNCATED,
    ME_FRAME_VERSION,
    me_frame,
    me_frame_check,
    me_frame_decode,
    me_frame_encode_header,
    me_frame_limits,
    me_frame_parse_header,
    me_frame_reason_name,
    me_frame_tlv_put,
    me_frame_verify_payload,
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


def encode_extensions(*, deadline_ns=None, priority=None, trace=None, extra=()):
    """encode_extensions(*, deadline_ns=None, priority=None, trace=None, extra=()) -> bytes

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


def _fileno(fd):
    return fd if isinstance(fd, int) else fd.fileno()


def write_frame(fd, int type, uint64_t id, payload=b"", *, int kind=ME_FRAME_INLINE, length=None, int segment=0,
                uint64_t offset=0, bint end=False, bint payload_crc=False, deadline_ns=None, priority=None,
                trace=None, extensions=None):
    """write_frame(fd, type, id, payload=b"", **fields) -> int

    ssize_t writev(int fd, const struct iovec *iov, int iovcnt)

    Write one frame to ``fd`` (a descriptor, or anything with ``fileno()``: a
    socket, pipe or file opened for blocking I/O) with ``os.writev``: the
    header, the extensions and the inline payload go as separate iovecs, never
    joined into one buffer; a short write resumes where it stopped. The frame's
    fields are ``encode_header``'s; the extensions are ``encode_extensions``'s
    (``deadline_ns``, ``priority``, ``trace``) or the ready TLV bytes
    ``extensions``. Returns the bytes written. For ``BLOCK``/``FILE`` frames the
    payload (given only for ``payload_crc``) is not written.
    """
    if extensions is None:
        extensions = encode_extensions(deadline_ns=deadline_ns, priority=priority, trace=trace)
    elif deadline_ns is not None or priority is not None or trace is not None:
        raise ValueError("pass either extensions= or deadline_ns/priority/trace, not both")
    body = payload if kind == ME_FRAME_INLINE else (payload if payload_crc else None)
    header = encode_header(type, id, body, kind=kind, length=length, segment=segment, offset=offset,
                           extensions=extensions, end=end, payload_crc=payload_crc)
    parts = [memoryview(header), memoryview(extensions).cast("B")]
    if kind == ME_FRAME_INLINE:
        parts.append(memoryview(payload).cast("B"))
    parts = [p for p in parts if len(p)]
    total = sum(len(p) for p in parts)
    cdef int n = _fileno(fd)
    cdef Py_ssize_t done, left = total
    while parts:
        done = os.writev(n, parts)
        left -= done
        while parts and done >= len(parts[0]):
            done -= len(parts[0])
            parts.pop(0)
        if parts and done:
            parts[0] = parts[0][done:]
    return total


cdef Py_ssize_t _read_into(int fd, list views) except -1:
    """readv into `views` until they are full or the stream ends; the bytes read."""
    cdef Py_ssize_t got = 0, n
    views = [v for v in views if len(v)]
    while views:
        n = os.readv(fd, views)
        if n == 0:
            break
        got += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views.pop(0)
        if views and n:
            views[0] = views[0][n:]
    return got


def read_frame(fd, payload=None, extensions=None, *, uint32_t max_payload=ME_FRAME_DEFAULT_MAX_PAYLOAD,
               uint32_t max_extensions=ME_FRAME_DEFAULT_MAX_EXT):
    """read_frame(fd, payload, extensions=None, *, max_payload=..., max_extensions=...) -> Frame | None

    ssize_t readv(int fd, const struct iovec *iov, int iovcnt)

    Read one frame from ``fd`` (blocking socket, pipe or file) with ``os.readv``:
    the header into 32 bytes of its own, then the extensions and the inline
    payload straight into the caller's writable buffers ``extensions`` and
    ``payload`` (one readv for both; a buffer not given is allocated for
    this frame); then check it as ``decode`` does. The
    Frame's ``extensions``/``payload`` are memoryviews into those buffers.
    None at a clean end of stream (no byte of a next frame).

    Raises
    ------
    FrameError
        As ``decode``; ``overlong`` also when the frame's extensions or payload
        are longer than the caller's buffer; ``truncated`` when the stream ends
        inside a frame.
    """
    cdef me_frame_limits lim = _limits(max_payload, max_extensions)
    cdef me_frame f
    cdef int rc, n = _fileno(fd)
    cdef bytearray header = bytearray(ME_FRAME_HEADER_SIZE)
    cdef unsigned char *hp = header
    cdef Py_ssize_t got = 0, step
    cdef Py_buffer ev, pv
    hv = memoryview(header)
    while got < ME_FRAME_HEADER_SIZE:
        step = os.readv(n, [hv[got:]])
        if step == 0:
            if got == 0:
                return None
            break
        got += step
        rc = me_frame_parse_header(hp, <size_t>got, &lim, &f)
        if rc < 0 and f.reason != ME_FRAME_TRUNCATED:
            raise _refused(&f, got, lim.max_payload, lim.max_ext)
    rc = me_frame_parse_header(hp, <size_t>got, &lim, &f)
    if rc < 0:
        raise _refused(&f, got, lim.max_payload, lim.max_ext)
    pay_len = f.payload_len if f.kind == ME_FRAME_INLINE else 0
    ext_mv = memoryview(bytearray(f.ext_len) if extensions is None else extensions).cast("B")
    pay_mv = memoryview(bytearray(pay_len) if payload is None else payload).cast("B")
    if f.ext_len > len(ext_mv) or pay_len > len(pay_mv):
        f.reason = ME_FRAME_OVERLONG
        raise FrameError("overlong", f"the frame has {f.ext_len} bytes of extensions and {pay_len} of payload; "
                                     f"the buffers hold {len(ext_mv)} and {len(pay_mv)}")
    ext_mv = ext_mv[:f.ext_len]
    pay_mv = pay_mv[:pay_len]
    got = ME_FRAME_HEADER_SIZE + _read_into(n, [ext_mv, pay_mv])
    if got < <Py_ssize_t>f.size:
        f.needed = f.size
        f.reason = ME_FRAME_TRUNCATED
        raise _refused(&f, got, lim.max_payload, lim.max_ext)
    _get(ext_mv, &ev, PyBUF_SIMPLE, "extensions")
    try:
        _get(pay_mv, &pv, PyBUF_SIMPLE, "payload")
        try:
            if pay_len >= NOGIL_MIN:
                with nogil:
                    rc = me_frame_check(&f, hp, ev.buf, pv.buf)
            else:
                rc = me_frame_check(&f, hp, ev.buf, pv.buf)
        finally:
            PyBuffer_Release(&pv)
    finally:
        PyBuffer_Release(&ev)
    if rc < 0:
        raise _refused(&f, got, lim.max_payload, lim.max_ext)
    return _new_frame(&f, ext_mv, pay_mv if f.kind == ME_FRAME_INLINE else None)


cdef int _rc = me_crc32c_set_level(_level_number(_active_level()))
if _rc < 0:
    raise IsaLevelError(f"this build of mcp_edge has no CRC32C kernel for level {_active_level()!r}")
