"""What one MCP client holds stays its own: a session id works only on the backend that made
it, and the client's own credentials never reach the MCP servers (only the credentials the
route's policies set do)."""
import requests

from conftest import free_port, start_py_mcp
from mcp_helpers import RawSession


def two_routes(port: int, server_port: int) -> str:
    target = f'{{name: py, mcp: {{host: "http://127.0.0.1:{server_port}/mcp"}}}}'
    return f"""binds:
- port: {port}
  listeners:
  - routes:
    - name: with-auth
      matches: [{{path: {{pathPrefix: /a}}}}]
      policies:
        requestHeaderModifier: {{add: {{Authorization: "Bearer abc"}}}}
      backends: [{{mcp: {{targets: [{target}]}}}}]
    - name: plain
      matches: [{{path: {{pathPrefix: /b}}}}]
      backends: [{{mcp: {{targets: [{target}]}}}}]
"""


class WithClientToken(RawSession):
    def headers(self):
        return dict(super().headers(), Authorization="Bearer client-secret", Cookie="sid=client-cookie")


def test_session_ids_and_client_credentials_stay_with_their_route(tollgate, workdir):
    server_port, headers_log, server = start_py_mcp(workdir, "streamable-http", "py-iso")
    try:
        port = free_port()
        tollgate.start(two_routes(port, server_port), ports=[port])
        a = WithClientToken(f"http://127.0.0.1:{port}/a/mcp")
        a.initialize()
        assert a.call("tools/call", {"name": "echo", "arguments": {"message": "a"}})["result"]["content"][0]["text"] == "py-iso: a"

        # The same id on the other MCP route (same targets, other policies) is not a session there.
        stolen = RawSession(f"http://127.0.0.1:{port}/b/mcp", session_id=a.session_id)
        r = stolen.request("tools/call", {"name": "echo", "arguments": {"message": "b"}})
        assert r.status_code == 404, (r.status_code, r.text)
        assert r.json()["error"]["code"] == -32001
        d = requests.delete(f"http://127.0.0.1:{port}/b/mcp", headers={"Mcp-Session-Id": a.session_id}, timeout=5)
        assert d.status_code == 404, d.text
        # ...and the session still works on its own route.
        assert "result" in a.call("tools/call", {"name": "echo", "arguments": {"message": "again"}})

        b = WithClientToken(f"http://127.0.0.1:{port}/b/mcp")
        b.initialize()
        assert "result" in b.call("tools/call", {"name": "echo", "arguments": {"message": "b"}})

        seen = headers_log.read_text()
        assert "client-secret" not in seen and "client-cookie" not in seen, seen
        lines = seen.splitlines()
        assert sum("authorization=Bearer abc" in l for l in lines) >= 3, lines   # route a: the policy's token
        assert any(l.endswith("authorization=") for l in lines), lines            # route b: none at all
    finally:
        server.stop()


def test_mcp_authorization_rules_decide_what_a_caller_sees_and_calls(tollgate, workdir):
    """`mcpAuthorization`: a tool is visible and callable when a CEL rule over `mcp.tool.*` and
    `request.*` allows it; anything else is listed nowhere and answered as unknown."""
    server_port, _, server = start_py_mcp(workdir, "streamable-http", "py-authz")
    try:
        port = free_port()
        tollgate.start(f"""binds:
- port: {port}
  listeners:
  - routes:
    - policies:
        mcpAuthorization:
          rules:
          - 'mcp.tool.name == "echo" && mcp.tool.target == "py"'
          - 'request.headers["x-role"] == "admin"'
      backends:
      - mcp: {{targets: [{{name: py, mcp: {{host: "http://127.0.0.1:{server_port}/mcp"}}}}]}}
""", ports=[port])

        class Admin(RawSession):
            def headers(self):
                return dict(super().headers(), **{"X-Role": "admin"})

        user = RawSession(f"http://127.0.0.1:{port}/mcp")
        user.initialize()
        assert [t["name"] for t in user.call("tools/list", {})["result"]["tools"]] == ["echo"]
        assert user.call("tools/call", {"name": "echo", "arguments": {"message": "hi"}})["result"]["content"][0]["text"] == "py-authz: hi"
        denied = user.call("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})
        assert denied["error"]["code"] == -32602 and "unknown tool" in denied["error"]["message"], denied

        admin = Admin(f"http://127.0.0.1:{port}/mcp")
        admin.initialize()
        assert sorted(t["name"] for t in admin.call("tools/list", {})["result"]["tools"]) == ["add", "echo"]
        assert admin.call("tools/call", {"name": "add", "arguments": {"a": 1, "b": 2}})["result"]["content"][0]["text"] == "3"
    finally:
        server.stop()
