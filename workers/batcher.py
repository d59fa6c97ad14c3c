"""Dynamic batching: close a batch when it is full, when its oldest frame has waited
max_delay, or at once when the device is idle and frames are ready.

At low load a batch is one frame and latency stays near one frame's compute; under load
frames pile up while the device works, so the next batch is bigger by itself. max_delay
only ever applies while the device is busy (Triton's max_queue_delay, but never spent
idling the device).

Frames are batched in the order they were polled: the ready queue holds the decode
futures in poll order and a frame is taken only once every frame before it is decoded.
So each stream's results are written in `seq` order (a partition keeps a stream's order),
at the cost of waiting for the slowest of a few parallel decodes.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as wait_for

from workers.work import WorkItem

_BUSY_POLL_S = 0.0005  # how often to re-check a busy device while waiting for frames


class DynamicBatcher:
    def __init__(
        self, ready: queue.Queue[Future[WorkItem]], max_batch: int, max_delay_ms: float
    ) -> None:
        self.ready = ready
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000
        self._head: Future[WorkItem] | None = None  # the oldest frame not yet batched

    def next_batch(self, device_idle: Callable[[], bool], timeout_s: float) -> list[WorkItem]:
        """The next batch, or [] when nothing arrived within timeout_s (or the device
        became idle with nothing to give it)."""
        first = self._first(device_idle, timeout_s)
        if first is None:
            return []
        batch = [first]
        close_at = first.decoded_at + self.max_delay_s
        while len(batch) < self.max_batch:
            if self._head_ready():
                batch.append(self._take())
                continue
            remaining = close_at - time.time()
            if remaining <= 0 or device_idle():
                break
            self._wait(min(remaining, _BUSY_POLL_S))
        return batch

    def waiting(self) -> bool:
        """True when a live frame has been polled and not yet batched (decoded or not)."""
        return self._head is not None or not self.ready.empty()

    def _first(self, device_idle: Callable[[], bool], timeout_s: float) -> WorkItem | None:
        # Called while the device is busy, return as soon as it finishes even with no
        # frame, so the caller can collect its results without waiting for the next one.
        deadline = time.monotonic() + timeout_s
        was_busy = not device_idle()
        while not self._head_ready():
            wait = deadline - time.monotonic()
            if wait <= 0 or (was_busy and device_idle()):
                return None
            self._wait(min(wait, _BUSY_POLL_S) if was_busy else wait)
        return self._take()

    def _head_ready(self) -> bool:
        if self._head is None:
            try:
                self._head = self.ready.get_nowait()
            except queue.Empty:
                return False
        return self._head.done()

    def _wait(self, timeout_s: float) -> None:
        """Until the head frame is decoded (or one arrives), at most timeout_s."""
        if self._head is None:
            try:
                self._head = self.ready.get(timeout=timeout_s)
            except queue.Empty:
                return
        wait_for([self._head], timeout=timeout_s)

    def _take(self) -> WorkItem:
        head, self._head = self._head, None
        assert head is not None
        return head.result()
