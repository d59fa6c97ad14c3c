"""Backfill jobs on real workers, the embedded broker and Redis: a time range of one stream
replays exactly its frames, a video file gives one result per frame, live results stay as
they were, and a task killed midway resumes from its checkpoint without redoing work.

Two worker starts in all (each ~8 s): one serves the first three checks and is then killed
mid-task; the second finishes the resumed task.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import time
from pathlib import Path

import cv2
import numpy as np
import redis

from foundation.kafka import end_offset, fetch_config, offset_for_time
from foundation.rediskeys import backfill_result_key, result_key
from framewire.worker_process import WorkerProcess
from schemas.frame import now_ms
from tests.cli_helpers import invoke
from tests.kafka_helpers import read_records
from tests.worker_harness import publish, synthetic_frames, wait_for_results, wait_until
from workers.backfill.jobs import JobStore
from workers.backfill.output import JOB_HEADER


def captured_frames(count: int, stream: str, seed: int, t0: int) -> list:
    """Synthetic frames of one stream captured 100 ms apart from t0."""
    frames = synthetic_frames(count, streams=1, seed=seed)
    return [dataclasses.replace(f, stream_id=stream, seq=i, captured_at_ms=t0 + 100 * i)
            for i, f in enumerate(frames)]  # fmt: skip


def job_of(output: str) -> str:
    return output.split("backfill job ")[1].split(":")[0]


def job_records(settings, job: str, expected: int) -> list:
    records = read_records(settings, settings.backfill_results_topic, expected=expected,
                           timeout_s=20)  # fmt: skip
    return [r for r in records if dict(r.headers).get(JOB_HEADER) == job.encode()]


def write_video(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (120, 160, 3), np.uint8))
    writer.release()
    return path


def test_backfill_time_range_video_live_untouched_and_resume(topics, tmp_path: Path) -> None:
    settings = topics
    client = redis.Redis.from_url(settings.redis_url)
    inside, other = f"{tmp_path.name[-12:]}-in", f"{tmp_path.name[-12:]}-other"
    t0 = now_ms() - 10_000  # capture times a little before the records are sent
    frames = captured_frames(60, inside, 1, t0) + captured_frames(60, other, 2, t0)
    worker = WorkerProcess(settings, tmp_path / "w1", FRAMEWIRE_BACKFILL_BATCH="8")
    try:
        worker.wait_ready()
        publish(settings, frames)
        live = wait_for_results(settings, [f.frame_id for f in frames])
        live_before = {f.frame_id: client.get(result_key(f.frame_id)) for f in frames}

        # A time range of one stream: frames 10..29 of `inside` (t0+1 s to t0+3 s).
        out = invoke(settings, "backfill", "--from", _iso(t0 + 1000), "--to", _iso(t0 + 3000),
                     "--stream-id", inside, "--wait")  # fmt: skip
        assert out.exit_code == 0, out.output
        job = job_of(out.output)
        wanted = {f.frame_id for f in frames[10:30]}
        found = {f.frame_id for f in frames if client.exists(backfill_result_key(job, f.frame_id))}
        assert found == wanted  # exactly the frames in range, none outside it
        records = job_records(settings, job, expected=20)
        assert sorted(json.loads(r.value)["frame_id"] for r in records) == sorted(wanted)
        versions = {json.loads(r.value)["model"]["version"] for r in records}
        assert versions == {live[frames[0].frame_id]["model"]["version"]}
        assert {f.frame_id: client.get(result_key(f.frame_id)) for f in frames} == live_before

        # A video file: one result per frame.
        video = write_video(tmp_path / "clip.avi", 30)
        out = invoke(settings, "backfill", "--source", str(video), "--wait")
        assert out.exit_code == 0, out.output
        video_job = job_of(out.output)
        records = job_records(settings, video_job, expected=20 + 30)
        seqs = sorted(json.loads(r.value)["seq"] for r in records)
        assert seqs == list(range(30))
        assert "30 frames scored" in out.output

        # A folder, killed midway: the checkpoint survives the worker.
        folder = _image_folder(tmp_path / "images", 400)
        out = invoke(settings, "backfill", "--source", str(folder))
        assert out.exit_code == 0, out.output
        folder_job = job_of(out.output)
        store = JobStore(client)
        [spec] = store.tasks(folder_job)
        wait_until(lambda: store.state(spec).position >= 80, 60, "the folder task to progress")
        worker.stop(signal.SIGKILL, timeout_s=10)
    finally:
        worker.stop()
    killed_at = store.state(spec).position
    assert 80 <= killed_at < 400, killed_at

    second = WorkerProcess(settings, tmp_path / "w2", FRAMEWIRE_BACKFILL_BATCH="8")
    try:
        second.wait_ready()
        out = invoke(settings, "backfill", "resume", folder_job, "--wait")
        assert out.exit_code == 0, out.output
    finally:
        assert second.stop() == 0, second.tail()
    final = store.state(spec)
    assert final.state == "done" and final.resumed_from == killed_at  # no finished work redone
    assert final.scored == 400 and final.position == 400
    ids = [k for k in client.scan_iter(f"fw:backfill:{folder_job}:result:*")]
    assert len(ids) == 400  # one result per image in Redis
    records = job_records(settings, folder_job, expected=20 + 30 + 400)
    assert 400 <= len(records) <= 400 + 8  # at most the chunk in flight written twice
    assert len({json.loads(r.value)["frame_id"] for r in records}) == 400


def test_status_cancel_and_bad_requests_are_one_line(topics, tmp_path: Path) -> None:
    settings = topics
    folder = _image_folder(tmp_path / "images", 3)
    out = invoke(settings, "backfill", "--source", str(folder), "--job", "bf-no-worker")
    assert out.exit_code == 0 and "1 task(s) queued" in out.output, out.output
    status = invoke(settings, "backfill", "status", "bf-no-worker", "--json")
    assert json.loads(status.output)["state"] == "queued"
    cancelled = invoke(settings, "backfill", "cancel", "bf-no-worker")
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.output, cancelled.output
    again = invoke(settings, "backfill", "--source", str(folder), "--job", "bf-no-worker")
    assert again.exit_code != 0 and "exists already" in again.output
    for args, message in [
        (["status", "bf-missing"], "no backfill job bf-missing"),
        (["resume", "bf-no-worker"], "was cancelled"),
        ([], "say what to backfill"),
        (["--from", "yesterday"], "--from: expected an ISO-8601 time"),
        (["--from", "2h", "--to", "3h"], "--to must be after --from"),
        (["--source", str(folder), "--from", "1h"], "no --from"),
        (["--source-topic", "no-such-topic"], "does not exist"),
    ]:
        result = invoke(settings, "backfill", *args)
        assert result.exit_code != 0, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, result.output


def test_offset_for_time_searches_when_the_broker_cannot_answer(topics) -> None:
    """The embedded broker answers offsets_for_times with -1: the binary search finds the
    first offset at or after a time, reading log2(n) records, and `end` past the last."""
    from kafka import KafkaConsumer, TopicPartition

    settings = topics
    frames = synthetic_frames(64, streams=1, seed=5)
    publish(settings, frames)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, **fetch_config(settings))
    try:
        tp = TopicPartition(settings.frames_topic, _partition_of(consumer, settings))
        consumer.assign([tp])
        high = end_offset(consumer, tp)
        consumer.seek(tp, 0)
        stamps = []
        while len(stamps) < high:
            stamps += [r.timestamp for r in consumer.poll(1000).get(tp, [])]
        for index in (0, 17, high - 1):
            expected = next(i for i, t in enumerate(stamps) if t >= stamps[index])
            assert offset_for_time(consumer, tp, stamps[index], 0, high) == expected
        assert offset_for_time(consumer, tp, stamps[-1] + 1, 0, high) == high
        assert offset_for_time(consumer, tp, 0, 0, high) == 0
    finally:
        consumer.close()


def _partition_of(consumer, settings) -> int:
    from kafka import TopicPartition

    ends = consumer.end_offsets([TopicPartition(settings.frames_topic, p)
                                 for p in consumer.partitions_for_topic(settings.frames_topic)])
    return max(ends, key=ends.get).partition  # fmt: skip


def _image_folder(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:04d}.png"), rng.integers(0, 256, (24, 32, 3), np.uint8))
    return folder


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"

