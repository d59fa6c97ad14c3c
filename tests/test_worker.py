"""The streaming worker end to end: real broker, real Redis, real Celery worker processes."""

from __future__ import annotations

import collections
import contextlib
import json
import signal

import pytest
import redis

from foundation.servers import EmbeddedRedis
from foundation.settings import Settings
from framewire.worker_process import WorkerProcess
from tests.kafka_helpers import read_records
from tests.worker_harness import (
    PacedPublisher,
    count_results,
    publish,
    synthetic_frames,
    wait_for_results,
    wait_until,
)


@pytest.fixture
def worker_settings(topics: Settings) -> Settings:
    # Short drains keep failure cases quick; small batches make batching visible.
    return topics.replace(max_batch=8, drain_timeout_s=15.0)


def results_on_topic(settings: Settings) -> list[dict]:
    """Every result on the topic (read until idle, so duplicates would show)."""
    records = read_records(settings, settings.results_topic, timeout_s=60, idle_s=3)
    return [json.loads(r.value) for r in records]


def test_frames_in_results_out_with_correct_predictions(worker_settings, tmp_path):
    frames = synthetic_frames(120, streams=3)
    worker = WorkerProcess(worker_settings, tmp_path)
    try:
        worker.wait_ready()
        publish(worker_settings, frames)
        results = wait_for_results(worker_settings, [f.frame_id for f in frames])
    finally:
        assert worker.stop() == 0
    correct = sum(results[f.frame_id]["predictions"][0]["label"] == f.label for f in frames)
    assert correct / len(frames) >= 0.95
    for frame in frames:
        result = results[frame.frame_id]
        assert result["status"] == "ok"
        assert (result["stream_id"], result["seq"]) == (frame.stream_id, frame.seq)
        assert result["source"]["topic"] == worker_settings.frames_topic
    on_topic = results_on_topic(worker_settings)
    assert sorted(r["frame_id"] for r in on_topic) == sorted(f.frame_id for f in frames)
    client = redis.Redis.from_url(worker_settings.redis_url)
    for stream_id in {f.stream_id for f in frames}:
        last = max((f for f in frames if f.stream_id == stream_id), key=lambda f: f.seq)
        latest = json.loads(client.get(f"fw:stream:{stream_id}:latest"))
        assert latest["seq"] == last.seq
        ours = {f.frame_id for f in frames}
        entries = [
            json.loads(e[b"result"]) for _, e in client.xrange(f"fw:stream:{stream_id}:results")
        ]
        seqs = [r["seq"] for r in entries if r["frame_id"] in ours]
        assert seqs == sorted(f.seq for f in frames if f.stream_id == stream_id)
    assert "worker stopped" in worker.log_text() or "pipeline stopped" in worker.log_text()


def stream_then_stop(settings: Settings, tmp_path, sig: int) -> tuple[list[str], object]:
    """Start a worker, stream 300 frames at it, and stop it with sig after 60 results.
    Returns the frame ids and the publisher, still sending."""
    frames = synthetic_frames(300, streams=2)
    ids = [f.frame_id for f in frames]
    worker = WorkerProcess(settings, tmp_path)
    worker.wait_ready()
    publisher = PacedPublisher(settings, frames, fps=150)
    publisher.start()
    wait_until(lambda: count_results(settings, ids) >= 60, what="first results")
    code = worker.stop(sig)
    if sig == signal.SIGTERM:
        assert code == 0  # warm shutdown: drain, commit, leave the group
        assert "pipeline stopped" in worker.log_text()
    assert count_results(settings, ids) < len(frames), "stopped mid-stream"
    return ids, publisher


def finish_with_a_new_worker(settings: Settings, tmp_path, ids: list[str], publisher) -> None:
    worker = WorkerProcess(settings, tmp_path)
    try:
        publisher.join(30)
        assert publisher.sent == len(ids)
        wait_for_results(settings, ids, timeout_s=120)
    finally:
        assert worker.stop() == 0


def test_sigkill_mid_stream_then_restart_loses_nothing(worker_settings, tmp_path):
    ids, publisher = stream_then_stop(worker_settings, tmp_path, signal.SIGKILL)
    finish_with_a_new_worker(worker_settings, tmp_path, ids, publisher)


def test_sigterm_mid_stream_loses_nothing_and_processes_nothing_twice(worker_settings, tmp_path):
    ids, publisher = stream_then_stop(worker_settings, tmp_path, signal.SIGTERM)
    finish_with_a_new_worker(worker_settings, tmp_path, ids, publisher)
    per_frame = collections.Counter(r["frame_id"] for r in results_on_topic(worker_settings))
    assert set(per_frame) == set(ids)
    assert max(per_frame.values()) == 1, "a frame was processed twice"


