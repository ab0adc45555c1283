"""MCP federation: one gateway route whose `mcp` backend merges several targets — the reference
server-everything (npm, TS SDK) over Streamable HTTP, the Python SDK's MCPServer over legacy
SSE, `mcp-server-time` over stdio, and an OpenAPI pet store — driven by the official MCP Python
SDK (legacy and auto modes, Streamable HTTP and legacy SSE), the MCP Inspector CLI and raw HTTP.

Covers: merged and `<target>_` prefixed lists, calls routed to the owning target, progress
notifications and server-to-client requests (sampling, elicitation) relayed both ways, the legacy
SSE front end, sessions that survive a gateway restart (`config.session.key`), end on DELETE
(stdio child gone) and expire (`config.mcp.sessionTtl`), OpenAPI operations as tools, failOpen /
failClosed, prefix and stateless modes."""
import asyncio
import json
import time
from types import SimpleNamespace

import pytest
from mcp import Client, MCPError, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from conftest import free_port, inspector_cli, serve_listeners, start_py_mcp
from mcp_helpers import (RawSession, children_running, mcp_config, mcp_listeners, mcp_target, parse_messages,
                         session_settings, texts, wait_until)

MODES = ["legacy", "auto"]
TIME_NEEDLE = "mcp-server-time"


