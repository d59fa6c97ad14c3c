"""`framewire demo`: the whole loop on one machine, and a measurement of it.

Uses running Kafka and Redis when there are (configured, or `framewire stack up`),
otherwise starts the embedded stack on free ports. Then one worker process and a
synthetic producer with K cameras; results are read back from the results topic and
compared with the frames' ground-truth labels. Everything it started, it stops.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

from foundation.kafka import create_topics, topic_reader
from foundation.settings import Settings
from framewire import demo_promotion
from framewire.result_stats import ResultStats
from framewire.services import ensure_services
from framewire.worker_process import WorkerProcess
from producers.publisher import Publisher
from producers.synthetic import SyntheticSource
from schemas import Frame

Echo = Callable[[str], None]
_DRAIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class DemoOptions:
    seconds: float = 30.0
    streams: int = 2
    fps: float = 15.0
    device: str = "auto"
    promote_after_s: float | None = None  # promote a second model version after this long


def run_demo(settings: Settings, options: DemoOptions, echo: Echo) -> dict:
    """Run the demo; returns the summary (the --json object)."""
    demo_dir = settings.state_dir / "demo"
    with ExitStack() as cleanup:
        settings = ensure_services(settings, demo_dir, cleanup, echo)
        create_topics(settings)
        promotion = None
        if options.promote_after_s is not None:
            uri, promotion = demo_promotion.prepare(settings, demo_dir / "promotion", echo)
            settings = settings.replace(model=uri)
        reader = _ResultReader(settings)
        cleanup.callback(reader.close)
        worker = WorkerProcess(settings, demo_dir / "logs", device=options.device)
        cleanup.callback(worker.stop)
        echo(f"worker: starting on {options.device} (log {worker.log_path})")
        worker.wait_ready()
        echo(f"worker: ready; {options.streams} synthetic cameras at {options.fps} fps "
             f"for {options.seconds:g} s")  # fmt: skip
        stats = ResultStats()
        timeline = demo_promotion.VersionTimeline()
        producer = _Producer(settings, options, stats.expected_labels)
        producer.start()
        timer = None
        if promotion is not None:
            timer = demo_promotion.promote_later(settings, promotion, options.promote_after_s,
                                                 echo)  # fmt: skip
            cleanup.callback(timer.cancel)
        _follow(reader, stats, timeline, producer, worker, echo)
        if timer is not None:
            # Not fired yet (a short run): never. Running: let it finish and say what it
            # did; the swap itself can be seen in the results before the command returns.
            timer.cancel()
            timer.join(timeout=120)
        summary = {
            "frames_produced": producer.sent,
            **stats.summary(producer.elapsed_s),
            "dlq": reader.dead_letters,
            "worker_log": str(worker.log_path),
        }
        if promotion is not None:
            summary["promotion"] = timeline.summary()
        summary["lost"] = producer.sent - stats.count
    return summary


class _Producer(threading.Thread):
    """Publishes the synthetic cameras in real time, remembering each frame's label."""

    def __init__(self, settings: Settings, options: DemoOptions, labels: dict[str, str]) -> None:
        super().__init__(name="demo-producer", daemon=True)
        self.settings = settings
        self.source = SyntheticSource(
            streams=options.streams, fps=options.fps, seconds=options.seconds, seed=0
        )
        self.labels = labels
        self.sent = 0
        self.started_at = 0.0
        self.finished_at: float | None = None

    @property
    def elapsed_s(self) -> float:
        return (self.finished_at or time.monotonic()) - self.started_at

    def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            with Publisher(self.settings) as publisher:
                self.sent = publisher.publish(self._labelled()).sent
        finally:
            self.finished_at = time.monotonic()

    def _labelled(self) -> Iterator[Frame]:
        for frame in self.source:
            if frame.label is not None:
                self.labels[frame.frame_id] = frame.label
            yield frame


class _ResultReader:
    """Reads the results and DLQ topics from their current end, without a consumer group."""

    def __init__(self, settings: Settings) -> None:
        topics = [settings.results_topic, settings.dlq_topic]
        self.consumer = topic_reader(settings, topics, from_beginning=False)
        self.results_topic = settings.results_topic
        self.dead_letters = 0

    def poll(self, frame_ids: dict[str, str]) -> Iterator[dict]:
        """Results of our frames; dead letters of our frames are counted."""
        for tp, records in self.consumer.poll(timeout_ms=200).items():
            for record in records:
                if tp.topic == self.results_topic:
                    yield json.loads(record.value)
                elif dict(record.headers or []).get("fw-frame-id", b"").decode() in frame_ids:
                    self.dead_letters += 1

    def close(self) -> None:
        self.consumer.close()


def _follow(
    reader: _ResultReader,
    stats: ResultStats,
    timeline: demo_promotion.VersionTimeline,
    producer: _Producer,
    worker: WorkerProcess,
    echo: Echo,
) -> None:
    """Count results until every produced frame has one (or the drain timeout)."""
    next_line = time.monotonic() + 1
    drain_until = None
    while True:
        for result in reader.poll(stats.expected_labels):
            if result["frame_id"] in stats.expected_labels and stats.add(result):
                timeline.add(result)
        now = time.monotonic()
        if now >= next_line:
            next_line = now + 1
            echo(_live_line(stats, producer))
        if worker.process.poll() is not None:
            echo(f"worker exited early ({worker.process.returncode}):\n{worker.tail()}")
            return
        if not producer.is_alive():
            drain_until = drain_until or now + _DRAIN_TIMEOUT_S
            if stats.count + reader.dead_letters >= producer.sent or now > drain_until:
                return


def _live_line(stats: ResultStats, producer: _Producer) -> str:
    s = stats.summary(producer.elapsed_s)
    accuracy = "-" if s["accuracy"] is None else f"{s['accuracy']:.3f}"
    return (
        f"{producer.elapsed_s:5.1f}s  sent {producer.sent or len(stats.expected_labels):5d}  "
        f"results {s['results']:5d}  {s['fps']:6.1f} fps  p50 {s['p50_ms']:6.1f} ms  "
        f"p99 {s['p99_ms']:6.1f} ms  batch {s['mean_batch']:5.2f}  accuracy {accuracy}"
    )


def format_summary(summary: dict) -> str:
    return json.dumps(summary, sort_keys=True)
