"""A mounted server for the bridge tests, built with ``fastmcp`` (stdio)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from fastmcp import FastMCP

server = FastMCP("bridge-fixture-fastmcp")


@dataclass
class Area:
    width: float
    height: float
    area: float


@server.tool
def rectangle(width: float, height: float) -> Area:
    """The area of a rectangle (structured output)."""
    return Area(width, height, width * height)


@server.tool
def reverse(text: str) -> str:
    """``text`` backwards."""
    return text[::-1]


# the scheme from the environment: two mounts of this server can then offer different URIs
@server.resource(f"{os.environ.get('FIXTURE_SCHEME', 'fmcp')}://motd", mime_type="text/plain")
def motd() -> str:
    """A fixed resource."""
    return "message of the day"


@server.prompt
def summarize(topic: str) -> str:
    """A prompt with one argument."""
    return f"Summarize {topic} in one line."


if __name__ == "__main__":
    server.run(show_banner=False)
