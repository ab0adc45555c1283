"""`ai.groups` failover: priority tiers of providers; a provider that answers 429 / 5xx, is
down, or is slower than `backendRequestTimeout` before the client has seen anything is evicted
and the request goes to the next provider, translated for its API; the client (official SDKs)
never sees the failed attempt. Providers are llmock instances (its scenarios inject the faults)
and the Azure stand-in (which checks its own key)."""
import time

import anthropic
import openai
import pytest
import requests

from conftest import VENV_BIN, Proc, free_port, serve_listeners, start_logged_service, wait_port
from test_llm_bedrock import bedrock  # noqa: F401 (the fixture)
from test_llm_vertex import vertex  # noqa: F401 (the fixture)


def start_llmock(workdir, name):
    port = free_port()
    p = Proc([str(VENV_BIN / "llmock"), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
              "--response-style", "hello", "--stream-chunk-delay-ms", "20"], workdir / f"{name}.log")
    wait_port(port, proc=p.proc)
    return port, p


@pytest.fixture
def backup(workdir):
    from conftest import Llmock
    port, p = start_llmock(workdir, "llmock-backup")
    yield Llmock(port, p)
    p.stop()


def prefix(provider):
    # llmock serves Anthropic's API under /anthropic.
    return "\n              pathPrefix: /anthropic/v1" if provider.startswith("anthropic") else ""


def groups_config(primary, secondary, primary_provider="openAI: {model: primary-model}",
                  secondary_provider="openAI: {model: secondary-model}", route_policies="", secondary_policies=""):
    return f"""  - routes:
    - {route_policies}backends:
      - ai:
          groups:
          - providers:
            - name: primary
              hostOverride: "127.0.0.1:{primary}"
              provider: {{{primary_provider}}}{prefix(primary_provider)}
          - providers:
            - name: secondary
              hostOverride: "127.0.0.1:{secondary}"
              provider: {{{secondary_provider}}}{prefix(secondary_provider)}
{secondary_policies}        policies:
          ai:
            routes: {{/v1/chat/completions: completions, /v1/messages: messages, /v1/models: models}}
"""


def client(base):
    return openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0)


def ask(base, stream=False, content="hi"):
    c = client(base)
    if not stream:
        return c.chat.completions.create(model="m", messages=[{"role": "user", "content": content}]).choices[0].message.content
    return "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": content}], stream=True) if ch.choices)


def models_sent(mock):
    return [r["body"]["model"] for r in mock.journal() if isinstance(r.get("body"), dict) and "model" in r["body"]]


def log_lines(tollgate, needle, count=1, timeout=5):
    deadline = time.time() + timeout
    while True:
        lines = [l for l in (tollgate.workdir / "config.yaml.log").read_text().splitlines() if needle in l]
        if len(lines) >= count or time.time() > deadline:
            return lines
        time.sleep(0.05)


@pytest.mark.parametrize("status", [503, 500, 429])
@pytest.mark.parametrize("stream", [False, True])
def test_error_status_fails_over_unseen(tollgate, llmock, backup, status, stream):
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port))
    llmock.scenario([{"type": "fail", "status": status, "times": 1}])
    assert ask(base, stream=stream), "no answer"
    assert len(llmock.journal()) == 1, "the primary was tried once"
    assert models_sent(backup) == ["secondary-model"], backup.journal()
    # The access log names the provider that answered and the one that failed.
    lines = log_lines(tollgate, "gen_ai.request.model=")
    assert lines and "secondary" in lines[-1] and f"primary:{status}" in lines[-1], lines


def test_provider_down_fails_over(tollgate, backup):
    dead = free_port()
    base = serve_listeners(tollgate, groups_config(dead, backup.port))
    assert ask(base) and ask(base, stream=True)
    assert models_sent(backup) == ["secondary-model"] * 2


def test_slow_provider_fails_over_after_its_timeout(tollgate, llmock, backup):
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port, route_policies="policies: {timeout: {backendRequestTimeout: 1s}}\n      "))
    llmock.scenario([{"type": "delay", "seconds": 8, "times": 1}])
    started = time.monotonic()
    assert ask(base)
    took = time.monotonic() - started
    assert took < 5, f"took {took:.1f}s: the slow provider was waited for"
    assert models_sent(backup) == ["secondary-model"]


