"""Issue 7, fs: bounded outgoing frames for large reads (case 15), names of 254 bytes, temporary files of
interrupted writes, a full disk, one behaviour for both resolvers (case 19), openat2's EAGAIN under renames
(case 20)."""

from __future__ import annotations

import asyncio
import base64
import errno
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_edge.io import Engine, open_engine
from mcp_edge.native import crc32c
from mcp_edge.plugin.types import TextContent

from .builtin_stdio import ROOT, builtin_server
from .races import RenameLoop, Swapper

sys.path.insert(0, str(ROOT / "tests" / "plugins"))  # the built-in plugins' test host
from plugin_host import FakePluginContext, Host, error_of, ok, run

MiB = 1 << 20


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = open_engine("threads")
    try:
        yield eng
    finally:
        eng.close()


def host(root: Path, engine: Engine, settings: dict[str, Any] | None = None, **config: Any) -> Host:
    ctx = FakePluginContext("fs", root.parent, engine, overrides=dict(settings or {}))
    return Host("fs", {"root": str(root), **config}, ctx)


# -- case 15: large reads -------------------------------------------------------------------------------------

def test_read_of_64_mib_is_links_and_every_frame_fits(tmp_path: Path) -> None:
    """fs_read of a 64 MiB file answers with resource links, not one 89 MB line; every line the server writes
    stays within max_out_frame; the pieces read back through resources/read make the file again."""
    root = tmp_path / "root"
    root.mkdir()
    data = os.urandom(64 * MiB)
    (root / "big.bin").write_bytes(data)
    with builtin_server(tmp_path, "fs", {"root": str(root)}) as server:
        res = server.call(2, "tools/call", {"name": "fs_read", "arguments": {"path": "big.bin"}})["result"]
        assert not res.get("isError"), str(res)[:500]
        info = res["structuredContent"]
        assert info["encoding"] == "links" and info["size"] == 64 * MiB and info["eof"] is True
        links = [c for c in res["content"] if c["type"] == "resource_link"]
        assert len(links) == info["links"] == 16 and all(c["size"] == 4 * MiB for c in links)
        crc = 0
        for i, link in enumerate(links):
            reply = server.call(10 + i, "resources/read", {"uri": link["uri"]})
            (piece,) = reply["result"]["contents"]
            crc = crc32c(base64.b64decode(piece["blob"]), crc)
        assert crc == crc32c(data)
        limit = 8 * MiB  # the max_out_frame default
        assert server.lines and max(server.lines) <= limit, max(server.lines)


