"""Which model the benchmark runs: the demo model, a ResNet with random weights, the null
model, or a model directory; the same one in the bench process and in the pipeline's worker."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from framewire.bench.options import NULL_MODEL
from models import InputSpec, ModelCard, resolve_model, save_model
from models.architectures import ARCHITECTURES
from models.loader import TORCHSCRIPT
from producers.synthetic import CLASSES

DEMO = "demo"
_IMAGENET_CLASSES = 1000
# The null model's input: raw frames this size make decode a reshape and prepare a no-op.
NULL_INPUT = InputSpec(8, 8, channel_order="bgr")


class NullModel(nn.Module):
    """Zero logits for every image: no compute, so a pipeline serving it measures the
    framework alone (poll, hand-overs, batching, Redis, the results topic, commits)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # From the input tensor, so the device path (upload, normalisation) still runs.
        return x.new_zeros((x.shape[0], self.num_classes))


def model_directory(model: str, input_size: int, workdir: Path) -> Path:
    """A model directory for `model`; an architecture name or `null` is written under
    workdir.

    The worker is a separate process that loads models from directories, so a random-
    weight ResNet is saved once and both sides load the same file.
    """
    if model in ("", DEMO):
        return resolve_model(None)
    if model == NULL_MODEL:
        return _null_model(workdir / NULL_MODEL)
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


def _null_model(directory: Path) -> Path:
    # TorchScript carries its own code, so the null model stays out of the architecture
    # registry (nothing could train it). The demo's labels: results as big as the demo's.
    card = ModelCard(name="bench-null", version="1", architecture=TORCHSCRIPT,
                     task="classification", labels=list(CLASSES), input=NULL_INPUT)  # fmt: skip
    return save_model(NullModel(len(CLASSES)), card, directory)