def test_failed_provider_is_evicted_then_tried_again(tollgate, llmock, backup):
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port))
    llmock.scenario([{"type": "fail", "status": 503, "times": 1}])
    assert ask(base)
    assert len(llmock.journal()) == 1
    # Evicted: the next requests go straight to the secondary.
    for _ in range(3):
        assert ask(base)
    assert len(llmock.journal()) == 1 and len(models_sent(backup)) == 4
    # After the back-off (3 s the first time) the primary is back.
    time.sleep(3.3)
    assert ask(base)
    assert len(llmock.journal()) == 2 and llmock.journal()[-1]["status"] == 200, llmock.journal()
    assert len(models_sent(backup)) == 4


def test_every_provider_failing_gives_the_last_answer(tollgate, llmock, backup):
    stats = free_port()
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port), settings=f"config:\n  statsAddr: 127.0.0.1:{stats}\n")
    llmock.scenario([{"type": "fail", "status": 503, "times": 1}])
    backup.scenario([{"type": "fail", "status": 502, "times": 1}])
    with pytest.raises(openai.APIStatusError) as e:
        ask(base)
    assert e.value.status_code == 502, e.value
    assert len(llmock.journal()) == 1 and len(backup.journal()) == 1
    # Both were evicted, and the metrics say so.
    deadline = time.time() + 5
    while True:
        text = requests.get(f"http://127.0.0.1:{stats}/metrics", timeout=5).text
        want = ['tollgate_llm_provider_evictions_total{backend="primary",reason="503"} 1',
                'tollgate_llm_provider_evictions_total{backend="secondary",reason="502"} 1']
        if all(w in text for w in want) or time.time() > deadline:
            break
        time.sleep(0.05)
    assert all(w in text for w in want), [l for l in text.splitlines() if "evictions" in l]


def test_messages_client_fails_over_from_anthropic_to_openai(tollgate, llmock, backup):
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port, primary_provider="anthropic: {model: claude-primary}"))
    llmock.scenario([{"type": "fail", "status": 529, "times": 2}])
    a = anthropic.Anthropic(base_url=base, api_key="client-key", max_retries=0)
    m = a.messages.create(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text and m.model, m
    sent = llmock.journal()
    assert len(sent) == 1 and sent[0]["path"] == "/anthropic/v1/messages" and sent[0]["body"]["model"] == "claude-primary", sent
    # The secondary got the same request as Chat Completions.
    chat = backup.journal()[-1]
    assert chat["path"] == "/v1/chat/completions" and chat["body"]["model"] == "secondary-model", chat
    assert chat["body"]["messages"][-1]["content"] in ("hi", [{"type": "text", "text": "hi"}]), chat["body"]
    # Streaming, the primary evicted now: straight to the secondary, events translated.
    with a.messages.stream(model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as s:
        text = "".join(s.text_stream)
    assert text and len(llmock.journal()) == 1


def test_chat_client_fails_over_from_openai_to_anthropic_streaming(tollgate, llmock, backup):
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port, secondary_provider="anthropic: {model: claude-second}"))
    llmock.scenario([{"type": "fail", "status": 503, "times": 1}])
    assert ask(base, stream=True)
    sent = backup.journal()[-1]
    assert sent["path"] == "/anthropic/v1/messages" and sent["body"]["model"] == "claude-second", sent


def test_each_provider_sends_its_own_key(tollgate, workdir, llmock, backup):
    # The secondary is the Azure stand-in, which refuses any key but its own.
    az, proc = start_logged_service(workdir, "azure", "azure_openai_fake.py", backup.port, "second-key", "d")
    try:
        cfg = groups_config(llmock.port, az.port, secondary_provider="azure: {resourceName: r, resourceType: openAI}",
                            secondary_policies="              policies: {backendAuth: {key: second-key}}\n")
        cfg = cfg.replace('              provider: {openAI: {model: primary-model}}\n',
                          '              provider: {openAI: {model: primary-model}}\n              policies: {backendAuth: {key: first-key}}\n')
        base = serve_listeners(tollgate, cfg)
        llmock.scenario([{"type": "fail", "status": 500, "times": 1}])
        assert ask(base)
        sent = az.requests()
        assert sent[-1]["headers"]["authorization"] == "Bearer second-key", sent[-1]["headers"]
        assert sent[-1]["path"] == "/openai/v1/chat/completions", sent[-1]
    finally:
        proc.stop()


