"""What the watchdog raises when something is wrong that no stage can say for itself.

A stall (lag, and nothing received) and a batch past the inference deadline are noticed
by the watchdog thread (workers/watchdog.py) from what the stages leave behind. This turns
them into what an operator sees: a log line, an `error` event, a metric, and, for a hung
batch, the end of the process (workers/deadline.py says why).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import suppress
from typing import Any

from foundation.log import get_logger
from workers import metrics
from workers.deadline import EXIT_CODE
from workers.poller import FramePoller
from workers.work import WorkItem

log = get_logger(__name__)

SendEvent = Callable[..., None]  # (kind, **fields)


class Alarms:
    def __init__(
        self,
        poller: FramePoller,
        deadline_s: float,
        send_event: SendEvent,
        flush: Callable[[], None],
        exit: Callable[[int], Any] = os._exit,
    ) -> None:
        self.poller = poller
        self.deadline_s = deadline_s
        self.send_event = send_event
        self.flush = flush  # the events' producer: a process about to exit sends what it has
        self.exit = exit

    def check_stall(self) -> None:
        stall = self.poller.stall
        change = stall.check()
        if change is None:
            return
        metrics.STALLED.set(int(change == "stalled"))
        details = {"lag": stall.lag, "silent_s": round(stall.silent_for_s(), 1),
                   "fetch_max_wait_ms": self.poller.fetch_wait.ms}  # fmt: skip
        if change == "recovered":
            log.info("consumer recovered: records flow again", **details)
            return
        log.error("consumer stalled: lag and nothing received", **details)
        reason = (
            f"stalled: lag {details['lag']}, nothing received for {details['silent_s']} s "
            f"at fetch wait {details['fetch_max_wait_ms']} ms"
        )
        self.send_event("error", stage="poll", reason=reason, **details)

    def deadline_exceeded(self, items: list[WorkItem], elapsed_s: float) -> None:
        """A batch hangs: say so, and end the process. The next owner runs each of its
        frames alone, so the one that hangs is named (workers/deliveries.py)."""
        metrics.INFERENCE_DEADLINES.inc()
        log.error("inference deadline exceeded; exiting for a fresh process", frames=len(items),
                  elapsed_s=round(elapsed_s, 1), deadline_s=self.deadline_s)  # fmt: skip
        with suppress(Exception):  # exit whatever fails: a hung worker serves nothing
            reason = (f"deadline: a batch of {len(items)} ran {elapsed_s:.0f} s "
                      f"(limit {self.deadline_s} s)")  # fmt: skip
            self.send_event("error", stage="inference", reason=reason)
            self.flush()
        self.exit(EXIT_CODE)
