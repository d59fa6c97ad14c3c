"""The broker's own ceiling: a bare consumer reading the benchmark's records, nothing else.

A plain kafka-python KafkaConsumer with the worker's fetch settings (fetch sizes, fetch
wait, records per poll), assigned every partition of the frames topic: no consumer group,
so no join to wait for and no commits. It counts records and touches nothing else, so its
rate is what this broker and this client can deliver on this machine; the pipeline's
saturation rate on the same records, divided by it, is the share the framework keeps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from foundation.kafka import CLIENT_ID, fetch_config
from foundation.settings import Settings
from workers.flow import FETCH_WAIT_MIN_MS

_POLL_TIMEOUT_MS = 50  # the worker's poll timeout (workers/poller.py)
_STALL_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BareRun:
    fps: float
    records: int
    seconds: float


def bare_consume(settings: Settings, expected: int) -> BareRun:
    """Read the frames topic from its start until `expected` records came; records/s
    from the first poll to the last record."""
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=CLIENT_ID,
        enable_auto_commit=False,
        **fetch_config(settings),
        max_poll_records=settings.in_flight_limit,
        fetch_max_wait_ms=FETCH_WAIT_MIN_MS,
    )
    try:
        topic = settings.frames_topic
        partitions = [TopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]  # fmt: skip
        if not partitions:
            raise RuntimeError(f"bare consumer: topic {topic} has no partitions")
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        # Resolving the positions connects to the partitions' leader and looks the offsets
        # up: set-up the worker also finishes (with its group join) before its first result.
        for tp in partitions:
            consumer.position(tp)
        return _drain(consumer, expected)
    finally:
        consumer.close(autocommit=False)


def _drain(consumer: KafkaConsumer, expected: int) -> BareRun:
    records, started = 0, time.perf_counter()
    last = last_progress = started
    while records < expected:
        batches = consumer.poll(timeout_ms=_POLL_TIMEOUT_MS)
        now = time.perf_counter()
        if batches:
            records += sum(len(batch) for batch in batches.values())
            last = last_progress = now
        elif now - last_progress > _STALL_TIMEOUT_S:
            raise RuntimeError(f"bare consumer: {records} of {expected} records came")
    seconds = last - started
    return BareRun(records / seconds if seconds > 0 else 0.0, records, seconds)
