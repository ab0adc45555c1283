"""A local stand-in for the two model APIs llmock does not serve, on 127.0.0.1, checking
what the real services check and answering in their wire formats:

  - rerank: `POST /v2/rerank` (Cohere's v2 shape) and `POST /v1/rerank` (the Jina / vLLM /
    Cohere-compatible shape). `Authorization: Bearer KEY` else 401. The body must name a
    `model` (string), a non-empty `query` (string) and non-empty `documents` (strings, or
    objects with `text` on /v1), `top_n` a positive integer if given; else 400. Results are
    scored by the words a document shares with the query, best first, cut to `top_n`;
    /v1 answers report `usage.total_tokens` (words of query and documents), /v2 answers
    `meta.billed_units.search_units`.
  - Gemini's batchEmbedContents: `POST /v1beta/models/{model}:batchEmbedContents`, the same
    key check; `requests` a non-empty list, each `{model: "models/{model}" (the path's),
    content: {parts: [{text}]}, outputDimensionality?}`, else 400 INVALID_ARGUMENT. Each
    text's vector has `outputDimensionality` (default 8) values derived from the text.
  - Gemini's countTokens: `POST /v1beta/models/{model}:countTokens` with `x-goog-api-key:
    KEY` (else 403 PERMISSION_DENIED, as Google answers). The body must hold `contents` (a
    list) or a `generateContentRequest` object whose `model` is `models/{model}`; else 400
    INVALID_ARGUMENT. `totalTokens` is the number of words in the text parts.

Usage: python rerank_count_fake.py PORT KEY REQUEST_LOG
Every request is appended to REQUEST_LOG as one JSON line: {method, path, headers, body}.
Standard library only."""
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fake_http import read_body, send_json

port, key, log_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()


def words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def doc_text(d):
    return d if isinstance(d, str) else d.get("text") if isinstance(d, dict) else None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = read_body(self)
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        with lock, open(log_path, "a") as f:
            f.write(json.dumps({"method": "POST", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                "body": parsed}) + "\n")
        if self.path in ("/v1/rerank", "/v2/rerank"):
            return self.rerank(parsed, cohere=self.path == "/v2/rerank")
        m = re.fullmatch(r"/v1beta/models/([A-Za-z0-9._-]+):countTokens", self.path)
        if m:
            return self.count(parsed, m.group(1))
        m = re.fullmatch(r"/v1beta/models/([A-Za-z0-9._-]+):batchEmbedContents", self.path)
        if m:
            return self.embed(parsed, m.group(1))
        send_json(self, 404, {"error": {"message": f"no route {self.path}"}})

    def rerank(self, req, cohere):
        if self.headers.get("Authorization") != f"Bearer {key}":
            return send_json(self, 401, {"message": "invalid api token"})
        bad = lambda why: send_json(self, 400, {"message": why})
        if not isinstance(req, dict):
            return bad("invalid request: body must be a JSON object")
        if not isinstance(req.get("model"), str):
            return bad("invalid request: model is required")
        if not isinstance(req.get("query"), str) or not req["query"].strip():
            return bad("invalid request: query is required")
        docs = req.get("documents")
        if not isinstance(docs, list) or not docs:
            return bad("invalid request: documents must be a non-empty list")
        texts = [d if cohere else doc_text(d) for d in docs]
        if any(not isinstance(t, str) for t in texts):
            return bad("invalid request: documents must be strings")
        top_n = req.get("top_n", len(texts))
        if not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1:
            return bad("invalid request: top_n must be a positive integer")
        q = set(words(req["query"]))
        scored = [(len(q & set(words(t))) / (len(q) or 1), i) for i, t in enumerate(texts)]
        scored.sort(key=lambda s: (-s[0], s[1]))
        results = [{"index": i, "relevance_score": round(s, 4)} for s, i in scored[:top_n]]
        if cohere:
            return send_json(self, 200, {"id": "rr-1", "results": results, "meta": {"billed_units": {"search_units": 1}}})
        tokens = len(words(req["query"])) + sum(len(words(t)) for t in texts)
        send_json(self, 200, {"id": "rr-1", "model": req["model"], "results": results, "usage": {"total_tokens": tokens}})

    def embed(self, req, model):
        if self.headers.get("x-goog-api-key") != key:
            return send_json(self, 403, {"error": {"code": 403, "message": "Method doesn't allow unregistered callers.", "status": "PERMISSION_DENIED"}})
        bad = lambda why: send_json(self, 400, {"error": {"code": 400, "message": why, "status": "INVALID_ARGUMENT"}})
        reqs = req.get("requests") if isinstance(req, dict) else None
        if not isinstance(reqs, list) or not reqs:
            return bad("requests is required")
        out = []
        for r in reqs:
            if not isinstance(r, dict) or r.get("model") != f"models/{model}":
                return bad("each request's model must be the model of the path")
            parts = (r.get("content") or {}).get("parts")
            if not isinstance(parts, list) or not all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in parts):
                return bad("content.parts must be text parts")
            dims = r.get("outputDimensionality", 8)
            text = "".join(p["text"] for p in parts)
            out.append({"values": [round(((sum(map(ord, text)) * (i + 1)) % 1000) / 1000, 3) for i in range(dims)]})
        send_json(self, 200, {"embeddings": out})

    def count(self, req, model):
        if self.headers.get("x-goog-api-key") != key:
            return send_json(self, 403, {"error": {"code": 403, "message": "Method doesn't allow unregistered callers.", "status": "PERMISSION_DENIED"}})
        bad = lambda why: send_json(self, 400, {"error": {"code": 400, "message": why, "status": "INVALID_ARGUMENT"}})
        if not isinstance(req, dict):
            return bad("Invalid JSON payload received.")
        inner = req.get("generateContentRequest")
        if inner is not None:
            if not isinstance(inner, dict) or inner.get("model") != f"models/{model}":
                return bad("generateContentRequest.model must name the model of the path")
            contents = inner.get("contents")
        else:
            contents = req.get("contents")
        if not isinstance(contents, list) or not contents:
            return bad("contents is not specified")
        total = sum(len(words(p.get("text", ""))) for c in contents for p in c.get("parts", []) if isinstance(p, dict))
        send_json(self, 200, {"totalTokens": total, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
