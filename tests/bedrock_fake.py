"""A local stand-in for Amazon Bedrock's runtime Converse API, on 127.0.0.1, checking what
Bedrock checks and answering in its wire formats: Converse JSON, and ConverseStream in AWS
event-stream framing. The model's words come from llmock (its OpenAI API), converted here.

Usage: python bedrock_fake.py PORT LLMOCK_PORT ACCESS_KEY_ID SECRET_ACCESS_KEY REGION REQUEST_LOG

Checked as Bedrock does:
  - the SigV4 signature, recomputed with botocore's own signer over the signed headers, the
    path and the body, for the service `bedrock` and REGION, dated within 5 minutes (else 403
    in Bedrock's error shape: {"message": ...} and x-amzn-ErrorType);
  - the path `/model/{modelId}/converse` or `/converse-stream`;
  - the body: `messages` alternating user/assistant and starting with a user turn, content
    blocks Bedrock knows (text, image, toolUse, toolResult, and `cachePoint: {type: default}`
    in messages, `system` and `toolConfig.tools`), `toolConfig.tools[].toolSpec`.
Every request is appended to REQUEST_LOG as one JSON line: {path, headers, body, signature_ok}.
"""
import datetime
import http.client
import json
import re
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from fake_http import end_chunked, read_body, send_json, start_chunked

port, llmock_port, akid, secret, region, log_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
lock = threading.Lock()
AUTH = re.compile(r"^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$")


def signature_ok(method, path, headers, body):
    m = AUTH.match(headers.get("authorization", ""))
    if not m:
        return False
    key, _day, reg, service, signed, signature = m.groups()
    if key != akid or reg != region or service != "bedrock":
        return False
    amz_date = headers.get("x-amz-date", "")
    try:
        when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return False
    if abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds()) > 300:
        return False
    names = signed.split(";")
    req = AWSRequest(method=method, url=f"https://{headers.get('host')}{path}", data=body, headers={n: headers.get(n, "") for n in names})
    req.context["timestamp"] = amz_date
    auth = SigV4Auth(Credentials(akid, secret, headers.get("x-amz-security-token")), "bedrock", region)
    expected = auth.signature(auth.string_to_sign(req, auth.canonical_request(req)), req)
    return expected == signature


