"""kafka-python against confluent-kafka (librdkafka) for the worker's two Kafka roles, on the
embedded broker: CPU per record and records/s for producing result/1-sized records (the
writer's role) and consuming frames (the poll thread's role). Issue 12's client decision
(docs/PERFORMANCE.md, "Which Kafka client").

    pip install confluent-kafka   # not a framewire dependency
    .venv/bin/python scripts/kafka-clients.py [--records 20000]

CPU is the whole process's (time.process_time: the clients' own threads included).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from foundation.servers import EmbeddedKafka, free_port

PARTITIONS = 4
RESULT = b'{"schema":"result/1","frame_id":"%s","stream_id":"cam-1","x":"%s"}' % (
    b"f" * 36, b"x" * 330)  # the size of a result/1 with five predictions


def timed(work: Callable[[], int]) -> tuple[float, float]:
    """(records/s, µs of CPU per record)."""
    cpu, wall = time.process_time(), time.perf_counter()
    n = work()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return n / wall, cpu / n * 1e6


def produce_kafka_python(address: str, topic: str, n: int, batch: int) -> int:
    producer = KafkaProducer(bootstrap_servers=address, linger_ms=1, acks=1)
    for start in range(0, n, batch):  # as the writer does: a batch sent, then its acks
        futures = [producer.send(topic, key=b"cam-%d" % (i % 8), value=RESULT)
                   for i in range(start, min(n, start + batch))]  # fmt: skip
        for future in futures:
            future.get(30)
    producer.close()
    return n


def produce_confluent(address: str, topic: str, n: int, batch: int) -> int:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": address, "linger.ms": 1, "acks": 1})
    for start in range(0, n, batch):
        for i in range(start, min(n, start + batch)):
            producer.produce(topic, key=b"cam-%d" % (i % 8), value=RESULT)
        producer.flush(30)
    return n


def consume_kafka_python(address: str, topic: str, n: int) -> int:
    consumer = KafkaConsumer(bootstrap_servers=address, enable_auto_commit=False,
                             fetch_max_wait_ms=10, max_poll_records=256)  # fmt: skip
    consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
    consumer.seek_to_beginning()
    seen = 0
    while seen < n:
        seen += sum(len(records) for records in consumer.poll(timeout_ms=100).values())
    consumer.close()
    return seen


def consume_confluent(address: str, topic: str, n: int) -> int:
    from confluent_kafka import OFFSET_BEGINNING, Consumer
    from confluent_kafka import TopicPartition as Partition

    consumer = Consumer({"bootstrap.servers": address, "group.id": "bench",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 10})  # fmt: skip
    consumer.assign([Partition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    seen = 0
    while seen < n:
        seen += sum(m.error() is None for m in consumer.consume(256, timeout=0.1))
    consumer.close()
    return seen


def report(label: str, result: tuple[float, float]) -> None:
    rate, cpu = result
    print(f"{label:45s} {rate:9,.0f} records/s {cpu:7.1f} µs CPU/record")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20000)
    n = parser.parse_args().records
    broker = EmbeddedKafka(free_port(), Path(tempfile.mkdtemp(prefix="fw-clients-")))
    broker.start()
    try:
        address = broker.address
        admin = KafkaAdminClient(bootstrap_servers=address)
        topics = ["results-kp", "results-ck", "frames-small", "frames-large"]
        admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics])
        for name, produce, topic in (("kafka-python", produce_kafka_python, "results-kp"),
                                     ("confluent", produce_confluent, "results-ck")):  # fmt: skip
            result = timed(lambda p=produce, t=topic: p(address, t, n, 32))
            report(f"produce result/1 (~450 B), {name}", result)
        for topic, size in (("frames-small", 192), ("frames-large", 61_000)):
            filler = KafkaProducer(bootstrap_servers=address, linger_ms=20, batch_size=1 << 20,
                                   max_request_size=1 << 24)  # fmt: skip
            for i in range(n):
                filler.send(topic, key=b"cam-%d" % (i % 8), value=bytes(size))
            filler.close()
            for name, consume in (("kafka-python", consume_kafka_python),
                                  ("confluent", consume_confluent)):  # fmt: skip
                result = timed(lambda c=consume, t=topic: c(address, t, n))
                report(f"consume {size:,} B frames, {name}", result)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