def run(coro, timeout=30):
    """asyncio.run with an overall deadline, so a hung relay fails the test instead of the suite."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def everything_target(port, name="everything"):
    return mcp_target(name, mcp={"host": f"http://127.0.0.1:{port}/mcp"})


def time_target(cmd_args, name="time"):
    cmd, args = cmd_args
    return mcp_target(name, stdio={"cmd": cmd, "args": args})


@pytest.fixture
def federation(tollgate, everything_server, py_sse_server, time_stdio_cmd):
    """everything (Streamable HTTP) + pysse (legacy SSE) + time (stdio) behind one route."""
    sse_port, sse_headers = py_sse_server
    targets = [everything_target(everything_server),
               mcp_target("pysse", sse={"host": f"http://127.0.0.1:{sse_port}/sse"}),
               time_target(time_stdio_cmd)]
    base = serve_listeners(tollgate, mcp_listeners(targets))
    return SimpleNamespace(base=base, mcp=f"{base}/mcp", sse=f"{base}/sse", proc=tollgate.procs[-1],
                           sse_port=sse_port, sse_headers=sse_headers)


def assert_three_targets(names):
    expected = {"everything_echo", "everything_get-sum", "everything_trigger-long-running-operation",
                "pysse_echo", "pysse_add", "time_get_current_time", "time_convert_time"}
    assert expected <= names, sorted(names)
    assert all(n.split("_", 1)[0] in ("everything", "pysse", "time") for n in names), sorted(names)
    assert not {"echo", "add", "get_current_time"} & names, sorted(names)


def assert_sse_upstream_saw_route_headers(fed):
    seen = fed.sse_headers.read_text().splitlines()
    assert seen, "the legacy SSE target got no request"
    # The route's requestHeaderModifier reaches the target, and the target's own Host (Python
    # servers bound to 127.0.0.1 answer any other Host with 421).
    assert all(l.endswith("authorization=Bearer abc") for l in seen), seen
    assert all(f" host=127.0.0.1:{fed.sse_port} " in l or " host=localhost:" in l for l in seen), seen


@pytest.mark.parametrize("mode", MODES)
def test_three_transports_merge_route_and_stream_progress(federation, mode):
    progress = []

    async def on_progress(value, total, message):
        progress.append((value, total))

    async def session():
        async with Client(streamable_http_client(federation.mcp), mode=mode) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            out = {
                "everything": await c.call_tool("everything_echo", {"message": "hi"}),
                "pysse": await c.call_tool("pysse_echo", {"message": "hi"}),
                "add": await c.call_tool("pysse_add", {"a": 2, "b": 40}),
                "time": await c.call_tool("time_get_current_time", {"timezone": "UTC"}),
                "long": await c.call_tool("everything_trigger-long-running-operation", {"duration": 0.6, "steps": 3},
                                          progress_callback=on_progress),
            }
            return names, out

    names, out = run(session())
    assert_three_targets(names)
    assert texts(out["everything"]) == "Echo: hi"
    assert texts(out["pysse"]) == "py-sse: hi"
    assert texts(out["add"]) == "42"
    now = json.loads(texts(out["time"]))
    assert now["timezone"] == "UTC" and now["datetime"].endswith("+00:00"), now
    assert not any(r.is_error for r in out.values()), out
    assert "Long running operation completed" in texts(out["long"])
    assert progress == [(1, 3), (2, 3), (3, 3)], progress
    assert_sse_upstream_saw_route_headers(federation)


@pytest.mark.parametrize("mode", MODES)
def test_sampling_and_elicitation_are_relayed_to_the_client(federation, mode):
    """server-everything registers trigger-sampling-request / trigger-elicitation-request only when
    the client's initialize declares `sampling` / `elicitation`, then sends sampling/createMessage
    and elicitation/create back during the call: the gateway must pass the capabilities on, relay
    the server's requests to the client and the client's answers back to that target."""
    asked = {}

    async def sampling(ctx, params: types.CreateMessageRequestParams):
        asked["sampling"] = params.messages[0].content.text
        return types.CreateMessageResult(role="assistant", model="test-llm", stop_reason="endTurn",
                                         content=types.TextContent(type="text", text="forty-two"))

    async def elicitation(ctx, params):
        asked["elicitation"] = params.message
        return types.ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True, "integer": 7})

    async def session():
        async with Client(streamable_http_client(federation.mcp), mode=mode,
                          sampling_callback=sampling, elicitation_callback=elicitation) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            s = await c.call_tool("everything_trigger-sampling-request", {"prompt": "what is 6*7?", "maxTokens": 20})
            e = await c.call_tool("everything_trigger-elicitation-request", {})
            return names, s, e

    names, s, e = run(session())
    assert {"everything_trigger-sampling-request", "everything_trigger-elicitation-request"} <= names, sorted(names)
    assert asked["sampling"] == "Resource trigger-sampling-request context: what is 6*7?", asked
    assert not s.is_error and '"text": "forty-two"' in texts(s) and '"model": "test-llm"' in texts(s), texts(s)
    assert asked["elicitation"].startswith("Please provide inputs"), asked
    assert not e.is_error and "- Name: Ada Lovelace" in texts(e) and "- Favorite Integer: 7" in texts(e), texts(e)


def test_legacy_sse_front_end(federation):
    """The SDK's legacy SSE client (GET /sse, then POSTs to the endpoint the gateway announces)."""
    async def session():
        async with Client(sse_client(federation.sse, timeout=5, sse_read_timeout=30), mode="legacy") as c:
            names = {t.name for t in (await c.list_tools()).tools}
            return (names, await c.call_tool("everything_echo", {"message": "via sse"}),
                    await c.call_tool("pysse_echo", {"message": "via sse"}),
                    await c.call_tool("time_get_current_time", {"timezone": "UTC"}))

    names, e, p, t = run(session())
    assert_three_targets(names)
    assert texts(e) == "Echo: via sse"
    assert texts(p) == "py-sse: via sse"
    assert json.loads(texts(t))["timezone"] == "UTC"


def test_inspector_cli_lists_and_calls_through_the_gateway(federation):
    listed = inspector_cli(federation.mcp, "--method", "tools/list")
    assert_three_targets({t["name"] for t in listed["tools"]})
    summed = inspector_cli(federation.mcp, "--method", "tools/call", "--tool-name", "everything_get-sum",
                           "--tool-arg", "a=1", "--tool-arg", "b=2")
    assert summed["content"][0]["text"] == "The sum of 1 and 2 is 3.", summed
    echoed = inspector_cli(federation.mcp, "--method", "tools/call", "--tool-name", "pysse_echo",
                           "--tool-arg", "message=inspector")
    assert echoed["content"][0]["text"] == "py-sse: inspector", echoed
    via_sse = inspector_cli(federation.sse, "--method", "tools/list", transport="sse")
    assert_three_targets({t["name"] for t in via_sse["tools"]})


