"""A small Envoy rate-limit service (envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit)
over gRPC, for tests: the messages are built at run time from their descriptors (the field
numbers of Envoy's rls.proto), the service counts hits per descriptor and answers OVER_LIMIT
past a limit per domain. Runs in the test's process; `requests` keeps what it received."""
import threading
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

F = descriptor_pb2.FieldDescriptorProto


def _file():
    fd = descriptor_pb2.FileDescriptorProto(name="tollgate_test_rls.proto", package="rlstest", syntax="proto3")

    def message(name, fields):
        m = fd.message_type.add(name=name)
        for number, (fname, ftype, label, type_name) in enumerate(fields, start=1):
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name
        return m

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    message("UInt64Value", [("value", F.TYPE_UINT64, opt, None)])
    message("Entry", [("key", F.TYPE_STRING, opt, None), ("value", F.TYPE_STRING, opt, None)])
    message("Override", [("requests_per_unit", F.TYPE_UINT32, opt, None), ("unit", F.TYPE_INT32, opt, None)])
    message("Descriptor", [("entries", F.TYPE_MESSAGE, rep, ".rlstest.Entry"),
                           ("limit", F.TYPE_MESSAGE, opt, ".rlstest.Override"),
                           ("hits_addend", F.TYPE_MESSAGE, opt, ".rlstest.UInt64Value")])
    message("Request", [("domain", F.TYPE_STRING, opt, None), ("descriptors", F.TYPE_MESSAGE, rep, ".rlstest.Descriptor"),
                        ("hits_addend", F.TYPE_UINT32, opt, None)])
    message("HeaderValue", [("key", F.TYPE_STRING, opt, None), ("value", F.TYPE_STRING, opt, None), ("raw_value", F.TYPE_BYTES, opt, None)])
    message("Response", [("overall_code", F.TYPE_INT32, opt, None), ("statuses", F.TYPE_BYTES, rep, None),
                         ("response_headers_to_add", F.TYPE_MESSAGE, rep, ".rlstest.HeaderValue"),
                         ("request_headers_to_add", F.TYPE_MESSAGE, rep, ".rlstest.HeaderValue")])
    return fd


_pool = descriptor_pool.DescriptorPool()
_pool.Add(_file())
Request = message_factory.GetMessageClass(_pool.FindMessageTypeByName("rlstest.Request"))
Response = message_factory.GetMessageClass(_pool.FindMessageTypeByName("rlstest.Response"))

OK, OVER_LIMIT = 1, 2


class RateLimitService:
    """Counts hits per (domain, descriptor) and refuses past `limits[domain]`."""

    def __init__(self, limits):
        self.limits = limits
        self.counts = {}
        self.requests = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handler = grpc.method_handlers_generic_handler("envoy.service.ratelimit.v3.RateLimitService", {
            "ShouldRateLimit": grpc.unary_unary_rpc_method_handler(
                self.should_rate_limit, request_deserializer=Request.FromString,
                response_serializer=lambda m: m.SerializeToString()),
        })
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def should_rate_limit(self, request, context):
        seen = {"domain": request.domain, "descriptors": [
            {"entries": [(e.key, e.value) for e in d.entries], "hits": d.hits_addend.value if d.HasField("hits_addend") else None}
            for d in request.descriptors]}
        code, left = OK, None
        with self.lock:
            self.requests.append(seen)
            for d in seen["descriptors"]:
                key = (request.domain, tuple(d["entries"]))
                self.counts[key] = self.counts.get(key, 0) + (d["hits"] if d["hits"] is not None else 1)
                limit = self.limits.get(request.domain)
                if limit is not None:
                    left = limit - self.counts[key]
                    if left < 0:
                        code = OVER_LIMIT
        resp = Response(overall_code=code)
        if left is not None:
            resp.response_headers_to_add.add(key="x-ratelimit-remote-remaining", value=str(max(left, 0)))
        resp.request_headers_to_add.add(key="x-added", value=request.domain)
        # An answer a real service could get wrong: the gateway must skip it, not fail.
        resp.response_headers_to_add.add(key="bad header", value="x")
        resp.request_headers_to_add.add(key="x-bad", value="line\nbreak")
        return resp

    def stop(self):
        self.server.stop(0)
