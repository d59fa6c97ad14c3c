"""What drift monitoring measures, in one place for both sides of the comparison: the
reference taken at training (mlops/train/reference.py), the data report
(mlops/data/stats.py) and the live frames a worker samples (workers/observe.py).

    grey_measures    brightness, contrast, sharpness of a grey image
    input_statistics the same for a prepared model input (RGB or BGR)
    histogram        counts over fixed edges, out-of-range values in the end bins
    embedding_hook   the input of the model's final nn.Linear, from the forward pass
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

CONFIDENCE_EDGES = np.linspace(0.0, 1.0, 21)
# Fixed edges for the input measures (8-bit grey levels). Sharpness (variance of the
# Laplacian) spans orders of magnitude, so its edges are logarithmic: 10^0 .. 10^5.
INPUT_EDGES = {
    "brightness": np.linspace(0.0, 255.0, 18),  # mean grey level
    "contrast": np.linspace(0.0, 128.0, 17),  # standard deviation of the grey levels
    "sharpness": np.concatenate([[0.0], np.logspace(0, 5, 21)]),
}


def grey_measures(grey: np.ndarray) -> dict[str, float]:
    """Brightness (mean), contrast (standard deviation), sharpness (variance of the
    Laplacian) of a grey uint8 image."""
    return {
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_64F).var()),
    }


def input_statistics(image: np.ndarray, channel_order: str) -> dict[str, float]:
    """Brightness, contrast and sharpness of one prepared H x W x 3 uint8 image."""
    code = cv2.COLOR_RGB2GRAY if channel_order == "rgb" else cv2.COLOR_BGR2GRAY
    return grey_measures(cv2.cvtColor(image, code))


def histogram(values: np.ndarray, edges: np.ndarray) -> dict[str, list]:
    """Counts over fixed edges; out-of-range values go to the first or last bin."""
    clipped = np.clip(np.asarray(values, np.float64), edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=edges)
    return {"edges": [round(float(e), 6) for e in edges], "counts": counts.tolist()}


def final_linear(module: nn.Module) -> nn.Linear:
    """The last nn.Linear registered in the module: the classifier head of our models."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear layer to take embeddings from")
    return linears[-1]


def embedding_hook(module: nn.Module, sink: Callable[[torch.Tensor], None]) -> Any:
    """Register a forward hook that passes the final Linear's input to sink (detached,
    flattened, on its device); returns the handle (call .remove())."""

    def hook(_layer: nn.Module, inputs: tuple[torch.Tensor, ...], _output: Any) -> None:
        sink(inputs[0].detach().flatten(1))

    return final_linear(module).register_forward_hook(hook)
