"""agentgateway's own examples, in their shapes: each test writes a config with the example's
top-level keys, listeners, policies and file references (the yaml-language-server line
included; hosts on 127.0.0.1), lays out the directory the example assumes (it is run from
agentgateway's repository root, so relative paths start with `examples/…`), starts tollgate
there, and drives it with the client the example's README uses."""
import asyncio
import shutil
import subprocess

import pytest
import requests

from conftest import NODE_MODULES, OPENAPI_SCHEMA, free_port

SCHEMA_LINE = "# yaml-language-server: $schema=https://agentgateway.dev/schema/config\n"


def repo_root(workdir):
    """A directory shaped like agentgateway's checkout: `npx` finds the MCP servers in its
    node_modules (offline), example files go under examples/."""
    root = workdir / "agw"
    root.mkdir(exist_ok=True)
    link = root / "node_modules"
    if not link.exists():
        link.symlink_to(NODE_MODULES)
    return root


async def tool_names_and_call(url, tool, args, http_client=None):
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    async with Client(streamable_http_client(url, http_client=http_client)) as c:
        names = [t.name for t in (await c.list_tools()).tools]
        result = await c.call_tool(tool, args)
        text = " ".join(getattr(x, "text", "") for x in result.content)
        return names, text


def test_mcp_basic_shortcut_with_cors(tollgate, workdir):
    """examples/mcp-basic: the `mcp:` shortcut, one stdio target via npx, CORS for browsers."""
    root = repo_root(workdir)
    port = free_port()
    tollgate.start(SCHEMA_LINE + f"""\
mcp:
  port: {port}
  policies:
    cors:
      allowOrigins:
      - "*"
      allowHeaders:
      - mcp-protocol-version
      - content-type
      - cache-control
      - mcp-session-id
      exposeHeaders:
      - "Mcp-Session-Id"
  targets:
  - name: everything
    stdio:
      cmd: npx
      args: ["@modelcontextprotocol/server-everything"]
""", ports=[port], cwd=root)
    names, text = asyncio.run(tool_names_and_call(f"http://127.0.0.1:{port}/mcp", "echo", {"message": "hi"}))
    assert "echo" in names, names  # one target: names are not prefixed
    assert "hi" in text
    # The MCP Inspector in a browser sends a preflight first.
    pre = requests.options(f"http://127.0.0.1:{port}/mcp", headers={
        "Origin": "http://localhost:6274", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "mcp-protocol-version,content-type"}, timeout=5)
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "*"
    assert "mcp-protocol-version" in pre.headers["access-control-allow-headers"].lower()
    r = requests.post(f"http://127.0.0.1:{port}/mcp", headers={"Origin": "http://localhost:6274",
                      "Accept": "application/json, text/event-stream"},
                      json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                          "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
                      timeout=20)
    assert r.status_code == 200 and "Mcp-Session-Id" in r.headers["access-control-expose-headers"]


def test_mcp_apps_multiplex_never_prefixes(tollgate, workdir, time_stdio_cmd):
    """examples/mcp-apps/config-multiplex.yaml: `prefixMode: never` with two stdio targets."""
    root = repo_root(workdir)
    port = free_port()
    cmd, args = time_stdio_cmd
    tollgate.start(SCHEMA_LINE + f"""\
mcp:
  port: {port}
  prefixMode: never
  policies:
    cors:
      allowOrigins: ["*"]
      allowHeaders: [mcp-protocol-version, content-type, cache-control, mcp-session-id, mcp-method, mcp-name]
      exposeHeaders: ["Mcp-Session-Id"]
  targets:
  - name: map
    stdio:
      cmd: npx
      args: ["-y", "@modelcontextprotocol/server-everything"]
  - name: monitor
    stdio:
      cmd: {cmd}
      args: {args}
""", ports=[port], cwd=root)
    names, text = asyncio.run(tool_names_and_call(f"http://127.0.0.1:{port}/mcp", "get_current_time", {"timezone": "UTC"}))
    assert "echo" in names and "get_current_time" in names, names
    assert "UTC" in text


