"""Reference statistics for drift monitoring: what the validation set looks like to the
model, saved as `reference.json` in the model directory.

Layout (schema "reference-stats/1"); every histogram is {"edges": [...], "counts": [...]}
with len(edges) = len(counts) + 1, values outside the edges counted in the first or last
bin, so a monitor that bins live traffic with the same edges gets comparable counts:

    predictions   {"labels": [...], "counts": [...]}   top-1 label counts, card order
    confidence    histogram of the top-1 softmax probability, edges 0, 0.05, ..., 1
    inputs        brightness, contrast, sharpness: histograms with fixed edges
                  (INPUT_EDGES), measured by `input_statistics` on the prepared image
    embedding     the input of the model's final Linear layer: dim, per-dimension mean
                  and std, the L2 norm's mean, std and histogram (edges from 0 to 1.5 x
                  the largest reference norm), and the mean cosine similarity to the
                  reference centroid

A monitor measures live frames with `input_statistics` and `embedding_hook`
(models/observe.py), so both sides compute the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mlops.data.store import DatasetStore, Item
from mlops.evaluate import PreparedBatches, on_device
from models.loader import LoadedModel
from models.normalise import normalisation, to_model_input
from models.observe import (
    CONFIDENCE_EDGES,
    INPUT_EDGES,
    embedding_hook,
    final_linear,
    histogram,
    input_statistics,
)

SCHEMA = "reference-stats/1"
REFERENCE_FILE = "reference.json"
NORM_BINS = 20


def reference_statistics(
    model: LoadedModel,
    store: DatasetStore,
    items: list[Item],
    device: str = "cpu",
    batch_size: int = 64,
    dataset: str | None = None,
) -> dict[str, Any]:
    """One pass over items (readable ones; labels not needed) -> the reference.json dict."""
    spec = model.card.input
    embeddings: list[torch.Tensor] = []
    probabilities: list[np.ndarray] = []
    measures: dict[str, list[float]] = {name: [] for name in INPUT_EDGES}
    batches = PreparedBatches(store, items, spec, batch_size)
    with on_device(model, device) as module, torch.inference_mode():
        scale, shift = normalisation(spec, device)
        handle = embedding_hook(module, lambda x: embeddings.append(x.float().cpu()))
        try:
            for images, _ in batches:
                for image in images:
                    for name, value in input_statistics(image, spec.channel_order).items():
                        measures[name].append(value)
                logits = module(to_model_input(torch.from_numpy(images).to(device),
                                               scale, shift)).float()  # fmt: skip
                probabilities.append(torch.softmax(logits, 1).cpu().numpy())
        finally:
            handle.remove()
    if not probabilities:
        raise ValueError("no readable images to take reference statistics from")
    probs = np.concatenate(probabilities)
    top1 = probs.argmax(1)
    return {
        "schema": SCHEMA,
        "model": {"name": model.card.name, "version": model.card.version},
        "dataset": dataset,
        "images": len(probs),
        "skipped": batches.skipped,
        "predictions": {
            "labels": list(model.card.labels),
            "counts": np.bincount(top1, minlength=len(model.card.labels)).tolist(),
        },
        "confidence": {**histogram(probs.max(1), CONFIDENCE_EDGES),
                       "mean": float(probs.max(1).mean())},
        "inputs": {
            name: {**histogram(np.array(values), INPUT_EDGES[name]),
                   "mean": float(np.mean(values)), "std": float(np.std(values))}
            for name, values in measures.items()
        },
        "embedding": _embedding_summary(torch.cat(embeddings).double().numpy(),
                                        final_linear(model.module)),
    }


def _embedding_summary(vectors: np.ndarray, layer: nn.Linear) -> dict[str, Any]:
    norms = np.linalg.norm(vectors, axis=1)
    centroid = vectors.mean(0)
    cosine = vectors @ centroid / np.maximum(norms * np.linalg.norm(centroid), 1e-12)
    top = float(norms.max()) * 1.5 or 1.0
    return {
        "source": "input of the final nn.Linear",
        "dim": int(layer.in_features),
        "mean": [round(float(v), 6) for v in centroid],
        "std": [round(float(v), 6) for v in vectors.std(0)],
        "norm": {**histogram(norms, np.linspace(0.0, top, NORM_BINS + 1)),
                 "mean": float(norms.mean()), "std": float(norms.std())},
        "cosine_to_centroid": {"mean": float(cosine.mean()), "std": float(cosine.std())},
    }
