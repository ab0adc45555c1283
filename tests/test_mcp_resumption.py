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


def sse_events(lines):
    """Parses SSE lines (an iterator of str) into dicts, one per event, as they arrive."""
    event = {}
    for line in lines:
        if line == "":
            if event:
                yield event
            event = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        event[field] = event.get(field, "") + ("\n" if field in event else "") + value


def test_client_that_drops_a_call_stream_resumes_it_with_last_event_id(tollgate, everything_server):
    """The client reads the start of a long call's event stream, drops the connection, and
    GETs the stream again with Last-Event-ID: it gets the progress it missed and the answer,
    with no gap in the event ids."""
    import json

    import requests

    from mcp_helpers import ACCEPT, RawSession

    port = free_port()
    tollgate.start(f"""binds:
- port: {port}
  listeners:
  - routes:
    - backends: [{{mcp: {{targets: [{{name: everything, mcp: {{host: "http://127.0.0.1:{everything_server}/mcp"}}}}]}}}}]
""", ports=[port])
    s = RawSession(f"http://127.0.0.1:{port}/mcp")
    s.initialize()
    call = {"jsonrpc": "2.0", "id": 77, "method": "tools/call",
            "params": {"name": "trigger-long-running-operation", "arguments": {"duration": 2, "steps": 5},
                       "_meta": {"progressToken": "p1"}}}
    r = requests.post(s.url, data=json.dumps(call), headers=s.headers(), stream=True, timeout=20)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    seen = []
    for e in sse_events(r.iter_lines(decode_unicode=True)):
        seen.append(e)
        if "progress" in e.get("data", ""):
            break  # drop the stream after the first progress notification
    r.close()
    assert seen[0].get("data", "") == "" and "id" in seen[0], seen  # the priming event
    last = seen[-1]["id"]
    stream, seq = last.split("-")

    g = requests.get(s.url, headers=dict(s.headers(), **{"Last-Event-ID": last, "Accept": "text/event-stream"}),
                     stream=True, timeout=20)
    assert g.status_code == 200
    rest = list(sse_events(g.iter_lines(decode_unicode=True)))  # ends when the call has been answered
    ids = [e["id"] for e in rest]
    assert ids == [f"{stream}-{int(seq) + 1 + i}" for i in range(len(ids))], ids
    messages = [json.loads(e["data"]) for e in rest]
    progress = [m for m in messages if m.get("method") == "notifications/progress"]
    assert progress, messages
    answer = messages[-1]
    assert answer["id"] == 77 and "result" in answer, answer
    assert "Long running operation completed" in json.dumps(answer["result"]), answer
    # The session carries on.
    assert "result" in s.call("tools/call", {"name": "echo", "arguments": {"message": "still here"}})
