"""Admin, stats and readiness endpoints on the seed config's addresses (admin 0.0.0.0:15000,
stats 15020, readiness 15021 by default)."""
import json
import time

import openai
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_port, seed_with_local_hosts, serve_listeners

ADMIN, STATS, READY = "http://127.0.0.1:15000", "http://127.0.0.1:15020", "http://127.0.0.1:15021"


def start(tollgate, provider_front):
    nginx, ca = provider_front
    return tollgate.start(seed_with_local_hosts(nginx.port, ca), ports=[3100, 3101, 15000, 15020, 15021])


def samples(name):
    text = requests.get(f"{STATS}/metrics", timeout=5).text
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples if s.name == name]


def test_metrics_count_requests_and_tokens(tollgate, provider_front, llmock):
    start(tollgate, provider_front)
    c = openai.OpenAI(base_url="http://127.0.0.1:3100/compatible-mode/v1", api_key="x", max_retries=0)
    r = c.chat.completions.create(model="any-model-name", messages=[{"role": "user", "content": "Hello!"}])
    # The exchange is counted once it is logged, just after the answer went out: poll.
    deadline = time.time() + 5
    while True:
        out = [s for s in samples("gen_ai_client_token_usage_sum") if s.labels["gen_ai_token_type"] == "output"]
        if out or time.time() > deadline:
            break
        time.sleep(0.05)
    assert len(out) == 1
    assert out[0].value == r.usage.completion_tokens
    assert out[0].labels["gen_ai_request_model"] == "any-model-name"
    assert out[0].labels["gen_ai_response_model"] == "qwen-plus"
    inp = [s for s in samples("gen_ai_client_token_usage_count") if s.labels["gen_ai_token_type"] == "input"]
    assert [s.value for s in inp] == [1.0]
    reqs = [s for s in samples("tollgate_requests_total") if s.labels["status"] == "200"]
    assert sum(s.value for s in reqs) == 1
    assert samples("gen_ai_server_time_to_first_token_seconds_count")[0].value == 1


def test_admin_readiness_logging_and_quit(tollgate, provider_front, llmock):
    proc = start(tollgate, provider_front)
    assert requests.get(f"{READY}/healthz/ready", timeout=5).status_code == 200
    dump = requests.get(f"{ADMIN}/config_dump", timeout=5).json()
    route = dump["binds"][0]["listeners"][0]["routes"][0]
    assert route["backends"][0]["ai"]["name"] == "qwen-plus"
    assert "sk-abc" not in str(dump) and "Bearer abc" not in str(dump)
    assert "<html" in requests.get(f"{ADMIN}/", timeout=5).text

    def access_lines():
        return proc.output().count(" access request ")

    def lines_after_one_request(expected_min, settle=0.5):
        requests.get("http://127.0.0.1:3100/compatible-mode/v1/models", timeout=5)
        deadline = time.time() + settle
        while time.time() < deadline and access_lines() < expected_min:
            time.sleep(0.02)
        time.sleep(0.1)
        return access_lines()

    before = lines_after_one_request(1)
    assert before >= 1
    assert requests.post(f"{ADMIN}/logging?level=warn", timeout=5).status_code == 200
    assert lines_after_one_request(before + 1) == before, "access lines still written at warn"
    assert requests.post(f"{ADMIN}/logging?level=info", timeout=5).status_code == 200
    assert lines_after_one_request(before + 1, settle=3) == before + 1
    assert requests.post(f"{ADMIN}/logging?level=no=such=level", timeout=5).status_code == 400

    assert requests.post(f"{ADMIN}/quitquitquit", timeout=5).status_code == 200
    proc.proc.wait(timeout=20)
    assert proc.proc.returncode == 0


