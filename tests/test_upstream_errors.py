"""Upstream failures become JSON errors with the right status, quickly, and never crash tollgate."""
import time

import requests

from conftest import free_port


def llm_config(port: int, upstream: str, timeout: str = "2s") -> str:
    return f"""
binds:
- port: {port}
  listeners:
  - routes:
    - policies:
        timeout: {{requestTimeout: {timeout}}}
      backends:
      - ai:
          name: local
          hostOverride: {upstream}
          provider: {{openAI: {{model: mock-model}}}}
          policies:
            ai:
              routes: {{/v1/chat/completions: completions, "*": passthrough}}
"""


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_upstream_down_gets_502_json(tollgate):
    port = free_port()
    tollgate.start(llm_config(port, f"127.0.0.1:{free_port()}"), ports=[port])
    r = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY, timeout=10)
    assert r.status_code == 502
    assert r.json()["error"]["type"] == "upstream_unreachable"


def test_unresolvable_upstream_gets_502_json(tollgate):
    port = free_port()
    tollgate.start(llm_config(port, "no-such-host.invalid:443"), ports=[port])
    r = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY, timeout=15)
    assert r.status_code == 502
    assert "resolve" in r.json()["error"]["message"]


def test_stalled_upstream_gets_504_within_timeout(tollgate, llmock):
    port = free_port()
    tollgate.start(llm_config(port, f"127.0.0.1:{llmock.port}", timeout="1s"), ports=[port])
    llmock.scenario([{"type": "delay", "seconds": 6, "times": 1}])
    start = time.monotonic()
    r = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY, timeout=10)
    elapsed = time.monotonic() - start
    assert r.status_code == 504
    assert r.json()["error"]["type"] == "upstream_timeout"
    assert elapsed < 3, f"504 took {elapsed:.1f}s for a 1s timeout"


def test_upstream_dying_mid_stream_ends_client_stream_cleanly(tollgate, llmock):
    port = free_port()
    tollgate.start(llm_config(port, f"127.0.0.1:{llmock.port}", timeout="10s"), ports=[port])
    llmock.scenario([{"type": "stream_fault", "kind": "disconnect", "after_chunks": 2, "times": 1}])
    r = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=dict(BODY, stream=True),
                      stream=True, timeout=10)
    assert r.status_code == 200
    raw = b"".join(r.iter_content(None))  # raises ChunkedEncodingError on a torn connection
    events = [e for e in raw.decode().split("\n\n") if e.strip()]
    assert len(events) >= 2
    assert '"error"' in events[-1], events[-1]
    # tollgate is still serving
    assert requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=BODY, timeout=10).status_code == 200


def test_no_route_gets_404_json(tollgate):
    port = free_port()
    cfg = f"""
binds:
- port: {port}
  listeners:
  - routes:
    - matches: [{{path: {{exact: /only}}}}]
      policies: {{directResponse: {{status: 200, body: fine}}}}
"""
    tollgate.start(cfg, ports=[port])
    assert requests.get(f"http://127.0.0.1:{port}/only", timeout=5).text == "fine"
    r = requests.get(f"http://127.0.0.1:{port}/elsewhere", timeout=5)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
