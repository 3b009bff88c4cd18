"""The logs plugin: containment, tail paging by byte cursors, resumable search with progress and cancellation."""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_host import BUILD, CountingEngine, FakePluginContext, FakeRequest, Host, error_of, ok, run

from mcp_edge.errors import InvalidArgumentsError

CHUNK = 1 << 20
BIG_SEED = 20241121
NEEDLE = "NEEDLE-7f3a"


@pytest.fixture(scope="session")
def big_log() -> Iterator[tuple[Path, list[int]]]:
    """A ~32 MB log (fixed seed) and the 1-based numbers of the lines holding NEEDLE."""
    BUILD.mkdir(parents=True, exist_ok=True)
    folder = BUILD / f"test-logs-big-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    path = folder / "big.log"
    r = random.Random(BIG_SEED)
    levels = ["INFO", "DEBUG", "WARN", "ERROR"]
    needles = []
    parts = []
    size = 0
    n = 0
    while size < 32 << 20:
        n += 1
        msg = f"2024-11-21T10:{n // 60 % 60:02d}:{n % 60:02d} {r.choice(levels)} svc[{r.randrange(1, 9999)}]: " \
              f"request id={r.randrange(10**6)} took {r.random() * 100:.3f} ms {'x' * r.randrange(0, 60)}"
        if r.random() < 0.0005:
            msg += f" {NEEDLE}"
            needles.append(n)
        line = msg + "\n"
        parts.append(line)
        size += len(line)
    path.write_text("".join(parts))
    try:
        yield path, needles
    finally:
        path.unlink()
        folder.rmdir()


@pytest.fixture
def logdir(workdir: Path) -> Path:
    """workdir/logs (allowed) with a subfolder, and workdir/outside (not allowed) next to it."""
    logs = workdir / "logs"
    (logs / "sub").mkdir(parents=True)
    (workdir / "outside").mkdir()
    (workdir / "outside" / "secret.log").write_text("secret\n")
    return logs


def host(paths: list[Path], engine: Any, **config: Any) -> Host:
    ctx = FakePluginContext("logs", paths[0].parent, engine)
    return Host("logs", {"paths": [str(p) for p in paths], **config}, ctx)


def lines_of(raw: bytes) -> list[tuple[int, bytes]]:
    """(byte offset, bytes without the newline) of each line; a last line without newline included."""
    out, pos = [], 0
    for piece in raw.split(b"\n"):
        out.append((pos, piece))
        pos += len(piece) + 1
    if raw.endswith(b"\n") or not raw:
        out.pop()
    return out


def shown(b: bytes) -> str:
    return b.decode("utf-8", "replace").rstrip("\r")


def make_log(path: Path, rng: random.Random, count: int) -> bytes:
    """A log with varied lines: empty ones, UTF-8, invalid bytes, CRLF, words to search for."""
    words = ["alpha", "Error", "ERROR", "error:", "id=123", "id=1234", "naïve", "done", "x" * 300]
    out = []
    for i in range(count):
        kind = rng.random()
        if kind < 0.05:
            line = b""
        elif kind < 0.08:
            line = b"bad \xff\xfe bytes " + str(i).encode()
        elif kind < 0.1:
            line = f"crlf line {i} done".encode() + b"\r"
        else:
            line = f"{i:05d} {' '.join(rng.choice(words) for _ in range(rng.randrange(1, 6)))} done".encode()
        out.append(line + b"\n")
    raw = b"".join(out)
    path.write_bytes(raw)
    return raw


