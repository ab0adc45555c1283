"""Test harness: starts the real tollgate binary and real upstreams on 127.0.0.1.

Every server here listens on loopback only. Ports come from the OS, except the seed
config's fixed 3100/3101, so tests that use the seed run one at a time (the suite is
sequential).
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("TOLLGATE_BIN", ROOT / "target" / "debug" / "tollgate"))
SEED = ROOT / "conf" / "seed.yaml"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0, proc=None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited early with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


class Proc:
    """A child process with its output in a file; stopped at teardown."""

    def __init__(self, args, log: Path, env=None, cwd=None, preexec_fn=None):
        self.log_path = log
        self.log_file = open(log, "wb")
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd, start_new_session=True, preexec_fn=preexec_fn)

    def output(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout=15) -> float:
        """SIGTERM (the graceful drain), then wait for a clean exit; returns the seconds it took."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        assert self.proc.returncode == 0, f"exit status {self.proc.returncode}"
        return time.monotonic() - start

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGINT)
                self.proc.wait(timeout=5)
            except (subprocess.TimeoutExpired, ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log_file.close()


@pytest.fixture
def workdir():
    d = Path(tempfile.mkdtemp(prefix="tollgate-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Tollgate:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs = []

    def start(self, config_text: str, ports, name="config.yaml", extra_env=None, args=(), nofile=None, cwd=None) -> Proc:
        """Starts tollgate on `config_text`; `args` are extra command-line flags, `nofile` an
        open-file limit (soft and hard) for the process, `cwd` its working directory (relative
        paths in the config resolve against it)."""
        cfg = self.workdir / name
        cfg.write_text(config_text)
        env = dict(os.environ, RUST_LOG=os.environ.get("TOLLGATE_TEST_LOG", "info"))
        env.update(extra_env or {})
        limit = None
        if nofile:
            import resource
            limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        p = Proc([str(BIN), "-f", str(cfg), "--runtime-dir", str(self.workdir / "run"), *args],
                 self.workdir / f"{name}.log", env=env, preexec_fn=limit, cwd=cwd)
        self.procs.append(p)
        for port in ports:
            wait_port(port, proc=p.proc)
        return p

    def stop(self):
        for p in self.procs:
            p.stop()


@pytest.fixture
def tollgate(workdir):
    t = Tollgate(workdir)
    yield t
    t.stop()


class Llmock:
    def __init__(self, port: int, proc: Proc):
        self.port = port
        self.proc = proc
        self.base = f"http://127.0.0.1:{port}"

    def journal(self):
        return requests.get(f"{self.base}/_llmock/requests", timeout=5).json()["requests"]

    def scenario(self, behaviors):
        requests.post(f"{self.base}/_llmock/reset", timeout=5)
        r = requests.post(f"{self.base}/_llmock/scenario", json={"behaviors": behaviors}, timeout=5)
        r.raise_for_status()


@pytest.fixture
def llmock(workdir):
    port = free_port()
    p = Proc([str(VENV_BIN / "llmock"), "serve", "--host", "127.0.0.1", "--port", str(port),
              "--log-level", "warning", "--response-style", "hello", "--stream-chunk-delay-ms", "20"],
             workdir / "llmock.log")
    wait_port(port, proc=p.proc)
    yield Llmock(port, p)
    p.stop()


def make_tls(workdir: Path, name: str):
    """A test CA and a leaf certificate for `name` signed by it (rustls rejects a CA as leaf)."""
    ca_key, ca_crt = workdir / "ca.key", workdir / "ca.pem"
    key, csr, crt = workdir / "leaf.key", workdir / "leaf.csr", workdir / "leaf.pem"
    ext = workdir / "leaf.ext"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tollgate test CA",
        "-keyout", str(ca_key), "-out", str(ca_crt))
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr))
    ext.write_text(f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-days", "2", "-extfile", str(ext), "-out", str(crt))
    return ca_crt, crt, key


class Nginx:
    def __init__(self, port, proc, access_log: Path):
        self.port = port
        self.proc = proc
        self.access_log = access_log

    def entries(self):
        """The access log's lines. nginx writes a line just after it sent the response, so a
        client can be faster than the log: wait until the log is non-empty and stops growing."""
        read = lambda: [json.loads(l) for l in self.access_log.read_text().splitlines() if l.strip()]
        deadline = time.time() + 3
        last = read()
        while time.time() < deadline:
            time.sleep(0.1)
            now = read()
            if now and len(now) == len(last):
                return now
            last = now
        return last


@pytest.fixture
def provider_front(workdir, llmock):
    """nginx terminating TLS as dashscope.aliyuncs.com and forwarding /compatible-mode/v1/ to llmock's /v1/."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    ca, crt, key = make_tls(workdir, "dashscope.aliyuncs.com")
    port = free_port()
    ng = workdir / "nginx"
    ng.mkdir()
    access = ng / "access.log"
    conf = ng / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {ng}/nginx.pid;
error_log {ng}/error.log warn;
events {{ worker_connections 256; }}
http {{
  client_body_temp_path {ng}/body; proxy_temp_path {ng}/proxy; fastcgi_temp_path {ng}/fcgi;
  uwsgi_temp_path {ng}/uwsgi; scgi_temp_path {ng}/scgi;
  client_max_body_size 16m;
  log_format probe escape=json '{{"sni":"$ssl_server_name","host":"$http_host","auth":"$http_authorization",'
                               '"uri":"$request_uri","status":"$status","te":"$http_transfer_encoding","length":"$request_length",'
                               '"traceparent":"$http_traceparent"}}';
  server {{
    listen 127.0.0.1:{port} ssl;
    server_name dashscope.aliyuncs.com;
    ssl_certificate {crt};
    ssl_certificate_key {key};
    access_log {access} probe;
    location /compatible-mode/v1/ {{
      proxy_pass http://127.0.0.1:{llmock.port}/v1/;
      proxy_http_version 1.1;
      proxy_buffering off;
    }}
  }}
}}
""")
    p = Proc([nginx, "-c", str(conf), "-p", str(ng)], workdir / "nginx.out")
    wait_port(port, proc=p.proc)
    yield Nginx(port, p, access), ca
    p.stop()


