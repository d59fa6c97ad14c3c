"""Which offsets may be committed: at-least-once with out-of-order completion.

Frames of one partition finish out of order (a bad frame goes to the DLQ at decode time,
ahead of good ones still on the device). A partition's commit point is the lowest offset
not yet finished; it only moves forward. Thread-safe: the poll thread adds and commits,
the sink thread completes.
"""

from __future__ import annotations

import threading
from collections import deque

Partition = tuple[str, int]  # (topic, partition)


class OffsetTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.finished_total = 0  # frames finished since start: progress, for the stall watch
        self._pending: dict[Partition, deque[int]] = {}
        self._finished: dict[Partition, set[int]] = {}
        self._commit_point: dict[Partition, int] = {}
        self._committed: dict[Partition, int] = {}
        self._generation: dict[Partition, int] = {}

    def assign(self, partitions: list[Partition]) -> None:
        """Start tracking partitions; a new generation makes older stragglers stale."""
        with self._lock:
            for p in partitions:
                self._generation[p] = self._generation.get(p, 0) + 1
                self._pending[p], self._finished[p] = deque(), set()
                self._commit_point.pop(p, None)
                self._committed.pop(p, None)

    def forget(self, partitions: list[Partition]) -> None:
        with self._lock:
            for p in partitions:
                self._pending.pop(p, None)
                self._finished.pop(p, None)
                self._commit_point.pop(p, None)
                self._committed.pop(p, None)

    def generation(self, partition: Partition) -> int:
        with self._lock:
            return self._generation.get(partition, 0)

    def add(self, partition: Partition, offset: int) -> None:
        """A polled record (offsets arrive in increasing order per partition)."""
        with self._lock:
            self._pending[partition].append(offset)

    def finish(self, partition: Partition, offset: int, generation: int) -> None:
        with self._lock:
            self.finished_total += 1
            if self._generation.get(partition) != generation or partition not in self._pending:
                return  # revoked meanwhile: the new owner processes it again
            pending, finished = self._pending[partition], self._finished[partition]
            finished.add(offset)
            while pending and pending[0] in finished:
                done = pending.popleft()
                finished.discard(done)
                self._commit_point[partition] = pending[0] if pending else done + 1

    def to_commit(self, partitions: list[Partition] | None = None) -> dict[Partition, int]:
        """Commit points that moved since mark_committed, optionally for some partitions."""
        with self._lock:
            return {
                p: point
                for p, point in self._commit_point.items()
                if (partitions is None or p in partitions) and self._committed.get(p) != point
            }

    def mark_committed(self, offsets: dict[Partition, int]) -> None:
        with self._lock:
            for p, point in offsets.items():
                if p in self._pending:
                    self._committed[p] = point

    def in_flight(self, partitions: list[Partition] | None = None) -> int:
        with self._lock:
            return sum(
                len(q) - len(self._finished[p])
                for p, q in self._pending.items()
                if partitions is None or p in partitions
            )
