"""`authorization` (CEL allow / deny / require rules at listener, route and backend level,
merged as agentgateway merges them), `basicAuth` against htpasswd files in each hash scheme,
and `mcpAuthorization`'s object rules deciding what an authenticated MCP caller sees."""
import base64
import hashlib
import json
import subprocess

import bcrypt
import openai
import pytest
import requests

from conftest import free_port, serve_listeners, start_py_mcp
from jwt_helpers import SigningKey, jwks
from mcp_helpers import RawSession
from test_api_keys import access_records


def test_rules_at_listener_route_and_backend_level_decide_together(tollgate, echo_upstreams):
    key = SigningKey("k1")
    up = echo_upstreams[0]
    listeners = f"""  - policies:
      jwtAuth: {{issuer: 'https://idp.test', jwks: {json.dumps(jwks(key))}}}
      authorization:
        rules:
        - deny: 'jwt.sub == "mallory"'
    routes:
    - name: admin
      matches: [{{path: {{pathPrefix: /admin}}}}]
      policies:
        authorization: {{rules: ['jwt.role == "admin"']}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - name: team
      matches: [{{path: {{pathPrefix: /team}}}}]
      policies:
        authorization: {{rules: ['jwt.role == "admin"', 'jwt.role == "member"']}}
      backends:
      - host: "127.0.0.1:{up}"
        policies:
          authorization: {{rules: [{{require: 'jwt.team == "a"'}}, {{allow: 'request.method == "GET"'}}]}}
    - name: open
      matches: [{{path: {{pathPrefix: /open}}}}]
      backends: [{{host: "127.0.0.1:{up}"}}]
"""
    base = serve_listeners(tollgate, listeners)
    tokens = {
        "admin": key.token(sub="ann", role="admin", team="a"),
        "member-a": key.token(sub="mo", role="member", team="a"),
        "member-b": key.token(sub="max", role="member", team="b"),
        "mallory": key.token(sub="mallory", role="admin", team="a"),
        "none": None,
    }
    table = [
        # (token, method, path, status)
        ("admin", "GET", "/admin", 200),
        ("member-a", "GET", "/admin", 403),
        ("none", "GET", "/admin", 403),       # no principal: the allow rule cannot hold
        ("mallory", "GET", "/admin", 403),    # the listener's deny wins over the route's allow
        ("mallory", "GET", "/open", 403),     # listener rules apply to every route
        ("none", "GET", "/open", 200),        # deny rules alone are a denylist
        ("member-a", "GET", "/team", 200),
        ("member-a", "POST", "/team", 200),   # the route's allow rules merge with the backend's
        ("member-b", "GET", "/team", 403),    # the backend's require fails
        ("admin", "DELETE", "/team", 200),
        ("none", "GET", "/team", 403),
    ]
    for who, method, path, status in table:
        headers = {"Authorization": f"Bearer {tokens[who]}"} if tokens[who] else {}
        r = requests.request(method, f"{base}{path}", headers=headers, timeout=5)
        assert r.status_code == status, (who, method, path, r.status_code, r.text)
        if status == 403:
            assert r.json()["error"]["message"] == "authorization failed", r.text


def test_denied_llm_calls_get_openais_403_and_api_key_rules(tollgate, llmock):
    listeners = f"""  - routes:
    - policies:
        apiKey: {{mode: strict, keys: [{{key: sk-a, metadata: {{tier: gold}}}}, {{key: sk-b, metadata: {{tier: free}}}}]}}
        authorization: {{rules: ['apiKey.tier == "gold"']}}
      backends:
      - ai:
          name: llm
          hostOverride: "127.0.0.1:{llmock.port}"
          provider: {{openAI: {{model: gpt-4o-mini}}}}
"""
    base = serve_listeners(tollgate, listeners)
    ask = lambda k: openai.OpenAI(base_url=f"{base}/v1", api_key=k, max_retries=0).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert ask("sk-a").choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as e:
        ask("sk-b")
    assert e.value.body["message"] == "authorization failed", e.value.body


