"""`ai.routes` types `rerank` and `geminiCountTokens`, and token counts on providers without
a count API. Rerank goes to the provider's own rerank endpoint (Cohere's SDK against a local
stand-in that checks the wire format, tests/rerank_count_fake.py), model overridden and usage
recorded; Gemini's countTokens goes to Gemini's own, else the gateway estimates, as it does
for Anthropic's count_tokens."""
import time

import anthropic
import cohere
import pytest
import requests
from google import genai
from google.genai import types

from conftest import serve_listeners, start_logged_service

KEY = "provider-key"


@pytest.fixture
def aux(workdir):
    service, proc = start_logged_service(workdir, "aux", "rerank_count_fake.py", KEY)
    yield service
    proc.stop()


def gateway(tollgate, port, provider, routes, prefix=""):
    prefix_line = f"\n          pathPrefix: {prefix}" if prefix else ""
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: aux
          hostOverride: "127.0.0.1:{port}"{prefix_line}
          provider: {provider}
          policies:
            backendAuth: {{key: {KEY}}}
            ai:
              routes: {routes}
""")


def access_log(tollgate, path):
    deadline = time.time() + 5
    while True:
        lines = [l for l in (tollgate.workdir / "config.yaml.log").read_text().splitlines() if f"http.path={path}" in l]
        if lines or time.time() > deadline:
            return lines
        time.sleep(0.05)


def test_cohere_sdk_rerank_with_model_override(tollgate, aux):
    base = gateway(tollgate, aux.port, "{openAI: {model: rerank-v3.5}}", "{/v2/rerank: rerank}")
    co = cohere.ClientV2(api_key="client-key", base_url=base, timeout=10)
    docs = ["Paris is the capital of France.", "Bananas are yellow.", "The capital of Italy is Rome."]
    r = co.rerank(model="any", query="What is the capital of France?", documents=docs, top_n=2)
    assert [x.index for x in r.results] == [0, 2] and r.results[0].relevance_score > r.results[1].relevance_score, r
    sent = aux.requests()[-1]
    assert sent["path"] == "/v2/rerank" and sent["body"]["model"] == "rerank-v3.5", sent
    assert sent["headers"]["authorization"] == f"Bearer {KEY}"  # the backend's key, not the client's
    assert "gen_ai.request.model=any" in access_log(tollgate, "/v2/rerank")[0]


def test_v1_rerank_records_usage(tollgate, aux):
    base = gateway(tollgate, aux.port, "{openAI: {model: jina-reranker-v2}}", "{/v1/rerank: rerank}")
    body = {"model": "x", "query": "red apples", "documents": [{"text": "green pears"}, {"text": "red apples and red wine"}]}
    r = requests.post(f"{base}/v1/rerank", json=body, timeout=10)
    assert r.status_code == 200 and r.json()["results"][0]["index"] == 1, r.text
    assert aux.requests()[-1]["body"]["model"] == "jina-reranker-v2"
    line = access_log(tollgate, "/v1/rerank")[0]
    assert "gen_ai.usage.input_tokens=9" in line, line  # 2 query words + 7 document words
    # Not JSON: refused by the gateway, nothing sent.
    before = len(aux.requests())
    r = requests.post(f"{base}/v1/rerank", data=b"{", headers={"content-type": "application/json"}, timeout=10)
    assert r.status_code == 400 and len(aux.requests()) == before


def test_rerank_on_a_provider_without_one_is_refused(tollgate, aux):
    base = gateway(tollgate, aux.port, "{anthropic: {model: claude-x}}", "{/v2/rerank: rerank}")
    co = cohere.ClientV2(api_key="k", base_url=base, timeout=10)
    with pytest.raises(Exception) as e:
        co.rerank(model="m", query="q", documents=["d"])
    assert getattr(e.value, "status_code", None) == 400 and "no rerank API" in str(e.value.body), e.value
    assert aux.requests() == []


def test_gemini_count_tokens_goes_to_gemini(tollgate, aux):
    base = gateway(tollgate, aux.port, "{gemini: {model: gemini-2.5-pro}}", '{":countTokens": geminiCountTokens}', prefix="/v1beta")
    client = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=base, timeout=10_000))
    r = client.models.count_tokens(model="gemini-2.5-flash", contents="one two three four")
    assert r.total_tokens == 4, r
    sent = aux.requests()[-1]
    assert sent["path"] == "/v1beta/models/gemini-2.5-pro:countTokens" and sent["headers"]["x-goog-api-key"] == KEY, sent


@pytest.mark.parametrize("provider", ["{openAI: {model: gpt-4o}}", "{anthropic: {model: claude-x}}"])
def test_gemini_count_tokens_is_estimated_elsewhere(tollgate, aux, provider):
    base = gateway(tollgate, aux.port, provider, '{":countTokens": geminiCountTokens}')
    client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=base, timeout=10_000))
    short = client.models.count_tokens(model="g", contents="hi").total_tokens
    long = client.models.count_tokens(model="g", contents="word " * 1000).total_tokens
    assert 0 < short < 10 and 1200 <= long <= 1300, (short, long)
    assert aux.requests() == []
    # What could not be translated is a 400 in Google's shape.
    r = requests.post(f"{base}/v1beta/models/g:countTokens", json={"contents": [{"role": "user", "parts": [{"executableCode": {}}]}]}, timeout=10)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT", r.text


def test_anthropic_count_tokens_is_estimated_on_gemini(tollgate, aux):
    base = gateway(tollgate, aux.port, "{gemini: {model: gemini-2.5-pro}}", "{/v1/messages/count_tokens: anthropicTokenCount}")
    a = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
    n = a.messages.count_tokens(model="m", messages=[{"role": "user", "content": "word " * 1000}]).input_tokens
    assert 1200 <= n <= 1300, n
    assert aux.requests() == []


def test_openai_embeddings_on_gemini(tollgate, aux):
    import openai
    base = gateway(tollgate, aux.port, "{gemini: {model: text-embedding-004}}", "{/v1/embeddings: embeddings}", prefix="/v1beta")
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)
    r = c.embeddings.create(model="any", input=["first text", "second"], dimensions=4)
    assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 4 and r.data[0].embedding != r.data[1].embedding, r
    sent = aux.requests()[-1]
    assert sent["path"] == "/v1beta/models/text-embedding-004:batchEmbedContents" and sent["headers"]["x-goog-api-key"] == KEY, sent
    assert sent["body"]["requests"][1] == {"model": "models/text-embedding-004", "content": {"parts": [{"text": "second"}]}, "outputDimensionality": 4}
    # What Gemini cannot take is refused by name, before anything goes upstream.
    before = len(aux.requests())
    with pytest.raises(openai.BadRequestError) as e:
        c.embeddings.create(model="any", input=[[1, 2, 3]])
    assert "token arrays" in e.value.body["message"] and len(aux.requests()) == before
