"""Kafka connection helpers: the topics framewire owns, and reachability checks.

kafka-python is used against Apache Kafka in production and against the embedded Tansu
broker on laptops and in CI; where the two differ, the workaround is commented here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, NoBrokersAvailable, TopicAlreadyExistsError

from foundation.settings import Settings
from schemas import Event

# Topic suffixes of DESIGN.md; the prefix comes from FRAMEWIRE_TOPIC_PREFIX.
TOPIC_NAMES = ("frames", "results", "monitoring", "frames.dlq", "results.backfill", "feedback")

CLIENT_ID = "framewire"


@dataclass(frozen=True)
class TopicStatus:
    name: str
    partitions: int
    created: bool  # False: it existed already


def kafka_answers(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """True when a Kafka-protocol broker answers at bootstrap."""
    try:
        admin = _admin(bootstrap, timeout_s)
    except (NoBrokersAvailable, KafkaError, OSError, ValueError):
        return False
    admin.close()
    return True


def create_topics(settings: Settings, timeout_s: float = 10.0) -> list[TopicStatus]:
    """Create framewire's topics where missing (idempotent); report each one's partitions."""
    admin = _admin(settings.kafka_bootstrap, timeout_s)
    created = []
    try:
        for suffix in TOPIC_NAMES:
            topic = NewTopic(
                settings.topic(suffix),
                num_partitions=settings.partitions,
                replication_factor=settings.replication_factor,
                topic_configs=_topic_configs(settings, suffix),
            )
            try:
                admin.create_topics([topic], timeout_ms=int(timeout_s * 1000))
                created.append(topic.name)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()
    return [
        TopicStatus(name, len(partitions_of(settings, name)), name in created)
        for name in (settings.topic(s) for s in TOPIC_NAMES)
    ]


def partitions_of(settings: Settings, topic: str) -> set[int]:
    """Partition ids of a topic, empty when it does not exist.

    Read through a consumer's metadata rather than KafkaAdminClient.describe_topics: the
    latter fails to parse Tansu's metadata answer (an ACL operation code it does not know).
    """
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, client_id=CLIENT_ID
    )
    try:
        return consumer.partitions_for_topic(topic) or set()
    finally:
        consumer.close()


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """kafka-python producer settings for image frames, shared by the publisher and the
    worker's sinks; measured and explained in producers/publisher.py."""
    acks: str | int = settings.producer_acks
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "client_id": f"{CLIENT_ID}-producer",
        "acks": "all" if acks == "all" else int(acks),
        "enable_idempotence": settings.producer_idempotence == "on",
        "linger_ms": settings.producer_linger_ms,
        "batch_size": settings.producer_batch_bytes,
        "max_request_size": max(settings.max_frame_bytes + 65_536,
                                settings.producer_batch_bytes),
        "max_block_ms": int(settings.producer_max_block_s * 1000),
        "compression_type": None,
    }
    config.update(overrides)
    if config["acks"] != "all":
        # The idempotent producer requires acks=all.
        config["enable_idempotence"] = False
    return config


def rdkafka_producer_config(
    settings: Settings, client_id: str, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """librdkafka (confluent-kafka) producer settings, in its names, shared by the publisher
    (producers/publisher.py, where they are measured and explained) and the worker's sinks
    (workers/sinks/kafka_sink.py)."""
    acks = settings.producer_acks
    config: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "client.id": client_id,
        "acks": "all" if acks == "all" else int(acks),
        "linger.ms": settings.producer_linger_ms,
        "batch.size": settings.producer_batch_bytes,
        "message.max.bytes": max(settings.max_frame_bytes + 65_536,
                                 settings.producer_batch_bytes),
        "compression.type": "none",
        # The Java client's partitioner (kafka-python's too): a stream's frames land on the
        # partition backfill planning computes for its key (workers/backfill/plan.py).
        # librdkafka's own default hashes keys differently.
        "partitioner": "murmur2_random",
    }  # fmt: skip
    config.update(overrides or {})
    # The idempotent producer requires acks=all.
    config["enable.idempotence"] = settings.producer_idempotence == "on" and config["acks"] == "all"
    return config


@contextmanager
def event_sender(settings: Settings, key: str) -> Iterator[Callable[[Event], None]]:
    """send(event) onto the monitoring topic, keyed by `key` (who sends: "monitor",
    "retrainer"); flushed and closed on the way out. The workers send theirs through their
    own sink (workers/sinks/kafka_sink.py), beside their results."""
    producer = KafkaProducer(**producer_config(settings, client_id=f"{CLIENT_ID}-{key}"))
    try:
        yield lambda event: producer.send(settings.monitoring_topic, key=key.encode(),
                                          value=event.to_json())  # fmt: skip
    finally:
        producer.flush(timeout=10)
        producer.close(timeout=10)