# -- access ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("resolve", ["openat2", "fallback"])
def test_list_and_containment(logdir: Path, engine: Any, resolve: str) -> None:
    work = logdir.parent
    (logdir / "a.log").write_text("a\n")
    (logdir / "sub" / "b.log").write_text("bb\n")
    single = work / "single.log"
    single.write_text("single\n")
    os.symlink(work / "outside" / "secret.log", logdir / "link.log")
    os.symlink(work / "outside", logdir / "outdir")
    os.symlink("a.log", logdir / "inside-link.log")

    async def main() -> None:
        h = await host([logdir, single], engine).start()
        if resolve == "fallback":
            h.module._openat2_works[:] = [False]
        page = ok(await h.call("logs_list", {}))
        paths = [f["path"] for f in page["files"]]
        assert paths == sorted([str(logdir / "a.log"), str(logdir / "sub" / "b.log"), str(single)])
        assert page["allowed"] == [str(logdir), str(single)] and page["next_cursor"] is None
        sizes = {f["path"]: f["size"] for f in page["files"]}
        assert sizes[str(logdir / "sub" / "b.log")] == 3
        first = ok(await h.call("logs_list", {"limit": 2}))
        rest = ok(await h.call("logs_list", {"limit": 2, "cursor": first["next_cursor"]}))
        assert [f["path"] for f in first["files"] + rest["files"]] == paths and rest["next_cursor"] is None

        outside = ["/etc/passwd", str(work / "outside" / "secret.log"), str(logdir / ".." / "outside" / "secret.log"),
                   "../outside/secret.log", str(logdir / "link.log"), "link.log", "outdir/secret.log",
                   str(logdir / "outdir" / "secret.log")]
        for f in outside:
            for tool, extra in (("logs_tail", {}), ("logs_search", {"pattern": "secret"})):
                msg = error_of(await h.call(tool, {"file": f, **extra}))
                assert "outside the allowed log paths" in msg, (f, msg)
        assert "not found" in error_of(await h.call("logs_tail", {"file": str(logdir / "nope.log")}))
        assert "not found" in error_of(await h.call("logs_tail", {"file": "nope.log"}))
        assert "folder" in error_of(await h.call("logs_tail", {"file": str(logdir)}))
        assert "folder" in error_of(await h.call("logs_tail", {"file": "sub"}))
        # allowed: by absolute path, relative to the folder, the single file, a link that stays inside
        assert ok(await h.call("logs_tail", {"file": str(logdir / "a.log")}))["lines"] == ["a"]
        assert ok(await h.call("logs_tail", {"file": "sub/b.log"}))["lines"] == ["bb"]
        assert ok(await h.call("logs_tail", {"file": str(single)}))["lines"] == ["single"]
        assert ok(await h.call("logs_tail", {"file": "inside-link.log"}))["lines"] == ["a"]
        await h.stop()

    run(main())


def test_default_paths(workdir: Path, engine: Any) -> None:
    async def main() -> None:
        ctx = FakePluginContext("logs", workdir, engine)
        h = await Host("logs", {}, ctx).start()
        assert h.plugin.paths == ["/var/log", str(ctx.settings.data_dir / "logs")]
        defs = h.tool_defs()
        assert set(defs) == {"logs_list", "logs_tail", "logs_search"}
        for d in defs.values():
            assert d.outputSchema is not None and d.annotations is not None and d.annotations.readOnlyHint
        assert defs["logs_search"].inputSchema["required"] == ["file", "pattern"]
        assert "ctx" not in defs["logs_search"].inputSchema["properties"]
        lines = defs["logs_tail"].inputSchema["properties"]["lines"]
        assert (lines["minimum"], lines["maximum"], lines["default"]) == (1, 1000, 50)
        await h.stop()

    run(main())


# -- tail ------------------------------------------------------------------------------------------------------

def test_tail_last_lines(logdir: Path, engine: Any, rng: random.Random) -> None:
    raw = make_log(logdir / "t.log", rng, 1000)
    want = [shown(b) for _, b in lines_of(raw)]

    async def main() -> None:
        io = CountingEngine(engine)
        h = await host([logdir], io).start()
        page = ok(await h.call("logs_tail", {"file": "t.log"}))
        assert page["lines"] == want[-50:] and page["partial"] is False
        assert page["end"] == page["size"] == len(raw)
        assert page["start"] == lines_of(raw)[-50][0]
        everything = ok(await h.call("logs_tail", {"file": "t.log", "lines": 1000}))
        assert everything["lines"] == want and everything["older"] is None and everything["start"] == 0
        assert io.calls.get("read", 0) > 0  # read through the engine
        (logdir / "empty.log").write_bytes(b"")
        empty = ok(await h.call("logs_tail", {"file": "empty.log"}))
        assert empty["lines"] == [] and empty["older"] is None and empty["partial"] is False
        for bad in (0, 1001):  # the input schema says 1..1000
            with pytest.raises(InvalidArgumentsError):
                await h.call("logs_tail", {"file": "t.log", "lines": bad})
        await h.stop()

    run(main())