def test_mcp_multiplex_binds(tollgate, workdir, time_stdio_cmd):
    """examples/mcp-multiplex: `binds:` with one MCP backend federating two stdio servers."""
    root = repo_root(workdir)
    port = free_port()
    cmd, args = time_stdio_cmd
    tollgate.start(SCHEMA_LINE + f"""\
binds:
- port: {port}
  listeners:
  - routes:
    - backends:
      - mcp:
          targets:
          - name: time
            stdio:
              cmd: {cmd}
              args: {args}
          - name: everything
            stdio:
              cmd: npx
              args: ["@modelcontextprotocol/server-everything"]
""", ports=[port], cwd=root)
    names, text = asyncio.run(tool_names_and_call(f"http://127.0.0.1:{port}/mcp", "everything_echo", {"message": "both"}))
    assert "time_get_current_time" in names and "everything_echo" in names, names
    assert "both" in text


def test_mcp_openapi_schema_file_relative_to_the_working_directory(tollgate, workdir, openapi_service):
    """examples/mcp-openapi: an OpenAPI target whose schema is `./examples/mcp-openapi/…`."""
    root = repo_root(workdir)
    (root / "examples" / "mcp-openapi").mkdir(parents=True)
    shutil.copy(OPENAPI_SCHEMA, root / "examples" / "mcp-openapi" / "openapi.json")
    port = free_port()
    tollgate.start(SCHEMA_LINE + f"""\
binds:
- port: {port}
  listeners:
  - routes:
    - backends:
      - mcp:
          targets:
          - name: openapi
            openapi:
              schema:
                file: ./examples/mcp-openapi/openapi.json
              host: 127.0.0.1:{openapi_service.port}
      policies:
        cors:
          allowOrigins:
          - "*"
          allowHeaders:
          - content-type
          - mcp-protocol-version
          - mcp-session-id
          exposeHeaders:
          - mcp-session-id
          - mcp-protocol-version
          maxAge: 5m
""", ports=[port], cwd=root)
    names, text = asyncio.run(tool_names_and_call(f"http://127.0.0.1:{port}/mcp", "listPets", {}))
    assert {"listPets", "createPet", "getPet"} <= set(names), names
    assert any(r["path"] == "/pets" for r in openapi_service.requests())
    pre = requests.options(f"http://127.0.0.1:{port}/mcp", headers={
        "Origin": "http://localhost:6274", "Access-Control-Request-Method": "POST"}, timeout=5)
    assert pre.headers["access-control-max-age"] == "300"
    # From another working directory the same config does not find the file, and says where it looked.
    from conftest import BIN
    p = subprocess.run([str(BIN), "-f", str(workdir / "config.yaml"), "--validate-only"],
                       cwd=workdir, capture_output=True, text=True, timeout=20)
    assert p.returncode != 0 and str(workdir / "examples" / "mcp-openapi" / "openapi.json") in p.stderr, p.stderr


def test_mcp_tls_https_listener_with_repo_relative_certificates(tollgate, workdir):
    """examples/mcp-tls: an HTTPS listener whose cert and key are `examples/mcp-tls/certs/…`."""
    import httpx2
    from tls_helpers import Ca
    root = repo_root(workdir)
    certs = root / "examples" / "mcp-tls" / "certs"
    ca = Ca(certs)
    crt, key = ca.issue("leaf", "localhost", dns=["localhost"])
    crt.rename(certs / "cert.pem")
    key.rename(certs / "key.pem")
    port = free_port()
    tollgate.start(SCHEMA_LINE + f"""\
binds:
- port: {port}
  listeners:
  - name: default
    protocol: HTTPS
    tls:
      cert: examples/mcp-tls/certs/cert.pem
      key: examples/mcp-tls/certs/key.pem
    routes:
    - backends:
      - mcp:
          targets:
          - name: everything
            stdio:
              cmd: npx
              args: ["@modelcontextprotocol/server-everything"]
""", ports=[port], cwd=root)
    # The README's check: curl -k, without accepting an event stream.
    out = subprocess.run(["curl", "-sk", f"https://localhost:{port}/mcp"], capture_output=True, text=True, timeout=10).stdout
    assert "text/event-stream" in out, out
    import ssl
    ctx = ssl.create_default_context(cafile=str(ca.pem))

    async def run():
        async with httpx2.AsyncClient(verify=ctx) as http:
            return await tool_names_and_call(f"https://localhost:{port}/mcp", "echo", {"message": "secure"}, http)
    names, text = asyncio.run(run())
    assert "echo" in names and "secure" in text


