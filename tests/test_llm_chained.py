"""Client APIs on providers that speak neither the client's API nor Chat Completions, translated
through Chat: the Anthropic SDK's Messages on the gemini provider, and the google-genai SDK's
generateContent on the anthropic provider (llmock serves both provider APIs), whole and streamed,
with a tool round trip and errors in the client's shape."""
import anthropic
import pytest
from google import genai
from google.genai import errors, types

from conftest import serve_listeners


def gateway(tollgate, llmock, provider, prefix):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: p
          hostOverride: "127.0.0.1:{llmock.port}"
          pathPrefix: {prefix}
          provider: {provider}
          policies:
            backendAuth: {{key: provider-key}}
            ai:
              routes: {{/v1/messages: messages, ":generateContent": generateContent, ":streamGenerateContent": generateContent}}
""")


WEATHER = {"name": "get_weather", "description": "Current weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.mark.parametrize("stream", [False, True])
def test_messages_client_on_gemini(tollgate, llmock, stream):
    base = gateway(tollgate, llmock, "{gemini: {model: gemini-2.5-flash}}", "/gemini/v1beta")
    a = anthropic.Anthropic(base_url=base, api_key="client-key", max_retries=0)
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]

    def ask():
        kw = dict(model="claude-x", max_tokens=200, system="Be brief.", tools=[WEATHER], messages=messages)
        if not stream:
            return a.messages.create(**kw)
        with a.messages.stream(**kw) as s:
            for _ in s:
                pass
            return s.get_final_message()

    first = ask()
    calls = [b for b in first.content if b.type == "tool_use"]
    assert first.stop_reason == "tool_use" and calls and calls[0].name == "get_weather", first
    assert first.usage.output_tokens > 0, first.usage
    sent = llmock.journal()[-1]
    assert sent["path"] == "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent", sent["path"]
    assert sent["body"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}, sent["body"]
    assert sent["body"]["tools"][0]["functionDeclarations"][0]["name"] == "get_weather", sent["body"]
    messages.append({"role": "assistant", "content": [c.model_dump(exclude_none=True) for c in first.content]})
    messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].id, "content": "18C and sunny"}]})
    second = ask()
    assert second.stop_reason == "end_turn" and second.content[0].text, second
    contents = llmock.journal()[-1]["body"]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"], contents
    assert contents[1]["parts"][-1]["functionCall"]["name"] == "get_weather", contents
    assert contents[2]["parts"][0]["functionResponse"]["name"] == "get_weather", contents


def test_messages_client_on_gemini_errors(tollgate, llmock):
    base = gateway(tollgate, llmock, "{gemini: {model: gemini-2.5-flash}}", "/gemini/v1beta")
    llmock.scenario([{"type": "fail", "status": 429, "times": 1}])
    a = anthropic.Anthropic(base_url=base, api_key="client-key", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as e:
        a.messages.create(model="claude-x", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "rate_limit_error", e.value.body


GENAI_WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Current weather of a city",
    parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})])


def genai_client(base):
    return genai.Client(api_key="goog-client-key", http_options=types.HttpOptions(base_url=base, retry_options=types.HttpRetryOptions(attempts=1)))


@pytest.mark.parametrize("stream", [False, True])
def test_generate_content_client_on_anthropic(tollgate, llmock, stream):
    base = gateway(tollgate, llmock, "{anthropic: {model: claude-sonnet-4-5}}", "/anthropic/v1")
    c = genai_client(base)
    config = types.GenerateContentConfig(tools=[GENAI_WEATHER], system_instruction="Be brief.", max_output_tokens=200,
                                         automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    contents = [types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])]

    def ask():
        if not stream:
            r = c.models.generate_content(model="gemini-2.5-flash", contents=contents, config=config)
            return r.function_calls or [], r.text, r.candidates[0].finish_reason, r.usage_metadata
        chunks = list(c.models.generate_content_stream(model="gemini-2.5-flash", contents=contents, config=config))
        calls = [p.function_call for ch in chunks for p in (ch.candidates[0].content.parts or []) if p.function_call]
        return calls, "".join(ch.text or "" for ch in chunks), chunks[-1].candidates[0].finish_reason, chunks[-1].usage_metadata

    calls, _, _, usage = ask()
    assert calls and calls[0].name == "get_weather" and isinstance(calls[0].args, dict), calls
    assert usage and usage.candidates_token_count > 0, usage
    sent = llmock.journal()[-1]
    assert sent["path"] == "/anthropic/v1/messages" and sent["body"]["model"] == "claude-sonnet-4-5", sent
    assert sent["body"]["system"] in ("Be brief.", [{"type": "text", "text": "Be brief."}]), sent["body"]
    assert sent["body"]["tools"][0]["name"] == "get_weather", sent["body"]
    contents.append(types.Content(role="model", parts=[types.Part(function_call=calls[0])]))
    contents.append(types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": "18C"})]))
    _, text, finish, _ = ask()
    assert text and finish == types.FinishReason.STOP, text
    msgs = llmock.journal()[-1]["body"]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"], msgs
    tool_use = [b for b in msgs[1]["content"] if b["type"] == "tool_use"][0]
    tool_result = [b for b in msgs[2]["content"] if b["type"] == "tool_result"][0]
    assert tool_result["tool_use_id"] == tool_use["id"], msgs


def test_generate_content_client_on_anthropic_errors(tollgate, llmock):
    base = gateway(tollgate, llmock, "{anthropic: {model: claude-sonnet-4-5}}", "/anthropic/v1")
    llmock.scenario([{"type": "fail", "status": 529, "times": 1}])
    c = genai_client(base)
    with pytest.raises(errors.APIError) as e:
        c.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert e.value.code == 529 and e.value.status, (e.value.code, e.value.status)


@pytest.mark.parametrize("stream", [False, True])
def test_generate_content_client_on_gemini_is_native(tollgate, llmock, stream):
    base = gateway(tollgate, llmock, "{gemini: {model: gemini-2.5-pro}}", "/gemini/v1beta")
    c = genai_client(base)
    config = types.GenerateContentConfig(system_instruction="Be brief.", top_k=7, max_output_tokens=50)
    if stream:
        chunks = list(c.models.generate_content_stream(model="gemini-2.5-flash", contents="hi", config=config))
        text, usage = "".join(ch.text or "" for ch in chunks), chunks[-1].usage_metadata
    else:
        r = c.models.generate_content(model="gemini-2.5-flash", contents="hi", config=config)
        text, usage = r.text, r.usage_metadata
    assert text and usage.candidates_token_count > 0, usage
    sent = llmock.journal()[-1]
    method = "streamGenerateContent" if stream else "generateContent"
    # The backend's model in the path; the body as the client wrote it (topK kept: no translation).
    assert sent["path"] == f"/gemini/v1beta/models/gemini-2.5-pro:{method}", sent["path"]
    assert sent["body"]["generationConfig"]["topK"] == 7 and sent["body"]["systemInstruction"]["parts"][0]["text"] == "Be brief.", sent["body"]
    # Usage read from usageMetadata reaches the access log.
    import time
    deadline = time.time() + 5
    while True:
        lines = [l for l in (tollgate.workdir / "config.yaml.log").read_text().splitlines() if f":{method}" in l and "gen_ai.usage.output_tokens=" in l]
        if lines or time.time() > deadline:
            break
        time.sleep(0.05)
    assert lines and f"gen_ai.usage.output_tokens={usage.candidates_token_count}" in lines[-1], lines
