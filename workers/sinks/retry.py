"""Retry a sink write with capped exponential backoff until it succeeds or we give up."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from framewire.log import get_logger
from workers.metrics import SINK_RETRIES

T = TypeVar("T")
log = get_logger(__name__)


class GaveUp(RuntimeError):
    """The abort event was set while a write kept failing: nothing was committed for it."""


def with_retries(
    write: Callable[[], T],
    sink: str,
    retry_on: tuple[type[BaseException], ...],
    abort: threading.Event,
    first_delay_s: float = 0.1,
    max_delay_s: float = 5.0,
) -> T:
    delay = first_delay_s
    while True:
        try:
            return write()
        except retry_on as exc:
            SINK_RETRIES.labels(sink).inc()
            log.warning("sink write failed, retrying", sink=sink, error=str(exc), delay_s=delay)
            if abort.wait(delay):
                raise GaveUp(f"{sink}: gave up after {exc}") from exc
            delay = min(delay * 2, max_delay_s)
