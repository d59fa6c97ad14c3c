"""Running the monitor over the monitoring topic: from a time to now, or following it.

No consumer group: the monitor reads every partition from the offset of `since`
(foundation.kafka.offset_for_time), so two monitors never split the observations of one
model between them, and a run costs no group join. The events it emits go back to the
monitoring topic.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from foundation.kafka import CLIENT_ID, end_offset, fetch_config, offset_for_time, producer_config
from foundation.settings import Settings
from mlops.monitor.checks import Thresholds
from mlops.monitor.monitor import Monitor
from mlops.monitor.references import References
from schemas import Event

_POLL_MS = 500


def thresholds_from(path: str | None) -> Callable[[str], Thresholds]:
    """Per model NAME (or "*" for all) from a JSON file; the defaults otherwise."""
    table: dict[str, Thresholds] = {}
    if path:
        raw = json.loads(Path(path).read_text())
        table = {name: Thresholds.from_dict(values) for name, values in raw.items()}
    default = table.get("*", Thresholds())

    def lookup(model: str) -> Thresholds:
        return table.get(model.rpartition(":")[0], default)

    return lookup


def run_monitor(
    settings: Settings, since_ms: int, follow: bool = False,
    on_event: Callable[[Event], None] | None = None,
    on_window: Callable[[Any], None] | None = None,
    thresholds: Callable[[str], Thresholds] | None = None,
    references: References | None = None, publish: bool = True,
    stop: Callable[[], bool] = lambda: False,
) -> Monitor:  # fmt: skip
    """Read observations from since_ms (to the current end, or on with follow)."""
    producer = KafkaProducer(**producer_config(settings, client_id=f"{CLIENT_ID}-monitor",
                                               linger_ms=5)) if publish else None  # fmt: skip

    def emit(event: Event) -> None:
        if producer is not None:
            producer.send(settings.monitoring_topic, key=b"monitor", value=event.to_json())
        if on_event is not None:
            on_event(event)

    def retrain(name: str, reason: str) -> None:
        from mlops.retrain.retrain import RetrainRequest
        from mlops.retrain.task import request_retrain

        task = request_retrain(settings, RetrainRequest(name, reason))
        emit(Event("retrain", "monitor", {"step": "requested", "model": name,
                                          "reason": reason, "task": task}))  # fmt: skip

    monitor = Monitor(references or References(settings),
                      thresholds or thresholds_from(settings.monitor_config), emit,
                      request_retrain=retrain if publish else None)  # fmt: skip
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, client_id=CLIENT_ID,
                             enable_auto_commit=False, **fetch_config(settings))  # fmt: skip
    try:
        ends = _start(consumer, settings.monitoring_topic, since_ms)
        reported = 0
        while not stop():
            for records in consumer.poll(timeout_ms=_POLL_MS).values():
                for record in records:
                    monitor.add(json.loads(record.value))
            if on_window is not None:
                for report in monitor.reports[reported:]:
                    on_window(report)
                reported = len(monitor.reports)
            if not follow and all(consumer.position(tp) >= end for tp, end in ends.items()):
                break
    finally:
        consumer.close()
        if producer is not None:
            producer.flush(timeout=10)
            producer.close(timeout=10)
    return monitor


def _start(consumer: KafkaConsumer, topic: str, since_ms: int) -> dict[TopicPartition, int]:
    """Assign every partition at the offset of since_ms; their ends now."""
    deadline = time.monotonic() + 10
    ids = consumer.partitions_for_topic(topic)
    while not ids and time.monotonic() < deadline:
        time.sleep(0.2)
        ids = consumer.partitions_for_topic(topic)
    if not ids:
        raise ValueError(f"topic {topic} does not exist")
    partitions = [TopicPartition(topic, p) for p in sorted(ids)]
    starts, ends = {}, {}
    for tp in partitions:  # one at a time: the searches poll, and a poll would take (and
        consumer.assign([tp])  # drop) the records of every other partition assigned
        low = consumer.beginning_offsets([tp])[tp]
        ends[tp] = end_offset(consumer, tp)
        starts[tp] = offset_for_time(consumer, tp, since_ms, low, ends[tp])
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, starts[tp])
    return ends
