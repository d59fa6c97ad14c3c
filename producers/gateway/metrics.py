"""Prometheus metrics of the gateway, served at /metrics.

Each app gets its own registry (tests and the benchmark create several apps in one
process). With several gunicorn workers each process counts for itself; `framewire
gateway` then sets PROMETHEUS_MULTIPROC_DIR, prometheus_client writes the values to files
there, and /metrics sums every process (gunicorn_conf.py cleans up after a dead worker).
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

# Seconds; a request spans publish + queue + batch + inference + Redis round trips.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        target = None if self.multiprocess else self.registry
        self.requests = Counter(
            "framewire_gateway_requests_total", "HTTP requests by route and status",
            ["route", "method", "status"], registry=target,
        )  # fmt: skip
        self.latency = Histogram(
            "framewire_gateway_request_seconds", "HTTP request latency by route",
            ["route"], buckets=_LATENCY_BUCKETS, registry=target,
        )  # fmt: skip
        self.in_flight = Gauge(
            "framewire_gateway_in_flight_requests", "HTTP requests being served",
            registry=target, multiprocess_mode="livesum",
        )  # fmt: skip
        self.images = Counter(
            "framewire_gateway_images_total", "images published as frames", registry=target
        )
        if self.multiprocess:
            MultiProcessCollector(self.registry)

    def install(self, app: Flask) -> None:
        """Count every request, whatever its route or outcome."""

        @app.before_request
        def _start() -> None:
            g.fw_started = time.perf_counter()
            self.in_flight.inc()

        @app.after_request
        def _finish(response: Response) -> Response:
            if "fw_started" in g:
                route = request.url_rule.rule if request.url_rule else "unmatched"
                self.requests.labels(route, request.method, str(response.status_code)).inc()
                self.latency.labels(route).observe(time.perf_counter() - g.fw_started)
            return response

        @app.teardown_request
        def _done(_exc: BaseException | None) -> None:
            if g.pop("fw_started", None) is not None:
                self.in_flight.dec()

    def response(self) -> Response:
        return Response(generate_latest(self.registry), mimetype=CONTENT_TYPE_LATEST)
