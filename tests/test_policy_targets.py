"""Top-level `policies[]` (agentgateway's `LocalPolicy`): a policy attached by name to a route,
a gateway or one of its listeners, or a named backend, with agentgateway's precedence (inline
wins over targeted, a route's own over its listener's, the first targeted policy of a kind
wins), and `phase: gateway` running before route selection."""
import subprocess

import requests

from conftest import BIN, free_port


def test_targeted_policies_reach_routes_listeners_and_backends(tollgate, echo_upstreams):
    a, b = echo_upstreams
    port, other = free_port(), free_port()
    text = f"""# yaml-language-server: $schema=https://agentgateway.dev/schema/config
policies:
- name: {{name: tag-r1, namespace: default}}
  target: {{route: {{name: r1, namespace: default}}}}
  policy: {{requestHeaderModifier: {{add: {{x-added: targeted}}}}}}
- name: {{name: loses-to-the-first, namespace: default}}
  target: {{route: {{name: r1, namespace: default}}}}
  policy: {{requestHeaderModifier: {{add: {{x-added: second}}}}}}
- name: {{name: loses-to-inline, namespace: default}}
  target: {{route: {{name: r2, namespace: default}}}}
  policy: {{requestHeaderModifier: {{add: {{x-added: targeted}}}}}}
- name: {{name: whole-listener, namespace: default}}
  target: {{gateway: {{gatewayName: default, gatewayNamespace: default, listenerName: main}}}}
  policy: {{responseHeaderModifier: {{add: {{x-listener: "1"}}}}}}
- name: {{name: r3-own, namespace: default}}
  target: {{route: {{name: route2, namespace: default}}}}
  policy: {{responseHeaderModifier: {{add: {{x-route: "own"}}}}}}
- name: {{name: preflight, namespace: default}}
  phase: gateway
  target: {{gateway: {{gatewayName: default, gatewayNamespace: default, port: {port}}}}}
  policy: {{cors: {{allowOrigins: ["https://app.example"], allowMethods: [GET]}}}}
- name: {{name: backend-tag, namespace: default}}
  target: {{backend: {{backend: {{name: shared, namespace: ""}}}}}}
  policy: {{requestHeaderModifier: {{set: {{x-set: from-backend-target}}}}}}
- name: {{name: nobody, namespace: default}}
  target: {{route: {{name: no-such-route, namespace: default}}}}
  policy: {{timeout: {{requestTimeout: 1s}}}}
backends:
- name: shared
  host: "127.0.0.1:{b}"
binds:
- port: {port}
  listeners:
  - name: main
    routes:
    - name: r1
      matches: [{{path: {{pathPrefix: /one}}}}]
      backends: [{{host: "127.0.0.1:{a}"}}]
    - name: r2
      matches: [{{path: {{pathPrefix: /two}}}}]
      policies: {{requestHeaderModifier: {{set: {{x-set: inline}}}}}}
      backends: [{{host: "127.0.0.1:{a}"}}]
    - matches: [{{path: {{pathPrefix: /three}}}}]
      backends: [{{backend: shared}}]
- port: {other}
  listeners:
  - routes:
    - name: r1
      namespace: elsewhere
      backends: [{{host: "127.0.0.1:{a}"}}]
"""
    tollgate.start(text, ports=[port, other])
    base = f"http://127.0.0.1:{port}"
    r = requests.get(f"{base}/one", timeout=5)
    assert r.json()["added"] == "targeted" and r.headers["x-listener"] == "1", (r.json(), r.headers)
    r = requests.get(f"{base}/two", timeout=5)
    assert r.json()["set"] == "inline" and r.json()["added"] == "", r.json()
    r = requests.get(f"{base}/three", timeout=5)
    assert r.json()["server"] == 1 and r.json()["set"] == "from-backend-target", r.json()
    # The route's own targeted responseHeaderModifier wins over its listener's.
    assert r.headers["x-route"] == "own" and "x-listener" not in r.headers, r.headers
    # Gateway phase: before route selection, so a preflight to a path no route serves is answered.
    r = requests.options(f"{base}/nowhere", headers={"Origin": "https://app.example", "Access-Control-Request-Method": "GET"}, timeout=5)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example", (r.status_code, r.headers)
    # Same route name, other namespace, other gateway port: none of the above applies.
    r = requests.get(f"http://127.0.0.1:{other}/one", timeout=5)
    assert r.json()["added"] == "" and "x-listener" not in r.headers, (r.json(), r.headers)
    log = (tollgate.workdir / "config.yaml.log").read_text()
    assert "policies[7]" in log and "matches nothing" in log, log


def test_targets_in_the_gateways_dialect_use_the_gateway_name(tollgate, echo_upstreams):
    a, _ = echo_upstreams
    port = free_port()
    text = f"""gateways:
  public:
    port: {port}
routes:
- gateways: public
  backends: [{{host: "127.0.0.1:{a}"}}]
policies:
- name: {{name: p, namespace: default}}
  target: {{gateway: {{gatewayName: public, gatewayNamespace: default}}}}
  policy: {{requestHeaderModifier: {{add: {{x-added: by-gateway}}}}}}
"""
    tollgate.start(text, ports=[port])
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).json()["added"] == "by-gateway"


def validate(tmp_path, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    p = subprocess.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stderr


def entry(target, policy, phase=""):
    return f"policies:\n- name: {{name: p, namespace: default}}\n  target: {target}\n  policy: {policy}\n{phase}"


def test_misplaced_targeted_policies_are_refused(tmp_path):
    backends = "backends:\n- {name: b, host: '127.0.0.1:1'}\n"
    cases = [
        (entry("{backend: {backend: {name: b, namespace: ''}}}", "{timeout: {requestTimeout: 1s}}") + backends, "cannot target a backend"),
        (entry("{route: {name: r, namespace: default}}", "{cors: {}}", "  phase: gateway\n"), "gateways and listeners only"),
        (entry("{gateway: {gatewayName: default, gatewayNamespace: default}}", "{timeout: {requestTimeout: 1s}}", "  phase: gateway\n"), "gateway phase"),
        (entry("{gateway: {gatewayName: default, gatewayNamespace: default, listenerName: l, port: 1}}", "{cors: {}}"), "not both"),
        (entry("{route: {name: r, namespace: default}}", "{cors: {}, timeout: {requestTimeout: 1s}}"), "exactly 1 policy"),
        (entry("{route: {name: r, namespace: default, ruleName: x}}", "{cors: {}}"), "ruleName"),
        (entry("{listenerSet: {name: x, namespace: y}}", "{cors: {}}"), "listenerSet"),
        (entry("{route: {name: r, namespace: default}}", "{jwtAuth: {}}"), "jwtAuth"),
    ]
    for text, why in cases:
        code, err = validate(tmp_path, text)
        assert code != 0 and why in err, (text, err)
