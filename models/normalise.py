"""The one definition of how a model's uint8 input becomes its float tensor.

Serving (workers/engine.py), training and evaluation (mlops/) all call `to_model_input`,
so a model sees bit-identical numbers offline and in the pipeline: (x / 255 - mean) / std
computed as one multiply-add, x * scale + shift, in float32.
"""

from __future__ import annotations

import torch

from models.spec import InputSpec


def normalisation(
    spec: InputSpec, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift), each 1 x 3 x 1 x 1 float32 on device, for the spec's mean and std."""
    std = torch.tensor(spec.std, dtype=torch.float32)
    mean = torch.tensor(spec.mean, dtype=torch.float32)
    scale = (1.0 / (255.0 * std)).view(1, 3, 1, 1).to(device)
    shift = (-mean / std).view(1, 3, 1, 1).to(device)
    return scale, shift


def to_model_input(
    batch: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, channels_last: bool = False
) -> torch.Tensor:
    """uint8 N x H x W x 3 (already on the device) -> normalised float N x 3 x H x W."""
    # permute gives NCHW with channels_last strides, which the CUDA kernels prefer.
    x = batch.permute(0, 3, 1, 2).float()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.mul_(scale).add_(shift)
