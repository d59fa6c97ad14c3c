"""The publisher: one Kafka producer that sends any iterator of frames.

key = stream id (one stream stays on one partition, in order), value = image bytes,
frame/1 headers. `sent` counts only what the broker acknowledged; a delivery failure is
counted and its error kept. The producer is librdkafka's (confluent-kafka): it builds and
sends the requests in C, on its own threads. 61 KB frames sent one per request at 400/s
cost it 150 µs of CPU each against kafka-python's 793 (scripts/kafka-clients.py), which a
camera's box, the gateway's request threads and the bench's sender all pay.

- Buffering is bounded here: `send` reserves the record's bytes against
  `producer_buffer_bytes` and blocks up to `producer_max_block_s` for room, then raises
  BufferFullError. librdkafka's own queue is sized above that bound, so it never refuses
  first; its produce() never blocks.
- librdkafka runs delivery callbacks inside poll() or flush() on the calling thread; a
  thread of the publisher's own polls, so the counts stay current for a camera that only
  sends.
- librdkafka connects lazily and retries for ever, so the publisher asks for the topic's
  metadata when it starts: an unreachable broker, a missing topic (where the broker does
  not create topics on demand; Tansu does) or a refused name is a one-line PublishError
  then, not frames failing minutes later. Its log lines go to debug (they repeat at every
  reconnect).

Tuning, measured with `python -m producers.bench` (the embedded Tansu broker, 3000 frames
of 640x480 synthetic JPEG at quality 90, ~61 KB each, 4 partitions, 2-core dev machine,
best of 3 interleaved runs):

    settings                                        frames/s (two sessions)
    chosen: acks=all, batch 1 MiB, linger 5 ms     5,305-6,380
      ... acks=1                                   5,732-6,567
      ... linger 0 / linger 20                     5,583-5,605 / 6,256-6,585
      ... batch 256 KB / batch 4 MB                4,502-4,555 / 6,823-6,891
      ... lz4                                      4,759-6,377
    kafka-python 2.3.3, chosen settings            4,571 (the publisher until 2026-12-03;
                                                   2,640-3,920 in earlier sessions)

- batch.size 1 MiB (~16 frames), librdkafka's default near enough: 256 KB is a quarter
  slower in a flood; 4 MB was faster in these two sessions, but a flood is a backfill's
  pattern, not a camera's, and each request grows with it.
- linger.ms 5: in a flood it is within noise of 0 and 20 (batches fill while a request
  is in flight anyway); with paced cameras it groups the frames of many streams into one
  request, for at most 5 ms of added latency (the gateway and the bench's paced sender,
  one frame at a time, use 0).
- acks=all costs nothing measurable here (one broker) and loses no acknowledged frame on
  a leader change with real replication.
- no compression: JPEG/PNG do not shrink further.
- message.max.bytes follows FRAMEWIRE_MAX_FRAME_BYTES (+ headroom), the largest frame a
  worker accepts, so a frame the worker would take is never refused here.
- the partitioner is the Java client's murmur2 (foundation.kafka.rdkafka_producer_config).
- enable.idempotence: against Tansu every batch of an idempotent producer failed (with
  kafka-python; not tried again with librdkafka), so it is off by default and
  FRAMEWIRE_PRODUCER_IDEMPOTENCE=on turns it on for Apache Kafka. Without it a retried
  batch may be written twice; each copy carries the same fw-frame-id, and the workers'
  sinks are idempotent by frame id, so a duplicate overwrites its own result.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from types import FrameType, TracebackType
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from foundation.kafka import CLIENT_ID, rdkafka_producer_config
from foundation.log import get_logger
from foundation.settings import Settings
from producers.progress import Progress
from schemas import Frame

log = get_logger(__name__)

# Room per record beyond key and value in a batch (headers, varints, batch framing).
_RECORD_OVERHEAD = 512
_MAX_ERRORS_KEPT = 20
_WAIT_SLICE_S = 0.1  # how often a blocked send looks for Ctrl-C
_ACK_POLL_S = 0.1  # the acks thread's poll: delivery callbacks run within it
_CONNECT_TIMEOUT_S = 5.0
_QUEUE_MAX_KBYTES = 2_097_151  # librdkafka's largest: ours (the buffer) is the bound


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

    `config`: librdkafka settings over the publisher's own (for measurements and tests).
    """

    def __init__(
        self,
        settings: Settings,
        topic: str | None = None,
        *,
        acks: str | int | None = None,
        linger_ms: int | None = None,
        max_block_s: float | None = None,
        buffer_bytes: int | None = None,
        close_timeout_s: float = 30.0,
        connect_timeout_s: float = _CONNECT_TIMEOUT_S,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.topic = topic or settings.frames_topic
        self.max_block_s = settings.producer_max_block_s if max_block_s is None else max_block_s
        self.buffer_bytes = settings.producer_buffer_bytes if buffer_bytes is None else buffer_bytes
        self.close_timeout_s = close_timeout_s
        overrides: dict[str, Any] = {
            "queue.buffering.max.kbytes": _QUEUE_MAX_KBYTES,
            "queue.buffering.max.messages": 0,  # no count limit: the bytes are bounded here
            "logger": _DebugLog(),
        }
        if acks is not None:
            overrides["acks"] = "all" if acks == "all" else int(acks)
        if linger_ms is not None:
            overrides["linger.ms"] = linger_ms
        overrides.update(config or {})
        self.config = rdkafka_producer_config(settings, f"{CLIENT_ID}-producer", overrides)
        self.stats = PublishStats()
        self._lock = threading.Condition()
        self._buffered = 0  # bytes handed over and not yet acknowledged or failed
        self._closed = False
        self._stop_requested = False
        self._in_send = False
        self._producer = _connected(self.config, self.topic, connect_timeout_s)
        self._acks_stop = threading.Event()
        self._acks = threading.Thread(target=self._serve_acks, name="framewire-publisher-acks",
                                      daemon=True)  # fmt: skip
        self._acks.start()

    # --- sending -----------------------------------------------------------------------

    def send(self, frame: Frame) -> None:
        """Hand one frame to the producer; returns before it is acknowledged.

        Blocks while the buffer is full, up to max_block_s, then raises BufferFullError.
        A record the producer refuses at once (larger than message.max.bytes) is counted
        as failed, as a refused delivery is.
        """
        if self._closed:
            raise PublishError("send() on a closed publisher")
        record = frame.to_record()
        size = len(record.value) + len(record.key or b"") + _RECORD_OVERHEAD
        self._reserve(size)
        refused: KafkaError | None = None
        try:
            self._producer.produce(
                self.topic, key=record.key, value=record.value, headers=record.headers,
                on_delivery=partial(self._on_delivery, size, len(record.value)),
            )  # fmt: skip
        except KafkaException as exc:
            refused = exc.args[0]
        except BaseException:
            self._release(size)
            raise
        with self._lock:
            self.stats.accepted += 1
        if refused is not None:
            self._on_delivery(size, 0, refused, None)
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
        self._producer.flush(timeout_s)  # runs the delivery callbacks here too
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
        if not flushed:
            log.warning("producer closed with unacknowledged frames", failed=self.stats.failed)
            self._producer.purge()  # what is queued or in flight is given up, not waited for
        self._acks_stop.set()
        self._acks.join()
        self._producer.flush(0)  # the purged records' callbacks, which count nothing now

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- the broker's answers ------------------------------------------------------------

    def _serve_acks(self) -> None:
        while not self._acks_stop.is_set():
            self._producer.poll(_ACK_POLL_S)

    def _on_delivery(self, size: int, image_bytes: int, error: KafkaError | None,
                     _message: Any) -> None:  # fmt: skip
        first = False
        with self._lock:
            if not self._closed:
                if error is None:
                    self.stats.sent += 1
                    self.stats.bytes_sent += image_bytes
                else:
                    self.stats.failed += 1
                    first = not self.stats.errors
                    self._note_error(_describe(error))
            self._buffered -= size
            self._lock.notify_all()
        if first:
            log.warning("frame delivery failed", topic=self.topic, error=_describe(error))

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


def _connected(config: dict[str, Any], topic: str, timeout_s: float) -> Producer:
    """A producer that got the topic's metadata within timeout_s, or PublishError saying
    why not (the producer is dropped: it would retry for ever)."""
    producer = Producer(config)
    bootstrap = config["bootstrap.servers"]
    try:
        metadata = producer.list_topics(topic, timeout=timeout_s)
    except KafkaException as exc:
        del producer
        raise PublishError(f"cannot connect a producer to {bootstrap} within {timeout_s:g}s: "
                           f"{_describe(exc.args[0])}") from None  # fmt: skip
    found = metadata.topics.get(topic)
    error = None if found is None else found.error
    # A topic being created has no leader for a moment; the producer waits for one.
    if found is None or (error is not None and error.code() != KafkaError.LEADER_NOT_AVAILABLE):
        del producer
        why = "it does not exist" if error is None else _describe(error)
        raise PublishError(f"cannot publish to topic {topic!r} on {bootstrap}: {why} "
                           "(framewire topics create)")  # fmt: skip
    return producer


def _describe(error: KafkaError) -> str:
    """MSG_SIZE_TOO_LARGE: Broker: Message size too large"""
    return f"{error.name()}: {error.str()}"


class _DebugLog:
    """librdkafka's log lines at debug: a down broker logs a line at every reconnect, and
    what matters reaches the user as a PublishError or a delivery error."""

    def log(self, level: int, fmt: str, *args: Any) -> None:
        log.debug("librdkafka", line=fmt % args if args else fmt, level=level)


__all__ = [
    "BufferFullError",
    "PublishError",
    "PublishStats",
    "Publisher",
]
