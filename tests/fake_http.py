"""Pieces the local stand-ins for provider APIs share (standard library only): reading a request
body as HTTP/1.1 frames it, relaying an upstream answer chunk by chunk, and JSON errors."""
import json


def read_body(handler):
    """The request body of a BaseHTTPRequestHandler: chunked or by Content-Length."""
    if "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower():
        raw = b""
        while True:
            size = int(handler.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return raw
            raw += handler.rfile.read(size)
            handler.rfile.readline()
    length = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(length) if length else b""


def send_json(handler, status, value, headers=()):
    """A whole JSON answer."""
    send_bytes(handler, status, json.dumps(value).encode(), headers)


def send_bytes(handler, status, data: bytes, headers=(), content_type="application/json"):
    """A whole answer of exactly these bytes."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    for name, v in headers:
        handler.send_header(name, v)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(data)


def start_chunked(handler, status, content_type, headers=()):
    """Starts a chunked answer; returns the function that sends one chunk."""
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    for name, v in headers:
        handler.send_header(name, v)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()

    def send(chunk):
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        handler.wfile.flush()
    return send


def end_chunked(handler):
    handler.wfile.write(b"0\r\n\r\n")


def relay(handler, resp, headers=()):
    """An http.client response, as it comes, to the handler's client."""
    send = start_chunked(handler, resp.status, resp.getheader("Content-Type") or "application/json", headers)
    while True:
        chunk = resp.read1(65536)
        if not chunk:
            break
        send(chunk)
    end_chunked(handler)
