"""The publisher against the real embedded broker: records, stats, failures, back-pressure."""

from __future__ import annotations

import io
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from kafka.partitioner.default import DefaultPartitioner

from foundation.kafka import create_topics
from foundation.servers import EmbeddedKafka, free_port
from foundation.settings import Settings
from producers.progress import Progress
from producers.publisher import BufferFullError, Publisher, PublishError
from producers.synthetic import SyntheticSource
from schemas import Frame
from tests.kafka_helpers import decode_image, read_frames, read_records


def test_published_frames_decode_with_the_contract(topics: Settings) -> None:
    source = SyntheticSource(streams=3, fps=30, seconds=1, seed=7, width=160, height=120,
                             realtime=False)
    sent = list(source)
    with Publisher(topics) as publisher:
        stats = publisher.publish(sent)
    assert (stats.sent, stats.failed, stats.pending) == (90, 0, 0)
    assert stats.bytes_sent == sum(len(f.data) for f in sent)

    records = read_records(topics, expected=90)
    assert len(records) == 90
    frames = {f.frame_id: f for f in (Frame.from_record(r.key, r.value, r.headers)
                                      for r in records)}
    assert frames == {f.frame_id: f for f in sent}
    # key = stream id: each stream on one partition, in order.
    partitions: dict[bytes, set[int]] = {}
    for r in records:
        partitions.setdefault(r.key, set()).add(r.partition)
    assert set(partitions) == {b"synthetic-0", b"synthetic-1", b"synthetic-2"}
    assert all(len(p) == 1 for p in partitions.values())
    # The Java client's partitioner, which backfill planning uses to find a stream.
    ids = list(range(topics.partitions))
    assert {k: p.pop() for k, p in partitions.items()} == {
        k: DefaultPartitioner()(k, ids, ids) for k in partitions}  # fmt: skip
    for stream in partitions:
        seqs = [int(dict(r.headers)["fw-seq"]) for r in records if r.key == stream]
        assert seqs == list(range(30))
    assert decode_image(next(iter(frames.values()))).shape == (120, 160, 3)


def test_publish_limit_and_send(topics: Settings) -> None:
    with Publisher(topics, topic=topics.results_topic) as publisher:
        stats = publisher.publish(SyntheticSource(fps=1000, width=32, height=32), limit=7)
        publisher.send(Frame("extra", 0, b"\xff\xd8", width=1, height=1))
        assert publisher.flush(10)
    assert stats.sent == 8 and not stats.interrupted
    assert len(read_frames(topics, topics.results_topic, expected=8)) == 8


def test_delivery_failures_are_counted_and_reported(topics: Settings) -> None:
    big = np.zeros((200, 200, 3), np.uint8).tobytes()  # 120 KB raw frame
    with Publisher(topics, config={"message.max.bytes": 100_000}) as publisher:
        publisher.send(Frame("s", 0, big, encoding="raw-bgr8", width=200, height=200))
        publisher.send(Frame("s", 1, b"small"))
        publisher.flush(10)
    stats = publisher.stats
    assert (stats.sent, stats.failed) == (1, 1)
    assert "MSG_SIZE_TOO_LARGE" in stats.errors[0]
    assert "failed=1" in stats.summary()


def test_unreachable_broker_is_a_clear_error(settings: Settings) -> None:
    nowhere = settings.replace(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    with pytest.raises(PublishError, match="cannot connect"):
        Publisher(nowhere, connect_timeout_s=0.5)


def test_a_topic_the_broker_refuses_is_a_clear_error(topics: Settings) -> None:
    with pytest.raises(PublishError, match=r"topic 'bad topic!' .*TOPIC_EXCEPTION"):
        Publisher(topics, topic="bad topic!")


def test_full_buffer_blocks_then_fails_clearly(tmp_path: Path) -> None:
    """A broker that stops answering: send blocks up to max_block_s, then BufferFullError,
    and the frames accepted before it are delivered once the broker is back."""
    broker = EmbeddedKafka(free_port(), tmp_path)
    broker.start()
    try:
        settings = Settings.load(environ={}, kafka_bootstrap=broker.address, partitions=1,
                                 topic_prefix="hang.")
        create_topics(settings)
        frame = Frame("s", 0, bytes(50_000))
        with Publisher(settings, max_block_s=0.5, buffer_bytes=120_000) as publisher:
            publisher.send(frame)
            assert publisher.flush(10)  # connected, metadata known
            assert broker.pid is not None
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                publisher.send(Frame("s", 1, bytes(50_000)))
                publisher.send(Frame("s", 2, bytes(50_000)))
                with pytest.raises(BufferFullError, match="unacknowledged"):
                    publisher.send(Frame("s", 3, bytes(50_000)))
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            assert publisher.flush(20)
        assert (publisher.stats.sent, publisher.stats.failed) == (3, 0)
    finally:
        broker.stop()


def test_ctrl_c_in_publish_stops_taking_frames_and_flushes(topics: Settings) -> None:
    stopped = []

    class Source:
        """Ten frames, then Ctrl-C while the publisher waits for the eleventh."""

        def __iter__(self):
            for i in range(10):
                yield Frame("s", i, b"\xff\xd8 frame")
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # a camera waiting for its next frame
            yield Frame("s", 10, b"never sent")

        def stop(self) -> None:
            stopped.append(True)

    started = time.monotonic()
    with Publisher(topics) as publisher:
        stats = publisher.publish(Source())
    assert time.monotonic() - started < 4
    assert stats.interrupted and (stats.sent, stats.pending) == (10, 0) and stopped
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert len(read_frames(topics)) == 10


def test_progress_line_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    progress = Progress(out, interval_s=0)
    progress.update(sent=1500, failed=2, dropped=7, elapsed_s=10.0)
    progress.finish()
    assert out.getvalue().startswith("\rsent 1,500  150.0 frames/s  failed 2  dropped 7")
    assert out.getvalue().endswith("\n")
