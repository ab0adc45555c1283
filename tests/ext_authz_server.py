"""Envoy external authorization stand-ins for tests.

`ExtAuthzService`: envoy.service.auth.v3.Authorization/Check over gRPC. The messages are built at
run time from descriptors carrying the real field numbers of Envoy's external_auth.proto,
attribute_context.proto, config/core/v3 base.proto and address.proto, type/v3 http_status.proto and
google/rpc/status.proto (only the fields these tests need, each with its real number);
google.protobuf.Struct/Timestamp/BoolValue are the installed well-known types. The decision comes
from the checked request's `x-authz` header:
  allow       OK; ok_response sets x-authz-user (x-user or "anonymous") and x-authz-mode: grpc,
              removes x-remove-me, adds x-authz-said: yes to the response; dynamic_metadata
              {"tier": "gold", "user": ...}
  deny        PERMISSION_DENIED; denied_response 418, x-denied-by: authz, "denied by policy"
  deny-plain  PERMISSION_DENIED, no denied_response
  slow        3 s, then as allow
  otherwise   UNAUTHENTICATED; denied_response 401, "who are you?"

`HttpAuthorizer`: the HTTP mode. `authorization: Bearer good` -> 200 with x-authz-user: alice and
x-authz-extra: 1; `Bearer slow` -> 3 s, then the same; anything else -> 403, x-denied-by:
http-authz, text/plain "http authz says no".

Both run in the test's process; `requests` keeps what they received."""
import http.server
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import (descriptor_pb2, descriptor_pool, json_format, message_factory, struct_pb2,
                             timestamp_pb2, wrappers_pb2)

from fake_http import read_body

F = descriptor_pb2.FieldDescriptorProto
OPT, REP = F.LABEL_OPTIONAL, F.LABEL_REPEATED

# google.rpc.Code values used here.
OK, PERMISSION_DENIED, UNAUTHENTICATED = 0, 7, 16
# envoy.config.core.v3.HeaderValueOption.HeaderAppendAction
APPEND_IF_EXISTS_OR_ADD, ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD, OVERWRITE_IF_EXISTS = 0, 1, 2, 3


def _wkt(module):
    fdp = descriptor_pb2.FileDescriptorProto()
    module.DESCRIPTOR.CopyToProto(fdp)
    return fdp


def _message(parent, name, fields, oneofs=()):
    """fields: (number, name, type, label, type_name[, oneof name]); parent: a file or a message."""
    m = (parent.message_type if isinstance(parent, descriptor_pb2.FileDescriptorProto) else parent.nested_type).add(name=name)
    for o in oneofs:
        m.oneof_decl.add(name=o)
    for number, fname, ftype, label, type_name, *oneof in fields:
        f = m.field.add(name=fname, number=number, type=ftype, label=label)
        if type_name:
            f.type_name = type_name
        if oneof:
            f.oneof_index = list(oneofs).index(oneof[0])
    return m


def _map_entry(parent, entry_name, value_type, value_type_name=None):
    e = _message(parent, entry_name, [(1, "key", F.TYPE_STRING, OPT, None), (2, "value", value_type, OPT, value_type_name)])
    e.options.map_entry = True
    return e


