"""Shared limits (tollgate's `redis:` extension on `localRateLimit` entries): several tollgate
processes on one Redis hold one cap together; Redis down is decided by `failureMode`
(`failOpen` serves and logs once, `failClosed` answers 503 fast); Redis back resumes counting
without a restart."""
import threading
import time

import requests

from conftest import Redis, free_port


def config(port, up, limit):
    return f"""binds:
- port: {port}
  listeners:
  - routes:
    - policies:
        localRateLimit: {limit}
      backends: [{{host: "127.0.0.1:{up}"}}]
"""


def start_three(tollgate, up, limit):
    bases = []
    for i in range(3):
        port = free_port()
        tollgate.start(config(port, up, limit), ports=[port], name=f"replica{i}.yaml")
        bases.append(f"http://127.0.0.1:{port}")
    return bases


def spread_load(bases, seconds, threads=6):
    """Requests spread round-robin over `bases` for `seconds`; returns (admitted, refused, duration)."""
    counts = {"ok": 0, "limited": 0, "other": 0}
    others = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker(i):
        s = requests.Session()
        n = i
        while time.monotonic() < stop:
            r = s.get(f"{bases[n % len(bases)]}/x", headers={"x-user": "alice"}, timeout=5)
            n += 1
            key = {200: "ok", 429: "limited"}.get(r.status_code, "other")
            with lock:
                counts[key] += 1
                if key == "other" and len(others) < 5:
                    others.append((r.status_code, r.text[:200]))

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if others:
        counts["others"] = others
    return counts, time.monotonic() - started


def expected_admitted(per_fill, seconds):
    # A full bucket at the first request, then one fill per whole interval (1 s).
    return per_fill * (1 + int(seconds))


def test_three_replicas_on_one_redis_hold_one_cap(tollgate, echo_upstreams, redis_server):
    # A 2 s deadline on each Redis call: with the default 100 ms a call delayed by a loaded CI
    # machine is refused 503 (`failClosed`), which is right for production and not what this
    # test measures.
    limit = f"[{{maxTokens: 20, tokensPerFill: 20, fillInterval: 1s, key: 'request.headers[\"x-user\"]', redis: {{url: '{redis_server.url}', name: api, timeout: 2s}}}}]"
    bases = start_three(tollgate, echo_upstreams[0], limit)
    # 9.5 s: nine fills fall inside the run whatever the scheduling jitter at its ends.
    counts, took = spread_load(bases, 9.5)
    assert counts["other"] == 0 and counts["limited"] > counts["ok"], counts
    expected = expected_admitted(20, took)
    print("shared:", counts, "in", round(took, 2), "s; expected", expected)
    assert abs(counts["ok"] - expected) <= 0.05 * expected, (counts, took, expected)


def test_three_replicas_with_local_limits_admit_three_times(tollgate, echo_upstreams):
    # The contrast: the same limit counted in each process.
    limit = "[{maxTokens: 20, tokensPerFill: 20, fillInterval: 1s, key: 'request.headers[\"x-user\"]'}]"
    bases = start_three(tollgate, echo_upstreams[0], limit)
    counts, took = spread_load(bases, 2.5)
    print("local only:", counts, "in", round(took, 2), "s; one cap is", expected_admitted(20, took))
    three_caps = 3 * expected_admitted(20, took)
    assert abs(counts["ok"] - three_caps) <= 0.05 * three_caps, (counts, took)


def test_redis_down_fails_open_or_closed_and_recovers(tollgate, echo_upstreams, workdir):
    redis = Redis(workdir)
    try:
        port = free_port()
        stats = free_port()
        up = echo_upstreams[0]
        text = f"""config:
  statsAddr: 127.0.0.1:{stats}
binds:
- port: {port}
  listeners:
  - routes:
    - matches: [{{path: {{pathPrefix: /open}}}}]
      policies:
        localRateLimit: [{{maxTokens: 1, tokensPerFill: 1, fillInterval: 1h, redis: {{url: '{redis.url}', name: open, failureMode: failOpen, timeout: 200ms}}}}]
      backends: [{{host: "127.0.0.1:{up}"}}]
    - matches: [{{path: {{pathPrefix: /closed}}}}]
      policies:
        localRateLimit: [{{maxTokens: 1, tokensPerFill: 1, fillInterval: 1h, redis: {{url: '{redis.url}', name: closed, timeout: 200ms}}}}]
      backends: [{{host: "127.0.0.1:{up}"}}]
"""
        proc = tollgate.start(text, ports=[port])
        base = f"http://127.0.0.1:{port}"
        get = lambda path: requests.get(f"{base}{path}", timeout=10)
        assert [get("/open").status_code for _ in range(2)] == [200, 429]
        assert [get("/closed").status_code for _ in range(2)] == [200, 429]
        redis.kill()
        for _ in range(5):
            assert get("/open").status_code == 200
            started = time.monotonic()
            r = get("/closed")
            assert r.status_code == 503 and time.monotonic() - started < 1.0, r.text
            assert r.json()["error"]["type"] == "rate_limit_unavailable"
        log = proc.output()
        assert log.count("rate-limit store (redis) unavailable") == 2, log  # once per limit, not per request
        assert "failOpen" in log or "FailOpen" in log
        metrics = requests.get(f"http://127.0.0.1:{stats}/metrics", timeout=5).text
        assert 'tollgate_rate_limit_decisions_total{policy="localRateLimit",decision="failed_open",api_key=""} 5' in metrics, metrics
        assert 'tollgate_rate_limit_decisions_total{policy="localRateLimit",decision="failed_closed",api_key=""} 5' in metrics
        assert 'tollgate_rate_limit_store_seconds_count{policy="localRateLimit",outcome="ok"} 4' in metrics
        redis.start()  # empty: buckets start full again
        deadline = time.time() + 10
        while get("/closed").status_code != 200:
            assert time.time() < deadline, "counting did not resume"
            time.sleep(0.2)
        assert get("/closed").status_code == 429, "counting resumed"
        assert "rate-limit store answers again" in proc.output()
    finally:
        if redis.proc.proc.poll() is None:
            redis.proc.stop()


def test_a_silent_store_is_bounded_by_the_timeout(tollgate, echo_upstreams):
    # A server that accepts connections and never answers: each decision waits `timeout`.
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    held = []
    stop = threading.Event()

    def accept():
        silent.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(silent.accept()[0])
            except OSError:
                pass

    threading.Thread(target=accept, daemon=True).start()
    try:
        port = free_port()
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}"
        limit = f"[{{maxTokens: 5, tokensPerFill: 5, fillInterval: 1s, redis: {{url: '{url}', name: silent, timeout: 400ms}}}}]"
        tollgate.start(config(port, echo_upstreams[0], limit), ports=[port])
        for _ in range(2):
            started = time.monotonic()
            r = requests.get(f"http://127.0.0.1:{port}/x", timeout=10)
            took = time.monotonic() - started
            assert r.status_code == 503 and 0.35 <= took < 2.0, (r.status_code, took)
    finally:
        stop.set()
        silent.close()
        for c in held:
            c.close()
