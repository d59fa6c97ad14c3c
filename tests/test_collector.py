"""The worker's garbage collector: startup objects frozen, pauses timed (workers/collector.py)."""

from __future__ import annotations

import gc
import weakref

import pytest
from prometheus_client import REGISTRY

from workers import collector


@pytest.fixture
def unfrozen():
    yield
    gc.unfreeze()  # the rest of the session collects as usual


def test_startup_objects_are_frozen_and_what_comes_later_is_still_collected(unfrozen):
    before = len(gc.get_objects())
    frozen = collector.freeze_startup_objects()
    assert frozen == gc.get_freeze_count() >= before // 2
    assert REGISTRY.get_sample_value("framewire_gc_frozen_objects") == frozen

    class Engine:  # an engine holds reference cycles, as a model loaded later does
        pass

    engine = Engine()
    engine.me = engine
    gone = weakref.ref(engine)
    del engine
    gc.collect()
    assert gone() is None  # a model replaced by a deployment is freed


def test_every_collection_is_timed_by_generation():
    collector.observe_pauses()
    collector.observe_pauses()
    assert gc.callbacks.count(collector._on_collection) == 1
    def pauses(kind: str) -> float:
        return REGISTRY.get_sample_value(f"framewire_gc_pause_seconds_{kind}",
                                         {"generation": "2"}) or 0.0  # fmt: skip

    count, total = pauses("count"), pauses("sum")
    gc.collect()
    assert pauses("count") == count + 1 and pauses("sum") > total
