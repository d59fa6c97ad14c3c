"""What a model expects and what it is: InputSpec, ModelCard (`model.json`) and `prepare`.

The card travels with the weights so that a worker can serve a model it has never seen:
the decode threads size and order the pixels from `card.input` (`prepare`), the engine
normalises with its mean/std, and the labels turn logits into result/1 predictions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

CARD_SCHEMA = "model-card/1"
TASKS = ("classification", "detection")
CHANNEL_ORDERS = ("rgb", "bgr")
RESIZE_MODES = ("stretch", "letterbox")
LETTERBOX_FILL = 114  # the grey YOLO-style letterboxing uses; a neutral, common choice

# ImageNet statistics in 0..1 scale: what most pretrained backbones were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """The pixels a model takes: size, channel order, resize mode, normalisation.

    Frozen and comparable: the device stage compares a frame's spec with the serving
    model's to know whether the frame must be prepared again after a model swap.
    """

    width: int
    height: int
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "rgb"
    resize: str = "stretch"

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"input {name} must be a positive integer, got {value!r}")
        # Lists from JSON become tuples so that equality and hashing work.
        object.__setattr__(self, "mean", _triple("mean", self.mean))
        object.__setattr__(self, "std", _triple("std", self.std))
        if any(s <= 0 for s in self.std):
            raise ValueError(f"input std values must be positive, got {self.std}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise ValueError(
                f"input channel_order must be one of {', '.join(CHANNEL_ORDERS)}, "
                f"got {self.channel_order!r}"
            )
        if self.resize not in RESIZE_MODES:
            raise ValueError(
                f"input resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "mean": list(self.mean),
            "std": list(self.std),
            "channel_order": self.channel_order,
            "resize": self.resize,
        }

    @classmethod
    def from_dict(cls, data: Any) -> InputSpec:
        if not isinstance(data, dict):
            raise ValueError(f"model card 'input' must be an object, got {type(data).__name__}")
        unknown = set(data) - {"width", "height", "mean", "std", "channel_order", "resize"}
        if unknown:
            raise ValueError(f"model card 'input' has unknown fields: {', '.join(sorted(unknown))}")
        missing = {"width", "height"} - set(data)
        if missing:
            raise ValueError(f"model card 'input' lacks: {', '.join(sorted(missing))}")
        return cls(**data)


@dataclass(frozen=True)
class ModelCard:
    """A model's metadata, stored as `model.json` next to its weights."""

    name: str
    version: str
    architecture: str
    task: str
    labels: list[str] = field(hash=False)
    input: InputSpec

    def __post_init__(self) -> None:
        for name in ("name", "version", "architecture"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"model card '{name}' must be a non-empty string, got {value!r}")
        if self.task not in TASKS:
            raise ValueError(f"model card 'task' must be one of {', '.join(TASKS)}, "
                             f"got {self.task!r}")
        labels = self.labels
        if (
            not isinstance(labels, (list, tuple))
            or not labels
            or not all(isinstance(label, str) and label for label in labels)
        ):
            raise ValueError("model card 'labels' must be a non-empty list of non-empty strings")
        if len(set(labels)) != len(labels):
            raise ValueError(f"model card 'labels' must be unique, got {list(labels)}")
        object.__setattr__(self, "labels", list(labels))
        if not isinstance(self.input, InputSpec):
            raise ValueError("model card 'input' must be an InputSpec")

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": CARD_SCHEMA,
            "name": self.name,
            "version": self.version,
            "architecture": self.architecture,
            "task": self.task,
            "labels": list(self.labels),
            "input": self.input.to_dict(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Any) -> ModelCard:
        if not isinstance(data, dict):
            raise ValueError(f"a model card must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        schema = data.pop("schema", CARD_SCHEMA)
        if schema != CARD_SCHEMA:
            raise ValueError(f"model card schema {schema!r} is not supported "
                             f"(expected {CARD_SCHEMA!r})")
        required = {"name", "version", "architecture", "task", "labels", "input"}
        missing = required - set(data)
        if missing:
            raise ValueError(f"model card lacks: {', '.join(sorted(missing))}")
        unknown = set(data) - required
        if unknown:
            raise ValueError(f"model card has unknown fields: {', '.join(sorted(unknown))}")
        return cls(**{**data, "input": InputSpec.from_dict(data["input"])})

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"model card is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def prepare(image_bgr: np.ndarray, spec: InputSpec) -> np.ndarray:
    """A decoded BGR uint8 image -> H x W x 3 uint8 at the spec's size and channel order.

    Runs on the decode threads (OpenCV releases the GIL), so the engine gets a batch it
    only has to copy, normalise and run. Stretch resizing uses INTER_AREA to shrink (it
    averages, so no aliasing) and INTER_LINEAR to enlarge; letterboxing keeps the aspect
    ratio and pads with grey.
    """
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3 or image_bgr.dtype != np.uint8:
        raise ValueError(
            f"expected an H x W x 3 uint8 BGR image, got shape {image_bgr.shape} "
            f"dtype {image_bgr.dtype}"
        )
    height, width = image_bgr.shape[:2]
    if height == 0 or width == 0:
        raise ValueError("cannot prepare an empty image")
    if spec.resize == "letterbox":
        out = _letterbox(image_bgr, spec.width, spec.height)
    else:
        out = _resize(image_bgr, spec.width, spec.height)
    if spec.channel_order == "rgb":
        return cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(out)


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    shrinking = width <= w and height <= h
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


def letterbox_placement(w: int, h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(left, top, new_w, new_h): where a w x h image goes, resized, in a width x height
    letterbox (shared with the GPU's preparation, workers/device_decode.py)."""
    scale = min(width / w, height / h)
    new_w = min(width, max(1, round(w * scale)))
    new_h = min(height, max(1, round(h * scale)))
    return (width - new_w) // 2, (height - new_h) // 2, new_w, new_h


def _letterbox(image: np.ndarray, width: int, height: int) -> np.ndarray:
    h, w = image.shape[:2]
    left, top, new_w, new_h = letterbox_placement(w, h, width, height)
    resized = _resize(image, new_w, new_h)
    out = np.full((height, width, 3), LETTERBOX_FILL, np.uint8)
    out[top : top + new_h, left : left + new_w] = resized
    return out


def _triple(name: str, value: Any) -> tuple[float, float, float]:
    try:
        triple = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"input {name} must be three numbers, got {value!r}") from None
    if len(triple) != 3 or not all(math.isfinite(v) for v in triple):
        raise ValueError(f"input {name} must be three finite numbers, got {value!r}")
    return triple  # type: ignore[return-value]
