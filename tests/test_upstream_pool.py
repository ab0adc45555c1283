"""`config.backend`: upstream connections are pooled for `poolIdleTimeout` and probed with TCP
keepalive (`keepalives`, on by default as in agentgateway), seen from the kernel with `ss`."""
import subprocess
import time

import requests

from conftest import BIN, free_port


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


def test_dns_lookup_family_decides_which_addresses_are_dialled(tollgate, echo_upstreams):
    """`localhost` has only an IPv4 address here: `V6Only` leaves nothing to dial (502 naming
    the setting), `V4Only`, `V4Preferred`, `All` and `Auto` without IPv6 reach it."""
    a, _ = echo_upstreams
    base = start_with_settings(tollgate, f"localhost:{a}", "  dns: {lookupFamily: V6Only}", "v6.yaml")
    r = requests.get(f"{base}/x", timeout=5)
    assert r.status_code == 502, r.text
    assert "resolve" in r.text
    for i, settings in enumerate(["  dns: {lookupFamily: V4Only}", "  dns: {lookupFamily: V4Preferred}",
                                  "  dns: {lookupFamily: All}", "  enableIpv6: false\n  dns: {lookupFamily: Auto}"]):
        base = start_with_settings(tollgate, f"localhost:{a}", settings, f"v4-{i}.yaml")
        assert requests.get(f"{base}/x", timeout=5).status_code == 200, settings
    # An address written as a literal is dialled as written, whatever the family rule.
    base = start_with_settings(tollgate, f"127.0.0.1:{a}", "  dns: {lookupFamily: V6Only}", "literal.yaml")
    assert requests.get(f"{base}/x", timeout=5).status_code == 200


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
