"""The `custom` provider: a server described by the APIs it accepts (`formats`, each at its own
`path`). Each call goes to the API closest to the client's (a Chat client to Chat, else Messages;
a Messages client to Messages, else Chat), translated when they differ. llmock is the server
(Chat at /v1/chat/completions, Messages at /anthropic/v1/messages); the clients are the official
OpenAI and Anthropic SDKs."""
import time

import anthropic
import openai
import pytest

from conftest import load_error, serve_listeners
from test_llm_failover import backup  # noqa: F401 (the fixture)


def gateway(tollgate, llmock, custom):
    return serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: mine
          hostOverride: "127.0.0.1:{llmock.port}"
          provider:
            custom: {custom}
      policies:
        ai:
          routes: {{/v1/chat/completions: completions, /v1/messages: messages, /v1/messages/count_tokens: anthropicTokenCount, /v1/embeddings: embeddings}}
""")


def log_lines(tollgate, needle, count):
    deadline = time.time() + 5
    while True:
        lines = [l for l in (tollgate.workdir / "config.yaml.log").read_text().splitlines() if needle in l]
        if len(lines) >= count or time.time() > deadline:
            return lines
        time.sleep(0.05)


def chat(base, stream=False):
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
    r = c.chat.completions.create(model="client-model", messages=[{"role": "user", "content": "hi"}], stream=stream)
    return "".join(ch.choices[0].delta.content or "" for ch in r if ch.choices) if stream else r.choices[0].message.content


def messages(base, stream=False):
    c = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0)
    if stream:
        with c.messages.stream(model="client-model", max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as s:
            return "".join(s.text_stream)
    return c.messages.create(model="client-model", max_tokens=64, messages=[{"role": "user", "content": "hi"}]).content[0].text


def test_a_messages_only_server_serves_chat_clients_too(tollgate, llmock):
    base = gateway(tollgate, llmock, "{model: served-model, formats: [{type: messages, path: /anthropic/v1/messages}]}")
    assert chat(base) and chat(base, stream=True)
    assert messages(base) and messages(base, stream=True)
    sent = llmock.journal()
    assert [s["path"] for s in sent] == ["/anthropic/v1/messages"] * 4, sent
    # The Chat clients' requests arrived as Messages, with the backend's model.
    assert all(s["body"]["model"] == "served-model" and s["body"]["max_tokens"] for s in sent), sent
    assert "gen_ai.provider.name=custom" in log_lines(tollgate, "gen_ai.request.model=", 4)[-1]


def test_a_chat_only_server_serves_messages_clients_and_refuses_what_it_lacks(tollgate, llmock):
    base = gateway(tollgate, llmock, "{providerOverride: mistral, formats: [{type: completions}]}")
    assert messages(base) and messages(base, stream=True) and chat(base)
    assert [s["path"] for s in llmock.journal()] == ["/v1/chat/completions"] * 3
    assert "gen_ai.provider.name=mistral" in log_lines(tollgate, "gen_ai.request.model=", 3)[-1]
    # No embeddings format: a 400 naming why, and nothing upstream.
    with pytest.raises(openai.BadRequestError) as e:
        openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0).embeddings.create(model="m", input="x")
    assert "no format" in str(e.value)
    # No token count format: the gateway's own estimate.
    n = anthropic.Anthropic(base_url=base, api_key="k", max_retries=0).messages.count_tokens(model="m", messages=[{"role": "user", "content": "hello there"}])
    assert n.input_tokens > 0
    assert len(llmock.journal()) == 3


def test_both_formats_each_client_goes_native(tollgate, llmock):
    base = gateway(tollgate, llmock, "{formats: [{type: completions, path: /v1/chat/completions}, {type: messages, path: /anthropic/v1/messages}]}")
    chat(base)
    messages(base)
    assert [s["path"] for s in llmock.journal()] == ["/v1/chat/completions", "/anthropic/v1/messages"]


@pytest.mark.parametrize("provider,words", [
    ("{custom: {formats: [{type: completions}]}}", "hostOverride"),
    ("{custom: {formats: [{type: realtime}]}}", "not supported yet"),
    ("{custom: {formats: []}}", "at least one format"),
    ("{custom: {formats: [{type: carrier-pigeon}]}}", "unknown variant"),
])
def test_bad_custom_providers_are_load_errors(workdir, provider, words):
    host = "" if "hostOverride" in words else "hostOverride: 127.0.0.1:9, "
    out = load_error(workdir, f"binds:\n- port: 9\n  listeners:\n  - routes:\n    - backends:\n      - ai: {{name: c, {host}provider: {provider}}}\n")
    assert words in out, out


def test_a_custom_provider_takes_over_in_a_group(tollgate, llmock, backup):
    from test_llm_failover import groups_config
    cfg = groups_config(llmock.port, backup.port, secondary_provider="custom: {model: second, formats: [{type: messages, path: /anthropic/v1/messages}]}")
    base = serve_listeners(tollgate, cfg)
    llmock.scenario([{"type": "fail", "status": 503, "times": 1}])
    assert chat(base)
    sent = backup.journal()
    assert [s["path"] for s in sent] == ["/anthropic/v1/messages"] and sent[0]["body"]["model"] == "second", sent


def test_path_override_serves_chat_formats_without_a_path(tollgate):
    from hostile import Recorder
    r = Recorder()
    try:
        base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - ai:
          name: mine
          hostOverride: "127.0.0.1:{r.port}"
          pathOverride: /serve/chat
          provider: {{custom: {{formats: [{{type: completions}}, {{type: embeddings, path: /serve/embed}}]}}}}
      policies:
        ai:
          routes: {{/v1/chat/completions: completions, /v1/embeddings: embeddings}}
""")
        c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)
        for call in (lambda: c.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]),
                     lambda: c.embeddings.create(model="m", input="x")):
            try:
                call()
            except Exception:
                pass  # the recorder's answer is not OpenAI's
        assert r.paths == ["/serve/chat", "/serve/embed"], r.paths
    finally:
        r.close()
