"""The pipeline under load: saturation throughput and latency at offered loads.

Saturation: N frames are published to the frames topic *before* the worker starts, then
the worker starts and drains them as fast as it can; the rate is counted at the sink,
from the first result in Redis to the last. Pre-publishing keeps the producer (and the
JPEG pool's publishing) out of the measured window, which matters on a small machine
where producer, broker, Redis and worker share the same cores; the worker's start-up
(Celery, model load, group join) ends before the first result, so it is not counted
either. Completion is judged by frame ids seen in Redis, never by comparing consumer
positions with end offsets: the embedded Tansu broker answers `end_offsets` with the
base offset of the last batch rather than last offset + 1 (shared/ENVIRONMENT.md), so a
"caught up" test built on it would stop early.

Offered load: frames are published at a fixed rate (a fraction of the saturation rate)
with the capture time stamped as each is sent, and latency is capture to result in Redis.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from foundation.settings import Settings
from framewire.bench.cpu import CpuMeter
from framewire.bench.frames import FramePool
from framewire.bench.profile import WorkerProfiler
from framewire.bench.sink import Arrival, SinkReader
from producers.pacing import Pacer
from producers.publisher import Publisher
from schemas import now_ms

# A worker that has produced nothing for this long is stuck; start-up (Celery, torch, the
# model, a consumer-group join of ~5 s against Tansu) fits well inside it.
STARTUP_TIMEOUT_S = 120.0
_WORKER_PARTS = ("queue", "decode", "batch_wait", "inference")  # result/1 latency_ms
_STALL_TIMEOUT_S = 30.0


@dataclass
class Saturation:
    fps: float
    frames: int
    results: int
    mean_batch: float
    stage_ms: dict[str, float]  # mean per-frame latency parts reported by the worker
    worker_cpu_ms_per_frame: float | None
    worker_thread_ms_per_frame: dict[str, float]  # CPU by worker thread name
    machine_busy: float | None
    stack_ms_per_frame: dict[str, float]  # CPU of the embedded broker and Redis, by kind


@dataclass
class LoadPoint:
    load: float  # fraction of the saturation rate
    offered_fps: float
    sent: int
    results: int
    achieved_fps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_batch: float
    parts_p50_ms: dict[str, float]  # median of each latency part, where the time goes
    # the same medians over the slowest 1% of frames (latency >= p99): where the tail's goes
    parts_tail_ms: dict[str, float] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    machine_busy: float | None = None
    # CPU per frame sent, of the embedded broker and Redis and of the bench's own producer
    # (they share the worker's cores: what the broker spends per live frame differs from
    # what it spends on a pre-published batch)
    cpu_ms_per_frame: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "load": round(self.load, 4),
            "offered_fps": round(self.offered_fps, 1),
            "sent": self.sent,
            "results": self.results,
            "achieved_fps": round(self.achieved_fps, 1),
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
            "mean_batch": self.mean_batch,
            "parts_p50_ms": self.parts_p50_ms,
            "parts_tail_ms": self.parts_tail_ms,
            "machine_busy": self.machine_busy,
            "cpu_ms_per_frame": self.cpu_ms_per_frame,
        }


def publish_all(settings: Settings, pool: FramePool, n: int, streams: list[str]) -> set[str]:
    """Publish n frames as fast as possible; their frame ids."""
    frames = list(pool.frames(n, streams))
    with Publisher(settings) as publisher:
        stats = publisher.publish(frames)
    if stats.sent != n:
        raise RuntimeError(f"published {stats.sent} of {n} benchmark frames: {stats.summary()}")
    return {f.frame_id for f in frames}


def measure_saturation(
    reader: SinkReader,
    expected: set[str],
    worker_pid: int,
    check: Callable[[], None],
    profiler: WorkerProfiler | None = None,
    stack_pids: dict[str, int] | None = None,
) -> Saturation:
    """Drain pre-published frames; rate from the first result in Redis to the last.
    A profiler samples the worker over the same window; stack_pids (the embedded broker's
    and Redis's) are metered beside it."""
    meter = CpuMeter(worker_pid, stack_pids)

    def on_first() -> None:
        meter.start()
        if profiler is not None:
            profiler.start(worker_pid)

    try:
        found = reader.collect(expected, STARTUP_TIMEOUT_S, check, on_first=on_first)
    finally:
        meter.stop()
        if profiler is not None:
            profiler.stop()
    _require_all(found, expected, "saturation")
    arrivals = list(found.values())
    first = min(a.in_redis_ms for a in arrivals)
    last = max(a.in_redis_ms for a in arrivals)
    # Results of the first millisecond open the window: count what arrived after them.
    counted = sum(a.in_redis_ms > first for a in arrivals)
    fps = counted / ((last - first) / 1000) if last > first else 0.0
    stage_ms = {
        p: round(float(np.mean([a.result["latency_ms"][p] for a in arrivals])), 2)
        for p in _WORKER_PARTS
    }
    cpu = meter.process_s
    return Saturation(
        fps=fps,
        frames=len(expected),
        results=len(found),
        mean_batch=mean_batch(arrivals),
        stage_ms=stage_ms,
        worker_cpu_ms_per_frame=round(cpu * 1000 / counted, 3) if cpu and counted else None,
        worker_thread_ms_per_frame={
            name: round(s * 1000 / counted, 3)
            for name, s in sorted(meter.threads_s.items(), key=lambda kv: -kv[1])
            if s > 0 and counted
        },
        machine_busy=round(meter.machine_busy, 3) if meter.machine_busy is not None else None,
        stack_ms_per_frame={
            name: round(s * 1000 / counted, 3) for name, s in meter.others_s.items() if counted
        },
    )


def measure_load(
    settings: Settings,
    pool: FramePool,
    reader: SinkReader,
    streams: list[str],
    load: float,
    rate: float,
    seconds: float,
    check: Callable[[], None],
    stack_pids: dict[str, int] | None = None,
) -> LoadPoint:
    """Offer `rate` frames/s for `seconds`; latency from capture to result in Redis. The
    CPU of stack_pids (the embedded broker's and Redis's) and of this process (the
    producer) is metered over the phase."""
    count = max(10, round(rate * seconds))
    sender = _PacedSender(settings, pool, streams, count, rate)
    meter = CpuMeter(os.getpid(), stack_pids)
    meter.start()
    sender.start()
    found = reader.collect(sender.frame_ids, _STALL_TIMEOUT_S, check)
    sender.join()
    meter.stop()
    if sender.error is not None:
        raise sender.error
    _require_all(found, sender.frame_ids, f"{load:.0%} load")
    arrivals = list(found.values())
    latencies = [a.latency_ms for a in arrivals]
    tail_from = float(np.percentile(latencies, 99))  # the slowest 1%, never none
    span_s = (max(a.in_redis_ms for a in arrivals) - min(a.in_redis_ms for a in arrivals)) / 1000
    return LoadPoint(
        load=load,
        offered_fps=rate,
        sent=count,
        results=len(found),
        achieved_fps=(len(found) - 1) / span_s if span_s > 0 else 0.0,
        p50_ms=_pct(latencies, 50),
        p95_ms=_pct(latencies, 95),
        p99_ms=_pct(latencies, 99),
        mean_batch=mean_batch(arrivals),
        parts_p50_ms=latency_parts_p50(arrivals),
        parts_tail_ms=latency_parts_p50([a for a in arrivals if a.latency_ms >= tail_from]),
        latencies_ms=latencies,
        machine_busy=round(meter.machine_busy, 3) if meter.machine_busy is not None else None,
        cpu_ms_per_frame={
            name: round(cpu_s * 1000 / count, 3)
            for name, cpu_s in {**meter.others_s, "bench": meter.process_s or 0.0}.items()
        },
    )


def latency_parts_p50(arrivals: list[Arrival]) -> dict[str, float]:
    """Medians of the worker's result/1 latency parts, plus `write`: from the end of
    inference to the result in Redis. `queue` is capture to decode start: producer, broker,
    fetch and the wait for a decode thread."""
    parts: dict[str, list[float]] = {p: [] for p in (*_WORKER_PARTS, "write")}
    for a in arrivals:
        latency = a.result["latency_ms"]
        for p in _WORKER_PARTS:
            parts[p].append(latency[p])
        parts["write"].append(a.latency_ms - latency["total"])
    return {p: _pct(values, 50) for p, values in parts.items()}


def mean_batch(arrivals: list[Arrival]) -> float:
    """Frames per batch (frames / batches): each frame of a batch of n counts 1/n batch."""
    batches = sum(1 / a.result["batch_size"] for a in arrivals if a.result["batch_size"])
    return round(len(arrivals) / batches, 2) if batches else 0.0


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else 0.0


def _require_all(found: dict, expected: set[str], phase: str) -> None:
    if len(found) < len(expected):
        raise RuntimeError(
            f"{phase}: only {len(found)} of {len(expected)} results reached Redis "
            "(see the worker log)"
        )


class _PacedSender(threading.Thread):
    """Sends `count` frames at `rate`/s, each stamped with its capture time as it is sent.

    linger_ms=0: a camera sends one frame at a time, and a producer that lingers to fill a
    batch would add its linger to every frame's latency at low load (this is the producer
    setting FRAMEWIRE_PRODUCER_LINGER_MS=0 gives; flooding producers keep the default).
    """

    def __init__(self, settings: Settings, pool: FramePool, streams: list[str], count: int,
                 rate: float) -> None:  # fmt: skip
        super().__init__(name="bench-paced-sender", daemon=True)
        self.settings, self.rate = settings, rate
        # Built ahead (ids known before the first send); stamped with the time as sent.
        self.frames = list(pool.frames(count, streams))
        self.frame_ids = {f.frame_id for f in self.frames}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with Publisher(self.settings, linger_ms=0) as publisher:
                pacer = Pacer(self.rate)  # catches up after a stall: the count is offered
                for frame in self.frames:
                    pacer.wait()
                    publisher.send(replace(frame, captured_at_ms=now_ms()))
        except BaseException as exc:  # reported by the caller
            self.error = exc
