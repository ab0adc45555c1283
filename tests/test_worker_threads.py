"""`config.workerThreads`: the number of threads serving a bind. With one, tollgate runs the bind
on a single-threaded runtime (Pingora's no-steal flavour: nothing to steal from, and the
work-stealing scheduler's bookkeeping costs ~20% of a completion's CPU at 32 connections, see
bench/README). These tests see the thread count and drive the one-thread runtime as a user
would: concurrent SDK streams, an MCP session to server-everything, a reload mid-way."""
import asyncio
import os
import threading
import time

import openai
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import free_port
from mcp_helpers import texts


def bind_threads(pid: int, port: int) -> int:
    """Threads of `pid` named after the bind's service (`bind PORT`): its runtime's workers."""
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            names.append(open(f"/proc/{pid}/task/{tid}/comm").read().strip())
        except FileNotFoundError:
            pass
    return names.count(f"bind {port}")


def config(port, llm, mcp, threads, extra_route=""):
    return f"""
config:
  workerThreads: {threads}
  adminAddr: "off"
  statsAddr: "off"
  readinessAddr: "off"
binds:
- port: {port}
  listeners:
  - routes:
    - name: mcp
      matches: [{{path: {{exact: /mcp}}}}]
      backends: [{{mcp: {{targets: [{{name: everything, mcp: {{host: "http://127.0.0.1:{mcp}/mcp"}}}}]}}}}]
    - name: llm
      backends: [{{ai: {{name: mock, hostOverride: "127.0.0.1:{llm}", provider: {{openAI: {{model: rewritten-model}}}}}}}}]{extra_route}
"""


@pytest.mark.parametrize("threads", [1, 3])
def test_worker_threads_sets_the_binds_thread_count(tollgate, llmock, everything_server, threads):
    port = free_port()
    p = tollgate.start(config(port, llmock.port, everything_server, threads), ports=[port])
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
    for _ in range(4):
        r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert r.choices[0].message.content
    # The steal flavour's blocking pool shares its workers' name; nothing here blocks, so the
    # count is the workers alone in both flavours.
    assert bind_threads(p.proc.pid, port) == threads


def test_one_worker_thread_serves_streams_mcp_and_a_reload_at_once(tollgate, llmock, everything_server, workdir):
    port = free_port()
    p = tollgate.start(config(port, llmock.port, everything_server, 1), ports=[port])
    assert bind_threads(p.proc.pid, port) == 1
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0, timeout=30)
    results, errors = [], []

    def stream(i):
        try:
            chunks = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                    messages=[{"role": "user", "content": f"stream {i}"}])
            parts, models = [], set()
            for c in chunks:
                models.add(c.model)
                if c.choices and c.choices[0].delta.content:
                    parts.append(c.choices[0].delta.content)
            results.append(("".join(parts), models))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    async def mcp_session():
        async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp")) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            echoes = [texts(await c.call_tool("echo", {"message": f"m{i}"})) for i in range(10)]
            return names, echoes

    streams = [threading.Thread(target=stream, args=(i,)) for i in range(24)]
    for t in streams:
        t.start()
    # While the streams run (llmock paces its chunks 20 ms apart), the config changes: a new
    # route answers, and the MCP session keeps working on the same single thread. (The route
    # goes last: an MCP session belongs to its backend's place in the config.)
    time.sleep(0.2)
    tmp = workdir / "config.yaml.tmp"
    tmp.write_text(config(port, llmock.port, everything_server, 1, extra_route="""
    - name: added
      matches: [{path: {exact: /added}}]
      policies: {directResponse: {status: 200, body: reloaded}}"""))
    os.replace(tmp, workdir / "config.yaml")  # as an editor or config manager publishes it
    names, echoes = asyncio.run(mcp_session())
    for t in streams:
        t.join(timeout=60)
    assert errors == [], errors[:3]
    assert len(results) == 24
    assert all(text and models == {"rewritten-model"} for text, models in results), results[:3]
    assert "echo" in names and echoes == [f"Echo: m{i}" for i in range(10)]
    import requests
    deadline = time.time() + 10
    while time.time() < deadline:
        r = requests.get(f"http://127.0.0.1:{port}/added", timeout=5)
        if r.status_code == 200:
            break
        time.sleep(0.1)
    assert r.status_code == 200 and r.text == "reloaded", (r.status_code, r.text)
    assert bind_threads(p.proc.pid, port) == 1, "a reload must not add workers"
    assert p.proc.poll() is None
