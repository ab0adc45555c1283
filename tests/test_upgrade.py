"""Binary upgrade: a new process started with -u takes the listening socket over after the old
one gets SIGQUIT; requests keep being answered and the old process exits on its own."""
import os
import signal
import sys
import subprocess
import time

import pytest
import requests

from conftest import BIN, ROOT, VENV_BIN, Proc, free_port, wait_port


def start_old(workdir, config_text):
    """Writes the config and starts the process to be upgraded; returns its argv and process."""
    cfg = workdir / "c.yaml"
    cfg.write_text(config_text)
    args = [str(BIN), "-f", str(cfg), "--runtime-dir", str(workdir / "run")]
    return args, Proc(args, workdir / "old.log")


def test_take_over_hands_listening_socket_over(workdir):
    port = free_port()
    args, old = start_old(workdir, f"""
config:
  connectionTerminationDeadline: 1s
binds:
- port: {port}
  listeners:
  - routes:
    - policies: {{directResponse: {{status: 200, body: up}}}}
""")
    new = None
    try:
        wait_port(port, proc=old.proc)
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "up"
        # One command: the new process takes the sockets over and tells the old one to drain.
        new = Proc(args + ["--take-over"], workdir / "new.log")
        deadline = time.time() + 20
        failures = 0
        while old.proc.poll() is None and time.time() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/", timeout=5, headers={"connection": "close"})
            except requests.RequestException:
                failures += 1
            time.sleep(0.05)
        assert old.proc.poll() is not None, "old process did not exit after SIGQUIT"
        assert new.proc.poll() is None, new.output()
        assert failures == 0, f"{failures} requests failed during the hand-over"
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=5).text == "up"
    finally:
        old.stop()
        if new:
            new.stop()


@pytest.mark.parametrize("worker_threads", ["default", 1])
def test_upgrade_under_load_keeps_every_request_and_stream(workdir, echo_upstreams, worker_threads):
    """15 s of load (new and keep-alive connections) with a binary upgrade midway, and a 10 s
    streaming completion started before it: nothing fails, both processes serve, the stream ends
    intact on the old process. Also with one worker thread (a single-threaded runtime)."""
    import threading

    echo, _ = echo_upstreams
    llm = free_port()
    slow = Proc([str(VENV_BIN / "llmock"), "serve", "--host", "127.0.0.1", "--port", str(llm), "--log-level", "warning",
                 "--response-style", "echo", "--stream-chunk-delay-ms", "500"], workdir / "llmock.log")
    port = free_port()
    workers = "" if worker_threads == "default" else f"\n  workerThreads: {worker_threads}"
    args, old = start_old(workdir, f"""
config:
  connectionTerminationDeadline: 10s{workers}
  adminAddr: "off"
  statsAddr: "off"
  readinessAddr: "off"
binds:
- port: {port}
  listeners:
  - routes:
    - matches: [{{path: {{pathPrefix: /v1}}}}]
      backends: [{{ai: {{name: slow, hostOverride: "127.0.0.1:{llm}", provider: {{openAI: {{}}}}}}}}]
    - backends: [{{host: 127.0.0.1:{echo}}}]
""")
    new = None
    try:
        wait_port(llm, proc=slow.proc)
        wait_port(port, proc=old.proc)
        url = f"http://127.0.0.1:{port}/"
        stop = threading.Event()
        ok, failures, retries = [0], [], [0]

        def load(keep_alive):
            s = requests.Session()
            while not stop.is_set():
                try:
                    if keep_alive:
                        try:
                            r = s.get(url, timeout=5)
                        except requests.ConnectionError:
                            # A keep-alive connection closed by the old process: replay once.
                            retries[0] += 1
                            s = requests.Session()
                            r = s.get(url, timeout=5)
                    else:
                        r = requests.get(url, timeout=5, headers={"connection": "close"})
                    if r.status_code == 200:
                        ok[0] += 1
                    else:
                        failures.append(r.status_code)
                except requests.RequestException as e:
                    failures.append(repr(e))

        stream_result = {}

        def stream():
            words = " ".join(f"word{i}" for i in range(20))  # echoed back: ~20 chunks, 0.5 s apart
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": words}]}
            started = time.monotonic()
            with requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, stream=True, timeout=60) as r:
                lines = [l for l in r.iter_lines() if l]
            stream_result["lines"] = lines
            stream_result["seconds"] = time.monotonic() - started

        threads = [threading.Thread(target=load, args=(ka,)) for ka in (True, True, False, False)]
        streamer = threading.Thread(target=stream)
        streamer.start()
        for t in threads:
            t.start()
        time.sleep(4)
        handover = time.monotonic()
        new = Proc(args + ["-u"], workdir / "new.log")
        time.sleep(1)
        os.kill(old.proc.pid, signal.SIGQUIT)
        time.sleep(11)
        stop.set()
        for t in threads:
            t.join()
        streamer.join(timeout=30)
        old.proc.wait(timeout=30)
        old_exit = time.monotonic() - handover

        assert failures == [], failures[:5]
        lines = stream_result.get("lines", [])
        assert lines and lines[-1] == b"data: [DONE]", lines[-3:]
        assert stream_result["seconds"] > 8, f"the stream took only {stream_result['seconds']:.1f}s"
        # A request's access-log line is written once its response is out: the client can
        # count the last answers a moment before the new process has logged them.
        settle = time.monotonic() + 5
        while True:
            served_old = old.output().count(" access request ")
            served_new = new.output().count(" access request ")
            if served_old + served_new >= ok[0] or time.monotonic() > settle:
                break
            time.sleep(0.1)
        assert served_old > 0 and served_new > 0, (served_old, served_new)
        assert served_old + served_new >= ok[0]
        assert new.proc.poll() is None
        print(f"upgrade: {ok[0]} requests ok ({served_old} old, {served_new} new), {retries[0]} keep-alive replays, "
              f"old process exited {old_exit:.1f}s after the new one started")
    finally:
        old.stop()
        if new:
            new.stop()
        slow.stop()


def test_mcp_session_survives_upgrade(workdir):
    """An MCP session opened before the upgrade keeps working on the new process."""
    import asyncio

    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    mcp_port = free_port()
    headers = workdir / "h.log"
    server = Proc([sys.executable, str(ROOT / "tests" / "mcp_server.py"), str(mcp_port), "/mcp", str(headers)],
                  workdir / "mcp.log")
    port = free_port()
    args, old = start_old(workdir, f"""
config: {{connectionTerminationDeadline: 2s, adminAddr: "off", statsAddr: "off", readinessAddr: "off"}}
binds:
- port: {port}
  listeners:
  - routes:
    - backends: [{{mcp: {{targets: [{{name: py, mcp: {{host: "http://127.0.0.1:{mcp_port}/mcp"}}}}]}}}}]
""")
    new = None
    try:
        wait_port(mcp_port, proc=server.proc)
        wait_port(port, proc=old.proc)

        async def run():
            nonlocal new
            async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp"), mode="legacy") as c:
                before = await c.call_tool("add", {"a": 1, "b": 2})
                new = Proc(args + ["--take-over"], workdir / "new.log")
                await asyncio.to_thread(old.proc.wait, 30)
                after = await c.call_tool("add", {"a": 20, "b": 22})
                return before, after

        before, after = asyncio.run(run())
        assert before.content[0].text == "3"
        assert after.content[0].text == "42"
        assert old.proc.returncode == 0
        assert new.output().count(" access request ") >= 1, "the call after the upgrade went to the new process"
    finally:
        old.stop()
        if new:
            new.stop()
        server.stop()
