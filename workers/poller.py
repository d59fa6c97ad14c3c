"""The poll thread: the only thread that touches the Kafka consumer (kafka-python's
consumer is not thread-safe).

It polls frames, counts their deliveries (workers/deliveries.py) and hands them to the
decode pool, pauses the partitions when too many frames are in flight (backpressure
instead of unbounded buffers), commits the offsets that the sink stage has finished, adapts
its fetch wait and watches for a stall (workers/flow.py), and on revocation or shutdown
waits for in-flight frames, commits them, and only then gives the partitions up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from foundation.kafka import fetch_config
from foundation.log import get_logger
from foundation.settings import Settings
from workers import metrics
from workers.deliveries import DeliveryCounter
from workers.flow import FETCH_WAIT_MIN_MS, STARVING_AFTER_S, FetchWait, StallWatch
from workers.offsets import OffsetTracker, Partition
from workers.threads import name_os_thread
from workers.work import WorkItem

log = get_logger(__name__)

_POLL_TIMEOUT_MS = 50
_COMMIT_INTERVAL_S = 0.2  # commits are cheap but not free: batch them a little
_LAG_INTERVAL_S = 2.0
_END_OFFSETS_TIMEOUT_MS = 1_000



class FramePoller(threading.Thread):
    def __init__(
        self,
        settings: Settings,
        tracker: OffsetTracker,
        submit: Callable[[WorkItem], None],
        on_rebalance: Callable[[str, list[Partition]], None],
        client_id: str,
        deliveries: DeliveryCounter,
    ) -> None:
        super().__init__(name="framewire-poll", daemon=True)
        self.settings = settings
        self.tracker = tracker
        self.submit = submit
        self.on_rebalance = on_rebalance
        self.client_id = client_id
        self.deliveries = deliveries
        self.fetch_wait = FetchWait()
        self.stall = StallWatch(settings.stall_after_s)
        self.assigned: list[Partition] = []
        self.paused = False
        self.polled = 0
        self.lag: dict[Partition, int] = {}
        self.joined = threading.Event()  # set at the first assignment
        self._room = threading.Event()  # set when paused and frames finished to half the limit
        self._stop_event = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._last_commit = 0.0
        self._last_finished = 0
        self._last_lag = 0.0

    def stop(self) -> None:
        """Stop polling; run() then drains, commits and leaves the group."""
        self._stop_event.set()

    def frames_finished(self) -> None:
        """Called (on the writer's thread) as frames finish: wakes a paused poll thread once
        the frames in flight are down to the resume mark."""
        if self.paused and self.tracker.in_flight() <= self.settings.in_flight_limit // 2:
            self._room.set()

    def run(self) -> None:
        name_os_thread()
        consumer = self._consumer = self._connect()
        try:
            while not self._stop_event.is_set():
                self._apply_backpressure(consumer)
                if self.paused:
                    self._wait_for_room(consumer)
                room = self.settings.in_flight_limit - self.tracker.in_flight()
                batches = consumer.poll(timeout_ms=0 if self.paused else _POLL_TIMEOUT_MS,
                                        max_records=max(room, 1))  # fmt: skip
                received = self._hand_over(batches)
                self._commit(consumer)
                self._measure_lag(consumer)
                self._watch_flow(consumer, received)
            self._drain(consumer, self.assigned)
        finally:
            # Leave the group now rather than after the session timeout, so the
            # partitions move to the remaining workers at once.
            consumer.close(autocommit=False)

    def _connect(self) -> KafkaConsumer:
        s = self.settings
        consumer = KafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap,
            group_id=s.group_id,
            client_id=self.client_id,
            enable_auto_commit=False,
            auto_offset_reset=s.auto_offset_reset,
            # A fetch must fit the largest accepted frame; the worker checks the limit.
            **fetch_config(s),
            max_poll_records=s.in_flight_limit,
            # The broker answers a fetch at once when data is there; with none, it holds
            # the request this long. The 500 ms default would add up to 500 ms of latency
            # to the first frame after a quiet spell.
            # Adapted while running (workers/flow.py).
            fetch_max_wait_ms=FETCH_WAIT_MIN_MS,
            # Draining a revoked partition may take up to drain_timeout_s inside poll().
            max_poll_interval_ms=int((s.drain_timeout_s + 60) * 1000),
            # A crashed worker's partitions wait this long for it; heartbeats three times
            # within it, as Kafka advises.
            session_timeout_ms=int(s.consumer_session_timeout_s * 1000),
            heartbeat_interval_ms=max(500, int(s.consumer_session_timeout_s * 1000 / 3)),
        )
        consumer.subscribe([s.frames_topic], listener=_Rebalance(self))
        return consumer

    def _hand_over(self, batches: dict) -> int:
        """Count the records' deliveries, then hand them over; how many there were."""
        now = time.time()
        counted = self.deliveries.count(
            {(tp.topic, tp.partition): [r.offset for r in rs] for tp, rs in batches.items()}
        )
        received = 0
        for tp, records in batches.items():
            partition = (tp.topic, tp.partition)
            generation = self.tracker.generation(partition)
            for record in records:
                self.tracker.add(partition, record.offset)
                deliveries = counted.get((partition, record.offset), 0)
                self.submit(WorkItem(record, generation, now, deliveries=deliveries))
            received += len(records)
        self.polled += received
        metrics.IN_FLIGHT.set(self.tracker.in_flight())
        return received

    def _watch_flow(self, consumer: KafkaConsumer, received: int) -> None:
        lag = sum(self.lag.values())
        # Paused by backpressure is no stall while frames still finish; paused with nothing
        # finishing (the sinks cannot write either) is one.
        finished = self.tracker.finished_total
        self.stall.note_poll(received, lag, self.paused and finished != self._last_finished)
        self._last_finished = finished
        starving = lag > 0 and not self.paused and self.stall.silent_for_s() >= STARVING_AFTER_S
        wait_ms = self.fetch_wait.after_poll(received, self._behind(consumer), starving)
        # kafka-python reads the wait from its fetcher's config for each fetch it builds;
        # there is no public setter.
        consumer._fetcher.config["fetch_max_wait_ms"] = wait_ms
        metrics.FETCH_WAIT.set(wait_ms)

    def _behind(self, consumer: KafkaConsumer) -> bool:
        """Whether the last fetch response said the broker holds records past our position
        on a partition that is not paused."""
        if self.paused:
            return False
        for p in self.assigned:
            tp = TopicPartition(*p)
            end = consumer.highwater(tp)
            if end is not None and end > consumer.position(tp):
                return True
        return False

    def _wait_for_room(self, consumer: KafkaConsumer) -> None:
        """While paused, wait here for frames to finish rather than inside poll(): a poll
        with every partition paused sleeps its whole timeout, and at saturation the frames
        in flight finished long before it ended (the null model: a batch every 9.5 ms, the
        flow paced by 50 ms polls). poll(0) after it keeps the group's callbacks running."""
        self._room.clear()
        self._apply_backpressure(consumer)  # frames may have finished before the clear
        if self.paused:
            self._room.wait(_POLL_TIMEOUT_MS / 1000)
            self._apply_backpressure(consumer)

    def _apply_backpressure(self, consumer: KafkaConsumer) -> None:
        """Pause at the in-flight limit, resume at half of it (hysteresis)."""
        in_flight, limit = self.tracker.in_flight(), self.settings.in_flight_limit
        partitions = [TopicPartition(*p) for p in self.assigned]
        if not self.paused and in_flight >= limit:
            consumer.pause(*partitions)
            self.paused = True
        elif self.paused and in_flight <= limit // 2:
            consumer.resume(*partitions)
            self.paused = False
        metrics.PAUSED.set(int(self.paused))

    def _commit(
        self, consumer: KafkaConsumer, partitions: list[Partition] | None = None, force=False
    ) -> None:
        if not force and time.monotonic() - self._last_commit < _COMMIT_INTERVAL_S:
            return
        offsets = self.tracker.to_commit(partitions)
        if not offsets:
            return
        try:
            consumer.commit(
                {TopicPartition(*p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
            )
        except KafkaError as exc:  # a rebalance in progress: the next commit retries
            log.warning("offset commit failed", error=str(exc))
            return
        self.tracker.mark_committed(offsets)
        self.deliveries.forget(offsets)
        self._last_commit = time.monotonic()

    def _drain(self, consumer: KafkaConsumer, partitions: list[Partition]) -> None:
        """Wait (bounded) for in-flight frames of partitions to finish, then commit them."""
        if partitions:
            consumer.pause(*[TopicPartition(*p) for p in partitions])
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while self.tracker.in_flight(partitions) and time.monotonic() < deadline:
            time.sleep(0.01)
        left = self.tracker.in_flight(partitions)
        if left:
            log.warning("frames still in flight after drain timeout; redelivered later",
                        frames=left)  # fmt: skip
        self._commit(consumer, partitions, force=True)

    def _measure_lag(self, consumer: KafkaConsumer) -> None:
        if time.monotonic() - self._last_lag < _LAG_INTERVAL_S or not self.assigned:
            return
        self._last_lag = time.monotonic()
        partitions = [TopicPartition(*p) for p in self.assigned]
        ends = {tp: consumer.highwater(tp) for tp in partitions}
        if self.stall.silent_for_s() >= STARVING_AFTER_S:
            # Nothing came for a while: the high watermark of the last fetch response is
            # exactly what may be stale, so ask the broker, with a short timeout (the public
            # end_offsets waits up to request_timeout_ms, 305 s, with this thread blocked).
            try:
                ends = consumer._fetcher.end_offsets(partitions, _END_OFFSETS_TIMEOUT_MS)
            except KafkaError as exc:
                log.warning("lag not measured", error=str(exc))
        for tp, end in ends.items():
            if end is None:
                continue
            # Tansu answers the base offset of the last batch as the end, so against it lag
            # reads short by up to a batch; Apache Kafka is exact.
            lag = max(0, end - consumer.position(tp))
            self.lag[(tp.topic, tp.partition)] = lag
            metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)


class _Rebalance(ConsumerRebalanceListener):
    """Runs inside poll(), on the poll thread."""

    def __init__(self, poller: FramePoller) -> None:
        self.poller = poller

    def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        poller = self.poller
        partitions = [(tp.topic, tp.partition) for tp in revoked]
        if poller._consumer is not None and partitions:
            poller._drain(poller._consumer, partitions)
        poller.tracker.forget(partitions)
        poller.assigned = [p for p in poller.assigned if p not in partitions]
        for p in partitions:
            poller.lag.pop(p, None)
            # Its lag is another worker's to report now; a series left behind would show
            # the last value measured here for ever (and add up twice on the dashboard).
            with suppress(KeyError):
                metrics.CONSUMER_LAG.remove(p[0], str(p[1]))
        poller.on_rebalance("revoked", partitions)

    def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        poller = self.poller
        partitions = [(tp.topic, tp.partition) for tp in assigned]
        poller.tracker.assign(partitions)
        poller.assigned = sorted(set(poller.assigned) | set(partitions))
        poller.paused = False  # a fresh assignment starts unpaused
        poller.on_rebalance("assigned", partitions)
        poller.joined.set()
