"""The binary's command line on the seed config, and the seed's MCP port CORS preflight."""
import subprocess

import requests

from conftest import BIN, SEED, needs_netns


def run(*args):
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=30)


def test_seed_validates():
    r = run("--validate-only", "-f", str(SEED))
    assert r.returncode == 0, r.stderr


def test_misspelt_key_fails_with_line_and_path(workdir):
    text = SEED.read_text().replace("allowHeaders:", "allowHeader:")
    line = next(i + 1 for i, l in enumerate(text.splitlines()) if "allowHeader:" in l)
    bad = workdir / "bad.yaml"
    bad.write_text(text)
    r = run("--validate-only", "-f", str(bad))
    assert r.returncode != 0
    assert f"bad.yaml:{line}:" in r.stderr, r.stderr
    assert "binds[1].listeners[0].routes[0].policies.cors.allowHeader" in r.stderr, r.stderr


def test_unsupported_agentgateway_field_is_an_error(workdir):
    cfg = workdir / "c.yaml"
    cfg.write_text("binds:\n- port: 1\n  listeners:\n  - routes:\n    - policies:\n        extProc: {host: 'x:1'}\n")
    r = run("--validate-only", "-f", str(cfg))
    assert r.returncode != 0 and "extProc" in r.stderr and "not support" in r.stderr


def test_go_durations_load_and_bad_ones_are_clear_errors(workdir):
    """Durations use Go's grammar, micro sign included; a malformed or overflowing one is
    an error naming the field, never a crash (a multibyte unit once panicked the loader)."""
    cfg = workdir / "d.yaml"
    for value, ok in [("1µs", True), ("1μs", True), ("1h30m0.5s", True), ("1µ", "unknown unit"),
                      ("1é", "unknown unit"), ("2562048h", "overflow"),
                      ("5124095576030431h5124095576030431h", "overflow")]:
        cfg.write_text(f"config:\n  connectionTerminationDeadline: {value}\n")
        r = run("--validate-only", "-f", str(cfg))
        if ok is True:
            assert r.returncode == 0, (value, r.stderr)
        else:
            assert r.returncode == 1, (value, r.returncode, r.stderr)
            assert "connectionTerminationDeadline" in r.stderr and "invalid duration" in r.stderr, r.stderr
            assert ok in r.stderr, (value, r.stderr)  # the reason, not just "invalid"
            assert "panic" not in r.stderr, r.stderr


def test_help_and_version():
    h = run("--help").stdout
    for flag in ("--file", "--validate-only", "--upgrade", "--daemon", "--version"):
        assert flag in h
    assert run("-V").stdout.startswith("tollgate ")


@needs_netns  # the unchanged seed exports traces to `tracing:4317`: a DNS lookup
def test_seed_cors_preflight_answered_locally(tollgate):
    """The unchanged seed config: the preflight is answered by tollgate itself."""
    tollgate.start(SEED.read_text(), ports=[3100, 3101])
    r = requests.options("http://127.0.0.1:3101/mcp", timeout=5, headers={
        "Origin": "http://localhost:6274",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,mcp-protocol-version",
    })
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
    assert r.headers["access-control-allow-headers"] == "mcp-protocol-version,content-type,cache-control"
    assert r.elapsed.total_seconds() < 1
