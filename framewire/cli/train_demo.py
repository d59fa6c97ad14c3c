"""`framewire train-demo`: the built-in demo model through the product's own MLOps path.

`framewire train-demo --out models/demo` reproduces the committed model: synthetic camera
frames imported as a dataset, `framewire train`, registered, copied out.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from foundation.settings import Settings


@click.command("train-demo")
@click.option("--seed", type=int, default=0, show_default=True, help="seed for data and init")
@click.option("--samples", type=click.IntRange(min=60), default=None,
              help="synthetic camera frames to import  [default: 7500]")
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="passes over the training split  [default: 12]")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="also copy the registered model folder here (models/demo)")
@click.pass_obj
def train_demo(settings: Settings, seed: int, samples: int | None, epochs: int | None,
               device: str, out: Path | None) -> None:  # fmt: skip
    """Import synthetic shapes as dataset demo-shapes, train, track, register the demo model."""
    # Imported here: torch and MLflow are heavy, and other verbs must start fast.
    from foundation.tracking import MlflowMissing
    from framewire import demo_model
    from mlops.train import TrainError

    def bar(label: str, total: int) -> Any:  # click.progressbar: a private type
        return click.progressbar(length=total, label=label, file=sys.stderr, show_pos=True)

    try:
        result = demo_model.make_demo_model(
            settings, out, samples=samples or demo_model.SAMPLES,
            epochs=epochs or demo_model.EPOCHS, seed=seed, device=device, bar=bar,
        )  # fmt: skip
    except (TrainError, MlflowMissing) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"dataset:    {result.dataset} ({result.data['train_images']} train, "
               f"{result.data['validation_images']} validation)")  # fmt: skip
    click.echo(f"run:        {result.run_id}")
    click.echo(f"registered: {result.model_name} version {result.model_version}")
    click.echo(f"validation: accuracy {result.evaluation.accuracy:.4f}  "
               f"ECE {result.evaluation.ece:.4f}  (best epoch {result.best_epoch})")  # fmt: skip
    if out is not None:
        click.echo(f"copied to:  {out}")
