"""Retry a sink write with capped exponential backoff while its failures are retriable."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from foundation.log import get_logger
from workers.metrics import SINK_RETRIES
from workers.sinks.errors import PermanentWriteError, describe, is_retriable

T = TypeVar("T")
log = get_logger(__name__)


class GaveUp(RuntimeError):
    """The abort event was set while a write kept failing: nothing was committed for it."""


class Backoff:
    """Capped exponential delays that end early (GaveUp) when abort is set."""

    def __init__(
        self, sink: str, abort: threading.Event, first_s: float = 0.1, max_s: float = 5.0
    ) -> None:
        self.sink, self.abort = sink, abort
        self.delay, self.max_s = first_s, max_s

    def wait(self, exc: BaseException) -> None:
        SINK_RETRIES.labels(self.sink).inc()
        log.warning("sink write failed, retrying", sink=self.sink, error=describe(exc),
                    delay_s=self.delay)  # fmt: skip
        if self.abort.wait(self.delay):
            raise GaveUp(f"{self.sink}: gave up after {describe(exc)}") from exc
        self.delay = min(self.delay * 2, self.max_s)


def with_retries(write: Callable[[], T], sink: str, abort: threading.Event) -> T:
    """write() until it succeeds; a permanent failure raises PermanentWriteError at once."""
    backoff = Backoff(sink, abort)
    while True:
        try:
            return write()
        except Exception as exc:
            if not is_retriable(exc):
                raise PermanentWriteError(sink, exc) from exc
            backoff.wait(exc)
