"""A local stand-in for Microsoft Entra ID's token endpoint (`POST /{tenant}/oauth2/v2.0/token`),
on 127.0.0.1, checking the client-credentials grant as Entra does and issuing JWT access tokens
(HS256 with SIGNING_KEY, which the Azure stand-in verifies) for the requested scope.

Usage: python entra_fake.py PORT SIGNING_KEY TENANT CLIENT_ID CLIENT_SECRET FEDERATED_TOKEN EXPIRES_IN REQUEST_LOG

Checked as Entra does: the tenant in the path; `grant_type=client_credentials`; the client id;
a `scope` ending in `/.default`; and either `client_secret` (must be CLIENT_SECRET) or
`client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` with a
`client_assertion` (must be FEDERATED_TOKEN). Errors are Entra's shape (`error`,
`error_description` with an AADSTS code). Each request's form is appended to REQUEST_LOG as one
JSON line (the secret replaced by its length). Standard library only."""
import base64
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from fake_http import read_body, send_json

port, signing_key, tenant, client_id, client_secret, federated, expires_in, log_path = sys.argv[1:9]
lock = threading.Lock()
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue(scope: str) -> str:
    now = int(time.time())
    claims = {"aud": scope.removesuffix("/.default"), "iss": f"https://sts.windows.net/{tenant}/", "appid": client_id,
              "tid": tenant, "iat": now, "exp": now + int(expires_in)}
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(signing_key.encode(), head.encode(), hashlib.sha256).digest()
    return head + "." + b64(sig)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def fail(self, status, error, description):
        send_json(self, status, {"error": error, "error_description": description, "error_codes": [int(description[6:].split(":")[0])]})

    def do_POST(self):
        form = {k: v[0] for k, v in parse_qs(read_body(self).decode()).items()}
        logged = dict(form, client_secret=len(form["client_secret"])) if "client_secret" in form else form
        with lock, open(log_path, "a") as f:
            f.write(json.dumps({"path": self.path, "content_type": self.headers.get("Content-Type"), "form": logged}) + "\n")
        if self.path != f"/{tenant}/oauth2/v2.0/token":
            return self.fail(400, "invalid_request", "AADSTS900023: Specified tenant identifier is neither a valid DNS name, nor a valid external domain.")
        if not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            return self.fail(400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
        if form.get("grant_type") != "client_credentials":
            return self.fail(400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
        if form.get("client_id") != client_id:
            return self.fail(400, "unauthorized_client", f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found in the directory.")
        if not form.get("scope", "").endswith("/.default"):
            return self.fail(400, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed.")
        if "client_secret" in form:
            if form["client_secret"] != client_secret:
                return self.fail(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        elif form.get("client_assertion_type") == ASSERTION_TYPE:
            if form.get("client_assertion") != federated:
                return self.fail(401, "invalid_client", "AADSTS700213: No matching federated identity record found for presented assertion.")
        else:
            return self.fail(401, "invalid_client", "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
        send_json(self, 200, {"token_type": "Bearer", "expires_in": int(expires_in), "ext_expires_in": int(expires_in),
                              "access_token": issue(form["scope"])})


ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()
