"""`mcpAuthentication`: tollgate as the OAuth 2.1 resource server of an MCP route. The MCP
Python SDK's OAuth client meets the 401, discovers the protected-resource metadata from its
`WWW-Authenticate`, registers with and authorizes at a real OpenID provider (the npm
`oidc-provider`, with PKCE), and lists and calls tools with the JWT it gets; `mcpAuthorization`
decides on the token's scopes, and a token for another audience is refused."""
import asyncio
import re
import sys
from urllib.parse import parse_qs, urljoin, urlparse

import httpx2
import pytest
import requests
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from mcp.shared.exceptions import MCPError

from conftest import ROOT, Proc, free_port, start_py_mcp, wait_port

REDIRECT = "http://127.0.0.1:9/callback"


@pytest.fixture
def idp(workdir):
    """oidc-provider on a free loopback port; yields its issuer URL."""
    port = free_port()
    p = Proc(["node", str(ROOT / "tests" / "node" / "oidc_server.mjs"), str(port)], workdir / "oidc.log", cwd=ROOT / "tests" / "node")
    wait_port(port, proc=p.proc)
    yield f"http://127.0.0.1:{port}"
    p.stop()


def log_in(authorization_url: str) -> AuthorizationCodeResult:
    """What a person does in the browser: oidc-provider's login page (any login), its consent
    page, then the redirect back to the client with the code."""
    s = requests.Session()
    url, form = authorization_url, None
    for _ in range(12):
        r = s.post(url, data=form, allow_redirects=False, timeout=10) if form is not None else s.get(url, allow_redirects=False, timeout=10)
        if r.status_code in (302, 303):
            url, form = urljoin(url, r.headers["location"]), None
            if url.startswith(REDIRECT):
                q = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
                assert "code" in q, q
                return AuthorizationCodeResult(code=q["code"], state=q.get("state"), iss=q.get("iss"))
            continue
        assert r.status_code == 200, (r.status_code, r.text[:500])
        action = re.search(r'<form[^>]*action="([^"]+)"', r.text).group(1)
        prompt = re.search(r'name="prompt" value="([^"]+)"', r.text).group(1)
        form = {"prompt": prompt, "login": "alice", "password": "anything"} if prompt == "login" else {"prompt": prompt}
        url = urljoin(url, action)
    raise AssertionError("the login did not finish")


class Flow:
    """The SDK's OAuth client with a scripted person behind the browser; keeps its tokens."""

    def __init__(self, server_url: str, scope: str):
        self.tokens = None
        self.client = None
        self.pending = None
        flow = self

        class Storage:
            async def get_tokens(self):
                return flow.tokens

            async def set_tokens(self, tokens):
                flow.tokens = tokens

            async def get_client_info(self):
                return flow.client

            async def set_client_info(self, info):
                flow.client = info

        async def redirect(url):
            flow.pending = await asyncio.to_thread(log_in, url)

        async def callback():
            return flow.pending

        metadata = OAuthClientMetadata(redirect_uris=[REDIRECT], grant_types=["authorization_code", "refresh_token"],
                                       response_types=["code"], token_endpoint_auth_method="none", scope=scope,
                                       client_name="tollgate-test")
        self.auth = OAuthClientProvider(server_url, metadata, Storage(), redirect_handler=redirect, callback_handler=callback)
        self.url = server_url

    async def use(self, calls):
        async with httpx2.AsyncClient(auth=self.auth, timeout=30) as http:
            async with Client(streamable_http_client(self.url, http_client=http)) as c:
                tools = sorted(t.name for t in (await c.list_tools()).tools)
                results = {}
                for name, args in calls:
                    try:
                        r = await c.call_tool(name, args)
                        results[name] = (r.is_error, r.content[0].text if r.content else "")
                    except MCPError as e:
                        results[name] = (True, str(e))
                return tools, results


def config(port, idp, server_port):
    target = f'{{targets: [{{name: py, mcp: {{host: "http://127.0.0.1:{server_port}/mcp"}}}}]}}'
    # The SDK asks for the scopes the metadata lists.
    authn = lambda audience, scopes='"mcp:tools"': f"""mcpAuthentication:
          issuer: {idp}
          audiences: ["{audience}"]
          jwks: {{url: "{idp}/jwks"}}
          resourceMetadata:
            scopesSupported: [{scopes}]
            bearerMethodsSupported: [header]"""
    rules = """mcpAuthorization:
          rules:
          - 'mcp.tool.name == "echo"'
          - allow: 'jwt.scope.contains("mcp:admin")'"""
    return f"""binds:
- port: {port}
  listeners:
  - routes:
    - name: elsewhere
      matches: [{{path: {{pathPrefix: /other}}}}, {{path: {{pathPrefix: /.well-known/oauth-protected-resource/other}}}}]
      policies:
        {authn("urn:someone-else")}
      backends: [{{mcp: {target}}}]
    - name: admin
      # As in agentgateway, a route serves the metadata of the paths it matches.
      matches: [{{path: {{pathPrefix: /admin}}}}, {{path: {{pathPrefix: /.well-known/oauth-protected-resource/admin}}}}]
      policies:
        {authn(f"http://127.0.0.1:{port}/admin/mcp", '"mcp:tools", "mcp:admin"')}
        {rules}
      backends: [{{mcp: {target}}}]
    - name: tools
      matches: [{{path: {{pathPrefix: /}}}}]
      policies:
        {authn(f"http://127.0.0.1:{port}/mcp")}
        {rules}
      backends: [{{mcp: {target}}}]
"""


