"""The HTTP gateway end to end: real broker, real Redis, one CPU worker for the module.

The gateway app runs in this process: Flask's test client for single requests, a real
threaded werkzeug server on a loopback port for the concurrency test.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import json
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator

import pytest
from flask import Flask
from werkzeug.serving import make_server

from foundation.kafka import create_topics
from foundation.servers import EmbeddedKafka, EmbeddedRedis
from foundation.settings import Settings
from framewire.worker_process import WorkerProcess
from producers.gateway import create_app, gateway_state
from producers.synthetic import SyntheticSource
from schemas import Frame
from tests.kafka_helpers import read_records


@pytest.fixture(scope="module")
def gw_settings(
    kafka_server: EmbeddedKafka, redis_server: EmbeddedRedis, tmp_path_factory
) -> Settings:
    """Module-wide settings with a topic prefix of their own, topics created."""
    settings = Settings.load(
        environ={},
        kafka_bootstrap=kafka_server.address,
        redis_url=redis_server.address,
        topic_prefix=f"gw-{uuid.uuid4().hex[:8]}.",
        state_dir=str(tmp_path_factory.mktemp("gw-state")),
        partitions=2,
        max_batch=16,
        gateway_timeout_ms=30_000,
    )
    create_topics(settings)
    return settings


@pytest.fixture(scope="module")
def worker(gw_settings: Settings, tmp_path_factory) -> Iterator[WorkerProcess]:
    process = WorkerProcess(gw_settings, tmp_path_factory.mktemp("gw-worker"))
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def _app(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings)
    yield app
    gateway_state(app).resources.close()


@pytest.fixture(scope="module")
def app(gw_settings: Settings, worker: WorkerProcess) -> Iterator[Flask]:
    yield from _app(gw_settings)


@pytest.fixture(scope="module")
def client(app: Flask):
    return app.test_client()


def frames(count: int, streams: int = 8, seed: int = 11) -> list[Frame]:
    # Many streams: consecutive frames belong to different scenes with different labels.
    return list(itertools.islice(SyntheticSource(streams=streams, seed=seed, realtime=False),
                                 count))  # fmt: skip


def test_one_image_comes_back_with_its_prediction_and_stays_readable(client):
    frame = frames(1)[0]
    response = client.post(
        "/v1/predict?stream_id=phone-7", data=frame.data, content_type="image/jpeg"
    )
    assert response.status_code == 200, response.json
    result = response.json
    assert result["schema"] == "result/1"
    assert result["status"] == "ok"
    assert result["stream_id"] == "phone-7"
    assert result["predictions"][0]["label"] == frame.label
    assert len(response.headers["X-Request-Id"]) == 32
    stored = client.get(f"/v1/results/{result['frame_id']}")
    assert stored.status_code == 200 and stored.json == result
    latest = client.get("/v1/streams/phone-7/latest")
    assert latest.status_code == 200 and latest.json["frame_id"] == result["frame_id"]
    missing = client.get(f"/v1/results/{uuid.uuid4()}")
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def test_a_batch_of_16_comes_back_in_request_order(client):
    batch = frames(16)
    assert len({f.label for f in batch}) >= 3  # the order check below means something
    response = client.post(
        "/v1/predict/batch",
        data={"images": [(_file(f.data), f"{i}.jpg") for i, f in enumerate(batch)],
              "stream_id": "batch-cam"},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert response.status_code == 200, response.json
    results = response.json
    assert len(results) == 16
    assert [r["seq"] for r in results] == sorted(r["seq"] for r in results)
    assert len({r["frame_id"] for r in results}) == 16
    assert all(r["status"] == "ok" and r["stream_id"] == "batch-cam" for r in results)
    correct = sum(r["predictions"][0]["label"] == f.label for r, f in zip(results, batch,
                                                                          strict=True))
    assert correct >= 15, [(r["predictions"][0]["label"], f.label) for r, f in
                           zip(results, batch, strict=True)]  # fmt: skip


def test_a_json_batch_of_base64_images(client):
    batch = frames(3, seed=5)
    body = {"images": [base64.b64encode(f.data).decode() for f in batch]}
    response = client.post("/v1/predict/batch", json=body)
    assert response.status_code == 200, response.json
    labels = [r["predictions"][0]["label"] for r in response.json]
    assert labels == [f.label for f in batch]


def test_64_concurrent_requests_all_succeed_and_share_batches(gw_settings, worker):
    # One process takes all 64 at once here (gunicorn would spread them over its workers),
    # so its in-flight limit must admit them: the overload 503 has a test of its own.
    images = [f.data for f in frames(64, seed=21)]
    app_run = _app(gw_settings.replace(gateway_max_in_flight=64))
    app = next(app_run)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    start = threading.Barrier(len(images))
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def one(data: bytes) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=60)
        start.wait()
        conn.request("POST", "/v1/predict", body=data, headers={"Content-Type": "image/jpeg"})
        response = conn.getresponse()
        answer = (response.status, json.loads(response.read()))
        conn.close()
        with lock:
            answers.append(answer)

    clients = [threading.Thread(target=one, args=(data,)) for data in images]
    try:
        for c in clients:
            c.start()
        for c in clients:
            c.join(90)
    finally:
        server.shutdown()
        thread.join(10)
        next(app_run, None)  # closes the app's producer and Redis pool
    assert len(answers) == 64
    assert [status for status, _ in answers] == [200] * 64, [b for s, b in answers if s != 200]
    mean_batch = sum(body["batch_size"] for _, body in answers) / 64
    assert mean_batch > 1, f"requests did not share batches (mean batch {mean_batch})"


def test_a_frame_the_worker_rejects_is_reported_per_item(gw_settings, worker):
    # A gateway whose pixel limit is above the worker's passes a header the worker refuses:
    # the worker answers that frame with status "error" and the gateway passes it on.
    lenient = gw_settings.replace(max_frame_pixels=10**9)
    for app in _app(lenient):
        client = app.test_client()
        bomb = _png_header_only(20_000, 20_000)  # 400 Mpx, over the worker's 40 Mpx
        single = client.post("/v1/predict", data=bomb, content_type="image/png")
        assert single.status_code == 422, single.json
        error = single.json["error"]
        assert error["code"] == "frame_failed" and "exceeds the limit" in error["message"]
        assert error["result"]["status"] == "error"
        good = frames(1)[0]
        mixed = client.post(
            "/v1/predict/batch",
            data={"images": [(_file(good.data), "a.jpg"), (_file(bomb), "b.png")]},
            content_type="multipart/form-data",
        )
        assert mixed.status_code == 200, mixed.json
        assert [r["status"] for r in mixed.json] == ["ok", "error"]


def test_readyz_sees_kafka_redis_and_the_worker(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    checks = response.json["checks"]
    assert checks["redis"]["ok"] and checks["kafka"]["ok"] and checks["workers"]["ok"]
    assert client.get("/healthz").json == {"status": "ok"}


def test_metrics_count_requests_by_route_and_status(client):
    client.post("/v1/predict", data=b"nope", content_type="image/jpeg")
    text = client.get("/metrics").get_data(as_text=True)
    ok = 'framewire_gateway_requests_total{method="POST",route="/v1/predict",status="200"}'
    assert ok in text
    assert 'route="/v1/predict",status="422"' in text
    assert "framewire_gateway_request_seconds_bucket" in text
    assert "framewire_gateway_in_flight_requests" in text


def test_deadline_passed_is_a_504_with_the_frame_ids(topics):
    # No worker on this prefix: nothing answers.
    for app in _app(topics.replace(gateway_timeout_ms=300)):
        batch = frames(2)
        response = app.test_client().post(
            "/v1/predict/batch",
            json={"images": [base64.b64encode(f.data).decode() for f in batch]},
        )
        assert response.status_code == 504, response.json
        error = response.json["error"]
        assert error["code"] == "timeout"
        assert len(error["frame_ids"]) == 2 and error["pending"] == error["frame_ids"]
        published = read_records(topics, expected=2)
        headers = [dict(r.headers) for r in published]
        assert sorted(h["fw-frame-id"].decode() for h in headers) == sorted(error["frame_ids"])
        assert {h["fw-reply-to"].decode() for h in headers} == {error["request_id"]}


def test_consumer_lag_over_the_limit_is_a_503_before_publishing(topics):
    from producers.publisher import Publisher

    with Publisher(topics) as publisher:  # 5 frames nobody consumes: lag 5
        for frame in frames(5, streams=1):
            publisher.send(frame)
            publisher.flush()
    for app in _app(topics.replace(gateway_max_lag=2)):
        response = app.test_client().post(
            "/v1/predict", data=frames(1)[0].data, content_type="image/jpeg"
        )
        assert response.status_code == 503, response.json
        assert response.json["error"]["code"] == "overloaded"
        assert response.headers["Retry-After"]
    assert len(read_records(topics, expected=6, timeout_s=3)) == 5


def _file(data: bytes):
    import io

    return io.BytesIO(data)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and ends properly, with no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(
            ">I", zlib.crc32(kind + body)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
