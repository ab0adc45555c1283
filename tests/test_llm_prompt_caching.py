"""The `ai` policy's `promptCaching`: the gateway marks a long system prompt, the conversation
history and (when asked) the tools for caching on Anthropic (`cache_control`, llmock records
what it got) and Bedrock (`cachePoint` blocks, checked by the local Bedrock stand-in); the
current turn and short system prompts are left alone."""
import openai

from conftest import serve_listeners
from test_llm_bedrock import AKID, SECRET, bedrock  # noqa: F401 (the fixture)

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
LONG_SYSTEM = "You are a careful assistant. " * 200  # 1000 words: ~1300 tokens, over minTokens
CONVERSATION = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "reply"}, {"role": "user", "content": "second"}]


def anthropic_gateway(tollgate, llmock, caching):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: anthropic
          hostOverride: "127.0.0.1:{llmock.port}"
          pathPrefix: /anthropic/v1
          provider: {{anthropic: {{model: claude-haiku-4-5}}}}
          policies:
            backendAuth: {{key: sk-ant}}
            ai:
              routes: {{/v1/chat/completions: completions}}
              promptCaching: {caching}
""")


def ask(base, system=LONG_SYSTEM, **kw):
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    return c.chat.completions.create(model="m", max_tokens=20, messages=[{"role": "system", "content": system}, *CONVERSATION], **kw)


def test_anthropic_gets_cache_control_markers(tollgate, llmock):
    base = anthropic_gateway(tollgate, llmock, "{cacheTools: true}")
    assert ask(base, tools=[WEATHER]).choices[0].message is not None
    sent = llmock.journal()[-1]["body"]
    assert sent["system"][-1]["cache_control"] == {"type": "ephemeral"}, sent["system"]
    assert sent["messages"][1]["content"][-1]["cache_control"] == {"type": "ephemeral"}, sent["messages"]
    assert all("cache_control" not in b for b in sent["messages"][2]["content"]), "the current turn is not marked"
    assert sent["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    # A short system prompt is under minTokens; cacheSystem false leaves it alone too.
    ask(base, system="Be brief.")
    assert "cache_control" not in llmock.journal()[-1]["body"]["system"][-1]


def test_options_turn_markers_off(tollgate, llmock):
    base = anthropic_gateway(tollgate, llmock, "{cacheSystem: false, cacheMessages: true, cacheMessageOffset: 1}")
    ask(base)
    sent = llmock.journal()[-1]["body"]
    assert "cache_control" not in sent["system"][-1]
    assert sent["messages"][0]["content"][-1]["cache_control"] == {"type": "ephemeral"}, "one message further back"
    assert all("cache_control" not in b for m in sent["messages"][1:] for b in m["content"])


def test_bedrock_gets_cache_points(tollgate, bedrock):  # noqa: F811
    base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: bedrock
          hostOverride: "127.0.0.1:{bedrock.port}"
          provider: {{bedrock: {{region: eu-west-1, model: anthropic.claude-3-5-sonnet-20240620-v1:0}}}}
          policies:
            backendAuth: {{aws: {{accessKeyId: {AKID}, secretAccessKey: "{SECRET}"}}}}
            ai:
              routes: {{/v1/chat/completions: completions}}
              promptCaching: {{cacheTools: true}}
""")
    assert ask(base, tools=[WEATHER]).choices[0].message is not None
    sent = bedrock.requests()[-1]
    point = {"cachePoint": {"type": "default"}}
    assert sent["signature_ok"] and sent["body"]["system"][-1] == point, sent["body"]["system"][-1]
    assert sent["body"]["messages"][1]["content"][-1] == point
    assert point not in sent["body"]["messages"][2]["content"]
    assert sent["body"]["toolConfig"]["tools"][-1] == point
