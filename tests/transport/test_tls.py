"""HTTPS on a real server: TLS 1.2+ only, modern ciphers; certificates rotated with a connection open (new
connections get the new one, the open one goes on) and a broken pair left unused; mutual TLS with the client
certificate's name as the principal, mapped to a role by the policy; a client without one refused."""

from __future__ import annotations

import datetime
import http.client
import json
import ssl
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from transport_helpers import WAIT, initialize, notification, request, running_server

NOW = datetime.datetime.now(datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: Any, issuer: tuple[str, Any] | None = None, *, ca: bool = False,
          san: list[x509.GeneralName] | None = None, serial: int | None = None) -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(_name(subject))
               .issuer_name(_name(issuer[0] if issuer else subject)).public_key(key.public_key())
               .serial_number(serial or x509.random_serial_number())
               .not_valid_before(NOW - datetime.timedelta(hours=1)).not_valid_after(NOW + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: Any) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class Pki:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _cert("test CA", self.ca_key, ca=True)
        (folder / "ca.pem").write_bytes(_pem(self.ca))

    def server(self, serial: int) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert("localhost", key, ("test CA", self.ca_key), serial=serial,
                     san=[x509.DNSName("localhost"), x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))])
        tmp = self.folder / "server.tmp"
        tmp.write_bytes(_pem(cert) + _key_pem(key))  # one file: the chain and the key
        tmp.replace(self.folder / "server.pem")

    def client(self, cn: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _cert(cn, key, ("test CA", self.ca_key))
        (self.folder / f"{cn}.crt").write_bytes(_pem(cert))
        (self.folder / f"{cn}.key").write_bytes(_key_pem(key))
        return self.folder / f"{cn}.crt", self.folder / f"{cn}.key"


def _context(pki: Pki, client: tuple[Path, Path] | None = None, **kw: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.folder / "ca.pem"))
    for k, v in kw.items():
        setattr(ctx, k, v)
    if client is not None:
        ctx.load_cert_chain(*client)
    return ctx


def _serial(conn: http.client.HTTPSConnection) -> int:
    assert conn.sock is not None
    der = conn.sock.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def _get(conn: http.client.HTTPSConnection, path: str) -> int:
    conn.request("GET", path)
    resp = conn.getresponse()
    resp.read()
    return resp.status


def test_https_serves_tls12_and_up_and_rotates_with_a_connection_open(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.server(1001)
    settings = {"tls_cert": str(tmp_path / "server.pem"), "tls_reload_s": 0.1}
    with running_server(tmp_path, "--http", "--port", "0", settings=settings) as srv:
        assert srv.where.startswith("https://")
        old = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=WAIT, context=_context(pki))
        assert _get(old, "/healthz/live") == 200 and _serial(old) == 1001
        assert old.sock is not None and old.sock.version() in ("TLSv1.2", "TLSv1.3")
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):  # TLS 1.1 is refused
            with warnings.catch_warnings():  # (asking for TLS 1.1 is deprecated: that is the point)
                warnings.simplefilter("ignore", DeprecationWarning)
                legacy = _context(pki, maximum_version=ssl.TLSVersion.TLSv1_1, minimum_version=ssl.TLSVersion.TLSv1)
            http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=WAIT, context=legacy).connect()
        (tmp_path / "server.pem").write_text("not a certificate")  # a broken pair: logged, not used
        time.sleep(0.5)
        broken = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=WAIT, context=_context(pki))
        assert _get(broken, "/healthz/live") == 200 and _serial(broken) == 1001
        pki.server(2002)  # the rotation
        deadline = time.monotonic() + WAIT
        while True:
            fresh = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=WAIT, context=_context(pki))
            fresh.connect()
            if _serial(fresh) == 2002 or time.monotonic() > deadline:
                break
            fresh.close()
            time.sleep(0.05)
        assert _serial(fresh) == 2002 and _get(fresh, "/healthz/live") == 200
        assert _get(old, "/healthz/ready") == 200 and _serial(old) == 1001  # the open one goes on
    assert "do not load" in srv.stderr() and "TLS certificate reloaded" in srv.stderr()


def _post(conn: http.client.HTTPSConnection, msg: Any, sid: str | None = None) -> tuple[int, Any, dict[str, str]]:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    if sid:
        headers["Mcp-Session-Id"] = sid
    conn.request("POST", "/mcp", json.dumps(msg).encode(), headers)
    resp = conn.getresponse()
    body = resp.read()
    return resp.status, json.loads(body) if body else None, {k.lower(): v for k, v in resp.getheaders()}


def test_mutual_tls_names_the_principal_and_the_policy_gives_it_a_role(tmp_path: Path) -> None:
    pki = Pki(tmp_path)
    pki.server(1)
    robot, intruder = pki.client("robot"), pki.client("intruder")
    (tmp_path / "policy.toml").write_text('[roles.ops]\ntools = ["whoami"]\n[principals]\n"certificate:robot" = '
                                          '["ops"]\n')
    settings = {"tls_cert": str(tmp_path / "server.pem"), "tls_client_ca": str(tmp_path / "ca.pem"),
                "auth_required": True, "auth_policy_file": str(tmp_path / "policy.toml")}
    with running_server(tmp_path, "--http", "--port", "0", settings=settings) as srv:
        conn = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=WAIT, context=_context(pki, robot))
        status, _, headers = _post(conn, initialize())
        assert status == 200
        sid = headers["mcp-session-id"]
        _post(conn, notification("notifications/initialized"), sid)
        _, answer, _ = _post(conn, request(2, "tools/call", {"name": "whoami", "arguments": {}}), sid)
        who = json.loads(answer["result"]["content"][0]["text"])
        assert (who["id"], who["kind"]) == ("robot", "certificate")
        _, denied, _ = _post(conn, request(3, "tools/call", {"name": "echo", "arguments": {"text": "x"}}), sid)
        assert denied["error"]["code"] == -32012
        other = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=WAIT, context=_context(pki, intruder))
        status, _, headers = _post(other, initialize())
        sid2 = headers.get("mcp-session-id")
        _post(other, notification("notifications/initialized"), sid2)
        _, nothing, _ = _post(other, request(2, "tools/call", {"name": "whoami", "arguments": {}}), sid2)
        assert nothing["error"]["code"] == -32012  # a valid certificate with no role: nothing
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):  # no certificate: refused at the handshake
            bare = http.client.HTTPSConnection("127.0.0.1", srv.port, timeout=WAIT, context=_context(pki))
            _post(bare, initialize())


def test_a_certificate_that_does_not_load_stops_the_start_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "bad.pem").write_text("nope")
    bad = {"tls_cert": str(tmp_path / "bad.pem")}
    with pytest.raises(AssertionError, match="do not load"), running_server(tmp_path, "--http", "--port", "0",
                                                                            settings=bad):
        pass
