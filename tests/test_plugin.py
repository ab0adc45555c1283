"""The example plugin, `tenantTag`, enabled from YAML by name with its own config block."""
import requests

from conftest import BIN, serve_listeners

import subprocess


def test_tenant_tag_changes_traffic_as_documented(tollgate, echo_upstreams):
    up, _ = echo_upstreams
    base = serve_listeners(tollgate, f"""\
  - routes:
    - name: tagged
      matches: [{{path: {{pathPrefix: /tagged}}}}]
      policies:
        tenantTag:
          header: x-api-key
          tenants: {{"key-a": team-a, "key-b": team-b}}
          required: true
      backends: [{{host: 127.0.0.1:{up}}}]
    - name: plain
      backends: [{{host: 127.0.0.1:{up}}}]
""")
    r = requests.get(f"{base}/tagged", headers={"x-api-key": "key-b", "x-tenant": "spoofed"}, timeout=5)
    assert r.json()["tenant"] == "team-b"  # upstream sees the tenant, not the client's claim
    assert r.headers["x-tenant"] == "team-b"
    r = requests.get(f"{base}/tagged", headers={"x-api-key": "nope"}, timeout=5)
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_denied"
    assert requests.get(f"{base}/tagged", timeout=5).status_code == 403
    # Not configured on this route: the request passes untouched.
    r = requests.get(f"{base}/plain", headers={"x-tenant": "client-said"}, timeout=5)
    assert r.json()["tenant"] == "client-said" and "x-tenant" not in r.headers


def test_bad_plugin_config_fails_the_load(workdir):
    cfg = workdir / "c.yaml"
    cfg.write_text("binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        tenantTag: {tenants: {}, colour: red}\n")
    r = subprocess.run([str(BIN), "--validate-only", "-f", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0
    assert "c.yaml:6:" in r.stderr and "tenantTag" in r.stderr and "colour" in r.stderr, r.stderr
    cfg.write_text("binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        tenantTagg: {}\n")
    r = subprocess.run([str(BIN), "--validate-only", "-f", str(cfg)], capture_output=True, text=True)
    assert r.returncode != 0 and "unknown policy `tenantTagg`" in r.stderr and "tenantTag" in r.stderr
