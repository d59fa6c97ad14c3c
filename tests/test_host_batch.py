"""The device thread's batch of images, built without letting go of the GIL."""

from __future__ import annotations

import numpy as np
import pytest

from workers.host_batch import stack_images


def test_stack_images_is_np_stack() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for _ in range(4)]
    images.append(rng.integers(0, 256, (5, 6, 3), dtype=np.uint8).transpose(1, 0, 2))  # strided
    np.testing.assert_array_equal(stack_images(images), np.stack(images))


def test_stack_images_refuses_mixed_shapes_and_dtypes() -> None:
    with pytest.raises(ValueError, match="image 1"):
        stack_images([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8)])
    with pytest.raises(ValueError, match="image 1"):
        stack_images([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4, 3), np.float32)])
