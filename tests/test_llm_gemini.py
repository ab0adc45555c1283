"""The Gemini provider (`ai.provider.gemini`): OpenAI SDK clients translated to Gemini's
`streamGenerateContent` (llmock serves it at /gemini/v1beta) and back, whole or streamed, with a
tool round trip; the key goes as `x-goog-api-key`; the model in the path is checked."""
import json

import openai
import pytest

from conftest import serve_listeners

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Current weather of a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def gateway(tollgate, upstream_port, model="gemini-2.5-flash", prefix="/gemini/v1beta"):
    model_line = f"{{model: {model}}}" if model else "{}"
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: gemini
          hostOverride: "127.0.0.1:{upstream_port}"
          pathPrefix: {prefix}
          provider: {{gemini: {model_line}}}
          policies:
            backendAuth: {{key: goog-provider-key}}
            ai:
              routes: {{/v1/chat/completions: completions}}
""")


def oai(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="sk-client", max_retries=0)


def test_chat_answer_and_stream_from_gemini(tollgate, llmock):
    base = gateway(tollgate, llmock.port)
    r = oai(base).chat.completions.create(model="gpt-4o", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert r.object == "chat.completion" and r.choices[0].finish_reason == "stop" and r.choices[0].message.content, r
    assert r.usage.completion_tokens > 0, r
    sent = llmock.journal()[-1]
    assert sent["path"] == "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent" and sent["status"] == 200, sent
    assert sent["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}, sent["body"]
    assert sent["body"]["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}], sent["body"]
    chunks = list(oai(base).chat.completions.create(model="gpt-4o", stream=True, stream_options={"include_usage": True},
                                                    messages=[{"role": "user", "content": "hi"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage and chunks[-1].usage.completion_tokens > 0, chunks


@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_through_gemini(tollgate, llmock, stream):
    base = gateway(tollgate, llmock.port)
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
    messages.append({"role": "assistant", "content": None, "tool_calls": [call.model_dump(exclude_none=True)]})
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"})
    second = ask()
    assert second.finish_reason == "stop" and second.message.content, second
    sent = llmock.journal()[-1]["body"]
    assert [m["role"] for m in sent["contents"]] == ["user", "model", "user"], sent["contents"]
    assert sent["contents"][1]["parts"][0]["functionCall"]["name"] == "get_weather"
    assert sent["contents"][2]["parts"] == [{"functionResponse": {"name": "get_weather", "response": {"content": "18C and sunny"}}}]
    f = WEATHER["function"]
    declared = {"name": f["name"], "description": f["description"], "parametersJsonSchema": f["parameters"]}
    assert sent["tools"] == [{"functionDeclarations": [declared]}], sent["tools"]


def test_the_key_header_and_the_path_model(tollgate, llmock, openapi_service):
    base = gateway(tollgate, openapi_service.port, model=None, prefix="/v1beta")
    with pytest.raises(openai.NotFoundError):
        oai(base).chat.completions.create(model="gemini-2.0-flash", messages=[{"role": "user", "content": "hi"}])
    seen = openapi_service.requests()[-1]
    assert seen["path"] == "/v1beta/models/gemini-2.0-flash:streamGenerateContent" and seen["query"] == {"alt": "sse"}, seen
    assert seen["headers"].get("x-goog-api-key") == "goog-provider-key" and "authorization" not in seen["headers"], seen["headers"]
    # A model that would change the path is refused before anything goes upstream.
    before = len(openapi_service.requests())
    for bad in ["../../admin", "gemini?x=1", "a/b", ""]:
        with pytest.raises(openai.BadRequestError) as e:
            oai(base).chat.completions.create(model=bad, messages=[{"role": "user", "content": "hi"}])
        assert "model" in e.value.body["message"], e.value.body
    assert len(openapi_service.requests()) == before
