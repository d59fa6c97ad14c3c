"""The device stage: the one thread that owns the model and the GPU (or CPU).

Host work for batch N+1 overlaps device work for batch N: batch N is launched (on CUDA
`submit` returns at once), then the batcher gathers N+1 while the device computes, then
N+1 is launched and N collected. The model is loaded in this thread, never before a
fork. A later model is prepared by the model watcher (workers/model_watch.py: fetched,
loaded and warmed up on its own thread while this one keeps serving) and handed over with
`install`; this thread swaps it in between two batches, so a reload never stalls serving.
Backfill batches come through the backfill lane (workers/backfill/lane.py) and run here
too, between live batches and behind them. With JPEG decode on the GPU, a batch's JPEGs
are decoded and prepared there just before it is launched (workers/device_decode.py).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from foundation.log import get_logger
from workers import faults
from workers.backfill.lane import BackfillLane
from workers.batcher import DynamicBatcher
from workers.device_decode import DeviceJpegDecoder
from workers.engine import InferenceEngine, PendingBatch
from workers.host_batch import stack_images
from workers.model_threads import ModelThreads
from workers.threads import name_os_thread
from workers.work import WorkItem

log = get_logger(__name__)

EngineFactory = Callable[[], InferenceEngine]  # the configured model, loaded and warmed up


@dataclass
class Observed:
    """What a sampled batch shows the drift monitor (workers/observe.py)."""

    images: np.ndarray  # N x H x W x 3 uint8, as the model saw them
    embeddings: np.ndarray | None  # N x D, the final Linear's input; None: not available
    channel_order: str


@dataclass
class FinishedBatch:
    """A batch the device ran: predictions[i] belongs to items[i]."""

    items: list[WorkItem]
    pending: PendingBatch  # waited for and checked: its predictions cannot fail for its shape
    model_name: str
    model_version: str
    task: str
    launched_at: float
    inference_ms: float
    observed: Observed | None = None  # one batch in FRAMEWIRE_OBSERVE_EVERY

    @property
    def predictions(self) -> list[list[dict]]:
        """Per frame its top-k, best first; built on first use, by the writer. Off the device
        thread, which every frame passes: each torch op lets the GIL go, and winning it back
        beside the other threads took milliseconds (scripts/gil-contention.py)."""
        return self.pending.result()


@dataclass
class Rejected:
    """Items that failed before or during inference: they go to the DLQ."""

    items: list[WorkItem]


def failed_inference(items: list[WorkItem], exc: BaseException) -> Rejected:
    """The frames of a batch whose model (or its outputs) failed, marked for the DLQ."""
    for item in items:
        item.fail("inference", f"{type(exc).__name__}: {exc}"[:300])
    return Rejected(items)


@dataclass
class _Launched:
    items: list[WorkItem]
    pending: PendingBatch
    engine: InferenceEngine
    launched_at: float
    images: np.ndarray | torch.Tensor | None = None  # kept for an observed batch


class DeviceStage(threading.Thread):
    def __init__(
        self,
        batcher: DynamicBatcher,
        load_engine: EngineFactory,
        finished: queue.Queue,
        prepare_again: Callable[[WorkItem, InferenceEngine], WorkItem],
        on_model_loaded: Callable[[InferenceEngine], None],
        begin_redelivered: Callable[[WorkItem], None] = lambda item: None,
        backfill: BackfillLane | None = None,
        observe_every: int = 0,
        model_threads: ModelThreads | None = None,
    ) -> None:
        super().__init__(name="framewire-device", daemon=True)
        self.batcher = batcher
        self.load_engine = load_engine
        self.finished = finished
        self.prepare_again = prepare_again
        self.on_model_loaded = on_model_loaded
        self.begin_redelivered = begin_redelivered  # records its start; may fail it as poison
        self.backfill = backfill or BackfillLane(share=0.0)
        self.observe_every = observe_every
        self.model_threads = model_threads  # on a CPU device with FRAMEWIRE_CPU_THREADS=0
        self._batches = 0  # launched, for the observation sampling
        # Set before the first batch when JPEGs are decoded on the GPU (workers/pipeline.py).
        self.device_decode: DeviceJpegDecoder | None = None
        self.engine: InferenceEngine | None = None
        self.ready = threading.Event()  # set once the first model is loaded (or failed)
        self.load_error: BaseException | None = None
        self._stop_event = threading.Event()
        self._swap_lock = threading.Lock()
        self._next_engine: InferenceEngine | None = None  # ready, waiting for the next batch
        self._running: deque[_Launched] = deque()  # launched, not yet collected; oldest first

    def running_since(self) -> tuple[float, list[WorkItem]] | None:
        """When the oldest batch on the device was launched, and its frames (read by the
        inference deadline watch from another thread)."""
        try:
            oldest = self._running[0]
        except IndexError:
            return None
        return oldest.launched_at, oldest.items

    def install(self, engine: InferenceEngine) -> None:
        """Serve this (loaded, warmed-up) engine from the next batch on."""
        with self._swap_lock:
            self._next_engine = engine

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        name_os_thread()
        try:
            self._load_first()
        finally:
            self.ready.set()
        if self.engine is None:
            self.backfill.close()
            return
        launched: _Launched | None = None
        while not self._stop_event.is_set() or launched is not None:
            self._swap_if_installed()
            if launched is not None and launched.pending.done():
                self._collect(launched)  # never hold finished results while waiting
                launched = None
            if launched is None and self._run_backfill():
                continue
            # While batch N runs, gather N+1; return as soon as the device is idle.
            device_idle = partial(_idle, launched)
            wait_s = 0.005 if self.backfill.pending() else 0.05  # backfill runs when idle
            batch = self.batcher.next_batch(device_idle, timeout_s=wait_s)
            next_launch = self._launch(batch) if batch else None
            if launched is not None:
                self._collect(launched)
            launched = next_launch
        self.backfill.close()

    def _run_backfill(self) -> bool:
        """Run one backfill batch if the lane says it is due; True if one ran."""
        batch = self.backfill.take(live_waiting=self.batcher.waiting())
        if batch is None:
            return False
        assert self.engine is not None
        self.backfill.execute(batch, self.engine)
        return True

    def _launch(self, batch: list[WorkItem]) -> _Launched | None:
        engine = self.engine
        assert engine is not None
        for item in batch:
            if item.redelivered:
                self._run_alone(item, engine)
        batch = [item for item in batch if not item.redelivered]
        for item in batch:
            if item.ok and item.input_spec != engine.card.input:
                self.prepare_again(item, engine)  # decoded for the model before a reload
        rejected = [item for item in batch if not item.ok]
        good = [item for item in batch if item.ok]
        if rejected:
            self.finished.put(Rejected(rejected))
        if not good:
            return None
        self.backfill.ran(backfill=False)
        return self._submit(good, engine)

    def _submit(self, items: list[WorkItem], engine: InferenceEngine) -> _Launched | None:
        # Running from before decode and submit, so that the inference deadline watches
        # both: on the CPU submit is the compute, and a GPU decode (which can hang as a model
        # can) is the device's work as much as the model's.
        launched = _Launched(items, None, engine, time.time())  # type: ignore[arg-type]
        self._running.append(launched)
        items, on_device = self._decode_on_device(items, engine)
        launched.items = items
        if not items:
            self._running.remove(launched)
            return None
        try:
            faults.hang_in_inference([item.frame.frame_id for item in items if item.frame])
            self._batches += 1
            observe = self.observe_every > 0 and self._batches % self.observe_every == 0
            images: np.ndarray | torch.Tensor
            if on_device is None:
                images = stack_images([item.image for item in items])
                launched.pending = engine.submit(images, observe=observe)
            else:
                images = on_device
                launched.pending = engine.submit_resident(on_device, observe=observe)
            launched.images = images if observe else None
            return launched
        except Exception as exc:  # a model failure must not stop the worker
            self._running.remove(launched)
            self._fail(items, exc)
            return None

    def _decode_on_device(
        self, items: list[WorkItem], engine: InferenceEngine
    ) -> tuple[list[WorkItem], torch.Tensor | None]:
        """The items still ok and, when some JPEGs waited for the GPU, the batch prepared
        there (None: stack item.image); the items that failed to decode are rejected."""
        if self.device_decode is None:
            return items, None
        try:
            on_device = self.device_decode.prepare(items, engine.card.input)
        except Exception as exc:  # a device failure must not stop the worker
            self._fail(items, exc)
            return [], None
        failed = [item for item in items if not item.ok]
        if failed:
            self.finished.put(Rejected(failed))
        return [item for item in items if item.ok], on_device

    def _run_alone(self, item: WorkItem, engine: InferenceEngine) -> None:
        """A redelivered frame: its start recorded (it may turn out to be poison), then
        decoded, run as a batch of one and written before anything else starts, so that a
        crash or a hang names this frame and no other (workers/deliveries.py)."""
        self.begin_redelivered(item)
        if item.ok:
            self.prepare_again(item, engine)
        if item.ok:
            launched = self._submit([item], engine)
            if launched is not None:
                self._collect(launched)
        else:
            self.finished.put(Rejected([item]))
        while item.finished is not None and not item.finished.wait(0.1):
            if self._stop_event.is_set():
                return

    def _collect(self, launched: _Launched) -> None:
        try:
            launched.pending.wait()
        except Exception as exc:
            self._fail(launched.items, exc)
            return
        finally:
            self._running.remove(launched)
        card = launched.engine.card
        for item in launched.items:
            item.image = None  # release the pixels before the sink stage queues them
        observed = None
        if launched.images is not None:
            images = launched.images
            if isinstance(images, torch.Tensor):  # prepared on the GPU; done by now
                images = images.cpu().numpy()
            observed = Observed(images, launched.pending.embeddings(),
                                card.input.channel_order)  # fmt: skip
        inference_s = time.time() - launched.launched_at
        self.finished.put(
            FinishedBatch(
                items=launched.items,
                pending=launched.pending,
                model_name=card.name,
                model_version=card.version,
                task=card.task,
                launched_at=launched.launched_at,
                inference_ms=inference_s * 1000,
                observed=observed,
            )
        )
        self._count_for_threads(launched.items, inference_s)

    def _count_for_threads(self, items: list[WorkItem], batch_s: float) -> None:
        """Let the model take every core once it turns out to cost more than decoding."""
        threads = self.model_threads
        if threads is None or threads.decided:
            return
        decode_s = sum(item.decoded_at - item.decode_started for item in items)
        if threads.observe(len(items), decode_s, batch_s) is not None:
            threads.apply()
            log.info("the model costs more CPU per frame than decoding: it takes every core",
                     threads=threads.threads,
                     model_ms_per_frame=round(threads.model_s * 1000 / threads.frames, 2),
                     decode_ms_per_frame=round(threads.decode_s * 1000 / threads.frames, 2))

    def _fail(self, items: list[WorkItem], exc: BaseException) -> None:
        log.exception("inference failed", frames=len(items))
        self.finished.put(failed_inference(items, exc))

    def _swap_if_installed(self) -> None:
        # Between two batches: a batch already launched keeps its own engine (_Launched),
        # so its results carry the version that computed them.
        with self._swap_lock:
            engine, self._next_engine = self._next_engine, None
        if engine is not None:
            self.engine = engine
            if self.model_threads is not None:  # measured again for this model
                self.model_threads.restart()
                self.model_threads.apply()
            self.on_model_loaded(engine)

    def _load_first(self) -> None:
        try:
            engine = self.load_engine()
        except Exception as exc:
            log.exception("model load failed")
            self.load_error = exc
            return
        self.engine = engine
        self.on_model_loaded(engine)


def _idle(launched: _Launched | None) -> bool:
    return launched is None or launched.pending.done()
