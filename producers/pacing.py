"""Keeping a source at a frame rate."""

from __future__ import annotations

import time


class Pacer:
    """Sleeps until the next tick of a fixed rate.

    catch_up=True keeps the long-run count exact (a stall is followed by frames without
    sleep until the schedule is met again): right for synthetic cameras, whose frame count
    tests and benchmarks rely on. catch_up=False never bursts: after a stall the schedule
    restarts from now, which is what a live source capped by --max-fps wants.
    """

    def __init__(self, rate_hz: float, catch_up: bool = True) -> None:
        if rate_hz <= 0:
            raise ValueError(f"rate must be positive, got {rate_hz}")
        self.interval = 1.0 / rate_hz
        self.catch_up = catch_up
        self._next: float | None = None

    def wait(self) -> None:
        now = time.monotonic()
        if self._next is None:
            self._next = now
        if self._next > now:
            time.sleep(self._next - now)
        elif not self.catch_up:
            self._next = now
        self._next += self.interval