@pytest.mark.parametrize("mode", MODES)
def test_unknown_tool_is_a_prompt_jsonrpc_error(federation, mode):
    async def session():
        async with Client(streamable_http_client(federation.mcp), mode=mode) as c:
            await c.list_tools()
            started = time.monotonic()
            with pytest.raises(MCPError) as no_target:
                await asyncio.wait_for(c.call_tool("nosuch_tool", {}), 5)
            # A known target without that tool: the target's own answer (an error result or a
            # JSON-RPC error), also promptly.
            try:
                known = await asyncio.wait_for(c.call_tool("everything_no-such-tool", {}), 5)
            except MCPError as e:
                known = e
            return no_target.value, known, time.monotonic() - started

    no_target, known, took = run(session())
    assert "nosuch_tool" in str(no_target.error.message), no_target.error
    assert isinstance(known, MCPError) or known.is_error, known
    assert took < 5, took


def test_session_survives_a_gateway_restart(tollgate, everything_server, workdir):
    """With `config.session.key`, the session id carries the upstream sessions: a new process
    with the same key continues the session."""
    py_port, _, py_proc = start_py_mcp(workdir, "streamable-http", "py-http")
    try:
        port = free_port()
        config = mcp_config(port, mcp_listeners([everything_target(everything_server),
                                                 mcp_target("pyhttp", mcp={"host": f"http://127.0.0.1:{py_port}/mcp"})]),
                            session_settings())
        first = tollgate.start(config, ports=[port])
        s = RawSession(f"http://127.0.0.1:{port}/mcp")
        s.initialize()
        assert s.session_id, "the gateway handed out no Mcp-Session-Id"
        before = s.call("tools/call", {"name": "everything_echo", "arguments": {"message": "before"}})
        assert before["result"]["content"][0]["text"] == "Echo: before", before

        first.stop()
        tollgate.start(config, ports=[port], name="restarted.yaml")

        after = s.call("tools/call", {"name": "everything_echo", "arguments": {"message": "after"}})
        assert after["result"]["content"][0]["text"] == "Echo: after", after
        py = s.call("tools/call", {"name": "pyhttp_echo", "arguments": {"message": "after"}})
        assert py["result"]["content"][0]["text"] == "py-http: after", py
        listed = s.call("tools/list", {})
        assert {"everything_echo", "pyhttp_add"} <= {t["name"] for t in listed["result"]["tools"]}, listed
    finally:
        py_proc.stop()


def test_delete_ends_the_session_and_its_stdio_child(tollgate, everything_server, time_stdio_cmd):
    base = serve_listeners(tollgate, mcp_listeners([everything_target(everything_server), time_target(time_stdio_cmd)]))
    gateway = tollgate.procs[-1].proc.pid
    s = RawSession(f"{base}/mcp")
    s.initialize()
    assert s.session_id
    now = s.call("tools/call", {"name": "time_get_current_time", "arguments": {"timezone": "UTC"}})
    assert '"timezone": "UTC"' in now["result"]["content"][0]["text"], now
    assert wait_until(lambda: children_running(gateway, TIME_NEEDLE), 3), "no mcp-server-time child under tollgate"

    gone = s.delete()
    assert gone.status_code in (200, 202, 204), (gone.status_code, gone.text)
    again = s.request("tools/call", {"name": "everything_echo", "arguments": {"message": "x"}})
    assert again.status_code == 404, (again.status_code, again.text)
    assert wait_until(lambda: not children_running(gateway, TIME_NEEDLE), 5), \
        f"stdio child still running after DELETE: {children_running(gateway, TIME_NEEDLE)}"


