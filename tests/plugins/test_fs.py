"""The fs plugin: round trips with CRC32C, O_DIRECT, blobs, containment, atomic writes, listing, resources."""

from __future__ import annotations

import base64
import errno
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from plugin_host import CountingEngine, FakePluginContext, FakeRequest, Host, error_of, run

from mcp_edge.errors import ConfigError, InvalidArgumentsError, ResourceNotFoundError
from mcp_edge.io.alignment import O_DIRECT
from mcp_edge.native import crc32c
from mcp_edge.plugin.types import (
    BlobResourceContents,
    EmbeddedResource,
    ResourceLink,
    TextContent,
    TextResourceContents,
    ToolResult,
)

MiB = 1 << 20


def _direct_works(folder: Path) -> bool:
    probe = folder / ".direct-probe"
    try:
        fd = os.open(probe, os.O_RDWR | os.O_CREAT | O_DIRECT, 0o600)
    except OSError:
        return False
    os.close(fd)
    probe.unlink()
    return True


@pytest.fixture(params=["openat2", "walk"])
def resolve(request: pytest.FixtureRequest) -> str:
    """Both ways of keeping paths beneath the root: the kernel's openat2 and the component walk."""
    return str(request.param)


@pytest.fixture
def fs_env(workdir: Path, engine: Any) -> Iterator[tuple[Path, Path, CountingEngine]]:
    """(root, outside, engine): the data root, a folder next to it that must stay unreachable, a counting engine."""
    root = workdir / "data" / "files"
    outside = workdir / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    yield root, outside, CountingEngine(engine)


def host(root: Path, io: Any, resolve: str = "auto", settings: dict[str, Any] | None = None, **config: Any) -> Host:
    ctx = FakePluginContext("fs", root.parent, io, overrides=dict(settings or {}))
    return Host("fs", {"root": str(root), "resolve": resolve, **config}, ctx)


def text_of(result: ToolResult) -> str:
    assert not result.isError, result
    first = result.content[0]
    assert isinstance(first, TextContent)
    return first.text


def blob_of(result: ToolResult) -> tuple[bytes, str | None]:
    assert not result.isError, result
    first = result.content[0]
    assert isinstance(first, EmbeddedResource) and isinstance(first.resource, BlobResourceContents)
    return base64.b64decode(first.resource.blob), first.resource.mimeType


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp"))


# -- round trips -----------------------------------------------------------------------------------------------

def test_text_round_trip(fs_env: tuple[Path, Path, CountingEngine]) -> None:
    root, _, io = fs_env

    async def main() -> None:
        h = await host(root, io).start()
        w = await h.call("fs_write", {"path": "notes/a.txt", "content": "héllo\n", "create_dirs": True})
        assert not w.isError, w
        assert w.structuredContent == {"path": "notes/a.txt", "size": 7, "crc32c": crc32c("héllo\n".encode()),
                                       "created": True, "direct": False}
        assert (root / "notes/a.txt").read_bytes() == "héllo\n".encode()
        r = await h.call("fs_read", {"path": "notes/a.txt"})
        assert text_of(r) == "héllo\n"
        assert r.structuredContent is not None
        assert r.structuredContent["crc32c"] == crc32c("héllo\n".encode())
        assert r.structuredContent["size"] == 7 and r.structuredContent["eof"] is True
        assert r.structuredContent["mimeType"] == "text/plain"
        assert h.ctx.updated == ["fs://notes/a.txt"]
        w2 = await h.call("fs_write", {"path": "notes/a.txt", "content": "bye"})
        assert w2.structuredContent is not None and w2.structuredContent["created"] is False
        assert text_of(await h.call("fs_read", {"path": "notes/a.txt"})) == "bye"
        await h.stop()
        assert io.calls.get("gather", 0) + io.calls.get("read", 0) > 0  # the data went through the engine

    run(main())


def test_binary_round_trip_random(fs_env: tuple[Path, Path, CountingEngine], rng: random.Random) -> None:
    root, _, io = fs_env

    async def main() -> None:
        h = await host(root, io, max_inline=4096).start()
        for i in range(12):
            size = rng.choice([0, 1, 511, 4095, 4096, 4097, rng.randrange(1, 300_000)])
            data = rng.randbytes(size)
            w = await h.call("fs_write", {"path": f"b{i}.bin", "data": base64.b64encode(data).decode(),
                                          "expected_crc32c": crc32c(data)})
            assert not w.isError, w
            assert w.structuredContent is not None and w.structuredContent["crc32c"] == crc32c(data)
            r = await h.call("fs_read", {"path": f"b{i}.bin"})
            assert r.structuredContent is not None
            if r.structuredContent["encoding"] == "base64":
                got, mime = blob_of(r)
                assert mime == "application/octet-stream"
            else:
                got = text_of(r).encode()
            assert got == data
            assert r.structuredContent["crc32c"] == crc32c(data) == crc32c(got)
        await h.stop()

    run(main())


