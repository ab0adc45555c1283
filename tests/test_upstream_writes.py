"""How tollgate writes a request to its upstream: a body it already holds goes out in the same
write as the head (one segment, one wake-up of the upstream), and a body it does not hold yet
does not hold the head back (an upstream that answers `100 Continue` gets the head at once)."""
import http.client
import json
import socket
import subprocess
import time

import pytest
import requests

from conftest import BIN, serve_listeners
from tls_helpers import _Server

COMPLETION = json.dumps({
    "id": "c1", "object": "chat.completion", "created": 1, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}).encode()


class RawUpstream(_Server):
    """An HTTP/1.1 upstream on a raw socket that records, for each request, what its first
    read returned. `continue_first`: answer `100 Continue` once the head is in, before the body.
    `close`: answer with `Connection: close` but leave the socket open, so only a client that
    honours the header opens a new connection for its next request."""

    def __init__(self, continue_first=False, close=False):
        self.connections = 0
        self.say_close = close
        self.first_reads, self.bodies = [], []
        self.continue_first = continue_first
        super().__init__()

    def _handle(self, conn):
        self.connections += 1
        self._connection(conn)

    def _connection(self, conn):
        conn.settimeout(10)
        buf = b""
        with conn:
            while True:
                first = conn.recv(65536)
                if not first:
                    return
                self.first_reads.append(first)
                buf += first
                while b"\r\n\r\n" not in buf:
                    buf += conn.recv(65536)
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
                if self.continue_first and b"100-continue" in head.lower():
                    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                while len(buf) < length:
                    buf += conn.recv(65536)
                self.bodies.append(buf[:length])
                buf = buf[length:]
                close = b"Connection: close\r\n" if self.say_close else b""
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + close
                             + f"Content-Length: {len(COMPLETION)}\r\n\r\n".encode() + COMPLETION)

    def close(self):
        self.sock.close()


def plain_route_to(tollgate, up, settings=""):
    """Starts tollgate with one plain route to `up`; returns (host, port) of its listener."""
    base = serve_listeners(tollgate, f"""\
  - routes:
    - backends:
      - host: 127.0.0.1:{up.port}
""", settings=settings)
    host, port = base.split("//")[1].split(":")
    return host, int(port)


@pytest.mark.parametrize("close", [False, True], ids=["kept-alive", "connection-close"])
def test_an_llm_request_reaches_the_upstream_in_one_write(tollgate, close):
    """Also: the upstream connection is reused unless the upstream's answer says `Connection:
    close` (what the session keeps of a response header it hands to the proxy)."""
    up = RawUpstream(close=close)
    base = serve_listeners(tollgate, f"""\
  - routes:
    - backends:
      - ai:
          name: raw
          hostOverride: 127.0.0.1:{up.port}
          provider: {{openAI: {{model: rewritten}}}}
""")
    for i in range(5):
        # Pingora hands the upstream connection back to its pool just after the last byte
        # reaches the client, so a client that sends its next request on a new connection at
        # once can race that hand-back (and then a second connection opens, which is harmless).
        # The pause makes the test about reuse, not about that race.
        time.sleep(0.1 if i else 0)
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": f"hello {i} " + "x" * 2000}]})
        r = requests.post(f"{base}/v1/chat/completions", data=body, headers={"content-type": "application/json"}, timeout=10)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "hi"
    up.close()
    assert len(up.first_reads) == 5
    assert up.connections == (5 if close else 1)
    for first, body in zip(up.first_reads, up.bodies):
        sent = json.loads(body)
        assert sent["model"] == "rewritten"
        # The whole request (head and rewritten body) was there at the upstream's first read.
        assert first.endswith(body), first[:300]
        assert first.index(b"\r\n\r\n") + 4 + len(body) == len(first)


def test_a_streamed_body_does_not_hold_the_head_back(tollgate):
    """A plain route streams the body as the client sends it: with `Expect: 100-continue` the
    client waits for the upstream's `100 Continue`, which needs the head first."""
    up = RawUpstream(continue_first=True)
    host, port = plain_route_to(tollgate, up)
    body = b'{"streamed": "' + b"y" * 100_000 + b'"}'
    head = (f"POST /upload HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head)
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100"), interim  # the upstream asked, through tollgate
        s.sendall(body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    up.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert up.bodies == [body]


@pytest.mark.parametrize("setting", ["", "frontendPolicies:\n  http:\n    http1HeaderCase: lowercase\n"], ids=["default", "lowercase"])
def test_header_names_go_out_in_lowercase(tollgate, setting):
    """agentgateway's default (`http1HeaderCase: lowercase`, also accepted written out): HTTP/1
    header names are written in lowercase both ways, whatever case the client or the upstream used."""
    up = RawUpstream()
    host, port = plain_route_to(tollgate, up, setting)
    body = b'{"a": 1}'
    head = (f"POST /echo HTTP/1.1\r\nHost: {host}\r\nX-Trace-Tag: Mixed-Case-Value\r\nCONTENT-TYPE: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(head + body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    up.close()
    sent = b"".join(up.first_reads)
    sent_head = sent.split(b"\r\n\r\n")[0]
    assert b"\r\nx-trace-tag: Mixed-Case-Value" in sent_head, sent_head  # the value keeps its case
    assert b"\r\ncontent-type: application/json" in sent_head, sent_head
    assert b"X-Trace-Tag" not in sent_head and b"CONTENT-TYPE" not in sent_head, sent_head
    got_head = answer.split(b"\r\n\r\n")[0]
    assert got_head.startswith(b"HTTP/1.1 200"), got_head
    assert b"\r\ncontent-type: application/json" in got_head, got_head
    assert b"Content-Type" not in got_head and b"Content-Length" not in got_head, got_head


def test_preserving_header_case_is_refused_as_not_supported(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("frontendPolicies:\n  http:\n    http1HeaderCase: preserve\nbinds: []\n")
    p = subprocess.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "http1HeaderCase" in p.stdout + p.stderr and "not supported yet" in p.stdout + p.stderr, p.stdout + p.stderr


@pytest.mark.parametrize("name,value", [
    ("Keep-Alive", "timeout=5"), ("Proxy-Connection", "keep-alive"), ("TE", "trailers"), ("Trailer", "x-sum"),
    ("Proxy-Authorization", "Basic c2VjcmV0OnNlY3JldA=="), ("HTTP2-Settings", "AAMAAABkAAQAAP__"),
    ("Connection", "x-private"),
])
def test_a_hop_by_hop_field_alone_is_not_forwarded(tollgate, name, value):
    """Each standard hop-by-hop field, sent alone (no other such field to trigger the removal),
    stops at the gateway; an ordinary field goes on. A field the `Connection` header nominates
    is dropped with it."""
    up = RawUpstream()
    host, port = plain_route_to(tollgate, up)
    conn = http.client.HTTPConnection(host, port, timeout=10)  # sends no Connection field
    headers = {name: value, "X-Ordinary": "kept", "X-Private": "nominated", "Content-Type": "application/json"}
    conn.request("POST", "/echo", body=b'{"a": 1}', headers=headers)
    assert conn.getresponse().status == 200
    conn.close()
    up.close()
    sent_head = b"".join(up.first_reads).split(b"\r\n\r\n")[0].lower()
    assert b"\r\nx-ordinary: kept" in sent_head, sent_head
    assert b"\r\n" + name.lower().encode() + b":" not in sent_head, sent_head
    if name == "Connection":
        assert b"x-private" not in sent_head, sent_head