def test_idle_session_expires_after_session_ttl(tollgate, everything_server, time_stdio_cmd):
    base = serve_listeners(tollgate, mcp_listeners([everything_target(everything_server), time_target(time_stdio_cmd)]),
                           session_settings(ttl="3s"))
    gateway = tollgate.procs[-1].proc.pid
    s = RawSession(f"{base}/mcp")
    s.initialize()
    ok = s.call("tools/call", {"name": "time_get_current_time", "arguments": {"timezone": "UTC"}})
    assert "result" in ok, ok
    time.sleep(6)
    late = s.request("tools/call", {"name": "everything_echo", "arguments": {"message": "late"}})
    assert late.status_code == 404, (late.status_code, late.text)
    assert wait_until(lambda: not children_running(gateway, TIME_NEEDLE), 3), "an expired session kept its stdio child"
    fresh = RawSession(f"{base}/mcp")
    fresh.initialize()
    assert fresh.call("tools/call", {"name": "everything_echo", "arguments": {"message": "new"}})["result"]


def test_openapi_operations_become_tools(tollgate, everything_server, openapi_service):
    pets = mcp_target("pets", openapi={"schema": {"file": str(openapi_service.schema)},
                                       "host": f"127.0.0.1:{openapi_service.port}"})
    base = serve_listeners(tollgate, mcp_listeners([everything_target(everything_server), pets]))

    async def session():
        async with Client(streamable_http_client(f"{base}/mcp")) as c:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            assert {"pets_getPet", "pets_createPet", "pets_listPets", "everything_echo"} <= set(tools), sorted(tools)
            # Parameters are flat arguments; the JSON request body is `body`.
            got = await c.call_tool("pets_getPet", {"petId": 7, "verbose": True})
            made = await c.call_tool("pets_createPet", {"body": {"name": "Bo", "tag": "dog"}})
            listed = await c.call_tool("pets_listPets", {"limit": 2})
            return tools, got, made, listed

    tools, got, made, listed = run(session())
    schema = tools["pets_getPet"].input_schema
    assert {"petId", "verbose"} <= set(schema["properties"]) and "petId" in schema["required"], schema
    assert "body" in tools["pets_createPet"].input_schema["properties"]
    log = openapi_service.requests()
    assert [(r["method"], r["path"]) for r in log] == [("GET", "/pets/7"), ("POST", "/pets"), ("GET", "/pets")], log
    assert log[0]["query"] == {"verbose": "true"}, log[0]
    assert log[1]["body"] == {"name": "Bo", "tag": "dog"}, log[1]
    assert log[1]["headers"].get("content-type", "").startswith("application/json"), log[1]
    assert log[2]["query"] == {"limit": "2"}, log[2]
    assert all(r["headers"].get("authorization") == "Bearer abc" for r in log), log
    assert all(r["headers"].get("host") in (f"127.0.0.1:{openapi_service.port}", "127.0.0.1") for r in log), log

    def payload(result):
        return result.structured_content if isinstance(result.structured_content, dict) and "id" in result.structured_content \
            else json.loads(texts(result))

    assert not got.is_error and payload(got) == {"id": 7, "name": "pet-7", "details": "pet 7 in full detail"}, got
    assert not made.is_error and payload(made)["name"] == "Bo", made
    assert not listed.is_error and [p["name"] for p in json.loads(texts(listed))] == ["Rex", "Tom"], listed


def find_exception(exc, kind):
    """`exc` itself or the first `kind` inside (nested) exception groups."""
    if isinstance(exc, kind):
        return exc
    for inner in getattr(exc, "exceptions", ()):
        found = find_exception(inner, kind)
        if found is not None:
            return found
    return None


def down_target():
    return mcp_target("gone", mcp={"host": f"http://127.0.0.1:{free_port()}/mcp"})


def test_fail_open_serves_the_live_targets(tollgate, everything_server, time_stdio_cmd):
    targets = [everything_target(everything_server), down_target(), time_target(time_stdio_cmd)]
    base = serve_listeners(tollgate, mcp_listeners(targets, failure_mode="failOpen"))

    async def session():
        async with Client(streamable_http_client(f"{base}/mcp"), mode="legacy") as c:
            names = {t.name for t in (await c.list_tools()).tools}
            return names, await c.call_tool("everything_echo", {"message": "open"}), \
                await c.call_tool("time_get_current_time", {"timezone": "UTC"})

    names, echo, now = run(session(), 20)
    assert {"everything_echo", "time_get_current_time"} <= names, sorted(names)
    assert not any(n.startswith("gone_") for n in names), sorted(names)
    assert texts(echo) == "Echo: open"
    assert json.loads(texts(now))["timezone"] == "UTC"