def test_unified_gateway_dialect(tollgate, workdir):
    """examples/traffic-unified-gateway (its `gateways:` part): a `default` gateway, `mcp:`
    attached to it at /mcp, and top-level `routes` and `tcpRoutes` attached by reference."""
    from tls_helpers import EchoServer
    root = repo_root(workdir)
    port, tcp_port = free_port(), free_port()
    echo = EchoServer()
    tollgate.start(SCHEMA_LINE + f"""\
gateways:
  default:
    port: {port}
  raw:
    port: {tcp_port}
    protocol: TCP
routes:
- name: hello
  matches: [{{path: {{pathPrefix: /hello}}}}]
  policies:
    directResponse: {{status: 200, body: hello from the default gateway}}
tcpRoutes:
- gateways: raw
  backends: [{{host: "127.0.0.1:{echo.port}"}}]
mcp:
  targets:
  - name: everything
    stdio:
      cmd: npx
      args:
      - '@modelcontextprotocol/server-everything'
""", ports=[port, tcp_port], cwd=root)
    try:
        names, text = asyncio.run(tool_names_and_call(f"http://127.0.0.1:{port}/mcp", "echo", {"message": "unified"}))
        assert "echo" in names and "unified" in text
        r = requests.get(f"http://127.0.0.1:{port}/hello", timeout=5)
        assert r.text == "hello from the default gateway"
        # MCP joined a shared gateway: it takes /mcp, /sse and /.well-known only.
        assert requests.get(f"http://127.0.0.1:{port}/other", timeout=5).status_code == 404
        import socket
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as s:
            s.sendall(b"ping")
            assert s.recv(10) == b"ping"
    finally:
        echo.close()


def test_dialect_errors_name_what_is_wrong(tollgate, workdir):
    from conftest import BIN
    cases = [
        ("routes:\n- policies: {directResponse: {status: 200}}\n", "routes[0] must set `gateways`"),
        ("gateways:\n  default: {port: 1}\nroutes:\n- gateways: nope\n", "unknown gateway reference `nope`"),
        ("gateways:\n  a: {port: 5}\n  b: {port: 5}\n", "port 5 is configured by both gateways.a and gateways.b"),
        ("binds:\n- port: 3000\n  listeners: []\nmcp:\n  targets: []\n", "port 3000 is configured by both binds[0] and mcp"),
        ("gateways:\n  default: {port: 1, jwtAuth: {}}\n", "not support"),
        ("gateways:\n  default: {port: 1}\ntcpRoutes:\n- backends: [{host: '127.0.0.1:1'}]\n", "has no TCP listeners"),
    ]
    for text, message in cases:
        cfg = workdir / "bad.yaml"
        cfg.write_text(SCHEMA_LINE + text)
        p = subprocess.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=20)
        assert p.returncode != 0 and message in p.stderr + p.stdout, (text, p.stderr + p.stdout)


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_mcp_telemetry_frontend_tracing(tollgate, workdir, otlp_receiver, protocol):
    """examples/mcp-telemetry: `frontendPolicies.tracing` sends a span per MCP request (the
    example's gRPC, and `protocol: http` with its `path`)."""
    root = repo_root(workdir)
    port = free_port()
    target = otlp_receiver.grpc_port if protocol == "grpc" else otlp_receiver.http_port
    extra = "" if protocol == "grpc" else "\n    protocol: http\n    path: /v1/traces"
    tollgate.start(SCHEMA_LINE + f"""\
frontendPolicies:
  tracing:
    host: 127.0.0.1:{target}
    randomSampling: true{extra}
    attributes:
      example: '"mcp-telemetry"'
binds:
- port: {port}
  listeners:
  - routes:
    - backends:
      - mcp:
          targets:
          - name: everything
            stdio:
              cmd: npx
              args: ["@modelcontextprotocol/server-everything"]
""", ports=[port], cwd=root)
    names, _ = asyncio.run(tool_names_and_call(f"http://127.0.0.1:{port}/mcp", "echo", {"message": "traced"}))
    assert "echo" in names
    spans = otlp_receiver.spans(count=3)
    assert spans and spans[-1]["via"] == protocol
    assert all(s["attributes"].get("example") == "mcp-telemetry" for s in spans), spans[-1]


