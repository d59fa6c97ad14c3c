"""Whether records flow: the poll thread's adaptive fetch wait, and its stall watch.

A broker holds a fetch open for up to the fetch wait when it has nothing to return.
Short waits keep the first frame after a quiet spell fast; but a broker that needs longer
than the wait to find the records returns nothing, every time, without an error. The
embedded Tansu broker does that once a partition holds about 12,000 record batches: its
cost per fetch grows with them (shared/ENVIRONMENT.md). So the wait doubles while the
worker has lag and fetches come back empty, and returns to the minimum once caught up. On
Apache Kafka the longer wait costs nothing: a fetch returns as soon as data is there.

If records still do not come, the stall watch says so instead of going silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FETCH_WAIT_MIN_MS = 10  # the first frame after a quiet spell waits at most this
FETCH_WAIT_MAX_MS = 2_000  # Tansu at 16,000 batches a partition: 100 ms worked, 10 ms never


class FetchWait:
    """The fetch wait to use next, from what the last poll brought."""

    def __init__(self, min_ms: int = FETCH_WAIT_MIN_MS, max_ms: int = FETCH_WAIT_MAX_MS) -> None:
        self.min_ms, self.max_ms = min_ms, max_ms
        self.ms = min_ms

    def after_poll(self, received: int, lag: int, paused: bool) -> int:
        if lag == 0:
            self.ms = self.min_ms  # caught up: be quick for the next frame
        elif not received and not paused:
            self.ms = min(self.ms * 2, self.max_ms)  # records wait, fetches come back empty
        return self.ms  # records flowing with lag: keep the wait that works


class StallWatch:
    """Lag > 0, partitions not paused, and nothing received for `after_s`: a stall.

    The poll thread notes each poll; the watchdog thread checks, so that a poll thread
    blocked on a broker that does not answer is noticed too."""

    def __init__(self, after_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.after_s = after_s
        self.clock = clock
        self.stalled = False
        self.lag = 0
        self._last_flow = clock()  # last time records came, or none were due

    def note_poll(self, received: int, lag: int, paused: bool) -> None:
        self.lag = lag
        if received or lag == 0 or paused:
            self._last_flow = self.clock()

    def check(self) -> str | None:
        """'stalled' or 'recovered' when the state changes, else None."""
        silent = self.silent_for_s()
        if self.stalled and silent < self.after_s:
            self.stalled = False
            return "recovered"
        if not self.stalled and self.after_s > 0 and silent > self.after_s:
            self.stalled = True
            return "stalled"
        return None

    def silent_for_s(self) -> float:
        return self.clock() - self._last_flow
