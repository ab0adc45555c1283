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
