"""The connections a gateway process shares between its request threads.

One Publisher (a librdkafka producer: thread-safe, but its threads and sockets must not
cross a fork), one producer for feedback records, one Redis connection pool, one
lag monitor and one Celery client app per process, each created on first use. gunicorn
forks its workers after importing the app (and with --preload after creating it), so
nothing here may exist before the fork: lazily created objects are, and a pid check drops
any that were inherited anyway.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import redis
from kafka import KafkaProducer

from foundation.kafka import producer_config
from foundation.log import get_logger
from foundation.settings import Settings
from producers.gateway.overload import LagMonitor
from producers.publisher import Publisher

log = get_logger(__name__)

# No linger for request frames: a lone request's frame goes at once. Measured with
# run_gateway_bench (2-core machine, CPU worker): p50 at concurrency 1 went from 18.6 ms
# (linger 5, the cameras' setting) to 10.8 ms; under load the producer still groups the
# frames that pile up while a send is in flight, and 8 / 32 concurrent clients were within
# run-to-run noise of linger 5.
GATEWAY_LINGER_MS = 0
# A connect that takes longer than this is a Redis outage, not a slow answer.
_REDIS_CONNECT_TIMEOUT_S = 2.0


class Resources:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._publisher: Publisher | None = None
        self._feedback_producer: KafkaProducer | None = None
        self._redis: redis.Redis | None = None
        self._lag: LagMonitor | None = None
        self._celery: Any = None

    @property
    def publisher(self) -> Publisher:
        """Raises PublishError while Kafka cannot be reached; the next call tries again."""
        return self._once("_publisher", self._new_publisher)

    @property
    def feedback_producer(self) -> KafkaProducer:
        """For feedback/1 records (small JSON, not frames). Raises KafkaError while Kafka
        cannot be reached; the next call tries again."""
        return self._once("_feedback_producer", self._new_feedback_producer)

    @property
    def redis(self) -> redis.Redis:
        # No socket timeout: BLPOP blocks for up to the request deadline.
        return self._once("_redis", lambda: redis.Redis.from_url(
            self.settings.redis_url,
            socket_connect_timeout=_REDIS_CONNECT_TIMEOUT_S,
            health_check_interval=30,
        ))  # fmt: skip

    @property
    def lag(self) -> LagMonitor:
        return self._once("_lag", lambda: LagMonitor(self.settings))

    @property
    def celery(self) -> Any:
        """A client-only Celery app (no streaming bootstep) for pinging the workers."""
        return self._once("_celery", self._new_celery)

    def _once(self, attribute: str, make: Callable[[], Any]) -> Any:
        """The per-process resource in attribute, made on first use (double-checked)."""
        self._check_fork()
        value = getattr(self, attribute)
        if value is None:
            with self._lock:
                value = getattr(self, attribute)
                if value is None:
                    value = make()
                    setattr(self, attribute, value)
        return value

    def _new_publisher(self) -> Publisher:
        # A send blocks at most as long as a request may wait in total.
        block_s = min(self.settings.producer_max_block_s, self.settings.gateway_timeout_ms / 1000)
        return Publisher(self.settings, max_block_s=block_s, linger_ms=GATEWAY_LINGER_MS,
                         connect_timeout_s=min(block_s, 5.0))  # fmt: skip

    def _new_feedback_producer(self) -> KafkaProducer:
        block_ms = int(min(self.settings.producer_max_block_s,
                           self.settings.gateway_timeout_ms / 1000) * 1000)  # fmt: skip
        return KafkaProducer(**producer_config(
            self.settings, client_id="framewire-gateway-feedback", linger_ms=0,
            max_block_ms=block_ms,
        ))  # fmt: skip

    def _new_celery(self) -> Any:
        from foundation.celery import celery_app  # Celery is imported only if used

        return celery_app(self.settings)

    def close(self) -> None:
        """Flush what was published and close every connection (tests, shutdown)."""
        with self._lock:
            publisher, self._publisher = self._publisher, None
            feedback, self._feedback_producer = self._feedback_producer, None
            client, self._redis = self._redis, None
            lag, self._lag = self._lag, None
            self._celery = None
        if publisher is not None:
            publisher.close(timeout_s=5)
        if feedback is not None:
            feedback.close(timeout=5)
        if client is not None:
            client.close()
        if lag is not None:
            lag.close()

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            # Inherited from the parent: the child must not touch the parent's sockets
            # or its producer's (dead) sender thread; forget them and start afresh.
            self._pid = os.getpid()
            self._publisher = self._redis = self._lag = self._celery = None
            self._feedback_producer = None
            self._lock = threading.Lock()
