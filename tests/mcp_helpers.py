"""Helpers for MCP end-to-end tests: gateway configs for federated MCP backends, a raw
Streamable HTTP session driven with `requests` (session ids by hand), and process checks."""
import json
import os
import time
from pathlib import Path

import requests

ACCEPT = "application/json, text/event-stream"
PROTOCOL = "2025-11-25"
SESSION_KEY = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"


# --- gateway config ---

def mcp_target(name: str, **spec) -> dict:
    """One target: `mcp_target("everything", mcp={"host": url})`, `sse=...`, `stdio={"cmd":..,
    "args": [..]}`, `openapi={"schema": {"file": path}, "host": "127.0.0.1:PORT"}`."""
    return {"name": name, **spec}


def mcp_listeners(targets, failure_mode=None, prefix_mode=None, stateful_mode=None, auth="Bearer abc") -> str:
    """The `listeners:` items (for conftest.serve_listeners) of one route whose backend is an
    MCP federation of `targets`; the route adds `Authorization: <auth>` to requests."""
    backend = {"targets": targets}
    if failure_mode:
        backend["failureMode"] = failure_mode
    if prefix_mode:
        backend["prefixMode"] = prefix_mode
    if stateful_mode:
        backend["statefulMode"] = stateful_mode
    policies = f"""    - policies:
        requestHeaderModifier: {{add: {{Authorization: {json.dumps(auth)}}}}}
      backends:
""" if auth else """    - backends:
"""
    # JSON is YAML: one line per backend keeps the indentation trivial.
    return f"""  - routes:
{policies}      - mcp: {json.dumps(backend)}
"""


def mcp_config(port: int, listeners: str, settings: str = "") -> str:
    """A whole config with one bind (what serve_listeners writes), for tests that restart."""
    return f"{settings}\nbinds:\n- port: {port}\n  listeners:\n{listeners}"


def session_settings(key: str = SESSION_KEY, ttl: str = None) -> str:
    text = f"config:\n  session:\n    key: {key}\n"
    if ttl:
        text += f"  mcp:\n    sessionTtl: {ttl}\n"
    return text


# --- SDK results ---

def texts(result) -> str:
    """All text blocks of a CallToolResult, joined with newlines."""
    return "\n".join(getattr(b, "text", "") for b in result.content)


# --- raw Streamable HTTP ---

def parse_messages(resp: requests.Response):
    """The JSON-RPC messages of a response: a JSON body (object or batch) or an SSE stream."""
    ctype = resp.headers.get("content-type", "")
    body = resp.text
    if not body.strip():
        return []
    if "text/event-stream" in ctype:
        out = []
        for event in body.replace("\r\n", "\n").split("\n\n"):
            data = "\n".join(l[5:].lstrip(" ") if l.startswith("data:") else "" for l in event.split("\n") if l.startswith("data:"))
            if data.strip():
                out.append(json.loads(data))
        return out
    value = json.loads(body)
    return value if isinstance(value, list) else [value]


class RawSession:
    """One MCP session over Streamable HTTP, by hand: `initialize()` then `call(method, params)`.
    The session id is a plain attribute, so it can be reused across gateway restarts."""

    def __init__(self, url: str, session_id: str = None, timeout: float = 10):
        self.url, self.session_id, self.timeout = url, session_id, timeout
        self.next_id = 1

    def headers(self):
        h = {"Content-Type": "application/json", "Accept": ACCEPT, "Mcp-Protocol-Version": PROTOCOL}
        if self.session_id:
            h["Mcp-Session-Id"] = self.session_id
        return h

    def post(self, msg) -> requests.Response:
        return requests.post(self.url, data=json.dumps(msg), headers=self.headers(), timeout=self.timeout)

    def initialize(self, capabilities=None) -> dict:
        resp = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                          "params": {"protocolVersion": PROTOCOL, "capabilities": capabilities or {},
                                     "clientInfo": {"name": "tollgate-raw-test", "version": "0"}}})
        assert resp.status_code == 200, (resp.status_code, resp.text)
        self.session_id = resp.headers.get("mcp-session-id")
        result = self.response_to(resp, 0)
        assert "result" in result, result
        note = self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert note.status_code in (200, 202), (note.status_code, note.text)
        return result["result"]

    def request(self, method: str, params=None) -> requests.Response:
        """Posts a request; returns the HTTP response (for status checks)."""
        msg = {"jsonrpc": "2.0", "id": self.next_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.next_id += 1
        return self.post(msg)

    def call(self, method: str, params=None) -> dict:
        """Posts a request and returns the JSON-RPC response to it (result or error)."""
        resp = self.request(method, params)
        assert resp.status_code == 200, (resp.status_code, resp.text)
        return self.response_to(resp, self.next_id - 1)

    @staticmethod
    def response_to(resp: requests.Response, id_) -> dict:
        for m in parse_messages(resp):
            if m.get("id") == id_ and ("result" in m or "error" in m):
                return m
        raise AssertionError(f"no response to id {id_} in {resp.status_code} {resp.text[:500]!r}")

    def delete(self) -> requests.Response:
        return requests.delete(self.url, headers=self.headers(), timeout=self.timeout)


# --- processes ---

def descendants(pid: int):
    """(pid, cmdline) of every live descendant of `pid`, from /proc."""
    parents = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            state = stat[stat.rindex(")") + 2]
            if state == "Z":
                continue
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
        parents[int(d.name)] = (ppid, cmd)
    out, frontier = [], {pid}
    while frontier:
        kids = {p for p, (pp, _) in parents.items() if pp in frontier}
        out += [(k, parents[k][1]) for k in kids]
        frontier = kids
    return out


def children_running(pid: int, needle: str):
    return [p for p, cmd in descendants(pid) if needle in cmd]


def wait_until(cond, timeout: float = 5.0, step: float = 0.1):
    deadline = time.time() + timeout
    while True:
        value = cond()
        if value or time.time() > deadline:
            return value
        time.sleep(step)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    try:
        s = stat.read_text()
        return s[s.rindex(")") + 2] != "Z"
    except OSError:
        return False
