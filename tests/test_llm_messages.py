"""Anthropic's Messages API in front of an OpenAI-compatible provider (`ai.routes` type
`messages`): the official Anthropic SDK talks to tollgate, llmock answers as OpenAI Chat
Completions, and tollgate translates both ways, streaming included, with a tool round trip."""
import json

import anthropic
import pytest
import requests

from conftest import free_port, serve_listeners


def gateway(tollgate, llmock, upstream=None):
    upstream = upstream or f"127.0.0.1:{llmock.port}"
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: openai-compatible
          hostOverride: "{upstream}"
          provider: {{openAI: {{model: gpt-4o-mini}}}}
          policies:
            backendAuth: {{key: sk-provider}}
            ai:
              routes: {{/v1/messages: messages, /v1/messages/count_tokens: anthropicTokenCount, /v1/chat/completions: completions}}
""")


WEATHER = {"name": "get_weather", "description": "Current weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def client(base):
    return anthropic.Anthropic(base_url=base, api_key="sk-client-key", max_retries=0)


def test_messages_answer_and_usage(tollgate, llmock):
    base = gateway(tollgate, llmock)
    m = client(base).messages.create(model="claude-sonnet-4-6", max_tokens=64, system="Be brief.",
                                     messages=[{"role": "user", "content": "hi"}])
    assert m.type == "message" and m.role == "assistant" and m.stop_reason == "end_turn", m
    assert m.content[0].type == "text" and "Hello" in m.content[0].text, m
    assert m.model == "gpt-4o-mini" and m.usage.output_tokens > 0 and m.usage.input_tokens > 0, m
    sent = llmock.journal()[-1]
    assert sent["path"] == "/v1/chat/completions", sent
    body = sent["body"]
    assert body["model"] == "gpt-4o-mini" and body["messages"][0] == {"role": "system", "content": "Be brief."}, body
    assert body["max_completion_tokens"] == 64, body


def test_messages_stream_parses_event_by_event(tollgate, llmock):
    base = gateway(tollgate, llmock)
    with client(base).messages.stream(model="claude-sonnet-4-6", max_tokens=64,
                                      messages=[{"role": "user", "content": "hi"}]) as s:
        texts = list(s.text_stream)
        final = s.get_final_message()
    assert len(texts) > 1 and "Hello" in "".join(texts), texts
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0, final
    assert final.content[0].text == "".join(texts)


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_round_trip(tollgate, llmock, stream):
    base = gateway(tollgate, llmock)
    c = client(base)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]

    def ask():
        if not stream:
            return c.messages.create(model="claude-sonnet-4-6", max_tokens=128, tools=[WEATHER], messages=messages)
        with c.messages.stream(model="claude-sonnet-4-6", max_tokens=128, tools=[WEATHER], messages=messages) as s:
            return s.get_final_message()

    first = ask()
    assert first.stop_reason == "tool_use", first
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict), call
    messages.append({"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}]})
    second = ask()
    assert second.stop_reason == "end_turn" and second.content[0].type == "text", second
    # What went upstream: the tool call and its result, in Chat Completions form.
    sent = [r for r in llmock.journal() if r["path"] == "/v1/chat/completions"][-1]["body"]
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["user", "assistant", "tool"], sent["messages"]
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.id
    assert sent["messages"][2] == {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_client_key_and_anthropic_headers_stay_at_the_gateway(tollgate, llmock, openapi_service):
    """The provider gets its own key, never the client's `x-api-key` or Anthropic's headers
    (tests/openapi_service.py records every request's headers; it answers 404 here)."""
    base = gateway(tollgate, llmock, upstream=f"127.0.0.1:{openapi_service.port}")
    with pytest.raises(anthropic.NotFoundError) as e:
        client(base).messages.create(model="m", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error", e.value.body
    seen = openapi_service.requests()[-1]
    assert seen["path"] == "/v1/chat/completions", seen
    headers = seen["headers"]
    assert "x-api-key" not in headers and not any(k.startswith("anthropic-") for k in headers), headers
    assert headers.get("authorization") == "Bearer sk-provider", headers


def test_errors_come_back_in_anthropics_shape(tollgate, llmock):
    base = gateway(tollgate, llmock)
    c = client(base)
    # Refused by the gateway: no Chat Completions meaning.
    with pytest.raises(anthropic.BadRequestError) as e:
        c.messages.create(model="m", max_tokens=16, extra_body={"mcp_servers": []}, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["type"] == "error" and "mcp_servers" in e.value.body["error"]["message"], e.value.body
    r = requests.post(f"{base}/v1/messages", data=b"{not json", headers={"content-type": "application/json"}, timeout=5)
    assert r.status_code == 400 and r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error", r.text
    # The provider's own error (llmock's scripted 429) keeps its status, in Anthropic's shape.
    llmock.scenario([{"type": "fail", "status": 429, "times": 1}])
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(model="m", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["error"]["type"] == "rate_limit_error", e.value.body
    # The provider down: 502 in Anthropic's shape.
    down = gateway(tollgate, llmock, upstream=f"127.0.0.1:{free_port()}")
    with pytest.raises(anthropic.InternalServerError) as e:
        client(down).messages.create(model="m", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 502 and e.value.body["type"] == "error", e.value.body


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def test_a_200_message_conversation_with_images_translates(tollgate, llmock):
    base = gateway(tollgate, llmock)
    messages = []
    for i in range(100):
        messages.append({"role": "user", "content": [{"type": "text", "text": f"turn {i}"},
                                                     {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]})
        messages.append({"role": "assistant", "content": f"answer {i}"})
    messages.append({"role": "user", "content": "last"})
    m = client(base).messages.create(model="m", max_tokens=16, messages=messages)
    assert m.stop_reason == "end_turn" and m.content, m
    sent = llmock.journal()[-1]["body"]
    assert len(sent["messages"]) == 201
    assert sent["messages"][0]["content"] == [{"type": "text", "text": "turn 0"},
                                              {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    assert sent["messages"][199] == {"role": "assistant", "content": "answer 99"}


def test_a_one_mebibyte_prompt_translates(tollgate, llmock):
    base = gateway(tollgate, llmock)
    big = "word " * (1 << 18)  # 1.25 MiB of text
    m = client(base).messages.create(model="m", max_tokens=16, messages=[{"role": "user", "content": big}])
    assert m.stop_reason == "end_turn" and m.usage.input_tokens > 1000, m
    last = llmock.journal()[-1]
    assert (last["path"], last["status"]) == ("/v1/chat/completions", 200), last


def test_token_count_is_estimated_by_the_gateway(tollgate, llmock):
    """An OpenAI-compatible provider has no count_tokens: the gateway answers with an
    estimate (Claude Code asks for it), and nothing goes upstream."""
    base = gateway(tollgate, llmock)
    c = client(base)
    before = len(llmock.journal())
    short = c.messages.count_tokens(model="m", messages=[{"role": "user", "content": "hi"}])
    long = c.messages.count_tokens(model="m", system="Be brief.", tools=[WEATHER],
                                   messages=[{"role": "user", "content": "word " * 2000}])
    assert 0 < short.input_tokens < 20 and 2400 < long.input_tokens < 2800, (short, long)
    assert len(llmock.journal()) == before
    with pytest.raises(anthropic.BadRequestError) as e:
        c.messages.count_tokens(model="m", messages=[{"role": "user", "content": "hi"}], extra_body={"mcp_servers": []})
    assert "mcp_servers" in e.value.body["error"]["message"]
