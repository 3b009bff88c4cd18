"""O_DIRECT alignment: where it comes from, clear errors for misaligned I/O on both engines, open_direct fallback."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
from pathlib import Path

import pytest

import mcp_edge.io.alignment as alignment_mod
import mcp_edge.io.engine as engine_mod
from mcp_edge.errors import DirectIOAlignmentError
from mcp_edge.io import Engine, IoOp, direct_fallbacks, file_alignment, is_direct, open_direct
from mcp_edge.io.alignment import O_DIRECT, Alignment, buffer_address, mount_of
from mcp_edge.native._dio import AlignedBuffer, dio_alignment


@pytest.fixture(autouse=True)
def fresh_alignment_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alignment_mod, "_by_dev", {})
    monkeypatch.setattr(alignment_mod, "_fallbacks", {})


def open_file(path: Path, size: int = 1 << 16, direct: bool = True) -> int:
    if not path.exists():
        path.write_bytes(bytes(range(256)) * (size // 256))
    return os.open(path, os.O_RDWR | os.O_CLOEXEC | (O_DIRECT if direct else 0))


# -- where the alignment comes from --------------------------------------------------------------------------

def test_alignment_from_statx_then_block_device_then_default(
        directdir: Path, shmdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fd = open_file(directdir / "a")
    try:
        a = file_alignment(fd)
        reported = dio_alignment(fd)
        if reported is not None:
            assert (a.mem, a.offset, a.source) == (*reported, "statx")
        assert a.mem >= 1 and a.offset >= 512 and is_direct(fd)
        # Without statx DIOALIGN: the logical block size of the disk under the filesystem (partition -> disk).
        monkeypatch.setattr(alignment_mod, "_by_dev", {})
        monkeypatch.setattr(alignment_mod, "dio_alignment", lambda fd: None)
        b = file_alignment(fd)
        if b.source == "blockdev":
            dev = os.fstat(fd).st_dev
            base = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
            queue = base / "queue" if (base / "queue").is_dir() else base.resolve().parent / "queue"
            assert b.mem == b.offset == int((queue / "logical_block_size").read_text())
        else:
            assert (b.mem, b.offset, b.source) == (4096, 4096, "default")
    finally:
        os.close(fd)
    fd = open_file(shmdir / "t")
    try:  # tmpfs reports nothing and has no block device: the default, 4096
        assert file_alignment(fd) == Alignment(4096, 4096, "default")
    finally:
        os.close(fd)


def test_buffer_address() -> None:
    buf = AlignedBuffer(8192, 4096)
    mv = memoryview(buf)
    assert buffer_address(buf) == buf.address and buf.address % 4096 == 0
    assert buffer_address(mv[100:]) == buf.address + 100
    data = b"read-only bytes"
    assert buffer_address(memoryview(data)[3:]) == buffer_address(data) + 3
    with pytest.raises(TypeError):
        buffer_address("not a buffer")  # type: ignore[arg-type]


# -- misaligned O_DIRECT I/O: a clear error before submitting, on both engines ---------------------------------

def test_misaligned_direct_io_is_a_clear_error(engine: Engine, directdir: Path) -> None:
    path = directdir / "m"
    fd = open_file(path)
    before = path.read_bytes()
    align = file_alignment(fd)
    good = AlignedBuffer(4096, 4096)
    misaligned_mem = memoryview(AlignedBuffer(8192, 4096))[align.mem // 2 or 1:][:4096] if align.mem > 1 else None
    cases: list[tuple[IoOp, str]] = [
        (IoOp.read(fd, good, 100), "file offset 100 is not a multiple of"),
        (IoOp.write(fd, good, 100), "file offset 100 is not a multiple of"),
        (IoOp.read(fd, AlignedBuffer(1000, 4096), 0), "buffer length 1000 is not a multiple of"),
        (IoOp.write(fd, memoryview(good)[:700], 4096), "buffer length 700 is not a multiple of"),
        (IoOp.readv(fd, [good, AlignedBuffer(100, 4096)], 0), "buffer 1 length 100"),
    ]
    if misaligned_mem is not None:
        cases.append((IoOp.read(fd, misaligned_mem, 0), "buffer address 0x"))
        cases.append((IoOp.write(fd, misaligned_mem, 0), "buffer address 0x"))

    async def main() -> None:
        for op, what in cases:
            with pytest.raises(DirectIOAlignmentError) as exc:
                if op.kind == "read":
                    await engine.read(op.fd, op.buffers[0], op.offset)
                elif op.kind == "write":
                    await engine.write(op.fd, op.buffers[0], op.offset)
                else:
                    await engine.readv(op.fd, op.buffers, op.offset)
            err = exc.value
            assert isinstance(err, OSError) and err.errno == errno.EINVAL
            msg = str(err)
            assert msg.startswith(f"[Errno 22] {op.describe()}: O_DIRECT needs the buffer address aligned to "
                                  f"{align.mem} bytes and the file offset and length to {align.offset} bytes")
            assert what in msg and "AlignedBuffer" in msg
            assert err.problems and (err.mem_align, err.offset_align) == (align.mem, align.offset)
        # In a gather, the check comes before anything is submitted: the good write does not happen either.
        with pytest.raises(DirectIOAlignmentError):
            await engine.gather([IoOp.write(fd, good, 0), IoOp.write(fd, good, 512 + 1)])
        with pytest.raises(DirectIOAlignmentError, match="file offset 3 is not a multiple"):
            engine.read_batch(fd, [good], [3])

    try:
        asyncio.run(main())
    finally:
        os.close(fd)
    assert path.read_bytes() == before


def test_einval_from_the_kernel_is_explained(engine: Engine, directdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the check before submitting switched off, the kernel's EINVAL on an O_DIRECT fd still comes back
    as a DirectIOAlignmentError that says what was misaligned."""
    monkeypatch.setattr(engine_mod, "check_direct", lambda *a, **k: None)
    fd = open_file(directdir / "k")

    async def main() -> None:
        with pytest.raises(DirectIOAlignmentError) as exc:
            await engine.read(fd, AlignedBuffer(4096, 4096), 100)
        assert "file offset 100 is not a multiple" in str(exc.value)
        assert "the kernel said EINVAL" in str(exc.value)
        with pytest.raises(DirectIOAlignmentError, match="buffer length 1000"):
            await engine.write(fd, AlignedBuffer(1000, 4096), 0)

    try:
        asyncio.run(main())
    finally:
        os.close(fd)


