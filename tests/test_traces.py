"""OTLP traces from the seed config: the span reaches a real receiver over gRPC and HTTP with
the seed's attributes, continues the client's trace, and a dead collector costs nothing."""
import json
import socket
import sys
import time

import openai
import pytest
import requests

from conftest import ROOT, SEED, OtlpReceiver, Proc, free_port, needs_netns, seed_with_local_hosts, wait_port

BASE = "http://127.0.0.1:3100/compatible-mode/v1"
PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def ask(headers=None):
    c = openai.OpenAI(base_url=BASE, api_key="x", max_retries=0, default_headers=headers or {})
    return c.chat.completions.create(model="any-model-name", temperature=0.5,
                                     messages=[{"role": "user", "content": "Hello!"}])


@pytest.mark.parametrize("http", [False, True], ids=["grpc", "http"])
def test_span_has_seed_attributes(tollgate, provider_front, llmock, otlp_receiver, http):
    nginx, ca = provider_front
    port = otlp_receiver.http_port if http else otlp_receiver.grpc_port
    tollgate.start(seed_with_local_hosts(nginx.port, ca, otlp_port=port, otlp_http=http), ports=[3100])
    r = ask()
    spans = otlp_receiver.spans()
    assert spans, "no span exported"
    s = spans[-1]
    assert s["via"] == ("http" if http else "grpc")
    assert s["service"] == "tollgate"
    assert s["name"] == "openai.chat"
    a = s["attributes"]
    assert a["llm.system"] == "openai"
    assert a["llm.params.temperature"] == 0.5
    assert a["llm.input_messages.0.message.role"] == "user"
    assert a["llm.input_messages.0.message.content"] == "Hello!"
    assert a["llm.output_messages.0.content"] == r.choices[0].message.content
    assert a["gen_ai.request.model"] == "any-model-name"
    assert a["gen_ai.response.model"] == "qwen-plus"
    assert a["gen_ai.usage.output_tokens"] == r.usage.completion_tokens
    assert a["gen_ai.operation.name"] == "chat"
    # A structured field (the header map) is its JSON text, secrets redacted.
    headers = json.loads(a["request.headers"])
    assert headers["content-type"] == "application/json" and headers["authorization"] == "<redacted>", headers
    assert "sk-abc" not in str(spans)


def test_client_traceparent_is_the_parent_and_propagates(tollgate, provider_front, llmock, otlp_receiver):
    nginx, ca = provider_front
    tollgate.start(seed_with_local_hosts(nginx.port, ca, otlp_port=otlp_receiver.grpc_port), ports=[3100])
    ask({"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"})
    s = otlp_receiver.spans()[-1]
    assert s["trace_id"] == PARENT_TRACE
    assert s["parent_span_id"] == PARENT_SPAN
    upstream = nginx.entries()[-1]["traceparent"]
    assert upstream == f"00-{PARENT_TRACE}-{s['span_id']}-01"


@needs_netns
def test_unresolvable_collector_costs_nothing(tollgate, provider_front, llmock):
    """The seed's own collector address, `tracing:4317`, does not resolve here."""
    nginx, ca = provider_front
    cfg = seed_with_local_hosts(nginx.port, ca).replace("http://127.0.0.1:9", "http://tracing:4317")
    assert "http://tracing:4317" in cfg and SEED.read_text().count("tracing:4317") == 1
    proc = tollgate.start(cfg, ports=[3100])
    start = time.monotonic()
    with requests.Session() as s:
        for _ in range(200):
            r = s.get(f"{BASE}/models", timeout=5)
            assert r.status_code == 200
    elapsed = time.monotonic() - start
    assert elapsed < 20, f"200 requests took {elapsed:.1f}s"
    time.sleep(12)  # two export rounds of the batch processor
    warnings = [l for l in proc.output().splitlines() if "trace export failed" in l]
    assert len(warnings) == 1, warnings


def test_a_collector_that_comes_back_gets_spans_again(tollgate, provider_front, llmock, workdir):
    """While the collector is down, batches are dropped (one warning); once it listens again,
    the next probe (a second after the first failure, then backing off to 30 s) delivers spans
    and says so once."""
    nginx, ca = provider_front
    grpc_port, http_port = free_port(), free_port()
    proc = tollgate.start(seed_with_local_hosts(nginx.port, ca, otlp_port=grpc_port), ports=[3100])
    ask()
    deadline = time.monotonic() + 15
    while "trace export failed" not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "trace export failed" in proc.output()
    receiver = Proc([sys.executable, str(ROOT / "tests" / "otlp_receiver.py"), str(grpc_port), str(http_port)],
                    workdir / "late-otlp.log")
    try:
        wait_port(grpc_port, proc=receiver.proc)
        spans, deadline = [], time.monotonic() + 30
        while not spans and time.monotonic() < deadline:
            ask()
            spans = OtlpReceiver(grpc_port, http_port, receiver).spans(timeout=2)
        assert spans and spans[-1]["name"] == "openai.chat"
        log = proc.output()
        assert log.count("trace export failed") == 1 and log.count("trace export recovered") == 1, log[-2000:]
    finally:
        receiver.stop()


