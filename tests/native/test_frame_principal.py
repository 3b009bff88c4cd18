"""The principal TLV (type 0x0004, docs/wire-format.md): values built from the byte table with ``struct``,
independently of the C code; the C decoder and encoder against them, malformed values as regression cases,
and the C check and ``Principal.from_tlv`` agreeing on arbitrary bytes."""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp_edge.errors import FrameError
from mcp_edge.native._frame import (
    DEFAULT_MAX_EXTENSIONS,
    PRINCIPAL_MAX,
    TLV_OPTIONAL,
    TLV_PRINCIPAL,
    TLV_PRIORITY,
    decode,
    encode_extensions,
    encode_header,
    read_frame,
    write_frame,
)
from mcp_edge.runtime.principal import MAX_TLV_VALUE, Principal

from .test_frame import ref_frame, tlv


def value(kind: int = 1, flags: int = 7, pid: int = 42, uid: int = 1000, gid: int = 100, ident: bytes = b"uid:1000",
          roles: tuple[bytes, ...] = (b"admin",), scopes: tuple[bytes, ...] = (b"tools:call",)) -> bytes:
    """A principal TLV value from the byte table."""
    out = struct.pack("<BBIII", kind, flags, pid, uid, gid) + bytes([len(ident)]) + ident
    for labels in (roles, scopes):
        out += bytes([len(labels)]) + b"".join(bytes([len(x)]) + x for x in labels)
    return out


GOOD = value()


def reason(buf: bytes, **limits: int) -> str:
    with pytest.raises(FrameError) as info:
        decode(buf, **limits)
    return info.value.reason


def test_the_numbers_agree() -> None:
    assert TLV_PRINCIPAL == 0x0004
    assert PRINCIPAL_MAX == MAX_TLV_VALUE == DEFAULT_MAX_EXTENSIONS - 4


def test_the_value_is_the_byte_tables() -> None:
    p = Principal("uid:1000", "unix-peer", roles={"admin"}, scopes={"tools:call"}, pid=42, uid=1000, gid=100)
    assert p.to_tlv() == GOOD


def test_encode_and_decode() -> None:
    ext = encode_extensions(priority=3, principal=GOOD)
    assert ext == tlv(TLV_PRIORITY, b"\x03") + tlv(TLV_PRINCIPAL, GOOD)
    frame = decode(encode_header(1, 9, b"body", extensions=ext) + ext + b"body")
    assert frame.principal == GOOD and frame.priority == 3
    assert Principal.from_tlv(frame.principal).pid == 42
    assert [t for t, _ in frame.tlvs()] == [TLV_PRIORITY, TLV_PRINCIPAL]


def test_a_frame_without_one_has_none() -> None:
    assert decode(ref_frame(payload=b"x")).principal is None


def test_a_reference_frame_decodes() -> None:
    assert decode(ref_frame(ext=tlv(TLV_PRINCIPAL, GOOD))).principal == GOOD


def test_the_optional_bit_does_not_change_the_type() -> None:
    assert decode(ref_frame(ext=tlv(TLV_PRINCIPAL | TLV_OPTIONAL, GOOD))).principal == GOOD


def test_the_largest_principal_fills_the_default_extension_limit() -> None:
    roles = tuple(b"%02d" % i + b"r" * 62 for i in range(32))
    scopes = (*(b"%02d" % i + b"s" * 62 for i in range(26)), b"t" * 49)
    big = value(ident=b"i" * 255, roles=roles, scopes=scopes)
    assert len(big) == PRINCIPAL_MAX
    ext = encode_extensions(principal=big)
    assert len(ext) == DEFAULT_MAX_EXTENSIONS
    frame = decode(ref_frame(ext=ext))
    assert frame.principal == big and len(Principal.from_tlv(big).scopes) == 27


@pytest.mark.parametrize("how", ["fd", "socket"])
def test_over_a_socket(how: str) -> None:
    a, b = socket.socketpair()
    with a, b:
        write_frame(a if how == "socket" else a.fileno(), 2, 5, b"payload", principal=GOOD, priority=1)
        frame = read_frame(b)
    assert frame is not None and frame.principal == GOOD and frame.priority == 1


