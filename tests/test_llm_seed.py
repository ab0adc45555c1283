"""Acceptance for the seed config's LLM port (3100): the article's request, end to end.

The provider is llmock behind nginx, which terminates TLS for dashscope.aliyuncs.com with a
test CA and forwards /compatible-mode/v1/ to llmock's /v1/, like the real provider's front.
"""
import openai
import pytest
import requests

from conftest import seed_with_local_hosts

BASE = "http://127.0.0.1:3100/compatible-mode/v1"


@pytest.fixture
def seed_gateway(tollgate, provider_front):
    nginx, ca = provider_front
    tollgate.start(seed_with_local_hosts(nginx.port, ca), ports=[3100, 3101])
    return nginx


def client():
    return openai.OpenAI(base_url=BASE, api_key="sk-client-key", max_retries=0, timeout=20)


def last_completion(llmock):
    entries = [e for e in llmock.journal() if e.get("path", "").endswith("/chat/completions")]
    assert entries, "llmock saw no chat completion"
    return entries[-1]


def test_non_streaming_completion_reaches_provider_as_configured(seed_gateway, llmock):
    r = client().chat.completions.create(model="any-model-name", messages=[{"role": "user", "content": "Hello!"}])
    assert r.choices[0].message.content
    assert r.model == "qwen-plus"
    assert r.usage.total_tokens > 0
    assert last_completion(llmock)["model"] == "qwen-plus"
    seen = seed_gateway.entries()[-1]
    assert seen["sni"] == "dashscope.aliyuncs.com"
    assert seen["host"] == "dashscope.aliyuncs.com"
    assert seen["auth"] == "Bearer sk-abc"
    assert seen["uri"] == "/compatible-mode/v1/chat/completions"


def test_streaming_completion_arrives_as_events_with_usage_last(seed_gateway, llmock):
    stream = client().chat.completions.create(
        model="any-model-name", messages=[{"role": "user", "content": "Hello!"}],
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) >= 4, f"expected several events, got {len(chunks)}"
    assert text
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    entry = last_completion(llmock)
    assert entry["model"] == "qwen-plus" and entry["stream"] is True
    assert seed_gateway.entries()[-1]["sni"] == "dashscope.aliyuncs.com"


def test_stream_without_usage_request_gets_no_extra_chunk(seed_gateway, llmock):
    """tollgate asks the provider for usage (to count tokens) but does not hand the client a
    usage-only chunk it did not ask for: naive `chunk.choices[0]` loops must keep working."""
    chunks = list(client().chat.completions.create(
        model="any-model-name", messages=[{"role": "user", "content": "Hello!"}], stream=True))
    assert chunks and all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks)


def test_one_mib_prompt_is_answered(seed_gateway, llmock):
    prompt = "x" * (1024 * 1024)
    r = client().chat.completions.create(model="any-model-name", messages=[{"role": "user", "content": prompt}])
    assert r.choices[0].message.content
    assert last_completion(llmock)["model"] == "qwen-plus"
    # The whole prompt went upstream (llmock does not journal bodies this large).
    assert int(seed_gateway.entries()[-1]["length"]) > len(prompt)


def test_three_mib_prompt_gets_413_in_openai_format(seed_gateway, llmock):
    before = len(llmock.journal())
    with pytest.raises(openai.APIStatusError) as err:
        client().chat.completions.create(model="any-model-name",
                                         messages=[{"role": "user", "content": "x" * (3 * 1024 * 1024)}])
    assert err.value.status_code == 413
    body = err.value.response.json()
    assert body["error"]["type"] == "request_too_large" and "limit" in body["error"]["message"]
    assert len(llmock.journal()) == before, "an oversize request must not reach the provider"


def test_chunked_oversize_body_gets_413(seed_gateway, llmock):
    def gen():
        yield b'{"model":"m","messages":[{"role":"user","content":"'
        for _ in range(3 * 1024):
            yield b"x" * 1024
        yield b'"}]}'
    r = requests.post(f"{BASE}/chat/completions", data=gen(), headers={"content-type": "application/json"}, timeout=20)
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "request_too_large"


def test_models_passes_through_untouched(seed_gateway, llmock):
    via_gateway = requests.get(f"{BASE}/models", timeout=10)
    direct = requests.get(f"{llmock.base}/v1/models", timeout=10)
    assert via_gateway.status_code == 200
    assert via_gateway.json() == direct.json()
    seen = seed_gateway.entries()[-1]
    assert seen["uri"] == "/compatible-mode/v1/models" and seen["auth"] == "Bearer sk-abc"
    ids = [m.id for m in client().models.list()]
    assert ids == [m["id"] for m in direct.json()["data"]]


def test_malformed_json_gets_400(seed_gateway, llmock):
    r = requests.post(f"{BASE}/chat/completions", data=b'{"model": "x", "messages": [',
                      headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and "JSON" in err["message"]
