"""`oidc`: browser login on a route. Headless Chromium (Debian's, driven by Playwright) opens a
protected page, is sent to the npm `oidc-provider`'s login page, logs in, consents, and lands
back on the page with an encrypted session cookie (the upstream sees neither it nor the ID
token, and the log names the user); `fetch` works with the session and gets 401 without one;
logout ends the session. Also `csrf` refusing a cross-site POST."""
import json
import re

import pytest
import requests
from playwright.sync_api import sync_playwright

from conftest import ROOT, Proc, free_port, wait_port
from test_api_keys import access_records

CHROMIUM = "/usr/bin/chromium"
SECRET = "5e" * 32


@pytest.fixture
def web_idp(workdir):
    tg_port, idp_port = free_port(), free_port()
    redirect = f"http://127.0.0.1:{tg_port}/oauth/callback"
    p = Proc(["node", str(ROOT / "tests" / "node" / "oidc_server.mjs"), str(idp_port), redirect], workdir / "oidc.log", cwd=ROOT / "tests" / "node")
    wait_port(idp_port, proc=p.proc)
    yield tg_port, f"http://127.0.0.1:{idp_port}", redirect
    p.stop()


def config(tg_port, issuer, redirect, up):
    return f"""config:
  logging:
    format: json
binds:
- port: {tg_port}
  listeners:
  - routes:
    - name: bye
      matches: [{{path: {{exact: /bye}}}}]
      policies: {{directResponse: {{status: 200, body: "bye"}}}}
    - name: form
      matches: [{{path: {{pathPrefix: /form}}}}]
      policies: {{csrf: {{additionalOrigins: ["https://partner.example"]}}}}
      backends: [{{host: "127.0.0.1:{up}"}}]
    - name: app
      policies:
        oidc:
          issuer: {issuer}
          clientId: tollgate-web
          clientSecret: web-secret
          redirectURI: {redirect}
          scopes: [email]
          logout: {{path: /logout, redirect: /bye}}
        csrf: {{}}
      backends: [{{host: "127.0.0.1:{up}"}}]
"""


def test_browser_logs_in_uses_the_session_and_logs_out(tollgate, web_idp, echo_upstreams):
    tg_port, issuer, redirect = web_idp
    base = f"http://127.0.0.1:{tg_port}"
    tollgate.start(config(tg_port, issuer, redirect, echo_upstreams[0]), ports=[tg_port], extra_env={"OIDC_COOKIE_SECRET": SECRET})

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            context = browser.new_context()
            page = context.new_page()
            page.goto(f"{base}/app/page?x=1")
            assert page.url.startswith(issuer), page.url  # the provider's login page
            page.fill("input[name=login]", "alice")
            page.fill("input[name=password]", "any")
            page.click("button[type=submit]")
            page.click("button[type=submit]")  # consent
            page.wait_for_url(f"{base}/app/page?x=1")
            seen = json.loads(page.inner_text("body"))
            assert seen["uri"] == "/app/page?x=1", seen
            assert "agw_oidc" not in seen["cookie"] and seen["auth"] == "", "the upstream sees no session and no token"

            session = [c for c in context.cookies() if c["name"].startswith("agw_oidc_s_")]
            assert len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Lax", context.cookies()
            assert not re.match(r"^ey[\w-]+\.[\w-]+\.", session[0]["value"]), "the ID token is sealed, not stored as is"

            assert page.evaluate("fetch('/app/data').then(r => r.status)") == 200
            # A cross-site style POST without Origin passes csrf; one from another origin does not.
            assert page.evaluate("fetch('/app/data', {method: 'POST', body: 'x'}).then(r => r.status)") == 200

            assert page.evaluate("fetch('/logout', {method: 'POST'}).then(r => r.text())") == "bye"
            assert page.evaluate("fetch('/app/data').then(r => r.status)") == 401
            assert page.evaluate("fetch('/app/data').then(r => r.text())") == "oidc failure: authentication required"
            nav = context.request.get(f"{base}/app/page", max_redirects=0)
            assert nav.status == 302 and nav.headers["location"].startswith(f"{issuer}/auth?response_type=code"), nav.headers
            assert "code_challenge_method=S256" in nav.headers["location"]
            assert "scope=openid%20email" in nav.headers["location"], "`scopes` are asked for after openid"
        finally:
            browser.close()

    records = access_records(tollgate, 3)
    assert any(r.get("jwt.sub") == "alice" and r.get("http.status") == 200 for r in records), records


