"""A Streamable HTTP target's answer reaches the client as the target wrote it: the gateway
routes the request but does not rebuild a tool's result (key order, number text, escapes and
whitespace stay, megabytes included). Answers it must look into keep their old handling: an
error is still recorded in the access log, and a body that is not one plain JSON-RPC response
(duplicate keys, an array, a null result) is read the way the rest of the gateway reads it.

The target is a few lines of standard library, not an SDK server: the test needs to choose the
exact bytes of each answer, which no SDK lets a tool do."""
import asyncio
import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mcp import Client, MCPError
from mcp.client.sse import sse_client

from conftest import free_port
from fake_http import read_body, send_bytes
from mcp_helpers import RawSession

BIG = "x" * (4 * 1024 * 1024)

# What each tool answers, `%s` standing for the request's id, exactly as sent.
ANSWERS = {
    "layout": '{"result": {"zeta": 1, "alpha": "\\u00e9\\n", "n": 1.50, "big": 123456789012345678901234567890},\n  "jsonrpc": "2.0", "id": %s}\n',
    "big": '{"jsonrpc":"2.0","id":%s,"result":{"content":[{"type":"text","text":"' + BIG + '"}]}}',
    "failing": '{"jsonrpc": "2.0", "id": %s, "error": {"code": -32042, "message": "quota used up"}}',
    "twice": '{"jsonrpc": "2.0", "id": %s, "result": {"first": true}, "result": {"second": true}}',
    "array": '[{"jsonrpc": "2.0", "id": %s, "result": {}}]',
    "null": '{"jsonrpc": "2.0", "id": %s, "result": null}',
    "not-utf8": b'{"jsonrpc": "2.0", "id": %s, "result": {"content": [{"type": "text", "text": "\xff\xfe"}]}}',
    # Kept as sent by the check, refused by a full parse (a lone surrogate escape).
    "surrogate": '{"jsonrpc": "2.0", "id": %s, "result": {"content": [{"type": "text", "text": "\\ud800"}]}}',
    "hello": '{"jsonrpc": "2.0", "id": %s, "result": {"content": [{"type": "text", "text": "hi"}]}}',
    "smuggle": '{"jsonrpc": "2.0", "id": %s, "result": {}}\r\n\r\nHTTP/1.1 200 OK\r\n\r\n{"x": 1}',
}


# (method, headers) of every message the target got.
SEEN = []


