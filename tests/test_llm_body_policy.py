"""The `ai` policy's request body rules: `prompts` (agentgateway's llm-prompt-enrichment example,
and each client API's place for them), `modelAliases`, `defaults` and `overrides`, seen in what
the provider (llmock) received."""
import time

import anthropic
import openai

from conftest import serve_listeners

SCHEMA_LINE = "# yaml-language-server: $schema=https://agentgateway.dev/schema/config\n"


def test_prompt_enrichment_example(tollgate, llmock):
    """examples/llm-prompt-enrichment, its upstream on 127.0.0.1."""
    base = serve_listeners(tollgate, f"""  - name: openai-prompt-enrichment
    routes:
    - backends:
      - ai:
          name: openai
          hostOverride: "127.0.0.1:{llmock.port}"
          provider:
            openAI: {{}}
      policies:
        ai:
          routes:
            /v1/chat/completions: completions
            /v1/responses: responses
          prompts:
            append:
            - role: system
              content: Respond with emojis only
""", settings=SCHEMA_LINE)
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert llmock.journal()[-1]["body"]["messages"] == [{"role": "user", "content": "hi"}, {"role": "system", "content": "Respond with emojis only"}]
    c.responses.create(model="gpt-4o", input="hi")
    sent = llmock.journal()[-1]
    assert sent["path"] == "/v1/responses", sent
    assert sent["body"]["input"] == [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                                     {"role": "system", "content": "Respond with emojis only"}], sent["body"]


def gateway(tollgate, llmock, provider="openAI: {}", prefix=""):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: p
          hostOverride: "127.0.0.1:{llmock.port}"
          {prefix}
          provider: {{{provider}}}
      policies:
        ai:
          routes: {{/v1/chat/completions: completions, /v1/messages: messages}}
          modelAliases:
            fast: gpt-4o-mini
            "claude-*": claude-sonnet-4-5
          defaults: {{temperature: 0.25, top_p: 0.5}}
          overrides: {{max_tokens: 77}}
          prompts:
            prepend:
            - role: system
              content: House rules.
""")


def test_aliases_defaults_overrides_on_chat(tollgate, llmock):
    base = gateway(tollgate, llmock)
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    c.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}], top_p=0.9, max_tokens=5)
    body = llmock.journal()[-1]["body"]
    assert body["model"] == "gpt-4o-mini", body
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.25, 0.9, 77), body
    assert body["messages"][0] == {"role": "system", "content": "House rules."}, body
    # A model with no alias goes as asked; the log records what the client asked for.
    c.chat.completions.create(model="gpt-4.1", messages=[{"role": "user", "content": "hi"}])
    assert llmock.journal()[-1]["body"]["model"] == "gpt-4.1"
    deadline = time.time() + 5
    while "gen_ai.request.model=fast" not in (tollgate.workdir / "config.yaml.log").read_text():
        assert time.time() < deadline, "the access log does not record the requested model"
        time.sleep(0.05)


def test_rules_apply_to_messages_before_translation(tollgate, llmock):
    # A Messages client on the anthropic provider: the system prompt joins `system`, the
    # wildcard alias picks the model.
    base = gateway(tollgate, llmock, provider="anthropic: {}", prefix="pathPrefix: /anthropic/v1")
    a = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
    a.messages.create(model="claude-anything", max_tokens=5, system="Be brief.", messages=[{"role": "user", "content": "hi"}])
    body = llmock.journal()[-1]["body"]
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 77, body
    assert body["system"] == [{"type": "text", "text": "House rules."}, {"type": "text", "text": "Be brief."}], body
    # On an OpenAI provider the same Messages request is translated after the rules.
    tollgate.stop()
    base = gateway(tollgate, llmock)
    a = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
    a.messages.create(model="claude-x", max_tokens=5, system="Be brief.", messages=[{"role": "user", "content": "hi"}])
    body = llmock.journal()[-1]["body"]
    assert body["model"] == "claude-sonnet-4-5", body
    assert body["messages"][0]["role"] == "system" and "House rules." in str(body["messages"][0]["content"]), body
