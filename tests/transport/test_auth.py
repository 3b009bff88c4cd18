"""HTTP authentication on a real server: the Protected Resource Metadata; 401 with the challenge for a missing,
expired, foreign, unknown-key or alg=none token; 403 insufficient_scope naming every scope needed, and scope
hierarchies; API keys (hashed, compared in constant time, by header or X-API-Key); a session bound to the
principal that opened it; probes open, /metrics closed; and the official mcp SDK client with a bearer token."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from transport_helpers import WAIT, HttpClient, initialize, open_as, post_as, request, running_server

from mcp_edge.runtime.auth import ApiKeys

ISSUER = "https://issuer.example"
RESOURCE = "https://box.example/mcp"
PRM = "https://box.example/.well-known/oauth-protected-resource/mcp"


def _key(kid: str) -> tuple[Any, dict[str, Any]]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    public.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return private, public


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    good, good_jwk = _key("k1")
    other, _ = _key("k2")
    return {"good": good, "jwk": good_jwk, "other": other}


def token(keys: dict[str, Any], *, sub: str = "alice", scope: str = "mcp:access mcp:tools", aud: str = RESOURCE,
          iss: str = ISSUER, exp: float | None = None, key: str = "good", kid: str = "k1") -> str:
    now = time.time()
    claims = {"sub": sub, "iss": iss, "aud": aud, "iat": int(now), "exp": int(exp if exp is not None else now + 600),
              "scope": scope}
    return jwt.encode(claims, keys[key], algorithm="RS256", headers={"kid": kid})


@pytest.fixture
def server(tmp_path: Path, keys: dict[str, Any]) -> Any:
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [keys["jwk"]]}))
    api = ApiKeys(tmp_path / "data" / "api-keys.json")
    key = api.add("robot", ["mcp"])
    api.save()
    settings = {"auth_required": True, "auth_resource": RESOURCE, "auth_servers": [ISSUER],
                "auth_jwks_file": str(tmp_path / "jwks.json"), "auth_scopes": ["mcp:access"],
                "auth_method_scopes": ["tools/call=mcp:tools"], "metrics": True, "auth_leeway_s": 5}
    with running_server(tmp_path, "--http", "--port", "0", settings=settings) as srv:
        srv.api_key = key  # type: ignore[attr-defined]
        yield srv




def _challenge(reply: Any) -> dict[str, str]:
    value = reply.headers["www-authenticate"]
    assert value.startswith("Bearer"), value
    out = {}
    for part in value[len("Bearer"):].split(","):
        if "=" in part:
            k, _, v = part.strip().partition("=")
            out[k] = v.strip('"')
    return out




def _call(c: HttpClient, credential: str, sid: str, name: str = "echo", rid: int = 2) -> Any:
    return post_as(c, request(rid, "tools/call", {"name": name, "arguments": {"text": "hi"} if name == "echo" else {}}),
                 credential, sid)


def test_the_metadata_names_the_resource_and_its_authorization_server(server: Any) -> None:
    c = HttpClient(server.port)
    try:
        for path in ("/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"):
            reply = c.request("GET", path=path)
            assert reply.status == 200, reply
            doc = reply.json()
            assert doc["resource"] == RESOURCE and doc["authorization_servers"] == [ISSUER]
            assert set(doc["scopes_supported"]) == {"mcp:access", "mcp:tools"}
        for probe in ("live", "ready"):  # probes stay open
            assert c.request("GET", path=f"/healthz/{probe}").status == 200
    finally:
        c.close()


def test_no_credential_gets_401_with_where_to_get_one(server: Any) -> None:
    c = HttpClient(server.port)
    try:
        reply = post_as(c, initialize(), None)
        assert reply.status == 401
        ch = _challenge(reply)
        assert ch["resource_metadata"] == PRM and ch["scope"] == "mcp:access" and "error" not in ch
        assert c.request("GET", path="/metrics").status == 401  # metrics need a credential too
    finally:
        c.close()


@pytest.mark.parametrize(("make", "words"), [
    (lambda k: token(k, aud="https://other.example/mcp"), "not for this server"),
    (lambda k: token(k, exp=time.time() - 3600), "expired"),
    (lambda k: token(k, key="other", kid="k2"), "does not know"),
    (lambda k: token(k, key="other", kid="k1"), "not valid"),  # a known kid, the wrong signature
    (lambda k: token(k, iss="https://evil.example"), "issuer"),
    (lambda k: jwt.encode({"sub": "x", "iss": ISSUER, "aud": RESOURCE, "exp": int(time.time()) + 60}, None,
                          algorithm="none"), "algorithm 'none'"),
    (lambda k: "not-a-jwt", "not a JWT"),
    (lambda k: "mcpe_robot_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "API key is not valid"),
])
def test_a_bad_token_gets_401_invalid_token(server: Any, keys: dict[str, Any], make: Any, words: str) -> None:
    c = HttpClient(server.port)
    try:
        reply = post_as(c, initialize(), make(keys))
        assert reply.status == 401, reply
        ch = _challenge(reply)
        assert ch["error"] == "invalid_token" and words in ch["error_description"], ch
        assert words in reply.json()["error"]["message"]
        assert ch["resource_metadata"] == PRM
    finally:
        c.close()


def test_a_missing_scope_gets_403_naming_every_scope_needed(server: Any, keys: dict[str, Any]) -> None:
    c = HttpClient(server.port)
    try:
        narrow = token(keys, scope="mcp:access")
        sid = open_as(c, narrow)  # initialize needs mcp:access only
        reply = _call(c, narrow, sid)
        assert reply.status == 403
        ch = _challenge(reply)
        assert ch["error"] == "insufficient_scope" and ch["scope"] == "mcp:access mcp:tools"
        assert ch["resource_metadata"] == PRM
        broad = token(keys, scope="mcp")  # a scope covers those below it
        sid = open_as(c, broad)
        assert _call(c, broad, sid).json()["result"]["content"][0]["text"] == "hi"
        assert post_as(c, initialize(), token(keys, scope="other")).status == 403
    finally:
        c.close()


def test_a_valid_token_serves_and_the_plugin_sees_its_subject_not_the_token(server: Any, keys: dict[str, Any]) -> None:
    c = HttpClient(server.port)
    try:
        good = token(keys, sub="alice")
        sid = open_as(c, good)
        who = json.loads(_call(c, good, sid, "whoami").json()["result"]["content"][0]["text"])
        assert who["id"] == "alice" and who["kind"] == "token"
        assert good not in json.dumps(who)
        other = token(keys, sub="mallory")  # a valid token of someone else cannot use alice's session
        assert _call(c, other, sid).status == 403
    finally:
        c.close()
    assert good not in server.stderr()


def test_api_keys_by_authorization_or_x_api_key(server: Any) -> None:
    c = HttpClient(server.port)
    try:
        key = server.api_key
        sid = open_as(c, key)
        assert _call(c, key, sid).json()["result"]["content"][0]["text"] == "hi"
        who = json.loads(_call(c, key, sid, "whoami", 3).json()["result"]["content"][0]["text"])
        assert who == {**who, "id": "robot", "kind": "api-key"}
        reply = post_as(c, initialize(), key, header="X-API-Key")
        assert reply.status == 200
        assert c.request("GET", path="/metrics", headers={"Authorization": f"Bearer {key}"}).status == 200
        assert post_as(c, initialize(), key[:-2] + "zz").status == 401
    finally:
        c.close()
    assert key not in server.stderr()


def test_api_keys_are_stored_hashed_and_compared_in_constant_time(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    keys = ApiKeys(tmp_path / "k.json")
    key = keys.add("ci", ["mcp"])
    keys.save()
    stored = (tmp_path / "k.json").read_text()
    secret = key[len("mcpe_ci_"):]
    assert secret not in stored and hashlib.sha256(secret.encode()).hexdigest() in stored
    assert (tmp_path / "k.json").stat().st_mode & 0o777 == 0o600
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    loaded = ApiKeys.load(tmp_path / "k.json")
    assert loaded.check(key) == ("ci", ["mcp"])
    assert loaded.check("mcpe_nobody_" + secret) is None  # an unknown id is compared too (a dummy digest)
    assert loaded.check("garbage") is None
    assert len(compared) == 3
    for _ in range(64):  # secrets with "_" and "-" in them (URL-safe base64) parse too
        other = ApiKeys(tmp_path / "o.json")
        fresh = other.add("k-1", [])
        assert other.check(fresh) == ("k-1", [])
    with pytest.raises(Exception, match="exists"):
        loaded.add("ci", [])
    with pytest.raises(Exception, match="1-32 of a-z"):
        loaded.add("Bad Id", [])


def test_the_mcp_sdk_client_authenticates_with_a_bearer_token(server: Any, keys: dict[str, Any]) -> None:
    import anyio
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    url = f"http://127.0.0.1:{server.port}/mcp"

    async def main() -> tuple[list[str], str]:
        with anyio.fail_after(3 * WAIT):
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {token(keys, sub='sdk-user')}"})
            async with http, Client(streamable_http_client(url, http_client=http), mode="legacy",
                                    read_timeout_seconds=WAIT) as client:
                tools = await client.list_tools()
                result = await client.call_tool("whoami", {})
                return [t.name for t in tools.tools], result.content[0].text  # type: ignore[union-attr]

    names, who = anyio.run(main)
    assert "whoami" in names and json.loads(who)["id"] == "sdk-user"

    async def refused() -> None:
        with anyio.fail_after(3 * WAIT):
            async with Client(url, mode="legacy", read_timeout_seconds=WAIT) as client:
                await client.list_tools()

    with pytest.raises(Exception):  # noqa: B017 (the SDK's error for a 401 varies by version)
        anyio.run(refused)


def test_a_verified_token_is_remembered_until_it_expires(tmp_path: Path, keys: dict[str, Any],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp_edge.board.settings import Settings
    from mcp_edge.runtime.auth import Auth, Denied
    from mcp_edge.runtime.principal import Principal

    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [keys["jwk"]]}))
    settings = Settings.load(data_dir=tmp_path, auth_required=True, auth_resource=RESOURCE, auth_servers=(ISSUER,),
                             auth_jwks_file=str(tmp_path / "jwks.json"), auth_scopes=("mcp:access",),
                             auth_leeway_s=0, auth_token_cache=2)
    auth = Auth(settings, "http://127.0.0.1:1/mcp")
    decoded: list[str] = []
    real = jwt.decode
    monkeypatch.setattr(jwt, "decode", lambda t, *a, **k: decoded.append(t) or real(t, *a, **k))
    good = token(keys, exp=time.time() + 600)
    first, second = auth.authenticate({"authorization": f"Bearer {good}"}), \
        auth.authenticate({"authorization": f"Bearer {good}"})
    assert isinstance(first, Principal) and first == second and decoded == [good]  # verified once
    short = token(keys, sub="bob", exp=time.time() + 1)
    assert isinstance(auth.authenticate({"authorization": f"Bearer {short}"}), Principal)
    time.sleep(2.1)  # past its exp (leeway 0): the remembered one is dropped, checked again, refused
    refused = auth.authenticate({"authorization": f"Bearer {short}"})
    assert isinstance(refused, Denied) and "expired" in refused.message
    assert len(decoded) == 3
    for sub in ("c1", "c2", "c3"):  # bounded at auth_token_cache: the oldest go first
        assert isinstance(auth.authenticate({"authorization": f"Bearer {token(keys, sub=sub)}"}), Principal)
    assert len(auth._verified) == 2


def test_the_keys_are_discovered_from_the_issuers_metadata_and_fetched_again_for_a_new_key(
        tmp_path: Path, keys: dict[str, Any]) -> None:
    import http.server
    import threading

    from mcp_edge.board.settings import Settings
    from mcp_edge.runtime.auth import Auth, Denied, metadata_urls
    from mcp_edge.runtime.principal import Principal

    served = {"jwks": {"keys": [keys["jwk"]]}}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = f"http://127.0.0.1:{self.server.server_address[1]}"
            doc: Any = None
            if self.path == "/.well-known/oauth-authorization-server/tenant":  # RFC 8414, path inserted
                doc = {"issuer": f"{base}/tenant", "jwks_uri": f"{base}/keys"}
            elif self.path == "/keys":
                doc = served["jwks"]
            body = json.dumps(doc).encode()
            self.send_response(200 if doc is not None else 404)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        issuer = f"http://127.0.0.1:{httpd.server_address[1]}/tenant"
        assert metadata_urls(issuer)[0].endswith("/.well-known/oauth-authorization-server/tenant")
        settings = Settings.load(data_dir=tmp_path, auth_required=True, auth_resource=RESOURCE,
                                 auth_servers=(issuer,), auth_jwks_refresh_s=1.0)
        auth = Auth(settings, RESOURCE)
        first = token(keys, iss=issuer)
        assert isinstance(auth.authenticate({"authorization": f"Bearer {first}"}), Principal)
        rotated_private, rotated_jwk = _key("k9")  # the issuer rotates: a new key id, the new key served
        served["jwks"] = {"keys": [keys["jwk"], rotated_jwk]}
        keys2 = {**keys, "rotated": rotated_private}
        newer = token(keys2, iss=issuer, key="rotated", kid="k9")
        time.sleep(1.1)  # past auth_jwks_refresh_s since the first fetch
        assert auth.authenticate({"authorization": f"Bearer {newer}"}) is None  # unknown kid: fetch again
        auth.refresh()
        assert isinstance(auth.authenticate({"authorization": f"Bearer {newer}"}), Principal)
    finally:
        httpd.shutdown()
        httpd.server_close()
    down = Auth(Settings.load(data_dir=tmp_path, auth_required=True, auth_resource=RESOURCE,
                              auth_servers=("http://127.0.0.1:9/nowhere",)), RESOURCE)  # starts all the same
    refused = down.authenticate({"authorization": f"Bearer {token(keys, iss='http://127.0.0.1:9/nowhere')}"})
    assert refused is None or isinstance(refused, Denied)