def test_named_backends_referenced_from_routes(tollgate, workdir, echo_upstreams):
    """Top-level `backends` (agentgateway's named_mcp_backend_config shape) and `backend: name`
    references; a reference's own policies override the named backend's."""
    a, _ = echo_upstreams
    root = repo_root(workdir)
    port = free_port()
    tollgate.start(SCHEMA_LINE + f"""\
binds:
- port: {port}
  listeners:
  - routes:
    - matches: [{{path: {{pathPrefix: /mcp}}}}]
      backends:
      - backend: shared-mcp
    - matches: [{{path: {{pathPrefix: /plain}}}}]
      backends:
      - backend: echo
    - matches: [{{path: {{pathPrefix: /tagged}}}}]
      backends:
      - backend: echo
        policies:
          requestHeaderModifier: {{set: {{x-set: reference}}}}
backends:
- name: shared-mcp
  mcp:
    targets:
    - name: everything
      stdio:
        cmd: npx
        args: ["@modelcontextprotocol/server-everything"]
- name: echo
  host: 127.0.0.1:{a}
  policies:
    requestHeaderModifier: {{set: {{x-set: named}}}}
""", ports=[port], cwd=root)
    names, text = asyncio.run(tool_names_and_call(f"http://127.0.0.1:{port}/mcp", "echo", {"message": "named"}))
    assert "echo" in names and "named" in text
    assert requests.get(f"http://127.0.0.1:{port}/plain", timeout=5).json()["set"] == "named"
    assert requests.get(f"http://127.0.0.1:{port}/tagged", timeout=5).json()["set"] == "reference"


def test_frontend_access_log_fields_and_filter(tollgate, workdir, echo_upstreams):
    """`frontendPolicies.accessLog` (traffic-a2a and others): CEL fields added to every access
    log line, and a filter that keeps some requests out of the log."""
    import json
    import time
    a, _ = echo_upstreams
    port = free_port()
    proc = tollgate.start(SCHEMA_LINE + f"""\
config:
  logging:
    format: json
frontendPolicies:
  accessLog:
    filter: request.path != "/quiet"
    add:
      backend: backend.name
      who: request.headers["x-who"]
    remove: [http.method]
binds:
- port: {port}
  listeners:
  - routes:
    - backends: [{{host: "127.0.0.1:{a}"}}]
""", ports=[port])
    requests.get(f"http://127.0.0.1:{port}/quiet", headers={"x-who": "nobody"}, timeout=5)
    requests.get(f"http://127.0.0.1:{port}/loud", headers={"x-who": "alice"}, timeout=5)
    deadline = time.time() + 5
    records = []
    while time.time() < deadline and not records:
        records = [json.loads(l) for l in proc.output().splitlines() if l.startswith("{") and '"target":"access"' in l]
        time.sleep(0.05)
    time.sleep(0.3)
    records = [json.loads(l) for l in proc.output().splitlines() if l.startswith("{") and '"target":"access"' in l]
    assert len(records) == 1, records
    assert records[0]["who"] == "alice" and records[0]["backend"] == f"127.0.0.1:{a}", records[0]
    assert "http.method" not in records[0] and records[0]["http.path"] == "/loud", records[0]


