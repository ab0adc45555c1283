"""The `detect` route type: the request goes to the provider as it is (no model override, no
injected `stream_options`, the same bytes), while the gateway reads the request's model and the
answer's model and usage, whole or streamed, for its logs. Against llmock, with the OpenAI SDK."""
import time

import openai

from conftest import serve_listeners
from test_llm_failover import backup  # noqa: F401 (the fixture)


def gateway(tollgate, llmock, kind="detect"):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: mock
          hostOverride: "127.0.0.1:{llmock.port}"
          provider: {{openAI: {{model: backend-model}}}}
      policies:
        ai:
          routes: {{/v1/chat/completions: {kind}}}
""")


def log_line(tollgate, count=1):
    deadline = time.time() + 5
    while True:
        lines = [l for l in (tollgate.workdir / "config.yaml.log").read_text().splitlines() if "http.path=/v1/chat/completions" in l]
        if len(lines) >= count or time.time() > deadline:
            return lines
        time.sleep(0.05)


def test_detect_forwards_as_is_and_records_model_and_usage(tollgate, llmock):
    base = gateway(tollgate, llmock)
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    r = c.chat.completions.create(model="client-model", messages=[{"role": "user", "content": "hi"}], extra_body={"odd_field": [1, 2]})
    assert r.choices[0].message.content and r.usage.completion_tokens > 0
    sent = llmock.journal()[-1]["body"]
    # As the client wrote it: the backend's model override is not applied.
    assert sent["model"] == "client-model" and sent["odd_field"] == [1, 2], sent
    line = log_line(tollgate)[-1]
    assert "gen_ai.request.model=client-model" in line and f"gen_ai.usage.input_tokens={r.usage.prompt_tokens}" in line, line
    assert f"gen_ai.usage.output_tokens={r.usage.completion_tokens}" in line, line


def test_detect_reads_a_stream_without_changing_it(tollgate, llmock):
    base = gateway(tollgate, llmock)
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    chunks = list(c.chat.completions.create(model="client-model", messages=[{"role": "user", "content": "hi"}], stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    # No `include_usage` is injected: the client did not ask, so the stream stays as it was.
    assert "stream_options" not in llmock.journal()[-1]["body"]
    assert all(ch.usage is None for ch in chunks)
    usage = list(c.chat.completions.create(model="client-model", messages=[{"role": "user", "content": "hi"}], stream=True,
                                           stream_options={"include_usage": True}))[-1].usage
    line = log_line(tollgate, 2)[-1]
    assert "gen_ai.request.model=client-model" in line and f"gen_ai.usage.output_tokens={usage.completion_tokens}" in line, line


def test_completions_for_contrast_rewrites_the_model(tollgate, llmock):
    # The same route as `completions`: the backend's model replaces the client's.
    base = gateway(tollgate, llmock, kind="completions")
    openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0).chat.completions.create(
        model="client-model", messages=[{"role": "user", "content": "hi"}])
    assert llmock.journal()[-1]["body"]["model"] == "backend-model"


def test_a_streamed_answers_model_and_usage_are_logged(tollgate, llmock):
    # The answer's model is read from the stream's first event, its usage from the last.
    base = gateway(tollgate, llmock, kind="completions")
    chunks = list(openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0).chat.completions.create(
        model="client-model", messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True}))
    assert chunks[0].model == "backend-model" and chunks[-1].usage
    line = log_line(tollgate)[-1]
    assert " gen_ai.response.model=backend-model " in line + " ", line
    assert f"gen_ai.usage.output_tokens={chunks[-1].usage.completion_tokens}" in line, line


def test_detect_stays_detect_when_it_fails_over(tollgate, llmock, backup):
    base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          groups:
          - providers:
            - {{name: primary, hostOverride: "127.0.0.1:{llmock.port}", provider: {{openAI: {{model: primary-model}}}}}}
          - providers:
            - {{name: secondary, hostOverride: "127.0.0.1:{backup.port}", provider: {{openAI: {{model: secondary-model}}}}}}
      policies:
        ai:
          routes: {{/v1/chat/completions: detect}}
""")
    llmock.scenario([{"type": "fail", "status": 503, "times": 1}])
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    assert c.chat.completions.create(model="client-model", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    # The second provider got the request as the client wrote it, and the model was read again.
    assert backup.journal()[-1]["body"]["model"] == "client-model"
    line = log_line(tollgate)[-1]
    assert "gen_ai.request.model=client-model" in line and "primary:503" in line, line
