"""`jwtAuth`: callers authenticated by JWTs from trusted issuers (keys inline, from a file or
from a URL), claims in CEL and the access log, the failure cases answered 401 in the caller's
API format, key rotation picked up without a restart, a cached key set outliving its
identity provider, the modes, and the token kept from the upstream."""
import json
import time

import openai
import pytest
import requests

from conftest import serve_listeners
from jwt_helpers import JwksServer, SigningKey, jwks, unsigned_token
from test_api_keys import access_records

SETTINGS = """config:
  logging:
    format: json
frontendPolicies:
  accessLog:
    add:
      team: jwt.team
"""


def llm_route(llmock, policy):
    return f"""  - routes:
    - policies:
        jwtAuth: {policy}
      backends:
      - ai:
          name: llm
          hostOverride: "127.0.0.1:{llmock.port}"
          provider: {{openAI: {{model: gpt-4o-mini}}}}
"""


def ask(base, token):
    c = openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0, timeout=20)
    return c.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def refused(base, token) -> str:
    with pytest.raises(openai.AuthenticationError) as e:
        ask(base, token)
    assert e.value.status_code == 401 and e.value.body["type"] == "authentication_error", e.value.body
    return e.value.body["message"]


def test_valid_tokens_are_served_and_every_bad_one_is_refused_in_openais_shape(tollgate, llmock):
    k1, ec_key, stranger = SigningKey("k1"), SigningKey("e1", "ec"), SigningKey("k1")
    policy = (f"{{mode: strict, issuer: 'https://idp.test', audiences: [tollgate], "
              f"jwks: {json.dumps(jwks(k1, ec_key))}}}")
    base = serve_listeners(tollgate, llm_route(llmock, policy), settings=SETTINGS)

    assert ask(base, k1.token(team="red")).choices[0].message.content
    assert ask(base, ec_key.token(sub="bob", aud=["other", "tollgate"])).choices[0].message.content
    assert "expired" in refused(base, k1.token(ttl=-120)).lower()
    assert ask(base, k1.token(ttl=-30)).choices[0].message.content, "60 s of clock skew are allowed"
    assert "issuer" in refused(base, k1.token(iss="https://evil.test")).lower()
    assert "audience" in refused(base, k1.token(aud="someone-else")).lower()
    assert "unknown key" in refused(base, k1.token(kid="k9"))
    assert "signature" in refused(base, stranger.token()).lower()
    msg = refused(base, unsigned_token())
    assert "malformed" in msg or "invalid" in msg, msg
    assert "no bearer token" in requests.post(f"{base}/v1/chat/completions", json={"model": "m", "messages": []}, timeout=5).json()["error"]["message"]
    assert refused(base, "not.a.jwt")
    assert refused(base, "x" * 20000)

    records = access_records(tollgate, 2)
    served = [r for r in records if r.get("http.status") == 200]
    assert {r.get("jwt.sub") for r in served} == {"alice", "bob"}, records
    assert any(r.get("team") == "red" for r in served), records
    log = (tollgate.workdir / "config.yaml.log").read_text()
    assert k1.token(team="red")[:40] not in log
    # The token never reaches the provider.
    assert all("bearer ey" not in json.dumps(r.get("headers", {})).lower() for r in llmock.journal())


def test_token_failure_cases_are_each_named(tollgate, llmock):
    k1 = SigningKey("k1")
    base = serve_listeners(tollgate, llm_route(llmock, f"{{mode: strict, issuer: 'https://idp.test', audiences: [tollgate], jwks: {json.dumps(jwks(k1))}}}"))
    assert "ExpiredSignature" in refused(base, k1.token(ttl=-120))
    assert "InvalidIssuer" in refused(base, k1.token(iss="https://evil.test"))
    assert "InvalidAudience" in refused(base, k1.token(aud="other"))
    assert "Missing" in refused(base, k1.token(aud=None))
    assert "ImmatureSignature" in refused(base, k1.token(nbf=int(time.time()) + 600))
    assert "InvalidSignature" in refused(base, SigningKey("k1").token())
    assert "malformed" in refused(base, unsigned_token())
    assert "Missing" in refused(base, k1.token(ttl=None)), "exp is required by default"


def test_remote_keys_rotate_without_a_restart_and_outlive_the_idp(tollgate, llmock):
    old, new = SigningKey("2025"), SigningKey("2026")
    idp = JwksServer(old)
    try:
        policy = f"{{mode: strict, providers: [{{issuer: 'https://idp.test', jwks: {{url: '{idp.url}'}}}}]}}"
        base = serve_listeners(tollgate, llm_route(llmock, policy))
        assert idp.fetches == 0, "the key set is fetched when a token needs it, not at start"
        assert ask(base, old.token()).choices[0].message.content
        assert ask(base, old.token()).choices[0].message.content
        assert idp.fetches == 1, "the key set is cached"

        idp.keys = [new]  # the provider rotates its signing key
        time.sleep(5.2)   # refetches are at least 5 s apart
        assert ask(base, new.token()).choices[0].message.content
        assert idp.fetches == 2
        # Junk kids do not make tollgate hammer the provider.
        for i in range(5):
            refused(base, new.token(kid=f"junk{i}"))
        assert idp.fetches == 2
    finally:
        idp.stop()
    # The provider is down: the cached set keeps validating.
    started = time.time()
    assert ask(base, new.token()).choices[0].message.content
    assert "unknown key" in refused(base, new.token(kid="k3"))
    assert time.time() - started < 5


