"""`framewire train` (a tracked training run) and `framewire mlflow ui`."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from foundation.settings import Settings

ARCHES = ("small-cnn", "resnet18", "resnet50")


@click.command()
@click.option("--dataset", required=True, metavar="NAME[@VERSION]",
              help="dataset version to train on (framewire data list)")
@click.option("--arch", type=click.Choice(ARCHES), default="small-cnn", show_default=True)
@click.option("--input-size", type=click.IntRange(min=16), default=None,
              help="square input side  [default: 64 for small-cnn, 224 for the ResNets]")
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=3e-3,
              show_default=True, help="peak learning rate (one-cycle schedule)")
@click.option("--patience", type=click.IntRange(min=1), default=3, show_default=True,
              help="stop after this many epochs without a better validation loss")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N")
@click.option("--seed", type=int, default=0, show_default=True,
              help="same seed, data and CPU: same model and metrics")
@click.option("--name", default=None, help="registered model name  [default: the dataset's]")
@click.option("--no-augment", is_flag=True, help="train on the images as they are")
@click.option("--init-from", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None, help="start from this model directory's weights (fine-tune)")
@click.option("--tensorboard", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="also write TensorBoard scalars to DIR (needs tensorboard)")
@click.option("--json", "as_json", is_flag=True, help="end with one JSON object")
@click.pass_obj
def train(settings: Settings, dataset: str, arch: str, input_size: int | None, epochs: int,
          batch_size: int, lr: float, patience: int, device: str, seed: int, name: str | None,
          no_augment: bool, init_from: Path | None, tensorboard: Path | None,
          as_json: bool) -> None:  # fmt: skip
    """Train a model on a dataset version, validate it, track it in MLflow, register it."""
    # Imported here: torch and MLflow are heavy, and other verbs must start fast.
    from foundation.tracking import MlflowMissing
    from mlops.data.store import DatasetError
    from mlops.train import TrainConfig, TrainError
    from mlops.train import train as run_training

    config = TrainConfig(dataset=dataset, arch=arch, input_size=input_size, epochs=epochs,
                         batch_size=batch_size, lr=lr, patience=patience, device=device,
                         seed=seed, name=name, augment=not no_augment,
                         tensorboard=tensorboard, init_from=init_from)  # fmt: skip

    def bar(label: str, total: int) -> Any:  # click.progressbar: a private type
        return click.progressbar(length=total, label=label, file=sys.stderr,
                                 show_eta=True, show_pos=True)  # fmt: skip

    try:
        result = run_training(settings, config, bar=bar)
    except (TrainError, DatasetError, MlflowMissing, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    evaluation = result.evaluation
    if as_json:
        click.echo(json.dumps(result.to_dict()))
        return
    last = result.history[-1]
    click.echo(f"run:        {result.run_id}")
    click.echo(f"registered: {result.model_name} version {result.model_version} "
               f"({result.model_dir})")  # fmt: skip
    click.echo(f"dataset:    {result.dataset} ({result.data['train_images']} train, "
               f"{result.data['validation_images']} validation, "
               f"{result.data['skipped_unreadable']} unreadable skipped)")  # fmt: skip
    stop = "stopped early" if result.stopped_early else "all epochs"
    click.echo(f"epochs:     {last.epoch} ({stop}), best {result.best_epoch}")
    click.echo(f"validation: accuracy {evaluation.accuracy:.4f}  ECE {evaluation.ece:.4f}  "
               f"on {evaluation.images} images")  # fmt: skip
    width = max(len(label) for label in evaluation.labels)
    click.echo(f"  {'label':<{width}}  precision  recall     f1  support")
    for label in evaluation.labels:
        row = evaluation.per_class[label]
        click.echo(f"  {label:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  "
                   f"{row['f1']:5.3f}  {row['support']:7d}")  # fmt: skip
    latency = "  ".join(f"{k} {v:.2f}" for k, v in result.latency_ms.items())
    click.echo(f"latency:    {latency}")


@click.group("mlflow")
def mlflow_group() -> None:
    """The MLflow tracking store (local SQLite by default; MLFLOW_TRACKING_URI for a server)."""


@mlflow_group.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True)
@click.pass_obj
def mlflow_ui(settings: Settings, host: str, port: int) -> None:
    """Open the MLflow UI on this project's store (needs the full `mlflow` package)."""
    from importlib.metadata import PackageNotFoundError, version

    from foundation.tracking import ENV_URI, artifact_root, local_store, tracking_uri

    if os.environ.get(ENV_URI):
        uri = os.environ[ENV_URI]
        if uri.startswith(("http://", "https://")):
            click.echo(f"{ENV_URI} points at an MLflow server: open {uri}")
            return
    local_store(settings).mkdir(parents=True, exist_ok=True)
    args = ["mlflow", "ui", "--backend-store-uri", tracking_uri(settings)]
    root = artifact_root(settings)
    if root:
        args += ["--default-artifact-root", root]
    args += ["--host", host, "--port", str(port)]
    try:
        version("mlflow")  # the full package: mlflow-skinny has no UI server
    except PackageNotFoundError:
        raise click.ClickException(
            "the MLflow UI needs the full mlflow package (mlflow-skinny has no UI server): "
            f"pip install 'mlflow>=3.1,<4' && {shlex.join(args)}"
        ) from None
    click.echo(f"MLflow UI on http://{host}:{port} ({shlex.join(args)})", err=True)
    os.execv(sys.executable, [sys.executable, "-m", *args])