@pytest.mark.parametrize("failure_mode", ["failClosed", None])
def test_fail_closed_reports_a_down_target(tollgate, everything_server, time_stdio_cmd, failure_mode):
    """failClosed is the default: one unreachable target fails the session with a JSON-RPC error
    naming it."""
    targets = [everything_target(everything_server), down_target(), time_target(time_stdio_cmd)]
    base = serve_listeners(tollgate, mcp_listeners(targets, failure_mode=failure_mode))

    async def session():
        async with Client(streamable_http_client(f"{base}/mcp"), mode="legacy") as c:
            await c.list_tools()

    with pytest.raises(BaseException) as err:
        run(session(), 20)
    # The SDK raises from inside its task groups: the MCPError may come wrapped in ExceptionGroups.
    mcp_error = find_exception(err.value, MCPError)
    assert mcp_error is not None, f"expected a JSON-RPC error, got {err.value!r}"
    assert "gone" in mcp_error.error.message, mcp_error.error

    raw = RawSession(f"{base}/mcp").request("initialize", {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}})
    errors = [m for m in parse_messages(raw) if "error" in m]
    assert errors and "gone" in errors[0]["error"]["message"], (raw.status_code, raw.text)


@pytest.mark.parametrize("prefix_mode,targets,expect", [
    ("never", ["everything", "time"], {"echo", "get-sum", "get_current_time"}),
    ("always", ["time"], {"time_get_current_time", "time_convert_time"}),
    (None, ["time"], {"get_current_time", "convert_time"}),
])
def test_prefix_modes(tollgate, everything_server, time_stdio_cmd, prefix_mode, targets, expect):
    all_targets = {"everything": everything_target(everything_server), "time": time_target(time_stdio_cmd)}
    base = serve_listeners(tollgate, mcp_listeners([all_targets[t] for t in targets], prefix_mode=prefix_mode))
    time_tool = next(n for n in expect if n.endswith("get_current_time"))

    async def session():
        async with Client(streamable_http_client(f"{base}/mcp"), mode="legacy") as c:
            names = {t.name for t in (await c.list_tools()).tools}
            return names, await c.call_tool(time_tool, {"timezone": "UTC"})

    names, now = run(session())
    assert expect <= names, sorted(names)
    if prefix_mode == "always":
        assert all(n.startswith("time_") for n in names), sorted(names)
    if prefix_mode == "never" or prefix_mode is None:
        assert not any(n.startswith(("time_", "everything_")) for n in names), sorted(names)
    assert json.loads(texts(now))["timezone"] == "UTC", now


def test_stateless_mode_needs_no_session(tollgate, everything_server, time_stdio_cmd):
    """`statefulMode: stateless`: no Mcp-Session-Id is handed out and every request stands alone."""
    base = serve_listeners(tollgate, mcp_listeners([everything_target(everything_server), time_target(time_stdio_cmd)],
                                                   stateful_mode="stateless"))
    s = RawSession(f"{base}/mcp")
    s.initialize()
    assert s.session_id is None, s.session_id
    listed = s.call("tools/list", {})
    assert {"everything_echo", "time_get_current_time"} <= {t["name"] for t in listed["result"]["tools"]}, listed
    echo = RawSession(f"{base}/mcp").call("tools/call", {"name": "everything_echo", "arguments": {"message": "alone"}})
    assert echo["result"]["content"][0]["text"] == "Echo: alone", echo