def test_modes_multiple_providers_and_the_token_kept_from_the_upstream(tollgate, echo_upstreams, workdir):
    a, b = SigningKey("a1"), SigningKey("b1", "ec")
    (workdir / "b.jwks").write_text(jwks(b))
    up = echo_upstreams[0]
    providers = (f"providers: [{{issuer: 'https://a.test', jwks: {json.dumps(jwks(a))}}}, "
                 f"{{issuer: 'https://b.test', audiences: [api], jwks: {{file: '{workdir}/b.jwks'}}, "
                 f"jwtValidationOptions: {{requiredClaims: []}}}}]")
    route = lambda prefix, extra: f"""    - matches: [{{path: {{pathPrefix: {prefix}}}}}]
      policies:
        jwtAuth: {{{providers}{extra}}}
      backends: [{{host: "127.0.0.1:{up}"}}]
"""
    listeners = "  - routes:\n" + route("/opt", "") + route("/strict", ", mode: strict") + route("/perm", ", mode: permissive") + route("/keep", ", mode: strict, preserveToken: true")
    base = serve_listeners(tollgate, listeners)
    bearer = lambda t: {"Authorization": f"Bearer {t}"}
    get = lambda path, token=None: requests.get(f"{base}{path}", headers=bearer(token) if token else {}, timeout=5)

    ok_a, ok_b = a.token(iss="https://a.test"), b.token(iss="https://b.test", aud="api", ttl=None)
    assert get("/opt").status_code == 200
    assert get("/opt", "garbage").status_code == 401
    r = get("/opt", ok_a)
    assert r.status_code == 200 and r.json()["auth"] == "", "the token is removed before the upstream"
    assert get("/strict", ok_b).status_code == 200, "second provider, its own audience, no exp required"
    assert get("/strict").status_code == 401
    assert get("/strict", b.token(iss="https://a.test", aud="api")).status_code == 401, "b's key cannot sign for a"
    assert get("/perm", "garbage").status_code == 200
    assert get("/perm", a.token(iss="https://a.test", ttl=-300)).status_code == 200
    r = get("/keep", ok_a)
    assert r.status_code == 200 and r.json()["auth"] == f"Bearer {ok_a}", "preserveToken keeps it"


def test_bad_jwt_configs_are_refused_at_load(workdir):
    from conftest import load_error
    base = "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{host: '127.0.0.1:9'}]\n      policies:\n        jwtAuth: "
    assert "kid" in load_error(workdir, base + "{issuer: x, jwks: '{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"a\", \"y\": \"b\"}]}'}")
    assert "symmetric" in load_error(workdir, base + "{issuer: x, jwks: '{\"keys\": [{\"kty\": \"oct\", \"kid\": \"s\", \"k\": \"c2VjcmV0\"}]}'}")
    assert "either" in load_error(workdir, base + "{issuer: x, jwks: '{\"keys\": []}', providers: []}")
    assert "requiredClaims" in load_error(workdir, base + "{issuer: x, jwks: '{\"keys\": []}', jwtValidationOptions: {requiredClaims: [jti]}}")
    assert "http or https" in load_error(workdir, base + "{issuer: x, jwks: {url: 'ftp://idp/keys'}}")


