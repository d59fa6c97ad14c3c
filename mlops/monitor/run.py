"""Running the monitor over the monitoring and feedback topics: from a time (or from where
a scheduled run stopped) to now, or following them.

No consumer group: the monitor reads every partition from the offset of `since`
(foundation.kafka.offset_for_time), so two monitors never split the observations of one
model between them, and a run costs no group join. The events it emits go back to the
monitoring topic. A feedback label counts towards live accuracy once its frame's result,
still in Redis (FRAMEWIRE_RESULT_TTL_S), says which version predicted what on which stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import redis
from kafka import KafkaConsumer, TopicPartition

from foundation.kafka import CLIENT_ID, end_offset, event_sender, fetch_config, offset_for_time
from foundation.rediskeys import result_key
from foundation.settings import Settings
from mlops.monitor.checks import Thresholds
from mlops.monitor.monitor import Monitor
from mlops.monitor.references import References
from schemas import Event, Result
from schemas.errors import SchemaError
from schemas.feedback import Feedback

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
    stop: Callable[[], bool] = lambda: False, positions: dict[str, int] | None = None,
    state: dict[str, Any] | None = None,
) -> Monitor:  # fmt: skip
    """Read observations and feedback from since_ms (to the current end, or on with follow).

    A scheduled run (mlops/monitor/scheduled.py) passes the last run's Monitor.state() and
    `positions` ("topic/partition" -> offset): partitions found there start at their offset
    rather than at since_ms, and the dict is updated to where this run stopped.
    """
    closing = ExitStack()
    send = closing.enter_context(event_sender(settings, "monitor")) if publish else None

    def emit(event: Event) -> None:
        if send is not None:
            send(event)
        if on_event is not None:
            on_event(event)

    def retrain(name: str, reason: str) -> None:
        from mlops.retrain.retrain import RetrainRequest
        from mlops.tasks import request_retrain

        task = request_retrain(settings, RetrainRequest(name, reason))
        emit(Event("retrain", "monitor", {"step": "requested", "model": name,
                                          "reason": reason, "task": task}))  # fmt: skip

    monitor = Monitor(references or References(settings),
                      thresholds or thresholds_from(settings.monitor_config), emit,
                      request_retrain=retrain if publish else None)  # fmt: skip
    if state is not None:
        monitor.restore(state)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, client_id=CLIENT_ID,
                             enable_auto_commit=False, **fetch_config(settings))  # fmt: skip
    results = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        ends = _start(consumer, [settings.monitoring_topic, settings.feedback_topic], since_ms,
                      positions or {})  # fmt: skip
        reported = 0
        while not stop():
            for tp, records in consumer.poll(timeout_ms=_POLL_MS).items():
                if tp.topic == settings.feedback_topic:
                    _add_feedback(monitor, results, [record.value for record in records])
                    continue
                for record in records:
                    monitor.add(json.loads(record.value))
            if on_window is not None:
                for report in monitor.reports[reported:]:
                    on_window(report)
                reported = len(monitor.reports)
            if follow:  # handed over; a follower that kept them would grow for ever
                del monitor.reports[:]
                reported = 0
            if not follow and all(consumer.position(tp) >= end for tp, end in ends.items()):
                break
        if positions is not None:
            positions.update({f"{tp.topic}/{tp.partition}": consumer.position(tp) for tp in ends})
    finally:
        consumer.close()
        results.close()
        closing.close()
    return monitor


def _add_feedback(monitor: Monitor, results: redis.Redis, values: list[bytes]) -> None:
    """Labels joined to their frames' results; those that do not parse or whose result is
    gone are left to `framewire feedback collect`, which reports them."""
    labels = []
    for value in values:
        try:
            labels.append(Feedback.from_json(value))
        except SchemaError:
            continue
    if not labels:
        return
    for label, raw in zip(labels, results.mget([result_key(f.frame_id) for f in labels]),
                          strict=True):  # fmt: skip
        try:
            result = Result.from_json(raw) if raw is not None else None
        except SchemaError:
            continue
        if result is not None and result.status == "ok" and result.predictions:
            monitor.add_label(f"{result.model.name}:{result.model.version}", result.stream_id,
                              label.frame_id, result.predictions[0].label, label.label,
                              source="feedback")  # fmt: skip


def _start(consumer: KafkaConsumer, topics: list[str], since_ms: int,
           positions: dict[str, int]) -> dict[TopicPartition, int]:  # fmt: skip
    """Assign every partition of topics (the first must exist) at its position, or else at
    the offset of since_ms; their ends now."""
    partitions = [TopicPartition(topic, p) for i, topic in enumerate(topics)
                  for p in sorted(_partitions(consumer, topic, wait=i == 0))]  # fmt: skip
    starts, ends = {}, {}
    for tp in partitions:  # one at a time: the searches poll, and a poll would take (and
        consumer.assign([tp])  # drop) the records of every other partition assigned
        ends[tp] = end_offset(consumer, tp)
        starts[tp] = positions.get(f"{tp.topic}/{tp.partition}")
        if starts[tp] is None:
            low = consumer.beginning_offsets([tp])[tp]
            starts[tp] = offset_for_time(consumer, tp, since_ms, low, ends[tp])
    consumer.assign(partitions)
    for tp in partitions:
        consumer.seek(tp, starts[tp])
    return ends


def _partitions(consumer: KafkaConsumer, topic: str, wait: bool) -> set[int]:
    deadline = time.monotonic() + (10 if wait else 0)
    ids = consumer.partitions_for_topic(topic)
    while not ids and time.monotonic() < deadline:
        time.sleep(0.2)
        ids = consumer.partitions_for_topic(topic)
    if not ids and wait:
        raise ValueError(f"topic {topic} does not exist")
    return ids or set()
