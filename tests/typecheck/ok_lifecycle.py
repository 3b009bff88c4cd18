# mypy accepts: the lifecycle used in order.
from mcp_edge.board.settings import Settings
from mcp_edge.server import Server


async def main(settings: Settings) -> None:
    configured = Server.configure(settings)
    running = await configured.start()
    await running.call_tool("echo", {"text": "hi"})
    stopped = await running.stop()
    stopped.status()
