"""`config.backend`: upstream connections are pooled for `poolIdleTimeout` and probed with TCP
keepalive (`keepalives`, on by default as in agentgateway), seen from the kernel with `ss`."""
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from conftest import BIN, free_port, needs_netns


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


def start_with_settings(tollgate, upstream_host, settings, name):
    port = free_port()
    tollgate.start(f"""config:
{settings}
binds:
- port: {port}
  listeners:
  - routes:
    - backends: [{{host: "{upstream_host}"}}]
""", ports=[port], name=name)
    return f"http://127.0.0.1:{port}"


class FamilyServer:
    """The same port on 127.0.0.1 and ::1, each answering with its family's name."""

    def __init__(self):
        class V6Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        def handler(family):
            class Answer(BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200)
                    self.send_header("content-length", "2")
                    self.end_headers()
                    self.wfile.write(family.encode())

                def log_message(self, *args):
                    pass
            return Answer

        self.port = free_port()
        self.servers = [ThreadingHTTPServer(("127.0.0.1", self.port), handler("v4")),
                        V6Server(("::1", self.port), handler("v6"))]
        for s in self.servers:
            threading.Thread(target=s.serve_forever, daemon=True).start()

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


def test_dns_lookup_family_decides_which_addresses_are_dialled(tollgate):
    """`localhost` resolves to 127.0.0.1 (the hosts file) and ::1 (RFC 6761's loopback, as
    agentgateway's resolver gives it): `V6Only` dials ::1; `V4Only`, `V4Preferred`, `All` and
    `Auto` without IPv6 dial 127.0.0.1; an address written as a literal is dialled as written."""
    up = FamilyServer()
    try:
        base = start_with_settings(tollgate, f"localhost:{up.port}", "  dns: {lookupFamily: V6Only}", "v6.yaml")
        assert requests.get(f"{base}/x", timeout=5).text == "v6"
        for i, settings in enumerate(["  dns: {lookupFamily: V4Only}", "  dns: {lookupFamily: V4Preferred}",
                                      "  dns: {lookupFamily: All}", "  enableIpv6: false\n  dns: {lookupFamily: Auto}"]):
            base = start_with_settings(tollgate, f"localhost:{up.port}", settings, f"v4-{i}.yaml")
            assert requests.get(f"{base}/x", timeout=5).text == "v4", settings
        base = start_with_settings(tollgate, f"127.0.0.1:{up.port}", "  dns: {lookupFamily: V6Only}", "literal.yaml")
        assert requests.get(f"{base}/x", timeout=5).text == "v4"
        base = start_with_settings(tollgate, f"[::1]:{up.port}", "  dns: {lookupFamily: V4Only}", "literal6.yaml")
        assert requests.get(f"{base}/x", timeout=5).text == "v6"
    finally:
        up.close()


@needs_netns
def test_an_unresolvable_name_gets_502_naming_the_lookup(tollgate):
    """`no-such-host.invalid` resolves to nothing: 502 naming the lookup, at once."""
    base = start_with_settings(tollgate, "no-such-host.invalid:80", "  dns: {lookupFamily: V4Only}", "none.yaml")
    r = requests.get(f"{base}/x", timeout=15)
    assert r.status_code == 502, r.text
    assert "resolve" in r.text


def validate(workdir, text):
    cfg = workdir / "check.yaml"
    cfg.write_text(text)
    p = subprocess.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=20)
    return p.returncode, p.stdout + p.stderr


def test_dns_settings_tollgate_cannot_honour_are_refused(workdir):
    code, out = validate(workdir, "config:\n  dns: {edns0: true}\nbinds: []\n")
    assert code != 0 and "edns0" in out and "not support" in out, out
    code, out = validate(workdir, "config:\n  dns: {lookupFamily: V5Only}\nbinds: []\n")
    assert code != 0 and "lookupFamily" in out and "V4Only" in out, out


def test_a_head_response_ends_at_its_header_and_the_connection_is_reused(tollgate):
    """A HEAD response's Content-Length announces a body that never comes: the gateway must end
    the exchange at the header (it knows the request it wrote was HEAD) and pool the connection."""
    connections = []

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self):
            connections.append(self.client_address)
            super().setup()

        def answer(self, with_body):
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            if with_body:
                self.wfile.write(b"hello")

        def do_HEAD(self):
            self.answer(False)

        def do_GET(self):
            self.answer(True)

        def log_message(self, *args):
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    try:
        base = start(tollgate, upstream.server_address[1])
        started = time.monotonic()
        head = requests.head(f"{base}/x", timeout=5)
        assert head.status_code == 200 and head.headers["content-length"] == "5" and head.content == b""
        assert time.monotonic() - started < 2, "the HEAD exchange waited for a body"
        time.sleep(0.1)  # the connection goes back to the pool just after the client has its answer
        get = requests.get(f"{base}/y", timeout=5)
        assert get.status_code == 200 and get.content == b"hello"
        assert len(connections) == 1, f"the connection after HEAD was not reused: {connections}"
    finally:
        upstream.shutdown()


def test_an_idle_connection_the_upstream_closed_is_closed_at_once_and_not_reused(tollgate):
    """An upstream that closes kept-alive connections after 0.3 s idle (as many servers do, with
    shorter timeouts than the gateway's pool): the gateway closes its end too (no socket left in
    CLOSE-WAIT holding a file descriptor) within a second, and the next request goes over a new
    connection instead of failing on the closed one."""
    connections = []

    class Answer(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 0.3  # the server's keep-alive timeout: it closes an idle connection

        def setup(self):
            connections.append(self.client_address)
            super().setup()

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = upstream.server_address[1]

    def gateway_sockets():
        out = subprocess.run(["ss", "-tn", f"( dport = :{port} )"], capture_output=True, text=True, timeout=10).stdout
        return [line for line in out.splitlines()[1:] if line.strip() and not line.startswith("TIME-WAIT")]

    try:
        base = start(tollgate, port)
        assert requests.get(f"{base}/a", timeout=5).text == "ok"
        assert len(gateway_sockets()) == 1, "the connection is pooled"
        time.sleep(1.0)
        assert gateway_sockets() == [], f"the gateway kept the connection the upstream closed: {gateway_sockets()}"
        assert requests.get(f"{base}/b", timeout=5).text == "ok"
        assert len(connections) == 2
    finally:
        upstream.shutdown()
