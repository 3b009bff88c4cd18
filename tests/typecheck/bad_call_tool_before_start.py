# expect: "ConfiguredServer" has no attribute "call_tool"
from mcp_edge.board.settings import Settings
from mcp_edge.server import Server


async def main(settings: Settings) -> None:
    configured = Server.configure(settings)
    await configured.call_tool("echo", {})
