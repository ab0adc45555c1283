"""MCP stream resumption (SEP-1699) through tollgate: a target that closes a call's event
stream after a priming event is resumed with GET + Last-Event-ID, and the client gets every
message and the result."""
import asyncio
import sys

from conftest import ROOT, Proc, free_port, wait_port


def test_target_that_closes_its_stream_is_resumed(tollgate, workdir):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    target_port = free_port()
    requests_log = workdir / "resumable.log"
    requests_log.write_text("")
    server = Proc([sys.executable, str(ROOT / "tests" / "mcp_resumable_server.py"), str(target_port), str(requests_log)],
                  workdir / "resumable.out")
    try:
        wait_port(target_port, proc=server.proc)
        port = free_port()
        tollgate.start(f"""binds:
- port: {port}
  listeners:
  - routes:
    - backends: [{{mcp: {{targets: [{{name: r, mcp: {{host: "http://127.0.0.1:{target_port}/mcp"}}}}]}}}}]
""", ports=[port])
        logs = []

        async def on_log(params):
            logs.append(params.data)

        async def run():
            async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp"), mode="legacy",
                              logging_callback=on_log) as c:
                return await c.call_tool("slow_report", {"steps": 4})

        result = asyncio.run(asyncio.wait_for(run(), 30))
        assert not result.is_error, result
        assert result.content[0].text == "done after 4 steps"
        assert logs == ["step 1", "step 2", "step 3", "step 4"], logs
        resumed = [l for l in requests_log.read_text().splitlines() if l.startswith("GET ") and "last-event-id=" in l
                   and not l.endswith("last-event-id=")]
        assert resumed, requests_log.read_text()
    finally:
        server.stop()
