# expect: "StoppedServer" has no attribute "call_tool"
from mcp_edge.board.settings import Settings
from mcp_edge.server import Server


async def main(settings: Settings) -> None:
    running = await Server.configure(settings).start()
    stopped = await running.stop()
    await stopped.call_tool("echo", {})
