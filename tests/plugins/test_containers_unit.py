"""The containers plugin's pure parts: event normalization (Docker 29, Podman, old Docker), stats from both
engines' shapes, filters, since, ports, line splitting and the frame decoder. No engine needed."""

from __future__ import annotations

import importlib.util
import re
import struct
import sys
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from mcp_edge.engine_api import EngineClient, EngineError, EngineTLS, FrameDecoder, engine_tls, normalize_event

ROOT = Path(__file__).resolve().parents[2]


def _shapes() -> ModuleType:
    spec = importlib.util.spec_from_file_location("containers_shapes_under_test",
                                                  ROOT / "plugins" / "containers" / "shapes.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


shapes = _shapes()

CID = "57c6f95ec4dd146c20b7a2652c242bee8a752233b758c1e0ed3fba1ccc10c049"


# -- events ------------------------------------------------------------------------------------------------

def test_event_docker_29_without_the_old_fields() -> None:
    """API 1.52 dropped status/id/from: Actor and Action carry everything."""
    raw = {"Type": "container", "Action": "start", "Actor": {"ID": CID, "Attributes": {"name": "web",
                                                                                      "image": "nginx:1"}},
           "scope": "local", "time": 1700000000, "timeNano": 1700000000123456789}
    ev = normalize_event(raw)
    assert (ev.type, ev.action, ev.id, ev.name) == ("container", "start", CID, "web")
    assert ev.attributes["image"] == "nginx:1"
    assert ev.time_ns == 1700000000123456789


def test_event_podman_died_is_die_and_exec_action_split() -> None:
    raw = {"status": "died", "id": CID, "from": "localhost/busybox:latest", "Type": "container",
           "Action": "died", "Actor": {"ID": CID, "Attributes": {"name": "t1", "containerExitCode": "137"}},
           "time": 1796363978}
    ev = normalize_event(raw)
    assert ev.action == "die" and ev.raw_action == "died"
    assert ev.time_ns == 1796363978 * 1_000_000_000
    ev2 = normalize_event({**raw, "Action": "exec_start: sh -c ls", "status": "exec_start: sh -c ls"})
    assert ev2.action == "exec_start"


def test_event_old_docker_top_level_fields_only() -> None:
    """Before API 1.22 an event had only status/id/from: used where Actor/Action are missing."""
    ev = normalize_event({"status": "stop", "id": CID, "from": "busybox", "time": 1500000000})
    assert (ev.type, ev.action, ev.id) == ("container", "stop", CID)
    assert ev.attributes["image"] == "busybox"


@pytest.mark.parametrize("raw", [{}, {"Type": "container"}, {"foo": 1}])
def test_event_not_an_event(raw: dict[str, object]) -> None:
    with pytest.raises(EngineError, match="not an engine event"):
        normalize_event(raw)


# -- stats -------------------------------------------------------------------------------------------------

# What Podman 4.3 answers to stats?stream=false (taken from the test engine): precpu zeroed, no blkio entries,
# no memory detail.
PODMAN_STATS = {
    "read": "2026-12-04T05:59:29.63981952Z", "pids_stats": {"current": 2},
    "blkio_stats": {"io_service_bytes_recursive": [], "io_serviced_recursive": None},
    "cpu_stats": {"cpu_usage": {"total_usage": 37900763, "percpu_usage": [34868793, 3031970]},
                  "system_cpu_usage": 18090912743446, "online_cpus": 2},
    "precpu_stats": {"cpu_usage": {"total_usage": 0}},
    "memory_stats": {"usage": 929792, "limit": 25276071936}, "name": "t1", "Id": CID,
    "networks": {"network": {"rx_bytes": 426, "tx_bytes": 516}},
}

DOCKER_STATS = {
    "name": "/web", "id": CID, "pids_stats": {"current": 5},
    "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}, "system_cpu_usage": 20_000_000_000,
                  "online_cpus": 4},
    "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000}, "system_cpu_usage": 10_000_000_000,
                     "online_cpus": 4},
    "memory_stats": {"usage": 100 << 20, "limit": 1 << 30, "stats": {"inactive_file": 20 << 20}},
    "networks": {"eth0": {"rx_bytes": 10, "tx_bytes": 20}, "eth1": {"rx_bytes": 1, "tx_bytes": 2}},
    "blkio_stats": {"io_service_bytes_recursive": [{"major": 8, "minor": 0, "op": "read", "value": 4096},
                                                   {"major": 8, "minor": 0, "op": "write", "value": 8192}]},
}


