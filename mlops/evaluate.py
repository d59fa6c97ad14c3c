"""Validating a classification model on dataset items: accuracy, per-class figures,
the confusion matrix and the expected calibration error.

The model sees exactly what a worker would feed it: the stored bytes decoded as a worker
decodes them (models/decode.py: a JPEG at reduced scale for a small input), `prepare`d to
the card's input spec, normalised by models.normalise (the engine's own arithmetic).
Unreadable images are skipped and counted. An item whose label the model does not know
counts as wrong: it stays in `images` and in the accuracy's denominator, and its label is
appended to `labels` (a confusion row whose column no prediction can reach), so the gate
sees a model that cannot name a class the data has. Items without a label cannot be scored
and are left out (counted in `unlabelled`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from mlops.data.store import DatasetStore, Item
from models.decode import decode_for
from models.device import resolve_device
from models.loader import LoadedModel
from models.normalise import normalisation, to_model_input
from models.spec import InputSpec, prepare

ECE_BINS = 15  # equal-width confidence bins, the usual choice (Guo et al., 2017)


@dataclass(frozen=True)
class Evaluation:
    accuracy: float  # correct / images; 0.0 when there are no images
    per_class: dict[str, dict[str, float]]  # label -> precision, recall, f1, support
    confusion: list[list[int]]  # rows: true label, columns: predicted, in `labels` order
    labels: list[str]  # the model's labels, then any unknown true labels
    ece: float  # expected calibration error of the top-1 confidence
    images: int  # images scored (readable, labelled)
    skipped: int  # unreadable images
    unknown: int = 0  # scored images whose label the model does not have (all wrong)
    unlabelled: int = 0  # items without a label: not scored

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Scored:
    """Per image: the true label's index in `labels` and the softmax probabilities."""

    labels: list[str]
    truth: np.ndarray  # N int64, indices into labels
    probabilities: np.ndarray  # N x C float32 over the model's labels
    skipped: int
    unlabelled: int


def evaluate(
    model: LoadedModel,
    store: DatasetStore,
    items: list[Item],
    device: str = "cpu",
    batch_size: int = 64,
) -> Evaluation:
    """Score items with model on device; see the module docstring for what counts."""
    return summarise(score(model, store, items, device, batch_size))


def score(
    model: LoadedModel,
    store: DatasetStore,
    items: list[Item],
    device: str = "cpu",
    batch_size: int = 64,
) -> Scored:
    """Run model over the labelled, readable items: truth and probabilities."""
    if model.card.task != "classification":
        raise ValueError(f"evaluate handles classification models, not {model.card.task!r}")
    device = resolve_device(device)
    labels = list(model.card.labels)
    index = {label: i for i, label in enumerate(labels)}
    labelled = [item for item in items if item.label is not None]
    for item in labelled:  # unknown labels get their own (unreachable) column
        if item.label not in index:
            index[item.label] = len(labels)
            labels.append(item.label)
    truth: list[int] = []
    probabilities: list[np.ndarray] = []
    batches = PreparedBatches(store, labelled, model.card.input, batch_size)
    with on_device(model, device) as module:
        scale, shift = normalisation(model.card.input, device)
        with torch.inference_mode():
            for images, batch_items in batches:
                x = to_model_input(torch.from_numpy(images).to(device), scale, shift)
                logits = module(x).float()
                probabilities.append(torch.softmax(logits, dim=1).cpu().numpy())
                truth += [index[item.label] for item in batch_items]  # type: ignore[index]
    empty = np.zeros((0, len(model.card.labels)), np.float32)
    return Scored(
        labels=labels,
        truth=np.array(truth, np.int64),
        probabilities=np.concatenate(probabilities) if probabilities else empty,
        skipped=batches.skipped,
        unlabelled=len(items) - len(labelled),
    )


def summarise(scored: Scored) -> Evaluation:
    """Accuracy, per-class precision/recall/F1, confusion and ECE from scored images."""
    labels, truth, probs = scored.labels, scored.truth, scored.probabilities
    n_model = probs.shape[1]
    predicted = probs.argmax(axis=1) if len(probs) else np.zeros(0, np.int64)
    confusion = np.zeros((len(labels), len(labels)), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    per_class = {}
    for i, label in enumerate(labels):
        tp = int(confusion[i, i])
        predicted_as = int(confusion[:, i].sum())
        support = int(confusion[i].sum())
        precision = tp / predicted_as if predicted_as else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1,
                            "support": support}  # fmt: skip
    images = len(truth)
    return Evaluation(
        accuracy=float(np.trace(confusion) / images) if images else 0.0,
        per_class=per_class,
        confusion=confusion.tolist(),
        labels=labels,
        ece=expected_calibration_error(probs, truth),
        images=images,
        skipped=scored.skipped,
        unknown=int((truth >= n_model).sum()),
        unlabelled=scored.unlabelled,
    )


def expected_calibration_error(
    probabilities: np.ndarray, truth: np.ndarray, bins: int = ECE_BINS
) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence| x bin share."""
    if len(truth) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    # Bin i holds (i/bins, (i+1)/bins]; a confidence of exactly 0 cannot occur (softmax).
    which = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            ece += abs(correct[mask].mean() - confidence[mask].mean()) * mask.mean()
    return float(ece)


def decode(data: bytes, spec: InputSpec | None = None) -> np.ndarray | None:
    """Stored bytes -> BGR uint8 image (decoded as a worker decodes for spec: a JPEG at a
    reduced scale when the input is small), or None when OpenCV cannot read them."""
    return decode_for(data, spec)


class PreparedBatches:
    """Iterate (N x H x W x 3 uint8 prepared images, their items); counts `skipped`."""

    def __init__(
        self, store: DatasetStore, items: Iterable[Item], spec: InputSpec, batch_size: int
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.store, self.items, self.spec, self.batch_size = store, list(items), spec, batch_size
        self.skipped = 0

    def __iter__(self) -> Iterator[tuple[np.ndarray, list[Item]]]:
        self.skipped = 0
        images: list[np.ndarray] = []
        batch: list[Item] = []
        for item in self.items:
            try:
                image = decode(self.store.read_blob(item.blob), self.spec)
            except OSError:
                image = None  # a blob missing from the store: as unreadable as bad bytes
            if image is None or image.size == 0:
                self.skipped += 1
                continue
            images.append(prepare(image, self.spec))
            batch.append(item)
            if len(batch) == self.batch_size:
                yield np.stack(images), batch
                images, batch = [], []
        if batch:
            yield np.stack(images), batch


@contextlib.contextmanager
def on_device(model: LoadedModel, device: str) -> Iterator[torch.nn.Module]:
    """The model's module on device in eval mode; back where and as it was afterwards."""
    module = model.module
    parameter = next(module.parameters(), None)
    home = parameter.device if parameter is not None else torch.device("cpu")
    training = module.training
    try:
        yield module.to(device).eval()
    finally:
        module.to(home).train(training)
