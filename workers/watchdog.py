"""The watchdog thread: checks that must run even when a stage hangs.

A hung device thread cannot notice its own hang, and a poll thread blocked on a broker
that does not answer cannot notice that nothing comes. So the checks run here, once a
second, from the state the stages leave behind: the inference deadline
(workers/deadline.py) and the stall watch (workers/flow.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from workers.threads import name_os_thread

_INTERVAL_S = 1.0


class Watchdog(threading.Thread):
    def __init__(self, checks: list[Callable[[], None]], interval_s: float = _INTERVAL_S) -> None:
        super().__init__(name="framewire-watchdog", daemon=True)
        self.checks = checks
        self.interval_s = interval_s
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        name_os_thread()
        while not self._stop_event.wait(self.interval_s):
            for check in self.checks:
                check()
