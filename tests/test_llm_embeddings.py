"""`ai.routes` type `embeddings`: the OpenAI SDK's embeddings through tollgate to an
OpenAI-compatible provider (llmock), model replaced and usage recorded; an Anthropic provider,
which has no embeddings API, is refused in OpenAI's shape."""
import time

import openai
import pytest

from conftest import serve_listeners


def gateway(tollgate, llmock, provider="openAI"):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: emb
          hostOverride: "127.0.0.1:{llmock.port}"
          provider: {{{provider}: {{model: text-embedding-3-small}}}}
          policies:
            ai:
              routes: {{/v1/embeddings: embeddings}}
""")


def test_embeddings_with_model_override_and_usage(tollgate, llmock):
    base = gateway(tollgate, llmock)
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    r = c.embeddings.create(model="whatever", input=["one", "two"])
    assert len(r.data) == 2 and len(r.data[0].embedding) > 8 and r.usage is not None, r
    sent = llmock.journal()[-1]
    assert sent["path"] == "/v1/embeddings" and sent["body"]["model"] == "text-embedding-3-small", sent
    deadline = time.time() + 5
    while True:
        log = (tollgate.workdir / "config.yaml.log").read_text()
        lines = [l for l in log.splitlines() if "http.path=/v1/embeddings" in l]
        if lines or time.time() > deadline:
            break
        time.sleep(0.05)
    # The usage the provider reported is what is recorded (llmock reports 0 for embeddings).
    assert lines and "gen_ai.request.model=whatever" in lines[0], lines
    assert f"gen_ai.usage.input_tokens={r.usage.prompt_tokens} " in lines[0] + " ", lines


def test_anthropic_has_no_embeddings(tollgate, llmock):
    base = gateway(tollgate, llmock, provider="anthropic")
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        c.embeddings.create(model="m", input="x")
    assert "no embeddings" in e.value.body["message"], e.value.body
    assert llmock.journal() == []


def test_embeddings_are_metered_and_priced(tollgate, llmock):
    import requests
    from conftest import free_port
    stats = free_port()
    base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: emb
          hostOverride: "127.0.0.1:{llmock.port}"
          provider: {{openAI: {{model: text-embedding-3-small}}}}
          policies:
            ai:
              routes: {{/v1/embeddings: embeddings}}
""", settings=f"config:\n  statsAddr: 127.0.0.1:{stats}\n  modelCatalog:\n  - inline: {{providers: {{openai: {{models: {{text-embedding-3-small: {{rates: {{input: \"1000000\"}}}}}}}}}}}}\n")
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    c.embeddings.create(model="whatever", input=["one two three"])
    deadline = time.time() + 5
    while True:
        text = requests.get(f"http://127.0.0.1:{stats}/metrics", timeout=5).text
        usage = [l for l in text.splitlines() if l.startswith("gen_ai_client_token_usage_count{") and 'gen_ai_operation_name="embeddings"' in l]
        if usage or time.time() > deadline:
            break
        time.sleep(0.05)
    assert usage and 'gen_ai_token_type="input"' in "".join(usage), usage
    # The catalog prices the model (llmock reports its usage as 0 tokens, so it cost 0).
    cost = [l for l in text.splitlines() if l.startswith("gen_ai_client_cost_total{") and 'gen_ai_operation_name="embeddings"' in l]
    assert cost, [l for l in text.splitlines() if "cost" in l]
