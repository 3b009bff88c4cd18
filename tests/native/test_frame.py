"""The 32-byte wire format (docs/wire-format.md): layout against an independent encoder, round trips of every
payload kind and TLV, every malformed class, decoding arbitrary bytes, vectored I/O over sockets, pipes, files.

The reference encoder here is written from the byte table (``struct`` and the ``crc32c`` package), not from
the C code. Bytes decoded by the property tests sit at the very end of a readable page followed by an
inaccessible one, so a read past the end of the input faults (ASan catches it too: see the report).
"""

from __future__ import annotations

import ctypes
import mmap
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import crc32c as reference
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_edge.errors import McpEdgeError
from mcp_edge.native._frame import (
    BLOCK,
    DEFAULT_MAX_EXTENSIONS,
    DEFAULT_MAX_PAYLOAD,
    F_END,
    F_PAYLOAD_CRC,
    FILE,
    INLINE,
    MAX_OFFSET,
    TLV_DEADLINE,
    TLV_OPTIONAL,
    TLV_PRIORITY,
    TLV_TRACE,
    Frame,
    FrameError,
    decode,
    encode_extensions,
    encode_header,
    encode_header_into,
    frame_size,
    read_frame,
    write_frame,
)

LAYOUT = struct.Struct("<HBBBBHQIIQ")  # magic, version, type, kind, flags, ext_len, id, payload_len, crc, locator
assert LAYOUT.size == 32
TRACE = (bytes(range(16)), bytes(range(100, 108)), 1)


def tlv(type_: int, value: bytes) -> bytes:
    return struct.pack("<HH", type_, len(value)) + value


def ref_frame(type_: int = 7, id_: int = 0x1122334455667788, payload: bytes = b"", ext: bytes = b"", *,
              kind: int = INLINE, flags: int = 0, segment: int = 0, offset: int = 0, payload_len: int | None = None,
              magic: int = 0xC54D, version: int = 1, crc_payload: bytes | None = None) -> bytes:
    """A frame built from the byte table: header, extensions, inline payload."""
    plen = len(payload) if payload_len is None else payload_len
    fields = [magic, version, type_, kind, flags, len(ext), id_, plen, 0, segment | offset << 16]
    covered = payload if kind == INLINE else (crc_payload or b"")
    fields[8] = reference.crc32c(LAYOUT.pack(*fields) + ext + covered)
    return LAYOUT.pack(*fields) + ext + (payload if kind == INLINE else b"")


def reason(buf: bytes, **limits: int) -> str:
    with pytest.raises(FrameError) as info:
        decode(buf, **limits)
    return info.value.reason


# --- layout and encoding ------------------------------------------------------------------------------


def test_header_bytes_match_the_byte_table() -> None:
    ext = encode_extensions(deadline_ns=5, priority=3, trace=TRACE)
    assert encode_header(7, 0x1122334455667788, b"payload", extensions=ext) == \
        ref_frame(payload=b"payload", ext=ext)[:32]
    head = encode_header(9, 1, None, kind=BLOCK, length=4096, segment=0xBEEF, offset=MAX_OFFSET, end=True)
    assert head == ref_frame(9, 1, kind=BLOCK, flags=F_END, segment=0xBEEF, offset=MAX_OFFSET, payload_len=4096)
    assert head[:3] == b"M\xc5\x01" and head[24:26] == b"\xef\xbe" and head[26:32] == b"\xff" * 6


def test_extension_bytes() -> None:
    assert encode_extensions() == b""
    assert encode_extensions(deadline_ns=2**64 - 1) == tlv(TLV_DEADLINE, b"\xff" * 8)
    assert encode_extensions(priority=200) == tlv(TLV_PRIORITY, b"\xc8")
    assert encode_extensions(trace=TRACE) == tlv(TLV_TRACE, TRACE[0] + TRACE[1] + b"\x01")
    assert encode_extensions(extra=[(0x8123, b"xy")]) == tlv(0x8123, b"xy")


