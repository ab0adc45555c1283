"""Upstream failures become JSON errors with the right status, quickly, and never crash tollgate."""
import json
import time

import requests

from conftest import free_port, needs_netns, post_expecting_continue, serve_listeners


def serve_llm(tollgate, upstream: str, timeout: str = "2s") -> str:
    """tollgate with one AI route to `upstream`; returns the completions URL."""
    base = serve_listeners(tollgate, f"""\
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
""")
    return f"{base}/v1/chat/completions"


BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_upstream_down_gets_502_json(tollgate):
    url = serve_llm(tollgate, f"127.0.0.1:{free_port()}")
    r = requests.post(url, json=BODY, timeout=10)
    assert r.status_code == 502
    assert r.json()["error"]["type"] == "upstream_unreachable"


def test_upstream_down_after_100_continue_still_gets_502_json(tollgate):
    # The `100 Continue` the gateway sends before reading the body is not the answer: the
    # client must still get the error response, not a connection closed on it.
    url = serve_llm(tollgate, f"127.0.0.1:{free_port()}")
    port = int(url.split(":")[2].split("/")[0])
    final = post_expecting_continue(port, "/v1/chat/completions", json.dumps(BODY).encode())
    assert final.startswith(b"HTTP/1.1 502"), final
    assert json.loads(final.split(b"\r\n\r\n", 1)[1])["error"]["type"] == "upstream_unreachable"


@needs_netns
def test_unresolvable_upstream_gets_502_json(tollgate):
    url = serve_llm(tollgate, "no-such-host.invalid:443")
    r = requests.post(url, json=BODY, timeout=15)
    assert r.status_code == 502
    assert "resolve" in r.json()["error"]["message"]


def test_stalled_upstream_gets_504_within_timeout(tollgate, llmock):
    url = serve_llm(tollgate, f"127.0.0.1:{llmock.port}", timeout="1s")
    llmock.scenario([{"type": "delay", "seconds": 6, "times": 1}])
    start = time.monotonic()
    r = requests.post(url, json=BODY, timeout=10)
    elapsed = time.monotonic() - start
    assert r.status_code == 504
    # The route's requestTimeout is what ran out.
    assert r.json()["error"]["type"] == "request_timeout"
    assert elapsed < 3, f"504 took {elapsed:.1f}s for a 1s timeout"


def test_upstream_dying_mid_stream_ends_client_stream_cleanly(tollgate, llmock):
    url = serve_llm(tollgate, f"127.0.0.1:{llmock.port}", timeout="10s")
    llmock.scenario([{"type": "stream_fault", "kind": "disconnect", "after_chunks": 2, "times": 1}])
    r = requests.post(url, json=dict(BODY, stream=True),
                      stream=True, timeout=10)
    assert r.status_code == 200
    raw = b"".join(r.iter_content(None))  # raises ChunkedEncodingError on a torn connection
    events = [e for e in raw.decode().split("\n\n") if e.strip()]
    assert len(events) >= 2
    assert '"error"' in events[-1], events[-1]
    # tollgate is still serving
    assert requests.post(url, json=BODY, timeout=10).status_code == 200


def test_no_route_gets_404_json(tollgate):
    base = serve_listeners(tollgate, """\
  - routes:
    - matches: [{path: {exact: /only}}]
      policies: {directResponse: {status: 200, body: fine}}
""")
    assert requests.get(f"{base}/only", timeout=5).text == "fine"
    r = requests.get(f"{base}/elsewhere", timeout=5)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found"
