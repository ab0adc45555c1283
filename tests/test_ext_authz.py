"""`extAuthz`: an external authorization service decides. Over gRPC (Envoy's
`envoy.service.auth.v3.Authorization/Check`, served by a grpcio server) it allows while adding
and removing upstream headers, adding response headers and handing metadata to later rules, or
denies with its own status, headers and body; when it is down or slow, `failureMode` decides
within the 2 s timeout. The HTTP mode against a small HTTP authorizer."""
import json
import time

import openai
import pytest
import requests

from conftest import free_port, serve_listeners
from ext_authz_server import ExtAuthzService, HttpAuthorizer
from jwt_helpers import SigningKey, jwks


@pytest.fixture
def authz():
    s = ExtAuthzService()
    yield s
    s.stop()


@pytest.fixture
def http_authz():
    s = HttpAuthorizer()
    yield s
    s.stop()


def route(prefix, up, policies):
    return f"""    - matches: [{{path: {{pathPrefix: {prefix}}}}}]
      policies:
{policies}
      backends: [{{host: "127.0.0.1:{up}"}}]
"""


def test_grpc_service_allows_denies_and_shapes_the_request(tollgate, echo_upstreams, authz):
    up = echo_upstreams[0]
    key = SigningKey("k1")
    policies = f"""        jwtAuth: {{issuer: 'https://idp.test', jwks: {json.dumps(jwks(key))}}}
        extAuthz:
          host: "127.0.0.1:{authz.port}"
          protocol: {{grpc: {{context: {{tenant: acme}}}}}}
          includeRequestHeaders: [x-authz, x-user, x-remove-me, x-tenant, ":path"]
        authorization: {{rules: [{{deny: 'extauthz.tier == "gold" && request.headers["x-tenant"] == "blocked"'}}]}}"""
    base = serve_listeners(tollgate, "  - routes:\n" + route("/", up, policies))
    token = key.token(sub="alice")
    h = lambda **kw: {"x-authz": "allow", "x-user": "bob", "Authorization": f"Bearer {token}", **kw}

    r = requests.get(f"{base}/a/b?x=1", headers=h(**{"x-remove-me": "secret", "x-tenant": "t1"}), timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers["x-authz-said"] == "yes", r.headers
    seen = r.json()
    assert seen["tenant"] == "t1", seen
    assert (seen["authz_user"], seen["authz_mode"]) == ("bob", "grpc"), "the service's headers reach the upstream"
    assert seen["auth"] == "", "jwtAuth removed the token"
    assert seen["remove_me"] == "", "headers_to_remove"
    sent = authz.requests[-1]["attributes"]
    http = sent["request"]["http"]
    assert http["method"] == "GET" and http["path"] == "/a/b?x=1" and http["headers"]["x-user"] == "bob", http
    assert http["headers"][":path"] == "/a/b?x=1" and "authorization" not in http["headers"], "only the listed headers"
    assert sent["context_extensions"] == {"tenant": "acme"}
    assert sent["metadata_context"]["filter_metadata"]["envoy.filters.http.jwt_authn"]["jwt_payload"]["sub"] == "alice"
    assert sent["source"]["address"]["socket_address"]["address"] == "127.0.0.1"

    # The service's dynamic metadata feeds later rules.
    r = requests.get(f"{base}/x", headers=h(**{"x-tenant": "blocked"}), timeout=5)
    assert r.status_code == 403 and r.json()["error"]["message"] == "authorization failed", r.text

    r = requests.get(f"{base}/x", headers=h(**{"x-authz": "deny"}), timeout=5)
    assert (r.status_code, r.text, r.headers["x-denied-by"]) == (418, "denied by policy", "authz")
    r = requests.get(f"{base}/x", headers=h(**{"x-authz": "deny-plain"}), timeout=5)
    assert r.status_code == 403 and r.json()["error"]["message"] == "external authorization failed"
    r = requests.get(f"{base}/x", headers=h(**{"x-authz": "nobody"}), timeout=5)
    assert (r.status_code, r.text) == (401, "who are you?")


def test_a_down_or_slow_service_is_decided_by_failure_mode_within_the_timeout(tollgate, echo_upstreams, authz):
    up = echo_upstreams[0]
    dead = free_port()
    pol = lambda port, mode: f'        extAuthz: {{host: "127.0.0.1:{port}", failureMode: {mode}}}'
    listeners = "  - routes:\n" + route("/open", up, pol(dead, "allow")) + route("/closed", up, pol(dead, "deny")) \
        + route("/status", up, pol(dead, "{denyWithStatus: 503}")) + route("/slow", up, pol(authz.port, "deny"))
    base = serve_listeners(tollgate, listeners)
    assert requests.get(f"{base}/open", timeout=5).status_code == 200
    r = requests.get(f"{base}/closed", timeout=5)
    assert r.status_code == 403 and r.json()["error"]["message"] == "external authorization failed"
    r = requests.get(f"{base}/status", timeout=5)
    assert r.status_code == 503 and "unavailable" in r.json()["error"]["message"]
    started = time.time()
    r = requests.get(f"{base}/slow", headers={"x-authz": "slow"}, timeout=10)
    took = time.time() - started
    assert r.status_code == 403 and 1.8 < took < 2.9, (r.status_code, took)


def test_llm_route_denials_keep_openais_shape(tollgate, llmock, authz):
    listeners = f"""  - routes:
    - policies:
        extAuthz: {{host: "127.0.0.1:{authz.port}"}}
      backends:
      - ai:
          name: llm
          hostOverride: "127.0.0.1:{llmock.port}"
          provider: {{openAI: {{model: gpt-4o-mini}}}}
"""
    base = serve_listeners(tollgate, listeners)
    c = lambda verdict: openai.OpenAI(base_url=f"{base}/v1", api_key="k", max_retries=0, default_headers={"x-authz": verdict})
    assert c("allow").chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    with pytest.raises(openai.PermissionDeniedError) as e:
        c("deny-plain").chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["message"] == "external authorization failed"


def test_http_mode(tollgate, echo_upstreams, http_authz):
    up = echo_upstreams[0]
    policies = lambda extra: f"""        extAuthz:
          host: "127.0.0.1:{http_authz.port}"
          protocol:
            http:
              includeResponseHeaders: [x-authz-user]
              addRequestHeaders: {{x-original-path: 'request.path'}}
{extra}"""
    listeners = "  - routes:\n" + route("/r", up, policies("              redirect: '\"https://login.example/?next=\" + request.path'")) \
        + route("/", up, policies("              path: '\"/check\" + request.path'"))
    base = serve_listeners(tollgate, listeners)
    r = requests.post(f"{base}/api/x?q=1", headers={"Authorization": "Bearer good", "x-tenant": "t"}, data="body", timeout=5)
    assert r.status_code == 200, r.text
    seen = http_authz.requests[-1]
    assert seen["method"] == "POST" and seen["path"] == "/check/api/x", seen
    assert seen["headers"]["authorization"] == "Bearer good" and "x-tenant" not in seen["headers"], "only Authorization by default"
    assert seen["headers"]["x-original-path"] == "/api/x"
    r = requests.get(f"{base}/api/x", headers={"Authorization": "Bearer bad"}, timeout=5)
    assert (r.status_code, r.text, r.headers["x-denied-by"]) == (403, "http authz says no", "http-authz")
    r = requests.get(f"{base}/r/page", headers={"Authorization": "Bearer bad"}, allow_redirects=False, timeout=5)
    assert r.status_code == 302 and r.headers["location"] == "https://login.example/?next=/r/page"
    r = requests.get(f"{base}/r/page", headers={"Authorization": "Bearer good"}, timeout=5)
    assert r.status_code == 200 and r.json()["authz_user"] == "alice", "includeResponseHeaders reach the upstream"
    assert http_authz.requests[-1]["path"] == "/r/page"


def test_unsupported_ext_authz_fields_are_named(workdir):
    from conftest import load_error
    base = "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: '127.0.0.1:9'}]\n      policies:\n        extAuthz: "
    assert "extAuthz.includeRequestBody is not supported yet" in load_error(workdir, base + "{host: 'a:1', includeRequestBody: {}}")
    assert "extAuthz.cache is not supported yet" in load_error(workdir, base + "{host: 'a:1', cache: {key: []}}")
    assert "failureMode" in load_error(workdir, base + "{host: 'a:1', failureMode: maybe}")


def test_http_refusal_with_an_oversized_body_stays_a_refusal_under_fail_open(tollgate, echo_upstreams, http_authz):
    """A definite "no" must not become a "service failed" that `failureMode: allow` passes."""
    up = echo_upstreams[0]
    pol = f"""        extAuthz:
          host: "127.0.0.1:{http_authz.port}"
          failureMode: allow
          protocol:
            http:
              path: 'request.headers["x-check-path"]'"""
    base = serve_listeners(tollgate, "  - routes:\n" + route("/", up, pol))
    r = requests.get(f"{base}/x", headers={"Authorization": "Bearer big", "x-check-path": "/check"}, timeout=10)
    assert r.status_code == 403, (r.status_code, r.text[:200])
    # A path the caller shapes into an invalid one is refused, not failed open.
    r = requests.get(f"{base}/x", headers={"Authorization": "Bearer good", "x-check-path": "/a b"}, timeout=10)
    assert r.status_code == 403 and r.json()["error"]["message"] == "external authorization failed", r.text
    r = requests.get(f"{base}/x", headers={"Authorization": "Bearer good", "x-check-path": "/check"}, timeout=10)
    assert r.status_code == 200


def test_grpc_metadata_and_http_body_come_from_cel(tollgate, echo_upstreams, authz, http_authz):
    up = echo_upstreams[0]
    grpc = f"""        extAuthz:
          host: "127.0.0.1:{authz.port}"
          protocol: {{grpc: {{metadata: {{tenant: '{{"id": request.headers["x-tenant"]}}', plain: 'request.method'}}}}}}"""
    http = f"""        extAuthz:
          host: "127.0.0.1:{http_authz.port}"
          protocol: {{http: {{body: '"user=" + request.headers["x-user"]'}}}}"""
    base = serve_listeners(tollgate, "  - routes:\n" + route("/g", up, grpc) + route("/h", up, http))
    r = requests.get(f"{base}/g", headers={"x-authz": "allow", "x-tenant": "t1"}, timeout=5)
    assert r.status_code == 200, r.text
    meta = authz.requests[-1]["attributes"]["metadata_context"]["filter_metadata"]
    assert meta["tenant"] == {"id": "t1"} and meta["plain"] == {"value": "GET"}, meta
    r = requests.get(f"{base}/h", headers={"Authorization": "Bearer good", "x-user": "bob"}, timeout=5)
    assert r.status_code == 200 and http_authz.requests[-1]["body"] == "user=bob", http_authz.requests[-1]