def test_tail_paging_round_trip(logdir: Path, engine: Any, rng: random.Random) -> None:
    """Paging back to the start, then forward to the end, yields every line exactly once, in order."""
    raw = make_log(logdir / "p.log", rng, rng.randrange(50, 3000))
    want = [shown(b) for _, b in lines_of(raw)]

    async def main() -> None:
        h = await host([logdir], engine).start()
        n = rng.randrange(1, 120)
        page = ok(await h.call("logs_tail", {"file": "p.log", "lines": n}))
        pages = [page]
        while page["older"] is not None:
            page = ok(await h.call("logs_tail", {"file": "p.log", "lines": n, "cursor": page["older"]}))
            assert 0 < len(page["lines"]) <= n
            assert page["end"] == pages[-1]["start"]  # pages abut
            pages.append(page)
        backwards = [line for p in reversed(pages) for line in p["lines"]]
        assert backwards == want
        assert all(len(p["lines"]) == n for p in pages[:-1])

        forward = list(page["lines"])
        m = rng.randrange(1, 120)
        while True:
            page = ok(await h.call("logs_tail", {"file": "p.log", "lines": m, "cursor": page["newer"]}))
            if not page["lines"]:
                assert page["end"] == len(raw)
                break
            forward += page["lines"]
        assert forward == want
        await h.stop()

    run(main())


def test_tail_follows_a_growing_file(logdir: Path, engine: Any) -> None:
    path = logdir / "g.log"
    path.write_bytes(b"one\ntwo\nthree\n")

    async def main() -> None:
        h = await host([logdir], engine).start()
        page = ok(await h.call("logs_tail", {"file": "g.log", "lines": 2}))
        assert page["lines"] == ["two", "three"]
        with path.open("ab") as f:
            f.write(b"four\nfive\n")
        page = ok(await h.call("logs_tail", {"file": "g.log", "cursor": page["newer"]}))
        assert page["lines"] == ["four", "five"] and page["partial"] is False
        with path.open("ab") as f:
            f.write(b"six (being writ")
        page = ok(await h.call("logs_tail", {"file": "g.log", "cursor": page["newer"]}))
        assert page["lines"] == ["six (being writ"] and page["partial"] is True
        again = ok(await h.call("logs_tail", {"file": "g.log"}))  # a fresh tail shows it as partial too
        assert again["lines"][-1] == "six (being writ" and again["partial"] is True
        with path.open("ab") as f:
            f.write(b"ten)\nseven\n")
        page = ok(await h.call("logs_tail", {"file": "g.log", "cursor": page["newer"]}))
        assert page["lines"] == ["six (being written)", "seven"] and page["partial"] is False
        # the older cursor of a page made before the growth still reads the same lines
        back = ok(await h.call("logs_tail", {"file": "g.log", "lines": 3, "cursor": page["older"]}))
        assert back["lines"] == ["three", "four", "five"]
        await h.stop()

    run(main())


