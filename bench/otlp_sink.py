"""An OTLP/HTTP trace sink for benchmarks: answers every POST /v1/traces with an empty success and
counts the spans it was sent (decoded with the OTLP protobuf definitions), so that a runtime with
tracing on exports somewhere real while bench/ab_runtime.sh measures it.

    .venv/bin/python bench/otlp_sink.py [PORT]   # 4318 by default; prints the span count on Ctrl-C or SIGTERM
"""

from __future__ import annotations

import contextlib
import http.server
import signal
import sys
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

SPANS = 0


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        global SPANS  # noqa: PLW0603 - one counter for the whole process
        req = trace_service_pb2.ExportTraceServiceRequest()
        req.ParseFromString(self.rfile.read(int(self.headers["Content-Length"])))
        SPANS += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 4318
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Sink)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it as Ctrl-C does
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    print(f"spans received: {SPANS}", flush=True)


if __name__ == "__main__":
    main()
