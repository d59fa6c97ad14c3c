"""A batch's prepared images as one array, copied without letting go of the GIL.

numpy releases the GIL for every copy of more than a few hundred elements, so `np.stack`
gives it up once per image and has to win it back each time. On a worker's busy cores the
decode, poll and writer threads take it meanwhile, and each win waits up to a switch
interval (5 ms): the device thread, which every frame passes, stalled on 30 small copies.
Copying through memoryviews keeps the GIL for the whole batch (368 KB: tens of µs).
Beside two busy Python threads, 30 images of 64x64x3 (scripts/gil-contention.py --busy 2):
np.stack 0.06 ms median but 35 ms at p95 (7-8 ms on average), this 0.02 ms at both.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stack_images(images: Sequence[np.ndarray]) -> np.ndarray:
    """np.stack(images) for images of one shape and dtype, without releasing the GIL."""
    first = images[0]
    batch = np.empty((len(images), *first.shape), first.dtype)
    flat = memoryview(batch).cast("B")
    size = first.nbytes
    for i, image in enumerate(images):
        if image.shape != first.shape or image.dtype != first.dtype:
            raise ValueError(f"image {i} is {image.shape} {image.dtype}, "
                             f"image 0 {first.shape} {first.dtype}")  # fmt: skip
        flat[i * size : (i + 1) * size] = memoryview(np.ascontiguousarray(image)).cast("B")
    return batch