def test_buffered_fd_takes_any_alignment(engine: Engine, directdir: Path) -> None:
    fd = open_file(directdir / "b", direct=False)

    async def main() -> None:
        buf = bytearray(1000)
        assert await engine.read(fd, memoryview(buf)[1:], 3) == 999
        assert await engine.write(fd, b"xyz", 7) == 3

    try:
        asyncio.run(main())
    finally:
        os.close(fd)


def test_direct_io_on_tmpfs(engine: Engine, shmdir: Path) -> None:
    """tmpfs takes O_DIRECT here; the engine still holds I/O to the default 4096 alignment, so that alignment
    bugs do not hide on tmpfs and show up on a disk."""
    path = shmdir / "t"
    fd, direct = open_direct(path, os.O_RDWR | os.O_CREAT)

    async def main() -> None:
        buf = AlignedBuffer(8192)
        memoryview(buf)[:] = b"q" * 8192
        assert await engine.write(fd, buf, 4096) == 8192
        back = AlignedBuffer(8192)
        assert await engine.read(fd, back, 4096) == 8192 and bytes(back) == b"q" * 8192
        if direct:
            with pytest.raises(DirectIOAlignmentError, match="not a multiple of 4096"):
                await engine.read(fd, back, 512)

    try:
        asyncio.run(main())
    finally:
        os.close(fd)


