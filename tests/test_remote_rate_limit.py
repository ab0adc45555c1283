"""`remoteRateLimit`: descriptors from CEL sent to an Envoy rate-limit service over gRPC (a
Python grpcio server speaking envoy.service.ratelimit.v3), OVER_LIMIT → 429 in the caller's
format with the service's headers, token descriptors charged with the prompt's estimate and
topped up with the real usage, and failureMode when the service is down."""
import time

import openai
import pytest
import requests

from conftest import free_port, serve_listeners
from rls_server import RateLimitService


@pytest.fixture
def rls():
    service = RateLimitService({"api": 3, "tokens": 150})
    yield service
    service.stop()


def test_descriptors_are_sent_and_over_limit_is_429(tollgate, echo_upstreams, rls):
    listeners = f"""  - routes:
    - policies:
        remoteRateLimit:
          host: 127.0.0.1:{rls.port}
          domain: api
          descriptors:
          - entries:
            - {{key: user, value: 'request.headers["x-user"]'}}
            - {{key: path, value: request.path}}
      backends: [{{host: "127.0.0.1:{echo_upstreams[0]}"}}]
"""
    base = serve_listeners(tollgate, listeners)
    answers = [requests.get(f"{base}/p", headers={"x-user": "ann"}, timeout=5) for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429], [r.text for r in answers]
    assert answers[0].json()["added"] == "api", "request_headers_to_add reach the upstream"
    assert answers[2].headers["x-ratelimit-remote-remaining"] == "0"
    assert "bad header" not in answers[2].headers and "bad header" not in answers[3].headers
    assert answers[3].json()["error"]["type"] == "rate_limit_exceeded"
    assert rls.requests[0] == {"domain": "api", "descriptors": [{"entries": [("user", "ann"), ("path", "/p")], "hits": 1}]}
    # Another user counts apart; a request whose descriptor cannot be built is not checked.
    assert requests.get(f"{base}/p", headers={"x-user": "bob"}, timeout=5).status_code == 200
    before = len(rls.requests)
    assert requests.get(f"{base}/p", timeout=5).status_code == 200
    assert len(rls.requests) == before


def test_token_descriptors_charge_estimates_and_usage(tollgate, llmock, rls):
    listeners = f"""  - routes:
    - policies:
        remoteRateLimit:
          host: 127.0.0.1:{rls.port}
          domain: tokens
          descriptors:
          - entries: [{{key: team, value: '"blue"'}}]
            type: tokens
      backends:
      - ai:
          name: llm
          hostOverride: "127.0.0.1:{llmock.port}"
          provider: {{openAI: {{model: gpt-4o-mini}}}}
"""
    base = serve_listeners(tollgate, listeners)
    c = openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0, timeout=20)
    used = 0
    for _ in range(50):
        try:
            used += c.chat.completions.create(model="m", messages=[{"role": "user", "content": "tokens"}]).usage.total_tokens
        except openai.RateLimitError:
            break
    else:
        pytest.fail("never limited")
    time.sleep(0.3)  # top-ups are sent after each response
    hits = [d["hits"] for r in rls.requests for d in r["descriptors"]]
    assert all(r["domain"] == "tokens" for r in rls.requests)
    # The service was told about every token: the estimates at admission plus the top-ups.
    assert sum(hits) >= used and 150 - 40 <= used <= 150 + 40, (used, hits)


@pytest.mark.parametrize("mode, status", [("failOpen", 200), ("failClosed", 500)])
def test_service_down_follows_failure_mode(tollgate, echo_upstreams, mode, status):
    dead = free_port()
    listeners = f"""  - routes:
    - policies:
        remoteRateLimit:
          host: 127.0.0.1:{dead}
          domain: api
          failureMode: {mode}
          descriptors: [{{entries: [{{key: k, value: '"v"'}}]}}]
      backends: [{{host: "127.0.0.1:{echo_upstreams[0]}"}}]
"""
    base = serve_listeners(tollgate, listeners)
    started = time.monotonic()
    r = requests.get(f"{base}/x", timeout=10)
    assert r.status_code == status and time.monotonic() - started < 3, r.text


def test_unsupported_remote_fields_are_refused(workdir):
    from conftest import load_error
    err = load_error(workdir, """binds:
- port: 1
  listeners:
  - routes:
    - policies:
        remoteRateLimit:
          host: 127.0.0.1:1
          domain: d
          descriptors: [{entries: [{key: k, value: '"v"'}], cost: '2'}]
      backends: [{host: "127.0.0.1:9"}]
""")
    assert "cost is not supported yet" in err, err


def test_conditional_entries_pick_the_service_call(tollgate, echo_upstreams, rls):
    listeners = f"""  - routes:
    - policies:
        remoteRateLimit:
          conditional:
          - condition: 'request.path.startsWith("/api")'
            host: 127.0.0.1:{rls.port}
            domain: api
            descriptors: [{{entries: [{{key: k, value: '"cond"'}}]}}]
          - host: 127.0.0.1:{rls.port}
            domain: other
            descriptors: [{{entries: [{{key: k, value: '"fallback"'}}]}}]
      backends: [{{host: "127.0.0.1:{echo_upstreams[0]}"}}]
"""
    base = serve_listeners(tollgate, listeners)
    assert [requests.get(f"{base}/api/x", timeout=5).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert requests.get(f"{base}/else", timeout=5).status_code == 200  # no limit for domain `other`
    assert [r["domain"] for r in rls.requests] == ["api"] * 4 + ["other"]
