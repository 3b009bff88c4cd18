"""The ``mcp-edge`` command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mcp_edge.errors import McpEdgeError

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


def main() -> None:
    """Entry point of the ``mcp-edge`` console script."""
    cli()


if __name__ == "__main__":
    main()
