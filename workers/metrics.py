"""Prometheus metrics of a worker, served on --metrics-port by workers/health.py (names
listed in the README)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, Info

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

FRAMES = Counter("framewire_frames_total", "Frames finished, by status", ["status"])
BATCH_SIZE = Histogram(
    "framewire_batch_size", "Frames per device batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256)
)
QUEUE_WAIT = Histogram(
    "framewire_queue_wait_seconds", "Capture to decode start", buckets=_LATENCY_BUCKETS
)
DECODE_TIME = Histogram(
    "framewire_decode_seconds", "Decode and resize of one frame", buckets=_LATENCY_BUCKETS
)
BATCH_WAIT = Histogram(
    "framewire_batch_wait_seconds", "Decoded to batch launch", buckets=_LATENCY_BUCKETS
)
INFERENCE_TIME = Histogram(
    "framewire_inference_seconds", "Device time of one batch", buckets=_LATENCY_BUCKETS
)
END_TO_END = Histogram(
    "framewire_end_to_end_latency_seconds",
    "Capture timestamp to result written",
    buckets=_LATENCY_BUCKETS,
)
CONSUMER_LAG = Gauge(
    "framewire_consumer_lag", "Records behind the partition's end", ["topic", "partition"]
)
IN_FLIGHT = Gauge("framewire_in_flight_frames", "Frames polled and not yet finished")
PAUSED = Gauge("framewire_partitions_paused",
               "1 while backpressure holds the poll thread at the in-flight limit")
SINK_RETRIES = Counter("framewire_sink_retries_total", "Sink writes retried", ["sink"])
SINK_FAILURES = Counter(
    "framewire_sink_failures_total",
    "Writes that failed for good (record too large, topic refused, script error), by sink",
    ["sink"],
)
EVENTS_DROPPED = Counter("framewire_events_dropped_total", "Monitoring events not sent")
DEAD_LETTERS = Counter(
    "framewire_dead_letters_total", "Frames sent to the DLQ, by stage", ["stage"]
)
POISON_FRAMES = Counter(
    "framewire_poison_frames_total", "Frames dead-lettered after too many deliveries"
)
DELIVERY_COUNT_FAILURES = Counter(
    "framewire_delivery_count_failures_total",
    "Polls whose deliveries could not be counted in Redis (poison detection off meanwhile)",
)
INFERENCE_DEADLINES = Counter(
    "framewire_inference_deadline_exceeded_total", "Batches that ran past the deadline"
)
STALLED = Gauge(
    "framewire_consumer_stalled", "1 while the worker has lag and receives nothing"
)
FETCH_WAIT = Gauge("framewire_fetch_max_wait_ms", "The poll thread's current fetch wait")
MODEL_INFO = Info("framewire_model", "The model being served")
DEVICE_MEMORY = Gauge("framewire_device_memory_bytes", "Device memory allocated by the model")

# Backfill tasks (workers/backfill/): progress for the dashboard.
# `backfill_job`, not `job`: Prometheus keeps `job` for the scrape job.
BACKFILL_FRAMES = Counter(
    "framewire_backfill_frames_total", "Frames scored by backfill tasks", ["backfill_job"]
)
BACKFILL_TASKS = Gauge("framewire_backfill_tasks_running", "Backfill tasks running now")
DEVICE_BATCHES = Counter(
    "framewire_device_batches_total", "Batches run by the device thread, live or backfill",
    ["kind"],
)

# The cyclic collector holds the GIL while it runs (foundation/collector.py).
GC_PAUSE = Histogram(
    "framewire_gc_pause_seconds", "Garbage collections by generation: how long each held the GIL",
    ["generation"], buckets=(0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)
GC_FROZEN = Gauge(
    "framewire_gc_frozen_objects", "Objects of the worker's startup that the collector skips"
)


def observe_gc_pause(generation: int, seconds: float) -> None:
    GC_PAUSE.labels(str(generation)).observe(seconds)


METRIC_NAMES = sorted(
    m._name
    for m in (FRAMES, BATCH_SIZE, QUEUE_WAIT, DECODE_TIME, BATCH_WAIT, INFERENCE_TIME,
              END_TO_END, CONSUMER_LAG, IN_FLIGHT, PAUSED, SINK_RETRIES, SINK_FAILURES,
              EVENTS_DROPPED, DEAD_LETTERS, POISON_FRAMES, DELIVERY_COUNT_FAILURES,
              INFERENCE_DEADLINES, STALLED, FETCH_WAIT, MODEL_INFO, DEVICE_MEMORY,
              BACKFILL_FRAMES, BACKFILL_TASKS, DEVICE_BATCHES, GC_PAUSE, GC_FROZEN)
)  # fmt: skip
