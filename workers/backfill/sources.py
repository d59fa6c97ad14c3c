"""What a backfill task reads, from a position on: a partition's offsets, a video's
frames, a chunk of a folder's images.

A source yields chunks of up to `size` positions. Each chunk has the items to score (each
can be prepared for any model input, so a model swap mid-task only means preparing again)
and the position after the chunk, which becomes the task's checkpoint once the chunk's
results are written. Positions a task skips (another stream, outside the time range, a
record that is not a frame) still move the checkpoint.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from kafka import KafkaConsumer, TopicPartition

from foundation.kafka import CLIENT_ID, fetch_config
from foundation.settings import Settings
from models.spec import InputSpec, prepare
from schemas import Source
from schemas.frame import now_ms
from workers.backfill.plan import TaskSpec
from workers.decode import FrameDecoder
from workers.work import WorkItem

_POLL_MS = 1_000
_EMPTY_POLLS = 10  # a partition that returns nothing this many times in a row ends the task


class SourceError(RuntimeError):
    """The task's input cannot be read; str() is one line."""


@dataclass
class Item:
    """One frame to score, and how to prepare it for a model's input."""

    frame_id: str
    stream_id: str
    seq: int
    captured_at: int
    source: Source | None
    record: object | None = None  # a consumed frame/1 record
    image: np.ndarray | None = None  # decoded BGR pixels (files)

    def prepare(self, spec: InputSpec, decoder: FrameDecoder) -> np.ndarray:
        if self.image is not None:
            return prepare(self.image, spec)
        item = decoder.decode(WorkItem(self.record, 0, time.time()), spec)
        if not item.ok:
            raise ValueError(f"{item.error_stage}: {item.error}")
        assert item.image is not None
        return item.image


@dataclass
class Chunk:
    items: list[Item]
    next_position: int
    skipped: list[str] = field(default_factory=list)  # one reason per skipped position


def read(spec: TaskSpec, settings: Settings, position: int, size: int) -> Iterator[Chunk]:
    """Chunks from position (the checkpoint) to the end of the task."""
    if spec.kind == "topic":
        return _topic(spec, settings, position, size)
    if spec.kind == "video":
        return _video(spec, position, size)
    return _images(spec, position, size)


def _topic(spec: TaskSpec, settings: Settings, position: int, size: int) -> Iterator[Chunk]:
    assert spec.topic is not None and spec.partition is not None and spec.end is not None
    decoder = FrameDecoder(settings.max_frame_bytes, settings.max_frame_pixels)
    tp = TopicPartition(spec.topic, spec.partition)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, client_id=CLIENT_ID,
                             enable_auto_commit=False, max_poll_records=size,
                             **fetch_config(settings))  # fmt: skip
    try:
        consumer.assign([tp])
        consumer.seek(tp, position)
        empty = 0
        while position < spec.end:
            records = consumer.poll(timeout_ms=_POLL_MS).get(tp, [])
            if not records:
                empty += 1
                if empty >= _EMPTY_POLLS:  # deleted by retention, or the broker is gone
                    raise SourceError(f"{spec.topic}/{spec.partition}: nothing to read at "
                                      f"offset {position} (end {spec.end})")  # fmt: skip
                continue
            empty = 0
            chunk = Chunk([], position)
            for record in records:
                if record.offset < position:  # fetched before the seek
                    continue
                if record.offset >= spec.end:  # the offsets before it are gone (compaction)
                    position = spec.end
                    break
                _keep(chunk, record, spec, decoder)
                position = record.offset + 1
            chunk.next_position = position
            yield chunk
    finally:
        consumer.close()


def _keep(chunk: Chunk, record: object, spec: TaskSpec, decoder: FrameDecoder) -> None:
    """Add the record to the chunk if it is a frame of the task's stream and time range."""
    item = decoder.parse(WorkItem(record, 0, time.time()))
    frame = item.frame
    if frame is None:
        chunk.skipped.append(f"offset {record.offset}: {item.error}")  # type: ignore[attr-defined]
        return
    if spec.stream_id is not None and frame.stream_id != spec.stream_id:
        return
    captured = frame.captured_at_ms
    if (spec.since_ms is not None and captured < spec.since_ms) or (
        spec.until_ms is not None and captured >= spec.until_ms
    ):
        return
    chunk.items.append(Item(frame.frame_id, frame.stream_id, frame.seq, captured,
                            Source(record.topic, record.partition, record.offset),  # type: ignore[attr-defined]
                            record=record))  # fmt: skip


def _video(spec: TaskSpec, position: int, size: int) -> Iterator[Chunk]:
    path = spec.paths[0]
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise SourceError(f"{path}: OpenCV cannot open it as a video")
    try:
        if position:
            capture.set(cv2.CAP_PROP_POS_FRAMES, position)
        while spec.end is None or position < spec.end:
            chunk = Chunk([], position)
            while len(chunk.items) < size:
                ok, image = capture.read()
                if not ok:
                    break
                chunk.items.append(_file_item(spec, f"{path}#{position}", position, image))
                position += 1
            chunk.next_position = position
            if not chunk.items:
                return
            yield chunk
    finally:
        capture.release()


def _images(spec: TaskSpec, position: int, size: int) -> Iterator[Chunk]:
    assert spec.end is not None
    while position < spec.end:
        chunk = Chunk([], position)
        for index in range(position, min(position + size, spec.end)):
            path = spec.paths[index - spec.start]
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                chunk.skipped.append(f"{path}: not a readable image")
            else:
                chunk.items.append(_file_item(spec, path, index, image))
        chunk.next_position = position = min(position + size, spec.end)
        yield chunk


def _file_item(spec: TaskSpec, what: str, seq: int, image: np.ndarray) -> Item:
    # The same id on a re-run of the job (a resumed task overwrites, never doubles).
    frame_id = uuid.uuid5(uuid.NAMESPACE_URL, f"framewire-backfill:{spec.job}:{what}").hex
    stream_id = spec.stream_id or Path(spec.paths[0]).stem
    return Item(frame_id, stream_id, seq, now_ms(), None, image=image)