def seed_with_local_hosts(provider_port: int, ca: Path, mcp_port: int = 9, otlp_port: int = 9, otlp_http: bool = False) -> str:
    """The seed config with only its hosts pointed at 127.0.0.1 (and the test CA as TLS root)."""
    text = SEED.read_text()
    replaced = (text.replace("hostOverride: dashscope.aliyuncs.com:443", f"hostOverride: 127.0.0.1:{provider_port}")
                .replace("backendTLS: {}", f"backendTLS: {{root: {ca}}}")
                .replace("http://192.168.1.68:8123/api/mcp", f"http://127.0.0.1:{mcp_port}/api/mcp")
                .replace("http://tracing:4317", f"http://127.0.0.1:{otlp_port}"))
    assert replaced.count("127.0.0.1") == text.count("127.0.0.1") + 3, "seed layout changed; update the test's host replacement"
    if otlp_http:
        replaced = replaced.replace("    # otlpProtocol: http\n", "    otlpProtocol: http\n")
        assert "    otlpProtocol: http\n" in replaced
    return replaced


@pytest.fixture
def echo_upstreams(workdir):
    """Two nginx servers that answer with what they received (path, Host, a few headers) as JSON."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    ports = [free_port(), free_port()]
    ng = workdir / "echo"
    ng.mkdir()
    servers = "".join(f"""
  server {{
    listen 127.0.0.1:{port};
    default_type application/json;
    location / {{ return 200 '{{"server":{i},"uri":"$request_uri","host":"$http_host","added":"$http_x_added","set":"$http_x_set","dropped":"$http_x_drop","tenant":"$http_x_tenant","auth":"$http_authorization","cookie":"$http_cookie","authz_user":"$http_x_authz_user","authz_mode":"$http_x_authz_mode","remove_me":"$http_x_remove_me"}}'; }}
  }}""" for i, port in enumerate(ports))
    conf = ng / "nginx.conf"
    conf.write_text(f"""
