"""HTTPS, TLS and TCP listeners: server TLS with the SDKs, several certificates on one port by
SNI, client certificates (mTLS) visible to CEL, version and cipher limits, the handshake
deadline, TLS passthrough by SNI, and plain TCP routes."""
import asyncio
import json
import socket
import ssl
import subprocess
import time

import httpx
import openai
import pytest

from conftest import free_port, wait_port
from hostile import closed_by_peer
from tls_helpers import Ca, EchoServer, TlsEchoServer, served_certificate


def one_bind(port: int, listeners: str, settings: str = "") -> str:
    return f"{settings}\nbinds:\n- port: {port}\n  listeners:\n{listeners}"


@pytest.fixture
def pki(workdir):
    return Ca(workdir / "pki")


def test_openai_and_mcp_sdks_over_https(tollgate, workdir, pki, llmock):
    """An HTTPS listener serving an LLM route and an MCP route; both SDKs trust the test CA."""
    from conftest import start_py_mcp
    crt, key = pki.issue("server", "localhost", dns=["localhost"], ips=["127.0.0.1"])
    mcp_port, _, mcp_proc = start_py_mcp(workdir)
    port = free_port()
    tollgate.start(one_bind(port, f"""\
  - name: default
    protocol: HTTPS
    tls: {{cert: {crt}, key: {key}}}
    routes:
    - matches: [{{path: {{pathPrefix: /mcp}}}}]
      backends:
      - mcp:
          targets:
          - name: py
            mcp: {{host: "http://127.0.0.1:{mcp_port}/mcp"}}
    - backends:
      - ai:
          name: mock
          hostOverride: 127.0.0.1:{llmock.port}
          provider: {{openAI: {{model: mock-model}}}}
"""), ports=[port])
    client = openai.OpenAI(base_url=f"https://localhost:{port}/v1", api_key="k", max_retries=0,
                           http_client=httpx.Client(verify=_ctx(pki.pem)))
    r = client.chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content and r.model
    # Plain HTTP to the HTTPS port is not served.
    with pytest.raises(Exception):
        httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=3)

    async def mcp():
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client
        async with httpx2.AsyncClient(verify=_ctx(pki.pem)) as http:
            async with Client(streamable_http_client(f"https://localhost:{port}/mcp", http_client=http)) as c:
                tools = await c.list_tools()
                return [t.name for t in tools.tools]
    try:
        names = asyncio.run(mcp())
    finally:
        mcp_proc.stop()
    assert "py_echo" in names or "echo" in names, names


def test_two_hostnames_on_one_port_get_their_own_certificates(tollgate, pki):
    a_crt, a_key = pki.issue("a", "a.test", dns=["a.test"])
    b_crt, b_key = pki.issue("b", "b.test", dns=["b.test"])
    fallback_crt, fallback_key = pki.issue("any", "fallback", dns=["localhost"])
    port = free_port()
    listeners = ""
    for host, crt, key in (("a.test", a_crt, a_key), ("b.test", b_crt, b_key), (None, fallback_crt, fallback_key)):
        hostname = f"\n    hostname: {host}" if host else ""
        listeners += f"""\
  - protocol: HTTPS{hostname}
    tls: {{cert: {crt}, key: {key}}}
    routes:
    - policies: {{directResponse: {{status: 200, body: "listener {host or 'fallback'}"}}}}
"""
    tollgate.start(one_bind(port, listeners), ports=[port])
    assert served_certificate(port, "a.test", pki.pem)[0] == "a.test"
    assert served_certificate(port, "b.test", pki.pem)[0] == "b.test"
    assert served_certificate(port, "localhost", pki.pem)[0] == "fallback"
    # The listener chosen by SNI serves the request, whatever Host says.
    for sni, body in (("a.test", "listener a.test"), ("b.test", "listener b.test")):
        out = subprocess.run(["curl", "-s", "--cacert", str(pki.pem), "--resolve", f"{sni}:{port}:127.0.0.1",
                              "-H", "Host: b.test" if sni == "a.test" else "Host: a.test",
                              "-w", " %{http_version}", f"https://{sni}:{port}/"], capture_output=True, text=True, timeout=10).stdout
        assert out == f"{body} 2", out  # ALPN chose HTTP/2
    out = subprocess.run(["curl", "-s", "--http1.1", "--cacert", str(pki.pem), "--resolve", f"a.test:{port}:127.0.0.1",
                          "-w", " %{http_version}", f"https://a.test:{port}/"], capture_output=True, text=True, timeout=10).stdout
    assert out == "listener a.test 1.1", out


