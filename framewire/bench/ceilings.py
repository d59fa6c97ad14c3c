"""The ceilings: what the model alone and the decoder alone can do on this machine.

The pipeline can never beat the slower of the two, so `ratio_to_ceiling` divides by it.
Both run in this process, before the worker starts, so nothing else competes for the
cores while they are measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from framewire.bench.frames import FramePool
from models.spec import InputSpec
from workers.decode import FrameDecoder
from workers.device_decode import DeviceJpegDecoder, awaits_device
from workers.engine import InferenceEngine
from workers.work import WorkItem


@dataclass(frozen=True)
class _Record:
    """The fields of a kafka-python ConsumerRecord that the decoder and WorkItem read."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    topic: str = "bench"
    partition: int = 0
    offset: int = 0


def _rate(step: Callable[[], int], sync: Callable[[], None], min_frames: int,
          min_seconds: float) -> float:  # fmt: skip
    """Frames per second of repeated step() calls (each returns the frames it did), after
    one untimed call; sync() waits for asynchronous device work at both ends."""
    step()
    sync()
    done, started = 0, time.perf_counter()
    while done < min_frames or time.perf_counter() - started < min_seconds:
        done += step()
    sync()
    return done / (time.perf_counter() - started)


def decoded_batch(engine: InferenceEngine, pool: FramePool, size: int) -> np.ndarray:
    """`size` frames of the pool decoded and prepared for the engine's model (N x H x W x 3)."""
    decoder = FrameDecoder(10**8, 10**9)
    images = []
    for i in range(size):
        item = decoder.decode(_item(pool, i), engine.card.input)
        assert item.image is not None, item.error
        images.append(item.image)
    return np.stack(images)


def model_only_fps(engine: InferenceEngine, images: np.ndarray, batch: int,
                   min_frames: int, min_seconds: float) -> float:  # fmt: skip
    """The model alone, on frames already decoded and resident on the device."""
    tiled = np.resize(images, (batch, *images.shape[1:]))  # repeats frames to fill a batch
    on_device = torch.from_numpy(np.ascontiguousarray(tiled)).to(engine.device)

    def step() -> int:
        engine.forward_resident(on_device)
        return batch

    # On CUDA the loop only enqueues kernels; synchronize() makes the clock honest.
    return _rate(step, engine.synchronize, min_frames, min_seconds)


def batch_curve(engine: InferenceEngine, images: np.ndarray, max_batch: int,
                min_seconds: float) -> dict[int, float]:  # fmt: skip
    """Model-only frames/s at batch 1, 2, 4, ... and max_batch (for the plot)."""
    sizes = sorted({*(2**k for k in range(max_batch.bit_length()) if 2**k <= max_batch),
                    max_batch})  # fmt: skip
    return {b: model_only_fps(engine, images, b, b, min_seconds) for b in sizes}


def decode_fps(pool: FramePool, spec: InputSpec, threads: int, max_bytes: int,
               max_pixels: int, min_frames: int, min_seconds: float) -> float:  # fmt: skip
    """JPEG decode plus preparation for the model, with the worker's decode code and
    thread count, on records that are already in memory."""
    decoder = FrameDecoder(max_bytes, max_pixels)
    round_size = 4 * len(pool.payloads)
    records = [_item(pool, i).record for i in range(len(pool.payloads))]

    def decode(i: int) -> WorkItem:
        return decoder.decode(WorkItem(records[i % len(records)], 0, 0.0), spec)

    with ThreadPoolExecutor(threads, thread_name_prefix="bench-decode") as executor:

        def step() -> int:
            items = list(executor.map(decode, range(round_size)))
            failed = [item.error for item in items if not item.ok]
            if failed:
                raise RuntimeError(f"the decoder rejected a benchmark frame: {failed[0]}")
            return round_size

        return _rate(step, lambda: None, min_frames, min_seconds)


def device_decode_fps(gpu: DeviceJpegDecoder, engine: InferenceEngine, pool: FramePool,
                      batch: int, min_frames: int, min_seconds: float) -> float:  # fmt: skip
    """JPEG decode plus preparation on the GPU, `batch` frames a call, as the device thread
    does it (on frames the decode threads have checked)."""
    spec = engine.card.input
    items = _left_for_the_device(gpu, pool, spec, batch)

    def step() -> int:
        gpu.prepare(items, spec)
        return batch

    return _rate(step, engine.synchronize, min_frames, min_seconds)


def device_pixel_difference(gpu: DeviceJpegDecoder, engine: InferenceEngine,
                            pool: FramePool) -> float:  # fmt: skip
    """How far the GPU's prepared pixels are from the CPU path's: the mean absolute
    difference in grey levels over the pool's frames."""
    spec, size = engine.card.input, min(engine.max_batch, len(pool.payloads))
    on_device = gpu.prepare(_left_for_the_device(gpu, pool, spec, size), spec)
    assert on_device is not None
    on_cpu = decoded_batch(engine, pool, size)
    return float(np.abs(on_device.cpu().numpy().astype(np.int16) - on_cpu).mean())


def _left_for_the_device(gpu: DeviceJpegDecoder, pool: FramePool, spec: InputSpec,
                         size: int) -> list[WorkItem]:  # fmt: skip
    items = [gpu.cpu.decode_or_defer(_item(pool, i % len(pool.payloads)), spec)
             for i in range(size)]  # fmt: skip
    if not all(awaits_device(item) for item in items):
        raise RuntimeError("a benchmark frame was not left for the GPU to decode")
    return items


def _item(pool: FramePool, i: int) -> WorkItem:
    record: Any = _Record(*pool.frame(i, ["ceiling"]).to_record())
    return WorkItem(record, 0, 0.0)