def test_new_era_client_falls_back_against_an_old_target(tollgate, everything_server):
    """The SDK's default mode tries 2026-07-28 (`server/discover`) first; server-everything (TS
    SDK 1.x) does not speak it, so tollgate answers with an error and the client falls back to
    `initialize`, then works as usual."""
    base = serve_listeners(tollgate, mcp_listeners([everything_target(everything_server)]))

    async def session():
        async with Client(streamable_http_client(f"{base}/mcp")) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            return c.protocol_version, names, await c.call_tool("echo", {"message": "fallback"})

    version, names, echo = run(session())
    assert version == "2025-11-25", version
    assert "echo" in names and not any(n.startswith("everything_") for n in names), sorted(names)
    assert texts(echo) == "Echo: fallback", echo


def test_stateless_call_starts_only_the_owning_target(tollgate, everything_server, time_stdio_cmd, workdir):
    """In stateless mode each request stands alone, so a call that names its target must not
    start the others (a stdio target is a process per request)."""
    marker = workdir / "time-starts.log"
    cmd, args = time_stdio_cmd
    wrapper = workdir / "counting-time.sh"
    wrapper.write_text(f"#!/bin/sh\necho start >> {marker}\nexec {cmd} {' '.join(args)}\n")
    wrapper.chmod(0o755)
    counting = {"name": "time", "stdio": {"cmd": str(wrapper)}}
    base = serve_listeners(tollgate, mcp_listeners([everything_target(everything_server), counting], stateful_mode="stateless"))
    s = RawSession(f"{base}/mcp")
    s.initialize()
    starts = lambda: len(marker.read_text().splitlines()) if marker.exists() else 0
    after_init = starts()
    assert after_init == 1, after_init
    echo = RawSession(f"{base}/mcp").call("tools/call", {"name": "everything_echo", "arguments": {"message": "alone"}})
    assert echo["result"]["content"][0]["text"] == "Echo: alone", echo
    assert starts() == after_init, "a call to `everything` started the `time` process"
    now = RawSession(f"{base}/mcp").call("tools/call", {"name": "time_get_current_time", "arguments": {"timezone": "UTC"}})
    assert '"timezone": "UTC"' in now["result"]["content"][0]["text"], now
    assert starts() == after_init + 1


def test_resources_are_prefixed_and_updates_reach_the_client(federation):
    """Resource URIs carry their target (`everything+demo://...`); reading and subscribing with
    them reach server-everything, and its `notifications/resources/updated` come back with the
    prefixed URI."""
    base = federation.base

    async def session():
        updates, first = [], asyncio.Event()

        async def on_message(m):
            if getattr(m, "method", None) == "notifications/resources/updated":
                updates.append(m.params.uri)
                first.set()

        async with Client(streamable_http_client(f"{base}/mcp"), mode="legacy", message_handler=on_message) as c:
            uris = [str(r.uri) for r in (await c.list_resources()).resources]
            templates = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
            read = await c.read_resource(uris[0])
            await c.subscribe_resource(uris[0])
            await c.call_tool("everything_toggle-subscriber-updates", {})
            await asyncio.wait_for(first.wait(), 15)
            return uris, templates, read, updates

    uris, templates, read, updates = run(session(), timeout=40)
    assert uris and all(u.startswith("everything+demo://") for u in uris), uris
    assert any(t.startswith("everything+demo://") for t in templates), templates
    assert all(t.startswith(("everything+demo://", "pysse+greeting://")) for t in templates), templates
    assert str(read.contents[0].uri) == uris[0]
    assert updates[0] == uris[0], updates


def test_shutdown_stops_stdio_children_and_their_process_group(tollgate, time_stdio_cmd, workdir):
    """A stdio target may start helpers that never read stdin (launchers such as npx/uvx do):
    when tollgate stops, the target's whole process group goes with it."""
    import os
    import signal
    cmd, args = time_stdio_cmd
    marker = "3171.5"  # a sleep only this test starts
    wrapper = workdir / "with-helper.sh"
    wrapper.write_text(f"#!/bin/sh\nsleep {marker} &\nexec {cmd} {' '.join(args)}\n")
    wrapper.chmod(0o755)
    port = free_port()
    proc = tollgate.start(mcp_config(port, mcp_listeners([time_target((str(wrapper), []))]),
                                     "config: {connectionTerminationDeadline: 1s}"), ports=[port])
    s = RawSession(f"http://127.0.0.1:{port}/mcp")
    s.initialize()
    def helpers():
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                if f"sleep\0{marker}".encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                    found.append(pid)
            except OSError:
                pass
        return found
    assert wait_until(lambda: helpers(), 5), "the helper did not start"
    os.kill(proc.proc.pid, signal.SIGTERM)
    proc.proc.wait(timeout=10)
    assert wait_until(lambda: not helpers(), 5), f"helpers outlived tollgate: {helpers()}"