MALFORMED = {
    "empty": b"",
    "fixed part cut": GOOD[:10],
    "no id length": GOOD[:14],
    "zero-length id": value(ident=b""),
    "id cut": GOOD[:18],
    "unknown kind": value(kind=7),
    "reserved flag": value(flags=0x0F),
    "absent pid given": value(flags=0x6),
    "absent gid given": value(flags=0x3),
    "no roles count": value()[:23],
    "too many roles": value(roles=tuple(b"r%02d" % i for i in range(33))),
    "role overlong": value(roles=(b"r" * 65,)),
    "zero-length role": value(roles=(b"",)),
    "duplicate role": value(roles=(b"a", b"b", b"a")),
    "duplicate scope": value(scopes=(b"x", b"x")),
    "role cut": value(scopes=())[:-1 - 3],
    "count says more": value(scopes=())[:-1] + b"\x02\x01s",
    "left over": GOOD + b"\x00",
    "no scopes count": value(scopes=())[:-1],
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_value_is_a_bad_tlv_everywhere(case: str) -> None:
    bad = MALFORMED[case]
    assert reason(ref_frame(ext=tlv(TLV_PRINCIPAL, bad))) == "bad TLV"
    with pytest.raises(ValueError, match="principal"):
        encode_extensions(principal=bad)
    with pytest.raises(FrameError, match="principal"):
        Principal.from_tlv(bad)


def test_an_overlong_value_is_a_bad_tlv_even_under_a_higher_limit() -> None:
    roles = tuple(b"%02d" % i + b"r" * 62 for i in range(32))
    scopes = (*(b"%02d" % i + b"s" * 62 for i in range(26)), b"t" * 50)  # one byte over
    over = value(ident=b"i" * 255, roles=roles, scopes=scopes)
    assert len(over) == PRINCIPAL_MAX + 1
    frame = ref_frame(ext=tlv(TLV_PRINCIPAL, over))
    assert reason(frame) == "overlong"  # the default limit refuses the area first
    assert reason(frame, max_extensions=8192) == "bad TLV"
    with pytest.raises(ValueError, match="principal"):
        encode_extensions(principal=over)


def test_a_second_principal_is_a_bad_tlv() -> None:
    assert reason(ref_frame(ext=tlv(TLV_PRINCIPAL, GOOD) * 2)) == "bad TLV"
    assert reason(ref_frame(ext=tlv(TLV_PRINCIPAL, GOOD) + tlv(TLV_PRINCIPAL | TLV_OPTIONAL, GOOD))) == "bad TLV"


def test_a_principal_tlv_running_past_the_area_is_a_bad_tlv() -> None:
    assert reason(ref_frame(ext=struct.pack("<HH", TLV_PRINCIPAL, len(GOOD) + 1) + GOOD)) == "bad TLV"


def _c_accepts(raw: bytes) -> bool:
    try:
        decode(ref_frame(ext=tlv(TLV_PRINCIPAL, raw)), max_extensions=0xFFFF)
    except FrameError as exc:
        assert exc.reason == "bad TLV"
        return False
    return True


labels = st.lists(st.binary(min_size=0, max_size=66), max_size=34).map(tuple)


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.binary(max_size=120),
    st.builds(value, kind=st.integers(0, 5), flags=st.integers(0, 9), pid=st.integers(0, 2), uid=st.integers(0, 2),
              gid=st.integers(0, 2), ident=st.binary(max_size=255), roles=labels, scopes=labels),
))
def test_the_c_check_and_the_python_decoder_agree(raw: bytes) -> None:
    c_ok = _c_accepts(raw)
    try:
        Principal.from_tlv(raw)
        py_error = ""
    except FrameError as exc:
        py_error = str(exc)
    if c_ok:  # the C check is structural: Python refuses only what is not UTF-8 beyond it
        assert py_error == "" or "not UTF-8" in py_error, py_error
    else:
        assert py_error != ""