def test_encode_header_into_a_slot() -> None:
    slot = bytearray(64)
    assert encode_header_into(memoryview(slot)[16:], 1, 2, b"abc") == 32
    assert bytes(slot[16:48]) == encode_header(1, 2, b"abc") and slot[:16] == bytes(16) and slot[48:] == bytes(16)
    with pytest.raises(ValueError, match="needs 32"):
        encode_header_into(bytearray(31), 1, 2)
    with pytest.raises(BufferError):
        encode_header_into(b"\0" * 32, 1, 2)


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((256, 1), {}, "type 256"),
    ((1, 1), {"kind": 3}, "kind 3"),
    ((1, 1, b"x"), {"segment": 1}, "inline frame has no segment"),
    ((1, 1, b"x"), {"payload_crc": True}, "inline frame"),
    ((1, 1), {"length": 5}, "needs the payload"),
    ((1, 1), {"kind": BLOCK}, "needs the payload's length"),
    ((1, 1), {"kind": BLOCK, "length": 1, "segment": 65536}, "16 bits"),
    ((1, 1), {"kind": FILE, "length": 1, "offset": MAX_OFFSET + 1}, "48 bits"),
    ((1, 1), {"kind": BLOCK, "length": 1, "payload_crc": True}, "payload_crc needs"),
    ((1, 1), {"kind": BLOCK, "length": 2**32}, "32 bits"),
    ((1, 1), {"extensions": bytes(65536)}, "65535"),
])
def test_encode_refuses_what_has_no_encoding(args: tuple[Any, ...], kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        encode_header(*args, **kwargs)


def test_frame_is_not_built_by_hand() -> None:
    with pytest.raises(TypeError):
        Frame()


# --- round trips ----------------------------------------------------------------------------------------


EXTENSIONS = {
    "none": {},
    "deadline": {"deadline_ns": 123_456_789_012},
    "trace": {"trace": TRACE},
    "priority": {"priority": 255},
    "all": {"deadline_ns": 0, "trace": TRACE, "priority": 0},
}


@pytest.mark.parametrize("ext_name", list(EXTENSIONS))
@pytest.mark.parametrize("size", [0, 1, 31, 1000, 70000])
def test_inline_round_trip(ext_name: str, size: int) -> None:
    ext_args = EXTENSIONS[ext_name]
    payload = os.urandom(size)
    ext = encode_extensions(**ext_args)
    buf = bytearray(encode_header(200, 2**64 - 1, payload, extensions=ext, end=True) + ext + payload + b"next")
    frame = decode(buf)
    assert (frame.version, frame.type, frame.kind, frame.id, frame.end, frame.flags) == \
        (1, 200, INLINE, 2**64 - 1, True, F_END)
    assert frame.size == 32 + len(ext) + size == len(buf) - 4
    assert frame.payload_length == size and frame.crc_checked
    assert frame.payload is not None and frame.payload.tobytes() == payload
    assert frame.extensions.tobytes() == ext
    assert frame.payload.obj is buf and frame.extensions.obj is buf  # views into the caller's buffer
    assert frame.deadline_ns == ext_args.get("deadline_ns")
    assert frame.priority == ext_args.get("priority")
    assert frame.trace == ext_args.get("trace")
    assert [t for t, _ in frame.tlvs()] == [k for k, name in ((TLV_DEADLINE, "deadline_ns"), (TLV_TRACE, "trace"),
                                                             (TLV_PRIORITY, "priority")) if name in ext_args]
    assert frame_size(buf[:32]) == frame.size


@pytest.mark.parametrize("kind", [BLOCK, FILE])
@pytest.mark.parametrize("ext_name", ["none", "all"])
def test_out_of_line_round_trip(kind: int, ext_name: str) -> None:
    ext = encode_extensions(**EXTENSIONS[ext_name])
    head = encode_header(3, 99, kind=kind, length=1 << 20, segment=12, offset=(1 << 40) + 64, extensions=ext)
    frame = decode(head + ext)
    assert (frame.kind, frame.segment, frame.fd_index, frame.offset, frame.payload_length) == \
        (kind, 12, 12, (1 << 40) + 64, 1 << 20)
    assert frame.payload is None and frame.size == 32 + len(ext) and frame.crc_checked
    with pytest.raises(ValueError, match="nothing to verify"):
        frame.verify_payload(b"")


@pytest.mark.parametrize("kind", [BLOCK, FILE])
def test_payload_crc_of_an_out_of_line_payload(kind: int) -> None:
    block = bytearray(os.urandom(70000))
    ext = encode_extensions(priority=1)
    head = encode_header(3, 4, block, kind=kind, length=len(block), segment=1, offset=4096, extensions=ext,
                         payload_crc=True)
    assert head == ref_frame(3, 4, ext=ext, kind=kind, flags=F_PAYLOAD_CRC, segment=1, offset=4096,
                             payload_len=len(block), crc_payload=bytes(block))[:32]
    frame = decode(head + ext)
    assert not frame.crc_checked and frame.flags == F_PAYLOAD_CRC
    with pytest.raises(ValueError, match="70000"):
        frame.verify_payload(block[1:])
    block[12345] ^= 4
    with pytest.raises(FrameError) as info:
        frame.verify_payload(block)
    assert info.value.reason == "bad CRC"
    block[12345] ^= 4
    frame.verify_payload(block)
    assert frame.crc_checked


def test_optional_unknown_tlv_is_skipped_and_listed() -> None:
    ext = tlv(0x8000 | 0x7777, b"later") + tlv(TLV_PRIORITY | TLV_OPTIONAL, b"\x05") + tlv(0xFFFF, b"")
    frame = decode(ref_frame(ext=ext))
    assert frame.priority == 5
    assert [(t, v.tobytes()) for t, v in frame.tlvs()] == [(0xF777, b"later"), (0x8003, b"\x05"), (0xFFFF, b"")]


def test_a_frame_pins_its_buffer() -> None:
    """The bytes a Frame's views point into cannot move while it lives, whether or not its views were made."""
    buf = bytearray(ref_frame(payload=b"abc"))
    frame = decode(buf)
    with pytest.raises(BufferError):
        buf.extend(b"more")
    assert frame.payload == b"abc"
    del frame
    buf.extend(b"more")


def test_decode_takes_any_contiguous_buffer() -> None:
    raw = ref_frame(payload=b"abc")
    for buf in (raw, bytearray(raw), memoryview(raw), mmap_copy(raw)):
        assert bytes(decode(buf).payload or b"") == b"abc"
    with pytest.raises(BufferError):
        decode(memoryview(raw * 2)[::2])


def mmap_copy(data: bytes) -> mmap.mmap:
    m = mmap.mmap(-1, len(data))
    m.write(data)
    return m


# --- malformed frames -----------------------------------------------------------------------------------


VALID = ref_frame(payload=b"0123456789", ext=tlv(TLV_PRIORITY, b"\x02") + tlv(TLV_DEADLINE, bytes(8)))


def test_truncation_at_every_length() -> None:
    for n in range(len(VALID)):
        with pytest.raises(FrameError) as info:
            decode(VALID[:n])
        assert info.value.reason == "truncated", n
        assert info.value.needed == (32 if n < 32 else len(VALID)), n
        assert "truncated" in str(info.value)


def test_truncated_header_still_shows_bad_magic_and_version() -> None:
    assert reason(b"X") == "bad magic"
    assert reason(b"M\x00") == "bad magic"
    assert reason(b"M\xc5\x02") == "bad version"
    assert reason(b"M\xc5") == "truncated"


@pytest.mark.parametrize(("build", "expected"), [
    (lambda: ref_frame(magic=0xC54E), "bad magic"),
    (lambda: ref_frame(magic=0x0000), "bad magic"),
    (lambda: ref_frame(version=0), "bad version"),
    (lambda: ref_frame(version=2), "bad version"),
    (lambda: ref_frame(kind=3), "bad field"),
    (lambda: ref_frame(kind=255), "bad field"),
    (lambda: ref_frame(flags=0x04), "bad field"),
    (lambda: ref_frame(flags=0x80), "bad field"),
    (lambda: ref_frame(flags=F_PAYLOAD_CRC), "bad field"),  # an inline payload is always covered
    (lambda: ref_frame(segment=1), "bad field"),  # an inline frame has no locator
    (lambda: ref_frame(offset=1), "bad field"),
    (lambda: ref_frame(ext=bytes(DEFAULT_MAX_EXTENSIONS + 4)), "overlong"),
    (lambda: ref_frame(payload_len=DEFAULT_MAX_PAYLOAD + 1), "overlong"),
    (lambda: ref_frame(payload_len=0xFFFFFFFF), "overlong"),
    (lambda: ref_frame(payload=b"abc", payload_len=2) + b"c", "bad CRC"),  # CRC over the bytes the header says
    (lambda: ref_frame(ext=b"\x03"), "bad TLV"),  # shorter than a TLV header
    (lambda: ref_frame(ext=tlv(TLV_PRIORITY, b"\x01") + b"\x00\x00\x00"), "bad TLV"),
    (lambda: ref_frame(ext=struct.pack("<HH", TLV_PRIORITY, 2) + b"\x01"), "bad TLV"),  # value past the area
    (lambda: ref_frame(ext=tlv(TLV_PRIORITY, b"\x01\x02")), "bad TLV"),  # wrong value length
    (lambda: ref_frame(ext=tlv(TLV_DEADLINE, bytes(7))), "bad TLV"),
    (lambda: ref_frame(ext=tlv(TLV_TRACE, bytes(24))), "bad TLV"),
    (lambda: ref_frame(ext=tlv(TLV_PRIORITY, b"\x01") * 2), "bad TLV"),  # duplicate
    (lambda: ref_frame(ext=tlv(TLV_DEADLINE, bytes(8)) + tlv(TLV_DEADLINE | TLV_OPTIONAL, bytes(8))), "bad TLV"),
    (lambda: ref_frame(ext=tlv(0x0040, b"")), "bad TLV"),  # unknown and required
    (lambda: ref_frame(ext=tlv(0x0000, b"")), "bad TLV"),
])
def test_each_malformed_class(build: Callable[[], bytes], expected: str) -> None:
    assert reason(build() + bytes(DEFAULT_MAX_EXTENSIONS + 64)) == expected


def test_limits_are_the_callers() -> None:
    frame = ref_frame(payload=bytes(100), ext=tlv(TLV_PRIORITY, b"\x01"))
    decode(frame, max_payload=100, max_extensions=5)
    assert reason(frame, max_payload=99) == "overlong"
    assert reason(frame, max_extensions=4) == "overlong"
    with pytest.raises(FrameError, match="overlong"):
        frame_size(frame[:32], max_payload=10)
    block = ref_frame(kind=BLOCK, payload_len=2**31)  # an out-of-line length is its segment's to check
    assert decode(block, max_payload=0).payload_length == 2**31
    with pytest.raises(ValueError, match="limits"):
        decode(frame, max_extensions=65536)


def test_each_field_corrupted_in_place() -> None:
    """A byte of each field changed after encoding: the first check that fails names it."""
    expected = {0: "bad magic", 1: "bad magic", 2: "bad version", 3: "bad CRC", 4: "bad field", 5: "bad field",
                6: "bad CRC", 7: "overlong", 8: "bad CRC", 15: "bad CRC", 16: "bad CRC", 19: "overlong",
                20: "bad CRC", 23: "bad CRC", 24: "bad field", 31: "bad field"}
    for at, why in expected.items():
        bad = bytearray(VALID)
        bad[at] ^= 0x80
        assert reason(bytes(bad) + bytes(1 << 16)) == why, at


def test_every_bit_flip_is_refused() -> None:
    """CRC32C finds every single-bit error: each bit of a small frame flipped, decode refuses it."""
    small = ref_frame(payload=b"hi", ext=tlv(TLV_PRIORITY, b"\x09"))
    for bit in range(len(small) * 8):
        bad = bytearray(small)
        bad[bit // 8] ^= 1 << (bit % 8)
        why = reason(bytes(bad) + bytes(1 << 17))
        if 160 <= bit < 192 or bit // 8 in (3, *range(8, 16), *range(32, len(small))):  # crc, type, id, ext, payload
            assert why == "bad CRC", bit


def test_frame_error_is_ours_and_a_value_error() -> None:
    with pytest.raises(FrameError) as info:
        decode(b"")
    assert isinstance(info.value, McpEdgeError) and isinstance(info.value, ValueError)
    assert info.value.needed == 32


# --- arbitrary input ------------------------------------------------------------------------------------


class GuardedPage:
    """One readable page followed by an inaccessible one: bytes placed at the end of the first fault when
    read past their end."""

    def __init__(self) -> None:
        self.page = mmap.PAGESIZE
        self.mem = mmap.mmap(-1, 2 * self.page, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(self.mem))
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        assert libc.mprotect(addr + self.page, self.page, 0) == 0, os.strerror(ctypes.get_errno())
        self.view = memoryview(self.mem)

    def at_end(self, data: bytes) -> memoryview:
        start = self.page - len(data)
        self.view[start:self.page] = data
        return self.view[start:self.page]


@pytest.fixture(scope="module")
def guarded() -> Iterator[GuardedPage]:
    g = GuardedPage()
    yield g
    g.view.release()


def decode_or_refuse(buf: memoryview) -> None:
    try:
        frame = decode(buf)
    except FrameError as exc:
        assert exc.reason in ("truncated", "overlong", "bad magic", "bad version", "bad field", "bad CRC",
                              "bad TLV")
        return
    assert 32 <= frame.size <= len(buf)
    assert frame.payload is None or len(frame.payload) == frame.payload_length
    frame.tlvs()



@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=256))
def test_arbitrary_bytes_never_crash(guarded: GuardedPage, data: bytes) -> None:
    decode_or_refuse(guarded.at_end(data))

