"""Soak-run clients that wrk cannot be (Python standard library only):
- MCP: sessions that initialize, call a tool a few times and end (DELETE), back to back;
- hostile and broken clients: slowloris heads that trickle, idle connections, and streaming
  completions dropped after their first bytes.
Runs for SECONDS, then prints one JSON line of counts. Loopback only.

Usage: python3 bench/soak_clients.py PORT SECONDS
"""
import http.client
import json
import socket
import sys
import threading
import time

PORT, SECONDS = int(sys.argv[1]), float(sys.argv[2])
END = time.monotonic() + SECONDS
counts = {"mcp_sessions": 0, "mcp_calls": 0, "mcp_errors": 0, "slowloris": 0, "idle": 0,
          "dropped_streams": 0, "hostile_closed_by_gateway": 0, "hostile_still_open_at_end": 0}
lock = threading.Lock()


def bump(key, n=1):
    with lock:
        counts[key] += n


def mcp_loop():
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    while time.monotonic() < END:
        try:
            c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "soak", "version": "0"}}}
            c.request("POST", "/mcp", json.dumps(init), headers)
            r = c.getresponse()
            r.read()
            sid = r.getheader("mcp-session-id")
            if r.status != 200 or not sid:
                bump("mcp_errors")
                continue
            h = dict(headers, **{"Mcp-Session-Id": sid})
            for i in range(5):
                call = {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"message": "x"}}}
                c.request("POST", "/mcp", json.dumps(call), h)
                r = c.getresponse()
                body = r.read()
                if r.status != 200 or b'"result"' not in body:
                    bump("mcp_errors")
                else:
                    bump("mcp_calls")
            c.request("DELETE", "/mcp", headers=h)
            r = c.getresponse()
            r.read()
            bump("mcp_sessions")
            c.close()
        except OSError:
            bump("mcp_errors")
        time.sleep(0.05)


def hostile_loop():
    open_socks = []
    while time.monotonic() < END:
        for _ in range(10):
            try:
                s = socket.create_connection(("127.0.0.1", PORT), timeout=2)
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: soak\r\nX-Slow: ")
                open_socks.append(s)
                bump("slowloris")
            except OSError:
                pass
        for _ in range(5):
            try:
                open_socks.append(socket.create_connection(("127.0.0.1", PORT), timeout=2))
                bump("idle")
            except OSError:
                pass
        for _ in range(3):
            try:
                s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
                body = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
                s.sendall(b"POST /paced/v1/chat/completions HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                s.recv(512)
                s.close()
                bump("dropped_streams")
            except OSError:
                pass
        # Trickle on the slow ones; forget those the gateway closed.
        alive = []
        for s in open_socks:
            try:
                s.setblocking(False)
                try:
                    if s.recv(4096) == b"":
                        raise ConnectionResetError
                except BlockingIOError:
                    pass
                s.sendall(b"a")
                alive.append(s)
            except OSError:
                bump("hostile_closed_by_gateway")
                s.close()
        open_socks = alive
        time.sleep(1)
    bump("hostile_still_open_at_end", len(open_socks))
    for s in open_socks:
        s.close()


threads = [threading.Thread(target=mcp_loop), threading.Thread(target=hostile_loop)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps(counts))
