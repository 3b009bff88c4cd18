# expect: Argument 1 to "configure" of "Server" has incompatible type "str"
from mcp_edge.server import Server

Server.configure("/etc/mcp-edge.toml")
