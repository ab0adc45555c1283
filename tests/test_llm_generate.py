"""Gemini's generateContent API for clients (`ai.routes` type `generateContent`): the official
google-genai SDK talks to tollgate, llmock answers as OpenAI Chat Completions, and tollgate
translates both ways, streaming included, with a function-call round trip."""
import pytest
from google import genai
from google.genai import errors, types

from conftest import free_port, serve_listeners


def gateway(tollgate, upstream):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: openai-compatible
          hostOverride: "{upstream}"
          provider: {{openAI: {{model: gpt-4o-mini}}}}
          policies:
            backendAuth: {{key: sk-provider}}
            ai:
              routes: {{":generateContent": generateContent, ":streamGenerateContent": generateContent}}
""")


def client(base):
    return genai.Client(api_key="goog-client-key", http_options=types.HttpOptions(base_url=base, retry_options=types.HttpRetryOptions(attempts=1)))


WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Current weather of a city",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})])


def test_generate_content_and_stream(tollgate, llmock):
    base = gateway(tollgate, f"127.0.0.1:{llmock.port}")
    c = client(base)
    r = c.models.generate_content(model="gemini-2.5-flash", contents="hi",
                                  config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=64))
    assert r.text and "Hello" in r.text, r
    assert r.candidates[0].finish_reason == types.FinishReason.STOP and r.usage_metadata.candidates_token_count > 0, r
    sent = llmock.journal()[-1]
    assert sent["path"] == "/v1/chat/completions" and sent["body"]["model"] == "gpt-4o-mini", sent
    assert sent["body"]["messages"][0] == {"role": "system", "content": "Be brief."} and sent["body"]["max_completion_tokens"] == 64
    pieces = [ch.text for ch in c.models.generate_content_stream(model="gemini-2.5-flash", contents="hi") if ch.text]
    assert len(pieces) > 1 and "Hello" in "".join(pieces), pieces


@pytest.mark.parametrize("stream", [False, True])
def test_function_call_round_trip(tollgate, llmock, stream):
    base = gateway(tollgate, f"127.0.0.1:{llmock.port}")
    c = client(base)
    config = types.GenerateContentConfig(tools=[WEATHER], automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    contents = [types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])]

    def ask():
        if not stream:
            return c.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
        chunks = list(c.models.generate_content_stream(model="gemini-2.5-flash", contents=contents, config=config))
        calls = [p for ch in chunks for p in (ch.candidates[0].content.parts or []) if p.function_call]
        text = "".join(ch.text or "" for ch in chunks)
        return calls, text, chunks[-1].candidates[0].finish_reason

    if stream:
        calls, _, _ = ask()
        call = calls[0].function_call
    else:
        first = ask()
        call = first.function_calls[0]
    assert call.name == "get_weather" and isinstance(call.args, dict), call
    contents.append(types.Content(role="model", parts=[types.Part(function_call=call)]))
    contents.append(types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": "18C and sunny"})]))
    if stream:
        _, text, finish = ask()
        assert text and finish == types.FinishReason.STOP, text
    else:
        second = ask()
        assert second.text and second.candidates[0].finish_reason == types.FinishReason.STOP, second
    sent = llmock.journal()[-1]["body"]
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"], sent["messages"]
    assert sent["messages"][2]["tool_call_id"] == sent["messages"][1]["tool_calls"][0]["id"], sent["messages"]
    assert sent["tools"][0]["function"]["name"] == "get_weather"


def test_errors_in_googles_shape(tollgate, llmock, openapi_service):
    c = client(gateway(tollgate, f"127.0.0.1:{llmock.port}"))
    with pytest.raises(errors.ClientError) as e:
        c.models.generate_content(model="gemini-2.5-flash", contents="hi",
                                  config=types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())]))
    assert e.value.code == 400 and "googleSearch" in e.value.message, e.value
    llmock.scenario([{"type": "fail", "status": 429, "times": 1}])
    with pytest.raises(errors.ClientError) as e:
        c.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert e.value.code == 429 and e.value.status == "RESOURCE_EXHAUSTED", e.value
    # The client's Google key does not reach the provider.
    c = client(gateway(tollgate, f"127.0.0.1:{openapi_service.port}"))
    with pytest.raises(errors.ClientError):
        c.models.generate_content(model="gemini-2.5-flash", contents="hi")
    h = openapi_service.requests()[-1]["headers"]
    assert "x-goog-api-key" not in h and h.get("authorization") == "Bearer sk-provider", h
    down = client(gateway(tollgate, f"127.0.0.1:{free_port()}"))
    with pytest.raises(errors.ServerError) as e:
        down.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert e.value.code == 502 and e.value.status == "INTERNAL", e.value
