"""The README's "Compatibility with agentgateway" table, checked row by row against the loader:
a supported field loads (or fails only on its own contents), a "not yet" field is refused as
not supported yet, naming it, and no agentgateway policy is silently accepted. Also: every
supported policy is exercised by some end-to-end test, and route-only policies are refused
under a backend."""
import re
import subprocess
from pathlib import Path

import pytest

from conftest import BIN, ROOT

README = (ROOT / "README.md").read_text()


def table_rows():
    section = README.split("## Compatibility with agentgateway", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|\s*([^|]+?)\s*\|$", line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3)))
    return rows


ROWS = table_rows()

# Every policy name in agentgateway's schema (FilterOrPolicy, LocalBackendPolicies,
# LocalGatewayPolicy, TCP policies), agentgateway 75b4e6ce.
AGENTGATEWAY_POLICIES = {
    "a2a", "ai", "apiKey", "authorization", "backendAuth", "backendTLS", "backendTunnel", "basicAuth", "buffer",
    "cors", "csrf", "delay", "directResponse", "extAuthz", "extProc", "jwtAuth", "localRateLimit",
    "mcpAuthentication", "mcpAuthorization", "mcpGuardrails", "oidc", "remoteRateLimit", "requestHeaderModifier",
    "requestMirror", "requestRedirect", "responseHeaderModifier", "retry", "timeout", "transformations",
    "urlRewrite", "health", "http", "inferenceRouting", "sessionAffinity", "tcp",
}
TOP_LEVEL = {"config", "binds", "frontendPolicies", "policies", "workloads", "services", "backends", "routeGroups",
             "gateways", "routes", "tcpRoutes", "llm", "mcp", "ui"}


def validate(tmp_path, text):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    p = subprocess.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


def route_with(policy_yaml):
    return f"binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n{policy_yaml}"


def test_the_table_covers_agentgateway():
    kinds = {}
    for name, kind, _ in ROWS:
        kinds.setdefault(kind, set()).add(name)
    assert kinds["policy"] == AGENTGATEWAY_POLICIES
    assert kinds["top-level"] == TOP_LEVEL
    assert kinds["listener protocol"] == {"HTTP", "HTTPS", "TLS", "TCP", "HBONE"}


CONFIG_SAMPLES = {"histograms": "classic", "adminAddr": "127.0.0.1:1", "statsAddr": "127.0.0.1:1", "readinessAddr": "127.0.0.1:1",
                  "enableIpv6": "true", "workerThreads": "1", "connectionTerminationDeadline": "1s",
                  "connectionMinTerminationDeadline": "1s", "sensitiveHeaders": "[]"}
TOP_LEVEL_SAMPLES = {"config": "{}", "binds": "[]", "backends": "[]", "frontendPolicies": "{}", "gateways": "{}", "routes": "[]",
                     "tcpRoutes": "[]", "mcp": "{targets: []}", "llm": "{models: []}"}


@pytest.mark.parametrize("name, kind, status", ROWS, ids=[f"{k}:{n}" for n, k, _ in ROWS])
def test_row_matches_the_loader(tmp_path, name, kind, status):
    if kind == "top-level":
        text = f"{name}: {TOP_LEVEL_SAMPLES.get(name, '{}')}\n"
    elif kind == "config key":
        text = f"config:\n  {name}: {CONFIG_SAMPLES.get(name, '{}')}\n"
    elif kind == "listener protocol":
        routes = "tcpRoutes: []" if name in ("TLS", "TCP") else "routes: []"
        tls = "tls: {cert: /nonexistent/c.pem, key: /nonexistent/k.pem}" if name == "HTTPS" else ""
        text = f"binds:\n- port: 1\n  listeners:\n  - protocol: {name}\n    {routes}\n    {tls}\n"
    elif kind == "backend":
        value = "x" if name == "backend" else "{}"
        text = f"binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - {name}: {value}\n"
    elif kind == "policy":
        text = route_with(f"        {name}: {{}}\n")
    else:
        pytest.fail(f"unknown kind {kind}")
    code, out = validate(tmp_path, text)
    if status.startswith("supported"):
        # It may fail on its (empty) contents, never as an unknown or unsupported field itself.
        refused_itself = [f"`{name}` is an agentgateway", f"{name}: is an agentgateway field", "unknown field",
                          "unknown policy", "unknown variant", f"protocol `{name}`"]
        assert not any(r in out for r in refused_itself), out
    elif status.startswith("not yet"):
        assert code != 0 and "not support" in out and name in out, out
    elif status.startswith("never"):
        assert code != 0 and "not supported" in out and name in out, out
        if "control plane" in status:
            assert "needs agentgateway's control plane" in out, out
    else:
        pytest.fail(f"unknown status {status}")


def test_every_supported_policy_has_an_end_to_end_test():
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_compatibility.py")
    sources += "\n".join(p.read_text() for p in (ROOT / "tests").glob("*.py") if not p.name.startswith("test_"))
    for name, kind, status in ROWS:
        if kind == "policy" and status.startswith("supported"):
            assert re.search(rf"\b{name}:", sources), f"no test configures `{name}`"


@pytest.mark.parametrize("policy", ["timeout: {requestTimeout: 1s}", "cors: {allowOrigins: ['*']}",
                                    "directResponse: {status: 200}", "urlRewrite: {path: {full: /x}}"])
def test_route_only_policies_are_refused_under_a_backend(tmp_path, policy):
    name = policy.split(":")[0]
    text = f"binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - host: 127.0.0.1:9\n        policies:\n          {policy}\n"
    code, out = validate(tmp_path, text)
    assert code != 0 and f"`{name}` is a route policy" in out and ":8:" in out, out
    # The same policy at route level is fine.
    code, out = validate(tmp_path, route_with(f"        {policy}\n"))
    assert code == 0, out
