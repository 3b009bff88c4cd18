"""The ``mcp-edge`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mcp_edge.errors import McpEdgeError

if TYPE_CHECKING:
    from mcp_edge.runtime.settings import Settings

__all__ = ["main"]


def _fail(exc: Exception) -> None:
    click.echo(f"mcp-edge: {exc}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="mcp-edge", prog_name="mcp-edge")
def cli() -> None:
    """mcp_edge: an MCP runtime for edge appliances."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder whose filesystem is probed for O_DIRECT (default: $MCP_EDGE_DATA_DIR or the board's).",
)
def doctor(as_json: bool, data_dir: Path | None) -> None:
    """Report the CPU features, ISA level, io_uring, O_DIRECT, hugepages and NUMA of this box."""
    try:
        from mcp_edge.doctor import collect, render

        report = collect(data_dir)
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(json.dumps(report, indent=2) if as_json else render(report))


@cli.group()
def perf() -> None:
    """Benchmarks against peers, in one run, as ratios."""


@perf.command("run")
@click.option("--only", default=None, help="Comma-separated bench names (default: all).")
@click.option("--quick", is_flag=True, help="Shorter runs: for smoke tests, not for figures.")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where to write the results (DESIGN.md format).")
@click.option("--bench-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder of bench_*.py files (default: ./perf, the checkout's, or the installed one).")
def perf_run(only: str | None, quick: bool, json_path: Path, bench_dir: Path | None) -> None:
    """Run the benchmarks and write their results as JSON."""
    try:
        from mcp_edge.perf import format_table, run

        names = [n.strip() for n in only.split(",") if n.strip()] if only else None
        result = run(only=names, quick=quick, json_path=json_path, bench_dir=bench_dir, progress=True)
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(format_table(result))
    click.echo(f"results written to {json_path}")


@cli.command()
@click.option("--stdio", is_flag=True, help="Serve one client on stdin/stdout (what desktop MCP clients spawn).")
@click.option("--http", "http_", is_flag=True, help="Serve Streamable HTTP at /mcp (the default).")
@click.option("--unix", "unix_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Serve newline-delimited JSON-RPC on a unix socket at PATH (mode 0600).")
@click.option("--host", default=None, help="HTTP address to bind (default: $MCP_EDGE_HTTP_HOST or 127.0.0.1).")
@click.option("--port", default=None, help="HTTP port, 0 for any free one (default: $MCP_EDGE_HTTP_PORT or 8765).")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
def serve(stdio: bool, http_: bool, unix_path: Path | None, host: str | None, port: str | None, quiet: bool) -> None:
    """Load the plugins and serve MCP: Streamable HTTP on 127.0.0.1 unless told otherwise."""
    import logging

    modes = [name for name, on in (("--stdio", stdio), ("--http", http_), ("--unix", unix_path is not None)) if on]
    if len(modes) > 1:
        _fail(ValueError(f"choose one of --stdio, --http, --unix (got {' and '.join(modes)})"))
    mode = modes[0][2:] if modes else "http"
    if mode != "http" and (host is not None or port is not None):
        _fail(ValueError("--host and --port apply to --http only"))
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, stream=sys.stderr,
                        format="mcp-edge: %(levelname)s %(name)s: %(message)s")
    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["http_host"] = host
    if port is not None:
        if not port.isdigit():
            _fail(ValueError(f"--port {port!r}: expected a number 0..65535"))
        overrides["http_port"] = int(port)
    if mode == "stdio":
        from mcp_edge.transport.stdio import claim_stdout

        claim_stdout()  # before any plugin loads: nothing but protocol reaches stdout
    try:
        import asyncio

        from mcp_edge.runtime.settings import Settings

        settings = Settings.load(**overrides)
        asyncio.run(_serve(settings, mode, unix_path, quiet))
    except McpEdgeError as exc:
        _fail(exc)
    except OSError as exc:
        _fail(OSError(f"cannot serve: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")))
    except KeyboardInterrupt:
        pass


async def _serve(settings: Settings, mode: str, unix_path: Path | None, quiet: bool) -> None:
    from mcp_edge.server import Server

    running = await Server.configure(settings).start()

    def say(line: str) -> None:
        click.echo(f"mcp-edge: {line}", err=True)

    def ready(where: str) -> None:
        what = {"http": "Streamable HTTP", "unix": "a unix socket"}[mode]
        say(f"serving MCP over {what} at {where}")

    if not quiet:
        say(f"board {settings.board.id}; plugins: {_plugins_line(running.registry.status())}")
    try:
        if mode == "stdio":
            say("serving MCP over stdio")
            await running.serve_stdio()
        elif mode == "unix":
            assert unix_path is not None
            await running.serve_unix(unix_path, on_ready=ready)
        else:
            await running.serve_http(on_ready=ready)
    finally:
        await running.stop()
        if not quiet:
            say("stopped")


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
            text += f" ({state}{': ' + str(entry['error']) if entry.get('error') else ''})"
        parts.append(text)
    return ", ".join(parts) or "none"


@cli.group()
def plugins() -> None:
    """The plugins this box would run."""


@plugins.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the plugins as JSON.")
@click.option("--plugin-dir", "plugin_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Search this folder instead of $MCP_EDGE_PLUGIN_DIRS and the board's (repeatable).")
@click.option("--no-entry-points", is_flag=True, help="Leave out plugins installed as distributions.")
@click.option("--no-init", is_flag=True, help="Load the plugins but do not initialize them.")
def plugins_list(as_json: bool, plugin_dirs: tuple[Path, ...], no_entry_points: bool, no_init: bool) -> None:
    """Discover, load and start the plugins, then show each one's state, reason and times."""
    try:
        from mcp_edge.plugin.cli import list_plugins, render_plugins

        rows = list_plugins(list(plugin_dirs) or None, entry_points=not no_entry_points, init=not no_init)
    except McpEdgeError as exc:
        _fail(exc)
    click.echo(json.dumps(rows, indent=2) if as_json else render_plugins(rows))


def main() -> None:
    """Entry point of the ``mcp-edge`` console script."""
    cli()


if __name__ == "__main__":
    main()
