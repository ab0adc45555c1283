"""`apiKey`: callers authenticated by API key (inline or SHA-256 / bcrypt hashes), metadata in
CEL (`apiKey.*`) and the access log, per-key `allowedModels`, the modes, key locations, and
errors in the caller's API format (OpenAI, Anthropic, JSON-RPC on MCP routes)."""
import hashlib
import json
import time

import anthropic
import bcrypt
import openai
import pytest
import requests

from conftest import serve_listeners, start_everything
from mcp_helpers import mcp_target

SETTINGS = """config:
  logging:
    format: json
frontendPolicies:
  accessLog:
    add:
      team: apiKey.team
      tier: apiKey.tier
      key: apiKey.key
      key_id: apiKey.id
"""


def llm_route(llmock, api_key_policy, model="gpt-4o-mini", provider="openAI", extra=""):
    return f"""  - routes:
    - policies:
        apiKey: {api_key_policy}
      backends:
      - ai:
          name: llm
          hostOverride: "127.0.0.1:{llmock.port}"
          provider: {{{provider}: {{model: {model}}}}}
{extra}"""


def access_records(tollgate, count, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        log = (tollgate.workdir / "config.yaml.log").read_text()
        records = [json.loads(l) for l in log.splitlines() if l.startswith("{") and '"target":"access"' in l]
        if len(records) >= count or time.time() > deadline:
            return records
        time.sleep(0.05)


def client(base, key):
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0, timeout=20)


def ask(base, key, model="gpt-4o-mini"):
    return client(base, key).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])


def test_openai_sdk_valid_key_is_served_and_named_in_the_log(tollgate, llmock):
    policy = "{mode: strict, keys: [{key: sk-team-a, metadata: {team: alpha, tier: gold}}, {key: sk-team-b, metadata: {team: beta}}]}"
    base = serve_listeners(tollgate, llm_route(llmock, policy), settings=SETTINGS)
    answer = ask(base, "sk-team-a")
    assert answer.choices[0].message.content
    ask(base, "sk-team-b")
    with pytest.raises(openai.AuthenticationError) as wrong:
        ask(base, "sk-wrong")
    assert wrong.value.status_code == 401 and wrong.value.body["type"] == "authentication_error", wrong.value.body
    assert "invalid API key" in wrong.value.body["message"]
    r = requests.post(f"{base}/v1/chat/completions", json={"model": "m", "messages": []}, timeout=5)
    assert r.status_code == 401 and r.json()["error"]["message"] == "no API key found", r.text
    records = access_records(tollgate, 4)
    served = [r for r in records if r.get("http.status") == 200 or r.get("status") == 200 or r.get("team")]
    by_team = {r["team"]: r for r in served}
    assert by_team["alpha"]["tier"] == "gold" and by_team["beta"].get("tier") is None, records
    assert by_team["alpha"]["key"] == "<redacted>" and len(by_team["alpha"]["key_id"]) == 12, records
    assert by_team["alpha"]["key_id"] != by_team["beta"]["key_id"]
    log = (tollgate.workdir / "config.yaml.log").read_text()
    assert "sk-team-a" not in log and "sk-wrong" not in log
    # The key never reaches the provider.
    assert all("sk-team" not in json.dumps(r.get("headers", {})) for r in llmock.journal())


