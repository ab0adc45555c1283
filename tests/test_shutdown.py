"""SIGTERM: stop accepting, let an in-flight stream finish, exit 0 within the drain deadline."""
import signal
import time

import requests

from conftest import VENV_BIN, Proc, free_port, wait_port


def test_sigterm_drains_a_stream_and_exits_zero(tollgate, workdir):
    up = free_port()
    slow = Proc([str(VENV_BIN / "llmock"), "serve", "--host", "127.0.0.1", "--port", str(up), "--log-level", "warning",
                 "--response-style", "static", "--stream-chunk-delay-ms", "400"], workdir / "slow-llmock.log")
    try:
        wait_port(up, proc=slow.proc)
        port = free_port()
        proc = tollgate.start(f"""
config:
  connectionTerminationDeadline: 8s
binds:
- port: {port}
  listeners:
  - routes:
    - backends:
      - ai: {{name: slow, hostOverride: "127.0.0.1:{up}", provider: {{openAI: {{}}}}}}
""", ports=[port])
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "tell me a long story"}]}
        r = requests.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, stream=True, timeout=30)
        chunks = r.iter_lines()
        first = next(l for l in chunks if l)
        assert first.startswith(b"data: ")
        start = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        rest = [l for l in chunks if l]
        took = time.monotonic() - start
        assert rest[-1] == b"data: [DONE]", rest[-3:]
        assert len(rest) >= 3, "the stream should still have been running at SIGTERM"
        assert took > 1.0, f"stream ended {took:.1f}s after SIGTERM: it was cut, not drained"
        # New connections are refused once the listener is closed.
        time.sleep(0.5)
        try:
            requests.get(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            refused = False
        except requests.ConnectionError:
            refused = True
        assert refused, "still accepting after SIGTERM"
        proc.proc.wait(timeout=20)
        assert proc.proc.returncode == 0
        exited_after = time.monotonic() - start
        assert exited_after < 8 + 3, f"exit took {exited_after:.1f}s with an 8s drain deadline"
    finally:
        slow.stop()


def test_sigterm_with_nothing_in_flight_exits_once_connections_are_done(tollgate):
    """The drain ends when no connection is left, not at the deadline; an idle kept-alive
    connection does not hold it up."""
    port = free_port()
    proc = tollgate.start(f"""
config: {{connectionTerminationDeadline: 8s, adminAddr: "off", statsAddr: "off", readinessAddr: "off"}}
binds:
- port: {port}
  listeners:
  - routes:
    - policies: {{directResponse: {{status: 200, body: ok}}}}
""", ports=[port])
    kept = requests.Session()
    assert kept.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"  # leaves an idle keep-alive connection
    took = proc.terminate()
    assert took < 1.5, f"exit took {took:.1f}s with nothing in flight"


def test_min_termination_deadline_holds_the_drain_open(tollgate):
    port = free_port()
    proc = tollgate.start(f"""
config: {{connectionTerminationDeadline: 8s, connectionMinTerminationDeadline: 2s, adminAddr: "off", statsAddr: "off", readinessAddr: "off"}}
binds:
- port: {port}
  listeners:
  - routes:
    - policies: {{directResponse: {{status: 200, body: ok}}}}
""", ports=[port])
    took = proc.terminate()
    assert 2.0 <= took < 3.5, f"exit took {took:.1f}s with a 2s minimum"
