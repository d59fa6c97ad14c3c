"""Which model the benchmark runs: the demo model, a ResNet with random weights, or a
model directory; the same one in the bench process and in the pipeline's worker."""

from __future__ import annotations

from pathlib import Path

import torch

from models import InputSpec, ModelCard, resolve_model, save_model
from models.architectures import ARCHITECTURES

DEMO = "demo"
_IMAGENET_CLASSES = 1000


def model_directory(model: str, input_size: int, workdir: Path) -> Path:
    """A model directory for `model`; an architecture name is written under workdir.

    The worker is a separate process that loads models from directories, so a random-
    weight ResNet is saved once and both sides load the same file.
    """
    if model in ("", DEMO):
        return resolve_model(None)
    if model in ARCHITECTURES and not Path(model).is_dir():
        torch.manual_seed(0)
        labels = [f"class-{i}" for i in range(_IMAGENET_CLASSES)]
        card = ModelCard(
            name=f"bench-{model}",
            version="random",
            architecture=model,
            task="classification",
            labels=labels,
            input=InputSpec(input_size, input_size),
        )
        module = ARCHITECTURES[model](len(labels))
        return save_model(module, card, workdir / f"{model}-{input_size}")
    return resolve_model(model)