def test_mtls_listener_requires_a_client_certificate_and_shows_it_to_cel(tollgate, workdir, pki):
    crt, key = pki.issue("server", "localhost", dns=["localhost"])
    client_ca = Ca(workdir / "clients", "client CA")
    good = client_ca.issue("alice", "alice", dns=["alice.example"], uris=["spiffe://td/ns/a/sa/alice"], client=True, org="Acme")
    stranger = pki.issue("mallory", "mallory", client=True)  # signed by a CA the listener does not trust
    port = free_port()
    settings = """\
config:
  logging:
    format: json
    fields:
      add:
        client_cn: source.subjectCn
        client_sans: source.subjectAltNames
        client_issuer: source.issuer
"""
    proc = tollgate.start(one_bind(port, f"""\
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}, root: {client_ca.pem}}}
    routes:
    - policies: {{directResponse: {{status: 200, body: welcome}}}}
""", settings), ports=[port])
    cn, *_ = served_certificate(port, "localhost", pki.pem, client=good)
    assert cn == "localhost"
    r = httpx.get(f"https://localhost:{port}/", verify=_ctx(pki.pem, good), timeout=5)
    assert r.status_code == 200 and r.text == "welcome"
    for who in (None, stranger):
        with pytest.raises((ssl.SSLError, OSError, httpx.HTTPError)):
            r = httpx.get(f"https://localhost:{port}/", verify=_ctx(pki.pem, who), timeout=5)
    deadline = time.time() + 5
    while time.time() < deadline:
        records = [json.loads(l) for l in proc.output().splitlines() if l.startswith("{") and '"target":"access"' in l]
        if records:
            break
        time.sleep(0.05)
    rec = records[0]
    assert rec["client_cn"] == "alice"
    assert rec["client_sans"] == ["alice.example", "spiffe://td/ns/a/sa/alice"]
    assert "client CA" in rec["client_issuer"]
    assert len(records) == 1, "refused clients never reached a route"


def _ctx(ca, client=None):
    ctx = ssl.create_default_context(cafile=str(ca))
    if client:
        ctx.load_cert_chain(str(client[0]), str(client[1]))
    return ctx


def s_client(port: int, *flags: str) -> str:
    p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", *flags],
                       input="", capture_output=True, text=True, timeout=10)
    return p.stdout + p.stderr


def test_tls_versions_and_cipher_suites(tollgate, pki):
    crt, key = pki.issue("server", "localhost", dns=["localhost"])
    p13, p12 = free_port(), free_port()
    tollgate.start(f"""\
binds:
- port: {p13}
  listeners:
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}, minTLSVersion: "1.3", cipherSuites: [TLS13_CHACHA20_POLY1305_SHA256]}}
    routes: [{{policies: {{directResponse: {{status: 200, body: ok}}}}}}]
- port: {p12}
  listeners:
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}, maxTlsVersion: TLS_V1_2}}
    routes: [{{policies: {{directResponse: {{status: 200, body: ok}}}}}}]
""", ports=[p13, p12])
    assert "New, TLSv1.3, Cipher is TLS_CHACHA20_POLY1305_SHA256" in s_client(p13, "-tls1_3")
    refused = s_client(p13, "-tls1_2")
    assert "alert protocol version" in refused and "Cipher is (NONE)" in refused, refused
    _, version, cipher, _ = served_certificate(p13, "localhost", pki.pem)
    assert (version, cipher) == ("TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256")
    _, version, _, _ = served_certificate(p12, "localhost", pki.pem)
    assert version == "TLSv1.2"
    assert "New, TLSv1.2" in s_client(p12)
    refused = s_client(p12, "-tls1_3")
    assert "alert protocol version" in refused and "Cipher is (NONE)" in refused, refused


