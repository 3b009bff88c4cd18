"""read_file / write_file on both engines: content and CRC32C, O_DIRECT body + buffered tail, atomic replace,
and crash safety against a writer killed with SIGKILL."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import mcp_edge.io.alignment as alignment_mod
from mcp_edge.io import Engine, FileData, IoOp, read_file, write_file
from mcp_edge.io.alignment import O_DIRECT
from mcp_edge.io.files import CHUNK
from mcp_edge.native import crc32c
from mcp_edge.native._dio import AlignedBuffer

if TYPE_CHECKING:
    from typing_extensions import Buffer

ROOT = Path(__file__).resolve().parents[2]
SIZES = [0, 1, 511, 512, 513, 4095, 4096, 4097, 65_537, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 4321]


def temps(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith(".tmp"))


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
def test_roundtrip_sizes(engine: Engine, workdir: Path, shmdir: Path, direct: bool, rng: random.Random) -> None:
    sizes = [*SIZES, rng.randrange(1, 5 * CHUNK)]

    async def main() -> None:
        for folder in (workdir, shmdir):
            for size in sizes:
                data = rng.randbytes(size)
                path = folder / f"f{size}"
                wrote = await write_file(path, data, direct=direct, engine=engine)
                assert isinstance(wrote, FileData)
                assert (wrote.size, wrote.crc32c, bytes(wrote.data)) == (size, crc32c(data), data)
                assert path.read_bytes() == data
                got = await read_file(path, direct=direct, engine=engine)
                assert (got.size, got.crc32c, got.path) == (size, crc32c(data), str(path))
                assert isinstance(got.data, memoryview) and got.data.nbytes == size and bytes(got.data) == data
                assert got.direct == wrote.direct
                if not direct:
                    assert not got.direct
            assert temps(folder) == []

    asyncio.run(main())


def test_direct_body_and_buffered_tail(engine: Engine, directdir: Path, rng: random.Random) -> None:
    """On a disk filesystem the aligned body goes O_DIRECT (from the caller's buffer when it is aligned, else
    through staging buffers) and the tail buffered; the file ends exactly at the data's end."""
    size = 2 * CHUNK + 777
    aligned = AlignedBuffer(size, 4096)
    memoryview(aligned)[:] = rng.randbytes(size)
    unaligned = bytearray(size + 1)
    unaligned[1:] = bytes(aligned)
    sources: dict[str, Buffer] = {"aligned": aligned, "unaligned": memoryview(unaligned)[1:], "bytes": bytes(aligned)}

    async def main() -> None:
        for name, src in sources.items():
            path = directdir / name
            wrote = await write_file(path, src, engine=engine)
            assert wrote.direct and wrote.size == size and wrote.crc32c == crc32c(aligned)
            assert path.stat().st_size == size and path.read_bytes() == bytes(aligned)
            got = await read_file(path, engine=engine)
            assert got.direct and bytes(got.data) == bytes(aligned)

    asyncio.run(main())


def test_replace_keeps_mode_and_leaves_no_temp(engine: Engine, workdir: Path) -> None:
    path = workdir / "conf"
    path.write_bytes(b"old")
    path.chmod(0o640)
    fresh = workdir / "fresh"

    async def main() -> None:
        await write_file(path, b"new content", engine=engine)
        await write_file(fresh, b"x", engine=engine, mode=0o600, durable=False)

    asyncio.run(main())
    assert path.read_bytes() == b"new content"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert temps(workdir) == []


