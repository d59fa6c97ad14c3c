"""Training data: a dataset split decoded once into memory, and augmentation.

Images are decoded and `prepare`d exactly as the evaluation (and a worker) does, then kept
as uint8 N x H x W x 3 in the model's channel order: at the model's input size that is
small (64x64: 12 KB an image; 224x224: 150 KB), and decoding once instead of every
epoch is what makes CPU training quick. Augmentation also works on uint8 NHWC, so a
training batch reaches the model through the same `to_model_input` as a served frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mlops.data.store import DatasetStore, Item
from mlops.evaluate import PreparedBatches
from models.spec import InputSpec

# Augmentation strength. Flips left-right, shifts by up to 1/8 of the side (reflected
# border) and jitters brightness and contrast by up to 20 %: what cameras vary in, and
# safe for most object classes. No vertical flips or rotations: upside-down scenes are
# not what cameras see, and they would break classes such as digits or arrows.
MAX_SHIFT = 0.125
JITTER = 0.2


@dataclass(frozen=True)
class SplitData:
    images: np.ndarray  # N x H x W x 3 uint8, prepared for the model's input spec
    targets: np.ndarray  # N int64 indices into the model's labels
    items: list[Item]  # the items behind images, in order
    skipped: int  # unreadable images
    unlabelled: int  # items without a label (cannot be trained on)


def load_split(
    store: DatasetStore, items: list[Item], spec: InputSpec, labels: list[str]
) -> SplitData:
    """Decode and prepare the labelled items of a split (labels: the model's, in order)."""
    index = {label: i for i, label in enumerate(labels)}
    labelled = [item for item in items if item.label in index]
    images: list[np.ndarray] = []
    kept: list[Item] = []
    batches = PreparedBatches(store, labelled, spec, batch_size=256)
    for batch, batch_items in batches:
        images.append(batch)
        kept += batch_items
    empty = np.zeros((0, spec.height, spec.width, 3), np.uint8)
    return SplitData(
        images=np.concatenate(images) if images else empty,
        targets=np.array([index[item.label] for item in kept], np.int64),  # type: ignore[index]
        items=kept,
        skipped=batches.skipped,
        unlabelled=len(items) - len(labelled),
    )


def augment(batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """uint8 N x H x W x 3 -> an augmented uint8 batch of the same shape (CPU, seeded)."""
    n, height, width, _ = batch.shape
    x = batch.permute(0, 3, 1, 2).float()
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)
    # Shift: pad by the largest shift (reflecting the border), crop at a random offset.
    pad_y, pad_x = max(1, round(height * MAX_SHIFT)), max(1, round(width * MAX_SHIFT))
    padded = F.pad(x, (pad_x, pad_x, pad_y, pad_y), mode="reflect")
    dy = torch.randint(0, 2 * pad_y + 1, (n,), generator=generator).tolist()
    dx = torch.randint(0, 2 * pad_x + 1, (n,), generator=generator).tolist()
    x = torch.stack([padded[i, :, y : y + height, c : c + width]
                     for i, (y, c) in enumerate(zip(dy, dx, strict=True))])  # fmt: skip
    # Contrast around each image's mean, then brightness.
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * JITTER
    brightness = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * JITTER
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = ((x - mean) * contrast + mean) * brightness
    return x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
