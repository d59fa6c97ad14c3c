"""The backfill lane: backfill batches run by the device thread, behind live frames.

The device thread owns the model and the GPU (workers/device.py), so a backfill task (a
thread of Celery's pool) never runs a model itself: it hands a prepared batch to this lane
and waits for the predictions. The device thread takes a backfill batch only between two
live batches, and only when no live frame is waiting, or while backfill has run fewer than
FRAMEWIRE_BACKFILL_SHARE of the last WINDOW batches. A busy stream keeps at least
1 - share of the device; an idle one leaves all of it to backfill.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np

from models.spec import InputSpec, ModelCard
from workers import metrics
from workers.engine import InferenceEngine

WINDOW = 20  # batches over which the backfill share is counted


class LaneClosed(RuntimeError):
    """The worker is stopping: the batch was not run (the task keeps its checkpoint)."""


class InputChanged(RuntimeError):
    """The live model changed between preparing the batch and running it: prepare again."""


@dataclass
class BackfillBatch:
    images: np.ndarray  # N x H x W x 3 uint8, prepared for `spec`
    spec: InputSpec
    engine: InferenceEngine | None  # None: the engine serving live frames
    done: Future = field(default_factory=Future)  # -> (predictions, the card that ran)


class BackfillLane:
    def __init__(self, share: float) -> None:
        self.share = share
        self._waiting: queue.Queue[BackfillBatch] = queue.Queue()
        self._recent: deque[bool] = deque(maxlen=WINDOW)  # True: a backfill batch
        self._closed = threading.Event()

    # The task's side -------------------------------------------------------------------

    def run(
        self, images: np.ndarray, spec: InputSpec, engine: InferenceEngine | None = None
    ) -> tuple[list[list[dict]], ModelCard]:
        """Predictions for a prepared batch and the card of the model that made them."""
        batch = BackfillBatch(images, spec, engine)
        self._waiting.put(batch)
        while True:
            try:
                return batch.done.result(timeout=0.5)
            except FutureTimeout:
                if self._closed.is_set():  # put after close() emptied the queue
                    raise LaneClosed("the worker is stopping") from None

    # The device thread's side ------------------------------------------------------------

    def pending(self) -> bool:
        return not self._waiting.empty()

    def take(self, live_waiting: bool) -> BackfillBatch | None:
        """The next backfill batch if one is due now (see the module docstring)."""
        if self._waiting.empty():
            return None
        if live_waiting and sum(self._recent) >= self.share * WINDOW:
            return None
        try:
            return self._waiting.get_nowait()
        except queue.Empty:
            return None

    def ran(self, backfill: bool) -> None:
        """Count one device batch, live or backfill, for the share."""
        self._recent.append(backfill)
        metrics.DEVICE_BATCHES.labels("backfill" if backfill else "live").inc()

    def execute(self, batch: BackfillBatch, serving: InferenceEngine) -> None:
        """Run a batch on the device thread and settle its future."""
        engine = batch.engine or serving
        if engine.card.input != batch.spec:
            batch.done.set_exception(InputChanged(f"now serving {engine.card.name}:"
                                                  f"{engine.card.version}"))  # fmt: skip
            return
        try:
            batch.done.set_result((engine.predict(batch.images), engine.card))
        except Exception as exc:  # the task reports it; the worker goes on
            batch.done.set_exception(exc)
        finally:
            self.ran(backfill=True)

    def close(self) -> None:
        """No more batches: fail the waiting ones so their tasks stop at a checkpoint."""
        self._closed.set()
        while True:
            try:
                self._waiting.get_nowait().done.set_exception(LaneClosed("the worker is stopping"))
            except queue.Empty:
                return
