"""Route policies seen from the client and from the upstream (nginx echoing what it received)."""
import requests

from conftest import serve_listeners


def test_header_and_url_policies(tollgate, echo_upstreams):
    up, _ = echo_upstreams
    base = serve_listeners(tollgate, f"""  - routes:
    - name: rewritten
      matches: [{{path: {{pathPrefix: /api/v1}}}}]
      policies:
        urlRewrite: {{authority: {{full: backend.internal}}, path: {{prefix: /v2}}}}
        requestHeaderModifier: {{add: {{x-added: yes}}, set: {{x-set: fixed}}, remove: [x-drop]}}
        responseHeaderModifier: {{set: {{x-served-by: tollgate}}, remove: [server]}}
      backends: [{{host: 127.0.0.1:{up}}}]
    - name: moved
      matches: [{{path: {{exact: /old}}}}]
      policies: {{requestRedirect: {{path: {{full: /new}}, status: 301}}}}
    - name: teapot
      matches: [{{path: {{exact: /tea}}, method: POST}}]
      policies: {{directResponse: {{status: 418, body: short and stout}}}}
""")
    r = requests.get(f"{base}/api/v1/items?q=1", headers={"x-set": "client", "x-drop": "secret"}, timeout=5)
    seen = r.json()
    assert seen["uri"] == "/v2/items?q=1"
    assert seen["host"] == "backend.internal"
    assert (seen["added"], seen["set"], seen["dropped"]) == ("yes", "fixed", "")
    assert r.headers["x-served-by"] == "tollgate" and "server" not in r.headers

    r = requests.get(f"{base}/old?x=1", allow_redirects=False, timeout=5)
    assert r.status_code == 301 and r.headers["location"].endswith("/new?x=1")
    r = requests.post(f"{base}/tea", timeout=5)
    assert (r.status_code, r.text) == (418, "short and stout")
    assert requests.get(f"{base}/tea", timeout=5).status_code == 404


def test_weighted_backends_share_traffic(tollgate, echo_upstreams):
    a, b = echo_upstreams
    base = serve_listeners(tollgate, f"""  - routes:
    - backends: [{{host: 127.0.0.1:{a}, weight: 3}}, {{host: 127.0.0.1:{b}, weight: 1}}]
""")
    counts = [0, 0]
    with requests.Session() as s:
        for _ in range(200):
            counts[s.get(f"{base}/", timeout=5).json()["server"]] += 1
    assert counts == [150, 50], counts


def test_listener_hostnames_pick_routes(tollgate, echo_upstreams):
    a, b = echo_upstreams
    base = serve_listeners(tollgate, f"""  - hostname: "*.tenant.test"
    routes: [{{backends: [{{host: 127.0.0.1:{a}}}]}}]
  - routes: [{{backends: [{{host: 127.0.0.1:{b}}}]}}]
""")
    url = f"{base}/"
    assert requests.get(url, headers={"host": "acme.tenant.test"}, timeout=5).json()["server"] == 0
    assert requests.get(url, headers={"host": "other.test"}, timeout=5).json()["server"] == 1