def test_short_aligned_buffer_on_tmpfs_is_refused_before_submitting(engine: Engine, shmdir: Path) -> None:
    """An AlignedBuffer has an aligned address but any length: 1000 bytes breaks the 4096 the engine holds
    every O_DIRECT file to. tmpfs would take it, so only the engine's own check can refuse it (on a disk the
    kernel's EINVAL would hide a check that let it through); the refusal must be the check's, not the kernel's."""
    path = shmdir / "short"
    path.write_bytes(b"k" * 8192)
    fd, direct = open_direct(path, os.O_RDWR)
    if not direct:
        os.close(fd)
        pytest.skip("tmpfs refuses O_DIRECT on this kernel (it takes it from Linux 6.6 on)")
    short, good = AlignedBuffer(1000, 4096), AlignedBuffer(4096, 4096)
    memoryview(short)[:] = b"s" * 1000
    ops = [
        IoOp.read(fd, short, 0),
        IoOp.write(fd, short, 0),
        IoOp.readv(fd, [good, short], 0),
        IoOp.writev(fd, [short], 4096),
    ]

    async def one(op: IoOp) -> int:
        if op.kind == "read":
            return await engine.read(op.fd, op.buffers[0], op.offset)
        if op.kind == "write":
            return await engine.write(op.fd, op.buffers[0], op.offset)
        if op.kind == "readv":
            return await engine.readv(op.fd, op.buffers, op.offset)
        return await engine.writev(op.fd, op.buffers, op.offset)

    async def main() -> None:
        for op in ops:
            for batched in (False, True):
                with pytest.raises(DirectIOAlignmentError, match="length 1000 is not a multiple of 4096") as exc:
                    await (engine.gather([op]) if batched else one(op))
                assert "the kernel said EINVAL" not in str(exc.value), "refused by the kernel, not the check"
        with pytest.raises(DirectIOAlignmentError, match="length 1000 is not a multiple of 4096"):
            engine.read_batch(fd, [short, AlignedBuffer(1000, 4096)], [0, 4096])

    try:
        asyncio.run(main())
    finally:
        os.close(fd)
    assert path.read_bytes() == b"k" * 8192  # nothing was written


# -- open_direct ----------------------------------------------------------------------------------------------

def test_open_direct_on_disk_and_tmpfs(workdir: Path, shmdir: Path) -> None:
    for folder in (workdir, shmdir):
        fd, direct = open_direct(folder / "f", os.O_RDWR | os.O_CREAT | os.O_EXCL)
        try:
            assert direct == is_direct(fd)
            assert os.get_inheritable(fd) is False
            if mount_of(os.fstat(fd).st_dev)[1] in ("ext4", "xfs", "btrfs", "tmpfs"):
                assert direct
        finally:
            os.close(fd)
        with pytest.raises(FileExistsError):
            open_direct(folder / "f", os.O_RDWR | os.O_CREAT | os.O_EXCL)


def refuse_direct(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make os.open behave as on a filesystem without O_DIRECT: EINVAL, after creating the file (as Linux)."""
    real_open = os.open
    calls: list[int] = []

    def fake_open(path: str, flags: int, mode: int = 0o777, **kw: int) -> int:
        calls.append(flags)
        if flags & O_DIRECT:
            os.close(real_open(path, flags & ~O_DIRECT, mode, **kw))
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(os, "open", fake_open)
    return calls


def test_open_direct_falls_back_to_buffered_visibly(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    calls = refuse_direct(monkeypatch)
    caplog.set_level(logging.WARNING, logger="mcp_edge.io")
    for name in ("x", "y"):
        fd, direct = open_direct(workdir / name, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        try:
            assert not direct and not is_direct(fd)
        finally:
            os.close(fd)
    assert not calls[1] & os.O_EXCL  # the file was created by the refused open: the retry must not fail
    records = [r for r in caplog.records if "O_DIRECT is refused" in r.getMessage()]
    assert len(records) == 1, "logged once per filesystem"
    mount, fstype = mount_of(os.stat(workdir).st_dev)
    assert fstype in records[0].getMessage() and direct_fallbacks() == {mount: fstype}
    with pytest.raises(FileNotFoundError):
        open_direct(workdir / "no" / "such", os.O_RDONLY)
