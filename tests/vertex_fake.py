"""A local stand-in for Vertex AI, on 127.0.0.1, checking what Vertex checks and answering in
its wire formats, with the answers themselves from llmock (its Gemini and Anthropic APIs).

Usage: python vertex_fake.py PORT LLMOCK_PORT PROJECT SA_EMAIL SA_PUBLIC_KEY_PEM REQUEST_LOG

Checked as Vertex does:
  - `Authorization: Bearer <token>`: a Google access token; for a service account's self-signed
    JWT that is an RS256 signature by the account's key, `iss` = `sub` = the account, the
    cloud-platform scope, not expired; else 401 UNAUTHENTICATED in Google's error shape;
  - the path `/v1/projects/PROJECT/locations/{location}/publishers/{google|anthropic}/models/{model}:{method}`
    (another project is 403 PERMISSION_DENIED); Gemini's `streamGenerateContent` needs `alt=sse`;
  - Claude bodies (`rawPredict` / `streamRawPredict`) carry `anthropic_version:
    vertex-2023-10-16` and no `model` (the path names it); `streamRawPredict` needs `stream: true`.
Every request is appended to REQUEST_LOG as one JSON line: {path, query, headers, body, claims}.
"""
import base64
import http.client
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from fake_http import read_body, relay, send_json

port, llmock_port, project, email, pem_path, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
public_key = serialization.load_pem_public_key(open(pem_path, "rb").read())
lock = threading.Lock()
PATH = re.compile(r"^/v1/projects/([^/]+)/locations/([a-z0-9-]+)/publishers/(google|anthropic)/models/([^/:]+):([A-Za-z]+)$")


def b64(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify(token):
    """The claims of a valid token, or None."""
    try:
        head, body, sig = token.split(".")
        header = json.loads(b64(head))
        if header.get("alg") != "RS256":
            return None
        public_key.verify(b64(sig), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
        claims = json.loads(b64(body))
    except Exception:
        return None
    now = time.time()
    ok = (claims.get("iss") == email and claims.get("sub") == email and "https://www.googleapis.com/auth/cloud-platform" in claims.get("scope", "").split()
          and claims.get("exp", 0) > now and claims.get("iat", now + 999) <= now + 60)
    return claims if ok else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def error(self, code, status, message):
        send_json(self, code, {"error": {"code": code, "message": message, "status": status}})

    def do_POST(self):
        url = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        raw = read_body(self)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        auth = self.headers.get("Authorization") or ""
        claims = verify(auth.removeprefix("Bearer ")) if auth.startswith("Bearer ") else None
        with lock, open(log_path, "a") as f:
            f.write(json.dumps({"path": url.path, "query": query, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body, "claims": claims}) + "\n")
        if claims is None:
            return self.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token.")
        m = PATH.match(url.path)
        if not m:
            return self.error(404, "NOT_FOUND", "The requested URL was not found on this server.")
        proj, _location, publisher, model, method = m.groups()
        if proj != project:
            return self.error(403, "PERMISSION_DENIED", f"Permission denied on resource project {proj}.")
        if not isinstance(body, dict):
            return self.error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if publisher == "google":
            if method not in ("generateContent", "streamGenerateContent"):
                return self.error(400, "INVALID_ARGUMENT", f"method {method} is not a Gemini method")
            if method == "streamGenerateContent" and query.get("alt") != "sse":
                return self.error(400, "INVALID_ARGUMENT", "this stand-in answers streams as server-sent events only (alt=sse)")
            target = f"/gemini/v1beta/models/{model}:{method}" + ("?alt=sse" if method == "streamGenerateContent" else "")
        else:
            if method not in ("rawPredict", "streamRawPredict"):
                return self.error(400, "INVALID_ARGUMENT", f"method {method} is not an Anthropic method")
            if body.get("anthropic_version") != "vertex-2023-10-16" or "model" in body:
                return self.error(400, "INVALID_ARGUMENT", "anthropic_version must be vertex-2023-10-16 and the body must not name the model")
            if (method == "streamRawPredict") != bool(body.get("stream")):
                return self.error(400, "INVALID_ARGUMENT", "streamRawPredict takes stream: true, rawPredict a body without it")
            body = {k: v for k, v in body.items() if k != "anthropic_version"}
            body["model"] = model.replace("@", "-")
            target = "/anthropic/v1/messages"
        upstream = http.client.HTTPConnection("127.0.0.1", llmock_port, timeout=30)
        headers = {"Content-Type": "application/json", "x-api-key": "vertex-internal", "anthropic-version": "2023-06-01"}
        upstream.request("POST", target, body=json.dumps(body), headers=headers)
        relay(self, upstream.getresponse())
        upstream.close()



ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
