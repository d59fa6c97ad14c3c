"""The garbage collector in a long-running process: startup frozen, pauses timed
(foundation/collector.py)."""

from __future__ import annotations

import gc
import weakref

import pytest
from prometheus_client import REGISTRY

from foundation import collector
from workers import metrics


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()  # the rest of the session collects as usual


def test_startup_is_frozen_and_what_comes_later_is_still_collected(unfrozen):
    before = len(gc.get_objects())
    frozen = collector.freeze_long_lived()
    assert frozen == gc.get_freeze_count() >= before // 2

    class Engine:  # an engine holds reference cycles, as a model loaded later does
        pass

    engine = Engine()
    engine.me = engine
    gone = weakref.ref(engine)
    del engine
    gc.collect()
    assert gone() is None  # a model replaced by a deployment is freed


def test_every_collection_is_timed_by_generation(monkeypatch):
    monkeypatch.setattr(collector, "_observers", [])  # this test's observers go with it
    seen: list[tuple[int, float]] = []
    collector.time_collections(lambda generation, s: seen.append((generation, s)))
    collector.time_collections(metrics.observe_gc_pause)
    assert gc.callbacks.count(collector._on_collection) == 1

    def pauses(kind: str) -> float:
        return REGISTRY.get_sample_value(f"framewire_gc_pause_seconds_{kind}",
                                         {"generation": "2"}) or 0.0  # fmt: skip

    count, total = pauses("count"), pauses("sum")
    gc.collect()
    assert seen and seen[-1][0] == 2 and seen[-1][1] > 0
    assert pauses("count") == count + 1 and pauses("sum") > total