def test_sdk_oauth_client_discovers_authorizes_and_calls_tools(tollgate, idp, workdir):
    server_port, _, server = start_py_mcp(workdir, "streamable-http", "py-oauth")
    try:
        port = free_port()
        tollgate.start(config(port, idp, server_port), ports=[port])
        base = f"http://127.0.0.1:{port}"

        # What an unauthenticated MCP client meets.
        r = requests.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
                          headers={"Accept": "application/json, text/event-stream"}, timeout=5)
        assert r.status_code == 401, r.text
        assert r.json() == {"error": "unauthorized", "error_description": "JWT token required"}
        assert r.headers["www-authenticate"] == f'Bearer resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"'
        prm = requests.get(f"{base}/.well-known/oauth-protected-resource/mcp", timeout=5)
        assert prm.status_code == 200 and prm.headers["access-control-allow-origin"] == "*"
        doc = prm.json()
        assert doc["resource"] == f"{base}/mcp" and doc["authorization_servers"] == [idp], doc
        assert doc["scopes_supported"] == ["mcp:tools"] and doc["bearer_methods_supported"] == ["header"], doc
        asm = requests.get(f"{base}/.well-known/oauth-authorization-server", timeout=5)
        assert asm.status_code == 200 and asm.json()["issuer"] == idp, asm.text

        # The SDK's OAuth flow; this route's metadata offers mcp:tools only, and `add` needs mcp:admin.
        user = Flow(f"{base}/mcp", "mcp:tools")
        tools, results = asyncio.run(user.use([("echo", {"message": "hi"}), ("add", {"a": 1, "b": 2})]))
        assert tools == ["echo"], tools
        assert results["echo"] == (False, "py-oauth: hi"), results
        assert results["add"] == (True, "unknown tool: `add`"), results
        assert user.tokens and user.client, "the SDK registered a client and got a token"

        admin = Flow(f"{base}/admin/mcp", "mcp:tools")
        tools, results = asyncio.run(admin.use([("add", {"a": 1, "b": 2})]))
        assert tools == ["add", "echo"] and results["add"] == (False, "3"), (tools, results)

        # The same token on a route whose audience it is not for.
        token = user.tokens.access_token
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
        r = requests.post(f"{base}/other/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}, headers=headers, timeout=5)
        assert r.status_code == 401 and "oauth-protected-resource/other/mcp" in r.headers["www-authenticate"], r.text
        r = requests.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}},
                          headers={**headers, "Authorization": f"Bearer {token[:-4]}AAAA"}, timeout=5)
        assert r.status_code == 401, "a tampered token is refused"
    finally:
        server.stop()


def test_optional_mode_inline_keys_and_validation_options(tollgate, workdir):
    """mode optional: no token passes, a bad one is refused; inline `jwks`; `requiredClaims: []`
    accepts a token without `exp`; `resourceMetadata.resource` sets the advertised base URL."""
    import json
    from jwt_helpers import SigningKey, jwks
    key = SigningKey("k1")
    server_port, _, server = start_py_mcp(workdir, "streamable-http", "py-opt")
    try:
        port = free_port()
        tollgate.start(f"""binds:
- port: {port}
  listeners:
  - routes:
    - policies:
        mcpAuthentication:
          issuer: https://idp.test
          audiences: []
          mode: optional
          jwks: {json.dumps(jwks(key))}
          jwtValidationOptions: {{requiredClaims: []}}
          resourceMetadata: {{resource: "https://mcp.example.com/mcp"}}
      backends: [{{mcp: {{targets: [{{name: py, mcp: {{host: "http://127.0.0.1:{server_port}/mcp"}}}}]}}}}]
""", ports=[port])
        url = f"http://127.0.0.1:{port}/mcp"
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        accept = {"Accept": "application/json, text/event-stream"}
        assert requests.post(url, json=init, headers=accept, timeout=5).status_code == 200, "no token: optional lets it pass"
        r = requests.post(url, json=init, headers={**accept, "Authorization": "Bearer nope"}, timeout=5)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == 'Bearer resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"'
        no_exp = key.token(iss="https://idp.test", ttl=None)
        assert requests.post(url, json=init, headers={**accept, "Authorization": f"Bearer {no_exp}"}, timeout=5).status_code == 200
    finally:
        server.stop()
