"""The training loop: AdamW with a one-cycle schedule, early stopping on validation loss,
mixed precision on CUDA, bit-for-bit repeatable on the CPU for a seed.

Determinism on the CPU: every random draw (initialisation, shuffling, augmentation) comes
from the seed, batches are made in this process (no loader workers), and
torch.use_deterministic_algorithms(True) turns any nondeterministic kernel into an error
rather than a silently different model. On CUDA the run is seeded too but not forced to
be deterministic (that needs CUBLAS_WORKSPACE_CONFIG before CUDA starts, and slower
kernels); mixed precision there is bf16 where the GPU has it natively, else fp16 with a
gradient scaler.
"""

from __future__ import annotations

import contextlib
import copy
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from mlops.train.data import SplitData, augment
from models.normalise import normalisation, to_model_input
from models.spec import InputSpec

MIN_DELTA = 1e-4  # a validation loss must improve by this much to count as better
LABEL_SMOOTHING = 0.05
WEIGHT_DECAY = 5e-4


class Bar(Protocol):
    def update(self, n: int) -> None: ...


# label, total steps -> a context manager giving a bar (click.progressbar fits).
BarFactory = Callable[[str, int], contextlib.AbstractContextManager[Bar]]


@dataclass(frozen=True)
class FitConfig:
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    patience: int = 3  # epochs without a better validation loss before stopping
    device: str = "cpu"
    seed: int = 0
    augment: bool = True


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    train_loss: float
    train_accuracy: float
    val_loss: float
    val_accuracy: float
    lr: float
    seconds: float


@dataclass
class FitResult:
    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    precision: str = "fp32"  # fp32, bf16 or fp16 (autocast on CUDA)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def deterministic(device: str) -> Iterator[None]:
    """Deterministic algorithms on the CPU for the duration; the old setting afterwards."""
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(before or torch.device(device).type == "cpu")
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def fit(
    model: nn.Module,
    train: SplitData,
    validation: SplitData,
    spec: InputSpec,
    config: FitConfig,
    bar: BarFactory | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> FitResult:
    """Train model in place; it ends with the weights of the best validation loss."""
    device = torch.device(config.device)
    is_cuda = device.type == "cuda"
    bar = bar or _no_bar
    generator = torch.Generator().manual_seed(config.seed)
    model.to(device)
    if is_cuda:
        model.to(memory_format=torch.channels_last)
    scale, shift = normalisation(spec, device)
    steps_per_epoch = -(-len(train.images) // config.batch_size)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.15
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    amp_dtype = _amp_dtype(device)
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    result = FitResult(precision={None: "fp32", torch.bfloat16: "bf16",
                                  torch.float16: "fp16"}[amp_dtype])  # fmt: skip
    images, targets = torch.from_numpy(train.images), torch.from_numpy(train.targets)
    best_loss, best_state, waited = float("inf"), None, 0

    def forward(batch: torch.Tensor) -> torch.Tensor:
        x = to_model_input(batch.to(device, non_blocking=True), scale, shift, is_cuda)
        with _autocast(device, amp_dtype):
            return model(x)

    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(images), generator=generator)
        loss_sum, correct = 0.0, 0
        with bar(f"epoch {epoch}/{config.epochs}", steps_per_epoch) as progress:
            for start in range(0, len(order), config.batch_size):
                index = order[start : start + config.batch_size]
                batch = images[index]
                if config.augment:
                    batch = augment(batch, generator)
                yb = targets[index].to(device)
                logits = forward(batch)
                loss = loss_fn(logits.float(), yb)
                optimiser.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
                schedule.step()
                loss_sum += loss.item() * len(index)
                correct += int((logits.argmax(1) == yb).sum())
                progress.update(1)
        model.eval()  # batch-norm running statistics, as served
        val_loss, val_accuracy = _validate(forward, validation, loss_fn, config.batch_size)
        record = EpochRecord(
            epoch=epoch,
            train_loss=loss_sum / len(images),
            train_accuracy=correct / len(images),
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            lr=optimiser.param_groups[0]["lr"],
            seconds=time.perf_counter() - started,
        )
        result.history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if val_loss < best_loss - MIN_DELTA:
            best_loss, waited, result.best_epoch = val_loss, 0, epoch
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in
                                        model.state_dict().items()})  # fmt: skip
        else:
            waited += 1
            if waited >= config.patience and epoch < config.epochs:
                result.stopped_early = True
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.cpu().eval()
    return result


def _validate(
    forward: Callable[[torch.Tensor], torch.Tensor],
    data: SplitData,
    loss_fn: nn.Module,
    batch_size: int,
) -> tuple[float, float]:
    """Mean loss and accuracy over a split (the caller has put the model in eval mode)."""
    loss_sum, correct = 0.0, 0
    images, targets = torch.from_numpy(data.images), torch.from_numpy(data.targets)
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            yb = targets[start : start + batch_size]
            logits = forward(images[start : start + batch_size]).float().cpu()
            loss_sum += float(loss_fn(logits, yb)) * len(yb)
            correct += int((logits.argmax(1) == yb).sum())
    return loss_sum / len(images), correct / len(images)


def _amp_dtype(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None  # CPU autocast is slower than fp32 on most CPUs, and not deterministic
    native_bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.bfloat16 if native_bf16 else torch.float16


def _autocast(device: torch.device, dtype: torch.dtype | None) -> Any:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


class _NullBar:
    def update(self, n: int) -> None:
        pass


@contextlib.contextmanager
def _no_bar(_label: str, _total: int) -> Iterator[Bar]:
    yield _NullBar()