@pytest.mark.parametrize("prefix_mode", [None, "never"])
def test_templated_resource_uris_reach_the_target_whose_template_matches(tollgate, everything_server, workdir, prefix_mode):
    """A URI expanded from a target's `resources/templates/list` entry (listed nowhere itself) is
    read from that target, with or without target prefixes."""
    py_port, _, py = start_py_mcp(workdir, "streamable-http", "py-tmpl")
    try:
        targets = [everything_target(everything_server), mcp_target("py", mcp={"host": f"http://127.0.0.1:{py_port}/mcp"})]
        base = serve_listeners(tollgate, mcp_listeners(targets, prefix_mode=prefix_mode))

        async def session():
            async with Client(streamable_http_client(f"{base}/mcp"), mode="legacy") as c:
                templates = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
                py_template = next(t for t in templates if "greeting://" in t)
                ev_template = next(t for t in templates if "greeting://" not in t and "{" in t)
                mine = await c.read_resource(py_template.replace("{who}", "ada"))
                # server-everything's first template, its one variable filled with a number.
                head, rest = ev_template.split("{", 1)
                ev_uri = head + "1" + rest.split("}", 1)[1]
                theirs = await c.read_resource(ev_uri)
                return templates, mine, theirs, ev_uri

        templates, mine, theirs, ev_uri = run(session(), timeout=40)
        if prefix_mode == "never":
            assert "greeting://{who}" in templates, templates
        else:
            assert "py+greeting://{who}" in templates, templates
        assert mine.contents[0].text == "py-tmpl: hello ada", mine
        assert str(theirs.contents[0].uri) == ev_uri, theirs
    finally:
        py.stop()


def test_openapi_schema_from_a_url_and_a_named_backend(tollgate, openapi_service, tmp_path):
    """`openapi: {schema: {url}, backend}`: the document is fetched when the config loads, the
    operations go to the named top-level backend; a schema that cannot be fetched fails the load
    naming the URL."""
    port = openapi_service.port
    base = serve_listeners(tollgate, """  - routes:
    - backends:
      - mcp:
          targets:
          - name: pets
            openapi:
              schema: {url: "http://127.0.0.1:%d/openapi.json"}
              backend: pets-api
""" % port, settings=f"backends:\n- name: pets-api\n  host: \"127.0.0.1:{port}\"\n")

    async def session():
        async with Client(streamable_http_client(f"{base}/mcp")) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            listed = await c.call_tool("listPets", {"limit": 1})
            return names, listed

    names, listed = run(session())
    assert {"getPet", "createPet", "listPets"} <= names, names
    assert [p["name"] for p in json.loads(texts(listed))] == ["Rex"], listed
    assert [(r["method"], r["path"]) for r in openapi_service.requests()] == [("GET", "/pets")]
    import subprocess
    from conftest import BIN
    closed = free_port()
    for url, why in [(f"http://127.0.0.1:{port}/missing.json", "answered HTTP 404"), (f"http://127.0.0.1:{closed}/x.json", f"127.0.0.1:{closed}")]:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(f"""binds:
- port: 1
  listeners:
  - routes:
    - backends:
      - mcp:
          targets:
          - name: pets
            openapi: {{schema: {{url: "{url}"}}, host: "127.0.0.1:{port}"}}
""")
        p = subprocess.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=30)
        assert p.returncode != 0 and url in p.stderr and why in p.stderr, p.stderr
