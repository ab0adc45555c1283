"""`config.workerThreads`: the number of threads serving a bind. With one, tollgate runs the bind
on a single-threaded runtime (Pingora's no-steal flavour: nothing to steal from, and the
work-stealing scheduler's bookkeeping costs ~24% of a completion's CPU at 32 connections, see
bench/README). These tests see the thread count, see which runtime serves (its blocking pool's
threads are named differently), and drive the one-thread runtime as a user would: concurrent
SDK streams and an MCP session to server-everything that goes on across a reload."""
import asyncio
import os
import threading
import time

import bcrypt
import openai
import pytest
import requests
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from conftest import free_port
from mcp_helpers import texts


def bind_threads(pid: int, port: int) -> int:
    """Threads of `pid` named after the bind's service (`bind PORT`): its runtime's workers.
    A thread a worker has just created (Pingora's timer thread on the first request) carries
    its creator's name until it names itself, so the least of a few looks is the count."""
    counts = []
    for _ in range(5):
        names = []
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                names.append(open(f"/proc/{pid}/task/{tid}/comm").read().strip())
            except FileNotFoundError:
                pass
        counts.append(names.count(f"bind {port}"))
        time.sleep(0.1)
    return min(counts)


def with_workers(threads, port, routes):
    """A config of one bind on `port` with `threads` workers (operator endpoints off)."""
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
{routes}"""


def config(port, llm, mcp, threads, extra_route=""):
    return with_workers(threads, port, f"""\
    - name: mcp
      matches: [{{path: {{exact: /mcp}}}}]
      backends: [{{mcp: {{targets: [{{name: everything, mcp: {{host: "http://127.0.0.1:{mcp}/mcp"}}}}]}}}}]
    - name: llm
      backends: [{{ai: {{name: mock, hostOverride: "127.0.0.1:{llm}", provider: {{openAI: {{model: rewritten-model}}}}}}}}]{extra_route}
""")


def wait_for_added(port):
    """Waits until the route the reload adds answers; returns its last answer."""
    deadline = time.time() + 10
    while True:
        r = requests.get(f"http://127.0.0.1:{port}/added", timeout=5)
        if r.status_code == 200 or time.time() > deadline:
            return r
        time.sleep(0.05)


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


@pytest.mark.parametrize("threads, named_after_the_bind", [(1, 1), (2, 3)])
def test_one_worker_runs_the_single_threaded_runtime(tollgate, workdir, threads, named_after_the_bind):
    """A bcrypt check runs on the runtime's blocking pool. The work-stealing runtime names those
    threads after the service (`bind PORT`, like its workers); the single-threaded runtime's
    keep tokio's default name. So after one such check, one worker still shows one `bind`
    thread, and two workers show three."""
    users = workdir / "users.htpasswd"
    users.write_text("bob:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=5)).decode().replace("$2b$", "$2y$", 1) + "\n")
    port = free_port()
    p = tollgate.start(with_workers(threads, port, f"""\
    - policies:
        basicAuth: {{htpasswd: {{file: '{users}'}}, mode: strict}}
        directResponse: {{status: 200, body: in}}
"""), ports=[port])
    assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 401
    assert bind_threads(p.proc.pid, port) == threads
    r = requests.get(f"http://127.0.0.1:{port}/", auth=("bob", "pw"), timeout=10)
    assert r.status_code == 200 and r.text == "in"
    # tokio keeps an idle blocking thread for 10 s: it is still there to be counted.
    assert bind_threads(p.proc.pid, port) == named_after_the_bind


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

    def publish_added_route():
        # A new route, last (an MCP session belongs to its backend's place in the config),
        # written as an editor or config manager publishes a file.
        tmp = workdir / "config.yaml.tmp"
        tmp.write_text(config(port, llmock.port, everything_server, 1, extra_route="""
    - name: added
      matches: [{path: {exact: /added}}]
      policies: {directResponse: {status: 200, body: reloaded}}"""))
        os.replace(tmp, workdir / "config.yaml")

    streams = [threading.Thread(target=stream, args=(i,)) for i in range(24)]

    async def mcp_session():
        async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp")) as c:
            names = {t.name for t in (await c.list_tools()).tools}
            echoes = [texts(await c.call_tool("echo", {"message": f"m{i}"})) for i in range(5)]
            # Mid-session: 24 streams start (llmock paces their chunks 20 ms apart) and the
            # config changes; the session goes on across the reload, on the same one thread.
            for t in streams:
                t.start()
            publish_added_route()
            added = await asyncio.to_thread(wait_for_added, port)
            echoes += [texts(await c.call_tool("echo", {"message": f"m{i}"})) for i in range(5, 10)]
            return names, echoes, added

    names, echoes, added = asyncio.run(mcp_session())
    for t in streams:
        t.join(timeout=60)
    assert errors == [], errors[:3]
    assert len(results) == 24
    assert all(text and models == {"rewritten-model"} for text, models in results), results[:3]
    assert "echo" in names and echoes == [f"Echo: m{i}" for i in range(10)]
    assert added.status_code == 200 and added.text == "reloaded", (added.status_code, added.text)
    assert bind_threads(p.proc.pid, port) == 1, "a reload must not add workers"
    assert p.proc.poll() is None