def _files():
    rpc = descriptor_pb2.FileDescriptorProto(name="google/rpc/status.proto", package="google.rpc", syntax="proto3")
    _message(rpc, "Status", [(1, "code", F.TYPE_INT32, OPT, None), (2, "message", F.TYPE_STRING, OPT, None)])

    typ = descriptor_pb2.FileDescriptorProto(name="envoy/type/v3/http_status.proto", package="envoy.type.v3", syntax="proto3")
    enum = typ.enum_type.add(name="StatusCode")
    # A few of the real values (number == HTTP code); proto3 enums are open, so 418 still round-trips.
    for name, number in [("Empty", 0), ("OK", 200), ("Unauthorized", 401), ("Forbidden", 403)]:
        enum.value.add(name=name, number=number)
    _message(typ, "HttpStatus", [(1, "code", F.TYPE_ENUM, OPT, ".envoy.type.v3.StatusCode")])

    addr = descriptor_pb2.FileDescriptorProto(name="envoy/config/core/v3/address.proto", package="envoy.config.core.v3", syntax="proto3")
    _message(addr, "Pipe", [(1, "path", F.TYPE_STRING, OPT, None), (2, "mode", F.TYPE_UINT32, OPT, None)])
    _message(addr, "SocketAddress", [
        (1, "protocol", F.TYPE_INT32, OPT, None),  # enum Protocol {TCP = 0; UDP = 1}: varint on the wire
        (2, "address", F.TYPE_STRING, OPT, None),
        (3, "port_value", F.TYPE_UINT32, OPT, None, "port_specifier"),
        (4, "named_port", F.TYPE_STRING, OPT, None, "port_specifier"),
        (5, "resolver_name", F.TYPE_STRING, OPT, None),
        (6, "ipv4_compat", F.TYPE_BOOL, OPT, None),
    ], oneofs=["port_specifier"])
    _message(addr, "Address", [
        (1, "socket_address", F.TYPE_MESSAGE, OPT, ".envoy.config.core.v3.SocketAddress", "address"),
        (2, "pipe", F.TYPE_MESSAGE, OPT, ".envoy.config.core.v3.Pipe", "address"),
    ], oneofs=["address"])

    base = descriptor_pb2.FileDescriptorProto(name="envoy/config/core/v3/base.proto", package="envoy.config.core.v3", syntax="proto3",
                                              dependency=["google/protobuf/struct.proto", "google/protobuf/wrappers.proto"])
    md = _message(base, "Metadata", [(1, "filter_metadata", F.TYPE_MESSAGE, REP, ".envoy.config.core.v3.Metadata.FilterMetadataEntry")])
    _map_entry(md, "FilterMetadataEntry", F.TYPE_MESSAGE, ".google.protobuf.Struct")
    _message(base, "QueryParameter", [(1, "key", F.TYPE_STRING, OPT, None), (2, "value", F.TYPE_STRING, OPT, None)])
    _message(base, "HeaderValue", [(1, "key", F.TYPE_STRING, OPT, None), (2, "value", F.TYPE_STRING, OPT, None),
                                   (3, "raw_value", F.TYPE_BYTES, OPT, None)])
    hvo = _message(base, "HeaderValueOption", [
        (1, "header", F.TYPE_MESSAGE, OPT, ".envoy.config.core.v3.HeaderValue"),
        (2, "append", F.TYPE_MESSAGE, OPT, ".google.protobuf.BoolValue"),
        (3, "append_action", F.TYPE_ENUM, OPT, ".envoy.config.core.v3.HeaderValueOption.HeaderAppendAction"),
        (4, "keep_empty_value", F.TYPE_BOOL, OPT, None),
    ])
    action = hvo.enum_type.add(name="HeaderAppendAction")
    for name, number in [("APPEND_IF_EXISTS_OR_ADD", 0), ("ADD_IF_ABSENT", 1), ("OVERWRITE_IF_EXISTS_OR_ADD", 2), ("OVERWRITE_IF_EXISTS", 3)]:
        action.value.add(name=name, number=number)
    _message(base, "HeaderMap", [(1, "headers", F.TYPE_MESSAGE, REP, ".envoy.config.core.v3.HeaderValue")])

    ctx = descriptor_pb2.FileDescriptorProto(name="envoy/service/auth/v3/attribute_context.proto", package="envoy.service.auth.v3", syntax="proto3",
                                             dependency=["envoy/config/core/v3/address.proto", "envoy/config/core/v3/base.proto",
                                                         "google/protobuf/timestamp.proto"])
    A = ".envoy.service.auth.v3.AttributeContext"
    ac = _message(ctx, "AttributeContext", [
        (1, "source", F.TYPE_MESSAGE, OPT, A + ".Peer"),
        (2, "destination", F.TYPE_MESSAGE, OPT, A + ".Peer"),
        (4, "request", F.TYPE_MESSAGE, OPT, A + ".Request"),
        (10, "context_extensions", F.TYPE_MESSAGE, REP, A + ".ContextExtensionsEntry"),
        (11, "metadata_context", F.TYPE_MESSAGE, OPT, ".envoy.config.core.v3.Metadata"),
        (12, "tls_session", F.TYPE_MESSAGE, OPT, A + ".TLSSession"),
        (13, "route_metadata_context", F.TYPE_MESSAGE, OPT, ".envoy.config.core.v3.Metadata"),
    ])
    peer = _message(ac, "Peer", [
        (1, "address", F.TYPE_MESSAGE, OPT, ".envoy.config.core.v3.Address"),
        (2, "service", F.TYPE_STRING, OPT, None),
        (3, "labels", F.TYPE_MESSAGE, REP, A + ".Peer.LabelsEntry"),
        (4, "principal", F.TYPE_STRING, OPT, None),
        (5, "certificate", F.TYPE_STRING, OPT, None),
    ])
    _map_entry(peer, "LabelsEntry", F.TYPE_STRING)
    _message(ac, "Request", [(1, "time", F.TYPE_MESSAGE, OPT, ".google.protobuf.Timestamp"),
                             (2, "http", F.TYPE_MESSAGE, OPT, A + ".HttpRequest")])
    hr = _message(ac, "HttpRequest", [
        (1, "id", F.TYPE_STRING, OPT, None),
        (2, "method", F.TYPE_STRING, OPT, None),
        (3, "headers", F.TYPE_MESSAGE, REP, A + ".HttpRequest.HeadersEntry"),
        (4, "path", F.TYPE_STRING, OPT, None),
        (5, "host", F.TYPE_STRING, OPT, None),
        (6, "scheme", F.TYPE_STRING, OPT, None),
        (7, "query", F.TYPE_STRING, OPT, None),
        (8, "fragment", F.TYPE_STRING, OPT, None),
        (9, "size", F.TYPE_INT64, OPT, None),
        (10, "protocol", F.TYPE_STRING, OPT, None),
        (11, "body", F.TYPE_STRING, OPT, None),
        (12, "raw_body", F.TYPE_BYTES, OPT, None),
        (13, "header_map", F.TYPE_MESSAGE, OPT, ".envoy.config.core.v3.HeaderMap"),
    ])
    _map_entry(hr, "HeadersEntry", F.TYPE_STRING)
    _message(ac, "TLSSession", [(1, "sni", F.TYPE_STRING, OPT, None)])
    _map_entry(ac, "ContextExtensionsEntry", F.TYPE_STRING)

    ext = descriptor_pb2.FileDescriptorProto(name="envoy/service/auth/v3/external_auth.proto", package="envoy.service.auth.v3", syntax="proto3",
                                             dependency=["envoy/config/core/v3/base.proto", "envoy/service/auth/v3/attribute_context.proto",
                                                         "envoy/type/v3/http_status.proto", "google/protobuf/struct.proto",
                                                         "google/rpc/status.proto"])
    HVO = ".envoy.config.core.v3.HeaderValueOption"
    _message(ext, "CheckRequest", [(1, "attributes", F.TYPE_MESSAGE, OPT, A)])
    _message(ext, "DeniedHttpResponse", [(1, "status", F.TYPE_MESSAGE, OPT, ".envoy.type.v3.HttpStatus"),
                                         (2, "headers", F.TYPE_MESSAGE, REP, HVO),
                                         (3, "body", F.TYPE_STRING, OPT, None)])
    _message(ext, "OkHttpResponse", [
        (2, "headers", F.TYPE_MESSAGE, REP, HVO),
        (3, "dynamic_metadata", F.TYPE_MESSAGE, OPT, ".google.protobuf.Struct"),  # deprecated
        (5, "headers_to_remove", F.TYPE_STRING, REP, None),
        (6, "response_headers_to_add", F.TYPE_MESSAGE, REP, HVO),
        (7, "query_parameters_to_set", F.TYPE_MESSAGE, REP, ".envoy.config.core.v3.QueryParameter"),
        (8, "query_parameters_to_remove", F.TYPE_STRING, REP, None),
    ])
    _message(ext, "CheckResponse", [
        (1, "status", F.TYPE_MESSAGE, OPT, ".google.rpc.Status"),
        (2, "denied_response", F.TYPE_MESSAGE, OPT, ".envoy.service.auth.v3.DeniedHttpResponse", "http_response"),
        (3, "ok_response", F.TYPE_MESSAGE, OPT, ".envoy.service.auth.v3.OkHttpResponse", "http_response"),
        (4, "dynamic_metadata", F.TYPE_MESSAGE, OPT, ".google.protobuf.Struct"),
    ], oneofs=["http_response"])
    return [rpc, typ, addr, base, ctx, ext]


