"""`frontendPolicies.proxyProtocol`: behind a load balancer that speaks HAProxy's PROXY
protocol, the client it names is the request's source (CEL `source.address`, the logs);
strict mode closes connections without the header; versions not accepted are refused."""
import json
import socket
import struct
import subprocess
import time

from conftest import free_port
from hostile import closed_by_peer, raw_exchange, status_of

ROUTES = """\
  - routes:
    - policies: {directResponse: {status: 200, body: ok}}
"""


def start(tollgate, proxy, name="config.yaml", listeners=ROUTES):
    port = free_port()
    proc = tollgate.start(f"""\
config:
  logging:
    format: json
    fields:
      add:
        client: source.address
        client_port: source.port
frontendPolicies:
  proxyProtocol: {proxy}
binds:
- port: {port}
  listeners:
{listeners}""", ports=[port], name=name)
    return port, proc


def access_clients(proc, count, timeout=5.0):
    deadline = time.time() + timeout
    while True:
        recs = [json.loads(l) for l in proc.output().splitlines() if l.startswith("{") and '"target":"access"' in l]
        if len(recs) >= count or time.time() > deadline:
            return [(r["client"], r["client_port"]) for r in recs]
        time.sleep(0.05)


GET = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"


def v2_header(src: str, sport: int) -> bytes:
    body = socket.inet_aton(src) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, 80)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body


def test_v2_header_names_the_client_and_strict_mode_requires_it(tollgate):
    port, proc = start(tollgate, "{}")  # agentgateway's defaults: v2, strict
    assert status_of(raw_exchange(port, v2_header("198.51.100.9", 40000) + GET)) == 200
    assert access_clients(proc, 1) == [("198.51.100.9", 40000)]
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(GET)  # no header: closed without an answer
    assert closed_by_peer(s, 2)
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n" + GET)  # v1 is not accepted by default
    assert closed_by_peer(s, 2)
    assert len(access_clients(proc, 2, timeout=0.5)) == 1


def test_v1_optional_mode_and_tls_behind_the_header(tollgate, workdir):
    from tls_helpers import Ca
    port, proc = start(tollgate, "{version: all, mode: optional}")
    assert status_of(raw_exchange(port, b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n" + GET)) == 200
    assert status_of(raw_exchange(port, GET)) == 200  # optional: served, with the socket's peer
    clients = access_clients(proc, 2)
    assert clients[0] == ("203.0.113.7", 5555) and clients[1][0] == "127.0.0.1", clients
    # HTTPS behind the header (curl writes a v1 line before its ClientHello).
    ca = Ca(workdir / "pki")
    crt, key = ca.issue("s", "localhost", dns=["localhost"])
    tls_port, _ = start(tollgate, "{version: v1}", name="tls.yaml", listeners=f"""\
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}}}
    routes:
    - policies: {{directResponse: {{status: 200, body: secure}}}}
""")
    out = subprocess.run(["curl", "-s", "--haproxy-protocol", "--cacert", str(ca.pem), f"https://localhost:{tls_port}/"],
                         capture_output=True, text=True, timeout=10).stdout
    assert out == "secure", out
