"""The gateway's answers to bad input, auth and overload: status, JSON body, nothing published.

No worker is needed: every request here is refused before anything is published, which
the last check of each test confirms by reading the (empty) frames topic.
"""

from __future__ import annotations

import base64
import gc
import io
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
from flask import Flask

from foundation.settings import Settings
from producers.gateway import create_app, gateway_state
from producers.synthetic import SyntheticSource
from tests.kafka_helpers import read_records

JPEG = next(iter(SyntheticSource(realtime=False))).data


def _noise_jpeg(side: int) -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), np.uint8)
    return cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 100])[1].tobytes()


BIG_JPEG = _noise_jpeg(300)  # ~200 KB, over the per-image limit below, under the body limit


@pytest.fixture
def app(topics: Settings) -> Iterator[Flask]:
    settings = topics.replace(
        max_frame_bytes=100_000, gateway_max_body_bytes=400_000, gateway_max_batch=4
    )
    app = create_app(settings)
    yield app
    gateway_state(app).resources.close()


def multipart(field: str, *blobs: bytes, mimetype: str = "image/jpeg", **form: str) -> dict:
    files = [(io.BytesIO(b), f"{i}.jpg", mimetype) for i, b in enumerate(blobs)]
    return {"data": {field: files, **form}, "content_type": "multipart/form-data"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# (what, route, request keyword arguments, status, error code)
BAD_REQUESTS = [
    ("text body", "/v1/predict", {"data": b"hi", "content_type": "text/plain"},
     415, "unsupported_media_type"),
    ("gif body", "/v1/predict", {"data": b"GIF89a", "content_type": "image/gif"},
     415, "unsupported_media_type"),
    ("raw body on batch", "/v1/predict/batch", {"data": JPEG, "content_type": "image/jpeg"},
     415, "unsupported_media_type"),
    ("gif part", "/v1/predict", multipart("image", b"GIF89a", mimetype="image/gif"),
     415, "unsupported_media_type"),
    ("not an image", "/v1/predict", {"data": b"\x00" * 100, "content_type": "image/jpeg"},
     422, "undecodable_image"),
    ("truncated jpeg", "/v1/predict",
     {"data": JPEG[: len(JPEG) // 2], "content_type": "image/jpeg"}, 422, "undecodable_image"),
    ("empty body", "/v1/predict", {"data": b"", "content_type": "image/jpeg"},
     422, "undecodable_image"),
    ("one bad image in a batch", "/v1/predict/batch",
     multipart("images", JPEG, JPEG[:500]), 422, "undecodable_image"),
    ("image over the per-image limit", "/v1/predict",
     {"data": BIG_JPEG, "content_type": "image/jpeg"}, 413, "image_too_large"),
    ("body over the body limit", "/v1/predict/batch",
     multipart("images", BIG_JPEG, BIG_JPEG, BIG_JPEG), 413, "body_too_large"),
    ("too many images", "/v1/predict/batch", multipart("images", *[JPEG] * 5),
     413, "too_many_images"),
    ("two images on the single route", "/v1/predict", multipart("image", JPEG, JPEG),
     413, "too_many_images"),
    ("malformed json", "/v1/predict/batch",
     {"data": b'{"images": [', "content_type": "application/json"}, 400, "malformed_json"),
    ("json not an object", "/v1/predict", {"json": [b64(JPEG)]}, 400, "malformed_json"),
    ("bad base64", "/v1/predict/batch", {"json": {"images": ["not base64!"]}},
     400, "bad_base64"),
    ("no image", "/v1/predict/batch", {"json": {"images": []}}, 400, "no_image"),
    ("bad stream id", "/v1/predict", multipart("image", JPEG, stream_id="has space"),
     400, "bad_field"),
]  # fmt: skip


def test_each_bad_request_gets_its_status_and_json_error_and_publishes_nothing(app, topics):
    client = app.test_client()
    for what, route, kwargs, status, code in BAD_REQUESTS:
        response = client.post(route, **kwargs)
        assert response.status_code == status, (what, response.json)
        error = response.json["error"]
        assert error["code"] == code, (what, error)
        assert isinstance(error["message"], str) and error["message"], what
    assert client.get("/v1/predict").status_code == 405
    assert client.get("/nowhere").json["error"]["code"] == "not_found"
    assert read_records(topics, idle_s=1.0, timeout_s=5) == []


def test_api_keys(topics):
    app = create_app(topics.replace(api_keys="key-one, key-two"))
    client = app.test_client()
    bad_body = {"data": b"hi", "content_type": "text/plain"}
    missing = client.post("/v1/predict", **bad_body)
    assert missing.status_code == 401 and missing.json["error"]["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    basic = client.post("/v1/predict", headers={"Authorization": "Basic a2V5LW9uZQ=="}, **bad_body)
    assert basic.status_code == 401
    wrong = client.post("/v1/predict", headers={"Authorization": "Bearer key-three"}, **bad_body)
    assert wrong.status_code == 403 and wrong.json["error"]["code"] == "forbidden"
    assert client.get("/v1/results/x").status_code == 401
    for key in ("key-one", "key-two"):
        ok = client.post("/v1/predict", headers={"Authorization": f"Bearer {key}"}, **bad_body)
        assert ok.status_code == 415  # past auth, refused for its body
    assert client.get("/healthz").status_code == 200  # probes need no key
    gateway_state(app).resources.close()


def test_too_many_requests_in_flight_is_a_503_with_retry_after(topics):
    app = create_app(topics.replace(gateway_max_in_flight=2))
    limiter = gateway_state(app).limiter
    assert limiter.try_acquire() and limiter.try_acquire()  # two requests waiting
    response = app.test_client().post("/v1/predict", data=JPEG, content_type="image/jpeg")
    assert response.status_code == 503
    assert response.json["error"]["code"] == "overloaded"
    assert response.headers["Retry-After"] == "1"
    limiter.release()
    limiter.release()
    assert limiter.count == 0
    assert read_records(topics, idle_s=1.0, timeout_s=5) == []
    gateway_state(app).resources.close()


def test_not_ready_without_a_frames_topic(settings):
    # `settings` has no topics created: Kafka answers, but the frames topic is missing.
    app = create_app(settings.replace(gateway_max_lag=0))
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    error = response.json["error"]
    assert error["code"] == "not_ready" and not error["checks"]["kafka"]["ok"]
    assert error["checks"]["redis"]["ok"]
    gateway_state(app).resources.close()


def test_gunicorn_command_serves_the_app_threaded(settings):
    from framewire.cli.gateway import gunicorn_command

    argv, env = gunicorn_command(
        settings.replace(gateway_port=8123, gateway_workers=3, gateway_threads=16)
    )
    assert argv[1:3] == ["-m", "gunicorn"]
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:8123"
    assert argv[argv.index("--workers") + 1] == "3"
    assert argv[argv.index("--threads") + 1] == "16"
    assert argv[-1] == "producers.gateway.wsgi:serve()"
    assert env["FRAMEWIRE_KAFKA_BOOTSTRAP"] == settings.kafka_bootstrap
    assert "PROMETHEUS_MULTIPROC_DIR" in env  # several processes: metrics add up


def test_images_are_checked_from_the_header_without_decoding():
    from producers.gateway.images import sniff_encoding, validate_image

    upload = validate_image(JPEG, "x", 10**6, 10**8)
    assert (upload.encoding, upload.width, upload.height) == ("jpeg", 320, 240)
    png = cv2.imencode(".png", np.zeros((5, 7, 3), np.uint8))[1].tobytes()
    assert sniff_encoding(png) == "png"
    assert validate_image(png, "x", 10**6, 10**8).width == 7


def test_the_served_app_freezes_what_it_built(topics, monkeypatch):
    from producers.gateway import wsgi

    for name, value in topics.to_env().items():
        monkeypatch.setenv(name, value)
    gc.unfreeze()
    app = wsgi.serve()
    try:  # Flask, the clients: out of the collector's walk (foundation/collector.py)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
        gateway_state(app).resources.close()
