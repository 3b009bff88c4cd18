"""Mounted MCP servers through our endpoint: a server built with the official ``mcp`` SDK and one built with
``fastmcp``, mounted over stdio (and the SDK one over Streamable HTTP), driven with the official SDK client in
both protocol eras (the 2025-11-25 handshake and the stateless 2026-07-28 revision; 2024-11-05 for what an old
client must not get)."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bridge_helpers import (
    MODERN,
    WAIT,
    bridge_plugin,
    free_port,
    gone,
    plugins_status,
    run,
    sdk_http_server,
    serving,
    setting_events,
    stdio_plugin,
    text_of,
)
from ci_honesty import importorskip

importorskip("mcp", "interop", "the bridge tests need the mcp SDK (pip install -e '.[test]')")
importorskip("fastmcp", "interop", "the bridge tests need fastmcp (pip install -e '.[test]')")
anyio = importorskip("anyio", "interop", "the bridge tests need anyio (a dependency of the mcp SDK)")

from mcp import Client, MCPError  # noqa: E402

ERAS = ["legacy", MODERN]


def client(url: str, mode: str, **kwargs: Any) -> Client:
    return Client(url, mode=mode, read_timeout_seconds=WAIT, **kwargs)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server mounting the SDK server (``sdk``), the fastmcp one (``fm``), and two that cannot start."""
    root = tmp_path_factory.mktemp("bridge-plugins")
    stdio_plugin(root, "sdk", "sdk_server.py", 'env = { BRIDGE_SET = "from the manifest" }\n'
                                                'pass_env = ["BRIDGE_PASSED"]')
    stdio_plugin(root, "fm", "fastmcp_server.py")
    stdio_plugin(root, "fm26", "fastmcp_server.py", f'protocol_version = "{MODERN}"\n'  # stateless to the server
                                                    'env = { FIXTURE_SCHEME = "fm26" }')
    stdio_plugin(root, "fmdup", "fastmcp_server.py")  # its fmcp://motd is fm's already
    bridge_plugin(root, "ghost", '[bridge]\ncommand = ["/nonexistent/mcp-server", "--stdio"]')
    bridge_plugin(root, "badtable", '[bridge]\nurl = "ftp://example.invalid/mcp"')
    bridge_plugin(root, "boxed", '[bridge]\ncommand = ["true"]\n\n[sandbox]\nnetwork = false')
    environ = {"BRIDGE_PASSED": "passed on", "BRIDGE_SECRET": "kept back"}
    with serving(root, tmp_path_factory.mktemp("bridge-data"), environ, worker_rlimit_nofile=300) as server:
        yield server.where


@pytest.mark.parametrize("mode", ERAS)
def test_tools_listed_with_prefix_and_called(shared: str, mode: str) -> None:
    async def main() -> None:
        async with client(shared, mode) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert {"sdk_echo", "sdk_add", "sdk_slow", "sdk_count", "fm_rectangle", "fm_reverse"} <= set(tools)
            assert not {"echo", "add", "rectangle"} & set(tools)
            assert tools["sdk_add"].description == "Add two numbers (structured output)."
            assert tools["sdk_add"].input_schema["required"] == ["a", "b"]
            assert tools["sdk_add"].output_schema is not None
            assert tools["fm_rectangle"].output_schema is not None

            echoed = await c.call_tool("sdk_echo", {"text": "héllo, bridge"})
            assert not echoed.is_error and text_of(echoed) == "héllo, bridge"

            added = await c.call_tool("sdk_add", {"a": 2, "b": 40})
            assert not added.is_error
            assert added.structured_content == {"total": 42, "parts": [2, 40]}

            area = await c.call_tool("fm_rectangle", {"width": 2.5, "height": 4})
            assert area.structured_content == {"width": 2.5, "height": 4.0, "area": 10.0}
            area = await c.call_tool("fm26_rectangle", {"width": 3, "height": 3})  # fastmcp spoken to in 2026-07-28
            assert area.structured_content == {"width": 3.0, "height": 3.0, "area": 9.0}
            assert (await c.get_prompt("fm26_summarize", {"topic": "x"})).messages[0].content.text == \
                "Summarize x in one line."
            assert text_of(await c.call_tool("fm_reverse", {"text": "abc"})) == "cba"

            # a name with characters no tool name may have: each one becomes "_", the call goes under the original
            assert "sdk_ns_odd_name" in tools
            assert text_of(await c.call_tool("sdk_ns_odd_name")) == "odd but reachable"

            failed = await c.call_tool("sdk_fail")
            assert failed.is_error and "fail" in text_of(failed)  # the SDK server words it

            with pytest.raises(MCPError):
                await c.call_tool("sdk_no_such_tool", {})

    run(main)


