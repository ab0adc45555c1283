"""Hostile and broken clients cannot hang or starve the gateway: every connection has a
deadline at every stage, the process sheds or evicts before it runs out of descriptors,
and what is not HTTP is answered 400 and closed."""
import resource
import socket
import time

import requests

from conftest import free_port, serve_listeners
from hostile import closed_by_peer, raw_exchange, status_of

HEALTH = """\
  - routes:
    - matches: [{path: {exact: /healthz}}]
      policies: {directResponse: {status: 200, body: ok}}
"""


def port_of(base: str) -> int:
    return int(base.rsplit(":", 1)[1])


def test_minimal_http10_request_is_answered(tollgate):
    port = port_of(serve_listeners(tollgate, HEALTH))
    out = raw_exchange(port, b"GET /healthz HTTP/1.0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"ok"), out


def test_binary_garbage_gets_400_and_a_close(tollgate):
    port = port_of(serve_listeners(tollgate, HEALTH))
    garbage = bytes((i * 37 + 11) % 256 for i in range(4096))
    start = time.monotonic()
    out = raw_exchange(port, garbage, wait=5)
    assert status_of(out) == 400, out[:200]
    assert b'"error"' in out
    assert time.monotonic() - start < 2, "garbage must be refused at once, and the connection closed"


def test_http11_without_host_and_conflicting_lengths_are_refused(tollgate):
    port = port_of(serve_listeners(tollgate, HEALTH))
    assert status_of(raw_exchange(port, b"GET /healthz HTTP/1.1\r\n\r\n")) == 400
    two = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    assert status_of(two) == 200, two
    conflict = raw_exchange(port, b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")
    assert status_of(conflict) == 400, conflict


def test_oversized_and_overlong_heads(tollgate):
    port = port_of(serve_listeners(tollgate, HEALTH, settings="frontendPolicies:\n  http:\n    http1MaxHeaders: 5\n"))
    many = b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"".join(b"x-%d: v\r\n" % i for i in range(5)) + b"\r\n"
    assert status_of(raw_exchange(port, many)) == 431
    few = b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"".join(b"x-%d: v\r\n" % i for i in range(3)) + b"Connection: close\r\n\r\n"
    assert status_of(raw_exchange(port, few)) == 200
    huge = b"GET /healthz HTTP/1.1\r\nHost: a\r\nx-big: " + b"a" * (70 * 1024) + b"\r\n\r\n"
    assert status_of(raw_exchange(port, huge)) == 431


def test_header_and_idle_deadlines(tollgate):
    port = port_of(serve_listeners(tollgate, HEALTH, settings="frontendPolicies:\n  http:\n    http1IdleTimeout: 1s\n",
                                   args=["--header-timeout", "1s"]))
    silent = socket.create_connection(("127.0.0.1", port))
    slow = socket.create_connection(("127.0.0.1", port))
    slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
    start = time.monotonic()
    assert closed_by_peer(silent, 3), "a connection that sends nothing is closed at the header deadline"
    assert 0.8 < time.monotonic() - start < 2.5
    out = slow.recv(4096)
    assert status_of(out) == 408, out
    # Kept alive after a request: the idle timeout (1s) closes it.
    kept = socket.create_connection(("127.0.0.1", port))
    kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(kept.recv(4096)) == 200
    start = time.monotonic()
    assert closed_by_peer(kept, 3)
    assert 0.8 < time.monotonic() - start < 2.5
    # A body that stops arriving is cut after --body-timeout (set short here).
    for s in (silent, slow, kept):
        s.close()


def test_slow_body_is_cut_by_the_body_timeout(tollgate):
    port = port_of(serve_listeners(tollgate, HEALTH, args=["--body-timeout", "1s"]))
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /healthz HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
    start = time.monotonic()
    assert closed_by_peer(s, 4)
    assert time.monotonic() - start < 3


def test_idle_and_slowloris_floods_cannot_lock_clients_out(tollgate):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    admin, ready = free_port(), free_port()
    settings = f"config:\n  adminAddr: 127.0.0.1:{admin}\n  readinessAddr: 127.0.0.1:{ready}\n  statsAddr: 'off'\n"
    base = serve_listeners(tollgate, HEALTH, settings=settings, args=["--header-timeout", "3s"], nofile=256)
    port = port_of(base)
    log = tollgate.procs[-1].output()
    # 256 descriptors: (256 - 128 reserved) / 2 = 64 client connections at once.
    assert "max_connections=64" in log, log
    idle, loris = [], []
    for i in range(300):
        idle.append(socket.create_connection(("127.0.0.1", port)))
    for i in range(100):
        s = socket.create_connection(("127.0.0.1", port))
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: ")
        except OSError:
            pass
        loris.append(s)
    flood_started = time.monotonic()
    # A real client on a new connection is served, promptly.
    for _ in range(5):
        start = time.monotonic()
        r = requests.get(f"{base}/healthz", timeout=1)
        assert r.status_code == 200 and r.text == "ok"
        assert time.monotonic() - start < 1
    assert requests.get(f"http://127.0.0.1:{ready}/healthz/ready", timeout=1).status_code == 200
    assert requests.get(f"http://127.0.0.1:{admin}/", timeout=1).status_code == 200
    # Slowloris clients keep trickling; every hostile connection is closed by the header deadline.
    for s in loris:
        try:
            s.sendall(b"a")
        except OSError:
            pass
    for s in idle + loris:
        left = 3 + 1.5 - (time.monotonic() - flood_started)
        assert closed_by_peer(s, max(left, 0.05)), "a hostile connection outlived the header deadline"
        s.close()
    assert requests.get(f"{base}/healthz", timeout=1).status_code == 200


def test_h2c_prior_knowledge_still_works_and_is_normalized(tollgate):
    """HTTP/2 without TLS (prior knowledge) is recognised from its preface, without waiting
    for 24 bytes as Pingora does; its paths are normalized like HTTP/1's."""
    import subprocess
    base = serve_listeners(tollgate, HEALTH + """\
    - matches: [{path: {pathPrefix: /admin}}]
      policies: {directResponse: {status: 403, body: denied}}
""")
    out = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version} %{http_code}",
                          f"{base}/healthz"], capture_output=True, text=True, timeout=10).stdout
    assert out == "2 200", out
    out = subprocess.run(["curl", "-s", "--path-as-is", "--http2-prior-knowledge", "-w", " %{http_code}",
                          f"{base}/x/../admin"], capture_output=True, text=True, timeout=10).stdout
    assert out == "denied 403", out