def test_tail_cursor_errors(logdir: Path, engine: Any) -> None:
    path = logdir / "r.log"
    path.write_bytes(b"a\nb\nc\n")

    async def main() -> None:
        h = await host([logdir], engine).start()
        page = ok(await h.call("logs_tail", {"file": "r.log", "lines": 1}))
        for bad in ("garbage", "Zm9v", "!!!", "Yi4xLjI"):  # Zm9v is "foo"; Yi4xLjI is "b.1.2", not this inode
            msg = error_of(await h.call("logs_tail", {"file": "r.log", "cursor": bad}))
            assert "invalid cursor" in msg or (bad == "Yi4xLjI" and "rotated" in msg), msg
        search = ok(await h.call("logs_search", {"file": "r.log", "pattern": "a", "max_matches": 1}))
        assert search["next_cursor"] is not None
        assert "invalid cursor" in error_of(await h.call("logs_tail", {"file": "r.log",
                                                                       "cursor": search["next_cursor"]}))
        path.write_bytes(b"a\n")  # truncated in place (same inode)
        msg = error_of(await h.call("logs_tail", {"file": "r.log", "cursor": page["newer"]}))
        assert "truncated" in msg and "without a cursor" in msg
        path.rename(logdir / "r.log.1")  # rotated
        path.write_bytes(b"a\nb\nc\nd\n")
        msg = error_of(await h.call("logs_tail", {"file": "r.log", "cursor": page["older"]}))
        assert "rotated" in msg
        await h.stop()

    run(main())


# -- search ----------------------------------------------------------------------------------------------------

def reference(raw: bytes, pattern: str, regex: bool, ignore_case: bool) -> list[tuple[int, int, str]]:
    rx = re.compile(pattern if regex else re.escape(pattern), re.MULTILINE | (re.IGNORECASE if ignore_case else 0))
    out = []
    for i, (off, b) in enumerate(lines_of(raw)):
        if rx.search(b.decode("utf-8", "surrogateescape")):
            out.append((i + 1, off, shown(b)))
    return out


SEARCHES = [("ERROR", False, False), ("error", False, True), (r"id=\d{3}\b", True, False),
            (r"^\d{5} naïve", True, False), (r"done$", True, False), ("NAÏVE", False, True), ("bytes 1", False, False),
            (r"a.p.a", True, False), ("id=1234 ", False, False)]


@pytest.mark.parametrize(("pattern", "regex", "ignore_case"), SEARCHES)
def test_search_matches_reference(logdir: Path, engine: Any, rng: random.Random, pattern: str, regex: bool,
                                  ignore_case: bool) -> None:
    """Line numbers, byte offsets and text agree with a line-by-line scan, across resumed calls and small chunks."""
    raw = make_log(logdir / "s.log", rng, rng.randrange(500, 4000))
    want = reference(raw, pattern, regex, ignore_case)
    assert want or pattern in ("bytes 1",)

    async def main() -> None:
        h = await host([logdir], engine, chunk_size=rng.choice([4096, 8192, 65536])).start()
        got: list[tuple[int, int, str]] = []
        cursor = None
        calls = 0
        while True:
            args: dict[str, Any] = {"file": "s.log", "pattern": pattern, "regex": regex, "ignore_case": ignore_case,
                                    "max_matches": rng.randrange(1, 40)}
            if cursor:
                args["cursor"] = cursor
            res = ok(await h.call("logs_search", args))
            calls += 1
            assert len(res["matches"]) <= args["max_matches"]
            got += [(m["line"], m["offset"], m["text"]) for m in res["matches"]]
            cursor = res["next_cursor"]
            if cursor is None:
                assert res["scanned_to"] == len(raw)
                break
            assert len(res["matches"]) == args["max_matches"]
        assert got == want
        await h.stop()

    run(main())