def test_handshake_timeout_closes_silent_and_stalled_clients(tollgate, pki):
    crt, key = pki.issue("server", "localhost", dns=["localhost"])
    port = free_port()
    tollgate.start(one_bind(port, f"""\
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}}}
    routes: [{{policies: {{directResponse: {{status: 200, body: ok}}}}}}]
""", "frontendPolicies:\n  tls:\n    handshakeTimeout: 1s\n"), ports=[port])
    silent = socket.create_connection(("127.0.0.1", port))
    stalled = socket.create_connection(("127.0.0.1", port))
    stalled.sendall(bytes([0x16, 3, 1, 0, 200, 1, 0]))  # a record header promising more
    start = time.monotonic()
    for s in (silent, stalled):
        assert closed_by_peer(s, 3), "a client that never finished its handshake was kept"
    assert time.monotonic() - start < 2.5
    garbage = socket.create_connection(("127.0.0.1", port))
    garbage.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert closed_by_peer(garbage, 2)
    assert served_certificate(port, "localhost", pki.pem)[0] == "localhost"


def test_tls_passthrough_by_sni_and_plain_tcp_routes(tollgate, workdir, pki):
    a = TlsEchoServer("upstream-a", *pki.issue("ua", "a.test", dns=["a.test"]))
    b = TlsEchoServer("upstream-b", *pki.issue("ub", "b.test", dns=["b.test"]))
    echo = EchoServer()
    tls_port, tcp_port = free_port(), free_port()
    tollgate.start(f"""\
binds:
- port: {tls_port}
  listeners:
  - name: passthrough
    protocol: TLS
    tcpRoutes:
    - name: to-a
      hostnames: [a.test]
      backends: [{{host: "127.0.0.1:{a.port}"}}]
    - name: to-b
      hostnames: ["*.b.test", b.test]
      backends: [{{host: "127.0.0.1:{b.port}"}}]
- port: {tcp_port}
  listeners:
  - protocol: TCP
    tcpRoutes:
    - backends: [{{host: "127.0.0.1:{echo.port}"}}]
""", ports=[tls_port, tcp_port])
    try:
        for sni, name in (("a.test", "upstream-a"), ("b.test", "upstream-b")):
            ctx = ssl.create_default_context(cafile=str(pki.pem))
            with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname=sni) as s:  # the upstream's own certificate
                    s.sendall(b"hello\n")
                    assert s.recv(100) == f"{name}: hello\n".encode()
        assert a.sni_seen == ["a.test"] and b.sni_seen == ["b.test"]
        # No route for this name: the connection is closed without reaching an upstream.
        with socket.create_connection(("127.0.0.1", tls_port), timeout=5) as raw:
            with pytest.raises((ssl.SSLError, OSError)):
                ssl.create_default_context(cafile=str(pki.pem)).wrap_socket(raw, server_hostname="c.test")
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=5) as s:
            payload = bytes(range(256)) * 4096
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += s.recv(65536)
            assert got == payload
    finally:
        a.close(), b.close(), echo.close()


@pytest.mark.parametrize("listener, message", [
    ("  - protocol: HTTPS\n    routes: []\n", "needs `tls`"),
    ("  - protocol: HTTP\n", "needs `routes`"),
    ("  - protocol: TCP\n    routes: []\n", "takes `tcpRoutes`"),
    ("  - protocol: HTTPS\n    tls: {cert: nowhere/cert.pem, key: nowhere/key.pem}\n    routes: []\n", "nowhere/cert.pem"),
    ("  - protocol: HTTPS\n    tls: {cert: a, key: b, mode: dynamicCa}\n    routes: []\n", "not supported yet"),
    ("  - protocol: HTTPS\n    tls: {cert: a, key: b, minTLSVersion: TLS_V1_1}\n    routes: []\n", "only TLS 1.2 and 1.3"),
    ("  - protocol: HBONE\n", "not supported"),
])
def test_listener_config_errors_are_named(tollgate, workdir, listener, message):
    import subprocess as sp
    from conftest import BIN
    cfg = workdir / "bad.yaml"
    cfg.write_text(one_bind(1, listener))
    p = sp.run([str(BIN), "-f", str(cfg), "--validate-only"], capture_output=True, text=True, timeout=20)
    assert p.returncode != 0 and message in p.stderr + p.stdout, p.stderr + p.stdout


