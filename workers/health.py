"""The worker's HTTP port: /metrics for Prometheus, /healthz and /readyz for supervisors.

/readyz answers 503 with the reasons (JSON) while the worker cannot serve: the model is not
loaded, the consumer has not joined its group, or it has lag and receives nothing (a
stall). Kubernetes then takes it out of rotation and the operator sees why; it answers 200
again by itself when records flow.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

Readiness = Callable[[], list[str]]  # the reasons the worker is not ready; empty: ready


def serve_health(port: int, readiness: Readiness) -> ThreadingHTTPServer | None:
    """Serve on port (0: do nothing) in a daemon thread of its own."""
    if not port:
        return None
    handler = type("Handler", (_Handler,), {"readiness": staticmethod(readiness)})
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)
    threading.Thread(target=server.serve_forever, name="framewire-health", daemon=True).start()
    return server


class _Handler(BaseHTTPRequestHandler):
    readiness: Readiness

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/metrics":
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
        elif path == "/healthz":
            self._json(200, {"status": "ok"})
        elif path == "/readyz":
            reasons = self.readiness()
            status = "not ready" if reasons else "ready"
            self._json(503 if reasons else 200, {"status": status, "reasons": reasons})
        else:
            self._json(404, {"error": f"no such path {path}; try /metrics, /healthz, /readyz"})

    def _json(self, status: int, body: dict) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # scrapes every few seconds would drown the worker's own log