def test_large_reads_wait_for_a_slot(tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """At most max_large_reads reads of max_read/4 bytes or more run at once; small reads do not wait."""
    root = tmp_path / "root"
    root.mkdir()
    for i in range(6):
        (root / f"big{i}").write_bytes(os.urandom(64 << 10))
        (root / f"small{i}").write_bytes(b"s" * 1000)

    async def main() -> None:
        h = await host(root, engine, {"max_read": 64 << 10, "max_large_reads": 2}).start()
        real = h.module._read_range
        active: list[int] = [0]
        peaks: list[int] = []

        async def tracked(*args: Any) -> Any:
            active[0] += 1
            peaks.append(active[0])
            try:
                await asyncio.sleep(0.05)  # hold the buffer a while, as a slow disk does
                return await real(*args)
            finally:
                active[0] -= 1

        monkeypatch.setattr(h.module, "_read_range", tracked)
        results = await asyncio.gather(*(h.call("fs_read", {"path": f"big{i}"}) for i in range(6)))
        assert all(not r.isError for r in results)
        assert max(peaks) == 2
        peaks.clear()
        results = await asyncio.gather(*(h.call("fs_read", {"path": f"small{i}"}) for i in range(6)))
        assert all(not r.isError for r in results)
        assert max(peaks) == 6
        await h.stop()

    run(main())


# -- case 19: names, temporary files, full disk, resolvers -------------------------------------------------------

def test_names_of_254_and_255_bytes_can_be_replaced(tmp_path: Path, engine: Engine) -> None:
    root = tmp_path / "root"
    root.mkdir()
    long254 = "é" * 127  # 254 bytes of UTF-8, 127 characters
    long255 = "a" + "é" * 127

    async def main() -> None:
        h = await host(root, engine).start()
        for name in (long254, long255):
            assert len(name.encode()) in (254, 255)
            assert ok(await h.call("fs_write", {"path": name, "content": "one"}))["created"] is True
            assert ok(await h.call("fs_write", {"path": name, "content": "two"}))["created"] is False
            assert (root / name).read_text() == "two"
        too_long = "é" * 128  # 256 bytes
        msg = error_of(await h.call("fs_write", {"path": too_long, "content": "x"}))
        assert "too long" in msg and too_long in msg and "/proc/self/fd" not in msg
        assert sorted(p.name for p in root.iterdir()) == sorted([long254, long255])
        await h.stop()

    run(main())


_STUCK_WRITER = """
import asyncio, sys
from mcp_edge.io import write_file

class Stuck:
    # an engine whose writes never finish: the process is killed in the middle of write_file
    def __getattr__(self, name):
        async def never(*args, **kw):
            print("writing", flush=True)
            await asyncio.Event().wait()
        return never

asyncio.run(write_file(sys.argv[1], b"new content" * 1000, direct=False, engine=Stuck()))
"""


def test_temporary_files_of_killed_writers_are_hidden_then_removed(tmp_path: Path, engine: Engine) -> None:
    """A writer killed with SIGKILL leaves its temporary file: fs_list never shows it, and the next start
    removes it once its writer is dead (a live writer's file, locked, is kept however old it looks)."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "data.bin").write_text("old content")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", _STUCK_WRITER, str(root / "sub" / "data.bin")],
                              stdout=subprocess.PIPE, env=env)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"writing\n"
        (temp,) = [p for p in (root / "sub").iterdir() if p.name != "data.bin"]
        assert temp.name.startswith(".data.bin.") and temp.name.endswith(".tmp")
        old = time.time() - 3600
        os.utime(temp, (old, old))

        async def listed() -> list[str]:
            h = await host(root, engine).start()
            page = ok(await h.call("fs_list", {"path": "sub"}))
            await h.stop()
            return [e["name"] for e in page["entries"]]

        assert run(listed()) == ["data.bin"]  # hidden while its writer runs
        assert temp.exists()  # and kept: its writer holds the lock
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(30)
        if writer.stdout is not None:
            writer.stdout.close()
    fresh = root / "sub" / ".other.0123456789ab.tmp"  # a writer that has just created its file
    fresh.write_text("x")
    assert run(listed()) == ["data.bin"]
    assert not temp.exists() and fresh.exists()
    assert (root / "sub" / "data.bin").read_text() == "old content"


def test_a_client_cannot_write_a_name_reserved_for_temporary_files(tmp_path: Path, engine: Engine) -> None:
    """A file named like a write's temporary file would be hidden and later removed: fs_write refuses the name."""
    root = tmp_path / "root"
    root.mkdir()

    async def write(name: str) -> Any:
        h = await host(root, engine).start()
        try:
            return await h.call("fs_write", {"path": name, "content": "x"})
        finally:
            await h.stop()

    assert "reserved for the temporary files" in error_of(run(write(".notes.0123456789ab.tmp")))
    assert not (root / ".notes.0123456789ab.tmp").exists()
    ok(run(write(".notes.tmp")))  # an ordinary hidden name is fine
    assert (root / ".notes.tmp").read_text() == "x"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(folder, kind): a 1 MiB tmpfs (kind "ENOSPC"), or where mounting is not permitted the process's
    RLIMIT_FSIZE lowered to 1 MiB (kind "EFBIG"); under CI=true a refused mount fails the test."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
        why = done.stderr.decode() if done.returncode else ""
    except OSError as exc:  # no mount command
        why = str(exc)
    if not why:
        try:
            yield mnt, "ENOSPC"
        finally:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        return
    assert os.environ.get("CI") != "true", f"mount of a small tmpfs refused: {why}"
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (MiB, hard))
    try:
        yield mnt, "EFBIG"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def test_full_disk_says_what_happened(small_disk: tuple[Path, str], engine: Engine) -> None:
    folder, kind = small_disk
    root = folder / "root"
    root.mkdir()
    (root / "f.txt").write_text("old content\n")

    async def main() -> None:
        h = await host(root, engine).start()
        big = base64.b64encode(os.urandom(2 * MiB)).decode()
        msg = error_of(await h.call("fs_write", {"path": "f.txt", "data": big}))
        assert "/proc/self/fd" not in msg and "Errno" not in msg and "on fd" not in msg, msg
        assert msg.startswith("FsError: f.txt: ") and "the file was left unchanged" in msg, msg
        if kind == "ENOSPC":
            assert "disk holding the data root is full" in msg and "free space" in msg, msg
        else:
            assert "larger than" in msg, msg
        assert (root / "f.txt").read_text() == "old content\n"
        assert sorted(p.name for p in root.iterdir()) == ["f.txt"]  # no temporary file left
        await h.stop()

    run(main())


PATHS = ["sub/x", "ROOT/sub/x", "ROOT//sub/x", "ROOT/sub//x", "sub//x", "./sub/x", "sub/./x", "sub/x/", "sub/x/.",
         "sub/x/..", "sub/", "sub/.", "sub//", "ROOT", "ROOT/", "ROOT//", ".", "", "/", "sub/../sub/x", "sub/..",
         "..", "../x", "sub/../../x", "/etc/passwd", "ROOTx/sub/x", "in-link", "in-link/", "in-dir-link/x",
         "in-dir-link/", "out-link", "out-link/", "abs-link", "loop", "missing", "missing/", "sub/x/y", "dangling"]
FLAGS = {"read": os.O_RDONLY, "path-nofollow": os.O_PATH | os.O_NOFOLLOW, "dir": os.O_RDONLY | os.O_DIRECTORY}


