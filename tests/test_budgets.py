"""`budget` (tollgate policy): token budgets per key per UTC window, kept in Redis across
restarts and upgrades; `block` refuses once spent and ends a stream at the remainder with an
error event in the caller's API; `audit` only logs."""
import time

import openai
import pytest
import requests

from conftest import BIN, Proc, free_port, serve_listeners, wait_port


def route(llmock, budget, keys="[{key: key-a, metadata: {budget: 120}}, {key: key-b, metadata: {budget: 120}}]", model="gpt-4o-mini"):
    return f"""  - routes:
    - policies:
        apiKey: {{mode: strict, keys: {keys}}}
        budget: {budget}
      backends:
      - ai:
          name: llm
          hostOverride: "127.0.0.1:{llmock.port}"
          provider: {{openAI: {{model: {model}}}}}
"""


def client(base, key):
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=30)


def spend_until_refused(base, key, limit=100):
    used = 0
    for _ in range(limit):
        try:
            r = client(base, key).chat.completions.create(model="m", messages=[{"role": "user", "content": "spend"}])
        except openai.RateLimitError as e:
            return used, e
        used += r.usage.total_tokens
    pytest.fail(f"never refused after {used} tokens")


def test_a_key_is_served_until_its_budget_is_spent_and_stays_spent_across_restart_and_take_over(workdir, redis_server, llmock):
    port = free_port()
    budget = f"{{key: apiKey.id, limit: apiKey.budget, window: day, redis: {{url: '{redis_server.url}', name: daily}}}}"
    cfg = workdir / "c.yaml"
    cfg.write_text(f"binds:\n- port: {port}\n  listeners:\n{route(llmock, budget)}")
    args = [str(BIN), "-f", str(cfg), "--runtime-dir", str(workdir / "run")]
    first = Proc(args, workdir / "first.log")
    procs = [first]
    try:
        wait_port(port, proc=first.proc)
        base = f"http://127.0.0.1:{port}"
        used, refusal = spend_until_refused(base, "key-a")
        assert refusal.body["type"] == "budget_exceeded" and "budget" in refusal.body["message"], refusal.body
        # Spent within one request's worth of the budget (the last one admitted may pass it).
        print("spent", used, "of 120")
        assert 120 - 30 <= used <= 120 + 30, used
        assert client(base, "key-b").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices
        first.stop()
        second = Proc(args, workdir / "second.log")
        procs.append(second)
        wait_port(port, proc=second.proc)
        with pytest.raises(openai.RateLimitError):
            client(base, "key-a").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        third = Proc(args + ["--take-over"], workdir / "third.log")
        procs.append(third)
        deadline = time.time() + 20
        while second.proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert second.proc.poll() is not None and third.proc.poll() is None, third.output()
        with pytest.raises(openai.RateLimitError):
            client(base, "key-a").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    finally:
        for p in procs:
            p.stop()


def test_a_stream_is_ended_at_the_budget_with_an_error_event(tollgate, llmock):
    # One key with 80 tokens: the prompt's estimate is reserved, the rest may stream.
    stats = free_port()
    base = serve_listeners(tollgate, route(llmock, "{key: apiKey.id, limit: 80, window: hour}"), settings=f"config:\n  statsAddr: 127.0.0.1:{stats}\n")
    llmock.scenario([{"type": "reply", "text": " ".join(f"w{i:03d}" for i in range(200)), "times": 5}])
    stream = client(base, "key-a").chat.completions.create(
        model="m", messages=[{"role": "user", "content": "write a lot"}], stream=True)
    text = ""
    with pytest.raises(openai.APIError) as ended:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
    assert "budget" in str(ended.value.message), ended.value
    received = len(text) / 4
    print("streamed", received, "tokens before the end event:", ended.value.message)
    assert 40 <= received <= 80, (received, text)
    assert "w199" not in text
    # The budget is now spent.
    with pytest.raises(openai.RateLimitError):
        client(base, "key-a").chat.completions.create(model="m", messages=[{"role": "user", "content": "more"}])
    metrics = requests.get(f"http://127.0.0.1:{stats}/metrics", timeout=5).text
    assert 'tollgate_rate_limit_decisions_total{policy="budget",decision="limited"' in metrics, metrics
    assert 'tollgate_budget_remaining{budget="' in metrics and 'unit="tokens"}' in metrics
    # A stream within the budget ends as usual.
    small = client(base, "key-b").chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=False)
    assert small.choices


def test_audit_budgets_serve_and_log(tollgate, llmock):
    base = serve_listeners(tollgate, route(llmock, "{limit: 20, window: month, action: audit}"))
    for _ in range(5):
        assert client(base, "key-a").chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}]).choices
    time.sleep(0.3)
    log = (tollgate.workdir / "config.yaml.log").read_text()
    assert "budget exceeded (audit: served)" in log, log[-2000:]


def test_budget_store_down_fails_closed(tollgate, llmock):
    dead = free_port()
    base = serve_listeners(tollgate, route(llmock, f"{{limit: 1000, window: day, redis: {{url: 'redis://127.0.0.1:{dead}', name: gone, timeout: 200ms}}}}"))
    started = time.monotonic()
    r = requests.post(f"{base}/v1/chat/completions", headers={"Authorization": "Bearer key-a"},
                      json={"model": "m", "messages": [{"role": "user", "content": "x"}]}, timeout=10)
    assert r.status_code == 503 and time.monotonic() - started < 2, r.text
    assert r.json()["error"]["type"] == "rate_limit_unavailable"


def test_a_cost_budget_is_charged_by_the_price_table(tollgate, llmock):
    # gpt-4o: $2.50 per million input tokens, $10 per million output (the built-in table).
    base = serve_listeners(tollgate, route(llmock, "{key: apiKey.team, limit: 0.0005, unit: cost, window: day}",
                                          keys="[{key: key-a, metadata: {team: red}}, {key: key-b, metadata: {team: red}}]",
                                          model="gpt-4o"))
    spent, served = 0.0, 0
    for i in range(50):
        try:
            r = client(base, "key-a" if i % 2 else "key-b").chat.completions.create(model="m", messages=[{"role": "user", "content": "price"}])
        except openai.RateLimitError as e:
            assert e.body["type"] == "budget_exceeded" and "spending budget" in e.body["message"], e.body
            break
        spent += (r.usage.prompt_tokens * 2.5 + r.usage.completion_tokens * 10) / 1e6
        served += 1
        time.sleep(0.05)  # the charge is settled as the response ends
    else:
        pytest.fail("never refused")
    # The team's two keys share one budget: refused once it was spent, not before.
    per_request = spent / served
    assert spent >= 0.0005 and spent < 0.0005 + per_request, (spent, served)
