"""The publisher: one Kafka producer that sends any iterator of frames.

key = stream id (one stream stays on one partition, in order), value = image bytes,
frame/1 headers. `sent` counts only what the broker acknowledged; a delivery failure is
counted and its error kept. Buffering is bounded here, not in kafka-python: 2.x dropped
`buffer_memory` (its accumulator grows without limit), so `send` reserves the record's
bytes against `producer_buffer_bytes` and blocks up to `producer_max_block_s` for room,
then raises BufferFullError.

Tuning, measured with `python -m producers.bench` (kafka-python 2.3.3 + crc32c against
the embedded Tansu broker, 3000 frames of 640x480 synthetic JPEG at quality 90, ~61 KB
each, 4 partitions, 2-core dev machine, best of 3-5 interleaved runs; three sessions, so
each figure is a range and only differences larger than it mean anything):

    settings                                        frames/s      MB/s
    kafka-python defaults (acks=1, batch 16 KB,
      linger 0, request 1 MB)                      1,260-1,920    78-120
    chosen: acks=all, batch 1 MB, linger 5 ms      2,640-3,920   164-244
      ... acks=1                                   2,470-3,530
      ... linger 0 / linger 20                     2,070-3,620 / 2,120-2,990
      ... batch 256 KB / batch 4 MB                1,860-3,000 / 1,700-3,670
      ... gzip                                       360-396    (CPU-bound)

- batch_size 1 MB: the 16 KB default holds no frame at all, so every frame went as a
  batch of its own; 1 MB (~16 frames) doubled throughput, 4 MB gained nothing.
- linger_ms 5: in a flood it is within noise of 0 and 20 (batches fill while a request
  is in flight anyway); with paced cameras it groups the frames of many streams into one
  request, for at most 5 ms of added latency.
- acks=all costs nothing measurable here (one broker) and loses no acknowledged frame
  on a leader change with real replication.
- no compression: JPEG/PNG do not shrink further; gzip cut throughput 6-10x.
- max_request_size follows FRAMEWIRE_MAX_FRAME_BYTES (+ headroom), the largest frame a
  worker accepts, so a frame the worker would take is never refused here (Tansu took
  9.5 MB records).
- buffer_memory is gone from kafka-python 2.x: the bound is ours (above).
- enable_idempotence: kafka-python 2.3.3 supports it (it forces acks=all and
  max_in_flight_requests_per_connection=1), but against Tansu every batch of an
  idempotent producer fails with a fatal UnknownError, so it is off by default and
  FRAMEWIRE_PRODUCER_IDEMPOTENCE=on turns it on for Apache Kafka. Without it a retried
  batch may be written twice; each copy carries the same fw-frame-id, and the workers'
  sinks are idempotent by frame id, so a duplicate overwrites its own result.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from foundation.kafka import producer_config
from foundation.log import get_logger
from foundation.settings import Settings
from producers.progress import Progress
from schemas import Frame

log = get_logger(__name__)

# Room per record beyond key and value in a batch (headers, varints, batch framing).
_RECORD_OVERHEAD = 512
_MAX_ERRORS_KEPT = 20
_WAIT_SLICE_S = 0.1  # how often a blocked send looks for Ctrl-C


class PublishError(RuntimeError):
    """The publisher cannot go on; str() is one line saying why."""


class BufferFullError(PublishError):
    """send() found no room in the bounded buffer within max_block_s."""


class _Interrupted(Exception):
    """Ctrl-C arrived while send() was waiting for room: the frame was not taken."""


@dataclass
class PublishStats:
    accepted: int = 0  # handed to the producer
    sent: int = 0  # acknowledged by the broker
    failed: int = 0  # delivery failed (or not acknowledged before close)
    dropped: int = 0  # stale frames a live source skipped (reported by the source)
    bytes_sent: int = 0  # image bytes (record values) acknowledged
    elapsed_s: float = 0.0
    interrupted: bool = False
    errors: list[str] = field(default_factory=list)  # the first distinct delivery errors

    @property
    def pending(self) -> int:
        return self.accepted - self.sent - self.failed

    @property
    def fps(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        """One line for the end of a CLI run."""
        parts = [
            f"sent={self.sent}",
            f"failed={self.failed}",
            f"dropped={self.dropped}",
            f"fps={self.fps:.1f}",
            f"elapsed={self.elapsed_s:.1f}s",
            f"MB={self.bytes_sent / 1e6:.1f}",
        ]
        if self.interrupted:
            parts.append("interrupted")
        if self.errors:
            parts.append(f"first_error={self.errors[0]!r}")
        return " ".join(parts)


class Publisher:
    """Sends frames to the frames topic (or `topic`); a context manager that flushes on exit.

    Keyword arguments not listed go to KafkaProducer as they are (for measurements).
    """

    def __init__(
        self,
        settings: Settings,
        topic: str | None = None,
        *,
        acks: str | int | None = None,
        max_block_s: float | None = None,
        buffer_bytes: int | None = None,
        close_timeout_s: float = 30.0,
        **producer_overrides: Any,
    ) -> None:
        self.settings = settings
        self.topic = topic or settings.frames_topic
        self.max_block_s = settings.producer_max_block_s if max_block_s is None else max_block_s
        self.buffer_bytes = settings.producer_buffer_bytes if buffer_bytes is None else buffer_bytes
        self.close_timeout_s = close_timeout_s
        if acks is not None:
            producer_overrides["acks"] = "all" if acks == "all" else int(acks)
        self.config = producer_config(settings, **producer_overrides)
        self.stats = PublishStats()
        self._lock = threading.Condition()
        self._buffered = 0  # bytes handed over and not yet acknowledged or failed
        self._closed = False
        self._stop_requested = False
        self._in_send = False
        try:
            self._producer = KafkaProducer(**self.config)
        except KafkaError as exc:
            raise PublishError(
                f"cannot connect a producer to {settings.kafka_bootstrap}: {exc}"
            ) from None

    # --- sending -----------------------------------------------------------------------

    def send(self, frame: Frame) -> None:
        """Hand one frame to the producer; returns before it is acknowledged.

        Blocks while the buffer is full, up to max_block_s, then raises BufferFullError.
        """
        if self._closed:
            raise PublishError("send() on a closed publisher")
        record = frame.to_record()
        size = len(record.value) + len(record.key or b"") + _RECORD_OVERHEAD
        self._reserve(size)
        try:
            future = self._producer.send(
                self.topic, key=record.key, value=record.value, headers=record.headers
            )
        except KafkaTimeoutError as exc:
            self._release(size)
            raise PublishError(
                f"no metadata for topic {self.topic} from {self.settings.kafka_bootstrap} "
                f"within {self.max_block_s:g}s (is the broker up and the topic created?): {exc}"
            ) from None
        except BaseException:
            self._release(size)
            raise
        with self._lock:
            self.stats.accepted += 1
        future.add_callback(self._on_delivered, size, len(record.value))
        future.add_errback(self._on_failed, size)

    def publish(
        self, frames: Iterable[Frame], progress: bool = False, limit: int | None = None
    ) -> PublishStats:
        """Send every frame of `frames` (at most `limit`), flush, and return the stats.

        Ctrl-C (in the main thread) stops taking frames; what was accepted is flushed and
        counted, and the stats say `interrupted`. A source with a `dropped` attribute has
        it reported, one with `stop()` or `close()` is stopped at the end.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        started = time.monotonic()
        bar = Progress() if progress else None
        restore = self._install_sigint()
        iterator = iter(frames)
        taken = 0
        try:
            for frame in iterator:
                self._in_send = True
                try:
                    self.send(frame)
                finally:
                    self._in_send = False
                taken += 1
                if self._stop_requested or (limit is not None and taken >= limit):
                    break
                if bar is not None:
                    s = self.stats
                    bar.update(s.sent, s.failed, _dropped(frames), time.monotonic() - started)
        except (KeyboardInterrupt, _Interrupted):
            self._stop_requested = True
        finally:
            restore()
            _stop_source(frames, iterator)
        self.stats.interrupted = self._stop_requested
        if self._stop_requested:
            log.info("interrupted: flushing what was accepted", pending=self.stats.pending)
        self.flush(self.close_timeout_s)
        self.stats.dropped = _dropped(frames)
        self.stats.elapsed_s = time.monotonic() - started
        if bar is not None:
            bar.finish()
        return self.stats

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until every accepted frame is acknowledged or failed; False on timeout."""
        deadline = time.monotonic() + timeout_s
        # kafka-python's timeout is per batch, not in total: ours is the wait below.
        with contextlib.suppress(KafkaTimeoutError):
            self._producer.flush(timeout=timeout_s)
        with self._lock:
            while self.stats.pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
        return True

    def close(self, timeout_s: float | None = None) -> None:
        """Flush and close; frames still unacknowledged after the timeout count as failed."""
        if self._closed:
            return
        timeout_s = self.close_timeout_s if timeout_s is None else timeout_s
        flushed = self.flush(timeout_s)
        with self._lock:
            self._closed = True  # late callbacks no longer change the figures
            if not flushed and self.stats.pending:
                pending = self.stats.pending
                self.stats.failed += pending
                self._note_error(f"{pending} frames not acknowledged within {timeout_s:g}s")
        try:
            self._producer.close(timeout=timeout_s if flushed else 0)
        except KafkaTimeoutError:
            # close() flushes first and gives up on unacknowledged batches; its sender
            # thread is a daemon and goes with the process.
            log.warning("producer closed with unacknowledged frames", failed=self.stats.failed)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- callbacks (kafka-python's sender thread) ----------------------------------------

    def _on_delivered(self, size: int, image_bytes: int, _metadata: Any) -> None:
        with self._lock:
            if not self._closed:
                self.stats.sent += 1
                self.stats.bytes_sent += image_bytes
            self._buffered -= size
            self._lock.notify_all()

    def _on_failed(self, size: int, exc: BaseException) -> None:
        first = False
        with self._lock:
            if not self._closed:
                self.stats.failed += 1
                first = not self.stats.errors
                self._note_error(f"{type(exc).__name__}: {exc}")
            self._buffered -= size
            self._lock.notify_all()
        if not self._closed and first:
            log.warning("frame delivery failed", topic=self.topic, error=str(exc))

    def _note_error(self, text: str) -> None:
        if len(self.stats.errors) < _MAX_ERRORS_KEPT and text not in self.stats.errors:
            self.stats.errors.append(text)

    # --- bounded buffer ------------------------------------------------------------------

    def _reserve(self, size: int) -> None:
        deadline = time.monotonic() + self.max_block_s
        with self._lock:
            # A frame larger than the whole buffer still goes, alone.
            while self._buffered > 0 and self._buffered + size > self.buffer_bytes:
                if self._stop_requested:
                    raise _Interrupted
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BufferFullError(
                        f"{self._buffered / 1e6:.1f} MB of frames unacknowledged by "
                        f"{self.settings.kafka_bootstrap} for {self.max_block_s:g}s "
                        "(broker down or too slow; FRAMEWIRE_PRODUCER_MAX_BLOCK_S)"
                    )
                self._lock.wait(min(left, _WAIT_SLICE_S))
            self._buffered += size

    def _release(self, size: int) -> None:
        with self._lock:
            self._buffered -= size
            self._lock.notify_all()

    # --- Ctrl-C --------------------------------------------------------------------------

    def _install_sigint(self) -> Any:
        """Ctrl-C stops the loop between frames, never half-way through a send."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        self._stop_requested = False

        def on_sigint(signum: int, frame: FrameType | None) -> None:
            self._stop_requested = True
            if not self._in_send:
                # Waiting on the source (a camera, a paced clock): leave that wait now.
                raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_sigint)
        return lambda: signal.signal(signal.SIGINT, previous)


def _dropped(source: object) -> int:
    return int(getattr(source, "dropped", 0) or 0)


def _stop_source(source: object, iterator: object) -> None:
    for target in (source, iterator):
        for name in ("stop", "close"):
            method = getattr(target, name, None)
            if callable(method):
                try:
                    method()
                except Exception as exc:  # a source failing to stop must not lose the stats
                    log.warning("source did not stop cleanly", error=str(exc))
                break


__all__ = [
    "BufferFullError",
    "PublishError",
    "PublishStats",
    "Publisher",
]
