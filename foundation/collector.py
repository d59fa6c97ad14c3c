"""Python's cyclic garbage collector in a long-running framewire process: what it may
walk, and how long it paused.

A full collection walks every tracked object and holds the GIL throughout, so every thread
of the process stops for its length. Once torch, Celery and the rest are imported a worker
holds about 200,000 such objects, which one full collection took 46-59 ms to walk on an
idle core of the 2-core machine and 107 ms in the bench's 80% phase: a pause in every
frame in flight. The gateway holds about 65,000 (10 ms idle).

What a process builds at startup lives as long as it does, so the worker (before it loads
the model) and the gateway (once its app is built) freeze it: gc.freeze, made for this,
takes it out of the collector's walk, and a worker's full collections in the same phase
took 0.9-1.3 ms. Reference counting still frees what it holds; cyclic garbage among frozen
objects would stay, which is why a worker's model is loaded after the freeze: an engine
holds reference cycles, and one replaced by a deployment must be freed by the collector.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

PauseObserver = Callable[[int, float], None]  # (generation, seconds the collection took)

_observers: list[PauseObserver] = []
_started: list[float] = [0.0]  # one collection at a time: it holds the GIL throughout


def freeze_long_lived() -> int:
    """Move every object tracked now out of the collector's walk; how many it skips now."""
    gc.collect()  # the startup's garbage goes now, not into the frozen generation
    gc.freeze()
    return gc.get_freeze_count()


def time_collections(observe: PauseObserver) -> None:
    """Call observe(generation, seconds) after every collection from now on."""
    _observers.append(observe)
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    seconds = time.perf_counter() - _started[0]
    for observe in _observers:
        observe(info["generation"], seconds)
