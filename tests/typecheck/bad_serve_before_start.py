# expect: "ConfiguredServer" has no attribute "serve_stdio"
from mcp_edge.board.settings import Settings
from mcp_edge.server import Server


async def main(settings: Settings) -> None:
    await Server.configure(settings).serve_stdio()
