"""Which engine runs: MCP_EDGE_IO, the fallback and its one log line, the process default, RLIMIT_MEMLOCK."""

from __future__ import annotations

import errno
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mcp_edge.io.engines as engines
from mcp_edge.errors import ConfigError, EngineUnavailable
from mcp_edge.io import ENGINE_ENV, get_engine, open_engine
from mcp_edge.io.engines import probe_storage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def fresh_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "_logged", set())
    monkeypatch.delenv(ENGINE_ENV, raising=False)


def broken_uring(err: int) -> object:
    def fail(entries: int) -> object:
        raise OSError(err, os.strerror(err))
    return fail


def test_env_forces_each_engine(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENGINE_ENV, kind)
    with open_engine(entries=4) as eng:
        assert eng.name == kind


def test_kinds_and_env(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mcp_edge.io")
    with open_engine("threads", entries=4) as eng:
        assert eng.name == "threads" and eng.info()["workers"] == 4
    monkeypatch.setenv(ENGINE_ENV, "threads")
    with open_engine() as eng:
        assert eng.name == "threads"
    monkeypatch.setenv(ENGINE_ENV, " Threads ")
    with open_engine() as eng:
        assert eng.name == "threads"
    assert sum("thread pool" in r.getMessage() for r in caplog.records) == 2  # kind= and the env, once each
    monkeypatch.setenv(ENGINE_ENV, "spdk")
    with pytest.raises(ConfigError,
                       match="MCP_EDGE_IO: setting io_engine must be one of uring, threads, auto, got 'spdk'"):
        open_engine()
    with pytest.raises(ConfigError, match="kind=epoll"):
        open_engine("epoll")


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EPERM])
def test_auto_falls_back_with_one_warning(
        err: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(engines, "_open_uring", broken_uring(err))
    caplog.set_level(logging.INFO, logger="mcp_edge.io")
    for _ in range(3):
        with open_engine() as eng:
            assert eng.name == "threads"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "logged once"
    msg = warnings[0].getMessage()
    assert msg.startswith("storage engine: thread pool of 32 workers (fallback: ")
    assert ("no io_uring (ENOSYS)" if err == errno.ENOSYS else "kernel.io_uring_disabled") in msg


def test_forced_uring_that_cannot_start_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "_open_uring", broken_uring(errno.EPERM))
    monkeypatch.setenv(ENGINE_ENV, "uring")
    with pytest.raises(EngineUnavailable) as exc:
        open_engine()
    assert exc.value.errno == errno.EPERM and isinstance(exc.value, OSError)
    assert str(exc.value).startswith("[Errno 1] MCP_EDGE_IO=uring asks for the io_uring engine, but io_uring ")
    assert "(EPERM" in str(exc.value)
    monkeypatch.delenv(ENGINE_ENV)
    with pytest.raises(EngineUnavailable, match="kind='uring'"):
        open_engine("uring")


def test_missing_extension_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_extension(entries: int) -> object:
        raise ImportError("liburing.so.2: cannot open shared object file")

    monkeypatch.setattr(engines, "_open_uring", no_extension)
    with open_engine() as eng:
        assert eng.name == "threads"
    with pytest.raises(EngineUnavailable, match="extension cannot be loaded"):
        open_engine("uring")


def test_process_default_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engines, "_default", None)
    first = get_engine()
    try:
        assert get_engine() is first
        first.close()
        second = get_engine()
        assert second is not first and not second.closed
    finally:
        engines._close_default()


def test_probe_storage_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = probe_storage(tmp_path / "not" / "there")
    assert report["engine"]["name"] in ("uring", "threads")
    assert report["alignment"]["probed"] == str(tmp_path)
    assert report["alignment"]["offset"] >= 1 and report["alignment"]["source"] in ("statx", "blockdev", "default")
    assert report["pool"]["pages"] in ("4k", "thp", "hugetlb")
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(engines, "_open_uring", broken_uring(errno.EPERM))
    monkeypatch.setenv(ENGINE_ENV, "uring")
    report = probe_storage(tmp_path)
    assert report["engine"]["name"] is None and "EPERM" in report["engine"]["error"]


