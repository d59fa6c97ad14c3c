"""The reliability parts on their own: error classes, the DLQ record, fetch wait, stall
watch, inference deadline."""

from __future__ import annotations

import hashlib
import time

import pytest
import redis
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from foundation.settings import DLQ_VALUE_CEILING, Settings, SettingsError
from schemas.dlq import MAX_CARRIED_HEADER_BYTES, DeadLetter, dead_letter
from workers.deadline import InferenceDeadline
from workers.flow import FetchWait, StallWatch
from workers.sinks.errors import is_retriable


def kafka(code: int) -> KafkaException:
    """What librdkafka reports for a record: a KafkaError with the broker's or its own code."""
    return KafkaException(KafkaError(code))


@pytest.mark.parametrize(
    "error",
    [kafka(KafkaError._MSG_TIMED_OUT), kafka(KafkaError.NOT_LEADER_FOR_PARTITION),
     kafka(KafkaError._TRANSPORT), kafka(KafkaError._ALL_BROKERS_DOWN), BufferError(),
     redis.ConnectionError(), redis.TimeoutError(), redis.exceptions.BusyLoadingError(),
     ConnectionResetError()],
)  # fmt: skip
def test_what_heals_by_itself_is_retried(error):
    assert is_retriable(error)


@pytest.mark.parametrize(
    "error",
    [kafka(KafkaError.MSG_SIZE_TOO_LARGE), kafka(KafkaError.TOPIC_AUTHORIZATION_FAILED),
     kafka(KafkaError.TOPIC_EXCEPTION),
     redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
     redis.DataError("Invalid input of type: 'dict'"), TypeError("not serialisable")],
)  # fmt: skip
def test_what_never_will_is_permanent(error):
    assert not is_retriable(error)


def test_a_dlq_record_of_a_huge_value_keeps_a_prefix_and_says_what_the_original_was():
    value = bytes(range(256)) * 50_000  # 12.8 MB
    record = dead_letter(
        b"cam-1", value, [("fw-frame-id", b"f1")], ("t.frames", 2, 41), "too big", "schema",
        "w1", 1_000_000,
    )  # fmt: skip
    assert record.value == value[:1_000_000]
    size = len(record.value) + sum(len(n) + len(v) for n, v in record.headers) + len(b"cam-1")
    assert size < 1_048_588, "a stock Apache Kafka accepts it"
    letter = DeadLetter.from_record(record.key, record.value, record.headers)
    assert (letter.original_topic, letter.original_partition, letter.original_offset) == (
        "t.frames", 2, 41,
    )  # fmt: skip
    assert letter.original_size == len(value)
    assert letter.original_sha256 == hashlib.sha256(value).hexdigest()
    assert letter.incomplete == ("value",) and not letter.complete
    assert letter.headers == [("fw-frame-id", b"f1")]


def test_a_dlq_record_drops_headers_and_keys_too_large_to_carry():
    headers = [("fw-frame-id", b"f1"), ("junk", b"x" * MAX_CARRIED_HEADER_BYTES)]
    record = dead_letter(b"k" * 10_000, b"small", headers, ("t", 0, 1), "r", "schema", "w", 100)
    letter = DeadLetter.from_record(record.key, record.value, record.headers)
    assert record.key is None and letter.headers == []
    assert letter.incomplete == ("headers", "key")
    assert letter.value == b"small"


def test_a_small_record_goes_to_the_dlq_whole():
    record = dead_letter(b"k", b"abc", [("fw-seq", b"1")], ("t", 0, 1), "r", "decode", "w", 100)
    letter = DeadLetter.from_record(record.key, record.value, record.headers)
    assert letter.complete and letter.value == b"abc" and letter.key == b"k"
    assert (letter.stage, letter.reason, letter.worker) == ("decode", "r", "w")


