"""The model's CPU threads follow what a frame costs: decode-heavy streams keep the cores
for the decode threads, model-heavy ones give the model every core (workers/model_threads.py)."""

from __future__ import annotations

import threading

import torch

from workers.model_threads import SAMPLE_FRAMES, ModelThreads


def feed(threads: ModelThreads, decode_ms: float, model_ms: float, batches: int) -> list:
    """Batches of 32 frames costing decode_ms and model_ms (CPU) per frame; the changes."""
    batch_s = model_ms * 32 / 1000 / threads.threads  # the wall time of a batch
    return [threads.observe(32, decode_ms * 32 / 1000, batch_s) for _ in range(batches)]


def test_a_decode_heavy_stream_keeps_the_cores_for_decoding() -> None:
    threads = ModelThreads(cores=2, decode_threads=2)
    assert threads.threads == 1
    changes = feed(threads, decode_ms=0.72, model_ms=0.48, batches=20)  # the demo model
    assert changes == [None] * 20 and threads.decided and threads.threads == 1


def test_a_model_heavy_stream_gives_the_model_every_core_once_measured() -> None:
    threads = ModelThreads(cores=2, decode_threads=2)
    changes = feed(threads, decode_ms=0.3, model_ms=9.0, batches=20)  # resnet18 at 112
    decided_at = SAMPLE_FRAMES // 32 - 1  # the batch that completes the sample
    assert changes[decided_at] == 2 and changes.count(2) == 1
    assert changes[:decided_at] == [None] * decided_at and threads.threads == 2
    # A new model starts again from the cores decoding leaves, and is measured again.
    threads.restart()
    assert threads.threads == 1 and not threads.decided
    feed(threads, decode_ms=0.72, model_ms=0.48, batches=20)
    assert threads.threads == 1


def test_nothing_to_decide_when_the_model_already_has_every_core() -> None:
    threads = ModelThreads(cores=16, decode_threads=0)
    assert threads.threads == 16 and threads.decided
    assert feed(threads, decode_ms=0.1, model_ms=50.0, batches=20) == [None] * 20


def test_apply_sets_the_calling_threads_count_only() -> None:
    """Under OpenMP torch's thread count is per thread: the device thread applies it."""
    before = torch.get_num_threads()
    threads = ModelThreads(cores=2, decode_threads=2)
    threads.threads = 2 if before != 2 else 1
    seen = []

    def device_thread() -> None:
        threads.apply()
        seen.append(torch.get_num_threads())

    worker = threading.Thread(target=device_thread)
    worker.start()
    worker.join()
    assert seen == [threads.threads]
    assert torch.get_num_threads() == before
