"""What fails validation never reaches the provider: an empty or malformed completion body
is answered 400 by the gateway itself, before any connection (or credential) goes upstream."""
import json
import socket
import time

import requests

from conftest import serve_listeners
from hostile import closed_by_peer


def gateway(tollgate, llmock, settings="", **start) -> str:
    base = serve_listeners(tollgate, f"""\
  - routes:
    - policies:
        backendAuth: {{key: sk-provider-secret}}
      backends:
      - ai: {{name: l, hostOverride: "127.0.0.1:{llmock.port}", provider: {{openAI: {{model: pinned}}}}}}
""", settings, **start)
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


def completion_head(url, length, extra=""):
    host, port = url.split("//")[1].split("/")[0].split(":")
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()
    return (host, int(port)), head


def read_answers(s, count):
    """`count` HTTP answers with Content-Length bodies, read off one connection."""
    data, answers = b"", []
    while len(answers) < count:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, (answers, data[:200])
            data += chunk
        head, data = data.split(b"\r\n\r\n", 1)
        length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
        while len(data) < length:
            chunk = s.recv(65536)
            assert chunk
            data += chunk
        answers.append((head.split(b" ")[1], json.loads(data[:length])))
        data = data[length:]
    return answers


def test_a_body_in_slow_pieces_is_read_whole_each_pause_under_the_body_timeout(tollgate, llmock):
    # The body timeout bounds each pause, not the whole body: five pieces 0.6 s apart (3 s in
    # all) against a 1 s timeout arrive whole and are rewritten.
    url = gateway(tollgate, llmock, args=["--body-timeout", "1s"])
    body = json.dumps({"model": "client", "messages": [{"role": "user", "content": "y" * 200_000}]}).encode()
    addr, head = completion_head(url, len(body), "Connection: close\r\n")
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(head + body[:10])
        step = len(body) // 5 + 1
        for i in range(10, len(body), step):
            time.sleep(0.6)
            s.sendall(body[i:i + step])
        [(status, answer)] = read_answers(s, 1)
    assert status == b"200", answer
    seen = llmock.journal()[-1]
    assert seen["model"] == "pinned" and seen["body"]["messages"][0]["content"] == "y" * 200_000


def test_a_stalled_or_cut_body_reaches_no_provider(tollgate, llmock):
    url = gateway(tollgate, llmock, args=["--body-timeout", "1s"])
    before = len(llmock.journal())
    addr, head = completion_head(url, 100_000)
    # Stalled half way: the connection is cut by the body timeout.
    with socket.create_connection(addr) as s:
        s.sendall(head + b'{"model":"client","messages":[' + b" " * 40_000)
        start = time.monotonic()
        assert closed_by_peer(s, 4)
        assert time.monotonic() - start < 3
    # Closed half way: nothing goes upstream.
    with socket.create_connection(addr) as s:
        s.sendall(head + b'{"model":"client","messages":[' + b" " * 40_000)
        s.shutdown(socket.SHUT_WR)
        assert closed_by_peer(s, 4)
    time.sleep(0.2)
    assert len(llmock.journal()) == before, "a partial body reached the provider"



def test_a_large_streamed_body_goes_with_the_model_and_usage_request_in_place(tollgate, llmock):
    # A body past 64 KiB goes upstream as slices of the client's bytes around the new values:
    # the provider must still get one JSON document, its length declared, values intact.
    url = gateway(tollgate, llmock)
    content = "z\\u00e9\u65e5" * 15_000  # 195 KB as JSON: llmock journals bodies up to 256 KiB
    body = {"model": "client", "messages": [{"role": "user", "content": content}], "stream": True, "temperature": 0.5}
    r = requests.post(url, json=body, stream=True, timeout=20)
    assert r.status_code == 200, r.text
    text = r.text
    assert text.rstrip().endswith("data: [DONE]"), text[-200:]
    chunks = [json.loads(l[6:]) for l in text.splitlines() if l.startswith("data: {")]
    assert chunks and all(c.get("usage") is None for c in chunks), "the usage chunk the gateway asked for reached the client"
    seen = llmock.journal()[-1]["body"]
    assert seen["model"] == "pinned"
    assert seen["stream_options"] == {"include_usage": True}
    assert seen["messages"][0]["content"] == content and seen["temperature"] == 0.5


def test_a_large_body_is_logged_as_the_client_sent_it(tollgate, llmock):
    url = gateway(tollgate, llmock, settings="""\
config:
  logging:
    format: json
    fields:
      add:
        request.body: request.body
""")
    body = {"model": "client", "messages": [{"role": "user", "content": "w" * 100_000}]}
    r = requests.post(url, json=body, timeout=20)
    assert r.status_code == 200, r.text
    assert llmock.journal()[-1]["body"]["model"] == "pinned"
    deadline = time.time() + 5
    while True:
        logged = [json.loads(l) for l in tollgate.procs[-1].output().splitlines() if l.startswith("{") and '"request.body"' in l]
        if logged or time.time() > deadline:
            break
        time.sleep(0.05)
    assert json.loads(logged[-1]["request.body"]) == body


def test_large_non_ascii_prompts_pass_whole_and_broken_utf8_inside_them_is_refused(tollgate, llmock):
    # The body scan goes through multi-byte characters in vector steps and checks each string
    # as UTF-8 once at its end: text in Chinese with quotes and newlines arrives as sent; a
    # character cut deep inside such a string, or a stray byte, is a 400 before the provider.
    url = gateway(tollgate, llmock)
    line = '敏捷的棕色狐狸说"跳"，然后写下了笔记。\n'
    text = line * 3000  # ~100 KB of UTF-8 (the provider's journal keeps bodies up to 256 KiB)
    r = requests.post(url, data=json.dumps({"model": "client", "messages": [{"role": "user", "content": text}]}, ensure_ascii=False).encode(),
                      headers={"content-type": "application/json"}, timeout=20)
    assert r.status_code == 200, r.text
    seen = llmock.journal()[-1]
    assert seen["model"] == "pinned"
    assert seen["body"]["messages"][0]["content"] == text
    before = len(llmock.journal())
    good = json.dumps({"model": "client", "messages": [{"role": "user", "content": text}]}, ensure_ascii=False).encode()
    cut = good.index("笔记".encode()) + 1  # inside a three-byte character, ~40 bytes into the text
    for broken in [good[:cut] + good[cut + 1:],                      # a character with a byte missing
                   good[:len(good) // 2] + b"\xff" + good[len(good) // 2:],  # a stray byte mid-prompt
                   good[:-40] + b"\xe6\x95" + good[-40:]]:         # a truncated one near the end
        r = requests.post(url, data=broken, headers={"content-type": "application/json"}, timeout=20)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "invalid_request_error"
    assert len(llmock.journal()) == before, "a body with broken UTF-8 reached the provider"