@pytest.mark.parametrize("direct_min", [0, 10**12], ids=["direct", "buffered"])
def test_ranged_reads(fs_env: tuple[Path, Path, CountingEngine], rng: random.Random, direct_min: int) -> None:
    """Unaligned offsets and lengths, with O_DIRECT (the range widened to the alignment) and without."""
    root, _, io = fs_env
    root.mkdir(parents=True)
    data = rng.randbytes(3 * MiB + 1234)
    (root / "r.bin").write_bytes(data)

    async def main() -> None:
        h = await host(root, io, direct_min=direct_min, max_inline=0).start()
        cases = [(0, None), (0, 0), (1, 1), (4095, 2), (4096, 4096), (len(data) - 3, 100), (len(data), 5),
                 (len(data) + 10, None)]
        cases += [(rng.randrange(len(data)), rng.choice([None, rng.randrange(1, MiB)])) for _ in range(10)]
        for offset, length in cases:
            args: dict[str, Any] = {"path": "r.bin", "offset": offset}
            if length is not None:
                args["length"] = length
            r = await h.call("fs_read", args)
            want = data[offset:None if length is None else offset + length]
            sc = r.structuredContent
            assert sc is not None
            got = blob_of(r)[0] if sc["size"] else b""
            assert got == want, (offset, length)
            assert sc["size"] == len(want) and sc["crc32c"] == crc32c(want) and sc["file_size"] == len(data)
            assert sc["eof"] == (offset + len(want) >= len(data))
            if direct_min == 0 and want and _direct_works(root):
                assert sc["direct"] is True
            if direct_min > 0:
                assert sc["direct"] is False
        await h.stop()

    run(main())


def test_large_file_direct_and_blob(fs_env: tuple[Path, Path, CountingEngine], rng: random.Random) -> None:
    """A file above direct_min is written and read with O_DIRECT (on a disk filesystem) and comes back as a
    blob resource because it is above max_inline, even when it is text."""
    root, _, io = fs_env
    text = "".join(f"line {i} {rng.random()}\n" for i in range(120_000))
    raw = text.encode()
    assert len(raw) > 2 * MiB

    async def main() -> None:
        h = await host(root, io).start()
        w = await h.call("fs_write", {"path": "big.log", "content": text})
        assert w.structuredContent is not None
        assert w.structuredContent["size"] == len(raw) and w.structuredContent["crc32c"] == crc32c(raw)
        r = await h.call("fs_read", {"path": "big.log"})
        got, mime = blob_of(r)
        assert got == raw and mime == "text/plain"
        assert r.structuredContent is not None and r.structuredContent["encoding"] == "base64"
        if _direct_works(root):
            assert w.structuredContent["direct"] is True
            assert r.structuredContent["direct"] is True
        # the same file in a range below max_inline comes inline
        small = await h.call("fs_read", {"path": "big.log", "offset": 0, "length": 100})
        assert text_of(small) == raw[:100].decode()
        await h.stop()

    run(main())


