"""The frames consumer: librdkafka (confluent-kafka), configured for the poll thread.

librdkafka fetches and parses records in C, on its own threads, without the GIL: 31 µs of
CPU per 61 KB frame against kafka-python's 118, which the poll thread spent holding the
GIL (scripts/kafka-clients.py; docs/PERFORMANCE.md, "Which Kafka client"). Its group join
against the embedded broker takes session.timeout.ms / 2, as kafka-python's does.

A record crosses the worker as a `Record`, which has the attributes of kafka-python's
ConsumerRecord that the worker reads, so that backfill's kafka-python readers and this
consumer feed the same stages.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from confluent_kafka import Consumer, Message

from foundation.kafka import fetch_config, group_timing_ms
from foundation.settings import Settings

# librdkafka keeps fetching ahead into a local queue until it holds this much: a bound on
# memory beside the in-flight limit, and enough for a fetch ahead at 10,000 frames/s.
_PREFETCH_KBYTES = 32_768
# With the local queue full, librdkafka checks again after this (1 s by default: at
# saturation the queue ran dry while the fetcher slept).
_FETCH_QUEUE_BACKOFF_MS = 5


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None


def record_of(message: Message) -> Record:
    return Record(message.topic(), message.partition(), message.offset(), message.key(),
                  message.value(), message.headers())  # fmt: skip


def consume_available(consumer: Consumer, limit: int, timeout_s: float) -> list[Message]:
    """Up to limit messages: what the local queue holds now, else the first to arrive within
    timeout_s and whatever came with it. (consume(limit, timeout) itself waits until it has
    all limit messages or the timeout passed: 50 ms of latency for every frame at low load.)"""
    messages = consumer.consume(limit, 0)
    if messages or timeout_s <= 0:
        return messages
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    return [first, *consumer.consume(limit - 1, 0)] if limit > 1 else [first]


def consumer_config(settings: Settings, client_id: str, fetch_wait_ms: int) -> dict[str, Any]:
    """The poll thread's consumer: no auto-commit (the tracker's commit points are committed
    by hand), fetches that fit the largest accepted frame, and a short fetch wait."""
    s = settings
    fetch = fetch_config(s)
    session_ms, heartbeat_ms = group_timing_ms(s)
    return {
        "bootstrap.servers": s.kafka_bootstrap,
        "group.id": s.group_id,
        "client.id": client_id,
        "enable.auto.commit": False,
        "auto.offset.reset": s.auto_offset_reset,
        "max.partition.fetch.bytes": fetch["max_partition_fetch_bytes"],
        "fetch.max.bytes": fetch["fetch_max_bytes"],
        "receive.message.max.bytes": fetch["receive_message_max_bytes"],
        # The broker answers a fetch at once when data is there; with none, it holds the
        # request this long. The 500 ms default would add up to 500 ms of latency to the
        # first frame after a quiet spell (workers/flow.py says when it grows).
        "fetch.wait.max.ms": fetch_wait_ms,
        "queued.min.messages": s.in_flight_limit,
        "queued.max.messages.kbytes": _PREFETCH_KBYTES,
        "fetch.queue.backoff.ms": _FETCH_QUEUE_BACKOFF_MS,
        # Draining a revoked partition may take up to drain_timeout_s inside consume().
        "max.poll.interval.ms": int((s.drain_timeout_s + 60) * 1000),
        "session.timeout.ms": session_ms,
        "heartbeat.interval.ms": heartbeat_ms,
    }
