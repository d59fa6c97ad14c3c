"""Labelled frames (frame/1 with `fw-label`) from a Kafka topic into the dataset store.

The topic is read without a consumer group (assign and seek to the beginning): an import
is a reader, not a member that shares work with the workers, and it costs no group join.
Records are handled as they arrive and only (blob, label, source) is kept, so a long
topic is never held in memory. Each item's source is `topic/partition/offset`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from kafka import TopicPartition

from foundation.kafka import topic_reader
from foundation.settings import Settings
from mlops.data.importers import Imported
from mlops.data.store import DatasetError, DatasetStore
from schemas import Frame, SchemaError
from schemas.frame import RAW_ENCODINGS

_POLL_MS = 500
# Once every partition has reached the end offsets asked at the start, keep reading this
# long at most: Tansu's end_offsets can answer the base offset of the last batch, short by
# up to a batch (shared/ENVIRONMENT.md), and a live producer must not keep an import going.
_GRACE_S = 2.0
_STALL_S = 15.0  # no record at all for this long before the end: stop, say so


class UnusableFrame(Exception):
    """A valid frame that cannot become an image file; str() is the reason, for a count."""


@dataclass(frozen=True)
class FrameFilter:
    stream_id: str | None = None
    since_ms: int | None = None  # capture time (fw-ts), ms since the epoch

    def reason_to_leave_out(self, frame: Frame) -> str | None:
        if frame.label is None:
            return "unlabelled"
        if self.stream_id is not None and frame.stream_id != self.stream_id:
            return "other streams"
        if self.since_ms is not None and frame.captured_at_ms < self.since_ms:
            return "captured before --since"
        return None


def import_topic(
    store: DatasetStore,
    name: str,
    settings: Settings,
    topic: str | None = None,
    select: FrameFilter = FrameFilter(),
) -> Imported:
    """The labelled frames of topic (default: the frames topic) that select keeps.

    Records that are not frame/1, or exceed settings.max_frame_bytes or max_frame_pixels,
    are skipped and counted (Imported.skipped); frames left out by select are counted by
    reason (Imported.left_out). The time filter reads the whole topic: the embedded broker
    does not answer offsets_for_times, and capture time is a header, not the record time.
    """
    topic = topic or settings.frames_topic
    added: list[tuple[str, str | None, str]] = []
    skipped: Counter[str] = Counter()
    left_out: Counter[str] = Counter()
    records = 0
    for record in _read_all(settings, topic):
        records += 1
        try:
            frame = Frame.from_record(record.key, record.value, record.headers,
                                      max_bytes=settings.max_frame_bytes)  # fmt: skip
            reason = select.reason_to_leave_out(frame)
            if reason:
                left_out[reason] += 1
                continue
            data = image_file(frame, settings.max_frame_pixels)
        except SchemaError as exc:
            skipped[f"not frame/1 (bad {exc.field or 'record'})"] += 1
            continue
        except UnusableFrame as exc:
            skipped[str(exc)] += 1
            continue
        source = f"{record.topic}/{record.partition}/{record.offset}"
        added.append((store.put_blob(data), frame.label, source))
    lines = tuple(f"{count} record{'s' * (count != 1)}: {why}" for why, count in skipped.items())
    if not added:
        tally = ", ".join(f"{n} {why}" for why, n in {**left_out, **skipped}.items())
        raise DatasetError(f"no labelled frames to import from {topic}: {records} records read"
                           + (f" ({tally})" if tally else ""))  # fmt: skip
    version, created = store.commit(name, added)
    return Imported(version, created, records, lines, dict(left_out))


def image_file(frame: Frame, max_pixels: int) -> bytes:
    """The frame as an image file: encoded frames as they are, raw pixels as PNG (lossless,
    so every blob is a file any tool opens and the pixels are the ones sent)."""
    if frame.encoding not in RAW_ENCODINGS:
        return bytes(frame.data)
    assert frame.width is not None and frame.height is not None  # from_record checked
    if frame.width * frame.height > max_pixels:
        raise UnusableFrame("raw frame above max_frame_pixels")
    pixels = np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3)
    if frame.encoding == "raw-rgb8":
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, png = cv2.imencode(".png", pixels)
    if not ok:
        raise UnusableFrame("raw frame could not be written as PNG")
    return png.tobytes()


def _read_all(settings: Settings, topic: str) -> Iterator[Any]:
    """Every record of topic from its beginning up to its end when the read started."""
    try:
        reader = topic_reader(settings, [topic], from_beginning=True)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    try:
        partitions: list[TopicPartition] = sorted(reader.assignment())
        ends = reader.end_offsets(partitions)
        last_record = time.monotonic()
        caught_up_at: float | None = None
        while True:
            batch = reader.poll(timeout_ms=_POLL_MS)
            got = [record for records in batch.values() for record in records]
            yield from got
            now = time.monotonic()
            last_record = now if got else last_record
            if caught_up_at is None and all(reader.position(p) >= ends[p] for p in partitions):
                caught_up_at = now
            if caught_up_at is not None and (not got or now - caught_up_at > _GRACE_S):
                return
            if caught_up_at is None and now - last_record > _STALL_S:
                raise DatasetError(f"{topic}: no records for {_STALL_S:.0f} s before its end")
    finally:
        reader.close()