def test_the_dlq_value_limit_never_exceeds_what_a_stock_kafka_accepts():
    assert Settings.load(environ={}).dlq_max_value_bytes == DLQ_VALUE_CEILING
    with pytest.raises(SettingsError, match="FRAMEWIRE_DLQ_MAX_VALUE_BYTES"):
        Settings.load(environ={"FRAMEWIRE_DLQ_MAX_VALUE_BYTES": "2000000"})


def test_a_starving_consumer_gets_a_longer_fetch_wait_in_few_steps():
    wait = FetchWait(min_ms=10, max_ms=1000)
    grown = []
    while wait.lengthen():
        grown.append(wait.ms)
    assert grown == [40, 160, 640, 1000], "reaches the 100 ms that Tansu needed in two rejoins"
    assert not wait.lengthen() and wait.ms == 1000


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_stall_is_lag_with_nothing_received_and_it_recovers_by_itself():
    clock = Clock()
    watch = StallWatch(after_s=10, clock=clock)
    for second in range(1, 30):  # idle: no lag, nothing due
        clock.now = second
        watch.note_poll(0, lag=0, paused=False)
        assert watch.check() is None
    clock.now = 35
    watch.note_poll(0, lag=0, paused=True)  # paused by backpressure: not a stall either
    assert watch.check() is None
    states = []
    for second in range(36, 60):
        clock.now = second
        watch.note_poll(0, lag=1200, paused=False)
        states.append(watch.check())
    assert states.count("stalled") == 1 and states.index("stalled") == 10  # at 46 s
    assert watch.stalled
    clock.now = 61
    watch.note_poll(25, lag=1175, paused=False)
    assert watch.check() == "recovered" and not watch.stalled


def test_a_poll_thread_blocked_before_it_saw_any_lag_is_not_a_stall():
    clock = Clock()
    watch = StallWatch(after_s=5, clock=clock)  # e.g. waiting in a group join
    clock.now = 60
    assert watch.check() is None


def test_a_stall_is_also_seen_when_the_poll_thread_itself_hangs():
    clock = Clock()
    watch = StallWatch(after_s=5, clock=clock)
    watch.note_poll(0, lag=300, paused=False)
    clock.now = 6  # no more polls noted at all
    assert watch.check() == "stalled"


def test_the_inference_deadline_fires_only_past_the_deadline():
    fired = []
    running: list = [None]
    deadline = InferenceDeadline(5.0, lambda: running[0], lambda items, s: fired.append(items))
    deadline.check()
    running[0] = (time.time() - 1, ["a"])
    deadline.check()
    assert fired == []
    running[0] = (time.time() - 6, ["a", "b"])
    deadline.check()
    assert fired == [["a", "b"]]
    off = InferenceDeadline(0, lambda: (0.0, ["x"]), lambda items, s: fired.append(items))
    off.check()
    assert len(fired) == 1, "0 turns it off"


def test_a_hung_batch_is_reported_then_ends_the_process():
    from types import SimpleNamespace

    from workers.alarms import Alarms
    from workers.deadline import EXIT_CODE

    said, flushed, exits = [], [], []
    alarms = Alarms(SimpleNamespace(), 5.0, lambda kind, **f: said.append((kind, f)),
                    flush=lambda: flushed.append(True), exit=exits.append)  # fmt: skip
    alarms.deadline_exceeded(["a", "b"], 7.2)
    assert said == [("error", {"stage": "inference",
                               "reason": "deadline: a batch of 2 ran 7 s (limit 5.0 s)"})]
    assert flushed == [True], "what was said is sent before the exit"
    assert exits == [EXIT_CODE]


