"""Whether records flow: the poll thread's fetch wait, and its stall watch.

A broker holds a fetch open for up to the fetch wait when it has nothing to return.
Short waits keep the first frame after a quiet spell fast; but a broker that needs longer
than the wait to find the records returns nothing, every time, without an error. The
embedded Tansu broker does that once a partition holds about 12,000 large record batches:
its cost per fetch grows with them (shared/ENVIRONMENT.md). So when nothing has come for a
second while the worker has lag, the wait grows fourfold, up to 2 s. librdkafka takes the
wait at creation only, so the poll thread then rejoins with a new consumer; the wait never
shrinks again (such a partition only grows). Apache Kafka answers a held fetch as soon as
records arrive, so there a longer wait costs no latency; on Tansu it is a latency floor
(the GPU bench's p50 at 10% load was 679 ms with a wait of 2 s), hence the short start.

If records still do not come, the stall watch says so instead of going silent.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FETCH_WAIT_MIN_MS = 10  # the first frame after a quiet spell waits at most this
FETCH_WAIT_MAX_MS = 2_000  # Tansu at 16,000 batches a partition: 100 ms worked, 10 ms never
STARVING_AFTER_S = 1.0  # lag and nothing received for this long: fetches are too short
_GROWTH = 4  # each step costs a rejoin: few steps from 10 ms to the 100 ms that worked


class FetchWait:
    """The fetch wait for the poll thread's consumer."""

    def __init__(self, min_ms: int = FETCH_WAIT_MIN_MS, max_ms: int = FETCH_WAIT_MAX_MS) -> None:
        self.max_ms = max_ms
        self.ms = min_ms

    def lengthen(self) -> bool:
        """Grow the wait for a starving consumer; False when it is at its maximum already."""
        if self.ms >= self.max_ms:
            return False
        self.ms = min(self.ms * _GROWTH, self.max_ms)
        return True


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
        """paused: held back by backpressure while frames still finish (not a stall)."""
        self.lag = lag
        if received or lag == 0 or paused:
            self._last_flow = self.clock()

    def check(self) -> str | None:
        """'stalled' or 'recovered' when the state changes, else None."""
        silent = self.silent_for_s()
        if self.stalled and silent < self.after_s:
            self.stalled = False
            return "recovered"
        # Lag as last seen: a poll thread blocked in a group join has seen none, and is
        # joining, not stalled; one blocked on a broker that stopped answering has.
        if not self.stalled and self.after_s > 0 and self.lag > 0 and silent > self.after_s:
            self.stalled = True
            return "stalled"
        return None

    def silent_for_s(self) -> float:
        return self.clock() - self._last_flow