def test_stats_docker_shape() -> None:
    s = shapes.stats_of(DOCKER_STATS)
    assert s.name == "web" and s.id == CID
    assert s.cpu_percent == pytest.approx(1e9 / 1e10 * 4 * 100)
    assert s.memory_usage == 80 << 20  # usage less the page cache, as docker stats shows it
    assert s.memory_limit == 1 << 30
    assert s.memory_percent == pytest.approx(80 / 1024 * 100, abs=0.01)
    assert (s.pids, s.net_rx_bytes, s.net_tx_bytes, s.blk_read_bytes, s.blk_write_bytes) == (5, 11, 22, 4096, 8192)
    assert s.missing == []


def test_stats_podman_shape_needs_a_second_sample() -> None:
    s = shapes.stats_of(PODMAN_STATS)
    assert s.cpu_percent is None
    assert set(s.missing) == {"cpu_percent", "blk_read_bytes", "blk_write_bytes"}
    later = {**PODMAN_STATS, "cpu_stats": {"cpu_usage": {"total_usage": 37900763 + 10_000_000},
                                           "system_cpu_usage": 18090912743446 + 1_000_000_000, "online_cpus": 2}}
    s2 = shapes.stats_of(later, previous=PODMAN_STATS)
    assert s2.cpu_percent == pytest.approx(10_000_000 / 1_000_000_000 * 2 * 100)
    assert "cpu_percent" not in s2.missing


def test_stats_missing_everything_never_crashes() -> None:
    s = shapes.stats_of({"cpu_stats": None, "memory_stats": None, "networks": None, "pids_stats": "x"})
    assert s.cpu_percent is None and s.memory_usage is None and s.pids is None
    assert "memory_usage" in s.missing and "pids" in s.missing


# -- filters, since, ports, summaries ----------------------------------------------------------------------

def test_list_filters() -> None:
    assert shapes.list_filters(["running", "exited"], ["app", "tier=web"], "web") == {
        "status": ["running", "exited"], "label": ["app", "tier=web"], "name": ["web"]}
    assert shapes.list_filters() == {}
    with pytest.raises(ValueError, match="status 'up'"):
        shapes.list_filters(["up"])
    with pytest.raises(ValueError, match="key or key=value"):
        shapes.list_filters(label=["=x"])


def test_parse_since() -> None:
    assert shapes.parse_since("1700000000") == "1700000000"
    assert shapes.parse_since("1700000000.5") == "1700000000.5"
    assert shapes.parse_since("2023-11-14T22:13:20Z") == "1700000000.000"
    assert shapes.parse_since("10m", now=1700000600.0) == "1700000000.000"
    assert shapes.parse_since("1h30m", now=1700005400.0) == "1700000000.000"
    for bad in ("yesterday", "", "-5", "10x"):
        with pytest.raises(ValueError, match="unix seconds"):
            shapes.parse_since(bad)


def test_parse_port() -> None:
    assert shapes.parse_port("80") == ("80/tcp", None)
    assert shapes.parse_port("53/udp") == ("53/udp", None)
    assert shapes.parse_port("8080:80") == ("80/tcp", {"HostPort": "8080"})
    assert shapes.parse_port("127.0.0.1:8080:80/tcp") == ("80/tcp", {"HostPort": "8080", "HostIp": "127.0.0.1"})
    for bad in ("http", "70000", "1:2:3:4", "80/icmp", "0"):
        with pytest.raises(ValueError, match="port"):
            shapes.parse_port(bad)


def test_summaries_tolerate_podman_nulls() -> None:
    c = shapes.container_summary({"Id": CID, "Names": ["/web"], "Image": "i", "State": "running", "Status": "Up",
                                  "Created": 1700000000, "Ports": None, "Labels": None})
    assert (c.name, c.ports, c.labels, c.created, c.uri) == ("web", [], {}, "2023-11-14T22:13:20Z",
                                                             "docker://containers/web")
    img = shapes.image_summary({"Id": "sha256:x", "RepoTags": None, "Size": 5, "Created": 1700000000,
                                "Labels": None, "Containers": -1})
    assert (img.tags, img.containers, img.labels) == ([], None, {})
    old = shapes.image_summary({"Id": "sha256:y", "RepoTags": ["<none>:<none>"]})
    assert old.tags == []


# -- streams -----------------------------------------------------------------------------------------------

def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def test_frames_split_anywhere_keep_streams_apart() -> None:
    data = frame(1, b"out one\nout ") + frame(2, b"err one\n") + frame(1, b"two\n")
    dec = FrameDecoder()
    got: list[tuple[str, bytes]] = []
    for i in range(len(data)):  # one byte at a time: every split point
        got += dec.feed(data[i:i + 1])
    assert dec.pending == 0
    out, err = shapes.LineSplitter(), shapes.LineSplitter()
    lines = {"stdout": [], "stderr": []}  # type: dict[str, list[str]]
    for stream, payload in got:
        lines[stream] += (out if stream == "stdout" else err).feed(payload)
    assert lines == {"stdout": ["out one", "out two"], "stderr": ["err one"]}