def frame(event, payload, message_type="event"):
    headers = b""
    for name, value in ((":event-type" if message_type == "event" else ":exception-type", event), (":content-type", "application/json"), (":message-type", message_type)):
        n, v = name.encode(), value.encode()
        headers += struct.pack("B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    msg = prelude + headers + body
    return msg + struct.pack(">I", zlib.crc32(msg) & 0xFFFFFFFF)


def to_chat(body, model, stream):
    messages = [{"role": "system", "content": s["text"]} for s in body.get("system", []) if "text" in s]
    for m in body["messages"]:
        text = "".join(b["text"] for b in m["content"] if "text" in b)
        calls = [{"id": b["toolUse"]["toolUseId"], "type": "function", "function": {"name": b["toolUse"]["name"], "arguments": json.dumps(b["toolUse"]["input"])}}
                 for b in m["content"] if "toolUse" in b]
        for b in m["content"]:
            if "toolResult" in b:
                messages.append({"role": "tool", "tool_call_id": b["toolResult"]["toolUseId"], "content": "".join(c.get("text", "") for c in b["toolResult"]["content"])})
        if m["role"] == "assistant":
            messages.append({"role": "assistant", "content": text or None, **({"tool_calls": calls} if calls else {})})
        elif text:
            messages.append({"role": "user", "content": text})
    chat = {"model": model, "messages": messages, "stream": stream}
    if stream:
        chat["stream_options"] = {"include_usage": True}
    tools = body.get("toolConfig", {}).get("tools", [])
    if tools:
        chat["tools"] = [{"type": "function", "function": {"name": t["toolSpec"]["name"], "parameters": t["toolSpec"]["inputSchema"]["json"]}} for t in tools if "toolSpec" in t]
    return chat


STOP = {"stop": "end_turn", "tool_calls": "tool_use", "length": "max_tokens"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def error(self, code, kind, message):
        send_json(self, code, {"message": message}, headers=[("x-amzn-ErrorType", kind)])

    def do_POST(self):
        raw = read_body(self)
        headers = {k.lower(): v for k, v in self.headers.items()}
        ok = signature_ok("POST", self.path, headers, raw)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with lock, open(log_path, "a") as f:
            f.write(json.dumps({"path": self.path, "headers": headers, "body": body, "signature_ok": ok}) + "\n")
        if not ok:
            return self.error(403, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided.")
        m = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream)", self.path)
        if not m:
            return self.error(404, "UnknownOperationException", "Unknown operation")
        model, stream = unquote(m.group(1)), m.group(2) == "converse-stream"
        msgs = body.get("messages") if isinstance(body, dict) else None
        if not msgs or msgs[0]["role"] != "user" or any(a["role"] == b["role"] for a, b in zip(msgs, msgs[1:])):
            return self.error(400, "ValidationException", "A conversation must start with a user message and alternate user and assistant turns.")
        blocks = [b for msg in msgs for b in msg["content"]] + body.get("system", []) + body.get("toolConfig", {}).get("tools", [])
        for block in blocks:
            if "cachePoint" in block and block != {"cachePoint": {"type": "default"}}:
                return self.error(400, "ValidationException", f"invalid cachePoint {block}")
            if not set(block) <= {"text", "image", "toolUse", "toolResult", "cachePoint", "toolSpec"}:
                return self.error(400, "ValidationException", f"unknown content block {list(block)}")
        upstream = http.client.HTTPConnection("127.0.0.1", llmock_port, timeout=30)
        upstream.request("POST", "/v1/chat/completions", body=json.dumps(to_chat(body, model, stream)), headers={"Content-Type": "application/json"})
        resp = upstream.getresponse()
        if resp.status != 200:
            return self.error(resp.status if resp.status != 429 else 429, "ThrottlingException" if resp.status == 429 else "ServiceUnavailableException", resp.read().decode()[:200])
        if not stream:
            chat = json.loads(resp.read())
            c = chat["choices"][0]
            content = [{"text": c["message"]["content"]}] if c["message"].get("content") else []
            content += [{"toolUse": {"toolUseId": t["id"], "name": t["function"]["name"], "input": json.loads(t["function"]["arguments"] or "{}")}}
                        for t in c["message"].get("tool_calls") or []]
            u = chat.get("usage") or {}
            out = {"output": {"message": {"role": "assistant", "content": content}}, "stopReason": STOP.get(c["finish_reason"], "end_turn"),
                   "usage": {"inputTokens": u.get("prompt_tokens", 0), "outputTokens": u.get("completion_tokens", 0), "totalTokens": u.get("total_tokens", 0)},
                   "metrics": {"latencyMs": 1}}
            return send_json(self, 200, out)
        send = start_chunked(self, 200, "application/vnd.amazon.eventstream")
        send(frame("messageStart", {"role": "assistant"}))
        blocks = {}
        finish, usage = "end_turn", {}
        for line in resp:
            line = line.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices", []):
                delta = choice.get("delta", {})
                if delta.get("content"):
                    send(frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": delta["content"]}}))
                for t in delta.get("tool_calls") or []:
                    index = 1 + t["index"]
                    if index not in blocks:
                        blocks[index] = True
                        send(frame("contentBlockStart", {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": t["id"], "name": t["function"]["name"]}}}))
                    if t.get("function", {}).get("arguments"):
                        send(frame("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": t["function"]["arguments"]}}}))
                if choice.get("finish_reason"):
                    finish = STOP.get(choice["finish_reason"], "end_turn")
        for index in [0, *blocks]:
            send(frame("contentBlockStop", {"contentBlockIndex": index}))
        send(frame("messageStop", {"stopReason": finish}))
        send(frame("metadata", {"usage": {"inputTokens": usage.get("prompt_tokens", 0), "outputTokens": usage.get("completion_tokens", 0),
                                          "totalTokens": usage.get("total_tokens", 0)}, "metrics": {"latencyMs": 1}}))
        end_chunked(self)


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
