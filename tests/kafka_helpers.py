"""Reading a topic back in tests, without a consumer group.

Group joins cost seconds against the embedded broker, so records are read with assign()
and seek_to_beginning(). Tansu's end_offsets may answer the base offset of the last batch
rather than last offset + 1 (shared/ENVIRONMENT.md), so a read stops when it has the
expected number of records, or when nothing new came for `idle_s`, never on end_offsets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
from kafka import KafkaConsumer, TopicPartition

from foundation.settings import Settings
from schemas import Frame


def read_records(
    settings: Settings,
    topic: str | None = None,
    expected: int | None = None,
    timeout_s: float = 15.0,
    idle_s: float = 2.0,
    until: Callable[[list[Any]], bool] | None = None,
) -> list[Any]:
    """The records of `topic` (default: the frames topic), in partition order.

    Returns once at least `expected` records are read and `until(records)` holds (each
    when given); with neither, when nothing new arrived for idle_s; at the latest at
    timeout_s, with what was read (the caller's assertion then says what is missing).
    """
    topic = topic or settings.frames_topic
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions = consumer.partitions_for_topic(topic)
        while not partitions and time.monotonic() < deadline:
            time.sleep(0.1)
            partitions = consumer.partitions_for_topic(topic)
        assert partitions, f"topic {topic} has no partitions"
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        records: list[Any] = []
        last_new = time.monotonic()
        open_ended = expected is None and until is None
        while time.monotonic() < deadline:
            if not open_ended and (expected is None or len(records) >= expected) and (
                until is None or until(records)
            ):
                break
            batch = consumer.poll(timeout_ms=200)
            got = [r for rs in batch.values() for r in rs]
            if got:
                records.extend(got)
                last_new = time.monotonic()
            elif open_ended and time.monotonic() - last_new > idle_s:
                break
        return records
    finally:
        consumer.close()


def read_frames(
    settings: Settings, topic: str | None = None, expected: int | None = None, **kw: Any
) -> list[Frame]:
    """The topic's records decoded as frame/1 (a SchemaError fails the test)."""
    return [
        Frame.from_record(r.key, r.value, r.headers)
        for r in read_records(settings, topic, expected, **kw)
    ]


def decode_image(frame: Frame) -> np.ndarray:
    """The BGR pixels of a frame (raw or encoded); fails the test when they do not decode."""
    if frame.encoding in ("raw-bgr8", "raw-rgb8"):
        assert frame.width is not None and frame.height is not None
        return np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3)
    image = cv2.imdecode(np.frombuffer(frame.data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, f"{frame.encoding} frame {frame.frame_id} does not decode"
    return image
