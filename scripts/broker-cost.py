"""What the embedded broker (Tansu) spends per frame, by the way frames reach it and leave
it (docs/PERFORMANCE.md, "What did not move the tail"). Each case starts a fresh embedded
stack in a temporary state folder.

- live: frames sent at RATE per second, one record per request (a camera's pattern, as the
  bench's offered-load phases send them), alone and with a consumer configured as the
  worker's poll thread; the consumer's capture-to-poll latency beside it.
- stored: N frames stored one record per request or in large batches, then drained by the
  same consumer.

    .venv/bin/python scripts/broker-cost.py [RATE] [N]
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from confluent_kafka import Consumer

from foundation.settings import Settings
from framewire.bench.cpu import process_cpu_s
from framewire.bench.frames import FramePool, stream_ids
from framewire.bench.pipeline_load import _PacedSender
from framewire.stack import LocalStack
from producers.publisher import Publisher
from workers.consumer import consume_available, consumer_config
from workers.flow import FETCH_WAIT_MIN_MS

POOL = FramePool.render(640, 480, 50)
STREAMS = stream_ids("broker-cost", "x", 8)


class EmbeddedBroker:
    def __enter__(self) -> EmbeddedBroker:
        settings = Settings.load().replace(state_dir=Path(tempfile.mkdtemp()))
        self.stack = LocalStack(settings)
        self.stack.up(fresh=True)
        self.settings = settings.replace(**self.stack.addresses)
        pid = self.stack.embedded_pid("kafka")
        assert pid is not None
        self.pid = pid
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.down()

    def cpu_s(self) -> float:
        return process_cpu_s(self.pid) or 0.0

    def consumer(self) -> Consumer:
        config = consumer_config(self.settings, "broker-cost", FETCH_WAIT_MIN_MS)
        consumer = Consumer({**config, "auto.offset.reset": "earliest"})
        consumer.subscribe([self.settings.frames_topic])
        return consumer


def live(rate: float, seconds: float, with_consumer: bool) -> str:
    with EmbeddedBroker() as broker:
        stop, latencies_ms = threading.Event(), []

        def consume() -> None:
            consumer = broker.consumer()
            while not stop.is_set():
                messages = consume_available(consumer, 64, 0.05)
                now_ms = time.time() * 1000
                latencies_ms.extend(now_ms - m.timestamp()[1] for m in messages)
            consumer.close()

        reader = threading.Thread(target=consume, daemon=True)
        if with_consumer:
            reader.start()
            time.sleep(6)  # the group join
        count = int(rate * seconds)
        sender = _PacedSender(broker.settings, POOL, STREAMS, count, rate)
        latencies_ms.clear()
        before = broker.cpu_s()
        sender.start()
        sender.join()
        spent = broker.cpu_s() - before
        time.sleep(1)
        stop.set()
        if with_consumer:
            reader.join(5)
        line = f"live, {rate:.0f} frames/s, {'with' if with_consumer else 'no'} consumer: " \
               f"broker {spent / count * 1000:.2f} ms of CPU per frame"  # fmt: skip
        if latencies_ms:
            p50, p99 = np.percentile(latencies_ms, [50, 99])
            line += f"; capture to poll p50 {p50:.1f} ms, p99 {p99:.1f} ms"
        return line


def stored(count: int, batched: bool) -> str:
    with EmbeddedBroker() as broker:
        before = broker.cpu_s()
        with Publisher(broker.settings, linger_ms=50 if batched else 0) as publisher:
            for frame in POOL.frames(count, STREAMS):
                publisher.send(frame)
                if not batched:
                    publisher.flush()  # one record per request, acknowledged
        produced = broker.cpu_s() - before
        consumer = broker.consumer()
        received, started, drain_before = 0, 0.0, 0.0
        while received < count:
            messages = consume_available(consumer, 500, 1.0)
            if messages and not started:  # after the group join
                started, drain_before = time.monotonic(), broker.cpu_s()
            received += len(messages)
        drained, took = broker.cpu_s() - drain_before, time.monotonic() - started
        consumer.close()
        return (f"stored {'in large batches' if batched else 'one record per request'}: "
                f"produce {produced / count * 1000:.2f} ms of broker CPU per frame, drain "
                f"{drained / count * 1000:.2f} ({count / took:,.0f} frames/s)")  # fmt: skip


def main() -> None:
    rate = float(sys.argv[1]) if len(sys.argv) > 1 else 500.0
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    print(live(rate, 6.0, with_consumer=False), flush=True)
    print(live(rate, 6.0, with_consumer=True), flush=True)
    print(stored(count, batched=False), flush=True)
    print(stored(count, batched=True), flush=True)


if __name__ == "__main__":
    main()
