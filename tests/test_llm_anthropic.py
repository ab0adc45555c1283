"""The Anthropic provider (`ai.provider.anthropic`): OpenAI SDK clients are translated to
Anthropic's Messages API and back (llmock serves Messages at /anthropic/v1/messages), streaming
and tool calls included; Anthropic SDK clients are served natively, model and usage recorded."""
import json

import anthropic
import openai
import pytest

from conftest import serve_listeners

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather of a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def gateway(tollgate, llmock, model="claude-haiku-4-5"):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: anthropic
          hostOverride: "127.0.0.1:{llmock.port}"
          pathPrefix: /anthropic/v1
          provider: {{anthropic: {{model: {model}}}}}
          policies:
            backendAuth: {{key: sk-ant-provider}}
            ai:
              routes: {{/v1/chat/completions: completions, /v1/messages: messages}}
""")


def oai(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="sk-client", max_retries=0)


def test_chat_client_gets_a_chat_answer_from_anthropic(tollgate, llmock):
    base = gateway(tollgate, llmock)
    r = oai(base).chat.completions.create(model="gpt-4o", max_tokens=50,
                                          messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert r.object == "chat.completion" and r.choices[0].finish_reason == "stop", r
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content, r
    assert r.model == "claude-haiku-4-5" and r.usage.completion_tokens > 0 and r.usage.prompt_tokens > 0, r
    sent = llmock.journal()[-1]
    assert sent["path"] == "/anthropic/v1/messages" and sent["status"] == 200, sent
    assert sent["body"]["system"] == [{"type": "text", "text": "Be brief."}] and sent["body"]["max_tokens"] == 50, sent["body"]
    assert sent["body"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], sent["body"]


def test_chat_stream_from_anthropic_with_usage(tollgate, llmock):
    base = gateway(tollgate, llmock)
    stream = oai(base).chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                               messages=[{"role": "user", "content": "hi"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 3 and text, chunks
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage and chunks[-1].usage.completion_tokens > 0 and not chunks[-1].choices, chunks[-1]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_through_anthropic(tollgate, llmock, stream):
    base = gateway(tollgate, llmock)
    c = oai(base)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]

    def ask():
        if not stream:
            return c.chat.completions.create(model="gpt-4o", tools=[WEATHER], messages=messages).choices[0]
        with c.chat.completions.stream(model="gpt-4o", tools=[WEATHER], messages=messages) as s:
            for _ in s:
                pass
            return s.get_final_completion().choices[0]

    first = ask()
    assert first.finish_reason == "tool_calls", first
    call = first.message.tool_calls[0]
    assert call.function.name == "get_weather" and isinstance(json.loads(call.function.arguments), dict), call
    messages.append({"role": "assistant", "content": first.message.content, "tool_calls": [call.model_dump(exclude_none=True)]})
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"})
    second = ask()
    assert second.finish_reason == "stop" and second.message.content, second
    sent = llmock.journal()[-1]["body"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"], sent["messages"]
    assert sent["messages"][1]["content"][-1]["type"] == "tool_use" and sent["messages"][1]["content"][-1]["id"] == call.id
    assert sent["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]
    assert sent["tools"][0]["name"] == "get_weather" and sent["tools"][0]["input_schema"]["required"] == ["city"]


def test_messages_client_is_served_natively(tollgate, llmock):
    base = gateway(tollgate, llmock)
    c = anthropic.Anthropic(base_url=base, api_key="sk-client", max_retries=0)
    m = c.messages.create(model="claude-opus-9", max_tokens=32, messages=[{"role": "user", "content": "hi"}])
    assert m.model == "claude-haiku-4-5" and m.usage.output_tokens > 0, m
    with c.messages.stream(model="claude-opus-9", max_tokens=32, messages=[{"role": "user", "content": "hi"}]) as s:
        final = s.get_final_message()
    assert final.content[0].text and final.stop_reason == "end_turn", final
    import time
    deadline = time.time() + 5
    while True:  # the access-log line follows the end of the stream
        log = tollgate.workdir.joinpath("config.yaml.log").read_text()
        lines = [l for l in log.splitlines() if "http.path=/v1/messages" in l]
        if len(lines) == 2 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert len(lines) == 2 and all("gen_ai.provider.name=anthropic" in l and "gen_ai.usage.output_tokens=" in l for l in lines), lines


def test_untranslatable_fields_and_provider_errors(tollgate, llmock):
    base = gateway(tollgate, llmock)
    c = oai(base)
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="gpt-4o", seed=7, messages=[{"role": "user", "content": "hi"}])
    assert "`seed`" in e.value.body["message"], e.value.body
    llmock.scenario([{"type": "fail", "status": 429, "times": 1}])
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 429 and e.value.body["message"], e.value.body


def test_the_provider_gets_its_key_as_x_api_key_with_a_version(tollgate, llmock, openapi_service):
    """tests/openapi_service.py records every request's headers (and answers 404 here)."""
    base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: anthropic
          hostOverride: "127.0.0.1:{openapi_service.port}"
          provider: {{anthropic: {{}}}}
          policies:
            backendAuth: {{key: sk-ant-provider}}
            ai:
              routes: {{/v1/chat/completions: completions, /v1/messages/count_tokens: anthropicTokenCount}}
""")
    with pytest.raises(anthropic.NotFoundError):
        anthropic.Anthropic(base_url=base, api_key="sk-client", max_retries=0).messages.count_tokens(
            model="claude-x", messages=[{"role": "user", "content": "hi"}])
    seen = openapi_service.requests()[-1]
    assert seen["path"] == "/v1/messages/count_tokens" and seen["headers"].get("x-api-key") == "sk-ant-provider", seen
    with pytest.raises(openai.NotFoundError):
        oai(base).chat.completions.create(model="claude-x", messages=[{"role": "user", "content": "hi"}])
    seen = openapi_service.requests()[-1]
    assert seen["path"] == "/v1/messages", seen
    h = seen["headers"]
    assert h.get("x-api-key") == "sk-ant-provider" and "authorization" not in h and h.get("anthropic-version") == "2023-06-01", h
    assert seen["body"]["model"] == "claude-x" and seen["body"]["max_tokens"] == 4096, seen["body"]


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def test_a_200_message_conversation_with_images_translates(tollgate, llmock):
    # The other direction of test_llm_messages' test: a Chat client, an Anthropic provider.
    base = gateway(tollgate, llmock)
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(100):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"turn {i}"},
                                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]})
        messages.append({"role": "assistant", "content": f"answer {i}"})
    messages.append({"role": "user", "content": "last"})
    r = oai(base).chat.completions.create(model="gpt-4o", max_tokens=16, messages=messages)
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content, r
    sent = llmock.journal()[-1]["body"]
    assert len(sent["messages"]) == 201 and sent["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "turn 0"},
                                              {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]
    assert sent["messages"][199] == {"role": "assistant", "content": [{"type": "text", "text": "answer 99"}]}


@pytest.mark.parametrize("stream", [False, True])
def test_a_one_mebibyte_prompt_translates(tollgate, llmock, stream):
    base = gateway(tollgate, llmock)
    big = "word " * (1 << 18)  # 1.25 MiB of text
    kw = dict(model="gpt-4o", max_tokens=16, messages=[{"role": "user", "content": big}])
    if stream:
        chunks = list(oai(base).chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) and chunks[-1].usage.prompt_tokens > 1000
    else:
        r = oai(base).chat.completions.create(**kw)
        assert r.choices[0].message.content and r.usage.prompt_tokens > 1000, r
    last = llmock.journal()[-1]
    assert (last["path"], last["status"]) == ("/anthropic/v1/messages", 200), last