def test_search_long_line_and_no_trailing_newline(logdir: Path, engine: Any) -> None:
    """A line longer than the search's carry (1 MiB) is searched in pieces but reported once, at its start;
    a match in it that fills max_matches resumes after it; a last line without newline is searched too."""
    long_line = b"tail-word " + b"y" * (3 * CHUNK // 2) + b" tail-word " + b"z" * CHUNK + b" tail-word"
    raw = b"first\n" + long_line + b"\nmiddle tail-word\nlast tail-word"
    (logdir / "l.log").write_bytes(raw)
    want = [(2, 6), (3, 6 + len(long_line) + 1), (4, 6 + len(long_line) + 1 + len(b"middle tail-word\n"))]

    async def main() -> None:
        h = await host([logdir], engine, chunk_size=65536, max_line=100).start()
        res = ok(await h.call("logs_search", {"file": "l.log", "pattern": "tail-word"}))
        assert [(m["line"], m["offset"]) for m in res["matches"]] == want
        assert res["matches"][0]["text"].startswith("tail-word " + "y" * 90 + "… [")
        assert res["matches"][2]["text"] == "last tail-word"
        got = []
        cursor = None
        while True:
            args: dict[str, Any] = {"file": "l.log", "pattern": "tail-word", "max_matches": 1}
            if cursor:
                args["cursor"] = cursor
            res = ok(await h.call("logs_search", args))
            got += [(m["line"], m["offset"]) for m in res["matches"]]
            cursor = res["next_cursor"]
            if cursor is None:
                break
        assert got == want
        await h.stop()

    run(main())


def test_search_errors(logdir: Path, engine: Any) -> None:
    (logdir / "e.log").write_text("a(b\nplain\n")

    async def main() -> None:
        h = await host([logdir], engine).start()
        msg = error_of(await h.call("logs_search", {"file": "e.log", "pattern": "a(b", "regex": True}))
        assert "invalid regular expression" in msg and "missing )" in msg and "regex=false" in msg
        res = ok(await h.call("logs_search", {"file": "e.log", "pattern": "a(b"}))  # as text it is fine
        assert [m["line"] for m in res["matches"]] == [1]
        assert "pattern is empty" in error_of(await h.call("logs_search", {"file": "e.log", "pattern": ""}))
        with pytest.raises(InvalidArgumentsError, match="max_matches"):
            await h.call("logs_search", {"file": "e.log", "pattern": "a", "max_matches": 0})
        assert "invalid cursor" in error_of(await h.call("logs_search", {"file": "e.log", "pattern": "a",
                                                                         "cursor": "nope"}))
        await h.stop()

    run(main())


def test_search_big_file_progress(big_log: tuple[Path, list[int]], engine: Any) -> None:
    path, needles = big_log
    size = path.stat().st_size

    async def main() -> None:
        h = await host([path.parent], engine).start()
        rctx = FakeRequest(engine)
        res = ok(await h.call("logs_search", {"file": path.name, "pattern": NEEDLE, "max_matches": 1000}, rctx))
        assert [m["line"] for m in res["matches"]] == needles
        assert res["scanned_to"] == size and res["next_cursor"] is None
        done = [p for p, _, _ in rctx.progress]
        assert len(done) >= size // CHUNK and done == sorted(done) and done[-1] == size
        assert {t for _, t, _ in rctx.progress} == {size}
        assert rctx.progress[-1][2] is not None and f"{len(needles)} matches" in rctx.progress[-1][2]
        # resumed from a cursor, the progress counts what is left to scan
        part = ok(await h.call("logs_search", {"file": path.name, "pattern": NEEDLE, "max_matches": 1}))
        rest = FakeRequest(engine)
        res2 = ok(await h.call("logs_search", {"file": path.name, "pattern": NEEDLE, "max_matches": 1000,
                                               "cursor": part["next_cursor"]}, rest))
        assert [m["line"] for m in res2["matches"]] == needles[1:]
        assert rest.progress[-1][:2] == (size - part["scanned_to"], size - part["scanned_to"])
        await h.stop()

    run(main())


def test_search_cancelled_stops_early(big_log: tuple[Path, list[int]], engine: Any) -> None:
    """Cancelling the request's task ends the scan with CancelledError long before the end of the file."""
    path, _ = big_log
    size = path.stat().st_size

    async def main() -> None:
        h = await host([path.parent], engine).start()
        started = asyncio.Event()
        rctx = FakeRequest(engine, on_progress=started.set)
        task = asyncio.ensure_future(h.call("logs_search", {"file": path.name, "pattern": "no such text"}, rctx))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        scanned = max(p for p, _, _ in rctx.progress)
        assert scanned < size // 2, (scanned, size)
        # the flag alone (a runtime that only marks the request) stops it too
        flagged = FakeRequest(engine, cancel_after=2)
        with pytest.raises(asyncio.CancelledError):
            await h.call("logs_search", {"file": path.name, "pattern": "no such text"}, flagged)
        assert len(flagged.progress) == 2
        await h.stop()

    run(main())