def test_a_stall_is_said_once_and_its_recovery_too():
    from types import SimpleNamespace

    from workers.alarms import Alarms

    clock = Clock()
    poller = SimpleNamespace(stall=StallWatch(after_s=3, clock=clock),
                             fetch_wait=FetchWait())  # fmt: skip
    said = []
    alarms = Alarms(poller, 0, lambda kind, **f: said.append(f), flush=lambda: None)
    poller.stall.note_poll(0, lag=40, paused=False)
    for second in (1, 2, 4, 5, 6):
        clock.now = second
        alarms.check_stall()
    assert [f["stage"] for f in said] == ["poll"] and said[0]["lag"] == 40
    clock.now = 7
    poller.stall.note_poll(10, lag=30, paused=False)
    alarms.check_stall()
    assert len(said) == 1 and not poller.stall.stalled


def test_a_revoked_partition_takes_its_lag_series_with_it():
    """Another worker reports a revoked partition's lag; a series left here would show the
    last value measured for ever (and count twice on the dashboard's sum)."""
    from prometheus_client import REGISTRY

    from workers.metrics import CONSUMER_LAG
    from workers.offsets import OffsetTracker
    from workers.poller import FramePoller, _Rebalance

    def series() -> set[tuple[str, str]]:
        return {(s.labels["topic"], s.labels["partition"]) for m in REGISTRY.collect()
                if m.name == "framewire_consumer_lag" for s in m.samples}  # fmt: skip

    poller = FramePoller(Settings.load(environ={}), OffsetTracker(), lambda item: None,
                         lambda kind, partitions: None, "t", deliveries=None)  # fmt: skip
    listener = _Rebalance(poller)
    listener.assigned(None, [TopicPartition("t.frames", 0), TopicPartition("t.frames", 1)])
    for partition in (0, 1):
        CONSUMER_LAG.labels("t.frames", str(partition)).set(7)
    listener.lost(None, [TopicPartition("t.frames", 1)])
    assert {("t.frames", "0")} <= series() and ("t.frames", "1") not in series()
    listener.lost(None, [TopicPartition("t.frames", 1)])  # twice: no error


class _Broker:
    """The few consumer calls lag measurement makes, answered from numbers (or not at all)."""

    def __init__(self, position: int, end: int) -> None:
        self.position_, self.end, self.answers = position, end, True
        self.fresh_asks = 0

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.position_) for tp in partitions]

    def get_watermark_offsets(self, tp, timeout=None, cached=False) -> tuple[int, int]:
        if not cached:
            if not self.answers:
                raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
            self.fresh_asks += 1
        return 0, self.end


def test_a_consumer_starves_only_when_the_broker_answers_twice_that_records_wait():
    """librdkafka's fetch wait is fixed at creation, so a longer one costs a rejoin: asked
    only when fetches come back empty while the broker, asked itself, says records wait;
    a broker that answers nothing (frozen, down) is a stall, which no wait would mend."""
    from workers.flow import STARVING_AFTER_S
    from workers.offsets import OffsetTracker
    from workers.poller import FramePoller

    poller = FramePoller(Settings.load(environ={}), OffsetTracker(), lambda item: None,
                         lambda kind, partitions: None, "t", deliveries=None)  # fmt: skip
    clock = Clock()
    poller.stall = StallWatch(after_s=30, clock=clock)
    poller.assigned = [("t.frames", 0)]
    broker = _Broker(position=100, end=900)

    def measure(at_s: float) -> None:
        clock.now = at_s
        poller._last_lag = 0.0  # due now
        poller._measure_lag(broker)

    measure(0.1)  # records just flowed: the last fetch's watermark will do
    assert broker.fresh_asks == 0 and poller.lag == {("t.frames", 0): 800}
    measure(STARVING_AFTER_S + 1)
    assert broker.fresh_asks == 1 and not poller._starving(), "one answer may come just late"
    measure(STARVING_AFTER_S + 3)
    assert poller._starving()

    poller.stall.note_poll(5, lag=800, paused=False)  # records arrive again
    measure(STARVING_AFTER_S + 3.5)
    assert not poller._starving()

    broker.answers = False  # frozen: nothing answers, not even the watermark query
    for second in (6, 8, 10):
        measure(second)
    assert not poller._starving()
