"""A tiny pet-store HTTP service on 127.0.0.1 described by tests/openapi_pets.json (OpenAPI 3.0),
for OpenAPI targets of the MCP gateway. Standard library only.

Usage: python openapi_service.py PORT REQUEST_LOG [SCHEMA_OUT]

  GET  /openapi.json                 the OpenAPI document
  GET  /pets?limit=N                 listPets  (header X-Pet-Tag filters by tag)
  POST /pets        {name, tag?}     createPet (201, the new pet)
  GET  /pets/{petId}?verbose=true    getPet    (404 for an id < 1)

Every request except GET /openapi.json is appended to REQUEST_LOG as one JSON line:
{"method", "path", "query": {name: value}, "body": parsed JSON | raw text | null,
 "headers": {lower-case name: value}}. With SCHEMA_OUT the document is also written there
at start (before the port opens)."""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from fake_http import read_body, send_json

SCHEMA_FILE = Path(__file__).resolve().parent / "openapi_pets.json"

port, log_path = int(sys.argv[1]), sys.argv[2]
document = SCHEMA_FILE.read_bytes()
if len(sys.argv) > 3:
    Path(sys.argv[3]).write_bytes(document)

lock = threading.Lock()
pets = [{"id": 1, "name": "Rex", "tag": "dog"}, {"id": 2, "name": "Tom", "tag": "cat"},
        {"id": 3, "name": "Nemo", "tag": "fish"}]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, value):
        send_json(self, status, value)

    def read_body(self):
        return read_body(self)

    def record(self, url, raw):
        body = None
        if raw:
            text = raw.decode(errors="replace")
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        entry = {"method": self.command, "path": url.path, "query": dict(parse_qsl(url.query, keep_blank_values=True)),
                 "body": body, "headers": {k.lower(): v for k, v in self.headers.items()}}
        with lock, open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return entry

    def handle_any(self):
        url = urlsplit(self.path)
        raw = self.read_body()
        if self.command == "GET" and url.path == "/openapi.json":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)
            return
        req = self.record(url, raw)
        parts = [p for p in url.path.split("/") if p]
        if parts == ["pets"] and self.command == "GET":
            found = pets
            tag = self.headers.get("X-Pet-Tag")
            if tag:
                found = [p for p in found if p.get("tag") == tag]
            limit = req["query"].get("limit")
            if limit is not None:
                try:
                    found = found[: int(limit)]
                except ValueError:
                    return self.reply(400, {"error": f"limit must be an integer, got {limit!r}"})
            return self.reply(200, found)
        if parts == ["pets"] and self.command == "POST":
            body = req["body"]
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                return self.reply(400, {"error": "a JSON body with a string `name` is required"})
            if "json" not in (self.headers.get("Content-Type") or ""):
                return self.reply(415, {"error": "Content-Type must be application/json"})
            with lock:
                pet = {"id": len(pets) + 1, "name": body["name"]}
                if "tag" in body:
                    pet["tag"] = body["tag"]
                pets.append(pet)
            return self.reply(201, pet)
        if len(parts) == 2 and parts[0] == "pets" and self.command == "GET":
            try:
                pet_id = int(parts[1])
            except ValueError:
                return self.reply(400, {"error": f"petId must be an integer, got {parts[1]!r}"})
            if pet_id < 1:
                return self.reply(404, {"error": f"no pet {pet_id}"})
            pet = next((p for p in pets if p["id"] == pet_id), {"id": pet_id, "name": f"pet-{pet_id}"})
            pet = dict(pet)
            if req["query"].get("verbose") == "true":
                pet["details"] = f"pet {pet_id} in full detail"
            return self.reply(200, pet)
        return self.reply(404, {"error": f"no route {self.command} {url.path}"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