def test_max_read_links(fs_env: tuple[Path, Path, CountingEngine], rng: random.Random) -> None:
    """More than the max_read setting comes as resource links, read back in pieces; the whole-file resource is
    refused with the way to read it; a max_read whose base64 cannot fit max_out_frame is refused at start."""
    root, _, io = fs_env
    root.mkdir(parents=True)
    data = rng.randbytes(5000)
    (root / "f b").write_bytes(data)

    async def main() -> None:
        h = await host(root, io, settings={"max_read": 2048}).start()
        r = await h.call("fs_read", {"path": "f b"})
        assert not r.isError and r.structuredContent is not None
        assert r.structuredContent["encoding"] == "links" and r.structuredContent["links"] == 3
        assert r.structuredContent["size"] == 5000 and r.structuredContent["eof"] is True
        links = [c for c in r.content if isinstance(c, ResourceLink)]
        assert [c.size for c in links] == [2048, 2048, 904]
        assert links[0].uri == "fs://f%20b?offset=0&length=2048"
        got = b""
        for link in links:
            (piece,) = await h.read(link.uri)
            assert isinstance(piece, BlobResourceContents) and piece.uri == link.uri
            got += base64.b64decode(piece.blob)
        assert got == data
        part = await h.call("fs_read", {"path": "f b", "offset": 1000, "length": 3000})
        assert part.structuredContent is not None and part.structuredContent["links"] == 2
        assert blob_of(await h.call("fs_read", {"path": "f b", "offset": 3000}))[0] == data[3000:]
        with pytest.raises(InvalidArgumentsError, match=r"max_read .*offset=0&length=2048"):
            await h.read("fs://f%20b")
        with pytest.raises(InvalidArgumentsError, match="max_read"):
            await h.read("fs://f%20b?offset=0&length=2049")
        await h.stop()
        with pytest.raises(ConfigError, match="max_out_frame"):
            await host(root, io, settings={"max_read": 7 << 20}).start()

    run(main())


def test_checksum_streams_with_progress(fs_env: tuple[Path, Path, CountingEngine], rng: random.Random) -> None:
    root, _, io = fs_env
    root.mkdir(parents=True)
    data = rng.randbytes(9 * MiB + 77)
    (root / "c.bin").write_bytes(data)

    fd = os.open(root / "c.bin", os.O_RDONLY)  # out of the page cache: the reads go to the disk
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)

    async def main() -> None:
        h = await host(root, io).start()
        rctx = FakeRequest(io)
        r = await h.call("fs_checksum", {"path": "c.bin"}, rctx)
        assert r.structuredContent is not None
        assert r.structuredContent["crc32c"] == crc32c(data) and r.structuredContent["size"] == len(data)
        done = [p for p, _, _ in rctx.progress]
        assert len(done) >= 2 and done == sorted(done) and done[-1] == len(data)
        assert all(t == len(data) for _, t, _ in rctx.progress)
        if _direct_works(root):
            assert r.structuredContent["direct"] is True
        # a cancelled request stops it
        stop = FakeRequest(io, cancel_after=1)
        with pytest.raises(BaseException) as info:
            await h.call("fs_checksum", {"path": "c.bin"}, stop)
        assert type(info.value).__name__ == "CancelledError"
        assert len(stop.progress) == 1 and stop.progress[0][0] < len(data)
        await h.stop()

    run(main())


@pytest.mark.parametrize("size", [0, 1, 100, 4096, 5000, MiB + 1])
def test_checksum_small_files_direct(fs_env: tuple[Path, Path, CountingEngine], rng: random.Random,
                                     size: int) -> None:
    """Buffers sized to the file, still aligned for O_DIRECT (direct_min = 0: every read is direct)."""
    root, _, io = fs_env
    root.mkdir(parents=True)
    data = rng.randbytes(size)
    (root / "s.bin").write_bytes(data)

    async def main() -> None:
        h = await host(root, io, direct_min=0).start()
        r = await h.call("fs_checksum", {"path": "s.bin"}, FakeRequest(io))
        assert r.structuredContent is not None
        assert (r.structuredContent["crc32c"], r.structuredContent["size"]) == (crc32c(data), size)
        await h.stop()

    run(main())


# -- containment -------------------------------------------------------------------------------------------

ESCAPES = ["../outside/secret.txt", "../../outside/secret.txt", "a/../../outside/secret.txt", "/etc/passwd",
           "link_out", "dir_out/secret.txt", "abs_in/x.txt", "chain/secret.txt"]


def _escape_tree(root: Path, outside: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "a").mkdir()
    (root / "inside.txt").write_text("inside\n")
    os.symlink(outside / "secret.txt", root / "link_out")  # a file link pointing outside
    os.symlink("../../outside", root / "dir_out")  # a relative folder link leading outside
    os.symlink(root, root / "abs_in")  # absolute, even though it points at the root itself
    (root / "a" / "x.txt").write_text("x\n")
    os.symlink("a/up", root / "chain")  # chain: a/up -> .. -> ../.. (out)
    os.symlink("../dir_out", root / "a" / "up")
    os.symlink("a/x.txt", root / "link_in")  # a relative link that stays inside: allowed
    os.symlink("a", root / "dir_in")


