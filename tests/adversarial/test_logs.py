"""Issue 7, logs: client regular expressions in linear time and off the event loop (case 10), the pattern length
cap, the containment re-check when a folder is swapped between resolve and open (mutation survivor), and
openat2's EAGAIN under concurrent renames (case 20)."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_edge.errors import InvalidArgumentsError
from mcp_edge.io import Engine, open_engine

from .builtin_stdio import builtin_server
from .races import RenameLoop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins"))  # the built-in plugins' test host
from plugin_host import FakePluginContext, Host, error_of, ok, run

FREEZE = 15.0  # a ping must be answered within this while a search runs (the old code froze for minutes)


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = open_engine("threads")
    try:
        yield eng
    finally:
        eng.close()


def host(folder: Path, engine: Engine, overrides: dict[str, Any] | None = None, **config: Any) -> Host:
    ctx = FakePluginContext("logs", folder.parent, engine, overrides=dict(overrides or {}))
    return Host("logs", {"paths": [str(folder)], **config}, ctx)


# -- case 10: regular expressions -------------------------------------------------------------------------------

def test_catastrophic_patterns_do_not_freeze_the_server(tmp_path: Path) -> None:
    """``(a+)+$`` (exponential for a backtracking engine) and ``[\\s\\S]*z`` on a 2 MB log (quadratic when each
    search runs to the end of the text): another client's ping is answered at once, and the results are right."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "evil.log").write_text(("a" * 27 + "b\n") * 3)
    r = random.Random(7)
    lines = []
    for i in range(40_000):
        words = " ".join("".join(r.choice("abcdefghijklmnopqrstuvwxy") for _ in range(5)) for _ in range(8))
        lines.append(f"{i:06d} {words}" + (" z" if r.random() < 0.001 else ""))
    (logs / "big.log").write_text("".join(line + "\n" for line in lines))
    assert (logs / "big.log").stat().st_size > 2_000_000
    want_z = [i + 1 for i, line in enumerate(lines) if "z" in line]
    assert want_z
    with builtin_server(tmp_path, "logs", {"paths": [str(logs)]}) as server:
        search = {"name": "logs_search", "arguments": {"file": "evil.log", "pattern": "(a+)+$", "regex": True}}
        server.send({"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": search})
        server.send({"jsonrpc": "2.0", "id": 11, "method": "ping"})
        assert server.response(11, wait=FREEZE)["result"] == {}
        res = server.response(10)["result"]
        assert not res.get("isError"), res
        assert res["structuredContent"]["matches"] == []
        search["arguments"]["pattern"] = "(a+)+b$"
        got = server.call(12, "tools/call", search)["result"]["structuredContent"]["matches"]
        assert [m["line"] for m in got] == [1, 2, 3]

        cross = {"name": "logs_search", "arguments": {"file": "big.log", "pattern": r"[\s\S]*z", "regex": True,
                                                      "max_matches": 1000}}
        server.send({"jsonrpc": "2.0", "id": 13, "method": "tools/call", "params": cross})
        server.send({"jsonrpc": "2.0", "id": 14, "method": "ping"})
        assert server.response(14, wait=FREEZE)["result"] == {}
        res = server.response(13)["result"]
        assert not res.get("isError"), res
        assert [m["line"] for m in res["structuredContent"]["matches"]] == want_z  # per line, never across lines


def test_pattern_longer_than_max_regex_is_refused(tmp_path: Path, engine: Engine) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text("x" * 40 + "\n")

    async def main() -> None:
        h = await host(logs, engine, {"max_regex": 32}).start()
        with pytest.raises(InvalidArgumentsError, match="max_regex"):
            await h.call("logs_search", {"file": "a.log", "pattern": "x" * 33})
        assert ok(await h.call("logs_search", {"file": "a.log", "pattern": "x" * 32}))["matches"]
        # RE2 refuses what it cannot run in linear time, with its reason
        msg = error_of(await h.call("logs_search", {"file": "a.log", "pattern": r"(x)\1", "regex": True}))
        assert "invalid regular expression" in msg and "backreferences" in msg
        await h.stop()

    run(main())