def htpasswd_lines(workdir):
    apr1 = subprocess.run(["openssl", "passwd", "-apr1", "-salt", "s4ltS4lt", "apr-pass"], capture_output=True, text=True, check=True).stdout.strip()
    bc = bcrypt.hashpw(b"bcrypt-pass", bcrypt.gensalt(rounds=5)).decode().replace("$2b$", "$2y$", 1)
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"sha-pass").digest()).decode()
    path = workdir / "users.htpasswd"
    path.write_text(f"# test users\nann:{apr1}\nbob:{bc}\ncat:{sha}\n")
    return path


def test_basic_auth_with_each_hash_scheme(tollgate, echo_upstreams, workdir):
    users = htpasswd_lines(workdir)
    up = echo_upstreams[0]
    listeners = f"""  - routes:
    - matches: [{{path: {{pathPrefix: /strict}}}}]
      policies:
        basicAuth: {{htpasswd: {{file: '{users}'}}, realm: staff, mode: strict}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - matches: [{{path: {{pathPrefix: /optional}}}}]
      policies:
        basicAuth: {{htpasswd: {{file: '{users}'}}}}
        authorization: {{rules: [{{deny: 'basicAuth.username == "cat"'}}]}}
      backends: [{{host: "127.0.0.1:{up}"}}]
"""
    settings = "config:\n  logging:\n    format: json\n"
    base = serve_listeners(tollgate, listeners, settings=settings)
    get = lambda path, auth=None: requests.get(f"{base}{path}", auth=auth, timeout=10)
    for user, pw in [("ann", "apr-pass"), ("bob", "bcrypt-pass"), ("cat", "sha-pass")]:
        r = get("/strict", (user, pw))
        assert r.status_code == 200, (user, r.text)
        assert r.json()["auth"] == "", "the credential is removed before the upstream"
        bad = get("/strict", (user, pw + "x"))
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == 'Basic realm="staff"', bad.headers
        assert "invalid credentials" in bad.json()["error"]["message"]
    r = get("/strict")
    assert r.status_code == 401 and "no basic authentication credentials" in r.json()["error"]["message"]
    assert get("/strict", ("nobody", "x")).status_code == 401
    r = requests.get(f"{base}/strict", headers={"Authorization": "Basic !!notbase64"}, timeout=5)
    assert r.status_code == 401
    assert get("/optional").status_code == 200
    r = get("/optional", ("ann", "wrong"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == 'Basic realm="Restricted"'
    assert get("/optional", ("ann", "apr-pass")).status_code == 200
    assert get("/optional", ("cat", "sha-pass")).status_code == 403
    records = access_records(tollgate, 10)
    assert {"ann", "bob", "cat"} <= {r.get("basicAuth.username") for r in records}, records
    log = (tollgate.workdir / "config.yaml.log").read_text()
    assert "apr-pass" not in log and base64.b64encode(b"ann:apr-pass").decode() not in log


def test_mcp_authorization_object_rules_over_jwt_claims(tollgate, workdir):
    key = SigningKey("k1")
    server_port, _, server = start_py_mcp(workdir, "streamable-http", "py-rbac")
    try:
        port = free_port()
        tollgate.start(f"""binds:
- port: {port}
  listeners:
  - routes:
    - policies:
        jwtAuth: {{mode: strict, issuer: 'https://idp.test', jwks: {json.dumps(jwks(key))}}}
        mcpAuthorization:
          rules:
          - 'mcp.tool.name == "echo"'
          - allow: 'jwt.role == "admin"'
          - deny: 'mcp.tool.name == "add" && jwt.sub == "mallory"'
      backends:
      - mcp: {{targets: [{{name: py, mcp: {{host: "http://127.0.0.1:{server_port}/mcp"}}}}]}}
""", ports=[port])

        def session(token):
            class S(RawSession):
                def headers(self):
                    return dict(super().headers(), Authorization=f"Bearer {token}")
            s = S(f"http://127.0.0.1:{port}/mcp")
            s.initialize()
            return s

        user = session(key.token(sub="ulla", role="user"))
        assert [t["name"] for t in user.call("tools/list", {})["result"]["tools"]] == ["echo"]
        denied = user.call("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
        assert denied["error"]["code"] == -32602, denied
        admin = session(key.token(sub="ada", role="admin"))
        assert sorted(t["name"] for t in admin.call("tools/list", {})["result"]["tools"]) == ["add", "echo"]
        assert admin.call("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})["result"]["content"][0]["text"] == "3"
        mallory = session(key.token(sub="mallory", role="admin"))
        assert [t["name"] for t in mallory.call("tools/list", {})["result"]["tools"]] == ["echo"], "deny beats allow"
        r = requests.post(f"http://127.0.0.1:{port}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
                          headers={"Accept": "application/json, text/event-stream"}, timeout=5)
        assert r.status_code == 401 and r.json()["error"]["message"].startswith("authentication failure"), r.text
    finally:
        server.stop()


def test_bad_rules_are_refused_at_load(workdir):
    from conftest import load_error
    base = "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: '127.0.0.1:9'}]\n      policies:\n        authorization: "
    assert "rule 1 must set exactly one" in load_error(workdir, base + "{rules: ['true', {allow: 'true', deny: 'true'}]}")
    assert "rule 0" in load_error(workdir, base + "{rules: ['jwt.sub ==']}")
    basic = base.replace("authorization: ", "basicAuth: ")
    assert "not supported yet" in load_error(workdir, basic + "{htpasswd: 'eve:abXYZ12345678'}")
    assert "permissive" in load_error(workdir, basic + "{htpasswd: 'a:{SHA}qUqP5cyxm6YcTAhz05Hph5gvu9M=', mode: permissive}")


def test_a_gateway_wide_deny_merges_with_a_routes_own_rules(tollgate, echo_upstreams):
    """A targeted `authorization` on the whole listener is not dropped where a route has rules of
    its own (agentgateway merges every level's rules)."""
    up = echo_upstreams[0]
    port = free_port()
    tollgate.start(f"""policies:
- name: {{name: block-bots, namespace: default}}
  target: {{gateway: {{gatewayName: default, gatewayNamespace: default, listenerName: main}}}}
  policy: {{authorization: {{rules: [{{deny: 'request.headers["user-agent"] == "bot"'}}]}}}}
binds:
- port: {port}
  listeners:
  - name: main
    routes:
    - name: own-rules
      policies:
        authorization: {{rules: ['request.method == "GET"']}}
      backends: [{{host: "127.0.0.1:{up}"}}]
""", ports=[port])
    base = f"http://127.0.0.1:{port}"
    assert requests.get(f"{base}/x", timeout=5).status_code == 200
    assert requests.post(f"{base}/x", timeout=5).status_code == 403, "the route's own allow rule"
    assert requests.get(f"{base}/x", headers={"User-Agent": "bot"}, timeout=5).status_code == 403, "the gateway-wide deny"


def test_rules_over_the_client_certificate_of_an_mtls_listener(tollgate, workdir):
    """`authorization` on an mTLS listener: `source.subjectCn` / `source.subjectAltNames` of the
    verified client certificate decide."""
    import httpx
    from test_tls_listeners import _ctx
    from tls_helpers import Ca
    pki, clients = Ca(workdir / "pki"), Ca(workdir / "clients", "client CA")
    crt, key = pki.issue("server", "localhost", dns=["localhost"])
    alice = clients.issue("alice", "alice", uris=["spiffe://td/ns/a/sa/alice"], client=True)
    bob = clients.issue("bob", "bob", client=True)
    port = free_port()
    tollgate.start(f"""binds:
- port: {port}
  listeners:
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}, root: {clients.pem}}}
    policies:
      authorization:
        rules: ['source.subjectCn == "alice"', '"spiffe://td/ns/a/sa/admin" in source.subjectAltNames']
    routes:
    - policies: {{directResponse: {{status: 200, body: welcome}}}}
""", ports=[port])
    assert httpx.get(f"https://localhost:{port}/", verify=_ctx(pki.pem, alice), timeout=5).status_code == 200
    r = httpx.get(f"https://localhost:{port}/", verify=_ctx(pki.pem, bob), timeout=5)
    assert r.status_code == 403 and r.json()["error"]["message"] == "authorization failed", r.text