def test_escapes_refused(fs_env: tuple[Path, Path, CountingEngine], resolve: str) -> None:
    root, outside, io = fs_env
    _escape_tree(root, outside)

    async def main() -> None:
        h = await host(root, io, resolve).start()
        assert h.plugin.root.uses_openat2 == (resolve == "openat2")
        for path in ESCAPES:
            for tool in ("fs_read", "fs_checksum", "fs_list"):
                r = await h.call(tool, {"path": path})
                msg = error_of(r)
                assert "escapes the data root" in msg or (tool == "fs_list" and "not a directory" in msg), (path, msg)
            w = await h.call("fs_write", {"path": path, "content": "pwned"})
            assert w.isError, path
        assert (outside / "secret.txt").read_text() == "secret\n"
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
        # links that stay inside work
        assert text_of(await h.call("fs_read", {"path": "link_in"})) == "x\n"
        assert text_of(await h.call("fs_read", {"path": "dir_in/x.txt"})) == "x\n"
        assert text_of(await h.call("fs_read", {"path": "a/../inside.txt"})) == "inside\n"
        assert text_of(await h.call("fs_read", {"path": str(root / "inside.txt")})) == "inside\n"
        await h.stop()

    run(main())


def test_write_through_links(fs_env: tuple[Path, Path, CountingEngine], resolve: str) -> None:
    root, outside, io = fs_env
    _escape_tree(root, outside)

    async def main() -> None:
        h = await host(root, io, resolve).start()
        msg = error_of(await h.call("fs_write", {"path": "dir_out/new.txt", "content": "x"}))
        assert "escapes the data root" in msg
        msg = error_of(await h.call("fs_write", {"path": "dir_out/sub/new.txt", "content": "x",
                                                 "create_dirs": True}))
        assert "escapes the data root" in msg
        msg = error_of(await h.call("fs_write", {"path": "link_in", "content": "x"}))
        assert "symbolic link" in msg
        assert (root / "a/x.txt").read_text() == "x\n"
        ok = await h.call("fs_write", {"path": "dir_in/y.txt", "content": "y"})
        assert not ok.isError and (root / "a/y.txt").read_text() == "y"
        msg = error_of(await h.call("fs_write", {"path": "deep/er/f.txt", "content": "d"}))
        assert "not found" in msg and not (root / "deep").exists()
        ok = await h.call("fs_write", {"path": "deep/er/f.txt", "content": "d", "create_dirs": True})
        assert not ok.isError and (root / "deep/er/f.txt").read_text() == "d"
        ok = await h.call("fs_write", {"path": "dir_in/new/../g.txt", "content": "g", "create_dirs": True})
        assert not ok.isError and (root / "a/g.txt").read_text() == "g"
        assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
        await h.stop()

    run(main())


def test_symlink_loop_and_errors(fs_env: tuple[Path, Path, CountingEngine], resolve: str) -> None:
    root, _, io = fs_env
    root.mkdir(parents=True)
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    (root / "d").mkdir()
    (root / "f").write_text("f")
    os.mkfifo(root / "fifo")

    async def main() -> None:
        h = await host(root, io, resolve).start()
        assert "symbolic links" in error_of(await h.call("fs_read", {"path": "loop1"}))
        assert "not found" in error_of(await h.call("fs_read", {"path": "nope.txt"}))
        assert "is a directory" in error_of(await h.call("fs_read", {"path": "d"}))
        assert "not a directory" in error_of(await h.call("fs_read", {"path": "f/x"}))
        assert "not a regular file" in error_of(await h.call("fs_read", {"path": "fifo"}))  # and did not block
        assert "NUL" in error_of(await h.call("fs_read", {"path": "a\0b"}))
        assert "not a file name" in error_of(await h.call("fs_write", {"path": "d/..", "content": ""}))
        assert "is a directory" in error_of(await h.call("fs_write", {"path": "d", "content": ""}))
        with pytest.raises(InvalidArgumentsError):  # schema: offset >= 0
            await h.call("fs_read", {"path": "f", "offset": -1})
        with pytest.raises(InvalidArgumentsError):
            await h.call("fs_read", {"path": "f", "bogus": 1})
        await h.stop()

    run(main())


# -- atomic writes -----------------------------------------------------------------------------------------

