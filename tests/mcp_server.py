"""An MCP SDK server (PyPI `mcp`, MCPServer) on 127.0.0.1 for tests, recording the Host and
Authorization headers of every request it receives (one line per request in HEADERS_LOG:
`METHOD PATH host=HOST authorization=AUTH`).

Usage: python mcp_server.py PORT PATH HEADERS_LOG [TRANSPORT [NAME]]
  TRANSPORT: `streamable-http` (default; PATH is the MCP endpoint, e.g. /mcp) or `sse` (legacy
             SSE; PATH is the event stream, e.g. /sse, and messages are POSTed to
             /messages/?session_id=...).
  NAME:      the server's name (default `py-upstream`); the echo tool answers "NAME: message".
"""
import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

port, path, headers_log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
transport = sys.argv[4] if len(sys.argv) > 4 else "streamable-http"
name = sys.argv[5] if len(sys.argv) > 5 else "py-upstream"
server = MCPServer(name)


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def echo(message: str) -> str:
    """Echo a message back."""
    return f"{name}: {message}"


@server.resource("greeting://{who}")
def greeting(who: str) -> str:
    """A templated resource: one greeting per name."""
    return f"{name}: hello {who}"


if transport == "sse":
    inner = server.sse_app(sse_path=path)
elif transport == "streamable-http":
    inner = server.streamable_http_app(streamable_http_path=path)
else:
    sys.exit(f"unknown transport {transport!r} (streamable-http or sse)")


async def app(scope, receive, send):
    if scope["type"] == "http":
        headers = dict(scope["headers"])
        auth = headers.get(b"authorization", b"").decode()
        host = headers.get(b"host", b"").decode()
        with open(headers_log, "a") as f:
            f.write(f"{scope['method']} {scope['path']} host={host} authorization={auth}\n")
    await inner(scope, receive, send)


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