daemon off; master_process off; worker_processes 1; pid {ng}/nginx.pid; error_log {ng}/error.log warn;
events {{ worker_connections 128; }}
http {{
  access_log off; client_body_temp_path {ng}/b; proxy_temp_path {ng}/p; fastcgi_temp_path {ng}/f;
  uwsgi_temp_path {ng}/u; scgi_temp_path {ng}/s;{servers}
}}
""")
    p = Proc([nginx, "-c", str(conf), "-p", str(ng)], workdir / "echo.out")
    for port in ports:
        wait_port(port, proc=p.proc)
    yield ports
    p.stop()


def serve_listeners(tollgate: "Tollgate", listeners: str, settings: str = "", **start) -> str:
    """Starts tollgate with one bind on a free port holding `listeners` (YAML list items,
    indented two spaces); returns the base URL. `start` goes to `Tollgate.start`."""
    port = free_port()
    config = f"{settings}\nbinds:\n- port: {port}\n  listeners:\n{listeners}"
    tollgate.start(config, ports=[port], **start)
    return f"http://127.0.0.1:{port}"


def post_expecting_continue(port: int, path: str, body: bytes) -> bytes:
    """POSTs `body` as curl does a large one: `Expect: 100-continue`, the body only after the
    gateway's `100 Continue` (asserted). Returns the final answer, read until the connection
    closes (`Connection: close`)."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Expect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (path.encode(), len(body)))
    interim = b""
    while b"\r\n\r\n" not in interim:
        chunk = s.recv(4096)
        assert chunk, interim
        interim += chunk
    assert interim.startswith(b"HTTP/1.1 100"), interim
    s.sendall(body)
    answer = interim.split(b"\r\n\r\n", 1)[1]
    while chunk := s.recv(65536):
        answer += chunk
    s.close()
    return answer


IN_NETNS = os.environ.get("TOLLGATE_TEST_NETNS") == "1"
needs_netns = pytest.mark.skipif(not IN_NETNS, reason="resolves or dials non-loopback names: private network namespace only")


class OtlpReceiver:
    def __init__(self, grpc_port, http_port, proc):
        self.grpc_port, self.http_port, self.proc = grpc_port, http_port, proc

    def spans(self, count=1, timeout=15.0):
        deadline = time.time() + timeout
        while True:
            spans = [json.loads(l) for l in self.proc.output().splitlines() if l.startswith("{")]
            if len(spans) >= count or time.time() > deadline:
                return spans
            time.sleep(0.1)


@pytest.fixture
def otlp_receiver(workdir):
    g, h = free_port(), free_port()
    p = Proc([sys.executable, str(ROOT / "tests" / "otlp_receiver.py"), str(g), str(h)], workdir / "otlp.log")
    wait_port(g, proc=p.proc)
    wait_port(h, proc=p.proc)
    yield OtlpReceiver(g, h, p)
    p.stop()


# --- MCP test peers: Node packages from tests/node (npm ci), Python servers from the venv ---

NODE = shutil.which("node") or "/usr/bin/node"
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
EVERYTHING_JS = NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
INSPECTOR_CLI_JS = NODE_MODULES / "@modelcontextprotocol" / "inspector-cli" / "build" / "index.js"
OPENAPI_SCHEMA = ROOT / "tests" / "openapi_pets.json"


def start_everything(workdir: Path, transport: str = "streamableHttp", name: str = "everything"):
    """The reference MCP server (npm server-everything, TS SDK) on a free port: `streamableHttp`
    (POST/GET/DELETE /mcp) or `sse` (GET /sse, POST /message?sessionId=). Returns (port, Proc).
    It listens on all interfaces (no host option); tests only dial 127.0.0.1."""
    port = free_port()
    p = Proc([NODE, str(EVERYTHING_JS), transport], workdir / f"{name}.log", env=dict(os.environ, PORT=str(port)))
    wait_port(port, proc=p.proc)
    return port, p


@pytest.fixture
def everything_server(workdir):
    """server-everything on Streamable HTTP (`http://127.0.0.1:PORT/mcp`); yields the port."""
    port, p = start_everything(workdir)
    yield port
    p.stop()


def start_py_mcp(workdir: Path, transport: str = "streamable-http", name: str = "py-upstream", path: str = None):
    """tests/mcp_server.py (PyPI `mcp` MCPServer: tools `add`, `echo` -> "NAME: message") on a
    free port; `path` defaults to /mcp (streamable-http) or /sse (sse). Returns
    (port, headers_log, Proc); headers_log has one `METHOD PATH host=.. authorization=..` line
    per request."""
    path = path or ("/sse" if transport == "sse" else "/mcp")
    port = free_port()
    headers = workdir / f"{name}-headers.log"
    headers.write_text("")
    p = Proc([sys.executable, str(ROOT / "tests" / "mcp_server.py"), str(port), path, str(headers), transport, name],
             workdir / f"{name}.log")
    wait_port(port, proc=p.proc)
    return port, headers, p


