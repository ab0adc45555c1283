"""`routeGroups` and `routeGroup:` backends (route delegation, as agentgateway): when a route's
`routeGroup` backend is chosen, the group's routes are matched against the whole request
(their own host names and paths; nothing is relative to the parent), the best one serves it
with the parent's policies under its own (the child's win), and no match is a 404."""
import subprocess

import requests

from conftest import BIN, free_port


def config(port, a, b, extra=""):
    return f"""# yaml-language-server: $schema=https://agentgateway.dev/schema/config
routeGroups:
- name: api
  routes:
  - name: users
    matches: [{{path: {{pathPrefix: /api/users}}}}]
    policies:
      requestHeaderModifier: {{set: {{x-set: child}}}}
    backends: [{{host: "127.0.0.1:{a}"}}]
  - name: orders
    hostnames: [orders.example]
    matches: [{{path: {{pathPrefix: /api}}}}]
    backends: [{{host: "127.0.0.1:{b}"}}]
  - name: nested
    matches: [{{path: {{exact: /api/deeper}}}}]
    backends: [{{routeGroup: deeper}}]
- name: deeper
  routes:
  - policies:
      directResponse: {{status: 299, body: from the nested group}}
binds:
- port: {port}
  listeners:
  - routes:
    - name: parent
      matches: [{{path: {{pathPrefix: /api}}}}]
      policies:
        requestHeaderModifier: {{add: {{x-added: parent}}}}
        responseHeaderModifier: {{add: {{x-from-parent: "1"}}}}
      backends: [{{routeGroup: api}}]
{extra}"""


def test_requests_are_delegated_to_the_groups_best_route(tollgate, echo_upstreams):
    a, b = echo_upstreams
    port = free_port()
    tollgate.start(config(port, a, b), ports=[port])
    base = f"http://127.0.0.1:{port}"
    r = requests.get(f"{base}/api/users/7", timeout=5)
    assert r.status_code == 200 and r.json()["server"] == 0, r.text
    # The child's requestHeaderModifier replaces the parent's; the parent's response policy stays.
    assert r.json()["set"] == "child" and r.json()["added"] == "", r.json()
    assert r.headers["x-from-parent"] == "1"
    r = requests.get(f"{base}/api/orders", headers={"Host": "orders.example"}, timeout=5)
    assert r.status_code == 200 and r.json()["server"] == 1 and r.json()["uri"] == "/api/orders", r.text
    # Matches in the group are absolute: the parent matched /api, but no child matches this.
    r = requests.get(f"{base}/api/orders", timeout=5)
    assert r.status_code == 404, r.text
    r = requests.get(f"{base}/elsewhere", timeout=5)
    assert r.status_code == 404
    r = requests.get(f"{base}/api/deeper", timeout=5)
    assert (r.status_code, r.text) == (299, "from the nested group")


def test_delegation_mixes_with_plain_backends_by_weight(tollgate, echo_upstreams):
    a, b = echo_upstreams
    port = free_port()
    text = f"""routeGroups:
- name: g
  routes:
  - backends: [{{host: "127.0.0.1:{a}"}}]
binds:
- port: {port}
  listeners:
  - routes:
    - backends:
      - {{routeGroup: g, weight: 1}}
      - {{host: "127.0.0.1:{b}", weight: 1}}
"""
    tollgate.start(text, ports=[port])
    servers = [requests.get(f"http://127.0.0.1:{port}/x", timeout=5).json()["server"] for _ in range(60)]
    assert 10 < servers.count(0) < 50 and servers.count(0) + servers.count(1) == 60, servers


def validate(tmp_path, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    p = subprocess.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stderr


def route_to(group, groups):
    return f"routeGroups:\n{groups}binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends: [{{routeGroup: {group}}}]\n"


def test_bad_route_groups_are_refused_at_load(tmp_path):
    code, err = validate(tmp_path, route_to("missing", "- {name: g, routes: []}\n"))
    assert code != 0 and "no route group is named `missing`" in err, err
    cycle = "- name: a\n  routes: [{backends: [{routeGroup: b}]}]\n- name: b\n  routes: [{backends: [{routeGroup: a}]}]\n"
    code, err = validate(tmp_path, route_to("a", cycle))
    assert code != 0 and "delegates to itself" in err and "a -> b" in err, err
    text = route_to("g", "- {name: g, routes: []}\n").replace("{routeGroup: g}", "{routeGroup: g, policies: {backendTLS: {}}}")
    code, err = validate(tmp_path, text)
    assert code != 0 and "routeGroup backend takes no policies" in err, err
    text = "routeGroups:\n- name: g\n  routes: [{gateways: x}]\n"
    code, err = validate(tmp_path, text)
    assert code != 0 and "not `gateways`" in err, err