def test_max_connections_evicts_idle_and_refuses_when_all_are_busy(tollgate):
    """`--max-connections 2`: a newcomer closes the longest-idle connection to get in; when
    both places are busy serving requests, it gets a 503 with Retry-After instead."""
    from hostile import Recorder
    rec = Recorder()
    try:
        base = serve_listeners(tollgate, HEALTH + f"""\
    - matches: [{{path: {{pathPrefix: /up}}}}]
      backends: [{{host: "127.0.0.1:{rec.port}"}}]
""", args=["--max-connections", "2"])
        port = port_of(base)
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
        time.sleep(0.2)
        assert status_of(raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")) == 200
        # One of the two idle connections (the one registered first) made room.
        closed = [closed_by_peer(s, 1) for s in idle]
        assert closed.count(True) == 1, closed
        for s in idle:
            s.close()
        time.sleep(0.2)
        # Two requests in progress: their bodies are still being sent upstream.
        busy = []
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\npartial")
            busy.append(s)
        time.sleep(0.3)
        out = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(out) == 503 and b"retry-after: 1" in out.lower(), out
        for s in busy:
            s.close()
        time.sleep(0.3)
        assert status_of(raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")) == 200
    finally:
        rec.close()


def curl_connections(urls_base, *flags):
    """Eight requests over ~2.3 s on one curl (which reuses its connection when it can); all
    must succeed; returns how many connections curl opened."""
    import subprocess
    urls = [a for _ in range(8) for a in ("-o", "/dev/null", f"{urls_base}/healthz")]
    out = subprocess.run(["curl", "-sS", "--rate", "3/s", *flags, "-w", "%{http_code} %{num_connects}\\n", *urls],
                         capture_output=True, text=True, timeout=30).stdout.split()
    codes, counts = out[0::2], [int(n) for n in out[1::2]]
    assert codes == ["200"] * 8, out
    return sum(counts)


def test_max_connection_duration_recycles_http1_connections(tollgate):
    """`frontendPolicies.http.maxConnectionDuration`: a busy keep-alive connection is closed
    gracefully (`Connection: close` after the request in progress) once it is that old; no
    request fails and the client opens a new one. Without the setting one connection serves
    them all. (HTTP/2's GOAWAY is tested over TLS in test_tls_listeners: curl 7.88 cannot
    reuse an h2c prior-knowledge connection at all.)"""
    base = serve_listeners(tollgate, HEALTH, settings="frontendPolicies:\n  http:\n    maxConnectionDuration: 1s\n")
    assert curl_connections(base) >= 2
    assert curl_connections(serve_listeners(tollgate, HEALTH)) == 1


def test_frontend_tcp_keepalives_reach_client_sockets(tollgate):
    """`frontendPolicies.tcp.keepalives`: the kernel probes idle client connections with the
    configured timing (seen in `ss`), so a client that vanished without a FIN is noticed."""
    import subprocess

    def keepalive_timers(port):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        s.recv(1000)
        out = subprocess.run(["ss", "-tno", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, timeout=10).stdout
        s.close()
        return [line for line in out.splitlines() if "timer:(keepalive" in line]

    base = serve_listeners(tollgate, HEALTH, settings="frontendPolicies:\n  tcp:\n    keepalives: {time: 45s, interval: 5s, retries: 3}\n")
    timers = keepalive_timers(port_of(base))
    assert len(timers) == 1 and ("44sec" in timers[0] or "45sec" in timers[0]), timers
    assert keepalive_timers(port_of(serve_listeners(tollgate, HEALTH))) == []
    off = serve_listeners(tollgate, HEALTH, settings="frontendPolicies:\n  tcp:\n    keepalives: {enabled: false}\n")
    assert keepalive_timers(port_of(off)) == []
