"""MCP targets as they are met in production: behind TLS (verified against the route's
`backendTLS` root), and carrying megabyte-sized messages both ways."""
import asyncio
import shutil

from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import Proc, free_port, make_tls, serve_listeners, start_py_mcp, wait_port


def tls_front(workdir, upstream_port):
    """nginx terminating TLS as `localhost` in front of an MCP server (streams unbuffered)."""
    ca, crt, key = make_tls(workdir, "localhost")
    port = free_port()
    ng = workdir / "tls-front"
    ng.mkdir()
    (ng / "nginx.conf").write_text(f"""
daemon off; master_process off; worker_processes 1; pid {ng}/nginx.pid; error_log {ng}/error.log warn;
events {{ worker_connections 64; }}
http {{
  client_body_temp_path {ng}/b; proxy_temp_path {ng}/p; fastcgi_temp_path {ng}/f; uwsgi_temp_path {ng}/u;
  scgi_temp_path {ng}/s; client_max_body_size 16m; access_log off;
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name localhost;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    location / {{
      proxy_pass http://127.0.0.1:{upstream_port};
      proxy_set_header Host 127.0.0.1:{upstream_port};
      proxy_http_version 1.1;
      proxy_buffering off;
    }}
  }}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    p = Proc([nginx, "-c", str(ng / "nginx.conf"), "-p", str(ng)], workdir / "tls-front.out")
    wait_port(port, proc=p.proc)
    return port, ca, p


def test_https_target_and_megabyte_messages(tollgate, workdir):
    server_port, headers_log, server = start_py_mcp(workdir, "streamable-http", "tls-upstream")
    front_port, ca, front = tls_front(workdir, server_port)
    try:
        base = serve_listeners(tollgate, f"""  - routes:
    - policies:
        backendTLS: {{root: {ca}}}
      backends:
      - mcp:
          targets:
          - name: secure
            mcp: {{host: "https://localhost:{front_port}/mcp"}}
""")
        big = "x" * (3 * 1024 * 1024)

        async def session():
            async with Client(streamable_http_client(f"{base}/mcp"), mode="legacy") as c:
                tools = sorted(t.name for t in (await c.list_tools()).tools)
                return tools, await c.call_tool("echo", {"message": big})

        tools, echo = asyncio.run(asyncio.wait_for(session(), 60))
        assert tools == ["add", "echo"]
        assert not echo.is_error
        assert echo.content[0].text == f"tls-upstream: {big}"
        assert "host=127.0.0.1" in headers_log.read_text()
    finally:
        front.stop()
        server.stop()


def test_untrusted_target_certificate_is_a_jsonrpc_error(tollgate, workdir):
    """Without the route's CA the target's certificate is refused: the client gets a JSON-RPC
    error naming the target, promptly."""
    server_port, _, server = start_py_mcp(workdir, "streamable-http", "tls-upstream")
    front_port, _, front = tls_front(workdir, server_port)
    try:
        base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - mcp:
          targets:
          - name: secure
            mcp: {{host: "https://localhost:{front_port}/mcp"}}
""")
        import requests
        r = requests.post(f"{base}/mcp", timeout=15, headers={"Accept": "application/json, text/event-stream"}, json={
            "jsonrpc": "2.0", "id": 7, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
        body = r.json()
        assert body["id"] == 7 and body["error"]["code"] == -32603, body
        assert "secure" in body["error"]["message"], body
        assert "mcp-session-id" not in r.headers
    finally:
        front.stop()
        server.stop()


def test_each_target_gets_its_own_credentials_and_tls(tollgate, workdir):
    """Targets of one federation usually belong to different services: a target's own
    `backendAuth` and `backendTLS` replace the route's for that target alone."""
    plain_port, plain_log, plain = start_py_mcp(workdir, "streamable-http", "plain")
    secret_port, secret_log, secret = start_py_mcp(workdir, "streamable-http", "secret")
    front_port, ca, front = tls_front(workdir, secret_port)
    try:
        base = serve_listeners(tollgate, f"""  - routes:
    - policies:
        requestHeaderModifier: {{add: {{Authorization: "Bearer route-token"}}}}
      backends:
      - mcp:
          targets:
          - name: plain
            mcp: {{host: "http://127.0.0.1:{plain_port}/mcp"}}
          - name: secret
            mcp: {{host: "https://localhost:{front_port}/mcp"}}
            policies:
              backendAuth: {{key: target-token}}
              backendTLS: {{root: {ca}}}
""")

        async def session():
            async with Client(streamable_http_client(f"{base}/mcp"), mode="legacy") as c:
                a = await c.call_tool("plain_echo", {"message": "p"})
                b = await c.call_tool("secret_echo", {"message": "s"})
                return a.content[0].text, b.content[0].text

        assert asyncio.run(asyncio.wait_for(session(), 30)) == ("plain: p", "secret: s")
        plain_seen, secret_seen = plain_log.read_text().splitlines(), secret_log.read_text().splitlines()
        assert plain_seen and all(l.endswith("authorization=Bearer route-token") for l in plain_seen), plain_seen
        assert secret_seen and all(l.endswith("authorization=Bearer target-token") for l in secret_seen), secret_seen
    finally:
        front.stop()
        secret.stop()
        plain.stop()


def test_targets_reach_named_backends_with_their_tls_and_credentials(tollgate, workdir):
    """`mcp: {backend: name, path}` (agentgateway's MCP target reference): the target is the
    top-level `host` backend of that name, reached with its `backendTLS` and `backendAuth`."""
    plain_port, plain_log, plain = start_py_mcp(workdir, "streamable-http", "plain")
    secret_port, secret_log, secret = start_py_mcp(workdir, "streamable-http", "secret")
    front_port, ca, front = tls_front(workdir, secret_port)
    try:
        base = serve_listeners(tollgate, f"""  - routes:
    - backends:
      - mcp:
          targets:
          - name: plain
            mcp: {{backend: plain-api, path: /mcp}}
          - name: secret
            mcp: {{backend: secret-api, path: /mcp}}
""", settings=f"""backends:
- name: plain-api
  host: "127.0.0.1:{plain_port}"
- name: secret-api
  host: "localhost:{front_port}"
  policies:
    backendAuth: {{key: named-backend-token}}
    backendTLS: {{root: {ca}}}
""")

        async def session():
            async with Client(streamable_http_client(f"{base}/mcp"), mode="legacy") as c:
                a = await c.call_tool("plain_echo", {"message": "p"})
                b = await c.call_tool("secret_echo", {"message": "s"})
                return a.content[0].text, b.content[0].text

        assert asyncio.run(asyncio.wait_for(session(), 30)) == ("plain: p", "secret: s")
        secret_seen = secret_log.read_text().splitlines()
        assert secret_seen and all(l.endswith("authorization=Bearer named-backend-token") for l in secret_seen), secret_seen
        assert not any("named-backend-token" in l for l in plain_log.read_text().splitlines())
    finally:
        front.stop()
        secret.stop()
        plain.stop()


def test_bad_target_backend_references_are_refused(tmp_path):
    import subprocess
    from conftest import BIN
    head = "backends:\n- {name: api, host: '127.0.0.1:1'}\n- {name: hdr, host: '127.0.0.1:1', policies: {requestHeaderModifier: {add: {a: b}}}}\n"
    head += "- {name: llm, ai: {name: x, provider: {openAI: {}}}}\n"
    route = "binds:\n- port: 1\n  listeners:\n  - routes:\n    - backends:\n      - mcp:\n          targets:\n          - name: t\n            {}\n"
    cases = [
        ("mcp: {backend: api}", "`path` is required"),
        ("mcp: {backend: nope, path: /mcp}", "no top-level backend is named `nope`"),
        ("mcp: {backend: llm, path: /mcp}", "must be a `host` backend"),
        ("mcp: {backend: api, host: 'http://x:1/mcp', path: /mcp}", "not both"),
        ("mcp: {backend: api, path: /mcp}\n            policies: {backendAuth: {key: k}}", "takes no `policies`"),
        ("mcp: {backend: hdr, path: /mcp}", "cannot apply to an MCP target"),
    ]
    for target, why in cases:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(head + route.format(target))
        p = subprocess.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=20)
        assert p.returncode != 0 and why in p.stderr, (target, p.stderr)
