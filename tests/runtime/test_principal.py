"""Principal: constructors, immutability, bounds, and its TLV value (good and malformed: regression cases)."""

from __future__ import annotations

import os
import socket
import struct

import pytest

from mcp_edge.errors import FrameError
from mcp_edge.mcp import ServerConnection, ServerInfo
from mcp_edge.mcp.connection import Request
from mcp_edge.runtime.principal import (
    ANONYMOUS,
    EMBEDDED,
    KINDS,
    MAX_ID_BYTES,
    MAX_LABEL_BYTES,
    MAX_LABELS,
    MAX_TLV_VALUE,
    Principal,
)
from mcp_edge.runtime.router import RequestContextImpl, Session

FULL = Principal("uid:1000", "unix-peer", roles={"admin", "ops"}, scopes={"tools:call"}, pid=42, uid=1000, gid=100)


def test_stdio_principal_is_the_parent_process() -> None:
    p = Principal.parent_process()
    assert (p.kind, p.id, p.pid, p.uid, p.gid) == ("process", f"uid:{os.getuid()}", os.getppid(), os.getuid(),
                                                   os.getgid())


def test_a_unix_peer_is_known_by_its_credentials() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        p = Principal.from_peer(a)
    assert (p.kind, p.id, p.pid, p.uid, p.gid) == ("unix-peer", f"uid:{os.getuid()}", os.getpid(), os.getuid(),
                                                   os.getgid())


def test_a_socket_without_peer_credentials_is_an_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
        Principal.from_peer(s)


def test_the_constants() -> None:
    assert (ANONYMOUS.id, ANONYMOUS.kind, EMBEDDED.id, EMBEDDED.kind) == ("anonymous", "anonymous", "embedded",
                                                                          "embedded")
    assert ANONYMOUS.roles == ANONYMOUS.scopes == frozenset() and ANONYMOUS.pid is None


def test_a_principal_is_immutable_and_hashable() -> None:
    with pytest.raises(AttributeError):
        FULL.id = "uid:0"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del FULL.roles  # type: ignore[misc]
    same = Principal("uid:1000", "unix-peer", roles=["ops", "admin"], scopes=["tools:call"], pid=42, uid=1000,
                     gid=100)
    assert same == FULL and hash(same) == hash(FULL) and len({same, FULL}) == 1
    assert same != Principal("uid:1000", "unix-peer", pid=42, uid=1000, gid=100)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"id": "", "kind": "process"}, "non-empty"),
    ({"id": "x" * (MAX_ID_BYTES + 1), "kind": "process"}, "over 255"),
    ({"id": "é" * 128, "kind": "process"}, "256 bytes"),  # the bound is in UTF-8 bytes
    ({"id": "x", "kind": "passport"}, "kind"),
    ({"id": "x", "kind": "anonymous", "roles": [f"r{i}" for i in range(MAX_LABELS + 1)]}, "at most 32"),
    ({"id": "x", "kind": "anonymous", "scopes": ["s" * (MAX_LABEL_BYTES + 1)]}, "over 64"),
    ({"id": "x", "kind": "anonymous", "roles": [""]}, "non-empty"),
    ({"id": "x", "kind": "anonymous", "uid": -1}, "u32"),
    ({"id": "x", "kind": "anonymous", "pid": 1 << 32}, "u32"),
])
def test_a_principal_outside_the_wire_bounds_cannot_be_made(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Principal(**kwargs)  # type: ignore[arg-type]


# -- the TLV value -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [ANONYMOUS, EMBEDDED, FULL, Principal.parent_process(),
                               Principal("é" * 127, "process", uid=0, gid=0)])
def test_tlv_round_trip(p: Principal) -> None:
    assert Principal.from_tlv(p.to_tlv()) == p
    assert Principal.from_tlv(memoryview(bytearray(p.to_tlv()))) == p


