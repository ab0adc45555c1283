"""HTTP/1.1 pipelining (RFC 9112 §9.3.2), as agentgateway's HTTP stack serves it: requests a
client sends back to back on one connection, before reading any answer, are each answered, in
order, whether they arrived in one packet with the first, while the first was being answered,
or a head split across writes. Raw sockets, since no common client library pipelines."""
import http.client
import json
import socket
import time

from conftest import serve_listeners


class _Sock:
    """Lets http.client read several responses from one buffered reader (which it would
    close after the first)."""

    def __init__(self, reader):
        self.reader = reader

    def makefile(self, *args, **kwargs):
        return self

    def __getattr__(self, name):
        return getattr(self.reader, name)

    def close(self):
        pass


def read_responses(s: socket.socket, count: int) -> list[tuple[int, bytes]]:
    reader = s.makefile("rb")
    out = []
    for _ in range(count):
        r = http.client.HTTPResponse(_Sock(reader))
        r.begin()
        out.append((r.status, r.read()))
    return out


def gateway(tollgate, llmock, **start) -> int:
    base = serve_listeners(tollgate, f"""\
  - routes:
    - matches: [{{path: {{exact: /healthz}}}}]
      policies: {{directResponse: {{status: 200, body: ok}}}}
    - backends:
      - ai: {{name: l, hostOverride: "127.0.0.1:{llmock.port}", provider: {{openAI: {{model: pinned}}}}}}
""", **start)
    return int(base.rsplit(":", 1)[1])


def completion(text: str, size: int = 0) -> bytes:
    body = json.dumps({"model": "client", "messages": [{"role": "user", "content": text + "x" * size}]}).encode()
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)) + body


HEALTH = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"


def test_requests_sent_in_one_write_are_all_answered_in_order(tollgate, llmock):
    port = gateway(tollgate, llmock)
    before = len(llmock.journal())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        # A body-less request, two completions with bodies (one past the 64 KiB preread), another GET.
        s.sendall(HEALTH + completion("first") + completion("second", 100_000) + HEALTH)
        answers = read_responses(s, 4)
    assert [status for status, _ in answers] == [200, 200, 200, 200], answers
    assert answers[0][1] == b"ok" and answers[3][1] == b"ok"
    assert json.loads(answers[1][1])["model"] == "pinned" and json.loads(answers[2][1])["choices"]
    sent = [e["body"]["messages"][0]["content"] for e in llmock.journal()[before:]]
    assert sent == ["first", "second" + "x" * 100_000], "each pipelined body reached the provider whole, in order"


def test_a_request_sent_while_the_first_is_answered_is_served_next(tollgate, llmock):
    port = gateway(tollgate, llmock)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(completion("first"))
        time.sleep(0.01)  # the first is in flight (or done) when the second arrives
        s.sendall(HEALTH)
        answers = read_responses(s, 2)
        assert [status for status, _ in answers] == [200, 200] and answers[1][1] == b"ok", answers
        # The connection stays usable afterwards.
        s.sendall(HEALTH)
        assert read_responses(s, 1) == [(200, b"ok")]


def test_a_pipelined_head_split_across_writes_is_completed_then_served(tollgate, llmock):
    port = gateway(tollgate, llmock)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(HEALTH + HEALTH[:10])
        first = read_responses(s, 1)
        time.sleep(0.2)
        s.sendall(HEALTH[10:])
        assert first + read_responses(s, 1) == [(200, b"ok"), (200, b"ok")]


def test_garbage_after_a_request_gets_the_answer_then_a_400(tollgate, llmock):
    port = gateway(tollgate, llmock)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(HEALTH + b"\x00\x01 not http\r\n\r\n")
        answers = read_responses(s, 2)
    assert answers[0] == (200, b"ok") and answers[1][0] == 400, answers


def test_a_pipelined_head_that_never_completes_gets_408_at_the_header_deadline(tollgate, llmock):
    port = gateway(tollgate, llmock, args=["--header-timeout", "1s"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(HEALTH + HEALTH[:10])
        start = time.monotonic()
        answers = read_responses(s, 2)
        assert answers[0] == (200, b"ok") and answers[1][0] == 408, answers
        assert 0.8 < time.monotonic() - start < 3


def test_nothing_after_connection_close_is_served(tollgate, llmock):
    port = gateway(tollgate, llmock)
    before = len(llmock.journal())
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(HEALTH.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + completion("after close"))
        reader = s.makefile("rb")
        first = http.client.HTTPResponse(_Sock(reader))
        first.begin()
        assert (first.status, first.read()) == (200, b"ok")
        assert reader.read() == b"", "the connection closes after the answer"
    time.sleep(0.2)
    assert len(llmock.journal()) == before, "a request after `Connection: close` reached the provider"