def test_config_metrics_removes_metrics_and_adds_cel_labels(tollgate, llmock):
    """`config.metrics`: `remove` drops metrics named as agentgateway names them (with its
    prefix, or bare); `fields.add` labels the request and GenAI metrics with a CEL string,
    anything else becoming `unknown`."""
    stats = free_port()
    base = serve_listeners(tollgate, f"""\
  - routes:
    - backends:
      - ai: {{name: l, hostOverride: "127.0.0.1:{llmock.port}", provider: {{openAI: {{model: pinned}}}}}}
""", settings=f"""config:
  statsAddr: 127.0.0.1:{stats}
  metrics:
    remove: [agentgateway_request_duration_seconds, mcp_sessions]
    fields:
      add:
        team: 'request.headers["x-team"]'
        number: '1 + 1'
""")
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0)
    c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}], extra_headers={"x-team": "red"})
    c.chat.completions.create(model="m", messages=[{"role": "user", "content": "Hi"}])
    # A request is counted once its response has gone (with its log line): poll for both.
    deadline = time.time() + 5
    while True:
        text = requests.get(f"http://127.0.0.1:{stats}/metrics", timeout=5).text
        all_samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
        counted = {s.labels.get("team") for s in all_samples if s.name == "tollgate_requests_total"}
        if counted >= {"red", "unknown"} or time.time() > deadline:
            break
        time.sleep(0.05)
    names = {s.name for s in all_samples}
    assert "tollgate_requests_total" in names and "gen_ai_server_request_duration_seconds_count" in names, names
    assert not any(n.startswith(("tollgate_request_duration", "tollgate_mcp_sessions")) for n in names), names
    reqs = {s.labels["team"]: s for s in all_samples if s.name == "tollgate_requests_total"}
    assert set(reqs) == {"red", "unknown"}, reqs
    assert all(s.labels["number"] == "unknown" and s.value == 1 for s in reqs.values())
    tokens = [s for s in all_samples if s.name == "gen_ai_client_token_usage_count"]
    assert {s.labels["team"] for s in tokens} == {"red", "unknown"}, tokens


def test_config_metrics_label_names_are_checked(tmp_path):
    import subprocess
    from conftest import BIN
    for name, why in [("bad-name", "not a Prometheus label name"), ("route", "already sets")]:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"config:\n  metrics:\n    fields:\n      add:\n        {name}: '\"x\"'\nbinds: []\n")
        p = subprocess.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=20)
        assert p.returncode != 0 and why in p.stderr and name in p.stderr, p.stderr


def captured_samples(stats, want_requests):
    """The `tollgate_body_bytes_captured_total` samples once `want_requests` are counted."""
    deadline = time.time() + 5
    while True:
        text = requests.get(f"http://127.0.0.1:{stats}/metrics", timeout=5).text
        all_samples = [s for fam in text_string_to_metric_families(text) for s in fam.samples]
        counted = sum(s.value for s in all_samples if s.name == "tollgate_requests_total")
        if counted >= want_requests or time.time() > deadline:
            return {s.labels["direction"]: s.value for s in all_samples if s.name == "tollgate_body_bytes_captured_total"}
        time.sleep(0.05)


def test_a_lean_route_copies_no_body_and_a_body_field_does(tollgate, llmock):
    """The zero-cost path stays zero-cost: a route with no log fields, no tracing and no body
    policy proxies a 200 KiB body without copying a byte of it; the same route with a log field
    reading `request.body` and `response.body` copies both, and the counter says how much."""
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x" * 200_000}]})
    listeners = f"""\
  - routes:
    - backends:
      - host: 127.0.0.1:{llmock.port}
"""
    for fields, expect_copies in [("", False), ("\n    fields:\n      add:\n        req: request.body\n        resp: response.body", True)]:
        stats = free_port()
        base = serve_listeners(tollgate, listeners, settings=f"config:\n  statsAddr: 127.0.0.1:{stats}\n  logging:\n    level: info{fields}\n", name=f"lean-{expect_copies}.yaml")
        for _ in range(3):
            r = requests.post(f"{base}/v1/chat/completions", data=body, headers={"content-type": "application/json"}, timeout=10)
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"]
        copied = captured_samples(stats, 3)
        if expect_copies:
            assert copied.get("request", 0) >= 3 * len(body), copied
            assert copied.get("response", 0) >= 3 * len(r.content), copied
        else:
            assert copied == {}, copied
        tollgate.stop()
