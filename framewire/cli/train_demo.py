"""`framewire train-demo`: train the built-in demo classifier on synthetic shapes (CPU).

`framewire train-demo --out models/demo` reproduces the committed model.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from foundation.settings import Settings


@click.command("train-demo")
@click.option("--seed", type=int, default=0, show_default=True, help="seed for data and init")
@click.option("--samples", type=click.IntRange(min=60), default=6000, show_default=True,
              help="training scenes")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True,
              help="passes over the training set")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="model directory to write  [default: <state dir>/models/demo-shapes]")
@click.pass_obj
def train_demo(settings: Settings, seed: int, samples: int, epochs: int, out: Path | None) -> None:
    """Train the demo model (SmallCNN, 64x64, six shape classes) and print its figures."""
    # Imported here: torch and the generator are heavy, and other verbs must start fast.
    from framewire.train_demo import train_demo_model

    out_dir = out if out is not None else Path(settings.state_dir) / "models" / "demo-shapes"
    metrics = train_demo_model(
        out_dir, seed=seed, samples=samples, epochs=epochs,
        progress=lambda message: click.echo(message, err=True),
    )
    click.echo(json.dumps(metrics, indent=2))