def test_cancel_stops_the_scan_between_chunks(tmp_path: Path, engine: Engine) -> None:
    """Each chunk is matched in a worker thread: a cancelled request is answered while the worker still holds
    its chunk, and no further chunk is scanned once it returns."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "c.log").write_text(("0123456789 " * 9 + "\n") * 400)  # 40 KB: ten 4 KiB chunks

    async def main() -> None:
        h = await host(logs, engine, chunk_size=4096).start()
        entered, gate, left = threading.Event(), threading.Event(), threading.Event()
        callers: list[threading.Thread] = []
        real = h.plugin._find

        def held(*args: Any) -> Any:
            callers.append(threading.current_thread())
            entered.set()
            gate.wait(10)
            try:
                return real(*args)
            finally:
                left.set()

        h.plugin._find = held
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(h.call("logs_search", {"file": "c.log", "pattern": "absent", "regex": True}))
        assert await loop.run_in_executor(None, entered.wait, 10)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=10)
        assert task in done and task.cancelled()
        assert not gate.is_set()  # answered while the worker was still inside its chunk
        gate.set()
        assert await loop.run_in_executor(None, left.wait, 10)
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(callers) == 1 and callers[0] is not threading.main_thread()
        await h.stop()

    run(main())


# -- containment: the /proc/self/fd re-check ---------------------------------------------------------------------

def test_folder_swapped_between_resolve_and_open_is_refused(tmp_path: Path, engine: Engine,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Without openat2 the path is resolved, then opened: a folder swapped for a link to outside in between is
    caught by the re-check of the opened file through /proc/self/fd."""
    logs = tmp_path / "logs"
    (logs / "sub").mkdir(parents=True)
    (logs / "sub" / "app.log").write_text("inside\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "app.log").write_text("secret\n")

    async def main() -> None:
        h = await host(logs, engine).start()
        h.module._openat2_works[:] = [False]
        assert ok(await h.call("logs_tail", {"file": "sub/app.log"}))["lines"] == ["inside"]
        real_realpath = os.path.realpath
        swapped: list[str] = []

        def realpath_then_swap(path: Any, *args: Any, **kw: Any) -> Any:
            out = real_realpath(path, *args, **kw)
            if str(path).endswith("sub/app.log") and not swapped:  # the gap between resolve and open
                os.rename(logs / "sub", tmp_path / "moved")
                os.symlink(outside, logs / "sub")
                swapped.append(str(path))
            return out

        monkeypatch.setattr(os.path, "realpath", realpath_then_swap)
        for tool, extra in (("logs_tail", {}), ("logs_search", {"pattern": "e"})):
            swapped.clear()
            if (logs / "sub").is_symlink():
                os.unlink(logs / "sub")
                os.rename(tmp_path / "moved", logs / "sub")
            msg = error_of(await h.call(tool, {"file": "sub/app.log", **extra}))
            assert swapped and "outside the allowed log paths" in msg, msg
            assert "secret" not in msg
        monkeypatch.undo()
        await h.stop()

    run(main())


# -- case 20: openat2 and EAGAIN ---------------------------------------------------------------------------------

def test_open_beneath_retries_eagain_under_renames(tmp_path: Path, engine: Engine) -> None:
    logs = tmp_path / "logs"
    (logs / "a").mkdir(parents=True)
    (logs / "inside.log").write_text("in\n")
    (tmp_path / "outside.log").write_text("out\n")

    async def main() -> None:
        h = await host(logs, engine).start()
        open_beneath = h.module.open_beneath
        folder = str(logs)
        failures: dict[str, int] = {}
        escapes = 0
        with RenameLoop(tmp_path) as renames:
            for _ in range(20_000):
                try:
                    os.close(open_beneath(folder, "a/../inside.log", os.O_RDONLY))
                except OSError as exc:
                    key = errno.errorcode.get(exc.errno or 0, str(exc.errno))
                    failures[key] = failures.get(key, 0) + 1
                try:
                    os.close(open_beneath(folder, "a/../../outside.log", os.O_RDONLY))
                    raise AssertionError("escaped the folder")
                except OSError as exc:
                    if exc.errno == errno.EXDEV:
                        escapes += 1
                    else:
                        key = "escape:" + errno.errorcode.get(exc.errno or 0, str(exc.errno))
                        failures[key] = failures.get(key, 0) + 1
        assert renames.running  # it renamed all the while
        assert failures == {} and escapes == 20_000
        await h.stop()

    run(main())
