"""The poll thread: the only thread that touches the Kafka consumer.

It polls frames, counts their deliveries (workers/deliveries.py) and hands them to the
decode pool, pauses the partitions when too many frames are in flight (backpressure
instead of unbounded buffers), commits the offsets that the sink stage has finished,
watches for a stall (workers/flow.py), and on revocation or shutdown waits for in-flight
frames, commits them, and only then gives the partitions up. The consumer is librdkafka
(workers/consumer.py): it fetches on its own threads, and its rebalance callbacks run
inside consume(), on this thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition

from foundation.log import get_logger
from foundation.settings import Settings
from workers import metrics
from workers.consumer import consume_available, consumer_config, record_of
from workers.deliveries import DeliveryCounter
from workers.flow import STARVING_AFTER_S, FetchWait, StallWatch
from workers.offsets import OffsetTracker, Partition
from workers.threads import name_os_thread
from workers.work import WorkItem

log = get_logger(__name__)

_POLL_TIMEOUT_S = 0.05
_COMMIT_INTERVAL_S = 0.2  # commits are cheap but not free: batch them a little
_LAG_INTERVAL_S = 2.0
_END_OFFSETS_TIMEOUT_S = 1.0
_PAUSE_AFTER_S = 1.0  # held back this long at the in-flight limit: pause the partitions


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
        self.paused = False  # held back at the in-flight limit
        self._partitions_paused = False  # and librdkafka told so (a long hold)
        self._held_since = 0.0
        self.polled = 0
        self.lag: dict[Partition, int] = {}
        self.joined = threading.Event()  # set at the first assignment
        self._room = threading.Event()  # set when paused and frames finished to half the limit
        self._stop_event = threading.Event()
        self._consumer: Consumer | None = None
        self._last_commit = 0.0
        self._last_finished = 0
        self._last_lag = 0.0
        # Lag measurements in a row that came from the broker itself, > 0, with nothing
        # received between them.
        self._lag_answers = 0

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
                if self.paused and not self._partitions_paused:
                    self._note_flow(0)  # held back: librdkafka's bounded queue waits
                else:
                    room = self.settings.in_flight_limit - self.tracker.in_flight()
                    timeout_s = 0 if self.paused else _POLL_TIMEOUT_S
                    self._hand_over(consume_available(consumer, max(room, 1), timeout_s))
                self._commit(consumer)
                self._measure_lag(consumer)
                if self._starving() and self.fetch_wait.lengthen():
                    consumer = self._reconnect(consumer)
            self._drain(consumer, self.assigned)
        finally:
            # Leave the group now rather than after the session timeout, so the
            # partitions move to the remaining workers at once.
            consumer.close()

    def _connect(self) -> Consumer:
        config = consumer_config(self.settings, self.client_id, self.fetch_wait.ms)
        consumer = Consumer(config)
        rebalance = _Rebalance(self)
        consumer.subscribe([self.settings.frames_topic], on_assign=rebalance.assigned,
                           on_revoke=rebalance.revoked, on_lost=rebalance.lost)  # fmt: skip
        metrics.FETCH_WAIT.set(self.fetch_wait.ms)
        return consumer

    def _reconnect(self, consumer: Consumer) -> Consumer:
        """librdkafka takes its fetch wait at creation only: a longer one takes a new
        consumer, and a group rejoin (seconds; only ever on a starving worker)."""
        log.warning("no frames arrive although the partitions hold some: rejoining with a "
                    "longer fetch wait", fetch_max_wait_ms=self.fetch_wait.ms)  # fmt: skip
        self._drain(consumer, self.assigned)
        consumer.close()
        self._lag_answers = 0
        self._consumer = self._connect()
        return self._consumer

    def _hand_over(self, messages: list[Message]) -> None:
        """Count the records' deliveries, then hand them over."""
        now = time.time()
        records = [record_of(m) for m in messages if not self._is_error(m)]
        by_partition: dict[Partition, list[int]] = {}
        for r in records:
            by_partition.setdefault((r.topic, r.partition), []).append(r.offset)
        counted = self.deliveries.count(by_partition)
        generations = {p: self.tracker.generation(p) for p in by_partition}
        for r in records:
            partition = (r.topic, r.partition)
            self.tracker.add(partition, r.offset)
            deliveries = counted.get((partition, r.offset), 0)
            self.submit(WorkItem(r, generations[partition], now, deliveries=deliveries))
        received = len(records)
        self.polled += received
        self._note_flow(received)

    def _is_error(self, message: Message) -> bool:
        error = message.error()
        if error is None:
            return False
        if error.fatal():
            raise KafkaException(error)
        if error.code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error", error=error.str())  # librdkafka retries by itself
        return True

    def _note_flow(self, received: int) -> None:
        metrics.IN_FLIGHT.set(self.tracker.in_flight())
        # Paused by backpressure is no stall while frames still finish; paused with nothing
        # finishing (the sinks cannot write either) is one.
        finished = self.tracker.finished_total
        lag = sum(self.lag.values())
        self.stall.note_poll(received, lag, self.paused and finished != self._last_finished)
        self._last_finished = finished

    def _starving(self) -> bool:
        """Nothing received, partitions not held back, and the broker, asked twice meanwhile,
        answers both times that they hold records past our positions: its fetches come back
        empty. (A broker that does not answer at all is a stall, which a longer wait would
        not mend; one that just answered again gets a measurement's time to deliver.)"""
        return self._lag_answers >= 2 and not self.paused

    def _wait_for_room(self, consumer: Consumer) -> None:
        """At the limit, wait here for frames to finish, up to one poll timeout: the writer
        wakes this thread when they are down to half (a poll with nothing to return would
        sleep its whole timeout, and at saturation the frames in flight finish long before:
        the null model ran a batch every 9.5 ms)."""
        self._room.clear()
        self._apply_backpressure(consumer)  # frames may have finished before the clear
        if self.paused:
            self._room.wait(_POLL_TIMEOUT_S)
            self._apply_backpressure(consumer)

    def _apply_backpressure(self, consumer: Consumer) -> None:
        """Hold back at the in-flight limit, go on at half of it (hysteresis).

        Held back, the poll thread stops consuming, and librdkafka stops fetching once its
        bounded local queue is full (workers/consumer.py). Pausing the partitions instead
        empties that queue and a resume fetches it again: 8.5 ms to the first record and up
        to 1 s, which held the null model to 264 frames/s. Only a hold longer than
        _PAUSE_AFTER_S (the sinks are stuck) pauses them, so that consume() can serve the
        group's callbacks and keep this member in the group meanwhile."""
        in_flight, limit = self.tracker.in_flight(), self.settings.in_flight_limit
        if not self.paused and in_flight >= limit:
            self.paused, self._held_since = True, time.monotonic()
        elif self.paused and in_flight <= limit // 2:
            self.paused = False
            if self._partitions_paused:
                consumer.resume(_kafka_partitions(self.assigned))
                self._partitions_paused = False
        elif (
            self.paused
            and not self._partitions_paused
            and (time.monotonic() - self._held_since > _PAUSE_AFTER_S)
        ):
            consumer.pause(_kafka_partitions(self.assigned))
            self._partitions_paused = True
        metrics.PAUSED.set(int(self.paused))

    def _commit(
        self, consumer: Consumer, partitions: list[Partition] | None = None, force=False
    ) -> None:
        if not force and time.monotonic() - self._last_commit < _COMMIT_INTERVAL_S:
            return
        offsets = self.tracker.to_commit(partitions)
        if not offsets:
            return
        try:
            answered = consumer.commit(
                offsets=[KafkaPartition(t, p, o) for (t, p), o in offsets.items()],
                asynchronous=False,
            )
        except KafkaException as exc:  # a rebalance in progress: the next commit retries
            log.warning("offset commit failed", error=str(exc))
            return
        failed = {(tp.topic, tp.partition) for tp in answered or [] if tp.error is not None}
        committed = {p: o for p, o in offsets.items() if p not in failed}
        if failed:
            log.warning("offset commit failed", partitions=sorted(failed))
        self.tracker.mark_committed(committed)
        self.deliveries.forget(committed)
        self._last_commit = time.monotonic()

    def _drain(self, consumer: Consumer, partitions: list[Partition]) -> None:
        """Wait (bounded) for in-flight frames of partitions to finish, then commit them."""
        if partitions:
            with suppress(KafkaException):  # no longer assigned (a lost partition)
                consumer.pause(_kafka_partitions(partitions))
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while self.tracker.in_flight(partitions) and time.monotonic() < deadline:
            time.sleep(0.01)
        left = self.tracker.in_flight(partitions)
        if left:
            log.warning("frames still in flight after drain timeout; redelivered later",
                        frames=left)  # fmt: skip
        self._commit(consumer, partitions, force=True)

    def _measure_lag(self, consumer: Consumer) -> None:
        if time.monotonic() - self._last_lag < _LAG_INTERVAL_S or not self.assigned:
            return
        self._last_lag = time.monotonic()
        # The high watermark of the last fetch response, unless nothing came for a while:
        # then that is exactly what may be stale, so ask the broker, with a short timeout.
        cached = self.stall.silent_for_s() < STARVING_AFTER_S
        asked, lagging = not cached, False
        try:
            for tp in self._positions(consumer):
                low, end = consumer.get_watermark_offsets(
                    tp, timeout=_END_OFFSETS_TIMEOUT_S, cached=cached
                )
                position = tp.offset
                if position < 0:  # nothing committed: where auto_offset_reset starts
                    position = low if self.settings.auto_offset_reset == "earliest" else end
                if end < 0 or position < 0:
                    continue  # not known yet
                # Tansu answers the base offset of the last batch as the end, so against it
                # lag reads short by up to a batch; Apache Kafka is exact.
                lag = max(0, end - position)
                self.lag[(tp.topic, tp.partition)] = lag
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
                lagging |= lag > 0
        except KafkaException as exc:
            asked = False
            log.warning("lag not measured", error=str(exc))
        self._lag_answers = self._lag_answers + 1 if asked and lagging else 0

    def _positions(self, consumer: Consumer) -> list[KafkaPartition]:
        """Where this worker reads each assigned partition: after the last record consumed,
        or, before the first, the committed offset it resumes from."""
        positions = consumer.position(_kafka_partitions(self.assigned))
        unknown = [tp for tp in positions if tp.offset == OFFSET_INVALID]
        if not unknown:
            return positions
        committed = consumer.committed(unknown, timeout=_END_OFFSETS_TIMEOUT_S)
        return [tp for tp in positions if tp.offset != OFFSET_INVALID] + committed