def test_listener_and_gateway_level_policies(tollgate, workdir, echo_upstreams):
    """`listeners[].policies` (binds) and policies beside a gateway's fields (gateways:) run for
    every request on the listener: a preflight to a path no route takes is still answered,
    routed responses carry the headers, and a route's own `cors` wins over the listener's."""
    from conftest import BIN
    a, _ = echo_upstreams
    port, gw_port = free_port(), free_port()
    tollgate.start(SCHEMA_LINE + f"""\
binds:
- port: {port}
  listeners:
  - policies:
      cors: {{allowOrigins: ["https://app.example"], allowMethods: [GET, POST], allowHeaders: [content-type]}}
    routes:
    - matches: [{{path: {{pathPrefix: /api}}}}]
      backends: [{{host: "127.0.0.1:{a}"}}]
    - matches: [{{path: {{pathPrefix: /own}}}}]
      policies:
        cors: {{allowOrigins: ["https://other.example"]}}
      backends: [{{host: "127.0.0.1:{a}"}}]
gateways:
  web:
    port: {gw_port}
    cors: {{allowOrigins: ["https://app.example"], allowMethods: [GET]}}
routes:
- gateways: web
  backends: [{{host: "127.0.0.1:{a}"}}]
""", ports=[port, gw_port])
    origin = {"Origin": "https://app.example"}
    for base in (f"http://127.0.0.1:{port}", f"http://127.0.0.1:{gw_port}"):
        pre = requests.options(f"{base}/nowhere", headers={**origin, "Access-Control-Request-Method": "GET"}, timeout=5)
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "https://app.example", pre.headers
    r = requests.get(f"http://127.0.0.1:{port}/api/x", headers=origin, timeout=5)
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://app.example"
    r = requests.get(f"http://127.0.0.1:{port}/own/x", headers=origin, timeout=5)
    assert "access-control-allow-origin" not in r.headers, r.headers
    r = requests.get(f"http://127.0.0.1:{port}/own/x", headers={"Origin": "https://other.example"}, timeout=5)
    assert r.headers["access-control-allow-origin"] == "https://other.example"
    assert requests.get(f"http://127.0.0.1:{port}/nowhere", timeout=5).status_code == 404
    cfg = workdir / "bad.yaml"
    cfg.write_text(f"binds:\n- port: 1\n  listeners:\n  - policies:\n      timeout: {{requestTimeout: 1s}}\n    routes: []\n")
    p = subprocess.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0 and "`timeout` cannot be set under a listener's `policies`" in p.stderr and ":5:" in p.stderr, p.stderr


def test_gateways_with_tls_and_named_listeners(tollgate, workdir):
    """`gateways:` whose implicit listener is HTTPS because it has `tls`, and a gateway with
    named listeners (hostname + tls each) that routes attach to as `gateway/listener`."""
    from tls_helpers import Ca, served_certificate
    ca = Ca(workdir / "pki")
    one = ca.issue("one", "localhost", dns=["localhost"])
    a = ca.issue("a", "a.test", dns=["a.test"])
    b = ca.issue("b", "b.test", dns=["b.test"])
    single, multi = free_port(), free_port()
    tollgate.start(SCHEMA_LINE + f"""\
gateways:
  web:
    port: {single}
    tls: {{cert: {one[0]}, key: {one[1]}}}
  multi:
    port: {multi}
    listeners:
    - name: a
      hostname: a.test
      tls: {{cert: {a[0]}, key: {a[1]}}}
    - name: b
      hostname: b.test
      tls: {{cert: {b[0]}, key: {b[1]}}}
routes:
- gateways: web
  policies: {{directResponse: {{status: 200, body: web}}}}
- gateways: multi/a
  policies: {{directResponse: {{status: 200, body: route a}}}}
- gateways: [multi/b]
  policies: {{directResponse: {{status: 200, body: route b}}}}
""", ports=[single, multi])
    assert requests.get(f"https://localhost:{single}/", verify=str(ca.pem), timeout=5).text == "web"
    for name in ("a", "b"):
        assert served_certificate(multi, f"{name}.test", ca.pem)[0] == f"{name}.test"
        out = subprocess.run(["curl", "-s", "--cacert", str(ca.pem), "--resolve", f"{name}.test:{multi}:127.0.0.1",
                              f"https://{name}.test:{multi}/"], capture_output=True, text=True, timeout=10).stdout
        assert out == f"route {name}", out