@pytest.mark.parametrize("mode", ERAS)
def test_resources_and_prompts_pass_through(shared: str, mode: str) -> None:
    async def main() -> None:
        async with client(shared, mode) as c:
            uris = {str(r.uri) for r in (await c.list_resources()).resources}
            assert {"fixture://greeting", "fmcp://motd"} <= uris
            templates = {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
            assert "fixture://item/{item_id}" in templates

            fixed = await c.read_resource("fixture://greeting")
            assert fixed.contents[0].text == "hello from the fixture"
            item = await c.read_resource("fixture://item/7")
            assert item.contents[0].text == "item 7"
            motd = await c.read_resource("fmcp://motd")
            assert motd.contents[0].text == "message of the day"
            assert (await c.read_resource("fm26://motd")).contents[0].text == "message of the day"

            prompts = {p.name: p for p in (await c.list_prompts()).prompts}
            assert {"sdk_greet", "fm_summarize"} <= set(prompts)
            assert [a.name for a in prompts["sdk_greet"].arguments or []] == ["name"]
            got = await c.get_prompt("sdk_greet", {"name": "Ada"})
            assert got.messages[0].content.text == "Please greet Ada warmly."
            got = await c.get_prompt("fm_summarize", {"topic": "bridges"})
            assert got.messages[0].content.text == "Summarize bridges in one line."

    run(main)


@pytest.mark.parametrize("mode", ERAS)
def test_completions_are_forwarded(shared: str, mode: str) -> None:
    from mcp import types

    async def main() -> None:
        async with client(shared, mode) as c:
            names = await c.complete(types.PromptReference(type="ref/prompt", name="sdk_greet"),
                                     {"name": "name", "value": "A"})
            assert names.completion.values == ["Ada", "Alan"]
            ids = await c.complete(types.ResourceTemplateReference(type="ref/resource",
                                                                   uri="fixture://item/{item_id}"),
                                   {"name": "item_id", "value": "1"})
            assert ids.completion.values == ["1", "12"]

    run(main)


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")  # the handshake era is tested on purpose
def test_resource_updates_of_the_server_reach_subscribers(shared: str) -> None:
    async def main() -> None:
        updated = anyio.Event()

        async def on_message(message: Any) -> None:
            note = getattr(message, "root", message)
            if getattr(note, "method", None) == "notifications/resources/updated" and \
                    str(note.params.uri) == "fixture://greeting":
                updated.set()

        async with client(shared, "legacy", message_handler=on_message) as c:
            await c.subscribe_resource("fixture://greeting")
            with anyio.fail_after(WAIT):  # the bridge subscribes at the server in the background after start
                while text_of(await c.call_tool("sdk_touch", {"uri": "fixture://greeting"})) != "sent":
                    await anyio.sleep(0.05)
            with anyio.fail_after(WAIT):
                await updated.wait()

    run(main)


@pytest.mark.parametrize("mode", ERAS)
def test_progress_of_a_call_reaches_the_client(shared: str, mode: str) -> None:
    async def main() -> None:
        seen: list[tuple[float, float | None, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append((progress, total, message))

        async with client(shared, mode) as c:
            result = await c.call_tool("sdk_count", {"steps": 3}, progress_callback=on_progress)
            assert text_of(result) == "counted 3"
            with anyio.fail_after(WAIT):  # progress callbacks may run after the result arrived
                while len(seen) < 3:
                    await anyio.sleep(0.01)
        assert [(p, t) for p, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
        assert seen[-1][2] == "step 3"

    run(main)


def test_a_request_from_the_server_is_answered_method_not_found(shared: str) -> None:
    """The bridge offers no client capabilities: the server's roots/list (sampling, elicitation alike) gets
    method-not-found at once, and the call goes on."""
    async def main() -> None:
        async with client(shared, "legacy") as c:
            answer = text_of(await c.call_tool("sdk_roots"))
            assert answer.startswith("refused:") and "method not found: roots/list" in answer, answer

    run(main)


def test_an_old_client_gets_its_revision(shared: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 2024-11-05 client: no outputSchema, title or structuredContent; the structured result is in the text."""
    import json

    import mcp.client.session

    monkeypatch.setattr(mcp.client.session, "LATEST_HANDSHAKE_VERSION", "2024-11-05")

    async def main() -> None:
        async with client(shared, "legacy") as c:
            assert c.protocol_version == "2024-11-05"
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert tools["sdk_add"].output_schema is None and tools["fm_rectangle"].title is None
            added = await c.call_tool("sdk_add", {"a": 1, "b": 2})
            assert added.structured_content is None
            assert json.loads(text_of(added)) == {"total": 3, "parts": [1, 2]}

    run(main)


def test_a_server_that_cannot_start_fails_alone(shared: str) -> None:
    async def main() -> None:
        async with client(shared, "legacy") as c:
            status = await plugins_status(c)
            assert status["ghost"]["state"] == "failed"
            assert "cannot start its server '/nonexistent/mcp-server'" in status["ghost"]["reason"]
            assert status["fmdup"]["state"] == "failed"
            assert "resource 'fmcp://motd' of plugin fmdup collides with plugin fm's" in status["fmdup"]["reason"]
            assert status["boxed"]["state"] == "failed"
            assert "a [sandbox] table does not apply to a mounted server" in status["boxed"]["reason"]
            assert status["badtable"]["state"] == "failed"
            assert "'url' must be an http:// or https:// URL" in status["badtable"]["reason"]
            assert status["sdk"]["state"] == "active" and status["sdk"]["kind"] == "bridge"
            assert status["sdk"]["isolation"] == "process" and status["sdk"]["pid"] != status["fm"]["pid"]
            assert text_of(await c.call_tool("sdk_echo", {"text": "still here"})) == "still here"

    run(main)


def test_the_server_gets_a_small_environment_and_the_worker_limits(shared: str) -> None:
    async def main() -> None:
        async with client(shared, "legacy") as c:
            async def env(name: str) -> str:
                return text_of(await c.call_tool("sdk_environ", {"name": name}))

            assert await env("BRIDGE_SET") == "from the manifest"
            assert await env("BRIDGE_PASSED") == "passed on"
            assert await env("BRIDGE_SECRET") == ""
            assert await env("MCP_EDGE_DATA_DIR") == ""
            assert await env("PATH") != ""
            limits = (await c.call_tool("sdk_confinement")).structured_content
            assert limits == {"nofile": 300, "own_group": 1}

    run(main)


def test_list_changed_is_forwarded_and_the_catalog_follows(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    stdio_plugin(root, "sdk", "sdk_server.py")

    async def main(url: str) -> None:
        changed = anyio.Event()
        on_message = setting_events({"notifications/tools/list_changed": changed})
        async with client(url, "legacy", message_handler=on_message) as c:
            assert "sdk_extra" not in {t.name for t in (await c.list_tools()).tools}
            assert text_of(await c.call_tool("sdk_grow")) == "grown"
            with anyio.fail_after(WAIT):
                await changed.wait()
            assert "sdk_extra" in {t.name for t in (await c.list_tools()).tools}
            assert text_of(await c.call_tool("sdk_extra", {"word": "loud"})) == "LOUD"

    with serving(root, tmp_path / "data") as server:
        run(lambda: main(server.where))


@pytest.mark.filterwarnings("ignore:resources/subscribe is removed")  # the handshake era is tested on purpose
def test_a_server_spoken_to_in_the_stateless_revision(tmp_path: Path) -> None:
    """protocol_version = "2026-07-28": server/discover, _meta on every request, one subscriptions/listen stream
    for list changes and resource updates; clients of either era see no difference."""
    root = tmp_path / "plugins"
    stdio_plugin(root, "sdk", "sdk_server.py", f'protocol_version = "{MODERN}"')

    async def main(url: str) -> None:
        changed, updated = anyio.Event(), anyio.Event()
        on_message = setting_events({"notifications/tools/list_changed": changed,
                                     "notifications/resources/updated": updated})
        async with client(url, "legacy", message_handler=on_message) as c:
            added = await c.call_tool("sdk_add", {"a": 20, "b": 22})
            assert added.structured_content == {"total": 42, "parts": [20, 22]}
            assert added.meta is None or "io.modelcontextprotocol/serverInfo" not in added.meta
            assert (await c.read_resource("fixture://item/9")).contents[0].text == "item 9"
            got = await c.get_prompt("sdk_greet", {"name": "Lin"})
            assert got.messages[0].content.text == "Please greet Lin warmly."
            await c.subscribe_resource("fixture://greeting")
            with anyio.fail_after(WAIT):  # (the bridge opens its listen stream in the background after start)
                while not updated.is_set():
                    assert text_of(await c.call_tool("sdk_touch", {"uri": "fixture://greeting"})) == "sent"
                    with anyio.move_on_after(0.2):
                        await updated.wait()
            assert text_of(await c.call_tool("sdk_grow")) == "grown"
            with anyio.fail_after(WAIT):
                await changed.wait()
            assert text_of(await c.call_tool("sdk_extra", {"word": "up"})) == "UP"
        async with client(url, MODERN) as c:
            assert text_of(await c.call_tool("sdk_echo", {"text": "stateless both ways"})) == "stateless both ways"

    with serving(root, tmp_path / "data") as server:
        run(lambda: main(server.where))


def test_editing_the_manifest_hot_reloads_the_bridge(tmp_path: Path) -> None:
    """A changed plugin.toml (here its prefix) is a hot reload: a new server beside the old, swapped in; the
    old one is stopped."""
    root = tmp_path / "plugins"
    folder = stdio_plugin(root, "sdk", "sdk_server.py")

    async def main(url: str) -> None:
        async with client(url, "legacy") as c:
            old_pid = int(text_of(await c.call_tool("sdk_whoami")))
            text = (folder / "plugin.toml").read_text()
            (folder / "plugin.toml").write_text(text + 'prefix = "again"\n')
            with anyio.fail_after(WAIT):
                while "again_whoami" not in {t.name for t in (await c.list_tools()).tools}:
                    await anyio.sleep(0.05)
            new_pid = int(text_of(await c.call_tool("again_whoami")))
            assert new_pid != old_pid
            with anyio.fail_after(WAIT):
                while not gone(old_pid):
                    await anyio.sleep(0.05)
            assert (await plugins_status(c))["sdk"]["reloads"] >= 1

    with serving(root, tmp_path / "data", reload_watch=True) as server:
        run(lambda: main(server.where))


def test_a_killed_server_is_restarted_and_serves_again(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    stdio_plugin(root, "sdk", "sdk_server.py")

    async def main(url: str) -> None:
        async with client(url, "legacy") as c:
            first = int(text_of(await c.call_tool("sdk_whoami")))
            assert (await plugins_status(c))["sdk"]["pid"] == first
            os.kill(first, signal.SIGKILL)
            second = None
            with anyio.fail_after(WAIT):
                while second is None:
                    try:
                        result = await c.call_tool("sdk_whoami")
                    except MCPError:  # lost, restarting, or the breaker open: an error meanwhile, never a hang
                        await anyio.sleep(0.05)
                        continue
                    if not result.is_error and int(text_of(result)) != first:
                        second = int(text_of(result))
                    else:
                        await anyio.sleep(0.05)
            with anyio.fail_after(WAIT):  # (a call may reach the new server before the restart is recorded)
                while (status := (await plugins_status(c))["sdk"])["state"] != "active":
                    await anyio.sleep(0.05)
            assert status["restarts"] >= 1 and status["pid"] == second
            assert text_of(await c.call_tool("sdk_echo", {"text": "back"})) == "back"

    with serving(root, tmp_path / "data") as server:
        run(lambda: main(server.where))
        status = run_value(lambda: _status(server.where))
    assert "mounted server was killed by SIGKILL" in server.stderr()
    assert gone(status["sdk"]["pid"])  # stopping the runtime ended the server it had started


async def _status(url: str) -> dict[str, dict[str, Any]]:
    async with client(url, "legacy") as c:
        return await plugins_status(c)


def test_an_oversized_message_stops_the_server_and_it_comes_back(tmp_path: Path) -> None:
    """A message over bridge_max_message stops the server (its call gets a clear error) and it is restarted."""
    root = tmp_path / "plugins"
    stdio_plugin(root, "sdk", "sdk_server.py")

    async def main(url: str) -> None:
        async with client(url, "legacy") as c:
            assert text_of(await c.call_tool("sdk_big", {"size": 1000})) == "x" * 1000
            first = int(text_of(await c.call_tool("sdk_whoami")))
            with pytest.raises(MCPError) as too_big:
                await c.call_tool("sdk_big", {"size": 100_000})
            assert "bridge_max_message" in too_big.value.error.message
            with anyio.fail_after(WAIT):
                while True:
                    try:
                        result = await c.call_tool("sdk_whoami")
                    except MCPError:
                        await anyio.sleep(0.05)
                        continue
                    if not result.is_error:
                        break
            assert int(text_of(result)) != first

    with serving(root, tmp_path / "data", bridge_max_message=16384) as server:
        run(lambda: main(server.where))


def test_a_hung_call_hits_its_deadline_and_others_go_on(tmp_path: Path) -> None:
    root = tmp_path / "plugins"
    stdio_plugin(root, "sdk", "sdk_server.py")

    marker = tmp_path / "cancelled"

    async def main(url: str) -> None:
        async with client(url, "legacy") as c:
            pid = int(text_of(await c.call_tool("sdk_whoami")))
            with pytest.raises(MCPError) as hung:
                await c.call_tool("sdk_slow", {"seconds": 600, "marker": str(marker)})
            assert "deadline" in hung.value.error.message
            with anyio.fail_after(WAIT):  # the server was sent notifications/cancelled: its handler was cancelled
                while not marker.exists() or marker.read_text() != "cancelled":
                    await anyio.sleep(0.02)
            assert text_of(await c.call_tool("sdk_echo", {"text": "next"})) == "next"
            assert int(text_of(await c.call_tool("sdk_whoami"))) == pid  # the server was not restarted for it

    with serving(root, tmp_path / "data", tool_timeout_s=1.5) as server:
        run(lambda: main(server.where))


@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")  # logging/setLevel: deprecated, still served
@pytest.mark.parametrize("server_era", ["2025-11-25", MODERN])
def test_a_streamable_http_server_mounted_by_url(tmp_path: Path, server_era: str) -> None:
    """The bridge speaks the handshake era (a session) or 2026-07-28 (no session, subscriptions/listen) to it."""
    port = free_port()
    root = tmp_path / "plugins"
    bridge_plugin(root, "web", f'[bridge]\nurl = "http://127.0.0.1:{port}/mcp"\nprefix = "w"\n'
                               f'protocol_version = "{server_era}"')

    async def main(url: str) -> None:
        changed = anyio.Event()
        on_message = setting_events({"notifications/tools/list_changed": changed})
        async with client(url, "legacy", message_handler=on_message) as c:
            tools = {t.name for t in (await c.list_tools()).tools}
            assert {"w_echo", "w_add", "w_count"} <= tools
            added = await c.call_tool("w_add", {"a": 5, "b": 6})
            assert added.structured_content == {"total": 11, "parts": [5, 6]}
            assert (await c.read_resource("fixture://item/x")).contents[0].text == "item x"
            seen: list[float] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                seen.append(progress)

            await c.call_tool("w_count", {"steps": 2}, progress_callback=on_progress)
            with anyio.fail_after(WAIT):
                while len(seen) < 2:
                    await anyio.sleep(0.01)
            assert text_of(await c.call_tool("w_grow")) == "grown"
            with anyio.fail_after(WAIT):
                await changed.wait()
            assert "w_extra" in {t.name for t in (await c.list_tools()).tools}

        logged: list[Any] = []

        async def on_log(params: Any) -> None:
            logged.append((params.level, params.data))

        async with client(url, "legacy", logging_callback=on_log) as c:
            await c.set_logging_level("warning")
            assert text_of(await c.call_tool("w_chatty")) == "done"
            with anyio.fail_after(WAIT):  # a call's log messages come on its HTTP stream: they reach its client
                while not logged:
                    await anyio.sleep(0.01)
            assert logged == [("warning", "almost there")]  # the client's level is applied

        async with client(url, MODERN) as c:
            assert text_of(await c.call_tool("w_echo", {"text": "modern"})) == "modern"

    with sdk_http_server(port), serving(root, tmp_path / "data") as server:
        run(lambda: main(server.where))


def test_the_http_server_going_away_and_coming_back(tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "plugins"
    bridge_plugin(root, "web", f'[bridge]\nurl = "http://127.0.0.1:{port}/mcp"')

    async def call_until_served(url: str, text: str) -> str:
        async with client(url, "legacy") as c:
            with anyio.fail_after(WAIT):
                while True:
                    try:
                        result = await c.call_tool("web_echo", {"text": text})
                    except MCPError:  # lost, restarting (with backoff) or not back yet
                        await anyio.sleep(0.05)
                        continue
                    if not result.is_error:
                        return text_of(result)
                    await anyio.sleep(0.05)

    async def refused_while_down(url: str) -> None:
        async with client(url, "legacy") as c:
            with pytest.raises(MCPError) as refused:
                await c.call_tool("web_echo", {"text": "down"})
            assert "web" in refused.value.error.message, refused.value.error.message

    with sdk_http_server(port) as upstream, serving(root, tmp_path / "data") as server:
        run(lambda: call_until_served(server.where, "up"))
        upstream.terminate()
        upstream.wait(WAIT)
        run(lambda: refused_while_down(server.where))
        with sdk_http_server(port):
            assert run_value(lambda: call_until_served(server.where, "again")) == "again"

            async def restarted() -> None:
                async with client(server.where, "legacy") as c:
                    assert (await plugins_status(c))["web"]["restarts"] >= 1

            run(restarted)


def run_value(fn: Any) -> Any:
    box: list[Any] = []

    async def keep() -> None:
        box.append(await fn())

    run(keep)
    return box[0]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
