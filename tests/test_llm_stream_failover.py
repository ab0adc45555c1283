"""Failover of a streamed answer that fails after its `200`: the connection drops before the
first event, the stream ends empty, the first event is slower than the read timeout, or the
first event is an error (Anthropic's `overloaded_error`, an OpenAI-compatible `error` chunk).
While another provider is left, tollgate holds the `200` back until the first bytes arrive, so
the client (the official SDKs) sees only the next provider's answer. Faults come from llmock's
stream faults, and from a small upstream that opens its stream with an error event."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import openai
import pytest

from conftest import free_port, post_expecting_continue, serve_listeners
from fake_http import end_chunked, read_body, start_chunked
from test_llm_failover import ask, backup, groups_config, log_lines, models_sent  # noqa: F401 (backup: the fixture)


class ErrorFirstStream:
    """An upstream that answers every request `200 text/event-stream` whose first event is
    `first` (then it ends the stream); counts the requests."""

    def __init__(self, first: bytes):
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                read_body(self)
                outer.hits += 1
                send = start_chunked(self, 200, "text/event-stream")
                send(first)
                time.sleep(0.2)
                end_chunked(self)

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


ANTHROPIC_OVERLOADED = b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
OPENAI_ERROR = b'data: {"error":{"message":"the server is busy","type":"server_error"}}\n\n'


@pytest.mark.parametrize("fault", [
    {"type": "stream_fault", "kind": "disconnect", "after_chunks": 0},
    {"type": "stream_fault", "kind": "truncate", "after_chunks": 0},
])
def test_a_stream_broken_before_its_first_event_fails_over_unseen(tollgate, llmock, backup, fault):
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port))
    llmock.scenario([fault])
    # Without the hold the client would have its 200 already, and then a broken stream.
    assert ask(base, stream=True), "no answer"
    assert len(llmock.journal()) == 1 and models_sent(backup) == ["secondary-model"], (llmock.journal(), backup.journal())
    lines = log_lines(tollgate, "gen_ai.request.model=")
    assert lines and "secondary" in lines[-1] and "primary:" in lines[-1], lines


def test_a_first_event_slower_than_the_read_timeout_fails_over(tollgate, llmock, backup):
    policies = "policies: {timeout: {backendRequestTimeout: 1s}}\n      "
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port, route_policies=policies))
    llmock.scenario([{"type": "slow_first_token", "seconds": 6}])
    started = time.monotonic()
    assert ask(base, stream=True)
    assert time.monotonic() - started < 5, "the slow provider's first token was waited for"
    assert models_sent(backup) == ["secondary-model"]
    assert "primary:timeout" in log_lines(tollgate, "gen_ai.request.model=")[-1]


def test_a_stream_that_begins_fine_is_not_held_back(tollgate, llmock, backup):
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port))
    chunks = []
    stream = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    for ch in stream:
        chunks.append(time.monotonic())
    # llmock paces its chunks 20 ms apart: they arrive one by one, not gathered.
    assert len(chunks) >= 3 and chunks[-1] - chunks[0] >= 0.03, chunks
    assert len(llmock.journal()) == 1 and backup.journal() == []


def test_an_anthropic_overloaded_first_event_fails_over(tollgate, backup):
    primary = ErrorFirstStream(ANTHROPIC_OVERLOADED)
    try:
        cfg = groups_config(primary.port, backup.port, primary_provider="anthropic: {model: claude-primary}")
        base = serve_listeners(tollgate, cfg)
        c = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
        with c.messages.stream(model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as s:
            text = "".join(s.text_stream)
        assert text and primary.hits == 1 and models_sent(backup) == ["secondary-model"]
        assert "primary:529" in log_lines(tollgate, "gen_ai.request.model=")[-1]
    finally:
        primary.close()


def test_an_error_chunk_first_fails_over_and_the_last_provider_s_error_reaches_the_client(tollgate):
    first, second = ErrorFirstStream(OPENAI_ERROR), ErrorFirstStream(OPENAI_ERROR)
    try:
        base = serve_listeners(tollgate, groups_config(first.port, second.port))
        with pytest.raises(openai.APIError) as e:
            ask(base, stream=True)
        # The first provider's error was dropped unseen; the last one's is the answer.
        assert first.hits == 1 and second.hits == 1
        assert "busy" in str(e.value)
        assert "primary:502" in log_lines(tollgate, "gen_ai.request.model=")[-1]
    finally:
        first.close()
        second.close()


def test_a_client_error_event_is_not_failed_over(tollgate, backup):
    bad = ErrorFirstStream(b'data: {"error":{"message":"no such tool","type":"invalid_request_error"}}\n\n')
    try:
        base = serve_listeners(tollgate, groups_config(bad.port, backup.port))
        with pytest.raises(openai.APIError):
            ask(base, stream=True)
        assert bad.hits == 1 and backup.journal() == []
    finally:
        bad.close()


def test_a_client_that_sends_expect_100_continue_still_gets_failover_unseen(tollgate, llmock, backup):
    # curl sends `Expect: 100-continue` for large bodies: the `100 Continue` the gateway sends
    # before reading the body is not the answer's header, so the `200` is still held back.
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port))
    llmock.scenario([{"type": "stream_fault", "kind": "disconnect", "after_chunks": 0}])
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
    answer = post_expecting_continue(int(base.rsplit(":", 1)[1]), "/v1/chat/completions", body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b"data: [DONE]" in answer and b'"content"' in answer, answer[-300:]
    assert len(llmock.journal()) == 1 and models_sent(backup) == ["secondary-model"], (llmock.journal(), backup.journal())
