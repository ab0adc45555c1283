"""What fails validation never reaches the provider: an empty or malformed completion body
is answered 400 by the gateway itself, before any connection (or credential) goes upstream."""
import json
import socket

import requests

from conftest import serve_listeners


def gateway(tollgate, llmock) -> str:
    base = serve_listeners(tollgate, f"""\
  - routes:
    - policies:
        backendAuth: {{key: sk-provider-secret}}
      backends:
      - ai: {{name: l, hostOverride: "127.0.0.1:{llmock.port}", provider: {{openAI: {{model: pinned}}}}}}
""")
    return f"{base}/v1/chat/completions"


def test_invalid_completion_bodies_are_refused_before_the_provider(tollgate, llmock):
    url = gateway(tollgate, llmock)
    before = len(llmock.journal())
    for body in [b"", b"{", b"[1, 2]", b'{"model": 5, "messages": []}', b'{"stream": "yes"}', b"\xff\xfe",
                 b'{"messages": [' + b'{"role":"user","content":"x"},' * 1000 + b"}"]:
        r = requests.post(url, data=body, headers={"content-type": "application/json"}, timeout=10)
        assert r.status_code == 400, (body[:40], r.status_code, r.text)
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert "sk-provider-secret" not in r.text
    assert len(llmock.journal()) == before, "an invalid body reached the provider"


def test_valid_bodies_either_side_of_the_preread_limit_are_rewritten(tollgate, llmock):
    url = gateway(tollgate, llmock)
    for size in (100, 60 * 1024 - 200, 60 * 1024 + 200, 300 * 1024):
        body = {"model": "client", "messages": [{"role": "user", "content": "x" * size}]}
        r = requests.post(url, json=body, timeout=20)
        assert r.status_code == 200, (size, r.text)
        assert r.json()["model"] == "pinned"
        seen = llmock.journal()[-1]
        assert seen["model"] == "pinned"


def test_a_chunked_body_without_length_is_read_whole(tollgate, llmock):
    url = gateway(tollgate, llmock)
    body = json.dumps({"model": "client", "messages": [{"role": "user", "content": "x" * 300_000}]}).encode()
    chunks = (body[i:i + 10_000] for i in range(0, len(body), 10_000))  # a generator: sent chunked
    r = requests.post(url, data=chunks, headers={"content-type": "application/json"}, timeout=20)
    assert r.status_code == 200, r.text
    assert llmock.journal()[-1]["model"] == "pinned"


def test_expect_100_continue_is_answered_by_the_gateway(tollgate, llmock):
    url = gateway(tollgate, llmock)
    host, port = url.split("//")[1].split("/")[0].split(":")
    body = json.dumps({"model": "client", "messages": [{"role": "user", "content": "x" * 200_000}]}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100"), interim  # asked for the body before it is sent
        s.sendall(body)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert llmock.journal()[-1]["model"] == "pinned"
    # Over the limit: refused at once, no 100 Continue, no body wanted.
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {64 << 20}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(head)
        assert s.recv(4096).startswith(b"HTTP/1.1 413")
