"""MCP session ids are always sealed: a forged or edited id gets 404 and reaches no target,
with or without `config.session.key` (without one, tollgate keeps a generated key in its
runtime directory, mode 0600)."""
import base64
import json
import os
import stat

import pytest

from conftest import free_port, start_py_mcp
from mcp_helpers import RawSession

KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


def config(port: int, server_port: int, key: str | None) -> str:
    session = f"config: {{session: {{key: {key}}}}}\n" if key else ""
    return f"""{session}binds:
- port: {port}
  listeners:
  - routes:
    - backends: [{{mcp: {{targets: [{{name: py, mcp: {{host: "http://127.0.0.1:{server_port}/mcp"}}}}]}}}}]
"""


def b64(obj) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


@pytest.mark.parametrize("key", [None, KEY], ids=["generated-key", "session-key"])
def test_forged_and_edited_session_ids_get_404_and_reach_no_target(tollgate, workdir, key):
    server_port, seen, server = start_py_mcp(workdir, "streamable-http", "py-ids")
    try:
        port = free_port()
        tollgate.start(config(port, server_port, key), ports=[port])
        url = f"http://127.0.0.1:{port}/mcp"
        real = RawSession(url)
        real.initialize()
        assert "result" in real.call("tools/call", {"name": "echo", "arguments": {"message": "hi"}})
        before = seen.read_text()

        # What an agentgateway id looks like without a key: base64 JSON naming the target's session.
        plain = b64({"b": 0, "h": {"protocolVersion": "2025-11-25"}, "t": [{"s": "attacker-chosen"}], "r": 1})
        sid = real.session_id
        edited = sid[:-3] + ("A" if sid[-3] != "A" else "B") + sid[-2:]
        for forged in [plain, edited, sid[:20], "x" * 64, b64({"t": [{"s": "attacker-chosen"}]})]:
            r = RawSession(url, session_id=forged).request("tools/call", {"name": "echo", "arguments": {"message": "x"}})
            assert r.status_code == 404, (forged, r.status_code, r.text)
        assert seen.read_text() == before, "a forged id reached the target"
        assert "attacker-chosen" not in seen.read_text()
        # The real session still works.
        assert "result" in real.call("tools/call", {"name": "echo", "arguments": {"message": "again"}})
        keyfile = workdir / "run" / "session.key"
        if key is None:
            assert stat.S_IMODE(os.stat(keyfile).st_mode) == 0o600
            assert keyfile.read_text() not in sid
        else:
            assert not keyfile.exists(), "with session.key no key file is made"
    finally:
        server.stop()


def test_generated_key_survives_a_restart(tollgate, workdir):
    server_port, _, server = start_py_mcp(workdir, "streamable-http", "py-restart")
    try:
        port = free_port()
        first = tollgate.start(config(port, server_port, None), ports=[port])
        s = RawSession(f"http://127.0.0.1:{port}/mcp")
        s.initialize()
        first.stop()
        tollgate.start(config(port, server_port, None), ports=[port], name="again.yaml")
        assert s.call("tools/call", {"name": "echo", "arguments": {"message": "back"}})["result"]["content"][0]["text"] == "py-restart: back"
    finally:
        server.stop()


def test_json_rpc_is_strict_at_the_front_and_ids_come_back_exactly(tollgate, workdir):
    server_port, seen, server = start_py_mcp(workdir, "streamable-http", "py-rpc")
    try:
        port = free_port()
        tollgate.start(config(port, server_port, None), ports=[port])
        s = RawSession(f"http://127.0.0.1:{port}/mcp")
        s.initialize()
        before = seen.read_text()
        import requests
        post = lambda text: requests.post(s.url, data=text, headers=s.headers(), timeout=10)
        for bad in ['{"id": 5, "method": "tools/list"}', '{"jsonrpc": "1.0", "id": 5, "method": "tools/list"}',
                    '{"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"}', '{"jsonrpc": "2.0", "id": [1], "method": "tools/list"}',
                    '{"jsonrpc": "2.0", "id": true, "method": "tools/list"}', '{"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}',
                    '[{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}]']:
            r = post(bad)
            assert r.status_code == 400, (bad, r.status_code, r.text)
            assert r.json()["error"]["code"] == -32600, r.text
        assert seen.read_text() == before, "an invalid message reached the target"
        big = "123456789012345678901234567890"
        r = post('{"jsonrpc": "2.0", "id": %s, "method": "tools/list"}' % big)
        assert r.status_code == 200
        text = r.text
        assert f'"id":{big}' in text.replace(" ", ""), text[:300]
    finally:
        server.stop()