def test_backend_auth_passthrough_and_jwt_sign(tollgate, echo_upstreams, workdir):
    """`backendAuth.passthrough` forwards the caller's verified token (and nothing without one);
    `jwtSign` signs a short-lived token the upstream can verify with the gateway's public key."""
    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization
    caller = SigningKey("c1")
    gateway_key = SigningKey("g1", "ec")
    pem = gateway_key.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (workdir / "gw.pem").write_bytes(pem)
    up = echo_upstreams[0]
    auth = f"jwtAuth: {{issuer: 'https://idp.test', jwks: {json.dumps(jwks(caller))}}}"
    listeners = f"""  - routes:
    - matches: [{{path: {{pathPrefix: /pass}}}}]
      policies:
        {auth}
        backendAuth: {{passthrough: {{}}}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - matches: [{{path: {{pathPrefix: /cookie}}}}]
      policies:
        {auth}
        backendAuth: {{passthrough: {{location: {{cookie: {{name: tok}}}}}}}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - matches: [{{path: {{pathPrefix: /sign}}}}]
      policies:
        backendAuth:
          jwtSign: {{signingKey: {{file: '{workdir}/gw.pem'}}, alg: ES256, kid: gw-1, ttl: 120s, claims: {{iss: tollgate, sub: svc, aud: [warehouse]}}}}
      backends: [{{host: "127.0.0.1:{up}"}}]
"""
    base = serve_listeners(tollgate, listeners)
    token = caller.token(sub="carol")
    r = requests.get(f"{base}/pass", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert r.json()["auth"] == f"Bearer {token}"
    assert requests.get(f"{base}/pass", timeout=5).json()["auth"] == "", "no verified token, nothing forwarded"
    r = requests.get(f"{base}/cookie", headers={"Authorization": f"Bearer {token}", "Cookie": "a=1"}, timeout=5)
    assert r.json()["auth"] == "" and r.json()["cookie"] == f"a=1; tok={token}", r.json()

    first = requests.get(f"{base}/sign", headers={"Authorization": "Bearer client"}, timeout=5).json()["auth"]
    signed = first.removeprefix("Bearer ")
    assert pyjwt.get_unverified_header(signed)["kid"] == "gw-1"
    claims = pyjwt.decode(signed, gateway_key.private.public_key(), algorithms=["ES256"], audience="warehouse")
    assert claims["iss"] == "tollgate" and claims["sub"] == "svc" and claims["exp"] - claims["iat"] == 120, claims
    again = requests.get(f"{base}/sign", timeout=5).json()["auth"]
    assert again == first, "reused while more than half its lifetime is left"


def test_alg_confusion_and_oversized_tokens_are_refused(tollgate, echo_upstreams):
    """An attacker who signs HS256 with the provider's public key as the HMAC secret, or sends
    a huge header, gets 401."""
    import base64
    import hashlib
    import hmac
    from cryptography.hazmat.primitives import serialization
    key = SigningKey("k1")
    up = echo_upstreams[0]
    listeners = f"""  - routes:
    - policies:
        jwtAuth: {{mode: strict, issuer: 'https://idp.test', jwks: {json.dumps(jwks(key))}}}
      backends: [{{host: "127.0.0.1:{up}"}}]
"""
    base = serve_listeners(tollgate, listeners)
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = b64(json.dumps({"iss": "https://idp.test", "sub": "mallory", "exp": int(time.time()) + 300}).encode())
    public_pem = key.private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    sig = b64(hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest())
    r = requests.get(f"{base}/x", headers={"Authorization": f"Bearer {header}.{body}.{sig}"}, timeout=5)
    assert r.status_code == 401 and "does not verify" in r.json()["error"]["message"], r.text
    r = requests.get(f"{base}/x", headers={"Authorization": "Bearer " + "a" * 17000}, timeout=5)
    assert r.status_code == 401
    assert requests.get(f"{base}/x", headers={"Authorization": f"Bearer {key.token()}"}, timeout=5).status_code == 200


def test_token_and_credential_locations(tollgate, echo_upstreams, workdir):
    """jwtAuth reading a cookie, basicAuth reading a custom header, jwtSign writing to a header:
    each location is read (and the credential removed) or written where configured."""
    import base64
    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization
    key = SigningKey("k1")
    signer = SigningKey("s1")
    pem = signer.private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (workdir / "s.pem").write_bytes(pem)
    (workdir / "users").write_text("ann:{SHA}" + base64.b64encode(__import__("hashlib").sha1(b"pw").digest()).decode() + "\n")
    up = echo_upstreams[0]
    listeners = f"""  - routes:
    - matches: [{{path: {{pathPrefix: /cookie}}}}]
      policies:
        jwtAuth: {{mode: strict, location: {{cookie: {{name: session}}}}, issuer: 'https://idp.test', jwks: {json.dumps(jwks(key))}}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - matches: [{{path: {{pathPrefix: /basic}}}}]
      policies:
        basicAuth: {{mode: strict, htpasswd: {{file: '{workdir}/users'}}, authorizationLocation: {{header: {{name: x-tenant, prefix: "Basic "}}}}}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - matches: [{{path: {{pathPrefix: /sign}}}}]
      policies:
        backendAuth: {{jwtSign: {{signingKey: {{file: '{workdir}/s.pem'}}, alg: RS256, claims: {{sub: gw}}, location: {{header: {{name: x-added, prefix: "JWT "}}}}}}}}
      backends: [{{host: "127.0.0.1:{up}"}}]
"""
    base = serve_listeners(tollgate, listeners)
    token = key.token()
    r = requests.get(f"{base}/cookie", cookies={"session": token, "other": "1"}, timeout=5)
    assert r.status_code == 200 and r.json()["cookie"] == "other=1", r.json()
    assert requests.get(f"{base}/cookie", headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code == 401
    cred = base64.b64encode(b"ann:pw").decode()
    r = requests.get(f"{base}/basic", headers={"x-tenant": f"Basic {cred}"}, timeout=5)
    assert r.status_code == 200 and r.json()["tenant"] == "", r.json()
    assert requests.get(f"{base}/basic", auth=("ann", "pw"), timeout=5).status_code == 401
    added = requests.get(f"{base}/sign", timeout=5).json()["added"]
    assert added.startswith("JWT ")
    claims = pyjwt.decode(added[4:], signer.private.public_key(), algorithms=["RS256"])
    assert claims["sub"] == "gw" and claims["exp"] - claims["iat"] == 300