_pool = descriptor_pool.DescriptorPool()
for _fd in [_wkt(struct_pb2), _wkt(wrappers_pb2), _wkt(timestamp_pb2)] + _files():
    _pool.Add(_fd)


def _cls(name):
    return message_factory.GetMessageClass(_pool.FindMessageTypeByName(name))


CheckRequest = _cls("envoy.service.auth.v3.CheckRequest")
CheckResponse = _cls("envoy.service.auth.v3.CheckResponse")
AttributeContext = _cls("envoy.service.auth.v3.AttributeContext")
HeaderValueOption = _cls("envoy.config.core.v3.HeaderValueOption")

SERVICE, METHOD = "envoy.service.auth.v3.Authorization", "Check"
CHECK_PATH = f"/{SERVICE}/{METHOD}"


def request_headers(request):
    """The checked request's headers (lowercase keys): the `headers` map, else `header_map`."""
    http = request.attributes.request.http
    if http.headers:
        return {k.lower(): v for k, v in http.headers.items()}
    return {h.key.lower(): h.value or h.raw_value.decode("utf-8", "replace") for h in http.header_map.headers}


def _allow(resp, user):
    resp.status.code = OK
    ok = resp.ok_response
    ok.headers.add().header.CopyFrom(_header("x-authz-user", user))  # append unset: overwrite
    mode = ok.headers.add(append_action=OVERWRITE_IF_EXISTS_OR_ADD)
    mode.header.key, mode.header.value = "x-authz-mode", "grpc"
    ok.headers_to_remove.append("x-remove-me")
    ok.response_headers_to_add.add().header.CopyFrom(_header("x-authz-said", "yes"))
    resp.dynamic_metadata.update({"tier": "gold", "user": user})