def group_timing_ms(settings: Settings) -> tuple[int, int]:
    """A consumer-group member's session timeout and heartbeat interval (ms): a crashed
    member's partitions wait the timeout for it, and it heartbeats three times within it,
    as Kafka advises."""
    session_ms = int(settings.consumer_session_timeout_s * 1000)
    return session_ms, max(500, session_ms // 3)


def fetch_config(settings: Settings) -> dict[str, int]:
    """Consumer sizes that let a fetch carry the largest accepted frame.

    The receive limit must be above the fetch limits: kafka-python's default of 1 MB
    refuses a larger fetch response outright ("Invalid frame length"), and the embedded
    broker answers with more than one partition's worth when it has it.
    """
    partition = max(settings.max_frame_bytes + 65_536, 1_048_576)
    total = max(settings.max_frame_bytes + 65_536, 52_428_800)
    return {"max_partition_fetch_bytes": partition, "fetch_max_bytes": total,
            "receive_message_max_bytes": total + 1_048_576}  # fmt: skip


def topic_reader(settings: Settings, topics: list[str], from_beginning: bool) -> KafkaConsumer:
    """A consumer assigned every partition of topics, at their start or their end.

    No consumer group: a reader (a tail, the demo's result counter) is not a member that
    shares work with the workers, and it costs no group join. A missing topic is a
    ValueError naming it.
    """
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, client_id=CLIENT_ID)
    partitions = []
    for topic in topics:
        ids = consumer.partitions_for_topic(topic)
        if not ids:
            consumer.close()
            raise ValueError(f"topic {topic} does not exist")
        partitions += [TopicPartition(topic, p) for p in sorted(ids)]
    consumer.assign(partitions)
    if from_beginning:
        consumer.seek_to_beginning()
    else:
        consumer.seek_to_end()
    return consumer


# Finding offsets by time ------------------------------------------------------------------
# A partition's offset for a time is asked with offsets_for_times and checked by reading
# the record there and the one before. Where the broker cannot answer (the embedded Tansu
# answers offset 0 for any time, shared/ENVIRONMENT.md), a binary search over offsets reads
# one record per step: log2(records) fetches, never a scan of the partition.

_PROBE_TIMEOUT_MS = 5_000


def end_offset(consumer: KafkaConsumer, tp: TopicPartition) -> int:
    """One past the partition's last record. The consumer must have tp alone assigned (its
    polls would take, and drop, other partitions' records).

    Apache Kafka's end offset is that already; the embedded broker answers the base offset
    of the last batch (shared/ENVIRONMENT.md), so the records from there are read to be
    sure (one fetch).
    """
    end = consumer.end_offsets([tp])[tp]
    while (found := _last_record_from(consumer, tp, end)) is not None:
        end = found + 1
    return end


def _last_record_from(consumer: KafkaConsumer, tp: TopicPartition, offset: int) -> int | None:
    consumer.seek(tp, offset)
    records = consumer.poll(timeout_ms=200).get(tp, [])
    offsets = [r.offset for r in records if r.offset >= offset]
    return max(offsets) if offsets else None


def offset_for_time(
    consumer: KafkaConsumer, tp: TopicPartition, timestamp_ms: int, low: int, high: int
) -> int:
    """The first offset in [low, high] whose record timestamp is >= timestamp_ms (high if
    none). The consumer must have tp alone assigned (its polls would take, and drop, other
    partitions' records)."""
    answer = consumer.offsets_for_times({tp: max(0, timestamp_ms)}).get(tp)
    if answer is not None and low <= answer.offset < high and _first_at_or_after(
        consumer, tp, answer.offset, timestamp_ms, low
    ):
        return answer.offset
    # No answer (the time is past the last record), or a wrong one: the embedded broker
    # answers offset 0 whatever the time (shared/ENVIRONMENT.md). Search.
    while low < high:
        middle = (low + high) // 2
        offset, timestamp = _record_at(consumer, tp, middle)
        if timestamp < timestamp_ms:
            low = offset + 1
        else:
            high = middle
    return low


def _first_at_or_after(
    consumer: KafkaConsumer, tp: TopicPartition, offset: int, timestamp_ms: int, low: int
) -> bool:
    """Whether offset is the first record at or after the time (two reads: it, and the
    one before it)."""
    if _record_at(consumer, tp, offset)[1] < timestamp_ms:
        return False
    return offset == low or _record_at(consumer, tp, offset - 1)[1] < timestamp_ms


def _record_at(consumer: KafkaConsumer, tp: TopicPartition, offset: int) -> tuple[int, int]:
    """(offset, timestamp) of the first record at or after offset (below the end)."""
    consumer.seek(tp, offset)
    for _ in range(3):
        for record in consumer.poll(timeout_ms=_PROBE_TIMEOUT_MS, max_records=1).get(tp, []):
            if record.offset >= offset:
                return record.offset, record.timestamp
    raise KafkaError(f"could not read {tp.topic}/{tp.partition} at offset {offset}")


def _topic_configs(settings: Settings, suffix: str) -> dict[str, str]:
    if suffix == "frames" and settings.frames_retention_hours > 0:
        return {"retention.ms": str(int(settings.frames_retention_hours * 3_600_000))}
    return {}


def _admin(bootstrap: str, timeout_s: float) -> KafkaAdminClient:
    timeout_ms = int(timeout_s * 1000)
    return KafkaAdminClient(
        bootstrap_servers=bootstrap,
        client_id=CLIENT_ID,
        request_timeout_ms=max(timeout_ms, 1000),
        api_version_auto_timeout_ms=timeout_ms,
    )