def test_anthropic_sdk_gets_anthropic_errors_on_a_messages_route(tollgate, llmock):
    policy = "{mode: strict, keys: [{key: sk-ant-good}]}"  # this SDK sends Authorization: Bearer
    extra = """          pathPrefix: /anthropic/v1
          policies:
            ai:
              routes: {/v1/messages: messages}
"""
    base = serve_listeners(tollgate, llm_route(llmock, policy, model="claude-haiku-4-5", provider="anthropic", extra=extra))
    good = anthropic.Anthropic(base_url=base, api_key="sk-ant-good", max_retries=0)
    m = good.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert m.content[0].text
    bad = anthropic.Anthropic(base_url=base, api_key="sk-ant-bad", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as e:
        bad.messages.create(model="claude-haiku-4-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    body = e.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error", body


def test_hashed_keys_allowed_models_and_modes(tollgate, llmock):
    digest = hashlib.sha256(b"sk-hashed").hexdigest()
    # `$$` is a literal `$` in the config (a single `$` starts an environment variable).
    salted = bcrypt.hashpw(b"sk-salted", bcrypt.gensalt(rounds=4)).decode().replace("$", "$$")
    policy = ("{keys: [{keyHash: 'sha256:" + digest + "', allowedModels: ['gpt-4o*']},"
              " {keyHash: '" + salted + "', allowedModels: []}]}")  # mode: optional (the default)
    base = serve_listeners(tollgate, llm_route(llmock, policy, model="gpt-4o-mini"))
    assert ask(base, "sk-hashed", model="gpt-4o-mini").choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as denied:
        ask(base, "sk-hashed", model="o3-pro")
    assert "o3-pro" in denied.value.body["message"], denied.value.body
    with pytest.raises(openai.PermissionDeniedError):
        ask(base, "sk-salted", model="gpt-4o-mini")  # an empty list allows no model
    # optional: no key passes, a wrong key does not.
    r = requests.post(f"{base}/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, timeout=10)
    assert r.status_code == 200, r.text
    with pytest.raises(openai.AuthenticationError):
        ask(base, "sk-nope")


def test_permissive_mode_and_key_locations_strip_the_key(tollgate, echo_upstreams):
    up = echo_upstreams[0]
    listeners = f"""  - routes:
    - matches: [{{path: {{pathPrefix: /q}}}}]
      policies:
        apiKey: {{mode: strict, location: {{queryParameter: {{name: key}}}}, keys: [{{key: "q k", metadata: {{team: q}}}}]}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - matches: [{{path: {{pathPrefix: /c}}}}]
      policies:
        apiKey: {{mode: strict, location: {{cookie: {{name: session_key}}}}, keys: [{{key: ck}}]}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - matches: [{{path: {{pathPrefix: /h}}}}]
      policies:
        apiKey: {{mode: strict, location: {{header: {{name: x-tenant, prefix: "Key "}}}}, keys: [{{key: hk}}]}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - matches: [{{path: {{pathPrefix: /e}}}}]
      policies:
        apiKey: {{mode: strict, location: {{expression: 'request.headers["x-team-key"]'}}, keys: [{{key: ek}}]}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - matches: [{{path: {{pathPrefix: /p}}}}]
      policies:
        apiKey: {{mode: permissive, keys: [{{key: pk}}]}}
      backends: [{{host: "127.0.0.1:{up}"}}]
"""
    base = serve_listeners(tollgate, listeners)
    r = requests.get(f"{base}/q/x?a=1&key=q%20k&b=2", timeout=5)
    assert r.status_code == 200 and r.json()["uri"] == "/q/x?a=1&b=2", r.text
    assert requests.get(f"{base}/q/x?key=other", timeout=5).status_code == 401
    r = requests.get(f"{base}/c/x", headers={"Cookie": "theme=dark; session_key=ck; lang=en"}, timeout=5)
    assert r.status_code == 200 and r.json()["cookie"] == "theme=dark; lang=en", r.text
    assert requests.get(f"{base}/c/x", headers={"Cookie": "session_key=nope"}, timeout=5).status_code == 401
    # A header of its own with a prefix: read after the prefix, the header removed.
    r = requests.get(f"{base}/h/x", headers={"x-tenant": "Key hk"}, timeout=5)
    assert r.status_code == 200 and r.json()["tenant"] == "", r.text
    assert requests.get(f"{base}/h/x", headers={"x-tenant": "hk"}, timeout=5).status_code == 401
    # An expression finds the key (it cannot remove it).
    assert requests.get(f"{base}/e/x", headers={"x-team-key": "ek"}, timeout=5).status_code == 200
    assert requests.get(f"{base}/e/x", headers={"x-team-key": "nope"}, timeout=5).status_code == 401
    assert requests.get(f"{base}/e/x", timeout=5).status_code == 401
    # permissive: a wrong key passes (and, not being accepted, is left in place); a good one is removed.
    r = requests.get(f"{base}/p/x", headers={"Authorization": "Bearer wrong"}, timeout=5)
    assert r.status_code == 200 and r.json()["auth"] == "Bearer wrong", r.text
    r = requests.get(f"{base}/p/x", headers={"Authorization": "Bearer pk"}, timeout=5)
    assert r.status_code == 200 and r.json()["auth"] == "", r.text


def test_mcp_route_answers_401_as_json_rpc(tollgate, workdir):
    port, proc = start_everything(workdir)
    try:
        listeners = f"""  - routes:
    - policies:
        apiKey: {{mode: strict, keys: [{{key: mcp-key}}]}}
      backends:
      - mcp:
          targets:
          - {json.dumps(mcp_target('everything', mcp={'host': f'http://127.0.0.1:{port}/mcp'}))}
"""
        base = serve_listeners(tollgate, listeners)
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        hdrs = {"Accept": "application/json, text/event-stream"}
        r = requests.post(f"{base}/mcp", json=init, headers=hdrs, timeout=10)
        assert r.status_code == 401, r.text
        body = r.json()
        assert body["jsonrpc"] == "2.0" and body["error"]["code"] == -32000 and body["error"]["data"]["status"] == 401, body
        r = requests.post(f"{base}/mcp", json=init, headers={**hdrs, "Authorization": "Bearer mcp-key"}, timeout=10)
        assert r.status_code == 200, r.text
    finally:
        proc.stop()


def test_bad_key_config_is_refused_with_its_place(tollgate, workdir):
    from conftest import load_error
    err = load_error(workdir, """binds:
- port: 1
  listeners:
  - routes:
    - policies:
        apiKey: {keys: [{key: a}, {keyHash: 'md5:00'}]}
      backends: [{host: "127.0.0.1:9"}]
""")
    assert "apiKey" in err and "keys[1].keyHash is not usable" in err, err
