"""HTTP benchmark: the gateway over the streaming pipeline vs. a naive inline Flask endpoint.

`run_gateway_bench` starts one worker (a child process) and, in this process, the gateway
app and a naive Flask app that runs the same model inline in each request (the usual
"model in the view function" service). Both are served by the same threaded werkzeug
server on a free loopback port and driven the same way: at each concurrency level, N
client threads send synthetic JPEG frames until `requests_per_level` requests are done
(or MAX_LEVEL_S passed). `framewire bench --gateway` calls it and prints the figures.
"""

from __future__ import annotations

import http.client
import itertools
import json
import logging
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from foundation.kafka import create_topics
from foundation.settings import Settings
from framewire.worker_process import WorkerProcess
from producers.synthetic import SyntheticSource

MAX_LEVEL_S = 120.0  # bound on one system at one concurrency
_DISTINCT_IMAGES = 64
_WARM_UP_REQUESTS = 8
_CLIENT_TIMEOUT_S = 60.0


def run_gateway_bench(
    settings: Settings,
    concurrencies: list[int],
    requests_per_level: int,
    device: str = "cpu",
) -> dict[str, Any]:
    """Requests/s, p50/p95/p99 latency (ms), errors and mean batch size per concurrency,
    for the framewire gateway and for the naive inline endpoint, measured in one run."""
    if not concurrencies or min(concurrencies) < 1 or requests_per_level < 1:
        raise ValueError("need concurrencies >= 1 and requests_per_level >= 1")
    # A topic prefix of its own: no earlier frames, and no other worker's group.
    settings = settings.replace(
        topic_prefix=f"{settings.topic_prefix}gwbench-{uuid.uuid4().hex[:8]}.",
        gateway_max_in_flight=max(64, 2 * max(concurrencies)),
        gateway_timeout_ms=max(settings.gateway_timeout_ms, 30_000),
        api_keys="",  # the clients below send no key
    )
    create_topics(settings)
    images = _images(_DISTINCT_IMAGES)
    from producers.gateway import create_app, gateway_state  # Flask app, no Kafka yet

    worker = WorkerProcess(settings, settings.state_dir / "bench-gateway", device=device)
    gateway = create_app(settings)
    try:
        worker.wait_ready()
        naive = naive_app(settings, device)
        levels = []
        with _serve(gateway) as gateway_port, _serve(naive) as naive_port:
            systems: dict[str, tuple[int, str]] = {
                "framewire": (gateway_port, "/v1/predict"),
                "naive": (naive_port, "/predict"),
            }
            for port, path in systems.values():
                _drive(port, path, images, _WARM_UP_REQUESTS, 2)
            for concurrency in concurrencies:
                level: dict[str, Any] = {"concurrency": concurrency}
                for name, (port, path) in systems.items():
                    level[name] = _drive(port, path, images, requests_per_level, concurrency)
                levels.append(level)
    finally:
        gateway_state(gateway).resources.close()
        worker.stop()
    return {
        "device": device,
        "requests_per_level": requests_per_level,
        "image": f"{images[0][1]}x{images[0][2]} synthetic JPEG",
        "levels": levels,
    }


def naive_app(settings: Settings, device: str = "cpu") -> Flask:
    """The baseline: decode, preprocess and run the model inside the request, batch of 1."""
    from models.loader import load_model, resolve_model
    from workers.engine import InferenceEngine

    engine = InferenceEngine(
        load_model(resolve_model(settings.model or None)), device=device, max_batch=1,
        precision=settings.precision,
    )
    app = Flask("framewire.naive")

    @app.post("/predict")
    def predict() -> Response:
        data = np.frombuffer(request.get_data(), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if image is None:
            return Response('{"error":"undecodable"}', 422, mimetype="application/json")
        predictions = engine.predict(engine.preprocess_host(image)[None])[0]
        return jsonify({"predictions": predictions, "batch_size": 1, "status": "ok"})

    return app


def _images(count: int) -> list[tuple[bytes, int, int]]:
    source = SyntheticSource(streams=8, realtime=False, seed=7)
    return [(f.data, f.width or 0, f.height or 0) for f in itertools.islice(source, count)]


@contextmanager
def _serve(app: Flask):
    # werkzeug logs every request at INFO: thousands of lines would bury the bench's table.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="bench-http", daemon=True)
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join(10)


def _drive(
    port: int, path: str, images: list[tuple[bytes, int, int]], total: int, concurrency: int
) -> dict[str, Any]:
    """`total` POSTs by `concurrency` threads, each on its own keep-alive connection."""
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    batches: list[int] = []
    parts: list[dict[str, float]] = []  # framewire's result/1 latency parts, per request
    errors = [0]
    deadline = time.monotonic() + MAX_LEVEL_S

    def client() -> None:
        conn = _connect(port)
        while time.monotonic() < deadline:
            i = next(counter)
            if i >= total:
                break
            body = images[i % len(images)][0]
            started = time.perf_counter()
            status, payload = _post(conn, path, body)
            elapsed = (time.perf_counter() - started) * 1000
            if status == 0:
                conn.close()
                conn = _connect(port)
            with lock:
                if status == 200:
                    latencies.append(elapsed)
                    answer = json.loads(payload)
                    batches.append(int(answer.get("batch_size", 1)))
                    if isinstance(answer.get("latency_ms"), dict):
                        parts.append({**answer["latency_ms"], "request": elapsed})
                else:
                    errors[0] += 1
        conn.close()

    started = time.perf_counter()
    _run_threads(client, concurrency)
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies) + errors[0],
        "rps": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": _percentile(latencies, 50),
        "p95_ms": _percentile(latencies, 95),
        "p99_ms": _percentile(latencies, 99),
        "errors": errors[0],
        "mean_batch": round(statistics.fmean(batches), 2) if batches else 0.0,
        **_where_the_time_goes(parts),
    }


def _where_the_time_goes(parts: list[dict[str, float]]) -> dict[str, float]:
    """Medians (ms) of a framewire request's parts: `queue` (the gateway's capture time to
    decode start: publishing, the broker, the poll thread), the worker's decode, batch wait
    and inference, `write` (inference done to result written), and `outside` (the HTTP
    request less the result's capture-to-completion: parsing before capture, the reply's
    way back through Redis and HTTP)."""
    if not parts:
        return {}
    worker = ("queue", "decode", "batch_wait", "inference")

    def median(values: list[float]) -> float:
        return round(statistics.median(values), 2)

    out = {f"{name}_ms": median([p[name] for p in parts]) for name in worker}
    # total is whole milliseconds (two ms timestamps), the parts are not: under 1 ms of
    # writing can come out a little below zero.
    out["write_ms"] = max(0.0, median([p["total"] - sum(p[n] for n in worker) for p in parts]))
    out["outside_ms"] = median([p["request"] - p["total"] for p in parts])
    return out


def _connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=_CLIENT_TIMEOUT_S)


def _post(conn: http.client.HTTPConnection, path: str, body: bytes) -> tuple[int, bytes]:
    """(status, body); status 0 when the connection failed."""
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "image/jpeg"})
        response = conn.getresponse()
        return response.status, response.read()
    except (OSError, http.client.HTTPException):
        return 0, b""


def _run_threads(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(MAX_LEVEL_S + _CLIENT_TIMEOUT_S)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(float(np.percentile(values, q)), 2)