def test_both_resolvers_give_one_answer(tmp_path: Path, engine: Engine) -> None:
    """openat2 and the O_NOFOLLOW walk: the same file or the same error (always FsError, same errno), for a
    table of paths with doubled and trailing slashes, '.', '..', and links inside, outside and looping."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "x").write_text("x\n")
    (tmp_path / "x").write_text("outside\n")
    os.symlink("sub/x", root / "in-link")
    os.symlink("sub", root / "in-dir-link")
    os.symlink("../x", root / "out-link")
    os.symlink(str(tmp_path / "x"), root / "abs-link")
    os.symlink("loop", root / "loop")
    os.symlink("nowhere", root / "dangling")

    async def main() -> None:
        h = await host(root, engine).start()
        data_root, fs_error = h.module.DataRoot, h.module.FsError
        kernel, walk = data_root(root, True), data_root(root, False)
        assert kernel.uses_openat2 and not walk.uses_openat2
        real = str(root.resolve())

        def outcome(dr: Any, path: str, flags: int) -> tuple[Any, ...]:
            try:
                fd = dr.open(dr.relative(path.replace("ROOT", real)), flags, path)
            except fs_error as exc:
                return ("error", exc.errno)
            except OSError as exc:
                return ("raw OSError", exc.errno)
            st = os.fstat(fd)
            os.close(fd)
            return ("ok", st.st_ino)

        differ = {}
        for path in PATHS:
            for label, flags in FLAGS.items():
                a, b = outcome(kernel, path, flags), outcome(walk, path, flags)
                if a != b or "raw OSError" in (a[0], b[0]):
                    differ[(path, label)] = (a, b)
        kernel.close()
        walk.close()
        assert differ == {}
        # through the tools too
        for resolve in ("openat2", "walk"):
            hr = await host(root, engine, resolve=resolve).start()
            r = await hr.call("fs_read", {"path": f"{real}//sub/x"})
            assert isinstance(r.content[0], TextContent) and r.content[0].text == "x\n"
            assert "not a directory" in error_of(await hr.call("fs_read", {"path": "sub/x/"}))
            await hr.stop()
        await h.stop()

    run(main())


def test_walk_under_swaps_gives_only_fs_errors(tmp_path: Path, engine: Engine) -> None:
    """An entry swapped between a link and a file while the walk resolves it: every failure is an FsError
    (never a raw EINVAL from reading a link that is no longer one), and nothing outside is ever opened."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "target.txt").write_text("inside\n")

    async def main() -> None:
        h = await host(root, engine, resolve="walk").start()
        dr = h.plugin.root
        fs_error = h.module.FsError
        raw: dict[str, int] = {}
        opened = 0
        with Swapper(root, "swap", "target.txt") as swapper:
            for _ in range(20_000):
                try:
                    fd = dr.open("swap", os.O_RDONLY, "swap")
                except fs_error:
                    continue
                except OSError as exc:
                    key = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                    raw[key] = raw.get(key, 0) + 1
                    continue
                os.close(fd)
                opened += 1
        assert swapper.running and opened > 0
        assert raw == {}
        await h.stop()

    run(main())


# -- case 20: openat2 and EAGAIN ---------------------------------------------------------------------------------

def test_openat2_retries_eagain_under_renames(tmp_path: Path, engine: Engine) -> None:
    """Renames anywhere make RESOLVE_BENEATH lookups through '..' fail with EAGAIN: retried, so legitimate
    paths open and escapes are still refused as escapes."""
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "inside.txt").write_text("in\n")
    (tmp_path / "outside.txt").write_text("out\n")

    async def main() -> None:
        h = await host(root, engine, resolve="openat2").start()
        dr = h.plugin.root
        fs_error = h.module.FsError
        failures: dict[str, int] = {}
        escapes = 0
        with RenameLoop(tmp_path) as renames:
            for _ in range(20_000):
                try:
                    os.close(dr.open("a/../inside.txt", os.O_RDONLY))
                except OSError as exc:
                    key = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                    failures[key] = failures.get(key, 0) + 1
                except fs_error as exc:
                    key = "fs:" + errno.errorcode.get(exc.errno or 0, str(exc.errno))
                    failures[key] = failures.get(key, 0) + 1
                try:
                    os.close(dr.open("a/../../outside.txt", os.O_RDONLY))
                    raise AssertionError("escaped the data root")
                except fs_error as exc:
                    if exc.errno == errno.EXDEV:
                        escapes += 1
                    else:
                        key = "escape:" + errno.errorcode.get(exc.errno or 0, str(exc.errno))
                        failures[key] = failures.get(key, 0) + 1
                except OSError as exc:
                    key = "escape raw:" + errno.errorcode.get(exc.errno or 0, str(exc.errno))
                    failures[key] = failures.get(key, 0) + 1
        assert renames.running
        assert failures == {} and escapes == 20_000
        await h.stop()

    run(main())