def test_a_one_mib_prompt_fails_over(tollgate, llmock, backup):
    # The body is read whole before the first attempt, so it can be sent again (far past
    # Pingora's own 64 KiB retry buffer).
    base = serve_listeners(tollgate, groups_config(llmock.port, backup.port))
    llmock.scenario([{"type": "fail", "status": 503, "times": 1}])
    big = "word " * 210_000
    assert ask(base, content=big)
    sent = backup.journal()
    assert len(sent) == 1 and sent[0]["status"] == 200, sent
    assert sent[0]["model"], sent  # the whole JSON body arrived (llmock parsed it)


def test_models_listing_fails_over(tollgate, llmock, backup):
    base = serve_listeners(tollgate, groups_config(free_port(), backup.port))
    assert list(client(base).models.list())


@pytest.mark.parametrize("ai, words", [
    ("{name: x, groups: [{providers: [{name: a, provider: {openAI: {}}}]}]}", "`name` cannot stand beside `groups`"),
    ("{groups: [{providers: []}]}", "at least one provider"),
    ("{groups: [{providers: [{name: a, provider: {openAI: {}}, policies: {ai: {routes: {'*': completions}}}}]}]}", "not supported yet"),
    ("{groups: [{providers: [{provider: {openAI: {}}}]}]}", "`name` is required"),
])
def test_bad_groups_are_load_errors(workdir, ai, words):
    import subprocess
    from conftest import BIN
    cfg = workdir / "bad.yaml"
    cfg.write_text(f"binds:\n- port: 9\n  listeners:\n  - routes:\n    - backends:\n      - ai: {ai}\n")
    out = subprocess.run([str(BIN), "--validate-only", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and words in out.stderr + out.stdout, out


@pytest.mark.parametrize("stream", [False, True])
def test_fails_over_to_bedrock(tollgate, llmock, bedrock, stream):
    # The second tier is Bedrock: the body is translated to Converse for it and signed with
    # its own AWS keys (the stand-in checks the signature with botocore).
    from test_llm_bedrock import AKID, SECRET
    cfg = groups_config(llmock.port, bedrock.port, secondary_provider="bedrock: {region: eu-west-1, model: anthropic.claude-3-haiku-20240307-v1:0}",
                        secondary_policies=f"              policies: {{backendAuth: {{aws: {{accessKeyId: {AKID}, secretAccessKey: \"{SECRET}\"}}}}}}\n")
    base = serve_listeners(tollgate, cfg)
    llmock.scenario([{"type": "fail", "status": 503, "times": 1}])
    assert ask(base, stream=stream)
    sent = bedrock.requests()
    assert len(sent) == 1 and sent[0]["signature_ok"], sent
    assert sent[0]["path"] == f"/model/anthropic.claude-3-haiku-20240307-v1:0/{'converse-stream' if stream else 'converse'}", sent[0]["path"]
    assert "authorization" in sent[0]["headers"] and sent[0]["headers"]["authorization"].startswith("AWS4-HMAC-SHA256")


@pytest.mark.parametrize("model", ["claude-sonnet-5", "gemini-2.5-flash"])
def test_fails_over_to_vertex(tollgate, llmock, vertex, workdir, model):
    # The second tier is Vertex: the model's family picks the API (rawPredict or
    # streamGenerateContent), the path names it, and the provider's own service account signs
    # the token (the stand-in verifies it).
    cfg = groups_config(llmock.port, vertex.port, secondary_provider=f"vertex: {{projectId: proj-1, region: us-central1, model: {model}}}",
                        secondary_policies=f"              policies: {{backendAuth: {{gcp: {{credential: {{file: {workdir / 'sa.json'}}}}}}}}}\n")
    base = serve_listeners(tollgate, cfg)
    llmock.scenario([{"type": "fail", "status": 503, "times": 1}])
    assert ask(base)
    sent = vertex.requests()
    method = "anthropic/models/claude-sonnet-5:rawPredict" if model.startswith("claude") else "google/models/gemini-2.5-flash:streamGenerateContent"
    assert len(sent) == 1 and sent[0]["path"] == f"/v1/projects/proj-1/locations/us-central1/publishers/{method}", sent