def _kafka_partitions(partitions: list[Partition]) -> list[KafkaPartition]:
    return [KafkaPartition(topic, partition) for topic, partition in partitions]


class _Rebalance:
    """librdkafka's rebalance callbacks; they run inside consume(), on the poll thread."""

    def __init__(self, poller: FramePoller) -> None:
        self.poller = poller

    def revoked(self, consumer: Consumer, revoked: list[KafkaPartition]) -> None:
        """Partitions leave in order: their frames in flight finish and are committed."""
        partitions = [(tp.topic, tp.partition) for tp in revoked]
        if partitions:
            self.poller._drain(consumer, partitions)
        self._forget(consumer, partitions)

    def lost(self, consumer: Consumer, lost: list[KafkaPartition]) -> None:
        """Partitions taken away (this worker missed its session): another member may own
        them already, so nothing is committed; their frames in flight are written anyway
        (at least once) and processed again by the new owner."""
        self._forget(consumer, [(tp.topic, tp.partition) for tp in lost])

    def assigned(self, consumer: Consumer, assigned: list[KafkaPartition]) -> None:
        poller = self.poller
        partitions = [(tp.topic, tp.partition) for tp in assigned]
        poller.tracker.assign(partitions)
        poller.assigned = sorted(set(poller.assigned) | set(partitions))
        poller.paused = poller._partitions_paused = False  # a fresh assignment starts unpaused
        poller.on_rebalance("assigned", partitions)
        poller.joined.set()

    def _forget(self, consumer: Consumer | None, partitions: list[Partition]) -> None:
        poller = self.poller
        if consumer is not None and partitions:  # None: a unit test's callback, no consumer
            # librdkafka keeps a partition paused through a rebalance: were it assigned here
            # again, nothing would resume it.
            with suppress(KafkaException):
                consumer.resume(_kafka_partitions(partitions))
        poller.tracker.forget(partitions)
        poller.assigned = [p for p in poller.assigned if p not in partitions]
        for p in partitions:
            poller.lag.pop(p, None)
            # Its lag is another worker's to report now; a series left behind would show
            # the last value measured here for ever (and add up twice on the dashboard).
            with suppress(KeyError):
                metrics.CONSUMER_LAG.remove(p[0], str(p[1]))
        poller.on_rebalance("revoked", partitions)