def test_callback_attacks_and_csrf(tollgate, web_idp, echo_upstreams):
    tg_port, issuer, redirect = web_idp
    base = f"http://127.0.0.1:{tg_port}"
    tollgate.start(config(tg_port, issuer, redirect, echo_upstreams[0]), ports=[tg_port], extra_env={"OIDC_COOKIE_SECRET": SECRET})
    s = requests.Session()
    r = s.get(f"{base}/oauth/callback?state=garbage&code=x", allow_redirects=False, timeout=5)
    assert (r.status_code, r.text) == (400, "oidc failure: invalid callback")
    start = s.get(f"{base}/app/x", allow_redirects=False, timeout=5)
    assert start.status_code == 302
    state = re.search(r"[?&]state=([^&]+)", start.headers["location"]).group(1)
    # A forged code with the real state: the provider refuses the exchange.
    r = s.get(f"{base}/oauth/callback?state={state}&code=forged", allow_redirects=False, timeout=10)
    assert (r.status_code, r.text) == (500, "oidc failure: token exchange failed"), r.text
    # The state without its transaction cookie (another browser) is refused.
    r = requests.get(f"{base}/oauth/callback?state={state}&code=x", allow_redirects=False, timeout=5)
    assert (r.status_code, r.text) == (400, "oidc failure: missing transaction")
    # A forged session cookie is ignored (back to login).
    r = requests.get(f"{base}/app/x", cookies={"agw_oidc_s_0000": "AAAA"}, allow_redirects=False, timeout=5)
    assert r.status_code == 302
    # An open redirect through the return path is not possible.
    r = s.get(f"{base}//evil.example/x", allow_redirects=False, timeout=5)
    assert r.status_code in (302, 400)
    # Logout only from the site's own pages.
    r = requests.post(f"{base}/logout", headers={"Origin": "https://evil.example"}, timeout=5)
    assert (r.status_code, r.text) == (403, "CSRF validation failed")
    assert requests.get(f"{base}/logout", timeout=5).status_code == 405
    # csrf: state-changing requests from other sites are refused.
    post = lambda **h: requests.post(f"{base}/form", data="x", headers=h, timeout=5).status_code
    assert post(Origin="https://evil.example") == 403
    assert post(**{"Sec-Fetch-Site": "cross-site"}) == 403
    assert post(**{"Sec-Fetch-Site": "same-site", "Origin": "https://sub.example"}) == 403
    assert post(**{"Sec-Fetch-Site": "cross-site", "Origin": "https://partner.example"}) == 200
    assert post(Origin=base) == 200
    assert post() == 200, "no Origin, no Sec-Fetch-Site: not a browser's cross-site request"
    assert post(**{"Sec-Fetch-Site": "same-origin"}) == 200
    assert requests.get(f"{base}/form", headers={"Origin": "https://evil.example"}, timeout=5).status_code == 200


def test_missing_cookie_key_is_a_load_error(workdir):
    from conftest import load_error
    text = config(1, "http://127.0.0.1:9", "http://127.0.0.1:1/cb", 9)
    assert "OIDC_COOKIE_SECRET is required" in load_error(workdir, text)


def test_explicit_endpoints_and_client_secret_post(tollgate, web_idp, echo_upstreams):
    """Explicit mode (no discovery): `authorizationEndpoint`, `tokenEndpoint`, `jwks` and
    `tokenEndpointAuth: clientSecretPost`, logged in by a scripted browser (requests)."""
    tg_port, issuer, redirect = web_idp
    base = f"http://127.0.0.1:{tg_port}"
    tollgate.start(f"""binds:
- port: {tg_port}
  listeners:
  - routes:
    - policies:
        oidc:
          issuer: {issuer}
          authorizationEndpoint: {issuer}/auth
          tokenEndpoint: {issuer}/token
          jwks: {{url: "{issuer}/jwks"}}
          tokenEndpointAuth: clientSecretPost
          clientId: tollgate-post
          clientSecret: post-secret
          redirectURI: {redirect}
      backends: [{{host: "127.0.0.1:{echo_upstreams[0]}"}}]
""", ports=[tg_port], extra_env={"OIDC_COOKIE_SECRET": SECRET})
    s = requests.Session()
    url, form = f"{base}/page", None
    for _ in range(15):
        r = s.post(url, data=form, allow_redirects=False, timeout=10) if form is not None else s.get(url, allow_redirects=False, timeout=10)
        form = None
        if r.status_code in (302, 303):
            url = requests.compat.urljoin(url, r.headers["location"])
            continue
        if r.status_code == 200 and r.url.startswith(issuer):
            action = re.search(r'<form[^>]*action="([^"]+)"', r.text).group(1)
            prompt = re.search(r'name="prompt" value="([^"]+)"', r.text).group(1)
            form = {"prompt": prompt, "login": "bob", "password": "x"} if prompt == "login" else {"prompt": prompt}
            url = requests.compat.urljoin(url, action)
            continue
        break
    assert r.status_code == 200 and r.json()["uri"] == "/page", (r.status_code, r.text[:300])
    assert any(c.name.startswith("agw_oidc_s_") for c in s.cookies)
