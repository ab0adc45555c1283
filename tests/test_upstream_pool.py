"""`config.backend`: upstream connections are pooled for `poolIdleTimeout` and probed with TCP
keepalive (`keepalives`, on by default as in agentgateway), seen from the kernel with `ss`."""
import subprocess
import time

import requests

from conftest import free_port


def upstream_sockets(upstream_port):
    out = subprocess.run(["ss", "-tno", "state", "established", f"( dport = :{upstream_port} )"],
                         capture_output=True, text=True, timeout=10).stdout
    return [line for line in out.splitlines()[1:] if line.strip()]


def start(tollgate, upstream, backend_settings="", name="config.yaml"):
    port = free_port()
    settings = f"config:\n  backend:\n{backend_settings}" if backend_settings else ""
    tollgate.start(f"""{settings}
binds:
- port: {port}
  listeners:
  - routes:
    - backends: [{{host: "127.0.0.1:{upstream}"}}]
""", ports=[port], name=name)
    return f"http://127.0.0.1:{port}"


def test_upstream_keepalive_default_configured_and_off(tollgate, echo_upstreams):
    a, b = echo_upstreams
    base = start(tollgate, a)
    assert requests.get(f"{base}/x", timeout=5).status_code == 200
    socks = upstream_sockets(a)
    assert len(socks) == 1 and "timer:(keepalive,2min5" in socks[0], socks  # 3m by default
    base = start(tollgate, b, "    keepalives: {time: 40s, interval: 5s, retries: 2}\n", name="ka.yaml")
    assert requests.get(f"{base}/x", timeout=5).status_code == 200
    socks = upstream_sockets(b)
    assert len(socks) == 1 and ("timer:(keepalive,39sec" in socks[0] or "timer:(keepalive,40sec" in socks[0]), socks


def test_upstream_keepalive_can_be_turned_off_and_idle_connections_leave_the_pool(tollgate, echo_upstreams):
    a, b = echo_upstreams
    base = start(tollgate, a, "    keepalives: {enabled: false}\n    poolIdleTimeout: 1s\n")
    assert requests.get(f"{base}/x", timeout=5).status_code == 200
    socks = upstream_sockets(a)
    assert len(socks) == 1 and "keepalive" not in socks[0], socks
    time.sleep(2.0)
    assert upstream_sockets(a) == [], "the idle upstream connection outlived poolIdleTimeout"
    base = start(tollgate, b, name="default.yaml")
    assert requests.get(f"{base}/x", timeout=5).status_code == 200
    time.sleep(2.0)
    assert len(upstream_sockets(b)) == 1, "with the default 90 s the connection stays pooled"