def test_cel_random_sampling_decides_per_request(tollgate, provider_front, llmock, otlp_receiver):
    nginx, ca = provider_front
    cfg = seed_with_local_hosts(nginx.port, ca, otlp_port=otlp_receiver.grpc_port)
    cfg = cfg.replace("    randomSampling: true\n", "    randomSampling: 'request.path.endsWith(\"/chat/completions\")'\n", 1)
    assert "endsWith" in cfg
    tollgate.start(cfg, ports=[3100])
    for _ in range(3):
        requests.get(f"{BASE}/models", timeout=5)
    ask()
    spans = otlp_receiver.spans()
    time.sleep(6)  # one more export round: nothing else may arrive
    spans = otlp_receiver.spans()
    assert [s["attributes"]["url.path"] for s in spans] == ["/compatible-mode/v1/chat/completions"]


def test_spans_queued_at_shutdown_reach_the_collector(tollgate, provider_front, llmock, otlp_receiver):
    """The batch processor sends every 5 s: a SIGTERM (a restart, a rolling deploy) sends the
    spans still queued before the process exits instead of losing them."""
    nginx, ca = provider_front
    proc = tollgate.start(seed_with_local_hosts(nginx.port, ca, otlp_port=otlp_receiver.grpc_port), ports=[3100])
    for _ in range(3):
        ask()
    assert otlp_receiver.spans(timeout=0) == [], "spans went out before the batch interval: the test proves nothing"
    proc.terminate()
    # The process is gone: whatever the receiver has now is all it will ever get.
    spans = otlp_receiver.spans(count=3, timeout=2)
    assert len(spans) == 3 and all(s["name"] == "openai.chat" for s in spans), spans


def test_a_full_batch_goes_out_before_the_interval(tollgate, provider_front, llmock, otlp_receiver):
    """Spans wait for the 5 s interval unless a batch fills (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
    as the SDK's processors read it): then the exporter is woken at once, not span by span."""
    nginx, ca = provider_front
    cfg = seed_with_local_hosts(nginx.port, ca, otlp_port=otlp_receiver.grpc_port)
    tollgate.start(cfg, ports=[3100], extra_env={"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "3"})
    started = time.monotonic()
    for _ in range(2):
        ask()
    time.sleep(0.5)
    assert otlp_receiver.spans(timeout=0) == [], "two spans of a batch of three went out early"
    ask()
    spans = otlp_receiver.spans(count=3, timeout=3)
    took = time.monotonic() - started
    assert len(spans) == 3 and took < 4.5, f"{len(spans)} spans after {took:.1f}s: the full batch waited for the timer"


def test_spans_past_the_queue_limit_are_dropped_not_held(tollgate, provider_front, llmock):
    """`OTEL_BSP_MAX_QUEUE_SIZE` bounds the spans held while an export hangs (a collector that
    takes the connection and never answers): past it spans are dropped and that is said once,
    so a stuck collector grows neither the gateway's memory nor its log."""
    nginx, ca = provider_front
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)  # never accepted: the export waits for its timeout
        cfg = seed_with_local_hosts(nginx.port, ca, otlp_port=hole.getsockname()[1])
        proc = tollgate.start(cfg, ports=[3100], extra_env={"OTEL_BSP_MAX_QUEUE_SIZE": "2"})
        for _ in range(8):
            ask()
        deadline = time.monotonic() + 5
        while "span export queue full" not in proc.output() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = proc.output()
        assert log.count("span export queue full") == 1, log[-2000:]


def test_spans_dropped_while_the_collector_backs_off_are_reported_at_exit(tollgate, provider_front, llmock):
    """While a failed collector is backing off, spans are not built; a SIGTERM then must still say
    that the last spans did not reach the collector (the queue it flushes is empty)."""
    nginx, ca = provider_front
    proc = tollgate.start(seed_with_local_hosts(nginx.port, ca, otlp_port=free_port()), ports=[3100],
                          extra_env={"OTEL_BSP_SCHEDULE_DELAY": "200"})
    ask()
    deadline = time.monotonic() + 10
    while "trace export failed" not in proc.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "trace export failed" in proc.output()
    ask()  # backing off: this request's span is dropped unbuilt
    proc.terminate()
    assert "the last spans did not reach the collector" in proc.output()


def test_a_dead_collector_does_not_hold_the_exit(tollgate, provider_front, llmock):
    nginx, ca = provider_front
    proc = tollgate.start(seed_with_local_hosts(nginx.port, ca, otlp_port=free_port()), ports=[3100])
    ask()
    took = proc.terminate()
    assert took < 3.5, f"exit took {took:.1f}s waiting for a collector that is not there"
    assert "the last spans did not reach the collector" in proc.output()
