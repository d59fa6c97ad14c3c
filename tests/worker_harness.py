"""Publish synthetic frames and wait for their results (workers: framewire.worker_process)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
import uuid

import redis

from foundation.rediskeys import result_key, stream_key
from foundation.settings import Settings
from producers.pacing import Pacer
from producers.publisher import Publisher
from producers.synthetic import SyntheticSource
from schemas import Frame


def synthetic_frames(count: int, streams: int = 2, seed: int = 0) -> list[Frame]:
    """Synthetic frames on stream ids of their own (Redis stream keys are global)."""
    source = SyntheticSource(streams=streams, fps=30, seed=seed, realtime=False)
    tag = uuid.uuid4().hex[:8]
    return [
        dataclasses.replace(frame, stream_id=f"{tag}-{frame.stream_id}")
        for frame in itertools.islice(source, count)
    ]


def publish(settings: Settings, frames: list[Frame]) -> None:
    with Publisher(settings) as publisher:
        stats = publisher.publish(frames)
    assert stats.sent == len(frames), stats.summary()


def wait_for_results(
    settings: Settings, frame_ids: list[str], timeout_s: float = 90
) -> dict[str, dict]:
    """frame_id -> result/1 dict for every id, or AssertionError naming how many are missing."""
    client = redis.Redis.from_url(settings.redis_url)
    found: dict[str, dict] = {}
    deadline = time.monotonic() + timeout_s
    missing = list(frame_ids)
    while missing:
        values = client.mget([result_key(i) for i in missing])
        for frame_id, value in zip(missing, values, strict=True):
            if value is not None:
                found[frame_id] = json.loads(value)
        missing = [i for i in missing if i not in found]
        if missing and time.monotonic() > deadline:
            raise AssertionError(f"{len(missing)} of {len(frame_ids)} frames have no result")
        if missing:
            time.sleep(0.2)
    return found


class PacedPublisher(threading.Thread):
    """Publishes frames at a steady rate in the background, so a test can act mid-stream."""

    def __init__(self, settings: Settings, frames: list[Frame], fps: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.frames, self.fps = settings, frames, fps
        self.sent = 0

    def run(self) -> None:
        with Publisher(self.settings) as publisher:
            pacer = Pacer(self.fps)
            for frame in self.frames:
                pacer.wait()
                publisher.send(frame)
            publisher.flush()
            self.sent = publisher.stats.sent


def count_results(settings: Settings, frame_ids: list[str]) -> int:
    client = redis.Redis.from_url(settings.redis_url)
    return sum(v is not None for v in client.mget([result_key(i) for i in frame_ids]))


def wait_until(condition, timeout_s: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def assert_switched_once(settings: Settings, results: dict[str, dict], old: str, new: str) -> None:
    """Per stream: exactly one result per frame in its Redis stream, and the model version
    of the results in seq order is `old` first, then `new`, changing once and never back."""
    client = redis.Redis.from_url(settings.redis_url)
    streams: dict[str, list[tuple[int, str]]] = {}
    for result in results.values():
        streams.setdefault(result["stream_id"], []).append(
            (result["seq"], result["model"]["version"])
        )
    for stream, pairs in streams.items():
        versions = [version for _, version in sorted(pairs)]
        entries = client.xrange(stream_key(stream))
        ids = [json.loads(fields[b"result"])["frame_id"] for _, fields in entries]
        assert len(ids) == len(set(ids)) == len(versions), stream  # one result per frame
        switch = versions.index(new)
        assert switch > 0 and set(versions[:switch]) == {old}, versions
        assert set(versions[switch:]) == {new}, versions  # changes once, never back
