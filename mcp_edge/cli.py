"""The ``mcp-edge`` command line.

``mcp-edge serve`` is what MCP clients spawn, so it starts without click: its few options are parsed here
(click, with the inspect/uuid/datetime it imports, costs about 20 ms and 1.2 MiB at every start). Anything
else, and a ``serve`` command line this parser does not accept (``--help``, a typo), goes to the click
commands in :mod:`mcp_edge.commands`, which give the help and the error messages.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp_edge.errors import McpEdgeError

if TYPE_CHECKING:
    from collections.abc import Callable

    from mcp_edge.board.settings import Settings
    from mcp_edge.supervisor import Supervisor

__all__ = ["main", "parse_serve", "run_serve"]

_FLAGS = {"--stdio": "stdio", "--http": "http", "-q": "quiet", "--quiet": "quiet"}
_VALUES = {"--unix": "unix_path", "--host": "host", "--port": "port", "--board": "board"}


def parse_serve(args: list[str]) -> dict[str, Any] | None:
    """The options of ``serve ARGS``, or None when click should handle them (help, unknown or repeated options)."""
    out: dict[str, Any] = {"stdio": False, "http": False, "unix_path": None, "host": None, "port": None,
                           "quiet": False, "sets": [], "board": None}
    seen: set[str] = set()
    it = iter(args)
    for arg in it:
        name, eq, value = arg.partition("=")
        if name == "--set":
            given = value if eq else next(it, None)
            if given is None or "=" not in given:
                return None
            out["sets"].append(given)
            continue
        if name in _FLAGS and not eq:
            key = _FLAGS[name]
            out[key] = True
        elif name in _VALUES:
            key = _VALUES[name]
            if not eq:
                given = next(it, None)
                if given is None or given.startswith("-"):
                    return None
                value = given
            out[key] = Path(value) if key == "unix_path" else value
        else:
            return None
        if key in seen:
            return None
        seen.add(key)
    return out


def _say(line: str) -> None:
    from mcp_edge.logs import say

    say(line)


def _fail(exc: Exception) -> None:
    _say(str(exc))
    sys.exit(2)


def _without_ssl(keep_tls: bool) -> None:
    """Import asyncio without ``ssl``: it loads OpenSSL (about 4.5 MiB of RSS and 6 ms) that a server without
    TLS never uses. asyncio keeps ``ssl = None`` (no TLS transports); ``ssl`` itself stays importable for plugins.
    ``Settings.asyncio_tls`` (``MCP_EDGE_ASYNCIO_TLS=1``) keeps asyncio's TLS, for plugins that open TLS
    connections through it.
    """
    if "asyncio" in sys.modules or "ssl" in sys.modules or keep_tls:
        return
    sys.modules["ssl"] = None  # type: ignore[assignment]
    try:
        import asyncio  # noqa: F401
    finally:
        del sys.modules["ssl"]


def run_serve(*, stdio: bool, http: bool, unix_path: Path | None, host: str | None, port: str | None,
              quiet: bool, sets: list[str] | None = None, board: str | None = None) -> None:
    """``mcp-edge serve``: load the plugins and serve MCP (the profile's transport_mode unless told otherwise:
    Streamable HTTP on 127.0.0.1 by default). ``board`` names the profile; without it detection picks one."""
    import logging

    modes = [name for name, on in (("--stdio", stdio), ("--http", http), ("--unix", unix_path is not None)) if on]
    if len(modes) > 1:
        _fail(ValueError(f"choose one of --stdio, --http, --unix (got {' and '.join(modes)})"))
    if modes and modes[0] != "--http" and (host is not None or port is not None):
        _fail(ValueError("--host and --port apply to --http only"))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="mcp-edge: %(levelname)s %(name)s: %(message)s")
    from mcp_edge.board.settings import parse_value

    overrides: dict[str, Any] = {}
    try:
        for item in sets or ():
            key, _, value = item.partition("=")
            overrides[key.strip()] = parse_value(key.strip(), value, f"--set {item}")
    except McpEdgeError as exc:
        _fail(exc)
    if host is not None:
        overrides["http_host"] = host
    if port is not None:
        if not port.isdigit():
            _fail(ValueError(f"--port {port!r}: expected a number 0..65535"))
        overrides["http_port"] = int(port)
    try:
        from mcp_edge.board.settings import Settings

        def load() -> Settings:
            if board is None:
                return Settings.load(**overrides)
            from dataclasses import replace

            from mcp_edge.board.profiles import resolve

            return Settings.load(replace(resolve(board), picked="named by --board"), **overrides)

        settings = load()
        mode = modes[0][2:] if modes else settings.transport_mode
        if mode == "unix" and unix_path is None:
            unix_path = Path(settings.unix_path) if settings.unix_path else settings.data_dir / "mcp-edge.sock"
        if mode != "http" and (host is not None or port is not None):
            _fail(ValueError(f"--host and --port apply to HTTP only; the profile's transport_mode is {mode}"))
        from mcp_edge.logs import configure

        configure(settings, level=logging.WARNING if quiet else logging.INFO)  # text or JSON, stderr or journald
        tune_malloc(settings)
        # before anything imports asyncio (the stdio transport does); HTTPS needs asyncio's TLS
        _without_ssl(settings.asyncio_tls or bool(settings.tls_cert))
        if mode == "stdio":
            from mcp_edge.transport.stdio import claim_stdout

            claim_stdout()  # before any plugin loads: nothing but protocol reaches stdout
        import asyncio

        from mcp_edge.transport.spin import loop_factory

        with asyncio.Runner(loop_factory=loop_factory(settings.spin_us)) as runner:
            runner.run(_serve(settings, mode, unix_path, quiet, load))
    except McpEdgeError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(OSError(f"cannot serve: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")))
    except KeyboardInterrupt:
        pass


async def _serve(settings: Settings, mode: str, unix_path: Path | None, quiet: bool,
                 reread: Callable[[], Settings]) -> None:
    from mcp_edge.supervisor import Supervisor

    # Signals are the supervisor's from before the plugins start: a SIGTERM during start stops the server as
    # soon as it serves (drained, exit 0), a second one exits 1 at once.
    supervisor = Supervisor(budget_s=settings.shutdown_timeout_s)
    with supervisor:
        await _serve_until(supervisor, settings, mode, unix_path, quiet, reread)


async def _serve_until(supervisor: Supervisor, settings: Settings, mode: str, unix_path: Path | None,
                       quiet: bool, reread: Callable[[], Settings]) -> None:
    from mcp_edge.server import Server

    stop = supervisor.stop
    supervisor.status("starting plugins")
    running = await Server.configure(settings).start()
    supervisor.on_reload = lambda: running.reload(reread)  # SIGHUP: the profile again, with the same --set
    what = {"stdio": "stdio", "http": "Streamable HTTP", "unix": "a unix socket"}[mode]

    say = _say
    def ready(where: str) -> None:
        supervisor.serving(running.registry.status, what)
        say(f"serving MCP over {what} at {where}")

    if not quiet:
        why = f" ({settings.board.picked})" if settings.board.picked else ""
        say(f"board {settings.board.id}{why}; plugins: {_plugins_line(running.registry.status())}")
    try:
        if mode == "stdio":
            supervisor.serving(running.registry.status, what)
            say("serving MCP over stdio")
            await running.serve_stdio(stop=stop)
        elif mode == "unix":
            assert unix_path is not None
            await running.serve_unix(unix_path, on_ready=ready, stop=stop)
        else:
            await running.serve_http(on_ready=ready, stop=stop, health=supervisor.health)
    finally:
        supervisor.status("stopping plugins")
        await running.stop()
        if not quiet:
            say("stopped")


def tune_malloc(settings: Settings) -> None:
    """The heap thresholds of ``settings`` (malloc_mmap_threshold, malloc_keep) for this process; a C library
    without them (not glibc) is left as it is."""
    import logging

    from mcp_edge.native._sys import set_malloc_thresholds

    try:
        taken = set_malloc_thresholds(settings.malloc_mmap_threshold, settings.malloc_keep)
    except OSError as exc:  # never a reason not to serve
        taken, why = False, str(exc)
    else:
        why = "the C library has no such thresholds"
    if not taken:
        logging.getLogger("mcp_edge").debug("malloc_mmap_threshold and malloc_keep not applied: %s", why)


def _plugins_line(status: object) -> str:
    """'fs 0.1.0, sysinfo 0.1.0 (failed: ...)' from Registry.status()."""
    parts: list[str] = []
    for entry in status if isinstance(status, list) else []:
        if not isinstance(entry, dict):
            continue
        name = str(entry.get("id", "?"))
        version = entry.get("version")
        state = entry.get("state")
        text = f"{name} {version}" if version else name
        if state not in (None, "active", "running", "started"):
            text += f" ({state}{': ' + str(entry['reason']) if entry.get('reason') else ''})"
        parts.append(text)
    return ", ".join(parts) or "none"


def main() -> None:
    """Entry point of the ``mcp-edge`` console script."""
    args = sys.argv[1:]
    if args[:1] == ["serve"]:
        options = parse_serve(args[1:])
        if options is not None:
            run_serve(**options)
            return
    from mcp_edge.commands import cli

    cli()


if __name__ == "__main__":
    main()
