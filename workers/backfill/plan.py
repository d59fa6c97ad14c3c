"""Planning a backfill job: what each task scores, decided before any task runs.

    --from/--to on a topic -> one task per partition: the offsets [start, end) that can
                              hold frames captured in the range
    --source VIDEO         -> one task for the file
    --source FOLDER        -> one task per CHUNK images

A partition's start is the first offset whose record timestamp is at or after the time
(foundation.kafka.offset_for_time: offsets_for_times, checked, or a binary search over
offsets where the broker cannot answer; never a scan of the topic). Record timestamps are
when the producer sent a frame, within moments of its capture; the search is widened by
CLOCK_SLACK_MS on both sides, and the task keeps exactly the frames whose capture time
(fw-ts) is in range.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import DefaultPartitioner

from foundation.imageinfo import IMAGE_SUFFIXES
from foundation.kafka import CLIENT_ID, end_offset, fetch_config, offset_for_time
from foundation.settings import Settings

CHUNK = 500  # images per task of a folder: a few seconds of device time each
CLOCK_SLACK_MS = 60_000  # capture time vs. the record's send time

KINDS = ("topic", "video", "images")


class PlanError(ValueError):
    """A backfill request that cannot be planned; str() is one line for the user."""


@dataclass(frozen=True)
class TaskSpec:
    """One task of a job: the message a worker receives (JSON)."""

    job: str
    task: str  # unique in the job: p3 (partition 3), f0 (a file), c2 (the third chunk)
    kind: str  # one of KINDS
    start: int = 0  # first position: an offset, a video frame, or the folder index of paths[0]
    end: int | None = None  # one past the last position; None: to the end of the file
    topic: str | None = None
    partition: int | None = None
    paths: tuple[str, ...] = ()  # a video file, or a chunk of image files
    stream_id: str | None = None  # topic: only this stream; files: the results' stream id
    since_ms: int | None = None  # capture time range, for topic tasks
    until_ms: int | None = None
    model: str | None = None  # None: the model the worker serves
    overwrite: bool = False  # also replace the live results in Redis

    @property
    def celery_id(self) -> str:
        return f"{self.job}-{self.task}"

    @property
    def total(self) -> int | None:
        """Positions to cover, when known before the task runs (a video's is not)."""
        return None if self.end is None else self.end - self.start

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "paths": list(self.paths)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        spec = cls(**{k: v for k, v in data.items() if k in known})
        if spec.kind not in KINDS:
            raise PlanError(f"unknown backfill task kind {spec.kind!r}")
        return dataclasses.replace(spec, paths=tuple(spec.paths))


def topic_tasks(
    settings: Settings, job: str, topic: str, since_ms: int | None, until_ms: int | None,
    stream_id: str | None = None, **options: Any,
) -> list[TaskSpec]:  # fmt: skip
    """One task per partition of topic that can hold frames captured in [since, until).

    With stream_id only that stream's partition: frames are keyed by stream id, and the
    producer's partitioner (kafka-python's murmur2, the Java client's too) puts a key on
    one partition while the partition count stays the same.
    """
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, client_id=CLIENT_ID,
                             enable_auto_commit=False, **fetch_config(settings))  # fmt: skip
    try:
        ids = sorted(consumer.partitions_for_topic(topic) or ())
        if not ids:
            raise PlanError(f"topic {topic} does not exist (or has no partitions)")
        if stream_id is not None:
            ids = [DefaultPartitioner()(stream_id.encode(), ids, ids)]
        tasks = []
        for partition in ids:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            low = consumer.beginning_offsets([tp])[tp]
            high = end_offset(consumer, tp)
            start = low if since_ms is None else offset_for_time(
                consumer, tp, since_ms - CLOCK_SLACK_MS, low, high)  # fmt: skip
            end = high if until_ms is None else offset_for_time(
                consumer, tp, until_ms + CLOCK_SLACK_MS, low, high)  # fmt: skip
            if end > start:
                tasks.append(TaskSpec(job, f"p{partition}", "topic", start, end, topic=topic,
                                      partition=partition, stream_id=stream_id,
                                      since_ms=since_ms, until_ms=until_ms, **options))  # fmt: skip
        return tasks
    finally:
        consumer.close()


def file_tasks(job: str, source: Path, stream_id: str | None = None, **options: Any
               ) -> list[TaskSpec]:  # fmt: skip
    """A video file: one task. A folder: one task per CHUNK images (sorted, recursive)."""
    source = source.resolve()
    if source.is_file():
        return [TaskSpec(job, "f0", "video", paths=(str(source),),
                         stream_id=stream_id or source.stem, **options)]  # fmt: skip
    if not source.is_dir():
        raise PlanError(f"{source}: no such file or folder")
    files = sorted(str(p) for p in source.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())  # fmt: skip
    if not files:
        raise PlanError(f"{source}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return [
        TaskSpec(job, f"c{n}", "images", start=i, end=min(i + CHUNK, len(files)),
                 paths=tuple(files[i : i + CHUNK]), stream_id=stream_id or source.name,
                 **options)
        for n, i in enumerate(range(0, len(files), CHUNK))
    ]  # fmt: skip
