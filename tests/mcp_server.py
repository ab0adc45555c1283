"""An MCP SDK server (PyPI `mcp`, MCPServer) on 127.0.0.1 for tests, recording the
Authorization header of every request it receives (one line per request in HEADERS_LOG).
Usage: python mcp_server.py PORT PATH HEADERS_LOG"""
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

port, path, headers_log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
server = MCPServer("py-upstream")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(message: str) -> str:
    """Echo a message back."""
    return f"py-upstream: {message}"


inner = server.streamable_http_app(streamable_http_path=path)


async def app(scope, receive, send):
    if scope["type"] == "http":
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        with open(headers_log, "a") as f:
            f.write(f"{scope['method']} {scope['path']} authorization={auth}\n")
    await inner(scope, receive, send)


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
