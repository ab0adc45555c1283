"""The seed config's CEL access-log fields, for the article's request, streamed and not; and which
debug lines `logging.level: debug` shows."""
import json
import socket
import time

import openai
import pytest
import requests

from conftest import seed_with_local_hosts, serve_listeners

BASE = "http://127.0.0.1:3100/compatible-mode/v1"


def start_seed(tollgate, provider_front, json_format: bool):
    nginx, ca = provider_front
    cfg = seed_with_local_hosts(nginx.port, ca)
    if json_format:
        cfg = cfg.replace("    level: debug\n", "    level: debug\n    format: json\n", 1)
    return tollgate.start(cfg, ports=[3100, 3101])


def access_records(proc, count=1, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        records = [json.loads(l) for l in proc.output().splitlines() if l.startswith("{") and '"target":"access"' in l]
        if len(records) >= count or time.time() > deadline:
            return records
        time.sleep(0.05)


def client():
    return openai.OpenAI(base_url=BASE, api_key="sk-client-key", max_retries=0, timeout=20)


def assert_seed_fields(rec, completion_text):
    assert rec["span.name"] == "openai.chat"
    assert rec["llm.system"] == "openai"
    assert rec["llm.input_messages.0.message.role"] == "user"
    assert rec["llm.input_messages.0.message.content"] == "Hello!"
    assert rec["gen_ai.prompt.0.role"] == "user"
    assert rec["gen_ai.prompt.0.content"] == "Hello!"
    assert rec["llm.output_messages.0.role"] == "assistant"
    assert rec["llm.output_messages.0.content"] == completion_text
    assert rec["llm.completion"] == [completion_text]
    assert json.loads(rec["request.body"])["model"] == "any-model-name"  # what the client sent
    assert rec["request.headers"]["content-type"] == "application/json"
    assert rec["gen_ai.request.model"] == "any-model-name"
    assert rec["gen_ai.response.model"] == "qwen-plus"
    assert rec["http.status"] == 200


def test_json_access_log_has_every_seed_field(tollgate, provider_front, llmock):
    proc = start_seed(tollgate, provider_front, json_format=True)
    r = client().chat.completions.create(model="any-model-name", temperature=0.3,
                                         messages=[{"role": "user", "content": "Hello!"}])
    rec = access_records(proc)[-1]
    assert_seed_fields(rec, r.choices[0].message.content)
    assert rec["llm.params.temperature"] == 0.3
    assert json.loads(rec["request.response.body"])["model"] == "qwen-plus"
    assert rec["gen_ai.usage.input_tokens"] == r.usage.prompt_tokens
    assert rec["gen_ai.usage.output_tokens"] == r.usage.completion_tokens
    assert rec["gen_ai.streaming"] is False
    # The client's key is redacted and the provider key never appears.
    assert rec["request.headers"]["authorization"] == "<redacted>"
    out = proc.output()
    assert "sk-abc" not in out and "sk-client-key" not in out


def test_streaming_line_is_written_when_the_stream_ends(tollgate, provider_front, llmock):
    proc = start_seed(tollgate, provider_front, json_format=True)
    chunks = list(client().chat.completions.create(
        model="any-model-name", messages=[{"role": "user", "content": "Hello!"}],
        stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    rec = access_records(proc)[-1]
    assert_seed_fields(rec, text)
    assert rec["gen_ai.streaming"] is True
    assert rec["gen_ai.usage.output_tokens"] == chunks[-1].usage.completion_tokens
    assert "llm.params.temperature" not in rec  # not sent, so not logged
    assert "sk-abc" not in proc.output()


def test_unchanged_seed_logging_is_text_with_flattened_keys(tollgate, provider_front, llmock):
    proc = start_seed(tollgate, provider_front, json_format=False)
    client().chat.completions.create(model="any-model-name", messages=[{"role": "user", "content": "Hello!"}])
    deadline = time.time() + 5
    while " access request " not in proc.output() and time.time() < deadline:
        time.sleep(0.05)
    line = next(l for l in proc.output().splitlines() if " access request " in l)
    assert " llm.input_messages.0.message.role=user " in line
    assert " llm.input_messages.0.message.content=Hello! " in line
    assert " span.name=openai.chat " in line
    assert "sk-abc" not in proc.output()


def test_level_debug_shows_tollgate_debug_lines_and_not_pingoras(tollgate):
    """`logging.level: debug` (no RUST_LOG) turns on tollgate's own debug lines (here: a field
    whose expression fails to evaluate); Pingora's stay at `warn` (its debug output prints whole
    upstream request heads), also when the gateway proxies to an upstream."""
    up = socket.socket()
    up.bind(("127.0.0.1", 0))
    closed_port = up.getsockname()[1]
    up.close()  # nothing listens: the proxied request fails inside Pingora's connector
    base = serve_listeners(tollgate, f"""\
  - routes:
    - matches: [{{path: {{pathPrefix: /direct}}}}]
      policies: {{directResponse: {{status: 200, body: ok}}}}
    - backends:
      - host: 127.0.0.1:{closed_port}
""", settings="config:\n  logging:\n    level: debug\n    fields:\n      add:\n        broken: int(\"not a number\")\n",
        extra_env={"RUST_LOG": ""})
    assert requests.get(f"{base}/direct", timeout=5).text == "ok"
    assert requests.get(f"{base}/proxied", timeout=5).status_code == 502
    proc = tollgate.procs[-1]
    deadline = time.time() + 5
    # Both lines are written after their responses: wait for the second request's.
    while " http.status=502" not in proc.output() and time.time() < deadline:
        time.sleep(0.05)
    out = proc.output()
    assert "DEBUG" in out and "CEL field not evaluated" in out, out[-2000:]
    assert " http.status=502" in out  # both requests were logged
    pingora_debug = [l for l in out.splitlines() if "DEBUG" in l and "pingora" in l]
    assert not pingora_debug, pingora_debug[:3]
