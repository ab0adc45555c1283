"""The translation matrix: every client API (the official OpenAI SDK's Chat Completions and
Responses, the Anthropic SDK's Messages, the google-genai SDK's generateContent) on every
provider (openAI, anthropic and gemini on llmock; azure, vertex and bedrock on local stand-ins
that check what the real services check), whole and streamed, each with a tool round trip: the
SDK parses every answer, the tool call and the text arrive, usage is reported."""
import anthropic
import openai
import pytest
from google import genai
from google.genai import types

from conftest import serve_listeners
from test_llm_azure import KEY as AZURE_KEY, azure  # noqa: F401 (fixture)
from test_llm_bedrock import AKID, MODEL as BEDROCK_MODEL, SECRET, bedrock  # noqa: F401 (fixture)
from test_llm_vertex import vertex  # noqa: F401 (fixture)

CLIENTS = ["chat", "responses", "messages", "generate"]
PROVIDERS = ["openAI", "anthropic", "gemini", "azure", "vertex", "bedrock"]
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
QUESTION = "What is the weather in Paris?"


def backend(provider, request, workdir):
    """The `ai` backend block for `provider`, its upstream started by its fixture."""
    llmock = request.getfixturevalue("llmock")
    if provider == "openAI":
        return f'hostOverride: "127.0.0.1:{llmock.port}"\n          provider: {{openAI: {{model: gpt-4o-mini}}}}'
    if provider == "anthropic":
        return f'hostOverride: "127.0.0.1:{llmock.port}"\n          pathPrefix: /anthropic/v1\n          provider: {{anthropic: {{model: claude-sonnet-5}}}}'
    if provider == "gemini":
        return f'hostOverride: "127.0.0.1:{llmock.port}"\n          pathPrefix: /gemini/v1beta\n          provider: {{gemini: {{model: gemini-2.5-flash}}}}'
    if provider == "azure":
        az = request.getfixturevalue("azure")
        return (f'hostOverride: "127.0.0.1:{az.port}"\n          provider: {{azure: {{resourceName: r, resourceType: openAI, model: gpt-4o}}}}'
                f'\n          policies: {{backendAuth: {{key: {AZURE_KEY}}}}}')
    if provider == "vertex":
        vx = request.getfixturevalue("vertex")
        return (f'hostOverride: "127.0.0.1:{vx.port}"\n          provider: {{vertex: {{projectId: proj-1, region: us-central1, model: gemini-2.5-flash}}}}'
                f'\n          policies: {{backendAuth: {{gcp: {{credential: {{file: {workdir / "sa.json"}}}}}}}}}')
    br = request.getfixturevalue("bedrock")
    return (f'hostOverride: "127.0.0.1:{br.port}"\n          provider: {{bedrock: {{region: eu-west-1, model: "{BEDROCK_MODEL}"}}}}'
            f'\n          policies: {{backendAuth: {{aws: {{accessKeyId: {AKID}, secretAccessKey: "{SECRET}"}}}}}}')


def chat_round(base, stream):
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "weather", "parameters": SCHEMA}}]
    messages = [{"role": "user", "content": QUESTION}]

    def ask():
        if not stream:
            r = c.chat.completions.create(model="m", tools=tools, messages=messages)
            return r.choices[0], r.usage
        with c.chat.completions.stream(model="m", tools=tools, messages=messages, stream_options={"include_usage": True}) as s:
            for _ in s:
                pass
            r = s.get_final_completion()
            return r.choices[0], r.usage

    first, usage = ask()
    call = first.message.tool_calls[0]
    assert call.function.name == "get_weather" and usage and usage.completion_tokens > 0, (first, usage)
    messages += [first.message.model_dump(exclude_none=True), {"role": "tool", "tool_call_id": call.id, "content": "18C"}]
    second, _ = ask()
    return second.message.content


def responses_round(base, stream):
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="client-key", max_retries=0)
    tools = [{"type": "function", "name": "get_weather", "description": "weather", "parameters": SCHEMA}]
    items = [{"role": "user", "content": QUESTION}]

    def ask():
        if not stream:
            return c.responses.create(model="m", tools=tools, input=items)
        with c.responses.stream(model="m", tools=tools, input=items) as s:
            for _ in s:
                pass
            return s.get_final_response()

    first = ask()
    call = [o for o in first.output if o.type == "function_call"][0]
    assert call.name == "get_weather" and first.usage and first.usage.output_tokens > 0, first
    items += [call.model_dump(exclude_none=True), {"type": "function_call_output", "call_id": call.call_id, "output": "18C"}]
    return ask().output_text


def messages_round(base, stream):
    a = anthropic.Anthropic(base_url=base, api_key="client-key", max_retries=0)
    tools = [{"name": "get_weather", "description": "weather", "input_schema": SCHEMA}]
    messages = [{"role": "user", "content": QUESTION}]

    def ask():
        kw = dict(model="m", max_tokens=200, tools=tools, messages=messages)
        if not stream:
            return a.messages.create(**kw)
        with a.messages.stream(**kw) as s:
            for _ in s:
                pass
            return s.get_final_message()

    first = ask()
    call = [b for b in first.content if b.type == "tool_use"][0]
    assert call.name == "get_weather" and first.usage.output_tokens > 0, first
    messages += [{"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C"}]}]
    second = ask()
    return "".join(b.text for b in second.content if b.type == "text")


def generate_round(base, stream):
    c = genai.Client(api_key="client-key", http_options=types.HttpOptions(base_url=base, retry_options=types.HttpRetryOptions(attempts=1)))
    config = types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=[types.FunctionDeclaration(name="get_weather", description="weather", parameters_json_schema=SCHEMA)])],
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True))
    contents = [types.Content(role="user", parts=[types.Part(text=QUESTION)])]

    def ask():
        if not stream:
            r = c.models.generate_content(model="gemini-x", contents=contents, config=config)
            return r.function_calls or [], r.text, r.usage_metadata
        chunks = list(c.models.generate_content_stream(model="gemini-x", contents=contents, config=config))
        calls = [p.function_call for ch in chunks for p in (ch.candidates[0].content.parts or []) if p.function_call]
        usage = next((ch.usage_metadata for ch in reversed(chunks) if ch.usage_metadata), None)
        return calls, "".join(ch.text or "" for ch in chunks), usage

    calls, _, usage = ask()
    assert calls and calls[0].name == "get_weather" and usage and usage.candidates_token_count, (calls, usage)
    contents += [types.Content(role="model", parts=[types.Part(function_call=calls[0])]),
                 types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"result": "18C"})])]
    return ask()[1]


ROUNDS = {"chat": chat_round, "responses": responses_round, "messages": messages_round, "generate": generate_round}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("client", CLIENTS)
def test_tool_round_trip(tollgate, workdir, request, client, provider, stream):
    base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: p
          {backend(provider, request, workdir)}
      policies:
        ai:
          routes: {{/v1/chat/completions: completions, /v1/responses: responses, /v1/messages: messages, ":generateContent": generateContent, ":streamGenerateContent": generateContent}}
""")
    text = ROUNDS[client](base, stream)
    assert text and text.strip(), f"{client} on {provider}: no text after the tool result"
