"""Faults injected into a running system: real broker, real Redis, real worker processes.

Each test asserts what docs/ARCHITECTURE.md's "Failure modes" table promises: every frame
sent has exactly one result in Redis and at least one on the results topic (or, where the
fault makes that impossible for one frame, that frame is in the DLQ with why), and the
frames sent after the fault flow again.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
import pytest
import redis
from kafka import KafkaProducer

from foundation.kafka import create_topics
from foundation.rediskeys import stream_key
from foundation.servers import EmbeddedKafka, free_port
from foundation.settings import Settings
from framewire.worker_process import WorkerProcess
from producers.gateway import create_app, gateway_state
from schemas import Frame, new_frame_id, now_ms
from schemas.dlq import DeadLetter
from tests.kafka_helpers import read_records
from tests.test_worker import PersistentRedis
from tests.worker_harness import (
    PacedPublisher,
    count_results,
    publish,
    synthetic_frames,
    wait_for_results,
    wait_until,
)
from workers.deadline import EXIT_CODE


@pytest.fixture
def fault_settings(topics: Settings) -> Settings:
    return topics.replace(max_batch=8, drain_timeout_s=10.0)


def assert_answered_exactly_once(settings: Settings, frames: list[Frame]) -> None:
    """One result per frame in Redis (its key, and one entry in its stream's Redis Stream),
    and at least one on the results topic."""
    ids = [f.frame_id for f in frames]
    results = wait_for_results(settings, ids, timeout_s=120)
    assert all(results[i]["status"] == "ok" for i in ids)
    client = redis.Redis.from_url(settings.redis_url)
    entries: collections.Counter[str] = collections.Counter()
    for stream_id in {f.stream_id for f in frames}:
        for _, fields in client.xrange(stream_key(stream_id)):
            entries[json.loads(fields[b"result"])["frame_id"]] += 1
    assert {i: entries[i] for i in ids} == dict.fromkeys(ids, 1), "one stream entry a frame"
    wanted = set(ids)
    on_topic = read_records(
        settings, settings.results_topic, timeout_s=60,
        until=lambda records: wanted <= {json.loads(r.value)["frame_id"] for r in records},
    )  # fmt: skip
    assert wanted <= {json.loads(r.value)["frame_id"] for r in on_topic}


def dead_letters(settings: Settings, expected: int) -> list[DeadLetter]:
    records = read_records(settings, settings.dlq_topic, expected, timeout_s=60)
    return [DeadLetter.from_record(r.key, r.value, r.headers) for r in records]


def test_an_oversized_record_is_dead_lettered_with_its_coordinates_and_the_flow_goes_on(
    fault_settings, tmp_path
):
    # The first scenario of the reliability issue, at the default limits: the record is
    # above FRAMEWIRE_MAX_FRAME_BYTES (10 MB) and above what the worker's producer accepts,
    # so a DLQ copy of it whole could never be written.
    before, after = synthetic_frames(20, seed=1), synthetic_frames(20, seed=2)
    huge = b"\xff\xd8" + bytes(12_000_000)
    worker = WorkerProcess(fault_settings, tmp_path)
    try:
        worker.wait_ready()
        publish(fault_settings, before)
        producer = KafkaProducer(
            bootstrap_servers=fault_settings.kafka_bootstrap, max_request_size=16_000_000
        )
        sent = producer.send(
            fault_settings.frames_topic, key=b"huge", value=huge, headers=_headers("huge")
        ).get(timeout=30)
        producer.close()
        publish(fault_settings, after)
        assert_answered_exactly_once(fault_settings, before + after)
    finally:
        assert worker.stop() == 0
    (letter,) = dead_letters(fault_settings, 1)
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
        sent.topic, sent.partition, sent.offset,
    )  # fmt: skip
    assert letter.stage == "schema" and "10000000" in letter.reason
    assert letter.original_size == len(huge)
    assert letter.original_sha256 == hashlib.sha256(huge).hexdigest()
    assert letter.incomplete == ("value",)
    assert letter.value == huge[: fault_settings.dlq_max_value_bytes]


@pytest.mark.parametrize(
    ("fault", "exit_code"),
    [("crash-decode", -signal.SIGABRT),  # a native decoder crash
     ("hang-inference", EXIT_CODE)],  # a model that hangs: the inference deadline ends it
)  # fmt: skip
def test_a_frame_that_stops_its_worker_max_deliveries_times_is_dead_lettered_as_poison(
    fault_settings, tmp_path, fault, exit_code
):
    frames = synthetic_frames(30, streams=2, seed=3)
    poison = frames[10]
    # Two deliveries rather than the default three: each restart after a crash waits for the
    # group (the crashed member's session timeout, then the join: ~5 s).
    settings = fault_settings.replace(inference_deadline_s=2.0, max_deliveries=2)
    env = {"FRAMEWIRE_TEST_FAULTS": f"{fault}:{poison.frame_id}"}
    good_ids = [f.frame_id for f in frames if f is not poison]
    publish(settings, frames)
    exits = []
    while True:  # what a supervisor (Kubernetes, compose) does: start it again
        worker = WorkerProcess(settings, tmp_path, **env)
        if not _crashes(worker, settings, good_ids):
            break
        exits.append(worker.stop())
        assert len(exits) <= 2, f"stopped {len(exits)} times"
    try:
        assert exits == [exit_code] * 2
        assert_answered_exactly_once(settings, [f for f in frames if f is not poison])
    finally:
        assert worker.stop() == 0
    (letter,) = dead_letters(settings, 1)
    assert letter.stage == "poison" and letter.reason == "poison: 2 deliveries"
    assert dict(letter.headers)["fw-frame-id"] == poison.frame_id.encode()
    assert letter.complete and letter.value == poison.data


def test_redis_down_for_ten_seconds_mid_stream_loses_and_doubles_nothing(topics, tmp_path):
    own_redis = PersistentRedis(free_port(), tmp_path / "redis")
    own_redis.start()
    settings = topics.replace(redis_url=own_redis.address, max_batch=8)
    frames = synthetic_frames(400, streams=2, seed=4)
    ids = [f.frame_id for f in frames]
    worker = WorkerProcess(settings, tmp_path)
    try:
        worker.wait_ready()
        publisher = PacedPublisher(settings, frames, fps=40)
        publisher.start()
        wait_until(lambda: count_results(settings, ids) >= 30, what="first results")
        own_redis.stop()
        time.sleep(10)
        own_redis.start()
        publisher.join(30)
        assert_answered_exactly_once(settings, frames)
        assert "sink write failed, retrying" in worker.log_text()
    finally:
        assert worker.stop() == 0
        own_redis.stop()


def test_a_result_the_results_topic_refuses_for_good_dead_letters_only_its_frame(
    fault_settings, tmp_path
):
    frames = synthetic_frames(40, streams=2, seed=5)
    refused = frames[15]
    env = {"FRAMEWIRE_TEST_FAULTS": f"refuse-result:{refused.frame_id}"}
    worker = WorkerProcess(fault_settings, tmp_path, **env)
    try:
        worker.wait_ready()
        publish(fault_settings, frames)
        assert_answered_exactly_once(fault_settings, [f for f in frames if f is not refused])
        # Redis took its result; the results topic never will: the frame is in the DLQ.
        assert wait_for_results(fault_settings, [refused.frame_id])[refused.frame_id]
        (letter,) = dead_letters(fault_settings, 1)
    finally:
        assert worker.stop() == 0
    assert letter.stage == "sink"
    assert "results: MSG_SIZE_TOO_LARGE" in letter.reason
    assert dict(letter.headers)["fw-frame-id"] == refused.frame_id.encode()
    assert "sink write failed, retrying" not in worker.log_text(), "a permanent error is no retry"


def test_a_worker_killed_during_a_batch_hands_its_partitions_to_the_other(
    fault_settings, tmp_path
):
    frames = synthetic_frames(300, streams=16, seed=6)
    ids = [f.frame_id for f in frames]
    workers = [WorkerProcess(fault_settings, tmp_path) for _ in range(2)]
    try:
        for worker in workers:
            worker.wait_ready()
        publisher = PacedPublisher(fault_settings, frames, fps=60)
        publisher.start()
        wait_until(lambda: count_results(fault_settings, ids) >= 60, what="first results")
        assert workers[0].stop(signal.SIGKILL) == -signal.SIGKILL
        publisher.join(30)
        assert_answered_exactly_once(fault_settings, frames)
        assert "partitions assigned" in workers[1].log_text()
    finally:
        assert workers[1].stop() == 0


def test_the_gateway_keeps_waiting_requests_through_a_dropped_redis_connection(
    fault_settings, tmp_path
):
    settings = fault_settings.replace(gateway_timeout_ms=60_000)
    app = create_app(settings)
    client = app.test_client()
    images = [f.data for f in synthetic_frames(4, seed=7)]
    answers: list = [None] * len(images)

    def request(i: int) -> None:
        answers[i] = client.post(
            "/v1/predict", data=images[i], headers={"Content-Type": "image/jpeg"}
        )

    admin = redis.Redis.from_url(settings.redis_url)
    threads = [threading.Thread(target=request, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    # No worker yet: the requests wait on their reply lists. Then drop their connections.
    wait_until(lambda: len(_blocked_clients(admin)) >= len(images), 30, "requests waiting")
    for client_id in _blocked_clients(admin):
        admin.execute_command("CLIENT", "KILL", "ID", client_id)
    worker = WorkerProcess(settings, tmp_path)
    try:
        worker.wait_ready()
        for thread in threads:
            thread.join(90)
    finally:
        assert worker.stop() == 0
        gateway_state(app).resources.close()
    assert [a.status_code for a in answers] == [200] * len(images), [a.json for a in answers]
    assert all(a.json["status"] == "ok" for a in answers)


def test_a_broker_that_stops_answering_is_reported_as_a_stall_and_recovered_from(
    topics, tmp_path
):
    # A broker of its own, frozen with SIGSTOP while the worker has lag: fetches go
    # unanswered without an error, as the embedded broker's do once it is too full.
    broker = EmbeddedKafka(free_port(), tmp_path / "kafka")
    broker.start()
    # One batch in flight, and every frame waiting before the worker starts: a worker
    # that keeps up with the publisher would never have lag to report.
    settings = topics.replace(kafka_bootstrap=broker.address, max_batch=4, decode_threads=1,
                              max_in_flight=4, stall_after_s=3.0)  # fmt: skip
    create_topics(settings)
    frames = small_frames(3000)
    publish(settings, frames)
    port = free_port()
    worker = WorkerProcess(settings, tmp_path, "--metrics-port", str(port))
    try:
        worker.wait_ready()
        wait_until(lambda: _metric(port, "framewire_consumer_lag") > 0, 30, "lag")
        os.kill(broker.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: _readyz(port)[0] == 503, 30, "/readyz failing")
            assert "stalled" in _readyz(port)[1]["reasons"][0]
            assert _metric(port, "framewire_consumer_stalled") == 1
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        wait_until(lambda: _readyz(port)[0] == 200, 60, "/readyz recovered")
        wait_for_results(settings, [f.frame_id for f in frames], timeout_s=120)
        events = [json.loads(r.value) for r in read_records(
            settings, settings.monitoring_topic, timeout_s=30,
            until=lambda rs: any(b'"stage":"poll"' in r.value for r in rs))]  # fmt: skip
    finally:
        assert worker.stop() == 0
        broker.stop()
    (stall,) = [e for e in events if e["type"] == "error" and e["stage"] == "poll"]
    assert stall["reason"].startswith("stalled: lag ") and stall["lag"] > 0
    log = worker.log_text()
    assert "consumer stalled" in log and "consumer recovered" in log


def small_frames(count: int) -> list[Frame]:
    """Raw 64x48 frames: cheap to send and to decode, so lag builds from numbers alone."""
    pixels = np.random.default_rng(0).integers(0, 255, (48, 64, 3), np.uint8).tobytes()
    stream = f"small-{uuid.uuid4().hex[:8]}"
    return [
        Frame(stream_id=stream, seq=i, data=pixels, encoding="raw-bgr8", width=64, height=48,
              frame_id=new_frame_id(), captured_at_ms=now_ms())
        for i in range(count)
    ]  # fmt: skip


def _crashes(worker: WorkerProcess, settings: Settings, ids: list[str]) -> bool:
    """Whether the worker dies before every frame of ids has a result."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            return True
        if count_results(settings, ids) == len(ids):
            return False
        time.sleep(0.2)
    raise AssertionError(f"neither crashed nor answered:\n{worker.tail()}")


def _metric(port: int, name: str) -> float:
    """The sum of a metric's samples on the worker's /metrics (0 when unreachable)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.decode().splitlines()
        if line.startswith(name + " ") or line.startswith(name + "{")
    )


def _readyz(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
    except OSError:
        return 0, {}


def _blocked_clients(admin: redis.Redis) -> list[str]:
    """Ids of the connections waiting in BLPOP: the gateway's requests."""
    return [c["id"] for c in admin.client_list() if c.get("cmd") == "blpop"]


def _headers(frame_id: str) -> list[tuple[str, bytes]]:
    return [("fw-schema", b"frame/1"), ("fw-frame-id", frame_id.encode()),
            ("fw-stream-id", b"faults"), ("fw-seq", b"1"), ("fw-ts", b"1700000000000"),
            ("fw-encoding", b"jpeg")]  # fmt: skip