def _header(key, value):
    h = HeaderValueOption().header
    h.key, h.value = key, value
    return h


class ExtAuthzService:
    """envoy.service.auth.v3.Authorization/Check on 127.0.0.1:`port`; `requests` holds each
    CheckRequest received, as a dict (MessageToDict, proto field names)."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        handler = grpc.method_handlers_generic_handler(SERVICE, {
            METHOD: grpc.unary_unary_rpc_method_handler(
                self.check, request_deserializer=CheckRequest.FromString,
                response_serializer=lambda m: m.SerializeToString()),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def check(self, request, context):
        with self.lock:
            self.requests.append(json_format.MessageToDict(request, preserving_proto_field_name=True))
        headers = request_headers(request)
        decision = headers.get("x-authz", "")
        user = headers.get("x-user") or "anonymous"
        resp = CheckResponse()
        if decision == "slow":
            time.sleep(3)
            decision = "allow"
        if decision == "allow":
            _allow(resp, user)
        elif decision == "deny":
            resp.status.code = PERMISSION_DENIED
            denied = resp.denied_response
            denied.status.code = 418
            denied.headers.add().header.CopyFrom(_header("x-denied-by", "authz"))
            denied.body = "denied by policy"
        elif decision == "deny-plain":
            resp.status.code = PERMISSION_DENIED
        else:
            resp.status.code = UNAUTHENTICATED
            resp.denied_response.status.code = 401
            resp.denied_response.body = "who are you?"
        return resp

    def stop(self):
        self.server.stop(0)


class _AuthzHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        body = read_body(self)
        seen = {"method": self.command, "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace")}
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(seen)
        auth = seen["headers"].get("authorization", "")
        if auth == "Bearer slow":
            time.sleep(3)
            auth = "Bearer good"
        if auth == "Bearer good":
            self.send_response(200)
            self.send_header("x-authz-user", "alice")
            self.send_header("x-authz-extra", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        # "Bearer big": a refusal whose body is larger than the gateway relays.
        data = b"no" * 60_000 if auth == "Bearer big" else b"http authz says no"
        self.send_response(403)
        self.send_header("x-denied-by", "http-authz")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class HttpAuthorizer:
    """The HTTP ext_authz mode on 127.0.0.1:`port`; `requests` holds dicts of method, path,
    headers (lowercase keys) and body text."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthzHandler)
        self.server.daemon_threads = True
        self.server.owner = self
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    # Self-test: python tests/ext_authz_server.py
    import requests as http_client

    svc = ExtAuthzService()
    channel = grpc.insecure_channel(f"127.0.0.1:{svc.port}")
    check = channel.unary_unary(CHECK_PATH, request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=CheckResponse.FromString)

    def ask(headers, **http_fields):
        req = CheckRequest()
        h = req.attributes.request.http
        h.headers.update(headers)
        for k, v in http_fields.items():
            setattr(h, k, v)
        req.attributes.source.address.socket_address.address = "10.0.0.1"
        req.attributes.source.address.socket_address.port_value = 5555
        req.attributes.context_extensions["route"] = "r1"
        return check(req, timeout=10)

    r = ask({"x-authz": "allow", "x-user": "bob"}, method="POST", path="/v1/chat?x=1", size=-1)
    assert r.status.code == OK and r.WhichOneof("http_response") == "ok_response", r
    hs = [(o.header.key, o.header.value, o.HasField("append"), o.append_action) for o in r.ok_response.headers]
    assert hs == [("x-authz-user", "bob", False, 0), ("x-authz-mode", "grpc", False, OVERWRITE_IF_EXISTS_OR_ADD)], hs
    assert list(r.ok_response.headers_to_remove) == ["x-remove-me"]
    assert [(o.header.key, o.header.value) for o in r.ok_response.response_headers_to_add] == [("x-authz-said", "yes")]
    assert dict(r.dynamic_metadata) == {"tier": "gold", "user": "bob"}, r.dynamic_metadata
    seen = svc.requests[-1]
    assert seen["attributes"]["request"]["http"]["headers"]["x-user"] == "bob", seen
    assert seen["attributes"]["request"]["http"]["method"] == "POST"
    assert seen["attributes"]["source"]["address"]["socket_address"]["port_value"] == 5555
    assert seen["attributes"]["context_extensions"] == {"route": "r1"}

    r = ask({"x-authz": "allow"})
    assert r.ok_response.headers[0].header.value == "anonymous" and r.dynamic_metadata["user"] == "anonymous"

    r = ask({"x-authz": "deny"})
    assert r.status.code == PERMISSION_DENIED and r.WhichOneof("http_response") == "denied_response"
    d = r.denied_response
    assert d.status.code == 418 and d.body == "denied by policy"
    assert [(o.header.key, o.header.value) for o in d.headers] == [("x-denied-by", "authz")]

    r = ask({"x-authz": "deny-plain"})
    assert r.status.code == PERMISSION_DENIED and r.WhichOneof("http_response") is None

    r = ask({})
    assert r.status.code == UNAUTHENTICATED and r.denied_response.status.code == 401 and r.denied_response.body == "who are you?"

    # The same bytes as a hand-encoded CheckRequest{attributes{request{http{headers{"x-authz": "deny"}}}}}.
    def ld(num, payload):
        return bytes([num << 3 | 2, len(payload)]) + payload
    wire = ld(1, ld(4, ld(2, ld(3, ld(1, b"x-authz") + ld(2, b"deny")))))
    raw = channel.unary_unary(CHECK_PATH)(wire, timeout=10)
    assert raw.startswith(b"\x0a\x02\x08\x07"), raw  # status{code: 7}
    assert CheckResponse.FromString(raw).denied_response.status.code == 418

    t = time.monotonic()
    r = ask({"x-authz": "slow"})
    assert r.status.code == OK and time.monotonic() - t >= 2.9
    assert len(svc.requests) == 7
    channel.close()
    svc.stop()

    authz = HttpAuthorizer()
    base_url = f"http://127.0.0.1:{authz.port}"
    resp = http_client.post(base_url + "/check/x?y=1", headers={"Authorization": "Bearer good", "X-Thing": "T"}, data="hello")
    assert resp.status_code == 200 and resp.headers["x-authz-user"] == "alice" and resp.headers["x-authz-extra"] == "1"
    assert resp.content == b""
    assert authz.requests[-1] == {"method": "POST", "path": "/check/x?y=1", "body": "hello",
                                  "headers": authz.requests[-1]["headers"]}
    assert authz.requests[-1]["headers"]["x-thing"] == "T" and authz.requests[-1]["headers"]["authorization"] == "Bearer good"
    resp = http_client.get(base_url + "/anything", headers={"Authorization": "Bearer bad"})
    assert resp.status_code == 403 and resp.headers["x-denied-by"] == "http-authz"
    assert resp.headers["content-type"] == "text/plain" and resp.text == "http authz says no"
    resp = http_client.get(base_url + "/")
    assert resp.status_code == 403
    t = time.monotonic()
    resp = http_client.get(base_url + "/", headers={"Authorization": "Bearer slow"})
    assert resp.status_code == 200 and resp.headers["x-authz-user"] == "alice" and time.monotonic() - t >= 2.9
    assert len(authz.requests) == 4
    authz.stop()
    print("ext_authz_server self-test ok")
