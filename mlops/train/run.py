"""One training run end to end: dataset version in, registered model version out.

    resolve the dataset -> decode train/validation -> fit (early stopping) -> evaluate
    on validation -> latency -> reference statistics -> log to MLflow -> register

The model card's `version` is the registry version number (what workers show in
result/1). The number exists only once the version is created, so the model folder is
uploaded without model.json first, then the version is created, then the card with its
number is written and uploaded last: as with save_model, a folder with a card is
complete, and a reader never sees a card whose version is not the registry's.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foundation.log import get_logger
from foundation.settings import Settings
from mlops.data.store import DatasetStore, DatasetVersion
from mlops.evaluate import Evaluation, evaluate
from mlops.registry.store import ACCURACY_TAG
from mlops.registry.store import DATASET_TAG as REGISTRY_DATASET_TAG
from mlops.train import artifacts
from mlops.train.data import load_split
from mlops.train.loop import (
    BarFactory,
    EpochRecord,
    FitConfig,
    deterministic,
    fit,
    seed_everything,
)
from mlops.train.reference import REFERENCE_FILE, reference_statistics
from mlops.train.tracking import (
    DATASET_TAG,
    DATASET_VERSION_TAG,
    MODEL_ARTIFACT,
    Tracker,
    code_version,
    environment,
    tensorboard_writer,
)
from models.architectures import ARCHITECTURES
from models.device import resolve_device
from models.loader import CARD_FILE, LoadedModel, ModelLoadError, load_model, save_model
from models.spec import InputSpec, ModelCard

log = get_logger(__name__)

DEFAULT_INPUT_SIZE = {"small-cnn": 64, "resnet18": 224, "resnet50": 224}
_LATENCY_BUDGET_S = 2.0  # per batch size: enough for a stable median, short for resnet50


class TrainError(ValueError):
    """A training request that cannot run; str() is one line for the user."""


@dataclass(frozen=True)
class TrainConfig:
    dataset: str  # NAME or NAME@VERSION
    arch: str = "small-cnn"
    input_size: int | None = None  # None: DEFAULT_INPUT_SIZE[arch]
    epochs: int = 10
    batch_size: int = 64
    lr: float = 3e-3
    patience: int = 3
    device: str = "auto"
    seed: int = 0
    name: str | None = None  # registered model name; None: the dataset's name
    augment: bool = True
    tensorboard: Path | None = None
    # Start from this model's weights (a model directory): fine-tuning, as a retrain does
    # from production. Same architecture and input size, and labels the dataset's.
    init_from: Path | None = None


@dataclass
class TrainResult:
    run_id: str
    model_name: str
    model_version: str
    model_dir: Path  # a local copy of the registered model folder
    dataset: str  # NAME@VERSION
    evaluation: Evaluation
    history: list[EpochRecord]
    best_epoch: int
    stopped_early: bool
    latency_ms: dict[str, float]
    data: dict[str, int] = field(default_factory=dict)  # images used and skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": {"name": self.model_name, "version": self.model_version,
                      "dir": str(self.model_dir)},
            "dataset": self.dataset,
            "validation": self.evaluation.to_dict(),
            "latency_ms": self.latency_ms,
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "epochs": [dataclasses.asdict(r) for r in self.history],
            "data": self.data,
        }


def train(settings: Settings, config: TrainConfig, bar: BarFactory | None = None) -> TrainResult:
    """Train, validate, track and register; see the module docstring."""
    if config.arch not in ARCHITECTURES:
        raise TrainError(f"unknown architecture {config.arch!r}; one of "
                         f"{', '.join(sorted(ARCHITECTURES))}")  # fmt: skip
    try:
        device = resolve_device(config.device)
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    writer = tensorboard_writer(config.tensorboard) if config.tensorboard else None
    store = DatasetStore.for_settings(settings)
    version = store.resolve(config.dataset)
    labels = version.labels
    if len(labels) < 2:
        raise TrainError(f"{version.ref} has {len(labels)} labelled class(es); training "
                         "needs at least 2")  # fmt: skip
    size = config.input_size or DEFAULT_INPUT_SIZE[config.arch]
    spec = InputSpec(width=size, height=size)
    name = config.name or version.name

    train_data = load_split(store, version.split("train"), spec, labels)
    val_data = load_split(store, version.split("validation"), spec, labels)
    if len(train_data.images) == 0 or len(val_data.images) == 0:
        raise TrainError(f"{version.ref} has {len(train_data.images)} readable training and "
                         f"{len(val_data.images)} validation images; both must be > 0")
    data = {
        "train_images": len(train_data.images), "validation_images": len(val_data.images),
        "skipped_unreadable": train_data.skipped + val_data.skipped,
        "skipped_unlabelled": train_data.unlabelled + val_data.unlabelled,
    }  # fmt: skip
    if data["skipped_unreadable"]:
        log.warning("skipped unreadable images", dataset=version.ref,
                    count=data["skipped_unreadable"])  # fmt: skip

    tracker = Tracker(settings, run_name=f"{name}-{config.arch}-s{config.seed}")
    log.info("training", run_id=tracker.run_id, dataset=version.ref, arch=config.arch,
             device=device, **data)  # fmt: skip
    try:
        tracker.tags({DATASET_TAG: version.name, DATASET_VERSION_TAG: version.version,
                      "framewire.registered_model": name, **code_version()})  # fmt: skip
        fit_config = FitConfig(epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                               patience=config.patience, device=device, seed=config.seed,
                               augment=config.augment)  # fmt: skip
        tracker.params({
            "dataset": version.ref, "arch": config.arch, "input_size": size,
            **{k: v for k, v in dataclasses.asdict(fit_config).items()}, **data,
            **({"init_from": str(config.init_from)} if config.init_from else {}),
        })  # fmt: skip

        def on_epoch(record: EpochRecord) -> None:
            values = {k: v for k, v in dataclasses.asdict(record).items() if k != "epoch"}
            tracker.metrics(values, step=record.epoch)
            if writer is not None:
                for key, value in values.items():
                    writer.add_scalar(key, value, record.epoch)
            log.info("epoch", **dataclasses.asdict(record))

        seed_everything(config.seed)
        with deterministic(device):
            module = ARCHITECTURES[config.arch](len(labels))
            if config.init_from is not None:
                _start_from(module, Path(config.init_from), config.arch, spec, labels)
            fitted = fit(module, train_data, val_data, spec, fit_config, bar, on_epoch)
        tracker.params({"precision": fitted.precision})
        card = ModelCard(name, "pending", config.arch, "classification", labels, spec)
        model = LoadedModel(card, module)
        evaluation = evaluate(model, store, version.split("validation"), device,
                              config.batch_size)  # fmt: skip
        latency = measure_latency(model, device, config.batch_size)
        result = _record(tracker, settings, store, version, model, evaluation, latency,
                         fitted.best_epoch, device, config.batch_size)  # fmt: skip
    except BaseException:
        tracker.end("FAILED")
        raise
    finally:
        if writer is not None:
            writer.close()
    tracker.end()
    return TrainResult(
        run_id=tracker.run_id, model_name=name, model_version=result["version"],
        model_dir=result["dir"], dataset=version.ref, evaluation=evaluation,
        history=fitted.history, best_epoch=fitted.best_epoch,
        stopped_early=fitted.stopped_early, latency_ms=latency, data=data,
    )  # fmt: skip


def _start_from(module: torch.nn.Module, path: Path, arch: str, spec: InputSpec,
                labels: list[str]) -> None:  # fmt: skip
    """Load a model directory's weights into module, or TrainError saying why they do not
    fit (another architecture, input size or label set)."""
    try:
        start = load_model(path)
    except ModelLoadError as exc:
        raise TrainError(f"--init-from: {exc}") from None
    card = start.card
    if (card.architecture, card.input.width, card.input.height) != (arch, spec.width,
                                                                     spec.height):  # fmt: skip
        raise TrainError(f"--init-from {path}: {card.architecture} at {card.input.width}x"
                         f"{card.input.height}, not {arch} at {spec.width}x{spec.height}")
    if card.labels != labels:
        raise TrainError(f"--init-from {path}: labels {card.labels} differ from the "
                         f"dataset's {labels}")  # fmt: skip
    module.load_state_dict(start.module.state_dict())


def _record(
    tracker: Tracker,
    settings: Settings,
    store: DatasetStore,
    version: DatasetVersion,
    model: LoadedModel,
    evaluation: Evaluation,
    latency: dict[str, float],
    best_epoch: int,
    device: str,
    batch_size: int,
) -> dict[str, Any]:
    """Log the validation results and artifacts, upload and register the model."""
    macro_f1 = float(np.mean([evaluation.per_class[label]["f1"] for label in model.card.labels]))
    final = {"val_accuracy": evaluation.accuracy, "val_ece": evaluation.ece,
             "val_macro_f1": macro_f1, "best_epoch": best_epoch,
             **{f"val_f1.{label}": evaluation.per_class[label]["f1"]
                for label in model.card.labels},
             **{f"latency_{k}": v for k, v in latency.items()}}  # fmt: skip
    tracker.metrics(final)
    with tempfile.TemporaryDirectory(prefix="framewire-train-") as tmp:
        folder = Path(tmp)
        (folder / "evaluation.json").write_text(json.dumps(evaluation.to_dict(), indent=2))
        (folder / "environment.json").write_text(json.dumps(environment(device), indent=2))
        artifacts.per_class_csv(evaluation, folder / "per_class.csv")
        artifacts.confusion_png(evaluation, folder / "confusion_matrix.png",
                                f"{model.card.name} ({model.card.architecture}) on "
                                f"{version.ref}, validation")  # fmt: skip
        for path in sorted(folder.iterdir()):
            tracker.artifact(path)
        _log_data_report(tracker, store, version, folder / "data_report.html")

        # The model folder without its card, then the version, then the card.
        model_dir = folder / MODEL_ARTIFACT
        save_model(model.module, model.card, model_dir)
        (model_dir / CARD_FILE).unlink()
        reference = reference_statistics(model, store, version.split("validation"), device,
                                         batch_size, dataset=version.ref)  # fmt: skip
        tracker.artifact(model_dir, MODEL_ARTIFACT)
        number = tracker.register(model.card.name, {
            # What the promotion gate reads (mlops/registry/store.py).
            REGISTRY_DATASET_TAG: version.ref, ACCURACY_TAG: f"{evaluation.accuracy:.6f}",
            DATASET_TAG: version.name, DATASET_VERSION_TAG: version.version,
            "val_accuracy": f"{evaluation.accuracy:.6f}", "val_ece": f"{evaluation.ece:.6f}",
            "val_macro_f1": f"{macro_f1:.6f}", "arch": model.card.architecture,
        })  # fmt: skip
        card = dataclasses.replace(model.card, version=number)
        reference["model"]["version"] = number
        (model_dir / REFERENCE_FILE).write_text(json.dumps(reference, indent=1) + "\n")
        tracker.artifact(model_dir / REFERENCE_FILE, MODEL_ARTIFACT)
        (model_dir / CARD_FILE).write_text(card.to_json(), encoding="utf-8")
        tracker.artifact(model_dir / CARD_FILE, MODEL_ARTIFACT)
        tracker.tags({"framewire.model_version": number})
        # A local copy, ready for `framewire worker --model DIR`.
        local = settings.state_dir / "models" / card.name / number
        if local.exists():
            shutil.rmtree(local)
        shutil.copytree(model_dir, local)
    return {"version": number, "dir": local}


def _log_data_report(
    tracker: Tracker, store: DatasetStore, version: DatasetVersion, page: Path
) -> None:
    """The dataset's HTML report as an artifact, when mlops.data.report can write one."""
    try:
        from mlops.data import report
    except ImportError:
        log.info("no data report: mlops.data.report is not available")
        return
    write = getattr(report, "write_report", None)
    if write is None:
        log.info("no data report: mlops.data.report has no write_report")
        return
    try:
        write(store, version, page)
    except Exception as exc:  # the report is informative: never fail a training for it
        log.warning("data report failed", error=f"{type(exc).__name__}: {exc}")
        return
    tracker.artifact(page)


def measure_latency(model: LoadedModel, device: str, batch_size: int) -> dict[str, float]:
    """Median and p95 milliseconds of one forward pass at batch 1 and batch_size on device
    (normalised uint8 input already there: the model alone, as the engine runs it)."""
    from mlops.evaluate import on_device

    spec = model.card.input
    out: dict[str, float] = {}
    is_cuda = torch.device(device).type == "cuda"
    with on_device(model, device) as module, torch.inference_mode():
        for size in sorted({1, batch_size}):
            x = torch.zeros((size, 3, spec.height, spec.width), device=device)
            times: list[float] = []
            deadline = time.perf_counter() + _LATENCY_BUDGET_S
            for i in range(53):  # 3 warm-up rounds, then up to 50 timed
                started = time.perf_counter()
                module(x)
                if is_cuda:
                    torch.cuda.synchronize(device)
                if i >= 3:
                    times.append((time.perf_counter() - started) * 1000)
                if i >= 8 and time.perf_counter() > deadline:
                    break
            times.sort()
            out[f"b{size}_p50_ms"] = round(statistics.median(times), 3)
            out[f"b{size}_p95_ms"] = round(times[min(len(times) - 1,
                                                     int(0.95 * len(times)))], 3)  # fmt: skip
    return out
