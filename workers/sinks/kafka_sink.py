"""The worker's Kafka output: results, monitoring events, and the dead-letter topic.

One librdkafka producer (confluent-kafka) for all three: it is thread-safe, batches per
partition, and builds and sends produce requests in C. Measured on the embedded broker
(scripts/kafka-clients.py, docs/PERFORMANCE.md "Which Kafka client"): 7.6 µs of CPU per
result/1 record against kafka-python's 47, which a worker spends holding the GIL. Results
and DLQ records are awaited before their offsets are committed, each record on its own: a
retriable failure is sent again, a permanent one (a record too large, a refused topic) is
reported for that record alone and never holds up the others. Monitoring events are best
effort. librdkafka reports deliveries through callbacks that run inside poll() or flush()
on the calling thread: the writer's waits (Delivery) call it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from foundation.kafka import CLIENT_ID, rdkafka_producer_config
from foundation.log import get_logger
from foundation.settings import Settings
from schemas import Event
from schemas.dlq import MAX_CARRIED_HEADER_BYTES, MAX_CARRIED_KEY_BYTES, dead_letter
from workers import faults
from workers.metrics import EVENTS_DROPPED
from workers.sinks.errors import PermanentWriteError, describe, is_retriable
from workers.sinks.retry import Backoff
from workers.work import WorkItem

log = get_logger(__name__)

# librdkafka gives up on a record after this (a timeout the writer retries, with backoff);
# the writer's own wait is a little longer, so librdkafka's answer comes first.
_MESSAGE_TIMEOUT_MS = 30_000
_ACK_TIMEOUT_S = _MESSAGE_TIMEOUT_MS / 1000 + 5
_POLL_S = 0.05
# Room for a DLQ record's key, headers and framing beyond its value.
_DLQ_OVERHEAD_BYTES = MAX_CARRIED_HEADER_BYTES + MAX_CARRIED_KEY_BYTES + 16_384


def librdkafka_config(settings: Settings, worker: str) -> dict[str, Any]:
    """The publishers' producer settings (foundation.kafka.rdkafka_producer_config) with a
    1 ms linger, since a batch's results are awaited at once, and a record size limit that
    fits every DLQ record the sink builds."""
    return rdkafka_producer_config(settings, f"{CLIENT_ID}-worker-{worker}", {
        "linger.ms": 1,
        "message.max.bytes": max(settings.max_frame_bytes + 65_536,
                                 settings.dlq_max_value_bytes + _DLQ_OVERHEAD_BYTES),
        "message.timeout.ms": _MESSAGE_TIMEOUT_MS,
    })  # fmt: skip


class KafkaSink:
    def __init__(self, settings: Settings, worker: str) -> None:
        self.settings = settings
        self.worker = worker
        config = librdkafka_config(settings, worker)
        self.producer = Producer(config)
        self._refused_size = config["message.max.bytes"] + 1  # for workers.faults only

    def send_results(self, results: list[tuple[bytes, bytes, str]], topic: str | None = None,
                     headers: list[tuple[str, bytes]] | None = None) -> Delivery:  # fmt: skip
        """(key, result JSON, frame id) to the results topic (or topic: a backfill's)."""
        topic = topic or self.settings.results_topic

        def send(i: int) -> Any:
            key, value, frame_id = results[i]
            value = faults.result_value(frame_id, value, self._refused_size)
            ack = _Ack()
            self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=ack)
            return ack

        return Delivery(send, len(results), "results", self.producer.poll)

    def send_dead_letters(self, items: list[WorkItem]) -> Delivery:
        """Each item's original record, cut to fit, plus why and where it failed."""
        records = [
            dead_letter(
                item.record.key, item.record.value, item.record.headers,
                (item.record.topic, item.record.partition, item.record.offset),
                item.error or "unknown", item.error_stage or "unknown", self.worker,
                self.settings.dlq_max_value_bytes,
            )
            for item in items
        ]  # fmt: skip

        def send(i: int) -> Any:
            r = records[i]
            ack = _Ack()
            self.producer.produce(self.settings.dlq_topic, value=r.value, key=r.key,
                                  headers=r.headers, on_delivery=ack)  # fmt: skip
            return ack

        return Delivery(send, len(records), "dlq", self.producer.poll)

    def send_event(self, event: Event) -> None:
        """Best effort: an event that cannot be sent is counted and logged, never raised."""
        try:
            self.producer.produce(
                self.settings.monitoring_topic, key=self.worker.encode(), value=event.to_json()
            )
        except (KafkaException, BufferError) as exc:
            EVENTS_DROPPED.inc()
            log.warning("monitoring event dropped", type=event.type, error=describe(exc))

    def flush(self, timeout_s: float) -> None:
        """Send what is queued (events included), waiting at most timeout_s."""
        self.producer.flush(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        self.flush(timeout_s)


class _Ack:
    """One record's answer: set by its delivery callback, which librdkafka runs inside the
    producer's poll() or flush()."""

    __slots__ = ("error", "is_done")

    def __init__(self) -> None:
        self.is_done = False
        self.error: KafkaException | None = None

    def __call__(self, error: KafkaError | None, _message: Any) -> None:
        self.error = None if error is None else KafkaException(error)
        self.is_done = True


class Delivery:
    """Records on their way to one topic: sent at once, awaited by wait(), where the
    retriable failures are sent again with backoff until none is left."""

    def __init__(self, send: Callable[[int], Any], count: int, sink: str,
                 serve: Callable[[float], Any]) -> None:  # fmt: skip
        self.send, self.sink, self.serve = send, sink, serve
        self.pending = list(range(count))
        self.futures = [_try(send, i) for i in self.pending]

    def answered(self) -> bool:
        """Whether every record has its answer (an ack or an error): wait() would not block
        but to send the retriable ones again."""
        self.serve(0)  # run the delivery callbacks that are due
        return all(isinstance(f, BaseException) or f.is_done for f in self.futures)

    def wait(self, abort: threading.Event) -> dict[int, PermanentWriteError]:
        """Block until every record is acknowledged or failed for good; the permanent
        failures by index. Raises GaveUp when abort is set while retrying."""
        failed: dict[int, PermanentWriteError] = {}
        backoff = Backoff(self.sink, abort)
        while True:
            retry, last = [], None
            for i, future in zip(self.pending, self.futures, strict=True):
                exc = _outcome(future, self.serve)
                if exc is None:
                    continue
                if is_retriable(exc):
                    retry.append(i)
                    last = exc
                else:
                    failed[i] = PermanentWriteError(self.sink, exc)
            if last is None:
                return failed
            backoff.wait(last)
            self.pending = retry
            self.futures = [_try(self.send, i) for i in retry]


def _try(send: Callable[[int], Any], i: int) -> Any:
    """send(i)'s ack, or the exception send raised (librdkafka refuses a record too large,
    and a full local queue, at produce() itself)."""
    try:
        return send(i)
    except Exception as exc:
        return exc


def _outcome(ack: Any, serve: Callable[[float], Any]) -> BaseException | None:
    if isinstance(ack, BaseException):
        return ack
    deadline = time.monotonic() + _ACK_TIMEOUT_S
    while not ack.is_done:
        if time.monotonic() > deadline:
            return KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT, "no delivery report"))
        serve(_POLL_S)
    return ack.error