def test_bad_records_go_to_the_dead_letter_topic_and_the_worker_goes_on(worker_settings, tmp_path):
    settings = worker_settings.replace(max_frame_bytes=300_000, max_frame_pixels=1_000_000)
    bad = bad_records()
    good = synthetic_frames(20)
    worker = WorkerProcess(settings, tmp_path)
    try:
        worker.wait_ready()
        send_raw(settings, bad)
        publish(settings, good)
        results = wait_for_results(settings, [f.frame_id for f in good])
    finally:
        assert worker.stop() == 0
    assert all(r["status"] == "ok" for r in results.values())
    dead = read_records(settings, settings.dlq_topic, len(bad), timeout_s=30)
    reasons = {}
    for record in dead:
        headers = dict(record.headers)
        case = headers["test-case"].decode()
        reasons[case] = (headers["fw-error-stage"].decode(), headers["fw-error"].decode())
        assert record.value == bad[case][1], "the original bytes are kept"
    assert reasons == {
        case: (stage, reasons.get(case, ("", ""))[1]) for case, (_, _, stage, _) in bad.items()
    }
    for case, (_, _, _, expected_reason) in bad.items():
        assert expected_reason in reasons[case][1], (case, reasons[case])
    rejected = [e for e in _log_events(worker) if e.get("event") == "frame rejected"]
    assert {e.get("frame_id") for e in rejected} >= {"bad-corrupt", "bad-missing-header"}
    # A record with valid headers also gets an error result, so a waiting client hears why.
    corrupt = redis.Redis.from_url(settings.redis_url).get("fw:result:bad-corrupt")
    assert json.loads(corrupt)["status"] == "error"


def test_two_workers_share_the_partitions(worker_settings, tmp_path):
    # Frames are keyed by stream id, random per run: with 4 streams every key lands in one
    # worker's half of the partitions 1 run in 8; with 16, 1 in 32,768.
    frames = synthetic_frames(400, streams=16)
    workers = [WorkerProcess(worker_settings, tmp_path) for _ in range(2)]
    try:
        for worker in workers:
            worker.wait_ready()
        wait_until(lambda: all(_owns_partitions(w) for w in workers), 60, "both workers assigned")
        publish(worker_settings, frames)
        wait_for_results(worker_settings, [f.frame_id for f in frames])
    finally:
        codes = [worker.stop() for worker in workers]
    assert codes == [0, 0]
    events = read_records(worker_settings, worker_settings.monitoring_topic, timeout_s=30)
    assert len(_batch_workers(events)) == 2, "both workers ran batches"


class PersistentRedis(EmbeddedRedis):
    """A Redis that keeps its data across stop/start, so a restart is an outage, not a wipe."""

    def argv(self) -> list[str]:
        argv = super().argv()
        at = argv.index("--appendonly")
        argv[at + 1] = "yes"
        return [*argv, "--appendfsync", "always"]


def bad_records() -> dict[str, tuple[list, bytes, str, str]]:
    """case -> (headers, value, expected fw-error-stage, expected text in fw-error)."""
    import cv2
    import numpy as np

    jpeg = synthetic_frames(1)[0].data
    huge_png = cv2.imencode(".png", np.zeros((1200, 1200, 3), np.uint8))[1].tobytes()

    def headers(case: str, encoding: str = "jpeg", drop: str | None = None) -> list:
        hs = [("fw-schema", b"frame/1"), ("fw-frame-id", f"bad-{case}".encode()),
              ("fw-stream-id", b"bad"), ("fw-seq", b"1"), ("fw-ts", b"1700000000000"),
              ("fw-encoding", encoding.encode()), ("test-case", case.encode())]  # fmt: skip
        return [h for h in hs if h[0] != drop]

    return {
        "corrupt": (headers("corrupt"), b"\xff\xd8" + bytes(range(256)) * 8, "decode", "jpeg"),
        "truncated": (headers("truncated"), jpeg[: len(jpeg) // 2], "decode", "truncated jpeg"),
        "empty": (headers("empty"), b"", "schema", "empty"),
        "oversized-bytes": (
            headers("oversized-bytes"),
            b"\xff\xd8" + b"\0" * 400_000,
            "schema",
            "300000",
        ),
        "oversized-pixels": (
            headers("oversized-pixels", "png"),
            huge_png,
            "decode",
            "exceeds the limit",
        ),
        "missing-header": (headers("missing-header", drop="fw-seq"), jpeg, "schema", "fw-seq"),
    }


def send_raw(settings: Settings, records: dict[str, tuple[list, bytes, str, str]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, max_request_size=2**21)
    for hs, value, _, _ in records.values():
        producer.send(settings.frames_topic, key=b"bad", value=value, headers=hs)
    producer.flush()
    producer.close()


def _log_events(worker: WorkerProcess) -> list[dict]:
    events = []
    for line in worker.log_text().splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                events.append(json.loads(line))
    return events


def _owns_partitions(worker: WorkerProcess) -> bool:
    changes = [e for e in _log_events(worker) if e.get("event", "").startswith("partitions ")]
    return (
        bool(changes)
        and changes[-1]["event"] == "partitions assigned"
        and bool(changes[-1]["partitions"])
    )


def _batch_workers(records) -> set[str]:
    events = [json.loads(r.value) for r in records]
    return {e["worker"] for e in events if e["type"] == "batch"}
