"""The worker's Kafka output: results, monitoring events, and the dead-letter topic.

One producer for all three (kafka-python's producer is thread-safe and batches per
partition). Results and DLQ records are awaited before their offsets are committed, each
record on its own: a retriable failure is sent again, a permanent one (a record too large,
a refused topic) is reported for that record alone and never holds up the others.
Monitoring events are best effort.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from foundation.kafka import producer_config
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

_ACK_TIMEOUT_S = 30.0
# Room for a DLQ record's key, headers and framing beyond its value.
_DLQ_OVERHEAD_BYTES = MAX_CARRIED_HEADER_BYTES + MAX_CARRIED_KEY_BYTES + 16_384


class KafkaSink:
    def __init__(self, settings: Settings, worker: str) -> None:
        self.settings = settings
        self.worker = worker
        config = producer_config(settings, client_id=f"framewire-worker-{worker}", linger_ms=1)
        # The publisher's tuning, with a shorter linger since a batch's results are awaited
        # at once, and a request size that fits every DLQ record the sink builds.
        config["max_request_size"] = max(
            config["max_request_size"], settings.dlq_max_value_bytes + _DLQ_OVERHEAD_BYTES
        )
        self.producer = KafkaProducer(**config)
        self._refused_size = config["max_request_size"] + 1  # for workers.faults only

    def send_results(self, results: list[tuple[bytes, bytes, str]]) -> Delivery:
        """(key, result JSON, frame id) to the results topic."""
        topic = self.settings.results_topic

        def send(i: int) -> Any:
            key, value, frame_id = results[i]
            value = faults.result_value(frame_id, value, self._refused_size)
            return self.producer.send(topic, key=key, value=value)

        return Delivery(send, len(results), "results")

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
            return self.producer.send(
                self.settings.dlq_topic, key=r.key, value=r.value, headers=r.headers
            )

        return Delivery(send, len(records), "dlq")

    def send_event(self, event: Event) -> None:
        """Best effort: an event that cannot be sent is counted and logged, never raised."""
        try:
            self.producer.send(
                self.settings.monitoring_topic, key=self.worker.encode(), value=event.to_json()
            )
        except KafkaError as exc:
            EVENTS_DROPPED.inc()
            log.warning("monitoring event dropped", type=event.type, error=describe(exc))

    def close(self, timeout_s: float = 10.0) -> None:
        self.producer.close(timeout=timeout_s)


class Delivery:
    """Records on their way to one topic: sent at once, awaited by wait(), where the
    retriable failures are sent again with backoff until none is left."""

    def __init__(self, send: Callable[[int], Any], count: int, sink: str) -> None:
        self.send, self.sink = send, sink
        self.pending = list(range(count))
        self.futures = [_try(send, i) for i in self.pending]

    def answered(self) -> bool:
        """Whether every record has its answer (an ack or an error): wait() would not block
        but to send the retriable ones again."""
        return all(isinstance(f, BaseException) or f.is_done for f in self.futures)

    def wait(self, abort: threading.Event) -> dict[int, PermanentWriteError]:
        """Block until every record is acknowledged or failed for good; the permanent
        failures by index. Raises GaveUp when abort is set while retrying."""
        failed: dict[int, PermanentWriteError] = {}
        backoff = Backoff(self.sink, abort)
        while True:
            retry, last = [], None
            for i, future in zip(self.pending, self.futures, strict=True):
                exc = _outcome(future)
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
    """send(i)'s future, or the exception send raised (kafka-python raises some errors,
    a metadata timeout among them, from send itself)."""
    try:
        return send(i)
    except Exception as exc:
        return exc


def _outcome(future: Any) -> BaseException | None:
    if isinstance(future, BaseException):
        return future
    try:
        future.get(timeout=_ACK_TIMEOUT_S)
    except Exception as exc:
        return exc
    return None
