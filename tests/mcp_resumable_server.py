"""An MCP SDK server (PyPI `mcp`) that closes a tool call's event stream early and expects
the client to resume it (SEP-1699): it keeps its events in an in-memory event store, sends a
priming event with `retry`, and on `GET` + `Last-Event-ID` replays what the client missed.

Usage: python mcp_resumable_server.py PORT LOG
  LOG gets one line per HTTP request: `METHOD PATH last-event-id=...`.
Tool `slow_report(steps)`: logs "step 1", closes its stream, then logs the remaining steps
and answers "done after N steps".
"""
import itertools
import sys

import anyio
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.streamable_http import EventMessage, EventStore

port, log_path = int(sys.argv[1]), sys.argv[2]


class MemoryEventStore(EventStore):
    def __init__(self):
        self.events = []  # (event_id, stream_id, message)
        self.ids = itertools.count(1)

    async def store_event(self, stream_id, message):
        event_id = str(next(self.ids))
        self.events.append((event_id, stream_id, message))
        return event_id

    async def replay_events_after(self, last_event_id, send_callback):
        stream = next((s for i, s, _ in self.events if i == last_event_id), None)
        if stream is None:
            return None
        after = False
        for i, s, m in list(self.events):
            if i == last_event_id:
                after = True
                continue
            if after and s == stream and m is not None:
                await send_callback(EventMessage(m, i))
        return stream


server = MCPServer("resumable")


@server.tool()
async def slow_report(steps: int, ctx: Context) -> str:
    """Reports progress, dropping its stream after the first step."""
    await ctx.info("step 1")
    await ctx.close_sse_stream()
    for n in range(2, steps + 1):
        await anyio.sleep(0.2)
        await ctx.info(f"step {n}")
    return f"done after {steps} steps"


inner = server.streamable_http_app(streamable_http_path="/mcp", event_store=MemoryEventStore(), retry_interval=300)


async def app(scope, receive, send):
    if scope["type"] == "http":
        headers = dict(scope["headers"])
        with open(log_path, "a") as f:
            f.write(f"{scope['method']} {scope['path']} last-event-id={headers.get(b'last-event-id', b'').decode()}\n")
    await inner(scope, receive, send)


uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