def test_tlv_layout_is_the_documented_one() -> None:
    value = FULL.to_tlv()
    kind, flags, pid, uid, gid = struct.unpack_from("<BBIII", value)
    assert (KINDS[kind], flags, pid, uid, gid) == ("unix-peer", 0x7, 42, 1000, 100)
    rest = value[14:]
    assert rest == (b"\x08uid:1000" + b"\x02" + b"\x05admin" + b"\x03ops" + b"\x01" + b"\x0atools:call")
    assert ANONYMOUS.to_tlv() == bytes([2, 0]) + bytes(12) + b"\x09anonymous\x00\x00"


def test_the_largest_principal_fits_the_bound() -> None:
    big = Principal("i" * MAX_ID_BYTES, "process",
                    roles=[f"{i:02d}" + "r" * (MAX_LABEL_BYTES - 2) for i in range(MAX_LABELS)],
                    scopes=[f"{i:02d}" + "s" * (MAX_LABEL_BYTES - 2) for i in range(14)], pid=1, uid=2, gid=3)
    value = big.to_tlv()
    assert len(value) <= MAX_TLV_VALUE and Principal.from_tlv(value) == big


def _tlv(fixed: bytes = bytes([1, 7]) + struct.pack("<III", 5, 6, 7), ident: bytes = b"\x03abc",
         roles: bytes = b"\x00", scopes: bytes = b"\x00") -> bytes:
    return fixed + ident + roles + scopes


MALFORMED = {
    "empty": (b"", "shorter than"),
    "fixed part cut": (bytes([1, 7, 0, 0]), "shorter than"),
    "no id length": (_tlv()[:14], "before the length of its id"),
    "id cut": (_tlv()[:16], "truncated inside its id"),
    "zero-length id": (_tlv(ident=b"\x00"), "id length 0"),
    "no roles count": (_tlv()[:18], "before the count of its roles"),
    "no scopes count": (_tlv()[:19], "before the count of its scopes"),
    "role cut": (_tlv(roles=b"\x01\x05ad"), "truncated inside its role"),
    "too many roles": (_tlv(roles=b"\x21" + b"\x01r" * 33), "33 roles, over 32"),
    "role overlong": (_tlv(roles=b"\x01\x41" + b"r" * 65), "role length 65"),
    "duplicate role": (_tlv(roles=b"\x02\x01r\x01r"), "duplicate in its roles"),
    "duplicate scope": (_tlv(scopes=b"\x02\x01s\x01s"), "duplicate in its scopes"),
    "count says more": (_tlv(scopes=b"\x02\x01s"), "before the length of its scope"),
    "left over": (_tlv() + b"\x00", "1 bytes left over"),
    "unknown kind": (_tlv(fixed=bytes([9, 0]) + bytes(12)), "unknown kind code 9"),
    "reserved flag": (_tlv(fixed=bytes([1, 0x8]) + bytes(12)), "reserved flag"),
    "absent uid given": (_tlv(fixed=bytes([1, 0x1]) + struct.pack("<III", 5, 6, 0)), "uid 6 given but flagged"),
    "bad UTF-8": (_tlv(ident=b"\x02\xff\xfe"), "not UTF-8"),
    "overlong value": (_tlv() + bytes(MAX_TLV_VALUE), "over the 4092-byte bound"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_tlv_is_refused_saying_why(case: str) -> None:
    value, why = MALFORMED[case]
    with pytest.raises(FrameError, match=why) as info:
        Principal.from_tlv(value)
    assert info.value.reason == "bad TLV" and "principal" in str(info.value)


def test_the_well_formed_base_of_the_malformed_cases_decodes() -> None:
    p = Principal.from_tlv(_tlv())
    assert (p.kind, p.id, p.pid, p.uid, p.gid) == ("unix-peer", "abc", 5, 6, 7)


# -- sessions and request contexts ----------------------------------------------------------------------------------


def test_a_session_is_anonymous_until_its_transport_says_otherwise() -> None:
    conn = ServerConnection(ServerInfo("t", "0", {}))
    assert Session(conn).principal is ANONYMOUS
    req = Request(1, "tools/call", {}, "2025-11-25", False)
    rctx = RequestContextImpl(req, Session(conn, principal=FULL), None)
    assert rctx.principal is FULL