@pytest.fixture
def py_sse_server(workdir):
    """tests/mcp_server.py on legacy SSE (GET /sse, POST /messages/?session_id=), named `py-sse`
    (echo answers "py-sse: <message>"); yields (port, headers_log)."""
    port, headers, p = start_py_mcp(workdir, "sse", "py-sse")
    yield port, headers
    p.stop()


@pytest.fixture
def time_stdio_cmd():
    """The stdio MCP server `mcp-server-time` from the venv: (absolute command, args)."""
    cmd = VENV_BIN / "mcp-server-time"
    assert cmd.exists(), f"{cmd} missing: pip install -r tests/requirements.txt"
    return str(cmd.absolute()), ["--local-timezone", "UTC"]


class LoggedService:
    """A local server that appends each request it gets to `log` as one JSON line."""
    def __init__(self, port: int, log: Path):
        self.port, self.log = port, log

    def requests(self):
        """Requests received so far, oldest first."""
        return [json.loads(l) for l in self.log.read_text().splitlines() if l.strip()]


def start_logged_service(workdir: Path, name: str, script: str, *args) -> tuple:
    """Starts tests/`script` on a free port as `script PORT *args LOG`; returns the service and
    its process."""
    port = free_port()
    log = workdir / f"{name}-requests.jsonl"
    log.write_text("")
    p = Proc([sys.executable, str(ROOT / "tests" / script), str(port), *map(str, args), str(log)], workdir / f"{name}.log")
    wait_port(port, proc=p.proc)
    return LoggedService(port, log), p


class OpenApiService(LoggedService):
    def __init__(self, port: int, log: Path, schema: Path, proc: Proc):
        super().__init__(port, log)
        self.schema, self.proc = schema, proc


@pytest.fixture
def openapi_service(workdir):
    """tests/openapi_service.py (a pet store described by tests/openapi_pets.json) on a free port.
    `.schema` is the document's absolute path for `openapi: {schema: {file: ...}}`."""
    port = free_port()
    log = workdir / "openapi-requests.jsonl"
    log.write_text("")
    p = Proc([sys.executable, str(ROOT / "tests" / "openapi_service.py"), str(port), str(log)], workdir / "openapi.log")
    wait_port(port, proc=p.proc)
    yield OpenApiService(port, log, OPENAPI_SCHEMA, p)
    p.stop()


def inspector_cli(url: str, *args: str, transport: str = None, timeout: float = 30):
    """Runs the MCP Inspector CLI (npm @modelcontextprotocol/inspector-cli 0.15.0) against `url`,
    e.g. `inspector_cli(url, "--method", "tools/list")` or `inspector_cli(url, "--method",
    "tools/call", "--tool-name", "echo", "--tool-arg", "message=hi")`; returns its JSON output.
    The transport is guessed from the path (/mcp -> http, /sse -> sse) unless given."""
    cmd = [NODE, str(INSPECTOR_CLI_JS), url, *args]
    if transport:
        cmd += ["--transport", transport]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"inspector CLI failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}"
    return json.loads(r.stdout)


def load_error(workdir: Path, config_text: str, env=None) -> str:
    """Runs `tollgate --validate-only` on `config_text`; asserts the load fails and returns what
    it said."""
    cfg = workdir / "bad.yaml"
    cfg.write_text(config_text)
    out = subprocess.run([str(BIN), "--validate-only", "-f", str(cfg)], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode != 0, f"the config loaded: {out.stdout + out.stderr}"
    return out.stdout + out.stderr


class Redis:
    """Debian's redis-server on a loopback port, nothing saved to disk; stopped by PID."""

    def __init__(self, workdir: Path, port: int = None):
        self.workdir = workdir
        self.port = port or free_port()
        self.proc = None
        self.start()

    def start(self):
        server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = Proc([server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                          "--dir", str(self.workdir)], self.workdir / f"redis-{self.port}.log")
        wait_port(self.port, proc=self.proc.proc)

    def kill(self):
        self.proc.proc.kill()
        self.proc.proc.wait()
        self.proc.log_file.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"


@pytest.fixture
def redis_server(workdir):
    r = Redis(workdir)
    yield r
    if r.proc.proc.poll() is None:
        r.proc.stop()
