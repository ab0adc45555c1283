"""Test identity: signing keys, their JWKS, tokens minted with PyJWT, and a JWKS endpoint on
loopback whose keys a test can rotate or take down (the identity provider's key URL)."""
import http.server
import json
import threading
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa


class SigningKey:
    """A private key with its `kid` and JWK."""

    def __init__(self, kid: str, kind: str = "rsa"):
        self.kid = kid
        if kind == "rsa":
            self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            self.alg = "RS256"
            self.jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            self.alg = "ES256"
            self.jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key()))
        self.jwk["kid"] = kid

    def token(self, iss="https://idp.test", aud="tollgate", ttl=300, kid=None, **claims) -> str:
        now = int(time.time())
        body = {"iss": iss, "sub": "alice", "iat": now, "exp": None if ttl is None else now + ttl}
        if aud is not None:
            body["aud"] = aud
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.private, algorithm=self.alg, headers={"kid": kid or self.kid})


def jwks(*keys: SigningKey) -> str:
    return json.dumps({"keys": [k.jwk for k in keys]})


def unsigned_token(**claims) -> str:
    """`alg: none` (PyJWT writes it with an empty signature)."""
    now = int(time.time())
    body = {"iss": "https://idp.test", "aud": "tollgate", "sub": "mallory", "exp": now + 300, **claims}
    return jwt.encode(body, None, algorithm="none", headers={"kid": "k1"})


class JwksServer:
    """Serves `/jwks` on loopback; `keys` may be replaced (rotation) and `stop()` takes it down."""

    def __init__(self, *keys: SigningKey):
        self.keys = list(keys)
        self.fetches = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                body = jwks(*outer.keys).encode()
                self.send_response(200 if self.path == "/jwks" else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/jwks"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
