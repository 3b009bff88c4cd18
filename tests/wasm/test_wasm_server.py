"""WASM plugins in a real server (``python -m mcp_edge.cli serve --http``), called with the official ``mcp`` SDK
client: the sample plugin answers exactly as its Python twin; a runaway call ends at its deadline while the
server keeps answering; memory past the cap and an ungranted host function fail their call only; and the same
plugin in a worker process (``isolation = "process"``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from ci_honesty import importorskip
from wasm_helpers import ROOT, TWIN, write_wasm_plugin

sys.path.insert(0, str(ROOT / "tests" / "transport"))
from transport_helpers import http_serving

importorskip("mcp", "interop", "the WASM server tests need the mcp SDK (pip install -e '.[test]')")
anyio = importorskip("anyio", "interop", "the WASM server tests need anyio (a dependency of the mcp SDK)")
from mcp import Client, MCPError  # noqa: E402

WAIT = 60.0  # only to end a broken test, never a timing assertion

TEXTS = ["", "hello", "héllo \"world\"\n\u2603 \U0001f600", "  two\twords \n\n", "line\nline\nline\n", "\x00\x01\x7f",
         "tab\tand\vvertical\fform\rcr", "ünïcödé " * 50, "x" * 10000, "end without newline\nlast",
         "\\ backslash \\\\ and / slash", "json {\"a\": [1, 2]}", "\u00a0non-breaking\u2028separator"]


@contextmanager
def serving(tmp_path: Path, plugin_dirs: list[Path], enabled: str, **extra: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCP_EDGE_")}
    env.update({"MCP_EDGE_DATA_DIR": str(tmp_path / f"data-{enabled.replace(',', '-')}"),
                "MCP_EDGE_PLUGIN_DIRS": os.pathsep.join(map(str, plugin_dirs)),
                "MCP_EDGE_ENABLED_PLUGINS": enabled, "MCP_EDGE_ENTRY_POINTS": "0", "PYTHONUNBUFFERED": "1",
                **extra})
    with http_serving([sys.executable, "-m", "mcp_edge.cli", "serve", "--http", "--host", "127.0.0.1", "--port", "0"],
                      env) as server:
        yield server.where


def run(fn: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        with anyio.fail_after(3 * WAIT):
            await fn()

    anyio.run(bounded)


def answer(result: Any) -> tuple[bool, list[str], Any]:
    return bool(result.is_error), [c.text for c in result.content], result.structured_content


def test_the_wasm_tool_answers_as_its_python_twin(tmp_path: Path, wasm_hello: Path) -> None:
    with serving(tmp_path, [TWIN.parent], "text_stats_py") as py_url, \
            serving(tmp_path, [wasm_hello.parent], "wasm_hello") as wasm_url:
        async def main() -> None:
            async with Client(py_url, read_timeout_seconds=WAIT) as py, \
                    Client(wasm_url, read_timeout_seconds=WAIT) as wasm:
                py_tool = {t.name: t for t in (await py.list_tools()).tools}["text_stats"]
                wasm_tool = {t.name: t for t in (await wasm.list_tools()).tools}["text_stats"]
                assert wasm_tool.input_schema["required"] == py_tool.input_schema["required"] == ["text"]
                for text in TEXTS:
                    ours = answer(await wasm.call_tool("text_stats", {"text": text}))
                    theirs = answer(await py.call_tool("text_stats", {"text": text}))
                    assert ours == theirs, text
                    assert not ours[0] and ours[2]["bytes"] == len(text.encode())
                for client in (wasm, py):  # a bad argument: an invalid-params error from both (worded by each host)
                    with pytest.raises(MCPError) as info:
                        await client.call_tool("text_stats", {"text": 5})
                    assert info.value.code == -32602 and "invalid arguments for tool 'text_stats'" in str(info.value)

        run(main)


def _misbehave(tmp_path: Path, misbehave: Path, isolation: str) -> Path:
    root = tmp_path / "plugins"
    write_wasm_plugin(root, "misbehave", misbehave, """
        memory_mb = 8
        deadline_ms = 1500
        host_functions = ["log", "progress", "data_read", "data_write"]
    """, plugin_extra=f'isolation = "{isolation}"')
    return root


@pytest.mark.parametrize("isolation", ["inproc", "process"])
def test_runaway_calls_fail_alone_and_the_server_keeps_serving(tmp_path: Path, misbehave: Path,
                                                               isolation: str) -> None:
    root = _misbehave(tmp_path, misbehave, isolation)
    with serving(tmp_path, [root], "misbehave") as url:
        async def main() -> None:
            async with Client(url, read_timeout_seconds=WAIT) as c:
                status = json.loads((await c.read_resource("mcp-edge://plugins")).contents[0].text)
                plugin = {p["id"]: p for p in status["plugins"]}["misbehave"]
                assert (plugin["state"], plugin["kind"], plugin["isolation"]) == ("active", "wasm", isolation)

                order: list[str] = []
                spun: list[Any] = []

                async def spin() -> None:
                    spun.append(await c.call_tool("spin", {}))
                    order.append("spin")

                async with anyio.create_task_group() as tg:
                    tg.start_soon(spin)
                    await anyio.sleep(0.2)  # (only to let the spin start first: no assertion rests on it)
                    for _ in range(3):  # answered while the runaway call still runs
                        assert answer(await c.call_tool("ok", {})) == (False, ["fine"], None)
                        order.append("ok")
                assert order == ["ok", "ok", "ok", "spin"], order
                failed, text, _ = answer(spun[0])
                assert failed and "tool spin stopped: its deadline of 1500 ms passed" in text[0], text

                failed, text, _ = answer(await c.call_tool("hog", {}))
                assert failed and "tool hog trapped" in text[0] and "of its 8 MiB cap" in text[0], text
                failed, text, _ = answer(await c.call_tool("fetch", {"url": "http://127.0.0.1:9/"}))
                assert failed and "host function 'http_get', which this plugin is not granted" in text[0], text
                assert answer(await c.call_tool("write", {"path": "n", "text": "kept"})) == (False, ["written"], None)
                assert answer(await c.call_tool("read", {"path": "n"})) == (False, ["kept"], None)
                assert answer(await c.call_tool("ok", {})) == (False, ["fine"], None)

            # log and progress (granted) reach the client, before the call's answer
            logs: list[tuple[str, Any]] = []
            progress: list[tuple[float, float | None, str | None]] = []

            async def on_log(params: Any) -> None:
                logs.append((params.level, params.data))

            async def on_progress(done: float, total: float | None, message: str | None) -> None:
                progress.append((done, total, message))

            async with Client(url, read_timeout_seconds=WAIT, logging_callback=on_log, log_level="debug") as c:
                shouted = await c.call_tool("shout", {}, progress_callback=on_progress)
                assert answer(shouted) == (False, ["shouted"], None)
                assert ("warning", "shouting") in logs, logs
                assert progress == [(1.0, 2.0, "half")], progress

        run(main)
