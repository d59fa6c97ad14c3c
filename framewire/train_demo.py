"""Training the built-in demo model: SmallCNN on the synthetic shapes, on the CPU.

The worker's default model must classify what the synthetic cameras publish: 320x240
JPEG frames that `prepare` squeezes to 64x64. Scenes rendered at 64x64 alone do not
show that (the stretch changes the aspect ratio, the 5x downscale smooths the noise), so
part of the training set goes the product's way: rendered at a 4:3 camera size, JPEG
encoded and decoded, then `prepare`d. Everything follows from the seed: same seed, same
weights (on the same torch build and thread count).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from models.architectures import SmallCNN
from models.loader import save_model
from models.spec import InputSpec, ModelCard, prepare
from producers.synthetic import CLASSES, synthetic_dataset

DEMO_SIZE = 64
CAMERA_SIZE = (320, 240)  # what `framewire produce synthetic` publishes by default
JPEG_QUALITY = 90
# Camera-like render sizes for the training set: all 4:3 like the cameras, smaller than
# 320x240 because rendering cost grows with pixels and the look after the downscale is
# close (same stretch, smoothed noise, JPEG blocks mostly averaged away).
_CAMERA_TRAIN_SIZES = ((96, 72), (128, 96), (160, 120))
LEARNING_RATE = 6e-3
_NATIVE_SHARE = 0.3  # the rest of the training set is camera-like
_EVAL_SEED_OFFSET = 1_000_003  # held-out data: a seed training never uses


def demo_card() -> ModelCard:
    return ModelCard(
        name="demo-shapes",
        version="1",
        architecture="small-cnn",
        task="classification",
        labels=list(CLASSES),
        input=InputSpec(width=DEMO_SIZE, height=DEMO_SIZE),
    )


def camera_frames(
    n: int, seed: int, size: tuple[int, int] = CAMERA_SIZE, drift: bool = False
) -> tuple[np.ndarray, list[str]]:
    """Scenes rendered at a camera size, JPEG round-tripped, prepared to 64x64 RGB.

    This is the path a synthetic frame takes through producer and worker.
    """
    images, labels = synthetic_dataset(n, seed, width=size[0], height=size[1], drift=drift)
    spec = demo_card().input
    out = np.empty((n, spec.height, spec.width, 3), np.uint8)
    for i, image in enumerate(images):
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        assert ok, "OpenCV failed to encode a JPEG"
        out[i] = prepare(cv2.imdecode(data, cv2.IMREAD_COLOR), spec)
    return out, labels


def native_frames(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Scenes rendered at 64x64, in the model's channel order."""
    images, labels = synthetic_dataset(n, seed, width=DEMO_SIZE, height=DEMO_SIZE)
    spec = demo_card().input
    return np.stack([prepare(image, spec) for image in images]), labels


def training_set(samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(N x 64 x 64 x 3 uint8 RGB, N class indices): native and camera-like scenes."""
    n_native = round(samples * _NATIVE_SHARE)
    parts = [native_frames(n_native, seed)]
    rest = samples - n_native
    sizes = _CAMERA_TRAIN_SIZES
    for i, size in enumerate(sizes):
        n = rest // len(sizes) + (1 if i < rest % len(sizes) else 0)
        if n:
            parts.append(camera_frames(n, seed * 31 + 7 + i, size))
    images = np.concatenate([p[0] for p in parts])
    index = {label: i for i, label in enumerate(CLASSES)}
    targets = np.array([index[label] for p in parts for label in p[1]], np.int64)
    return images, targets


def normalise(images: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float NCHW normalised: the engine's arithmetic, on the host."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return (x - mean) / std


def accuracy(model: nn.Module, images: np.ndarray, labels: list[str], spec: InputSpec) -> float:
    model.eval()
    with torch.inference_mode():
        predicted = torch.cat(
            [model(normalise(images[i : i + 256], spec)).argmax(1)
             for i in range(0, len(images), 256)]
        )
    truth = torch.tensor([CLASSES.index(label) for label in labels])
    return float((predicted == truth).float().mean())


def train_demo_model(
    out_dir: str | Path | None,
    seed: int = 0,
    samples: int = 6000,
    epochs: int = 8,
    device: str = "cpu",
    batch_size: int = 64,
    eval_samples: int = 600,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Train the demo model, write it to out_dir (None: do not save), return its figures.

    Held-out accuracy is measured on fresh seeds, both on 64x64 renders and on the
    product's path (320x240 JPEG frames prepared down to 64x64).
    """
    say = progress or (lambda _message: None)
    started = time.perf_counter()
    torch.manual_seed(seed)
    # Cheap on the CPU (its kernels here are deterministic already): it turns a future
    # nondeterministic op into an error instead of silently different weights. Not on
    # CUDA, where it would need CUBLAS_WORKSPACE_CONFIG set before CUDA starts.
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic or device == "cpu")
    try:
        card = demo_card()
        images, targets = training_set(samples, seed)
        data_s = time.perf_counter() - started
        say(f"rendered {len(images)} training scenes in {data_s:.1f} s")
        # channels_last: the CPU (oneDNN) and CUDA conv kernels are faster in NHWC.
        model = SmallCNN(len(card.labels)).to(device, memory_format=torch.channels_last)
        _fit(model, normalise(images, card.input), torch.from_numpy(targets), epochs,
             batch_size, seed, device, say)
        model = model.cpu().eval()
    finally:
        torch.use_deterministic_algorithms(deterministic)
    train_s = time.perf_counter() - started

    eval_seed = seed + _EVAL_SEED_OFFSET
    native_images, native_labels = native_frames(eval_samples, eval_seed)
    camera_images, camera_labels = camera_frames(eval_samples, eval_seed + 1)
    metrics = {
        "seed": seed,
        "samples": samples,
        "epochs": epochs,
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(train_s, 1),
        "heldout_accuracy": round(accuracy(model, native_images, native_labels, card.input), 4),
        "heldout_camera_jpeg_accuracy": round(
            accuracy(model, camera_images, camera_labels, card.input), 4
        ),
    }
    if out_dir is not None:
        path = save_model(model, card, out_dir)
        metrics["out"] = str(path)
        metrics["weights_bytes"] = (path / "weights.pt").stat().st_size
    metrics["total_seconds"] = round(time.perf_counter() - started, 1)
    return metrics


def _fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch_size: int,
    seed: int,
    device: str,
    say: Callable[[str], None],
) -> None:
    generator = torch.Generator().manual_seed(seed)
    steps = epochs * ((len(x) + batch_size - 1) // batch_size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE, weight_decay=5e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=LEARNING_RATE, total_steps=steps, pct_start=0.15
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total, count = 0.0, 0
        for start in range(0, len(x), batch_size):
            index = order[start : start + batch_size]
            xb = _augment(x[index], generator).to(device, memory_format=torch.channels_last)
            yb = y[index].to(device)
            loss = loss_fn(model(xb), yb)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total, count = total + loss.item() * len(index), count + len(index)
        say(f"epoch {epoch + 1}/{epochs}: loss {total / count:.4f}")


def _augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random per-image flips: every class is mirror-symmetric, so labels stay true."""
    flips = torch.rand(2, len(x), 1, 1, 1, generator=generator) < 0.5
    x = torch.where(flips[0], x.flip(3), x)
    return torch.where(flips[1], x.flip(2), x)