def test_certificates_reload_with_the_config_file(tollgate, workdir, pki):
    """A new certificate takes effect on reload; a broken one is refused and the old one
    keeps serving."""
    import os
    old_crt, old_key = pki.issue("old", "old-cert", dns=["localhost"])
    new_crt, new_key = pki.issue("new", "new-cert", dns=["localhost"])
    port = free_port()

    def cfg(crt, key):
        return one_bind(port, f"""\
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}}}
    routes: [{{policies: {{directResponse: {{status: 200, body: ok}}}}}}]
""")

    proc = tollgate.start(cfg(old_crt, old_key), ports=[port])
    path = workdir / "config.yaml"
    assert served_certificate(port, "localhost", pki.pem)[0] == "old-cert"

    def publish(text):
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)

    def served_becomes(cn, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if served_certificate(port, "localhost", pki.pem)[0] == cn:
                return True
            time.sleep(0.1)
        return False

    publish(cfg(new_crt, old_key))  # key of another certificate: refused
    time.sleep(1.0)
    assert served_certificate(port, "localhost", pki.pem)[0] == "old-cert"
    assert "do not belong together" in proc.output()
    publish(cfg(new_crt, new_key))
    assert served_becomes("new-cert")


def test_frontend_tls_defaults_apply_to_every_tls_listener(tollgate, pki):
    """`frontendPolicies.tls`: ALPN, versions, suites and key exchange groups for listeners that
    do not set their own (a listener's own setting wins)."""
    crt, key = pki.issue("server", "localhost", dns=["localhost"])
    plain, own = free_port(), free_port()
    tollgate.start(f"""\
frontendPolicies:
  tls:
    alpn: [[104, 116, 116, 112, 47, 49, 46, 49]]  # http/1.1 only
    minVersion: TLS_V1_3
    cipherSuites: [TLS13_AES_128_GCM_SHA256]
    keyExchangeGroups: [P-384]
binds:
- port: {plain}
  listeners:
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}}}
    routes: [{{policies: {{directResponse: {{status: 200, body: ok}}}}}}]
- port: {own}
  listeners:
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}, minTLSVersion: TLS_V1_2, maxTLSVersion: TLS_V1_2, keyExchangeGroups: [X25519],
           cipherSuites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]}}
    routes: [{{policies: {{directResponse: {{status: 200, body: ok}}}}}}]
""", ports=[plain, own])
    _, version, cipher, alpn = served_certificate(plain, "localhost", pki.pem)
    assert (version, cipher) == ("TLSv1.3", "TLS_AES_128_GCM_SHA256")
    out = subprocess.run(["curl", "-s", "--cacert", str(pki.pem), "--resolve", f"localhost:{plain}:127.0.0.1",
                          "-w", " %{http_version}", f"https://localhost:{plain}/"], capture_output=True, text=True, timeout=10).stdout
    assert out == "ok 1.1", out  # curl offered h2; only http/1.1 is on offer
    assert "Server Temp Key: ECDH, secp384r1" in s_client(plain)
    assert "alert protocol version" in s_client(plain, "-tls1_2")
    _, version, cipher, _ = served_certificate(own, "localhost", pki.pem)
    assert (version, cipher) == ("TLSv1.2", "ECDHE-ECDSA-AES256-GCM-SHA384")
    assert "Server Temp Key: X25519" in s_client(own)


def test_max_connection_duration_sends_http2_goaway(tollgate, pki):
    """`maxConnectionDuration` on an HTTP/2 connection (ALPN h2): GOAWAY once it is that old,
    streams in flight finish, the client reconnects; no request fails."""
    from test_hardening_connections import curl_connections
    crt, key = pki.issue("server", "localhost", dns=["localhost"])
    ports = free_port(), free_port()
    listener = f"""\
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}}}
    routes:
    - matches: [{{path: {{exact: /healthz}}}}]
      policies: {{directResponse: {{status: 200, body: ok}}}}
"""
    tollgate.start(one_bind(ports[0], listener, "frontendPolicies:\n  http:\n    maxConnectionDuration: 1s\n"), ports=[ports[0]])
    tollgate.start(one_bind(ports[1], listener), ports=[ports[1]], name="plain.yaml")
    flags = ("--cacert", str(pki.pem), "--http2")
    assert curl_connections(f"https://localhost:{ports[0]}", *flags) >= 2
    assert curl_connections(f"https://localhost:{ports[1]}", *flags) == 1


def test_connections_stuck_before_their_handshake_make_room(tollgate, pki):
    """With every place taken by connections that never finish a TLS handshake, a real client
    still gets in: a connection waiting for its ClientHello or handshake may be evicted, like
    one whose HTTP head is still arriving."""
    crt, key = pki.issue("server", "localhost", dns=["localhost"])
    port = free_port()
    tollgate.start(one_bind(port, f"""\
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}}}
    routes: [{{policies: {{directResponse: {{status: 200, body: ok}}}}}}]
"""), ports=[port], args=["--max-connections", "2"])
    stuck = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    stuck[1].sendall(bytes([0x16, 3, 1, 0, 200]))  # a ClientHello that never comes
    time.sleep(0.3)
    for _ in range(3):
        assert served_certificate(port, "localhost", pki.pem)[0] == "localhost"
    assert sum(closed_by_peer(s, 1) for s in stuck) >= 1


def _handshake_with_split_client_hello(port, server_name, ca, split_at=40):
    """A TLS 1.3 handshake whose ClientHello is cut across two TLS records (legal, and what a
    client may do to hide its server name from a reader of the first record); returns the
    connected SSLObject and socket, or raises when the server closes."""
    ctx = ssl.create_default_context(cafile=str(ca))
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    hello = outgoing.read()
    assert hello[0] == 0x16
    body = hello[5:]
    records = b"".join(bytes([0x16, 3, 1]) + len(part).to_bytes(2, "big") + part for part in (body[:split_at], body[split_at:]))
    sock.sendall(records)
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server during the handshake")
        incoming.write(data)
        try:
            tls.do_handshake()
            sock.sendall(outgoing.read())
            return tls, sock, incoming, outgoing
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())


