"""Dynamic batching: close a batch when it is full, when its oldest frame has waited
max_delay, or at once when the device is idle and frames are ready.

At low load a batch is one frame and latency stays near one frame's compute; under load
frames pile up while the device works, so the next batch is bigger by itself. max_delay
only ever applies while the device is busy (Triton's max_queue_delay, but never spent
idling the device).

On a CPU device the "device" is the cores the decode threads use too, and a batch's fixed
costs (the model's call, the writer's script call to Redis, the results topic's request,
the broker's and Redis's work for them) are paid on those same cores. An idle device
thread idles no hardware there, so with `fill_from_decode`, when the frames already
polled and still in decode would fill the batch (a backlog), it waits for them, up to
max_delay from the batch's start. In a lull a batch goes with what is ready, as on a GPU:
at low and moderate load latency stays as it was, and at saturation batches stay full
(docs/PERFORMANCE.md, "Filling a CPU batch from decode").

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
        self, ready: queue.Queue[Future[WorkItem]], max_batch: int, max_delay_ms: float,
        fill_from_decode: bool = False,
    ) -> None:  # fmt: skip
        """fill_from_decode: with the device idle, wait (up to max_delay) for frames still
        in decode rather than run what is ready: for a CPU device (above)."""
        self.ready = ready
        self.max_batch = max_batch
        self.max_delay_s = max_delay_ms / 1000
        self.fill_from_decode = fill_from_decode
        self._head: Future[WorkItem] | None = None  # the oldest frame not yet batched

    def next_batch(self, device_idle: Callable[[], bool], timeout_s: float) -> list[WorkItem]:
        """The next batch, or [] when nothing arrived within timeout_s (or the device
        became idle with nothing to give it)."""
        first = self._first(device_idle, timeout_s)
        if first is None:
            return []
        batch = [first]
        busy_until = first.decoded_at + self.max_delay_s  # a busy device: oldest frame's wait
        fill_until = time.time() + self.max_delay_s  # an idle CPU device: frames in decode
        while len(batch) < self.max_batch:
            if self._head_ready():
                batch.append(self._take())
                continue
            if not device_idle():
                wait_s = min(busy_until - time.time(), _BUSY_POLL_S)  # and look at it again
            elif self.fill_from_decode and self._backlog_fills(len(batch)):
                wait_s = fill_until - time.time()  # the head's decode ends the wait sooner
            else:
                break
            if wait_s <= 0:
                break
            self._wait(wait_s)
        return batch

    def waiting(self) -> bool:
        """True when a live frame has been polled and not yet batched (decoded or not)."""
        return self._head is not None or not self.ready.empty()

    def _backlog_fills(self, size: int) -> bool:
        """Frames polled and still in decode would fill the batch: a backlog, not a lull."""
        return self._head is not None and 1 + self.ready.qsize() >= self.max_batch - size

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