class Target(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        msg = json.loads(read_body(self))
        SEEN.append((msg.get("method"), self.headers))
        if "id" not in msg:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rid = json.dumps(msg["id"])
        if msg["method"] == "initialize":
            result = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}}, "serverInfo": {"name": "bytes", "version": "1"}}
            send_bytes(self, 200, json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": result}).encode(), [("Mcp-Session-Id", "target-session")])
        elif msg["method"] == "tools/call":
            answer = ANSWERS[msg["params"]["name"]]
            send_bytes(self, 200, answer.replace(b"%s", rid.encode()) if isinstance(answer, bytes) else (answer % rid).encode())
        else:
            send_bytes(self, 200, json.dumps({"jsonrpc": "2.0", "id": msg["id"], "error": {"code": -32601, "message": "no"}}).encode())


@pytest.fixture
def bytes_target(tollgate):
    """(gateway process, an initialized session) in front of a `Target`."""
    target = ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    port = free_port()
    proc = tollgate.start(f"""binds:
- port: {port}
  listeners:
  - routes:
    - backends: [{{mcp: {{targets: [{{name: bytes, mcp: {{host: "http://127.0.0.1:{target.server_port}/mcp"}}}}]}}}}]
""", ports=[port])
    session = RawSession(f"http://127.0.0.1:{port}/mcp", timeout=30)
    session.initialize()
    yield proc, session
    target.shutdown()


def call(session, name):
    rid = session.next_id
    r = session.request("tools/call", {"name": name, "arguments": {}})
    assert r.status_code == 200, (r.status_code, r.text[:300])
    return rid, r


def test_a_tool_result_reaches_the_client_byte_for_byte(bytes_target):
    _, session = bytes_target
    for name in ("layout", "big"):
        rid, r = call(session, name)
        assert r.headers["content-type"] == "application/json"
        assert r.content == (ANSWERS[name] % rid).encode(), r.content[:200]
        assert int(r.headers["content-length"]) == len(r.content)
    # The session goes on as before.
    rid, r = call(session, "layout")
    assert r.json()["id"] == rid and r.json()["result"]["alpha"] == "\u00e9\n"


def test_answers_that_are_not_plain_results_keep_their_handling(bytes_target):
    proc, session = bytes_target
    _, r = call(session, "failing")
    assert r.json()["error"] == {"code": -32042, "message": "quota used up"}
    deadline = time.time() + 5
    while time.time() < deadline and "mcp.error.code=-32042" not in proc.output():
        time.sleep(0.1)
    line = [l for l in proc.output().splitlines() if "gen_ai.tool.name=failing" in l]
    assert line and "mcp.error.code=-32042" in line[-1], line

    # The gateway reads a duplicated key as its last occurrence, and says so to the client.
    rid, r = call(session, "twice")
    assert r.json() == {"jsonrpc": "2.0", "id": rid, "result": {"second": True}}, r.text
    assert r.text.count('"result"') == 1

    for name in ("array", "not-utf8"):
        _, r = call(session, name)
        err = r.json()["error"]
        assert "not a JSON-RPC response" in err["message"], (name, err)

    rid, r = call(session, "null")
    assert r.json() == {"jsonrpc": "2.0", "id": rid, "result": None}, r.text


def test_a_target_answer_cannot_smuggle_a_second_response(bytes_target):
    """Whatever the target writes after its JSON is not passed on: the body must be one value."""
    _, session = bytes_target
    _, r = call(session, "smuggle")
    assert "error" in r.json() and "HTTP/1.1" not in r.text, r.text
    rid, r = call(session, "layout")
    assert r.content == (ANSWERS["layout"] % rid).encode()


def test_client_headers_reach_the_target_but_not_its_hop_and_transport_headers(bytes_target):
    _, session = bytes_target
    extra = [("X-Tenant", "t1"), ("X-Multi", "one"), ("X-Multi", "two"), ("TE", "trailers"),
             ("Upgrade", "h2c"), ("Connection", "keep-alive, Upgrade"), ("Origin", "http://127.0.0.1"),
             ("Last-Event-ID", "7"), ("Accept-Encoding", "gzip")]
    conn = http.client.HTTPConnection("127.0.0.1", int(session.url.split(":")[2].split("/")[0]), timeout=10)
    body = json.dumps({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {"name": "layout", "arguments": {}}})
    conn.putrequest("POST", "/mcp", skip_accept_encoding=True)
    for k, v in list(session.headers().items()) + extra + [("Content-Length", str(len(body)))]:
        conn.putheader(k, v)
    conn.endheaders(body.encode())
    r = conn.getresponse()
    assert r.status == 200 and json.loads(r.read())["id"] == 99
    method, seen = SEEN[-1]
    assert method == "tools/call"
    assert seen["x-tenant"] == "t1" and seen.get_all("x-multi") == ["one", "two"], dict(seen)
    for hop in ("te", "upgrade", "origin", "last-event-id", "accept-encoding"):
        assert hop not in seen, (hop, dict(seen))
    assert seen.get_all("content-type") == ["application/json"] and len(seen.get_all("host")) == 1, dict(seen)
    assert seen["mcp-session-id"] == "target-session", "the target gets its own session id, not the client's"


def test_a_legacy_sse_client_gets_an_answer_it_can_match_whatever_the_target_sent(bytes_target):
    """The legacy SSE front parses every answer to send it as an event (it asks for no verbatim
    answers): one a full parse refuses (a lone surrogate escape) still answers the client's
    request with an error carrying its id, and the session goes on."""
    _, session = bytes_target
    url = session.url.rsplit("/", 1)[0] + "/sse"

    async def use():
        async with Client(sse_client(url)) as c:
            with pytest.raises(MCPError) as err:
                await asyncio.wait_for(c.call_tool("surrogate", {}), 15)
            assert "not a JSON-RPC response" in err.value.error.message, err.value.error
            return await asyncio.wait_for(c.call_tool("hello", {}), 15)

    assert asyncio.run(use()).content[0].text == "hi"