def _request_over(conn, request: bytes, until: bytes = None) -> bytes:
    """Sends `request` over a connection from `_handshake_with_split_client_hello` and reads
    the answer until `until` (or the end, or a TLS error)."""
    tls, sock, incoming, outgoing = conn
    tls.write(request)
    sock.sendall(outgoing.read())
    got = b""
    while until is None or not got.endswith(until):
        data = sock.recv(65536)
        if not data:
            break
        incoming.write(data)
        # One recv may carry several TLS records (the head and the body): read them all.
        try:
            while chunk := tls.read(65536):
                got += chunk
        except ssl.SSLWantReadError:
            continue
        except (ssl.SSLError, ssl.SSLZeroReturnError):
            break
    sock.close()
    return got


def test_a_split_client_hello_cannot_skip_the_mtls_listener(tollgate, workdir, pki):
    """The server name read from the ClientHello's first record picks the listener; one hidden
    in a later record must not make the request land on an mTLS listener whose client
    certificate check the handshake skipped."""
    crt, key = pki.issue("server", "secure.test", dns=["secure.test", "localhost"])
    client_ca = Ca(workdir / "clients", "client CA")
    port = free_port()
    tollgate.start(one_bind(port, f"""\
  - protocol: HTTPS
    hostname: secure.test
    tls: {{cert: {crt}, key: {key}, root: {client_ca.pem}}}
    routes: [{{policies: {{directResponse: {{status: 200, body: secret}}}}}}]
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}}}
    routes: [{{policies: {{directResponse: {{status: 200, body: public}}}}}}]
"""), ports=[port])
    # Unsplit, the mTLS listener refuses a client without a certificate.
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with _ctx(pki.pem).wrap_socket(raw, server_hostname="secure.test") as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: secure.test\r\n\r\n")
                assert b"secret" not in s.recv(1000)
    got = b""
    try:
        conn = _handshake_with_split_client_hello(port, "secure.test", pki.pem)
        got = _request_over(conn, b"GET / HTTP/1.1\r\nHost: secure.test\r\nConnection: close\r\n\r\n")
    except (ConnectionError, OSError, ssl.SSLError):
        pass
    assert b"secret" not in got, got