@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_frames_never_crash(guarded: GuardedPage, data: st.DataObject) -> None:
    """Valid frames with bytes changed and the CRC fixed up, so the checks after the CRC are reached."""
    ext = data.draw(st.binary(max_size=64))
    payload = data.draw(st.binary(max_size=64))
    raw = bytearray(ref_frame(payload=payload, ext=ext))
    for _ in range(data.draw(st.integers(0, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()) and len(raw) >= 32:  # fix the CRC up over what the header now says
        ext_len, plen = struct.unpack_from("<H", raw, 6)[0], struct.unpack_from("<I", raw, 16)[0]
        struct.pack_into("<I", raw, 20, 0)
        body = bytes(raw[32:32 + ext_len + (plen if raw[4] == INLINE else 0)])
        struct.pack_into("<I", raw, 20, reference.crc32c(bytes(raw[:32]) + body))
    cut = data.draw(st.integers(0, len(raw)))
    decode_or_refuse(guarded.at_end(bytes(raw[:cut])))

@settings(max_examples=200, deadline=None)
@given(st.integers(0, 255), st.integers(0, 2**64 - 1), st.binary(max_size=300), st.booleans(),
       st.one_of(st.none(), st.integers(0, 2**64 - 1)), st.one_of(st.none(), st.integers(0, 255)),
       st.lists(st.tuples(st.integers(5, 0x7FFF), st.binary(max_size=20)), max_size=3))  # 1-4 are known
def test_round_trip_property(type_: int, id_: int, payload: bytes, end: bool, deadline: int | None,
                             priority: int | None, unknown: list[tuple[int, bytes]]) -> None:
    ext = encode_extensions(deadline_ns=deadline, priority=priority,
                            extra=[(t | TLV_OPTIONAL, v) for t, v in unknown])
    frame = decode(encode_header(type_, id_, payload, extensions=ext, end=end) + ext + payload)
    got = (frame.type, frame.id, frame.end, frame.deadline_ns, frame.priority)
    assert got == (type_, id_, end, deadline, priority)
    assert bytes(frame.payload or b"") == payload


# --- vectored I/O -----------------------------------------------------------------------------------------


SIZES = [0, 1, 4096, 65536 + 7, 1 << 20]


def pair(kind: str) -> tuple[int, int, Callable[[], None]]:
    """(read fd, write fd, close) of a socketpair or a pipe."""
    if kind == "socketpair":
        a, b = socket.socketpair()

        def close_sockets() -> None:
            a.close()
            b.close()

        return a.fileno(), b.fileno(), close_sockets
    r, w = os.pipe()

    def close_pipe() -> None:
        os.close(r)
        os.close(w)

    return r, w, close_pipe


@pytest.mark.parametrize("kind", ["socketpair", "pipe"])
def test_writev_readv_round_trip(kind: str) -> None:
    rfd, wfd, close = pair(kind)
    payloads = [os.urandom(n) for n in SIZES]
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i, p in enumerate(payloads):
                n = write_frame(wfd, 1, i, p, priority=i, deadline_ns=i * 1000, end=i == len(payloads) - 1)
                assert n == 32 + 17 + len(p)
            write_frame(wfd, 2, 99, kind=BLOCK, length=1 << 20, segment=3, offset=1 << 30)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        buf = bytearray(1 << 20)
        ext = bytearray(64)
        for i, p in enumerate(payloads):
            frame = read_frame(rfd, buf, ext)
            assert frame is not None and frame.id == i and frame.priority == i and frame.deadline_ns == i * 1000
            assert frame.payload is not None and frame.payload.obj is buf and frame.payload == p
            assert frame.extensions.obj is ext and frame.end == (i == len(payloads) - 1)
        frame = read_frame(rfd, buf)
        assert frame is not None and (frame.kind, frame.segment, frame.offset) == (BLOCK, 3, 1 << 30)
        assert frame.payload is None
    finally:
        thread.join()
        close()
    assert not errors, errors


def test_read_frame_refusals(tmp_path: Path) -> None:
    path = tmp_path / "f"
    good = ref_frame(payload=bytes(100), ext=tlv(TLV_PRIORITY, b"\x01"))
    cases = {
        "truncated": good[:-1],
        "bad magic": b"Z" + good[1:],
        "bad CRC": good[:-1] + b"\x01",
        "bad TLV": ref_frame(ext=tlv(0x0042, b"")),
    }
    for why, data in cases.items():
        path.write_bytes(data)
        with path.open("rb") as f, pytest.raises(FrameError) as info:
            read_frame(f, bytearray(1000))
        assert info.value.reason == why
    path.write_bytes(good)
    for buffers in ((bytearray(99), None), (bytearray(100), bytearray(4))):
        with path.open("rb") as f, pytest.raises(FrameError, match=r"overlong: .* the buffers hold"):
            read_frame(f, *buffers)
    with path.open("rb") as f:
        frame = read_frame(f, bytearray(100), bytearray(5), max_payload=100)
        assert frame is not None and frame.priority == 1
    with path.open("rb") as f, pytest.raises(FrameError, match="overlong"):
        read_frame(f, bytearray(1000), max_payload=99)
