"""The worker's Kafka output: results, monitoring events, and the dead-letter topic.

One producer for all three (kafka-python's producer is thread-safe and batches per
partition). Results and DLQ records are awaited before their offsets are committed;
monitoring events are best effort.
"""

from __future__ import annotations

from kafka import KafkaProducer

from framewire.kafka import producer_config
from framewire.settings import Settings
from schemas import Event
from workers.work import WorkItem

ERROR_HEADER = "fw-error"
ERROR_STAGE_HEADER = "fw-error-stage"
ERROR_SOURCE_HEADER = "fw-error-source"  # topic/partition/offset the record came from
ERROR_WORKER_HEADER = "fw-error-worker"


class KafkaSink:
    def __init__(self, settings: Settings, worker: str) -> None:
        self.settings = settings
        self.worker = worker
        # The publisher's tuning (its max_request_size also fits DLQ copies of the largest
        # accepted frame); a shorter linger, since a batch's results are awaited at once.
        self.producer = KafkaProducer(
            **producer_config(settings, client_id=f"framewire-worker-{worker}", linger_ms=1)
        )

    def send_results(self, results: list[tuple[bytes, bytes]]) -> list:
        """(key, result JSON) pairs to the results topic; returns futures to wait on."""
        topic = self.settings.results_topic
        return [self.producer.send(topic, key=key, value=value) for key, value in results]

    def send_dead_letter(self, item: WorkItem) -> object:
        """The original key, value and headers, plus why and where it failed."""
        record = item.record
        reason = (item.error or "unknown")[:500]
        headers = [
            *(record.headers or []),
            (ERROR_HEADER, reason.encode("utf-8", "replace")),
            (ERROR_STAGE_HEADER, (item.error_stage or "unknown").encode()),
            (ERROR_SOURCE_HEADER, f"{record.topic}/{record.partition}/{record.offset}".encode()),
            (ERROR_WORKER_HEADER, self.worker.encode()),
        ]
        return self.producer.send(
            self.settings.dlq_topic, key=record.key, value=record.value or b"", headers=headers
        )

    def send_event(self, event: Event) -> None:
        self.producer.send(
            self.settings.monitoring_topic, key=self.worker.encode(), value=event.to_json()
        )

    @staticmethod
    def wait(futures: list, timeout_s: float = 30.0) -> None:
        """Block until every send is acknowledged; raises the first KafkaError."""
        for future in futures:
            future.get(timeout=timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        self.producer.close(timeout=timeout_s)
