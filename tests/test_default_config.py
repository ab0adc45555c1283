"""The default config (conf/local.yaml) runs with nothing external, and its MCP route works:
an OpenAPI target pointing at tollgate's own /healthz is a tool the MCP SDK can call. The
access log and the Prometheus metrics say which MCP method, target and tool each request was."""
import asyncio
import time

import requests
from mcp import Client, MCPError
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT


async def use(transport):
    async with Client(transport) as c:
        tools = sorted(t.name for t in (await c.list_tools()).tools)
        result = await c.call_tool("health", {})
        try:
            await c.call_tool("nope", {})
            unknown = None
        except MCPError as e:
            unknown = str(e)
        return tools, result, unknown


def test_default_config_serves_an_mcp_tool_with_telemetry(tollgate):
    proc = tollgate.start((ROOT / "conf" / "local.yaml").read_text(), ports=[3000, 15020])
    for transport in (streamable_http_client("http://127.0.0.1:3000/mcp"), sse_client("http://127.0.0.1:3000/sse")):
        tools, result, unknown = asyncio.run(use(transport))
        assert tools == ["health"]
        assert not result.is_error and result.content[0].text == "ok\n"
        assert unknown and "unknown tool" in unknown

    deadline = time.time() + 5
    while time.time() < deadline and proc.output().count("gen_ai.tool.name=health") < 2:
        time.sleep(0.1)
    calls = [l for l in proc.output().splitlines() if "gen_ai.tool.name=health" in l]
    assert len(calls) == 2 and all("mcp.method.name=tools/call" in l and "mcp.target=gateway" in l for l in calls), calls
    errors = [l for l in proc.output().splitlines() if "gen_ai.tool.name=nope" in l]
    assert any("mcp.error.code=-32602" in l for l in errors), errors

    text = requests.get("http://127.0.0.1:15020/metrics", timeout=5).text
    samples = [s for f in text_string_to_metric_families(text) if f.name.startswith("tollgate_mcp_requests") for s in f.samples]
    health = [s for s in samples if s.labels.get("resource") == "health" and s.labels["method"] == "tools/call"]
    assert health and sum(s.value for s in health) == 2, samples
    assert all(s.labels["server"] == "gateway" and s.labels["error"] == "false" for s in health)


def test_open_mcp_sessions_are_a_gauge(tollgate):
    import sys
    sys.path.insert(0, str(ROOT / "tests"))
    from mcp_helpers import RawSession
    tollgate.start((ROOT / "conf" / "local.yaml").read_text(), ports=[3000, 15020])
    sessions = [RawSession("http://127.0.0.1:3000/mcp") for _ in range(3)]
    for s in sessions:
        s.initialize()

    def gauge():
        text = requests.get("http://127.0.0.1:15020/metrics", timeout=5).text
        return {s.labels["transport"]: s.value for f in text_string_to_metric_families(text)
                if f.name == "tollgate_mcp_sessions" for s in f.samples}

    deadline = time.time() + 8
    while time.time() < deadline and gauge().get("streamable_http") != 3:
        time.sleep(0.25)
    assert gauge() == {"streamable_http": 3, "sse": 0}
    assert requests.delete("http://127.0.0.1:3000/mcp", headers={"Mcp-Session-Id": sessions[0].session_id}, timeout=5).status_code == 200
    deadline = time.time() + 8
    while time.time() < deadline and gauge().get("streamable_http") != 2:
        time.sleep(0.25)
    assert gauge()["streamable_http"] == 2
