"""`timeout.requestTimeout` bounds the whole exchange: an upstream that trickles its answer,
or a client that trickles its body, is cut at the deadline with a proper error."""
import json
import socket
import time

import pytest
import requests

from conftest import free_port, serve_listeners
from hostile import PacedLlm, status_of

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def paced():
    p = PacedLlm(stall=10, gap=0.5, total=10)
    yield p
    p.close()


def llm_gateway(tollgate, upstream_port: int, timeout="2s") -> str:
    base = serve_listeners(tollgate, f"""\
  - routes:
    - policies:
        timeout: {{requestTimeout: {timeout}}}
      backends:
      - ai:
          name: paced
          hostOverride: 127.0.0.1:{upstream_port}
          provider: {{openAI: {{}}}}
""")
    return f"{base}/v1/chat/completions"


def test_non_streaming_answer_past_the_deadline_gets_504_json(tollgate, paced):
    url = llm_gateway(tollgate, paced.port)
    start = time.monotonic()
    r = requests.post(url, json=BODY, timeout=15)
    elapsed = time.monotonic() - start
    assert r.status_code == 504, r.text
    assert r.json()["error"]["type"] in ("request_timeout", "upstream_timeout")
    assert 1.8 <= elapsed <= 3.0, elapsed
    assert "127.0.0.1" not in r.text, "client errors must not name internal addresses"


def test_paced_stream_ends_with_an_error_event_at_the_deadline(tollgate, paced):
    url = llm_gateway(tollgate, paced.port)
    start = time.monotonic()
    r = requests.post(url, json=dict(BODY, stream=True), stream=True, timeout=15)
    assert r.status_code == 200
    raw = b"".join(r.iter_content(None))  # a torn stream would raise here
    elapsed = time.monotonic() - start
    events = [e for e in raw.decode().split("\n\n") if e.strip()]
    assert len(events) >= 2, events
    last = json.loads(events[-1].removeprefix("data: "))
    assert last["error"]["code"] == "504", last
    assert 1.8 <= elapsed <= 3.0, elapsed
    log = tollgate.procs[-1].output()
    for _ in range(20):
        if "request timeout" in log:
            break
        time.sleep(0.1)
        log = tollgate.procs[-1].output()
    assert "request timeout" in log, "the access log records the timeout"


def test_trickled_mcp_body_is_cut_at_the_route_deadline(tollgate):
    target = free_port()  # nothing listens: the body never completes, so no target is contacted
    base = serve_listeners(tollgate, f"""\
  - routes:
    - policies:
        timeout: {{requestTimeout: 1s}}
      backends:
      - mcp:
          targets:
          - name: t
            mcp: {{host: "http://127.0.0.1:{target}/mcp"}}
""")
    port = int(base.rsplit(":", 1)[1])
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /mcp HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
              b"Accept: application/json, text/event-stream\r\nContent-Length: 200\r\n\r\n{")
    start = time.monotonic()
    s.settimeout(0.3)
    out = b""
    while time.monotonic() - start < 5:
        try:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
        except socket.timeout:
            try:
                s.sendall(b" ")
            except OSError:
                break
    elapsed = time.monotonic() - start
    assert status_of(out) == 504, out
    assert elapsed < 2.5, elapsed


def test_max_buffer_size_bounds_a_buffered_llm_body(tollgate, llmock):
    base = serve_listeners(tollgate, f"""\
  - routes:
    - backends:
      - ai: {{name: l, hostOverride: "127.0.0.1:{llmock.port}", provider: {{openAI: {{}}}}}}
""", settings="frontendPolicies:\n  http:\n    maxBufferSize: 4096\n")
    small = dict(BODY, messages=[{"role": "user", "content": "x" * 1000}])
    big = dict(BODY, messages=[{"role": "user", "content": "x" * 5000}])
    assert requests.post(f"{base}/v1/chat/completions", json=small, timeout=10).status_code == 200
    before = len(llmock.journal())
    r = requests.post(f"{base}/v1/chat/completions", json=big, timeout=10)
    assert r.status_code == 413, r.text
    assert len(llmock.journal()) == before
