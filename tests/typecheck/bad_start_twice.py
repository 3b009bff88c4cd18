# expect: "RunningServer" has no attribute "start"
from mcp_edge.board.settings import Settings
from mcp_edge.server import Server


async def main(settings: Settings) -> None:
    running = await Server.configure(settings).start()
    await running.start()