def test_a_split_client_hello_is_served_by_the_listener_it_names(tollgate, pki):
    crt, key = pki.issue("server", "localhost", dns=["localhost", "other.test"])
    port = free_port()
    tollgate.start(one_bind(port, f"""\
  - protocol: HTTPS
    hostname: other.test
    tls: {{cert: {crt}, key: {key}}}
    routes: [{{policies: {{directResponse: {{status: 200, body: other}}}}}}]
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}}}
    routes: [{{policies: {{directResponse: {{status: 200, body: public}}}}}}]
"""), ports=[port])
    for name, body in (("other.test", b"other"), ("localhost", b"public")):
        conn = _handshake_with_split_client_hello(port, name, pki.pem, split_at=7)
        got = _request_over(conn, f"GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode(), body)
        assert got.startswith(b"HTTP/1.1 200") and got.endswith(body), got


def test_a_reload_that_tightens_a_listener_does_not_keep_serving_old_connections(tollgate, workdir, pki):
    """A connection accepted before a reload added client-certificate checks to its listener
    gets 421 Misdirected Request, so the client reconnects and meets the new rule."""
    import os
    import requests
    crt, key = pki.issue("server", "localhost", dns=["localhost"])
    client_ca = Ca(workdir / "clients", "client CA")
    port = free_port()

    def cfg(extra=""):
        return one_bind(port, f"""\
  - protocol: HTTPS
    tls: {{cert: {crt}, key: {key}{extra}}}
    routes: [{{policies: {{directResponse: {{status: 200, body: ok}}}}}}]
""")

    proc = tollgate.start(cfg(), ports=[port])
    s = requests.Session()
    assert s.get(f"https://localhost:{port}/", verify=str(pki.pem), timeout=5).text == "ok"
    path = workdir / "config.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(cfg(f", root: {client_ca.pem}"))
    os.replace(tmp, path)
    deadline = time.time() + 5
    while "config reloaded" not in proc.output() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    r = s.get(f"https://localhost:{port}/", verify=str(pki.pem), timeout=5)  # the kept-alive connection
    assert r.status_code == 421, (r.status_code, r.text)
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.get(f"https://localhost:{port}/", verify=str(pki.pem), timeout=5)


def test_tcp_route_weights_and_upstream_keepalive(tollgate, pki):
    """A TCP route's backend `weight` (0 = never chosen) and `config.backend.keepalives` on the
    route's upstream sockets."""
    never = TlsEchoServer("never", *pki.issue("n", "a.test", dns=["a.test"]))
    always = TlsEchoServer("always", *pki.issue("y", "a.test", dns=["a.test"]))
    port = free_port()
    tollgate.start(f"""\
config:
  backend:
    keepalives: {{time: 41s}}
binds:
- port: {port}
  listeners:
  - protocol: TLS
    tcpRoutes:
    - backends:
      - {{host: "127.0.0.1:{never.port}", weight: 0}}
      - {{host: "127.0.0.1:{always.port}", weight: 1}}
""", ports=[port])
    try:
        ctx = ssl.create_default_context(cafile=str(pki.pem))
        for _ in range(4):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                    s.sendall(b"hi\n")
                    assert s.recv(100) == b"always: hi\n"
                    out = subprocess.run(["ss", "-tno", "state", "established", f"( dport = :{always.port} )"],
                                         capture_output=True, text=True, timeout=10).stdout
                    assert "timer:(keepalive,40sec" in out or "timer:(keepalive,41sec" in out, out
        assert never.sni_seen == []
    finally:
        never.close(), always.close()