def test_failed_writes_keep_old_content(fs_env: tuple[Path, Path, CountingEngine]) -> None:
    root, _, io = fs_env

    async def main() -> None:
        h = await host(root, io, max_write=1000).start()
        await h.call("fs_write", {"path": "keep.txt", "content": "old content\n"})
        os.chmod(root / "keep.txt", 0o600)
        before = (root / "keep.txt").stat()
        bad: list[tuple[dict[str, Any], str]] = [
            ({"content": "new", "expected_crc32c": crc32c(b"new") ^ 1}, "nothing was written"),
            ({"data": "!!not base64!!"}, "not valid base64"),
            ({"content": "x", "data": "eA=="}, "exactly one"),
            ({}, "exactly one"),
            ({"content": "é", "encoding": "ascii"}, "cannot be encoded"),
            ({"content": "x", "encoding": "no-such-codec"}, "unknown encoding"),
            ({"content": "x" * 1001}, "max_write"),
        ]
        for args, words in bad:
            msg = error_of(await h.call("fs_write", {"path": "keep.txt", **args}))
            assert words in msg, (args, msg)
            assert (root / "keep.txt").read_text() == "old content\n"
            assert leftovers(root) == []
        after = (root / "keep.txt").stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        good = await h.call("fs_write", {"path": "keep.txt", "content": "new", "expected_crc32c": crc32c(b"new")})
        assert not good.isError
        assert (root / "keep.txt").read_text() == "new" and leftovers(root) == []
        assert (root / "keep.txt").stat().st_mode & 0o777 == 0o600  # the mode is kept across the replace
        await h.stop()

        ro = await host(root, io, read_only=True).start()
        assert "read-only" in error_of(await ro.call("fs_write", {"path": "keep.txt", "content": "x"}))
        assert (root / "keep.txt").read_text() == "new"
        await ro.stop()

    run(main())


# -- stat and list -----------------------------------------------------------------------------------------

def test_stat(fs_env: tuple[Path, Path, CountingEngine], resolve: str) -> None:
    root, outside, io = fs_env
    _escape_tree(root, outside)
    os.symlink("missing", root / "dangling")

    async def main() -> None:
        h = await host(root, io, resolve).start()
        st = (await h.call("fs_stat", {"path": "inside.txt"})).structuredContent
        assert st is not None and st["type"] == "file" and st["size"] == 7 and st["path"] == "inside.txt"
        assert st["mode"] == f"{(root / 'inside.txt').stat().st_mode & 0o7777:04o}"
        assert (await h.call("fs_stat", {})).structuredContent["type"] == "directory"  # type: ignore[index]
        for name, target, resolves in (("link_out", str(outside / "secret.txt"), "outside"),
                                       ("link_in", "a/x.txt", "inside"), ("dangling", "missing", "dangling")):
            s = (await h.call("fs_stat", {"path": name})).structuredContent
            assert s is not None
            assert (s["type"], s["target"], s["resolves"]) == ("symlink", target, resolves)
        await h.stop()

    run(main())


