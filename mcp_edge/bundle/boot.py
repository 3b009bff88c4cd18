"""Start-up of a firmware bundle's mcp-edge (installed as /opt/mcp-edge/lib/boot.py; bin/mcp-edge runs it).

Before mcp_edge is imported (this file uses the standard library alone), the interpreter is checked against
the bundle's manifest.json: the CPython version and the machine the compiled extensions were built for. A
mismatch ends the start with the reason and exit status 2, not with an ImportError later.
"""

from __future__ import annotations

import json
import os
import platform
import sys


def mismatch(manifest: dict[str, str], version_info: tuple[int, ...], machine: str, implementation: str
             ) -> str | None:
    """The reason this interpreter cannot run the bundle, or None."""
    want_py = manifest.get("python", "")
    have_py = f"{version_info[0]}.{version_info[1]}"
    problems = []
    if implementation != manifest.get("implementation", "cpython"):
        problems.append(f"it is {implementation}, not CPython")
    if have_py != want_py:
        problems.append(f"it is Python {have_py}, the bundle's extensions are for {want_py} ({manifest.get('abi')})")
    if machine != manifest.get("arch"):
        problems.append(f"this machine is {machine}, the bundle is for {manifest.get('arch')}")
    if not problems:
        return None
    return (f"mcp-edge: cannot start with {sys.executable}: {'; '.join(problems)}. Install python{want_py} "
            f"on the image, point MCP_EDGE_PYTHON at it, or rebuild the bundle for this image "
            f"(the board profile's [firmware] python and the board's arch; board {manifest.get('board')})")


def main() -> None:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        with open(os.path.join(here, "manifest.json"), encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"mcp-edge: the bundle's manifest cannot be read: {exc}\n")
        sys.exit(2)
    reason = mismatch(manifest, tuple(sys.version_info[:2]), platform.machine(), sys.implementation.name)
    if reason:
        sys.stderr.write(reason + "\n")
        sys.exit(2)
    site = os.path.join(here, "lib", f"python{manifest['python']}", "site-packages")
    if site not in sys.path:
        sys.path.insert(0, site)
    sys.argv[0] = os.path.join(here, "bin", "mcp-edge")
    from mcp_edge.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
