"""The built-in demo model, made the way any framewire model is made.

    render what `framewire produce synthetic` publishes (320x240 scenes, JPEG q90)
    -> class folders -> import as a dataset version (`framewire data import`)
    -> `framewire train` (tracked in MLflow, registered) -> the registered folder

`framewire train-demo --out models/demo` runs this and copies the registered folder to
models/demo, with `training.json` beside it: the run, the dataset version and the
validation figures of the version that was committed. The scenes are independent renders
of the producer's scene generator (synthetic_dataset), not consecutive video frames:
consecutive frames of one moving scene are near duplicates, and the per-blob split would
put some in training and others in validation, which inflates validation accuracy.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from foundation.settings import Settings
from mlops.data.importers import import_folder
from mlops.data.store import DatasetStore
from mlops.train import TrainConfig, TrainResult, train
from mlops.train.loop import BarFactory
from producers.encode import encode_image
from producers.synthetic import synthetic_dataset

NAME = "demo-shapes"  # the dataset's and the registered model's name
CAMERA_SIZE = (320, 240)  # what `framewire produce synthetic` publishes by default
TRAINING_FILE = "training.json"

# The recipe measured for it (docs/MLOPS.md, "The demo model"): many small steps on
# 7,500 scenes; early stopping rarely ends it before the last epoch.
SAMPLES = 7500
EPOCHS = 12
LEARNING_RATE = 6e-3


def write_camera_frames(folder: Path, samples: int, seed: int) -> Path:
    """`samples` synthetic scenes as the producer publishes them, in class folders."""
    images, labels = synthetic_dataset(samples, seed, width=CAMERA_SIZE[0],
                                       height=CAMERA_SIZE[1])  # fmt: skip
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        data, _encoding, _width, _height = encode_image(image, "jpeg")
        (folder / label).mkdir(parents=True, exist_ok=True)
        (folder / label / f"{seed}-{i:05d}.jpg").write_bytes(data)
    return folder


def make_demo_model(
    settings: Settings,
    out: Path | None,
    samples: int = SAMPLES,
    epochs: int = EPOCHS,
    seed: int = 0,
    device: str = "cpu",
    bar: BarFactory | None = None,
) -> TrainResult:
    """Import the scenes, train and register; copy the registered folder to out (if any)."""
    with tempfile.TemporaryDirectory(prefix="framewire-demo-shapes-") as tmp:
        folder = write_camera_frames(Path(tmp), samples, seed)
        dataset = import_folder(DatasetStore.for_settings(settings), NAME, folder).version
    config = TrainConfig(dataset=dataset.ref, arch="small-cnn", epochs=epochs,
                         lr=LEARNING_RATE, device=device, seed=seed, name=NAME)  # fmt: skip
    result = train(settings, config, bar=bar)
    if out is not None:
        copy_registered(result, out)
    return result


def copy_registered(result: TrainResult, out: Path) -> None:
    """The registered folder at out (replacing what was there), with its provenance."""
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(result.model_dir, out)
    (out / TRAINING_FILE).write_text(json.dumps(provenance(result), indent=1) + "\n")


def provenance(result: TrainResult) -> dict[str, Any]:
    """What to know about a committed model: which run, which data, how good."""
    summary = result.to_dict()
    summary["model"].pop("dir")  # a path on the machine that trained it
    validation = summary["validation"]
    return {
        "run_id": summary["run_id"],
        "model": summary["model"],
        "dataset": summary["dataset"],
        "data": summary["data"],
        "best_epoch": summary["best_epoch"],
        "stopped_early": summary["stopped_early"],
        "validation": {key: validation[key] for key in ("accuracy", "ece", "images")},
        "per_class": validation["per_class"],
        "epochs": summary["epochs"],
        "latency_ms": summary["latency_ms"],
    }