def test_list_pagination(fs_env: tuple[Path, Path, CountingEngine], rng: random.Random) -> None:
    root, _, io = fs_env
    (root / "many").mkdir(parents=True)
    names = {f"f{rng.randrange(10**9):09d}-{i}" for i in range(rng.randrange(1, 260))}
    for n in names:
        (root / "many" / n).write_bytes(b"z" * rng.randrange(100))

    async def main() -> None:
        h = await host(root, io).start()
        seen: list[str] = []
        cursor: str | None = None
        limit = rng.randrange(1, 40)
        pages = 0
        added = False
        while True:
            args: dict[str, Any] = {"path": "many", "limit": limit}
            if cursor:
                args["cursor"] = cursor
            page = (await h.call("fs_list", args)).structuredContent
            assert page is not None
            for e in page["entries"]:
                assert e["type"] == "file" and e["size"] == (root / "many" / e["name"]).stat().st_size
            seen += [e["name"] for e in page["entries"]]
            pages += 1
            if not added:  # a file appearing mid-way does not shift the pages
                (root / "many" / "zzzz-late").write_text("late")
                added = True
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == sorted(set(seen))
        assert set(seen) - {"zzzz-late"} == names
        assert pages == -(-(len(names) + 1) // limit) or pages == -(-len(names) // limit)
        assert "invalid cursor" in error_of(await h.call("fs_list", {"path": "many", "cursor": "%%%"}))
        with pytest.raises(InvalidArgumentsError):
            await h.call("fs_list", {"path": "many", "limit": 0})
        await h.stop()

    run(main())


# -- resources and set-up ------------------------------------------------------------------------------------

def test_resources(fs_env: tuple[Path, Path, CountingEngine]) -> None:
    root, outside, io = fs_env
    _escape_tree(root, outside)
    (root / "sp ace.json").write_text('{"a": 1}')
    (root / "bin.dat").write_bytes(b"\x00\xff\x10")

    async def main() -> None:
        h = await host(root, io).start()
        (c,) = await h.read("fs://inside.txt")
        assert isinstance(c, TextResourceContents) and c.text == "inside\n" and c.uri == "fs://inside.txt"
        (c,) = await h.read("fs://sp%20ace.json")
        assert isinstance(c, TextResourceContents) and c.mimeType == "application/json" and c.text == '{"a": 1}'
        (c,) = await h.read("fs://bin.dat")
        assert isinstance(c, BlobResourceContents) and base64.b64decode(c.blob) == b"\x00\xff\x10"
        (c,) = await h.read("fs://")
        assert isinstance(c, TextResourceContents) and c.mimeType == "application/json"
        listing = msgspec.json.decode(c.text)
        assert {"inside.txt", "a", "link_out"} <= {e["name"] for e in listing["entries"]}
        (c,) = await h.read("fs://a")
        assert isinstance(c, TextResourceContents) and [e["name"] for e in msgspec.json.decode(c.text)["entries"]] \
            == ["up", "x.txt"]
        with pytest.raises(ResourceNotFoundError):
            await h.read("fs://nope.txt")
        ref = {"type": "ref/resource", "uri": "fs://{+path}"}
        done = await h.registry.complete(ref, {"name": "path", "value": "in"})
        assert done.values == ["inside.txt"]
        assert (await h.registry.complete(ref, {"name": "path", "value": "a/"})).values == ["a/up", "a/x.txt"]
        assert "a/" in (await h.registry.complete(ref, {"name": "path", "value": ""})).values
        assert (await h.registry.complete(ref, {"name": "path", "value": "dir_out/"})).values == []  # outside
        for bad in ("fs://../outside/secret.txt", "fs://link_out", "fs://dir_out/secret.txt"):
            with pytest.raises(InvalidArgumentsError, match="escapes the data root"):
                await h.read(bad)
        await h.stop()

    run(main())


def test_default_root_and_schemas(workdir: Path, engine: Any) -> None:
    async def main() -> None:
        ctx = FakePluginContext("fs", workdir / "plugin-data", engine)
        h = await Host("fs", {}, ctx).start()
        assert (workdir / "plugin-data" / "files").is_dir()
        assert h.plugin.root.path == (workdir / "plugin-data" / "files").resolve()
        defs = h.tool_defs()
        assert set(defs) == {"fs_read", "fs_write", "fs_stat", "fs_list", "fs_checksum"}
        for name, d in defs.items():
            assert d.inputSchema["type"] == "object", name
            assert d.outputSchema is not None and d.outputSchema["type"] == "object", name
            assert d.description, name
        assert "path" in defs["fs_read"].inputSchema["required"]
        assert defs["fs_read"].inputSchema["properties"]["path"]["description"]
        assert set(defs["fs_read"].outputSchema["required"]) >= {"crc32c", "size", "file_size"}  # type: ignore[index]
        assert defs["fs_write"].annotations is not None and defs["fs_write"].annotations.destructiveHint is True
        assert defs["fs_read"].annotations is not None and defs["fs_read"].annotations.readOnlyHint is True
        await h.stop()
        (workdir / "notadir").write_text("")
        bad = Host("fs", {"root": str(workdir / "notadir")}, ctx)
        with pytest.raises(OSError) as info:
            await bad.start()
        assert info.value.errno == errno.ENOTDIR and "MCP_EDGE_FS_ROOT" in str(info.value)

    run(main())


def test_environment_overrides(fs_env: tuple[Path, Path, CountingEngine]) -> None:
    """MCP_EDGE_FS_<KEY> overrides the config: here read_only, and a bad value is a clear start failure."""
    root, _, io = fs_env

    async def main() -> None:
        ctx = FakePluginContext("fs", root.parent, io)
        h = await Host("fs", {"root": str(root)}, ctx, environ={"MCP_EDGE_FS_READ_ONLY": "yes"}).start()
        assert "read-only" in error_of(await h.call("fs_write", {"path": "x", "content": "x"}))
        await h.stop()
        bad = Host("fs", {"root": str(root)}, ctx, environ={"MCP_EDGE_FS_MAX_WRITE": "lots"})
        with pytest.raises(Exception, match="MCP_EDGE_FS_MAX_WRITE"):
            await bad.start()

    run(main())
