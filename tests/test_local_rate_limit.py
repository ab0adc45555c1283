"""`localRateLimit`: token buckets by requests or LLM tokens (agentgateway's fields), per key
with tollgate's `key` extension, `conditional` entries, `x-ratelimit-*` headers on every answer
and 429 with `Retry-After` in the caller's API format."""
import concurrent.futures
import hashlib
import re
import time

import anthropic
import openai
import pytest
import requests

from conftest import free_port, load_error, serve_listeners


def metric(stats, name, **labels):
    text = requests.get(f"http://127.0.0.1:{stats}/metrics", timeout=5).text
    for line in text.splitlines():
        m = re.match(rf"{name}{{(.*)}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
            return float(m.group(2))
    return None


def host_route(up, limit, api_key=True, matches=""):
    keys = "        apiKey: {mode: strict, keys: [{key: key-a}, {key: key-b}]}\n" if api_key else ""
    return f"""  - routes:
    - {matches}policies:
{keys}        localRateLimit: {limit}
      backends: [{{host: "127.0.0.1:{up}"}}]
"""


def burst(url, n, headers=None):
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: requests.get(url, headers=headers or {}, timeout=10), range(n)))


def test_a_burst_gets_exactly_the_bucket_per_key(tollgate, echo_upstreams):
    limit = "[{maxTokens: 10, tokensPerFill: 10, fillInterval: 1s, key: apiKey.id}]"
    stats = free_port()
    base = serve_listeners(tollgate, host_route(echo_upstreams[0], limit), settings=f"config:\n  statsAddr: 127.0.0.1:{stats}\n")
    started = time.monotonic()
    a = burst(f"{base}/x", 30, {"Authorization": "Bearer key-a"})
    elapsed = time.monotonic() - started
    ok = [r for r in a if r.status_code == 200]
    limited = [r for r in a if r.status_code == 429]
    # Bucket semantics: full at the first request, +10 per whole second; a burst that ends
    # within its first second gets exactly the 10 it holds.
    assert elapsed < 1.0 and len(ok) == 10 and len(limited) == 20, ([r.status_code for r in a], elapsed)
    for r in ok:
        assert r.headers["x-ratelimit-limit"] == "10" and int(r.headers["x-ratelimit-remaining"]) < 10, r.headers
        assert 0 <= int(r.headers["x-ratelimit-reset"]) <= 1
    assert sorted(int(r.headers["x-ratelimit-remaining"]) for r in ok) == list(range(10))
    for r in limited:
        assert r.headers["retry-after"] == "1" and r.headers["x-ratelimit-remaining"] == "0", r.headers
        assert r.json()["error"]["type"] == "rate_limit_exceeded", r.text
    # Decisions are counted by policy, decision and the key's id (never the key).
    key_a = hashlib.sha256(b"key-a").hexdigest()[:12]
    assert metric(stats, "tollgate_rate_limit_decisions_total", policy="localRateLimit", decision="limited", api_key=key_a) == 20
    assert metric(stats, "tollgate_rate_limit_decisions_total", policy="localRateLimit", decision="allowed", api_key=key_a) == 10
    # Another key has its own bucket.
    b = burst(f"{base}/x", 15, {"Authorization": "Bearer key-b"})
    assert sum(r.status_code == 200 for r in b) == 10
    time.sleep(1.1)
    assert requests.get(f"{base}/x", headers={"Authorization": "Bearer key-a"}, timeout=5).status_code == 200


def test_without_a_key_the_route_shares_one_bucket_and_conditions_pick_the_limit(tollgate, echo_upstreams):
    limit = """
          conditional:
          - condition: 'request.headers["x-tier"] == "gold"'
            maxTokens: 5
            tokensPerFill: 5
            fillInterval: 1h
          - maxTokens: 2
            tokensPerFill: 2
            fillInterval: 1h"""
    base = serve_listeners(tollgate, host_route(echo_upstreams[0], limit, api_key=False))
    plain = [requests.get(f"{base}/x", timeout=5).status_code for _ in range(4)]
    assert plain == [200, 200, 429, 429], plain
    gold = [requests.get(f"{base}/x", headers={"x-tier": "gold"}, timeout=5) for _ in range(7)]
    assert [r.status_code for r in gold] == [200] * 5 + [429] * 2
    assert gold[-1].headers["x-ratelimit-limit"] == "5" and int(gold[-1].headers["retry-after"]) > 3000


def llm_route(llmock, limit, extra=""):
    return f"""  - routes:
    - policies:
        apiKey: {{mode: strict, keys: [{{key: tok-a}}, {{key: tok-b}}]}}
        localRateLimit: {limit}
      backends:
      - ai:
          name: llm
          hostOverride: "127.0.0.1:{llmock.port}"
          provider: {{openAI: {{model: gpt-4o-mini}}}}
{extra}"""


