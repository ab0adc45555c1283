"""Paths are normalized before routing, and what is forwarded is what was matched: no
spelling of a path reaches a backend that its plain spelling would not, and a pinned
model always applies."""
import http.client
import json

import pytest

from conftest import serve_listeners
from hostile import Recorder, raw_exchange, status_of


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def gateway(tollgate, recorder, llmock) -> int:
    base = serve_listeners(tollgate, f"""\
  - routes:
    - matches: [{{path: {{pathPrefix: /raw/admin}}}}]
      policies: {{directResponse: {{status: 403, body: denied}}}}
    - matches: [{{path: {{pathPrefix: /raw}}}}]
      backends: [{{host: "127.0.0.1:{recorder.port}"}}]
    - matches: [{{path: {{pathPrefix: /v1}}}}]
      backends:
      - ai:
          name: pinned
          hostOverride: 127.0.0.1:{llmock.port}
          provider: {{openAI: {{model: pinned-model}}}}
          policies:
            ai:
              routes: {{/v1/chat/completions: completions, "*": passthrough}}
""")
    return int(base.rsplit(":", 1)[1])


def get(port: int, path: str) -> bytes:
    return raw_exchange(port, f"GET {path} HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n".encode())


ATTACKS = [
    "/raw/x/../admin", "/raw/./admin", "/raw/%2e/admin", "/raw/x/%2e%2e/admin", "/raw/x/.%2e/admin",
    "/raw/x/%2E%2E/admin", "/raw/%61dmin", "/raw/%61%64%6d%69%6e/x", "//raw/admin", "/raw//admin",
    "/raw/admin/", "/raw/./././admin", "/raw/x/y/../../admin", "/x/../raw/admin",
    # refused outright: separators that servers read differently
    "/raw%2fadmin", "/raw%2Fadmin", "/raw/x%2f..%2fadmin", "/raw\\admin", "/raw%5cadmin", "/raw/%00admin",
]


@pytest.mark.parametrize("path", ATTACKS)
def test_path_spellings_cannot_bypass_a_deny_route(tollgate, recorder, llmock, path):
    port = gateway(tollgate, recorder, llmock)
    out = get(port, path)
    assert status_of(out) in (400, 403), (path, out[:300])
    assert not any("admin" in p for p in recorder.paths), recorder.paths


def test_upstream_sees_the_normalized_path(tollgate, recorder, llmock):
    port = gateway(tollgate, recorder, llmock)
    for sent, seen in [("/raw/x/../ok", "/raw/ok"), ("/raw/%7Euser/a%2Db", "/raw/~user/a-b"),
                       ("//raw///ok/./", "/raw/ok/"), ("/raw/ok?q=%2e%2e/x", "/raw/ok?q=%2e%2e/x"),
                       ("/raw/caf%c3%a9", "/raw/caf%C3%A9")]:
        out = get(port, sent)
        assert status_of(out) == 200, (sent, out)
        assert recorder.paths[-1] == seen, (sent, recorder.paths[-1])


@pytest.mark.parametrize("path", ["/v1/./chat/completions", "/v1/%63hat/completions", "/v1//chat/completions",
                                  "/v1/x/../chat/completions", "/v1/chat/%63ompletions", "//v1/chat/completions"])
def test_pinned_model_applies_to_every_spelling_of_completions(tollgate, recorder, llmock, path):
    port = gateway(tollgate, recorder, llmock)
    # http.client sends the path as written (requests would normalize it first).
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", path, body=json.dumps({"model": "client-model", "messages": [{"role": "user", "content": "hi"}]}),
                 headers={"content-type": "application/json"})
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200, body
    assert json.loads(body)["model"] == "pinned-model"
    seen = [e for e in llmock.journal() if "completions" in e.get("path", "")][-1]
    assert seen["path"] == "/v1/chat/completions"
    assert seen["model"] == "pinned-model"


def test_repeated_identical_content_length_reaches_the_upstream_once(tollgate, recorder, llmock):
    port = gateway(tollgate, recorder, llmock)
    out = raw_exchange(port, b"POST /raw/x HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\nContent-Length: 2\r\n"
                             b"Connection: close\r\n\r\nok")
    assert status_of(out) == 200, out
    assert recorder.lengths[-1] == ["2"], recorder.lengths
