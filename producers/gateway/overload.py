"""Load shedding: refuse a request with 503 + Retry-After before anything is published.

Two signals, both per gateway process:

- requests in flight (published, waiting for results) above FRAMEWIRE_GATEWAY_MAX_IN_FLIGHT:
  a counter, no waiting; the thread pool bounds the process anyway, this answers fast
  instead of queueing connections;
- the workers' consumer lag on the frames topic above FRAMEWIRE_GATEWAY_MAX_LAG: frames
  already waiting that a new request would queue behind, so it would likely time out.

Lag = end offset - committed offset of the workers' group, summed over the partitions.
Measured against the embedded Tansu broker (kafka-python 2.3.3): KafkaAdminClient's
list_consumer_group_offsets fails there ("Unable to decode response"), so the committed
offsets are read with a KafkaConsumer that has the group id and never subscribes
(`committed()` is an OffsetFetch to the coordinator: no group join, ~1 ms on loopback).
That works on Apache Kafka too, so there is one code path. Tansu answers end_offsets with
the base offset of the last batch, so lag there reads short by up to one producer batch;
Apache Kafka is exact. The figure is cached for about a second, and only one thread
refreshes it while the others use the cached value.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from foundation.kafka import CLIENT_ID
from foundation.settings import Settings

LAG_MAX_AGE_S = 1.0
_KAFKA_TIMEOUT_MS = 2_000


class InFlightLimiter:
    """A non-blocking counting semaphore that also says how many are taken."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.count >= self.limit:
                return False
            self.count += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.count -= 1


@dataclass(frozen=True)
class LagReading:
    lag: int | None  # None: unknown (Kafka unreachable, topic missing)
    error: str | None
    measured_at: float  # time.monotonic()


class LagMonitor:
    """The workers' consumer lag on the frames topic, cached for LAG_MAX_AGE_S."""

    def __init__(self, settings: Settings, max_age_s: float = LAG_MAX_AGE_S) -> None:
        self.settings = settings
        self.max_age_s = max_age_s
        self._lock = threading.Lock()  # kafka-python's consumer is not thread-safe
        self._consumer: KafkaConsumer | None = None
        self._reading = LagReading(None, "not measured yet", float("-inf"))

    def reading(self, max_age_s: float | None = None) -> LagReading:
        """The cached reading, refreshed first when older than max_age_s, unless another
        thread is refreshing it right now (then the cached one, never a wait)."""
        max_age_s = self.max_age_s if max_age_s is None else max_age_s
        if time.monotonic() - self._reading.measured_at < max_age_s:
            return self._reading
        if not self._lock.acquire(blocking=False):
            return self._reading
        try:
            if time.monotonic() - self._reading.measured_at >= max_age_s:
                self._reading = self._measure()
            return self._reading
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

    def _measure(self) -> LagReading:
        try:
            return LagReading(self._lag(), None, time.monotonic())
        except (KafkaError, OSError, ValueError) as exc:
            # A broken connection may leave the consumer in a bad state: start afresh.
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
            return LagReading(None, f"{type(exc).__name__}: {exc}", time.monotonic())

    def _lag(self) -> int:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                client_id=f"{CLIENT_ID}-gateway-lag",
                group_id=self.settings.group_id,
                enable_auto_commit=False,
                # It never joins the group, but kafka-python still insists on
                # request timeout > session timeout > heartbeat interval.
                session_timeout_ms=2 * _KAFKA_TIMEOUT_MS,
                heartbeat_interval_ms=_KAFKA_TIMEOUT_MS // 2,
                request_timeout_ms=2 * _KAFKA_TIMEOUT_MS + 1_000,
                api_version_auto_timeout_ms=_KAFKA_TIMEOUT_MS,
            )
        consumer = self._consumer
        topic = self.settings.frames_topic
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        end = consumer.end_offsets(tps)
        committed = {tp: consumer.committed(tp, timeout_ms=_KAFKA_TIMEOUT_MS) for tp in tps}
        start: dict[TopicPartition, int] = {}
        if any(offset is None for offset in committed.values()):
            start = consumer.beginning_offsets(tps)
        lag = 0
        for tp in tps:
            offset = committed[tp]
            if offset is None:
                # No commit yet: the group will start where auto_offset_reset says.
                offset = start[tp] if self.settings.auto_offset_reset == "earliest" else end[tp]
            lag += max(0, end[tp] - offset)
        return lag
