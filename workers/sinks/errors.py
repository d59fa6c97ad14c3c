"""Which write failures heal by themselves and which never will.

Retriable: the world will heal (connection lost, timeout, leader moved, broker or Redis
down or loading): retry with backoff, and meanwhile the flow stops at Kafka. Permanent:
this write will never succeed however often it is tried (record too large, invalid or
unauthorised topic, a value that does not serialise, a Redis script or type error for
one frame's keys): the frame is finished with what can be written, so it never blocks
the frames behind it. Kafka Streams' production exception handler and Quix Streams'
error callbacks draw the same line.
"""

from __future__ import annotations

import redis
from confluent_kafka import KafkaError, KafkaException

# Redis errors that a restart, a failover or freed memory cures. A misconfigured password
# is here too: every frame would fail alike, so stopping the flow (and saying so in the
# log) beats sending every frame to the DLQ.
_RETRIABLE_REDIS = (
    redis.ConnectionError,
    redis.TimeoutError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    redis.exceptions.AuthenticationError,
)


class PermanentWriteError(RuntimeError):
    """A write that will never succeed; `cause` is the error that says why."""

    def __init__(self, sink: str, cause: BaseException) -> None:
        super().__init__(f"{sink}: {describe(cause)}")
        self.sink = sink
        self.cause = cause


# A broker away, slow or moving leaders: the world may heal. librdkafka also marks the
# errors it reports as retriable; the codes say it for the ones it marks by context only.
_RETRIABLE_CODES = {
    KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN, KafkaError._QUEUE_FULL, KafkaError.NETWORK_EXCEPTION,
    KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.REQUEST_TIMED_OUT, KafkaError.NOT_ENOUGH_REPLICAS,
    KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND, KafkaError.UNKNOWN_TOPIC_OR_PART,
}  # fmt: skip


def is_retriable(exc: BaseException) -> bool:
    if isinstance(exc, KafkaException):
        # MSG_SIZE_TOO_LARGE, TOPIC_AUTHORIZATION_FAILED, an invalid topic: never.
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        return error is not None and (error.retriable() or error.code() in _RETRIABLE_CODES)
    if isinstance(exc, BufferError):
        return True  # librdkafka's local queue is full: the broker is slow or away
    if isinstance(exc, _RETRIABLE_REDIS):
        return True
    if isinstance(exc, redis.RedisError):
        return False  # ResponseError (a script or WRONGTYPE error), DataError, ...
    # OSError: a socket that broke outside the client's own wrapping.
    return isinstance(exc, OSError)


def describe(exc: BaseException) -> str:
    """One line: the error's class (librdkafka's error name) and message, clipped."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        error = exc.args[0]
        return f"{error.name()}: {error.str()}"[:300]
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
