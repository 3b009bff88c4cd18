# expect: "Coroutine[Any, Any, RunningServer]" has no attribute "call_tool"
from mcp_edge.board.settings import Settings
from mcp_edge.server import Server


async def main(settings: Settings) -> None:
    running = Server.configure(settings).start()
    await running.call_tool("echo", {})