MEMLOCK = textwrap.dedent("""
    import ctypes, os, resource, sys

    if os.geteuid() == 0:  # root bypasses RLIMIT_MEMLOCK through CAP_IPC_LOCK: drop it
        class Header(ctypes.Structure):
            _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

        class Data(ctypes.Structure):
            _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                        ("inheritable", ctypes.c_uint32)]

        libc = ctypes.CDLL(None, use_errno=True)
        header, data = Header(0x20080522, 0), (Data * 2)()
        if libc.capget(ctypes.byref(header), data):
            print("SKIP capget failed:", os.strerror(ctypes.get_errno())); sys.exit(0)
        for field in ("effective", "permitted", "inheritable"):
            setattr(data[0], field, getattr(data[0], field) & ~(1 << 14))
        if libc.capset(ctypes.byref(header), data):
            print("SKIP cannot drop CAP_IPC_LOCK:", os.strerror(ctypes.get_errno())); sys.exit(0)

    resource.setrlimit(resource.RLIMIT_MEMLOCK, (64 * 1024, 64 * 1024))
    from mcp_edge.io import open_engine

    engine = open_engine("uring")
    try:
        engine.pool(64, 65536)
    except OSError as exc:
        print("ERROR", exc.errno, exc)
    else:
        print("REGISTERED")
""")


@pytest.mark.parametrize("kind", ["uring"], indirect=True)
def test_registering_beyond_rlimit_memlock_says_so(kind: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", MEMLOCK], capture_output=True, text=True, env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith("SKIP"):
        pytest.skip(f"running as root and {out.stdout[5:].strip()}: root bypasses RLIMIT_MEMLOCK")
    assert out.stdout.startswith(f"ERROR {errno.ENOMEM} "), out.stdout
    assert "RLIMIT_MEMLOCK (0.1 MiB)" in out.stdout and "ulimit -l" in out.stdout


SECCOMP = textwrap.dedent("""
    import ctypes, errno, json, logging, os, sys

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    # What a container runtime's profile does: io_uring_setup (425 on x86-64 and aarch64) fails with EPERM.
    prog = (SockFilter * 4)(
        SockFilter(0x20, 0, 0, 0),                          # ld  [nr]
        SockFilter(0x15, 0, 1, 425),                        # jeq #io_uring_setup
        SockFilter(0x06, 0, 0, 0x00050000 | errno.EPERM),   # ret ERRNO(EPERM)
        SockFilter(0x06, 0, 0, 0x7FFF0000),                 # ret ALLOW
    )
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(SockFprog(4, prog)), 0, 0):
        print("SKIP", os.strerror(ctypes.get_errno())); sys.exit(0)

    import asyncio
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s", stream=sys.stdout)
    from mcp_edge.errors import EngineUnavailable
    from mcp_edge.io import open_engine, read_file, write_file
    from mcp_edge.doctor import collect

    engine = open_engine()
    target = sys.argv[1]

    async def main():
        await write_file(target, b"x" * 5000, engine=engine)
        return bytes((await read_file(target, engine=engine)).data)

    assert asyncio.run(main()) == b"x" * 5000
    print("engine", engine.name)
    try:
        open_engine("uring")
    except EngineUnavailable as exc:
        print("forced", exc.errno)
    print("doctor", json.dumps(collect()["io"]["engine"]))
""")


def test_seccomp_eperm_falls_back_to_threads(workdir: Path) -> None:
    """A real seccomp filter (as in containers) makes io_uring_setup fail with EPERM: auto runs the threads
    engine and says why, once; a forced uring is an EngineUnavailable; doctor shows the fallback."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop(ENGINE_ENV, None)
    out = subprocess.run([sys.executable, "-c", SECCOMP, str(workdir / "f")], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    if out.stdout.startswith("SKIP"):
        pytest.skip(f"cannot install a seccomp filter here: {out.stdout[5:].strip()}")
    lines = out.stdout.splitlines()
    warnings = [x for x in lines if x.startswith("mcp_edge.io WARNING storage engine: thread pool")]
    assert len(warnings) == 1 and "seccomp" in warnings[0] and "EPERM" in warnings[0], out.stdout
    assert "engine threads" in lines and f"forced {errno.EPERM}" in lines
    doctor = json.loads(next(x for x in lines if x.startswith("doctor "))[7:])
    assert (doctor["name"], doctor["fallback"]) == ("threads", True) and "EPERM" in doctor["reason"]
