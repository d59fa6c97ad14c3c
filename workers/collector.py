"""Python's cyclic garbage collector in a worker: what it may walk, and how long it paused.

A full collection walks every tracked object and holds the GIL throughout, so every thread
of the worker (poll, decode, device, writer) stops for its length. Once torch, Celery and
the rest are imported a worker holds about 200,000 such objects, which one full collection
took 46-59 ms to walk on an idle core of the 2-core machine and 107 ms in the bench's 80%
phase: a pause in every frame in flight, and the tail of the latency.

Those objects live as long as the process, so the pipeline freezes them (gc.freeze, made
for this) before it loads the model: the collector no longer walks them, and a full
collection in the same phase took 0.9-1.3 ms. The model's engine is left out on purpose:
it holds reference cycles, and a frozen engine would never be freed when a deployment
replaces it; its 2,900 objects cost a full collection 0.4 ms.

`framewire_gc_pause_seconds` (by generation) shows the pauses to the operator.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from workers import metrics

_started: list[float] = [0.0]  # one collection at a time: it holds the GIL throughout


def freeze_startup_objects() -> int:
    """Move every object tracked now out of the collector's reach; how many it skips now."""
    gc.collect()  # garbage of the startup goes now, not into the frozen generation
    gc.freeze()
    frozen = gc.get_freeze_count()
    metrics.GC_FROZEN.set(frozen)
    return frozen


def observe_pauses() -> None:
    """Time every collection into framewire_gc_pause_seconds (once per process)."""
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        metrics.GC_PAUSE.labels(str(info["generation"])).observe(time.perf_counter() - _started[0])
