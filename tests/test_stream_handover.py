"""A streamed answer after its header: the gateway moves the rest of the body from the upstream
to the client in one loop (issue 14). What a user sees must not change: every event arrives
once and in order, both connections are kept for the next request, and a client that hangs up
mid-stream frees the upstream at once. (An upstream dying mid-stream: test_upstream_errors.py.)"""
import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from fake_http import end_chunked, read_body, start_chunked
from test_upstream_errors import serve_llm


class PacedSse:
    """An OpenAI-style upstream that streams `events` chunks, one every `pace` seconds (after
    chunk `stall_after`, `stall` seconds of silence, as a model thinking), and records its
    connections, the requests on each, and when it found the gateway gone (a failed write, or
    the connection closed during the silence)."""

    def __init__(self, events: int, pace: float, stall_after: int = -1, stall: float = 0):
        self.events, self.pace = events, pace
        self.stall_after, self.stall = stall_after, stall
        self.connections = 0
        self.requests = 0
        self.gone_at = None
        self.finished = 0
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                upstream.connections += 1

            def log_message(self, *args):
                pass

            def do_POST(self):
                read_body(self)
                upstream.requests += 1
                send = start_chunked(self, 200, "text/event-stream")
                try:
                    for i in range(upstream.events):
                        chunk = {"id": "c", "object": "chat.completion.chunk", "model": "mock-model",
                                 "choices": [{"index": 0, "delta": {"content": f"<{i}>"}}]}
                        send(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                        time.sleep(upstream.pace)
                        if i == upstream.stall_after and self.gateway_left_during(upstream.stall):
                            upstream.gone_at = time.monotonic()
                            self.close_connection = True
                            return
                    usage = {"id": "c", "object": "chat.completion.chunk", "model": "mock-model", "choices": [],
                             "usage": {"prompt_tokens": 3, "completion_tokens": upstream.events, "total_tokens": 3 + upstream.events}}
                    send(b"data: " + json.dumps(usage).encode() + b"\n\n")
                    send(b"data: [DONE]\n\n")
                    end_chunked(self)
                    self.wfile.flush()
                    upstream.finished += 1
                except OSError:
                    upstream.gone_at = time.monotonic()
                    self.close_connection = True

            def gateway_left_during(self, seconds: float) -> bool:
                end = time.monotonic() + seconds
                while time.monotonic() < end:
                    readable, _, _ = select.select([self.connection], [], [], 0.02)
                    if readable and self.connection.recv(1, socket.MSG_PEEK) == b"":
                        return True
                return False

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def serve(tollgate, upstream: PacedSse) -> str:
    # A request deadline far past every stream here: only the client's leaving ends one early.
    return serve_llm(tollgate, f"127.0.0.1:{upstream.port}", timeout="60s")


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}


def contents(raw: str) -> list:
    out = []
    for event in raw.split("\n\n"):
        data = event.removeprefix("data: ").strip()
        if data and data != "[DONE]":
            out += [c["delta"].get("content") for c in json.loads(data)["choices"]]
    return out


def test_paced_streams_arrive_whole_and_both_connections_are_kept(tollgate):
    upstream = PacedSse(events=40, pace=0.01)
    try:
        url = serve(tollgate, upstream)
        with requests.Session() as client:
            for _ in range(3):
                r = client.post(url, json=BODY, stream=True, timeout=20)
                assert r.status_code == 200
                raw = b"".join(r.iter_content(None)).decode()
                assert contents(raw) == [f"<{i}>" for i in range(40)]
                assert raw.rstrip().endswith("data: [DONE]")
        # One client connection carried the three (a torn one would have made requests reconnect,
        # which it does silently: count on the upstream side), and one upstream connection too.
        assert upstream.requests == 3 and upstream.finished == 3
        assert upstream.connections == 1, f"upstream connection not reused: {upstream.connections}"
    finally:
        upstream.close()


def hang_up_after(url: str, events: int) -> float:
    """A raw client that reads `events` events of a stream and closes; returns when."""
    port = int(url.split(":")[2].split("/")[0])
    body = json.dumps(BODY).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    got = b""
    while got.count(b"data: ") < events:
        chunk = s.recv(65536)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200")
    s.close()
    return time.monotonic()


def wait_gone(upstream: PacedSse, closed: float) -> float:
    deadline = closed + 12
    while upstream.gone_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.gone_at is not None, "the gateway kept a stream nobody was reading"
    return upstream.gone_at - closed


def test_a_client_hanging_up_mid_stream_frees_the_upstream_at_once(tollgate):
    # 200 events 50 ms apart: 10 s if nobody stops it. The gateway's next write fails.
    upstream = PacedSse(events=200, pace=0.05)
    try:
        url = serve(tollgate, upstream)
        after = wait_gone(upstream, hang_up_after(url, 3))
        assert after < 2, after
        assert upstream.finished == 0
        # The gateway still serves.
        upstream.events, upstream.pace = 3, 0
        r = requests.post(url, json=BODY, timeout=10)
        assert contents(r.text) == ["<0>", "<1>", "<2>"]
    finally:
        upstream.close()


def test_a_client_hanging_up_while_the_model_thinks_frees_the_upstream_at_once(tollgate):
    # Three events, then 10 s of silence: nothing to write, so only watching the client's
    # connection tells the gateway it left.
    upstream = PacedSse(events=6, pace=0.01, stall_after=2, stall=10)
    try:
        url = serve(tollgate, upstream)
        after = wait_gone(upstream, hang_up_after(url, 3))
        assert after < 2, f"the upstream was released {after:.1f}s after the client left"
        assert upstream.finished == 0
    finally:
        upstream.close()