def test_a_tokens_limit_admits_by_tokens_and_charges_the_real_usage(tollgate, llmock):
    base = serve_listeners(tollgate, llm_route(llmock, "[{maxTokens: 300, tokensPerFill: 300, fillInterval: 1h, type: tokens, key: apiKey.id}]"))
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="tok-a", max_retries=0, timeout=20)
    used, served = 0, 0
    for _ in range(100):
        try:
            r = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "count me"}])
        except openai.RateLimitError as e:
            assert e.body["type"] == "rate_limit_exceeded" and e.response.headers["x-ratelimit-limit"] == "300", e.body
            break
        used += r.usage.prompt_tokens + r.usage.completion_tokens
        served += 1
    else:
        pytest.fail("never limited")
    # Served until the real usage spent the bucket: no more than one request's worth over it.
    per_request = used / served
    print("tokens used", used, "served", served)
    assert 300 - 2 * per_request <= used <= 300 + per_request, (used, served)
    # The other key is untouched; a prompt larger than the whole bucket is refused at once.
    other = openai.OpenAI(base_url=f"{base}/v1", api_key="tok-b", max_retries=0, timeout=20)
    with pytest.raises(openai.RateLimitError):
        other.chat.completions.create(model="m", messages=[{"role": "user", "content": "word " * 2000}])
    assert other.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}]).choices


def test_anthropic_callers_get_anthropic_429s(tollgate, llmock):
    extra = """          pathPrefix: /anthropic/v1
          policies:
            ai:
              routes: {/v1/messages: messages}
"""
    route = llm_route(llmock, "[{maxTokens: 1, tokensPerFill: 1, fillInterval: 1h}]", extra).replace("openAI: {model: gpt-4o-mini}", "anthropic: {model: claude-haiku-4-5}")
    base = serve_listeners(tollgate, route)
    c = anthropic.Anthropic(base_url=base, api_key="tok-a", max_retries=0)
    c.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.RateLimitError) as e:
        c.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=[{"role": "user", "content": "hi"}])
    body = e.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error", body
    assert e.value.response.headers["retry-after"]


def test_bad_limits_are_refused_with_their_place(workdir):
    err = load_error(workdir, """binds:
- port: 1
  listeners:
  - routes:
    - policies:
        localRateLimit: [{maxTokens: 1, fillInterval: 1s}, {maxTokens: 1, fillInterval: often}]
      backends: [{host: "127.0.0.1:9"}]
""")
    assert "localRateLimit" in err and "limit [1].fillInterval" in err and "often" in err, err
    err = load_error(workdir, """binds:
- port: 1
  listeners:
  - routes:
    - policies:
        localRateLimit: [{maxTokens: 1, fillInterval: 1s, type: bytes}]
      backends: [{host: "127.0.0.1:9"}]
""")
    assert "bytes" in err, err


def test_a_reload_keeps_the_counters_of_an_unchanged_limit(tollgate, echo_upstreams):
    import os
    up = echo_upstreams[0]
    port = free_port()

    def text(version, max_tokens):
        return f"""binds:
- port: {port}
  listeners:
  - routes:
    - name: limited
      matches: [{{path: {{pathPrefix: /limited}}}}]
      policies:
        localRateLimit: [{{maxTokens: {max_tokens}, tokensPerFill: 1, fillInterval: 1h}}]
      backends: [{{host: "127.0.0.1:{up}"}}]
    - name: probe
      policies: {{directResponse: {{status: 200, body: "{version}"}}}}
"""

    tollgate.start(text("v1", 3), ports=[port])
    base = f"http://127.0.0.1:{port}"
    cfg = tollgate.workdir / "config.yaml"

    def publish(version, max_tokens):
        tmp = cfg.with_suffix(".tmp")
        tmp.write_text(text(version, max_tokens))
        os.replace(tmp, cfg)
        deadline = time.time() + 10
        while requests.get(f"{base}/probe", timeout=5).text != version:
            assert time.time() < deadline, "the reload did not apply"
            time.sleep(0.05)

    assert [requests.get(f"{base}/limited", timeout=5).status_code for _ in range(2)] == [200, 200]
    publish("v2", 3)  # the limit is unchanged: one request left, not a full bucket
    assert [requests.get(f"{base}/limited", timeout=5).status_code for _ in range(2)] == [200, 429]
    publish("v3", 5)  # a changed limit starts full
    assert [requests.get(f"{base}/limited", timeout=5).status_code for _ in range(6)] == [200] * 5 + [429]
