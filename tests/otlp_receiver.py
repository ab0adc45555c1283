"""A real OTLP trace receiver for tests: gRPC (TraceService/Export) and HTTP (/v1/traces,
protobuf or JSON) on 127.0.0.1; prints one JSON line per received span.
Usage: python otlp_receiver.py GRPC_PORT HTTP_PORT"""
import base64
import gzip
import json
import sys
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf.json_format import Parse
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tsg


def value_of(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def dump(req, via):
    for rs in req.resource_spans:
        service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), None)
        for ss in rs.scope_spans:
            for sp in ss.spans:
                print(json.dumps({
                    "via": via, "service": service, "name": sp.name,
                    "trace_id": sp.trace_id.hex(), "span_id": sp.span_id.hex(), "parent_span_id": sp.parent_span_id.hex(),
                    "attributes": {a.key: value_of(a.value) for a in sp.attributes},
                }), flush=True)


def hex_ids_to_b64(o):  # OTLP/JSON ids are hex; protobuf's JSON parser expects base64
    if isinstance(o, dict):
        return {k: (base64.b64encode(bytes.fromhex(v)).decode() if k in ("traceId", "spanId", "parentSpanId") and v
                    else hex_ids_to_b64(v)) for k, v in o.items()}
    return [hex_ids_to_b64(x) for x in o] if isinstance(o, list) else o


class Service(tsg.TraceServiceServicer):
    def Export(self, request, context):
        dump(request, "grpc")
        return ts.ExportTraceServiceResponse()


class Http(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces":
            self.send_response(404)
            self.end_headers()
            return
        req = ts.ExportTraceServiceRequest()
        if "json" in (self.headers.get("content-type") or ""):
            Parse(json.dumps(hex_ids_to_b64(json.loads(body))), req)
        else:
            req.ParseFromString(body)
        dump(req, "http")
        out = ts.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    grpc_port, http_port = int(sys.argv[1]), int(sys.argv[2])
    server = grpc.server(futures.ThreadPoolExecutor(4))
    tsg.add_TraceServiceServicer_to_server(Service(), server)
    server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    server.start()
    print(f"listening grpc={grpc_port} http={http_port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", http_port), Http).serve_forever()
