"""Helpers for attacking tollgate as a hostile client would, and small upstreams that
misbehave on purpose (record what they receive, answer slowly). Loopback only."""
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import free_port


def raw_exchange(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Sends raw bytes, returns everything the gateway sends back until it closes (or `wait`)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


def status_of(response: bytes) -> int:
    line = response.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) > 1 and line[1].isdigit() else 0


def closed_by_peer(s: socket.socket, wait: float) -> bool:
    """Whether the gateway closes `s` within `wait` seconds (whatever it says first)."""
    s.settimeout(wait)
    deadline = time.monotonic() + wait
    try:
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            if not s.recv(65536):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True
    return False


class Recorder:
    """An HTTP upstream that records each request's path and answers 200 `backend:<path>`."""

    def __init__(self):
        self.paths = []
        self.lengths = []  # the Content-Length lines of each request, as received
        self.headers = []  # each request's headers, names lower-cased (repeated ones joined by ", ")
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                recorder.paths.append(self.path)
                recorder.lengths.append(self.headers.get_all("content-length") or [])
                recorder.headers.append({k.lower(): ", ".join(self.headers.get_all(k)) for k in self.headers.keys()})
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                body = f"backend:{self.path}".encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class PacedLlm:
    """An OpenAI-shaped upstream that answers too slowly: `stall` seconds before any byte
    (non-streaming), or a stream whose events come every `gap` seconds for `total` seconds."""

    def __init__(self, stall=10.0, gap=0.5, total=10.0):
        self.requests = 0
        llm = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                llm.requests += 1
                body = self.rfile.read(int(self.headers.get("content-length") or 0)) if self.headers.get("content-length") else self._chunked()
                if b'"stream":true' in body.replace(b" ", b""):
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    start = time.monotonic()
                    try:
                        while time.monotonic() - start < total:
                            event = b'data: {"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"x"}}]}\n\n'
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                            self.wfile.flush()
                            time.sleep(gap)
                    except OSError:
                        return
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    time.sleep(stall)
                    try:
                        self.send_response(200)
                        self.send_header("content-length", "2")
                        self.end_headers()
                        self.wfile.write(b"{}")
                    except OSError:
                        pass

            def _chunked(self):
                out = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
