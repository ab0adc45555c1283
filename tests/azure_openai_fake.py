"""A local stand-in for Azure OpenAI / AI Foundry, on 127.0.0.1, checking what Azure checks
and answering in its wire format (OpenAI's), with the answers themselves from llmock.

Usage: python azure_openai_fake.py PORT LLMOCK_PORT KEY DEPLOYMENTS [ENTRA_SIGNING_KEY] REQUEST_LOG

Checked as Azure does:
  - the key: `api-key: KEY` or `Authorization: Bearer KEY`, or (with ENTRA_SIGNING_KEY) an Entra ID
    access token from tests/entra_fake.py: its signature, its audience (Cognitive Services, or
    `https://ai.azure.com` on Foundry project paths) and its expiry; else 401 in Azure's error shape;
  - the path: `/openai/v1/{chat/completions|embeddings|models|responses}` (the v1 API; `api-version`
    may only be `preview` there), `/openai/deployments/{deployment}/{api}?api-version=YYYY-MM-DD[-preview]`
    (the deployment must be one of DEPLOYMENTS, comma separated, and `api-version` is
    required), `/openai/models?api-version=…`, or Foundry's
    `/api/projects/{project}/openai/v1/{api}`; anything else is 404 "Resource not found";
  - on the v1 paths the body names the model; on deployment paths the deployment does.
Accepted calls go to llmock's OpenAI endpoint and its answer (streamed or whole) comes back.
Every request is appended to REQUEST_LOG as one JSON line: {method, path, query, headers, body}.
Standard library only."""
import base64
import hashlib
import hmac
import http.client
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from fake_http import read_body, relay, send_json

port, llmock_port, key, deployments, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], set(sys.argv[4].split(",")), sys.argv[-1]
entra_key = sys.argv[5] if len(sys.argv) > 6 else None
lock = threading.Lock()
APIS = {"chat/completions", "embeddings", "models", "responses"}
DATED = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")


def entra_token_ok(token: str, path: str) -> bool:
    """An Entra ID access token the Entra stand-in signed, for this API's audience, unexpired."""
    if not entra_key or token.count(".") != 2:
        return False
    head, _, sig = token.rpartition(".")
    want = base64.urlsafe_b64encode(hmac.new(entra_key.encode(), head.encode(), hashlib.sha256).digest()).rstrip(b"=").decode()
    if not hmac.compare_digest(want, sig):
        return False
    payload = head.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    audience = "https://ai.azure.com" if path.startswith("/api/projects/") else "https://cognitiveservices.azure.com"
    return claims.get("aud") == audience and claims.get("exp", 0) > time.time()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def error(self, status, code, message):
        send_json(self, status, {"error": {"code": code, "message": message}})

    def route(self, path, query):
        """(api, deployment or None) for a path Azure serves, or an error tuple."""
        version = query.get("api-version", [None])[0]
        m = re.fullmatch(r"/openai/v1/(.+)", path) or re.fullmatch(r"/api/projects/[A-Za-z0-9._-]+/openai/v1/(.+)", path)
        if m and m.group(1) in APIS:
            if version not in (None, "preview"):
                return (400, "BadRequest", f"api-version {version} is not supported on the v1 API")
            return (m.group(1), None)
        m = re.fullmatch(r"/openai/deployments/([^/]+)/(.+)", path)
        if m and m.group(2) in APIS - {"models"}:
            if version is None or not DATED.match(version):
                return (404, "404", "Resource not found")
            if m.group(1) not in deployments:
                return (404, "DeploymentNotFound", "The API deployment for this resource does not exist.")
            return (m.group(2), m.group(1))
        if path == "/openai/models" and version and DATED.match(version):
            return ("models", None)
        return (404, "404", "Resource not found")

    def handle_any(self):
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        body = read_body(self) if self.command == "POST" else b""
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(errors="replace")
        with lock, open(log_path, "a") as f:
            f.write(json.dumps({"method": self.command, "path": url.path, "query": {k: v[0] for k, v in query.items()},
                                "headers": {k.lower(): v for k, v in self.headers.items()}, "body": parsed}) + "\n")
        bearer = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if self.headers.get("api-key") != key and bearer != key and not entra_token_ok(bearer, url.path):
            return self.error(401, "401", "Access denied due to invalid subscription key or wrong API endpoint.")
        routed = self.route(url.path, query)
        if len(routed) == 3:
            return self.error(*routed)
        api, deployment = routed
        if self.command == "POST":
            if not isinstance(parsed, dict):
                return self.error(400, "BadRequest", "the body is not a JSON object")
            if deployment:
                parsed["model"] = deployment
            elif "model" not in parsed:
                return self.error(400, "BadRequest", "model is required")
            body = json.dumps(parsed).encode()
        upstream = http.client.HTTPConnection("127.0.0.1", llmock_port, timeout=30)
        upstream.request(self.command, f"/v1/{api}", body=body or None, headers={"Content-Type": "application/json"})
        relay(self, upstream.getresponse(), headers=[("apim-request-id", "fake")])
        upstream.close()

    do_GET = do_POST = handle_any


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