def test_line_splitter_cuts_long_lines_and_flushes() -> None:
    sp = shapes.LineSplitter(max_line=100)
    assert sp.feed(b"a" * 150 + b"\nb") == ["a" * 100 + "… [50 more characters]"]
    assert sp.flush() == ["b"] and sp.flush() == []
    assert sp.feed(b"x" * 500) == ["x" * 100 + "… [400 more characters]"]  # no newline for too long


def test_segment_keeps_a_name_in_its_path_segment() -> None:
    """httpx folds dot segments (``/containers/../json`` goes out as ``/json``): segment refuses them, and
    anything else stays one segment of the path that is sent."""
    assert httpx.URL("http://engine/v1.41/containers/../json").raw_path == b"/v1.41/json"  # why it matters
    for bad in ("", ".", "..", "a\nb", "x\x7f", "n" * 1025):
        with pytest.raises(EngineError, match="is not a valid container"):
            EngineClient.segment(bad, "container")
    for name in ("../../version", "a/b", "%2e%2e", "web.1", "localhost/busybox:latest", "..."):
        path = f"/v1.41/containers/{EngineClient.segment(name)}/json"
        raw = httpx.URL("http://engine" + path).raw_path.decode()
        assert raw == path and raw.count("/") == 4, name


# -- TLS settings (engine_tls) -----------------------------------------------------------------------------

def _pem_folder(folder: Path, *names: str) -> Path:
    folder.mkdir()
    for n in names:
        (folder / f"{n}.pem").write_text("-\n")  # engine_tls checks paths; the files' content is EngineClient's
    return folder


def test_engine_tls_from_the_environment_like_the_docker_cli(tmp_path: Path) -> None:
    full = _pem_folder(tmp_path / "full", "ca", "cert", "key")
    assert engine_tls({}, {}) == EngineTLS()
    assert engine_tls({}, {"DOCKER_CERT_PATH": str(full)}) == EngineTLS()  # the folder alone: no TLS
    want = EngineTLS(tls=True, verify=str(full / "ca.pem"), cert=(str(full / "cert.pem"), str(full / "key.pem")))
    assert engine_tls({}, {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(full)}) == want
    # any non-empty value turns it on, as the Docker CLI reads it; DOCKER_CERT_PATH defaults to $HOME/.docker
    home = tmp_path / "home"
    home.mkdir()
    _pem_folder(home / ".docker", "ca", "cert", "key")
    mine = engine_tls({}, {"DOCKER_TLS_VERIFY": "0", "HOME": str(home)})
    assert mine.tls and mine.verify == str(home / ".docker" / "ca.pem")
    # without cert.pem and key.pem: TLS verified, no client certificate
    ca_only = _pem_folder(tmp_path / "ca-only", "ca")
    assert engine_tls({}, {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(ca_only)}) == EngineTLS(
        tls=True, verify=str(ca_only / "ca.pem"))
    # config keys: tls_verify = false alone leaves TLS off; with the environment it drops the check
    assert engine_tls({"tls_verify": False}, {}) == EngineTLS()
    assert engine_tls({"tls_verify": False}, {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(full)}).verify is False
    assert engine_tls({"tls_verify": True}, {}) == EngineTLS(tls=True, verify=True)
    assert engine_tls({"tls_ca": str(full / "ca.pem")}, {}) == EngineTLS(tls=True, verify=str(full / "ca.pem"))


@pytest.mark.parametrize(("config", "environ", "message"), [
    ({}, {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/nonexistent"}, "'/nonexistent' from DOCKER_CERT_PATH"),
    ({}, {"DOCKER_TLS_VERIFY": "1"}, "(none)"),  # no DOCKER_CERT_PATH and no HOME
    ({"tls_key": "/k.pem"}, {}, "needs both tls_cert and tls_key"),
    ({"tls_ca": "/nonexistent/ca.pem"}, {}, "tls_ca: '/nonexistent/ca.pem' does not exist"),
])
def test_engine_tls_bad_paths(config: dict[str, object], environ: dict[str, str], message: str) -> None:
    with pytest.raises(EngineError, match=re.escape(message)):
        engine_tls(config, environ)


def test_engine_client_tls_context(tmp_path: Path) -> None:
    """tls=True makes tcp:// speak https (2376 by default); unreadable files are an EngineError naming them."""
    junk = _pem_folder(tmp_path / "junk", "ca")
    plain = EngineClient("tcp://10.0.0.1")._make()
    assert str(plain.base_url).startswith("http://10.0.0.1:2375")
    secure = EngineClient("tcp://10.0.0.1", tls=True, tls_verify=False)._make()
    assert str(secure.base_url).startswith("https://10.0.0.1:2376")
    with pytest.raises(EngineError, match="the TLS files cannot be used"):
        EngineClient("tcp://10.0.0.1", tls=True, tls_verify=str(junk / "ca.pem"))._make()