def test_failures_leave_the_target_and_no_temp(engine: Engine, workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = workdir / "keep"
    path.write_bytes(b"precious")

    async def failing_fsync(fd: int, datasync: bool = False) -> None:
        raise OSError(5, "fdatasync: Input/output error")

    async def main() -> None:
        with pytest.raises(FileNotFoundError):
            await write_file(workdir / "no" / "dir" / "f", b"x", engine=engine)
        with pytest.raises(FileNotFoundError):
            await read_file(workdir / "missing", engine=engine)
        with monkeypatch.context() as m:
            m.setattr(engine, "fsync", failing_fsync)
            with pytest.raises(OSError, match="Input/output error"):
                await write_file(path, b"replacement", engine=engine)

    asyncio.run(main())
    assert path.read_bytes() == b"precious"
    assert temps(workdir) == []


class SyncLog:
    """What write_file did, in order: each sync (through the engine, or a direct os.fsync/os.fdatasync on the
    loop thread) as ("sync", "file"|"dir", inode), and each rename as ("rename", target)."""

    def __init__(self, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events: list[tuple[str, str, int | str]] = []
        submit = engine._submit

        def recording_submit(ops: Sequence[IoOp]) -> list[asyncio.Future[Any]]:
            for op in ops:
                if op.kind == "fsync":
                    self._sync(op.fd)
            return submit(ops)

        monkeypatch.setattr(engine, "_submit", recording_submit)
        for name in ("fsync", "fdatasync"):
            real_sync = getattr(os, name)

            def direct_sync(fd: int, real_sync: Callable[[int], None] = real_sync) -> None:
                if threading.current_thread() is threading.main_thread():  # not the threads engine's worker
                    self._sync(fd)
                real_sync(fd)

            monkeypatch.setattr(os, name, direct_sync)
        for name in ("replace", "rename"):
            real_move = getattr(os, name)

            def move(src: Any, dst: Any, *args: Any, real_move: Callable[..., None] = real_move, **kw: Any) -> None:
                real_move(src, dst, *args, **kw)
                self.events.append(("rename", "", os.fspath(dst)))

            monkeypatch.setattr(os, name, move)

    def _sync(self, fd: int) -> None:
        st = os.fstat(fd)
        self.events.append(("sync", "dir" if stat.S_ISDIR(st.st_mode) else "file", st.st_ino))


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "buffered"])
def test_durable_write_syncs_data_then_renames_then_syncs_the_folder(
        engine: Engine, workdir: Path, monkeypatch: pytest.MonkeyPatch, direct: bool) -> None:
    """Power-loss safety needs this exact order: the new content on disk before the rename makes it the target,
    and the folder (the rename itself) on disk before write_file returns. Without durable, no sync at all."""
    path = workdir / "target"
    path.write_bytes(b"old")
    log = SyncLog(engine, monkeypatch)

    async def main() -> None:
        await write_file(path, b"n" * 10_000, direct=direct, engine=engine)
        durable, new_inode = list(log.events), path.stat().st_ino  # the synced temp file became the target
        log.events.clear()
        await write_file(workdir / "fresh", b"f" * 5000, direct=direct, durable=False, engine=engine)
        assert log.events == [("rename", "", str(workdir / "fresh"))], "durable=False must not sync"
        log.events.clear()
        await write_file(path, b"", direct=direct, engine=engine)  # empty content: still both syncs
        assert [e[:2] for e in log.events] == [("sync", "file"), ("rename", ""), ("sync", "dir")]
        assert durable == [
            ("sync", "file", new_inode),
            ("rename", "", str(path)),
            ("sync", "dir", workdir.stat().st_ino),
        ], durable

    asyncio.run(main())
    assert path.read_bytes() == b""
    assert temps(workdir) == []


def test_filesystem_refusing_direct_io_is_buffered(
        engine: Engine, workdir: Path, monkeypatch: pytest.MonkeyPatch, rng: random.Random) -> None:
    real_open = os.open

    def refusing_open(path: str, flags: int, mode: int = 0o777, **kw: int) -> int:
        if flags & O_DIRECT:
            if flags & os.O_CREAT:
                os.close(real_open(path, flags & ~O_DIRECT, mode, **kw))
            raise OSError(22, "Invalid argument")
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", refusing_open)
    monkeypatch.setattr(alignment_mod, "_fallbacks", {})
    data = rng.randbytes(10_000)

    async def main() -> None:
        wrote = await write_file(workdir / "b", data, engine=engine)
        got = await read_file(workdir / "b", engine=engine)
        assert not wrote.direct and not got.direct and bytes(got.data) == data

    asyncio.run(main())


WRITER = textwrap.dedent("""
    import asyncio, random, sys
    from mcp_edge.io import open_engine, write_file

    target, kind, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    contents = [rng.randbytes(1_048_576 + 333), rng.randbytes(700_005)]

    async def main():
        engine = open_engine(kind)
        i = 0
        while True:
            await write_file(target, contents[i % 2], engine=engine)
            if i == 1:
                print("ready", flush=True)
            i += 1

    asyncio.run(main())
""")


def test_kill_9_mid_write_never_tears_the_target(kind: str, workdir: Path, rng: random.Random) -> None:
    """A real writer process loops write_file with two alternating contents and is killed with SIGKILL at
    random moments: the target is always exactly one of them, CRC-valid, and never a temporary file."""
    seed = rng.randrange(2**32)
    gen = random.Random(seed)
    contents = [gen.randbytes(1_048_576 + 333), gen.randbytes(700_005)]
    crcs = {crc32c(c) for c in contents}
    target = workdir / "state.bin"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), kind, str(seed)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
        try:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line == b"ready\n", proc.stderr.read().decode() if proc.stderr else line
            # Let it run into a random point of a later write (or between writes), then kill it.
            asyncio.run(asyncio.sleep(rng.uniform(0, 0.08)))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
            if proc.stdout:
                proc.stdout.close()
            if proc.stderr:
                proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        content = target.read_bytes()
        assert content in contents, f"torn target: {len(content)} bytes, crc {crc32c(content):#x}"
        assert crc32c(content) in crcs
        leftovers = [n for n in os.listdir(workdir) if n != target.name]
        assert all(n.startswith(f".{target.name}.") and n.endswith(".tmp") for n in leftovers), leftovers
        for n in leftovers:
            os.unlink(workdir / n)
