"""The inference deadline: a batch that runs too long ends the process.

A model call that hangs (a driver fault, a pathological input) cannot be cancelled from
Python, and a worker whose device thread hangs serves nothing while holding its
partitions. So the watchdog (workers/watchdog.py) exits the process; its supervisor
(Kubernetes, compose, systemd) starts a fresh one, the partitions' next owner runs each
redelivered frame alone (workers/deliveries.py), and the frame that hangs is dead-lettered
as poison after FRAMEWIRE_MAX_DELIVERIES while the rest of its batch is served.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from workers.work import WorkItem

EXIT_CODE = 70  # EX_SOFTWARE: the worker ended itself on purpose

RunningSince = Callable[[], "tuple[float, list[WorkItem]] | None"]


class InferenceDeadline:
    def __init__(
        self,
        deadline_s: float,
        running_since: RunningSince,
        on_exceeded: Callable[[list[WorkItem], float], None],
    ) -> None:
        self.deadline_s = deadline_s  # 0: no deadline
        self.running_since = running_since
        self.on_exceeded = on_exceeded

    def check(self) -> None:
        running = self.running_since() if self.deadline_s > 0 else None
        if running is None:
            return
        launched_at, items = running
        elapsed = time.time() - launched_at
        if elapsed > self.deadline_s:
            self.on_exceeded(items, elapsed)