def test_authorization_example_jwt_passthrough_and_tool_rules(tollgate, workdir):
    """examples/authorization: jwtAuth with a JWKS file relative to the working directory,
    backendAuth passthrough, CORS, and mcpAuthorization rules over `jwt.*` (test-user may call
    `add`; anyone `echo`)."""
    import json as _json
    import httpx2
    from conftest import start_py_mcp
    from jwt_helpers import SigningKey, jwks
    root = repo_root(workdir)
    key = SigningKey("agw")
    (root / "manifests" / "jwt").mkdir(parents=True, exist_ok=True)
    (root / "manifests" / "jwt" / "pub-key").write_text(jwks(key))
    mcp_port, headers_log, server = start_py_mcp(workdir, "streamable-http", "mcp2")
    try:
        port = free_port()
        tollgate.start(SCHEMA_LINE + f"""binds:
- port: {port}
  listeners:
  - routes:
    - policies:
        cors:
          allowOrigins:
          - "*"
          allowHeaders:
          - "*"
          exposeHeaders:
          - "Mcp-Session-Id"
        backendAuth:
          passthrough: {{}}
        jwtAuth:
          issuer: agentgateway.dev
          audiences: [test.agentgateway.dev]
          jwks:
            # Relative to the folder the binary runs from, not the config file
            file: ./manifests/jwt/pub-key
        mcpAuthorization:
          rules:
          # Allow anyone to call 'echo'
          - 'mcp.tool.name == "echo"'
          # Only the test-user can call 'add'
          - 'jwt.sub == "test-user" && mcp.tool.name == "add"'
          # Any authenticated user with the claim `nested.key == value` can access 'printEnv'
          - 'mcp.tool.name == "printEnv" && jwt.nested.key == "value"'
      backends:
      - mcp:
          targets:
          - name: mcp2
            mcp:
              host: http://127.0.0.1:{mcp_port}/mcp
""", ports=[port], cwd=root)
        url = f"http://127.0.0.1:{port}/mcp"
        token = key.token(iss="agentgateway.dev", aud="test.agentgateway.dev", sub="test-user")
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
        names, text = asyncio.run(tool_names_and_call(url, "add", {"a": 2, "b": 3}, http_client=http))
        assert sorted(names) == ["add", "echo"] and text == "5", (names, text)
        assert f"authorization=Bearer {token}" in headers_log.read_text(), "passthrough forwards the caller's token"
        other = key.token(iss="agentgateway.dev", aud="test.agentgateway.dev", sub="someone")
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {other}"}, timeout=30)
        names, text = asyncio.run(tool_names_and_call(url, "echo", {"message": "hi"}, http_client=http))
        assert names == ["echo"] and text == "mcp2: hi", (names, text)
        wrong_aud = key.token(iss="agentgateway.dev", aud="elsewhere")
        r = requests.post(url, headers={"Authorization": f"Bearer {wrong_aud}", "Accept": "application/json, text/event-stream"},
                          json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}, timeout=5)
        assert r.status_code == 401 and _json.loads(r.text)["error"]["code"] is not None, r.text
    finally:
        server.stop()
