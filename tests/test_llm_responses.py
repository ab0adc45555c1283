"""OpenAI's Responses API for clients (`ai.routes` type `responses`), with the official OpenAI
SDK: native on the openAI and azure providers (llmock serves /v1/responses), translated
through Chat Completions on the anthropic and gemini providers, whole and streamed (the SDK's
`responses.stream()` helper included), with a function-call round trip."""
import time

import openai
import pytest

from conftest import serve_listeners

PREFIX = {"openAI": "", "anthropic": "pathPrefix: /anthropic/v1", "gemini": "pathPrefix: /gemini/v1beta"}
MODEL = {"openAI": "gpt-4.1", "anthropic": "claude-sonnet-4-5", "gemini": "gemini-2.5-flash"}
WEATHER = {"type": "function", "name": "get_weather", "description": "Current weather of a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def gateway(tollgate, llmock, provider):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: p
          hostOverride: "127.0.0.1:{llmock.port}"
          {PREFIX[provider]}
          provider: {{{provider}: {{model: {MODEL[provider]}}}}}
          policies:
            backendAuth: {{key: provider-key}}
            ai:
              routes: {{/v1/responses: responses}}
""")


def client(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)


def log_line(tollgate, needle):
    deadline = time.time() + 5
    while True:
        lines = [l for l in (tollgate.workdir / "config.yaml.log").read_text().splitlines() if needle in l]
        if lines or time.time() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize("provider", ["openAI", "anthropic", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
def test_function_call_round_trip(tollgate, llmock, provider, stream):
    base = gateway(tollgate, llmock, provider)
    c = client(base)
    items = [{"role": "user", "content": "What is the weather in Paris?"}]

    def ask():
        kw = dict(model="gpt-x", instructions="Be brief.", tools=[WEATHER], input=items, max_output_tokens=200)
        if not stream:
            return c.responses.create(**kw)
        with c.responses.stream(**kw) as s:
            for _ in s:
                pass
            return s.get_final_response()

    first = ask()
    calls = [o for o in first.output if o.type == "function_call"]
    assert calls and calls[0].name == "get_weather" and calls[0].call_id, first.output
    assert first.usage and first.usage.output_tokens > 0, first.usage
    sent = llmock.journal()[-1]
    expected_path = {"openAI": "/v1/responses", "anthropic": "/anthropic/v1/messages",
                     "gemini": "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"}[provider]
    assert sent["path"] == expected_path, sent["path"]
    if provider != "gemini":
        assert sent["body"]["model"] == MODEL[provider], sent["body"]
    items += [o.model_dump(exclude_none=True) for o in first.output if o.type == "function_call"]
    items.append({"type": "function_call_output", "call_id": calls[0].call_id, "output": "18C and sunny"})
    second = ask()
    assert second.output_text and second.status == "completed", second
    if provider == "anthropic":
        msgs = llmock.journal()[-1]["body"]["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "user"], msgs
        assert msgs[2]["content"][0]["tool_use_id"] == calls[0].call_id, msgs
    # Usage reaches the access log, for every provider.
    lines = log_line(tollgate, "http.path=/v1/responses")
    assert lines and "gen_ai.usage.output_tokens=" in lines[-1] and "gen_ai.request.model=gpt-x" in lines[-1], lines


def test_translated_requests_refuse_what_chat_cannot_carry(tollgate, llmock):
    base = gateway(tollgate, llmock, "anthropic")
    c = client(base)
    for kw, word in [(dict(previous_response_id="resp_1"), "previous_response_id"),
                     (dict(tools=[{"type": "web_search"}]), "web_search")]:
        with pytest.raises(openai.BadRequestError) as e:
            c.responses.create(model="m", input="hi", **kw)
        assert word in e.value.body["message"], e.value.body
    assert llmock.journal() == []


def test_provider_errors_keep_their_status(tollgate, llmock):
    base = gateway(tollgate, llmock, "anthropic")
    llmock.scenario([{"type": "fail", "status": 429, "times": 1}])
    with pytest.raises(openai.RateLimitError):
        client(base).responses.create(model="m", input="hi")
