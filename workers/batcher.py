"""Dynamic batching: close a batch when it is full, when its oldest frame has waited
max_delay, or at once when the device is idle and frames are ready.

At low load a batch is one frame and latency stays near one frame's compute; under load
frames pile up while the device works, so the next batch is bigger by itself. max_delay
only ever applies while the device is busy (Triton's max_queue_delay, but never spent
idling the device).
"""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Callable

from workers.work import WorkItem

_BUSY_POLL_S = 0.0005  # how often to re-check a busy device while waiting for frames


class DynamicBatcher:
    def __init__(self, ready: queue.Queue[WorkItem], max_batch: int, max_delay_ms: float) -> None:
        self.ready = ready
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000

    def next_batch(self, device_idle: Callable[[], bool], timeout_s: float) -> list[WorkItem]:
        """The next batch, or [] when nothing arrived within timeout_s (or the device
        became idle with nothing to give it)."""
        first = self._first(device_idle, timeout_s)
        if first is None:
            return []
        batch = [first]
        close_at = first.decoded_at + self.max_delay_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self.ready.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = close_at - time.time()
            if remaining <= 0 or device_idle():
                break
            with contextlib.suppress(queue.Empty):
                batch.append(self.ready.get(timeout=min(remaining, _BUSY_POLL_S)))
        return batch

    def _first(self, device_idle: Callable[[], bool], timeout_s: float) -> WorkItem | None:
        # While the device is busy, return as soon as it finishes even with no frame, so
        # the caller can collect its results without waiting for the next frame.
        deadline = time.monotonic() + timeout_s
        while True:
            idle = device_idle()
            wait = deadline - time.monotonic()
            if wait <= 0:
                return None
            try:
                return self.ready.get(timeout=wait if idle else min(wait, _BUSY_POLL_S))
            except queue.Empty:
                if not idle and device_idle():
                    return None
