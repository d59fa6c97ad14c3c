"""kafka-python against confluent-kafka (librdkafka) for the worker's two Kafka roles, on the
embedded broker: CPU per record and records/s for producing result/1-sized records (the
writer's role) and consuming frames (the poll thread's role), and how long each takes to
join a consumer group. Issue 12's client decision (docs/PERFORMANCE.md, "Which Kafka
client"), and the publishers' role: 61 KB frames sent one per request at a camera-like
pace.

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
from workers.consumer import consume_available

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


FRAME = bytes(61_000)  # a 640x480 JPEG
CAMERA_RATE = 400  # frames/s offered, one record per request (linger 0), as cameras send


def paced(send: Callable[[int], None], n: int) -> None:
    start = time.perf_counter()
    for i in range(n):
        time.sleep(max(0.0, start + i / CAMERA_RATE - time.perf_counter()))
        send(i)


def publish_kafka_python(address: str, topic: str, n: int) -> int:
    producer = KafkaProducer(bootstrap_servers=address, linger_ms=0, acks=1,
                             max_request_size=1 << 24)  # fmt: skip
    paced(lambda i: producer.send(topic, key=b"cam-%d" % (i % 8), value=FRAME), n)
    producer.flush()
    producer.close()
    return n


def publish_confluent(address: str, topic: str, n: int) -> int:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": address, "linger.ms": 0, "acks": 1,
                         "message.max.bytes": 1 << 24})  # fmt: skip

    def send(i: int) -> None:
        producer.produce(topic, key=b"cam-%d" % (i % 8), value=FRAME)
        producer.poll(0)  # delivery callbacks, as a publisher counting acks would

    paced(send, n)
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
    while seen < n:  # as the poll thread consumes
        seen += sum(m.error() is None for m in consume_available(consumer, 256, 0.1))
    consumer.close()
    return seen


def join_kafka_python(address: str, topic: str, session_ms: int) -> float:
    """Seconds from subscribe to the first assignment."""
    start = time.perf_counter()
    consumer = KafkaConsumer(bootstrap_servers=address, group_id=f"join-kp-{session_ms}",
                             session_timeout_ms=session_ms,
                             heartbeat_interval_ms=session_ms // 3)  # fmt: skip
    consumer.subscribe([topic])
    while not consumer.assignment():
        consumer.poll(50)
    consumer.close(autocommit=False)
    return time.perf_counter() - start


def join_confluent(address: str, topic: str, session_ms: int) -> float:
    from confluent_kafka import Consumer

    assigned: list[bool] = []
    start = time.perf_counter()
    consumer = Consumer({"bootstrap.servers": address, "group.id": f"join-ck-{session_ms}",
                         "session.timeout.ms": session_ms,
                         "heartbeat.interval.ms": session_ms // 3})  # fmt: skip
    consumer.subscribe([topic], on_assign=lambda c, partitions: assigned.append(True))
    while not assigned:
        consumer.poll(0.05)
    consumer.close()
    return time.perf_counter() - start


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
        frames = min(n, 2_000)  # paced: 5 s at 400/s
        for name, publish in (("kafka-python", publish_kafka_python),
                              ("confluent", publish_confluent)):  # fmt: skip
            admin.create_topics([NewTopic(f"camera-{name}", PARTITIONS, 1)])
            result = timed(lambda p=publish, t=f"camera-{name}": p(address, t, frames))
            report(f"publish 61 KB frames at {CAMERA_RATE}/s, {name}", result)
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
        for session_ms in (6_000, 10_000):
            for name, join in (("kafka-python", join_kafka_python), ("confluent", join_confluent)):
                seconds = join(address, "frames-small", session_ms)
                print(f"{'group join, session.timeout.ms ' + str(session_ms) + ', ' + name:45s}"
                      f" {seconds:9.2f} s")  # fmt: skip
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
