"""The seed config's MCP port (3101) with its target on a local MCP SDK server: the official
MCP Python SDK connects through tollgate in its default (auto) and legacy modes, lists and calls
tools, and the server sees the route's `Authorization: Bearer abc`."""
import asyncio
import sys

import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import ROOT, Proc, free_port, seed_with_local_hosts, wait_port


@pytest.fixture
def mcp_server(workdir):
    port = free_port()
    headers = workdir / "mcp-headers.log"
    headers.write_text("")
    p = Proc([sys.executable, str(ROOT / "tests" / "mcp_server.py"), str(port), "/api/mcp", str(headers)], workdir / "mcp.log")
    wait_port(port, proc=p.proc)
    yield port, headers
    p.stop()


async def session(mode):
    async with Client(streamable_http_client("http://127.0.0.1:3101/mcp"), mode=mode) as c:
        tools = await c.list_tools()
        result = await c.call_tool("add", {"a": 2, "b": 40})
        return c.protocol_version, sorted(t.name for t in tools.tools), result


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_sdk_lists_and_calls_tools_through_the_seed(tollgate, provider_front, mcp_server, mode):
    nginx, ca = provider_front
    port, headers = mcp_server
    tollgate.start(seed_with_local_hosts(nginx.port, ca, mcp_port=port), ports=[3100, 3101])
    version, tools, result = asyncio.run(session(mode))
    assert tools == ["add", "echo"]
    assert not result.is_error and result.content[0].text == "42"
    assert version == ("2026-07-28" if mode == "auto" else "2025-11-25")
    seen = headers.read_text().splitlines()
    assert seen and all(l.endswith("authorization=Bearer abc") for l in seen), seen
    assert all(" /api/mcp " in l for l in seen), seen


def test_browser_clients_get_cors_on_the_seed_mcp_port(tollgate, provider_front, mcp_server):
    """The seed's `cors` policy on 3101: the preflight is answered by tollgate itself, and the
    answer to `initialize` lets a browser read Mcp-Session-Id to continue the session."""
    import requests
    nginx, ca = provider_front
    port, headers = mcp_server
    tollgate.start(seed_with_local_hosts(nginx.port, ca, mcp_port=port), ports=[3100, 3101])
    origin = "http://localhost:6274"
    pre = requests.options("http://127.0.0.1:3101/mcp", timeout=5, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,mcp-protocol-version"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] in ("*", origin)
    assert "mcp-protocol-version" in pre.headers["access-control-allow-headers"].lower()
    assert headers.read_text() == "", "the preflight reached the MCP server"
    init = requests.post("http://127.0.0.1:3101/mcp", timeout=5, headers={
        "Origin": origin, "Content-Type": "application/json", "Accept": "application/json, text/event-stream"},
        json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "browser", "version": "0"}}})
    assert init.status_code == 200, init.text
    assert init.headers["mcp-session-id"]
    assert init.headers["access-control-allow-origin"] in ("*", origin)
    assert "mcp-session-id" in init.headers["access-control-expose-headers"].lower()
